//! The rules an account, a static route and the rates must follow, wherever they come from: the
//! config file's `[[accounts]]`, `[[routes]]` and `[rates]`, the admin API's JSON, and the records
//! read from Redis. One set of rules, so the three can never disagree; every problem is reported
//! with its key path (`accounts[2].settle_to`, `account.min_balance`, `redis accounts["a"].x`).
//! [`crate::config`] reads the file and checks its other sections with the same [`Validator`].

use crate::account::{
    hash_token, Account, AccountId, AccountRecord, MojaloopSettlement, MojaloopSettlementRecord, Outgoing,
    OutgoingError, PartyRecord, RafikiLiquidity, RafikiLiquidityRecord, Relation, Secret, TokenHash,
};
use crate::http::origin::Origin;
use crate::limits as defaults;
use crate::mojaloop::party::Party;
use crate::packet::IlpAddress;
use crate::rates::{Decimal, Rates, RatesRecord};
use crate::routing::RoutingTable;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// One problem in the file, at a key path such as `accounts[2].outgoing_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// All problems found; reading stops only where parsing could not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<Problem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", p.path, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccount {
    pub(crate) id: String,
    pub(crate) relation: Relation,
    pub(crate) asset_code: String,
    pub(crate) asset_scale: u8,
    pub(crate) ilp_address: Option<String>,
    pub(crate) incoming_token: Option<String>,
    incoming_token_sha256: Option<String>,
    pub(crate) outgoing_url: Option<String>,
    pub(crate) outgoing_token: Option<String>,
    pub(crate) max_packet_amount: Option<u64>,
    pub(crate) min_balance: Option<i64>,
    pub(crate) settle_threshold: Option<i64>,
    pub(crate) settle_to: Option<i64>,
    pub(crate) settlement_engine_url: Option<String>,
    pub(crate) mojaloop_settlement: Option<MojaloopSettlementRecord>,
    pub(crate) rafiki_liquidity: Option<RafikiLiquidityRecord>,
    pub(crate) hold_time_ms_max: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) prefix: String,
    pub(crate) account: String,
}

#[derive(Default)]
pub(crate) struct Validator {
    pub(crate) problems: Vec<Problem>,
    /// Accounts that exist but are invalid (left out with a problem of their own): nothing that
    /// names one reports it missing as well.
    pub(crate) invalid_ids: HashSet<String>,
}

