//! Known answers from the JS reference, and property tests of the decoders.
//!
//! The vectors are `tests/interop/stream-vectors.json`, printed by
//! `tests/interop/stream-vectors.js` with `ilp-protocol-stream` 2.7.1's own serializer, parser
//! and crypto helpers. Each test says which direction it checks: JS's bytes read by us, or our
//! bytes equal to JS's.

use super::*;
use proptest::prelude::*;
use serde_json::{json, Value};

const VECTORS: &str = include_str!("../../tests/interop/stream-vectors.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("the committed vectors are JSON")
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("a hex string")).expect("hex")
}

fn js_keys(v: &Value) -> StreamKeys {
    let secret: [u8; 32] = bytes(&v["secret"]).try_into().expect("32 bytes");
    SharedSecret::from_bytes(secret).keys()
}

/// A packet as the JS vectors describe it: the reference's field names, u64s as decimal strings,
/// byte strings as hex. Comparing with this checks what each field means, not only its bytes.
fn describe(packet: &StreamPacket) -> Value {
    json!({
        "sequence": packet.sequence.to_string(),
        "ilpPacketType": packet.packet_type.to_u8(),
        "prepareAmount": packet.prepare_amount.to_string(),
        "frames": packet.frames.iter().map(describe_frame).collect::<Vec<_>>(),
    })
}

fn describe_frame(frame: &Frame) -> Value {
    let n = |v: &u64| Value::String(v.to_string());
    let (name, mut fields) = match frame {
        Frame::ConnectionClose { code, message } => {
            ("ConnectionClose", json!({"errorCode": code.to_u8(), "errorMessage": message}))
        }
        Frame::ConnectionNewAddress { source_address } => {
            ("ConnectionNewAddress", json!({"sourceAccount": source_address}))
        }
        Frame::ConnectionMaxData { max_offset } => ("ConnectionMaxData", json!({"maxOffset": n(max_offset)})),
        Frame::ConnectionDataBlocked { max_offset } => {
            ("ConnectionDataBlocked", json!({"maxOffset": n(max_offset)}))
        }
        Frame::ConnectionMaxStreamId { max_stream_id } => {
            ("ConnectionMaxStreamId", json!({"maxStreamId": n(max_stream_id)}))
        }
        Frame::ConnectionStreamIdBlocked { max_stream_id } => {
            ("ConnectionStreamIdBlocked", json!({"maxStreamId": n(max_stream_id)}))
        }
        Frame::ConnectionAssetDetails { asset_code, asset_scale } => (
            "ConnectionAssetDetails",
            json!({"sourceAssetCode": asset_code, "sourceAssetScale": asset_scale}),
        ),
        Frame::StreamClose { stream_id, code, message } => (
            "StreamClose",
            json!({"streamId": n(stream_id), "errorCode": code.to_u8(), "errorMessage": message}),
        ),
        Frame::StreamMoney { stream_id, shares } => {
            ("StreamMoney", json!({"streamId": n(stream_id), "shares": n(shares)}))
        }
        Frame::StreamMaxMoney { stream_id, receive_max, total_received } => (
            "StreamMaxMoney",
            json!({"streamId": n(stream_id), "receiveMax": n(receive_max), "totalReceived": n(total_received)}),
        ),
        Frame::StreamMoneyBlocked { stream_id, send_max, total_sent } => (
            "StreamMoneyBlocked",
            json!({"streamId": n(stream_id), "sendMax": n(send_max), "totalSent": n(total_sent)}),
        ),
        Frame::StreamData { stream_id, offset, data } => {
            ("StreamData", json!({"streamId": n(stream_id), "offset": n(offset), "data": hex::encode(data)}))
        }
        Frame::StreamMaxData { stream_id, max_offset } => {
            ("StreamMaxData", json!({"streamId": n(stream_id), "maxOffset": n(max_offset)}))
        }
        Frame::StreamDataBlocked { stream_id, max_offset } => {
            ("StreamDataBlocked", json!({"streamId": n(stream_id), "maxOffset": n(max_offset)}))
        }
        Frame::StreamReceipt { stream_id, receipt } => {
            ("StreamReceipt", json!({"streamId": n(stream_id), "receipt": hex::encode(receipt)}))
        }
    };
    fields["type"] = json!(frame.kind());
    fields["name"] = json!(name);
    fields
}

