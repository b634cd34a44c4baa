//! The STREAM packet (RFC 0029 § 5.2), before encryption: version 1, the ILP packet type it must
//! travel in, a sequence number, an amount, and its frames.
//!
//! Decoding is bounded by the input: it refuses more than [`STREAM_PACKET_BYTES_MAX`] bytes and a
//! frame count the bytes could not hold, so nothing is allocated on a length's word alone.

use super::frame::Frame;
use super::oer::{write_var_uint, FieldError, Reader};
use super::{FRAMES_MAX, STREAM_PACKET_BYTES_MAX};

/// RFC 0029 version 1, the only one.
const VERSION: u8 = 1;
/// A frame is at least its type byte and a one-byte length.
const FRAME_BYTES_MIN: usize = 2;

/// The ILP packet a STREAM packet must be carried in (RFC 0029 § 5.2): a receiver discards one
/// that arrives in another, so an intermediary cannot move data between packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Prepare,
    Fulfill,
    Reject,
}

impl PacketType {
    pub fn to_u8(self) -> u8 {
        match self {
            PacketType::Prepare => 12,
            PacketType::Fulfill => 13,
            PacketType::Reject => 14,
        }
    }

    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            12 => Some(PacketType::Prepare),
            13 => Some(PacketType::Fulfill),
            14 => Some(PacketType::Reject),
            _ => None,
        }
    }
}

/// Why bytes are not a STREAM packet. Every variant is something the other endpoint (or someone
/// forging its packets) sent wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("STREAM packet of {0} bytes, more than the {max} an ILP packet carries", max = STREAM_PACKET_BYTES_MAX)]
    TooLong(usize),
    #[error("STREAM version {0}; only version 1 is known")]
    Version(u8),
    #[error("ILP packet type {0} is not Prepare (12), Fulfill (13) or Reject (14)")]
    PacketType(u8),
    #[error("packet header: {0}")]
    Header(FieldError),
    #[error("{0} frames announced, more than the packet's bytes could hold")]
    TooManyFrames(u64),
    #[error("frame of type {kind:#04x}: {error}")]
    Frame { kind: u8, error: FieldError },
}

/// A STREAM packet in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPacket {
    pub packet_type: PacketType,
    /// Chosen by the Prepare's sender; a reply carries the same, so the sender can match it.
    pub sequence: u64,
    /// In a Prepare, the least the receiver may accept; in a reply, the amount that arrived.
    pub prepare_amount: u64,
    /// The frames this version knows, in their order; frames of unknown types were dropped.
    pub frames: Vec<Frame>,
}

impl StreamPacket {
    /// Reads a packet. Bytes after the frames are ignored: RFC 0029 lets senders pad with zeros
    /// and reserves them for later versions.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > STREAM_PACKET_BYTES_MAX {
            return Err(DecodeError::TooLong(bytes.len()));
        }
        let mut r = Reader::new(bytes);
        let version = r.u8().map_err(DecodeError::Header)?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let kind = r.u8().map_err(DecodeError::Header)?;
        let packet_type = PacketType::from_u8(kind).ok_or(DecodeError::PacketType(kind))?;
        let sequence = r.var_uint().map_err(DecodeError::Header)?;
        let prepare_amount = r.var_uint().map_err(DecodeError::Header)?;
        let frames = read_frames(&mut r)?;
        Ok(StreamPacket { packet_type, sequence, prepare_amount, frames })
    }

    /// The packet's bytes, canonical (fewest-byte VarUInts and lengths), with no padding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }

    /// Appends the packet's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.push(self.packet_type.to_u8());
        write_var_uint(out, self.sequence);
        write_var_uint(out, self.prepare_amount);
        write_var_uint(out, self.frames.len() as u64);
        let mut scratch = Vec::new();
        for frame in &self.frames {
            frame.write(out, &mut scratch);
        }
    }
}

