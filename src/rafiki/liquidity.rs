//! Settlement kind `rafiki`: the node's liquidity at a Rafiki peer, kept in step with the node's
//! own books of it.
//!
//! Rafiki prefunds: the node's packets to it spend the node's liquidity there, its packets to the
//! node add to it. So the node's balance with the Rafiki account is that liquidity with the
//! opposite sign, and a settlement of the account (its balance above a negative threshold) is a
//! top-up: paid through the account's rail when it has one, then recorded at Rafiki as a deposit
//! ([`record_top_up`]). The deposit's transfer id and idempotency key are derived from the
//! settlement's id, which the store keeps from before the first attempt: every retry records the
//! same deposit, and Rafiki does it once.
//!
//! Money coming back the other way is recorded as withdrawals ([`crate::rafiki::withdrawals`]).
//! [`reconcile`] reads the liquidity back and compares it with the node's figure.
//!
//! Layer 5: runs on the node.

use crate::account::{Account, RafikiLiquidity};
use crate::node::Node;
use crate::rafiki::admin_api::{uuid_v4, AdminApi, ApiError};
use crate::settlement::{SettleError, SettlementId};
use crate::shutdown::Phase;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

/// The deposit a settlement is recorded as: the same on every attempt.
pub fn deposit_ids(settlement: SettlementId) -> (String, String) {
    (uuid_v4(settlement.0), format!("thitsax-top-up-{settlement}"))
}

fn api<S>(node: &Node<S>, account: &Account) -> Result<(Arc<AdminApi>, Arc<RafikiLiquidity>), SettleError> {
    let rafiki = account
        .rafiki_liquidity
        .clone()
        .ok_or_else(|| SettleError::Definitive(format!("account {} is not a Rafiki peer", account.id)))?;
    // Without [rafiki.admin] (removed by a reload) nothing can be recorded: kept pending.
    let api = node.rafiki.clone().ok_or_else(|| {
        SettleError::NotMade("the node has no [rafiki.admin] to record the top-up through".into())
    })?;
    Ok((api, rafiki))
}

/// Records settlement `id` of `amount` (the account's scale) at Rafiki as a deposit to the
/// node's liquidity. `paid` says the account's rail already paid it: a refusal then leaves the
/// settlement pending for an operator (the money moved; only its record is missing), where
/// without a rail nothing moved and the amount may go back to the balance.
pub async fn record_top_up<S: Store>(
    node: &Node<S>,
    account: &Account,
    amount: u64,
    id: SettlementId,
    paid: bool,
) -> Result<(), SettleError> {
    let (api, rafiki) = api(node, account)?;
    if amount == 0 {
        return Ok(()); // Rafiki refuses a zero deposit, and there is nothing to record.
    }
    let (transfer, key) = deposit_ids(id);
    match api.deposit(&rafiki.peer_id, amount, &transfer, &key).await {
        Ok(()) => {
            info!(account = %account.id, settlement = %id, transfer, amount, "top-up recorded at the Rafiki");
            Ok(())
        }
        // The id is this settlement's alone: Rafiki has it from an earlier attempt (whose key it
        // no longer remembers).
        Err(e) if e.refused_with("DUPLICATE") => {
            info!(account = %account.id, settlement = %id, transfer, "top-up already recorded at the Rafiki");
            Ok(())
        }
        Err(e @ ApiError::Refused { .. }) if paid => {
            error!(error = %e, account = %account.id, settlement = %id, amount, "the rail paid a top-up the Rafiki refuses to record; kept pending and retried: fix the peer at the Rafiki");
            Err(SettleError::Retryable(e.to_string()))
        }
        Err(e @ ApiError::Refused { .. }) => Err(SettleError::Definitive(e.to_string())),
        Err(e @ ApiError::Unauthorized(_)) => Err(SettleError::NotMade(e.to_string())),
        Err(e @ ApiError::Outage(_)) => Err(SettleError::Retryable(e.to_string())),
    }
}

