//! Where balances live. One trait, implemented in memory (the embedded default) and in Redis.
//! The packet path sees only this trait; every method applies one rule from [`crate::balance`]
//! atomically for one account.
//!
//! A packet's money moves in two steps. On the Prepare, [`Store::debit_prepare`] debits the
//! source and records a *reservation* under the packet's [`PacketId`]. The outcome then either
//! commits it ([`Store::commit_prepare`], on a Fulfill, together with [`Store::credit_fulfill`]
//! on the destination) or releases it ([`Store::reverse_prepare`], on anything else). Release
//! happens at most once per reservation, whoever asks, so a late Reject and a crash-recovery
//! sweep can never both refund the same packet.
//!
//! The node also receives payments itself, on local accounts: [`incoming`] has their types, and
//! [`Store::receive`] credits one packet of one, checking the payment in the same atomic step
//! (the types are re-exported here).

pub mod incoming;
mod memory;
mod redis;

pub use incoming::{
    CompletionReason, CreatedIncoming, IncomingPayment, IncomingPaymentId, IncomingState, InvalidIncoming,
    NewIncomingPayment, Receipt, ReceiveRefusal, INCOMING_METADATA_BYTES_MAX, INCOMING_PAYMENT_ID_BYTES_MAX,
};

pub use memory::MemoryStore;
pub use redis::shared_config::{
    self, Change, ConfigSnapshot, ConfigStoreError, ConfigSyncRules, Entry, Precedence, RatesEntry, Seeded,
};
pub use redis::{RedisConfig, RedisStore};

use crate::account::Account;
use crate::balance::{Balance, BalanceError};
use crate::quantity::Quantity;
use crate::settlement_id::SettlementId;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::SystemTime;

/// An operating failure of the store (not a business outcome): the packet gets T00.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The change was certainly not applied (the store refused it or could not be reached).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The request may or may not have been applied (e.g. the answer timed out or the connection
    /// dropped after the request was sent): only an idempotent change may be sent again.
    #[error("store outcome unknown: {0}")]
    Uncertain(String),
    #[error("balance of account {0} would leave the storable range")]
    Overflow(String),
    /// A write sent again cannot tell whether its earlier attempt was applied; not retried.
    #[error("store cannot verify an earlier attempt: {0}")]
    Unverifiable(String),
    /// The request breaks a balance rule (a caller's bug: config and the admin API refuse what
    /// leads here). Nothing changed; sending it again would be refused again.
    #[error("account {account}: {rule}")]
    Rule { account: String, rule: BalanceError },
    /// The store holds data this binary cannot read, or a script answered what this binary does
    /// not know (a script and binary out of step). Nothing is assumed; never retried.
    #[error("store data or answer not understood: {0}")]
    Corrupt(String),
    /// The request is malformed (a caller's bug: the admin API checks a new incoming payment with
    /// [`NewIncomingPayment::check`] first). Nothing changed; sending it again would be refused
    /// again.
    #[error("refused: {0}")]
    Invalid(#[from] InvalidIncoming),
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

/// Names one forwarded packet in the store: its reservation and its journal entries. Unique
/// across instances and restarts: a random 64-bit prefix per process and a counter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PacketId(pub u128);

impl PacketId {
    pub fn next() -> Self {
        static PREFIX: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(|| {
            let mut bytes = [0u8; 8];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                .expect("the OS random source works");
            u64::from_be_bytes(bytes)
        });
        PacketId(((prefix as u128) << 64) | COUNTER.fetch_add(1, Ordering::Relaxed) as u128)
    }
}

impl fmt::Display for PacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for PacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PacketId({self})")
    }
}

