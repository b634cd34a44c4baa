//! STREAM (RFC 0029), the parts of it that are pure: what a receiving node needs to answer
//! payments addressed to its own receivers, with no state of its own and no I/O.
//!
//! - [`frame`] and [`packet`]: the STREAM packet and its frames, encoded and decoded (decoding is
//!   bounded and never panics, whatever the bytes);
//! - [`crypto`]: the keys derived from a shared secret (once per secret), AES-256-GCM in the JS
//!   reference's layout, fulfillments and conditions;
//! - [`credentials`]: the tokens and shared secrets a [`ServerSecret`] issues per SPSP query and
//!   re-derives from a packet's address, on any instance, without storing anything;
//! - [`receipt`]: RFC 0039 receipts, for a `StreamReceipt` frame in a Fulfill;
//! - [`receiver`]: one incoming Prepare, in two steps: [`open`] decides what it is, the caller
//!   (which keeps the totals, asynchronously) decides what to do, and [`Opened::fulfill`] or
//!   [`Opened::reject`] builds the answer;
//! - [`sender`]: one payment as the sending side ([`sender::pay`]): the rate probe, packets sized
//!   from F08s, retries, slippage and deadline, an exact source or delivered amount, through a
//!   [`sender::Transport`] the caller implements.
//!
//! Where RFC 0029 leaves a choice, this module does what `ilp-protocol-stream` 2.7.1, the JS
//! reference, does, so that its senders and @interledger/pay accept the replies; the known-answer
//! tests in `tests.rs` check it against vectors the reference produced
//! (`tests/interop/stream-vectors.js`), and `tests/stream_js_sender.rs` has the reference's sender
//! pay a receiver built from this module.
//!
//! Layer 3: imports [`crate::packet`]; the sender also [`crate::backoff`] and [`crate::limits`]
//! (leaves); the sender and the receiver also [`crate::account`]'s constant-time comparison
//! (layer 2).

pub mod credentials;
pub mod crypto;
pub mod frame;
mod oer;
pub mod packet;
pub mod receipt;
pub mod receiver;
pub mod sender;

pub use credentials::{Credentials, CredentialsError, ServerSecret};
pub use crypto::{CryptoError, SharedSecret, StreamKeys};
pub use frame::{ErrorCode, Frame};
pub use oer::FieldError;
pub use packet::{DecodeError, PacketType, StreamPacket};
pub use receiver::{open, Fulfilled, Opened, Refused, Reply, ReplyError, StreamAmount, Verdict};

/// What AES-256-GCM adds to a STREAM packet: a 12-byte nonce and a 16-byte tag.
pub const ENCRYPTION_OVERHEAD_BYTES: usize = 28;
/// The largest STREAM packet in the clear: what is left of an ILP packet's data (32,767 bytes,
/// RFC 0027) after the encryption overhead.
pub const STREAM_PACKET_BYTES_MAX: usize = crate::packet::DATA_BYTES_MAX - ENCRYPTION_OVERHEAD_BYTES;
/// The most frames a STREAM packet may announce. Honest senders use a handful (the JS reference
/// one per stream and kind, and at most 10 streams by default); the cap keeps what a packet can
/// make us allocate for its frame list to about 50 KiB.
pub const FRAMES_MAX: usize = 1024;

#[cfg(test)]
mod tests;
