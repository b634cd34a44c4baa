//! Outgoing payments: money the node sends itself, by STREAM, from a local account (one whose
//! money the node holds). The operator asks for one through the admin API with an id of its own
//! choosing; a worker on one instance sends its packets through the node's own packet path. The
//! rule the store keeps is that **the same id never pays twice**, also with several instances
//! sharing the store, and after a restart or a `kill -9`:
//!
//! - a payment is created once per id ([`Store::create_outgoing_payment`]; the same id again is
//!   [`CreatedOutgoing::Exists`], unchanged);
//! - only the instance holding the payment's *lease* sends it
//!   ([`Store::claim_outgoing_payment`] takes or renews it; it lapses unless renewed, and another
//!   instance may then take the payment over);
//! - every packet is *reserved* on the payment before it is sent
//!   ([`Store::reserve_outgoing_packet`], lease holder only), so that what was sent plus what is
//!   in flight never passes the payment's limit, whoever sends;
//! - a packet's outcome is recorded once ([`Store::record_outgoing_packet`]);
//! - a reservation whose outcome was never recorded (its sender died, or lost track of it) is
//!   never sent again: once past its expiry (and a grace) it becomes *in doubt* and counts as
//!   sent for the limit. The payment may then pay less than asked, never more, and the operator
//!   sees how much is in doubt. An outcome recorded later still counts as it really ended.
//!
//! A payment ends once, [`OutgoingState::Completed`] or [`OutgoingState::Failed`], by its lease
//! holder ([`Store::finish_outgoing_payment`]). Ended payments are kept
//! [`OUTGOING_PAYMENT_RETENTION_S`] after they ended, then deleted by later creations on the same
//! account (so an id is remembered, and never paid twice, for at least that long).
//!
//! Times are kept to the millisecond, as for incoming payments. Amounts and totals are exact over
//! the whole range: an amount, a limit and every total are at most [`AMOUNT_MAX`] (2^63 - 1, one
//! int64).
//!
//! [`Store::create_outgoing_payment`]: super::Store::create_outgoing_payment
//! [`Store::claim_outgoing_payment`]: super::Store::claim_outgoing_payment
//! [`Store::reserve_outgoing_packet`]: super::Store::reserve_outgoing_packet
//! [`Store::record_outgoing_packet`]: super::Store::record_outgoing_packet
//! [`Store::finish_outgoing_payment`]: super::Store::finish_outgoing_payment

use super::incoming::{from_millis, millis};
use crate::balance::AMOUNT_MAX;
pub use crate::limits::{
    OUTGOING_PACKETS_MAX, OUTGOING_PAYMENT_DEADLINE_S_MAX, OUTGOING_PAYMENT_RETENTION_S,
    OUTGOING_RECEIVER_BYTES_MAX, OUTGOING_REJECT_CODES_MAX, OUTGOING_SLIPPAGE_BYTES_MAX,
    OUTGOING_STOP_REASON_BYTES_MAX,
};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// An outgoing payment's id, chosen by the client: one ILP address segment
/// (`[A-Za-z0-9_~-]+`), 1..=64 bytes, unique within its account (the same rules as
/// [`IncomingPaymentId`](super::IncomingPaymentId)). It never holds `:`, `{` or `}`, so it can be
/// part of a Redis key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct OutgoingPaymentId(Arc<str>);

/// The longest id [`OutgoingPaymentId::parse`] accepts.
pub const OUTGOING_PAYMENT_ID_BYTES_MAX: usize = 64;

