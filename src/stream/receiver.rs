//! The receiving end of STREAM for one incoming Prepare, with no state and no I/O.
//!
//! Two steps, so that the caller (the node, which keeps each payment's totals in its store,
//! asynchronously) decides in between:
//!
//! 1. [`open`] reads the Prepare. In the JS reference's order (`Connection.handlePrepare`):
//!    - decrypt its data with the connection's key, decode the STREAM packet, check that it says
//!      it travels in a Prepare: otherwise [`Refused`], answered **F06** with no data (RFC 0029
//!      § 4.2; the sender may not even hold the key, so nothing is encrypted for it);
//!    - check the streams it names: a client opens odd-numbered streams only, up to
//!      [`STREAM_ID_MAX`]; otherwise [`Verdict::StreamId`];
//!    - check the amount that arrived against the sender's minimum (its `prepare_amount`):
//!      less is [`Verdict::BelowMinimum`];
//!    - regenerate the fulfillment from the data and compare its hash with the condition: a
//!      mismatch is a probe (a test packet for the exchange rate, or a request for the asset
//!      details) and [`Verdict::Unfulfillable`].
//!
//!    Everything but a refusal gives an [`Opened`]: the frames, the sequence, each stream's
//!    share of the money, the sender's notices (closes, its address, its limits), the verdict.
//! 2. The caller records what it must, builds a [`Reply`] (the amount that arrived, its asset
//!    details, per stream what was received and may still be, receipts, closes), and calls
//!    [`Opened::fulfill`] (only for [`Verdict::Fulfillable`]) or [`Opened::reject`]. A reject's
//!    data goes in an **F99** Reject ([`REJECT_CODE`]), as the reference does: the sender reads
//!    the amount that arrived from it, which is how it learns the exchange rate.

use super::crypto::{condition_of, CryptoError, StreamKeys};
use super::frame::{ErrorCode, Frame};
use super::packet::{DecodeError, PacketType, StreamPacket};
use super::STREAM_PACKET_BYTES_MAX;
use crate::account::constant_time_eq;
use crate::packet::ErrorCode as IlpErrorCode;
use std::collections::BTreeMap;

/// The highest stream id a sender may use. RFC 0029 § 3.3's default, which this receiver never
/// raises (it sends no `ConnectionMaxStreamId`): clients get streams 1, 3, ..., 19.
pub const STREAM_ID_MAX: u64 = 20;
/// The ILP code of a Reject carrying [`Opened::reject`]'s data.
pub const REJECT_CODE: IlpErrorCode = IlpErrorCode::F99_APPLICATION_ERROR;

/// Why a Prepare is not a STREAM packet of this connection. Answer with [`Refused::code`] (F06)
/// and no data. (The JS server answers F02 instead when the first packet of a connection it does
/// not know yet fails to decrypt, F06 afterwards; a stateless receiver cannot tell the two apart,
/// and RFC 0029 § 4.2 asks for F06. Senders, @interledger/pay among them, end the payment on
/// either.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("data does not decrypt under the connection's key: {0}")]
    Decrypt(CryptoError),
    #[error("decrypted data is not a STREAM packet: {0}")]
    Decode(DecodeError),
    #[error("the STREAM packet says it travels in a {0:?}, not in a Prepare")]
    WrongType(PacketType),
}

impl Refused {
    /// F06 Unexpected Payment (RFC 0029 § 4.2), for every refusal.
    pub fn code(&self) -> IlpErrorCode {
        IlpErrorCode::F06_UNEXPECTED_PAYMENT
    }
}

/// What an opened Prepare is: one to fulfil, or one to reject with a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The condition is this packet's and enough arrived: the money may be taken.
    Fulfillable,
    /// A frame names a stream the sender may not use: an even id (the server's) is a
    /// `ProtocolViolation`, one above [`STREAM_ID_MAX`] a `StreamIdError`. The reject closes the
    /// connection with that code, as the reference does.
    StreamId { stream_id: u64, code: ErrorCode },
    /// Less arrived than the sender's minimum (the exchange rate moved against it).
    BelowMinimum,
    /// The condition is not the hash of this packet's fulfillment: a probe, never fulfillable.
    Unfulfillable,
}

/// A stream's part of the Prepare's amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamAmount {
    pub stream_id: u64,
    pub amount: u64,
}

/// A close the sender sent, for the connection or one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close<'a> {
    pub code: ErrorCode,
    pub message: &'a str,
}

