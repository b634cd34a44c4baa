//! The behaviour every store must have, as one suite that each implementation runs (memory in
//! its unit tests, Redis and Redis Cluster in `tests/`). `prefix` keeps account ids of separate
//! runs apart when they share a database.

use super::incoming::{from_millis, millis};
use super::{
    AmountKind, CompletionReason, CreatedIncoming, CreatedOutgoing, DebitError, IncomingCredit,
    IncomingPayment, IncomingPaymentId, IncomingState, InvalidIncoming, InvalidOutgoing, NewIncomingPayment,
    NewOutgoingPayment, OutgoingPayment, OutgoingPaymentId, OutgoingState, PacketId, PacketOutcome, Receipt,
    ReceiveRefusal, ReplayKey, Reserved, SettlementEnd, Store, StoreError, Swept,
};
use crate::account::{test_account, Account};
use crate::balance::{Balance, BalanceError, AMOUNT_MAX};
use crate::limits::INCOMING_PAYMENT_RETENTION_S;
use crate::quantity::Quantity;
use crate::settlement_id::SettlementId;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn account(prefix: &str, name: &str, min_balance: Option<Balance>) -> Account {
    Account { min_balance, ..test_account(&format!("{prefix}-{name}")) }
}

fn released(released: usize) -> Swept {
    Swept { released, stuck: 0 }
}

fn soon() -> SystemTime {
    SystemTime::now() + Duration::from_secs(30)
}

/// Runs every single-threaded case.
pub async fn run<S: Store>(store: &S, prefix: &str) {
    debit_respects_the_credit_limit(store, prefix).await;
    reversal_happens_exactly_once(store, prefix).await;
    commits_are_idempotent(store, prefix).await;
    credit_adds(store, prefix).await;
    amounts_stay_exact_across_the_whole_range(store, prefix).await;
    unknown_accounts_have_zero_balance(store, prefix).await;
    sweeping_releases_only_expired_reservations_once(store, prefix).await;
    a_release_past_the_int64_maximum_stays_reserved_and_is_reported(store, prefix).await;
    settlements_move_the_balance_and_end_once(store, prefix).await;
    settlement_rules_agree_at_the_edges(store, prefix).await;
    incoming_settlements_credit_once_and_keep_remainders(store, prefix).await;
    incoming_payments_are_created_once_and_read_back(store, prefix).await;
    receive_credits_each_packet_once(store, prefix).await;
    a_payment_completes_exactly_at_its_target_once(store, prefix).await;
    a_packet_over_the_target_changes_nothing_and_a_smaller_one_still_fits(store, prefix).await;
    an_expired_payment_refuses_packets_and_completes_as_expired(store, prefix).await;
    the_expiry_scan_completes_due_payments_in_bounded_batches(store, prefix).await;
    completions_are_handled_once_and_deleted_after_the_retention(store, prefix).await;
    receive_without_a_payment_credits_the_account_once(store, prefix).await;
    receive_stays_exact_at_the_int64_edges(store, prefix).await;
    a_replayed_stream_packet_is_credited_once(store, prefix).await;
    outgoing_payments_are_created_once_and_read_back(store, prefix).await;
    a_lease_is_held_until_it_expires_then_taken_over(store, prefix).await;
    reservations_stay_within_the_amount_and_are_idempotent(store, prefix).await;
    outcomes_are_recorded_once(store, prefix).await;
    rejects_are_counted_by_at_most_64_codes(store, prefix).await;
    expired_reservations_become_in_doubt_and_still_count(store, prefix).await;
    a_payment_ends_once_by_its_lease_holder(store, prefix).await;
    the_first_connection_resolved_is_kept(store, prefix).await;
    a_delivered_amount_limits_spending_and_delivery(store, prefix).await;
    outgoing_amounts_stay_exact_at_the_int64_edges(store, prefix).await;
    ended_payments_are_deleted_after_the_retention(store, prefix).await;
}

async fn debit_respects_the_credit_limit<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "limit", Some(-100));
    let id = &*a.id;
    assert_eq!(store.debit_prepare(&a, 60, PacketId::next(), soon()).await, Ok(-60));
    let refused = store.debit_prepare(&a, 41, PacketId::next(), soon()).await;
    assert!(matches!(refused, Err(DebitError::Refused(BalanceError::BelowMinimum { .. }))), "{refused:?}");
    assert_eq!(store.balance(id).await, Ok(-60), "a refused debit changes nothing");
    assert_eq!(
        store.debit_prepare(&a, 40, PacketId::next(), soon()).await,
        Ok(-100),
        "the limit itself is allowed"
    );
    let no_limit = account(prefix, "nolimit", None);
    assert_eq!(store.debit_prepare(&no_limit, 1_000_000, PacketId::next(), soon()).await, Ok(-1_000_000));
}

async fn reversal_happens_exactly_once<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "reverse", None);
    let (p1, p2) = (PacketId::next(), PacketId::next());
    store.debit_prepare(&a, 7, p1, soon()).await.unwrap();
    store.debit_prepare(&a, 5, p2, soon()).await.unwrap();
    assert_eq!(store.reverse_prepare(&a, 5, p1).await, Ok(None), "a release names the amount reserved");
    assert_eq!(store.reverse_prepare(&a, 7, p1).await, Ok(Some(-5)));
    assert_eq!(store.reverse_prepare(&a, 7, p1).await, Ok(None), "second release is a no-op");
    store.commit_prepare(&a, 5, p2).await.unwrap();
    assert_eq!(store.reverse_prepare(&a, 5, p2).await, Ok(None), "a committed debit cannot be released");
    assert_eq!(store.reverse_prepare(&a, 1, PacketId::next()).await, Ok(None), "unknown packet");
    assert_eq!(store.balance(&a.id).await, Ok(-5));
}

async fn commits_are_idempotent<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "idem", None);
    let p = PacketId::next();
    store.debit_prepare(&a, 10, p, soon()).await.unwrap();
    // A commit sent again (its first answer was lost) changes nothing.
    store.commit_prepare(&a, 10, p).await.unwrap();
    store.commit_prepare(&a, 10, p).await.unwrap();
    assert_eq!(store.balance(&a.id).await, Ok(-10));
    // A reservation released by a Reject is not committed later (that outcome is the node's own).
    let rejected = PacketId::next();
    store.debit_prepare(&a, 5, rejected, soon()).await.unwrap();
    assert_eq!(store.reverse_prepare(&a, 5, rejected).await, Ok(Some(-10)));
    store.commit_prepare(&a, 5, rejected).await.unwrap();
    assert_eq!(store.balance(&a.id).await, Ok(-10));
    // Never seen: nothing to commit.
    store.commit_prepare(&a, 7, PacketId::next()).await.unwrap();
    assert_eq!(store.balance(&a.id).await, Ok(-10));
}

async fn credit_adds<S: Store>(store: &S, prefix: &str) {
    let b = account(prefix, "credit", None);
    assert_eq!(store.credit_fulfill(&b, 3, PacketId::next()).await, Ok(3));
    assert_eq!(store.credit_fulfill(&b, 4, PacketId::next()).await, Ok(7));
    // A retried credit whose first attempt never arrived is applied.
    let first_sent = SystemTime::now();
    assert_eq!(store.retry_credit(&b, 5, PacketId::next(), first_sent).await, Ok(12));
}

/// 2^53 + 1 is where a double first rounds; 2^63 - 1 and u64::MAX are the ends of the range.
async fn amounts_stay_exact_across_the_whole_range<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "exact", None);
    let odd = (1u64 << 53) + 1;
    assert_eq!(store.debit_prepare(&a, odd, PacketId::next(), soon()).await, Ok(-(odd as i128)));
    assert_eq!(store.credit_fulfill(&a, odd + 2, PacketId::next()).await, Ok(2));
    // Down to exactly i64::MIN, and not one unit further.
    let max = i64::MAX as u64;
    assert_eq!(store.debit_prepare(&a, max, PacketId::next(), soon()).await, Ok(2 - max as i128));
    let p = PacketId::next();
    assert_eq!(store.debit_prepare(&a, 3, p, soon()).await, Ok(i64::MIN as i128));
    let over = store.debit_prepare(&a, 1, PacketId::next(), soon()).await;
    assert_eq!(over, Err(DebitError::Refused(BalanceError::Overflow)));
    assert_eq!(store.balance(&a.id).await, Ok(i64::MIN as i128));
    // A limit just below the balance compares exactly, even past 2^53.
    let edge = account(prefix, "edge", Some(-(1i128 << 60) - 1));
    store.debit_prepare(&edge, 1 << 60, PacketId::next(), soon()).await.unwrap();
    assert_eq!(store.debit_prepare(&edge, 1, PacketId::next(), soon()).await, Ok(-(1i128 << 60) - 1));
    let refused = store.debit_prepare(&edge, 1, PacketId::next(), soon()).await;
    assert!(matches!(refused, Err(DebitError::Refused(BalanceError::BelowMinimum { .. }))), "{refused:?}");
    // The top of the range, and one change of at most AMOUNT_MAX.
    let top = account(prefix, "top", None);
    assert_eq!(store.credit_fulfill(&top, max, PacketId::next()).await, Ok(max as i128));
    let over = store.credit_fulfill(&top, 1, PacketId::next()).await;
    assert!(over.is_err(), "{over:?}");
    let too_big = store.debit_prepare(&top, u64::MAX, PacketId::next(), soon()).await;
    assert_eq!(too_big, Err(DebitError::Refused(BalanceError::Overflow)));
    assert_eq!(store.debit_prepare(&top, max, PacketId::next(), soon()).await, Ok(0));
    assert_eq!(store.balance(&top.id).await, Ok(0));
}

async fn unknown_accounts_have_zero_balance<S: Store>(store: &S, prefix: &str) {
    assert_eq!(store.balance(&format!("{prefix}-never-used")).await, Ok(0));
}

/// Many tasks race 1-unit debits against a limit: exactly the limit's worth succeed, and
/// releasing every successful reservation brings the balance back to exactly zero.
pub async fn concurrent_debits<S: Store>(store: Arc<S>, prefix: &str) {
    const TASKS: usize = 50;
    const EACH: usize = 40;
    const LIMIT: i128 = 1000;
    let a = Arc::new(account(prefix, "race", Some(-LIMIT)));
    let handles: Vec<_> = (0..TASKS)
        .map(|_| {
            let (store, a) = (store.clone(), a.clone());
            tokio::spawn(async move {
                let mut won = Vec::new();
                for _ in 0..EACH {
                    let p = PacketId::next();
                    if store.debit_prepare(&a, 1, p, soon()).await.is_ok() {
                        won.push(p);
                    }
                }
                won
            })
        })
        .collect();
    let mut won = Vec::new();
    for h in handles {
        won.extend(h.await.unwrap());
    }
    assert_eq!(won.len() as i128, LIMIT);
    assert_eq!(store.balance(&a.id).await, Ok(-LIMIT));
    for p in won {
        assert!(store.reverse_prepare(&a, 1, p).await.unwrap().is_some());
    }
    assert_eq!(store.balance(&a.id).await, Ok(0));
}

