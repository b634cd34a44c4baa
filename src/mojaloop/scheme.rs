//! The node's place in a Mojaloop scheme, as its `[mojaloop]` section sets it: who it is (its DFSP
//! id and the party it pays from), where its Connector is, which currencies it serves with which
//! of its accounts, and which parties it answers for (each mapped to an Interledger receiver).

use super::health::HealthRules;
use super::outbound::OutboundLimits;
use super::party::Party;
use crate::http::listener::ApiLimits;
use crate::rates::Decimal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The placeholder a receiver template replaces with the party's id.
pub const ID_VALUE_PLACEHOLDER: &str = "{id_value}";

#[derive(Debug, Clone)]
pub struct Scheme {
    /// The node's DFSP id in the scheme (the Connector's `DFSP_ID`).
    pub dfsp_id: String,
    /// The node's own party: the payer of its settlements and payouts.
    pub party: Party,
    /// The Connector's outbound API, without a trailing `/`.
    pub outbound_url: String,
    pub outbound: OutboundLimits,
    /// How the Connector's health is probed (a party lookup of `party` on the outbound API).
    pub health: HealthRules,
    /// The backend API the Connector calls (its `BACKEND_ENDPOINT`).
    pub backend_listen: SocketAddr,
    pub backend: ApiLimits,
    /// How long the ILP payment of a Mojaloop → ILP transfer may take before it is abandoned:
    /// well inside the payer's 30 s processing timeout and the transfer's expiry.
    pub payment_timeout: Duration,
    /// How long an incoming payment opened for a payout takes money.
    pub payout_window: Duration,
    pub currencies: Vec<SchemeCurrency>,
    pub parties: Vec<ServedParties>,
}

/// A currency the node serves, and the local account that holds its money on the node's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeCurrency {
    /// ISO 4217 code, as the account's `asset_code`.
    pub code: String,
    /// Decimals the scheme uses for it (ISO 4217 minor units; at most 4, FSPIOP's limit).
    pub decimals: u8,
    pub account: Arc<str>,
    /// The node's fee on what the scheme pays it in this currency (`fee_rate`, an exact decimal
    /// below 1), taken from the amount before it is paid on over Interledger.
    pub fee_rate: Option<Decimal>,
}

/// Which ids of one type a [`ServedParties`] entry answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdMatch {
    Exact(String),
    /// Every id that starts with this (`id_value_prefix`).
    Prefix(String),
}

/// Parties the node answers for in the scheme, and the Interledger receiver each is paid at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedParties {
    pub id_type: &'static str,
    pub ids: IdMatch,
    /// A payment pointer or SPSP URL, with [`ID_VALUE_PLACEHOLDER`] replaced by the party's id.
    pub receiver: String,
}

impl ServedParties {
    fn serves(&self, id_type: &str, id_value: &str) -> bool {
        self.id_type == id_type
            && match &self.ids {
                IdMatch::Exact(id) => id == id_value,
                IdMatch::Prefix(prefix) => id_value.starts_with(prefix.as_str()),
            }
    }
}

impl Scheme {
    /// The receiver of the first entry that serves the party, or `None`: the node does not
    /// answer for it (the scheme hears 3204). `id_value` must be a checked party id
    /// ([`super::party::id_value_ok`]): it goes into a URL.
    pub fn receiver_for(&self, id_type: &str, id_value: &str) -> Option<String> {
        let entry = self.parties.iter().find(|p| p.serves(id_type, id_value))?;
        Some(entry.receiver.replace(ID_VALUE_PLACEHOLDER, id_value))
    }

    /// Why an account cannot settle through this scheme (settlement kind `mojaloop`), naming the
    /// key at fault, or `None` when it can: its currency must be served (its decimals are the
    /// transfers'), and its own party must be the node's for that peer alone, not a party the node
    /// pays on over Interledger or its own DFSP party.
    pub fn settlement_problem(&self, account: &crate::account::Account) -> Option<(&'static str, String)> {
        let settlement = account.mojaloop_settlement.as_ref()?;
        if self.currency(&account.asset_code).is_none() {
            return Some((
                "asset_code",
                format!("{} is not a currency of [[mojaloop.currencies]]: the account cannot settle in the scheme", account.asset_code),
            ));
        }
        let own = &settlement.own;
        if self.receiver_for(own.id_type, &own.id_value).is_some() {
            return Some((
                "mojaloop_settlement.own_party",
                "is also a party of [[mojaloop.parties]]: a transfer to it must name one thing".into(),
            ));
        }
        if own.id_type == self.party.id_type && own.id_value == self.party.id_value {
            return Some((
                "mojaloop_settlement.own_party",
                "is the node's mojaloop.party: give each peer a party of its own".into(),
            ));
        }
        None
    }

    /// The served currency `code`, or `None` (the scheme hears 5106).
    pub fn currency(&self, code: &str) -> Option<&SchemeCurrency> {
        self.currencies.iter().find(|c| c.code == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheme(parties: Vec<ServedParties>) -> Scheme {
        Scheme {
            dfsp_id: "thitsax".into(),
            party: Party::new("BUSINESS", "thitsax", None).unwrap(),
            outbound_url: "http://127.0.0.1:4001".into(),
            outbound: OutboundLimits { timeout: Duration::from_secs(40), response_bytes_max: 65536 },
            health: HealthRules {
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(3),
                down_after_failures: 3,
            },
            backend_listen: "127.0.0.1:7790".parse().unwrap(),
            backend: ApiLimits {
                body_bytes_max: 65536,
                connections_max: 64,
                header_read_timeout: Duration::from_secs(10),
                body_read_timeout: Duration::from_secs(10),
                shutdown_grace: Duration::from_secs(5),
            },
            payment_timeout: Duration::from_secs(10),
            payout_window: Duration::from_secs(60),
            currencies: vec![SchemeCurrency {
                code: "MXN".into(),
                decimals: 2,
                account: "mxn".into(),
                fee_rate: None,
            }],
            parties,
        }
    }

    #[test]
    fn the_first_entry_serving_a_party_names_its_receiver() {
        let s = scheme(vec![
            ServedParties {
                id_type: "MSISDN",
                ids: IdMatch::Exact("5215550001".into()),
                receiver: "$wallet.example/ana".into(),
            },
            ServedParties {
                id_type: "MSISDN",
                ids: IdMatch::Prefix("52155".into()),
                receiver: "https://wallet.example/spsp/{id_value}".into(),
            },
        ]);
        assert_eq!(s.receiver_for("MSISDN", "5215550001").as_deref(), Some("$wallet.example/ana"));
        assert_eq!(
            s.receiver_for("MSISDN", "5215550002").as_deref(),
            Some("https://wallet.example/spsp/5215550002")
        );
        assert_eq!(s.receiver_for("MSISDN", "5215660001"), None);
        assert_eq!(s.receiver_for("EMAIL", "5215550001"), None);
        assert_eq!(s.currency("MXN").map(|c| &*c.account), Some("mxn"));
        assert_eq!(s.currency("USD"), None);
    }
}