/// A sender's `StreamMaxMoney`: what it will receive on a stream, in its own units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxMoney {
    pub stream_id: u64,
    pub receive_max: u64,
    pub total_received: u64,
}

/// A fulfilled Prepare's answer: the Fulfill's fulfillment and data.
#[derive(Clone, PartialEq, Eq)]
pub struct Fulfilled {
    pub fulfillment: [u8; 32],
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Fulfilled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fulfilled").field("data_len", &self.data.len()).finish_non_exhaustive()
    }
}

/// Why a reply could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// `fulfill` on a Prepare whose verdict forbids it: a caller's mistake, refused here rather
    /// than releasing a fulfillment the sender did not mean to give.
    #[error("the Prepare is not fulfillable: {0:?}")]
    NotFulfillable(Verdict),
    #[error("the reply is {0} bytes, more than the {max} an ILP packet carries", max = STREAM_PACKET_BYTES_MAX)]
    TooLarge(usize),
    #[error("the system's random number generator failed")]
    Random,
}

/// What the receiver tells the sender in a Fulfill or Reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    amount: u64,
    frames: Vec<Frame>,
}

impl Reply {
    /// A reply saying `amount` arrived (the reply's `prepare_amount`); [`Opened::reply`] starts
    /// one with the Prepare's amount, which is what the reference reports, fulfilled or not.
    pub fn new(amount: u64) -> Self {
        Reply { amount, frames: Vec::new() }
    }

    /// The receiving account's asset. @interledger/pay needs it in a reply to its first (probe)
    /// packet; sending it in every reply is harmless while it does not change.
    pub fn asset_details(self, asset_code: &str, asset_scale: u8) -> Self {
        self.frame(Frame::ConnectionAssetDetails { asset_code: asset_code.to_string(), asset_scale })
    }

    /// How much the stream will take in total (`u64::MAX`: no limit) and has received so far,
    /// in the receiver's units.
    pub fn max_money(self, stream_id: u64, receive_max: u64, total_received: u64) -> Self {
        self.frame(Frame::StreamMaxMoney { stream_id, receive_max, total_received })
    }

    /// An RFC 0039 receipt for the stream.
    pub fn receipt(self, stream_id: u64, receipt: Vec<u8>) -> Self {
        self.frame(Frame::StreamReceipt { stream_id, receipt })
    }

    /// Closes a stream, e.g. with `NoError` once its payment is complete and more is refused.
    pub fn close_stream(self, stream_id: u64, code: ErrorCode, message: &str) -> Self {
        self.frame(Frame::StreamClose { stream_id, code, message: message.to_string() })
    }

    pub fn close_connection(self, code: ErrorCode, message: &str) -> Self {
        self.frame(Frame::ConnectionClose { code, message: message.to_string() })
    }

    /// Any other frame.
    pub fn frame(mut self, frame: Frame) -> Self {
        self.frames.push(frame);
        self
    }

    pub fn amount(&self) -> u64 {
        self.amount
    }

    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }
}

/// A Prepare read by [`open`]: what the sender sent and what may be done with it.
pub struct Opened<'k> {
    keys: &'k StreamKeys,
    amount: u64,
    packet: StreamPacket,
    money: Vec<StreamAmount>,
    fulfillment: [u8; 32],
    verdict: Verdict,
}

/// Reads an incoming Prepare for the connection whose keys are `keys`: `amount` and `condition`
/// are the Prepare's, `data` its data (the encrypted STREAM packet).
pub fn open<'k>(
    keys: &'k StreamKeys,
    amount: u64,
    condition: &[u8; 32],
    data: &[u8],
) -> Result<Opened<'k>, Refused> {
    let packet = read(keys, data)?;
    let fulfillment = keys.fulfillment(data);
    let verdict = judge(&packet, amount, condition, &fulfillment);
    let money = split_money(amount, &packet.frames);
    Ok(Opened { keys, amount, packet, money, fulfillment, verdict })
}

/// Decrypts and decodes, and checks the packet is meant for a Prepare.
fn read(keys: &StreamKeys, data: &[u8]) -> Result<StreamPacket, Refused> {
    let plaintext = keys.decrypt(data).map_err(Refused::Decrypt)?;
    let packet = StreamPacket::decode(&plaintext).map_err(Refused::Decode)?;
    match packet.packet_type {
        PacketType::Prepare => Ok(packet),
        other => Err(Refused::WrongType(other)),
    }
}

