//! `[mojaloop]`: the node as a DFSP of a Mojaloop scheme. Read with the same [`Validator`] as the
//! rest of the file; the currencies' accounts are checked against the file's accounts.

use super::defaults;
use crate::account::{Account, Relation};
use crate::http::listener::ApiLimits;
use crate::mojaloop::amount::FSPIOP_DECIMALS_MAX;
use crate::mojaloop::health::HealthRules;
use crate::mojaloop::outbound::OutboundLimits;
use crate::mojaloop::party::{fsp_id_ok, id_value_ok, Party, ID_TYPES};
use crate::mojaloop::scheme::{IdMatch, Scheme, SchemeCurrency, ServedParties, ID_VALUE_PLACEHOLDER};
use crate::rates::Decimal;
use crate::rules::Validator;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

// A Mojaloop -> ILP transfer's payment is held by its instance's lease. An instance killed
// mid-transfer cannot answer the Connector any more, and the scheme may abort the transfer; no
// instance (the restarted one included: it is a new owner) may take the payment over and
// deliver it after that. Its deadline, at most the ceiling, passes before its lease expires, so a
// resumed payment only ends, never sends.
const _: () = assert!(
    defaults::MOJALOOP_PAYMENT_TIMEOUT_MS_CEILING < crate::payments::outgoing::LEASE.as_millis() as u64,
    "a transfer's payment must reach its deadline before its lease can be taken over"
);

