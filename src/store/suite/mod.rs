//! The behaviour every store must have, as one suite that each implementation runs (memory in
//! its unit tests, Redis and Redis Cluster in `tests/`). `prefix` keeps account ids of separate
//! runs apart when they share a database. The cases of the payments the node receives and sends
//! itself are in [`incoming`] and [`outgoing`].

use super::incoming::{from_millis, millis};
use super::{
    AmountKind, CompletionReason, CreatedIncoming, CreatedOutgoing, DebitError, IncomingCredit,
    IncomingPayment, IncomingPaymentId, IncomingState, InvalidIncoming, InvalidOutgoing, NewIncomingPayment,
    NewOutgoingPayment, OutgoingPayment, OutgoingPaymentId, OutgoingState, OwedWithdrawal, PacketId,
    PacketOutcome, ProbedRate, Receipt, ReceiveRefusal, ReplayKey, Reserved, SettlementClaim, SettlementEnd,
    Store, StoreError, Swept,
};
use crate::account::{test_account, Account};
use crate::balance::{Balance, BalanceError, AMOUNT_MAX};
use crate::limits::INCOMING_PAYMENT_RETENTION_S;
use crate::quantity::Quantity;
use crate::settlement_id::SettlementId;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

mod incoming;
mod outgoing;

mod payout;
pub use incoming::concurrent_receives;
use incoming::*;
pub use outgoing::concurrent_outgoing_reservations;
use outgoing::*;

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
    settlement_leases_keep_one_driver_and_one_reference(store, prefix).await;
    payout::payouts_are_created_once_driven_by_one_and_end_once(store, prefix).await;
    settlement_rules_agree_at_the_edges(store, prefix).await;
    incoming_settlements_credit_once_and_keep_remainders(store, prefix).await;
    a_credit_owing_a_withdrawal_keeps_it_in_the_same_step_until_finished(store, prefix).await;
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

/// A pending settlement's lease is held by one owner at a time until it ends; the first
/// reference kept is the one every holder sees; the end drops both; a settlement paid but for an
/// unpaid part gives that part back in the same step.
async fn settlement_leases_keep_one_driver_and_one_reference<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "settle-lease", None);
    let now = SystemTime::now();
    let later = |s: u64| now + Duration::from_secs(s);
    let id = SettlementId::random();
    assert_eq!(store.claim_settlement(&a, id, "one", now, later(10)).await, Ok(None), "not pending");
    store.credit_fulfill(&a, 1000, PacketId::next()).await.unwrap();
    assert_eq!(store.begin_settlement(&a, 500, 0, id).await, Ok(Some(1000)));
    let free = SettlementClaim { reference: None };
    assert_eq!(store.set_settlement_reference(&a, id, "one", "t-1").await, Ok(None), "no lease yet");
    assert_eq!(store.claim_settlement(&a, id, "one", now, later(10)).await, Ok(Some(free.clone())));
    assert_eq!(store.claim_settlement(&a, id, "two", later(5), later(15)).await, Ok(None), "held by one");
    assert_eq!(store.set_settlement_reference(&a, id, "two", "t-2").await, Ok(None), "not two's");
    assert_eq!(store.claim_settlement(&a, id, "one", later(1), later(11)).await, Ok(Some(free)), "renewed");
    assert_eq!(store.set_settlement_reference(&a, id, "one", "t-1").await, Ok(Some("t-1".into())));
    assert_eq!(
        store.set_settlement_reference(&a, id, "one", "t-9").await,
        Ok(Some("t-1".into())),
        "first wins"
    );
    // The lease ended (at or before now): another owner takes it, with the reference.
    let kept = SettlementClaim { reference: Some("t-1".into()) };
    assert_eq!(store.claim_settlement(&a, id, "two", later(11), later(20)).await, Ok(Some(kept)));
    assert_eq!(store.claim_settlement(&a, id, "one", later(12), later(22)).await, Ok(None), "two's now");
    assert_eq!(
        store.finish_settlement(&a, id, SettlementEnd::SettledBut { unpaid: 7 }).await,
        Ok(Some(1000))
    );
    assert_eq!(store.balance(&a.id).await, Ok(7), "the unpaid part came back");
    assert_eq!(store.claim_settlement(&a, id, "two", later(13), later(23)).await, Ok(None), "ended");
    assert_eq!(store.finish_settlement(&a, id, SettlementEnd::Refunded).await, Ok(None), "ended once");
    assert_eq!(store.balance(&a.id).await, Ok(7));
    // A new settlement starts with no lease and no reference; an unpaid part is never more than
    // the settlement.
    let next = SettlementId::random();
    store.credit_fulfill(&a, 993, PacketId::next()).await.unwrap();
    assert_eq!(store.begin_settlement(&a, 500, 0, next).await, Ok(Some(1000)));
    let fresh = SettlementClaim { reference: None };
    assert_eq!(store.claim_settlement(&a, next, "two", later(14), later(24)).await, Ok(Some(fresh)));
    assert_eq!(
        store.finish_settlement(&a, next, SettlementEnd::SettledBut { unpaid: 5000 }).await,
        Ok(Some(1000))
    );
    assert_eq!(store.balance(&a.id).await, Ok(1000));
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
    assert_eq!(store.settlement_credited(&a, "k1").await, Ok(Some(123)), "read, nothing changed");
    assert_eq!(store.settlement_credited(&a, "never").await, Ok(None));
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

