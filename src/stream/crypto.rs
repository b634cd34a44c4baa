//! STREAM's cryptography (RFC 0029 § 5.1 and § 6), with `ring`.
//!
//! From a connection's shared secret:
//! - encryption key = HMAC-SHA256(shared_secret, "ilp_stream_encryption"), for AES-256-GCM with a
//!   random 12-byte nonce and no associated data;
//! - fulfillment key = HMAC-SHA256(shared_secret, "ilp_stream_fulfillment"); a Prepare's
//!   fulfillment = HMAC-SHA256(fulfillment key, its data), its condition = SHA-256(fulfillment).
//!
//! Encrypted data is laid out `nonce (12) ‖ tag (16) ‖ ciphertext`, the tag before the ciphertext:
//! that is the JS reference's order (`crypto-node.js` puts IV and tag in front) and the RFC's
//! envelope table, though AES-GCM libraries usually append the tag.
//!
//! [`StreamKeys`] derives both keys once per shared secret (the AES key schedule and the HMAC
//! pads included), so a packet costs one AEAD operation and one HMAC.

use super::{ENCRYPTION_OVERHEAD_BYTES, STREAM_PACKET_BYTES_MAX};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};

const ENCRYPTION_KEY_LABEL: &[u8] = b"ilp_stream_encryption";
const FULFILLMENT_KEY_LABEL: &[u8] = b"ilp_stream_fulfillment";
const TAG_BYTES: usize = 16;

/// Why data could not be encrypted or decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("{0} bytes: shorter than the 28 of nonce and tag")]
    TooShort(usize),
    #[error("{0} bytes in the clear: more than the {max} that fit in an ILP packet", max = STREAM_PACKET_BYTES_MAX)]
    TooLong(usize),
    /// The tag does not match: another key, or altered bytes. The two cannot be told apart.
    #[error("data does not authenticate under this connection's key")]
    Authentication,
    #[error("the system's random number generator failed")]
    Random,
}

/// A connection's 32-byte shared secret. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret([u8; 32]);

impl SharedSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SharedSecret(bytes)
    }

    /// The bytes, for the SPSP response that hands the secret to the sender.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derives the connection's keys: two HMACs and an AES key schedule; keep them for the packet.
    pub fn keys(&self) -> StreamKeys {
        StreamKeys::new(self)
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(***)")
    }
}

/// The keys of one connection, derived once from its shared secret.
#[derive(Clone)]
pub struct StreamKeys {
    encryption: LessSafeKey,
    fulfillment: hmac::Key,
}

impl StreamKeys {
    pub fn new(shared_secret: &SharedSecret) -> Self {
        let secret = hmac::Key::new(hmac::HMAC_SHA256, shared_secret.as_bytes());
        let encryption_key = hmac::sign(&secret, ENCRYPTION_KEY_LABEL);
        let fulfillment_key = hmac::sign(&secret, FULFILLMENT_KEY_LABEL);
        let unbound = UnboundKey::new(&aead::AES_256_GCM, encryption_key.as_ref())
            .expect("an HMAC-SHA256 tag is 32 bytes, an AES-256 key's length");
        StreamKeys {
            encryption: LessSafeKey::new(unbound),
            fulfillment: hmac::Key::new(hmac::HMAC_SHA256, fulfillment_key.as_ref()),
        }
    }

    /// Encrypts a STREAM packet under a fresh random nonce.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        self.encrypt_with_nonce(nonce, plaintext)
    }

    /// Encrypts under a given nonce. Never reuse one with the same key: a repeated nonce reveals
    /// the XOR of the plaintexts and lets the tag be forged. Tests use it to compare bytes.
    pub(crate) fn encrypt_with_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if plaintext.len() > STREAM_PACKET_BYTES_MAX {
            return Err(CryptoError::TooLong(plaintext.len()));
        }
        let mut out = Vec::with_capacity(ENCRYPTION_OVERHEAD_BYTES + plaintext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&[0; TAG_BYTES]);
        out.extend_from_slice(plaintext);
        let (head, body) = out.split_at_mut(ENCRYPTION_OVERHEAD_BYTES);
        let tag = self
            .encryption
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), body)
            .map_err(|_| CryptoError::TooLong(plaintext.len()))?;
        head[NONCE_LEN..].copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `nonce ‖ tag ‖ ciphertext` and checks its tag; the plaintext is a new buffer, as
    /// long as the ciphertext.
    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if data.len() < ENCRYPTION_OVERHEAD_BYTES {
            return Err(CryptoError::TooShort(data.len()));
        }
        if data.len() - ENCRYPTION_OVERHEAD_BYTES > STREAM_PACKET_BYTES_MAX {
            return Err(CryptoError::TooLong(data.len() - ENCRYPTION_OVERHEAD_BYTES));
        }
        let (nonce, rest) = data.split_at(NONCE_LEN);
        let (tag, ciphertext) = rest.split_at(TAG_BYTES);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::TooShort(data.len()))?;
        let tag = aead::Tag::try_from(tag).map_err(|_| CryptoError::TooShort(data.len()))?;
        let mut plaintext = ciphertext.to_vec();
        self.encryption
            .open_in_place_separate_tag(nonce, Aad::empty(), tag, &mut plaintext, 0..)
            .map_err(|_| CryptoError::Authentication)?;
        Ok(plaintext)
    }

    /// The fulfillment of a Prepare carrying `data` (its encrypted STREAM packet).
    pub fn fulfillment(&self, data: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.fulfillment, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// The condition a sender puts on a fulfillable Prepare carrying `data`.
    pub fn condition(&self, data: &[u8]) -> [u8; 32] {
        condition_of(&self.fulfillment(data))
    }
}