async fn sweeping_releases_only_expired_reservations_once<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "sweep", Some(0));
    store.credit_fulfill(&a, 41, PacketId::next()).await.unwrap();
    let past = SystemTime::now() - Duration::from_secs(60);
    let (old1, old2, live) = (PacketId::next(), PacketId::next(), PacketId::next());
    store.debit_prepare(&a, 11, old1, past).await.unwrap();
    store.debit_prepare(&a, 13, old2, past).await.unwrap();
    store.debit_prepare(&a, 17, live, soon()).await.unwrap();
    let now = SystemTime::now();
    let keep = now - Duration::from_secs(3600);
    // A batch limit of 1 still makes progress; the rest comes with the next sweep.
    assert_eq!(store.sweep_expired(&a, now, 1, keep).await, Ok(released(1)));
    assert_eq!(store.sweep_expired(&a, now, 100, keep).await, Ok(released(1)));
    assert_eq!(store.sweep_expired(&a, now, 100, keep).await, Ok(released(0)), "nothing is released twice");
    assert_eq!(store.balance(&a.id).await, Ok(41 - 17), "the live reservation stays");
    assert_eq!(store.reverse_prepare(&a, 11, old1).await, Ok(None), "a late Reject finds it released");
    // A late Fulfill for a swept packet is still paid for, past the credit limit (the money has
    // moved), and exactly once however often the commit is sent.
    store.debit_prepare(&a, 24, PacketId::next(), soon()).await.unwrap();
    store.commit_prepare(&a, 13, old2).await.unwrap();
    assert_eq!(store.balance(&a.id).await, Ok(-13));
    store.commit_prepare(&a, 13, old2).await.unwrap();
    assert_eq!(store.balance(&a.id).await, Ok(-13), "charged again once only");
    assert_eq!(store.reverse_prepare(&a, 17, live).await, Ok(Some(4)));
    // Once the retention has passed, a release is forgotten: a commit then changes nothing.
    assert_eq!(
        store.sweep_expired(&a, now, 100, SystemTime::now() + Duration::from_secs(1)).await,
        Ok(released(0))
    );
    store.commit_prepare(&a, 11, old1).await.unwrap();
    assert_eq!(store.balance(&a.id).await, Ok(4));
}

/// A release that would take the balance past i64 (credits came in after the Prepare's debit)
/// changes nothing, keeps the reservation, and is reported by every sweep as stuck until the
/// balance has room; then it is released exactly once.
async fn a_release_past_the_int64_maximum_stays_reserved_and_is_reported<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "release-top", None);
    let past = SystemTime::now() - Duration::from_secs(60);
    let (p, q) = (PacketId::next(), PacketId::next());
    store.debit_prepare(&a, 10, p, past).await.unwrap();
    store.debit_prepare(&a, 10, q, past).await.unwrap();
    store.credit_fulfill(&a, crate::balance::AMOUNT_MAX, PacketId::next()).await.unwrap();
    store.credit_fulfill(&a, 15, PacketId::next()).await.unwrap();
    let top = i64::MAX as Balance - 5;
    assert_eq!(store.balance(&a.id).await, Ok(top));
    assert!(matches!(store.reverse_prepare(&a, 10, p).await, Err(StoreError::Overflow(_))));
    assert_eq!(store.balance(&a.id).await, Ok(top), "a refused release changes nothing");
    let (now, keep) = (SystemTime::now(), SystemTime::now() - Duration::from_secs(3600));
    for _ in 0..2 {
        assert_eq!(store.sweep_expired(&a, now, 100, keep).await, Ok(Swept { released: 0, stuck: 2 }));
    }
    assert_eq!(store.balance(&a.id).await, Ok(top));
    // The balance goes down; both are released, once.
    let down = PacketId::next();
    store.debit_prepare(&a, 20, down, soon()).await.unwrap();
    store.commit_prepare(&a, 20, down).await.unwrap();
    assert_eq!(store.sweep_expired(&a, now, 100, keep).await, Ok(Swept { released: 2, stuck: 0 }));
    assert_eq!(store.sweep_expired(&a, now, 100, keep).await, Ok(Swept::default()));
    assert_eq!(store.reverse_prepare(&a, 10, p).await, Ok(None));
    assert_eq!(store.balance(&a.id).await, Ok(top));
}

async fn settlements_move_the_balance_and_end_once<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "settle", None);
    store.credit_fulfill(&a, 500, PacketId::next()).await.unwrap();
    let id = SettlementId::random();
    assert_eq!(store.begin_settlement(&a, 500, 100, id).await, Ok(None), "not above the threshold");
    assert_eq!(store.begin_settlement(&a, 400, 100, id).await, Ok(Some(400)));
    assert_eq!(store.balance(&a.id).await, Ok(100));
    assert_eq!(store.begin_settlement(&a, 400, 100, SettlementId::random()).await, Ok(None), "settled once");
    let pending = store.pending_settlements(&a).await.unwrap();
    assert_eq!((pending.len(), pending[0].id, pending[0].amount), (1, id, 400));
    assert_eq!(store.finish_settlement(&a, id, SettlementEnd::Settled).await, Ok(Some(400)));
    assert_eq!(store.finish_settlement(&a, id, SettlementEnd::Refunded).await, Ok(None), "ended once");
    assert_eq!(store.balance(&a.id).await, Ok(100));
    assert!(store.pending_settlements(&a).await.unwrap().is_empty());
    // A refused settlement is refunded once.
    store.credit_fulfill(&a, 1000, PacketId::next()).await.unwrap();
    let refused = SettlementId::random();
    assert_eq!(store.begin_settlement(&a, 1000, -50, refused).await, Ok(Some(1150)));
    assert_eq!(store.balance(&a.id).await, Ok(-50));
    assert_eq!(store.finish_settlement(&a, refused, SettlementEnd::Refunded).await, Ok(Some(1150)));
    assert_eq!(store.finish_settlement(&a, refused, SettlementEnd::Refunded).await, Ok(None));
    assert_eq!(store.balance(&a.id).await, Ok(1100));
}

/// [`crate::balance::begin_settlement`]'s rule, applied by every store: never a settlement that
/// raises the balance or moves nothing, negative thresholds honoured, differences beyond one
/// int64 change split, the i64 bounds exact. Each case starts from a fresh account.
async fn settlement_rules_agree_at_the_edges<S: Store>(store: &S, prefix: &str) {
    use crate::balance::{self, BALANCE_MAX, BALANCE_MIN};
    let cases: [(&str, Balance, Balance, Balance); 14] = [
        ("neg-threshold-default-to", -5, -10, 0),
        ("neg-both", -5, -10, -20),
        ("neg-at-threshold", -10, -10, -20),
        ("to-above-threshold", 5, 10, 20),
        ("to-above-threshold-balance-above", 50, 10, 20),
        ("zero", 0, 0, 0),
        ("one", 1, 0, 0),
        ("to-equals-threshold", 7, 6, 6),
        ("max-to-min", BALANCE_MAX, BALANCE_MIN, BALANCE_MIN),
        ("max-to-zero", BALANCE_MAX, 0, 0),
        ("max-threshold", BALANCE_MAX, BALANCE_MAX, 0),
        ("min-balance-to-min", BALANCE_MIN + 3, BALANCE_MIN, BALANCE_MIN),
        ("zero-to-min", 0, -1, BALANCE_MIN),
        ("min-everything", BALANCE_MIN, BALANCE_MIN, BALANCE_MIN),
    ];
    for (name, start, threshold, settle_to) in cases {
        let a = account(prefix, &format!("rule-{name}"), None);
        set_balance(store, &a, start).await;
        // Settle until nothing is above the threshold, as the worker's scans would.
        let mut balance = start;
        for round in 0..4 {
            let expected = balance::begin_settlement(balance, threshold, settle_to);
            let id = SettlementId::random();
            let got = store.begin_settlement(&a, threshold, settle_to, id).await;
            match expected {
                Ok(Some(start)) => {
                    assert_eq!(got, Ok(Some(start.amount)), "{name} round {round}");
                    balance = start.balance;
                }
                Ok(None) => {
                    assert_eq!(got, Ok(None), "{name} round {round}");
                    break;
                }
                Err(rule) => {
                    assert!(
                        matches!(&got, Err(StoreError::Rule { rule: r, .. }) if *r == rule),
                        "{name}: {got:?}"
                    );
                    break;
                }
            }
            assert_eq!(store.balance(&a.id).await, Ok(balance), "{name} round {round}");
        }
        assert_eq!(store.balance(&a.id).await, Ok(balance), "{name}: the balance the rule gives");
        // Every pending settlement is 1 ..= AMOUNT_MAX, readable, and the sum is what moved.
        let pending = store.pending_settlements(&a).await.unwrap();
        assert!(pending.iter().all(|p| p.amount >= 1 && p.amount <= balance::AMOUNT_MAX), "{name}");
        let moved: i128 = pending.iter().map(|p| i128::from(p.amount)).sum();
        assert_eq!(moved, start - balance, "{name}: pending settlements hold what left the balance");
        // Refunding them all restores the start exactly.
        for p in pending {
            assert_eq!(store.finish_settlement(&a, p.id, SettlementEnd::Refunded).await, Ok(Some(p.amount)));
        }
        assert_eq!(store.balance(&a.id).await, Ok(start), "{name}: refunds restore the balance");
    }
}

/// Brings a fresh account's balance to `target` with packet moves (credits up, committed debits
/// down), in steps one change can carry.
async fn set_balance<S: Store>(store: &S, a: &Account, target: Balance) {
    let mut balance = 0;
    while balance != target {
        let step = (target - balance).unsigned_abs().min(crate::balance::AMOUNT_MAX as u128) as u64;
        balance = if target > balance {
            store.credit_fulfill(a, step, PacketId::next()).await.unwrap()
        } else {
            let p = PacketId::next();
            let after = store.debit_prepare(a, step, p, soon()).await.unwrap();
            store.commit_prepare(a, step, p).await.unwrap();
            after
        };
    }
    assert_eq!(store.balance(&a.id).await, Ok(target));
}

