//! Accounts: who may send to the node, where their packets go, and their limits.

use crate::balance::Balance;
use crate::http::origin::{Origin, OriginError};
use crate::mojaloop::party::Party;
use crate::packet::IlpAddress;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// An account's id as configured; also the last segment of a child's ILP address.
pub type AccountId = Arc<str>;

/// How an account relates to this node (RFC 0031 relations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Relation {
    /// Gets its address from us by ILDCP and routes through us.
    Child,
    /// An equal: we route to its prefix and it to ours.
    Peer,
    /// Our upstream: the default route.
    Parent,
    /// Money the node holds itself: the payments it sends and receives over STREAM are booked
    /// here. Addressed `<node>.<id>` like a child, but reached inside the node (its packets are
    /// answered by the node's own STREAM receiver), so it has no ILP-over-HTTP endpoint, no
    /// token and no settlement.
    Local,
}

/// A secret that never prints itself.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Secret {
    /// In constant time, as every comparison of a secret.
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// SHA-256 of a bearer token: the only form in which incoming tokens are kept.
pub type TokenHash = [u8; 32];

/// Equality that takes the same time wherever the inputs differ: for tokens, and for conditions
/// and fulfillments (the packet path, STREAM's sender and receiver). ring 0.17 marks its helper as
/// deprecated (its future is undecided), but it is still the vetted implementation; this is the
/// crate's single call of it, so a replacement is a one-line change.
#[allow(deprecated)]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    ring::constant_time::verify_slices_are_equal(a, b).is_ok()
}

pub fn hash_token(token: &[u8]) -> TokenHash {
    let digest = ring::digest::digest(&ring::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Where and how the node sends this account's packets (ILP-over-HTTP). Everything a request
/// needs is derived once here, not per packet.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub url: hyper::Uri,
    /// Plain or TLS (and the name the certificate must carry), the `host:port` to connect to
    /// (port 80 or 443 when the URL gives none), and the connection pool's key, which holds the
    /// scheme: an `http` and an `https` URL to one `host:port` never share a connection.
    pub origin: Origin,
    /// The `Host` header value.
    pub host: hyper::header::HeaderValue,
    /// The request target: the URL's path and query.
    pub path: hyper::Uri,
    /// `Bearer <token>`, built once and marked sensitive so hyper and `Debug` never show it.
    pub authorization: hyper::header::HeaderValue,
    /// The token itself, kept so the account's configured form can be written to a shared store.
    pub token: Secret,
}

/// Why an outgoing URL or token cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutgoingError {
    #[error("{0}")]
    Url(#[from] OriginError),
    #[error("holds characters an HTTP header cannot carry")]
    Token,
}

impl Outgoing {
    /// `http://` or `https://` URLs with a host.
    pub fn new(url: hyper::Uri, token: &Secret) -> Result<Self, OutgoingError> {
        let origin = Origin::from_uri(&url)?;
        let authority = url.authority().ok_or(OriginError::Url)?;
        let host = hyper::header::HeaderValue::from_str(authority.as_str()).map_err(|_| OriginError::Url)?;
        let path =
            url.path_and_query().map(|p| p.as_str()).unwrap_or("/").parse().map_err(|_| OriginError::Url)?;
        let mut authorization = hyper::header::HeaderValue::try_from(format!("Bearer {}", token.expose()))
            .map_err(|_| OutgoingError::Token)?;
        authorization.set_sensitive(true);
        Ok(Outgoing { url, origin, host, path, authorization, token: token.clone() })
    }
}

#[derive(Clone, Debug)]
pub struct Account {
    pub id: AccountId,
    pub relation: Relation,
    pub asset_code: Arc<str>,
    /// Decimal places of the asset: an amount `a` is worth `a / 10^asset_scale` units.
    pub asset_scale: u8,
    /// Children: `<node>.<id>`; peers and parents: their own prefix, when configured.
    pub ilp_address: Option<IlpAddress>,
    pub incoming_token_hash: Option<TokenHash>,
    pub outgoing: Option<Outgoing>,
    /// Largest Prepare accepted from this account, in its scale (`u64::MAX` when unlimited).
    pub max_packet_amount: u64,
    pub min_balance: Option<Balance>,
    /// When a Fulfill takes the balance above this, the node settles it down to `settle_to`.
    pub settle_threshold: Option<Balance>,
    pub settle_to: Balance,
    /// The account's RFC 0038 settlement engine (`http[s]://host:port[/base]`), if it settles
    /// through one.
    pub settlement_engine_url: Option<Arc<str>>,
    /// Settlement kind `mojaloop`: the account settles with Mojaloop transfers instead of an
    /// engine (never both).
    pub mojaloop_settlement: Option<Arc<MojaloopSettlement>>,
    /// Settlement kind `rafiki`: the account is a Rafiki peer whose books of the relationship
    /// the node keeps in step with its own, through Rafiki's admin API. Its settlements are
    /// top-ups of the node's liquidity there, paid through the rail above when one is given.
    pub rafiki_liquidity: Option<Arc<RafikiLiquidity>>,
    /// The longest a Prepare sent to this account may be held, below the node's own maximum
    /// (Rafiki books a Fulfill only within 5 s of its Prepare: its accounts are capped below).
    pub hold_time_max: Option<std::time::Duration>,
}

/// How an account settles through the node's Mojaloop scheme: each settlement is one transfer
/// from `own` to `peer`, and a transfer the peer pays to `own` is a settlement from the peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MojaloopSettlement {
    /// The peer's party: the node's settlements for this account are paid to it.
    pub peer: Party,
    /// The node's own party for this peer: its settlements are paid from it, and a transfer paid
    /// to it credits this account (one party per account, so a payee names one account).
    pub own: Party,
}

