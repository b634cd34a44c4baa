//! A fulfilled packet's writes still owed to the store. A Fulfill is recorded (source's debit
//! committed, destination credited) before it is relayed, and the packet path retries both for as
//! long as the Fulfill can still be relayed in time (see [`crate::forward`]). If the store stays
//! unwritable for all of that time, the Fulfill is relayed anyway (the money has moved
//! downstream; withholding it would lose the sender's payment to us) and the writes are handed
//! over here, to be retried in the background.
//!
//! Both retries are safe: the commit is idempotent (a reservation released by the sweeper
//! meanwhile is charged again exactly once), and a credit is retried with
//! [`Store::retry_credit`], which credits only if no earlier attempt did. What is bounded: the
//! writes held ([`PENDING_MAX`]) and how long each is retried ([`RETRY_WINDOW`]); a write given
//! up on, or refused because the queue is full, is logged at error level with its packet id for
//! reconciliation.

use crate::account::Account;
use crate::store::{PacketId, Store, StoreError};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// Writes held at most; past it, new ones are logged and dropped.
pub const PENDING_MAX: usize = 10_000;
/// How long one write is retried after the Fulfill was relayed (covers a Redis restart or a
/// cluster failover).
pub const RETRY_WINDOW: Duration = Duration::from_secs(600);
/// Time between two passes over the held commits.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// A write of a fulfilled packet not yet applied in the store.
#[derive(Debug, Clone)]
pub struct PendingWrite {
    pub kind: WriteKind,
    pub account: Account,
    pub amount: u64,
    pub packet: PacketId,
    /// When it was handed over: retried until `since + RETRY_WINDOW`.
    pub since: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// Commit the source's reserved debit.
    Commit,
    /// Credit the destination; the first attempt was sent at `first_sent`.
    Credit { first_sent: std::time::SystemTime },
}

impl PendingWrite {
    /// One attempt; safe to repeat (see the module doc).
    pub async fn apply<S: Store>(&self, store: &S) -> Result<(), StoreError> {
        match self.kind {
            WriteKind::Commit => store.commit_prepare(&self.account, self.amount, self.packet).await,
            WriteKind::Credit { first_sent } => {
                store.retry_credit(&self.account, self.amount, self.packet, first_sent).await.map(|_| ())
            }
        }
    }

    fn what(&self) -> &'static str {
        match self.kind {
            WriteKind::Commit => "debit commit",
            WriteKind::Credit { .. } => "credit",
        }
    }
}

/// Whether a failed write of a fulfilled packet may be tried again.
pub fn retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_) | StoreError::Uncertain(_))
}

/// The hand-over point between the packet path and the background retrier.
#[derive(Debug)]
pub struct PendingCommits {
    sender: mpsc::Sender<PendingWrite>,
    receiver: Mutex<Option<mpsc::Receiver<PendingWrite>>>,
}

impl Default for PendingCommits {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel(PENDING_MAX);
        PendingCommits { sender, receiver: Mutex::new(Some(receiver)) }
    }
}

impl PendingCommits {
    /// Queues a write for the background retrier; never waits.
    pub fn hand_over(&self, write: PendingWrite, cause: &StoreError) {
        let (account, packet, amount, what) =
            (write.account.id.clone(), write.packet, write.amount, write.what());
        match self.sender.try_send(write) {
            Ok(()) => {
                warn!(error = %cause, %account, %packet, amount, what, "Fulfill relayed before its write was applied; retrying in the background")
            }
            Err(_) => {
                error!(error = %cause, %account, %packet, amount, what, "fulfilled packet's write not applied and the retry queue is full; reconcile this packet")
            }
        }
    }

