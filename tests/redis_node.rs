//! Real ThitsaX nodes on the Redis store, against `redis-server` processes the tests start:
//! balances survive a node restart, a Redis outage is T00 and changes nothing, and two instances
//! sharing one Redis keep the money invariant under concurrent packets.

mod common;

use common::redis::{redis_or_skip, RedisCluster, RedisServer};
use common::*;
use futures::stream::{self, StreamExt};
use std::time::Duration;
use thitsax::config::{Config, StoreConfig};
use thitsax::packet::{ErrorCode, Response};
use thitsax::store::{RedisStore, Store};

const TEN_SECONDS: Duration = Duration::from_secs(10);

fn node_toml(redis_url: &str, downstream: &str) -> String {
    node_toml_with(&format!("url = \"{redis_url}\""), downstream)
}

/// A node config whose `[store]` section holds `store` (url or cluster_urls) plus fast sweeps.
fn node_toml_with(store: &str, downstream: &str) -> String {
    format!(
        r#"
[node]
ilp_address = "test.n"
log_level = "error"
[store]
kind = "redis"
{store}
prefix = "e2e"
sweep_interval_ms = 200
sweep_grace_ms = 300
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "alice-token"
min_balance = -1000000000000
[[accounts]]
id = "carol"
relation = "child"
asset_code = "USD"
asset_scale = 6
outgoing_url = "{downstream}"
outgoing_token = "to-carol"
"#
    )
}

