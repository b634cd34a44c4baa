//! ILP v4 packets (RFC 0027) at the edge of the node.
//!
//! `interledger-packet` 0.4 is the wire codec, but it trusts its input: a var-octet length prefix
//! of `0x80` panics it, trailing bytes after a packet are accepted, non-digit timestamps and
//! non-ASCII error codes pass. So every byte string from the network goes through [`validate`]
//! first: canonical OER lengths, no trailing bytes, size limits, RFC 0015 addresses, digit
//! timestamps. Only then is it handed to the codec. After this module a [`Prepare`], [`Fulfill`]
//! or [`Reject`] is known to be well formed and is never re-checked.

mod address;
pub mod compat;

pub use address::{is_under, validate_address, AddressError, IlpAddress, ADDRESS_BYTES_MAX};
pub use interledger_packet::{ErrorClass, ErrorCode};

use bytes::{Bytes, BytesMut};
use std::time::SystemTime;

/// RFC 0027: the `data` field of any packet is at most 32,767 bytes.
pub const DATA_BYTES_MAX: usize = 32_767;
/// RFC 0027: a Reject's message is at most 8,191 bytes.
pub const MESSAGE_BYTES_MAX: usize = 8_191;
/// The largest well-formed packet: a Prepare with a maximal address and data, plus envelope.
pub const PACKET_BYTES_MAX: usize = 1 + 4 + 8 + 17 + 32 + (3 + ADDRESS_BYTES_MAX) + (3 + DATA_BYTES_MAX);

const TYPE_PREPARE: u8 = 12;
const TYPE_FULFILL: u8 = 13;
const TYPE_REJECT: u8 = 14;
const EXPIRY_LEN: usize = 17;

/// Why a byte string is not a well-formed packet. Each variant is something a peer sent wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("empty packet")]
    Empty,
    #[error("packet type {0} is not the expected {1}")]
    WrongType(u8, u8),
    #[error("packet is truncated")]
    Truncated,
    #[error("length prefix is malformed or not canonical")]
    Length,
    #[error("{0} bytes after the end of the packet")]
    TrailingBytes(usize),
    #[error("expiry timestamp is not 17 digits of a valid UTC time")]
    Timestamp,
    #[error("destination: {0}")]
    Address(#[from] AddressError),
    #[error("data is {0} bytes, more than the 32767 allowed")]
    DataTooLong(usize),
    #[error("message is {0} bytes, more than the 8191 allowed")]
    MessageTooLong(usize),
    #[error("error code is not a class letter (F, T, R) followed by two ASCII letters or digits")]
    ErrorCode,
}

/// A read cursor over untrusted bytes that never panics: every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PacketError> {
        let end = self.pos.checked_add(n).ok_or(PacketError::Truncated)?;
        let out = self.bytes.get(self.pos..end).ok_or(PacketError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PacketError> {
        Ok(self.take(1)?[0])
    }

    /// OER length determinant, canonical form only: values under 128 in one byte, otherwise
    /// `0x80 | n` followed by `n` big-endian bytes without leading zeros. `n` is at most 2
    /// because no valid ILP packet field is 65,536 bytes or longer.
    fn length(&mut self) -> Result<usize, PacketError> {
        let first = self.u8()?;
        if first & 0x80 == 0 {
            return Ok(first as usize);
        }
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 2 {
            return Err(PacketError::Length);
        }
        let bytes = self.take(n)?;
        if bytes[0] == 0 {
            return Err(PacketError::Length);
        }
        let value = bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        if value < 128 {
            return Err(PacketError::Length);
        }
        Ok(value)
    }

    fn var_octets(&mut self) -> Result<&'a [u8], PacketError> {
        let len = self.length()?;
        self.take(len)
    }

    /// Reads the `type, length, content` envelope and checks nothing follows it.
    fn envelope(bytes: &'a [u8], expected: u8) -> Result<Reader<'a>, PacketError> {
        let mut outer = Reader::new(bytes);
        let kind = outer.u8().map_err(|_| PacketError::Empty)?;
        if kind != expected {
            return Err(PacketError::WrongType(kind, expected));
        }
        let content = outer.var_octets()?;
        outer.finish()?;
        Ok(Reader::new(content))
    }

    fn finish(&self) -> Result<(), PacketError> {
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            n => Err(PacketError::TrailingBytes(n)),
        }
    }
}

