//! The OER pieces STREAM is made of (RFC 0030): `UInt8`, `VarUInt` and var-octet strings, read
//! from untrusted bytes without panicking and written in their canonical form.
//!
//! Length prefixes are read by [`crate::packet::read_var_octets`], the same canonical-length rules
//! as ILP packets (which is also what `oer-utils`, under the JS reference, enforces). A `VarUInt`'s
//! own bytes may carry leading zeros, as the JS reference accepts them; they are written without.

use crate::packet::{read_var_octets, write_var_octets, PacketError};

/// The most bytes a `VarUInt` may have to fit a `u64`. RFC 0029 § 5.1.4 lets implementations
/// refuse larger ones, except where a field saturates ([`Reader::var_uint_saturating`]).
const VAR_UINT_BYTES_MAX: usize = 8;

/// Why a field could not be read. The caller says which part of the packet it was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("truncated")]
    Truncated,
    #[error("length prefix is malformed or not canonical")]
    Length,
    #[error("VarUInt of {0} bytes: none, or more than the 8 of a u64")]
    VarUInt(usize),
}

impl From<PacketError> for FieldError {
    fn from(e: PacketError) -> Self {
        match e {
            PacketError::Truncated | PacketError::Empty => FieldError::Truncated,
            _ => FieldError::Length,
        }
    }
}

/// A cursor over untrusted bytes: every read is bounds-checked and advances only on success.
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// Bytes not yet read.
    pub(super) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(super) fn u8(&mut self) -> Result<u8, FieldError> {
        let (&first, rest) = self.rest.split_first().ok_or(FieldError::Truncated)?;
        self.rest = rest;
        Ok(first)
    }

    pub(super) fn var_octets(&mut self) -> Result<&'a [u8], FieldError> {
        let (value, rest) = read_var_octets(self.rest)?;
        self.rest = rest;
        Ok(value)
    }

    /// A `VarUInt` of 1 to 8 bytes.
    pub(super) fn var_uint(&mut self) -> Result<u64, FieldError> {
        let bytes = self.var_octets()?;
        if bytes.is_empty() || bytes.len() > VAR_UINT_BYTES_MAX {
            return Err(FieldError::VarUInt(bytes.len()));
        }
        Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// A `VarUInt` that reads as `u64::MAX` when it has more than 8 bytes (RFC 0029 § 5.1.4, for
    /// `StreamMaxMoney.receive_max` and `StreamMoneyBlocked.send_max`). Like the JS reference, the
    /// length alone decides: nine bytes saturate even if the first is zero.
    pub(super) fn var_uint_saturating(&mut self) -> Result<u64, FieldError> {
        let mut ahead = Reader { rest: self.rest };
        let bytes = ahead.var_octets()?;
        if bytes.len() > VAR_UINT_BYTES_MAX {
            self.rest = ahead.rest;
            return Ok(u64::MAX);
        }
        self.var_uint()
    }

    /// A UTF-8 string. Invalid sequences become U+FFFD, as the JS reference's `toString('utf8')`
    /// does: a sender's debugging message must not make its money packet unreadable.
    pub(super) fn utf8(&mut self) -> Result<String, FieldError> {
        Ok(String::from_utf8_lossy(self.var_octets()?).into_owned())
    }
}

/// Appends `value` as a `VarUInt`: its big-endian bytes without leading zeros, at least one.
pub(super) fn write_var_uint(out: &mut Vec<u8>, value: u64) {
    let be = value.to_be_bytes();
    let skip = (value.leading_zeros() / 8).min(7) as usize;
    write_var_octets(out, &be[skip..]);
}

pub(super) fn write_utf8(out: &mut Vec<u8>, value: &str) {
    write_var_octets(out, value.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var_uint_bytes(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_var_uint(&mut out, value);
        out
    }

    #[test]
    fn var_uints_are_written_in_their_fewest_bytes() {
        assert_eq!(var_uint_bytes(0), [1, 0]);
        assert_eq!(var_uint_bytes(255), [1, 255]);
        assert_eq!(var_uint_bytes(256), [2, 1, 0]);
        assert_eq!(var_uint_bytes(u64::MAX), [8, 255, 255, 255, 255, 255, 255, 255, 255]);
        for value in [0, 1, 127, 128, 255, 256, 65_535, 65_536, 1 << 53, u64::MAX - 1, u64::MAX] {
            assert_eq!(Reader::new(&var_uint_bytes(value)).var_uint(), Ok(value));
        }
    }

    #[test]
    fn var_uints_with_leading_zeros_are_read_as_the_reference_reads_them() {
        assert_eq!(Reader::new(&[3, 0, 0, 7]).var_uint(), Ok(7));
        assert_eq!(Reader::new(&[8, 0, 0, 0, 0, 0, 0, 0, 0]).var_uint(), Ok(0));
    }

    #[test]
    fn var_uints_of_no_bytes_or_more_than_eight_are_refused() {
        assert_eq!(Reader::new(&[0]).var_uint(), Err(FieldError::VarUInt(0)));
        assert_eq!(Reader::new(&[9, 0, 0, 0, 0, 0, 0, 0, 0, 1]).var_uint(), Err(FieldError::VarUInt(9)));
        assert_eq!(Reader::new(&[2, 1]).var_uint(), Err(FieldError::Truncated));
        assert_eq!(Reader::new(&[]).var_uint(), Err(FieldError::Truncated));
        assert_eq!(Reader::new(&[0x80]).var_uint(), Err(FieldError::Length));
    }

    #[test]
    fn saturating_var_uints_read_anything_longer_than_eight_bytes_as_the_maximum() {
        let mut nine_then_one = vec![9, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        nine_then_one.extend([1, 42]);
        let mut r = Reader::new(&nine_then_one);
        assert_eq!(r.var_uint_saturating(), Ok(u64::MAX));
        assert_eq!(r.var_uint(), Ok(42), "the long field is skipped whole");
        let mut long = vec![100];
        long.extend([0xff; 100]);
        assert_eq!(Reader::new(&long).var_uint_saturating(), Ok(u64::MAX));
        assert_eq!(Reader::new(&[2, 1, 0]).var_uint_saturating(), Ok(256));
        assert_eq!(Reader::new(&[9, 0]).var_uint_saturating(), Err(FieldError::Truncated));
        assert_eq!(Reader::new(&[0]).var_uint_saturating(), Err(FieldError::VarUInt(0)));
    }

    #[test]
    fn invalid_utf8_reads_as_replacement_characters() {
        assert_eq!(Reader::new(&[3, b'a', 0xff, b'b']).utf8().as_deref(), Ok("a\u{fffd}b"));
    }
}
