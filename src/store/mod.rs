//! Where balances live. One trait, implemented in memory (the embedded default) and, in a later
//! issue, in Redis. The packet path sees only this trait; every method applies one rule from
//! [`crate::balance`] atomically for one account.

mod memory;

pub use memory::MemoryStore;

use crate::account::Account;
use crate::balance::{Balance, BalanceError};
use std::future::Future;

/// An operating failure of the store (not a business outcome): the packet gets T00.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("account {0} is not in the store")]
    UnknownAccount(String),
    #[error("balance arithmetic overflowed for account {0}")]
    Overflow(String),
}

/// Why a Prepare's debit did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DebitError {
    /// Business outcome: the account would pass its credit limit (T04).
    #[error(transparent)]
    Refused(BalanceError),
    /// Operating failure (T00).
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub trait Store: Send + Sync + 'static {
    /// Debits `amount` from the source of an incoming Prepare, if it stays within `min_balance`.
    fn debit_prepare(
        &self,
        from: &Account,
        amount: u64,
    ) -> impl Future<Output = Result<Balance, DebitError>> + Send;

    /// Exactly undoes one successful [`Store::debit_prepare`] (Reject, timeout, failed send).
    fn reverse_prepare(
        &self,
        from: &Account,
        amount: u64,
    ) -> impl Future<Output = Result<Balance, StoreError>> + Send;

    /// Credits the destination of a fulfilled packet with what it delivered.
    fn credit_fulfill(
        &self,
        to: &Account,
        amount: u64,
    ) -> impl Future<Output = Result<Balance, StoreError>> + Send;

    /// The account's current balance (0 for an account that never moved money).
    fn balance(&self, account_id: &str) -> impl Future<Output = Result<Balance, StoreError>> + Send;
}
