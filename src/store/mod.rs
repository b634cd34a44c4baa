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
//!
//! It sends payments itself too, from local accounts: [`outgoing`] has their types and the rule
//! that the same payment never pays twice; [`Store::reserve_outgoing_packet`] reserves each
//! packet on its payment before it is sent (re-exported here as well). These do not move
//! balances: a packet's money moves through the packet path, like any other.

pub mod incoming;
mod memory;
pub mod outgoing;
pub mod payout;
mod redis;

pub use incoming::{
    CompletionReason, CreatedIncoming, IncomingPayment, IncomingPaymentId, IncomingState, InvalidIncoming,
    NewIncomingPayment, Receipt, ReceiveRefusal, INCOMING_METADATA_BYTES_MAX, INCOMING_PAYMENT_ID_BYTES_MAX,
};

pub use outgoing::{
    AmountKind, CreatedOutgoing, InvalidOutgoing, NewOutgoingPayment, OutgoingPayment, OutgoingPaymentId,
    OutgoingState, PacketOutcome, ProbedRate, Reserved, OUTGOING_PAYMENT_ID_BYTES_MAX,
};

pub use memory::MemoryStore;
pub use payout::{
    CreatedPayout, NewPayout, Payout, PayoutAction, PayoutActionRefused, PayoutEnd, PayoutState,
};
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
use std::time::{Duration, SystemTime};

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
    /// The same for a new outgoing payment ([`NewOutgoingPayment::check`]).
    #[error("refused: {0}")]
    InvalidOutgoing(#[from] InvalidOutgoing),
    /// The same for a new payout ([`NewPayout::check`]).
    #[error("refused: {0}")]
    InvalidPayout(String),
}

/// A STREAM packet's own name, for [`Store::receive_stream`]: 128 bits of the SHA-256 of its
/// destination (which holds its connection's token) and its sequence number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ReplayKey(pub [u8; 16]);