impl OutgoingPaymentId {
    /// The id `text` names, if it is 1..=64 bytes of `[A-Za-z0-9_~-]`.
    pub fn parse(text: &str) -> Option<Self> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'~' | b'-');
        let fits = (1..=OUTGOING_PAYMENT_ID_BYTES_MAX).contains(&text.len());
        (fits && text.bytes().all(allowed)).then(|| OutgoingPaymentId(Arc::from(text)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OutgoingPaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a payment's `amount` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmountKind {
    /// What leaves the account, in its own units: the payment sends at most this.
    Source,
    /// What the receiver gets, in its units: the payment delivers at least this if it completes,
    /// spending at most its `source_max`.
    Delivered,
}

/// What the admin API asks for. Checked by [`NewOutgoingPayment::check`], which the admin API
/// calls at the edge and every store calls again before it writes anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOutgoingPayment {
    pub id: OutgoingPaymentId,
    /// As the client gave it (payment pointer, SPSP URL, or an ILP address): 1 ..=
    /// [`OUTGOING_RECEIVER_BYTES_MAX`] bytes, without whitespace or control characters. Kept as
    /// given; the worker resolves it.
    pub receiver: String,
    /// 1 ..= [`AMOUNT_MAX`], in the units `kind` says.
    pub amount: u64,
    pub kind: AmountKind,
    /// The exchange rate's slippage the worker accepts: an exact decimal in [0, 1), written
    /// `0` or `0.` and digits (`"0.01"`), at most [`OUTGOING_SLIPPAGE_BYTES_MAX`] bytes. Kept
    /// as given; the worker parses it.
    pub slippage: String,
    /// After `now`, and at most [`OUTGOING_PAYMENT_DEADLINE_S_MAX`] after it. Kept to the
    /// millisecond. The worker stops sending at it (the store does not enforce it: packets in
    /// flight at the deadline still end as they end).
    pub deadline: SystemTime,
    /// With [`AmountKind::Delivered`]: the most the account may spend, in its own units,
    /// 1 ..= [`AMOUNT_MAX`]. With [`AmountKind::Source`] it must be `None` (the amount is the
    /// limit).
    pub source_max: Option<u64>,
    /// The rate an earlier probe of the same path found (a Mojaloop quote's): the payment pays
    /// at it, less its slippage, and sends no test packets of its own. Only with
    /// [`AmountKind::Source`].
    pub probed: Option<ProbedRate>,
}

/// One authentic probe reply: a test packet of `sent` source units delivered `delivered` receiver
/// units, so the rate was in `[delivered / sent, (delivered + 1) / sent)`. Both 1 ..=
/// [`AMOUNT_MAX`]: a reply that delivered nothing tells no rate to pay at (a payment at it would
/// take any amount, even nothing, as delivered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbedRate {
    pub sent: u64,
    pub delivered: u64,
}

/// Why a [`NewOutgoingPayment`] is refused: the caller's mistake, refused with nothing written
/// (the store answers [`StoreError::InvalidOutgoing`](super::StoreError::InvalidOutgoing)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOutgoing {
    #[error("amount must be at least 1")]
    AmountZero,
    #[error("amount {0} is above the largest amount a payment can hold ({AMOUNT_MAX})")]
    AmountTooLarge(u64),
    #[error("receiver is empty")]
    ReceiverEmpty,
    #[error("receiver is {0} bytes, more than {OUTGOING_RECEIVER_BYTES_MAX}")]
    ReceiverTooLong(usize),
    #[error("receiver holds whitespace or control characters")]
    ReceiverMalformed,
    #[error("slippage is {0} bytes, more than {OUTGOING_SLIPPAGE_BYTES_MAX}")]
    SlippageTooLong(usize),
    #[error("slippage must be a decimal in [0, 1), written 0 or 0. and digits, e.g. 0.01")]
    SlippageMalformed,
    #[error("deadline is not after now")]
    DeadlineNotAfterNow,
    #[error("deadline is more than {OUTGOING_PAYMENT_DEADLINE_S_MAX} s from now")]
    DeadlineTooFar,
    #[error("a payment of a delivered amount needs source_max, the most it may spend")]
    SourceMaxMissing,
    #[error("source_max is only for a payment of a delivered amount (a source amount is its own limit)")]
    SourceMaxWithSource,
    #[error("source_max must be at least 1")]
    SourceMaxZero,
    #[error("source_max {0} is above the largest amount a payment can hold ({AMOUNT_MAX})")]
    SourceMaxTooLarge(u64),
    #[error("a probed rate's amounts, sent and delivered, are 1 ..= {AMOUNT_MAX}")]
    ProbedOutOfRange,
    #[error("a probed rate is only for a payment of a source amount")]
    ProbedWithDelivered,
}

impl InvalidOutgoing {
    /// The field of [`NewOutgoingPayment`] at fault (for the admin API's answer).
    pub fn field(&self) -> &'static str {
        match self {
            InvalidOutgoing::AmountZero | InvalidOutgoing::AmountTooLarge(_) => "amount",
            InvalidOutgoing::ReceiverEmpty
            | InvalidOutgoing::ReceiverTooLong(_)
            | InvalidOutgoing::ReceiverMalformed => "receiver",
            InvalidOutgoing::SlippageTooLong(_) | InvalidOutgoing::SlippageMalformed => "slippage",
            InvalidOutgoing::DeadlineNotAfterNow | InvalidOutgoing::DeadlineTooFar => "deadline",
            InvalidOutgoing::SourceMaxMissing
            | InvalidOutgoing::SourceMaxWithSource
            | InvalidOutgoing::SourceMaxZero
            | InvalidOutgoing::SourceMaxTooLarge(_) => "source_max",
            InvalidOutgoing::ProbedOutOfRange | InvalidOutgoing::ProbedWithDelivered => "probed",
        }
    }
}

