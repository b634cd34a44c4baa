//! Settlement end to end (RFC 0038): two ThitsaX nodes peered over ILP-over-HTTP, each with a
//! real settlement engine process (`examples/settlement_engine.rs`, built by `cargo test`). Node A
//! forwards packets from its child alice to node B, which delivers them to its child bob. A's
//! balance with B grows with every Fulfill; past its threshold A settles: its engine pays B's
//! engine, which tells node B, which credits A's account. The engines learn each other's address
//! through a hello message carried as `peer.settle` packets between the nodes.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A settlement engine process; killed on drop.
struct Engine {
    child: Child,
    url: String,
    dir: TempDir,
    args: Vec<String>,
}

fn engine_binary() -> std::path::PathBuf {
    // tests run from target/<profile>/deps; cargo builds examples into target/<profile>/examples.
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let binary = deps.parent().unwrap().join("examples").join("settlement_engine");
    assert!(binary.exists(), "{} is missing: run the tests with `cargo test`", binary.display());
    binary
}

impl Engine {
    fn start(name: &str, connector: &str, extra: &[&str]) -> Engine {
        let dir = TempDir::new(&format!("engine-{name}"));
        let mut args: Vec<String> = ["--connector", connector, "--scale", "9", "--retry-max-ms", "200"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push("--data-dir".into());
        args.push(dir.to_string_lossy().into_owned());
        let (child, url) = Self::spawn(&dir, &args, "127.0.0.1:0");
        Engine { child, url, dir, args }
    }

    fn spawn(dir: &TempDir, args: &[String], listen: &str) -> (Child, String) {
        let log = std::fs::File::create(dir.join("engine.log")).unwrap();
        let mut child = Command::new(engine_binary())
            .args(["--listen", listen])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("engine said {line:?}"));
        (child, url.trim_end_matches('/').to_string())
    }