/// Engine scale 9 into an account of scale 2 (the suite's accounts): the remainder is kept.
async fn incoming_settlements_credit_once_and_keep_remainders<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "incoming", None);
    let first = Quantity::new(1_234_567_890, 9);
    assert_eq!(
        store.credit_settlement(&a, "k1", first).await,
        Ok(IncomingCredit::Credited { credited: 123 })
    );
    assert_eq!(
        store.credit_settlement(&a, "k1", first).await,
        Ok(IncomingCredit::Repeated { credited: 123 })
    );
    let other = Quantity::new(1, 9);
    assert_eq!(store.credit_settlement(&a, "k1", other).await, Ok(IncomingCredit::KeyReused));
    assert_eq!(store.balance(&a.id).await, Ok(123));
    // 0.004567890 left + 0.005432110 = one more cent, nothing left.
    let second = Quantity::new(5_432_110, 9);
    assert_eq!(store.credit_settlement(&a, "k2", second).await, Ok(IncomingCredit::Credited { credited: 1 }));
    assert_eq!(store.balance(&a.id).await, Ok(124));
    // Many settlements too small for a cent each add up exactly.
    for i in 0..100 {
        let tiny = Quantity::new(1_000_000, 9);
        let credited = store.credit_settlement(&a, &format!("tiny{i}"), tiny).await.unwrap();
        let expected = if i % 10 == 9 { 1 } else { 0 };
        assert_eq!(credited, IncomingCredit::Credited { credited: expected }, "callback {i}");
    }
    assert_eq!(store.balance(&a.id).await, Ok(134));
    // An amount the balance cannot take changes nothing, and is refused again on a repeat.
    let huge = Quantity::new(10u128.pow(30), 0);
    assert_eq!(store.credit_settlement(&a, "huge", huge).await, Ok(IncomingCredit::TooLarge));
    assert_eq!(store.credit_settlement(&a, "huge", huge).await, Ok(IncomingCredit::TooLarge));
    assert_eq!(store.balance(&a.id).await, Ok(134));
}

/// Many tasks (standing in for many instances) see the same crossing at once: one settles.
pub async fn concurrent_settlements<S: Store>(store: Arc<S>, prefix: &str) {
    let a = Arc::new(account(prefix, "settle-race", None));
    store.credit_fulfill(&a, 1000, PacketId::next()).await.unwrap();
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let (store, a) = (store.clone(), a.clone());
            tokio::spawn(
                async move { store.begin_settlement(&a, 100, 0, SettlementId::random()).await.unwrap() },
            )
        })
        .collect();
    let mut begun = Vec::new();
    for h in handles {
        begun.extend(h.await.unwrap());
    }
    assert_eq!(begun, [1000]);
    assert_eq!(store.balance(&a.id).await, Ok(0));
    assert_eq!(store.pending_settlements(&a).await.unwrap().len(), 1);
}

/// Now, in whole milliseconds (what the stores keep of a payment's times).
fn clock() -> SystemTime {
    from_millis(millis(SystemTime::now()))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const HOUR: Duration = Duration::from_secs(3600);

fn new_payment(id: &str, target: Option<u64>, expires_at: SystemTime) -> NewIncomingPayment {
    let id = IncomingPaymentId::parse(id).expect("a test id is valid");
    NewIncomingPayment { id, target, expires_at, metadata: "{}".into() }
}

async fn create<S: Store>(
    store: &S,
    a: &Account,
    new: &NewIncomingPayment,
    now: SystemTime,
) -> IncomingPayment {
    match store.create_incoming_payment(a, new, now).await {
        Ok(CreatedIncoming::Created(payment)) => payment,
        other => panic!("creating {}: {other:?}", new.id),
    }
}

async fn read<S: Store>(store: &S, a: &Account, id: &IncomingPaymentId) -> IncomingPayment {
    store.incoming_payment(a, id).await.unwrap().unwrap_or_else(|| panic!("payment {id} is gone"))
}

fn received(balance: Balance, received: Option<u64>, completed: bool) -> Result<Receipt, StoreError> {
    Ok(Receipt::Received { balance, received, completed })
}

fn refused(refusal: ReceiveRefusal) -> Result<Receipt, StoreError> {
    Ok(Receipt::Refused(refusal))
}

fn ids(payments: &[IncomingPayment]) -> Vec<&str> {
    payments.iter().map(|p| p.id.as_str()).collect()
}

async fn incoming_payments_are_created_once_and_read_back<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "in-create", None);
    let now = clock();
    let odd = (1u64 << 53) + 1;
    let new = NewIncomingPayment {
        id: IncomingPaymentId::parse("order-42_x~").unwrap(),
        target: Some(odd),
        expires_at: now + ms(3_600_123),
        metadata: r#"{"order": "42", "note": "ünï \"quoted\" {x}:y"}"#.into(),
    };
    let created = create(store, &a, &new, now).await;
    let expected = IncomingPayment {
        id: new.id.clone(),
        account: a.id.to_string(),
        target: Some(odd),
        received: 0,
        expires_at: now + ms(3_600_123),
        metadata: new.metadata.clone(),
        created_at: now,
        state: IncomingState::Open,
        completion_handled: false,
    };
    assert_eq!(created, expected);
    assert_eq!(store.incoming_payment(&a, &new.id).await, Ok(Some(expected.clone())), "read back exactly");
    // The same id again, asking for something else: the stored payment, unchanged.
    let again = NewIncomingPayment { target: Some(5), metadata: "[]".into(), ..new.clone() };
    let exists = store.create_incoming_payment(&a, &again, now + ms(1000)).await;
    assert_eq!(exists, Ok(CreatedIncoming::Exists(expected.clone())));
    assert_eq!(read(store, &a, &new.id).await, expected);
    // Any amount; an expiry is kept to the millisecond.
    let any = NewIncomingPayment {
        expires_at: now + Duration::from_micros(2_000_500),
        metadata: "null".into(),
        ..new_payment("any", None, now)
    };
    let any = create(store, &a, &any, now + ms(1)).await;
    assert_eq!((any.target, any.expires_at, any.created_at), (None, now + ms(2000), now + ms(1)));
    assert_eq!(read(store, &a, &any.id).await, any);
    // Ids are the account's own.
    assert_eq!(store.incoming_payment(&a, &IncomingPaymentId::random()).await, Ok(None));
    let other = account(prefix, "in-create-other", None);
    assert_eq!(store.incoming_payment(&other, &new.id).await, Ok(None), "ids are per account");
    // Newest first, at most `limit`.
    let third = create(store, &a, &new_payment("third", Some(1), now + HOUR), now + ms(2)).await;
    let list = store.incoming_payments(&a, 10).await.unwrap();
    assert_eq!(list, vec![third.clone(), any.clone(), expected.clone()]);
    assert_eq!(ids(&store.incoming_payments(&a, 2).await.unwrap()), ["third", "any"]);
    assert_eq!(store.incoming_payments(&a, 0).await, Ok(Vec::new()));
    assert_eq!(store.incoming_payments(&other, 10).await, Ok(Vec::new()));
    // What the check refuses is refused with nothing written.
    let bad = |target, metadata: &str, expires_at| NewIncomingPayment {
        metadata: metadata.into(),
        ..new_payment("bad", target, expires_at)
    };
    let too_long = format!("\"{}\"", "m".repeat(crate::limits::INCOMING_METADATA_BYTES_MAX - 1));
    for (new, why) in [
        (bad(Some(0), "{}", now + HOUR), InvalidIncoming::TargetZero),
        (bad(Some(AMOUNT_MAX + 1), "{}", now + HOUR), InvalidIncoming::TargetTooLarge(AMOUNT_MAX + 1)),
        (bad(None, &too_long, now + HOUR), InvalidIncoming::MetadataTooLong(4097)),
        (bad(None, "{", now + HOUR), InvalidIncoming::MetadataNotJson),
        (bad(None, "{}", now), InvalidIncoming::ExpiresAtNotAfterNow),
    ] {
        assert_eq!(store.create_incoming_payment(&a, &new, now).await, Err(StoreError::Invalid(why)));
        assert_eq!(store.incoming_payment(&a, &new.id).await, Ok(None), "{why:?}: nothing written");
    }
    assert_eq!(store.incoming_payments(&a, 10).await.unwrap().len(), 3);
}

async fn receive_credits_each_packet_once<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "in-once", None);
    let now = clock();
    let p = create(store, &a, &new_payment("once", Some(100), now + HOUR), now).await;
    let first = PacketId::next();
    assert_eq!(store.receive(&a, Some(&p.id), 30, first, now).await, received(30, Some(30), false));
    // Its retries (the first answer lost) change nothing, now or a minute later.
    for later in [ms(0), ms(60_000)] {
        let again = store.receive(&a, Some(&p.id), 30, first, now + later).await;
        assert_eq!(again, Ok(Receipt::Repeated { received: Some(30) }));
    }
    assert_eq!(store.balance(&a.id).await, Ok(30));
    // The first attempt in an hour's last millisecond, its retry in the next hour.
    let turn = from_millis((millis(now) / 3_600_000 + 1) * 3_600_000);
    let late = PacketId::next();
    assert_eq!(store.receive(&a, Some(&p.id), 5, late, turn - ms(1)).await, received(35, Some(35), false));
    let again = store.receive(&a, Some(&p.id), 5, late, turn + ms(30_000)).await;
    assert_eq!(again, Ok(Receipt::Repeated { received: Some(35) }));
    // A packet of 0 (STREAM's control packets) passes and writes nothing.
    let zero = PacketId::next();
    assert_eq!(store.receive(&a, Some(&p.id), 0, zero, now).await, received(35, Some(35), false));
    assert_eq!(store.receive(&a, Some(&p.id), 0, zero, now).await, received(35, Some(35), false));
    assert_eq!(store.balance(&a.id).await, Ok(35));
    let p = read(store, &a, &p.id).await;
    assert_eq!((p.received, p.state), (35, IncomingState::Open));
    // A payment of another account is unknown here.
    let other = account(prefix, "in-once-other", None);
    let unknown = store.receive(&other, Some(&p.id), 1, PacketId::next(), now).await;
    assert_eq!(unknown, refused(ReceiveRefusal::UnknownPayment));
    assert_eq!(store.balance(&other.id).await, Ok(0));
}

