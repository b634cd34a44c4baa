use super::*;
use crate::stream::crypto::SharedSecret;

fn keys() -> StreamKeys {
    SharedSecret::from_bytes([3; 32]).keys()
}

/// What a sender puts in a Prepare: (data, the condition of a fulfillable Prepare).
fn prepare(keys: &StreamKeys, min_amount: u64, frames: Vec<Frame>) -> (Vec<u8>, [u8; 32]) {
    let packet =
        StreamPacket { packet_type: PacketType::Prepare, sequence: 7, prepare_amount: min_amount, frames };
    let data = keys.encrypt(&packet.encode()).unwrap();
    let condition = keys.condition(&data);
    (data, condition)
}

fn money(stream_id: u64, shares: u64) -> Frame {
    Frame::StreamMoney { stream_id, shares }
}

fn decrypt_reply(keys: &StreamKeys, data: &[u8]) -> StreamPacket {
    StreamPacket::decode(&keys.decrypt(data).unwrap()).unwrap()
}

#[test]
fn a_money_packet_is_fulfilled_with_an_encrypted_reply_of_the_same_sequence() {
    let keys = keys();
    let (data, condition) = prepare(&keys, 90, vec![money(1, 1)]);
    let opened = open(&keys, 100, &condition, &data).unwrap();
    assert_eq!(opened.verdict(), Verdict::Fulfillable);
    assert_eq!((opened.sequence(), opened.amount(), opened.min_amount()), (7, 100, 90));
    assert_eq!(opened.money(), [StreamAmount { stream_id: 1, amount: 100 }]);

    let reply = opened.reply().asset_details("USD", 9).max_money(1, u64::MAX, 100);
    let fulfilled = opened.fulfill(&reply).unwrap();
    assert_eq!(condition_of(&fulfilled.fulfillment), condition);
    assert_eq!(Some(fulfilled.fulfillment), opened.fulfillment());
    let answer = decrypt_reply(&keys, &fulfilled.data);
    assert_eq!(answer.packet_type, PacketType::Fulfill);
    assert_eq!((answer.sequence, answer.prepare_amount), (7, 100));
    assert_eq!(answer.frames, reply.frames());
}

#[test]
fn data_that_does_not_decrypt_is_refused_f06() {
    let keys = keys();
    let (data, condition) = prepare(&keys, 0, vec![]);
    let stranger = SharedSecret::from_bytes([4; 32]).keys();
    let refused = open(&stranger, 1, &condition, &data).unwrap_err();
    assert_eq!(refused, Refused::Decrypt(CryptoError::Authentication));
    assert_eq!(refused.code(), IlpErrorCode::F06_UNEXPECTED_PAYMENT);
    assert_eq!(open(&keys, 1, &condition, &[]).unwrap_err(), Refused::Decrypt(CryptoError::TooShort(0)));
}

#[test]
fn a_decrypted_packet_that_does_not_decode_is_refused_f06() {
    let keys = keys();
    let data = keys.encrypt(&[2, 12, 1, 0, 1, 0, 1, 0]).unwrap();
    let refused = open(&keys, 1, &keys.condition(&data), &data).unwrap_err();
    assert_eq!(refused, Refused::Decode(DecodeError::Version(2)));
    assert_eq!(refused.code(), IlpErrorCode::F06_UNEXPECTED_PAYMENT);
}

#[test]
fn a_packet_meant_for_a_fulfill_or_reject_is_refused_f06() {
    let keys = keys();
    for packet_type in [PacketType::Fulfill, PacketType::Reject] {
        let packet = StreamPacket { packet_type, sequence: 1, prepare_amount: 0, frames: vec![] };
        let data = keys.encrypt(&packet.encode()).unwrap();
        let refused = open(&keys, 1, &keys.condition(&data), &data).unwrap_err();
        assert_eq!(refused, Refused::WrongType(packet_type));
    }
}

#[test]
fn a_probe_with_a_random_condition_is_rejected_with_the_amount_that_arrived() {
    let keys = keys();
    let (data, _) = prepare(&keys, 0, vec![Frame::ConnectionNewAddress { source_address: String::new() }]);
    let opened = open(&keys, 1_000, &[0xAB; 32], &data).unwrap();
    assert_eq!(opened.verdict(), Verdict::Unfulfillable);
    assert_eq!(opened.new_address(), Some(""));
    assert_eq!(opened.fulfillment(), None);
    assert_eq!(opened.fulfill(&opened.reply()), Err(ReplyError::NotFulfillable(Verdict::Unfulfillable)));

    let data = opened.reject(&opened.reply().asset_details("XOF", 0)).unwrap();
    let answer = decrypt_reply(&keys, &data);
    assert_eq!(answer.packet_type, PacketType::Reject);
    assert_eq!((answer.sequence, answer.prepare_amount), (7, 1_000));
    assert_eq!(answer.frames, [Frame::ConnectionAssetDetails { asset_code: "XOF".into(), asset_scale: 0 }]);
}

