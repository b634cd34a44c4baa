use super::*;
use proptest::prelude::*;
use std::time::{Duration, UNIX_EPOCH};

fn addr(s: &str) -> IlpAddress {
    IlpAddress::parse(s).unwrap()
}

fn sample_prepare(data: &[u8]) -> Prepare {
    Prepare::build(
        &addr("g.bob.x"),
        107,
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        &[7u8; 32],
        data,
    )
}

#[test]
fn prepare_round_trips_through_validation() {
    let p = sample_prepare(b"hello");
    let parsed = Prepare::parse(&p.to_bytes()).unwrap();
    assert_eq!(parsed.amount(), 107);
    assert_eq!(parsed.destination(), "g.bob.x");
    assert_eq!(parsed.data(), b"hello");
    assert_eq!(parsed.execution_condition(), &[7u8; 32]);
    assert_eq!(parsed.expires_at(), UNIX_EPOCH + Duration::from_millis(1_700_000_000_123));
}

#[test]
fn prepare_with_long_data_uses_two_byte_lengths() {
    let data = vec![1u8; DATA_BYTES_MAX];
    let p = Prepare::parse(&sample_prepare(&data).to_bytes()).unwrap();
    assert_eq!(p.data().len(), DATA_BYTES_MAX);
}

#[test]
fn length_prefix_0x80_is_an_error_not_a_panic() {
    // The codec would panic reading a zero-byte length; we refuse it first.
    assert_eq!(validate_prepare(&[12, 0x80]), Err(PacketError::Length));
    let mut bytes = sample_prepare(b"").to_bytes().to_vec();
    let dest_len_at = 1 + 1 + 8 + 17 + 32;
    bytes[dest_len_at] = 0x80;
    assert!(Prepare::parse(&bytes).is_err());
}

#[test]
fn non_canonical_lengths_are_refused() {
    let bytes = sample_prepare(b"").to_bytes().to_vec();
    // Re-encode the outer length (< 128) in the long form 0x81 nn.
    let mut long = vec![12, 0x81, bytes[1]];
    long.extend_from_slice(&bytes[2..]);
    assert_eq!(validate_prepare(&long), Err(PacketError::Length));
    // A leading zero in a two-byte length.
    let mut zero = vec![12, 0x82, 0x00, bytes[1]];
    zero.extend_from_slice(&bytes[2..]);
    assert_eq!(validate_prepare(&zero), Err(PacketError::Length));
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = sample_prepare(b"x").to_bytes().to_vec();
    bytes.push(0);
    assert_eq!(Prepare::parse(&bytes).unwrap_err(), PacketError::TrailingBytes(1));
}

#[test]
fn timestamps_must_be_digits_of_a_real_time() {
    let good = sample_prepare(b"").to_bytes().to_vec();
    let at = 2 + 8;
    for bad in [
        &b"2023111412133+123"[..],
        b"20231114121333 12",
        b"20231314121333123",
        b"20230230121333123",
        b"20231114251333123",
    ] {
        let mut bytes = good.clone();
        bytes[at..at + 17].copy_from_slice(bad);
        assert_eq!(
            Prepare::parse(&bytes).unwrap_err(),
            PacketError::Timestamp,
            "{:?}",
            std::str::from_utf8(bad)
        );
    }
}

#[test]
fn bad_destination_is_refused() {
    let mut bytes = sample_prepare(b"").to_bytes().to_vec();
    let dest_at = 2 + 8 + 17 + 32 + 1;
    bytes[dest_at] = b'x'; // "x.bob.x": unknown scheme
    assert!(matches!(Prepare::parse(&bytes), Err(PacketError::Address(_))));
}

#[test]
fn data_over_the_limit_is_refused() {
    let data = vec![0u8; DATA_BYTES_MAX + 1];
    let too_long = interledger_packet::PrepareBuilder {
        amount: 1,
        expires_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        execution_condition: &[0; 32],
        destination: addr("g.x").wire().clone(),
        data: &data,
    }
    .build();
    let bytes = compat::from_04(too_long.into());
    assert_eq!(Prepare::parse(&bytes).unwrap_err(), PacketError::DataTooLong(DATA_BYTES_MAX + 1));
}

#[test]
fn fulfill_and_reject_parse_and_expose_fields() {
    let f = Fulfill::build(&[9u8; 32], b"ok");
    let parsed = Fulfill::parse(f.as_bytes().clone()).unwrap();
    assert_eq!(parsed.fulfillment(), &[9u8; 32]);
    assert_eq!(parsed.data(), b"ok");

    let r = Reject::build(ErrorCode::F02_UNREACHABLE, &addr("test.node"), "no route", b"d");
    let parsed = Reject::parse(r.as_bytes().clone()).unwrap();
    assert_eq!(parsed.code(), ErrorCode::F02_UNREACHABLE);
    assert_eq!(parsed.triggered_by(), "test.node");
    assert_eq!(parsed.message(), b"no route");
    assert_eq!(parsed.data(), b"d");
}

#[test]
fn reject_with_empty_triggered_by_is_accepted() {
    // STREAM receivers reject with an empty triggeredBy.
    let bytes = Bytes::from_static(&[14, 6, b'F', b'9', b'9', 0, 0, 0]);
    let r = Reject::parse(bytes).unwrap();
    assert_eq!(r.triggered_by(), "");
}

#[test]
fn non_ascii_error_codes_are_refused() {
    for code in [[0xffu8, b'0', b'0'], [b'F', 0xc3, 0xa9], [b'X', b'0', b'0']] {
        let bytes = Bytes::from(vec![14, 6, code[0], code[1], code[2], 0, 0, 0]);
        assert_eq!(Reject::parse(bytes).unwrap_err(), PacketError::ErrorCode);
    }
}

