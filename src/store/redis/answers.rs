//! What each script answers, read into one enum per script. The codes are the ones written in
//! each script's header. A code this binary does not know is `Unexpected`: the script and the
//! binary are out of step, and nothing is assumed about what the script did (the caller turns
//! it into [`StoreError::Corrupt`] with an error log: T00 for a packet, never retried), so a
//! mismatch can never tell a sender "insufficient liquidity".

use super::{parse_amount, parse_balance, Answer};
use crate::balance::Balance;
use crate::store::{OutgoingState, ReceiveRefusal, Reserved, StoreError};

/// `process_prepare.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Prepare {
    Debited(Balance),
    BelowMinimum(Balance),
    OutOfRange,
    Unexpected(Answer),
}

impl Prepare {
    pub(super) fn read(answer: Answer, account: &str) -> Result<Self, StoreError> {
        Ok(match answer.0 {
            1 => Prepare::Debited(parse_balance(&answer.1, account)?),
            0 => Prepare::BelowMinimum(parse_balance(&answer.1, account)?),
            // The script says "out of range" whenever DECRBY fails, which it also does on a
            // balance that is not an integer: that is corrupt data (T00), never T04.
            2 => {
                parse_balance(&answer.1, account)?;
                Prepare::OutOfRange
            }
            _ => Prepare::Unexpected(answer),
        })
    }
}

/// `process_fulfill_source.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Commit {
    Committed,
    /// The sweeper had released the reservation: charged again, once.
    ChargedAgain,
    /// Already committed or charged again: nothing changed.
    Already,
    /// It could not be charged again (int64 range).
    OutOfRange,
    Unexpected(Answer),
}

impl Commit {
    pub(super) fn read(answer: Answer) -> Self {
        match answer.0 {
            1 => Commit::Committed,
            3 => Commit::ChargedAgain,
            4 => Commit::Already,
            2 => Commit::OutOfRange,
            _ => Commit::Unexpected(answer),
        }
    }
}

/// `process_reject.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Release {
    Released(Balance),
    /// Already released or committed, or never reserved for that amount.
    Nothing,
    /// The balance would leave the int64 range: the reservation is kept for the sweeper.
    OutOfRange,
    Unexpected(Answer),
}

impl Release {
    pub(super) fn read(answer: Answer, account: &str) -> Result<Self, StoreError> {
        Ok(match answer.0 {
            1 => Release::Released(parse_balance(&answer.1, account)?),
            0 => Release::Nothing,
            2 => {
                parse_balance(&answer.1, account)?;
                Release::OutOfRange
            }
            _ => Release::Unexpected(answer),
        })
    }
}

/// `process_fulfill_destination.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Credit {
    Credited(Balance),
    OutOfRange,
    Unexpected(Answer),
}

impl Credit {
    pub(super) fn read(answer: Answer, account: &str) -> Result<Self, StoreError> {
        Ok(match answer.0 {
            1 => Credit::Credited(parse_balance(&answer.1, account)?),
            2 => Credit::OutOfRange,
            _ => Credit::Unexpected(answer),
        })
    }
}

/// `process_fulfill_destination_again.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum CreditAgain {
    /// Credited now, or found credited by the earlier attempt (its marker).
    Credited(Balance),
    OutOfRange,
    Unexpected(Answer),
}

impl CreditAgain {
    pub(super) fn read(answer: Answer, account: &str) -> Result<Self, StoreError> {
        Ok(match answer.0 {
            1 | 4 => CreditAgain::Credited(parse_balance(&answer.1, account)?),
            2 => {
                parse_balance(&answer.1, account)?;
                CreditAgain::OutOfRange
            }
            _ => CreditAgain::Unexpected(answer),
        })
    }
}

/// `settlement_begin.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Begin {
    Begun(u64),
    NotAbove,
    /// settle_to above the threshold: refused, nothing changed.
    SettleToAboveThreshold,
    Unexpected(Answer),
}

