use super::*;
use crate::account::hash_token;
use crate::config::Config;
use crate::rates::{Asset, RatesRecord};
use crate::store::RatesEntry;

const FILE: &str = r#"
[node]
ilp_address = "test.node"
[rates.prices]
USD = "1"
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 2
incoming_token = "alice-token"
outgoing_url = "http://127.0.0.1:1/"
outgoing_token = "to-alice"
min_balance = -100
[[accounts]]
id = "peer"
relation = "peer"
asset_code = "USD"
asset_scale = 2
ilp_address = "g.peer"
outgoing_url = "http://127.0.0.1:2/"
outgoing_token = "to-peer"
[[routes]]
prefix = "g.other"
account = "peer"
"#;

fn file() -> Config {
    Config::from_toml(FILE).unwrap()
}

fn read(field: &str, value: &str) -> Entry {
    Entry::Read { field: field.into(), value: value.into() }
}

/// The snapshot Redis would hold after seeding `config`, plus `extra` account entries.
fn snapshot(config: &Config, extra: &[Entry]) -> ConfigSnapshot {
    let mut accounts: Vec<Entry> = config
        .accounts
        .iter()
        .map(|a| read(&a.id, &serde_json::to_string(&a.to_record()).unwrap()))
        .collect();
    accounts.extend_from_slice(extra);
    let routes = config.static_routes.iter().map(|(p, a)| read(p, a)).collect();
    ConfigSnapshot { version: Some(1), accounts, routes, rates: None }
}

fn built(snapshot: &ConfigSnapshot, cached: &Accounts) -> Tables {
    let config = file();
    build(snapshot, &config.node_address, &config.rates, cached)
}

#[test]
fn the_file_read_back_gives_the_file_s_tables() {
    let config = file();
    let tables = built(&snapshot(&config, &[]), &Accounts::default());
    assert!(tables.problems.is_empty(), "{:?}", tables.problems);
    let alice = tables.accounts.get("alice").unwrap();
    assert_eq!(alice.ilp_address.as_ref().unwrap().as_str(), "test.node.alice");
    assert_eq!(alice.min_balance, Some(-100));
    assert!(tables.accounts.authenticate(b"alice-token").is_some());
    assert_eq!(tables.routes.lookup("g.other.x").map(|a| &**a), Some("peer"));
    assert_eq!(tables.routes.lookup("g.peer.x").map(|a| &**a), Some("peer"));
    assert_eq!(tables.routes.lookup("test.node.alice.x").map(|a| &**a), Some("alice"));
}

#[test]
fn invalid_json_is_skipped_and_reported() {
    let config = file();
    let tables = built(&snapshot(&config, &[read("bob", "{not json")]), &Accounts::default());
    assert!(tables.accounts.get("bob").is_none());
    assert!(tables.accounts.get("alice").is_some(), "the others are served");
    assert_eq!(tables.problems.len(), 1);
    assert_eq!(tables.problems[0].path, "redis accounts[\"bob\"]");
}

#[test]
fn a_bad_entry_never_replaces_the_cached_account() {
    let config = file();
    let cached = built(&snapshot(&config, &[]), &Accounts::default()).accounts;
    let mut broken = snapshot(&config, &[]);
    // alice's record now breaks a rule (scale 99) and, in another run, is not JSON at all.
    let bad_scale =
        serde_json::to_string(&AccountRecord { asset_scale: 99, ..config.accounts[0].to_record() }).unwrap();
    for bad in [bad_scale.as_str(), "]["] {
        broken.accounts[0] = read("alice", bad);
        let tables = built(&broken, &cached);
        let alice = tables.accounts.get("alice").expect("kept");
        assert_eq!(alice.asset_scale, 2);
        assert_eq!(tables.problems.len(), 1, "{:?}", tables.problems);
        assert!(tables.problems[0].message.contains("kept"), "{:?}", tables.problems);
    }
}

#[test]
fn a_record_under_another_id_is_refused() {
    let config = file();
    let json = serde_json::to_string(&config.accounts[0].to_record()).unwrap();
    let tables = built(&snapshot(&config, &[read("mallory", &json)]), &Accounts::default());
    assert!(tables.accounts.get("mallory").is_none());
    assert!(tables.problems[0].message.contains("alice"), "{:?}", tables.problems);
}

#[test]
fn rules_across_accounts_still_hold() {
    let config = file();
    // Same incoming token as alice: refused (the first in id order keeps it).
    let twin = AccountRecord {
        id: "twin".into(),
        incoming_token_sha256: Some(hex::encode(hash_token(b"alice-token"))),
        ..config.accounts[0].to_record()
    };
    // An asset without a price, while accounts use several assets.
    let mxn = AccountRecord {
        id: "mxn".into(),
        asset_code: "MXN".into(),
        incoming_token_sha256: None,
        ..config.accounts[0].to_record()
    };
    let extra = [
        read("twin", &serde_json::to_string(&twin).unwrap()),
        read("mxn", &serde_json::to_string(&mxn).unwrap()),
    ];
    let tables = built(&snapshot(&config, &extra), &Accounts::default());
    assert!(tables.accounts.get("twin").is_none());
    assert!(tables.accounts.get("mxn").is_none());
    assert_eq!(tables.accounts.authenticate(b"alice-token").map(|a| &*a.id), Some("alice"));
    assert_eq!(tables.problems.len(), 2, "{:?}", tables.problems);
}

