//! Criterion benches for the pieces of the packet path: packet parse/serialize, route lookup,
//! amount conversion, the whole forward path in-process (no incoming HTTP layer), and the cost of
//! recording a packet's metrics.
//!
//! Run: `cargo bench --bench packet_path`

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use thitsax::account::AccountId;
use thitsax::app::App;
use thitsax::config::Config;
use thitsax::metrics::{Metrics, Outcome};
use thitsax::packet::{Fulfill, IlpAddress, Prepare, Reject, Response};
use thitsax::rates::{Asset, Decimal, Rates};
use thitsax::routing::RoutingTable;

fn sample_prepare(data_len: usize) -> Prepare {
    let preimage = [7u8; 32];
    let condition: [u8; 32] =
        ring::digest::digest(&ring::digest::SHA256, &preimage).as_ref().try_into().unwrap();
    let mut data = vec![0u8; data_len.max(32)];
    data[..32].copy_from_slice(&preimage);
    Prepare::build(
        &IlpAddress::parse("test.node.bob.receiver.x7").unwrap(),
        1_000_000,
        SystemTime::now() + Duration::from_secs(30),
        &condition,
        &data,
    )
}

fn packets(c: &mut Criterion) {
    let mut g = c.benchmark_group("packet");
    for len in [32usize, 1024, 32_767] {
        let bytes = sample_prepare(len).to_bytes();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("parse_prepare/{len}B_data"), |b| {
            b.iter(|| Prepare::parse(black_box(&bytes)).unwrap())
        });
    }
    let p = sample_prepare(32);
    g.throughput(Throughput::Elements(1));
    g.bench_function("serialize_prepare", |b| b.iter(|| black_box(&p).to_bytes()));
    g.bench_function("rewrite_amount_and_expiry", |b| {
        b.iter_batched(
            || p.clone(),
            |mut p| p.set_amount_and_expiry(999, SystemTime::now() + Duration::from_secs(10)),
            BatchSize::SmallInput,
        )
    });
    let fulfill = Fulfill::build(&[7; 32], b"some data").as_bytes().clone();
    g.bench_function("parse_fulfill", |b| b.iter(|| Response::parse(black_box(fulfill.clone())).unwrap()));
    let node = IlpAddress::parse("test.node").unwrap();
    g.bench_function("build_reject", |b| {
        b.iter(|| Reject::build(thitsax::packet::ErrorCode::F02_UNREACHABLE, &node, "no route", &[]))
    });
    g.finish();
}

fn routing(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_lookup");
    for routes in [10usize, 10_000, 1_000_000] {
        let table = RoutingTable::new(
            (0..routes)
                .map(|i| (format!("g.net{}.node{}", i % 100, i), AccountId::from(format!("acct{}", i % 50)))),
            Some(AccountId::from("parent")),
        );
        let hit = format!("g.net7.node{}.wallet.alice", routes / 2 / 100 * 100 + 7);
        g.bench_function(format!("{routes}_routes/hit"), |b| {
            b.iter(|| table.lookup(black_box(&hit)).unwrap())
        });
        g.bench_function(format!("{routes}_routes/default"), |b| {
            b.iter(|| table.lookup(black_box("g.elsewhere.a.b.c")).unwrap())
        });
    }
    g.finish();
}

fn conversion(c: &mut Criterion) {
    let prices: HashMap<Arc<str>, Decimal> =
        [("USD", "1"), ("MXN", "0.0550"), ("BIG", "123456789012345678.123456789")]
            .into_iter()
            .map(|(k, v)| (Arc::from(k), Decimal::parse(v).unwrap()))
            .collect();
    let rates = Rates::new(prices, Decimal::parse("0.002").unwrap());
    let mut g = c.benchmark_group("convert");
    let a = |code, scale| Asset { code, scale };
    g.bench_function("same_asset_scale_9_to_6", |b| {
        b.iter(|| rates.convert(black_box(123_456_789), a("USD", 9), a("USD", 6)))
    });
    g.bench_function("usd_to_mxn", |b| {
        b.iter(|| rates.convert(black_box(123_456_789), a("USD", 9), a("MXN", 2)))
    });
    g.bench_function("big_integer_path", |b| {
        b.iter(|| rates.convert(black_box(u64::MAX / 3), a("BIG", 0), a("USD", 18)))
    });
    g.finish();
}

/// The forward path in-process: `Node::forward` on a parsed Prepare. `refused_t04` runs every
/// step up to the debit (validation, route, conversion, expiry, balance check); `fulfilled`
/// adds the HTTP exchange with a fulfilling next hop on loopback.
fn forward(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let downstream = rt.block_on(start_fulfiller());
    let config = Config::from_toml(&format!(
        r#"
[node]
ilp_address = "test.node"
[http]
listen = "127.0.0.1:0"
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "a"
[[accounts]]
id = "broke"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "b"
min_balance = 0
[[accounts]]
id = "bob"
relation = "child"
asset_code = "USD"
asset_scale = 6
outgoing_url = "http://{downstream}/"
outgoing_token = "t"
"#
    ))
    .unwrap();
    let app = rt.block_on(App::bind(config)).unwrap();
    let node = app.node.clone();
    let accounts = node.accounts.load();
    let alice = accounts.get("alice").unwrap().clone();
    let broke = accounts.get("broke").unwrap().clone();
    let bytes = sample_prepare(32).to_bytes();
    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Elements(1));
    g.bench_function("refused_t04", |b| {
        b.to_async(&rt).iter(|| async { node.forward(&broke, Prepare::parse(&bytes).unwrap()).await })
    });
    g.bench_function("fulfilled_via_loopback_next_hop", |b| {
        b.to_async(&rt).iter(|| async { node.forward(&alice, Prepare::parse(&bytes).unwrap()).await })
    });
    g.finish();
    drop(app);
}

/// What recording one packet costs the packet path: the in-flight gauge up and down, two clock
/// reads, the counter's label lookup and the histogram.
fn metrics(c: &mut Criterion) {
    let metrics = Metrics::new();
    let mut g = c.benchmark_group("metrics/record_packet");
    g.throughput(Throughput::Elements(1));
    g.bench_function("fulfilled", |b| {
        b.iter(|| metrics.packet_started().finished(black_box("alice"), Outcome::Fulfilled))
    });
    g.bench_function("rejected_f02", |b| {
        b.iter(|| metrics.packet_started().finished(black_box("alice"), Outcome::Rejected(*b"F02")))
    });
    g.finish();
}

/// A minimal next hop that fulfils every Prepare built by `sample_prepare`.
async fn start_fulfiller() -> std::net::SocketAddr {
    use http_body_util::{BodyExt, Full};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fulfill = Fulfill::build(&[7u8; 32], b"").as_bytes().clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let fulfill = fulfill.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let fulfill = fulfill.clone();
                        async move {
                            let _ = req.into_body().collect().await;
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(fulfill)))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

criterion_group!(benches, packets, routing, conversion, forward, metrics);
criterion_main!(benches);