/// The packet `stream-vectors.js` builds with every frame type, built here the same way.
fn all_frames() -> StreamPacket {
    StreamPacket {
        packet_type: PacketType::Prepare,
        sequence: u64::MAX,
        prepare_amount: 1_000_000_000_000,
        frames: vec![
            Frame::ConnectionClose { code: ErrorCode::ApplicationError, message: "payment done ✓".into() },
            Frame::ConnectionNewAddress { source_address: "test.thitsax.sender".into() },
            Frame::ConnectionMaxData { max_offset: 0 },
            Frame::ConnectionDataBlocked { max_offset: 65_536 },
            Frame::ConnectionMaxStreamId { max_stream_id: 20 },
            Frame::ConnectionStreamIdBlocked { max_stream_id: u64::MAX },
            Frame::ConnectionAssetDetails { asset_code: "USD".into(), asset_scale: 9 },
            Frame::StreamClose { stream_id: 1, code: ErrorCode::NoError, message: String::new() },
            Frame::StreamMoney { stream_id: 1, shares: 9_007_199_254_740_993 },
            Frame::StreamMaxMoney { stream_id: 3, receive_max: u64::MAX, total_received: 12_345 },
            Frame::StreamMoneyBlocked { stream_id: 5, send_max: u64::MAX, total_sent: u64::MAX },
            Frame::StreamData { stream_id: 7, offset: 128, data: vec![0x42; 200] },
            Frame::StreamMaxData { stream_id: 9, max_offset: 16_384 },
            Frame::StreamDataBlocked { stream_id: 11, max_offset: 255 },
            Frame::StreamReceipt { stream_id: 13, receipt: vec![0x17; 58] },
        ],
    }
}

#[test]
fn js_packet_with_every_frame_type_decodes_to_what_js_reads() {
    let v = vectors();
    let decoded = StreamPacket::decode(&bytes(&v["all_frames"]["bytes"])).unwrap();
    assert_eq!(describe(&decoded), v["all_frames"]["packet"]);
    assert_eq!(decoded, all_frames());
}

#[test]
fn our_encoding_of_every_frame_type_is_byte_for_byte_js() {
    let v = vectors();
    assert_eq!(hex::encode(all_frames().encode()), v["all_frames"]["bytes"].as_str().unwrap());
}

#[test]
fn our_encryption_under_js_nonce_is_byte_for_byte_js() {
    let v = vectors();
    let nonce: [u8; 12] = bytes(&v["iv"]).try_into().unwrap();
    let sealed = js_keys(&v).encrypt_with_nonce(nonce, &all_frames().encode()).unwrap();
    assert_eq!(hex::encode(sealed), v["all_frames_fixed_nonce"].as_str().unwrap());
}

#[test]
fn js_ciphertext_decrypts_and_its_fulfillment_and_condition_match() {
    let v = vectors();
    let keys = js_keys(&v);
    let data = bytes(&v["all_frames_random_nonce"]);
    assert_eq!(keys.decrypt(&data).unwrap(), bytes(&v["all_frames"]["bytes"]));
    assert_eq!(keys.fulfillment(&data).to_vec(), bytes(&v["all_frames_random_nonce_fulfillment"]));
    assert_eq!(keys.condition(&data).to_vec(), bytes(&v["all_frames_random_nonce_condition"]));
}

#[test]
fn a_js_money_prepare_is_fulfilled_with_the_fulfillment_js_expects() {
    let v = vectors();
    let keys = js_keys(&v);
    let data = bytes(&v["money_prepare"]["data"]);
    let condition: [u8; 32] = bytes(&v["money_prepare"]["condition"]).try_into().unwrap();
    let opened = open(&keys, 1_000, &condition, &data).unwrap();
    assert_eq!(opened.verdict(), Verdict::Fulfillable);
    assert_eq!((opened.sequence(), opened.min_amount()), (1, 990));
    assert_eq!(opened.money(), [StreamAmount { stream_id: 1, amount: 1_000 }]);
    assert_eq!(opened.new_address(), Some("test.thitsax.sender"));
    assert_eq!(opened.asset_details(), Some(("USD", 9)));

    // The reply a JS server sends for it (StreamMaxMoney of "Infinity", its asset details).
    let reply = opened.reply().max_money(1, u64::MAX, 1_000).asset_details("USD", 9);
    let fulfilled = opened.fulfill(&reply).unwrap();
    assert_eq!(fulfilled.fulfillment.to_vec(), bytes(&v["money_prepare"]["fulfillment"]));
    assert_eq!(hex::encode(keys.decrypt(&fulfilled.data).unwrap()), v["money_reply"].as_str().unwrap());
}