impl Begin {
    pub(super) fn read(answer: Answer, account: &str) -> Result<Self, StoreError> {
        Ok(match answer.0 {
            1 => Begin::Begun(parse_amount(&answer.1, account)?),
            0 => Begin::NotAbove,
            3 => Begin::SettleToAboveThreshold,
            _ => Begin::Unexpected(answer),
        })
    }
}

/// `settlement_finish.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Finish {
    Finished(u64),
    NotPending,
    /// The refund would leave the int64 range: still pending.
    OutOfRange,
    /// The pending record is malformed (left as it is).
    Malformed(String),
    Unexpected(Answer),
}

impl Finish {
    pub(super) fn read(answer: Answer, account: &str) -> Result<Self, StoreError> {
        Ok(match answer.0 {
            1 => Finish::Finished(parse_amount(&answer.1, account)?),
            0 => Finish::NotPending,
            2 => Finish::OutOfRange,
            3 => Finish::Malformed(answer.1),
            _ => Finish::Unexpected(answer),
        })
    }
}

/// `settlement_incoming.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Incoming {
    Credited,
    /// The key was seen with the same request: nothing changed; what it credited then.
    Repeated(u64),
    KeyReused,
    /// The leftover changed meanwhile: compute again.
    LeftoverChanged,
    OutOfRange,
    Unexpected(Answer),
}

impl Incoming {
    pub(super) fn read(answer: Answer, account: &str) -> Result<Self, StoreError> {
        Ok(match answer.0 {
            1 => Incoming::Credited,
            3 => Incoming::Repeated(parse_amount(&answer.1, account)?),
            4 => Incoming::KeyReused,
            5 => Incoming::LeftoverChanged,
            2 => Incoming::OutOfRange,
            _ => Incoming::Unexpected(answer),
        })
    }
}

/// `incoming_create.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum IncomingCreate {
    Created,
    /// The id is taken: the stored payment's fields, unchanged.
    Exists(Vec<(String, String)>),
    Unexpected(Answer),
}

impl IncomingCreate {
    pub(super) fn read((code, fields): (i64, Vec<(String, String)>)) -> Self {
        match code {
            1 => IncomingCreate::Created,
            0 => IncomingCreate::Exists(fields),
            _ => IncomingCreate::Unexpected((code, format!("{fields:?}"))),
        }
    }
}

/// What `incoming_receive.lua` answers: its code, the balance, the payment's total, its target.
pub(super) type ReceiveAnswer = (i64, String, String, String);

/// `incoming_receive.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum IncomingReceive {
    Credited {
        balance: Balance,
        received: Option<u64>,
        completed: bool,
    },
    Repeated {
        received: Option<u64>,
    },
    Refused(ReceiveRefusal),
    /// The balance, or the total of a payment without a target, would leave the int64 range.
    OutOfRange,
    /// The payment's record holds `field` = `value`, which no script writes.
    Malformed {
        field: String,
        value: String,
    },
    Unexpected(Answer),
}

impl IncomingReceive {
    pub(super) fn read(answer: ReceiveAnswer, account: &str) -> Result<Self, StoreError> {
        let (code, balance, received, target) = answer;
        let total = |text: &str| parse_amount(text, account);
        // A total where the script gives one with a payment, '' without.
        let total_if_any = |text: &str| if text.is_empty() { Ok(None) } else { total(text).map(Some) };
        Ok(match code {
            1 | 6 => IncomingReceive::Credited {
                balance: parse_balance(&balance, account)?,
                received: total_if_any(&received)?,
                completed: code == 6,
            },
            4 => IncomingReceive::Repeated { received: total_if_any(&received)? },
            2 | 3 => IncomingReceive::OutOfRange,
            10 => IncomingReceive::Refused(ReceiveRefusal::UnknownPayment),
            14 => IncomingReceive::Refused(ReceiveRefusal::Replayed),
            11 => IncomingReceive::Refused(ReceiveRefusal::Completed { received: total(&received)? }),
            12 => IncomingReceive::Refused(ReceiveRefusal::Expired { received: total(&received)? }),
            13 => IncomingReceive::Refused(ReceiveRefusal::OverTarget {
                received: total(&received)?,
                target: total(&target)?,
            }),
            7 => IncomingReceive::Malformed { field: received, value: target },
            _ => IncomingReceive::Unexpected((code, format!("{balance} {received} {target}"))),
        })
    }
}