impl NewOutgoingPayment {
    /// Whether a store may create this payment at `now`.
    pub fn check(&self, now: SystemTime) -> Result<(), InvalidOutgoing> {
        match self.amount {
            0 => return Err(InvalidOutgoing::AmountZero),
            amount if amount > AMOUNT_MAX => return Err(InvalidOutgoing::AmountTooLarge(amount)),
            _ => {}
        }
        if self.receiver.is_empty() {
            return Err(InvalidOutgoing::ReceiverEmpty);
        }
        if self.receiver.len() > OUTGOING_RECEIVER_BYTES_MAX {
            return Err(InvalidOutgoing::ReceiverTooLong(self.receiver.len()));
        }
        if self.receiver.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidOutgoing::ReceiverMalformed);
        }
        if self.slippage.len() > OUTGOING_SLIPPAGE_BYTES_MAX {
            return Err(InvalidOutgoing::SlippageTooLong(self.slippage.len()));
        }
        if !slippage_is_a_fraction(&self.slippage) {
            return Err(InvalidOutgoing::SlippageMalformed);
        }
        let (deadline_ms, now_ms) = (millis(self.deadline), millis(now));
        if deadline_ms <= now_ms {
            return Err(InvalidOutgoing::DeadlineNotAfterNow);
        }
        if deadline_ms - now_ms > OUTGOING_PAYMENT_DEADLINE_S_MAX * 1000 {
            return Err(InvalidOutgoing::DeadlineTooFar);
        }
        match (self.kind, self.source_max) {
            (AmountKind::Source, None) => {}
            (AmountKind::Source, Some(_)) => return Err(InvalidOutgoing::SourceMaxWithSource),
            (AmountKind::Delivered, None) => return Err(InvalidOutgoing::SourceMaxMissing),
            (AmountKind::Delivered, Some(0)) => return Err(InvalidOutgoing::SourceMaxZero),
            (AmountKind::Delivered, Some(max)) if max > AMOUNT_MAX => {
                return Err(InvalidOutgoing::SourceMaxTooLarge(max))
            }
            (AmountKind::Delivered, Some(_)) => {}
        }
        if let Some(probed) = self.probed {
            if self.kind != AmountKind::Source {
                return Err(InvalidOutgoing::ProbedWithDelivered);
            }
            let in_range = |n: u64| (1..=AMOUNT_MAX).contains(&n);
            if !in_range(probed.sent) || !in_range(probed.delivered) {
                return Err(InvalidOutgoing::ProbedOutOfRange);
            }
        }
        Ok(())
    }

    /// The payment a store creates from this on `account` at `now_ms` (the creation's time, to
    /// the millisecond): Sending, nothing sent or reserved, no connection, no lease. Both stores
    /// answer [`CreatedOutgoing::Created`] with it, so they answer alike.
    pub(crate) fn created(&self, account: &str, now_ms: u64) -> OutgoingPayment {
        OutgoingPayment {
            id: self.id.clone(),
            account: account.to_string(),
            receiver: self.receiver.clone(),
            amount: self.amount,
            kind: self.kind,
            slippage: self.slippage.clone(),
            deadline: from_millis(millis(self.deadline)),
            source_max: self.source_max,
            probed: self.probed,
            created_at: from_millis(now_ms),
            updated_at: from_millis(now_ms),
            state: OutgoingState::Sending,
            sent: 0,
            delivered: 0,
            in_flight: 0,
            in_flight_min_delivered: 0,
            in_doubt: 0,
            packets_fulfilled: 0,
            packets_rejected: 0,
            rejects: BTreeMap::new(),
            last_packet: None,
            stop_reason: None,
            destination: None,
            shared_secret: None,
            lease: None,
        }
    }
}