/// The verdict, checks in the reference's order: streams, then the minimum, then the condition.
fn judge(packet: &StreamPacket, amount: u64, condition: &[u8; 32], fulfillment: &[u8; 32]) -> Verdict {
    if let Some((stream_id, code)) = packet.frames.iter().find_map(forbidden_stream) {
        return Verdict::StreamId { stream_id, code };
    }
    if amount < packet.prepare_amount {
        return Verdict::BelowMinimum;
    }
    // A condition is no secret, but a comparison that stops at the first difference would tell a
    // prober how many leading bytes of the hash of our fulfillment it guessed; there is no reason
    // to give even that away.
    if !constant_time_eq(&condition_of(fulfillment), condition) {
        return Verdict::Unfulfillable;
    }
    Verdict::Fulfillable
}

/// The frames that open a stream in the reference (money and data, and their limits) must name one
/// the client may open: odd, at most [`STREAM_ID_MAX`].
fn forbidden_stream(frame: &Frame) -> Option<(u64, ErrorCode)> {
    let stream_id = match frame {
        Frame::StreamMoney { stream_id, .. }
        | Frame::StreamData { stream_id, .. }
        | Frame::StreamMaxMoney { stream_id, .. }
        | Frame::StreamMaxData { stream_id, .. } => *stream_id,
        _ => return None,
    };
    if stream_id % 2 == 0 {
        Some((stream_id, ErrorCode::ProtocolViolation))
    } else if stream_id > STREAM_ID_MAX {
        Some((stream_id, ErrorCode::StreamIdError))
    } else {
        None
    }
}

/// Each stream's part of `amount`: its shares over all shares, rounded down, the remainder to the
/// lowest stream id (RFC 0029 § 5.3.8), so the parts always add up to `amount` exactly. Frames
/// for the same stream add up; with no shares at all, the lowest stream gets everything. No
/// `StreamMoney` frame: no parts (the money is the connection's).
fn split_money(amount: u64, frames: &[Frame]) -> Vec<StreamAmount> {
    let mut shares: BTreeMap<u64, u128> = BTreeMap::new();
    for frame in frames {
        if let Frame::StreamMoney { stream_id, shares: s } = frame {
            *shares.entry(*stream_id).or_default() += u128::from(*s);
        }
    }
    // At most FRAMES_MAX frames of at most u64::MAX shares: the total fits a u128 many times over.
    let total: u128 = shares.values().sum();
    // amount × shares must fit a u128: past 2^64 total shares (only a sender repeating huge
    // frames gets there), drop the low bits of every share alike.
    let shift = (u128::BITS - total.leading_zeros()).saturating_sub(64);
    let total = total >> shift;
    let mut parts: Vec<StreamAmount> = shares
        .iter()
        .map(|(&stream_id, &s)| {
            let part = (u128::from(amount) * (s >> shift)).checked_div(total).unwrap_or(0);
            // part <= amount because s <= total.
            StreamAmount { stream_id, amount: u64::try_from(part).unwrap_or(amount) }
        })
        .collect();
    let allotted: u64 = parts.iter().map(|p| p.amount).fold(0, u64::saturating_add);
    if let Some(lowest) = parts.first_mut() {
        lowest.amount += amount.saturating_sub(allotted);
    }
    parts
}

impl<'k> Opened<'k> {
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    pub fn is_fulfillable(&self) -> bool {
        self.verdict == Verdict::Fulfillable
    }

    /// The Prepare's amount: what arrived, in the receiver's units.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The least the sender said the receiver should accept (the STREAM packet's
    /// `prepare_amount`).
    pub fn min_amount(&self) -> u64 {
        self.packet.prepare_amount
    }

    pub fn sequence(&self) -> u64 {
        self.packet.sequence
    }

    /// Every frame the sender sent (of the types this version knows), in order.
    pub fn frames(&self) -> &[Frame] {
        &self.packet.frames
    }

    /// Each stream's part of [`Opened::amount`], by stream id; they add up to the amount exactly.
    /// Empty when the packet has no `StreamMoney` frame.
    pub fn money(&self) -> &[StreamAmount] {
        &self.money
    }

