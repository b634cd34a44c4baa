//! Completed incoming payments, handed to the node's [`CompletionHook`]: what acts when a payment
//! is complete (a log line by default; a payout in another network, later). A payment completes
//! when a packet reaches its target or when it expires; the store keeps every completion until
//! the hook has acknowledged it (an outbox that survives restarts and is shared by every instance
//! on the same Redis), so a completion is never lost, whatever stops when.
//!
//! The hook runs **at least once** per completion: an instance stopped after the hook acted and
//! before its acknowledgement was written, or two instances scanning at once, run it again. A
//! hook must therefore be idempotent on the payment's id (a payout would use it as its own id).
//!
//! The worker wakes at once when the receiver completes a payment, and otherwise every
//! [`CompletionRules::scan_interval`], when it also completes the payments that expired.

use crate::account::Relation;
use crate::node::Node;
use crate::shutdown::Phase;
use crate::store::{CompletionReason, IncomingPayment, IncomingState, Store};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

/// Why a hook did not handle a completion: it is handed over again at the next scan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

/// What acts on a completed incoming payment. Called again (at least once in all) until it
/// returns `Ok`; idempotent on `payment.id` (see the module doc).
pub trait CompletionHook: Send + Sync + 'static {
    fn completed<'a>(&'a self, payment: &'a IncomingPayment) -> BoxFuture<'a, Result<(), HookError>>;
}

/// The default hook: the completion is logged (and counted by the worker), nothing else.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogCompletions;

impl CompletionHook for LogCompletions {
    fn completed<'a>(&'a self, payment: &'a IncomingPayment) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(async move {
            info!(
                account = %payment.account,
                payment = %payment.id,
                received = payment.received,
                target = ?payment.target,
                reason = reason(payment),
                "incoming payment completed"
            );
            Ok(())
        })
    }
}

/// How the worker scans.
#[derive(Debug, Clone, Copy)]
pub struct CompletionRules {
    /// Expired payments are completed, and unacknowledged completions handed over again, this often.
    pub scan_interval: Duration,
    /// Payments expired, and completions handed over, per account per scan.
    pub batch_max: usize,
}

impl Default for CompletionRules {
    fn default() -> Self {
        CompletionRules {
            scan_interval: Duration::from_millis(crate::limits::COMPLETIONS_SCAN_INTERVAL_MS),
            batch_max: crate::limits::COMPLETIONS_BATCH_MAX,
        }
    }
}

/// Runs until the node starts draining.
pub async fn run<S: Store>(node: Arc<Node<S>>, hook: Arc<dyn CompletionHook>, rules: CompletionRules) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(rules.scan_interval) => {}
            _ = node.receiving.completed.notified() => {}
            _ = node.shutdown.reached(Phase::Draining) => return,
        }
        scan_once(&node, &*hook, &rules).await;
    }
}

/// One pass over every local account: completes what expired, hands every unacknowledged
/// completion to the hook and acknowledges what it handled. Returns how many it handled.
pub async fn scan_once<S: Store>(
    node: &Node<S>,
    hook: &dyn CompletionHook,
    rules: &CompletionRules,
) -> usize {
    let accounts = node.accounts.load();
    let mut handled = 0;
    for account in accounts.iter().filter(|a| a.relation == Relation::Local) {
        if let Err(e) = node.store.expire_incoming_payments(account, SystemTime::now(), rules.batch_max).await
        {
            warn!(error = %e, account = %account.id, "expired incoming payments not completed this scan");
        }
        let completed = match node.store.unhandled_completions(account, rules.batch_max).await {
            Ok(completed) => completed,
            Err(e) => {
                warn!(error = %e, account = %account.id, "completed incoming payments not read this scan");
                continue;
            }
        };
        for payment in completed {
            if let Err(e) = hook.completed(&payment).await {
                warn!(error = %e, account = %account.id, payment = %payment.id, "completion hook failed; handed over again at the next scan");
                continue;
            }
            match node.store.mark_completion_handled(account, &payment.id).await {
                Ok(true) => {
                    node.metrics.incoming_payment_completed(reason(&payment));
                    handled += 1;
                }
                // Another instance acknowledged it first.
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %e, payment = %payment.id, "completion handled but not acknowledged; the hook runs again")
                }
            }
        }
    }
    handled
}

/// `target_reached` or `expired` (the metric's label and the log's).
fn reason(payment: &IncomingPayment) -> &'static str {
    match payment.state {
        IncomingState::Completed { reason: CompletionReason::TargetReached, .. } => "target_reached",
        IncomingState::Completed { reason: CompletionReason::Expired, .. } => "expired",
        IncomingState::Open => "open",
    }
}