fn check_data(data: &[u8]) -> Result<(), PacketError> {
    if data.len() > DATA_BYTES_MAX {
        return Err(PacketError::DataTooLong(data.len()));
    }
    Ok(())
}

/// The 17-digit `YYYYMMDDHHmmSSfff` timestamp, checked digit by digit and for a real date.
fn parse_timestamp(digits: &[u8]) -> Result<SystemTime, PacketError> {
    if digits.len() != EXPIRY_LEN || !digits.iter().all(u8::is_ascii_digit) {
        return Err(PacketError::Timestamp);
    }
    let n =
        |from: usize, to: usize| digits[from..to].iter().fold(0u32, |acc, d| acc * 10 + (d - b'0') as u32);
    use chrono::{NaiveDate, TimeZone, Utc};
    let date = NaiveDate::from_ymd_opt(n(0, 4) as i32, n(4, 6), n(6, 8)).ok_or(PacketError::Timestamp)?;
    let time =
        date.and_hms_milli_opt(n(8, 10), n(10, 12), n(12, 14), n(14, 17)).ok_or(PacketError::Timestamp)?;
    Ok(SystemTime::from(Utc.from_utc_datetime(&time)))
}

/// Validates a Prepare's bytes completely: Ok means it is one canonical, well-formed Prepare.
pub fn validate_prepare(bytes: &[u8]) -> Result<(), PacketError> {
    decode_prepare(bytes).map(|_| ())
}

/// Where the fields of a validated Prepare sit in its bytes.
#[derive(Clone, Copy, Debug)]
struct PrepareLayout {
    /// Offset of the amount; the expiry and condition follow at fixed offsets.
    content: usize,
    amount: u64,
    expires_at: SystemTime,
    destination: (usize, usize),
    data: (usize, usize),
}

/// The one decoder of incoming Prepares: every field checked, every offset recorded.
fn decode_prepare(bytes: &[u8]) -> Result<PrepareLayout, PacketError> {
    let mut r = Reader::envelope(bytes, TYPE_PREPARE)?;
    let content = bytes.len() - r.bytes.len();
    let amount = u64::from_be_bytes(r.take(8)?.try_into().expect("8 bytes"));
    let expires_at = parse_timestamp(r.take(EXPIRY_LEN)?)?;
    r.take(32)?; // execution condition
    let destination = r.var_octets()?;
    validate_address(destination)?;
    let destination_at = content + r.pos - destination.len();
    let data = r.var_octets()?;
    check_data(data)?;
    let data_at = content + r.pos - data.len();
    r.finish()?;
    Ok(PrepareLayout {
        content,
        amount,
        expires_at,
        destination: (destination_at, destination_at + destination.len()),
        data: (data_at, data_at + data.len()),
    })
}

/// An ILP Prepare that passed [`validate_prepare`], held as its wire bytes.
///
/// Incoming Prepares are decoded by this module's validating reader rather than by
/// `interledger-packet`: the validator has to read every field anyway, and the codec's own parse
/// (a regex per address, chrono format strings) cost 15 % of the node's CPU per packet. The codec
/// stays the reference: a property test checks that it parses every Prepare we accept to the same
/// fields, and it encodes every packet the node builds.
#[derive(Clone)]
pub struct Prepare {
    bytes: BytesMut,
    layout: PrepareLayout,
}

impl Prepare {
    /// Validates and decodes a Prepare received from the network.
    pub fn parse(bytes: &[u8]) -> Result<Self, PacketError> {
        let layout = decode_prepare(bytes)?;
        Ok(Prepare { bytes: BytesMut::from(bytes), layout })
    }

    /// Builds a Prepare with the codec (ILDCP requests, clients and tests).
    /// Panics if `data` is over [`DATA_BYTES_MAX`]: that is a caller's bug, not network input.
    pub fn build(
        destination: &IlpAddress,
        amount: u64,
        expires_at: SystemTime,
        condition: &[u8; 32],
        data: &[u8],
    ) -> Self {
        let packet = interledger_packet::PrepareBuilder {
            amount,
            expires_at,
            execution_condition: condition,
            destination: destination.wire().clone(),
            data,
        }
        .build();
        let bytes = compat::from_04(packet.into());
        Prepare::parse(&bytes).expect("the codec builds valid Prepares")
    }

    pub fn amount(&self) -> u64 {
        self.layout.amount
    }

    pub fn expires_at(&self) -> SystemTime {
        self.layout.expires_at
    }