pub trait Store: Send + Sync + 'static {
    /// Debits `amount` from the source of an incoming Prepare, if it stays within `min_balance`,
    /// and records the reservation under `packet` until `expires_at`.
    fn debit_prepare(
        &self,
        from: &Account,
        amount: u64,
        packet: PacketId,
        expires_at: SystemTime,
    ) -> impl Future<Output = Result<Balance, DebitError>> + Send;

    /// The packet was fulfilled: its debit becomes final. Idempotent, so it may be retried
    /// after any failure: if the reservation was released by the sweeper (a stall or an outage
    /// past the packet's expiry), the amount is charged again, once (a fulfilled packet is always
    /// paid for); if it was already committed or charged again, nothing changes. A reservation
    /// released by a Reject is never committed (the node decided that outcome itself).
    fn commit_prepare(
        &self,
        from: &Account,
        amount: u64,
        packet: PacketId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Releases the reservation of `amount` (what the Prepare's debit took) and credits it back,
    /// exactly once: `None` when it was already released or committed (or never made for that
    /// amount).
    fn reverse_prepare(
        &self,
        from: &Account,
        amount: u64,
        packet: PacketId,
    ) -> impl Future<Output = Result<Option<Balance>, StoreError>> + Send;

    /// Credits the destination of a fulfilled packet with what it delivered.
    fn credit_fulfill(
        &self,
        to: &Account,
        amount: u64,
        packet: PacketId,
    ) -> impl Future<Output = Result<Balance, StoreError>> + Send;

    /// [`credit_fulfill`](Self::credit_fulfill) sent again after an attempt, first sent at
    /// `first_sent`, failed: credits only if no earlier attempt was applied, so it may be retried
    /// after any failure (Redis checks the packet's credit marker, in constant time).
    /// `Unverifiable` when the store cannot tell: the first attempt is older than the marker
    /// lives. (The memory store's calls never end uncertain, and it does not outlive its
    /// process, so for it this is the credit itself.)
    fn retry_credit(
        &self,
        to: &Account,
        amount: u64,
        packet: PacketId,
        first_sent: SystemTime,
    ) -> impl Future<Output = Result<Balance, StoreError>> + Send;

    /// Folds up to `limit` journal entries older than `before` into the account's checkpoint,
    /// keeping the journal bounded; the audit counts the checkpoint. Returns how many. (The
    /// memory store keeps no journal: always 0.)
    fn fold_journal(
        &self,
        account: &Account,
        before: SystemTime,
        limit: usize,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// If the balance is above `threshold`, moves it to `settle_to` and records an outgoing
    /// settlement of the difference under `id`, in one atomic step (of several instances that
    /// see the same crossing, one settles), by [`balance::begin_settlement`]'s rule (a difference
    /// beyond one change is split). Returns the amount, or `None` when not above. `settle_to`
    /// above `threshold` is refused ([`StoreError::Rule`]) with nothing changed.
    ///
    /// [`balance::begin_settlement`]: crate::balance::begin_settlement
    fn begin_settlement(
        &self,
        account: &Account,
        threshold: Balance,
        settle_to: Balance,
        id: SettlementId,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Ends a pending outgoing settlement exactly once; `Refunded` credits its amount back.
    /// Returns the amount, or `None` when it was not pending (already ended, or unknown).
    fn finish_settlement(
        &self,
        account: &Account,
        id: SettlementId,
        end: SettlementEnd,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// The account's outgoing settlements begun and not finished (to resume after a restart).
    fn pending_settlements(
        &self,
        account: &Account,
    ) -> impl Future<Output = Result<Vec<PendingSettlement>, StoreError>> + Send;

    /// Credits an incoming settlement once per `key`: what the account's scale can hold is
    /// credited, the rest kept and added to the next one (see
    /// [`crate::quantity::split_incoming`]).
    fn credit_settlement(
        &self,
        account: &Account,
        key: &str,
        quantity: Quantity,
    ) -> impl Future<Output = Result<IncomingCredit, StoreError>> + Send;

    /// The account's current balance (0 for an account that never moved money).
    fn balance(&self, account_id: &str) -> impl Future<Output = Result<Balance, StoreError>> + Send;

    /// Ok when the store can serve packets now (readiness).
    fn ready(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Releases up to `limit` reservations of `account` that expired before `cutoff` (their
    /// node died or stalled before the outcome), each at most once, and remembers each release
    /// so that a late commit charges it again exactly once. Releases remembered since before
    /// `forget_before` are forgotten. A release that would take the balance past i64 is left
    /// reserved (tried again by the next sweep) and counted as stuck.
    fn sweep_expired(
        &self,
        account: &Account,
        cutoff: SystemTime,
        limit: usize,
        forget_before: SystemTime,
    ) -> impl Future<Output = Result<Swept, StoreError>> + Send;
}

/// What one sweep of an account did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Reservations released (their amount credited back).
    pub released: usize,
    /// Expired reservations whose release would take the balance past i64: still reserved.
    pub stuck: usize,
}

/// An outgoing settlement begun (the balance already moved to `settle_to`) and not yet finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingSettlement {
    pub id: SettlementId,
    /// In the account's scale.
    pub amount: u64,
    pub since: SystemTime,
}

/// How an outgoing settlement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettlementEnd {
    /// The settlement system confirmed it.
    Settled,
    /// The settlement system refused it for good: the amount goes back to the balance.
    Refunded,
}

/// What an incoming settlement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomingCredit {
    /// Credited now (`credited` in the account's scale; the rest is kept as leftover).
    Credited { credited: u64 },
    /// The key was already used with the same request: nothing changed (it had credited this).
    Repeated { credited: u64 },
    /// The key was already used with a different request: nothing changed.
    KeyReused,
    /// Crediting it would take the balance out of range: nothing changed.
    TooLarge,
}

/// How long an incoming settlement's idempotency key is remembered (RFC 0038 asks for at least
/// 24 hours).
pub const INCOMING_KEY_RETENTION: std::time::Duration = std::time::Duration::from_secs(48 * 3600);

/// What identifies an incoming settlement's request, to tell a repeat from a reuse of its key.
pub(crate) fn settlement_fingerprint(quantity: &Quantity) -> String {
    let text = format!("{}:{}", quantity.amount, quantity.scale);
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
}

/// The shared store test suite (used by this crate's tests and by `tests/`).
#[doc(hidden)]
pub mod suite;
