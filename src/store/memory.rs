//! Balances in this process: one mutex-guarded `i128` per account. Lost on restart, which is why
//! production uses Redis; the embedded default needs nothing else running.

use super::{DebitError, Store, StoreError};
use crate::account::{Account, AccountId};
use crate::balance::{self, Balance, BalanceError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Account id → balance cell. The outer lock is taken for writing only to add an account;
    /// packets take it for reading and lock just their account's cell.
    balances: RwLock<HashMap<AccountId, Arc<Mutex<Balance>>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn cell(&self, id: &AccountId) -> Arc<Mutex<Balance>> {
        if let Some(cell) = self.balances.read().unwrap_or_else(|e| e.into_inner()).get(id) {
            return cell.clone();
        }
        let mut map = self.balances.write().unwrap_or_else(|e| e.into_inner());
        map.entry(id.clone()).or_default().clone()
    }

    /// Applies `rule` to one account's balance under its lock: the check and the write are one
    /// step, so concurrent packets can never both pass a limit that only one fits under.
    fn apply(
        &self,
        id: &AccountId,
        rule: impl FnOnce(Balance) -> Result<Balance, BalanceError>,
    ) -> Result<Balance, BalanceError> {
        let cell = self.cell(id);
        // A poisoned lock means a panic while holding it; the value itself is always consistent
        // (it is written once, after the rule succeeds), so keep serving.
        let mut balance = cell.lock().unwrap_or_else(|e| e.into_inner());
        *balance = rule(*balance)?;
        Ok(*balance)
    }
}

impl Store for MemoryStore {
    async fn debit_prepare(&self, from: &Account, amount: u64) -> Result<Balance, DebitError> {
        self.apply(&from.id, |b| balance::debit(b, amount, from.min_balance)).map_err(DebitError::Refused)
    }

    async fn reverse_prepare(&self, from: &Account, amount: u64) -> Result<Balance, StoreError> {
        self.apply(&from.id, |b| balance::credit(b, amount))
            .map_err(|_| StoreError::Overflow(from.id.to_string()))
    }

    async fn credit_fulfill(&self, to: &Account, amount: u64) -> Result<Balance, StoreError> {
        self.apply(&to.id, |b| balance::credit(b, amount))
            .map_err(|_| StoreError::Overflow(to.id.to_string()))
    }

    async fn balance(&self, account_id: &str) -> Result<Balance, StoreError> {
        let map = self.balances.read().unwrap_or_else(|e| e.into_inner());
        Ok(map.get(account_id).map(|c| *c.lock().unwrap_or_else(|e| e.into_inner())).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::test_account;

    fn account(id: &str, min_balance: Option<Balance>) -> Account {
        Account { min_balance, ..test_account(id) }
    }

    #[tokio::test]
    async fn debit_is_refused_past_the_credit_limit_and_changes_nothing() {
        let store = MemoryStore::new();
        let a = account("a", Some(-100));
        assert_eq!(store.debit_prepare(&a, 60).await, Ok(-60));
        assert!(matches!(store.debit_prepare(&a, 41).await, Err(DebitError::Refused(_))));
        assert_eq!(store.balance("a").await, Ok(-60));
        assert_eq!(store.reverse_prepare(&a, 60).await, Ok(0));
    }

    #[test]
    fn concurrent_debits_never_pass_the_limit_together() {
        // 8 threads race 10k debits of 1 against a limit of 5000: exactly 5000 succeed.
        let store = Arc::new(MemoryStore::new());
        let a = Arc::new(account("a", Some(-5000)));
        let ok: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (store, a) = (store.clone(), a.clone());
                    s.spawn(move || {
                        (0..1250)
                            .filter(|_| futures::executor::block_on(store.debit_prepare(&a, 1)).is_ok())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(ok, 5000);
        assert_eq!(futures::executor::block_on(store.balance("a")), Ok(-5000));
    }
}