    pub fn execution_condition(&self) -> &[u8; 32] {
        let at = self.layout.content + 8 + EXPIRY_LEN;
        self.bytes[at..at + 32].try_into().expect("32 bytes")
    }

    /// The destination address; validated, so always RFC 0015 ASCII.
    pub fn destination(&self) -> &str {
        let (from, to) = self.layout.destination;
        std::str::from_utf8(&self.bytes[from..to]).expect("validated address is ASCII")
    }

    pub fn data(&self) -> &[u8] {
        let (from, to) = self.layout.data;
        &self.bytes[from..to]
    }

    /// Rewrites amount and expiry in place for the next hop. Both fields have fixed widths, so
    /// nothing else moves. The expiry must be a time whose year has four digits.
    pub fn set_amount_and_expiry(&mut self, amount: u64, expires_at: SystemTime) {
        let at = self.layout.content;
        self.bytes[at..at + 8].copy_from_slice(&amount.to_be_bytes());
        let digits = format_timestamp(expires_at);
        self.bytes[at + 8..at + 8 + EXPIRY_LEN].copy_from_slice(&digits);
        self.layout.amount = amount;
        // Keep what the wire now says (millisecond precision), not the finer input.
        self.layout.expires_at = parse_timestamp(&digits).expect("formatted timestamps parse");
    }

    /// A copy of the wire bytes.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(&self.bytes)
    }

    /// The wire bytes, without copying.
    pub fn into_bytes(self) -> Bytes {
        self.bytes.freeze()
    }
}

/// `YYYYMMDDHHmmSSfff` in UTC. Times outside years 0000-9999 are clamped to that range (no
/// packet can carry them); the node only ever writes expiries shortly after now.
fn format_timestamp(t: SystemTime) -> [u8; EXPIRY_LEN] {
    use chrono::{DateTime, Datelike, Timelike, Utc};
    let t = DateTime::<Utc>::from(t);
    let fields = [
        (t.year().clamp(0, 9999) as u32, 4),
        (t.month(), 2),
        (t.day(), 2),
        (t.hour(), 2),
        (t.minute(), 2),
        (t.second().min(59), 2),
        (t.timestamp_subsec_millis().min(999), 3),
    ];
    let mut out = [b'0'; EXPIRY_LEN];
    let mut end = 0;
    for (mut value, width) in fields {
        end += width;
        for i in (end - width..end).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    out
}

impl std::fmt::Debug for Prepare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the data: it may carry end-to-end payloads.
        f.debug_struct("Prepare")
            .field("destination", &self.destination())
            .field("amount", &self.amount())
            .field("data_len", &self.data().len())
            .finish()
    }
}

/// A validated ILP Fulfill, kept as the bytes it arrived in so it is relayed unchanged.
#[derive(Clone, Debug)]
pub struct Fulfill {
    bytes: Bytes,
    fulfillment: [u8; 32],
}

impl Fulfill {
    pub fn parse(bytes: Bytes) -> Result<Self, PacketError> {
        let mut r = Reader::envelope(&bytes, TYPE_FULFILL)?;
        let mut fulfillment = [0u8; 32];
        fulfillment.copy_from_slice(r.take(32)?);
        check_data(r.var_octets()?)?;
        r.finish()?;
        Ok(Fulfill { bytes, fulfillment })
    }

    pub fn build(fulfillment: &[u8; 32], data: &[u8]) -> Self {
        let packet = interledger_packet::FulfillBuilder { fulfillment, data }.build();
        Fulfill { bytes: compat::from_04(packet.into()), fulfillment: *fulfillment }
    }

    pub fn fulfillment(&self) -> &[u8; 32] {
        &self.fulfillment
    }

    pub fn data(&self) -> &[u8] {
        let mut r = Reader::envelope(&self.bytes, TYPE_FULFILL).expect("validated fulfill");
        let _ = r.take(32);
        r.var_octets().expect("validated fulfill")
    }

    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }
}

/// A validated ILP Reject, kept as its bytes. `triggered_by` may be empty (STREAM receivers send
/// that), which the codec's own parser refuses, so Rejects are read here and only built by it.
#[derive(Clone, Debug)]
pub struct Reject {
    bytes: Bytes,
    code: ErrorCode,
}

