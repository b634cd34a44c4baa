//! FSPIOP error codes (FSPIOP v1.1 § 7.6): four digits, the first naming the category (1
//! communication, 2 server, 3 client, 4 payer, 5 payee). Two mappings between them and ILP:
//!
//! - [`FspiopCode::from_ilp`]: the `statusCode` the node's backend answers the Connector with
//!   when the ILP leg of a Mojaloop → ILP transfer failed. The Connector turns it, with a
//!   `message`, into that FSPIOP error at the payer; without both, the payer hears nothing for 30 s.
//! - [`FspiopCode::to_ilp`]: the ILP code of a Mojaloop failure, for the ILP side's view of it.
//!
//! And one question every payer in the scheme must answer before it refunds anything:
//! [`FspiopCode::outcome`], whether the scheme refused (no money moved) or the outcome is unknown
//! (communication and server errors: the same transfer id is sent again, never a new one).

use crate::packet::{ErrorClass, ErrorCode};
use std::fmt;

/// A four-digit FSPIOP error code, 1000 to 5999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FspiopCode(u16);

/// What a Mojaloop failure says about the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// The scheme or the payee said no: nothing moved, the money may be given back.
    Refused,
    /// A communication or server error: the transfer may have been committed. Only sending the
    /// same transfer id again (the payee side refuses a duplicate) settles it.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an FSPIOP error code (four digits, 1000 to 5999)")]
pub struct CodeError(String);

impl FspiopCode {
    pub const COMMUNICATION_ERROR: FspiopCode = FspiopCode(1000);
    pub const DESTINATION_COMMUNICATION_ERROR: FspiopCode = FspiopCode(1001);
    pub const INTERNAL_SERVER_ERROR: FspiopCode = FspiopCode(2001);
    pub const SERVICE_UNAVAILABLE: FspiopCode = FspiopCode(2003);
    pub const SERVER_TIMED_OUT: FspiopCode = FspiopCode(2004);
    pub const UNKNOWN_URI: FspiopCode = FspiopCode(3002);
    pub const VALIDATION_ERROR: FspiopCode = FspiopCode(3100);
    pub const MODIFIED_REQUEST: FspiopCode = FspiopCode(3106);
    pub const DESTINATION_FSP_ERROR: FspiopCode = FspiopCode(3201);
    pub const PARTY_NOT_FOUND: FspiopCode = FspiopCode(3204);
    pub const QUOTE_EXPIRED: FspiopCode = FspiopCode(3302);
    pub const TRANSFER_EXPIRED: FspiopCode = FspiopCode(3303);
    pub const PAYER_INSUFFICIENT_LIQUIDITY: FspiopCode = FspiopCode(4001);
    pub const PAYEE_ERROR: FspiopCode = FspiopCode(5000);
    pub const PAYEE_INSUFFICIENT_LIQUIDITY: FspiopCode = FspiopCode(5001);
    pub const PAYEE_REJECTION: FspiopCode = FspiopCode(5100);
    pub const PAYEE_REJECTED_TRANSACTION: FspiopCode = FspiopCode(5104);
    pub const PAYEE_UNSUPPORTED_CURRENCY: FspiopCode = FspiopCode(5106);
    pub const PAYEE_LIMIT_ERROR: FspiopCode = FspiopCode(5200);

