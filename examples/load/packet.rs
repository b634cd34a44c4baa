//! The few ILP packet bytes the load tool reads and writes by hand: the type
//! bytes, OER lengths and octet strings, and zero-copy views of a Prepare and
//! a Reject.
//!
//! Why by hand: the receiver answers every packet of a load run, and parsing
//! with interledger-packet (timestamp included) would cost it CPU that the
//! comparison should charge to the system under test. A leaf: it imports
//! nothing of ours.

use bytes::Bytes;
use ring::digest::{digest, SHA256};

const TYPE_PREPARE: u8 = 12;
pub(crate) const TYPE_FULFILL: u8 = 13;
pub(crate) const TYPE_REJECT: u8 = 14;

/// Fulfillment used by `--condition fixed`. Known to sender and receiver.
pub(crate) const FIXED_FULFILLMENT: [u8; 32] = *b"thitsax-load-fixed-fulfillment!!";

pub(crate) const OCTET_STREAM: &str = "application/octet-stream";

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest(&SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Reads an OER length prefix. Returns (length, bytes used by the prefix).
pub(crate) fn read_len(buf: &[u8]) -> Option<(usize, usize)> {
    let first = *buf.first()?;
    if first & 0x80 == 0 {
        return Some((first as usize, 1));
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 8 || buf.len() < 1 + n {
        return None;
    }
    let mut len: u64 = 0;
    for b in &buf[1..1 + n] {
        len = (len << 8) | *b as u64;
    }
    Some((usize::try_from(len).ok()?, 1 + n))
}

/// Reads an OER variable-length octet string. Returns (contents, rest).
fn read_var_octets(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, hdr) = read_len(buf)?;
    let end = hdr.checked_add(len)?;
    if buf.len() < end {
        return None;
    }
    Some((&buf[hdr..end], &buf[end..]))
}

/// Checks the packet type byte and returns the envelope contents.
fn envelope(buf: &[u8], packet_type: u8) -> Option<&[u8]> {
    if *buf.first()? != packet_type {
        return None;
    }
    read_var_octets(&buf[1..]).map(|(content, _)| content)
}

/// The fields of a Prepare the receiver needs, read without copying or
/// parsing the timestamp.
#[derive(Debug, PartialEq)]
pub(crate) struct PrepareView<'a> {
    pub(crate) condition: &'a [u8],
    pub(crate) destination: &'a [u8],
    pub(crate) data: &'a [u8],
}

pub(crate) fn view_prepare(buf: &[u8]) -> Option<PrepareView<'_>> {
    const FIXED: usize = 8 + 17 + 32; // amount, expiry, condition
    let content = envelope(buf, TYPE_PREPARE)?;
    if content.len() < FIXED {
        return None;
    }
    let condition = &content[25..FIXED];
    let (destination, rest) = read_var_octets(&content[FIXED..])?;
    let (data, _) = read_var_octets(rest)?;
    Some(PrepareView { condition, destination, data })
}

/// Code and message of a Reject. Tolerates an empty triggered_by (which
/// interledger-packet 0.4's parser refuses).
pub(crate) fn view_reject(buf: &[u8]) -> Option<([u8; 3], &[u8])> {
    let content = envelope(buf, TYPE_REJECT)?;
    if content.len() < 3 {
        return None;
    }
    let code = [content[0], content[1], content[2]];
    let (_triggered_by, rest) = read_var_octets(&content[3..])?;
    let (message, _) = read_var_octets(rest)?;
    Some((code, message))
}

pub(crate) fn bytes04_to_1(b: bytes04::BytesMut) -> Bytes {
    Bytes::copy_from_slice(&b)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use interledger_packet::PrepareBuilder;

    use super::*;

    #[test]
    fn view_prepare_long_lengths() {
        // Data > 127 bytes forces multi-byte OER lengths in both envelope and data.
        let data = vec![0xabu8; 1000];
        let p = PrepareBuilder {
            amount: 1,
            expires_at: SystemTime::now(),
            execution_condition: &[3u8; 32],
            destination: "g.x".parse().unwrap(),
            data: &data,
        }
        .build();
        let b: bytes04::BytesMut = p.into();
        let v = view_prepare(&b).unwrap();
        assert_eq!(v.data, &data[..]);
        assert_eq!(v.condition, &[3u8; 32]);
        // Truncated packets are refused, not panicked on.
        for cut in [0, 1, 2, 10, 60, b.len() - 1] {
            assert!(view_prepare(&b[..cut]).is_none(), "cut at {cut}");
        }
    }
}
