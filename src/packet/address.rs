//! ILP addresses (RFC 0015), validated without a regex so that the check is cheap enough for
//! every packet and cannot be fooled by non-ASCII input.

use std::fmt;
use std::sync::Arc;

/// RFC 0015: an address is at most 1023 bytes.
pub const ADDRESS_BYTES_MAX: usize = 1023;

/// The allocation schemes RFC 0015 allows as the first segment.
const SCHEMES: [&str; 9] = ["g", "private", "example", "peer", "self", "test", "test1", "test2", "test3"];
/// `local` is in the grammar too (RFC 0015 "local" scheme).
const SCHEME_LOCAL: &str = "local";

/// Why a byte string is not an ILP address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address is {0} bytes, more than the 1023 allowed")]
    TooLong(usize),
    #[error(
        "address does not start with a known scheme (g, private, example, peer, self, test, test1-3, local)"
    )]
    Scheme,
    #[error("address needs at least one segment after the scheme")]
    NoSegment,
    #[error("address has an empty segment")]
    EmptySegment,
    #[error("address segments may hold only a-z A-Z 0-9 _ ~ -")]
    Character,
}

/// Checks `bytes` against the RFC 0015 grammar:
/// `scheme ("." segment)+` where a segment is one or more of `[a-zA-Z0-9_~-]`.
pub fn validate_address(bytes: &[u8]) -> Result<(), AddressError> {
    if bytes.is_empty() {
        return Err(AddressError::Empty);
    }
    if bytes.len() > ADDRESS_BYTES_MAX {
        return Err(AddressError::TooLong(bytes.len()));
    }
    let mut segments = bytes.split(|b| *b == b'.');
    let scheme = segments.next().unwrap_or_default();
    let known = SCHEMES.iter().any(|s| s.as_bytes() == scheme) || scheme == SCHEME_LOCAL.as_bytes();
    if !known {
        return Err(AddressError::Scheme);
    }
    let mut count = 0;
    for segment in segments {
        count += 1;
        if segment.is_empty() {
            return Err(AddressError::EmptySegment);
        }
        if !segment.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'~' | b'-')) {
            return Err(AddressError::Character);
        }
    }
    if count == 0 {
        return Err(AddressError::NoSegment);
    }
    Ok(())
}

/// A valid ILP address. Cheap to clone (shared string). It also keeps the codec's own address
/// type, built once, because the codec re-validates with a regex every time one is made.
#[derive(Clone)]
pub struct IlpAddress(Arc<str>, interledger_packet::Address);

impl PartialEq for IlpAddress {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for IlpAddress {}
impl std::hash::Hash for IlpAddress {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl IlpAddress {
    /// Parses and validates an address.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        validate_address(s.as_bytes())?;
        // Our grammar check is the codec's regex, so the codec accepts what we accepted.
        let wire =
            interledger_packet::Address::try_from(s.as_bytes()).map_err(|_| AddressError::Character)?;
        Ok(IlpAddress(Arc::from(s), wire))
    }

    /// The codec's form, for building packets.
    pub(crate) fn wire(&self) -> &interledger_packet::Address {
        &self.1
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self.segment`: the address of a child or sub-account under this one.
    pub fn with_suffix(&self, segment: &str) -> Result<Self, AddressError> {
        Self::parse(&format!("{}.{}", self.0, segment))
    }
}

/// True when `address` equals `prefix` or lies under it on a segment boundary (`g.alice.x` is
/// under `g.alice`; `g.alicebob` is not). Shared by routing and classification.
pub fn is_under(address: &str, prefix: &str) -> bool {
    address == prefix
        || (address.len() > prefix.len()
            && address.starts_with(prefix)
            && address.as_bytes()[prefix.len()] == b'.')
}

impl fmt::Display for IlpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IlpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IlpAddress({})", self.0)
    }
}

impl std::str::FromStr for IlpAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_rfc_examples() {
        for a in
            ["g.acme.bob", "test.thitsax", "peer.config", "private.a_b~c-d", "test3.x", "local.1", "self.me"]
        {
            assert!(validate_address(a.as_bytes()).is_ok(), "{a}");
        }
    }

    #[test]
    fn rejects_what_the_grammar_forbids() {
        assert_eq!(validate_address(b""), Err(AddressError::Empty));
        assert_eq!(validate_address(b"g"), Err(AddressError::NoSegment));
        assert_eq!(validate_address(b"g."), Err(AddressError::EmptySegment));
        assert_eq!(validate_address(b"g..a"), Err(AddressError::EmptySegment));
        assert_eq!(validate_address(b"x.a"), Err(AddressError::Scheme));
        assert_eq!(validate_address(b"test4.a"), Err(AddressError::Scheme));
        assert_eq!(validate_address(b"g.a b"), Err(AddressError::Character));
        assert_eq!(validate_address("g.caf\u{e9}".as_bytes()), Err(AddressError::Character));
        let long = format!("g.{}", "a".repeat(1022));
        assert_eq!(validate_address(long.as_bytes()), Err(AddressError::TooLong(1024)));
        let max = format!("g.{}", "a".repeat(1021));
        assert!(validate_address(max.as_bytes()).is_ok());
    }

    #[test]
    fn prefix_matches_whole_segments_only() {
        assert!(is_under("g.alice", "g.alice"));
        assert!(is_under("g.alice.x", "g.alice"));
        assert!(!is_under("g.alicebob", "g.alice"));
        assert!(!is_under("g.ali", "g.alice"));
    }
}