#[test]
fn less_than_the_senders_minimum_is_rejected_even_with_the_right_condition() {
    let keys = keys();
    let (data, condition) = prepare(&keys, 101, vec![money(1, 1)]);
    let opened = open(&keys, 100, &condition, &data).unwrap();
    assert_eq!(opened.verdict(), Verdict::BelowMinimum);
    assert_eq!(opened.fulfillment(), None);
    assert_eq!(decrypt_reply(&keys, &opened.reject(&opened.reply()).unwrap()).prepare_amount, 100);
    // Exactly the minimum is enough.
    assert!(open(&keys, 101, &condition, &data).unwrap().is_fulfillable());
}

#[test]
fn streams_the_client_may_not_open_close_the_connection_in_the_reject() {
    let keys = keys();
    for (stream_id, code) in [
        (2, ErrorCode::ProtocolViolation),
        (0, ErrorCode::ProtocolViolation),
        (STREAM_ID_MAX + 1, ErrorCode::StreamIdError),
        (u64::MAX, ErrorCode::StreamIdError),
    ] {
        let (data, condition) = prepare(&keys, 0, vec![money(1, 1), money(stream_id, 1)]);
        let opened = open(&keys, 10, &condition, &data).unwrap();
        assert_eq!(opened.verdict(), Verdict::StreamId { stream_id, code });
        let answer = decrypt_reply(&keys, &opened.reject(&opened.reply()).unwrap());
        assert!(
            matches!(answer.frames[..], [Frame::ConnectionClose { code: c, .. }] if c == code),
            "{stream_id}: {:?}",
            answer.frames
        );
    }
    // The highest odd id allowed, and frames that do not open streams, pass.
    let (data, condition) = prepare(
        &keys,
        0,
        vec![
            money(STREAM_ID_MAX - 1, 1),
            Frame::StreamClose { stream_id: 2, code: ErrorCode::NoError, message: String::new() },
        ],
    );
    assert!(open(&keys, 10, &condition, &data).unwrap().is_fulfillable());
}

#[test]
fn a_close_the_caller_chose_is_not_doubled() {
    let keys = keys();
    let (data, condition) = prepare(&keys, 0, vec![money(4, 1)]);
    let opened = open(&keys, 10, &condition, &data).unwrap();
    let reply = opened.reply().close_connection(ErrorCode::ApplicationError, "no");
    let answer = decrypt_reply(&keys, &opened.reject(&reply).unwrap());
    assert_eq!(answer.frames, reply.frames());
}

#[test]
fn money_is_split_by_shares_with_the_remainder_to_the_lowest_stream() {
    // RFC 0029 § 5.3.8's example: 100 over 5, 15 and 30 shares.
    let frames = [money(3, 15), money(1, 5), money(5, 30)];
    let parts = split_money(100, &frames);
    let expect = [(1, 10), (3, 30), (5, 60)];
    assert_eq!(parts, expect.map(|(stream_id, amount)| StreamAmount { stream_id, amount }));

    let parts = split_money(10, &[money(1, 1), money(3, 1), money(5, 1)]);
    assert_eq!(parts.iter().map(|p| p.amount).collect::<Vec<_>>(), [4, 3, 3]);
}

