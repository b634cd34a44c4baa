//! The payout cases of the shared store suite.

use super::account;
use crate::store::payout::PAYOUT_ERROR_BYTES_MAX;
use crate::store::{
    CreatedPayout, NewPayout, PacketId, PayoutAction, PayoutActionRefused, PayoutEnd, PayoutState, Store,
    StoreError,
};
use std::time::{Duration, SystemTime};

fn new(id: &str, amount: u64) -> NewPayout {
    NewPayout {
        id: id.into(),
        id_type: "MSISDN".into(),
        id_value: "5215550001".into(),
        fsp_id: Some("payerfsp".into()),
        currency: "MXN".into(),
        amount,
    }
}

/// A payout is created once, with its debit; one owner drives it at a time; the first reference
/// is kept; it ends paid, or failed with its money held, then retried with a fresh reference or
/// refunded once.
pub(super) async fn payouts_are_created_once_driven_by_one_and_end_once<S: Store>(store: &S, prefix: &str) {
    let a = account(prefix, "payouts", None);
    let now = SystemTime::now();
    let later = |s: u64| now + Duration::from_secs(s);
    store.credit_fulfill(&a, 1_000, PacketId::next()).await.unwrap();
    let created = store.create_payout(&a, &new("p1", 600), now).await.unwrap();
    let CreatedPayout::Created(p) = created else { panic!("not created: {created:?}") };
    assert_eq!((p.state, p.amount, p.attempt, p.reference.as_deref()), (PayoutState::Pending, 600, 1, None));
    assert_eq!((p.fsp_id.as_deref(), p.account.as_str()), (Some("payerfsp"), &*a.id));
    assert_eq!(store.balance(&a.id).await, Ok(400), "the money leaves with the payout");
    let again = store.create_payout(&a, &new("p1", 999), now).await.unwrap();
    assert!(matches!(again, CreatedPayout::Exists(ref e) if e.amount == 600), "{again:?}");
    assert_eq!(store.balance(&a.id).await, Ok(400), "created once");
    assert!(matches!(
        store.create_payout(&a, &new("bad id", 1), now).await,
        Err(StoreError::InvalidPayout(_))
    ));
    assert!(matches!(store.create_payout(&a, &new("p0", 0), now).await, Err(StoreError::InvalidPayout(_))));

    // One lease holder at a time; the first reference wins.
    assert!(store.claim_payout(&a, "p1", "one", now, later(10)).await.unwrap().is_some());
    assert_eq!(store.claim_payout(&a, "p1", "two", later(1), later(11)).await, Ok(None), "held");
    assert_eq!(store.set_payout_reference(&a, "p1", "two", "t-2").await, Ok(None), "not two's");
    assert_eq!(store.set_payout_reference(&a, "p1", "one", "t-1").await, Ok(Some("t-1".into())));
    assert_eq!(store.set_payout_reference(&a, "p1", "one", "t-9").await, Ok(Some("t-1".into())));
    let taken =
        store.claim_payout(&a, "p1", "two", later(10), later(20)).await.unwrap().expect("lease ended");
    assert_eq!(taken.reference.as_deref(), Some("t-1"), "a new holder goes on with the kept transfer");
    assert_eq!(
        store.finish_payout(&a, "p1", "one", &PayoutEnd::Paid, later(11)).await,
        Ok(None),
        "not one's now"
    );

    // Failed: the money stays with the payout; the reference moves to the earlier ones.
    let long = "x".repeat(PAYOUT_ERROR_BYTES_MAX + 10);
    let failed =
        store.finish_payout(&a, "p1", "two", &PayoutEnd::Failed(long), later(12)).await.unwrap().unwrap();
    assert_eq!((failed.state, failed.reference.as_deref()), (PayoutState::Failed, None));
    assert_eq!(failed.earlier_references, ["t-1"]);
    assert_eq!(failed.error.as_deref().map(str::len), Some(PAYOUT_ERROR_BYTES_MAX));
    assert_eq!(store.balance(&a.id).await, Ok(400));
    assert_eq!(store.claim_payout(&a, "p1", "two", later(13), later(23)).await, Ok(None), "not pending");
    assert_eq!(store.open_payouts(&a, 10).await.unwrap().len(), 1, "failed payouts stay open");

    // Retried: a new attempt with no reference; it pays.
    let retried = store.act_on_payout(&a, "p1", PayoutAction::Retry, later(14)).await.unwrap().unwrap();
    assert_eq!(
        (retried.state, retried.attempt, retried.reference.as_deref()),
        (PayoutState::Pending, 2, None)
    );
    let refused = store.act_on_payout(&a, "p1", PayoutAction::Refund, later(14)).await.unwrap();
    assert!(matches!(refused, Err(PayoutActionRefused::NotFailed(_))), "only a failed one");
    store.claim_payout(&a, "p1", "three", later(15), later(25)).await.unwrap().expect("free");
    assert_eq!(store.set_payout_reference(&a, "p1", "three", "t-3").await, Ok(Some("t-3".into())));
    let paid = store.finish_payout(&a, "p1", "three", &PayoutEnd::Paid, later(16)).await.unwrap().unwrap();
    assert_eq!((paid.state, paid.reference.as_deref()), (PayoutState::Paid, Some("t-3")));
    assert_eq!(store.payout(&a, "p1").await.unwrap().map(|p| p.state), Some(PayoutState::Paid));
    assert!(store.open_payouts(&a, 10).await.unwrap().is_empty(), "paid payouts are not open");
    assert_eq!(store.balance(&a.id).await, Ok(400));

    // Another fails, and is refunded once: its money back on the account.
    store.create_payout(&a, &new("p2", 300), later(17)).await.unwrap();
    store.claim_payout(&a, "p2", "one", later(17), later(27)).await.unwrap().unwrap();
    store
        .finish_payout(&a, "p2", "one", &PayoutEnd::Failed("3204".into()), later(18))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.balance(&a.id).await, Ok(100));
    let refunded = store.act_on_payout(&a, "p2", PayoutAction::Refund, later(19)).await.unwrap().unwrap();
    assert_eq!(refunded.state, PayoutState::Refunded);
    assert_eq!(store.balance(&a.id).await, Ok(400));
    let twice = store.act_on_payout(&a, "p2", PayoutAction::Refund, later(20)).await.unwrap();
    assert!(matches!(twice, Err(PayoutActionRefused::NotFailed(_))));
    assert_eq!(store.balance(&a.id).await, Ok(400), "refunded once");
    assert_eq!(
        store.act_on_payout(&a, "nope", PayoutAction::Retry, now).await,
        Ok(Err(PayoutActionRefused::Unknown))
    );
    assert_eq!(store.payout(&a, "nope").await, Ok(None));
}