impl Validator {
    pub(crate) fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { path: path.into(), message: message.into() });
    }

    /// Runs `parse` and records its error at `path`.
    pub(crate) fn check<T, E: fmt::Display>(&mut self, path: &str, parsed: Result<T, E>) -> Option<T> {
        parsed.map_err(|e| self.problem(path, e.to_string())).ok()
    }

    pub(crate) fn positive<T: PartialOrd + Default + Copy>(
        &mut self,
        path: &str,
        value: Option<T>,
        default: T,
    ) -> T {
        let value = value.unwrap_or(default);
        if value <= T::default() {
            self.problem(path, "must be greater than 0");
        }
        value
    }

    /// Returns the rates and the set of priced asset codes.
    pub(crate) fn rates(&mut self, raw: RatesRecord) -> Option<(Rates, HashSet<String>)> {
        let spread = raw.spread.as_deref().unwrap_or(defaults::SPREAD);
        let spread = self.check("rates.spread", Decimal::parse(spread));
        if let Some(s) = spread {
            if !s.is_below_one() {
                self.problem("rates.spread", "must be below 1 (it is the fraction the node keeps)");
            }
        }
        let mut prices = HashMap::new();
        for (code, price) in &raw.prices {
            let path = format!("rates.prices.{code}");
            if let Some(p) = self.check(&path, Decimal::parse(price)) {
                if p.is_zero() {
                    self.problem(&path, "a price must be greater than 0");
                } else {
                    prices.insert(Arc::<str>::from(code.as_str()), p);
                }
            }
        }
        let spread = spread.filter(Decimal::is_below_one)?;
        let priced = prices.keys().map(|k| k.to_string()).collect();
        (prices.len() == raw.prices.len()).then(|| (Rates::new(prices, spread), priced))
    }

    /// Every account rule; an account with a problem is left out of the result (the file is then
    /// refused as a whole; a shared store's entry is skipped). `name` gives an entry's key path.
    pub(crate) fn accounts(&mut self, node: &IlpAddress, raw: Vec<RawAccount>, name: &Namer) -> Vec<Account> {
        let mut ids = HashSet::new();
        let mut tokens: HashMap<TokenHash, String> = HashMap::new();
        let mut own_parties: HashMap<Party, String> = HashMap::new();
        let mut parents = 0;
        let mut out = Vec::new();
        for (i, raw) in raw.into_iter().enumerate() {
            let base = name(i, &raw.id);
            let at = |field: &str| format!("{base}.{field}");
            let before = self.problems.len();
            if !is_segment(&raw.id) {
                self.problem(at("id"), "must be one ILP address segment: letters, digits, _ ~ - only");
            } else if !ids.insert(raw.id.clone()) {
                self.problem(at("id"), format!("duplicate account id {:?}", raw.id));
            }
            if raw.asset_code.is_empty() || raw.asset_code.len() > 16 || !raw.asset_code.is_ascii() {
                self.problem(at("asset_code"), "must be 1 to 16 ASCII characters");
            }
            if raw.asset_scale > defaults::ASSET_SCALE_MAX {
                self.problem(at("asset_scale"), format!("must be at most {}", defaults::ASSET_SCALE_MAX));
            }
            let ilp_address = self.account_address(node, &raw, &at("ilp_address"));
            if raw.relation == Relation::Parent {
                parents += 1;
                if parents > 1 {
                    self.problem(at("relation"), "only one parent account is supported");
                }
            }
            let token_hash = self.incoming_token(&raw, &at);
            if let Some(hash) = token_hash {
                if let Some(other) = tokens.insert(hash, raw.id.clone()) {
                    self.problem(at("incoming_token"), format!("same token as account {other:?}"));
                }
            }
            let outgoing = self.outgoing(&raw, &at);
            let settlement_engine_url = self.settlement_engine_url(&raw, &at);
            let mojaloop_settlement = self.mojaloop_settlement(&raw, &at);
            let rafiki_liquidity = self.rafiki_liquidity(&raw, &at);
            if let Some(own) = mojaloop_settlement.as_ref().map(|m| &m.own) {
                if let Some(other) = own_parties.insert(own.clone(), raw.id.clone()) {
                    self.problem(
                        at("mojaloop_settlement.own_party"),
                        format!("account {other:?} has the same own party: a transfer paid to it must name one account"),
                    );
                }
            }
            if let Some(threshold) = raw.settle_threshold {
                // A settlement moves the balance from above the threshold down to settle_to: one
                // above the threshold would raise the balance (settle_to defaults to 0, so a
                // negative threshold needs its own settle_to).
                let to = raw.settle_to.unwrap_or(0);
                if crate::balance::check_settle_bounds(threshold.into(), to.into()).is_err() {
                    let given = if raw.settle_to.is_some() { "" } else { " (its default when omitted)" };
                    self.problem(
                        at("settle_to"),
                        format!("{to}{given} must not exceed settle_threshold {threshold}: a settlement would raise the balance"),
                    );
                }
            }
            if let Some(hold) = raw.hold_time_ms_max {
                if !(1..=defaults::HOLD_TIME_MS_MAX_CEILING).contains(&hold) {
                    self.problem(
                        at("hold_time_ms_max"),
                        format!("must be 1 to {} ms", defaults::HOLD_TIME_MS_MAX_CEILING),
                    );
                }
            }
            if let Some(0) = raw.max_packet_amount {
                self.problem(at("max_packet_amount"), "must be greater than 0 (omit it for no limit)");
            }
            if raw.relation == Relation::Local {
                self.local_account(&raw, &at);
            }
            if self.problems.len() != before {
                self.invalid_ids.insert(raw.id.clone());
            } else {
                out.push(Account {
                    id: raw.id.as_str().into(),
                    relation: raw.relation,
                    asset_code: raw.asset_code.as_str().into(),
                    asset_scale: raw.asset_scale,
                    ilp_address,
                    incoming_token_hash: token_hash,
                    outgoing,
                    max_packet_amount: raw.max_packet_amount.unwrap_or(u64::MAX),
                    min_balance: match (raw.relation, raw.min_balance) {
                        // The node's own money: it pays out only what it holds unless the
                        // operator grants it credit.
                        (Relation::Local, None) => Some(0),
                        (_, min) => min.map(Into::into),
                    },
                    settle_threshold: raw.settle_threshold.map(Into::into),
                    settle_to: raw.settle_to.unwrap_or(0).into(),
                    settlement_engine_url,
                    mojaloop_settlement,
                    rafiki_liquidity,
                    hold_time_max: raw.hold_time_ms_max.map(std::time::Duration::from_millis),
                });
            }
        }
        out
    }

    /// A local account is the node's own: reached inside the node, so nothing about sending to it,
    /// authenticating it or settling with it applies.
    fn local_account(&mut self, raw: &RawAccount, at: &dyn Fn(&str) -> String) {
        let why = "local accounts hold the node's own payments: they are reached inside the node";
        let given = [
            ("incoming_token", raw.incoming_token.is_some()),
            ("incoming_token_sha256", raw.incoming_token_sha256.is_some()),
            ("outgoing_url", raw.outgoing_url.is_some()),
            ("outgoing_token", raw.outgoing_token.is_some()),
            ("settlement_engine_url", raw.settlement_engine_url.is_some()),
            ("mojaloop_settlement", raw.mojaloop_settlement.is_some()),
            ("hold_time_ms_max", raw.hold_time_ms_max.is_some()),
            ("settle_threshold", raw.settle_threshold.is_some()),
            ("settle_to", raw.settle_to.is_some()),
        ];
        for (key, _) in given.iter().filter(|(_, set)| *set) {
            self.problem(at(key), format!("not allowed on a local account ({why}); remove it"));
        }
    }

    /// Children and local accounts get `<node>.<id>`; peers and parents may name their own prefix.
    pub(crate) fn account_address(
        &mut self,
        node: &IlpAddress,
        raw: &RawAccount,
        path: &str,
    ) -> Option<IlpAddress> {
        match (raw.relation, &raw.ilp_address) {
            (Relation::Child | Relation::Local, Some(_)) => {
                self.problem(
                    path,
                    "children and local accounts get their address from the node (<node address>.<id>); remove it",
                );
                None
            }
            (Relation::Child | Relation::Local, None) => {
                is_segment(&raw.id).then(|| node.with_suffix(&raw.id).ok()).flatten()
            }
            (_, Some(address)) => self.check(path, IlpAddress::parse(address)),
            (_, None) => None,
        }
    }

    pub(crate) fn incoming_token(
        &mut self,
        raw: &RawAccount,
        at: &dyn Fn(&str) -> String,
    ) -> Option<TokenHash> {
        self.token_or_hash(
            (raw.incoming_token.as_deref(), raw.incoming_token_sha256.as_deref()),
            (&at("incoming_token"), &at("incoming_token_sha256")),
        )
    }

    /// A bearer token given in clear (hashed here; the clear value is not kept) or as its
    /// SHA-256 in hex; `paths` name the two keys.
    pub(crate) fn token_or_hash(
        &mut self,
        given: (Option<&str>, Option<&str>),
        paths: (&str, &str),
    ) -> Option<TokenHash> {
        match given {
            (Some(_), Some(_)) => {
                self.problem(paths.1, format!("give {} or {}, not both", key_of(paths.0), key_of(paths.1)));
                None
            }
            (Some(""), None) => {
                self.problem(paths.0, "must not be empty");
                None
            }
            (Some(token), None) => Some(hash_token(token.as_bytes())),
            (None, Some(hex)) => {
                let parsed = hex::decode(hex).ok().and_then(|b| <TokenHash>::try_from(b).ok());
                if parsed.is_none() {
                    self.problem(paths.1, "must be 64 hexadecimal characters (a SHA-256)");
                }
                parsed
            }
            (None, None) => None,
        }
    }

    pub(crate) fn outgoing(&mut self, raw: &RawAccount, at: &dyn Fn(&str) -> String) -> Option<Outgoing> {
        let (url, token) = match (&raw.outgoing_url, &raw.outgoing_token) {
            (None, None) => return None,
            (Some(url), Some(token)) => (url, token),
            (Some(_), None) => {
                self.problem(at("outgoing_token"), "required with outgoing_url");
                return None;
            }
            (None, Some(_)) => {
                self.problem(at("outgoing_url"), "required with outgoing_token");
                return None;
            }
        };
        let uri = self.check(&at("outgoing_url"), url.parse::<hyper::Uri>())?;
        // http:// or https:// with a host (and, for https, a host a certificate can be checked
        // against). The token's value is never echoed into an error message.
        match Outgoing::new(uri, &Secret::new(token.clone())) {
            Ok(outgoing) => Some(outgoing),
            Err(e @ OutgoingError::Url(_)) => self.check(&at("outgoing_url"), Err(e)),
            Err(e @ OutgoingError::Token) => self.check(&at("outgoing_token"), Err(e)),
        }
    }

    /// An absolute `http://` or `https://` URL with no query; kept without a trailing `/` so
    /// paths append.
    pub(crate) fn settlement_engine_url(
        &mut self,
        raw: &RawAccount,
        at: &dyn Fn(&str) -> String,
    ) -> Option<Arc<str>> {
        let url = raw.settlement_engine_url.as_ref()?;
        let path = at("settlement_engine_url");
        let uri = self.check(&path, url.parse::<hyper::Uri>())?;
        self.check(&path, Origin::from_uri(&uri))?;
        if uri.query().is_some() {
            self.problem(path, "must be an absolute http:// or https:// URL without a query");
            return None;
        }
        Some(url.trim_end_matches('/').into())
    }

    /// Settlement kind `mojaloop`: both parties valid, and no engine beside it. Whether the node's
    /// `[mojaloop]` section serves the account's currency is the file's check (and the admin
    /// API's), which know the section.
    pub(crate) fn mojaloop_settlement(
        &mut self,
        raw: &RawAccount,
        at: &dyn Fn(&str) -> String,
    ) -> Option<Arc<MojaloopSettlement>> {
        let record = raw.mojaloop_settlement.as_ref()?;
        if raw.settlement_engine_url.is_some() {
            self.problem(
                at("mojaloop_settlement"),
                "an account settles through one system: give settlement_engine_url or mojaloop_settlement, not both",
            );
            return None;
        }
        let mut party = |record: &PartyRecord, key: &str| {
            let path = at(&format!("mojaloop_settlement.{key}"));
            self.check(&path, Party::new(&record.id_type, &record.id_value, record.fsp_id.as_deref()))
        };
        let peer = party(&record.peer_party, "peer_party");
        let own = party(&record.own_party, "own_party");
        let (peer, own) = (peer?, own?);
        if peer.id_type == own.id_type && peer.id_value == own.id_value {
            self.problem(at("mojaloop_settlement.own_party"), "must differ from peer_party");
            return None;
        }
        Some(Arc::new(MojaloopSettlement { peer, own }))
    }

    /// Settlement kind `rafiki`: a Rafiki peer id (a UUID), on a peer or parent. Rafiki's
    /// liquidity is what the node prefunded there, so the account's balance runs negative: a
    /// threshold, if given, must be one (a top-up when the prefunded credit runs low). Whether
    /// the node has a `[rafiki.admin]` section is the file's check (and the admin API's).
    pub(crate) fn rafiki_liquidity(
        &mut self,
        raw: &RawAccount,
        at: &dyn Fn(&str) -> String,
    ) -> Option<Arc<RafikiLiquidity>> {
        let record = raw.rafiki_liquidity.as_ref()?;
        let mut fine = true;
        if !is_uuid(&record.peer_id) {
            self.problem(at("rafiki_liquidity.peer_id"), "must be the Rafiki peer's id, a UUID");
            fine = false;
        }
        if !matches!(raw.relation, Relation::Peer | Relation::Parent) {
            self.problem(at("rafiki_liquidity"), "only a peer or a parent can be a Rafiki peer");
            fine = false;
        }
        if raw.settle_threshold.is_some_and(|t| t > 0) {
            self.problem(
                at("settle_threshold"),
                "a Rafiki peer's balance mirrors the node's prefunded liquidity there with the opposite sign: its threshold is negative or zero (top up when the credit runs low)",
            );
            fine = false;
        }
        fine.then(|| Arc::new(RafikiLiquidity { peer_id: record.peer_id.to_ascii_lowercase().into() }))
    }

    /// Packets between different asset codes need a price for both.
    pub(crate) fn rate_coverage(&mut self, accounts: &[Account], priced: Option<&HashSet<String>>) {
        let Some(priced) = priced else { return };
        let codes: HashSet<&str> = accounts.iter().map(|a| &*a.asset_code).collect();
        if codes.len() < 2 {
            return;
        }
        let mut missing: Vec<&str> = codes.into_iter().filter(|c| !priced.contains(*c)).collect();
        missing.sort();
        for code in missing {
            self.problem(
                format!("rates.prices.{code}"),
                "accounts use several assets, so every asset needs a price",
            );
        }
    }

    /// The whole table and the static routes alone; a route with a problem is left out.
    pub(crate) fn routes(
        &mut self,
        accounts: &[Account],
        raw: Vec<RawRoute>,
        name: &Namer,
    ) -> (RoutingTable, Vec<(String, AccountId)>) {
        let mut prefixes: HashMap<String, Arc<str>> = HashMap::new();
        let mut default = None;
        for account in accounts {
            match (account.relation, &account.ilp_address) {
                (Relation::Parent, _) => default = Some(account.id.clone()),
                (_, Some(address)) => {
                    prefixes.insert(address.to_string(), account.id.clone());
                }
                _ => {}
            }
        }
        let by_id: HashMap<&str, &AccountId> = accounts.iter().map(|a| (&*a.id, &a.id)).collect();
        let mut static_routes = Vec::new();
        for (i, route) in raw.into_iter().enumerate() {
            let base = name(i, &route.prefix);
            let at = |field: &str| format!("{base}.{field}");
            if self.check(&at("prefix"), IlpAddress::parse(&route.prefix)).is_none() {
                continue;
            }
            let Some(&account) = by_id.get(route.account.as_str()) else {
                // An account with problems of its own is reported already; the route waits for it.
                if !self.invalid_ids.contains(&route.account) {
                    self.problem(at("account"), format!("no account with id {:?}", route.account));
                }
                continue;
            };
            if prefixes.contains_key(&route.prefix) {
                self.problem(at("prefix"), format!("prefix {:?} is already routed", route.prefix));
                continue;
            }
            prefixes.insert(route.prefix.clone(), account.clone());
            static_routes.push((route.prefix, account.clone()));
        }
        (RoutingTable::new(prefixes, default), static_routes)
    }
}