/// `0`, or `0.` and one or more digits: every exact decimal in [0, 1), in one spelling each but
/// for trailing zeros.
fn slippage_is_a_fraction(text: &str) -> bool {
    match text.strip_prefix("0") {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('.')
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutgoingState {
    /// Created, or being sent: a worker may claim it and reserve its packets.
    Sending,
    /// Ended by its worker as done (see `stop_reason`).
    Completed,
    /// Ended by its worker as given up (see `stop_reason`).
    Failed,
}

/// An outgoing payment as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingPayment {
    pub id: OutgoingPaymentId,
    /// The local account it pays from.
    pub account: String,
    pub receiver: String,
    pub amount: u64,
    pub kind: AmountKind,
    pub slippage: String,
    pub deadline: SystemTime,
    pub source_max: Option<u64>,
    pub probed: Option<ProbedRate>,
    pub created_at: SystemTime,
    /// When it last changed: the `now` of a claim, the node's clock for the other changes.
    pub updated_at: SystemTime,
    pub state: OutgoingState,
    /// Source units of fulfilled packets.
    pub sent: u64,
    /// Receiver units the fulfilled packets delivered.
    pub delivered: u64,
    /// Source units of packets reserved and not yet recorded, nor moved to `in_doubt` (a claim
    /// moves those past their expiry and grace; until then they count here, for the limit
    /// alike).
    pub in_flight: u64,
    /// The least receiver units each of those packets guaranteed (their `min_delivered`), summed.
    pub in_flight_min_delivered: u64,
    /// Source units of packets whose outcome was never recorded and which are past their expiry
    /// (moved by a claim), or were in flight when the payment ended: counted as sent for the
    /// limit. An outcome recorded later moves its packet out of here.
    pub in_doubt: u64,
    pub packets_fulfilled: u64,
    pub packets_rejected: u64,
    /// Rejects by ILP code (`"F08"`, `"T04"`, ...), at most [`OUTGOING_REJECT_CODES_MAX`]
    /// distinct codes; further codes, and codes that are not three ASCII letters or digits, are
    /// counted under `"other"`.
    pub rejects: BTreeMap<String, u64>,
    /// The highest packet key reserved so far (`None` before the first). A packet key is used
    /// once: a sender resuming the payment (after a restart, or taking it over from another
    /// instance) continues above it.
    pub last_packet: Option<u64>,
    /// Why it stopped (free text, at most [`OUTGOING_STOP_REASON_BYTES_MAX`] bytes), once
    /// Completed or Failed.
    pub stop_reason: Option<String>,
    /// The connection the payment pays over, once resolved: the first resolution is kept, so a
    /// resumed payment pays the same STREAM connection. (The secret is kept in clear: the
    /// worker needs it to send.)
    pub destination: Option<String>,
    pub shared_secret: Option<[u8; 32]>,
    /// The instance sending it, and until when its lease holds (`None` once it ended, and
    /// before the first claim).
    pub lease: Option<(String, SystemTime)>,
}

/// What [`Store::create_outgoing_payment`](super::Store::create_outgoing_payment) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreatedOutgoing {
    Created(OutgoingPayment),
    /// The id is taken: the stored payment, unchanged (whatever the request asked for, so a
    /// creation sent again after its answer was lost finds what it created, and never pays
    /// twice).
    Exists(OutgoingPayment),
}

/// What a packet's reservation ([`Store::reserve_outgoing_packet`]) did. Only
/// [`Reserved::Reserved`] lets the packet be sent.
///
/// [`Store::reserve_outgoing_packet`]: super::Store::reserve_outgoing_packet
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// Reserved now, or this very reservation was already made (same key, same terms, still in
    /// flight: a retry whose first answer was lost). Send it.
    Reserved,
    /// The lease is not the caller's (expired and taken by another, or never held), or the
    /// payment is unknown: stop sending.
    NotOwner,
    /// The payment is not Sending (it ended).
    NotSending(OutgoingState),
    /// `sent + in_flight + in_doubt + amount` would pass the source limit (the `amount` of a
    /// Source payment, the `source_max` of a Delivered one). `room`: source units left under
    /// it (a smaller packet may fit).
    OverLimit { room: u64 },
    /// `delivered + in_flight_min_delivered + min_delivered` would pass the delivered limit (the
    /// `amount` of a Delivered payment; [`AMOUNT_MAX`] for a Source one, so the totals stay in
    /// range). `room`: receiver units left under it.
    OverDelivered { room: u64 },
    /// The packet key was used already, other than by this very reservation: reserved with
    /// other terms, recorded, or in doubt. Nothing changed; do not send it (keys are used once:
    /// see [`OutgoingPayment::last_packet`]).
    PacketTaken,
    /// The payment has reserved [`OUTGOING_PACKETS_MAX`] packets: it can send no more.
    TooManyPackets,
}

