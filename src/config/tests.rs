use super::*;
use crate::account::{hash_token, AccountRecord, Relation};

const MINIMAL: &str = r#"
[node]
ilp_address = "test.node"

[[accounts]]
id = "a"
relation = "child"
asset_code = "USD"
asset_scale = 2
incoming_token = "ta"
outgoing_url = "http://127.0.0.1:1/"
outgoing_token = "secret-out"
"#;

fn problems(text: &str) -> Vec<Problem> {
    Config::from_toml(text).unwrap_err().0
}

fn paths(text: &str) -> Vec<String> {
    problems(text).into_iter().map(|p| p.path).collect()
}

#[test]
fn the_example_file_is_valid() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/connector.toml.example")).unwrap();
    let config = Config::from_toml(&text).unwrap();
    assert_eq!(config.node_address.as_str(), "test.thitsax");
    assert_eq!(config.accounts.len(), 3);
    let alice = config.accounts.iter().find(|a| &*a.id == "alice").unwrap();
    assert_eq!(alice.ilp_address.as_ref().unwrap().as_str(), "test.thitsax.alice");
    // The example's sha256 form is the hash of bob-dev-token.
    let bob = config.accounts.iter().find(|a| &*a.id == "bob").unwrap();
    assert_eq!(bob.incoming_token_hash, Some(hash_token(b"bob-dev-token")));
    assert_eq!(config.routes.lookup("test.partner-network.x").map(|a| &**a), Some("mobile-money"));
    assert_eq!(config.routes.lookup("test.mobile-money.y").map(|a| &**a), Some("mobile-money"));
}

#[test]
fn the_two_node_example_is_valid_and_routes_across() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/two-nodes/");
    let a = Config::from_file(Path::new(&format!("{dir}node-a.toml"))).unwrap();
    let b = Config::from_file(Path::new(&format!("{dir}node-b.toml"))).unwrap();
    assert_eq!(a.routes.lookup("g.thitsax-b.mm.wallet").map(|x| &**x), Some("b"));
    assert_eq!(b.routes.lookup("g.thitsax-b.mm.wallet").map(|x| &**x), Some("mm"));
    assert_eq!(b.routes.lookup("g.thitsax-a.cu").map(|x| &**x), Some("a"));
}

#[test]
fn defaults_apply() {
    let config = Config::from_toml(MINIMAL).unwrap();
    assert_eq!(config.listen.to_string(), defaults::LISTEN);
    assert_eq!(config.server.body_bytes_max, defaults::BODY_BYTES_MAX);
    assert_eq!(config.client.connections_per_peer_max, defaults::OUTGOING_CONNECTIONS_PER_PEER_MAX);
    assert_eq!(config.worker_threads, None);
    let one =
        MINIMAL.replace("ilp_address = \"test.node\"", "ilp_address = \"test.node\"\nworker_threads = 1");
    assert_eq!(Config::from_toml(&one).unwrap().worker_threads, Some(1));
    let none =
        MINIMAL.replace("ilp_address = \"test.node\"", "ilp_address = \"test.node\"\nworker_threads = 0");
    assert_eq!(paths(&none), ["node.worker_threads"]);
    let zero = MINIMAL.replace("[[accounts]]", "[http]\noutgoing_connections_per_peer_max = 0\n[[accounts]]");
    assert_eq!(paths(&zero), ["http.outgoing_connections_per_peer_max"]);
    let huge = MINIMAL.replace("[[accounts]]", "[http]\nrequests_in_flight_max = 2000000\n[[accounts]]");
    assert_eq!(paths(&huge), ["http.requests_in_flight_max"]);
    assert_eq!(config.accounts[0].max_packet_amount, u64::MAX);
    assert_eq!(config.accounts[0].min_balance, None);
}

#[test]
fn unknown_keys_are_errors_with_their_path() {
    let text = MINIMAL.replace("asset_scale = 2", "asset_scale = 2\nmax_packet = 5");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].path, "accounts[0].max_packet");
    assert!(p[0].message.contains("unknown field `max_packet`"), "{}", p[0].message);
    let p = problems(&format!("{MINIMAL}\n[extra]\nx = 1\n"));
    assert!(p[0].message.contains("unknown field `extra`"), "{:?}", p);
}