impl Reject {
    pub fn parse(bytes: Bytes) -> Result<Self, PacketError> {
        let mut r = Reader::envelope(&bytes, TYPE_REJECT)?;
        let code = r.take(3)?;
        let valid_code =
            matches!(code[0], b'F' | b'T' | b'R') && code[1..].iter().all(u8::is_ascii_alphanumeric);
        if !valid_code {
            return Err(PacketError::ErrorCode);
        }
        let code = ErrorCode::new([code[0], code[1], code[2]]);
        let triggered_by = r.var_octets()?;
        if !triggered_by.is_empty() {
            validate_address(triggered_by)?;
        }
        let message = r.var_octets()?;
        if message.len() > MESSAGE_BYTES_MAX {
            return Err(PacketError::MessageTooLong(message.len()));
        }
        check_data(r.var_octets()?)?;
        r.finish()?;
        Ok(Reject { bytes, code })
    }

    /// A Reject triggered by `by` (this node). Messages longer than the limit are cut.
    pub fn build(code: ErrorCode, by: &IlpAddress, message: &str, data: &[u8]) -> Self {
        let triggered_by = by.wire();
        let message = &message.as_bytes()[..message.len().min(MESSAGE_BYTES_MAX)];
        let packet = interledger_packet::RejectBuilder {
            code,
            message,
            triggered_by: Some(triggered_by),
            data: &data[..data.len().min(DATA_BYTES_MAX)],
        }
        .build();
        Reject { bytes: compat::from_04(packet.into()), code }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The `triggered_by` address, empty when the sender left it out.
    pub fn triggered_by(&self) -> &str {
        self.fields().0
    }

    pub fn message(&self) -> &[u8] {
        self.fields().1
    }

    pub fn data(&self) -> &[u8] {
        self.fields().2
    }

    /// (triggered_by, message, data). The message is raw bytes: RFC 0027 says UTF-8, but peers
    /// are not trusted to comply and it is relayed, not interpreted.
    fn fields(&self) -> (&str, &[u8], &[u8]) {
        let mut r = Reader::envelope(&self.bytes, TYPE_REJECT).expect("validated reject");
        let _ = r.take(3);
        let by = r.var_octets().expect("validated reject");
        let message = r.var_octets().expect("validated reject");
        let data = r.var_octets().expect("validated reject");
        (std::str::from_utf8(by).unwrap_or(""), message, data)
    }

    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }
}

/// What came back for a forwarded Prepare.
#[derive(Clone, Debug)]
pub enum Response {
    Fulfill(Fulfill),
    Reject(Reject),
}

impl Response {
    /// Validates a Fulfill or Reject received from the network, by its first byte.
    pub fn parse(bytes: Bytes) -> Result<Self, PacketError> {
        match bytes.first() {
            Some(&TYPE_FULFILL) => Fulfill::parse(bytes).map(Response::Fulfill),
            Some(&TYPE_REJECT) => Reject::parse(bytes).map(Response::Reject),
            Some(&other) => Err(PacketError::WrongType(other, TYPE_FULFILL)),
            None => Err(PacketError::Empty),
        }
    }

    pub fn as_bytes(&self) -> &Bytes {
        match self {
            Response::Fulfill(f) => f.as_bytes(),
            Response::Reject(r) => r.as_bytes(),
        }
    }
}

/// Reads one OER var-octet string from the front of `bytes`: `(value, rest)`. For protocols
/// carried in packet data (ILDCP), with the same canonical-length rules as packets.
pub fn read_var_octets(bytes: &[u8]) -> Result<(&[u8], &[u8]), PacketError> {
    let mut r = Reader::new(bytes);
    let value = r.var_octets()?;
    Ok((value, &bytes[r.pos..]))
}

/// Appends `value` as an OER var-octet string (canonical length prefix).
pub fn write_var_octets(out: &mut Vec<u8>, value: &[u8]) {
    let len = value.len();
    if len < 128 {
        out.push(len as u8);
    } else {
        let be = (len as u64).to_be_bytes();
        let skip = be.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&be[skip..]);
    }
    out.extend_from_slice(value);
}

/// RFC 0027 F08 data: the amount received and the maximum, both u64 big-endian.
pub fn amount_too_large_data(received: u64, maximum: u64) -> [u8; 16] {
    let mut data = [0u8; 16];
    data[..8].copy_from_slice(&received.to_be_bytes());
    data[8..].copy_from_slice(&maximum.to_be_bytes());
    data
}

#[cfg(test)]
mod tests;
