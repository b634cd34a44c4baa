//! Incoming payments: money the node receives itself, by STREAM, on a local account (one whose
//! money the node holds; it has no ILP-over-HTTP endpoint). The admin API creates one with an
//! optional target, an expiry and free-form metadata; the node's STREAM receiver calls
//! [`Store::receive`](super::Store::receive) for each packet *before* it answers the packet with
//! a Fulfill, so that the check of the payment (open, not expired, within its target) and the
//! credit of the account are one atomic step: a packet past the target is refused before it is
//! fulfilled, and two instances racing for the last units of a target cannot both pass.
//!
//! A payment ends once, *completed*: when its target is reached exactly, or at its expiry (the
//! first packet after it, or the expiry scan, whichever comes first). Every completion joins the
//! store's outbox of completions ([`Store::unhandled_completions`](super::Store::unhandled_completions)),
//! shared by every instance and surviving restarts, until the completion hook acknowledges it
//! ([`Store::mark_completion_handled`](super::Store::mark_completion_handled), which exactly one
//! caller wins). Handled completions are deleted [`INCOMING_PAYMENT_RETENTION_S`] after they
//! completed, by the expiry scan.
//!
//! Times are kept to the millisecond (what the Redis store can hold): every `SystemTime` a store
//! returns is whole milliseconds since the epoch, and expiries are compared in milliseconds.
//! Amounts and totals are exact over the whole range: a payment's target and its received total
//! are at most [`AMOUNT_MAX`] (2^63 - 1, one int64, like a balance).

use crate::balance::{Balance, AMOUNT_MAX};
pub use crate::limits::INCOMING_METADATA_BYTES_MAX;
use crate::limits::{INCOMING_PAYMENT_EXPIRY_S_MAX, INCOMING_PAYMENT_RETENTION_S};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An incoming payment's id: one ILP address segment (`[A-Za-z0-9_~-]+`), 1..=64 bytes, unique
/// within its account. Being an address segment, it can end the address a STREAM sender pays to;
/// it never holds `:`, `{` or `}`, so it can be part of a Redis key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct IncomingPaymentId(Arc<str>);

/// The longest id [`IncomingPaymentId::parse`] accepts.
pub const INCOMING_PAYMENT_ID_BYTES_MAX: usize = 64;

impl IncomingPaymentId {
    /// The id `text` names, if it is 1..=64 bytes of `[A-Za-z0-9_~-]`.
    pub fn parse(text: &str) -> Option<Self> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'~' | b'-');
        let fits = (1..=INCOMING_PAYMENT_ID_BYTES_MAX).contains(&text.len());
        (fits && text.bytes().all(allowed)).then(|| IncomingPaymentId(Arc::from(text)))
    }

    /// A fresh id: 128 random bits from the OS (unguessable, so a payment's address cannot be
    /// found by trying), as 32 hex digits.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .expect("the OS random source works");
        IncomingPaymentId(Arc::from(hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IncomingPaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the admin API asks for. Checked by [`NewIncomingPayment::check`], which the admin API
/// calls at the edge and every store calls again before it writes anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewIncomingPayment {
    pub id: IncomingPaymentId,
    /// How much the payment is for, in the account's scale: 1 ..= [`AMOUNT_MAX`]. `None`: any
    /// amount, until it expires.
    pub target: Option<u64>,
    /// After `now`, and at most [`INCOMING_PAYMENT_EXPIRY_S_MAX`] after it. Kept to the
    /// millisecond.
    pub expires_at: SystemTime,
    /// JSON text, at most [`INCOMING_METADATA_BYTES_MAX`] bytes, kept as given (the node never
    /// reads it; the completion hook and the admin API's readers do).
    pub metadata: String,
}

/// Why a [`NewIncomingPayment`] is refused: the caller's mistake, refused with nothing written
/// (the store answers [`StoreError::Invalid`](super::StoreError::Invalid)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIncoming {
    #[error("target must be at least 1 (leave it out for a payment of any amount)")]
    TargetZero,
    #[error("target {0} is above the largest total a payment can hold ({AMOUNT_MAX})")]
    TargetTooLarge(u64),
    #[error("metadata is {0} bytes, more than {INCOMING_METADATA_BYTES_MAX}")]
    MetadataTooLong(usize),
    #[error("metadata is not JSON text")]
    MetadataNotJson,
    #[error("expires_at is not after now")]
    ExpiresAtNotAfterNow,
    #[error("expires_at is more than {INCOMING_PAYMENT_EXPIRY_S_MAX} s from now")]
    ExpiresAtTooFar,
}

