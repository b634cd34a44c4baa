//! Outgoing settlements: the worker that settles balances above their threshold.
//!
//! The packet path only signals ([`Triggers::after_credit`]); this worker does the rest:
//! 1. **begin** — `Store::begin_settlement` moves the balance to `settle_to` and records the
//!    settlement under a fresh random [`SettlementId`] in one atomic step, so two instances never
//!    settle the same amount twice (the second finds the balance no longer above the threshold);
//! 2. **settle** — the account's [`SettlementSystem`] is asked to pay the amount, with the
//!    settlement's id as its Idempotency-Key on every attempt; retryable failures are retried
//!    with capped exponential backoff and jitter, for as long as it takes (RFC 0038);
//! 3. **finish** — `Settled` on success; on a definitive refusal the amount is refunded to the
//!    balance, once, and the failure is logged and counted.
//!
//! A scan every `scan_interval` begins settlements the signals missed (a full queue, a balance
//! raised by an incoming settlement) and resumes pending ones no task of this process is driving:
//! after a restart (pending settlements are in the store) or those of an instance that died. Two
//! instances may then drive the same settlement; they send the same Idempotency-Key, and its
//! finish happens once.

use super::{Paid, Quantity, SettleError, SettlementId, SettlementSystem, Trigger};
use crate::account::{Account, AccountId, Accounts};
use crate::backoff::Backoff;
use crate::metrics::MoneyError;
use crate::node::Node;
use crate::store::{SettlementEnd, Store, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// Timing and bounds of the worker.
#[derive(Debug, Clone)]
pub struct SettleRules {
    /// First wait after a retryable failure; doubles up to `retry_max`.
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// How often every account is checked for missed thresholds and pending settlements.
    pub scan_interval: Duration,
    /// Settlements driven at once by this process; more wait for the next scan.
    pub concurrent_max: usize,
    /// After a definitive refusal, no new settlement begins for that account for this long
    /// (the balance stays above its threshold, and the next attempt would likely be refused too).
    pub refusal_pause: Duration,
}

/// Runs until `stop` resolves. Settlements in progress are left pending in the store (the next
/// start, or another instance, resumes them with the same Idempotency-Key).
pub async fn run<S: Store, Sys: SettlementSystem>(
    node: Arc<Node<S>>,
    system: Arc<Sys>,
    rules: SettleRules,
    stop: impl std::future::Future<Output = ()>,
) {
    let Some(mut triggers) = node.settlement.take_receiver() else { return };
    let mut worker = Worker {
        node,
        system,
        rules,
        opened: HashMap::new(),
        driving: HashSet::new(),
        paused: HashMap::new(),
        tasks: JoinSet::new(),
        task_settlements: HashMap::new(),
    };
    let mut scan = tokio::time::interval(worker.rules.scan_interval);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(trigger) = triggers.recv() => match trigger {
                Trigger::Check(account) => worker.begin(&account).await,
                Trigger::Drive { account, id, amount } => worker.take_over(&account, id, amount),
                Trigger::Scan => worker.scan().await,
            },
            _ = scan.tick() => worker.scan().await,
            Some(done) = worker.tasks.join_next_with_id(), if !worker.tasks.is_empty() => worker.ended(done),
        }
    }
    worker.tasks.abort_all();
}

struct Worker<S, Sys> {
    node: Arc<Node<S>>,
    system: Arc<Sys>,
    rules: SettleRules,
    /// Accounts the settlement system was prepared for by this process (nothing settles before),
    /// as they were then (to close them with the same settlement system).
    opened: HashMap<AccountId, Arc<Account>>,
    /// Settlements a task of this process is driving.
    driving: HashSet<SettlementId>,
    /// Accounts whose last settlement was refused, until when no new one begins.
    paused: HashMap<AccountId, Instant>,
    /// Each task ends with its settlement, account and how it ended.
    tasks: JoinSet<(SettlementId, AccountId, SettlementEnd)>,
    /// Which settlement each task drives, so that one whose task panicked is let go of (the
    /// next scan resumes it from the store) instead of being held as driven forever.
    task_settlements: HashMap<tokio::task::Id, SettlementId>,
}