#[test]
fn response_dispatches_on_type() {
    assert!(matches!(
        Response::parse(Fulfill::build(&[0; 32], b"").as_bytes().clone()),
        Ok(Response::Fulfill(_))
    ));
    assert!(Response::parse(Bytes::new()).is_err());
    assert!(Response::parse(Bytes::from_static(&[12, 0])).is_err());
}

#[test]
fn amount_too_large_data_is_two_big_endian_u64() {
    let d = amount_too_large_data(258, 1);
    assert_eq!(d, [0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 1]);
}

/// Touches every accessor of a parsed packet: none may panic on anything `parse` accepted, and
/// what was accepted must be exactly one canonical packet (re-encoding gives the same bytes).
fn exercise(bytes: &[u8]) {
    if let Ok(p) = Prepare::parse(bytes) {
        let _ = (p.amount(), p.expires_at(), p.execution_condition(), p.destination(), p.data());
        assert_eq!(&p.to_bytes()[..], bytes);
        // Differential check: the codec reads exactly the same fields from what we accepted.
        let reference =
            interledger_packet::Prepare::try_from(compat::to_04(bytes)).expect("codec accepts it too");
        assert_eq!(reference.amount(), p.amount());
        assert_eq!(reference.expires_at(), p.expires_at());
        assert_eq!(reference.execution_condition(), p.execution_condition());
        assert_eq!(&*reference.destination(), p.destination());
        assert_eq!(reference.data(), p.data());
        let rebuilt = Prepare::build(
            &IlpAddress::parse(p.destination()).unwrap(),
            p.amount(),
            p.expires_at(),
            p.execution_condition(),
            p.data(),
        );
        assert_eq!(&rebuilt.to_bytes()[..], bytes);
    }
    if let Ok(r) = Response::parse(Bytes::copy_from_slice(bytes)) {
        match &r {
            Response::Fulfill(f) => {
                let _ = (f.fulfillment(), f.data());
            }
            Response::Reject(j) => {
                let _ = (j.code(), j.triggered_by(), j.message(), j.data());
            }
        }
        assert_eq!(&r.as_bytes()[..], bytes);
    }
}

fn valid_packets() -> impl Strategy<Value = Vec<u8>> {
    let prepare =
        (any::<u64>(), 0u64..4_000_000_000_000, prop::collection::vec(any::<u8>(), 0..300), "[a-z0-9]{1,20}")
            .prop_map(|(amount, ms, data, seg)| {
                Prepare::build(
                    &addr(&format!("g.{seg}")),
                    amount,
                    UNIX_EPOCH + Duration::from_millis(ms),
                    &[3; 32],
                    &data,
                )
                .to_bytes()
                .to_vec()
            });
    let fulfill = prop::collection::vec(any::<u8>(), 0..300)
        .prop_map(|d| Fulfill::build(&[1; 32], &d).as_bytes().to_vec());
    let reject = (prop::collection::vec(any::<u8>(), 0..300), "[ -~]{0,40}").prop_map(|(d, m)| {
        Reject::build(ErrorCode::T01_PEER_UNREACHABLE, &addr("g.x"), &m, &d).as_bytes().to_vec()
    });
    prop_oneof![prepare, fulfill, reject]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        exercise(&bytes);
    }

    #[test]
    fn random_bytes_with_a_packet_type_never_panic(kind in 12u8..15, len in any::<u8>(), rest in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut bytes = vec![kind, len];
        bytes.extend(rest);
        exercise(&bytes);
    }

    #[test]
    fn mutated_packets_never_panic(
        packet in valid_packets(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..6),
    ) {
        let mut bytes = packet;
        for (at, value, op) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = value,
                1 => { bytes.insert(i, value); }
                2 => { bytes.remove(i); }
                _ => bytes.truncate(i),
            }
        }
        exercise(&bytes);
    }

    #[test]
    fn valid_packets_are_accepted(packet in valid_packets()) {
        let ok = Prepare::parse(&packet).is_ok() || Response::parse(Bytes::from(packet.clone())).is_ok();
        prop_assert!(ok);
        exercise(&packet);
    }
}

#[test]
fn var_octets_round_trip_at_length_boundaries() {
    for len in [0usize, 1, 127, 128, 255, 256, 1023, 32767] {
        let value = vec![5u8; len];
        let mut out = Vec::new();
        write_var_octets(&mut out, &value);
        out.push(0xAA);
        let (read, rest) = read_var_octets(&out).unwrap();
        assert_eq!(read, &value[..]);
        assert_eq!(rest, &[0xAA]);
    }
}

#[test]
fn amount_and_expiry_are_rewritten_in_place_like_the_codec_would() {
    let mut ours = sample_prepare(b"payload");
    let mut reference = interledger_packet::Prepare::try_from(compat::to_04(&ours.to_bytes())).unwrap();
    for ms in [0u64, 1, 999, 1_700_000_000_123, 253_402_300_799_999] {
        let t = UNIX_EPOCH + Duration::from_millis(ms);
        ours.set_amount_and_expiry(ms ^ 0xdead_beef, t);
        reference.set_amount(ms ^ 0xdead_beef);
        reference.set_expires_at(t);
        assert_eq!(&ours.to_bytes()[..], reference.as_ref(), "at {ms} ms");
        assert_eq!(ours.expires_at(), t);
        assert_eq!(ours.amount(), ms ^ 0xdead_beef);
    }
    // Sub-millisecond precision is truncated, as on the wire.
    ours.set_amount_and_expiry(1, UNIX_EPOCH + Duration::from_micros(1_500));
    assert_eq!(ours.expires_at(), UNIX_EPOCH + Duration::from_millis(1));
    assert_eq!(Prepare::parse(&ours.into_bytes()).unwrap().amount(), 1);
}
