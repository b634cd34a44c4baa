//! STREAM frames (RFC 0029 § 5.3): each is a type byte and a var-octet string of contents.
//!
//! Decoding follows the JS reference (`ilp-protocol-stream` 2.7.1) where the RFC leaves room:
//! bytes after a known frame's fields, inside its contents, are ignored (a later version may add
//! fields); frames of unknown types are skipped whole; error codes outside the RFC's table are
//! kept as numbers; strings are UTF-8 with invalid sequences replaced.

use super::oer::{write_utf8, write_var_uint, FieldError, Reader};
use crate::packet::write_var_octets;

/// The error codes of `StreamClose` and `ConnectionClose` frames (RFC 0029 § 5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    NoError,
    InternalError,
    EndpointBusy,
    FlowControlError,
    StreamIdError,
    StreamStateError,
    FrameFormatError,
    ProtocolViolation,
    ApplicationError,
    /// A code the RFC does not define (never 1 to 9: [`ErrorCode::from_u8`] names those).
    Unknown(u8),
}

impl ErrorCode {
    pub fn from_u8(code: u8) -> Self {
        match code {
            0x01 => ErrorCode::NoError,
            0x02 => ErrorCode::InternalError,
            0x03 => ErrorCode::EndpointBusy,
            0x04 => ErrorCode::FlowControlError,
            0x05 => ErrorCode::StreamIdError,
            0x06 => ErrorCode::StreamStateError,
            0x07 => ErrorCode::FrameFormatError,
            0x08 => ErrorCode::ProtocolViolation,
            0x09 => ErrorCode::ApplicationError,
            other => ErrorCode::Unknown(other),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            ErrorCode::NoError => 0x01,
            ErrorCode::InternalError => 0x02,
            ErrorCode::EndpointBusy => 0x03,
            ErrorCode::FlowControlError => 0x04,
            ErrorCode::StreamIdError => 0x05,
            ErrorCode::StreamStateError => 0x06,
            ErrorCode::FrameFormatError => 0x07,
            ErrorCode::ProtocolViolation => 0x08,
            ErrorCode::ApplicationError => 0x09,
            ErrorCode::Unknown(code) => code,
        }
    }
}

/// The frame type bytes (RFC 0029 § 5.3).
mod kind {
    pub const CONNECTION_CLOSE: u8 = 0x01;
    pub const CONNECTION_NEW_ADDRESS: u8 = 0x02;
    pub const CONNECTION_MAX_DATA: u8 = 0x03;
    pub const CONNECTION_DATA_BLOCKED: u8 = 0x04;
    pub const CONNECTION_MAX_STREAM_ID: u8 = 0x05;
    pub const CONNECTION_STREAM_ID_BLOCKED: u8 = 0x06;
    pub const CONNECTION_ASSET_DETAILS: u8 = 0x07;
    pub const STREAM_CLOSE: u8 = 0x10;
    pub const STREAM_MONEY: u8 = 0x11;
    pub const STREAM_MAX_MONEY: u8 = 0x12;
    pub const STREAM_MONEY_BLOCKED: u8 = 0x13;
    pub const STREAM_DATA: u8 = 0x14;
    pub const STREAM_MAX_DATA: u8 = 0x15;
    pub const STREAM_DATA_BLOCKED: u8 = 0x16;
    pub const STREAM_RECEIPT: u8 = 0x17;
}