/// How a reserved packet ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketOutcome {
    /// Fulfilled: its reserved amount was sent, and the receiver got `delivered` (its units).
    Fulfilled { delivered: u64 },
    /// Rejected with this ILP code (`*b"F99"`).
    Rejected { code: [u8; 3] },
}

/// Where an outgoing payment's rejects are counted: its code, if three ASCII letters or
/// digits (as ILP codes are), else [`REJECTS_OTHER`].
pub(crate) fn reject_label(code: &[u8; 3]) -> &str {
    match std::str::from_utf8(code) {
        Ok(text) if code.iter().all(u8::is_ascii_alphanumeric) => text,
        _ => REJECTS_OTHER,
    }
}

/// The [`OutgoingPayment::rejects`] entry of codes beyond [`OUTGOING_REJECT_CODES_MAX`], and of
/// codes that are not ILP codes.
pub(crate) const REJECTS_OTHER: &str = "other";

/// A stop reason as kept: at most [`OUTGOING_STOP_REASON_BYTES_MAX`] bytes, cut at a character
/// boundary.
pub(crate) fn stop_reason(reason: &str) -> &str {
    let mut end = reason.len().min(OUTGOING_STOP_REASON_BYTES_MAX);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// A creation at `now_ms` deletes the ended payments that ended before this.
pub(crate) fn retention_cutoff_ms(now_ms: u64) -> u64 {
    now_ms.saturating_sub(OUTGOING_PAYMENT_RETENTION_S * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::incoming::from_millis;
    use std::time::Duration;

    #[test]
    fn ids_are_one_address_segment_of_at_most_64_bytes() {
        for good in ["a", "A-z_0~9", &"x".repeat(64)] {
            assert_eq!(OutgoingPaymentId::parse(good).map(|id| id.to_string()), Some(good.to_string()));
        }
        for bad in ["", &"x".repeat(65), "a.b", "a:b", "{a}", "a b", "é", "a/b"] {
            assert_eq!(OutgoingPaymentId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn new_payments_are_checked_at_the_edges() {
        let now = from_millis(1_700_000_000_000);
        let ok = NewOutgoingPayment {
            id: OutgoingPaymentId::parse("pay-1").unwrap(),
            receiver: format!("$wallet.example/{}", "a".repeat(OUTGOING_RECEIVER_BYTES_MAX - 16)),
            amount: AMOUNT_MAX,
            kind: AmountKind::Source,
            slippage: format!("0.{}", "1".repeat(OUTGOING_SLIPPAGE_BYTES_MAX - 2)),
            deadline: now + Duration::from_secs(OUTGOING_PAYMENT_DEADLINE_S_MAX),
            source_max: None,
            probed: Some(ProbedRate { sent: AMOUNT_MAX, delivered: AMOUNT_MAX }),
        };
        assert_eq!(ok.check(now), Ok(()));
        let with = |change: &dyn Fn(&mut NewOutgoingPayment)| {
            let mut new = ok.clone();
            change(&mut new);
            new.check(now)
        };
        assert_eq!(with(&|n| n.amount = 1), Ok(()));
        assert_eq!(with(&|n| n.amount = 0), Err(InvalidOutgoing::AmountZero));
        assert_eq!(
            with(&|n| n.amount = AMOUNT_MAX + 1),
            Err(InvalidOutgoing::AmountTooLarge(AMOUNT_MAX + 1))
        );
        assert_eq!(with(&|n| n.receiver.clear()), Err(InvalidOutgoing::ReceiverEmpty));
        assert_eq!(with(&|n| n.receiver.push('a')), Err(InvalidOutgoing::ReceiverTooLong(1025)));
        for receiver in ["$a.example/b c", "g.a\n", "https://a.example/\u{7f}", "g.\u{a0}x"] {
            assert_eq!(
                with(&|n| n.receiver = receiver.into()),
                Err(InvalidOutgoing::ReceiverMalformed),
                "{receiver:?}"
            );
        }
        for receiver in ["g.us.bob", "https://wallet.example/.well-known/pay", "$wallet.example/ünï"] {
            assert_eq!(with(&|n| n.receiver = receiver.into()), Ok(()), "{receiver:?}");
        }
        for slippage in ["0", "0.0", "0.01", "0.999999", "0.10"] {
            assert_eq!(with(&|n| n.slippage = slippage.into()), Ok(()), "{slippage:?}");
        }
        for slippage in ["", "1", "1.0", "0.", ".5", "00.1", "0.1e2", "-0.1", "0,1", " 0.1", "0.1 ", "0x1"] {
            assert_eq!(
                with(&|n| n.slippage = slippage.into()),
                Err(InvalidOutgoing::SlippageMalformed),
                "{slippage:?}"
            );
        }
        assert_eq!(with(&|n| n.slippage.push('1')), Err(InvalidOutgoing::SlippageTooLong(33)));
        assert_eq!(with(&|n| n.deadline = now), Err(InvalidOutgoing::DeadlineNotAfterNow));
        assert_eq!(
            with(&|n| n.deadline = now + Duration::from_micros(999)),
            Err(InvalidOutgoing::DeadlineNotAfterNow),
            "within the same millisecond is not after"
        );
        assert_eq!(with(&|n| n.deadline = now + Duration::from_millis(1)), Ok(()));
        assert_eq!(with(&|n| n.deadline += Duration::from_millis(1)), Err(InvalidOutgoing::DeadlineTooFar));
        assert_eq!(with(&|n| n.source_max = Some(5)), Err(InvalidOutgoing::SourceMaxWithSource));
        let delivered = |source_max| {
            with(&|n| {
                n.kind = AmountKind::Delivered;
                n.source_max = source_max;
                n.probed = None;
            })
        };
        assert_eq!(delivered(Some(1)), Ok(()));
        assert_eq!(delivered(Some(AMOUNT_MAX)), Ok(()));
        assert_eq!(delivered(None), Err(InvalidOutgoing::SourceMaxMissing));
        assert_eq!(delivered(Some(0)), Err(InvalidOutgoing::SourceMaxZero));
        assert_eq!(delivered(Some(u64::MAX)), Err(InvalidOutgoing::SourceMaxTooLarge(u64::MAX)));
        let probed = |sent, delivered| with(&|n| n.probed = Some(ProbedRate { sent, delivered }));
        assert_eq!(probed(1, 1), Ok(()));
        for (sent, delivered) in [(0, 1), (1, 0), (AMOUNT_MAX + 1, 1), (1, AMOUNT_MAX + 1)] {
            assert_eq!(probed(sent, delivered), Err(InvalidOutgoing::ProbedOutOfRange), "{sent} {delivered}");
        }
        // A delivered amount probes the receiver's asset too: it is not paid from a rate alone.
        let delivered_probed = with(&|n| {
            n.kind = AmountKind::Delivered;
            n.source_max = Some(1);
            n.probed = Some(ProbedRate { sent: 1, delivered: 1 });
        });
        assert_eq!(delivered_probed, Err(InvalidOutgoing::ProbedWithDelivered));
        assert_eq!(InvalidOutgoing::ProbedOutOfRange.field(), "probed");
        assert_eq!(InvalidOutgoing::SourceMaxZero.field(), "source_max");
        assert_eq!(InvalidOutgoing::SlippageMalformed.field(), "slippage");
    }

    #[test]
    fn rejects_are_counted_by_ilp_code_or_as_other() {
        assert_eq!(reject_label(b"F08"), "F08");
        assert_eq!(reject_label(b"t04"), "t04");
        for odd in [b"F0 ", b"F\x00\x01", &[0xff, b'0', b'8'], b"F:8", b"{}1"] {
            assert_eq!(reject_label(odd), REJECTS_OTHER, "{odd:?}");
        }
    }

    #[test]
    fn stop_reasons_are_cut_at_a_character_boundary() {
        assert_eq!(stop_reason("done"), "done");
        let long = "é".repeat(200);
        let cut = stop_reason(&long);
        assert_eq!(cut.len(), OUTGOING_STOP_REASON_BYTES_MAX);
        let odd = format!("x{long}");
        assert_eq!(stop_reason(&odd).len(), OUTGOING_STOP_REASON_BYTES_MAX - 1);
        assert_eq!(retention_cutoff_ms(5), 0);
        assert_eq!(retention_cutoff_ms(OUTGOING_PAYMENT_RETENTION_S * 1000 + 7), 7);
    }
}