/// The last key of a path (`incoming_token` of `accounts[0].incoming_token`).
pub(crate) fn key_of(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// An entry's key path from its index and its id (an account's id, a route's prefix).
pub(crate) type Namer = dyn Fn(usize, &str) -> String;

/// Where a shared store's account `id` is reported: `redis accounts["id"]`.
pub(crate) fn redis_account_path(_: usize, id: &str) -> String {
    format!("redis accounts[{id:?}]")
}

impl From<AccountRecord> for RawAccount {
    fn from(r: AccountRecord) -> Self {
        RawAccount {
            id: r.id,
            relation: r.relation,
            asset_code: r.asset_code,
            asset_scale: r.asset_scale,
            ilp_address: r.ilp_address,
            incoming_token: None,
            incoming_token_sha256: r.incoming_token_sha256,
            outgoing_url: r.outgoing_url,
            outgoing_token: r.outgoing_token,
            max_packet_amount: r.max_packet_amount,
            min_balance: r.min_balance,
            settle_threshold: r.settle_threshold,
            settle_to: r.settle_to,
            settlement_engine_url: r.settlement_engine_url,
            mojaloop_settlement: r.mojaloop_settlement,
            rafiki_liquidity: r.rafiki_liquidity,
            hold_time_ms_max: r.hold_time_ms_max,
        }
    }
}

/// A UUID in its usual text form (8-4-4-4-12 hex digits).
pub(crate) fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One account read from a shared store (or given to the admin API), checked with the rules of
/// an `[[accounts]]` entry that concern it alone. The rules across accounts (unique tokens, one
/// parent, prices) are [`accounts_from_records`]'s.
pub fn account_from_record(node: &IlpAddress, record: AccountRecord) -> Result<Account, ConfigError> {
    let mut validator = Validator::default();
    let mut accounts = validator.accounts(node, vec![record.into()], &redis_account_path);
    match (accounts.pop(), validator.problems.is_empty()) {
        (Some(account), true) => Ok(account),
        _ => Err(ConfigError(validator.problems)),
    }
}

/// A whole set of accounts from a shared store, checked with every rule of the config file. An
/// entry that breaks a rule is left out and reported; the others are kept (unlike the file, which
/// is refused as a whole, a shared store's set is served as far as it is valid).
pub fn accounts_from_records(
    node: &IlpAddress,
    rates: &Rates,
    records: Vec<AccountRecord>,
) -> (Vec<Account>, Vec<Problem>) {
    let mut validator = Validator::default();
    let raw = records.into_iter().map(RawAccount::from).collect();
    let mut accounts = validator.accounts(node, raw, &redis_account_path);
    // Packets between different assets need both prices: an account whose asset has none could
    // not be converted to or from, so it is left out (the file is refused instead).
    let codes: HashSet<&str> = accounts.iter().map(|a| &*a.asset_code).collect();
    if codes.len() > 1 {
        let unpriced: Vec<AccountId> =
            accounts.iter().filter(|a| !rates.has_price(&a.asset_code)).map(|a| a.id.clone()).collect();
        for id in &unpriced {
            let code = &accounts.iter().find(|a| a.id == *id).expect("listed above").asset_code;
            validator.problem(
                format!("{}.asset_code", redis_account_path(0, id)),
                format!("no price for {code} in rates.prices, and accounts use several assets"),
            );
        }
        accounts.retain(|a| !unpriced.contains(&a.id));
    }
    (accounts, validator.problems)
}

/// The routing table of `accounts` plus the static routes read from a shared store (prefix,
/// account id), checked with the rules of `[[routes]]`: a bad prefix, an unknown account or a
/// prefix already routed is left out and reported.
pub fn routing_table(
    accounts: &[Account],
    routes: impl IntoIterator<Item = (String, String)>,
) -> (RoutingTable, Vec<Problem>) {
    let mut validator = Validator::default();
    let raw = routes.into_iter().map(|(prefix, account)| RawRoute { prefix, account }).collect();
    let (table, _) = validator.routes(accounts, raw, &|_, prefix| format!("redis routes[{prefix:?}]"));
    (table, validator.problems)
}

/// An account as the admin API receives it: the fields of an `[[accounts]]` entry as JSON, the
/// incoming token in clear (`incoming_token`, hashed once checked; the clear value is dropped) or
/// as `incoming_token_sha256`.
pub struct AccountInput(RawAccount);

impl fmt::Debug for AccountInput {
    /// The id only: the input may carry tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AccountInput").field(&self.0.id).finish()
    }
}

