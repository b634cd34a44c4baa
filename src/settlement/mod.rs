//! Settlement: turning the credit an account has run up into money.
//!
//! A balance is what the node owes an account. When a Fulfill takes it above the account's
//! `settle_threshold`, the node moves it down to `settle_to` and asks the account's settlement
//! system to pay the difference; when the peer settles with us, its settlement system tells the
//! node, which credits the account. The interface to a settlement system is narrow (settle an
//! amount for an account, and apply what comes in) so that further kinds (Mojaloop transfers,
//! Rafiki peer liquidity) plug in beside the first one, an RFC 0038 settlement engine.
//!
//! - [`Quantity`] (amounts as engines speak them, exact scale conversion with remainders) and
//!   [`SettlementId`] are leaf modules of their own, re-exported here.
//! - [`engine`]: the node's client for an RFC 0038 engine (accounts, settlements, messages), with
//!   retryable and definitive failures told apart.
//! - [`Callbacks`]: what the engines' callback listener asks of the node (credit an incoming
//!   settlement, relay a message to the peer).
//! - [`SettlementSystem`]: what pays an amount for an account; [`outgoing`]: the worker that
//!   begins, drives and finishes outgoing settlements; [`Triggers`]: the packet path's signal.

pub mod engine;
pub mod incoming;
pub mod outgoing;
pub mod rails;

// The value types live in leaf modules (the store uses them too, and sits below settlement); they
// are re-exported here, where settlement's users look for them.
pub use crate::quantity::{self, Quantity, QuantityError};
pub use crate::settlement_id::SettlementId;

use crate::account::{Account, AccountId};
use crate::balance::Balance;
use crate::metrics::SettlementFigures;
use bytes::Bytes;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::mpsc;

/// Why an incoming settlement was not credited (nothing changed), or, for a Rafiki peer, not yet
/// recorded at the Rafiki.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncomingError {
    #[error("no account {0:?}")]
    UnknownAccount(String),
    #[error("account {0:?} has no settlement engine")]
    NoEngine(String),
    /// The same Idempotency-Key came with a different body.
    #[error("idempotency key already used with a different request")]
    KeyReused,
    /// The amount, converted to the account's scale, would take the balance out of range.
    #[error("amount too large for account {0:?}")]
    TooLarge(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Credited (once, by its key), but the withdrawal it owes at the Rafiki is not recorded yet:
    /// the engine calls again with the same key, which credits nothing more and records it.
    #[error("credited, but not yet recorded at the Rafiki: {0}")]
    WithdrawalUnrecorded(String),
}

/// Why an engine's message could not be relayed to the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("no account {0:?}")]
    UnknownAccount(String),
    #[error("account {0:?} has no settlement engine")]
    NoEngine(String),
    #[error("account {0:?} has no outgoing link to send the message over")]
    NoOutgoing(String),
    /// The peer answered with a Reject: its code and data (the peer engine's error message).
    #[error("peer rejected the message with {code}")]
    Rejected { code: String, data: Bytes },
    /// The peer could not be reached or answered garbage.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// More than an ILP packet's data can carry.
    #[error("message of {0} bytes is over the {max} an ILP packet carries", max = crate::packet::DATA_BYTES_MAX)]
    TooLarge(usize),
}

/// What the settlement engines' callback listener asks of the node.
pub trait Callbacks: Send + Sync + 'static {
    /// The account's engine received a settlement from the peer: credit it, converted to the
    /// account's scale, keeping what that scale cannot hold for later. Once per
    /// `idempotency_key`: the same key with the same quantity answers as the first time; with a
    /// different quantity it is [`IncomingError::KeyReused`]. Returns the quantity accepted.
    fn incoming_settlement(
        &self,
        account: &str,
        idempotency_key: &str,
        quantity: Quantity,
    ) -> impl Future<Output = Result<Quantity, IncomingError>> + Send;

    /// Sends the engine's message to the account's peer as a `peer.settle` Prepare and returns
    /// the data of the peer's Fulfill (its engine's answer).
    fn send_message(
        &self,
        account: &str,
        message: Bytes,
    ) -> impl Future<Output = Result<Bytes, MessageError>> + Send;
}

/// Why a settlement system did not settle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettleError {
    /// Certainly not made (nothing reached the settlement system, or it said it did not act):
    /// try again later with the same Idempotency-Key.
    #[error("not made, retryable: {0}")]
    NotMade(String),
    /// Perhaps made, or being made (timed out, 5xx, still in progress under the same key): try
    /// again later with the same Idempotency-Key. From then on a refusal no longer proves that no
    /// money moved, so the settlement is never refunded on the system's word alone.
    #[error("outcome unknown, retryable: {0}")]
    Retryable(String),
    /// Refused for good, and the refusal proves the settlement was not made (a 4xx, the scheme
    /// said no): the amount may go back to the balance.
    #[error("refused: {0}")]
    Definitive(String),
    /// Refused, and the refusal covers every earlier attempt too: they were all the same
    /// transfer, and the system answers a repeat of it as it answered the first (a Mojaloop
    /// payee deduplicates on the transfer id). The amount may go back even after attempts whose
    /// outcome was unknown.
    #[error("refused for every attempt: {0}")]
    RefusedThroughout(String),
}