/// One STREAM frame. Amounts are in the units of the endpoint that sends the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The sender closes the connection, normally or with an error.
    ConnectionClose {
        code: ErrorCode,
        message: String,
    },
    /// The sender's ILP address. @interledger/pay sends it empty, only to ask for asset details.
    ConnectionNewAddress {
        source_address: String,
    },
    /// Total bytes of data the sender will accept on the connection.
    ConnectionMaxData {
        max_offset: u64,
    },
    ConnectionDataBlocked {
        max_offset: u64,
    },
    /// The highest stream id the sender will accept.
    ConnectionMaxStreamId {
        max_stream_id: u64,
    },
    ConnectionStreamIdBlocked {
        max_stream_id: u64,
    },
    /// The sender's asset (code and scale), fixed for the connection's lifetime.
    ConnectionAssetDetails {
        asset_code: String,
        asset_scale: u8,
    },
    StreamClose {
        stream_id: u64,
        code: ErrorCode,
        message: String,
    },
    /// This stream's share of the Prepare's amount: `shares` over all `StreamMoney` shares.
    StreamMoney {
        stream_id: u64,
        shares: u64,
    },
    /// How much the sender will receive on the stream in total, and has received so far.
    StreamMaxMoney {
        stream_id: u64,
        receive_max: u64,
        total_received: u64,
    },
    StreamMoneyBlocked {
        stream_id: u64,
        send_max: u64,
        total_sent: u64,
    },
    StreamData {
        stream_id: u64,
        offset: u64,
        data: Vec<u8>,
    },
    StreamMaxData {
        stream_id: u64,
        max_offset: u64,
    },
    StreamDataBlocked {
        stream_id: u64,
        max_offset: u64,
    },
    /// An RFC 0039 receipt: proof of the total received on the stream, opaque here.
    StreamReceipt {
        stream_id: u64,
        receipt: Vec<u8>,
    },
}

impl Frame {
    /// The frame's type byte.
    pub fn kind(&self) -> u8 {
        match self {
            Frame::ConnectionClose { .. } => kind::CONNECTION_CLOSE,
            Frame::ConnectionNewAddress { .. } => kind::CONNECTION_NEW_ADDRESS,
            Frame::ConnectionMaxData { .. } => kind::CONNECTION_MAX_DATA,
            Frame::ConnectionDataBlocked { .. } => kind::CONNECTION_DATA_BLOCKED,
            Frame::ConnectionMaxStreamId { .. } => kind::CONNECTION_MAX_STREAM_ID,
            Frame::ConnectionStreamIdBlocked { .. } => kind::CONNECTION_STREAM_ID_BLOCKED,
            Frame::ConnectionAssetDetails { .. } => kind::CONNECTION_ASSET_DETAILS,
            Frame::StreamClose { .. } => kind::STREAM_CLOSE,
            Frame::StreamMoney { .. } => kind::STREAM_MONEY,
            Frame::StreamMaxMoney { .. } => kind::STREAM_MAX_MONEY,
            Frame::StreamMoneyBlocked { .. } => kind::STREAM_MONEY_BLOCKED,
            Frame::StreamData { .. } => kind::STREAM_DATA,
            Frame::StreamMaxData { .. } => kind::STREAM_MAX_DATA,
            Frame::StreamDataBlocked { .. } => kind::STREAM_DATA_BLOCKED,
            Frame::StreamReceipt { .. } => kind::STREAM_RECEIPT,
        }
    }

    /// The stream a stream-level frame is about; `None` for connection-level frames.
    pub fn stream_id(&self) -> Option<u64> {
        match self {
            Frame::StreamClose { stream_id, .. }
            | Frame::StreamMoney { stream_id, .. }
            | Frame::StreamMaxMoney { stream_id, .. }
            | Frame::StreamMoneyBlocked { stream_id, .. }
            | Frame::StreamData { stream_id, .. }
            | Frame::StreamMaxData { stream_id, .. }
            | Frame::StreamDataBlocked { stream_id, .. }
            | Frame::StreamReceipt { stream_id, .. } => Some(*stream_id),
            _ => None,
        }
    }

    /// Reads one frame from `r`: `Ok(None)` for a well-formed frame of a type this version does not
    /// know (skipped, as RFC 0029 § 5.3 requires).
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Option<Frame>, (u8, FieldError)> {
        let kind = r.u8().map_err(|e| (0, e))?;
        let contents = r.var_octets().map_err(|e| (kind, e))?;
        Frame::read_contents(kind, &mut Reader::new(contents)).map_err(|e| (kind, e))
    }