/// A Rafiki peer's money paid back through Mojaloop: the credit keeps the withdrawal it owes (of
/// what it credited, in the account's scale) in the same step; a repeat, a reused key and a
/// refused amount keep nothing more; a credit of 0 owes nothing; finishing forgets it once.
async fn a_credit_owing_a_withdrawal_keeps_it_in_the_same_step_until_finished<S: Store>(
    store: &S,
    prefix: &str,
) {
    let a = account(prefix, "owing", None);
    assert_eq!(store.withdrawals_owed(&a, 10).await, Ok(vec![]));
    let before = SystemTime::now() - Duration::from_secs(1);
    let first = Quantity::new(1_234_567_890, 9);
    let credited = store.credit_settlement_owing_withdrawal(&a, "mojaloop:t1", first).await;
    assert_eq!(credited, Ok(IncomingCredit::Credited { credited: 123 }));
    let repeated = store.credit_settlement_owing_withdrawal(&a, "mojaloop:t1", first).await;
    assert_eq!(repeated, Ok(IncomingCredit::Repeated { credited: 123 }));
    let reused = store.credit_settlement_owing_withdrawal(&a, "mojaloop:t1", Quantity::new(1, 9)).await;
    assert_eq!(reused, Ok(IncomingCredit::KeyReused));
    let huge = Quantity::new(10u128.pow(30), 0);
    let refused = store.credit_settlement_owing_withdrawal(&a, "mojaloop:huge", huge).await;
    assert_eq!(refused, Ok(IncomingCredit::TooLarge));
    // 0.004567890 is left over: a credit of 0.001 adds to it and credits nothing, so owes nothing.
    let tiny =
        store.credit_settlement_owing_withdrawal(&a, "mojaloop:tiny", Quantity::new(1_000_000, 9)).await;
    assert_eq!(tiny, Ok(IncomingCredit::Credited { credited: 0 }));
    // An engine's credit (the node records its withdrawal before answering) keeps none.
    let engine = store.credit_settlement(&a, "engine-key", Quantity::new(5_000_000_000, 9)).await;
    assert_eq!(engine, Ok(IncomingCredit::Credited { credited: 500 }));
    // Amounts past 2^53 are kept exactly.
    let big = Quantity::new(u128::from(AMOUNT_MAX / 2), 2);
    let big_credit = store.credit_settlement_owing_withdrawal(&a, "mojaloop:t2", big).await;
    assert_eq!(big_credit, Ok(IncomingCredit::Credited { credited: AMOUNT_MAX / 2 }));
    assert_eq!(store.balance(&a.id).await, Ok(123 + 500 + i128::from(AMOUNT_MAX / 2)));

    let owed = store.withdrawals_owed(&a, 10).await.unwrap();
    let keys: Vec<(&str, u64)> = owed.iter().map(|o| (o.key.as_str(), o.amount)).collect();
    assert_eq!(keys, [("mojaloop:t1", 123), ("mojaloop:t2", AMOUNT_MAX / 2)], "oldest first");
    let after = SystemTime::now() + Duration::from_secs(1);
    assert!(owed.iter().all(|o: &OwedWithdrawal| o.since > before && o.since < after), "{owed:?}");
    assert_eq!(store.withdrawals_owed(&a, 1).await.unwrap().len(), 1, "at most the limit");

    assert_eq!(store.finish_withdrawal(&a, "mojaloop:t1").await, Ok(true));
    assert_eq!(store.finish_withdrawal(&a, "mojaloop:t1").await, Ok(false), "once");
    assert_eq!(store.finish_withdrawal(&a, "never").await, Ok(false));
    let left = store.withdrawals_owed(&a, 10).await.unwrap();
    assert_eq!(left.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["mojaloop:t2"]);
    // Finishing moves no money; a repeat of the finished credit still keeps nothing.
    let again = store.credit_settlement_owing_withdrawal(&a, "mojaloop:t1", first).await;
    assert_eq!(again, Ok(IncomingCredit::Repeated { credited: 123 }));
    assert_eq!(store.withdrawals_owed(&a, 10).await.unwrap().len(), 1);
    assert_eq!(store.balance(&a.id).await, Ok(123 + 500 + i128::from(AMOUNT_MAX / 2)));
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
