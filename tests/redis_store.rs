//! The Redis store against real `redis-server` processes started by the test (a private server
//! on a free port, and a 3-master Redis Cluster): the shared store suite, and Redis outages.

mod common;

use common::redis::{redis_or_skip, RedisCluster, RedisServer};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use thitsax::account::test_account;
use thitsax::limits::{INCOMING_PAYMENT_RETENTION_S, OUTGOING_PACKETS_MAX, OUTGOING_PAYMENT_RETENTION_S};
use thitsax::store::{
    suite, AmountKind, CreatedIncoming, CreatedOutgoing, DebitError, IncomingPaymentId, NewIncomingPayment,
    NewOutgoingPayment, OutgoingPaymentId, OutgoingState, PacketId, PacketOutcome, Receipt, RedisConfig,
    RedisStore, Reserved, Store, StoreError,
};

fn config(urls: Vec<String>, cluster: bool) -> RedisConfig {
    RedisConfig {
        urls,
        cluster,
        prefix: "test".into(),
        response_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        credit_marker_ttl_s: 90_000,
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
    suite::concurrent_settlements(store.clone(), "single").await;
    suite::concurrent_receives(store.clone(), "single").await;
    suite::concurrent_outgoing_reservations(store.clone(), "single").await;
    // Every account the suite touched reconciles with its journal.
    for name in [
        "limit",
        "nolimit",
        "reverse",
        "idem",
        "credit",
        "exact",
        "edge",
        "top",
        "sweep",
        "race",
        "settle",
        "rule-neg-both",
        "rule-max-to-min",
        "rule-max-to-zero",
        "rule-min-balance-to-min",
        "rule-zero-to-min",
        "incoming",
        "settle-race",
        "in-once",
        "in-target",
        "in-over",
        "in-expired",
        "in-scan",
        "in-handled",
        "in-none",
        "in-edges",
        "in-edges-top",
        "in-edges-53",
        "in-race",
    ] {
        let line = store.audit(&format!("single-{name}")).await.unwrap();
        assert!(line.agrees() && line.entries > 0, "{line:?}");
    }
    // Outgoing payments never touch a balance (their packets' money moves through the packet
    // path): their accounts still reconcile, with nothing in the journal.
    for name in [
        "out-create",
        "out-lease",
        "out-reserve",
        "out-record",
        "out-rejects",
        "out-doubt",
        "out-finish",
        "out-connection",
        "out-delivered",
        "out-edges",
        "out-retention",
        "out-race",
    ] {
        let line = store.audit(&format!("single-{name}")).await.unwrap();
        assert!(line.agrees() && line.balance == 0 && line.entries == 0, "{name}: {line:?}");
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
    let store = Arc::new(store);
    suite::concurrent_debits(store.clone(), "cluster").await;
    suite::concurrent_settlements(store.clone(), "cluster").await;
    suite::concurrent_receives(store.clone(), "cluster").await;
    suite::concurrent_outgoing_reservations(store, "cluster").await;
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
    // (Unavailable or Uncertain, depending on whether the connection's loss was noticed before
    // the request was written.)
    assert!(
        matches!(down, Err(DebitError::Store(StoreError::Unavailable(_) | StoreError::Uncertain(_)))),
        "{down:?}"
    );
    let read = store.balance(&a.id).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_) | StoreError::Uncertain(_))), "{read:?}");

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

/// A credit sent again after an uncertain outcome: applied once whichever attempt got through,
/// however busy the account's journal is (the check is the packet's own marker, not a search).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_credits_apply_once() {
    if !redis_or_skip("retried_credits_apply_once") {
        return;
    }
    let server = RedisServer::start();
    let store = Arc::new(RedisStore::connect(&config(vec![server.url()], false)).await.unwrap());
    retried_credits_apply_once_on(store, "single").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_credits_apply_once_on_a_cluster() {
    if !redis_or_skip("retried_credits_apply_once_on_a_cluster") {
        return;
    }
    let cluster = RedisCluster::start(3);
    let store = Arc::new(RedisStore::connect(&config(cluster.urls(), true)).await.unwrap());
    retried_credits_apply_once_on(store, "cluster").await;
}