async fn a_payment_completes_exactly_at_its_target_once<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "in-target", None);
    let now = clock();
    let p = create(store, &a, &new_payment("target", Some(100), now + HOUR), now).await;
    assert_eq!(store.unhandled_completions(&a, 10).await, Ok(Vec::new()));
    assert_eq!(
        store.receive(&a, Some(&p.id), 60, PacketId::next(), now).await,
        received(60, Some(60), false)
    );
    let last = PacketId::next();
    let at = now + ms(5);
    assert_eq!(store.receive(&a, Some(&p.id), 40, last, at).await, received(100, Some(100), true));
    let done = read(store, &a, &p.id).await;
    let completed = IncomingState::Completed { at, reason: CompletionReason::TargetReached };
    assert_eq!((done.received, done.state, done.completion_handled), (100, completed, false));
    assert_eq!(store.unhandled_completions(&a, 10).await, Ok(vec![done.clone()]));
    // Completed: nothing more is received, not even 0; the completion is in the outbox once.
    for amount in [1, 0] {
        let after = store.receive(&a, Some(&p.id), amount, PacketId::next(), at + ms(1)).await;
        assert_eq!(after, refused(ReceiveRefusal::Completed { received: 100 }));
    }
    let again = store.receive(&a, Some(&p.id), 40, last, at).await;
    assert_eq!(again, Ok(Receipt::Repeated { received: Some(100) }), "the completing packet's retry");
    assert_eq!(store.unhandled_completions(&a, 10).await, Ok(vec![done.clone()]));
    assert_eq!(store.unhandled_completions(&a, 0).await, Ok(Vec::new()));
    assert_eq!(store.balance(&a.id).await, Ok(100));
    assert_eq!(read(store, &a, &p.id).await, done, "refusals change nothing");
}

async fn a_packet_over_the_target_changes_nothing_and_a_smaller_one_still_fits<S: Store>(
    store: &S,
    prefix: &str,
) {
    let a = account(prefix, "in-over", None);
    let now = clock();
    let p = create(store, &a, &new_payment("over", Some(100), now + HOUR), now).await;
    assert_eq!(
        store.receive(&a, Some(&p.id), 90, PacketId::next(), now).await,
        received(90, Some(90), false)
    );
    let big = PacketId::next();
    let over = store.receive(&a, Some(&p.id), 11, big, now).await;
    assert_eq!(over, refused(ReceiveRefusal::OverTarget { received: 90, target: 100 }));
    assert_eq!(store.balance(&a.id).await, Ok(90));
    let p = read(store, &a, &p.id).await;
    assert_eq!((p.received, p.state), (90, IncomingState::Open));
    assert_eq!(
        store.receive(&a, Some(&p.id), 10, PacketId::next(), now).await,
        received(100, Some(100), true)
    );
    // The refused packet left no mark: sent again, it is judged again (the payment is complete).
    let again = store.receive(&a, Some(&p.id), 11, big, now).await;
    assert_eq!(again, refused(ReceiveRefusal::Completed { received: 100 }));
    assert_eq!(store.balance(&a.id).await, Ok(100));
}

async fn an_expired_payment_refuses_packets_and_completes_as_expired<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "in-expired", None);
    let now = clock();
    let p = create(store, &a, &new_payment("expired", Some(100), now + ms(1000)), now).await;
    assert_eq!(
        store.receive(&a, Some(&p.id), 10, PacketId::next(), now).await,
        received(10, Some(10), false)
    );
    let before = store.receive(&a, Some(&p.id), 0, PacketId::next(), now + ms(999)).await;
    assert_eq!(before, received(10, Some(10), false), "open until its expiry");
    // At its expiry exactly: expired.
    let at = now + ms(1000);
    let late = store.receive(&a, Some(&p.id), 5, PacketId::next(), at).await;
    assert_eq!(late, refused(ReceiveRefusal::Expired { received: 10 }));
    let done = read(store, &a, &p.id).await;
    let completed = IncomingState::Completed { at, reason: CompletionReason::Expired };
    assert_eq!((done.received, done.state, done.completion_handled), (10, completed, false));
    assert_eq!(store.unhandled_completions(&a, 10).await, Ok(vec![done.clone()]));
    let later = store.receive(&a, Some(&p.id), 5, PacketId::next(), at + ms(1)).await;
    assert_eq!(later, refused(ReceiveRefusal::Completed { received: 10 }));
    assert_eq!(store.expire_incoming_payments(&a, at + ms(1000), 10).await, Ok(0), "completed once");
    assert_eq!(store.unhandled_completions(&a, 10).await, Ok(vec![done.clone()]));
    assert_eq!(store.balance(&a.id).await, Ok(10));
}

async fn the_expiry_scan_completes_due_payments_in_bounded_batches<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "in-scan", None);
    let now = clock();
    let done = create(store, &a, &new_payment("scan-done", Some(5), now + ms(1000)), now).await;
    assert_eq!(store.receive(&a, Some(&done.id), 5, PacketId::next(), now).await, received(5, Some(5), true));
    for (id, expiry) in [("scan-b", 1000), ("scan-a", 2000), ("scan-c", 3000)] {
        create(store, &a, &new_payment(id, None, now + ms(expiry)), now).await;
    }
    let two = now + ms(2000);
    assert_eq!(store.expire_incoming_payments(&a, now, 10).await, Ok(0), "nothing due");
    assert_eq!(store.expire_incoming_payments(&a, two, 0).await, Ok(0));
    assert_eq!(store.expire_incoming_payments(&a, two, 1).await, Ok(1));
    assert_eq!(store.expire_incoming_payments(&a, two, 10).await, Ok(1));
    assert_eq!(store.expire_incoming_payments(&a, two, 10).await, Ok(0), "each once");
    // Oldest completion first; the two completed at the same millisecond by id.
    assert_eq!(ids(&store.unhandled_completions(&a, 10).await.unwrap()), ["scan-done", "scan-a", "scan-b"]);
    assert_eq!(ids(&store.unhandled_completions(&a, 2).await.unwrap()), ["scan-done", "scan-a"]);
    let b = read(store, &a, &IncomingPaymentId::parse("scan-b").unwrap()).await;
    assert_eq!(b.state, IncomingState::Completed { at: two, reason: CompletionReason::Expired });
    let c = IncomingPaymentId::parse("scan-c").unwrap();
    assert_eq!(read(store, &a, &c).await.state, IncomingState::Open);
    assert_eq!(store.expire_incoming_payments(&a, now + ms(3000), 10).await, Ok(1));
    assert_eq!(store.unhandled_completions(&a, 10).await.unwrap().len(), 4);
}

async fn completions_are_handled_once_and_deleted_after_the_retention<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "in-handled", None);
    let now = clock();
    let p = create(store, &a, &new_payment("handled", Some(1), now + HOUR), now).await;
    let open = create(store, &a, &new_payment("open", None, now + HOUR), now).await;
    assert_eq!(store.mark_completion_handled(&a, &p.id).await, Ok(false), "still open");
    assert_eq!(store.receive(&a, Some(&p.id), 1, PacketId::next(), now).await, received(1, Some(1), true));
    assert_eq!(store.mark_completion_handled(&a, &p.id).await, Ok(true));
    assert_eq!(store.mark_completion_handled(&a, &p.id).await, Ok(false), "exactly once");
    assert_eq!(store.mark_completion_handled(&a, &IncomingPaymentId::random()).await, Ok(false), "unknown");
    assert_eq!(store.mark_completion_handled(&a, &open.id).await, Ok(false), "open");
    assert_eq!(store.unhandled_completions(&a, 10).await, Ok(Vec::new()));
    let handled = read(store, &a, &p.id).await;
    assert!(handled.completion_handled && matches!(handled.state, IncomingState::Completed { .. }));
    // An old completion nobody handled stays, however old: it is owed.
    let owed = create(store, &a, &new_payment("owed", None, now + ms(1)), now).await;
    assert_eq!(store.expire_incoming_payments(&a, now + ms(1), 10).await, Ok(1));
    // Kept for the retention after its completion, then deleted by the scan.
    let retention = Duration::from_secs(INCOMING_PAYMENT_RETENTION_S);
    assert_eq!(store.expire_incoming_payments(&a, now + retention, 10).await, Ok(1), "`open` expires");
    assert_eq!(read(store, &a, &p.id).await, handled, "kept for the retention");
    assert_eq!(store.expire_incoming_payments(&a, now + retention + ms(1), 10).await, Ok(0));
    assert_eq!(store.incoming_payment(&a, &p.id).await, Ok(None), "deleted after it");
    assert_eq!(ids(&store.incoming_payments(&a, 10).await.unwrap()), ["owed", "open"]);
    assert_eq!(ids(&store.unhandled_completions(&a, 10).await.unwrap()), ["owed", "open"]);
    let gone = store.receive(&a, Some(&p.id), 1, PacketId::next(), now + retention + ms(2)).await;
    assert_eq!(gone, refused(ReceiveRefusal::UnknownPayment));
    assert_eq!(store.balance(&a.id).await, Ok(1));
    assert!(!read(store, &a, &owed.id).await.completion_handled);
}

async fn receive_without_a_payment_credits_the_account_once<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "in-none", None);
    let now = clock();
    let packet = PacketId::next();
    assert_eq!(store.receive(&a, None, 7, packet, now).await, received(7, None, false));
    assert_eq!(store.receive(&a, None, 7, packet, now).await, Ok(Receipt::Repeated { received: None }));
    assert_eq!(store.receive(&a, None, 0, PacketId::next(), now).await, received(7, None, false));
    assert_eq!(store.receive(&a, None, 3, PacketId::next(), now).await, received(10, None, false));
    let unknown = store.receive(&a, Some(&IncomingPaymentId::random()), 3, PacketId::next(), now).await;
    assert_eq!(unknown, refused(ReceiveRefusal::UnknownPayment));
    assert_eq!(store.balance(&a.id).await, Ok(10));
}

/// Lowers the balance by `amount`, as a committed Prepare does.
async fn pay_out<S: Store>(store: &S, a: &Account, amount: u64) {
    let p = PacketId::next();
    store.debit_prepare(a, amount, p, soon()).await.unwrap();
    store.commit_prepare(a, amount, p).await.unwrap();
}

