//! Payouts: money that arrived over Interledger for a party of another network (a Mojaloop
//! party), paid out there from the local account that received it. A payout is created once per
//! id (the incoming payment's), taking its amount off the account in the same step; it is then
//! driven under a lease (one caller at a time, on any instance) with the other network's own id
//! for the attempt kept before money can move under it; it ends paid, or failed with its money
//! still held for an operator, who pays it again (a new attempt) or refunds it to the account.

use super::StoreError;
use std::time::SystemTime;

/// How long a paid or refunded payout stays readable (open ones stay until they end).
pub const PAYOUT_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// Longest reason kept for a failed attempt.
pub const PAYOUT_ERROR_BYTES_MAX: usize = 512;

/// A payout to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayout {
    /// 1 ..= 64 bytes of `[A-Za-z0-9_~-]` (an incoming payment's id).
    pub id: String,
    /// The party paid: FSPIOP `idType`, `idValue`, and its DFSP when known.
    pub id_type: String,
    pub id_value: String,
    pub fsp_id: Option<String>,
    pub currency: String,
    /// In the account's scale, at least 1.
    pub amount: u64,
}

impl NewPayout {
    /// What every store checks before writing: an id, an amount of 1 ..= [`AMOUNT_MAX`], fields
    /// without the characters a record or a log line would misread.
    ///
    /// [`AMOUNT_MAX`]: crate::balance::AMOUNT_MAX
    pub fn check(&self) -> Result<(), StoreError> {
        let plain =
            |s: &str| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic() && b != b'|');
        let problem = if !payout_id_ok(&self.id) {
            Some("the payout id must be 1 to 64 of [A-Za-z0-9_~-]")
        } else if self.amount == 0 || self.amount > crate::balance::AMOUNT_MAX {
            Some("the amount must be 1 ..= the int64 maximum")
        } else if ![&self.id_type, &self.id_value, &self.currency].iter().all(|s| plain(s))
            || self.fsp_id.as_deref().is_some_and(|f| !plain(f))
        {
            Some("the party and currency must be printable ASCII")
        } else {
            None
        };
        problem.map_or(Ok(()), |p| Err(StoreError::InvalidPayout(p.into())))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayoutState {
    /// To be paid (its lease holder is paying it, or will).
    Pending,
    Paid,
    /// The last attempt was refused for good: its money is still held by the payout.
    Failed,
    /// An operator gave its money back to the account.
    Refunded,
}

impl PayoutState {
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutState::Pending => "pending",
            PayoutState::Paid => "paid",
            PayoutState::Failed => "failed",
            PayoutState::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Option<PayoutState> {
        [PayoutState::Pending, PayoutState::Paid, PayoutState::Failed, PayoutState::Refunded]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A payout as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    pub id: String,
    pub account: String,
    pub id_type: String,
    pub id_value: String,
    pub fsp_id: Option<String>,
    pub currency: String,
    pub amount: u64,
    pub state: PayoutState,
    /// Attempts begun: 1 at creation, one more for each operator's retry.
    pub attempt: u32,
    /// The other network's id of the current attempt, once kept (a Mojaloop `transferId`).
    pub reference: Option<String>,
    /// The references of earlier attempts, oldest first (each refused for good).
    pub earlier_references: Vec<String>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

/// What [`Store::create_payout`](super::Store::create_payout) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreatedPayout {
    Created(Payout),
    /// The id is taken: the stored payout, unchanged.
    Exists(Payout),
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayoutEnd {
    Paid,
    /// Refused for good, with the reason; the money stays with the payout.
    Failed(String),
}

/// What an operator does with a failed payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayoutAction {
    /// A new attempt (a new transfer: the last one was refused, so nothing moved under it).
    Retry,
    /// Its money goes back to the account; the payout ends.
    Refund,
}

/// Why an operator's action was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayoutActionRefused {
    Unknown,
    /// Only a failed payout is retried or refunded.
    NotFailed(Box<Payout>),
}

/// Whether `id` is a payout id.
pub fn payout_id_ok(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'~' | b'-'))
}

/// The reason as kept: cut to [`PAYOUT_ERROR_BYTES_MAX`] at a character boundary.
pub(crate) fn kept_error(reason: &str) -> String {
    let mut end = reason.len().min(PAYOUT_ERROR_BYTES_MAX);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}
