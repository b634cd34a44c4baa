//! The sweeper: crash recovery for reservations. If a node dies (or stalls) between a Prepare's
//! debit and its outcome, the reservation stays behind; once its packet has expired no outcome can
//! be recorded for it any more, so any instance may release it. Every instance runs a sweeper;
//! the store guarantees each reservation is released at most once, and a Fulfill that still
//! arrives for a swept packet is charged again (see [`Store::commit_prepare`]).

use crate::forward::Node;
use crate::shutdown::Phase;
use crate::store::Store;
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
}

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
    let forget_before = now.checked_sub(rules.tombstone_retention).unwrap_or(SystemTime::UNIX_EPOCH);
    let accounts = node.accounts.load();
    let mut released = 0;
    for account in accounts.iter() {
        match node.store.sweep_expired(account, cutoff, rules.batch_max, forget_before).await {
            Ok(0) => {}
            Ok(n) => {
                warn!(account = %account.id, released = n, "released reservations of expired packets (a node died or stalled)");
                released += n;
            }
            // The store is down: the next tick tries again.
            Err(e) => {
                error!(error = %e, "sweep failed");
                return released;
            }
        }
    }
    released
}