/// Totals and balances at the ends of the int64 range, and past 2^53 where doubles round.
async fn receive_stays_exact_at_the_int64_edges<S: Store>(store: &S, prefix: &str) {
    let max = AMOUNT_MAX;
    let now = clock();
    let a = account(prefix, "in-edges", None);
    let too_big = store.receive(&a, None, u64::MAX, PacketId::next(), now).await;
    assert!(matches!(too_big, Err(StoreError::Overflow(_))), "{too_big:?}");
    // A payment of any amount: its total stays exact up to 2^63 - 1, and not one unit further.
    let any = create(store, &a, &new_payment("any", None, now + HOUR), now).await;
    assert_eq!(
        store.receive(&a, Some(&any.id), max - 1, PacketId::next(), now).await,
        received((max - 1).into(), Some(max - 1), false)
    );
    pay_out(store, &a, max - 1).await;
    assert_eq!(
        store.receive(&a, Some(&any.id), 1, PacketId::next(), now).await,
        received(1, Some(max), false)
    );
    let past = store.receive(&a, Some(&any.id), 1, PacketId::next(), now).await;
    assert!(matches!(past, Err(StoreError::Overflow(_))), "{past:?}");
    assert_eq!(store.balance(&a.id).await, Ok(1), "nothing changed");
    assert_eq!(read(store, &a, &any.id).await.received, max);
    // A target at the top: a total past int64 is past the target.
    let top = create(store, &a, &new_payment("top", Some(max), now + HOUR), now).await;
    let most = store.receive(&a, Some(&top.id), max - 5, PacketId::next(), now).await;
    assert_eq!(most, received((max - 4).into(), Some(max - 5), false));
    let over = store.receive(&a, Some(&top.id), 10, PacketId::next(), now).await;
    assert_eq!(over, refused(ReceiveRefusal::OverTarget { received: max - 5, target: max }));
    pay_out(store, &a, max - 4).await;
    assert_eq!(
        store.receive(&a, Some(&top.id), 5, PacketId::next(), now).await,
        received(5, Some(max), true)
    );
    // A balance that would pass int64: nothing changes, and the same packet is received once
    // there is room.
    let full = account(prefix, "in-edges-top", None);
    store.credit_fulfill(&full, max, PacketId::next()).await.unwrap();
    let p = create(store, &full, &new_payment("full", Some(10), now + HOUR), now).await;
    let packet = PacketId::next();
    let overflow = store.receive(&full, Some(&p.id), 3, packet, now).await;
    assert!(matches!(overflow, Err(StoreError::Overflow(_))), "{overflow:?}");
    assert_eq!(store.balance(&full.id).await, Ok(max.into()));
    assert_eq!(read(store, &full, &p.id).await, p, "the payment unchanged");
    pay_out(store, &full, 3).await;
    assert_eq!(store.receive(&full, Some(&p.id), 3, packet, now).await, received(max.into(), Some(3), false));
    // Past 2^53, where a double would round: the total is exact, and so is the check.
    let exact = account(prefix, "in-edges-53", None);
    let odd = (1u64 << 53) + 1;
    let p = create(store, &exact, &new_payment("odd", Some(odd), now + HOUR), now).await;
    let half = store.receive(&exact, Some(&p.id), 1 << 53, PacketId::next(), now).await;
    assert_eq!(half, received(1 << 53, Some(1 << 53), false));
    let over = store.receive(&exact, Some(&p.id), 2, PacketId::next(), now).await;
    assert_eq!(over, refused(ReceiveRefusal::OverTarget { received: 1 << 53, target: odd }));
    assert_eq!(
        store.receive(&exact, Some(&p.id), 1, PacketId::next(), now).await,
        received(odd.into(), Some(odd), true)
    );
    let p = read(store, &exact, &p.id).await;
    assert_eq!((p.received, p.target), (odd, Some(odd)));
}

/// Many packets (standing in for several instances) race for the last units of one target:
/// exactly the target's worth is received, each unit once.
pub async fn concurrent_receives<S: Store>(store: Arc<S>, prefix: &str) {
    const PACKETS: usize = 200;
    const TARGET: u64 = 100;
    let a = Arc::new(account(prefix, "in-race", None));
    let now = clock();
    let id = create(&*store, &a, &new_payment("race", Some(TARGET), now + HOUR), now).await.id;
    let handles: Vec<_> = (0..PACKETS)
        .map(|_| {
            let (store, a, id) = (store.clone(), a.clone(), id.clone());
            tokio::spawn(async move { store.receive(&a, Some(&id), 1, PacketId::next(), now).await.unwrap() })
        })
        .collect();
    let (mut credited, mut completed) = (0u64, 0usize);
    for h in handles {
        match h.await.unwrap() {
            Receipt::Received { completed: last, .. } => {
                credited += 1;
                completed += usize::from(last);
            }
            Receipt::Refused(ReceiveRefusal::Completed { received: TARGET }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((credited, completed), (TARGET, 1));
    assert_eq!(store.balance(&a.id).await, Ok(TARGET.into()));
    let p = store.incoming_payment(&a, &id).await.unwrap().unwrap();
    assert_eq!(p.received, TARGET);
    assert_eq!(store.unhandled_completions(&a, 10).await.unwrap().len(), 1);
}

/// The same STREAM packet (its replay key) in a second ILP packet is refused; its own retry
/// (the same ILP packet) is the retry it always was; another sequence number passes.
async fn a_replayed_stream_packet_is_credited_once<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "replay", None);
    let now = SystemTime::now();
    let key = ReplayKey::of("test.node.shop.token", 7);
    let first = PacketId::next();
    let got = store.receive_stream(&a, None, 10, first, Some(key), now).await;
    assert!(matches!(got, Ok(Receipt::Received { balance: 10, .. })), "{got:?}");
    let retry = store.receive_stream(&a, None, 10, first, Some(key), now).await;
    assert_eq!(retry, Ok(Receipt::Repeated { received: None }));
    let replay = store.receive_stream(&a, None, 10, PacketId::next(), Some(key), now).await;
    assert_eq!(replay, Ok(Receipt::Refused(ReceiveRefusal::Replayed)));
    let next = ReplayKey::of("test.node.shop.token", 8);
    let got = store.receive_stream(&a, None, 5, PacketId::next(), Some(next), now).await;
    assert!(matches!(got, Ok(Receipt::Received { balance: 15, .. })), "{got:?}");
    // With a payment too: the replay is refused before the payment's checks, and takes nothing.
    let p = NewIncomingPayment {
        id: IncomingPaymentId::random(),
        target: Some(100),
        expires_at: now + Duration::from_secs(60),
        metadata: "null".into(),
    };
    store.create_incoming_payment(&a, &p, now).await.unwrap();
    let key = ReplayKey::of("test.node.shop.p.token", 1);
    let got = store.receive_stream(&a, Some(&p.id), 30, PacketId::next(), Some(key), now).await;
    assert!(matches!(got, Ok(Receipt::Received { received: Some(30), .. })), "{got:?}");
    let replay = store.receive_stream(&a, Some(&p.id), 30, PacketId::next(), Some(key), now).await;
    assert_eq!(replay, Ok(Receipt::Refused(ReceiveRefusal::Replayed)));
    assert_eq!(store.incoming_payment(&a, &p.id).await.unwrap().map(|p| p.received), Some(30));
    assert_eq!(store.balance(&a.id).await, Ok(45));
}

// Outgoing payments.

const LEASE: Duration = Duration::from_secs(10);
const GRACE: Duration = Duration::from_secs(2);

fn out_id(id: &str) -> OutgoingPaymentId {
    OutgoingPaymentId::parse(id).expect("a test id is valid")
}

/// A payment of `amount` source units, due within the hour.
fn new_outgoing(id: &str, amount: u64, now: SystemTime) -> NewOutgoingPayment {
    NewOutgoingPayment {
        id: out_id(id),
        receiver: "$wallet.example/bob".into(),
        amount,
        kind: AmountKind::Source,
        slippage: "0.01".into(),
        deadline: now + HOUR,
        source_max: None,
    }
}

/// A payment that delivers `amount` receiver units, spending at most `source_max`.
fn new_delivered(id: &str, amount: u64, source_max: u64, now: SystemTime) -> NewOutgoingPayment {
    NewOutgoingPayment {
        kind: AmountKind::Delivered,
        source_max: Some(source_max),
        ..new_outgoing(id, amount, now)
    }
}

async fn create_out<S: Store>(
    store: &S,
    a: &Account,
    new: &NewOutgoingPayment,
    now: SystemTime,
) -> OutgoingPayment {
    match store.create_outgoing_payment(a, new, now).await {
        Ok(CreatedOutgoing::Created(payment)) => payment,
        other => panic!("creating {}: {other:?}", new.id),
    }
}

async fn read_out<S: Store>(store: &S, a: &Account, id: &OutgoingPaymentId) -> OutgoingPayment {
    store.outgoing_payment(a, id).await.unwrap().unwrap_or_else(|| panic!("payment {id} is gone"))
}

/// Creates a payment and claims it for `owner` at `now`.
async fn leased<S: Store>(
    store: &S,
    a: &Account,
    new: &NewOutgoingPayment,
    owner: &str,
    now: SystemTime,
) -> OutgoingPayment {
    create_out(store, a, new, now).await;
    let claimed = store.claim_outgoing_payment(a, &new.id, owner, now, LEASE, GRACE).await;
    claimed.unwrap().unwrap_or_else(|| panic!("{owner} could not claim {}", new.id))
}

fn out_ids(payments: &[OutgoingPayment]) -> Vec<&str> {
    payments.iter().map(|p| p.id.as_str()).collect()
}

/// (sent, delivered, in_flight, in_flight_min_delivered, in_doubt) of a payment.
fn totals(p: &OutgoingPayment) -> (u64, u64, u64, u64, u64) {
    (p.sent, p.delivered, p.in_flight, p.in_flight_min_delivered, p.in_doubt)
}

fn fulfilled(delivered: u64) -> PacketOutcome {
    PacketOutcome::Fulfilled { delivered }
}

fn rejected(code: &[u8; 3]) -> PacketOutcome {
    PacketOutcome::Rejected { code: *code }
}

async fn outgoing_payments_are_created_once_and_read_back<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "out-create", None);
    let now = clock();
    let new = NewOutgoingPayment {
        id: out_id("order-42_x~"),
        receiver: "https://wallet.example/.well-known/pay/ünï".into(),
        amount: (1 << 53) + 1,
        kind: AmountKind::Source,
        slippage: "0.005".into(),
        deadline: now + Duration::from_micros(3_600_123_456),
        source_max: None,
    };
    let created = create_out(store, &a, &new, now).await;
    let expected = OutgoingPayment {
        id: new.id.clone(),
        account: a.id.to_string(),
        receiver: new.receiver.clone(),
        amount: (1 << 53) + 1,
        kind: AmountKind::Source,
        slippage: "0.005".into(),
        deadline: now + ms(3_600_123),
        source_max: None,
        created_at: now,
        updated_at: now,
        state: OutgoingState::Sending,
        sent: 0,
        delivered: 0,
        in_flight: 0,
        in_flight_min_delivered: 0,
        in_doubt: 0,
        packets_fulfilled: 0,
        packets_rejected: 0,
        rejects: Default::default(),
        last_packet: None,
        stop_reason: None,
        destination: None,
        shared_secret: None,
        lease: None,
    };
    assert_eq!(created, expected);
    assert_eq!(store.outgoing_payment(&a, &new.id).await, Ok(Some(expected.clone())), "read back exactly");
    // The same id again, asking for something else: the stored payment, unchanged.
    let again = NewOutgoingPayment { amount: 5, receiver: "g.other".into(), ..new.clone() };
    let exists = store.create_outgoing_payment(&a, &again, now + ms(1000)).await;
    assert_eq!(exists, Ok(CreatedOutgoing::Exists(expected.clone())));
    assert_eq!(read_out(store, &a, &new.id).await, expected);
    // A payment of a delivered amount keeps its source_max.
    let delivered = create_out(store, &a, &new_delivered("delivered", 700, 900, now), now + ms(1)).await;
    assert_eq!(
        (delivered.kind, delivered.amount, delivered.source_max),
        (AmountKind::Delivered, 700, Some(900))
    );
    assert_eq!(read_out(store, &a, &delivered.id).await, delivered);
    // Ids are the account's own.
    assert_eq!(store.outgoing_payment(&a, &out_id("never")).await, Ok(None));
    let other = account(prefix, "out-create-other", None);
    assert_eq!(store.outgoing_payment(&other, &new.id).await, Ok(None), "ids are per account");
    // Newest first, at most `limit`; the ones to resume oldest first.
    let third = create_out(store, &a, &new_outgoing("third", 1, now), now + ms(2)).await;
    let list = store.outgoing_payments(&a, 10).await.unwrap();
    assert_eq!(list, vec![third.clone(), delivered.clone(), expected.clone()]);
    assert_eq!(out_ids(&store.outgoing_payments(&a, 2).await.unwrap()), ["third", "delivered"]);
    assert_eq!(store.outgoing_payments(&a, 0).await, Ok(Vec::new()));
    assert_eq!(store.outgoing_payments(&other, 10).await, Ok(Vec::new()));
    let unfinished = store.unfinished_outgoing_payments(&a, 10).await.unwrap();
    assert_eq!(unfinished, vec![expected.clone(), delivered.clone(), third.clone()]);
    assert_eq!(out_ids(&store.unfinished_outgoing_payments(&a, 1).await.unwrap()), ["order-42_x~"]);
    assert_eq!(store.unfinished_outgoing_payments(&a, 0).await, Ok(Vec::new()));
    // What the check refuses is refused with nothing written.
    let bad = |change: &dyn Fn(&mut NewOutgoingPayment)| {
        let mut new = new_outgoing("bad", 10, now);
        change(&mut new);
        new
    };
    for (new, why) in [
        (bad(&|n| n.amount = 0), InvalidOutgoing::AmountZero),
        (bad(&|n| n.amount = AMOUNT_MAX + 1), InvalidOutgoing::AmountTooLarge(AMOUNT_MAX + 1)),
        (bad(&|n| n.receiver = "a b".into()), InvalidOutgoing::ReceiverMalformed),
        (bad(&|n| n.slippage = "1".into()), InvalidOutgoing::SlippageMalformed),
        (bad(&|n| n.deadline = now), InvalidOutgoing::DeadlineNotAfterNow),
        (bad(&|n| n.source_max = Some(5)), InvalidOutgoing::SourceMaxWithSource),
        (bad(&|n| n.kind = AmountKind::Delivered), InvalidOutgoing::SourceMaxMissing),
    ] {
        assert_eq!(store.create_outgoing_payment(&a, &new, now).await, Err(StoreError::InvalidOutgoing(why)));
        assert_eq!(store.outgoing_payment(&a, &new.id).await, Ok(None), "{why:?}: nothing written");
    }
    assert_eq!(store.outgoing_payments(&a, 10).await.unwrap().len(), 3);
}

