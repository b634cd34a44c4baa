//! ILDCP (RFC 0031): a child asks `peer.config` and learns its ILP address, asset code and scale.
//!
//! The request is a Prepare to `peer.config` with amount 0; the response is a Fulfill with the
//! all-zero fulfillment whose data is `address (var-octets) · scale (u8) · code (var-octets)`.

use crate::packet::{read_var_octets, write_var_octets, Fulfill, IlpAddress, PacketError, Prepare};
use std::time::{Duration, SystemTime};

pub const DESTINATION: &str = "peer.config";
/// The fixed ILDCP fulfillment, and SHA-256 of it as the request's condition.
pub const FULFILLMENT: [u8; 32] = [0; 32];
pub const CONDITION: [u8; 32] = [
    0x66, 0x68, 0x7a, 0xad, 0xf8, 0x62, 0xbd, 0x77, 0x6c, 0x8f, 0xc1, 0x8b, 0x8e, 0x9f, 0x8e, 0x20, 0x08,
    0x97, 0x14, 0x85, 0x6e, 0xe2, 0x33, 0xb3, 0x90, 0x2a, 0x59, 0x1d, 0x0d, 0x5f, 0x29, 0x25,
];

/// What a child learns about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IldcpInfo {
    pub address: String,
    pub asset_scale: u8,
    pub asset_code: String,
}

/// The Fulfill answering a child's `peer.config` request.
pub fn response(address: &IlpAddress, asset_code: &str, asset_scale: u8) -> Fulfill {
    let mut data = Vec::with_capacity(address.as_str().len() + asset_code.len() + 6);
    write_var_octets(&mut data, address.as_str().as_bytes());
    data.push(asset_scale);
    write_var_octets(&mut data, asset_code.as_bytes());
    Fulfill::build(&FULFILLMENT, &data)
}

/// A `peer.config` request (for clients and tests).
pub fn request() -> Prepare {
    let dest = IlpAddress::parse(DESTINATION).expect("peer.config is an ILP address");
    Prepare::build(&dest, 0, SystemTime::now() + Duration::from_secs(30), &CONDITION, &[])
}

/// Reads an ILDCP response's data (for clients and tests).
pub fn parse_response(data: &[u8]) -> Result<IldcpInfo, PacketError> {
    let (address, rest) = read_var_octets(data)?;
    let (&asset_scale, rest) = rest.split_first().ok_or(PacketError::Truncated)?;
    let (code, rest) = read_var_octets(rest)?;
    if !rest.is_empty() {
        return Err(PacketError::TrailingBytes(rest.len()));
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| PacketError::Truncated);
    Ok(IldcpInfo { address: text(address)?, asset_scale, asset_code: text(code)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_is_the_hash_of_the_zero_fulfillment() {
        let digest = ring::digest::digest(&ring::digest::SHA256, &FULFILLMENT);
        assert_eq!(digest.as_ref(), &CONDITION);
    }

    #[test]
    fn response_round_trips() {
        let address = IlpAddress::parse("test.thitsax.alice").unwrap();
        let f = response(&address, "USD", 9);
        let info = parse_response(f.data()).unwrap();
        assert_eq!(
            info,
            IldcpInfo { address: "test.thitsax.alice".into(), asset_scale: 9, asset_code: "USD".into() }
        );
        assert_eq!(f.fulfillment(), &FULFILLMENT);
    }
}