    fn take_receiver(&self) -> Option<mpsc::Receiver<PendingWrite>> {
        self.receiver.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Retries held writes until each is applied or its window ends. Stops when `stop` resolves
/// (after the node's last packet finished), with one last pass; whatever is left then is logged
/// for reconciliation.
pub async fn run<S: Store>(store: &S, commits: &PendingCommits, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let Some(mut receiver) = commits.take_receiver() else { return };
    let mut held: Vec<PendingWrite> = Vec::new();
    let mut tick = tokio::time::interval(RETRY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = receiver.recv() => match received {
                Some(write) => held.push(write),
                None => break,
            },
            _ = tick.tick(), if !held.is_empty() => retry_all(store, &mut held).await,
            _ = &mut stop => break,
        }
    }
    while let Ok(write) = receiver.try_recv() {
        held.push(write);
    }
    retry_all(store, &mut held).await;
    for w in &held {
        error!(account = %w.account.id, packet = %w.packet, amount = w.amount, what = w.what(), "node stopped before a fulfilled packet's write was applied; reconcile this packet");
    }
}

/// One pass: writes that succeed, fail for good or run out of time leave `held`.
async fn retry_all<S: Store>(store: &S, held: &mut Vec<PendingWrite>) {
    let mut still = Vec::with_capacity(held.len());
    for w in held.drain(..) {
        match w.apply(store).await {
            Ok(()) => {
                info!(account = %w.account.id, packet = %w.packet, what = w.what(), "fulfilled packet's write applied after a retry")
            }
            Err(e) if !retryable(&e) => {
                error!(error = %e, account = %w.account.id, packet = %w.packet, amount = w.amount, what = w.what(), "fulfilled packet's write cannot be applied; reconcile this packet")
            }
            Err(e) if w.since.elapsed() >= RETRY_WINDOW => {
                error!(error = %e, account = %w.account.id, packet = %w.packet, amount = w.amount, what = w.what(), "gave up on a fulfilled packet's write; reconcile this packet")
            }
            Err(_) => still.push(w),
        }
    }
    *held = still;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::test_account;
    use crate::store::MemoryStore;
    use std::time::SystemTime;

    fn held(from: &Account, amount: u64, packet: PacketId, since: Instant) -> PendingWrite {
        PendingWrite { kind: WriteKind::Commit, account: from.clone(), amount, packet, since }
    }

    #[tokio::test]
    async fn a_retried_commit_lands_once_even_after_a_sweep() {
        let store = MemoryStore::new();
        let a = test_account("pending");
        let (kept, swept) = (PacketId::next(), PacketId::next());
        let past = SystemTime::now() - Duration::from_secs(60);
        store.debit_prepare(&a, 5, kept, SystemTime::now() + Duration::from_secs(30)).await.unwrap();
        store.debit_prepare(&a, 7, swept, past).await.unwrap();
        store.sweep_expired(&a, SystemTime::now(), 10, past).await.unwrap();
        assert_eq!(store.balance(&a.id).await, Ok(-5));
        let now = Instant::now();
        let mut queue = vec![held(&a, 5, kept, now), held(&a, 7, swept, now)];
        retry_all(&store, &mut queue).await;
        assert!(queue.is_empty());
        assert_eq!(store.balance(&a.id).await, Ok(-12), "the swept packet is charged again");
        let mut again = vec![held(&a, 5, kept, now), held(&a, 7, swept, now)];
        retry_all(&store, &mut again).await;
        assert_eq!(store.balance(&a.id).await, Ok(-12), "and only once");
        assert_eq!(store.reverse_prepare(&a, 5, kept).await, Ok(None), "committed, not releasable");
    }

    #[tokio::test]
    async fn the_queue_is_bounded() {
        let pending = PendingCommits::default();
        let a = test_account("full");
        let cause = StoreError::Unavailable("down".into());
        for _ in 0..PENDING_MAX + 5 {
            pending.hand_over(held(&a, 1, PacketId::next(), Instant::now()), &cause);
        }
        let mut receiver = pending.take_receiver().unwrap();
        let mut n = 0;
        while receiver.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, PENDING_MAX);
    }
}