/// `incoming_handled.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum IncomingHandled {
    Handled,
    NotPending,
    /// In the outbox, but its record is not a completed payment (its state).
    Malformed(String),
    Unexpected(Answer),
}

impl IncomingHandled {
    pub(super) fn read(answer: Answer) -> Self {
        match answer.0 {
            1 => IncomingHandled::Handled,
            0 => IncomingHandled::NotPending,
            3 => IncomingHandled::Malformed(answer.1),
            _ => IncomingHandled::Unexpected(answer),
        }
    }
}

/// What the outgoing payments' scripts that answer with a record answer: their code and fields
/// (`HGETALL`'s pairs; for a malformed record, one pair: the field and its value).
pub(super) type FieldsAnswer = (i64, Vec<(String, String)>);

/// `outgoing_create.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OutgoingCreate {
    Created,
    /// The id is taken: the stored payment's fields, unchanged.
    Exists(Vec<(String, String)>),
    Unexpected(Answer),
}

impl OutgoingCreate {
    pub(super) fn read((code, fields): FieldsAnswer) -> Self {
        match code {
            1 => OutgoingCreate::Created,
            0 => OutgoingCreate::Exists(fields),
            _ => OutgoingCreate::Unexpected((code, format!("{fields:?}"))),
        }
    }
}

/// `outgoing_claim.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OutgoingClaim {
    /// Taken: the payment's fields after.
    Claimed(Vec<(String, String)>),
    NotTaken,
    /// The record holds a field no script writes (the field and its value): nothing changed.
    Malformed(String),
    Unexpected(Answer),
}

impl OutgoingClaim {
    pub(super) fn read((code, fields): FieldsAnswer) -> Self {
        match (code, fields.as_slice()) {
            (1, _) => OutgoingClaim::Claimed(fields),
            (0, []) => OutgoingClaim::NotTaken,
            (7, [(field, value)]) => OutgoingClaim::Malformed(format!("{field} {value:?}")),
            _ => OutgoingClaim::Unexpected((code, format!("{fields:?}"))),
        }
    }
}

/// `outgoing_connection.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OutgoingConnection {
    /// The connection kept: its destination and its secret (as the script keeps it, hex).
    Kept(String, String),
    NotOwner,
    Unexpected(Answer),
}

impl OutgoingConnection {
    pub(super) fn read((code, fields): FieldsAnswer) -> Self {
        match (code, fields.as_slice()) {
            (1, [(destination, secret)]) => OutgoingConnection::Kept(destination.clone(), secret.clone()),
            (0, []) => OutgoingConnection::NotOwner,
            _ => OutgoingConnection::Unexpected((code, format!("{fields:?}"))),
        }
    }
}

/// `outgoing_reserve.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OutgoingReserve {
    /// Every business outcome, as the store answers it.
    Answer(Reserved),
    /// The record holds a field no script writes: nothing reserved.
    Malformed(String),
    Unexpected(Answer),
}

impl OutgoingReserve {
    pub(super) fn read(answer: Answer, account: &str) -> Result<Self, StoreError> {
        let reserved = match answer.0 {
            1 => Reserved::Reserved,
            0 => Reserved::NotOwner,
            2 => match answer.1.as_str() {
                "completed" => Reserved::NotSending(OutgoingState::Completed),
                "failed" => Reserved::NotSending(OutgoingState::Failed),
                _ => return Ok(OutgoingReserve::Unexpected(answer)),
            },
            3 => Reserved::OverLimit { room: parse_amount(&answer.1, account)? },
            4 => Reserved::OverDelivered { room: parse_amount(&answer.1, account)? },
            5 => Reserved::PacketTaken,
            6 => Reserved::TooManyPackets,
            7 => return Ok(OutgoingReserve::Malformed(answer.1)),
            _ => return Ok(OutgoingReserve::Unexpected(answer)),
        };
        Ok(OutgoingReserve::Answer(reserved))
    }
}