/// Where the admin API reports a problem of the account it was given: `account.<field>`.
pub const ADMIN_ACCOUNT_PATH: &str = "account";

impl AccountInput {
    /// Parses one JSON object; an unknown, missing or mistyped field is named in the error.
    pub fn from_json(body: &[u8]) -> Result<Self, ConfigError> {
        let amounts_as_numbers = amounts_as_numbers(body)?;
        let body = amounts_as_numbers.as_deref().unwrap_or(body);
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let parsed: Result<RawAccount, _> = serde_path_to_error::deserialize(&mut deserializer);
        let raw = parsed.map_err(|e| {
            let path = match e.path().to_string() {
                p if p == "." => ADMIN_ACCOUNT_PATH.to_string(),
                p => format!("{ADMIN_ACCOUNT_PATH}.{p}"),
            };
            let inner = e.into_inner();
            // serde_json's message may quote the value; it goes back to the operator who sent it
            // and is never logged.
            ConfigError(vec![Problem { path, message: inner.to_string() }])
        })?;
        deserializer.end().map_err(|e| {
            ConfigError(vec![Problem { path: ADMIN_ACCOUNT_PATH.into(), message: e.to_string() }])
        })?;
        Ok(AccountInput(raw))
    }

    pub fn id(&self) -> &str {
        &self.0.id
    }
}