/// A comparison of the node's figure for a Rafiki peer with Rafiki's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// The node's liquidity as Rafiki reports it.
    pub rafiki: u64,
    /// What the node's books say it should be: minus the balance, less top-ups begun and not
    /// yet settled (their deposit may not be recorded yet), plus withdrawals owed (money the
    /// peer's side paid back and the node credited, not yet recorded at the Rafiki).
    pub expected: i128,
    /// `rafiki - expected`: 0 when the books agree.
    pub difference: i128,
    /// Top-ups pending, which make the figure uncertain by their amount.
    pub pending: u64,
    /// Withdrawals owed, which make it uncertain by theirs (one may be reserved at the Rafiki
    /// already, and is then in Rafiki's figure). Those of an engine's callbacks are not kept (the
    /// engine retries until one is recorded): while one is retried, it shows as a difference.
    pub withdrawals_owed: u64,
}

/// Why a reconciliation has no figure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    #[error("account {0} is not a Rafiki peer, or the node has no [rafiki.admin]")]
    NotRafiki(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Reads the account's liquidity at Rafiki and compares it with the node's books ([`compare`]).
/// Sets the gauges; a difference is an error in the log.
pub async fn reconcile<S: Store>(node: &Node<S>, account: &Account) -> Result<Reconciled, ReconcileError> {
    let (api, rafiki) = api(node, account).map_err(|_| ReconcileError::NotRafiki(account.id.to_string()))?;
    let reading = compare(&node.store, &api, account, &rafiki).await?;
    let metrics = node.metrics.rafiki();
    let id = account.id.to_string();
    metrics.liquidity.with_label_values(&[&id]).set(i64::try_from(reading.rafiki).unwrap_or(i64::MAX));
    // A gauge is an i64: a difference beyond it shows as its bound.
    let difference = reading.difference.clamp(i64::MIN.into(), i64::MAX.into()) as i64;
    metrics.difference.with_label_values(&[&id]).set(difference);
    if reading.difference != 0 {
        error!(account = %account.id, rafiki = reading.rafiki, expected = %reading.expected, difference = %reading.difference, pending = reading.pending, withdrawals_owed = reading.withdrawals_owed, "the Rafiki's liquidity figure and the node's differ");
    }
    Ok(reading)
}

/// Rafiki's figure and the store's, compared (also `thitsax audit`'s). Packets in flight move
/// one figure before the other: a difference is read again a few times before it stands.
pub async fn compare<S: Store>(
    store: &S,
    api: &AdminApi,
    account: &Account,
    rafiki: &RafikiLiquidity,
) -> Result<Reconciled, ReconcileError> {
    let mut reading = read(store, api, account, rafiki).await?;
    for _ in 0..3 {
        if reading.difference == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        reading = read(store, api, account, rafiki).await?;
    }
    Ok(reading)
}

async fn read<S: Store>(
    store: &S,
    api: &AdminApi,
    account: &Account,
    rafiki: &RafikiLiquidity,
) -> Result<Reconciled, ReconcileError> {
    let liquidity = api.liquidity(&rafiki.peer_id).await?;
    let balance = store.balance(&account.id).await?;
    let pending: u64 =
        store.pending_settlements(account).await?.iter().map(|p| p.amount).fold(0, u64::saturating_add);
    let withdrawals_owed: u64 = store
        .withdrawals_owed(account, usize::MAX)
        .await?
        .iter()
        .map(|w| w.amount)
        .fold(0, u64::saturating_add);
    let expected = -balance - i128::from(pending) + i128::from(withdrawals_owed);
    Ok(Reconciled {
        rafiki: liquidity,
        expected,
        difference: i128::from(liquidity) - expected,
        pending,
        withdrawals_owed,
    })
}

/// Reconciles every Rafiki peer every `interval`, until the node drains.
pub async fn run<S: Store>(node: Arc<Node<S>>, interval: Duration) {
    if node.rafiki.is_none() {
        return;
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = node.shutdown.reached(Phase::Draining) => return,
        }
        let accounts = node.accounts.load();
        for account in accounts.iter().filter(|a| a.rafiki_liquidity.is_some()) {
            if let Err(e) = reconcile(&node, account).await {
                warn!(error = %e, account = %account.id, "could not reconcile the Rafiki's liquidity");
            }
        }
    }
}
