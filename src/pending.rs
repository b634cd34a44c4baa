//! A fulfilled packet's writes still owed to the store. A Fulfill is recorded (source's debit
//! committed, destination credited) before it is relayed, and the packet path retries both for as
//! long as the Fulfill can still be relayed in time (see [`crate::forward`]). If the store stays
//! unwritable for all of that time, the Fulfill is relayed anyway (the money has moved
//! downstream; withholding it would lose the sender's payment to us) and the writes are handed
//! over here, to be retried in the background. With Redis they are first recorded in the
//! owed-writes file ([`crate::owed`]), fsynced before the Fulfill is relayed: a crash or a
//! shutdown then loses nothing, and the next start replays them ([`replay`]) before serving.
//!
//! Every retry is safe: the commit is idempotent (a reservation released by the sweeper
//! meanwhile is charged again exactly once), and a credit is retried with
//! [`Store::retry_credit`], which credits only if no earlier attempt did. What is bounded: the
//! writes held at once, in memory and in the file ([`PendingCommits::held_max`], config
//! `store.owed_writes_max`); the retries in flight at once ([`RETRIES_IN_FLIGHT_MAX`]); and how
//! long a write is retried after its first attempt (`store.sweep_tombstone_retention_s`: past it
//! a late commit could no longer be charged again, nor a credit's retry verified). A write given
//! up on, or refused because the bound is reached, is logged at error level with its packet id
//! for reconciliation.

use crate::account::{Account, Accounts};
use crate::owed::{OwedFile, OwedWrite};
use crate::store::{PacketId, Store, StoreError};
use futures::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

pub use crate::owed::WriteKind;

/// Writes held at most without an owed-writes file (the memory store); with one, its bound.
pub const PENDING_MAX: usize = 10_000;
/// Store writes retried at once by the background retrier (and by the replay at start-up).
pub const RETRIES_IN_FLIGHT_MAX: usize = 64;
/// Time between two passes over the held writes.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// A write of a fulfilled packet not yet applied in the store.
#[derive(Debug, Clone)]
pub struct PendingWrite {
    pub kind: WriteKind,
    pub account: Account,
    pub amount: u64,
    pub packet: PacketId,
    /// When its first attempt was sent: retried until this plus the age bound.
    pub first_sent: SystemTime,
}

impl PendingWrite {
    /// One attempt; safe to repeat (see the module doc).
    pub async fn apply<S: Store>(&self, store: &S) -> Result<(), StoreError> {
        match self.kind {
            WriteKind::Commit => store.commit_prepare(&self.account, self.amount, self.packet).await,
            WriteKind::Credit => {
                store.retry_credit(&self.account, self.amount, self.packet, self.first_sent).await.map(|_| ())
            }
        }
    }