    fn read_contents(kind: u8, c: &mut Reader<'_>) -> Result<Option<Frame>, FieldError> {
        let frame = match kind {
            kind::CONNECTION_CLOSE => {
                Frame::ConnectionClose { code: ErrorCode::from_u8(c.u8()?), message: c.utf8()? }
            }
            kind::CONNECTION_NEW_ADDRESS => Frame::ConnectionNewAddress { source_address: c.utf8()? },
            kind::CONNECTION_MAX_DATA => Frame::ConnectionMaxData { max_offset: c.var_uint()? },
            kind::CONNECTION_DATA_BLOCKED => Frame::ConnectionDataBlocked { max_offset: c.var_uint()? },
            kind::CONNECTION_MAX_STREAM_ID => Frame::ConnectionMaxStreamId { max_stream_id: c.var_uint()? },
            kind::CONNECTION_STREAM_ID_BLOCKED => {
                Frame::ConnectionStreamIdBlocked { max_stream_id: c.var_uint()? }
            }
            kind::CONNECTION_ASSET_DETAILS => {
                Frame::ConnectionAssetDetails { asset_code: c.utf8()?, asset_scale: c.u8()? }
            }
            kind::STREAM_CLOSE => Frame::StreamClose {
                stream_id: c.var_uint()?,
                code: ErrorCode::from_u8(c.u8()?),
                message: c.utf8()?,
            },
            kind::STREAM_MONEY => Frame::StreamMoney { stream_id: c.var_uint()?, shares: c.var_uint()? },
            kind::STREAM_MAX_MONEY => Frame::StreamMaxMoney {
                stream_id: c.var_uint()?,
                receive_max: c.var_uint_saturating()?,
                total_received: c.var_uint()?,
            },
            kind::STREAM_MONEY_BLOCKED => Frame::StreamMoneyBlocked {
                stream_id: c.var_uint()?,
                send_max: c.var_uint_saturating()?,
                total_sent: c.var_uint()?,
            },
            kind::STREAM_DATA => Frame::StreamData {
                stream_id: c.var_uint()?,
                offset: c.var_uint()?,
                data: c.var_octets()?.to_vec(),
            },
            kind::STREAM_MAX_DATA => {
                Frame::StreamMaxData { stream_id: c.var_uint()?, max_offset: c.var_uint()? }
            }
            kind::STREAM_DATA_BLOCKED => {
                Frame::StreamDataBlocked { stream_id: c.var_uint()?, max_offset: c.var_uint()? }
            }
            kind::STREAM_RECEIPT => {
                Frame::StreamReceipt { stream_id: c.var_uint()?, receipt: c.var_octets()?.to_vec() }
            }
            _ => return Ok(None),
        };
        Ok(Some(frame))
    }

    /// Appends the frame: its type, then its contents as a var-octet string. `scratch` holds the
    /// contents while their length is not yet known (reused across frames to spare allocations).
    pub(super) fn write(&self, out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        scratch.clear();
        self.write_contents(scratch);
        out.push(self.kind());
        write_var_octets(out, scratch);
    }

