//! The one place where `bytes` 0.4 (used by `interledger-packet` 0.4) meets `bytes` 1.x (used by
//! hyper and the rest of ThitsaX). Both directions copy: packets are small (≤ ~33 KB) and a copy
//! is cheaper than any scheme that shares buffers between two incompatible crate versions.

use bytes04::BytesMut as BytesMut04;

/// Copies a `bytes` 1.x slice into a `bytes` 0.4 buffer for `interledger-packet`.
pub fn to_04(bytes: &[u8]) -> BytesMut04 {
    BytesMut04::from(bytes)
}

/// Copies a `bytes` 0.4 buffer produced by `interledger-packet` into a `bytes` 1.x `Bytes`.
pub fn from_04(bytes: BytesMut04) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(&bytes)
}