impl NewIncomingPayment {
    /// Whether a store may create this payment at `now`.
    pub fn check(&self, now: SystemTime) -> Result<(), InvalidIncoming> {
        match self.target {
            Some(0) => return Err(InvalidIncoming::TargetZero),
            Some(target) if target > AMOUNT_MAX => return Err(InvalidIncoming::TargetTooLarge(target)),
            _ => {}
        }
        if self.metadata.len() > INCOMING_METADATA_BYTES_MAX {
            return Err(InvalidIncoming::MetadataTooLong(self.metadata.len()));
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(&self.metadata).is_err() {
            return Err(InvalidIncoming::MetadataNotJson);
        }
        let (expires_ms, now_ms) = (millis(self.expires_at), millis(now));
        if expires_ms <= now_ms {
            return Err(InvalidIncoming::ExpiresAtNotAfterNow);
        }
        if expires_ms - now_ms > INCOMING_PAYMENT_EXPIRY_S_MAX * 1000 {
            return Err(InvalidIncoming::ExpiresAtTooFar);
        }
        Ok(())
    }

    /// The payment a store creates from this on `account` at `now_ms` (the creation's time, to
    /// the millisecond): open, nothing received, its completion not handled. Both stores answer
    /// [`CreatedIncoming::Created`] with it, so they answer alike.
    pub(crate) fn created(&self, account: &str, now_ms: u64) -> IncomingPayment {
        IncomingPayment {
            id: self.id.clone(),
            account: account.to_string(),
            target: self.target,
            received: 0,
            expires_at: from_millis(millis(self.expires_at)),
            metadata: self.metadata.clone(),
            created_at: from_millis(now_ms),
            state: IncomingState::Open,
            completion_handled: false,
        }
    }
}

/// An incoming payment as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingPayment {
    pub id: IncomingPaymentId,
    /// The local account it credits.
    pub account: String,
    pub target: Option<u64>,
    /// What its packets have credited so far (never above `target`).
    pub received: u64,
    pub expires_at: SystemTime,
    pub metadata: String,
    pub created_at: SystemTime,
    pub state: IncomingState,
    /// The completion hook ran and acknowledged ([`Store::mark_completion_handled`]); only ever
    /// true for a completed payment.
    ///
    /// [`Store::mark_completion_handled`]: super::Store::mark_completion_handled
    pub completion_handled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncomingState {
    /// Accepts packets (until its target is reached or it expires).
    Open,
    /// Accepts nothing more; `at` is the `now` of the call that completed it.
    Completed { at: SystemTime, reason: CompletionReason },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionReason {
    /// `received` reached `target` exactly.
    TargetReached,
    /// Its expiry passed (whatever it had received by then).
    Expired,
}

/// What [`Store::create_incoming_payment`](super::Store::create_incoming_payment) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreatedIncoming {
    Created(IncomingPayment),
    /// The id is taken: the stored payment, unchanged (whatever the request asked for, so a
    /// creation sent again after its answer was lost finds what it created).
    Exists(IncomingPayment),
}

/// What [`Store::receive`](super::Store::receive) did with one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// Credited now: the account's balance after, and (with a payment) its total received and
    /// whether this packet completed it. A packet of 0 (STREAM control packets carry 0) is
    /// `Received` with the balance as it is and nothing written.
    Received { balance: Balance, received: Option<u64>, completed: bool },
    /// This packet was already received (a retry whose first answer was lost): nothing changed;
    /// the payment's total as it is now (`None` without a payment, or once the payment has been
    /// deleted after its retention).
    Repeated { received: Option<u64> },
    /// Refused, nothing changed (except that an expired payment is now completed).
    Refused(ReceiveRefusal),
}