    fn write_contents(&self, c: &mut Vec<u8>) {
        match self {
            Frame::ConnectionClose { code, message } => {
                c.push(code.to_u8());
                write_utf8(c, message);
            }
            Frame::ConnectionNewAddress { source_address } => write_utf8(c, source_address),
            Frame::ConnectionMaxData { max_offset } | Frame::ConnectionDataBlocked { max_offset } => {
                write_var_uint(c, *max_offset)
            }
            Frame::ConnectionMaxStreamId { max_stream_id }
            | Frame::ConnectionStreamIdBlocked { max_stream_id } => write_var_uint(c, *max_stream_id),
            Frame::ConnectionAssetDetails { asset_code, asset_scale } => {
                write_utf8(c, asset_code);
                c.push(*asset_scale);
            }
            Frame::StreamClose { stream_id, code, message } => {
                write_var_uint(c, *stream_id);
                c.push(code.to_u8());
                write_utf8(c, message);
            }
            Frame::StreamMoney { stream_id, shares } => {
                write_var_uint(c, *stream_id);
                write_var_uint(c, *shares);
            }
            Frame::StreamMaxMoney { stream_id, receive_max: first, total_received: second }
            | Frame::StreamMoneyBlocked { stream_id, send_max: first, total_sent: second } => {
                write_var_uint(c, *stream_id);
                write_var_uint(c, *first);
                write_var_uint(c, *second);
            }
            Frame::StreamData { stream_id, offset, data } => {
                write_var_uint(c, *stream_id);
                write_var_uint(c, *offset);
                write_var_octets(c, data);
            }
            Frame::StreamMaxData { stream_id, max_offset }
            | Frame::StreamDataBlocked { stream_id, max_offset } => {
                write_var_uint(c, *stream_id);
                write_var_uint(c, *max_offset);
            }
            Frame::StreamReceipt { stream_id, receipt } => {
                write_var_uint(c, *stream_id);
                write_var_octets(c, receipt);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame) -> Vec<u8> {
        let mut out = Vec::new();
        frame.write(&mut out, &mut Vec::new());
        let mut r = Reader::new(&out);
        assert_eq!(Frame::read(&mut r), Ok(Some(frame)));
        assert_eq!(r.remaining(), 0);
        out
    }

    #[test]
    fn error_codes_keep_their_number() {
        for code in 0..=u8::MAX {
            assert_eq!(ErrorCode::from_u8(code).to_u8(), code);
        }
        assert_eq!(ErrorCode::from_u8(1), ErrorCode::NoError);
        assert_eq!(ErrorCode::from_u8(9), ErrorCode::ApplicationError);
        assert_eq!(ErrorCode::from_u8(0), ErrorCode::Unknown(0));
        assert_eq!(ErrorCode::from_u8(255), ErrorCode::Unknown(255));
    }

    #[test]
    fn frames_round_trip_at_edge_values() {
        assert_eq!(
            round_trip(Frame::StreamMoney { stream_id: 1, shares: 0 }),
            [0x11, 4, 1, 1, 1, 0],
            "type, contents length, two VarUInts"
        );
        round_trip(Frame::StreamMaxMoney { stream_id: u64::MAX, receive_max: u64::MAX, total_received: 0 });
        round_trip(Frame::StreamMoneyBlocked { stream_id: 0, send_max: u64::MAX, total_sent: u64::MAX });
        round_trip(Frame::ConnectionNewAddress { source_address: String::new() });
        round_trip(Frame::ConnectionAssetDetails { asset_code: "XRP".into(), asset_scale: 255 });
        round_trip(Frame::StreamClose { stream_id: 7, code: ErrorCode::Unknown(200), message: "é".into() });
        // Contents past 127 bytes take a two-byte length prefix.
        round_trip(Frame::StreamData { stream_id: 1, offset: 1 << 40, data: vec![9; 300] });
        round_trip(Frame::StreamReceipt { stream_id: 1, receipt: vec![1; 58] });
    }

    #[test]
    fn unknown_frame_types_are_skipped_whole() {
        let bytes = [0x50, 3, 1, 2, 3, 0x03, 2, 1, 5];
        let mut r = Reader::new(&bytes);
        assert_eq!(Frame::read(&mut r), Ok(None));
        assert_eq!(Frame::read(&mut r), Ok(Some(Frame::ConnectionMaxData { max_offset: 5 })));
    }

    #[test]
    fn bytes_after_a_known_frames_fields_are_ignored() {
        let bytes = [0x03, 4, 1, 5, 0xAA, 0xBB];
        assert_eq!(
            Frame::read(&mut Reader::new(&bytes)),
            Ok(Some(Frame::ConnectionMaxData { max_offset: 5 }))
        );
    }

    #[test]
    fn a_known_frame_missing_a_field_is_an_error_naming_its_type() {
        let bytes = [0x11, 2, 1, 1];
        assert_eq!(Frame::read(&mut Reader::new(&bytes)), Err((0x11, FieldError::Truncated)));
        // The contents' length says more than is there.
        assert_eq!(Frame::read(&mut Reader::new(&[0x12, 9, 1])), Err((0x12, FieldError::Truncated)));
    }
}
