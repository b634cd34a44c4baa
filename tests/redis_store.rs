//! The Redis store against real `redis-server` processes started by the test (a private server
//! on a free port, and a 3-master Redis Cluster): the shared store suite, and Redis outages.

mod common;

use common::redis::{redis_or_skip, RedisCluster, RedisServer};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use thitsax::account::test_account;
use thitsax::store::{suite, DebitError, PacketId, RedisConfig, RedisStore, Store, StoreError};

fn config(urls: Vec<String>, cluster: bool) -> RedisConfig {
    RedisConfig {
        urls,
        cluster,
        prefix: "test".into(),
        response_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_redis_passes_the_shared_store_suite() {
    if !redis_or_skip("single_redis_passes_the_shared_store_suite") {
        return;
    }
    let server = RedisServer::start();
    let store = RedisStore::connect(&config(vec![server.url()], false)).await.unwrap();
    suite::run(&store, "single").await;
    let store = Arc::new(store);
    suite::concurrent_debits(store.clone(), "single").await;
    // Every account the suite touched reconciles with its journal.
    for name in ["limit", "nolimit", "reverse", "late", "credit", "exact", "edge", "top", "sweep", "race"] {
        let line = store.audit(&format!("single-{name}")).await.unwrap();
        assert!(line.agrees() && line.entries > 0, "{line:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_finds_a_tampered_balance() {
    if !redis_or_skip("audit_finds_a_tampered_balance") {
        return;
    }
    let server = RedisServer::start();
    let store = RedisStore::connect(&config(vec![server.url()], false)).await.unwrap();
    let a = test_account("tamper");
    let soon = SystemTime::now() + Duration::from_secs(30);
    // More than one page of journal entries.
    for _ in 0..1500 {
        store.debit_prepare(&a, 3, PacketId::next(), soon).await.unwrap();
    }
    let line = store.audit("tamper").await.unwrap();
    assert_eq!((line.balance, line.journal_sum, line.entries, line.reserved), (-4500, -4500, 1500, 1500));
    server.cmd(&["INCRBY", "test:{tamper}:balance", "1"]);
    let line = store.audit("tamper").await.unwrap();
    assert!(!line.agrees(), "{line:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_passes_the_shared_store_suite() {
    if !redis_or_skip("redis_cluster_passes_the_shared_store_suite") {
        return;
    }
    let cluster = RedisCluster::start(3);
    let store = RedisStore::connect(&config(cluster.urls(), true)).await.unwrap();
    suite::run(&store, "cluster").await;
    suite::concurrent_debits(Arc::new(store), "cluster").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_unavailable_changes_nothing_and_recovers() {
    if !redis_or_skip("redis_down_is_unavailable_changes_nothing_and_recovers") {
        return;
    }
    let mut server = RedisServer::start_with_aof();
    let store = RedisStore::connect(&config(vec![server.url()], false)).await.unwrap();
    let a = test_account("outage");
    let soon = SystemTime::now() + Duration::from_secs(30);
    store.debit_prepare(&a, 10, PacketId::next(), soon).await.unwrap();

    server.stop();
    // An outage is an operating failure (T00), never a refusal (T04).
    let down = store.debit_prepare(&a, 10, PacketId::next(), soon).await;
    assert!(matches!(down, Err(DebitError::Store(StoreError::Unavailable(_)))), "{down:?}");
    assert!(matches!(store.balance(&a.id).await, Err(StoreError::Unavailable(_))));

    server.restart();
    // The connection manager reconnects by itself; give it a few tries.
    let mut balance = store.balance(&a.id).await;
    for _ in 0..50 {
        if balance.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        balance = store.balance(&a.id).await;
    }
    assert_eq!(balance, Ok(-10), "the debit before the outage survived, the one during it never happened");
    assert_eq!(store.debit_prepare(&a, 5, PacketId::next(), soon).await, Ok(-15));
}
