//! The suite's cases of incoming payments: what a local account receives over STREAM.

use super::*;

pub(super) fn new_payment(id: &str, target: Option<u64>, expires_at: SystemTime) -> NewIncomingPayment {
    let id = IncomingPaymentId::parse(id).expect("a test id is valid");
    NewIncomingPayment { id, target, expires_at, metadata: "{}".into() }
}

pub(super) async fn create<S: Store>(
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

pub(super) async fn read<S: Store>(store: &S, a: &Account, id: &IncomingPaymentId) -> IncomingPayment {
    store.incoming_payment(a, id).await.unwrap().unwrap_or_else(|| panic!("payment {id} is gone"))
}

pub(super) fn received(
    balance: Balance,
    received: Option<u64>,
    completed: bool,
) -> Result<Receipt, StoreError> {
    Ok(Receipt::Received { balance, received, completed })
}

pub(super) fn refused(refusal: ReceiveRefusal) -> Result<Receipt, StoreError> {
    Ok(Receipt::Refused(refusal))
}

pub(super) fn ids(payments: &[IncomingPayment]) -> Vec<&str> {
    payments.iter().map(|p| p.id.as_str()).collect()
}

pub(super) async fn incoming_payments_are_created_once_and_read_back<S: Store>(store: &S, prefix: &str) {
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

pub(super) async fn receive_credits_each_packet_once<S: Store>(store: &S, prefix: &str) {
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

pub(super) async fn a_payment_completes_exactly_at_its_target_once<S: Store>(store: &S, prefix: &str) {
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

pub(super) async fn a_packet_over_the_target_changes_nothing_and_a_smaller_one_still_fits<S: Store>(
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

pub(super) async fn an_expired_payment_refuses_packets_and_completes_as_expired<S: Store>(
    store: &S,
    prefix: &str,
) {
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

pub(super) async fn the_expiry_scan_completes_due_payments_in_bounded_batches<S: Store>(
    store: &S,
    prefix: &str,
) {
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

pub(super) async fn completions_are_handled_once_and_deleted_after_the_retention<S: Store>(
    store: &S,
    prefix: &str,
) {
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

pub(super) async fn receive_without_a_payment_credits_the_account_once<S: Store>(store: &S, prefix: &str) {
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
pub(super) async fn pay_out<S: Store>(store: &S, a: &Account, amount: u64) {
    let p = PacketId::next();
    store.debit_prepare(a, amount, p, soon()).await.unwrap();
    store.commit_prepare(a, amount, p).await.unwrap();
}

/// Totals and balances at the ends of the int64 range, and past 2^53 where doubles round.
pub(super) async fn receive_stays_exact_at_the_int64_edges<S: Store>(store: &S, prefix: &str) {
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
pub(super) async fn a_replayed_stream_packet_is_credited_once<S: Store>(store: &S, prefix: &str) {
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