/// An account's amounts, in its asset scale: decimal strings in the admin API (a JSON number past
/// 2^53 is rounded by many clients), numbers also taken. `true` for the unsigned ones.
pub const ACCOUNT_AMOUNT_FIELDS: [(&str, bool); 4] =
    [("max_packet_amount", true), ("min_balance", false), ("settle_threshold", false), ("settle_to", false)];

/// `body` with the account's amounts given as decimal strings turned into JSON numbers, or `None`
/// when there is none to turn (or the body is not a JSON object: the parse proper says why).
pub(crate) fn amounts_as_numbers(body: &[u8]) -> Result<Option<Vec<u8>>, ConfigError> {
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(None);
    };
    let mut problems = Vec::new();
    let mut turned = false;
    for (key, unsigned) in ACCOUNT_AMOUNT_FIELDS {
        let Some(serde_json::Value::String(text)) = object.get(key) else { continue };
        let digits = text.strip_prefix('-').unwrap_or(text);
        let is_integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        let number = match (is_integer, unsigned) {
            (false, _) => None,
            (true, true) => text.parse::<u64>().ok().map(serde_json::Number::from),
            (true, false) => text.parse::<i64>().ok().map(serde_json::Number::from),
        };
        match number {
            Some(number) => {
                object.insert(key.to_string(), serde_json::Value::Number(number));
                turned = true;
            }
            None => {
                let range = match unsigned {
                    true => format!("0 to {}", u64::MAX),
                    false => format!("{} to {}", i64::MIN, i64::MAX),
                };
                problems.push(Problem {
                    path: format!("{ADMIN_ACCOUNT_PATH}.{key}"),
                    message: format!(
                        "must be an integer in the account's asset scale, {range}, as a decimal string"
                    ),
                });
            }
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError(problems));
    }
    Ok(turned.then(|| serde_json::to_vec(&object).expect("a JSON object serializes")))
}

