//! The one mapping from the node's own refusals to ILP Reject codes (RFC 0027).
//!
//! Everything the node itself refuses is a [`Refusal`]; downstream Rejects are relayed unchanged
//! and never pass through here. A store outage is T00 (try again), never T04: the sender must not
//! conclude it lacks liquidity because our database blinked.

use crate::packet::{amount_too_large_data, ErrorCode, IlpAddress, Reject};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("packet expired")]
    Expired,
    #[error("amount {received} exceeds the maximum packet amount {maximum}")]
    AmountTooLarge { received: u64, maximum: u64 },
    #[error("no route to {0}")]
    NoRoute(String),
    #[error("{0}")]
    Unreachable(&'static str),
    #[error("{0}")]
    NoRate(&'static str),
    #[error("amount rounds to zero at the next hop")]
    RoundsToZero,
    #[error("insufficient time left to forward the packet")]
    InsufficientTimeout,
    #[error("insufficient liquidity")]
    InsufficientLiquidity,
    #[error("fulfillment does not match the condition")]
    WrongCondition,
    #[error("next hop unreachable: {0}")]
    PeerUnreachable(String),
    #[error("next hop did not answer before the packet expired")]
    PeerTimedOut,
    #[error("next hop sent an invalid response: {0}")]
    InvalidPeerResponse(String),
    #[error("connector busy")]
    Busy,
    #[error("internal error")]
    Internal,
    #[error("node is shutting down")]
    ShuttingDown,
    /// The packet is malformed for what it asks (e.g. a peer protocol Prepare carrying money).
    #[error("{0}")]
    BadRequest(&'static str),
}

impl Refusal {
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::Expired | Refusal::PeerTimedOut => ErrorCode::R00_TRANSFER_TIMED_OUT,
            Refusal::AmountTooLarge { .. } => ErrorCode::F08_AMOUNT_TOO_LARGE,
            Refusal::NoRoute(_) | Refusal::Unreachable(_) | Refusal::NoRate(_) => ErrorCode::F02_UNREACHABLE,
            Refusal::RoundsToZero => ErrorCode::R01_INSUFFICIENT_SOURCE_AMOUNT,
            Refusal::InsufficientTimeout => ErrorCode::R02_INSUFFICIENT_TIMEOUT,
            Refusal::InsufficientLiquidity => ErrorCode::T04_INSUFFICIENT_LIQUIDITY,
            Refusal::WrongCondition => ErrorCode::F05_WRONG_CONDITION,
            Refusal::PeerUnreachable(_) => ErrorCode::T01_PEER_UNREACHABLE,
            Refusal::InvalidPeerResponse(_) => ErrorCode::F09_INVALID_PEER_RESPONSE,
            Refusal::Busy => ErrorCode::T03_CONNECTOR_BUSY,
            Refusal::Internal | Refusal::ShuttingDown => ErrorCode::T00_INTERNAL_ERROR,
            Refusal::BadRequest(_) => ErrorCode::F00_BAD_REQUEST,
        }
    }

    /// RFC 0027 data: F08 carries the received and maximum amounts; others carry nothing.
    fn data(&self) -> Vec<u8> {
        match self {
            Refusal::AmountTooLarge { received, maximum } => {
                amount_too_large_data(*received, *maximum).to_vec()
            }
            _ => Vec::new(),
        }
    }

    /// The Reject this node sends for this refusal, naming itself in `triggered_by`.
    pub fn to_reject(&self, node: &IlpAddress) -> Reject {
        Reject::build(self.code(), node, &self.to_string(), &self.data())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amount_too_large_carries_both_amounts() {
        let node = IlpAddress::parse("test.node").unwrap();
        let r = Refusal::AmountTooLarge { received: 500, maximum: 100 }.to_reject(&node);
        assert_eq!(r.code(), ErrorCode::F08_AMOUNT_TOO_LARGE);
        assert_eq!(r.data(), &amount_too_large_data(500, 100));
        assert_eq!(r.triggered_by(), "test.node");
    }

    #[test]
    fn store_trouble_is_never_t04() {
        assert_eq!(Refusal::Internal.code(), ErrorCode::T00_INTERNAL_ERROR);
        assert_ne!(Refusal::Internal.code(), Refusal::InsufficientLiquidity.code());
    }
}