async fn redis_node(toml: &str) -> TestNode<RedisStore> {
    let StoreConfig::Redis(redis) = Config::from_toml(toml).unwrap().store else { panic!("redis config") };
    TestNode::start_redis(toml, RedisStore::connect(&redis).await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balances_survive_a_node_restart() {
    if !redis_or_skip("balances_survive_a_node_restart") {
        return;
    }
    let redis = RedisServer::start();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let toml = node_toml(&redis.url(), &downstream.url());
    let node = redis_node(&toml).await;
    send(&client(), &node.url(), "alice-token", &prepare("test.n.carol", 3_000_000_000, TEN_SECONDS))
        .await
        .fulfill();
    node.stop().await;

    let node = redis_node(&toml).await;
    assert_eq!(node.balance("alice").await, -3_000_000_000);
    assert_eq!(node.balance("carol").await, 3_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_t00_changes_nothing_and_recovers() {
    if !redis_or_skip("redis_outage_is_t00_changes_nothing_and_recovers") {
        return;
    }
    let mut redis = RedisServer::start_with_aof();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let node = redis_node(&node_toml(&redis.url(), &downstream.url())).await;
    let client = client();
    send(&client, &node.url(), "alice-token", &prepare("test.n.carol", 1_000_000, TEN_SECONDS))
        .await
        .fulfill();

    let probe = |path: &'static str| {
        let (client, url) = (client.clone(), format!("http://{}{path}", node.addr));
        async move {
            let req = hyper::Request::get(url).body(http_body_util::Full::new(bytes::Bytes::new())).unwrap();
            client.request(req).await.unwrap().status()
        }
    };
    assert_eq!(probe("/ready").await, hyper::StatusCode::OK);

    redis.stop();
    let reject = send(&client, &node.url(), "alice-token", &prepare("test.n.carol", 1_000_000, TEN_SECONDS))
        .await
        .reject();
    assert_code(&reject, ErrorCode::T00_INTERNAL_ERROR);
    // Unready while Redis is away, but alive.
    assert_eq!(probe("/ready").await, hyper::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(probe("/health").await, hyper::StatusCode::OK);
    assert_eq!(downstream.received().len(), 1, "nothing was forwarded during the outage");

    redis.restart();
    let mut answer =
        send(&client, &node.url(), "alice-token", &prepare("test.n.carol", 1_000_000, TEN_SECONDS)).await;
    for _ in 0..50 {
        if matches!(answer.packet(), Response::Fulfill(_)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer =
            send(&client, &node.url(), "alice-token", &prepare("test.n.carol", 1_000_000, TEN_SECONDS)).await;
    }
    answer.fulfill();
    assert_eq!(probe("/ready").await, hyper::StatusCode::OK, "ready again by itself");
    assert_eq!(node.balance("alice").await, -2_000_000, "exactly the two fulfilled packets");
    assert_eq!(node.balance("carol").await, 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_keep_the_invariant() {
    if !redis_or_skip("two_instances_on_one_redis_keep_the_invariant") {
        return;
    }
    let redis = RedisServer::start();
    two_instances_keep_the_invariant(&format!("url = \"{}\"", redis.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_a_redis_cluster_keep_the_invariant() {
    if !redis_or_skip("two_instances_on_a_redis_cluster_keep_the_invariant") {
        return;
    }
    let cluster = RedisCluster::start(3);
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    two_instances_keep_the_invariant(&format!("cluster_urls = [{}]", urls.join(", "))).await;
}

/// Two nodes on one store, packets alternating between them on the same accounts, every third
/// rejected downstream: both see the same, exact balances.
async fn two_instances_keep_the_invariant(store: &str) {
    let downstream = Downstream::start(std::sync::Arc::new(|p: &thitsax::packet::Prepare| {
        if p.data()[7].is_multiple_of(3) {
            Behaviour::Reject
        } else {
            Behaviour::Fulfill
        }
    }))
    .await;
    let toml = node_toml_with(store, &downstream.url());
    let (a, b) = (redis_node(&toml).await, redis_node(&toml).await);
    let urls = [a.url(), b.url()];
    let client = client();
    let outcomes: Vec<(u64, bool)> = stream::iter(0..600u64)
        .map(|i| {
            let (client, url) = (client.clone(), urls[(i % 2) as usize].clone());
            async move {
                let amount = 1_000 + i * 997;
                let p = prepare_with_id("test.n.carol", amount * 1000, TEN_SECONDS, i);
                let fulfilled =
                    matches!(send(&client, &url, "alice-token", &p).await.packet(), Response::Fulfill(_));
                (amount, fulfilled)
            }
        })
        .buffer_unordered(40)
        .collect()
        .await;
    let fulfilled: i128 = outcomes.iter().filter(|o| o.1).map(|o| o.0 as i128).sum();
    assert!(outcomes.iter().any(|o| !o.1) && outcomes.iter().any(|o| o.1));
    for node in [&a, &b] {
        assert_eq!(node.balance("alice").await, -fulfilled * 1000);
        assert_eq!(node.balance("carol").await, fulfilled);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_during_a_load_gives_t00_and_no_drift() {
    if !redis_or_skip("redis_stopped_during_a_load_gives_t00_and_no_drift") {
        return;
    }
    let redis = std::sync::Arc::new(std::sync::Mutex::new(RedisServer::start_with_aof()));
    let url = redis.lock().unwrap().url();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let node = redis_node(&node_toml(&url, &downstream.url())).await;
    let client = client();
    // Redis goes away after 300 packets and comes back 2.5 s later, while 20 are in flight. (A
    // blip shorter than the connection manager's bounded retries only delays packets.)
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let outage = {
        let (redis, sent, client, url) = (redis.clone(), sent.clone(), client.clone(), node.url());
        tokio::spawn(async move {
            while sent.load(std::sync::atomic::Ordering::SeqCst) < 300 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let down = redis.clone();
            tokio::task::spawn_blocking(move || down.lock().unwrap().stop()).await.unwrap();
            // Packets sent while Redis is down: their debit cannot be written, so T00. (The load's
            // own packets may all be waiting in their Fulfill's retries meanwhile.)
            let mut probes = Vec::new();
            let until = std::time::Instant::now() + Duration::from_millis(2500);
            while std::time::Instant::now() < until {
                let p = prepare_with_id("test.n.carol", 1_000_000, Duration::from_secs(5), 1_000_000);
                probes.push(send(&client, &url, "alice-token", &p).await.packet());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::task::spawn_blocking(move || redis.lock().unwrap().restart()).await.unwrap();
            probes
        })
    };
    let codes: Vec<Option<ErrorCode>> = stream::iter(0..1500u64)
        .map(|i| {
            let (client, url, sent) = (client.clone(), node.url(), sent.clone());
            async move {
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let p = prepare_with_id("test.n.carol", 1_000_000, Duration::from_secs(5), i);
                match send(&client, &url, "alice-token", &p).await.packet() {
                    Response::Fulfill(_) => None,
                    Response::Reject(r) => Some(r.code()),
                }
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let probes = outage.await.unwrap();
    assert!(!probes.is_empty());
    for probe in &probes {
        match probe {
            Response::Reject(r) => assert_eq!(r.code(), ErrorCode::T00_INTERNAL_ERROR, "{r:?}"),
            Response::Fulfill(_) => panic!("a packet was fulfilled while Redis was down"),
        }
    }
    let t00 = codes.iter().filter(|c| **c == Some(ErrorCode::T00_INTERNAL_ERROR)).count();
    let fulfilled = codes.iter().filter(|c| c.is_none()).count();
    eprintln!("load during the outage: {t00} T00, {fulfilled} fulfilled, {} in all", codes.len());
    assert!(
        codes.iter().all(|c| matches!(c, None | Some(ErrorCode::T00_INTERNAL_ERROR))),
        "only T00: {codes:?}"
    );
    assert!(codes.iter().filter(|c| c.is_none()).count() > 300, "recovered after the outage");
    // Debits whose outcome could not be written during the outage are released by the sweeper
    // once their packets expire, and the writes of Fulfills relayed during the outage land from
    // the background retrier once Redis is back (a commit whose reservation was swept meanwhile
    // charges it again). Nothing has drifted once both have settled; a write lost or applied
    // twice never settles, and the deadline fails the test. An answer the store could not give
    // in time (a busy machine) is asked again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let store = &node.node.store;
        let (alice_audit, carol_audit) = (store.audit("alice").await, store.audit("carol").await);
        let (alice, carol) = (store.balance("alice").await, store.balance("carol").await);
        if let (Ok(alice_audit), Ok(carol_audit), Ok(alice), Ok(carol)) =
            (&alice_audit, &carol_audit, &alice, &carol)
        {
            // Every charged packet was credited, and only those.
            if alice_audit.reserved == 0 && *alice == -carol * 1000 {
                assert!(alice_audit.agrees() && carol_audit.agrees(), "{alice_audit:?} {carol_audit:?}");
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not settled 30 s after the load: alice {alice:?} carol {carol:?}\n{alice_audit:?}\n{carol_audit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sweeper folds journal entries older than the retention on every account it sweeps; the
/// audit still agrees. (Retention zero here, so everything already written is old enough.)
///
/// A sweep that meets a slow Redis (a busy machine, past the store's response timeout) only logs
/// and leaves the rest to the next tick, and an entry written in the sweep's own millisecond is
/// not old enough yet: so sweeps run, as the sweeper's ticks would, until both journals are
/// folded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_folds_old_journal_entries() {
    if !redis_or_skip("the_sweeper_folds_old_journal_entries") {
        return;
    }
    let redis = RedisServer::start();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let toml = node_toml(&redis.url(), &downstream.url());
    let node = redis_node(&toml).await;
    for i in 0..20 {
        send(
            &client(),
            &node.url(),
            "alice-token",
            &prepare_with_id("test.n.carol", 1_000_000, TEN_SECONDS, i),
        )
        .await
        .fulfill();
    }
    let mut rules = Config::from_toml(&toml).unwrap().sweep;
    rules.journal_retention = Duration::ZERO;
    let journals = [("alice", "e2e:{alice}:journal"), ("carol", "e2e:{carol}:journal")];
    let journal_len = |key: &str| match redis.cmd(&["XLEN", key]) {
        common::redis::Resp::Integer(n) => n,
        other => panic!("XLEN {key}: {other:?}"),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        thitsax::sweeper::sweep_once(&node.node, &rules).await;
        let left: Vec<i64> = journals.iter().map(|(_, key)| journal_len(key)).collect();
        if left.iter().all(|&n| n == 0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "journal entries left unfolded after 30 s: {left:?}");
        tokio::time::sleep(rules.interval).await;
    }
    for (account, _) in journals {
        let line = node.node.store.audit(account).await.unwrap();
        assert!(line.agrees() && line.entries == 20, "{account}: {line:?}");
    }
}