/// The accounts once `input` joins `current`, or replaces the account with its id, checked with
/// every rule of the config file: the input's own problems are reported as `account.<field>`;
/// a rule across accounts (one parent, unique tokens) is held against the input, since the others
/// already met it; a missing price is reported under `rates.prices.<code>`.
pub fn accounts_with<'a>(
    node: &IlpAddress,
    rates: &Rates,
    current: impl IntoIterator<Item = &'a Account>,
    input: AccountInput,
) -> Result<Vec<Account>, ConfigError> {
    let id = input.0.id.clone();
    let mut raw: Vec<RawAccount> =
        current.into_iter().filter(|a| *a.id != *id).map(|a| RawAccount::from(a.to_record())).collect();
    raw.push(input.0);
    let mut validator = Validator::default();
    let name = move |_: usize, entry: &str| match entry == id {
        true => ADMIN_ACCOUNT_PATH.to_string(),
        false => format!("accounts[{entry:?}]"),
    };
    let accounts = validator.accounts(node, raw, &name);
    let priced: HashSet<String> = accounts
        .iter()
        .filter(|a| rates.has_price(&a.asset_code))
        .map(|a| a.asset_code.to_string())
        .collect();
    validator.rate_coverage(&accounts, Some(&priced));
    match validator.problems.is_empty() {
        true => Ok(accounts),
        false => Err(ConfigError(validator.problems)),
    }
}

/// Rates given to the admin API or read from Redis, checked with the rules of `[rates]`, and
/// against the assets `accounts` use (several assets: every one needs a price).
pub fn rates_from_record<'a>(
    record: RatesRecord,
    accounts: impl IntoIterator<Item = &'a Account>,
) -> Result<Rates, ConfigError> {
    let mut validator = Validator::default();
    let rates = validator.rates(record);
    let accounts: Vec<Account> = accounts.into_iter().cloned().collect();
    validator.rate_coverage(&accounts, rates.as_ref().map(|r| &r.1));
    match (rates, validator.problems.is_empty()) {
        (Some((rates, _)), true) => Ok(rates),
        _ => Err(ConfigError(validator.problems)),
    }
}

/// One ILP address segment (RFC 0015): `[a-zA-Z0-9_~-]+`.
pub(crate) fn is_segment(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'~' | b'-'))
}