async fn retried_credits_apply_once_on(store: Arc<RedisStore>, prefix: &str) {
    let b = test_account(&format!("{prefix}-retry"));
    let first_sent = SystemTime::now();
    let p = PacketId::next();
    assert_eq!(store.credit_fulfill(&b, 5, p).await, Ok(5));
    store.credit_fulfill(&b, 1, PacketId::next()).await.unwrap();
    // The first attempt got through: its retries change nothing.
    assert_eq!(store.retry_credit(&b, 5, p, first_sent).await, Ok(6));
    assert_eq!(store.retry_credit(&b, 5, p, first_sent).await, Ok(6));
    // It did not: the first retry credits, the next ones find it.
    let q = PacketId::next();
    assert_eq!(store.retry_credit(&b, 7, q, first_sent).await, Ok(13));
    assert_eq!(store.retry_credit(&b, 7, q, first_sent).await, Ok(13));
    assert!(store.audit(&b.id).await.unwrap().agrees());
    // A first attempt older than the marker's TTL: the marker may be gone, so no credit.
    let long_ago = SystemTime::now() - Duration::from_secs(90_000);
    let old = store.retry_credit(&b, 7, PacketId::next(), long_ago).await;
    assert!(matches!(old, Err(StoreError::Unverifiable(_))), "{old:?}");
    assert_eq!(store.balance(&b.id).await, Ok(13));

    // A busy account: more than 10,000 journal entries since the first attempt. A retry of the
    // credit applied before them changes nothing; a retry of one never applied credits once.
    let busy = Arc::new(test_account(&format!("{prefix}-busy")));
    let first_sent = SystemTime::now();
    let applied = PacketId::next();
    assert_eq!(store.credit_fulfill(&busy, 9, applied).await, Ok(9));
    futures::stream::iter(0..10_001)
        .for_each_concurrent(50, |_| {
            let (store, busy) = (store.clone(), busy.clone());
            async move {
                store.credit_fulfill(&busy, 1, PacketId::next()).await.unwrap();
            }
        })
        .await;
    assert_eq!(store.retry_credit(&busy, 9, applied, first_sent).await, Ok(10_010));
    let lost = PacketId::next();
    assert_eq!(store.retry_credit(&busy, 4, lost, first_sent).await, Ok(10_014));
    assert_eq!(store.retry_credit(&busy, 4, lost, first_sent).await, Ok(10_014));
    assert_eq!(store.balance(&busy.id).await, Ok(10_014));
    assert!(store.audit(&busy.id).await.unwrap().agrees());
}

fn xlen(server: &RedisServer, key: &str) -> i64 {
    match server.cmd(&["XLEN", key]) {
        common::redis::Resp::Integer(n) => n,
        other => panic!("XLEN {key}: {other:?}"),
    }
}

/// Old journal entries are folded into a checkpoint: the journal shrinks, the audit still counts
/// every entry and agrees; a malformed entry stops the fold without changing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folding_the_journal_keeps_the_audit_exact() {
    if !redis_or_skip("folding_the_journal_keeps_the_audit_exact") {
        return;
    }
    let server = RedisServer::start();
    let store = RedisStore::connect(&config(vec![server.url()], false)).await.unwrap();
    let a = test_account("fold");
    let soon = SystemTime::now() + Duration::from_secs(30);
    for i in 0..300u64 {
        let p = PacketId::next();
        store.debit_prepare(&a, 1 + i, p, soon).await.unwrap();
        if i % 3 == 0 {
            store.reverse_prepare(&a, 1 + i, p).await.unwrap();
        }
    }
    let everything = SystemTime::now() + Duration::from_secs(1);
    // Nothing is older than an hour ago.
    assert_eq!(store.fold_journal(&a, SystemTime::now() - Duration::from_secs(3600), 1000).await, Ok(0));
    assert_eq!(store.fold_journal(&a, everything, 150).await, Ok(150));
    assert_eq!(xlen(&server, "test:{fold}:journal"), 250);
    let line = store.audit("fold").await.unwrap();
    assert!(line.agrees() && line.entries == 400, "{line:?}");
    assert_eq!(store.fold_journal(&a, everything, 1000).await, Ok(250));
    assert_eq!(xlen(&server, "test:{fold}:journal"), 0);
    let line = store.audit("fold").await.unwrap();
    assert!(line.agrees() && line.entries == 400, "{line:?}");
    store.credit_fulfill(&a, 5, PacketId::next()).await.unwrap();
    let line = store.audit("fold").await.unwrap();
    assert!(line.agrees() && line.entries == 401, "{line:?}");

    server.cmd(&[
        "XADD",
        "test:{fold}:journal",
        "*",
        "kind",
        "fulfill",
        "packet",
        "x",
        "change",
        "12x",
        "balance",
        "0",
    ]);
    let refused = store.fold_journal(&a, SystemTime::now() + Duration::from_secs(1), 1000).await;
    assert!(matches!(refused, Err(StoreError::Corrupt(_))), "{refused:?}");
    assert_eq!(xlen(&server, "test:{fold}:journal"), 2, "nothing folded");
}