async fn a_lease_is_held_until_it_expires_then_taken_over<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "out-lease", None);
    let now = clock();
    let id = create_out(store, &a, &new_outgoing("lease", 100, now), now).await.id;
    assert_eq!(store.claim_outgoing_payment(&a, &out_id("unknown"), "A", now, LEASE, GRACE).await, Ok(None));
    let claimed = store.claim_outgoing_payment(&a, &id, "A", now, LEASE, GRACE).await.unwrap().unwrap();
    assert_eq!((&claimed.lease, claimed.updated_at), (&Some(("A".to_string(), now + LEASE)), now));
    assert_eq!(read_out(store, &a, &id).await, claimed);
    // B is refused while A's lease holds, up to its last millisecond.
    for at in [ms(1), ms(LEASE.as_millis() as u64 - 1)] {
        assert_eq!(store.claim_outgoing_payment(&a, &id, "B", now + at, LEASE, GRACE).await, Ok(None));
    }
    assert_eq!(read_out(store, &a, &id).await, claimed, "a refused claim changes nothing");
    // A renews its own lease.
    let renewed = store.claim_outgoing_payment(&a, &id, "A", now + ms(5000), LEASE, GRACE).await.unwrap();
    assert_eq!(renewed.unwrap().lease, Some(("A".to_string(), now + ms(5000) + LEASE)));
    let expiry = now + ms(5000) + LEASE;
    assert_eq!(store.claim_outgoing_payment(&a, &id, "B", expiry - ms(1), LEASE, GRACE).await, Ok(None));
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 1, 10, 0, expiry).await, Ok(Reserved::Reserved));
    // At its end exactly, the lease has expired: B takes the payment over, with A's reservation.
    let taken = store.claim_outgoing_payment(&a, &id, "B", expiry, LEASE, GRACE).await.unwrap().unwrap();
    assert_eq!((taken.lease, taken.in_flight), (Some(("B".to_string(), expiry + LEASE)), 10));
    assert_eq!(store.claim_outgoing_payment(&a, &id, "A", expiry + ms(1), LEASE, GRACE).await, Ok(None));
    // A may no longer reserve (whatever the time: only who holds the lease counts), nor end it;
    // B may.
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 2, 10, 0, expiry).await, Ok(Reserved::NotOwner));
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "C", 2, 10, 0, expiry).await, Ok(Reserved::NotOwner));
    let unknown = store.reserve_outgoing_packet(&a, &out_id("unknown"), "A", 2, 10, 0, expiry).await;
    assert_eq!(unknown, Ok(Reserved::NotOwner));
    assert_eq!(store.finish_outgoing_payment(&a, &id, "A", OutgoingState::Failed, "x").await, Ok(false));
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "B", 2, 10, 0, expiry).await, Ok(Reserved::Reserved));
    // A's packet's outcome is still recorded: it is a fact, whoever holds the lease.
    assert_eq!(store.record_outgoing_packet(&a, &id, 1, fulfilled(9)).await, Ok(true));
    let p = read_out(store, &a, &id).await;
    assert_eq!((totals(&p), p.last_packet), ((10, 9, 10, 0, 0), Some(2)));
}

async fn reservations_stay_within_the_amount_and_are_idempotent<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "out-reserve", None);
    let now = clock();
    let id = leased(store, &a, &new_outgoing("reserve", 100, now), "A", now).await.id;
    let soon = now + ms(30_000);
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 7, 60, 50, soon).await, Ok(Reserved::Reserved));
    let over = store.reserve_outgoing_packet(&a, &id, "A", 8, 41, 0, soon).await;
    assert_eq!(over, Ok(Reserved::OverLimit { room: 40 }), "over the limit: the room left");
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "B", 8, 10, 0, soon).await, Ok(Reserved::NotOwner));
    // The same reservation again (its first answer lost): reserved, nothing changes.
    let before = read_out(store, &a, &id).await;
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 7, 60, 50, soon).await, Ok(Reserved::Reserved));
    assert_eq!(read_out(store, &a, &id).await, before);
    // The same key with other terms is refused.
    for (amount, least, expires) in [(61, 50, soon), (60, 49, soon), (60, 50, soon + ms(1))] {
        let taken = store.reserve_outgoing_packet(&a, &id, "A", 7, amount, least, expires).await;
        assert_eq!(taken, Ok(Reserved::PacketTaken), "{amount} {least}");
    }
    assert_eq!(totals(&read_out(store, &a, &id).await), (0, 0, 60, 50, 0));
    // Up to the limit exactly; a packet of 0 (STREAM's control packets) always fits.
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 3, 40, 0, soon).await, Ok(Reserved::Reserved));
    assert_eq!(
        store.reserve_outgoing_packet(&a, &id, "A", 9, 1, 0, soon).await,
        Ok(Reserved::OverLimit { room: 0 })
    );
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 9, 0, 0, soon).await, Ok(Reserved::Reserved));
    let big = store.reserve_outgoing_packet(&a, &id, "A", u64::MAX, u64::MAX, 0, soon).await;
    assert_eq!(big, Ok(Reserved::OverLimit { room: 0 }));
    let p = read_out(store, &a, &id).await;
    assert_eq!((totals(&p), p.last_packet), ((0, 0, 100, 50, 0), Some(9)), "refusals leave no key behind");
    assert!(p.updated_at >= now);
    // A packet key past 2^63 is a key like any other.
    assert_eq!(store.record_outgoing_packet(&a, &id, 3, rejected(b"T04")).await, Ok(true));
    assert_eq!(
        store.reserve_outgoing_packet(&a, &id, "A", u64::MAX, 1, 0, soon).await,
        Ok(Reserved::Reserved)
    );
    assert_eq!(read_out(store, &a, &id).await.last_packet, Some(u64::MAX));
}

async fn outcomes_are_recorded_once<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "out-record", None);
    let now = clock();
    let id = leased(store, &a, &new_outgoing("record", 100, now), "A", now).await.id;
    let soon = now + ms(30_000);
    for (packet, amount) in [(1, 30), (2, 50), (3, 20)] {
        let reserved = store.reserve_outgoing_packet(&a, &id, "A", packet, amount, amount / 2, soon).await;
        assert_eq!(reserved, Ok(Reserved::Reserved));
    }
    assert_eq!(store.record_outgoing_packet(&a, &id, 1, fulfilled(14)).await, Ok(true));
    let after = read_out(store, &a, &id).await;
    assert_eq!((totals(&after), after.packets_fulfilled), ((30, 14, 70, 35, 0), 1));
    // Once: a second call, with the same outcome or another, changes nothing.
    for again in [fulfilled(14), fulfilled(99), rejected(b"F99")] {
        assert_eq!(store.record_outgoing_packet(&a, &id, 1, again).await, Ok(false));
    }
    assert_eq!(read_out(store, &a, &id).await, after);
    assert_eq!(store.record_outgoing_packet(&a, &id, 2, rejected(b"F08")).await, Ok(true));
    assert_eq!(store.record_outgoing_packet(&a, &id, 2, rejected(b"F08")).await, Ok(false));
    assert_eq!(store.record_outgoing_packet(&a, &id, 2, fulfilled(1)).await, Ok(false));
    let p = read_out(store, &a, &id).await;
    assert_eq!((totals(&p), p.packets_fulfilled, p.packets_rejected), ((30, 14, 20, 10, 0), 1, 1));
    assert_eq!(p.rejects, [("F08".to_string(), 1)].into());
    // Never reserved, or of an unknown payment: nothing to record.
    assert_eq!(store.record_outgoing_packet(&a, &id, 77, fulfilled(1)).await, Ok(false));
    assert_eq!(store.record_outgoing_packet(&a, &out_id("unknown"), 3, fulfilled(1)).await, Ok(false));
    // A reject gave its room back; a recorded key is never reserved again.
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 4, 50, 0, soon).await, Ok(Reserved::Reserved));
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 1, 30, 15, soon).await, Ok(Reserved::PacketTaken));
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 2, 50, 25, soon).await, Ok(Reserved::PacketTaken));
    assert_eq!(
        store.reserve_outgoing_packet(&a, &id, "A", 5, 1, 0, soon).await,
        Ok(Reserved::OverLimit { room: 0 })
    );
    assert_eq!(read_out(store, &a, &id).await.last_packet, Some(4));
}