    /// Kills it and starts it again on the same port and data directory.
    fn restart(&mut self) {
        self.stop();
        let listen = self.url.trim_start_matches("http://").to_string();
        let (child, _) = Self::spawn(&self.dir, &self.args, &listen);
        self.child = child;
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("engine.log")).unwrap_or_default()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Pair {
    a: TestNode,
    b: TestNode,
    engine_a: Engine,
    engine_b: Engine,
    bob: Downstream,
}

/// Nodes A and B, engines EA and EB, bob's receiver. A settles its balance with B above
/// `threshold` down to 0 (scale 6 on both sides, engines at scale 9).
async fn pair(test: &str, threshold: u64, engine_a_extra: &[&str]) -> Pair {
    let bob = Downstream::always(Behaviour::Fulfill).await;
    let (a_port, a_settle, b_port, b_settle) =
        (reserve_port(), reserve_port(), reserve_port(), reserve_port());
    let engine_a =
        Engine::start(&format!("{test}-a"), &format!("http://127.0.0.1:{a_settle}"), engine_a_extra);
    let engine_b = Engine::start(&format!("{test}-b"), &format!("http://127.0.0.1:{b_settle}"), &[]);
    let b = TestNode::start_as_is(&format!(
        r#"
[node]
ilp_address = "test.b"
log_level = "warn"
[http]
listen = "127.0.0.1:{b_port}"
[settlement]
listen = "127.0.0.1:{b_settle}"
scan_interval_ms = 100
retry_first_ms = 20
retry_max_ms = 200
[[accounts]]
id = "a"
relation = "peer"
asset_code = "USD"
asset_scale = 6
ilp_address = "test.a"
incoming_token = "a-to-b"
outgoing_url = "http://127.0.0.1:{a_port}/"
outgoing_token = "b-to-a"
min_balance = -1000000000000
settlement_engine_url = "{eb}"
[[accounts]]
id = "bob"
relation = "child"
asset_code = "USD"
asset_scale = 6
outgoing_url = "{bob}"
outgoing_token = "to-bob"
"#,
        eb = engine_b.url,
        bob = bob.url(),
    ))
    .await;
    let a = TestNode::start_as_is(&format!(
        r#"
[node]
ilp_address = "test.a"
log_level = "warn"
[http]
listen = "127.0.0.1:{a_port}"
[settlement]
listen = "127.0.0.1:{a_settle}"
scan_interval_ms = 100
retry_first_ms = 20
retry_max_ms = 200
refusal_pause_ms = 60000
[admin]
token = "{ADMIN_TOKEN}"
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "alice-token"
min_balance = -1000000000000
[[accounts]]
id = "b"
relation = "peer"
asset_code = "USD"
asset_scale = 6
ilp_address = "test.b"
incoming_token = "b-to-a"
outgoing_url = "http://127.0.0.1:{b_port}/"
outgoing_token = "a-to-b"
settle_threshold = {threshold}
settle_to = 0
settlement_engine_url = "{ea}"
"#,
        ea = engine_a.url,
    ))
    .await;
    Pair { a, b, engine_a, engine_b, bob }
}

/// Sends `n` fulfilled packets of `amount` from alice to bob.
async fn pay(pair: &Pair, n: u64, amount: u64) {
    let client = client();
    for i in 0..n {
        let p = prepare_with_id("test.b.bob", amount, Duration::from_secs(10), i);
        send(&client, &pair.a.url(), "alice-token", &p).await.fulfill();
    }
}

/// Waits until `done` holds, or panics with `what` and the engines' logs.
async fn eventually(pair: &Pair, what: &str, done: impl AsyncFn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        if Instant::now() > deadline {
            panic!(
                "{what}: not within 20 s\n--- engine A\n{}\n--- engine B\n{}",
                pair.engine_a.log(),
                pair.engine_b.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_past_its_threshold_is_settled_and_credited_by_the_peer() {
    let pair = pair("threshold", 5_000_000, &[]).await;
    // 8 packets of 1.000000 USD. The 6th takes A's balance with B (what A owes B) to 6 USD,
    // above the 5 USD threshold: A settles those 6 USD down to settle_to = 0 and B credits them
    // to A's account; the last 2 stay as credit. Both books then agree: A owes B 2 USD.
    pay(&pair, 8, 1_000_000).await;
    assert_eq!(pair.bob.received().len(), 8);
    // A counts its settlement settled once its engine answered, which may come after B's credit.
    let counters = &pair.a.node.settlement.counters;
    eventually(&pair, "A settled and B credited", async || {
        pair.a.balance("b").await == 2_000_000
            && pair.b.balance("a").await == -2_000_000
            && counters.settled.load(std::sync::atomic::Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(counters.refunded.load(std::sync::atomic::Ordering::Relaxed), 0);
    // The payers' side is unchanged: alice paid 8 USD, bob received 8 USD.
    assert_eq!(pair.a.balance("alice").await, -8_000_000);
    assert_eq!(pair.b.balance("bob").await, 8_000_000);
    // Up to the threshold itself nothing settles.
    pay(&pair, 3, 1_000_000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((pair.a.balance("b").await, pair.b.balance("a").await), (5_000_000, -5_000_000));
    assert_eq!(counters.begun.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// Node A's admin token (the pair's A serves the admin API).
const ADMIN_TOKEN: &str = "admin-a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_settle_now_settles_below_the_threshold_through_the_engines() {
    let pair = pair("settle-now", 1_000_000_000, &[]).await;
    pay(&pair, 3, 1_000_000).await;
    let (client, admin) = (client(), pair.a.admin_addr.expect("A serves the admin API"));
    let answer = admin_call(&client, admin, "POST", "/accounts/b/settle", Some(ADMIN_TOKEN), None).await;
    let begun = answer.json(hyper::StatusCode::ACCEPTED);
    assert_eq!((begun["amount"].as_str(), begun["asset_scale"].as_u64()), (Some("3000000"), Some(6)));
    assert_eq!(begun["settlement_id"].as_str().unwrap().len(), 32);
    let settled = &pair.a.node.settlement.counters.settled;
    eventually(&pair, "settled by the operator and credited by B", async || {
        pair.a.balance("b").await == 0
            && pair.b.balance("a").await == 0
            && settled.load(std::sync::atomic::Ordering::Relaxed) == 1
    })
    .await;
    // Nothing above settle_to now: 200 with nothing begun.
    let answer = admin_call(&client, admin, "POST", "/accounts/b/settle", Some(ADMIN_TOKEN), None).await;
    let nothing = answer.json(hyper::StatusCode::OK);
    assert_eq!(
        (nothing["amount"].as_str(), &nothing["settlement_id"]),
        (Some("0"), &serde_json::Value::Null)
    );
    // And the scrape says so: settlements by state, none pending.
    let text = admin_call(&client, admin, "GET", "/metrics", Some(ADMIN_TOKEN), None).await.text();
    for line in [
        r#"thitsax_settlements_total{state="begun"} 1"#,
        r#"thitsax_settlements_total{state="settled"} 1"#,
        r#"thitsax_settlements_total{state="refunded"} 0"#,
        "thitsax_settlements_pending 0",
        r#"thitsax_balance{account="b"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_added_and_deleted_through_the_admin_api_are_set_up_and_removed_at_the_engine() {
    let pair = pair("admin-accounts", 1_000_000_000, &[]).await;
    let (client, admin) = (client(), pair.a.admin_addr.expect("A serves the admin API"));
    let carol = format!(
        r#"{{"id":"carol","relation":"peer","asset_code":"USD","asset_scale":6,"ilp_address":"test.carol",
            "settle_threshold":1000,"settlement_engine_url":"{}"}}"#,
        pair.engine_a.url
    );
    let answer = admin_call(&client, admin, "POST", "/accounts", Some(ADMIN_TOKEN), Some(&carol)).await;
    answer.json(hyper::StatusCode::CREATED);
    eventually(&pair, "engine account set up", async || {
        pair.engine_a.log().lines().any(|l| l.contains("account set up") && l.contains("carol"))
    })
    .await;
    let answer = admin_call(&client, admin, "DELETE", "/accounts/carol", Some(ADMIN_TOKEN), None).await;
    assert_eq!(answer.status, hyper::StatusCode::NO_CONTENT, "{}", answer.text());
    eventually(&pair, "engine account removed", async || {
        pair.engine_a.log().lines().any(|l| l.contains("account deleted") && l.contains("carol"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_down_then_back_settles_once_with_the_same_key() {
    let mut pair = pair("restart", 5_000_000, &[]).await;
    // Wait until the engines know each other (the hello went through both nodes).
    eventually(&pair, "hello exchanged", async || pair.engine_b.log().contains("hello")).await;
    pair.engine_a.stop();
    pay(&pair, 6, 1_000_000).await;
    // A began the settlement (its balance with B moved to 0) and keeps retrying it.
    eventually(&pair, "settlement begun", async || pair.a.balance("b").await == 0).await;
    let retries = || pair.a.node.settlement.counters.retries.load(std::sync::atomic::Ordering::Relaxed);
    eventually(&pair, "retried while the engine is down", async || retries() >= 2).await;
    pair.engine_a.restart();
    let counters = &pair.a.node.settlement.counters;
    eventually(&pair, "settled after the engine came back", async || {
        pair.b.balance("a").await == 0 && counters.settled.load(std::sync::atomic::Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(counters.begun.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Settled once: B credited exactly the 6 USD, not more, however many attempts there were.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((pair.a.balance("b").await, pair.b.balance("a").await), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_the_engine_refuses_is_refunded_once() {
    let pair = pair("refused", 5_000_000, &["--fail-settlements-with", "422"]).await;
    pay(&pair, 6, 1_000_000).await;
    let refunded = || pair.a.node.settlement.counters.refunded.load(std::sync::atomic::Ordering::Relaxed);
    eventually(&pair, "refunded", async || refunded() == 1).await;
    // The balance is whole again, and the account is paused (refusal_pause_ms = 60 s), so it
    // does not settle again meanwhile; B received nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(refunded(), 1);
    assert_eq!((pair.a.balance("b").await, pair.b.balance("a").await), (6_000_000, -6_000_000));
}

/// A node with one peer account of scale 2 whose engine works at scale 9; the test plays the
/// engine calling back.
async fn callback_node() -> TestNode {
    TestNode::start(
        r#"
[node]
ilp_address = "test.n"
log_level = "error"
[[accounts]]
id = "peer"
relation = "peer"
asset_code = "USD"
asset_scale = 2
incoming_token = "peer-token"
settlement_engine_url = "http://127.0.0.1:1/engine"
"#,
    )
    .await
}

/// POSTs an incoming-settlement callback as an engine does.
async fn callback(
    node: &TestNode,
    account: &str,
    key: Option<&str>,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let url =
        format!("http://{}/accounts/{account}/settlements", node.settlement_addr.expect("listener bound"));
    let mut req = hyper::Request::post(url).header("content-type", content_type);
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    let body = http_body_util::Full::new(bytes::Bytes::from(body.to_string()));
    let response = client().request(req.body(body).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_duplicated_callback_is_credited_once() {
    let node = callback_node().await;
    let body = r#"{"amount":"1500000000","scale":9}"#;
    assert_eq!(callback(&node, "peer", Some("k1"), "application/json", body).await, (201, body.to_string()));
    assert_eq!(callback(&node, "peer", Some("k1"), "application/json", body).await, (201, body.to_string()));
    assert_eq!(node.balance("peer").await, 150);
    // The same key with another body is a conflict; nothing changes.
    let other = r#"{"amount":"1","scale":9}"#;
    assert_eq!(callback(&node, "peer", Some("k1"), "application/json", other).await.0, 409);
    assert_eq!(node.balance("peer").await, 150);
}

#[tokio::test]
async fn many_callbacks_with_remainders_lose_nothing() {
    let node = callback_node().await;
    // 1,000 callbacks of 0.012345678 USD (scale 9) into an account of scale 2: 12.345678 USD in
    // all, 1234 cents credited; 0.005678 USD is kept as leftover, not lost.
    for i in 0..1000 {
        let (status, _) = callback(
            &node,
            "peer",
            Some(&format!("k{i}")),
            "application/json",
            r#"{"amount":"12345678","scale":9}"#,
        )
        .await;
        assert_eq!(status, 201, "callback {i}");
    }
    assert_eq!(node.balance("peer").await, 1234);
    // One more of 0.004322 USD completes the next cent exactly.
    callback(&node, "peer", Some("last"), "application/json", r#"{"amount":"4322000","scale":9}"#).await;
    assert_eq!(node.balance("peer").await, 1235);
}

#[tokio::test]
async fn bad_callbacks_get_a_4xx_and_change_nothing() {
    let node = callback_node().await;
    let good = r#"{"amount":"100","scale":2}"#;
    let cases: [(&str, Option<&str>, &str, &str, u16); 7] = [
        ("no key", None, "application/json", good, 400),
        ("empty key", Some(""), "application/json", good, 400),
        ("not json", Some("a"), "application/json", "{", 400),
        ("negative", Some("b"), "application/json", r#"{"amount":"-1","scale":2}"#, 400),
        ("number amount", Some("c"), "application/json", r#"{"amount":100,"scale":2}"#, 400),
        ("wrong type", Some("d"), "text/plain", good, 415),
        (
            "too large",
            Some("e"),
            "application/json",
            r#"{"amount":"99999999999999999999999999","scale":0}"#,
            422,
        ),
    ];
    for (what, key, content_type, body, status) in cases {
        let (got, text) = callback(&node, "peer", key, content_type, body).await;
        assert_eq!(got, status, "{what}: {text}");
        assert!(!text.is_empty(), "{what}: a clear message");
    }
    assert_eq!(callback(&node, "nobody", Some("f"), "application/json", good).await.0, 404);
    assert_eq!(node.balance("peer").await, 0);
}

/// With Redis, a settlement begun before a restart is in the store and is resumed by the next
/// run of the node, with the same Idempotency-Key, and settled once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_settlements_survive_a_restart_with_redis() {
    use thitsax::config::{Config, StoreConfig};
    use thitsax::store::{RedisStore, Store};
    if !common::redis::redis_or_skip("pending_settlements_survive_a_restart_with_redis") {
        return;
    }
    let redis = common::redis::RedisServer::start();
    let peer = Downstream::always(Behaviour::Fulfill).await;
    // The engine takes settlement requests; its own payments go nowhere here (no peer engine),
    // which does not matter to the node.
    let mut engine = Engine::start("redis-restart", "http://127.0.0.1:1", &[]);
    let toml = format!(
        r#"
[node]
ilp_address = "test.n"
log_level = "error"
[store]
kind = "redis"
url = "{redis}"
prefix = "settle"
[settlement]
scan_interval_ms = 100
retry_first_ms = 20
retry_max_ms = 100
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "alice-token"
min_balance = -1000000000000
[[accounts]]
id = "b"
relation = "peer"
asset_code = "USD"
asset_scale = 6
ilp_address = "test.b"
outgoing_url = "{peer}"
outgoing_token = "to-b"
settle_threshold = 5000000
settle_to = 0
settlement_engine_url = "{engine}"
"#,
        redis = redis.url(),
        peer = peer.url(),
        engine = engine.url,
    );
    let StoreConfig::Redis(redis_config) = Config::from_toml(&toml).unwrap().store else { panic!("redis") };
    let node = TestNode::start_redis(&toml, RedisStore::connect(&redis_config).await.unwrap()).await;
    // The node sets the account up at the engine, then the engine goes down.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !engine.log().contains("account set up") {
        assert!(Instant::now() < deadline, "account not set up at the engine:\n{}", engine.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.stop();
    let client = client();
    for i in 0..6 {
        let p = prepare_with_id("test.b.x", 1_000_000, Duration::from_secs(10), i);
        send(&client, &node.url(), "alice-token", &p).await.fulfill();
    }
    // Begun (the balance moved to 0), but the engine is down.
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.balance("b").await != 0 {
        assert!(Instant::now() < deadline, "settlement not begun");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.stop().await;
    let store = RedisStore::connect(&redis_config).await.unwrap();
    let account = Config::from_toml(&toml).unwrap().accounts.into_iter().find(|a| &*a.id == "b").unwrap();
    let pending = store.pending_settlements(&account).await.unwrap();
    assert_eq!((pending.len(), pending[0].amount), (1, 6_000_000), "{pending:?}");
    let key = pending[0].id.to_string();

    // The engine is back, and so is the node: the pending settlement is resumed and settled.
    engine.restart();
    let node = TestNode::start_redis(&toml, RedisStore::connect(&redis_config).await.unwrap()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    // The counter moves just after the store's step: wait for both.
    let settled = &node.node.settlement.counters.settled;
    while !store.pending_settlements(&account).await.unwrap().is_empty()
        || settled.load(std::sync::atomic::Ordering::Relaxed) != 1
    {
        let n = settled.load(std::sync::atomic::Ordering::Relaxed);
        assert!(Instant::now() < deadline, "not resumed once ({n} settled):\n{}", engine.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(node.balance("b").await, 0, "settled once, not refunded");
    // The engine got the settlement under the key recorded before the restart.
    let journal = std::fs::read_to_string(engine.dir.join("journal.jsonl")).unwrap();
    assert!(journal.contains(&key), "key {key} not in the engine's journal:\n{journal}");
    assert!(node.node.store.audit("b").await.unwrap().agrees());
}