#[test]
fn pays_probe_packet_asks_for_asset_details_with_an_empty_address() {
    let v = vectors();
    let probe = StreamPacket::decode(&bytes(&v["pay_probe"])).unwrap();
    assert_eq!(
        probe.frames,
        [
            Frame::ConnectionNewAddress { source_address: String::new() },
            Frame::StreamMaxMoney { stream_id: 1, receive_max: 0, total_received: 0 },
            Frame::ConnectionMaxData { max_offset: 0 },
            Frame::ConnectionMaxStreamId { max_stream_id: 1 },
        ]
    );
    assert_eq!(hex::encode(probe.encode()), v["pay_probe"].as_str().unwrap());
}

#[test]
fn receive_and_send_maximums_wider_than_a_u64_saturate_like_js() {
    let v = vectors();
    let decoded = StreamPacket::decode(&bytes(&v["wide_var_uints"]["bytes"])).unwrap();
    assert_eq!(describe(&decoded), v["wide_var_uints"]["packet"]);
    assert_eq!(hex::encode(decoded.encode()), v["wide_var_uints_reserialized"].as_str().unwrap());
}

#[test]
fn unknown_frame_types_are_skipped_like_js() {
    let v = vectors();
    let decoded = StreamPacket::decode(&bytes(&v["unknown_frames"]["bytes"])).unwrap();
    assert_eq!(describe(&decoded), v["unknown_frames"]["packet"]);
}

#[test]
fn a_js_padded_packet_decodes_with_its_padding_ignored() {
    let v = vectors();
    let data = bytes(&v["padded"]["data"]);
    assert_eq!(data.len(), 1024);
    let plaintext = js_keys(&v).decrypt(&data).unwrap();
    assert!(plaintext.ends_with(&[0; 64]));
    let packet = StreamPacket::decode(&plaintext).unwrap();
    assert_eq!(packet.frames[0], Frame::StreamMoney { stream_id: 1, shares: 1 });
}

#[test]
fn our_receipt_is_byte_for_byte_js() {
    let v = vectors();
    let receipt = receipt::receipt(&[0x11; 16], &[0x22; 32], 1, 1_000_000);
    assert_eq!(hex::encode(receipt), v["receipt"].as_str().unwrap());
}

// ---------------------------------------------------------------------------------------------
// Properties: no input panics the decoders, and whatever decodes re-encodes to the same value.
// ---------------------------------------------------------------------------------------------

/// Decodes `bytes`; if that works, the value's encoding decodes to the same value (it need not be
/// the same bytes: padding, unknown frames, leading zeros and saturated fields do not survive, and
/// an invalid UTF-8 byte re-encodes as the three of U+FFFD, far below the size limit here).
fn decodes_stably(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(packet) = StreamPacket::decode(bytes) {
        let encoded = packet.encode();
        prop_assert_eq!(StreamPacket::decode(&encoded), Ok(packet.clone()));
        prop_assert_eq!(encoded.clone(), StreamPacket::decode(&encoded).unwrap().encode(), "canonical");
    }
    Ok(())
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    any::<u8>().prop_map(ErrorCode::from_u8)
}

fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(1), Just(u64::MAX), Just(1 << 53), any::<u64>()]
}

fn frame() -> impl Strategy<Value = Frame> {
    let text = || "\\PC{0,12}";
    let blob = || prop::collection::vec(any::<u8>(), 0..200);
    prop_oneof![
        (error_code(), text()).prop_map(|(code, message)| Frame::ConnectionClose { code, message }),
        text().prop_map(|source_address| Frame::ConnectionNewAddress { source_address }),
        edge_u64().prop_map(|max_offset| Frame::ConnectionMaxData { max_offset }),
        edge_u64().prop_map(|max_offset| Frame::ConnectionDataBlocked { max_offset }),
        edge_u64().prop_map(|max_stream_id| Frame::ConnectionMaxStreamId { max_stream_id }),
        edge_u64().prop_map(|max_stream_id| Frame::ConnectionStreamIdBlocked { max_stream_id }),
        (text(), any::<u8>())
            .prop_map(|(asset_code, asset_scale)| Frame::ConnectionAssetDetails { asset_code, asset_scale }),
        (edge_u64(), error_code(), text()).prop_map(|(stream_id, code, message)| Frame::StreamClose {
            stream_id,
            code,
            message
        }),
        (edge_u64(), edge_u64()).prop_map(|(stream_id, shares)| Frame::StreamMoney { stream_id, shares }),
        (edge_u64(), edge_u64(), edge_u64()).prop_map(|(stream_id, receive_max, total_received)| {
            Frame::StreamMaxMoney { stream_id, receive_max, total_received }
        }),
        (edge_u64(), edge_u64(), edge_u64()).prop_map(|(stream_id, send_max, total_sent)| {
            Frame::StreamMoneyBlocked { stream_id, send_max, total_sent }
        }),
        (edge_u64(), edge_u64(), blob()).prop_map(|(stream_id, offset, data)| Frame::StreamData {
            stream_id,
            offset,
            data
        }),
        (edge_u64(), edge_u64())
            .prop_map(|(stream_id, max_offset)| Frame::StreamMaxData { stream_id, max_offset }),
        (edge_u64(), edge_u64())
            .prop_map(|(stream_id, max_offset)| Frame::StreamDataBlocked { stream_id, max_offset }),
        (edge_u64(), blob()).prop_map(|(stream_id, receipt)| Frame::StreamReceipt { stream_id, receipt }),
    ]
}

