//! The sweeper: crash recovery for reservations. If a node dies (or stalls) between a Prepare's
//! debit and its outcome, the reservation stays behind; once its packet has expired no outcome can
//! be recorded for it any more, so any instance may release it. Every instance runs a sweeper;
//! the store guarantees each reservation is released at most once, and a Fulfill that still
//! arrives for a swept packet is charged again (see [`Store::commit_prepare`]).

use crate::metrics::MoneyError;
use crate::node::Node;
use crate::shutdown::Phase;
use crate::store::{Store, StoreError, Swept};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::{error, warn};

#[derive(Debug, Clone)]
pub struct SweepRules {
    /// How often every account is swept.
    pub interval: Duration,
    /// How long after its expiry a reservation is left alone (a node recording its outcome right
    /// at the expiry must not race the sweep).
    pub grace: Duration,
    /// Reservations released per account per sweep, so one sweep stays a short script.
    pub batch_max: usize,
    /// How long a release is remembered, so that a late commit of it charges it again once.
    pub tombstone_retention: Duration,
    /// Journal entries older than this are folded into the account's checkpoint.
    pub journal_retention: Duration,
}

/// Journal entries folded per account per sweep: one fold is a script of a few milliseconds,
/// and this is far above the rate at which one account's journal grows.
pub const FOLD_BATCH_MAX: usize = 5_000;

/// Sweeps until the node starts draining.
pub async fn run<S: Store>(node: Arc<Node<S>>, rules: SweepRules) {
    let mut tick = tokio::time::interval(rules.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = node.shutdown.reached(Phase::Draining) => return,
        }
        sweep_once(&node, &rules).await;
    }
}

/// One pass over every account; returns how many reservations were released.
pub async fn sweep_once<S: Store>(node: &Node<S>, rules: &SweepRules) -> usize {
    let now = SystemTime::now();
    let cutoff = now - rules.grace;
    let before = |retention: Duration| now.checked_sub(retention).unwrap_or(SystemTime::UNIX_EPOCH);
    let (forget_before, fold_before) = (before(rules.tombstone_retention), before(rules.journal_retention));
    let accounts = node.accounts.load();
    let mut released = 0;
    for account in accounts.iter() {
        let swept = node.store.sweep_expired(account, cutoff, rules.batch_max, forget_before).await;
        match swept {
            Ok(Swept { released: n, stuck }) => {
                if n > 0 {
                    warn!(account = %account.id, released = n, "released reservations of expired packets (a node died or stalled)");
                    released += n;
                }
                if stuck > 0 {
                    // Counted at every sweep that finds them still stuck.
                    for _ in 0..stuck {
                        node.metrics.money_error(MoneyError::ReleaseOverflow);
                    }
                    error!(account = %account.id, stuck, "expired reservations cannot be released: the balance would pass the int64 maximum; they stay reserved and are tried again at each sweep");
                }
            }
            Err(e @ StoreError::Corrupt(_)) => {
                node.metrics.money_error(MoneyError::Corrupt);
                error!(error = %e, account = %account.id, "sweep refused: corrupt data in the store");
                continue;
            }
            // The store is down: the next tick tries again.
            Err(e) => {
                error!(error = %e, "sweep failed");
                return released;
            }
        }
        if let Err(e) = node.store.fold_journal(account, fold_before, FOLD_BATCH_MAX).await {
            error!(error = %e, account = %account.id, "folding the journal failed");
        }
    }
    released
}
