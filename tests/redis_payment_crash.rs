//! Outgoing payments of the `thitsax` binary on Redis (its own `redis-server`), interrupted by
//! kill -9: after a restart, or on a second instance sharing the Redis, the payment resumes (once
//! its lease has expired) and ends without paying twice: the receiver gets no more than the
//! payment's amount, and every packet the payment recorded left the paying account and arrived.
//! Two instances asked for the same payment id at the same moment create it once.

mod common;

use common::process::{start_binary, Running};
use common::redis::{redis_or_skip, RedisServer};
use common::{reserve_port, TempDir};
use std::time::{Duration, Instant};
use thitsax::store::{OutgoingPaymentId, OutgoingState, RedisConfig, RedisStore, Store};

const ADMIN: &str = "admin-token";
/// 2,000 packets of at most 1,000 units: long enough to be killed half way.
const AMOUNT: u64 = 2_000_000;

fn config(redis: &str, ilp: u16, admin: u16, spsp: u16, owed: &std::path::Path) -> String {
    format!(
        r#"
[node]
ilp_address = "test.crash"
log_level = "info"
[http]
listen = "127.0.0.1:{ilp}"
[spsp]
listen = "127.0.0.1:{spsp}"
[admin]
listen = "127.0.0.1:{admin}"
token = "{ADMIN}"
[store]
kind = "redis"
url = "{redis}"
prefix = "paycrash"
owed_writes_path = "{}"
[[accounts]]
id = "treasury"
relation = "local"
asset_code = "USD"
asset_scale = 6
max_packet_amount = 1000
min_balance = -1000000000
[[accounts]]
id = "shop"
relation = "local"
asset_code = "USD"
asset_scale = 6
"#,
        owed.display()
    )
}

fn admin(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(json).unwrap_or(serde_json::Value::Null))
}