impl<S: Store, Sys: SettlementSystem> Worker<S, Sys> {
    /// Begins a settlement for the account if its balance is above its threshold.
    async fn begin(&mut self, id: &AccountId) {
        let Some(account) = self.node.accounts.load().get(id).cloned() else { return };
        let (Some(threshold), true) = (account.settle_threshold, account.settles()) else { return };
        if !self.opened.contains_key(id) {
            return; // The next scan opens it first.
        }
        if self.tasks.len() >= self.rules.concurrent_max {
            return; // The next scan comes back to it.
        }
        if self.paused.get(id).is_some_and(|until| Instant::now() < *until) {
            return;
        }
        self.paused.remove(id);
        let settlement = SettlementId::random();
        match self.node.store.begin_settlement(&account, threshold, account.settle_to, settlement).await {
            Ok(Some(amount)) => {
                self.node.settlement.counters.begun.fetch_add(1, Ordering::Relaxed);
                info!(account = %account.id, %settlement, amount, "settlement begun");
                self.drive(account, settlement, amount, Attempts::None);
            }
            Ok(None) => {}
            Err(e) => error!(error = %e, account = %account.id, "could not begin a settlement"),
        }
    }

    /// Every account: prepared with the settlement system, then missed thresholds, then pending
    /// settlements nobody here drives. Accounts that no longer settle here (deleted, or their
    /// engine removed) are closed with their settlement system.
    async fn scan(&mut self) {
        let accounts = self.node.accounts.load();
        self.close_gone(&accounts).await;
        for account in accounts.iter().filter(|a| a.settles()) {
            if !self.opened.contains_key(&account.id) {
                match self.system.open_account(account).await {
                    Ok(()) => {
                        info!(account = %account.id, "settlement account ready");
                        self.opened.insert(account.id.clone(), account.clone());
                    }
                    Err(e) => {
                        warn!(error = %e, account = %account.id, "could not set up the settlement account; trying again at the next scan");
                        continue;
                    }
                }
            }
            self.begin(&account.id).await;
            match self.node.store.pending_settlements(account).await {
                Ok(pending) => {
                    for p in pending {
                        if !self.driving.contains(&p.id) && self.tasks.len() < self.rules.concurrent_max {
                            info!(account = %account.id, settlement = %p.id, amount = p.amount, "resuming a pending settlement");
                            // Begun by an earlier run or another instance: an attempt may
                            // have reached the settlement system already.
                            self.drive(account.clone(), p.id, p.amount, Attempts::MaybeMade);
                        }
                    }
                }
                Err(e) => warn!(error = %e, account = %account.id, "could not list pending settlements"),
            }
        }
    }

    /// Drives a settlement begun elsewhere in this process ("settle now").
    fn take_over(&mut self, id: &AccountId, settlement: SettlementId, amount: u64) {
        let Some(account) = self.node.accounts.load().get(id).cloned() else { return };
        // Not yet set up with its engine: the scan sets it up, then resumes this one.
        if !self.opened.contains_key(id) {
            return;
        }
        if !self.driving.contains(&settlement) && self.tasks.len() < self.rules.concurrent_max {
            self.drive(account, settlement, amount, Attempts::None);
        }
    }

    /// Closes the accounts this process opened that are gone from the table or no longer
    /// settle. (Every instance does it; closing is harmless when already done.)
    async fn close_gone(&mut self, accounts: &Accounts) {
        let gone: Vec<Arc<Account>> = self
            .opened
            .values()
            .filter(|was| {
                accounts.get(&was.id).is_none_or(|now| {
                    now.settlement_rail() != was.settlement_rail()
                        || now.rafiki_liquidity != was.rafiki_liquidity
                })
            })
            .cloned()
            .collect();
        for account in gone {
            match self.system.close_account(&account).await {
                Ok(()) => {
                    info!(account = %account.id, "settlement account closed");
                    self.opened.remove(&account.id);
                }
                Err(e) => {
                    warn!(error = %e, account = %account.id, "could not close the settlement account; trying again at the next scan")
                }
            }
        }
    }

    fn drive(&mut self, account: Arc<Account>, id: SettlementId, amount: u64, before: Attempts) {
        self.driving.insert(id);
        let (node, system, rules) = (self.node.clone(), self.system.clone(), self.rules.clone());
        let task = self.tasks.spawn(async move {
            let end = settle(&node, &*system, &rules, &account, id, amount, before).await;
            (id, account.id.clone(), end)
        });
        self.task_settlements.insert(task.id(), id);
    }