/// Folding while packets move and audits run: every audit agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audits_agree_while_the_journal_is_folded_under_load() {
    if !redis_or_skip("audits_agree_while_the_journal_is_folded_under_load") {
        return;
    }
    let server = RedisServer::start();
    let store = Arc::new(RedisStore::connect(&config(vec![server.url()], false)).await.unwrap());
    let a = Arc::new(test_account("busyfold"));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (store, a, done) = (store.clone(), a.clone(), done.clone());
        tokio::spawn(async move {
            futures::stream::iter(0..8000u64)
                .for_each_concurrent(20, |i| {
                    let (store, a) = (store.clone(), a.clone());
                    async move {
                        let p = PacketId::next();
                        let soon = SystemTime::now() + Duration::from_secs(30);
                        store.debit_prepare(&a, i + 1, p, soon).await.unwrap();
                        if i % 2 == 0 {
                            store.commit_prepare(&a, i + 1, p).await.unwrap();
                        } else {
                            store.reverse_prepare(&a, i + 1, p).await.unwrap();
                        }
                    }
                })
                .await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let folder = {
        let (store, a, done) = (store.clone(), a.clone(), done.clone());
        tokio::spawn(async move {
            let mut folded = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                // Everything older than 50 ms: a retention far shorter than the configuration
                // allows, so folds race the audits' reads as closely as they ever could.
                let before = SystemTime::now() - Duration::from_millis(50);
                folded += store.fold_journal(&a, before, 50).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            folded
        })
    };
    let mut audits = 0;
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        let line = store.audit("busyfold").await.unwrap();
        assert!(line.agrees(), "{line:?}");
        audits += 1;
    }
    load.await.unwrap();
    let folded = folder.await.unwrap();
    let line = store.audit("busyfold").await.unwrap();
    assert!(line.agrees() && line.entries == 12_000 && line.reserved == 0, "{line:?}");
    assert!(folded > 0 && audits > 0, "folded {folded}, audits {audits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_data_is_corrupt_never_a_refusal_and_never_retried() {
    if !redis_or_skip("corrupt_data_is_corrupt_never_a_refusal_and_never_retried") {
        return;
    }
    let server = RedisServer::start();
    let store = RedisStore::connect(&config(vec![server.url()], false)).await.unwrap();
    let soon = SystemTime::now() + Duration::from_secs(30);
    // A balance that is not an integer: the prepare script's DECRBY fails, which it reported as
    // "out of range" (T04, insufficient liquidity, to the sender).
    let a = test_account("garbled");
    server.cmd(&["SET", "test:{garbled}:balance", "abc"]);
    let debit = store.debit_prepare(&a, 5, PacketId::next(), soon).await;
    assert!(matches!(debit, Err(DebitError::Store(StoreError::Corrupt(_)))), "{debit:?}");
    assert!(!thitsax::pending::retryable(&StoreError::Corrupt(String::new())));
    // A pending settlement record that is not '<amount>:<ms>' is corrupt, not an outage.
    let s = test_account("bad-settlement");
    server.cmd(&["HSET", "test:{bad-settlement}:settlements", "00000000000000000000000000000001", "-5:1"]);
    let pending = store.pending_settlements(&s).await;
    assert!(matches!(pending, Err(StoreError::Corrupt(_))), "{pending:?}");
    let id = thitsax::settlement::SettlementId::parse("00000000000000000000000000000001").unwrap();
    let finish = store.finish_settlement(&s, id, thitsax::store::SettlementEnd::Refunded).await;
    assert!(matches!(finish, Err(StoreError::Corrupt(_))), "{finish:?}");
    assert_eq!(store.balance("bad-settlement").await, Ok(0), "nothing refunded from a malformed record");
}

/// The texts of an array reply (nested arrays flattened), e.g. HGETALL's fields and values.
fn texts(reply: common::redis::Resp) -> Vec<String> {
    match reply {
        common::redis::Resp::Array(Some(items)) => items.into_iter().flat_map(texts).collect(),
        other => other.text().into_iter().collect(),
    }
}

/// An incoming payment's keys are the ones the key schema names, under the account's tag; the
/// packet it receives is marked where a Fulfill's credit marks it (so a retried credit of the
/// same packet changes nothing); once handled and past the retention, nothing of the payment is
/// left, while the money's keys (balance, journal, marks) stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_payments_keep_the_key_schema_and_leave_nothing_after_the_retention() {
    if !redis_or_skip("incoming_payments_keep_the_key_schema_and_leave_nothing_after_the_retention") {
        return;
    }
    let server = RedisServer::start();
    let store = RedisStore::connect(&config(vec![server.url()], false)).await.unwrap();
    let a = test_account("schema");
    // Now in whole milliseconds, as the store keeps it.
    let now_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis().to_string();
    let now = SystemTime::UNIX_EPOCH + Duration::from_millis(now_ms.parse().unwrap());
    let id = IncomingPaymentId::parse("k1").unwrap();
    let new = NewIncomingPayment {
        id: id.clone(),
        target: Some(10),
        expires_at: now + Duration::from_secs(60),
        metadata: r#"{"k":1}"#.into(),
    };
    assert!(matches!(store.create_incoming_payment(&a, &new, now).await, Ok(CreatedIncoming::Created(_))));
    let packet = PacketId::next();
    let receipt = store.receive(&a, Some(&id), 10, packet, now).await;
    assert_eq!(receipt, Ok(Receipt::Received { balance: 10, received: Some(10), completed: true }));

    let mut record = texts(server.cmd(&["HGETALL", "test:{schema}:incoming:k1"]))
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect::<Vec<_>>();
    record.sort();
    let expires_ms = (now_ms.parse::<u64>().unwrap() + 60_000).to_string();
    let expected = [
        ("completed_ms", now_ms.as_str()),
        ("created_ms", &now_ms),
        ("expires_ms", &expires_ms),
        ("handled", "0"),
        ("metadata", r#"{"k":1}"#),
        ("reason", "target"),
        ("received", "10"),
        ("state", "completed"),
        ("target", "10"),
    ]
    .map(|(f, v)| (f.to_string(), v.to_string()));
    assert_eq!(record, expected);
    assert_eq!(texts(server.cmd(&["ZRANGE", "test:{schema}:incoming-all", "0", "-1"])), ["k1"]);
    assert!(texts(server.cmd(&["ZRANGE", "test:{schema}:incoming-open", "0", "-1"])).is_empty());
    assert_eq!(
        texts(server.cmd(&["ZRANGE", "test:{schema}:incoming-unhandled", "0", "-1", "WITHSCORES"])),
        ["k1", now_ms.as_str()]
    );
    let last = texts(server.cmd(&["XREVRANGE", "test:{schema}:journal", "+", "-", "COUNT", "1"]));
    let packet_text = packet.to_string();
    assert_eq!(
        last[1..],
        ["kind", "receive", "packet", packet_text.as_str(), "change", "10", "balance", "10", "payment", "k1"]
    );
    // The mark is a Fulfill's credit mark: a retried credit of this packet finds it.
    assert_eq!(store.retry_credit(&a, 10, packet, now).await, Ok(10));
    assert!(store.audit("schema").await.unwrap().agrees());

    assert_eq!(store.mark_completion_handled(&a, &id).await, Ok(true));
    assert_eq!(
        texts(server.cmd(&["ZRANGE", "test:{schema}:incoming-handled", "0", "-1", "WITHSCORES"])),
        ["k1", now_ms.as_str()]
    );
    let past_retention = now + Duration::from_secs(INCOMING_PAYMENT_RETENTION_S) + Duration::from_millis(1);
    assert_eq!(store.expire_incoming_payments(&a, past_retention, 10).await, Ok(0));
    let mut left = texts(server.cmd(&["KEYS", "test:{schema}:*"]));
    left.sort();
    let hour = now_ms.parse::<u64>().unwrap() / 3_600_000;
    assert_eq!(
        left,
        [
            "test:{schema}:balance".to_string(),
            format!("test:{{schema}}:credited:{hour}"),
            "test:{schema}:journal".into()
        ]
    );
}

/// A payment record no script wrote (tampered with, or a binary out of step) is Corrupt, with
/// nothing received; never a refusal the sender would see as the payment's business.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_incoming_payment_is_corrupt_and_receives_nothing() {
    if !redis_or_skip("a_malformed_incoming_payment_is_corrupt_and_receives_nothing") {
        return;
    }
    let server = RedisServer::start();
    let store = RedisStore::connect(&config(vec![server.url()], false)).await.unwrap();
    let a = test_account("bad-incoming");
    let now = SystemTime::now();
    let id = IncomingPaymentId::parse("p").unwrap();
    let new = NewIncomingPayment {
        id: id.clone(),
        target: None,
        expires_at: now + Duration::from_secs(60),
        metadata: "1".into(),
    };
    store.create_incoming_payment(&a, &new, now).await.unwrap();
    for (field, value) in
        [("received", "1.5"), ("received", "-1"), ("state", "paused"), ("expires_ms", "soon")]
    {
        let key = "test:{bad-incoming}:incoming:p";
        server.cmd(&["HSET", key, "received", "0", "state", "open", "expires_ms", "99999999999999"]);
        server.cmd(&["HSET", key, field, value]);
        let receipt = store.receive(&a, Some(&id), 5, PacketId::next(), now).await;
        assert!(matches!(receipt, Err(StoreError::Corrupt(_))), "{field} = {value}: {receipt:?}");
        let read = store.incoming_payment(&a, &id).await;
        assert!(matches!(read, Err(StoreError::Corrupt(_))), "{field} = {value}: {read:?}");
        assert_eq!(store.balance("bad-incoming").await, Ok(0), "{field} = {value}: nothing credited");
    }
}