/// The payment's `sent`, once it is at least a tenth of the amount (and not yet all of it).
fn wait_until_partly_sent(admin_port: u16, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, p) = admin(admin_port, "GET", &format!("/payments/{id}"), None);
        let sent: u64 = p["sent"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        if sent >= AMOUNT / 10 {
            assert!(sent < AMOUNT, "the payment ended before the kill: make it longer");
            return;
        }
        assert!(Instant::now() < deadline, "the payment made no progress: {p}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The payment once it left `sending`, read from the instance on `admin_port`.
fn wait_until_ended(admin_port: u16, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, p) = admin(admin_port, "GET", &format!("/payments/{id}"), None);
        if p["state"] != "sending" && !p["state"].is_null() {
            return p;
        }
        assert!(Instant::now() < deadline, "not resumed: {p}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Checks the ended payment `id` and the books in Redis: completed; the receiver got no more than
/// the amount; every recorded packet left the paying account and arrived.
async fn check_paid_once(redis: &RedisServer, id: &str, ended: &serde_json::Value) {
    let sent: u64 = ended["sent"].as_str().unwrap().parse().unwrap();
    let in_doubt: u64 = ended["in_doubt"].as_str().unwrap().parse().unwrap();
    assert_eq!(ended["state"], "completed", "{ended}");
    assert!(sent + in_doubt == AMOUNT && sent <= AMOUNT, "{ended}");
    let store = RedisStore::connect(&RedisConfig {
        urls: vec![redis.url()],
        cluster: false,
        prefix: "paycrash".into(),
        response_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        credit_marker_ttl_s: 90_000,
    })
    .await
    .unwrap();
    // Packets in flight at the kill are released by the sweeper once expired; wait for that.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (treasury, shop) =
            (store.balance("treasury").await.unwrap(), store.balance("shop").await.unwrap());
        let reserved = store.audit("treasury").await.unwrap().reserved;
        if reserved == 0 {
            // Never paid twice: the receiver got at most the amount. Every recorded packet left
            // the account and arrived. A packet in doubt at the kill may have arrived without its
            // source's commit (the node died between the receiver's credit and the commit: the
            // window README § Crash safety names, then the sweeper refunded the source): the books
            // may differ by at most what was in doubt, never the other way.
            let (paid, got) = (u64::try_from(-treasury).unwrap(), u64::try_from(shop).unwrap());
            assert!(got <= AMOUNT, "never more than the amount: {got}");
            assert!(sent <= paid && paid <= got, "sent {sent}, paid {paid}, received {got}");
            assert!(got - paid <= in_doubt, "received {got} - paid {paid} > in doubt {in_doubt}");
            break;
        }
        assert!(Instant::now() < deadline, "reservations never released");
        std::thread::sleep(Duration::from_millis(200));
    }
    for account in ["treasury", "shop"] {
        assert!(store.audit(account).await.unwrap().agrees());
    }
    let account = thitsax::account::test_account("treasury");
    let id = OutgoingPaymentId::parse(id).unwrap();
    let kept = store.outgoing_payment(&account, &id).await.unwrap().unwrap();
    assert_eq!(kept.state, OutgoingState::Completed);
}

fn payment_body(id: &str, spsp: u16) -> String {
    format!(
        r#"{{"id": "{id}", "account": "treasury", "receiver": "http://127.0.0.1:{spsp}/shop",
            "amount": "{AMOUNT}", "deadline_in_s": 300}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_payment_then_restart_never_pays_twice() {
    if !redis_or_skip("kill_9_mid_payment_then_restart_never_pays_twice") {
        return;
    }
    let redis = RedisServer::start();
    let dir = TempDir::new("payment-crash");
    let (ilp, admin_port, spsp) = (reserve_port(), reserve_port(), reserve_port());
    let file = dir.join("node.toml");
    std::fs::write(&file, config(&redis.url(), ilp, admin_port, spsp, &dir.join("owed.log"))).unwrap();
    let (mut node, _, _) = start_binary(&file);
    let (status, _) = admin(admin_port, "POST", "/payments", Some(&payment_body("crash-1", spsp)));
    assert_eq!(status, 201);
    wait_until_partly_sent(admin_port, "crash-1");
    node.0.kill().unwrap(); // SIGKILL: no drain, no lease released
    node.0.wait().unwrap();
    let (node, _, _) = start_binary(&file);
    let _node: Running = node;
    // The restarted node is a new owner: it takes the payment over once the lease expired.
    let ended = wait_until_ended(admin_port, "crash-1");
    check_paid_once(&redis, "crash-1", &ended).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_asked_at_once_pay_once_and_the_survivor_finishes_after_a_kill() {
    if !redis_or_skip("two_instances_asked_at_once_pay_once_and_the_survivor_finishes_after_a_kill") {
        return;
    }
    let redis = RedisServer::start();
    let dir = TempDir::new("payment-instances");
    let ports: Vec<(u16, u16, u16)> =
        (0..2).map(|_| (reserve_port(), reserve_port(), reserve_port())).collect();
    let nodes: Vec<Running> = ports
        .iter()
        .enumerate()
        .map(|(i, (ilp, admin_port, spsp))| {
            let file = dir.join(format!("node-{i}.toml"));
            let owed = dir.join(format!("owed-{i}.log"));
            std::fs::write(&file, config(&redis.url(), *ilp, *admin_port, *spsp, &owed)).unwrap();
            start_binary(&file).0
        })
        .collect();
    // The same request to both instances at the same moment: one creates the payment, the other
    // answers it as stored.
    let start = std::sync::Arc::new(std::sync::Barrier::new(2));
    let asks: Vec<_> = ports
        .iter()
        .map(|&(_, admin_port, spsp)| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                admin(admin_port, "POST", "/payments", Some(&payment_body("twice-1", spsp))).0
            })
        })
        .collect();
    let mut statuses: Vec<u16> = asks.into_iter().map(|a| a.join().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 201], "one instance creates the payment, the other finds it");
    // Kill the first instance mid-payment, whichever of the two is sending: the survivor goes on
    // (it was sending) or takes the payment over once the dead one's lease expired.
    let survivor_admin = ports[1].1;
    wait_until_partly_sent(survivor_admin, "twice-1");
    let mut nodes = nodes.into_iter();
    let mut first = nodes.next().unwrap();
    let _survivor = nodes.next().unwrap();
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let ended = wait_until_ended(survivor_admin, "twice-1");
    check_paid_once(&redis, "twice-1", &ended).await;
}