impl ReplayKey {
    pub fn of(destination: &str, sequence: u64) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(destination.as_bytes());
        ctx.update(&sequence.to_be_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&ctx.finish().as_ref()[..16]);
        ReplayKey(key)
    }
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

    /// Takes (or renews) a pending outgoing settlement's lease for `owner` until `until`, if it is
    /// free, ended (at or before `now`) or already `owner`'s: a settlement system that must never
    /// have two calls in flight for one settlement (a Mojaloop transfer) holds it around each
    /// call, across instances. Returns what is kept for it, or `None` when not taken (held by
    /// another, or not pending), with nothing changed. `owner` must not contain `|`.
    fn claim_settlement(
        &self,
        account: &Account,
        id: SettlementId,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> impl Future<Output = Result<Option<SettlementClaim>, StoreError>> + Send;

    /// Keeps the settlement system's own id for a pending settlement (a Mojaloop `transferId`),
    /// if none is kept yet; lease holder only. Returns what is kept: this one, or the first
    /// (which wins, so every later attempt goes on with the same transfer). `None` when `owner`
    /// does not hold the lease or the settlement is not pending: nothing kept.
    fn set_settlement_reference(
        &self,
        account: &Account,
        id: SettlementId,
        owner: &str,
        reference: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

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

    /// What an incoming settlement under `key` credited, if the key was used (and is still
    /// remembered: [`INCOMING_KEY_RETENTION`]); `None` for a key never seen. Changes nothing.
    fn settlement_credited(
        &self,
        account: &Account,
        key: &str,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// [`credit_settlement`](Self::credit_settlement) for money a Rafiki peer's side paid the
    /// node through a rail that cannot wait for the Rafiki to record it (the node answers a
    /// Mojaloop transfer as soon as it is credited): in the same atomic step as the credit, a
    /// withdrawal owed at the Rafiki of what it credited is kept under `key` (none when it
    /// credited 0: the leftover goes with a later credit, which then owes it). A repeat, a reused
    /// key or a refused amount changes nothing, as for `credit_settlement`. The withdrawals
    /// worker records it at the Rafiki and then [`finish_withdrawal`](Self::finish_withdrawal)s
    /// it; until then it survives restarts (Redis) and every instance sees it.
    fn credit_settlement_owing_withdrawal(
        &self,
        account: &Account,
        key: &str,
        quantity: Quantity,
    ) -> impl Future<Output = Result<IncomingCredit, StoreError>> + Send;

    /// The account's withdrawals owed at the Rafiki, oldest first (then by key), at most `limit`.
    fn withdrawals_owed(
        &self,
        account: &Account,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OwedWithdrawal>, StoreError>> + Send;

    /// The withdrawal owed under `key` is recorded at the Rafiki: forgotten. `true` when it was
    /// owed; of any number of callers, on any instances, one gets `true`.
    fn finish_withdrawal(
        &self,
        account: &Account,
        key: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Creates a payout on the (local) account once per id, taking its amount off the balance in
    /// the same step; `Exists` with the stored one otherwise, nothing changed. A debit past the
    /// int64 minimum is [`StoreError::Overflow`], nothing written.
    fn create_payout(
        &self,
        account: &Account,
        new: &NewPayout,
        now: SystemTime,
    ) -> impl Future<Output = Result<CreatedPayout, StoreError>> + Send;

    /// One payout, while it is open or within [`payout::PAYOUT_RETENTION`] of its end.
    fn payout(
        &self,
        account: &Account,
        id: &str,
    ) -> impl Future<Output = Result<Option<Payout>, StoreError>> + Send;

    /// The account's open payouts (pending and failed), oldest first, at most `limit`.
    fn open_payouts(
        &self,
        account: &Account,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Payout>, StoreError>> + Send;

    /// Takes (or renews) a pending payout's lease for `owner` until `until`, as
    /// [`Store::claim_settlement`] does; the payout as it is, or `None` (not pending, or held).
    fn claim_payout(
        &self,
        account: &Account,
        id: &str,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> impl Future<Output = Result<Option<Payout>, StoreError>> + Send;

    /// Keeps the other network's id of the payout's current attempt, if none is kept yet; lease
    /// holder only. The one kept (the first wins), or `None`.
    fn set_payout_reference(
        &self,
        account: &Account,
        id: &str,
        owner: &str,
        reference: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Ends the payout's current attempt; lease holder of a pending payout only. The payout
    /// after, or `None` with nothing changed.
    fn finish_payout(
        &self,
        account: &Account,
        id: &str,
        owner: &str,
        end: &PayoutEnd,
        now: SystemTime,
    ) -> impl Future<Output = Result<Option<Payout>, StoreError>> + Send;

    /// An operator's retry or refund of a failed payout (a refund credits its amount back).
    fn act_on_payout(
        &self,
        account: &Account,
        id: &str,
        action: PayoutAction,
        now: SystemTime,
    ) -> impl Future<Output = Result<Result<Payout, PayoutActionRefused>, StoreError>> + Send;

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

    /// Creates an incoming payment on the local account `account`, open, with nothing received,
    /// `created_at` = `now`; once per id: an id already taken is `Exists` with the stored payment,
    /// unchanged. A payment [`NewIncomingPayment::check`] refuses is [`StoreError::Invalid`],
    /// nothing written.
    fn create_incoming_payment(
        &self,
        account: &Account,
        new: &NewIncomingPayment,
        now: SystemTime,
    ) -> impl Future<Output = Result<CreatedIncoming, StoreError>> + Send;

    /// One incoming payment of `account` (`None`: never created, or deleted after its retention).
    fn incoming_payment(
        &self,
        account: &Account,
        id: &IncomingPaymentId,
    ) -> impl Future<Output = Result<Option<IncomingPayment>, StoreError>> + Send;

    /// The incoming payments of `account`, newest first (by `created_at`, then by id), at most
    /// `limit`.
    fn incoming_payments(
        &self,
        account: &Account,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<IncomingPayment>, StoreError>> + Send;

    /// One packet of `amount` for `account` (and, when `payment` is `Some`, for that incoming
    /// payment), in one atomic step, called *before* the packet is fulfilled:
    /// 1. a packet already received (its credit mark, as [`credit_fulfill`](Self::credit_fulfill)
    ///    writes it, exists) is `Repeated`, nothing changes: so `receive` may be retried after any
    ///    failure, including [`StoreError::Uncertain`] ones (a retry is recognized while it comes
    ///    within an hour of the first attempt; the receiver retries only within its packet's
    ///    life);
    /// 2. with a payment: unknown → `UnknownPayment`; completed → `Completed`; its `expires_at` at
    ///    or before `now` → the payment becomes `Completed { Expired, at: now }` (and joins the
    ///    completions to handle) and the packet is `Expired`; a target set and
    ///    `received + amount > target` → `OverTarget`, nothing changes;
    /// 3. the account's balance is credited `amount` (a journal entry of kind `receive` with the
    ///    packet, the change, the balance after and the payment's id when there is one; the
    ///    packet's credit mark), the payment's `received` grows by `amount`, and when it equals
    ///    the target the payment becomes `Completed { TargetReached, at: now }` (and joins the
    ///    completions to handle).
    ///
    /// An `amount` of 0 (STREAM control packets) goes through the checks of 2. and is then
    /// `Received` with the balance as it is, writing nothing (no journal entry, no mark). A
    /// balance that would pass int64, an `amount` above [`AMOUNT_MAX`](crate::balance::AMOUNT_MAX),
    /// or a total of a payment without a target that would pass it, is
    /// [`StoreError::Overflow`] with nothing changed.
    fn receive(
        &self,
        account: &Account,
        payment: Option<&IncomingPaymentId>,
        amount: u64,
        packet: PacketId,
        now: SystemTime,
    ) -> impl Future<Output = Result<Receipt, StoreError>> + Send {
        self.receive_stream(account, payment, amount, packet, None, now)
    }

    /// [`receive`](Self::receive) for a STREAM packet that names itself: `replay` is the
    /// packet's own key (its connection and sequence number, [`ReplayKey`]), kept with the
    /// packet's credit mark. The same key again under another `packet` is a Prepare replayed
    /// (the same STREAM packet in a new ILP packet, by a connector retrying it or by anyone
    /// else): `Refused(Replayed)`, nothing changes, so one STREAM packet is credited once.
    /// Under the same `packet` it is the retry it always was (`Repeated`). Keys are remembered as
    /// long as the credit marks are looked for (an hour at least).
    fn receive_stream(
        &self,
        account: &Account,
        payment: Option<&IncomingPaymentId>,
        amount: u64,
        packet: PacketId,
        replay: Option<ReplayKey>,
        now: SystemTime,
    ) -> impl Future<Output = Result<Receipt, StoreError>> + Send;

    /// The account's open payments whose expiry is at or before `now` become
    /// `Completed { Expired, at: now }` (and join the completions to handle), at most `limit` of
    /// them; returns how many. In the same call, at most `limit` handled payments that completed
    /// more than [`INCOMING_PAYMENT_RETENTION_S`](crate::limits::INCOMING_PAYMENT_RETENTION_S)
    /// before `now` are deleted (completions not yet handled are kept, however old).
    fn expire_incoming_payments(
        &self,
        account: &Account,
        now: SystemTime,
        limit: usize,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// The outbox of completions: completed payments of `account` whose completion hook has not
    /// acknowledged, oldest completion first (then by id), at most `limit`. It survives restarts,
    /// and every instance sharing the store sees the same.
    fn unhandled_completions(
        &self,
        account: &Account,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<IncomingPayment>, StoreError>> + Send;

    /// Marks one completion handled (it leaves the outbox); `false` when it was not pending
    /// (already handled, still open, or unknown). Of any number of callers, on any instances,
    /// exactly one gets `true`.
    fn mark_completion_handled(
        &self,
        account: &Account,
        id: &IncomingPaymentId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Creates an outgoing payment from the local account `account`: Sending, no lease, nothing
    /// sent, `created_at` = `updated_at` = `now`; once per id: an id already taken is `Exists`
    /// with the stored payment, unchanged (so a creation sent again never pays twice). A payment
    /// [`NewOutgoingPayment::check`] refuses is [`StoreError::InvalidOutgoing`], nothing written.
    ///
    /// Retention: in the same step, up to
    /// [`OUTGOING_PAYMENT_DELETE_BATCH_MAX`](crate::limits::OUTGOING_PAYMENT_DELETE_BATCH_MAX)
    /// payments of the account that ended more than
    /// [`OUTGOING_PAYMENT_RETENTION_S`](crate::limits::OUTGOING_PAYMENT_RETENTION_S) before
    /// `now` are deleted with their packets' records (their ids may then be used again).
    fn create_outgoing_payment(
        &self,
        account: &Account,
        new: &NewOutgoingPayment,
        now: SystemTime,
    ) -> impl Future<Output = Result<CreatedOutgoing, StoreError>> + Send;

    /// One outgoing payment of `account` (`None`: never created, or deleted after its retention).
    fn outgoing_payment(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
    ) -> impl Future<Output = Result<Option<OutgoingPayment>, StoreError>> + Send;

    /// The outgoing payments of `account`, newest first (by `created_at`, then by id), at most
    /// `limit`.
    fn outgoing_payments(
        &self,
        account: &Account,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutgoingPayment>, StoreError>> + Send;

    /// Takes (or renews) the payment's lease for `owner` until `now + lease`, if the payment is
    /// Sending and its lease is free, expired (its end at or before `now`) or already `owner`'s.
    /// In the same step, reservations whose packet expired before `now - grace` (their sender
    /// died or lost track of them) move from `in_flight` to `in_doubt`, up to
    /// [`OUTGOING_DOUBT_BATCH_MAX`](crate::limits::OUTGOING_DOUBT_BATCH_MAX) of them (the next
    /// claims move the rest; both count for the limit alike). Returns the payment as it is after,
    /// or `None` when not taken (held by another, not Sending, or unknown), with nothing changed.
    ///
    /// Of several owners racing for a free lease, one gets it. Once it is taken over, the previous
    /// holder reserves nothing more, so the `last_packet` it returns is final for them: the new
    /// holder continues above it.
    fn claim_outgoing_payment(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        owner: &str,
        now: SystemTime,
        lease: Duration,
        grace: Duration,
    ) -> impl Future<Output = Result<Option<OutgoingPayment>, StoreError>> + Send;

    /// Keeps the resolved connection (the STREAM destination address and shared secret), if none
    /// is kept yet; lease holder only. Returns what is kept: this one, or the first resolution
    /// (which wins, so a resumed payment pays the same connection). `None` when `owner` does not
    /// hold the lease (or the payment is unknown or ended): nothing kept.
    fn set_outgoing_connection(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        owner: &str,
        destination: &str,
        shared_secret: &[u8; 32],
    ) -> impl Future<Output = Result<Option<(String, [u8; 32])>, StoreError>> + Send;

    /// Reserves one packet before it is sent. `packet` is the sender's own key for it (e.g. its
    /// STREAM sequence number), used once per payment; `amount` its source units;
    /// `min_delivered` the least the receiver must accept; `expires_at` the Prepare's expiry.
    /// In order: the payment must be Sending ([`Reserved::NotSending`]; unknown:
    /// [`Reserved::NotOwner`]) and its lease `owner`'s ([`Reserved::NotOwner`]: the lease's end
    /// is not looked at, only who holds it, so once another has taken it over this owner's
    /// reservations are refused); this very reservation made before (same key and terms, still
    /// in flight) is [`Reserved::Reserved`] and changes nothing (a retry after an uncertain
    /// answer); a key used otherwise is [`Reserved::PacketTaken`]; the
    /// [`OUTGOING_PACKETS_MAX`](crate::limits::OUTGOING_PACKETS_MAX)-th packet is the last
    /// ([`Reserved::TooManyPackets`]); then the limits ([`Reserved::OverLimit`],
    /// [`Reserved::OverDelivered`]), and the reservation joins `in_flight` and
    /// `in_flight_min_delivered`. An `amount` of 0 (a STREAM control packet) fits any room;
    /// amounts past [`AMOUNT_MAX`](crate::balance::AMOUNT_MAX) pass every limit.
    // One packet's terms, as plain values: the worker's call site names each.
    #[allow(clippy::too_many_arguments)]
    fn reserve_outgoing_packet(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        owner: &str,
        packet: u64,
        amount: u64,
        min_delivered: u64,
        expires_at: SystemTime,
    ) -> impl Future<Output = Result<Reserved, StoreError>> + Send;

    /// Records a reserved packet's outcome, exactly once: `true` when recorded now; `false` when
    /// there is nothing to record (already recorded, never reserved, or the payment is unknown),
    /// with nothing changed. Anyone may record (the outcome is a fact): also after the lease
    /// moved, after the payment ended, and when the reservation has moved to `in_doubt` (it then
    /// leaves `in_doubt` and counts as it really ended). Fulfilled: `sent` += its amount,
    /// `delivered` += `delivered`; Rejected: counted by code (see
    /// [`OutgoingPayment::rejects`]). A `delivered` that would take the payment's total past
    /// [`AMOUNT_MAX`](crate::balance::AMOUNT_MAX) is [`StoreError::Overflow`] with nothing
    /// changed (the packet stays reserved, and so counts as sent for the limit).
    fn record_outgoing_packet(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        packet: u64,
        outcome: PacketOutcome,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Ends the payment as `state` (Completed or Failed) with its `reason` (cut to
    /// [`OUTGOING_STOP_REASON_BYTES_MAX`](crate::limits::OUTGOING_STOP_REASON_BYTES_MAX) bytes);
    /// lease holder only. Reservations still in flight move to `in_doubt`; the lease is released.
    /// `false` when not ended now (not the lease holder, not Sending, unknown, or `state` is
    /// Sending), with nothing changed.
    fn finish_outgoing_payment(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        owner: &str,
        state: OutgoingState,
        reason: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Payments of `account` still Sending (to resume after a restart, or after another
    /// instance died: claim each, and those whose lease is held elsewhere answer `None`), oldest
    /// first (by `created_at`, then by id), at most `limit`.
    fn unfinished_outgoing_payments(
        &self,
        account: &Account,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutgoingPayment>, StoreError>> + Send;
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

/// What a pending settlement's lease holder finds kept for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementClaim {
    /// The settlement system's own id, once one was kept ([`Store::set_settlement_reference`]).
    pub reference: Option<String>,
}

/// How an outgoing settlement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettlementEnd {
    /// The settlement system confirmed it.
    Settled,
    /// The settlement system paid all but `unpaid` (what its currency cannot carry, less than
    /// one of its units): that part goes back to the balance, in the same step.
    SettledBut { unpaid: u64 },
    /// The settlement system refused it for good: the amount goes back to the balance.
    Refunded,
}

/// Money a Rafiki peer's side paid the node through the account's rail, credited, and not yet
/// recorded at the Rafiki as a withdrawal ([`Store::credit_settlement_owing_withdrawal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedWithdrawal {
    /// The incoming credit's own key (`mojaloop:<transferId>`): the withdrawal's ids at the
    /// Rafiki are derived from it, so every attempt records the same one.
    pub key: String,
    /// What the credit credited, in the account's scale (never 0).
    pub amount: u64,
    pub since: SystemTime,
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