/// A hash's fields and values, sorted by field.
fn hash(server: &RedisServer, key: &str) -> Vec<(String, String)> {
    let mut fields = texts(server.cmd(&["HGETALL", key]))
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect::<Vec<_>>();
    fields.sort();
    fields
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = items.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect();
    pairs.sort();
    pairs
}

/// Now in whole milliseconds, as the store keeps it, and as text.
fn now_ms() -> (SystemTime, u64) {
    let ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
    (SystemTime::UNIX_EPOCH + Duration::from_millis(ms), ms)
}

fn new_outgoing(id: &str, amount: u64, now: SystemTime) -> NewOutgoingPayment {
    NewOutgoingPayment {
        id: OutgoingPaymentId::parse(id).unwrap(),
        receiver: "$wallet.example/bob".into(),
        amount,
        kind: AmountKind::Source,
        slippage: "0.01".into(),
        deadline: now + Duration::from_secs(600),
        source_max: None,
        probed: None,
    }
}

/// An outgoing payment's keys are the ones the key schema names, under the paying account's tag,
/// and hold what it says; a payment touches no balance or journal; once ended and past the
/// retention, nothing of it is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_payments_keep_the_key_schema_and_leave_nothing_after_the_retention() {
    if !redis_or_skip("outgoing_payments_keep_the_key_schema_and_leave_nothing_after_the_retention") {
        return;
    }
    let server = RedisServer::start();
    let store = RedisStore::connect(&config(vec![server.url()], false)).await.unwrap();
    let a = test_account("schema-out");
    let (now, ms) = now_ms();
    let new = new_outgoing("o1", 100, now);
    let id = new.id.clone();
    assert!(matches!(store.create_outgoing_payment(&a, &new, now).await, Ok(CreatedOutgoing::Created(_))));
    let lease = Duration::from_secs(10);
    let grace = Duration::from_secs(2);
    store.claim_outgoing_payment(&a, &id, "node-a", now, lease, grace).await.unwrap().unwrap();
    let secret = [0xab; 32];
    store.set_outgoing_connection(&a, &id, "node-a", "g.bob.x", &secret).await.unwrap().unwrap();
    let expires = now + Duration::from_secs(30);
    for (packet, amount, least) in [(5, 30, 20), (6, 10, 5), (7, 1, 0)] {
        let reserved = store.reserve_outgoing_packet(&a, &id, "node-a", packet, amount, least, expires).await;
        assert_eq!(reserved, Ok(Reserved::Reserved));
    }
    assert_eq!(
        store.record_outgoing_packet(&a, &id, 6, PacketOutcome::Fulfilled { delivered: 9 }).await,
        Ok(true)
    );
    assert_eq!(
        store.record_outgoing_packet(&a, &id, 7, PacketOutcome::Rejected { code: *b"F08" }).await,
        Ok(true)
    );

    let record = "test:{schema-out}:outgoing:o1";
    let mut fields = hash(&server, record);
    let updated = fields.iter().position(|(f, _)| f == "updated_ms").unwrap();
    let updated_ms: u64 = fields.remove(updated).1.parse().unwrap();
    assert!(updated_ms >= ms, "updated by the node's clock");
    let (created, deadline) = (ms.to_string(), (ms + 600_000).to_string());
    let (until, expires_ms) = ((ms + 10_000).to_string(), (ms + 30_000).to_string());
    let secret_hex = "ab".repeat(32);
    let expected = pairs(&[
        ("receiver", "$wallet.example/bob"),
        ("amount", "100"),
        ("kind", "source"),
        ("slippage", "0.01"),
        ("deadline_ms", &deadline),
        ("created_ms", &created),
        ("state", "sending"),
        ("sent", "10"),
        ("delivered", "9"),
        ("in_flight", "30"),
        ("in_flight_min_delivered", "20"),
        ("in_doubt", "0"),
        ("packets_fulfilled", "1"),
        ("packets_rejected", "1"),
        ("packets_reserved", "3"),
        ("last_packet", "7"),
        ("reject:F08", "1"),
        ("reject_codes", "1"),
        ("destination", "g.bob.x"),
        ("shared_secret", &secret_hex),
        ("lease_owner", "node-a"),
        ("lease_until_ms", &until),
    ]);
    assert_eq!(fields, expected);
    assert_eq!(hash(&server, &format!("{record}:packets")), pairs(&[("5", &format!("30:20:{expires_ms}"))]));
    assert_eq!(
        texts(server.cmd(&["ZRANGE", &format!("{record}:in-flight"), "0", "-1", "WITHSCORES"])),
        ["5", expires_ms.as_str()]
    );
    let mut done = texts(server.cmd(&["SMEMBERS", &format!("{record}:done")]));
    done.sort();
    assert_eq!(done, ["6", "7"]);
    assert_eq!(
        texts(server.cmd(&["ZRANGE", "test:{schema-out}:outgoing-all", "0", "-1", "WITHSCORES"])),
        ["o1", created.as_str()]
    );
    assert_eq!(
        texts(server.cmd(&["ZRANGE", "test:{schema-out}:outgoing-sending", "0", "-1", "WITHSCORES"])),
        ["o1", created.as_str()]
    );

    // Ended: the lease and the in-flight set go, what was in flight is in doubt and stays
    // recordable (its reservation is kept), and the payment is among the ended ones.
    let failed = OutgoingState::Failed;
    assert_eq!(store.finish_outgoing_payment(&a, &id, "node-a", failed, "deadline passed").await, Ok(true));
    let fields = hash(&server, record);
    let get = |name: &str| fields.iter().find(|(f, _)| f == name).map(|(_, v)| v.as_str());
    assert_eq!((get("state"), get("stop_reason")), (Some("failed"), Some("deadline passed")));
    assert_eq!(
        (get("in_flight"), get("in_flight_min_delivered"), get("in_doubt")),
        (Some("0"), Some("0"), Some("30"))
    );
    assert_eq!((get("lease_owner"), get("lease_until_ms")), (None, None));
    assert_eq!(server.cmd(&["EXISTS", &format!("{record}:in-flight")]), common::redis::Resp::Integer(0));
    assert_eq!(hash(&server, &format!("{record}:packets")).len(), 1);
    assert!(texts(server.cmd(&["ZRANGE", "test:{schema-out}:outgoing-sending", "0", "-1"])).is_empty());
    let ended = texts(server.cmd(&["ZRANGE", "test:{schema-out}:outgoing-ended", "0", "-1", "WITHSCORES"]));
    assert_eq!(ended[0], "o1");
    let ended_ms: u64 = ended[1].parse().unwrap();
    assert!(ended_ms >= ms);
    let line = store.audit("schema-out").await.unwrap();
    assert!(line.agrees() && (line.balance, line.entries) == (0, 0), "{line:?}");

    // A creation past the retention deletes it, keys and index entries; only the new payment's
    // keys are left.
    let past = SystemTime::UNIX_EPOCH
        + Duration::from_millis(ended_ms)
        + Duration::from_secs(OUTGOING_PAYMENT_RETENTION_S)
        + Duration::from_millis(1);
    let later = new_outgoing("o2", 5, past);
    assert!(matches!(store.create_outgoing_payment(&a, &later, past).await, Ok(CreatedOutgoing::Created(_))));
    let mut left = texts(server.cmd(&["KEYS", "test:{schema-out}:*"]));
    left.sort();
    assert_eq!(
        left,
        [
            "test:{schema-out}:outgoing-all",
            "test:{schema-out}:outgoing-sending",
            "test:{schema-out}:outgoing:o2"
        ]
    );
}

