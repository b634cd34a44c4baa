//! One outgoing settlement's id: a value type shared by the store (which records it before the
//! first attempt) and every settlement kind (which sends it with every attempt). A leaf: it
//! imports nothing of ours.

use std::fmt;

/// One outgoing settlement's Idempotency-Key: 128 bits from the OS's secure random source (RFC
/// 0038 asks for a cryptographically random key). Persisted with the settlement before the first
/// attempt, and sent with every retry, so a settlement is never made twice.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SettlementId(pub [u8; 16]);

impl SettlementId {
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .expect("the OS random source works");
        SettlementId(bytes)
    }

    /// The 32 lowercase hex digits of [`Display`](fmt::Display).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = hex::decode(text).ok()?;
        (text.len() == 32 && text.bytes().all(|b| !b.is_ascii_uppercase()))
            .then(|| <[u8; 16]>::try_from(bytes).ok().map(SettlementId))
            .flatten()
    }
}

impl fmt::Display for SettlementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SettlementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SettlementId({self})")
    }
}