/// What a settlement system paid of a settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paid {
    All,
    /// All but `unpaid` (in the account's scale): what the system's currency cannot carry, which
    /// goes back to the balance.
    AllBut {
        unpaid: u64,
    },
}

/// What pays an amount for an account: the narrow interface every kind of settlement system
/// implements (the RFC 0038 engine first; Mojaloop and Rafiki later).
pub trait SettlementSystem: Send + Sync + 'static {
    /// Prepares the settlement system for the account (RFC 0038: `POST /accounts`). Called at
    /// start-up for every account that settles, and again until it succeeds; must be harmless
    /// when the account is already set up.
    fn open_account(&self, account: &Account) -> impl Future<Output = Result<(), SettleError>> + Send;

    /// The account was deleted (RFC 0038: `DELETE /accounts/{id}`).
    fn close_account(&self, account: &Account) -> impl Future<Output = Result<(), SettleError>> + Send;

    /// Pays `quantity` (in the account's scale) to the account's peer. `id` is the settlement's
    /// Idempotency-Key: the same on every attempt, so the payment happens once.
    fn settle(
        &self,
        account: &Account,
        quantity: Quantity,
        id: SettlementId,
    ) -> impl Future<Output = Result<Paid, SettleError>> + Send;
}

/// Settlements by state, for metrics and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub begun: AtomicU64,
    pub settled: AtomicU64,
    pub refunded: AtomicU64,
    /// Failed attempts that were retried.
    pub retries: AtomicU64,
}

impl Counters {
    /// The counts as a metrics scrape reports them. Read one by one: a settlement finishing
    /// meanwhile may show as settled and not yet as begun, which the next scrape puts right.
    pub fn figures(&self) -> SettlementFigures {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        SettlementFigures {
            begun: read(&self.begun),
            settled: read(&self.settled),
            refunded: read(&self.refunded),
            retries: read(&self.retries),
        }
    }
}

/// Accounts whose balance crossed their threshold, queued at most this many (more are found by
/// the worker's scan).
pub const TRIGGERS_MAX: usize = 1024;

/// What the worker is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Look at the account: settle if its balance is above its threshold.
    Check(AccountId),
    /// Drive a settlement already begun (by "settle now").
    Drive { account: AccountId, id: SettlementId, amount: u64 },
    /// Scan every account now: accounts were added, changed or deleted.
    Scan,
}

/// The packet path's hand-over to the settlement worker ([`outgoing::run`]).
#[derive(Debug)]
pub struct Triggers {
    sender: mpsc::Sender<Trigger>,
    receiver: Mutex<Option<mpsc::Receiver<Trigger>>>,
    pub counters: Counters,
}

impl Default for Triggers {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel(TRIGGERS_MAX);
        Triggers { sender, receiver: Mutex::new(Some(receiver)), counters: Counters::default() }
    }
}

impl Triggers {
    /// Called after a credit to `account` (a Fulfill, an incoming settlement) with its new
    /// balance: signals the worker if the balance is above the threshold of an account that
    /// settles. Never waits and never changes a balance.
    pub fn after_credit(&self, account: &Account, balance: Balance) {
        let above = account.settle_threshold.is_some_and(|threshold| balance > threshold);
        if above && account.settles() {
            // A full queue drops the signal: the worker's scan finds the account anyway.
            let _ = self.sender.try_send(Trigger::Check(account.id.clone()));
        }
    }

    /// Asks the worker to look at the account (after a credit that did not report the balance).
    pub fn check(&self, account: &Account) {
        if account.settle_threshold.is_some() && account.settles() {
            let _ = self.sender.try_send(Trigger::Check(account.id.clone()));
        }
    }

    /// Accounts were added, changed or deleted: the worker sets up new settlement accounts and
    /// closes deleted ones now rather than at its next periodic scan.
    pub fn accounts_changed(&self) {
        let _ = self.sender.try_send(Trigger::Scan);
    }

    /// Hands a settlement begun outside the worker to it (a full queue leaves it to the scan).
    pub(crate) fn drive(&self, account: &Account, id: SettlementId, amount: u64) {
        let _ = self.sender.try_send(Trigger::Drive { account: account.id.clone(), id, amount });
    }

    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<Trigger>> {
        self.receiver.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settlement_ids_are_random_and_round_trip_as_hex() {
        let (a, b) = (SettlementId::random(), SettlementId::random());
        assert_ne!(a, b);
        assert_eq!(SettlementId::parse(&a.to_string()), Some(a));
        assert_eq!(a.to_string().len(), 32);
        assert_eq!(SettlementId::parse(&a.to_string().to_uppercase()), None);
        assert_eq!(SettlementId::parse("abc"), None);
        assert_eq!(SettlementId::parse(&"0".repeat(34)), None);
    }
}