    /// Parses the code as the Connector writes it (`"3204"`).
    pub fn parse(text: &str) -> Result<FspiopCode, CodeError> {
        let refused = || CodeError(text.to_string());
        if text.len() != 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refused());
        }
        let code: u16 = text.parse().map_err(|_| refused())?;
        (1000..=5999).contains(&code).then_some(FspiopCode(code)).ok_or_else(refused)
    }

    pub fn value(self) -> u16 {
        self.0
    }

    /// The FSPIOP error for a Mojaloop → ILP transfer whose ILP payment ended with `code`. The
    /// node is the payee FSP: its receiver's refusals are the payee's, its network's trouble is
    /// a communication or server error (the transfer was not committed: the node answers only
    /// once the ILP side is done, one way or the other).
    pub fn from_ilp(code: ErrorCode) -> FspiopCode {
        match code {
            // The receiver's path is gone (it answered the party lookup earlier).
            ErrorCode::F02_UNREACHABLE => FspiopCode::DESTINATION_FSP_ERROR,
            // The receiver refused the money.
            ErrorCode::F06_UNEXPECTED_PAYMENT
            | ErrorCode::F07_CANNOT_RECEIVE
            | ErrorCode::F99_APPLICATION_ERROR => FspiopCode::PAYEE_REJECTED_TRANSACTION,
            // Too little arrived for the receiver (the rate moved past the quote's slippage).
            ErrorCode::F04_INSUFFICIENT_DESTINATION_AMOUNT | ErrorCode::R01_INSUFFICIENT_SOURCE_AMOUNT => {
                FspiopCode::PAYEE_ERROR
            }
            ErrorCode::F08_AMOUNT_TOO_LARGE => FspiopCode::PAYEE_LIMIT_ERROR,
            ErrorCode::T01_PEER_UNREACHABLE => FspiopCode::DESTINATION_COMMUNICATION_ERROR,
            ErrorCode::T02_PEER_BUSY | ErrorCode::T03_CONNECTOR_BUSY | ErrorCode::T05_RATE_LIMITED => {
                FspiopCode::SERVICE_UNAVAILABLE
            }
            ErrorCode::T04_INSUFFICIENT_LIQUIDITY => FspiopCode::PAYEE_INSUFFICIENT_LIQUIDITY,
            ErrorCode::R00_TRANSFER_TIMED_OUT | ErrorCode::R02_INSUFFICIENT_TIMEOUT => {
                FspiopCode::SERVER_TIMED_OUT
            }
            // Packets the node itself built wrong (F00, F01, F03, F05, F09), T00, T99 and codes
            // without a meaning of their own: the payee FSP's internal error.
            other => match other.class() {
                ErrorClass::Relative => FspiopCode::SERVER_TIMED_OUT,
                _ => FspiopCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The ILP code of a Mojaloop failure (`../shared/wire/mojaloop.md`'s mapping): unknown
    /// parties and currencies are unreachable, expiries are timeouts, liquidity is T04, the
    /// payee's other refusals are application errors.
    pub fn to_ilp(self) -> ErrorCode {
        match self.0 {
            3201 | 3204 | 5106 => ErrorCode::F02_UNREACHABLE,
            3302 | 3303 | 2004 => ErrorCode::R00_TRANSFER_TIMED_OUT,
            1000..=1999 => ErrorCode::T01_PEER_UNREACHABLE,
            2003 => ErrorCode::T03_CONNECTOR_BUSY,
            2000..=2999 => ErrorCode::T00_INTERNAL_ERROR,
            4001 | 5001 => ErrorCode::T04_INSUFFICIENT_LIQUIDITY,
            5200 => ErrorCode::F08_AMOUNT_TOO_LARGE,
            3000..=3999 => ErrorCode::F00_BAD_REQUEST,
            _ => ErrorCode::F99_APPLICATION_ERROR,
        }
    }

    /// Communication (1xxx) and server (2xxx) errors leave the outcome unknown; client (3xxx),
    /// payer (4xxx) and payee (5xxx) errors are the scheme's or the payee's refusal.
    pub fn outcome(self) -> FailureOutcome {
        match self.0 {
            1000..=2999 => FailureOutcome::Unknown,
            _ => FailureOutcome::Refused,
        }
    }
}

impl fmt::Display for FspiopCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_as_four_digits_in_range() {
        assert_eq!(FspiopCode::parse("3204"), Ok(FspiopCode::PARTY_NOT_FOUND));
        assert_eq!(FspiopCode::parse("1000").map(FspiopCode::value), Ok(1000));
        assert_eq!(FspiopCode::parse("5999").map(|c| c.to_string()), Ok("5999".into()));
        for bad in ["", "999", "0999", "6000", "12345", "32a4", "+320", " 320", "504"] {
            assert!(FspiopCode::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn every_ilp_outcome_has_an_fspiop_code_and_the_payee_s_refusals_stay_the_payee_s() {
        let cases = [
            (ErrorCode::F02_UNREACHABLE, 3201),
            (ErrorCode::F06_UNEXPECTED_PAYMENT, 5104),
            (ErrorCode::F07_CANNOT_RECEIVE, 5104),
            (ErrorCode::F99_APPLICATION_ERROR, 5104),
            (ErrorCode::F04_INSUFFICIENT_DESTINATION_AMOUNT, 5000),
            (ErrorCode::F08_AMOUNT_TOO_LARGE, 5200),
            (ErrorCode::F00_BAD_REQUEST, 2001),
            (ErrorCode::F05_WRONG_CONDITION, 2001),
            (ErrorCode::T00_INTERNAL_ERROR, 2001),
            (ErrorCode::T01_PEER_UNREACHABLE, 1001),
            (ErrorCode::T03_CONNECTOR_BUSY, 2003),
            (ErrorCode::T04_INSUFFICIENT_LIQUIDITY, 5001),
            (ErrorCode::T99_APPLICATION_ERROR, 2001),
            (ErrorCode::R00_TRANSFER_TIMED_OUT, 2004),
            (ErrorCode::R01_INSUFFICIENT_SOURCE_AMOUNT, 5000),
            (ErrorCode::R99_APPLICATION_ERROR, 2004),
            (ErrorCode::new(*b"F42"), 2001),
            (ErrorCode::new(*b"X00"), 2001),
        ];
        for (ilp, fspiop) in cases {
            assert_eq!(FspiopCode::from_ilp(ilp).value(), fspiop, "{ilp:?}");
        }
    }

    #[test]
    fn mojaloop_failures_map_to_ilp_as_the_wire_notes_say() {
        let cases = [
            (3204, ErrorCode::F02_UNREACHABLE),
            (3201, ErrorCode::F02_UNREACHABLE),
            (5106, ErrorCode::F02_UNREACHABLE),
            (3302, ErrorCode::R00_TRANSFER_TIMED_OUT),
            (3303, ErrorCode::R00_TRANSFER_TIMED_OUT),
            (2004, ErrorCode::R00_TRANSFER_TIMED_OUT),
            (1001, ErrorCode::T01_PEER_UNREACHABLE),
            (2001, ErrorCode::T00_INTERNAL_ERROR),
            (2003, ErrorCode::T03_CONNECTOR_BUSY),
            (4001, ErrorCode::T04_INSUFFICIENT_LIQUIDITY),
            (5001, ErrorCode::T04_INSUFFICIENT_LIQUIDITY),
            (5200, ErrorCode::F08_AMOUNT_TOO_LARGE),
            (3100, ErrorCode::F00_BAD_REQUEST),
            (5104, ErrorCode::F99_APPLICATION_ERROR),
            (4400, ErrorCode::F99_APPLICATION_ERROR),
        ];
        for (fspiop, ilp) in cases {
            assert_eq!(FspiopCode(fspiop).to_ilp(), ilp, "{fspiop}");
        }
    }

    #[test]
    fn only_the_scheme_s_refusals_allow_a_refund() {
        for unknown in [1000, 1001, 2001, 2003, 2004, 2999] {
            assert_eq!(FspiopCode(unknown).outcome(), FailureOutcome::Unknown, "{unknown}");
        }
        for refused in [3100, 3204, 3303, 4001, 5001, 5104, 5999] {
            assert_eq!(FspiopCode(refused).outcome(), FailureOutcome::Refused, "{refused}");
        }
    }
}