#[test]
fn bad_routes_are_skipped() {
    let config = file();
    let mut s = snapshot(&config, &[]);
    s.routes.push(read("g.nobody", "ghost"));
    s.routes.push(read("not an address", "peer"));
    s.routes.push(read("g.peer", "alice"));
    s.routes.push(Entry::Unreadable);
    let tables = built(&s, &Accounts::default());
    assert_eq!(tables.routes.lookup("g.nobody.x"), None);
    assert_eq!(tables.routes.lookup("g.peer.x").map(|a| &**a), Some("peer"), "an account's own prefix stays");
    assert_eq!(tables.routes.lookup("g.other.x").map(|a| &**a), Some("peer"));
    assert_eq!(tables.problems.len(), 4, "{:?}", tables.problems);
}

#[test]
fn json_errors_never_quote_values() {
    let e = serde_json::from_str::<AccountRecord>(
        r#"{"id": "a", "relation": "child", "asset_code": "USD", "asset_scale": "hunter2"}"#,
    )
    .unwrap_err();
    let text = json_error(&e);
    assert!(!text.contains("hunter2"), "{text}");
    let e = serde_json::from_str::<AccountRecord>(r#"{"id": "a", "incoming_token": "hunter2"}"#).unwrap_err();
    let text = json_error(&e);
    assert!(text.contains("unknown field `incoming_token`") && !text.contains("hunter2"), "{text}");
}

/// Rates with a USD price and, when given, an MXN price.
fn rates_json(mxn: Option<&str>) -> String {
    let mut record = RatesRecord { spread: None, prices: [("USD".into(), "1".into())].into() };
    if let Some(price) = mxn {
        record.prices.insert("MXN".into(), price.into());
    }
    serde_json::to_string(&record).unwrap()
}

/// 1 USD (scale 2) in MXN cents at `rates`.
fn one_dollar_in_pesos(rates: &Rates) -> Result<u64, crate::rates::ConvertError> {
    rates.convert(100, Asset { code: "USD", scale: 2 }, Asset { code: "MXN", scale: 2 })
}

/// The file's accounts plus maria, an MXN account, with rates pricing both assets.
fn with_pesos(config: &Config, rates: Option<&str>) -> ConfigSnapshot {
    let maria = AccountRecord {
        id: "maria".into(),
        asset_code: "MXN".into(),
        incoming_token_sha256: None,
        ..config.accounts[0].to_record()
    };
    let mut s = snapshot(config, &[read("maria", &serde_json::to_string(&maria).unwrap())]);
    s.rates = rates.map(|json| RatesEntry::Read(json.into()));
    s
}

#[test]
fn rates_missing_in_redis_keep_the_ones_served() {
    let config = file();
    let tables = built(&snapshot(&config, &[]), &Accounts::default());
    assert!(tables.problems.is_empty(), "{:?}", tables.problems);
    assert_eq!(tables.rates.to_record(), config.rates.to_record());
}

#[test]
fn valid_rates_in_redis_replace_the_ones_served() {
    let config = file();
    let tables = built(&with_pesos(&config, Some(&rates_json(Some("0.05")))), &Accounts::default());
    assert!(tables.problems.is_empty(), "{:?}", tables.problems);
    assert_eq!(one_dollar_in_pesos(&tables.rates), Ok(2000));
    assert!(tables.accounts.get("maria").is_some(), "priced, so served");
}

#[test]
fn invalid_or_unreadable_rates_never_replace_the_ones_served() {
    let config = file();
    let served = built(&with_pesos(&config, Some(&rates_json(Some("0.05")))), &Accounts::default());
    let zero_price = rates_json(Some("0"));
    let whole_spread = r#"{"spread": "1", "prices": {"USD": "1", "MXN": "0.04"}}"#;
    let unknown_field = r#"{"prices": {"USD": "1", "MXN": "0.04"}, "fee": "2"}"#;
    for bad in [Some("{not json"), Some(&*zero_price), Some(whole_spread), Some(unknown_field), None] {
        let mut s = with_pesos(&config, None);
        s.rates = Some(bad.map_or(RatesEntry::Unreadable, |json| RatesEntry::Read(json.into())));
        let tables = build(&s, &config.node_address, &served.rates, &served.accounts);
        assert_eq!(one_dollar_in_pesos(&tables.rates), Ok(2000), "{bad:?}");
        assert!(tables.accounts.get("maria").is_some(), "{bad:?}: still priced by the rates kept");
        assert_eq!(tables.problems.len(), 1, "{bad:?}: {:?}", tables.problems);
        assert_eq!(tables.problems[0].path, "redis rates");
        assert!(tables.problems[0].message.contains("kept"), "{:?}", tables.problems);
    }
}

#[test]
fn an_account_whose_price_disappears_is_dropped_and_the_rates_still_apply() {
    let config = file();
    let served = built(&with_pesos(&config, Some(&rates_json(Some("0.05")))), &Accounts::default());
    assert!(served.accounts.get("maria").is_some());
    // The rates are valid alone, so they replace the served ones although maria uses MXN: the
    // account goes, not the rates (and not the cached maria either).
    let s = with_pesos(&config, Some(&rates_json(None)));
    let tables = build(&s, &config.node_address, &served.rates, &served.accounts);
    assert!(!tables.rates.has_price("MXN"));
    assert!(tables.accounts.get("maria").is_none());
    assert!(tables.accounts.get("alice").is_some());
    assert_eq!(tables.problems.len(), 1, "{:?}", tables.problems);
    assert!(tables.problems[0].message.contains("no price for MXN"), "{:?}", tables.problems);
    assert_eq!(tables.routes.lookup("test.node.maria.x"), None, "no route to it either");
}
