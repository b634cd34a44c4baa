//! STREAM receipts (RFC 0039): the receiver's proof, for a verifier that shares the receipt
//! secret, of the total received on one stream. A receipt goes in a `StreamReceipt` frame of each
//! Fulfill ([`super::Reply::receipt`]); the sender passes it on without reading it.
//!
//! ```text
//! version (1) ‖ receipt nonce (16) ‖ stream id (UInt8) ‖ total received (UInt64) ‖ HMAC-SHA256
//! ```
//! The HMAC is keyed with the 32-byte receipt secret over the 26 bytes before it. The stream id is
//! one byte, as in the RFC and the JS reference (this receiver's streams stop at 20).

use ring::hmac;

/// Every receipt is this long.
pub const RECEIPT_BYTES: usize = 58;
const VERSION: u8 = 1;
const SIGNED_BYTES: usize = 1 + 16 + 1 + 8;

/// The receipt for `total_received` on `stream_id` of the connection the verifier gave
/// `nonce` and `secret` to.
pub fn receipt(
    nonce: &[u8; 16],
    secret: &[u8; 32],
    stream_id: u8,
    total_received: u64,
) -> [u8; RECEIPT_BYTES] {
    let mut out = [0u8; RECEIPT_BYTES];
    out[0] = VERSION;
    out[1..17].copy_from_slice(nonce);
    out[17] = stream_id;
    out[18..SIGNED_BYTES].copy_from_slice(&total_received.to_be_bytes());
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), &out[..SIGNED_BYTES]);
    out[SIGNED_BYTES..].copy_from_slice(tag.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_is_its_fields_then_their_hmac() {
        let r = receipt(&[7; 16], &[9; 32], 1, 258);
        assert_eq!(r[0], 1);
        assert_eq!(&r[1..17], &[7; 16]);
        assert_eq!(r[17], 1);
        assert_eq!(&r[18..26], &[0, 0, 0, 0, 0, 0, 1, 2]);
        let key = hmac::Key::new(hmac::HMAC_SHA256, &[9; 32]);
        assert!(hmac::verify(&key, &r[..26], &r[26..]).is_ok());
        assert_ne!(receipt(&[7; 16], &[9; 32], 1, 259)[26..], r[26..]);
    }
}
