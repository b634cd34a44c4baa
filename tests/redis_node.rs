//! Real ThitsaX nodes on the Redis store, against `redis-server` processes the tests start:
//! balances survive a node restart, a Redis outage is T00 and changes nothing, and two instances
//! sharing one Redis keep the money invariant under concurrent packets.

mod common;

use common::redis::{redis_or_skip, RedisServer};
use common::*;
use futures::stream::{self, StreamExt};
use std::time::Duration;
use thitsax::config::{Config, StoreConfig};
use thitsax::packet::{ErrorCode, Response};
use thitsax::store::RedisStore;

const TEN_SECONDS: Duration = Duration::from_secs(10);

fn node_toml(redis_url: &str, downstream: &str) -> String {
    format!(
        r#"
[node]
ilp_address = "test.n"
log_level = "warn"
[store]
kind = "redis"
url = "{redis_url}"
prefix = "e2e"
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
    TestNode::start_with(toml, RedisStore::connect(&redis).await.unwrap()).await
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
    // Every third packet is rejected downstream.
    let downstream = Downstream::start(std::sync::Arc::new(|p: &thitsax::packet::Prepare| {
        if p.data()[7] % 3 == 0 {
            Behaviour::Reject
        } else {
            Behaviour::Fulfill
        }
    }))
    .await;
    let toml = node_toml(&redis.url(), &downstream.url());
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
    // Both instances see the same, exact balances.
    for node in [&a, &b] {
        assert_eq!(node.balance("alice").await, -fulfilled * 1000);
        assert_eq!(node.balance("carol").await, fulfilled);
    }
}