    /// The sender closed the connection (its last `ConnectionClose`).
    pub fn connection_close(&self) -> Option<Close<'_>> {
        self.frames().iter().rev().find_map(|f| match f {
            Frame::ConnectionClose { code, message } => Some(Close { code: *code, message }),
            _ => None,
        })
    }

    /// The streams the sender closed.
    pub fn stream_closes(&self) -> impl Iterator<Item = (u64, Close<'_>)> {
        self.frames().iter().filter_map(|f| match f {
            Frame::StreamClose { stream_id, code, message } => {
                Some((*stream_id, Close { code: *code, message }))
            }
            _ => None,
        })
    }

    /// The sender's address, if it sent one (empty from @interledger/pay, which cannot receive).
    pub fn new_address(&self) -> Option<&str> {
        self.frames().iter().rev().find_map(|f| match f {
            Frame::ConnectionNewAddress { source_address } => Some(source_address.as_str()),
            _ => None,
        })
    }

    /// The sender's asset, if it told it.
    pub fn asset_details(&self) -> Option<(&str, u8)> {
        self.frames().iter().find_map(|f| match f {
            Frame::ConnectionAssetDetails { asset_code, asset_scale } => {
                Some((asset_code.as_str(), *asset_scale))
            }
            _ => None,
        })
    }

    /// What the sender will receive per stream (for a connection that sends back).
    pub fn max_money(&self) -> impl Iterator<Item = MaxMoney> + '_ {
        self.frames().iter().filter_map(|f| match f {
            Frame::StreamMaxMoney { stream_id, receive_max, total_received } => Some(MaxMoney {
                stream_id: *stream_id,
                receive_max: *receive_max,
                total_received: *total_received,
            }),
            _ => None,
        })
    }

    /// The fulfillment, only when the verdict allows taking the money (to fulfil with no data if
    /// the reply cannot be built).
    pub fn fulfillment(&self) -> Option<[u8; 32]> {
        self.is_fulfillable().then_some(self.fulfillment)
    }

    /// An empty reply saying the Prepare's amount arrived.
    pub fn reply(&self) -> Reply {
        Reply::new(self.amount)
    }

    /// The Fulfill's fulfillment and data (an encrypted STREAM packet of type Fulfill).
    pub fn fulfill(&self, reply: &Reply) -> Result<Fulfilled, ReplyError> {
        if !self.is_fulfillable() {
            return Err(ReplyError::NotFulfillable(self.verdict));
        }
        let data = self.seal(PacketType::Fulfill, reply.amount, reply.frames.iter())?;
        Ok(Fulfilled { fulfillment: self.fulfillment, data })
    }

    /// The data of the F99 Reject (an encrypted STREAM packet of type Reject). For a
    /// [`Verdict::StreamId`], a `ConnectionClose` with its code is added unless the reply has one.
    pub fn reject(&self, reply: &Reply) -> Result<Vec<u8>, ReplyError> {
        let closes = reply.frames.iter().any(|f| matches!(f, Frame::ConnectionClose { .. }));
        let violation = match self.verdict {
            Verdict::StreamId { stream_id, code } if !closes => {
                Some(Frame::ConnectionClose { code, message: format!("stream {stream_id} may not be used") })
            }
            _ => None,
        };
        self.seal(PacketType::Reject, reply.amount, reply.frames.iter().chain(violation.as_ref()))
    }

    /// Encrypts the reply packet: the Prepare's sequence, so the sender can match it.
    fn seal<'f>(
        &self,
        packet_type: PacketType,
        amount: u64,
        frames: impl Iterator<Item = &'f Frame>,
    ) -> Result<Vec<u8>, ReplyError> {
        let packet = StreamPacket {
            packet_type,
            sequence: self.packet.sequence,
            prepare_amount: amount,
            frames: frames.cloned().collect(),
        };
        let plaintext = packet.encode();
        if plaintext.len() > STREAM_PACKET_BYTES_MAX {
            return Err(ReplyError::TooLarge(plaintext.len()));
        }
        self.keys.encrypt(&plaintext).map_err(|e| match e {
            CryptoError::TooLong(n) => ReplyError::TooLarge(n),
            _ => ReplyError::Random,
        })
    }
}

impl std::fmt::Debug for Opened<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the fulfillment: it is the money's key until the Fulfill is sent.
        f.debug_struct("Opened")
            .field("verdict", &self.verdict)
            .field("amount", &self.amount)
            .field("min_amount", &self.packet.prepare_amount)
            .field("sequence", &self.packet.sequence)
            .field("money", &self.money)
            .field("frames", &self.packet.frames.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