impl std::fmt::Debug for StreamKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamKeys(***)")
    }
}

/// SHA-256 of a fulfillment: the condition it fulfils.
pub fn condition_of(fulfillment: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, fulfillment).as_ref());
    out
}

/// A condition nobody can fulfil (RFC 0029 § 6.1), for probes whose money must not move: test
/// packets that learn the exchange rate or ask for the receiver's asset details.
pub fn random_condition() -> Result<[u8; 32], CryptoError> {
    let mut out = [0u8; 32];
    SystemRandom::new().fill(&mut out).map_err(|_| CryptoError::Random)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> StreamKeys {
        SharedSecret::from_bytes([7; 32]).keys()
    }

    #[test]
    fn encryption_round_trips_with_the_tag_before_the_ciphertext() {
        let keys = keys();
        for len in [0usize, 1, 100, 1024, STREAM_PACKET_BYTES_MAX] {
            let plaintext = vec![0x5a; len];
            let sealed = keys.encrypt(&plaintext).unwrap();
            assert_eq!(sealed.len(), len + ENCRYPTION_OVERHEAD_BYTES);
            assert_eq!(keys.decrypt(&sealed).unwrap(), plaintext);
        }
        // With a known nonce the layout is visible: the nonce first, then the tag.
        let sealed = keys.encrypt_with_nonce([1; 12], b"abc").unwrap();
        assert_eq!(&sealed[..12], &[1; 12]);
        assert_eq!(sealed.len(), 12 + 16 + 3);
    }

    #[test]
    fn two_encryptions_of_the_same_packet_differ() {
        let keys = keys();
        assert_ne!(keys.encrypt(b"same").unwrap(), keys.encrypt(b"same").unwrap());
    }

    #[test]
    fn altered_or_foreign_data_does_not_decrypt() {
        let keys = keys();
        let sealed = keys.encrypt(b"money").unwrap();
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 1;
            assert_eq!(keys.decrypt(&altered), Err(CryptoError::Authentication), "byte {i}");
        }
        let other = SharedSecret::from_bytes([8; 32]).keys();
        assert_eq!(other.decrypt(&sealed), Err(CryptoError::Authentication));
        assert_eq!(keys.decrypt(&sealed[..27]), Err(CryptoError::TooShort(27)));
        assert_eq!(keys.decrypt(&[]), Err(CryptoError::TooShort(0)));
    }

    #[test]
    fn sizes_past_the_ilp_data_limit_are_refused() {
        let keys = keys();
        let too_long = vec![0; STREAM_PACKET_BYTES_MAX + 1];
        assert_eq!(keys.encrypt(&too_long), Err(CryptoError::TooLong(STREAM_PACKET_BYTES_MAX + 1)));
        let sealed = vec![0; ENCRYPTION_OVERHEAD_BYTES + STREAM_PACKET_BYTES_MAX + 1];
        assert_eq!(keys.decrypt(&sealed), Err(CryptoError::TooLong(STREAM_PACKET_BYTES_MAX + 1)));
    }

    #[test]
    fn the_condition_is_the_hash_of_the_fulfillment() {
        let keys = keys();
        let fulfillment = keys.fulfillment(b"data");
        assert_eq!(keys.condition(b"data"), condition_of(&fulfillment));
        assert_ne!(keys.fulfillment(b"data!"), fulfillment);
        assert_ne!(random_condition().unwrap(), random_condition().unwrap());
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let secret = SharedSecret::from_bytes([0xab; 32]);
        assert_eq!(format!("{secret:?}"), "SharedSecret(***)");
        assert_eq!(format!("{:?}", secret.keys()), "StreamKeys(***)");
    }
}