/// How the node keeps a Rafiki's books of an account in step: Rafiki's liquidity for the node
/// (what the node has prefunded there) is the account's balance with the opposite sign, so a
/// settlement (the balance above its negative threshold) is a top-up recorded as a deposit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RafikiLiquidity {
    /// The node's id as a peer in Rafiki (a UUID).
    pub peer_id: Arc<str>,
}

/// The settlement system an account settles through, compared to tell that it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettlementRail {
    Engine(Arc<str>),
    Mojaloop(Arc<MojaloopSettlement>),
}

impl Account {
    /// Whether the account settles through a settlement system: the one place that says so, for
    /// the packet path's signal, the worker and the metrics.
    pub fn settles(&self) -> bool {
        // Called after every Fulfill: reads the fields rather than building the rail (an Arc
        // clone each).
        self.settlement_engine_url.is_some()
            || self.mojaloop_settlement.is_some()
            || self.rafiki_liquidity.is_some()
    }

    /// Its settlement system: an RFC 0038 engine or the Mojaloop scheme (validation allows one).
    pub fn settlement_rail(&self) -> Option<SettlementRail> {
        match (&self.settlement_engine_url, &self.mojaloop_settlement) {
            (Some(url), _) => Some(SettlementRail::Engine(url.clone())),
            (None, Some(mojaloop)) => Some(SettlementRail::Mojaloop(mojaloop.clone())),
            (None, None) => None,
        }
    }
}

/// An account in its configured form, as stored in a shared store (Redis) and read back by every
/// instance: the fields of an `[[accounts]]` entry, except that the incoming token is only ever
/// its SHA-256 (a clear token is hashed before anything is written). The outgoing token is kept
/// in clear because the node must send it: whoever can read the store can read it.
/// Unknown fields are refused, as in the config file.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRecord {
    pub id: String,
    pub relation: Relation,
    pub asset_code: String,
    pub asset_scale: u8,
    /// Peers and parents only (children get theirs from the node's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ilp_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming_token_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outgoing_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outgoing_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_packet_amount: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_balance: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_threshold: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_to: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_engine_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mojaloop_settlement: Option<MojaloopSettlementRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rafiki_liquidity: Option<RafikiLiquidityRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time_ms_max: Option<u64>,
}

/// `rafiki_liquidity` of an account's configured form: `rafiki_liquidity = { peer_id = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RafikiLiquidityRecord {
    pub peer_id: String,
}

/// `mojaloop_settlement` of an account's configured form: `[accounts.mojaloop_settlement]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MojaloopSettlementRecord {
    pub peer_party: PartyRecord,
    pub own_party: PartyRecord,
}

/// A Mojaloop party in configured form (checked by [`Party::new`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyRecord {
    pub id_type: String,
    pub id_value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsp_id: Option<String>,
}

impl PartyRecord {
    pub fn of(party: &Party) -> PartyRecord {
        PartyRecord {
            id_type: party.id_type.to_string(),
            id_value: party.id_value.clone(),
            fsp_id: party.fsp_id.clone(),
        }
    }
}

impl fmt::Debug for AccountRecord {
    /// Everything but the outgoing token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountRecord")
            .field("id", &self.id)
            .field("relation", &self.relation)
            .field("asset_code", &self.asset_code)
            .field("asset_scale", &self.asset_scale)
            .field("ilp_address", &self.ilp_address)
            .field("outgoing_url", &self.outgoing_url)
            .field("max_packet_amount", &self.max_packet_amount)
            .field("min_balance", &self.min_balance)
            .field("settlement_engine_url", &self.settlement_engine_url)
            .field("mojaloop_settlement", &self.mojaloop_settlement)
            .field("rafiki_liquidity", &self.rafiki_liquidity)
            .finish_non_exhaustive()
    }
}