/// A payment record no script wrote (tampered with, or a binary out of step) is Corrupt for every
/// step, which changes nothing; never a business outcome a worker would act on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_outgoing_payment_is_corrupt_and_changes_nothing() {
    if !redis_or_skip("a_malformed_outgoing_payment_is_corrupt_and_changes_nothing") {
        return;
    }
    let server = RedisServer::start();
    let store = RedisStore::connect(&config(vec![server.url()], false)).await.unwrap();
    let a = test_account("bad-out");
    let (now, _) = now_ms();
    let id = OutgoingPaymentId::parse("p").unwrap();
    store.create_outgoing_payment(&a, &new_outgoing("p", 100, now), now).await.unwrap();
    let (lease, grace) = (Duration::from_secs(10), Duration::from_secs(2));
    store.claim_outgoing_payment(&a, &id, "A", now, lease, grace).await.unwrap().unwrap();
    let expires = now + Duration::from_secs(30);
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 1, 10, 0, expires).await, Ok(Reserved::Reserved));
    let key = "test:{bad-out}:outgoing:p";
    let good = hash(&server, key);
    for (field, value) in [
        ("sent", "1.5"),
        ("in_flight", "-1"),
        ("in_doubt", "9223372036854775808"),
        ("state", "paused"),
        ("kind", "sideways"),
        ("in_flight", "3"),
    ] {
        let mut restore = vec!["HSET", key];
        for (f, v) in &good {
            restore.push(f);
            restore.push(v);
        }
        server.cmd(&restore);
        server.cmd(&["HSET", key, field, value]);
        let before = hash(&server, key);
        let what = format!("{field} = {value}");
        let corrupt = |step: &str, result: String| {
            assert!(result.starts_with("Err(Corrupt("), "{what}: {step} answered {result}");
        };
        // A total below a reservation's amount is a count: only the steps that take the
        // reservation off it can tell.
        let below = (field, value) == ("in_flight", "3");
        if !below {
            corrupt("read", format!("{:?}", store.outgoing_payment(&a, &id).await));
        }
        let claim = store.claim_outgoing_payment(&a, &id, "A", expires + lease, lease, grace).await;
        corrupt("claim", format!("{claim:?}"));
        // The outcome is a fact, whatever kind the payment says it is.
        if field != "kind" {
            let record =
                store.record_outgoing_packet(&a, &id, 1, PacketOutcome::Fulfilled { delivered: 1 }).await;
            corrupt("record", format!("{record:?}"));
        }
        if !below {
            let reserve = store.reserve_outgoing_packet(&a, &id, "A", 2, 1, 0, expires).await;
            corrupt("reserve", format!("{reserve:?}"));
            let finish = store.finish_outgoing_payment(&a, &id, "A", OutgoingState::Failed, "x").await;
            corrupt("finish", format!("{finish:?}"));
        }
        assert_eq!(hash(&server, key), before, "{what}: nothing changed");
    }
    let line = store.audit("bad-out").await.unwrap();
    assert!(line.agrees() && line.balance == 0, "{line:?}");
}

