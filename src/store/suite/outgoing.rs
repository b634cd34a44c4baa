//! The suite's cases of outgoing payments: what a local account sends over STREAM.

use super::*;

const LEASE: Duration = Duration::from_secs(10);
const GRACE: Duration = Duration::from_secs(2);

pub(super) fn out_id(id: &str) -> OutgoingPaymentId {
    OutgoingPaymentId::parse(id).expect("a test id is valid")
}

/// A payment of `amount` source units, due within the hour.
pub(super) fn new_outgoing(id: &str, amount: u64, now: SystemTime) -> NewOutgoingPayment {
    NewOutgoingPayment {
        id: out_id(id),
        receiver: "$wallet.example/bob".into(),
        amount,
        kind: AmountKind::Source,
        slippage: "0.01".into(),
        deadline: now + HOUR,
        source_max: None,
        probed: None,
    }
}

/// A payment that delivers `amount` receiver units, spending at most `source_max`.
pub(super) fn new_delivered(id: &str, amount: u64, source_max: u64, now: SystemTime) -> NewOutgoingPayment {
    NewOutgoingPayment {
        kind: AmountKind::Delivered,
        source_max: Some(source_max),
        ..new_outgoing(id, amount, now)
    }
}

pub(super) async fn create_out<S: Store>(
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

pub(super) async fn read_out<S: Store>(store: &S, a: &Account, id: &OutgoingPaymentId) -> OutgoingPayment {
    store.outgoing_payment(a, id).await.unwrap().unwrap_or_else(|| panic!("payment {id} is gone"))
}

/// Creates a payment and claims it for `owner` at `now`.
pub(super) async fn leased<S: Store>(
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

pub(super) fn out_ids(payments: &[OutgoingPayment]) -> Vec<&str> {
    payments.iter().map(|p| p.id.as_str()).collect()
}

/// (sent, delivered, in_flight, in_flight_min_delivered, in_doubt) of a payment.
pub(super) fn totals(p: &OutgoingPayment) -> (u64, u64, u64, u64, u64) {
    (p.sent, p.delivered, p.in_flight, p.in_flight_min_delivered, p.in_doubt)
}

pub(super) fn fulfilled(delivered: u64) -> PacketOutcome {
    PacketOutcome::Fulfilled { delivered }
}

pub(super) fn rejected(code: &[u8; 3]) -> PacketOutcome {
    PacketOutcome::Rejected { code: *code }
}

pub(super) async fn outgoing_payments_are_created_once_and_read_back<S: Store>(store: &S, prefix: &str) {
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
        probed: None,
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
        probed: None,
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
    // A payment given a probed rate keeps it, to the unit.
    let rate = ProbedRate { sent: AMOUNT_MAX, delivered: 1 };
    let probed = NewOutgoingPayment { probed: Some(rate), ..new.clone() };
    let b = account(prefix, "out-create-probed", None);
    let created = create_out(store, &b, &probed, now).await;
    assert_eq!((created.probed, read_out(store, &b, &probed.id).await.probed), (Some(rate), Some(rate)));
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

pub(super) async fn a_lease_is_held_until_it_expires_then_taken_over<S: Store>(store: &S, prefix: &str) {
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

pub(super) async fn reservations_stay_within_the_amount_and_are_idempotent<S: Store>(
    store: &S,
    prefix: &str,
) {
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

pub(super) async fn outcomes_are_recorded_once<S: Store>(store: &S, prefix: &str) {
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

pub(super) async fn rejects_are_counted_by_at_most_64_codes<S: Store>(store: &S, prefix: &str) {
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

pub(super) async fn expired_reservations_become_in_doubt_and_still_count<S: Store>(store: &S, prefix: &str) {
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

pub(super) async fn a_payment_ends_once_by_its_lease_holder<S: Store>(store: &S, prefix: &str) {
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

pub(super) async fn the_first_connection_resolved_is_kept<S: Store>(store: &S, prefix: &str) {
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

pub(super) async fn a_delivered_amount_limits_spending_and_delivery<S: Store>(store: &S, prefix: &str) {
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
pub(super) async fn outgoing_amounts_stay_exact_at_the_int64_edges<S: Store>(store: &S, prefix: &str) {
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
pub(super) async fn early_doubt<S: Store>(
    store: &S,
    a: &Account,
    id: &OutgoingPaymentId,
    now: SystemTime,
) -> OutgoingPayment {
    let later = now + ms(30_000) + GRACE + LEASE + ms(1);
    store.claim_outgoing_payment(a, id, "A", later, LEASE, GRACE).await.unwrap().unwrap()
}

pub(super) async fn ended_payments_are_deleted_after_the_retention<S: Store>(store: &S, prefix: &str) {
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