/// `[mojaloop]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMojaloop {
    dfsp_id: String,
    outbound_url: String,
    party: RawParty,
    outbound_timeout_ms: Option<u64>,
    outbound_response_bytes_max: Option<usize>,
    health_interval_ms: Option<u64>,
    health_timeout_ms: Option<u64>,
    health_down_after_failures: Option<u32>,
    backend_listen: Option<String>,
    backend_connections_max: Option<usize>,
    backend_header_read_timeout_ms: Option<u64>,
    backend_body_bytes_max: Option<usize>,
    backend_shutdown_grace_ms: Option<u64>,
    payment_timeout_ms: Option<u64>,
    payout_window_ms: Option<u64>,
    #[serde(default)]
    currencies: Vec<RawCurrency>,
    #[serde(default)]
    parties: Vec<RawServedParties>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParty {
    id_type: String,
    id_value: String,
    fsp_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCurrency {
    code: String,
    decimals: u8,
    account: String,
    fee_rate: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServedParties {
    id_type: String,
    id_value: Option<String>,
    id_value_prefix: Option<String>,
    receiver: String,
}

impl Validator {
    pub(super) fn mojaloop(&mut self, raw: RawMojaloop, accounts: &[Account]) -> Option<Scheme> {
        let before = self.problems.len();
        if !fsp_id_ok(&raw.dfsp_id) {
            self.problem("mojaloop.dfsp_id", "must be 1 to 32 characters of letters, digits, '-' and '_'");
        }
        let outbound_url = self.outbound_url(&raw.outbound_url);
        let party = self.check(
            "mojaloop.party",
            Party::new(&raw.party.id_type, &raw.party.id_value, raw.party.fsp_id.as_deref()),
        );
        let outbound = OutboundLimits {
            timeout: self.positive_ms(
                "mojaloop.outbound_timeout_ms",
                raw.outbound_timeout_ms,
                defaults::MOJALOOP_OUTBOUND_TIMEOUT_MS,
            ),
            response_bytes_max: raw
                .outbound_response_bytes_max
                .unwrap_or(defaults::MOJALOOP_OUTBOUND_RESPONSE_BYTES_MAX),
        };
        self.bytes_in_bounds("mojaloop.outbound_response_bytes_max", outbound.response_bytes_max);
        let health = self.mojaloop_health(&raw);
        let listen = raw.backend_listen.as_deref().unwrap_or(defaults::MOJALOOP_BACKEND_LISTEN);
        let backend_listen = self.check("mojaloop.backend_listen", listen.parse::<SocketAddr>());
        let backend = ApiLimits {
            body_bytes_max: raw.backend_body_bytes_max.unwrap_or(defaults::MOJALOOP_BACKEND_BODY_BYTES_MAX),
            connections_max: self.connections_max(
                "mojaloop.backend_connections_max",
                raw.backend_connections_max,
                defaults::MOJALOOP_BACKEND_CONNECTIONS_MAX,
            ),
            header_read_timeout: self.positive_ms(
                "mojaloop.backend_header_read_timeout_ms",
                raw.backend_header_read_timeout_ms,
                defaults::MOJALOOP_BACKEND_HEADER_READ_TIMEOUT_MS,
            ),
            body_read_timeout: Duration::from_millis(defaults::MOJALOOP_BACKEND_BODY_READ_TIMEOUT_MS),
            shutdown_grace: Duration::from_millis(
                raw.backend_shutdown_grace_ms.unwrap_or(defaults::MOJALOOP_BACKEND_SHUTDOWN_GRACE_MS),
            ),
        };
        self.bytes_in_bounds("mojaloop.backend_body_bytes_max", backend.body_bytes_max);
        let payment_timeout = self.positive_ms(
            "mojaloop.payment_timeout_ms",
            raw.payment_timeout_ms,
            defaults::MOJALOOP_PAYMENT_TIMEOUT_MS,
        );
        if payment_timeout > Duration::from_millis(defaults::MOJALOOP_PAYMENT_TIMEOUT_MS_CEILING) {
            self.problem(
                "mojaloop.payment_timeout_ms",
                format!(
                    "must be at most {}: the payer's Connector gives up after 30 s, and a payment that succeeds later is paid on the ILP side only",
                    defaults::MOJALOOP_PAYMENT_TIMEOUT_MS_CEILING
                ),
            );
        }
        let payout_window = self.positive_ms(
            "mojaloop.payout_window_ms",
            raw.payout_window_ms,
            defaults::MOJALOOP_PAYOUT_WINDOW_MS,
        );
        if payout_window > Duration::from_secs(defaults::INCOMING_PAYMENT_EXPIRY_S_MAX) {
            self.problem(
                "mojaloop.payout_window_ms",
                format!(
                    "must be at most {} s, the longest an incoming payment lives",
                    defaults::INCOMING_PAYMENT_EXPIRY_S_MAX
                ),
            );
        }
        let currencies = self.scheme_currencies(raw.currencies, accounts);
        let parties = raw.parties.into_iter().enumerate().filter_map(|(i, p)| self.served(i, p)).collect();
        match (self.problems.len() == before, outbound_url, party, backend_listen) {
            (true, Some(outbound_url), Some(party), Some(backend_listen)) => Some(Scheme {
                dfsp_id: raw.dfsp_id,
                party,
                outbound_url,
                outbound,
                health,
                backend_listen,
                backend,
                payment_timeout,
                payout_window,
                currencies,
                parties,
            }),
            _ => None,
        }
    }

    /// Accounts with `mojaloop_settlement` need a `[mojaloop]` section that can carry their
    /// settlements (a section given but invalid is reported on its own).
    pub(super) fn mojaloop_settlements(
        &mut self,
        accounts: &[Account],
        given: bool,
        scheme: Option<&Scheme>,
    ) {
        for (i, account) in accounts.iter().enumerate().filter(|(_, a)| a.mojaloop_settlement.is_some()) {
            match scheme {
                Some(scheme) => {
                    if let Some((key, why)) = scheme.settlement_problem(account) {
                        self.problem(format!("accounts[{i}].{key}"), why);
                    }
                }
                None if !given => self.problem(
                    format!("accounts[{i}].mojaloop_settlement"),
                    "needs a [mojaloop] section: the node settles through its Mojaloop Connector",
                ),
                None => {}
            }
        }
    }

    /// The Connector's health probe: positive times, the timeout below the interval (a probe ends
    /// before the next is due), and bounds on the interval and the failures before down, so that
    /// a typo cannot leave a wedged Connector unnoticed.
    fn mojaloop_health(&mut self, raw: &RawMojaloop) -> HealthRules {
        let interval = self.positive_ms(
            "mojaloop.health_interval_ms",
            raw.health_interval_ms,
            defaults::MOJALOOP_HEALTH_INTERVAL_MS,
        );
        if interval > Duration::from_millis(defaults::MOJALOOP_HEALTH_INTERVAL_MS_CEILING) {
            self.problem(
                "mojaloop.health_interval_ms",
                format!(
                    "must be at most {}: a wedged Connector would go unnoticed longer",
                    defaults::MOJALOOP_HEALTH_INTERVAL_MS_CEILING
                ),
            );
        }
        let timeout = self.positive_ms(
            "mojaloop.health_timeout_ms",
            raw.health_timeout_ms,
            defaults::MOJALOOP_HEALTH_TIMEOUT_MS,
        );
        // Against a valid interval only: a zero interval is reported once, at its own key.
        if !interval.is_zero() && timeout >= interval {
            self.problem(
                "mojaloop.health_timeout_ms",
                format!(
                    "must be below health_interval_ms ({} ms): a probe ends before the next is due",
                    interval.as_millis()
                ),
            );
        }
        let down_after_failures = self.positive(
            "mojaloop.health_down_after_failures",
            raw.health_down_after_failures,
            defaults::MOJALOOP_HEALTH_DOWN_AFTER_FAILURES,
        );
        if down_after_failures > defaults::MOJALOOP_HEALTH_DOWN_AFTER_FAILURES_MAX {
            self.problem(
                "mojaloop.health_down_after_failures",
                format!("must be at most {}", defaults::MOJALOOP_HEALTH_DOWN_AFTER_FAILURES_MAX),
            );
        }
        HealthRules { interval, timeout, down_after_failures }
    }

    /// An absolute http(s) URL with a host and no query, kept without a trailing `/`.
    fn outbound_url(&mut self, url: &str) -> Option<String> {
        let ok = url.parse::<hyper::Uri>().ok().is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() && u.query().is_none()
        });
        if !ok || url.contains('#') {
            self.problem(
                "mojaloop.outbound_url",
                "must be an absolute http:// or https:// URL without a query (the Connector's outbound API)",
            );
            return None;
        }
        Some(url.trim_end_matches('/').to_string())
    }

    /// Each currency once, at most FSPIOP's decimals, held by a local account of that currency.
    fn scheme_currencies(&mut self, raw: Vec<RawCurrency>, accounts: &[Account]) -> Vec<SchemeCurrency> {
        if raw.is_empty() {
            self.problem(
                "mojaloop.currencies",
                "name at least one currency the node serves, with the local account that holds it",
            );
        }
        let mut out: Vec<SchemeCurrency> = Vec::new();
        for (i, c) in raw.into_iter().enumerate() {
            let at = |key: &str| format!("mojaloop.currencies[{i}].{key}");
            if c.code.len() != 3 || !c.code.bytes().all(|b| b.is_ascii_uppercase()) {
                self.problem(at("code"), "must be an ISO 4217 code (three capital letters)");
            } else if out.iter().any(|o| o.code == c.code) {
                self.problem(at("code"), format!("{} is listed twice", c.code));
            }
            if c.decimals > FSPIOP_DECIMALS_MAX {
                self.problem(
                    at("decimals"),
                    format!("must be at most {FSPIOP_DECIMALS_MAX} (FSPIOP amounts carry no more)"),
                );
            }
            let fee_rate = c.fee_rate.as_deref().and_then(|rate| {
                let parsed = Decimal::parse(rate).ok().filter(Decimal::is_below_one);
                if parsed.is_none() {
                    self.problem(at("fee_rate"), "must be a decimal below 1, like \"0.005\" (0.5 %)");
                }
                parsed
            });
            match accounts.iter().find(|a| *a.id == *c.account) {
                None => self.problem(at("account"), format!("no account {:?} in [[accounts]]", c.account)),
                Some(a) if a.relation != Relation::Local => self.problem(
                    at("account"),
                    format!(
                        "{:?} must be a local account (relation = \"local\"): it holds the node's own {}",
                        c.account, c.code
                    ),
                ),
                Some(a) if *a.asset_code != *c.code => self.problem(
                    at("account"),
                    format!("{:?} holds {}, not {}", c.account, a.asset_code, c.code),
                ),
                Some(a) => out.push(SchemeCurrency {
                    code: c.code,
                    decimals: c.decimals,
                    account: a.id.clone(),
                    fee_rate,
                }),
            }
        }
        out
    }

    /// One `[[mojaloop.parties]]` entry: a type, one id or one prefix, and a receiver that is a
    /// payment pointer or SPSP URL once the id is put in.
    fn served(&mut self, i: usize, raw: RawServedParties) -> Option<ServedParties> {
        let at = |key: &str| format!("mojaloop.parties[{i}].{key}");
        let id_type = ID_TYPES.iter().find(|t| **t == raw.id_type);
        if id_type.is_none() {
            self.problem(at("id_type"), format!("must be one of {}", ID_TYPES.join(", ")));
        }
        let ids = match (raw.id_value, raw.id_value_prefix) {
            (Some(id), None) if id_value_ok(&id) => Some(IdMatch::Exact(id)),
            (None, Some(prefix)) if id_value_ok(&prefix) => Some(IdMatch::Prefix(prefix)),
            (Some(_), None) => {
                self.problem(
                    at("id_value"),
                    "must be 1 to 128 characters of letters, digits, '@', '.', '+', '-' and '_'",
                );
                None
            }
            (None, Some(_)) => {
                self.problem(
                    at("id_value_prefix"),
                    "must be 1 to 128 characters of letters, digits, '@', '.', '+', '-' and '_'",
                );
                None
            }
            _ => {
                self.problem(at("id_value"), "name exactly one of id_value and id_value_prefix");
                None
            }
        };
        let sample = raw.receiver.replace(ID_VALUE_PLACEHOLDER, "1");
        if let Err(e) = crate::spsp::query_url(&sample) {
            self.problem(at("receiver"), format!("must be a payment pointer or an SPSP URL (with {ID_VALUE_PLACEHOLDER} where the id goes): {e}"));
            return None;
        }
        Some(ServedParties { id_type: id_type?, ids: ids?, receiver: raw.receiver })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = r#"
[node]
ilp_address = "test.node"

[[accounts]]
id = "mxn"
relation = "local"
asset_code = "MXN"
asset_scale = 6

[[accounts]]
id = "peer"
relation = "peer"
asset_code = "MXN"
asset_scale = 2
incoming_token = "t"
outgoing_url = "http://127.0.0.1:1/"
outgoing_token = "o"
"#;

    const SECTION: &str = r#"
[mojaloop]
dfsp_id = "thitsax"
outbound_url = "http://127.0.0.1:4001/"
party = { id_type = "BUSINESS", id_value = "thitsax" }

[[mojaloop.currencies]]
code = "MXN"
decimals = 2
account = "mxn"

[[mojaloop.parties]]
id_type = "MSISDN"
id_value_prefix = "52155"
receiver = "https://wallet.example/spsp/{id_value}"
"#;

    fn problems(text: &str) -> Vec<(String, String)> {
        Config::from_toml(text).unwrap_err().0.into_iter().map(|p| (p.path, p.message)).collect()
    }

    /// The peer account of BASE settling through the scheme.
    fn settling(peer: &str, own: &str) -> String {
        format!("mojaloop_settlement = {{ peer_party = {peer}, own_party = {own} }}\n")
    }

    const PEER_PARTY: &str = r#"{ id_type = "ACCOUNT_ID", id_value = "for-thitsax", fsp_id = "peerfsp" }"#;
    const OWN_PARTY: &str = r#"{ id_type = "ACCOUNT_ID", id_value = "for-peer" }"#;

    #[test]
    fn an_account_settles_through_the_scheme_with_a_party_of_its_own() {
        let text = format!("{BASE}{}{SECTION}", settling(PEER_PARTY, OWN_PARTY));
        let config = Config::from_toml(&text).unwrap();
        let peer = config.accounts.iter().find(|a| &*a.id == "peer").unwrap();
        let settlement = peer.mojaloop_settlement.as_deref().expect("mojaloop_settlement read");
        assert_eq!(settlement.peer.to_string(), "ACCOUNT_ID/for-thitsax@peerfsp");
        assert_eq!(settlement.own.to_string(), "ACCOUNT_ID/for-peer");
        assert!(peer.settles());
        // The record round-trips (the admin API and Redis keep it).
        let record = peer.to_record();
        let back = crate::rules::account_from_record(&config.node_address, record.clone()).unwrap();
        assert_eq!(back.mojaloop_settlement, peer.mojaloop_settlement);
        assert_eq!(back.to_record(), record);
    }

    #[test]
    fn a_settling_account_needs_the_scheme_and_parties_of_its_own() {
        let given = |peer: &str, own: &str, section: &str| {
            problems(&format!("{BASE}{}{section}", settling(peer, own)))
        };
        let key = |found: Vec<(String, String)>| found.into_iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(
            key(given(PEER_PARTY, OWN_PARTY, "")),
            ["accounts[1].mojaloop_settlement"],
            "no [mojaloop]"
        );
        let bad_type = r#"{ id_type = "PHONE", id_value = "x" }"#;
        assert_eq!(key(given(bad_type, OWN_PARTY, SECTION)), ["accounts[1].mojaloop_settlement.peer_party"]);
        assert_eq!(
            key(given(PEER_PARTY, PEER_PARTY, SECTION)),
            ["accounts[1].mojaloop_settlement.own_party"]
        );
        let served = r#"{ id_type = "MSISDN", id_value = "5215550009" }"#;
        assert_eq!(key(given(PEER_PARTY, served, SECTION)), ["accounts[1].mojaloop_settlement.own_party"]);
        let node_party = r#"{ id_type = "BUSINESS", id_value = "thitsax" }"#;
        assert_eq!(
            key(given(PEER_PARTY, node_party, SECTION)),
            ["accounts[1].mojaloop_settlement.own_party"]
        );
        // A peer in USD, which the scheme does not carry.
        let (head, tail) = BASE.rsplit_once("asset_code = \"MXN\"").unwrap();
        let usd_peer = format!("{head}asset_code = \"USD\"{tail}{}", settling(PEER_PARTY, OWN_PARTY));
        let rates = "\n[rates]\nprices = { MXN = \"0.05\", USD = \"1\" }\n";
        let found = problems(&format!("{usd_peer}{SECTION}{rates}"));
        assert!(
            found.iter().any(|p| p.0 == "accounts[1].asset_code" && p.1.contains("cannot settle")),
            "{found:?}"
        );
        let engine =
            format!("settlement_engine_url = \"http://127.0.0.1:3000\"\n{}", settling(PEER_PARTY, OWN_PARTY));
        assert_eq!(key(problems(&format!("{BASE}{engine}{SECTION}"))), ["accounts[1].mojaloop_settlement"]);
        // Two accounts with one own party: a transfer to it would name both.
        let second = format!(
            "\n[[accounts]]\nid = \"peer2\"\nrelation = \"peer\"\nasset_code = \"MXN\"\nasset_scale = 2\n{}",
            settling(r#"{ id_type = "ACCOUNT_ID", id_value = "other" }"#, OWN_PARTY)
        );
        let found = problems(&format!("{BASE}{}{second}{SECTION}", settling(PEER_PARTY, OWN_PARTY)));
        assert_eq!(key(found), ["accounts[2].mojaloop_settlement.own_party"]);
    }

    #[test]
    fn a_scheme_section_is_read_with_its_defaults() {
        let config = Config::from_toml(&format!("{BASE}{SECTION}")).unwrap();
        let scheme = config.mojaloop.expect("[mojaloop] read");
        assert_eq!(scheme.dfsp_id, "thitsax");
        assert_eq!(scheme.outbound_url, "http://127.0.0.1:4001");
        assert_eq!(scheme.party.to_string(), "BUSINESS/thitsax");
        assert_eq!(scheme.backend_listen.to_string(), crate::limits::MOJALOOP_BACKEND_LISTEN);
        assert_eq!(scheme.outbound.timeout.as_millis(), 40_000);
        assert_eq!(scheme.payment_timeout.as_millis(), 10_000);
        let health = &scheme.health;
        assert_eq!((health.interval.as_millis(), health.timeout.as_millis()), (5_000, 3_000));
        assert_eq!(health.down_after_failures, 3);
        assert_eq!(scheme.currency("MXN").map(|c| (c.decimals, &*c.account)), Some((2, "mxn")));
        assert_eq!(
            scheme.receiver_for("MSISDN", "5215550001").as_deref(),
            Some("https://wallet.example/spsp/5215550001")
        );
        assert!(Config::from_toml(BASE).unwrap().mojaloop.is_none(), "no section, no scheme");
        let with_fee = SECTION.replace("decimals = 2", "decimals = 2\nfee_rate = \"0.005\"");
        let scheme = Config::from_toml(&format!("{BASE}{with_fee}")).unwrap().mojaloop.unwrap();
        assert_eq!(scheme.currency("MXN").unwrap().fee_rate.map(|r| r.to_string()), Some("0.005".into()));
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let bad = SECTION
            .replace("dfsp_id = \"thitsax\"", "dfsp_id = \"thitsax.mx\"\npayment_timeout_ms = 30000")
            .replace("http://127.0.0.1:4001/", "ftp://x")
            .replace("id_type = \"BUSINESS\"", "id_type = \"COMPANY\"")
            .replace("decimals = 2", "decimals = 5")
            .replace("id_value_prefix = \"52155\"", "id_value_prefix = \"52 155\"")
            .replace("https://wallet.example/spsp/{id_value}", "wallet.example/{id_value}");
        let found = problems(&format!("{BASE}{bad}"));
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        for path in [
            "mojaloop.dfsp_id",
            "mojaloop.outbound_url",
            "mojaloop.party",
            "mojaloop.payment_timeout_ms",
            "mojaloop.currencies[0].decimals",
            "mojaloop.parties[0].id_value_prefix",
            "mojaloop.parties[0].receiver",
        ] {
            assert!(paths.contains(&path), "{path} not reported: {found:?}");
        }
    }

    #[test]
    fn the_health_probe_s_keys_are_checked_against_each_other_and_their_bounds() {
        let with = |keys: &str| {
            format!(
                "{BASE}{}",
                SECTION.replace("dfsp_id = \"thitsax\"", &format!("dfsp_id = \"thitsax\"\n{keys}"))
            )
        };
        let scheme = Config::from_toml(&with(
            "health_interval_ms = 250\nhealth_timeout_ms = 200\nhealth_down_after_failures = 1",
        ))
        .unwrap()
        .mojaloop
        .unwrap();
        assert_eq!(scheme.health.interval.as_millis(), 250);
        assert_eq!(scheme.health.timeout.as_millis(), 200);
        assert_eq!(scheme.health.down_after_failures, 1);
        let cases = [
            ("health_interval_ms = 0", "mojaloop.health_interval_ms", "greater than 0"),
            ("health_interval_ms = 300001", "mojaloop.health_interval_ms", "at most 300000"),
            ("health_timeout_ms = 0", "mojaloop.health_timeout_ms", "greater than 0"),
            ("health_timeout_ms = 5000", "mojaloop.health_timeout_ms", "below health_interval_ms (5000 ms)"),
            ("health_interval_ms = 1000\nhealth_timeout_ms = 1500", "mojaloop.health_timeout_ms", "below"),
            ("health_down_after_failures = 0", "mojaloop.health_down_after_failures", "greater than 0"),
            ("health_down_after_failures = 101", "mojaloop.health_down_after_failures", "at most 100"),
        ];
        for (keys, path, message) in cases {
            let found = problems(&with(keys));
            assert!(found.iter().any(|(p, m)| p == path && m.contains(message)), "{keys}: {found:?}");
        }
    }

    #[test]
    fn a_currency_is_held_by_a_local_account_of_that_currency() {
        let cases = [
            ("account = \"mxn\"", "account = \"nobody\"", "no account"),
            ("account = \"mxn\"", "account = \"peer\"", "must be a local account"),
            ("code = \"MXN\"", "code = \"USD\"", "holds MXN, not USD"),
            ("code = \"MXN\"", "code = \"mxn\"", "ISO 4217"),
            ("decimals = 2", "decimals = 2\nfee_rate = \"1.5\"", "below 1"),
            ("decimals = 2", "decimals = 2\nfee_rate = \"1%\"", "below 1"),
        ];
        for (from, to, message) in cases {
            let found = problems(&format!("{BASE}{}", SECTION.replace(from, to)));
            assert!(
                found.iter().any(|(p, m)| p.starts_with("mojaloop.currencies[0]") && m.contains(message)),
                "{to}: {found:?}"
            );
        }
        let none =
            SECTION.replace("[[mojaloop.currencies]]\ncode = \"MXN\"\ndecimals = 2\naccount = \"mxn\"\n", "");
        assert!(problems(&format!("{BASE}{none}")).iter().any(|(p, _)| p == "mojaloop.currencies"));
        let twice =
            format!("{SECTION}\n[[mojaloop.currencies]]\ncode = \"MXN\"\ndecimals = 2\naccount = \"mxn\"\n");
        assert!(problems(&format!("{BASE}{twice}"))
            .iter()
            .any(|(p, m)| p == "mojaloop.currencies[1].code" && m.contains("twice")));
    }

    #[test]
    fn a_served_entry_names_exactly_one_id_or_prefix() {
        let both =
            SECTION.replace("id_value_prefix = \"52155\"", "id_value_prefix = \"52155\"\nid_value = \"1\"");
        assert!(problems(&format!("{BASE}{both}")).iter().any(|(p, _)| p == "mojaloop.parties[0].id_value"));
        let neither = SECTION.replace("id_value_prefix = \"52155\"\n", "");
        assert!(problems(&format!("{BASE}{neither}"))
            .iter()
            .any(|(p, _)| p == "mojaloop.parties[0].id_value"));
        let pointer = SECTION.replace("https://wallet.example/spsp/{id_value}", "$wallet.example/{id_value}");
        assert!(Config::from_toml(&format!("{BASE}{pointer}")).is_ok());
    }
}