/// A payment reserves at most OUTGOING_PACKETS_MAX packets in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_millionth_packet_is_a_payments_last() {
    if !redis_or_skip("the_millionth_packet_is_a_payments_last") {
        return;
    }
    let server = RedisServer::start();
    let store = RedisStore::connect(&config(vec![server.url()], false)).await.unwrap();
    let a = test_account("many-out");
    let (now, _) = now_ms();
    let id = OutgoingPaymentId::parse("p").unwrap();
    store.create_outgoing_payment(&a, &new_outgoing("p", 100, now), now).await.unwrap();
    let (lease, grace) = (Duration::from_secs(10), Duration::from_secs(2));
    store.claim_outgoing_payment(&a, &id, "A", now, lease, grace).await.unwrap().unwrap();
    // As if 999,999 packets had been reserved (and rejected) before.
    let almost = (OUTGOING_PACKETS_MAX - 1).to_string();
    server.cmd(&["HSET", "test:{many-out}:outgoing:p", "packets_reserved", &almost]);
    let expires = now + Duration::from_secs(30);
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 1, 1, 0, expires).await, Ok(Reserved::Reserved));
    assert_eq!(
        store.reserve_outgoing_packet(&a, &id, "A", 2, 1, 0, expires).await,
        Ok(Reserved::TooManyPackets)
    );
    assert_eq!(
        store.reserve_outgoing_packet(&a, &id, "A", 1, 1, 0, expires).await,
        Ok(Reserved::Reserved),
        "a retry"
    );
    let p = store.outgoing_payment(&a, &id).await.unwrap().unwrap();
    assert_eq!((p.in_flight, p.last_packet), (1, Some(1)));
}