fn packet() -> impl Strategy<Value = StreamPacket> {
    let packet_type =
        prop_oneof![Just(PacketType::Prepare), Just(PacketType::Fulfill), Just(PacketType::Reject)];
    (packet_type, edge_u64(), edge_u64(), prop::collection::vec(frame(), 0..8)).prop_map(
        |(packet_type, sequence, prepare_amount, frames)| StreamPacket {
            packet_type,
            sequence,
            prepare_amount,
            frames,
        },
    )
}

/// Up to five edits: overwrite, insert or remove a byte, or truncate.
fn mutate(mut bytes: Vec<u8>, edits: Vec<(prop::sample::Index, u8, u8)>) -> Vec<u8> {
    for (at, value, op) in edits {
        if bytes.is_empty() {
            break;
        }
        let i = at.index(bytes.len());
        match op {
            0 => bytes[i] = value,
            1 => bytes.insert(i, value),
            2 => {
                bytes.remove(i);
            }
            _ => bytes.truncate(i),
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(prop::sample::Index, u8, u8)>> {
    prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..6)
}

fn test_keys() -> StreamKeys {
    SharedSecret::from_bytes([9; 32]).keys()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn every_packet_round_trips(p in packet()) {
        let bytes = p.encode();
        prop_assert_eq!(StreamPacket::decode(&bytes), Ok(p));
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        decodes_stably(&bytes)?;
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic_the_decoder(
        kind in 12u8..15,
        count in 0u8..6,
        rest in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = vec![1, kind, 1, 1, 1, 0, 1, count];
        bytes.extend(rest);
        decodes_stably(&bytes)?;
    }

    #[test]
    fn mutated_packets_never_panic_the_decoder(p in packet(), edits in edits()) {
        decodes_stably(&mutate(p.encode(), edits))?;
    }

    #[test]
    fn random_data_never_panics_open(
        amount in any::<u64>(),
        condition in any::<[u8; 32]>(),
        data in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let keys = test_keys();
        prop_assert!(open(&keys, amount, &condition, &data).is_err(), "random bytes do not authenticate");
    }

    /// Mutating the plaintext before encrypting reaches the decoder behind the AEAD: whatever opens
    /// must hold only what re-encodes to itself, and its replies must build.
    #[test]
    fn mutated_prepares_never_panic_open(p in packet(), edits in edits(), amount in edge_u64()) {
        let keys = test_keys();
        let data = keys.encrypt(&mutate(p.encode(), edits)).unwrap();
        let condition = keys.condition(&data);
        if let Ok(opened) = open(&keys, amount, &condition, &data) {
            let again = StreamPacket {
                packet_type: PacketType::Prepare,
                sequence: opened.sequence(),
                prepare_amount: opened.min_amount(),
                frames: opened.frames().to_vec(),
            };
            prop_assert_eq!(StreamPacket::decode(&again.encode()), Ok(again));
            let total: u128 = opened.money().iter().map(|m| u128::from(m.amount)).sum();
            prop_assert!(opened.money().is_empty() || total == u128::from(amount), "money adds up");
            let reply = opened.reply().asset_details("USD", 9);
            let answer = if opened.is_fulfillable() {
                opened.fulfill(&reply).map(|f| f.data)
            } else {
                opened.reject(&reply)
            };
            let answer = StreamPacket::decode(&keys.decrypt(&answer.unwrap()).unwrap()).unwrap();
            prop_assert_eq!(answer.sequence, opened.sequence());
        }
    }

    /// Any byte of the ciphertext changed: never opened.
    #[test]
    fn altered_ciphertext_is_refused(p in packet(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let keys = test_keys();
        let mut data = keys.encrypt(&p.encode()).unwrap();
        let i = at.index(data.len());
        data[i] ^= flip;
        prop_assert!(matches!(open(&keys, 1, &[0; 32], &data), Err(Refused::Decrypt(_))));
    }
}