    /// A task ended: its settlement is no longer driven here. A panic leaves the settlement
    /// pending in the store (its end was not recorded), so the next scan resumes it with its key.
    fn ended(
        &mut self,
        done: Result<(tokio::task::Id, (SettlementId, AccountId, SettlementEnd)), tokio::task::JoinError>,
    ) {
        let task = match &done {
            Ok((task, _)) => *task,
            Err(e) => e.id(),
        };
        let settlement = self.task_settlements.remove(&task);
        match done {
            Ok((_, (id, account, end))) => {
                self.driving.remove(&id);
                if end == SettlementEnd::Refunded {
                    self.paused.insert(account, Instant::now() + self.rules.refusal_pause);
                }
            }
            Err(e) => {
                if let Some(id) = settlement {
                    self.driving.remove(&id);
                    error!(settlement = %id, error = %e, "a settlement task ended abnormally; the next scan resumes it");
                }
            }
        }
    }
}

/// Why "settle now" did not begin a settlement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettleNowError {
    #[error("no account {0:?}")]
    UnknownAccount(String),
    #[error("account {0:?} has no settlement engine")]
    NoEngine(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl<S: Store> Node<S> {
    /// Settles the account's balance down to its `settle_to` now, whatever its threshold (an
    /// operator's "settle now"): begun here atomically, then driven by the worker like any
    /// other. Returns the settlement and its amount, or `None` when the balance is not above
    /// `settle_to`.
    pub async fn settle_now(&self, id: &str) -> Result<Option<(SettlementId, u64)>, SettleNowError> {
        let account =
            self.accounts.load().get(id).cloned().ok_or_else(|| SettleNowError::UnknownAccount(id.into()))?;
        if !account.settles() {
            return Err(SettleNowError::NoEngine(id.into()));
        }
        let settlement = SettlementId::random();
        let begun =
            self.store.begin_settlement(&account, account.settle_to, account.settle_to, settlement).await?;
        Ok(begun.map(|amount| {
            self.settlement.counters.begun.fetch_add(1, Ordering::Relaxed);
            info!(account = %account.id, %settlement, amount, "settlement begun by an operator");
            self.settlement.drive(&account, settlement, amount);
            (settlement, amount)
        }))
    }
}

/// What earlier attempts of a settlement may have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempts {
    /// None was made, or each was answered in a way that proves it made nothing.
    None,
    /// One may have been made (its outcome is unknown, or it is still in progress), or the
    /// settlement was begun by an earlier run whose attempts this process cannot know.
    MaybeMade,
}

/// Settles one pending settlement to its end, and says which. A refusal refunds the amount only
/// while no attempt may have been made: after an attempt whose outcome is unknown, a refusal of a
/// later one does not prove that the earlier one will not pay (RFC 0038: retry), so the
/// settlement stays pending and is retried with its key, logged for an operator.
async fn settle<S: Store, Sys: SettlementSystem>(
    node: &Node<S>,
    system: &Sys,
    rules: &SettleRules,
    account: &Account,
    id: SettlementId,
    amount: u64,
    mut before: Attempts,
) -> SettlementEnd {
    let counters = &node.settlement.counters;
    let quantity = Quantity::new(u128::from(amount), account.asset_scale);
    let mut backoff = Backoff::new(rules.retry_first, rules.retry_max);
    let end = loop {
        let retry_in_ms = backoff.peek().as_millis() as u64;
        match system.settle(account, quantity, id).await {
            Ok(Paid::All) => break SettlementEnd::Settled,
            Ok(Paid::AllBut { unpaid }) => {
                info!(account = %account.id, settlement = %id, amount, unpaid, "settled but for what the settlement system's currency cannot carry; that part goes back to the balance");
                break SettlementEnd::SettledBut { unpaid };
            }
            Err(SettleError::RefusedThroughout(reason)) => {
                error!(account = %account.id, settlement = %id, amount, %reason, "settlement refused for good, every attempt included; refunding it to the balance");
                break SettlementEnd::Refunded;
            }
            Err(SettleError::Definitive(reason)) if before == Attempts::None => {
                error!(account = %account.id, settlement = %id, amount, %reason, "settlement refused for good; refunding it to the balance");
                break SettlementEnd::Refunded;
            }
            Err(SettleError::Definitive(reason)) => {
                error!(account = %account.id, settlement = %id, amount, %reason, retry_in_ms, "settlement refused, but an earlier attempt may have been made: kept pending and retried with the same key; reconcile it with the settlement system");
            }
            Err(SettleError::Retryable(reason)) => {
                before = Attempts::MaybeMade;
                warn!(account = %account.id, settlement = %id, %reason, retry_in_ms, "settlement attempt's outcome unknown; retrying with the same key");
            }
            Err(SettleError::NotMade(reason)) => {
                warn!(account = %account.id, settlement = %id, %reason, retry_in_ms, "settlement attempt not made; retrying with the same key");
            }
        }
        counters.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(backoff.next_wait()).await;
    };
    finish(node, rules, account, id, end).await;
    end
}