    fn what(&self) -> &'static str {
        match self.kind {
            WriteKind::Commit => "debit commit",
            WriteKind::Credit => "credit",
        }
    }

    fn owed(&self) -> OwedWrite {
        OwedWrite {
            kind: self.kind,
            account: self.account.id.clone(),
            amount: self.amount,
            packet: self.packet,
            first_sent: self.first_sent,
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
    sender: mpsc::UnboundedSender<PendingWrite>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<PendingWrite>>>,
    /// Writes handed over (or replayed) and not yet finished, in the channel or in the
    /// retrier's list: the one count the bound applies to.
    held: Arc<AtomicUsize>,
    held_max: usize,
    /// Where owed writes are made durable (with Redis); `None` with the memory store.
    owed: Option<Arc<OwedFile>>,
    /// A write is retried until its first attempt is this old.
    age_max: Duration,
    /// Writes replayed at start-up and still owed: the retrier's first list.
    replayed: Mutex<Vec<PendingWrite>>,
}

impl PendingCommits {
    /// `owed`: the owed-writes file, if any (its bound then bounds what is held); `age_max`: how
    /// long after its first attempt a write is still applied.
    pub fn new(owed: Option<Arc<OwedFile>>, held_max: usize, age_max: Duration) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let held_max = owed.as_ref().map_or(held_max, |f| f.entries_max());
        PendingCommits {
            sender,
            receiver: Mutex::new(Some(receiver)),
            held: Arc::default(),
            held_max,
            owed,
            age_max,
            replayed: Mutex::default(),
        }
    }

    /// Writes held at most at once.
    pub fn held_max(&self) -> usize {
        self.held_max
    }

    /// Writes held now (handed over or replayed, not yet applied or given up on).
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Takes over a fulfilled packet's unapplied writes, before its Fulfill is relayed: records
    /// them in the owed-writes file (fsynced) and queues them for the background retrier. Past
    /// the bound, or when the file cannot be written, each is logged at error level for
    /// reconciliation (the Fulfill is relayed all the same: see [`OwedFile::record`]).
    pub async fn hand_over(&self, writes: Vec<PendingWrite>, cause: &StoreError) {
        if writes.is_empty() {
            return;
        }
        let n = writes.len();
        let reserved = self.held.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
            (held + n <= self.held_max).then_some(held + n)
        });
        if reserved.is_err() {
            for w in &writes {
                error!(error = %cause, account = %w.account.id, packet = %w.packet, amount = w.amount, what = w.what(), held_max = self.held_max, "fulfilled packet's write not applied and too many are owed already; reconcile this packet");
            }
            return;
        }
        let durable = match &self.owed {
            None => false,
            Some(file) => {
                let (file, owed) = (file.clone(), writes.iter().map(PendingWrite::owed).collect::<Vec<_>>());
                match blocking(move || file.record(&owed)).await {
                    Ok(()) => true,
                    Err(e) => {
                        error!(error = %e, "owed writes not recorded on disk: a crash before they are applied loses them");
                        false
                    }
                }
            }
        };
        for w in writes {
            warn!(error = %cause, account = %w.account.id, packet = %w.packet, amount = w.amount, what = w.what(), durable, "Fulfill relayed before its write was applied; retrying in the background");
            // The receiver lives as long as this (it is only taken, never dropped, before the
            // node is), so a send fails only once the retrier has stopped: the write then stays
            // in the owed-writes file for the next start.
            if self.sender.send(w).is_err() {
                self.held.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<PendingWrite>> {
        self.receiver.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Replays the owed-writes file's writes at start-up, before the node serves packets: each is
/// applied once (every write is idempotent, so one applied before the crash changes nothing),
/// and those the store cannot take yet go to the background retrier. Writes of accounts the node
/// no longer has stay in the file (logged) for the next start.
pub async fn replay<S: Store>(
    store: &S,
    accounts: &Accounts,
    pending: &PendingCommits,
    owed: Vec<OwedWrite>,
) {
    if owed.is_empty() {
        return;
    }
    let mut held = Vec::with_capacity(owed.len());
    for w in owed {
        match accounts.get(&w.account) {
            Some(account) => held.push(PendingWrite {
                kind: w.kind,
                account: (**account).clone(),
                amount: w.amount,
                packet: w.packet,
                first_sent: w.first_sent,
            }),
            None => {
                error!(account = %w.account, packet = %w.packet, amount = w.amount, kind = ?w.kind, "owed write of an account this node does not have; kept in the owed-writes file, reconcile this packet")
            }
        }
    }
    info!(owed = held.len(), "replaying the writes owed since the last run");
    pending.held.fetch_add(held.len(), Ordering::SeqCst);
    retry_all(store, &mut held, pending).await;
    if !held.is_empty() {
        warn!(
            owed = held.len(),
            "owed writes not applied yet (store unavailable?); retrying in the background"
        );
    }
    pending.replayed.lock().unwrap_or_else(|e| e.into_inner()).extend(held);
}

/// Retries held writes until each is applied or too old. Stops when `stop` resolves (after the
/// node's last packet finished), with one last pass; what is left stays in the owed-writes file
/// for the next start (without one, it is logged for reconciliation).
pub async fn run<S: Store>(store: &S, pending: &PendingCommits, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let Some(mut receiver) = pending.take_receiver() else { return };
    let mut held: Vec<PendingWrite> =
        std::mem::take(&mut *pending.replayed.lock().unwrap_or_else(|e| e.into_inner()));
    let mut tick = tokio::time::interval(RETRY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = receiver.recv() => match received {
                Some(write) => held.push(write),
                None => break,
            },
            _ = tick.tick(), if !held.is_empty() => retry_all(store, &mut held, pending).await,
            _ = &mut stop => break,
        }
    }
    // Writes handed over from here on stay in the file (the retrier is gone).
    receiver.close();
    while let Ok(write) = receiver.try_recv() {
        held.push(write);
    }
    retry_all(store, &mut held, pending).await;
    for w in &held {
        match &pending.owed {
            Some(file) => {
                warn!(account = %w.account.id, packet = %w.packet, amount = w.amount, what = w.what(), file = %file.path().display(), "node stopping before a fulfilled packet's write was applied; kept in the owed-writes file for the next start")
            }
            None => {
                error!(account = %w.account.id, packet = %w.packet, amount = w.amount, what = w.what(), "node stopped before a fulfilled packet's write was applied; reconcile this packet")
            }
        }
    }
}

/// One pass, [`RETRIES_IN_FLIGHT_MAX`] writes at a time: writes that succeed, fail for good or
/// are too old leave `held` (and the owed-writes file).
async fn retry_all<S: Store>(store: &S, held: &mut Vec<PendingWrite>, pending: &PendingCommits) {
    let attempts = futures::stream::iter(held.drain(..))
        .map(|w| async move {
            let outcome = w.apply(store).await;
            (w, outcome)
        })
        .buffer_unordered(RETRIES_IN_FLIGHT_MAX)
        .collect::<Vec<_>>()
        .await;
    let mut finished = Vec::new();
    for (w, outcome) in attempts {
        match outcome {
            Ok(()) => {
                info!(account = %w.account.id, packet = %w.packet, what = w.what(), "fulfilled packet's write applied after a retry")
            }
            Err(e) if !retryable(&e) => {
                error!(error = %e, account = %w.account.id, packet = %w.packet, amount = w.amount, what = w.what(), "fulfilled packet's write cannot be applied; reconcile this packet")
            }
            Err(e) if w.first_sent.elapsed().unwrap_or_default() >= pending.age_max => {
                error!(error = %e, account = %w.account.id, packet = %w.packet, amount = w.amount, what = w.what(), "gave up on a fulfilled packet's write; reconcile this packet")
            }
            Err(_) => {
                held.push(w);
                continue;
            }
        }
        finished.push((w.kind, w.packet));
    }
    if finished.is_empty() {
        return;
    }
    pending.held.fetch_sub(finished.len(), Ordering::SeqCst);
    if let Some(file) = pending.owed.clone() {
        // Not fatal: those writes are replayed at the next start, which changes nothing.
        if let Err(e) = blocking(move || file.done(&finished)).await {
            warn!(error = %e, "applied owed writes not marked done");
        }
    }
}

/// Runs a file operation off the async threads; a task that could not run (a panic in it) is an
/// error like the operation's own.
async fn blocking<E: std::fmt::Display + Send + 'static>(
    operation: impl FnOnce() -> Result<(), E> + Send + 'static,
) -> Result<(), String> {
    match tokio::task::spawn_blocking(operation).await {
        Ok(outcome) => outcome.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::test_account;
    use crate::owed::OwedRules;
    use crate::store::MemoryStore;

    fn held(from: &Account, amount: u64, packet: PacketId) -> PendingWrite {
        PendingWrite {
            kind: WriteKind::Commit,
            account: from.clone(),
            amount,
            packet,
            first_sent: SystemTime::now(),
        }
    }

    #[tokio::test]
    async fn a_retried_commit_lands_once_even_after_a_sweep() {
        let store = MemoryStore::new();
        let pending = PendingCommits::new(None, PENDING_MAX, Duration::from_secs(60));
        let a = test_account("pending");
        let (kept, swept) = (PacketId::next(), PacketId::next());
        let past = SystemTime::now() - Duration::from_secs(60);
        store.debit_prepare(&a, 5, kept, SystemTime::now() + Duration::from_secs(30)).await.unwrap();
        store.debit_prepare(&a, 7, swept, past).await.unwrap();
        store.sweep_expired(&a, SystemTime::now(), 10, past).await.unwrap();
        assert_eq!(store.balance(&a.id).await, Ok(-5));
        let mut queue = vec![held(&a, 5, kept), held(&a, 7, swept)];
        retry_all(&store, &mut queue, &pending).await;
        assert!(queue.is_empty());
        assert_eq!(store.balance(&a.id).await, Ok(-12), "the swept packet is charged again");
        let mut again = vec![held(&a, 5, kept), held(&a, 7, swept)];
        retry_all(&store, &mut again, &pending).await;
        assert_eq!(store.balance(&a.id).await, Ok(-12), "and only once");
        assert_eq!(store.reverse_prepare(&a, 5, kept).await, Ok(None), "committed, not releasable");
    }

    #[tokio::test]
    async fn the_bound_counts_the_retriers_list_not_only_the_queue() {
        let pending = PendingCommits::new(None, 3, Duration::from_secs(60));
        let a = test_account("full");
        let cause = StoreError::Unavailable("down".into());
        // A write taken off the queue by the retrier (and still failing) still counts.
        pending.hand_over(vec![held(&a, 1, PacketId::next())], &cause).await;
        let mut receiver = pending.take_receiver().unwrap();
        assert!(receiver.try_recv().is_ok());
        for _ in 0..5 {
            pending.hand_over(vec![held(&a, 1, PacketId::next())], &cause).await;
        }
        assert_eq!(pending.held(), 3);
        let mut queued = 0;
        while receiver.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, 2);
    }

    #[tokio::test]
    async fn a_replayed_file_applies_each_write_once_and_empties() {
        let dir = std::env::temp_dir().join(format!("thitsax-pending-replay-{}", PacketId::next()));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = OwedRules { path: dir.join("owed.log"), entries_max: 10 };
        let store = MemoryStore::new();
        let a = test_account("replay");
        let accounts = Accounts::new(vec![a.clone()]);
        let packet = PacketId::next();
        store.debit_prepare(&a, 5, packet, SystemTime::now() + Duration::from_secs(30)).await.unwrap();
        let owed = OwedWrite {
            kind: WriteKind::Commit,
            account: a.id.clone(),
            amount: 5,
            packet,
            first_sent: SystemTime::now(),
        };
        OwedFile::open(&rules).unwrap().0.record(&[owed]).unwrap();
        // Two starts replay the same file: the first applies the commit, the second finds nothing.
        for _ in 0..2 {
            let (file, writes) = OwedFile::open(&rules).unwrap();
            let pending = PendingCommits::new(Some(Arc::new(file)), 10, Duration::from_secs(60));
            replay(&store, &accounts, &pending, writes).await;
            assert_eq!(pending.held(), 0);
            assert_eq!(store.reverse_prepare(&a, 5, packet).await, Ok(None), "committed");
            assert_eq!(store.balance(&a.id).await, Ok(-5));
        }
        assert_eq!(std::fs::metadata(&rules.path).unwrap().len(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_replay_the_store_refuses_is_kept_for_the_retrier() {
        let dir = std::env::temp_dir().join(format!("thitsax-pending-kept-{}", PacketId::next()));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = OwedRules { path: dir.join("owed.log"), entries_max: 10 };
        let a = test_account("gone");
        // An account the node no longer has: kept in the file, not held.
        let first_sent = std::time::UNIX_EPOCH + Duration::from_millis(1_800_000_000_000);
        let owed = OwedWrite {
            kind: WriteKind::Credit,
            account: a.id.clone(),
            amount: 5,
            packet: PacketId::next(),
            first_sent,
        };
        OwedFile::open(&rules).unwrap().0.record(std::slice::from_ref(&owed)).unwrap();
        let (file, writes) = OwedFile::open(&rules).unwrap();
        let pending = PendingCommits::new(Some(Arc::new(file)), 10, Duration::from_secs(60));
        replay(&MemoryStore::new(), &Accounts::new(vec![]), &pending, writes).await;
        assert_eq!(pending.held(), 0);
        drop(pending);
        assert_eq!(OwedFile::open(&rules).unwrap().1, [owed]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