/// The outgoing scripts' arithmetic on digits (`outgoing_prelude.lua`) against u128, where
/// doubles round and at the ends of the range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_scripts_add_and_subtract_exactly() {
    if !redis_or_skip("outgoing_scripts_add_and_subtract_exactly") {
        return;
    }
    let server = RedisServer::start();
    let script = format!(
        "{}\n{}\nreturn {{add(ARGV[1], ARGV[2]), room(ARGV[1], ARGV[2]), room(ARGV[2], ARGV[1]), \
         tostring(is_count(ARGV[1]))}}",
        include_str!("../src/store/redis/prelude.lua"),
        include_str!("../src/store/redis/outgoing_prelude.lua")
    );
    let max = i64::MAX as u128;
    let mut values: Vec<u128> =
        vec![0, 1, 9, 10, 99, 100, 999, 1000, (1 << 53) - 1, 1 << 53, (1 << 53) + 1, max - 1, max, max + 1];
    values.push(u64::MAX as u128);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..40 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        values.push((seed >> (seed % 60)) as u128);
    }
    for &x in &values {
        for &y in &values[..16] {
            let (xs, ys) = (x.to_string(), y.to_string());
            let got = texts(server.cmd(&["EVAL", &script, "0", &xs, &ys]));
            let expected = [
                (x + y).to_string(),
                x.saturating_sub(y).to_string(),
                y.saturating_sub(x).to_string(),
                (x <= max).to_string(),
            ];
            assert_eq!(got, expected, "{x} {y}");
        }
    }
}