async fn rejects_are_counted_by_at_most_64_codes<S: Store>(store: &S, prefix: &str) {
    use crate::limits::OUTGOING_REJECT_CODES_MAX;
    let a = account(prefix, "out-rejects", None);
    let now = clock();
    let id = leased(store, &a, &new_outgoing("rejects", 1000, now), "A", now).await.id;
    let soon = now + ms(30_000);
    let code = |n: usize| [b'F', b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
    let codes = OUTGOING_REJECT_CODES_MAX + 3;
    for n in 0..codes + 2 {
        let packet = n as u64;
        assert_eq!(
            store.reserve_outgoing_packet(&a, &id, "A", packet, 1, 0, soon).await,
            Ok(Reserved::Reserved)
        );
        // Two more of the first code, then one that is not an ILP code.
        let outcome = match n {
            n if n < codes => code(n),
            n if n == codes => code(0),
            _ => *b"F\x00!",
        };
        assert_eq!(store.record_outgoing_packet(&a, &id, packet, rejected(&outcome)).await, Ok(true));
    }
    let p = read_out(store, &a, &id).await;
    assert_eq!(p.packets_rejected, codes as u64 + 2);
    assert_eq!(p.rejects.len(), OUTGOING_REJECT_CODES_MAX + 1);
    assert_eq!(p.rejects.get("F00"), Some(&2));
    assert_eq!(p.rejects.get("F63"), Some(&1));
    assert_eq!(p.rejects.get("F64"), None, "past the 64th code");
    assert_eq!(p.rejects.get("other"), Some(&4), "three codes past the 64th, one not an ILP code");
    assert_eq!(p.rejects.values().sum::<u64>(), p.packets_rejected);
    assert_eq!(totals(&p), (0, 0, 0, 0, 0));
}

async fn expired_reservations_become_in_doubt_and_still_count<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "out-doubt", None);
    let now = clock();
    let id = leased(store, &a, &new_outgoing("doubt", 100, now), "A", now).await.id;
    let (early, late) = (now + ms(1000), now + ms(60_000));
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 1, 30, 3, early).await, Ok(Reserved::Reserved));
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 2, 25, 2, early).await, Ok(Reserved::Reserved));
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 3, 20, 1, late).await, Ok(Reserved::Reserved));
    // Past its expiry, but within the grace: still in flight.
    let within =
        store.claim_outgoing_payment(&a, &id, "A", early + GRACE, LEASE, GRACE).await.unwrap().unwrap();
    assert_eq!(totals(&within), (0, 0, 75, 6, 0));
    // Past expiry and grace: in doubt (A died, B takes over), and still counted for the limit.
    let past = early + GRACE + LEASE + ms(1);
    let taken = store.claim_outgoing_payment(&a, &id, "B", past, LEASE, GRACE).await.unwrap().unwrap();
    assert_eq!(totals(&taken), (0, 0, 20, 1, 55));
    assert_eq!(
        store.reserve_outgoing_packet(&a, &id, "B", 4, 26, 0, late).await,
        Ok(Reserved::OverLimit { room: 25 })
    );
    // An in-doubt packet is never reserved again, even with its own terms.
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "B", 1, 30, 3, early).await, Ok(Reserved::PacketTaken));
    // Recorded later, it leaves in_doubt exactly and counts as it ended.
    assert_eq!(store.record_outgoing_packet(&a, &id, 1, fulfilled(29)).await, Ok(true));
    assert_eq!(totals(&read_out(store, &a, &id).await), (30, 29, 20, 1, 25));
    assert_eq!(store.record_outgoing_packet(&a, &id, 1, fulfilled(29)).await, Ok(false));
    assert_eq!(store.record_outgoing_packet(&a, &id, 2, rejected(b"R00")).await, Ok(true));
    let p = read_out(store, &a, &id).await;
    assert_eq!((totals(&p), p.packets_fulfilled, p.packets_rejected), ((30, 29, 20, 1, 0), 1, 1));
    // The rejected one's room is back; a claim moves nothing twice.
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "B", 4, 50, 0, late).await, Ok(Reserved::Reserved));
    let again =
        store.claim_outgoing_payment(&a, &id, "B", past + ms(1), LEASE, GRACE).await.unwrap().unwrap();
    assert_eq!(totals(&again), (30, 29, 70, 1, 0));
    assert_eq!(
        store.reserve_outgoing_packet(&a, &id, "B", 5, 1, 0, late).await,
        Ok(Reserved::OverLimit { room: 0 })
    );
}

async fn a_payment_ends_once_by_its_lease_holder<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "out-finish", None);
    let now = clock();
    let id = leased(store, &a, &new_outgoing("finish", 100, now), "A", now).await.id;
    let other = create_out(store, &a, &new_outgoing("finish-other", 5, now), now + ms(1)).await;
    let soon = now + ms(30_000);
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 1, 40, 4, soon).await, Ok(Reserved::Reserved));
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 2, 10, 1, soon).await, Ok(Reserved::Reserved));
    assert_eq!(store.record_outgoing_packet(&a, &id, 2, fulfilled(10)).await, Ok(true));
    let done = OutgoingState::Completed;
    assert_eq!(store.finish_outgoing_payment(&a, &id, "B", done, "not mine").await, Ok(false));
    assert_eq!(store.finish_outgoing_payment(&a, &id, "A", OutgoingState::Sending, "x").await, Ok(false));
    assert_eq!(store.finish_outgoing_payment(&a, &out_id("unknown"), "A", done, "x").await, Ok(false));
    assert_eq!(read_out(store, &a, &id).await.state, OutgoingState::Sending);
    let long = format!("{}é", "r".repeat(255));
    assert_eq!(store.finish_outgoing_payment(&a, &id, "A", done, &long).await, Ok(true));
    assert_eq!(store.finish_outgoing_payment(&a, &id, "A", OutgoingState::Failed, "again").await, Ok(false));
    let p = read_out(store, &a, &id).await;
    assert_eq!((p.state, p.stop_reason.as_deref(), &p.lease), (done, Some("r".repeat(255).as_str()), &None));
    // What was in flight is in doubt: its sender may still record it, nobody sends it.
    assert_eq!(totals(&p), (10, 10, 0, 0, 40));
    assert_eq!(
        store.reserve_outgoing_packet(&a, &id, "A", 3, 1, 0, soon).await,
        Ok(Reserved::NotSending(done))
    );
    assert_eq!(store.claim_outgoing_payment(&a, &id, "A", now, LEASE, GRACE).await, Ok(None));
    assert_eq!(store.set_outgoing_connection(&a, &id, "A", "g.x", &[1; 32]).await, Ok(None));
    assert_eq!(store.record_outgoing_packet(&a, &id, 1, fulfilled(39)).await, Ok(true));
    let p = read_out(store, &a, &id).await;
    assert_eq!((totals(&p), p.state), ((50, 49, 0, 0, 0), done));
    // Only Sending payments are left to resume.
    assert_eq!(store.unfinished_outgoing_payments(&a, 10).await, Ok(vec![other.clone()]));
    assert_eq!(out_ids(&store.outgoing_payments(&a, 10).await.unwrap()), ["finish-other", "finish"]);
    // A failed one, likewise.
    let fail = leased(store, &a, &new_outgoing("finish-fail", 5, now), "A", now + ms(2)).await;
    assert_eq!(
        store.finish_outgoing_payment(&a, &fail.id, "A", OutgoingState::Failed, "no route").await,
        Ok(true)
    );
    let fail = read_out(store, &a, &fail.id).await;
    assert_eq!((fail.state, fail.stop_reason.as_deref()), (OutgoingState::Failed, Some("no route")));
    let reserve = store.reserve_outgoing_packet(&a, &fail.id, "A", 1, 1, 0, soon).await;
    assert_eq!(reserve, Ok(Reserved::NotSending(OutgoingState::Failed)));
    assert_eq!(store.unfinished_outgoing_payments(&a, 10).await, Ok(vec![other]));
}

async fn the_first_connection_resolved_is_kept<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "out-connection", None);
    let now = clock();
    let id = create_out(store, &a, &new_outgoing("connection", 100, now), now).await.id;
    let secret = [0xa5; 32];
    assert_eq!(
        store.set_outgoing_connection(&a, &id, "A", "g.bob.x", &secret).await,
        Ok(None),
        "no lease yet"
    );
    store.claim_outgoing_payment(&a, &id, "A", now, LEASE, GRACE).await.unwrap().unwrap();
    assert_eq!(store.set_outgoing_connection(&a, &id, "B", "g.bob.x", &secret).await, Ok(None), "not B's");
    let kept = Some(("g.bob.x".to_string(), secret));
    assert_eq!(store.set_outgoing_connection(&a, &id, "A", "g.bob.x", &secret).await, Ok(kept.clone()));
    // A second resolution (after a takeover, say) finds the first.
    store.claim_outgoing_payment(&a, &id, "B", now + LEASE, LEASE, GRACE).await.unwrap().unwrap();
    assert_eq!(store.set_outgoing_connection(&a, &id, "B", "g.bob.y", &[7; 32]).await, Ok(kept));
    let p = read_out(store, &a, &id).await;
    assert_eq!((p.destination.as_deref(), p.shared_secret), (Some("g.bob.x"), Some(secret)));
    let unknown = store.set_outgoing_connection(&a, &out_id("unknown"), "B", "g.x", &secret).await;
    assert_eq!(unknown, Ok(None));
}