/// The frame count, then that many frames. The count is checked against what the remaining bytes
/// could hold before anything is reserved for it.
fn read_frames(r: &mut Reader<'_>) -> Result<Vec<Frame>, DecodeError> {
    let count = r.var_uint().map_err(DecodeError::Header)?;
    let fits = (r.remaining() / FRAME_BYTES_MIN).min(FRAMES_MAX) as u64;
    if count > fits {
        return Err(DecodeError::TooManyFrames(count));
    }
    let mut frames = Vec::with_capacity(count as usize);
    for _ in 0..count {
        match Frame::read(r) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => {}
            Err((kind, error)) => return Err(DecodeError::Frame { kind, error }),
        }
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::ErrorCode;

    fn sample() -> StreamPacket {
        StreamPacket {
            packet_type: PacketType::Prepare,
            sequence: 1,
            prepare_amount: 99,
            frames: vec![
                Frame::StreamMoney { stream_id: 1, shares: 1 },
                Frame::ConnectionAssetDetails { asset_code: "USD".into(), asset_scale: 9 },
            ],
        }
    }

    #[test]
    fn a_packet_round_trips() {
        let bytes = sample().encode();
        assert_eq!(&bytes[..5], &[1, 12, 1, 1, 1], "version, type, sequence 1");
        assert_eq!(StreamPacket::decode(&bytes), Ok(sample()));
    }

    #[test]
    fn the_empty_packet_matches_the_rfc_fixture() {
        // `sequence:0` of the RFC's StreamPacketFixtures.json: AQwBAAEAAQA=
        let empty =
            StreamPacket { packet_type: PacketType::Prepare, sequence: 0, prepare_amount: 0, frames: vec![] };
        assert_eq!(empty.encode(), [1, 12, 1, 0, 1, 0, 1, 0]);
    }

    #[test]
    fn zero_padding_after_the_frames_is_ignored() {
        let mut bytes = sample().encode();
        bytes.extend([0; 100]);
        assert_eq!(StreamPacket::decode(&bytes), Ok(sample()));
    }

    #[test]
    fn wrong_version_and_packet_type_are_refused() {
        let mut bytes = sample().encode();
        bytes[0] = 2;
        assert_eq!(StreamPacket::decode(&bytes), Err(DecodeError::Version(2)));
        bytes[0] = 1;
        bytes[1] = 15;
        assert_eq!(StreamPacket::decode(&bytes), Err(DecodeError::PacketType(15)));
    }

    #[test]
    fn a_frame_count_the_bytes_cannot_hold_is_refused_before_allocating() {
        // Announces 2^56 - 1 frames in a 12-byte packet.
        let bytes = [1, 12, 1, 0, 1, 0, 7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(StreamPacket::decode(&bytes), Err(DecodeError::TooManyFrames((1 << 56) - 1)));
        // Two frames announced, one there.
        let mut one = sample();
        one.frames.truncate(1);
        let mut bytes = one.encode();
        let count_at = 6;
        assert_eq!(bytes[count_at..count_at + 2], [1, 1]);
        bytes[count_at + 1] = 2;
        assert_eq!(
            StreamPacket::decode(&bytes),
            Err(DecodeError::Frame { kind: 0, error: FieldError::Truncated }),
            "the second frame's type byte is missing"
        );
        // Zero padding reads as frames of an unknown type 0 when the count asks for more.
        bytes.extend([0, 0]);
        assert_eq!(StreamPacket::decode(&bytes).map(|p| p.frames.len()), Ok(1));
    }

    #[test]
    fn more_than_the_ilp_data_limit_is_refused() {
        let bytes = vec![0u8; STREAM_PACKET_BYTES_MAX + 1];
        assert_eq!(StreamPacket::decode(&bytes), Err(DecodeError::TooLong(STREAM_PACKET_BYTES_MAX + 1)));
    }

    #[test]
    fn unknown_frames_are_dropped_and_known_ones_kept() {
        let mut bytes = vec![1, 13, 1, 5, 1, 7, 1, 3];
        bytes.extend([0x7f, 2, 0xAA, 0xBB]); // unknown type 0x7f
        bytes.extend([0x01, 3, 0x08, 1, b'x']); // ConnectionClose(ProtocolViolation, "x")
        bytes.extend([0x7e, 0]); // unknown, empty
        let packet = StreamPacket::decode(&bytes).unwrap();
        assert_eq!(packet.packet_type, PacketType::Fulfill);
        assert_eq!(
            packet.frames,
            [Frame::ConnectionClose { code: ErrorCode::ProtocolViolation, message: "x".into() }]
        );
    }
}