#[test]
fn type_errors_name_the_key() {
    let text = MINIMAL.replace("asset_scale = 2", "asset_scale = 300");
    assert_eq!(paths(&text), ["accounts[0].asset_scale"]);
    let text = MINIMAL.replace(r#"relation = "child""#, r#"relation = "sibling""#);
    assert_eq!(paths(&text), ["accounts[0].relation"]);
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let text = r#"
[node]
ilp_address = "nope"
log_level = "info"
[http]
listen = "localhost:x"
connections_max = 0
[rates]
spread = "1.5"
[[accounts]]
id = "a b"
relation = "peer"
asset_code = ""
asset_scale = 2
incoming_token = "t"
incoming_token_sha256 = "00"
outgoing_url = "https://example.com/"
outgoing_token = "tok"
[[routes]]
prefix = "g.x"
account = "ghost"
"#;
    let paths = paths(text);
    for expected in ["node.ilp_address", "http.listen", "http.connections_max", "rates.spread"] {
        assert!(paths.contains(&expected.to_string()), "{expected} missing from {paths:?}");
    }
}

#[test]
fn account_rules() {
    let dup = format!(
        "{MINIMAL}{}",
        MINIMAL.split("[[accounts]]").nth(1).map(|a| format!("[[accounts]]{a}")).unwrap()
    );
    let p = paths(&dup);
    assert!(p.contains(&"accounts[1].id".to_string()), "{p:?}");
    assert!(p.contains(&"accounts[1].incoming_token".to_string()), "{p:?}");

    let child_with_address = MINIMAL.replace("asset_scale = 2", "asset_scale = 2\nilp_address = \"test.x\"");
    assert_eq!(paths(&child_with_address), ["accounts[0].ilp_address"]);

    let no_token = MINIMAL.replace("outgoing_token = \"secret-out\"", "");
    assert_eq!(paths(&no_token), ["accounts[0].outgoing_token"]);

    // https is accepted (TLS to the next hop, port 443 by default); other schemes, relative
    // URLs and hosts no certificate can be checked against are not.
    let https = MINIMAL.replace("http://127.0.0.1:1/", "https://peer.example/ilp");
    let outgoing = Config::from_toml(&https).unwrap().accounts[0].outgoing.clone().unwrap();
    assert!(outgoing.origin.is_tls());
    assert_eq!(
        (&*outgoing.origin.address, &*outgoing.origin.key),
        ("peer.example:443", "https://peer.example:443")
    );
    for bad in ["ftp://127.0.0.1:1/", "/ilp", "https://peer.1/", "https:///ilp"] {
        let text = MINIMAL.replace("http://127.0.0.1:1/", bad);
        assert_eq!(paths(&text), ["accounts[0].outgoing_url"], "{bad}");
    }

    let bad_hash = MINIMAL.replace("incoming_token = \"ta\"", "incoming_token_sha256 = \"abcd\"");
    assert_eq!(paths(&bad_hash), ["accounts[0].incoming_token_sha256"]);
}

#[test]
fn secrets_never_appear_in_errors() {
    let text = MINIMAL.replace("outgoing_token = \"secret-out\"", "outgoing_token = \"secret\\nout\"");
    let err = Config::from_toml(&text).unwrap_err().to_string();
    assert!(err.contains("accounts[0].outgoing_token"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[test]
fn mixed_assets_need_prices() {
    let text = format!(
        "{MINIMAL}\n[[accounts]]\nid = \"b\"\nrelation = \"child\"\nasset_code = \"MXN\"\nasset_scale = 2\n"
    );
    let p = paths(&text);
    assert_eq!(p, ["rates.prices.MXN", "rates.prices.USD"]);
    let priced = format!("{text}\n[rates.prices]\nUSD = \"1\"\nMXN = \"0.055\"\n");
    assert!(Config::from_toml(&priced).is_ok());
}

#[test]
fn routes_must_name_accounts_and_not_repeat() {
    let text = format!("{MINIMAL}\n[[routes]]\nprefix = \"g.x\"\naccount = \"ghost\"\n[[routes]]\nprefix = \"test.node.a\"\naccount = \"a\"\n");
    assert_eq!(paths(&text), ["routes[0].account", "routes[1].prefix"]);
}

#[test]
fn store_choices() {
    let with = |store: &str| format!("{MINIMAL}\n[store]\n{store}\n");
    assert!(matches!(Config::from_toml(MINIMAL).unwrap().store, StoreConfig::Memory));
    let single = Config::from_toml(&with("kind = \"redis\"\nurl = \"redis://127.0.0.1:6390/\"")).unwrap();
    let StoreConfig::Redis(r) = single.store else { panic!("redis expected") };
    assert_eq!((r.urls.len(), r.cluster, r.prefix.as_str()), (1, false, defaults::REDIS_PREFIX));
    let cluster = with("kind = \"redis\"\ncluster_urls = [\"redis://127.0.0.1:7000/\", \"redis://127.0.0.1:7001/\"]\nprefix = \"p1\"");
    let StoreConfig::Redis(r) = Config::from_toml(&cluster).unwrap().store else { panic!("redis expected") };
    assert_eq!((r.urls.len(), r.cluster, r.prefix.as_str()), (2, true, "p1"));

    assert_eq!(paths(&with("kind = \"redis\"")), ["store.url"]);
    assert_eq!(paths(&with("kind = \"redis\"\nurl = \"http://x/\"")), ["store.url"]);
    assert_eq!(paths(&with("kind = \"redis\"\nurl = \"redis://h/\"\nprefix = \"a:b\"")), ["store.prefix"]);
    assert_eq!(paths(&with("url = \"redis://h/\"")), ["store.url"], "url without kind = redis");
    assert_eq!(paths(&with("kind = \"postgres\"")), ["store.kind"]);
}

#[test]
fn retentions_of_the_store() {
    let with = |store: &str| format!("{MINIMAL}\n[store]\nkind = \"redis\"\nurl = \"redis://h/\"\n{store}\n");
    let config = Config::from_toml(&with("")).unwrap();
    assert_eq!(config.sweep.journal_retention, Duration::from_secs(defaults::JOURNAL_RETENTION_S));
    assert_eq!(config.sweep.tombstone_retention, Duration::from_secs(defaults::SWEEP_TOMBSTONE_RETENTION_S));
    let set =
        Config::from_toml(&with("journal_retention_s = 3600\nsweep_tombstone_retention_s = 60")).unwrap();
    assert_eq!(set.sweep.journal_retention, Duration::from_secs(3600));
    assert_eq!(set.sweep.tombstone_retention, Duration::from_secs(60));
    // A credit's marker outlives every retry of it: the tombstone retention plus a margin.
    let StoreConfig::Redis(r) = set.store else { panic!("redis expected") };
    assert_eq!(r.credit_marker_ttl_s, 60 + defaults::CREDIT_MARKER_TTL_MARGIN_S);
    assert_eq!(paths(&with("journal_retention_s = 59")), ["store.journal_retention_s"]);
    assert_eq!(paths(&with("sweep_tombstone_retention_s = 0")), ["store.sweep_tombstone_retention_s"]);
}

#[test]
fn shared_config_keys_need_redis_and_default_to_the_file_winning() {
    for key in ["config_precedence = \"redis\"", "config_poll_interval_ms = 10", "config_pubsub = false"] {
        let text = MINIMAL.replace("[[accounts]]", &format!("[store]\n{key}\n[[accounts]]"));
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].path.starts_with("store.config_") && p[0].message.contains("redis"), "{p:?}");
    }
    assert!(Config::from_toml(MINIMAL).unwrap().config_sync.is_none());
    let redis = |extra: &str| {
        MINIMAL.replace(
            "[[accounts]]",
            &format!("[store]\nkind = \"redis\"\nurl = \"redis://h:1/\"\n{extra}\n[[accounts]]"),
        )
    };
    let rules = Config::from_toml(&redis("")).unwrap().config_sync.unwrap();
    assert_eq!(rules.precedence, Precedence::File);
    assert_eq!(rules.poll_interval, Duration::from_millis(defaults::CONFIG_POLL_INTERVAL_MS));
    assert!(rules.pubsub);
    let rules = Config::from_toml(&redis(
        "config_precedence = \"redis\"\nconfig_pubsub = false\nconfig_poll_interval_ms = 50",
    ))
    .unwrap()
    .config_sync
    .unwrap();
    assert_eq!(
        (rules.precedence, rules.poll_interval, rules.pubsub),
        (Precedence::Redis, Duration::from_millis(50), false)
    );
    assert_eq!(paths(&redis("config_poll_interval_ms = 0")), ["store.config_poll_interval_ms"]);
    let p = problems(&redis("config_precedence = \"both\""));
    assert!(p[0].message.contains("unknown variant"), "{p:?}");
}

#[test]
fn static_routes_are_kept_apart_from_the_whole_table() {
    let text = format!("{MINIMAL}\n[[routes]]\nprefix = \"g.x\"\naccount = \"a\"\n");
    let config = Config::from_toml(&text).unwrap();
    assert_eq!(config.static_routes, [("g.x".to_string(), AccountId::from("a"))]);
    assert_eq!(config.routes.lookup("test.node.a.y").map(|a| &**a), Some("a"));
}

#[test]
fn records_are_checked_with_the_file_s_rules() {
    let config = Config::from_toml(MINIMAL).unwrap();
    let record = config.accounts[0].to_record();
    let back = account_from_record(&config.node_address, record.clone()).unwrap();
    assert_eq!(back.to_record(), record);
    let tls = AccountRecord { outgoing_url: Some("https://x/".into()), ..record.clone() };
    assert!(account_from_record(&config.node_address, tls).unwrap().outgoing.unwrap().origin.is_tls());
    let bad = AccountRecord { outgoing_url: Some("ftp://x/".into()), ..record };
    let e = account_from_record(&config.node_address, bad).unwrap_err();
    assert_eq!(e.0[0].path, "redis accounts[\"a\"].outgoing_url");
}

#[test]
fn expiry_times_are_checked_against_each_other() {
    let with = |lines: &str| format!("{MINIMAL}\n[forwarding]\n{lines}\n");
    // 0: the outgoing Prepare expired with the incoming one; a last-moment Fulfill was lost.
    assert_eq!(paths(&with("expiry_margin_ms = 0")), ["forwarding.expiry_margin_ms"]);
    let floor = defaults::EXPIRY_MARGIN_MS_MIN;
    assert_eq!(paths(&with(&format!("expiry_margin_ms = {}", floor - 1))), ["forwarding.expiry_margin_ms"]);
    assert!(Config::from_toml(&with(&format!("expiry_margin_ms = {floor}"))).is_ok());
    assert_eq!(
        paths(&with("expiry_margin_ms = 5000\nhold_time_ms_max = 5000")),
        ["forwarding.expiry_margin_ms"]
    );
    assert_eq!(paths(&with("min_outgoing_window_ms = 0")), ["forwarding.min_outgoing_window_ms"]);
    assert_eq!(
        paths(&with("hold_time_ms_max = 2000\nmin_outgoing_window_ms = 2001")),
        ["forwarding.min_outgoing_window_ms"]
    );
    // Every problem at once.
    assert_eq!(
        paths(&with("expiry_margin_ms = 0\nmin_outgoing_window_ms = 0")),
        ["forwarding.min_outgoing_window_ms", "forwarding.expiry_margin_ms"]
    );
}

#[test]
fn settlement_bounds_that_would_raise_the_balance_are_refused_with_the_key_named() {
    let with = |lines: &str| MINIMAL.replace("asset_scale = 2", &format!("asset_scale = 2\n{lines}"));
    // A negative threshold with settle_to left at its default 0 moved money the wrong way.
    let found = problems(&with("settle_threshold = -10"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "accounts[0].settle_to");
    assert!(found[0].message.contains("default"), "{}", found[0].message);
    assert_eq!(paths(&with("settle_threshold = 5\nsettle_to = 9")), ["accounts[0].settle_to"]);
    for fine in [
        "settle_threshold = -10\nsettle_to = -20",
        "settle_threshold = 0",
        "settle_threshold = 7\nsettle_to = 7",
    ] {
        assert!(Config::from_toml(&with(fine)).is_ok(), "{fine}");
    }
    // The same rule for an account read from Redis, named by its record.
    let config = Config::from_toml(MINIMAL).unwrap();
    let record = AccountRecord { settle_threshold: Some(-10), ..config.accounts[0].to_record() };
    let e = account_from_record(&config.node_address, record.clone()).unwrap_err();
    assert_eq!(e.0[0].path, "redis accounts[\"a\"].settle_to");
    let (kept, found) = accounts_from_records(&config.node_address, &config.rates, vec![record]);
    assert!(kept.is_empty());
    assert_eq!(found[0].path, "redis accounts[\"a\"].settle_to");
}

#[test]
fn settlement_engine_urls_are_http_or_https_and_kept_without_a_trailing_slash() {
    let with = |line: &str| MINIMAL.replace("asset_scale = 2", &format!("asset_scale = 2\n{line}"));
    let config = Config::from_toml(&with("settlement_engine_url = \"http://127.0.0.1:3000/se/\"")).unwrap();
    assert_eq!(config.accounts[0].settlement_engine_url.as_deref(), Some("http://127.0.0.1:3000/se"));
    assert_eq!(
        config.accounts[0].to_record().settlement_engine_url.as_deref(),
        Some("http://127.0.0.1:3000/se")
    );
    let tls = Config::from_toml(&with("settlement_engine_url = \"https://engine.example:8443/\"")).unwrap();
    assert_eq!(tls.accounts[0].settlement_engine_url.as_deref(), Some("https://engine.example:8443"));
    for bad in
        ["ftp://x/", "127.0.0.1:3000", "http://x/?a=1", "https://x/?a=1", "https://engine.1/", "not a url"]
    {
        let text = with(&format!("settlement_engine_url = \"{bad}\""));
        assert_eq!(paths(&text), ["accounts[0].settlement_engine_url"], "{bad}");
    }
}

#[test]
fn the_settlement_section_has_defaults_and_checked_limits() {
    let config = Config::from_toml(MINIMAL).unwrap();
    assert_eq!(config.settlement.listen.to_string(), defaults::SETTLEMENT_LISTEN);
    assert!(config.settlement.listen.ip().is_loopback());
    assert_eq!(config.settlement.api.body_bytes_max, defaults::SETTLEMENT_BODY_BYTES_MAX);
    assert_eq!(config.settlement.engine.connections_max, defaults::SETTLEMENT_ENGINE_CONNECTIONS_MAX);
    assert_eq!(
        config.settlement.engine.timeout,
        Duration::from_millis(defaults::SETTLEMENT_ENGINE_TIMEOUT_MS)
    );
    let set = format!(
        "{MINIMAL}\n[settlement]\nlisten = \"127.0.0.1:9999\"\nengine_timeout_ms = 250\nengine_connections_max = 3\n"
    );
    let config = Config::from_toml(&set).unwrap();
    assert_eq!(config.settlement.listen.port(), 9999);
    assert_eq!(config.settlement.engine.timeout, Duration::from_millis(250));
    assert_eq!(config.settlement.engine.connections_max, 3);
    let bad = format!(
        "{MINIMAL}\n[settlement]\nlisten = \"nowhere\"\nbody_bytes_max = 1\nengine_timeout_ms = 0\n\
         engine_connections_max = 0\nengine_response_bytes_max = 0\nconnections_max = 0\nfoo = 1\n"
    );
    // The unknown key and every broken rule, all at once.
    let with_unknown = paths(&bad);
    assert_eq!(with_unknown[0], "settlement.foo");
    assert_eq!(with_unknown.len(), 7, "{with_unknown:?}");
    let bad = bad.replace("foo = 1\n", "");
    let mut found = paths(&bad);
    found.sort();
    assert_eq!(
        found,
        vec![
            "settlement.body_bytes_max",
            "settlement.connections_max",
            "settlement.engine_connections_max",
            "settlement.engine_response_bytes_max",
            "settlement.engine_timeout_ms",
            "settlement.listen",
        ]
    );
}

#[test]
fn the_admin_section_hashes_its_token_and_is_off_without_one() {
    let config = Config::from_toml(MINIMAL).unwrap();
    assert_eq!(config.admin.token_hash, None, "no token: no admin listener");
    assert_eq!(config.admin.listen.to_string(), defaults::ADMIN_LISTEN);
    let with_token = format!("{MINIMAL}\n[admin]\ntoken = \"op-secret\"\nlisten = \"127.0.0.1:9999\"\n");
    let config = Config::from_toml(&with_token).unwrap();
    assert_eq!(config.admin.token_hash, Some(hash_token(b"op-secret")));
    assert!(!format!("{:?}", config.admin).contains("op-secret"));
    let both = format!("{MINIMAL}\n[admin]\ntoken = \"x\"\ntoken_sha256 = \"{}\"\n", "ab".repeat(32));
    assert_eq!(paths(&both), ["admin.token_sha256"]);
    let bad = format!("{MINIMAL}\n[admin]\ntoken_sha256 = \"xyz\"\nconnections_max = 0\n");
    assert_eq!(paths(&bad), ["admin.token_sha256", "admin.connections_max"]);
}

fn admin_input(json: &str) -> Result<AccountInput, ConfigError> {
    AccountInput::from_json(json.as_bytes())
}

#[test]
fn an_admin_account_is_checked_with_the_file_rules_and_named_by_field() {
    let config = Config::from_toml(MINIMAL).unwrap();
    let node = &config.node_address;
    let bad_json = admin_input(r#"{"id":"b","relation":"child","asset_code":"USD","asset_scale":"two"}"#);
    assert_eq!(bad_json.unwrap_err().0[0].path, "account.asset_scale");
    let unknown = admin_input(r#"{"id":"b","relation":"child","asset_code":"USD","asset_scale":2,"x":1}"#);
    assert!(unknown.unwrap_err().0[0].message.contains("unknown field `x`"));
    assert!(admin_input(r#"{"id":"b"} trailing"#).is_err());

    let input = admin_input(r#"{"id":"b","relation":"child","asset_code":"USD","asset_scale":19}"#).unwrap();
    let problems = accounts_with(node, &config.rates, &config.accounts, input).unwrap_err().0;
    assert_eq!(problems[0].path, "account.asset_scale");

    // A clash with an account already there is held against the input.
    let input = admin_input(
        r#"{"id":"b","relation":"child","asset_code":"USD","asset_scale":2,"incoming_token":"ta"}"#,
    );
    let problems = accounts_with(node, &config.rates, &config.accounts, input.unwrap()).unwrap_err().0;
    assert_eq!(problems[0].path, "account.incoming_token");

    // A second asset without a price.
    let input = admin_input(r#"{"id":"b","relation":"child","asset_code":"MXN","asset_scale":2}"#);
    let problems = accounts_with(node, &config.rates, &config.accounts, input.unwrap()).unwrap_err().0;
    assert_eq!(problems[0].path, "rates.prices.MXN");

    // https URLs pass the admin API's checks as they pass the file's; other schemes do not.
    let tls = r#"{"id":"b","relation":"child","asset_code":"USD","asset_scale":2,
        "outgoing_url":"https://peer.example/ilp","outgoing_token":"t","settlement_engine_url":"https://se.example"}"#;
    let accounts = accounts_with(node, &config.rates, &config.accounts, admin_input(tls).unwrap()).unwrap();
    assert!(accounts[1].outgoing.as_ref().unwrap().origin.is_tls());
    let ftp = tls.replace("https://peer.example/ilp", "ftp://peer.example/");
    let problems =
        accounts_with(node, &config.rates, &config.accounts, admin_input(&ftp).unwrap()).unwrap_err().0;
    assert_eq!(problems[0].path, "account.outgoing_url");

    // Valid: joins the set, token hashed; replacing keeps one account per id.
    let input = admin_input(
        r#"{"id":"b","relation":"child","asset_code":"USD","asset_scale":2,"incoming_token":"tb"}"#,
    );
    let accounts = accounts_with(node, &config.rates, &config.accounts, input.unwrap()).unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[1].incoming_token_hash, Some(hash_token(b"tb")));
    let input = admin_input(r#"{"id":"a","relation":"child","asset_code":"USD","asset_scale":2}"#);
    let accounts = accounts_with(node, &config.rates, &accounts, input.unwrap()).unwrap();
    assert_eq!(accounts.iter().filter(|a| &*a.id == "a").count(), 1);
    assert_eq!(accounts.len(), 2);
}

#[test]
fn admin_rates_are_checked_against_the_assets_in_use() {
    let config = Config::from_toml(MINIMAL).unwrap();
    let record = |spread: &str, prices: &[(&str, &str)]| RatesRecord {
        spread: Some(spread.into()),
        prices: prices.iter().map(|(c, p)| (c.to_string(), p.to_string())).collect(),
    };
    let rates = rates_from_record(record("0.01", &[("USD", "1")]), &config.accounts).unwrap();
    assert_eq!(rates.to_record(), record("0.01", &[("USD", "1")]));
    let problems = rates_from_record(record("1", &[("USD", "0")]), &config.accounts).unwrap_err().0;
    let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["rates.spread", "rates.prices.USD"]);
    let mut accounts = config.accounts.clone();
    accounts.push(Account { asset_code: "MXN".into(), id: "m".into(), ..accounts[0].clone() });
    let problems = rates_from_record(record("0", &[("USD", "1")]), &accounts).unwrap_err().0;
    assert_eq!(problems[0].path, "rates.prices.MXN");
}

#[test]
fn the_settlement_listener_is_bound_always_only_when_named() {
    assert!(!Config::from_toml(MINIMAL).unwrap().settlement.listen_always);
    let named = format!("{MINIMAL}\n[settlement]\nlisten = \"127.0.0.1:7799\"\n");
    assert!(Config::from_toml(&named).unwrap().settlement.listen_always);
}

#[test]
fn every_unknown_key_and_type_error_is_reported_at_once_with_its_path() {
    let text = MINIMAL
        .replace("[node]", "[node]\nilp_adress = \"test.typo\"")
        .replace("asset_scale = 2", "asset_scale = 300\nmax_packet = 5")
        .replace("outgoing_token = \"secret-out\"", "outgoing_token = \"secret-out\"\nmin_balance = \"-5\"")
        + "\n[http]\nlisten = 7770\nconections_max = 5\n[extra]\nx = 1\n";
    let mut paths = paths(&text);
    paths.sort();
    assert_eq!(
        paths,
        [
            "accounts[0].asset_scale",
            "accounts[0].max_packet",
            "accounts[0].min_balance",
            "extra",
            "http.conections_max",
            "http.listen",
            "node.ilp_adress",
        ]
    );
}

#[test]
fn type_errors_are_reported_with_the_semantic_problems_of_the_rest() {
    // A type error in one account, and a rule broken elsewhere: both reported.
    let text =
        MINIMAL.replace("asset_scale = 2", "asset_scale = \"two\"") + "\n[http]\nconnections_max = 0\n";
    let mut paths = paths(&text);
    paths.sort();
    assert_eq!(paths, ["accounts[0].asset_scale", "http.connections_max"]);
}

#[test]
fn a_missing_required_key_is_reported_with_the_other_problems() {
    let text = MINIMAL.replace("asset_scale = 2\n", "").replace("[node]", "[node]\nlog_levl = \"info\"");
    let problems = problems(&text);
    let mut paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["accounts[0]", "node.log_levl"], "{problems:?}");
    assert!(problems.iter().any(|p| p.message.contains("missing field `asset_scale`")), "{problems:?}");
}

#[test]
fn a_route_to_an_account_that_exists_but_is_invalid_is_not_also_reported() {
    let route = "\n[[routes]]\nprefix = \"g.x\"\naccount = \"a\"\n";
    // A type error in the account.
    let text = MINIMAL.replace("asset_scale = 2", "asset_scale = \"two\"") + route;
    assert_eq!(paths(&text), ["accounts[0].asset_scale"]);
    // An unknown key in the account.
    let text = MINIMAL.replace("asset_scale = 2", "asset_scale = 2\ncolour = \"red\"") + route;
    assert_eq!(paths(&text), ["accounts[0].colour"]);
    // A rule the account breaks.
    let text = MINIMAL.replace("asset_code = \"USD\"", "asset_code = \"\"") + route;
    assert_eq!(paths(&text), ["accounts[0].asset_code"]);
    // A route to an account that does not exist is still reported.
    let text = MINIMAL.to_string() + &route.replace("account = \"a\"", "account = \"ghost\"");
    assert_eq!(paths(&text), ["routes[0].account"]);
}

#[test]
fn a_bad_node_address_type_is_reported_once() {
    let text = MINIMAL.replace("ilp_address = \"test.node\"", "ilp_address = 5");
    assert_eq!(paths(&text), ["node.ilp_address"]);
}

#[test]
fn a_misspelt_store_kind_is_reported_alone_not_with_the_redis_keys_it_makes_look_wrong() {
    let text =
        format!("{MINIMAL}\n[store]\nkind = \"Redis\"\nurl = \"redis://127.0.0.1:6379/\"\nprefix = \"x\"\n");
    assert_eq!(paths(&text), ["store.kind"]);
}

#[test]
fn an_account_whose_id_has_the_wrong_type_does_not_excuse_a_route_to_the_stand_in() {
    let text =
        MINIMAL.replace("id = \"a\"", "id = 5") + "\n[[routes]]\nprefix = \"g.x\"\naccount = \"child\"\n";
    let mut paths = paths(&text);
    paths.sort();
    assert_eq!(paths, ["accounts[0].id", "routes[0].account"]);
}

#[test]
fn the_owed_writes_file_is_configured_with_redis_only() {
    let redis =
        |extra: &str| format!("{MINIMAL}\n[store]\nkind = \"redis\"\nurl = \"redis://h/\"\n{extra}\n");
    let config = Config::from_toml(&redis("")).unwrap();
    let owed = config.owed_writes.unwrap();
    assert_eq!(owed.path, std::path::Path::new(defaults::OWED_WRITES_PATH));
    assert_eq!(owed.entries_max, defaults::OWED_WRITES_MAX);
    let set =
        Config::from_toml(&redis("owed_writes_path = \"/var/lib/thitsax/owed.log\"\nowed_writes_max = 5"));
    let owed = set.unwrap().owed_writes.unwrap();
    assert_eq!((owed.path.to_str(), owed.entries_max), (Some("/var/lib/thitsax/owed.log"), 5));
    assert_eq!(paths(&redis("owed_writes_max = 0")), ["store.owed_writes_max"]);
    assert_eq!(paths(&redis("owed_writes_path = \"\"")), ["store.owed_writes_path"]);
    let memory = MINIMAL.replace("[[accounts]]", "[store]\nowed_writes_path = \"x\"\n[[accounts]]");
    assert_eq!(paths(&memory), ["store.owed_writes_path"]);
    assert!(Config::from_toml(MINIMAL).unwrap().owed_writes.is_none());
}

const LOCAL: &str = r#"
[[accounts]]
id = "treasury"
relation = "local"
asset_code = "USD"
asset_scale = 2
"#;

#[test]
fn a_local_account_is_addressed_under_the_node_and_pays_only_what_it_holds_by_default() {
    let config = Config::from_toml(&format!("{MINIMAL}{LOCAL}")).unwrap();
    let local = config.accounts.iter().find(|a| &*a.id == "treasury").unwrap();
    assert_eq!(local.relation, Relation::Local);
    assert_eq!(local.ilp_address.as_ref().unwrap().as_str(), "test.node.treasury");
    assert_eq!(local.min_balance, Some(0), "no credit unless the operator grants it");
    assert!(local.outgoing.is_none() && local.incoming_token_hash.is_none());
    assert_eq!(config.routes.lookup("test.node.treasury.abc").map(|a| &**a), Some("treasury"));
    let credit = LOCAL.replace("asset_scale = 2", "asset_scale = 2\nmin_balance = -500");
    let config = Config::from_toml(&format!("{MINIMAL}{credit}")).unwrap();
    let local = config.accounts.iter().find(|a| &*a.id == "treasury").unwrap();
    assert_eq!(local.min_balance, Some(-500));
    // Its record leaves the derived address out, and reads back the same.
    let record = local.to_record();
    assert_eq!(record.ilp_address, None);
    let again = crate::rules::account_from_record(&config.node_address, record).unwrap();
    assert_eq!(again.ilp_address, local.ilp_address);
}

#[test]
fn a_local_account_refuses_what_only_accounts_reached_over_http_have() {
    let extra = [
        "incoming_token = \"t\"",
        "outgoing_url = \"http://127.0.0.1:9/\"\noutgoing_token = \"o\"",
        "settlement_engine_url = \"http://127.0.0.1:9/\"",
        "settle_threshold = 100",
        "ilp_address = \"test.elsewhere\"",
    ];
    let mut found = Vec::new();
    for extra in extra {
        let text =
            format!("{MINIMAL}{}", LOCAL.replace("asset_scale = 2", &format!("asset_scale = 2\n{extra}")));
        found.extend(paths(&text));
    }
    assert_eq!(
        found,
        [
            "accounts[1].incoming_token",
            "accounts[1].outgoing_url",
            "accounts[1].outgoing_token",
            "accounts[1].settlement_engine_url",
            "accounts[1].settle_threshold",
            "accounts[1].ilp_address",
        ]
    );
}

#[test]
fn outgoing_tls_trusts_the_system_s_roots_by_default_and_reads_the_ca_file_at_start_up() {
    let config = Config::from_toml(MINIMAL).unwrap();
    assert_eq!(config.tls.roots, crate::http::tls::Roots::System);
    assert!(config.tls.ca_file.is_none());
    assert_eq!(
        config.client.tls_handshake_timeout,
        Duration::from_millis(defaults::OUTGOING_TLS_HANDSHAKE_TIMEOUT_MS)
    );
    let dir = std::env::temp_dir().join(format!("thitsax-config-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let pem = ca.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, pem).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let with = |lines: &str| MINIMAL.replace("[[accounts]]", &format!("[http]\n{lines}\n[[accounts]]"));

    let set = with(&format!(
        "tls_roots = \"webpki\"\ntls_ca_file = {:?}\noutgoing_tls_handshake_timeout_ms = 250",
        ca_path.display().to_string()
    ));
    let config = Config::from_toml(&set).unwrap();
    assert_eq!(config.tls.roots, crate::http::tls::Roots::Webpki);
    assert_eq!(config.tls.ca_file.as_ref().map(|ca| ca.len()), Some(1));
    assert_eq!(config.client.tls_handshake_timeout, Duration::from_millis(250));

    // Each problem named by its key, the file's with its path and what is wrong with it.
    let missing = problems(&with(&format!("tls_ca_file = {:?}", dir.join("gone.pem").display().to_string())));
    assert_eq!(missing[0].path, "http.tls_ca_file");
    assert!(
        missing[0].message.contains("cannot read") && missing[0].message.contains("gone.pem"),
        "{missing:?}"
    );
    let garbage = problems(&with(&format!("tls_ca_file = {:?}", not_pem.display().to_string())));
    assert_eq!(garbage[0].path, "http.tls_ca_file");
    assert!(garbage[0].message.contains("no PEM certificate"), "{garbage:?}");
    assert_eq!(paths(&with("tls_ca_file = \"\"")), ["http.tls_ca_file"]);
    assert_eq!(paths(&with("tls_roots = \"none\"")), ["http.tls_roots"]);
    assert_eq!(
        paths(&with("outgoing_tls_handshake_timeout_ms = 0")),
        ["http.outgoing_tls_handshake_timeout_ms"]
    );
    // There is no switch that turns verification off.
    assert_eq!(paths(&with("tls_insecure = true")), ["http.tls_insecure"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_spsp_listener_and_the_stream_secret_have_safe_defaults_and_checked_values() {
    let config = Config::from_toml(MINIMAL).unwrap();
    assert_eq!(config.spsp.listen.to_string(), defaults::SPSP_LISTEN);
    assert!(!config.spsp.listen_always);
    assert_eq!(config.spsp.public_url, None, "the listener's own address, once bound");
    assert_eq!(config.stream.secret, None, "made at start-up, or shared through Redis");
    let secret = "ab".repeat(32);
    let named = format!(
        "{MINIMAL}\n[spsp]\nlisten = \"127.0.0.1:9999\"\npublic_url = \"https://pay.example/\"\n\
         connections_max = 8\n[stream]\nsecret = \"{secret}\"\n"
    );
    let config = Config::from_toml(&named).unwrap();
    assert!(config.spsp.listen_always);
    assert_eq!(config.spsp.public_url.as_deref(), Some("https://pay.example"));
    assert_eq!(config.spsp.limits.connections_max, 8);
    assert_eq!(config.stream.secret, Some(StreamSecret([0xab; 32])));
    assert!(!format!("{config:?}").contains(&secret), "the secret never prints");
    let bad = format!(
        "{MINIMAL}\n[spsp]\nlisten = \"nowhere\"\npublic_url = \"ftp://x/?q\"\nconnections_max = 0\n\
         [stream]\nsecret = \"not-hex-{secret}\"\n"
    );
    let found = problems(&bad);
    assert_eq!(
        found.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
        ["spsp.listen", "spsp.public_url", "spsp.connections_max", "stream.secret"]
    );
    assert!(found.iter().all(|p| !p.message.contains(&secret)), "the value is never echoed");
}

#[test]
fn an_account_s_own_hold_time_is_checked_against_the_forwarding_rules() {
    let with_hold = |hold: &str| {
        MINIMAL.replace("asset_scale = 2", &format!("asset_scale = 2\nhold_time_ms_max = {hold}"))
    };
    let config = Config::from_toml(&with_hold("4500")).unwrap();
    assert_eq!(config.accounts[0].hold_time_max, Some(std::time::Duration::from_millis(4500)));
    assert_eq!(config.accounts[0].to_record().hold_time_ms_max, Some(4500));
    for bad in ["0", "100", "30000", "40000"] {
        assert_eq!(paths(&with_hold(bad)), ["accounts[0].hold_time_ms_max"], "{bad}");
    }
}