/// Records the end; the store may be out for a while, and the end must still be written once.
async fn finish<S: Store>(
    node: &Node<S>,
    rules: &SettleRules,
    account: &Account,
    id: SettlementId,
    end: SettlementEnd,
) {
    let counters = &node.settlement.counters;
    let mut backoff = Backoff::new(rules.retry_first, rules.retry_max);
    loop {
        match node.store.finish_settlement(account, id, end).await {
            Ok(Some(amount)) => {
                match end {
                    SettlementEnd::Settled | SettlementEnd::SettledBut { .. } => {
                        counters.settled.fetch_add(1, Ordering::Relaxed);
                        info!(account = %account.id, settlement = %id, amount, "settled");
                    }
                    SettlementEnd::Refunded => {
                        counters.refunded.fetch_add(1, Ordering::Relaxed);
                        error!(account = %account.id, settlement = %id, amount, "settlement refunded to the balance");
                    }
                }
                return;
            }
            // Another instance driving the same settlement finished it first.
            Ok(None) => return,
            // Retrying cannot mend what the store cannot read: it stays pending for an operator.
            Err(e @ (StoreError::Corrupt(_) | StoreError::Rule { .. })) => {
                node.metrics.money_error(MoneyError::Corrupt);
                error!(error = %e, account = %account.id, settlement = %id, ?end, "cannot record a settlement's end: the store refuses it; left pending, reconcile it");
                return;
            }
            // The refund would pass the int64 maximum (credits came in meanwhile): it stays
            // pending and is tried again until the balance has room, at the slowest pace.
            Err(e @ StoreError::Overflow(_)) => {
                node.metrics.money_error(MoneyError::RefundOverflow);
                error!(error = %e, account = %account.id, settlement = %id, retry_in_ms = rules.retry_max.as_millis() as u64, "a refused settlement cannot be refunded: the balance would pass the int64 maximum; kept pending and tried again");
                tokio::time::sleep(Backoff::new(rules.retry_max, rules.retry_max).next_wait()).await;
            }
            Err(e) => {
                warn!(error = %e, account = %account.id, settlement = %id, "could not record a settlement's end; retrying");
                tokio::time::sleep(backoff.next_wait()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::App;
    use crate::config::Config;
    use crate::store::PacketId;
    use std::sync::Mutex;

    /// A settlement system that answers from a script and records every attempt: it stands in
    /// for the engine so the worker's own rules can be tested (the real engine is driven in
    /// `tests/settlement.rs`).
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<Vec<Result<Paid, SettleError>>>,
        attempts: Mutex<Vec<(String, Quantity, SettlementId)>>,
        at: Mutex<Vec<tokio::time::Instant>>,
        opened: Mutex<Vec<String>>,
        closed: Mutex<Vec<String>>,
    }

    impl SettlementSystem for Scripted {
        async fn open_account(&self, account: &Account) -> Result<(), SettleError> {
            self.opened.lock().unwrap().push(account.id.to_string());
            Ok(())
        }

        async fn close_account(&self, account: &Account) -> Result<(), SettleError> {
            self.closed.lock().unwrap().push(account.id.to_string());
            Ok(())
        }

        async fn settle(
            &self,
            account: &Account,
            quantity: Quantity,
            id: SettlementId,
        ) -> Result<Paid, SettleError> {
            self.attempts.lock().unwrap().push((account.id.to_string(), quantity, id));
            self.at.lock().unwrap().push(tokio::time::Instant::now());
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() {
                Ok(Paid::All)
            } else {
                answers.remove(0)
            }
        }
    }

    const CONFIG: &str = r#"
[node]
ilp_address = "test.node"
[[accounts]]
id = "peer"
relation = "peer"
asset_code = "USD"
asset_scale = 2
incoming_token = "t"
settle_threshold = 1000
settle_to = 100
settlement_engine_url = "http://127.0.0.1:1/engine"
"#;

    fn rules() -> SettleRules {
        SettleRules {
            retry_first: Duration::from_millis(1),
            retry_max: Duration::from_millis(4),
            scan_interval: Duration::from_millis(20),
            concurrent_max: 8,
            refusal_pause: Duration::from_millis(30),
        }
    }

    async fn node() -> Arc<Node<crate::store::MemoryStore>> {
        let mut config = Config::from_toml(CONFIG).unwrap();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.settlement.listen = "127.0.0.1:0".parse().unwrap();
        App::bind(config).await.unwrap().node
    }

    /// Runs the worker until `done` holds (or 5 s pass).
    async fn run_until(
        node: &Arc<Node<crate::store::MemoryStore>>,
        system: &Arc<Scripted>,
        done: impl Fn() -> bool,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(run(node.clone(), system.clone(), rules(), async move {
            let _ = rx.await;
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !done() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = tx.send(());
        worker.await.unwrap();
    }

    async fn credit(node: &Node<crate::store::MemoryStore>, amount: u64) {
        let account = node.accounts.load().get("peer").unwrap().clone();
        let balance = node.store.credit_fulfill(&account, amount, PacketId::next()).await.unwrap();
        node.settlement.after_credit(&account, balance);
    }

    #[tokio::test]
    async fn a_crossed_threshold_settles_down_to_settle_to_once() {
        let (node, system) = (node().await, Arc::new(Scripted::default()));
        credit(&node, 1500).await;
        run_until(&node, &system, || node.settlement.counters.settled.load(Ordering::Relaxed) == 1).await;
        let attempts = system.attempts.lock().unwrap().clone();
        assert_eq!(attempts.len(), 1);
        assert_eq!((attempts[0].0.as_str(), attempts[0].1), ("peer", Quantity::new(1400, 2)));
        assert_eq!(node.store.balance("peer").await, Ok(100));
        let account = node.accounts.load().get("peer").unwrap().clone();
        assert!(node.store.pending_settlements(&account).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn retries_keep_the_same_idempotency_key() {
        let (node, system) = (node().await, Arc::new(Scripted::default()));
        *system.answers.lock().unwrap() =
            vec![Err(SettleError::Retryable("down".into())), Err(SettleError::Retryable("503".into()))];
        credit(&node, 1001).await;
        run_until(&node, &system, || node.settlement.counters.settled.load(Ordering::Relaxed) == 1).await;
        let attempts = system.attempts.lock().unwrap().clone();
        assert_eq!(attempts.len(), 3);
        assert!(attempts.iter().all(|a| a.2 == attempts[0].2 && a.1 == Quantity::new(901, 2)));
        assert_eq!(node.settlement.counters.retries.load(Ordering::Relaxed), 2);
        assert_eq!(node.store.balance("peer").await, Ok(100));
    }

    #[tokio::test]
    async fn a_definitive_refusal_is_refunded_once_and_pauses_the_account() {
        let (node, system) = (node().await, Arc::new(Scripted::default()));
        *system.answers.lock().unwrap() =
            (0..1000).map(|_| Err(SettleError::Definitive("400".into()))).collect();
        credit(&node, 2000).await;
        let counters = &node.settlement.counters;
        // Each refusal is refunded in full and not retried; the account is then paused for
        // refusal_pause (30 ms here) before the scan begins a new settlement, with a new key.
        run_until(&node, &system, || counters.refunded.load(Ordering::Relaxed) == 2).await;
        let attempts = system.attempts.lock().unwrap().clone();
        assert_eq!(attempts.len(), 2);
        assert_ne!(attempts[0].2, attempts[1].2);
        let at = system.at.lock().unwrap().clone();
        assert!(at[1] - at[0] >= Duration::from_millis(30), "paused {:?}", at[1] - at[0]);
        assert_eq!(node.store.balance("peer").await, Ok(2000));
    }

    #[tokio::test]
    async fn a_refusal_after_an_unknown_outcome_keeps_the_settlement_pending() {
        let (node, system) = (node().await, Arc::new(Scripted::default()));
        // The first attempt timed out (the engine may be paying), the second finds the key in
        // progress (409 or any refusal): nothing proves that no money will move.
        *system.answers.lock().unwrap() = vec![
            Err(SettleError::Retryable("no answer within 500 ms".into())),
            Err(SettleError::Definitive("HTTP 422: key in use".into())),
            Err(SettleError::Definitive("HTTP 400".into())),
        ];
        credit(&node, 1500).await;
        run_until(&node, &system, || node.settlement.counters.settled.load(Ordering::Relaxed) == 1).await;
        let counters = &node.settlement.counters;
        assert_eq!(counters.refunded.load(Ordering::Relaxed), 0, "never refunded");
        let attempts = system.attempts.lock().unwrap().clone();
        assert_eq!(attempts.len(), 4);
        assert!(attempts.iter().all(|a| a.2 == attempts[0].2), "one key throughout");
        assert_eq!(node.store.balance("peer").await, Ok(100), "settled once, nothing refunded");
    }

    #[tokio::test]
    async fn a_resumed_settlement_is_never_refunded_on_a_refusal_alone() {
        let (node, system) = (node().await, Arc::new(Scripted::default()));
        // Its attempt may have reached the engine before the earlier run died.
        begun_by_an_earlier_run(&node).await;
        *system.answers.lock().unwrap() = vec![Err(SettleError::Definitive("HTTP 409".into()))];
        run_until(&node, &system, || node.settlement.counters.settled.load(Ordering::Relaxed) == 1).await;
        assert_eq!(node.settlement.counters.refunded.load(Ordering::Relaxed), 0);
        assert_eq!(system.attempts.lock().unwrap().len(), 2);
        assert_eq!(node.store.balance("peer").await, Ok(100));
    }

    #[tokio::test]
    async fn a_refund_past_the_int64_maximum_is_counted_logged_and_kept_pending() {
        let node = node().await;
        let account = node.accounts.load().get("peer").unwrap().clone();
        let id = SettlementId::random();
        node.store.credit_fulfill(&account, 5000, PacketId::next()).await.unwrap();
        assert_eq!(node.store.begin_settlement(&account, 1000, 100, id).await, Ok(Some(4900)));
        // Credits since the settlement began leave no room to refund it.
        node.store.credit_fulfill(&account, i64::MAX as u64 - 200, PacketId::next()).await.unwrap();
        let finishing = {
            let (node, account) = (node.clone(), account.clone());
            tokio::spawn(async move { finish(&node, &rules(), &account, id, SettlementEnd::Refunded).await })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let errors = || sample(&node, r#"thitsax_money_errors_total{kind="refund_overflow"}"#);
        while errors() < 2.0 {
            assert!(tokio::time::Instant::now() < deadline, "the refund overflow was never reported");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!finishing.is_finished(), "kept trying, never given up");
        finishing.abort();
        let pending = node.store.pending_settlements(&account).await.unwrap();
        assert_eq!(pending.len(), 1, "still pending, never dropped");
        assert_eq!(node.store.balance("peer").await, Ok(i64::MAX as i128 - 100));
        assert_eq!(node.settlement.counters.refunded.load(Ordering::Relaxed), 0);
    }

    fn sample(node: &Node<crate::store::MemoryStore>, series: &str) -> f64 {
        let text =
            node.metrics.render(&crate::metrics::Scrape { settlements: Default::default(), store: None });
        text.lines()
            .find_map(|line| line.strip_prefix(series).map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0.0)
    }

    /// A settlement of 4,900 begun (and left pending) by an earlier run of the node.
    async fn begun_by_an_earlier_run(node: &Node<crate::store::MemoryStore>) -> SettlementId {
        let account = node.accounts.load().get("peer").unwrap().clone();
        node.store.credit_fulfill(&account, 5000, PacketId::next()).await.unwrap();
        let earlier = SettlementId::random();
        assert_eq!(node.store.begin_settlement(&account, 1000, 100, earlier).await, Ok(Some(4900)));
        earlier
    }

    #[tokio::test]
    async fn pending_settlements_are_resumed_with_their_key() {
        let (node, system) = (node().await, Arc::new(Scripted::default()));
        let earlier = begun_by_an_earlier_run(&node).await;
        run_until(&node, &system, || node.settlement.counters.settled.load(Ordering::Relaxed) == 1).await;
        let attempts = system.attempts.lock().unwrap().clone();
        assert_eq!(attempts.len(), 1);
        assert_eq!((attempts[0].1, attempts[0].2), (Quantity::new(4900, 2), earlier));
        assert_eq!(node.store.balance("peer").await, Ok(100));
    }

    /// Panics on its first attempt (a bug in a settlement kind), then pays.
    #[derive(Default)]
    struct PanicsOnce {
        attempts: Mutex<Vec<SettlementId>>,
    }

    impl SettlementSystem for PanicsOnce {
        async fn open_account(&self, _: &Account) -> Result<(), SettleError> {
            Ok(())
        }

        async fn close_account(&self, _: &Account) -> Result<(), SettleError> {
            Ok(())
        }

        async fn settle(&self, _: &Account, _: Quantity, id: SettlementId) -> Result<Paid, SettleError> {
            let first = {
                let mut attempts = self.attempts.lock().unwrap();
                attempts.push(id);
                attempts.len() == 1
            };
            assert!(!first, "a settlement kind's bug");
            Ok(Paid::All)
        }
    }

    #[tokio::test]
    async fn a_panicked_settlement_task_is_resumed_with_its_key() {
        let (node, system) = (node().await, Arc::new(PanicsOnce::default()));
        credit(&node, 1500).await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(run(node.clone(), system.clone(), rules(), async move {
            let _ = rx.await;
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while node.settlement.counters.settled.load(Ordering::Relaxed) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "the panicked settlement was never resumed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = tx.send(());
        worker.await.unwrap();
        let attempts = system.attempts.lock().unwrap().clone();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0], attempts[1], "resumed with the same Idempotency-Key");
        assert_eq!(node.store.balance("peer").await, Ok(100));
    }

    #[tokio::test]
    async fn accounts_are_opened_before_settling_and_closed_once_gone() {
        let (node, system) = (node().await, Arc::new(Scripted::default()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(run(node.clone(), system.clone(), rules(), async move {
            let _ = rx.await;
        }));
        async fn wait(what: &str, done: impl Fn() -> bool) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !done() {
                assert!(tokio::time::Instant::now() < deadline, "{what}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        wait("opened", || system.opened.lock().unwrap().len() == 1).await;
        // The account is deleted (a reload, the admin API): the next scan closes it, once.
        node.accounts.store(Arc::new(Accounts::new(Vec::new())));
        wait("closed", || system.closed.lock().unwrap().len() == 1).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        let _ = tx.send(());
        worker.await.unwrap();
        assert_eq!(*system.opened.lock().unwrap(), ["peer"]);
        assert_eq!(*system.closed.lock().unwrap(), ["peer"]);
    }

    #[tokio::test]
    async fn settle_now_settles_down_to_settle_to_below_the_threshold() {
        let (node, system) = (node().await, Arc::new(Scripted::default()));
        assert_eq!(node.settle_now("nobody").await, Err(SettleNowError::UnknownAccount("nobody".into())));
        assert_eq!(node.settle_now("peer").await, Ok(None), "balance 0 is not above settle_to 100");
        credit(&node, 500).await; // below the 1000 threshold: nothing settles by itself
        let (id, amount) = node.settle_now("peer").await.unwrap().unwrap();
        assert_eq!(amount, 400);
        assert_eq!(node.store.balance("peer").await, Ok(100));
        run_until(&node, &system, || node.settlement.counters.settled.load(Ordering::Relaxed) == 1).await;
        let attempts = system.attempts.lock().unwrap().clone();
        assert_eq!(attempts.len(), 1);
        assert_eq!((attempts[0].1, attempts[0].2), (Quantity::new(400, 2), id));
    }
}