/// `outgoing_record.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OutgoingRecord {
    Recorded,
    /// Already recorded, never reserved, or the payment is unknown.
    Nothing,
    /// The delivered total would leave the int64 range: nothing changed.
    OutOfRange,
    Malformed(String),
    Unexpected(Answer),
}

impl OutgoingRecord {
    pub(super) fn read(answer: Answer) -> Self {
        match answer.0 {
            1 => OutgoingRecord::Recorded,
            0 => OutgoingRecord::Nothing,
            2 => OutgoingRecord::OutOfRange,
            7 => OutgoingRecord::Malformed(answer.1),
            _ => OutgoingRecord::Unexpected(answer),
        }
    }
}

/// `outgoing_finish.lua`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OutgoingFinish {
    Finished,
    /// Not the lease holder, not sending, or unknown.
    NotFinished,
    Malformed(String),
    Unexpected(Answer),
}

impl OutgoingFinish {
    pub(super) fn read(answer: Answer) -> Self {
        match answer.0 {
            1 => OutgoingFinish::Finished,
            0 => OutgoingFinish::NotFinished,
            7 => OutgoingFinish::Malformed(answer.1),
            _ => OutgoingFinish::Unexpected(answer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_are_unexpected_never_a_business_outcome() {
        let odd = || (9, "12".to_string());
        assert_eq!(Prepare::read(odd(), "a"), Ok(Prepare::Unexpected(odd())));
        assert_eq!(Commit::read(odd()), Commit::Unexpected(odd()));
        assert_eq!(Release::read(odd(), "a"), Ok(Release::Unexpected(odd())));
        assert_eq!(Credit::read(odd(), "a"), Ok(Credit::Unexpected(odd())));
        assert_eq!(CreditAgain::read(odd(), "a"), Ok(CreditAgain::Unexpected(odd())));
        assert_eq!(Begin::read(odd(), "a"), Ok(Begin::Unexpected(odd())));
        assert_eq!(Finish::read(odd(), "a"), Ok(Finish::Unexpected(odd())));
        assert_eq!(Incoming::read(odd(), "a"), Ok(Incoming::Unexpected(odd())));
        assert_eq!(Prepare::read((2, "5".into()), "a"), Ok(Prepare::OutOfRange));
        assert!(matches!(IncomingCreate::read((9, Vec::new())), IncomingCreate::Unexpected((9, _))));
        let receive = IncomingReceive::read((9, "12".into(), "3".into(), String::new()), "a");
        assert!(matches!(receive, Ok(IncomingReceive::Unexpected((9, _)))), "{receive:?}");
        assert_eq!(IncomingHandled::read(odd()), IncomingHandled::Unexpected(odd()));
    }

    #[test]
    fn receive_answers_read_exactly() {
        let answer = |code: i64, balance: &str, received: &str, target: &str| {
            IncomingReceive::read((code, balance.into(), received.into(), target.into()), "a")
        };
        let big = "9007199254740993";
        assert_eq!(
            answer(6, "-5", big, ""),
            Ok(IncomingReceive::Credited { balance: -5, received: Some((1 << 53) + 1), completed: true })
        );
        assert_eq!(
            answer(1, "7", "", ""),
            Ok(IncomingReceive::Credited { balance: 7, received: None, completed: false })
        );
        assert_eq!(answer(4, "", "", ""), Ok(IncomingReceive::Repeated { received: None }));
        assert_eq!(
            answer(13, "", "90", big),
            Ok(IncomingReceive::Refused(ReceiveRefusal::OverTarget { received: 90, target: (1 << 53) + 1 }))
        );
        assert_eq!(answer(10, "", "", ""), Ok(IncomingReceive::Refused(ReceiveRefusal::UnknownPayment)));
        assert_eq!(
            answer(7, "", "state", "odd"),
            Ok(IncomingReceive::Malformed { field: "state".into(), value: "odd".into() })
        );
        // A total that is not a count is corrupt, never a business outcome.
        assert!(matches!(answer(11, "", "", ""), Err(StoreError::Corrupt(_))));
        assert!(matches!(answer(12, "", "-1", ""), Err(StoreError::Corrupt(_))));
        assert!(matches!(answer(1, "x", "1", ""), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn outgoing_answers_read_exactly_and_unknown_codes_are_unexpected() {
        let odd = || (9, "12".to_string());
        let pairs = |items: &[(&str, &str)]| -> Vec<(String, String)> {
            items.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
        };
        assert!(matches!(OutgoingCreate::read((9, Vec::new())), OutgoingCreate::Unexpected((9, _))));
        assert_eq!(OutgoingCreate::read((1, Vec::new())), OutgoingCreate::Created);
        assert!(matches!(OutgoingClaim::read((9, Vec::new())), OutgoingClaim::Unexpected((9, _))));
        assert!(matches!(OutgoingClaim::read((0, pairs(&[("a", "b")]))), OutgoingClaim::Unexpected((0, _))));
        assert_eq!(
            OutgoingClaim::read((7, pairs(&[("state", "paused")]))),
            OutgoingClaim::Malformed("state \"paused\"".into())
        );
        assert_eq!(
            OutgoingConnection::read((1, pairs(&[("g.x", "ab")]))),
            OutgoingConnection::Kept("g.x".into(), "ab".into())
        );
        assert!(matches!(OutgoingConnection::read((1, Vec::new())), OutgoingConnection::Unexpected((1, _))));
        assert!(matches!(OutgoingConnection::read((9, Vec::new())), OutgoingConnection::Unexpected((9, _))));
        assert_eq!(OutgoingReserve::read(odd(), "a"), Ok(OutgoingReserve::Unexpected(odd())));
        assert_eq!(
            OutgoingReserve::read((2, "sending".into()), "a"),
            Ok(OutgoingReserve::Unexpected((2, "sending".into())))
        );
        assert_eq!(
            OutgoingReserve::read((2, "failed".into()), "a"),
            Ok(OutgoingReserve::Answer(Reserved::NotSending(OutgoingState::Failed)))
        );
        let big = "9223372036854775807";
        assert_eq!(
            OutgoingReserve::read((3, big.into()), "a"),
            Ok(OutgoingReserve::Answer(Reserved::OverLimit { room: i64::MAX as u64 }))
        );
        assert_eq!(
            OutgoingReserve::read((4, "9007199254740993".into()), "a"),
            Ok(OutgoingReserve::Answer(Reserved::OverDelivered { room: (1 << 53) + 1 }))
        );
        // A room that is not a count is corrupt, never a business outcome.
        assert!(matches!(OutgoingReserve::read((3, "-1".into()), "a"), Err(StoreError::Corrupt(_))));
        assert!(matches!(OutgoingReserve::read((4, "".into()), "a"), Err(StoreError::Corrupt(_))));
        assert_eq!(OutgoingRecord::read(odd()), OutgoingRecord::Unexpected(odd()));
        assert_eq!(OutgoingRecord::read((2, String::new())), OutgoingRecord::OutOfRange);
        assert_eq!(OutgoingFinish::read(odd()), OutgoingFinish::Unexpected(odd()));
        assert_eq!(OutgoingFinish::read((0, String::new())), OutgoingFinish::NotFinished);
    }

    #[test]
    fn unreadable_values_are_corrupt() {
        let bad = (1, "1.5".to_string());
        assert!(matches!(Prepare::read(bad.clone(), "a"), Err(StoreError::Corrupt(_))));
        assert!(matches!(Begin::read(bad.clone(), "a"), Err(StoreError::Corrupt(_))));
        assert!(matches!(Credit::read(bad, "a"), Err(StoreError::Corrupt(_))));
        // "Out of range" from a balance that is not a number is corrupt data, not a refusal.
        assert!(matches!(Prepare::read((2, "abc".into()), "a"), Err(StoreError::Corrupt(_))));
        assert!(matches!(Release::read((2, "abc".into()), "a"), Err(StoreError::Corrupt(_))));
    }
}