#[test]
fn money_splits_add_up_to_the_amount_at_the_edges() {
    let cases: &[(u64, &[(u64, u64)])] = &[
        (u64::MAX, &[(1, u64::MAX), (3, u64::MAX), (5, 1)]),
        (u64::MAX, &[(1, u64::MAX), (1, u64::MAX), (3, u64::MAX), (3, 1)]),
        (u64::MAX, &[(1, u64::MAX); 64]),
        (u64::MAX, &[(1, 1)]),
        (0, &[(1, 5), (3, 7)]),
        (1, &[(1, 1), (3, 1)]),
        (7, &[(1, 0), (3, 0)]),
        (5, &[(3, 1), (3, 2), (1, 0)]),
    ];
    for (amount, shares) in cases {
        let frames: Vec<Frame> = shares.iter().map(|&(id, s)| money(id, s)).collect();
        let parts = split_money(*amount, &frames);
        let sum: u128 = parts.iter().map(|p| u128::from(p.amount)).sum();
        assert_eq!(sum, u128::from(*amount), "{amount} over {shares:?}: {parts:?}");
        assert!(parts.windows(2).all(|w| w[0].stream_id < w[1].stream_id), "one part per stream, in order");
    }
    // No shares at all: the lowest stream takes everything.
    assert_eq!(split_money(7, &[money(3, 0), money(1, 0)])[0], StreamAmount { stream_id: 1, amount: 7 });
    // Frames for one stream add up: 1 + 2 of 3 shares.
    assert_eq!(
        split_money(5, &[money(3, 1), money(3, 2), money(1, 0)])[1],
        StreamAmount { stream_id: 3, amount: 5 }
    );
    assert!(split_money(100, &[]).is_empty());
}

#[test]
fn the_senders_notices_are_reported() {
    let keys = keys();
    let frames = vec![
        Frame::ConnectionNewAddress { source_address: "g.sender".into() },
        Frame::ConnectionAssetDetails { asset_code: "EUR".into(), asset_scale: 2 },
        Frame::StreamMaxMoney { stream_id: 1, receive_max: 0, total_received: 0 },
        Frame::StreamClose { stream_id: 1, code: ErrorCode::NoError, message: "done".into() },
        Frame::ConnectionClose { code: ErrorCode::ApplicationError, message: "bye".into() },
    ];
    let (data, condition) = prepare(&keys, 0, frames);
    let opened = open(&keys, 0, &condition, &data).unwrap();
    assert_eq!(opened.new_address(), Some("g.sender"));
    assert_eq!(opened.asset_details(), Some(("EUR", 2)));
    assert_eq!(
        opened.max_money().collect::<Vec<_>>(),
        [MaxMoney { stream_id: 1, receive_max: 0, total_received: 0 }]
    );
    assert_eq!(
        opened.stream_closes().collect::<Vec<_>>(),
        [(1, Close { code: ErrorCode::NoError, message: "done" })]
    );
    assert_eq!(opened.connection_close(), Some(Close { code: ErrorCode::ApplicationError, message: "bye" }));
    assert!(opened.money().is_empty());
    assert!(opened.is_fulfillable(), "a packet of zero with the right condition may be fulfilled");
}

#[test]
fn a_reply_too_large_for_an_ilp_packet_is_refused() {
    let keys = keys();
    let (data, condition) = prepare(&keys, 0, vec![]);
    let opened = open(&keys, 0, &condition, &data).unwrap();
    let huge = opened.reply().receipt(1, vec![0; STREAM_PACKET_BYTES_MAX]);
    assert!(matches!(opened.fulfill(&huge), Err(ReplyError::TooLarge(n)) if n > STREAM_PACKET_BYTES_MAX));
    assert!(matches!(opened.reject(&huge), Err(ReplyError::TooLarge(_))));
}

#[test]
fn debug_output_never_shows_the_fulfillment() {
    let keys = keys();
    let (data, condition) = prepare(&keys, 0, vec![]);
    let opened = open(&keys, 0, &condition, &data).unwrap();
    let fulfillment = opened.fulfillment().unwrap();
    let fulfilled = opened.fulfill(&opened.reply()).unwrap();
    let bytes = format!("{:?}", &fulfillment[..4]);
    for shown in [format!("{opened:?}"), format!("{fulfilled:?}")] {
        assert!(!shown.contains("fulfillment"), "{shown}");
        assert!(!shown.contains(bytes.trim_matches(|c| c == '[' || c == ']')), "{shown}");
    }
}

proptest::proptest! {
    #[test]
    fn money_always_adds_up(
        amount in proptest::prop_oneof![proptest::strategy::Just(u64::MAX), proptest::prelude::any::<u64>()],
        shares in proptest::collection::vec(
            (0u64..6, proptest::prop_oneof![proptest::strategy::Just(u64::MAX), proptest::prelude::any::<u64>()]),
            0..40,
        ),
    ) {
        let frames: Vec<Frame> = shares.iter().map(|&(id, s)| money(id, s)).collect();
        let parts = split_money(amount, &frames);
        let sum: u128 = parts.iter().map(|p| u128::from(p.amount)).sum();
        proptest::prop_assert!(parts.is_empty() == frames.is_empty());
        proptest::prop_assert!(parts.is_empty() || sum == u128::from(amount));
    }
}