async fn a_delivered_amount_limits_spending_and_delivery<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "out-delivered", None);
    let now = clock();
    let id = leased(store, &a, &new_delivered("delivered", 1000, 500, now), "A", now).await.id;
    let soon = now + ms(30_000);
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 1, 300, 600, soon).await, Ok(Reserved::Reserved));
    let over = store.reserve_outgoing_packet(&a, &id, "A", 2, 100, 401, soon).await;
    assert_eq!(over, Ok(Reserved::OverDelivered { room: 400 }), "delivered + in flight's least + this");
    let over = store.reserve_outgoing_packet(&a, &id, "A", 2, 201, 100, soon).await;
    assert_eq!(over, Ok(Reserved::OverLimit { room: 200 }), "source_max is the source limit");
    // Fulfilled, it delivered more than its least: what it really delivered counts.
    assert_eq!(store.record_outgoing_packet(&a, &id, 1, fulfilled(700)).await, Ok(true));
    let over = store.reserve_outgoing_packet(&a, &id, "A", 2, 100, 301, soon).await;
    assert_eq!(over, Ok(Reserved::OverDelivered { room: 300 }));
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 2, 200, 300, soon).await, Ok(Reserved::Reserved));
    assert_eq!(
        store.reserve_outgoing_packet(&a, &id, "A", 3, 0, 1, soon).await,
        Ok(Reserved::OverDelivered { room: 0 })
    );
    assert_eq!(totals(&read_out(store, &a, &id).await), (300, 700, 200, 300, 0));
    // Delivered past the amount (the receiver got more than its least): nothing more fits, not
    // even a packet of 0.
    assert_eq!(store.record_outgoing_packet(&a, &id, 2, fulfilled(400)).await, Ok(true));
    for least in [1, 0] {
        let after = store.reserve_outgoing_packet(&a, &id, "A", 3, 0, least, soon).await;
        assert_eq!(after, Ok(Reserved::OverDelivered { room: 0 }));
    }
    assert_eq!(totals(&read_out(store, &a, &id).await), (500, 1100, 0, 0, 0));
}

/// Amounts, limits and totals at the top of the int64 range, and past 2^53 where doubles round.
async fn outgoing_amounts_stay_exact_at_the_int64_edges<S: Store>(store: &S, prefix: &str) {
    let max = AMOUNT_MAX;
    let a = account(prefix, "out-edges", None);
    let now = clock();
    let soon = now + ms(30_000);
    let id = leased(store, &a, &new_outgoing("top", max, now), "A", now).await.id;
    assert_eq!(
        store.reserve_outgoing_packet(&a, &id, "A", 1, max - 1, max, soon).await,
        Ok(Reserved::Reserved)
    );
    assert_eq!(
        store.reserve_outgoing_packet(&a, &id, "A", 2, 2, 0, soon).await,
        Ok(Reserved::OverLimit { room: 1 })
    );
    let huge = store.reserve_outgoing_packet(&a, &id, "A", 2, u64::MAX, 0, soon).await;
    assert_eq!(huge, Ok(Reserved::OverLimit { room: 1 }));
    // A source payment's least-delivered totals stay within int64 too.
    let least = store.reserve_outgoing_packet(&a, &id, "A", 2, 1, 1, soon).await;
    assert_eq!(least, Ok(Reserved::OverDelivered { room: 0 }));
    assert_eq!(store.reserve_outgoing_packet(&a, &id, "A", 2, 1, 0, soon).await, Ok(Reserved::Reserved));
    assert_eq!(totals(&read_out(store, &a, &id).await), (0, 0, max, max, 0));
    assert_eq!(store.record_outgoing_packet(&a, &id, 1, fulfilled(max - 1)).await, Ok(true));
    // A delivered total past int64 is refused, nothing changed; the packet stays reserved.
    let past = store.record_outgoing_packet(&a, &id, 2, fulfilled(2)).await;
    assert!(matches!(past, Err(StoreError::Overflow(_))), "{past:?}");
    let past = store.record_outgoing_packet(&a, &id, 2, fulfilled(u64::MAX)).await;
    assert!(matches!(past, Err(StoreError::Overflow(_))), "{past:?}");
    assert_eq!(totals(&read_out(store, &a, &id).await), (max - 1, max - 1, 1, 0, 0));
    assert_eq!(store.record_outgoing_packet(&a, &id, 2, fulfilled(1)).await, Ok(true));
    let p = read_out(store, &a, &id).await;
    assert_eq!((totals(&p), p.packets_fulfilled), ((max, max, 0, 0, 0), 2));
    // Past 2^53: the sums and the room are exact.
    let odd = (1u64 << 53) + 1;
    let id = leased(store, &a, &new_delivered("odd", odd, max, now), "A", now).await.id;
    assert_eq!(
        store.reserve_outgoing_packet(&a, &id, "A", 1, 1 << 53, 1 << 53, soon).await,
        Ok(Reserved::Reserved)
    );
    let over = store.reserve_outgoing_packet(&a, &id, "A", 2, 1, 2, soon).await;
    assert_eq!(over, Ok(Reserved::OverDelivered { room: 1 }));
    let over = store.reserve_outgoing_packet(&a, &id, "A", 2, max - (1 << 53) + 1, 1, soon).await;
    assert_eq!(over, Ok(Reserved::OverLimit { room: max - (1 << 53) }));
    assert_eq!(
        store.reserve_outgoing_packet(&a, &id, "A", 2, max - (1 << 53), 1, soon).await,
        Ok(Reserved::Reserved)
    );
    assert_eq!(totals(&read_out(store, &a, &id).await), (0, 0, max, odd, 0));
    let past = early_doubt(store, &a, &id, now).await;
    assert_eq!(totals(&past), (0, 0, 0, 0, max), "the whole range moves to in doubt exactly");
    assert_eq!(store.record_outgoing_packet(&a, &id, 2, fulfilled(1)).await, Ok(true));
    assert_eq!(totals(&read_out(store, &a, &id).await), (max - (1 << 53), 1, 0, 0, 1 << 53));
}

/// Claims the payment far enough past `now` that every reservation made until `now + 30 s` is in
/// doubt.
async fn early_doubt<S: Store>(
    store: &S,
    a: &Account,
    id: &OutgoingPaymentId,
    now: SystemTime,
) -> OutgoingPayment {
    let later = now + ms(30_000) + GRACE + LEASE + ms(1);
    store.claim_outgoing_payment(a, id, "A", later, LEASE, GRACE).await.unwrap().unwrap()
}

async fn ended_payments_are_deleted_after_the_retention<S: Store>(store: &S, prefix: &str) {
    use crate::limits::OUTGOING_PAYMENT_RETENTION_S;
    let a = account(prefix, "out-retention", None);
    let now = clock();
    let ended = leased(store, &a, &new_outgoing("ended", 10, now), "A", now).await.id;
    let soon = now + ms(30_000);
    assert_eq!(store.reserve_outgoing_packet(&a, &ended, "A", 1, 5, 0, soon).await, Ok(Reserved::Reserved));
    assert_eq!(store.finish_outgoing_payment(&a, &ended, "A", OutgoingState::Failed, "stop").await, Ok(true));
    let sending = create_out(store, &a, &new_outgoing("sending", 10, now), now).await.id;
    // The retention is counted from the end (by the node's clock), so a creation just before
    // it has passed keeps the ended payment, and one after deletes it.
    let retention = Duration::from_secs(OUTGOING_PAYMENT_RETENTION_S);
    let before = now + retention - ms(60_000);
    create_out(store, &a, &new_outgoing("before", 10, before), before).await;
    assert_eq!(read_out(store, &a, &ended).await.state, OutgoingState::Failed);
    let after = clock() + retention + ms(1);
    create_out(store, &a, &new_outgoing("after", 10, after), after).await;
    assert_eq!(store.outgoing_payment(&a, &ended).await, Ok(None), "deleted");
    assert_eq!(out_ids(&store.outgoing_payments(&a, 10).await.unwrap()), ["after", "before", "sending"]);
    // Sending payments are never deleted, however old; a deleted payment's outcome finds nothing.
    assert_eq!(read_out(store, &a, &sending).await.state, OutgoingState::Sending);
    assert_eq!(store.record_outgoing_packet(&a, &ended, 1, fulfilled(5)).await, Ok(false));
    // Its id is forgotten: it may be created again.
    let again = create_out(store, &a, &new_outgoing("ended", 3, after), after).await;
    assert_eq!((again.amount, again.in_doubt, again.last_packet), (3, 0, None));
    let claimed = store.claim_outgoing_payment(&a, &ended, "A", after, LEASE, GRACE).await.unwrap().unwrap();
    assert_eq!(totals(&claimed), (0, 0, 0, 0, 0));
    assert_eq!(
        store.reserve_outgoing_packet(&a, &ended, "A", 1, 3, 0, after + LEASE).await,
        Ok(Reserved::Reserved)
    );
}

/// Two instances race: B for the lease A holds, and both for 1-unit packets of a payment of 100
/// (200 calls each). Only A reserves, and exactly 100 units; then many owners race for a free
/// lease, and one gets it.
pub async fn concurrent_outgoing_reservations<S: Store>(store: Arc<S>, prefix: &str) {
    const CALLS: u64 = 200;
    const AMOUNT: u64 = 100;
    let a = Arc::new(account(prefix, "out-race", None));
    let now = clock();
    let id = leased(&*store, &a, &new_outgoing("race", AMOUNT, now), "A", now).await.id;
    let expires = now + ms(30_000);
    let handles: Vec<_> = (0..2 * CALLS)
        .map(|n| {
            let (store, a, id) = (store.clone(), a.clone(), id.clone());
            let owner = if n % 2 == 0 { "A" } else { "B" };
            tokio::spawn(async move {
                if owner == "B" && n % 10 == 1 {
                    let claim = store.claim_outgoing_payment(&a, &id, "B", now, LEASE, GRACE).await;
                    assert_eq!(claim, Ok(None), "A holds the lease");
                }
                let reserved = store.reserve_outgoing_packet(&a, &id, owner, n, 1, 1, expires).await.unwrap();
                (owner, reserved)
            })
        })
        .collect();
    let (mut reserved, mut full, mut refused) = (0u64, 0u64, 0u64);
    for h in handles {
        match h.await.unwrap() {
            ("A", Reserved::Reserved) => reserved += 1,
            ("A", Reserved::OverLimit { room: 0 }) => full += 1,
            ("B", Reserved::NotOwner) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((reserved, full, refused), (AMOUNT, CALLS - AMOUNT, CALLS));
    let p = store.outgoing_payment(&a, &id).await.unwrap().unwrap();
    assert_eq!(totals(&p), (0, 0, AMOUNT, AMOUNT, 0));
    // A free lease, many claimants: one wins.
    let free = create_out(&*store, &a, &new_outgoing("race-free", AMOUNT, now), now).await.id;
    let handles: Vec<_> = (0..50)
        .map(|n| {
            let (store, a, free) = (store.clone(), a.clone(), free.clone());
            tokio::spawn(async move {
                store
                    .claim_outgoing_payment(&a, &free, &format!("owner-{n}"), now, LEASE, GRACE)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = Vec::new();
    for h in handles {
        winners.extend(h.await.unwrap());
    }
    assert_eq!(winners.len(), 1);
    let p = store.outgoing_payment(&a, &free).await.unwrap().unwrap();
    assert_eq!(p.lease, winners[0].lease);
}
