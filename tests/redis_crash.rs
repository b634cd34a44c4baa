//! Kill -9 a ThitsaX process in the middle of a load (real process, real Redis), start it again,
//! let the sweeper run: every reservation is settled, every packet's money is consistent across
//! the two journals, the balances equal the journals, and `thitsax audit` agrees.

mod common;

use common::redis::{redis_or_skip, RedisServer};
use common::*;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thitsax::config::{Config, StoreConfig};
use thitsax::packet::Response;
use thitsax::store::{RedisConfig, RedisStore, Store};

const BIN: &str = env!("CARGO_BIN_EXE_thitsax");

struct Node(Child);
impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &std::path::Path, port: u16) -> Node {
    let child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "node did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Node(child)
}

/// Journal entries of one account, read in pages: packet id → net change, and the kinds seen.
async fn journal(redis_url: &str, account: &str) -> HashMap<String, (i128, Vec<String>)> {
    let client = ::redis::Client::open(redis_url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut out: HashMap<String, (i128, Vec<String>)> = HashMap::new();
    let mut from = "-".to_string();
    loop {
        let page: Vec<(String, Vec<(String, String)>)> = ::redis::cmd("XRANGE")
            .arg(format!("crash:{{{account}}}:journal"))
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(500)
            .query_async(&mut c)
            .await
            .unwrap();
        for (_, fields) in &page {
            let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap();
            let entry = out.entry(field("packet")).or_default();
            entry.0 += field("change").parse::<i128>().unwrap();
            entry.1.push(field("kind"));
        }
        match page.last() {
            Some((id, _)) if page.len() == 500 => from = format!("({id}"),
            _ => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_then_restart_settles_every_packet_exactly() {
    if !redis_or_skip("kill_9_mid_load_then_restart_settles_every_packet_exactly") {
        return;
    }
    let redis = RedisServer::start();
    // Six in ten fulfilled, three rejected, one hangs until it expires: at the kill, many
    // reservations are in flight.
    let delivered = Arc::new(AtomicU64::new(0));
    let counted = delivered.clone();
    let downstream =
        Downstream::start(Arc::new(move |p: &thitsax::packet::Prepare| match p.data()[7] % 10 {
            0..=4 => {
                counted.fetch_add(p.amount(), Ordering::SeqCst);
                Behaviour::Fulfill
            }
            5 | 6 => Behaviour::Reject,
            _ => Behaviour::Hang,
        }))
        .await;
    let port = reserve_port();
    let dir = TempDir::new("crash");
    let config = dir.join("node.toml");
    let owed = dir.join("owed.log");
    std::fs::write(&config, node_config(port, &redis.url(), &downstream.url(), &owed, 200, "")).unwrap();

    let mut node = start(&config, port);
    let url = format!("http://127.0.0.1:{port}/");
    let client = client();
    let seen_fulfilled = Arc::new(AtomicU64::new(0));
    // The load: 50 senders in flight; transport errors (the kill) are expected.
    let load: Vec<_> = (0..40u64)
        .map(|lane| {
            let (client, url, seen) = (client.clone(), url.clone(), seen_fulfilled.clone());
            tokio::spawn(async move {
                for i in 0..150u64 {
                    let id = lane * 1000 + i;
                    let p = prepare_with_id("test.n.receiver.x", 1_000 + id, Duration::from_millis(700), id);
                    let request = hyper::Request::post(&url)
                        .header("authorization", "Bearer sender-token")
                        .header("content-type", "application/octet-stream")
                        .body(http_body_util::Full::new(p.to_bytes()))
                        .unwrap();
                    let Ok(response) = client.request(request).await else { continue };
                    let Ok(body) = http_body_util::BodyExt::collect(response.into_body()).await else {
                        continue;
                    };
                    if let Ok(Response::Fulfill(_)) = Response::parse(body.to_bytes()) {
                        seen.fetch_add(1_000 + id, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    // Kill once plenty is in flight.
    while downstream.requests.load(Ordering::SeqCst) < 1500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.0.kill().unwrap(); // SIGKILL: no drain, no cleanup
    node.0.wait().unwrap();
    let store_config = RedisConfig {
        urls: vec![redis.url()],
        cluster: false,
        prefix: "crash".into(),
        response_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        credit_marker_ttl_s: 90_000,
    };
    let store = RedisStore::connect(&store_config).await.unwrap();
    let in_flight_at_kill = store.audit("sender").await.unwrap().reserved;
    assert!(in_flight_at_kill > 0, "the kill should leave reservations behind");

    // Restart; the load goes on against the new process until it finishes.
    let node = start(&config, port);
    for lane in load {
        lane.await.unwrap();
    }
    // Let every packet expire and the sweeper release what the dead process left.
    let settled = Instant::now();
    loop {
        let (s, r) = (store.audit("sender").await.unwrap(), store.audit("receiver").await.unwrap());
        if s.reserved == 0 && r.reserved == 0 {
            break;
        }
        assert!(settled.elapsed() < Duration::from_secs(20), "reservations left: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(node);

    // Per packet: the sender's net change is minus the amount exactly when the receiver was
    // credited for it, and zero otherwise.
    let sender = journal(&redis.url(), "sender").await;
    let receiver = journal(&redis.url(), "receiver").await;
    for (packet, (net, kinds)) in &sender {
        match receiver.get(packet) {
            Some((credit, _)) => assert_eq!(*net, -credit, "packet {packet}: {kinds:?}"),
            None => assert_eq!(*net, 0, "packet {packet} was not fulfilled but is charged: {kinds:?}"),
        }
    }
    assert!(receiver.keys().all(|p| sender.contains_key(p)), "a credit without a debit");
    let sender_balance = store.balance("sender").await.unwrap();
    let receiver_balance = store.balance("receiver").await.unwrap();
    assert_eq!(sender_balance, -receiver_balance);
    // What the sender saw fulfilled was credited; what was credited was fulfilled downstream.
    let seen = seen_fulfilled.load(Ordering::SeqCst) as i128;
    assert!(seen <= receiver_balance && receiver_balance <= delivered.load(Ordering::SeqCst) as i128);
    assert!(seen > 0);

    // The operator's check agrees.
    let audit = Command::new(BIN).arg("audit").arg(&config).output().unwrap();
    let stdout = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.status.success(), "{stdout}{}", String::from_utf8_lossy(&audit.stderr));
    assert_eq!(stdout.matches(" ok").count(), 2, "{stdout}");
}

/// Held answers of a downstream, released when the test opens the gate. Each waits on a std
/// condition variable inside `block_in_place`, so the runtime's other tasks go on meanwhile.
struct Gate(std::sync::Mutex<bool>, std::sync::Condvar);

impl Gate {
    fn open(&self) {
        *self.0.lock().unwrap() = true;
        self.1.notify_all();
    }
    fn wait(&self) {
        let mut open = self.0.lock().unwrap();
        while !*open {
            open = self.1.wait(open).unwrap();
        }
    }
}

/// Opens the gate when the test ends, failed or not, so that no held answer outlives it.
struct OpenOnDrop(Arc<Gate>);
impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// The node of these tests: a sender and a receiver on Redis, swept quickly. `margin_ms` is the
/// expiry margin; `store_extra` adds `[store]` keys (the owed-writes tests make Redis answer or
/// fail fast, with packets that live long enough for an outage to start before their Fulfills).
fn node_config(
    port: u16,
    redis: &str,
    downstream: &str,
    owed: &std::path::Path,
    margin_ms: u64,
    store_extra: &str,
) -> String {
    format!(
        r#"
[node]
ilp_address = "test.n"
log_level = "warn"
[http]
listen = "127.0.0.1:{port}"
[forwarding]
expiry_margin_ms = {margin_ms}
min_outgoing_window_ms = 100
[store]
kind = "redis"
url = "{redis}"
prefix = "crash"
sweep_interval_ms = 200
sweep_grace_ms = 300
owed_writes_path = "{}"
{store_extra}
[[accounts]]
id = "sender"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "sender-token"
[[accounts]]
id = "receiver"
relation = "child"
asset_code = "USD"
asset_scale = 9
outgoing_url = "{downstream}"
outgoing_token = "t"
"#,
        owed.display()
    )
}

/// Redis answers fast or fails fast in the owed-writes tests.
const FAST_REDIS: &str = "response_timeout_ms = 300\nconnect_timeout_ms = 300";

/// Fulfills that come back while Redis is down are relayed, and the node is then killed (SIGKILL)
/// before Redis is back: the writes they owe (commit on the sender, credit on the receiver) were
/// only in memory, so the restarted node's sweeper refunded the sender of packets the receiver
/// was paid for. With the owed-writes file the restart replays them before serving: every packet
/// charged and credited exactly once, nothing swept, and the audit agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_redis_outage_then_restart_applies_every_owed_write_once() {
    if !redis_or_skip("kill_9_during_a_redis_outage_then_restart_applies_every_owed_write_once") {
        return;
    }
    const PACKETS: u64 = 8;
    let mut redis = RedisServer::start_with_aof();
    let gate = Arc::new(Gate(std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let held = gate.clone();
    let _open_at_the_end = OpenOnDrop(gate.clone());
    let downstream = Downstream::start(Arc::new(move |_: &thitsax::packet::Prepare| {
        tokio::task::block_in_place(|| held.wait());
        Behaviour::Fulfill
    }))
    .await;
    let port = reserve_port();
    let dir = TempDir::new("owed-kill");
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        node_config(port, &redis.url(), &downstream.url(), &dir.join("owed.log"), 1000, FAST_REDIS),
    )
    .unwrap();

    let mut node = start(&config, port);
    let url = format!("http://127.0.0.1:{port}/");
    let client = client();
    // Prepared (and reserved in Redis) while Redis is up; the downstream holds them.
    let sent: Vec<_> = (0..PACKETS)
        .map(|id| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let p = prepare_with_id("test.n.receiver.x", 1_000 + id, Duration::from_secs(6), id);
                let request = hyper::Request::post(&url)
                    .header("authorization", "Bearer sender-token")
                    .header("content-type", "application/octet-stream")
                    .body(http_body_util::Full::new(p.to_bytes()))
                    .unwrap();
                let response = client.request(request).await.unwrap();
                let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap();
                Response::parse(body.to_bytes()).unwrap()
            })
        })
        .collect();
    let waiting = Instant::now();
    while downstream.requests.load(Ordering::SeqCst) < PACKETS as usize {
        assert!(waiting.elapsed() < Duration::from_secs(20), "the packets did not reach the next hop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Redis goes away; then the next hop fulfils: the node cannot write, and relays anyway.
    let mut redis = tokio::task::spawn_blocking(move || {
        redis.stop();
        redis
    })
    .await
    .unwrap();
    gate.open();
    let mut fulfilled = 0;
    for response in sent {
        let response = response.await.unwrap();
        assert!(matches!(response, Response::Fulfill(_)), "{response:?}");
        fulfilled += 1;
    }
    assert_eq!(fulfilled, PACKETS);
    let amounts: i128 = (0..PACKETS).map(|id| 1_000 + id as i128).sum();
    node.0.kill().unwrap(); // SIGKILL: no drain, no cleanup
    node.0.wait().unwrap();

    // Redis back (the reservations expired meanwhile); the node restarts over the same file.
    let redis = tokio::task::spawn_blocking(move || {
        redis.restart();
        redis
    })
    .await
    .unwrap();
    let _node = start(&config, port);
    let store_config = RedisConfig {
        urls: vec![redis.url()],
        cluster: false,
        prefix: "crash".into(),
        response_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        credit_marker_ttl_s: 90_000,
    };
    {
        let store = RedisStore::connect(&store_config).await.unwrap();
        // The packets expired long ago: the sweeper (every 200 ms) would refund any reservation
        // the restart did not commit, and the balances would never reach these.
        let settled = Instant::now();
        loop {
            let (s, r) = (store.audit("sender").await.unwrap(), store.audit("receiver").await.unwrap());
            let both = (s.balance, r.balance);
            if s.reserved == 0 && both == (-amounts, amounts) {
                break;
            }
            assert!(settled.elapsed() < Duration::from_secs(20), "sender {s:?}, receiver {r:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sender = journal(&redis.url(), "sender").await;
        let receiver = journal(&redis.url(), "receiver").await;
        assert_eq!((sender.len(), receiver.len()), (PACKETS as usize, PACKETS as usize));
        for (packet, (net, kinds)) in &sender {
            assert!(!kinds.contains(&"expire".to_string()), "packet {packet} was swept: {kinds:?}");
            let (credit, credits) = &receiver[packet];
            assert_eq!((*net, credits.len()), (-credit, 1), "packet {packet}: {kinds:?} {credits:?}");
        }
    }
    // The operator's check agrees.
    let audit = Command::new(BIN).arg("audit").arg(&config).output().unwrap();
    let stdout = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.status.success(), "{stdout}{}", String::from_utf8_lossy(&audit.stderr));
    assert_eq!(stdout.matches(" ok").count(), 2, "{stdout}");
    drop(downstream);
}

/// A graceful shutdown while Fulfills' writes wait for Redis: the packets still retrying when
/// the grace period ends hand their writes to the owed-writes file (instead of being dropped with
/// the runtime after the server stops waiting), and the next start applies each exactly once.
#[test]
fn shutdown_during_a_redis_outage_hands_owed_writes_to_the_next_start() {
    if !redis_or_skip("shutdown_during_a_redis_outage_hands_owed_writes_to_the_next_start") {
        return;
    }
    const PACKETS: u64 = 3;
    let dir = TempDir::new("owed-shutdown");
    let mut redis = RedisServer::start_with_aof();
    let redis_url = redis.url();
    let toml = |downstream: &str| {
        let text = node_config(0, &redis_url, downstream, &dir.join("owed.log"), 1000, FAST_REDIS);
        // Packets live 30 s, far beyond the grace period: they are still retrying at the abort.
        text.replace("[forwarding]", "shutdown_grace_ms = 2000\n[forwarding]")
    };
    let store = |toml: &str| {
        let StoreConfig::Redis(config) = Config::from_toml(toml).unwrap().store else { panic!("redis") };
        config
    };
    // The first run, on its own runtime: dropped at the end as `thitsax` drops its own once
    // `run_until` returns, cutting off whatever task is still running.
    let first = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let gate = Arc::new(Gate(std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let _open_at_the_end = OpenOnDrop(gate.clone());
    let fulfilled = first.block_on(async {
        let held = gate.clone();
        let downstream = Downstream::start(Arc::new(move |_: &thitsax::packet::Prepare| {
            tokio::task::block_in_place(|| held.wait());
            Behaviour::Fulfill
        }))
        .await;
        let toml = toml(&downstream.url());
        let node = TestNode::start_redis(&toml, RedisStore::connect(&store(&toml)).await.unwrap()).await;
        let (url, client) = (node.url(), client());
        let sent: Vec<_> = (0..PACKETS)
            .map(|id| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    let p = prepare_with_id("test.n.receiver.x", 1_000 + id, Duration::from_secs(30), id);
                    let request = hyper::Request::post(&url)
                        .header("authorization", "Bearer sender-token")
                        .header("content-type", "application/octet-stream")
                        .body(http_body_util::Full::new(p.to_bytes()))
                        .unwrap();
                    let response = client.request(request).await.ok()?;
                    let body = http_body_util::BodyExt::collect(response.into_body()).await.ok()?;
                    Response::parse(body.to_bytes()).ok()
                })
            })
            .collect();
        let waiting = Instant::now();
        while downstream.requests.load(Ordering::SeqCst) < PACKETS as usize {
            assert!(waiting.elapsed() < Duration::from_secs(20), "the packets did not reach the next hop");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::task::block_in_place(|| redis.stop());
        // Shut down; the Fulfills come back while the node drains, and cannot be written.
        let shutdown = node.node.shutdown.clone();
        let stopping = tokio::spawn(node.stop());
        shutdown.reached(thitsax::shutdown::Phase::Draining).await;
        gate.open();
        let mut fulfilled = 0;
        for response in sent {
            // Bounded: before the fix a packet still retrying was cut off, never answered.
            if let Ok(Ok(Some(Response::Fulfill(_)))) =
                tokio::time::timeout(Duration::from_secs(10), response).await
            {
                fulfilled += 1;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), stopping).await;
        fulfilled
    });
    drop(first);
    redis.restart();

    // The next start, with Redis up: what the first run owed is applied once, before serving.
    let next = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    next.block_on(async {
        let toml = toml("http://127.0.0.1:9/");
        let node = TestNode::start_redis(&toml, RedisStore::connect(&store(&toml)).await.unwrap()).await;
        let amounts: i128 = (0..PACKETS).map(|id| 1_000 + id as i128).sum();
        let store = RedisStore::connect(&store(&toml)).await.unwrap();
        let settled = Instant::now();
        loop {
            let (s, r) = (store.audit("sender").await.unwrap(), store.audit("receiver").await.unwrap());
            if s.reserved == 0 && (s.balance, r.balance) == (-amounts, amounts) {
                assert!(s.agrees() && r.agrees(), "{s:?} {r:?}");
                break;
            }
            assert!(settled.elapsed() < Duration::from_secs(20), "sender {s:?}, receiver {r:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let receiver = journal(&redis_url, "receiver").await;
        assert!(receiver.values().all(|(_, kinds)| kinds.len() == 1), "credited once each: {receiver:?}");
        node.stop().await;
    });
    assert_eq!(fulfilled, PACKETS, "every Fulfill was relayed before the node stopped");
}
