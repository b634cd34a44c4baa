//! Criterion benches for STREAM's per-packet work (`src/stream/`): encrypting and decrypting a
//! typical money packet (about 100 bytes in the clear) and a 1 KiB one, decoding and encoding
//! one, the receiver's open + fulfill, and the stateless path a node runs per incoming packet
//! (re-derive the shared secret from the token, derive the keys, open, fulfill).
//!
//! Run: `cargo bench --bench stream` (`-- --quick` for a short run on a shared machine).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use thitsax::stream::{open, Frame, PacketType, ServerSecret, SharedSecret, StreamPacket};

/// What a sender's money packet carries: one stream's money, its address and asset details.
fn typical_packet() -> StreamPacket {
    StreamPacket {
        packet_type: PacketType::Prepare,
        sequence: 42,
        prepare_amount: 990_000,
        frames: vec![
            Frame::StreamMoney { stream_id: 1, shares: 1 },
            Frame::ConnectionNewAddress {
                source_address: "g.thitsax.cu.sender.k3Ho9cW5Lw0AfPqYz0mX1tZ8bV2nR7sQ4yE6uI".into(),
            },
            Frame::ConnectionAssetDetails { asset_code: "USD".into(), asset_scale: 9 },
            Frame::StreamMaxMoney { stream_id: 1, receive_max: 0, total_received: 0 },
        ],
    }
}

/// The typical packet with data to make it 1024 bytes in the clear.
fn kib_packet() -> StreamPacket {
    let mut packet = typical_packet();
    packet.frames.push(Frame::StreamData { stream_id: 1, offset: 0, data: vec![0x5a; 1024] });
    let over = packet.encode().len() - 1024;
    if let Some(Frame::StreamData { data, .. }) = packet.frames.last_mut() {
        data.truncate(1024 - over);
    }
    assert_eq!(packet.encode().len(), 1024);
    packet
}

fn crypto(c: &mut Criterion) {
    let keys = SharedSecret::from_bytes([7; 32]).keys();
    let mut g = c.benchmark_group("stream_crypto");
    for (name, packet) in [("typical", typical_packet()), ("1KiB", kib_packet())] {
        let plaintext = packet.encode();
        let sealed = keys.encrypt(&plaintext).unwrap();
        g.throughput(Throughput::Bytes(plaintext.len() as u64));
        g.bench_function(format!("encrypt/{name}_{}B", plaintext.len()), |b| {
            b.iter(|| keys.encrypt(black_box(&plaintext)).unwrap())
        });
        g.bench_function(format!("decrypt/{name}_{}B", plaintext.len()), |b| {
            b.iter(|| keys.decrypt(black_box(&sealed)).unwrap())
        });
        g.bench_function(format!("fulfillment/{name}_{}B", sealed.len()), |b| {
            b.iter(|| keys.fulfillment(black_box(&sealed)))
        });
    }
    g.throughput(Throughput::Elements(1));
    let secret = SharedSecret::from_bytes([7; 32]);
    g.bench_function("derive_keys", |b| b.iter(|| black_box(&secret).keys()));
    g.finish();
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream_packet");
    let packet = typical_packet();
    let bytes = packet.encode();
    g.bench_function(format!("decode/typical_{}B", bytes.len()), |b| {
        b.iter(|| StreamPacket::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function(format!("encode/typical_{}B", bytes.len()), |b| b.iter(|| black_box(&packet).encode()));
    g.finish();
}

fn receiver(c: &mut Criterion) {
    let server = ServerSecret::from_bytes(&[9; 32]);
    let issued = server.issue("bob").unwrap();
    let sender_keys = issued.shared_secret.keys();
    let data = sender_keys.encrypt(&typical_packet().encode()).unwrap();
    let condition = sender_keys.condition(&data);

    let mut g = c.benchmark_group("stream_receiver");
    g.bench_function("open_and_fulfill/typical", |b| {
        b.iter(|| {
            let opened = open(&sender_keys, black_box(1_000_000), &condition, black_box(&data)).unwrap();
            let reply = opened.reply().max_money(1, u64::MAX, 1_000_000).asset_details("USD", 9);
            opened.fulfill(&reply).unwrap()
        })
    });
    g.bench_function("token_check_and_shared_secret", |b| {
        b.iter(|| server.shared_secret(black_box("bob"), black_box(&issued.token)).unwrap())
    });
    // Everything a stateless node does per packet, from the address's token to the Fulfill's data.
    g.bench_function("stateless_packet/typical", |b| {
        b.iter(|| {
            let keys = server.shared_secret("bob", black_box(&issued.token)).unwrap().keys();
            let opened = open(&keys, black_box(1_000_000), &condition, black_box(&data)).unwrap();
            let reply = opened.reply().max_money(1, u64::MAX, 1_000_000).asset_details("USD", 9);
            opened.fulfill(&reply).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, crypto, codec, receiver);
criterion_main!(benches);
