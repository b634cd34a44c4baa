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
    eventually(&pair, "A settled and B credited", async || {
        pair.a.balance("b").await == 2_000_000 && pair.b.balance("a").await == -2_000_000
    })
    .await;
    let counters = &pair.a.node.settlement.counters;
    assert_eq!(counters.settled.load(std::sync::atomic::Ordering::Relaxed), 1);
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
    eventually(&pair, "settled after the engine came back", async || pair.b.balance("a").await == 0).await;
    let counters = &pair.a.node.settlement.counters;
    assert_eq!(counters.begun.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(counters.settled.load(std::sync::atomic::Ordering::Relaxed), 1);
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