/// Why a packet was not received. Totals as they are now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiveRefusal {
    /// No such payment on this account (never created, or deleted after its retention).
    UnknownPayment,
    /// The payment was already completed (its target reached, or it expired).
    Completed { received: u64 },
    /// The payment's expiry has passed: it is completed now, by this call.
    Expired { received: u64 },
    /// The packet would take the total past the target (a smaller one may still fit).
    OverTarget { received: u64, target: u64 },
    /// The same STREAM packet was already received in another ILP packet (a replay): it is
    /// credited once.
    Replayed,
}

/// Milliseconds since the epoch (0 before it): how stores keep an incoming payment's times.
pub(crate) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// The time `ms` milliseconds after the epoch.
pub(crate) fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// An expiry scan at `now_ms` deletes the handled completions that completed before this.
pub(crate) fn retention_cutoff_ms(now_ms: u64) -> u64 {
    now_ms.saturating_sub(INCOMING_PAYMENT_RETENTION_S * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_address_segment_of_at_most_64_bytes() {
        for good in ["a", "A-z_0~9", &"x".repeat(64)] {
            assert_eq!(IncomingPaymentId::parse(good).map(|id| id.to_string()), Some(good.to_string()));
        }
        for bad in ["", &"x".repeat(65), "a.b", "a:b", "{a}", "a b", "é", "a/b"] {
            assert_eq!(IncomingPaymentId::parse(bad), None, "{bad:?}");
        }
        let (one, two) = (IncomingPaymentId::random(), IncomingPaymentId::random());
        assert_ne!(one, two);
        assert_eq!(one.as_str().len(), 32);
        assert_eq!(IncomingPaymentId::parse(one.as_str()), Some(one));
    }

    #[test]
    fn new_payments_are_checked_at_the_edges() {
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        let ok = NewIncomingPayment {
            id: IncomingPaymentId::random(),
            target: Some(AMOUNT_MAX),
            expires_at: now + Duration::from_secs(INCOMING_PAYMENT_EXPIRY_S_MAX),
            metadata: format!("\"{}\"", "m".repeat(INCOMING_METADATA_BYTES_MAX - 2)),
        };
        assert_eq!(ok.check(now), Ok(()));
        let with = |change: &dyn Fn(&mut NewIncomingPayment)| {
            let mut new = ok.clone();
            change(&mut new);
            new.check(now)
        };
        assert_eq!(with(&|n| n.target = None), Ok(()));
        assert_eq!(with(&|n| n.target = Some(1)), Ok(()));
        assert_eq!(with(&|n| n.target = Some(0)), Err(InvalidIncoming::TargetZero));
        assert_eq!(
            with(&|n| n.target = Some(AMOUNT_MAX + 1)),
            Err(InvalidIncoming::TargetTooLarge(AMOUNT_MAX + 1))
        );
        assert_eq!(with(&|n| n.metadata.push(' ')), Err(InvalidIncoming::MetadataTooLong(4097)));
        assert_eq!(with(&|n| n.metadata = "{".into()), Err(InvalidIncoming::MetadataNotJson));
        assert_eq!(with(&|n| n.metadata = String::new()), Err(InvalidIncoming::MetadataNotJson));
        assert_eq!(with(&|n| n.metadata = r#"{"order": 42}"#.into()), Ok(()));
        assert_eq!(with(&|n| n.expires_at = now), Err(InvalidIncoming::ExpiresAtNotAfterNow));
        // Within the same millisecond is not after.
        assert_eq!(
            with(&|n| n.expires_at = now + Duration::from_micros(999)),
            Err(InvalidIncoming::ExpiresAtNotAfterNow)
        );
        assert_eq!(with(&|n| n.expires_at = now + Duration::from_millis(1)), Ok(()));
        assert_eq!(
            with(&|n| n.expires_at += Duration::from_millis(1)),
            Err(InvalidIncoming::ExpiresAtTooFar)
        );
    }

    #[test]
    fn times_are_whole_milliseconds() {
        let t = from_millis(1_700_000_000_123) + Duration::from_micros(999);
        assert_eq!(millis(t), 1_700_000_000_123);
        assert_eq!(from_millis(millis(t)), from_millis(1_700_000_000_123));
        assert_eq!(millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(retention_cutoff_ms(5), 0);
        assert_eq!(retention_cutoff_ms(INCOMING_PAYMENT_RETENTION_S * 1000 + 7), 7);
    }
}