impl Account {
    /// The account's configured form. Limits came from `i64` config values, so they fit back.
    pub fn to_record(&self) -> AccountRecord {
        let limit = |b: Balance| i64::try_from(b).expect("configured balances are i64");
        AccountRecord {
            id: self.id.to_string(),
            relation: self.relation,
            asset_code: self.asset_code.to_string(),
            asset_scale: self.asset_scale,
            // A child's (or a local account's) address is derived from the node's, so it is not
            // part of its record.
            ilp_address: match self.relation {
                Relation::Child | Relation::Local => None,
                _ => self.ilp_address.as_ref().map(|a| a.to_string()),
            },
            incoming_token_sha256: self.incoming_token_hash.map(hex::encode),
            outgoing_url: self.outgoing.as_ref().map(|o| o.url.to_string()),
            outgoing_token: self.outgoing.as_ref().map(|o| o.token.expose().to_string()),
            max_packet_amount: (self.max_packet_amount != u64::MAX).then_some(self.max_packet_amount),
            min_balance: self.min_balance.map(limit),
            settle_threshold: self.settle_threshold.map(limit),
            settle_to: (self.settle_to != 0).then(|| limit(self.settle_to)),
            settlement_engine_url: self.settlement_engine_url.as_ref().map(|u| u.to_string()),
            mojaloop_settlement: self.mojaloop_settlement.as_ref().map(|m| MojaloopSettlementRecord {
                peer_party: PartyRecord::of(&m.peer),
                own_party: PartyRecord::of(&m.own),
            }),
            rafiki_liquidity: self
                .rafiki_liquidity
                .as_ref()
                .map(|r| RafikiLiquidityRecord { peer_id: r.peer_id.to_string() }),
            hold_time_ms_max: self.hold_time_max.map(|d| d.as_millis() as u64),
        }
    }
}

/// All accounts, indexed for the two lookups the packet path needs. Immutable once built.
#[derive(Debug, Default)]
pub struct Accounts {
    by_id: HashMap<AccountId, Arc<Account>>,
    by_token: HashMap<TokenHash, Arc<Account>>,
}

impl Accounts {
    /// Builds the index. Duplicate ids or tokens are refused by config validation before this.
    pub fn new(accounts: impl IntoIterator<Item = Account>) -> Self {
        let mut index = Accounts::default();
        for account in accounts {
            let account = Arc::new(account);
            if let Some(hash) = account.incoming_token_hash {
                index.by_token.insert(hash, account.clone());
            }
            index.by_id.insert(account.id.clone(), account);
        }
        index
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Account>> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Account>> {
        self.by_id.values()
    }

    /// The account whose incoming token this is. The map is keyed by the token's hash, then the
    /// stored hash is compared in constant time, so timing reveals nothing about stored tokens.
    pub fn authenticate(&self, token: &[u8]) -> Option<&Arc<Account>> {
        let hash = hash_token(token);
        let account = self.by_token.get(&hash)?;
        let stored = account.incoming_token_hash.as_ref()?;
        constant_time_eq(stored, &hash).then_some(account)
    }
}

/// A plain USD child account without limits, for tests.
#[doc(hidden)]
pub fn test_account(id: &str) -> Account {
    Account {
        id: id.into(),
        relation: Relation::Child,
        asset_code: "USD".into(),
        asset_scale: 2,
        ilp_address: None,
        incoming_token_hash: None,
        outgoing: None,
        max_packet_amount: u64::MAX,
        min_balance: None,
        settle_threshold: None,
        settle_to: 0,
        settlement_engine_url: None,
        mojaloop_settlement: None,
        rafiki_liquidity: None,
        hold_time_max: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str, token: &str) -> Account {
        Account { incoming_token_hash: Some(hash_token(token.as_bytes())), ..test_account(id) }
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(&[1, 2, 3], &[1, 2, 3]));
        assert!(!constant_time_eq(&[1, 2, 3], &[1, 2, 4]));
        assert!(!constant_time_eq(&[1, 2], &[1, 2, 3]));
    }

    #[test]
    fn tokens_identify_accounts_by_hash() {
        let accounts = Accounts::new([account("a", "ta"), account("b", "tb")]);
        assert_eq!(&*accounts.authenticate(b"tb").unwrap().id, "b");
        assert!(accounts.authenticate(b"tc").is_none());
        assert!(accounts.authenticate(b"").is_none());
    }

    #[test]
    fn records_keep_only_the_token_hash_and_never_print_the_outgoing_token() {
        let outgoing = Outgoing::new("http://h:1/ilp".parse().unwrap(), &Secret::new("out-secret".into()));
        let a = Account {
            outgoing: Some(outgoing.unwrap()),
            min_balance: Some(-5),
            max_packet_amount: 7,
            ..account("a", "in-secret")
        };
        let record = a.to_record();
        assert_eq!(record.incoming_token_sha256, Some(hex::encode(hash_token(b"in-secret"))));
        assert_eq!(record.outgoing_token.as_deref(), Some("out-secret"));
        assert_eq!(
            (record.min_balance, record.max_packet_amount, record.settle_to),
            (Some(-5), Some(7), None)
        );
        let json = serde_json::to_string(&record).unwrap();
        assert!(!json.contains("in-secret"));
        assert!(!format!("{record:?}").contains("out-secret"));
        let back: AccountRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
        // Unlimited amounts and a zero settle_to are left out, as in the config file.
        let plain = test_account("p").to_record();
        assert_eq!((plain.max_packet_amount, plain.settle_to), (None, None));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
