//! The node's own STREAM receiver on Redis, against `redis-server` processes the tests start:
//! two instances sharing one Redis answer the same incoming payment's packets (the STREAM
//! server secret is shared through Redis), take exactly its target between them under
//! concurrent packets, and its total and credentials survive the restart of both.

mod common;

use common::redis::{redis_or_skip, RedisServer};
use common::stream::{query, stream_prepare, Spsp};
use common::{admin_call, client, send, TestNode};
use futures::stream::{self, StreamExt};
use hyper::StatusCode;
use thitsax::config::{Config, StoreConfig};
use thitsax::packet::Response;
use thitsax::store::RedisStore;

const ADMIN: &str = "admin-token";

fn toml(redis_url: &str) -> String {
    format!(
        r#"
[node]
ilp_address = "test.recv"
log_level = "error"
[store]
kind = "redis"
url = "{redis_url}"
prefix = "receiver"
[admin]
token = "{ADMIN}"
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 2
incoming_token = "alice-token"
min_balance = -1000000
[[accounts]]
id = "shop"
relation = "local"
asset_code = "USD"
asset_scale = 2
"#
    )
}

async fn redis_node(toml: &str) -> TestNode<RedisStore> {
    let StoreConfig::Redis(redis) = Config::from_toml(toml).unwrap().store else { panic!("redis config") };
    TestNode::start_redis(toml, RedisStore::connect(&redis).await.unwrap()).await
}

async fn create(node: &TestNode<RedisStore>, id: &str, target: u64) {
    let body = format!(r#"{{"id": "{id}", "target": "{target}"}}"#);
    let path = "/accounts/shop/incoming-payments";
    admin_call(&client(), node.admin_addr.unwrap(), "POST", path, Some(ADMIN), Some(&body))
        .await
        .json(StatusCode::CREATED);
}

async fn payment(node: &TestNode<RedisStore>, id: &str) -> serde_json::Value {
    let path = format!("/accounts/shop/incoming-payments/{id}");
    admin_call(&client(), node.admin_addr.unwrap(), "GET", &path, Some(ADMIN), None)
        .await
        .json(StatusCode::OK)
}

/// Sends one STREAM packet of `amount` through `node`; true when it was fulfilled.
async fn pays(node: &TestNode<RedisStore>, to: &Spsp, amount: u64, sequence: u64) -> bool {
    let prepare = stream_prepare(to, amount, sequence, false);
    matches!(send(&client(), &node.url(), "alice-token", &prepare).await.packet(), Response::Fulfill(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_take_exactly_the_target_and_a_payment_survives_their_restart() {
    if !redis_or_skip("two_instances_take_exactly_the_target_and_a_payment_survives_their_restart") {
        return;
    }
    let redis = RedisServer::start();
    let toml = toml(&redis.url());
    let (a, b) = (redis_node(&toml).await, redis_node(&toml).await);
    create(&a, "race", 1000).await;
    create(&a, "later", 100).await;
    // Credentials from A's SPSP listener are answered by B too: one secret, kept in Redis.
    let to = query(&a, "/shop/race").await;
    assert!(pays(&a, &to, 400, 1).await);
    assert!(pays(&b, &to, 400, 2).await);
    // 200 left; 12 packets of 50 race on both instances: exactly 4 fit.
    let sends = (0..12u64).map(|i| {
        let (node, to) = (if i % 2 == 0 { &a } else { &b }, &to);
        async move { pays(node, to, 50, 10 + i).await }
    });
    let fulfilled =
        stream::iter(sends).buffer_unordered(12).filter(|ok| std::future::ready(*ok)).count().await;
    assert_eq!(fulfilled, 4, "exactly the target, whichever instance answers");
    let race = payment(&b, "race").await;
    assert_eq!((race["received"].as_str(), race["state"].as_str()), (Some("1000"), Some("completed")));
    // Half of "later", then both instances restart.
    let later = query(&b, "/shop/later").await;
    assert!(pays(&b, &later, 60, 1).await);
    a.stop().await;
    b.stop().await;
    let a = redis_node(&toml).await;
    assert_eq!(payment(&a, "later").await["received"].as_str(), Some("60"), "the total survives the restart");
    // Credentials issued before the restart still pay: the secret lives in Redis.
    assert!(!pays(&a, &later, 41, 2).await, "past the target");
    assert!(pays(&a, &later, 40, 3).await);
    let done = payment(&a, "later").await;
    assert_eq!(
        (done["received"].as_str(), done["completion"].as_str()),
        (Some("100"), Some("target_reached"))
    );
    assert_eq!((a.balance("alice").await, a.balance("shop").await), (-1100, 1100));
    // `thitsax audit`'s reconciliation: the journal sums to each balance.
    for account in ["alice", "shop"] {
        let line = a.node.store.audit(account).await.unwrap();
        assert!(line.agrees(), "{line:?}");
    }
    a.stop().await;
}
