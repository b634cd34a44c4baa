//! `send`: N Prepares with at most C in flight over C keep-alive connections,
//! then a human-readable summary and one JSON line.
//!
//! The sender shares the machine with the system it measures, so it spends as
//! little CPU per packet as it can: each worker patches a Prepare built once
//! (`PrepareTemplate`) and formats the expiry at most once per millisecond.
//! Errors (non-200, timeouts, connection failures, bad fulfillments) are
//! counted apart and left out of throughput and latency.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use interledger_packet::{Address, Fulfill, PrepareBuilder, Reject};

use crate::cli::{ConditionMode, SendArgs};
use crate::cpu::cpu_seconds;
use crate::loopback::{connect_http1, loopback_url};
use crate::packet::{
    read_len, sha256, view_reject, FIXED_FULFILLMENT, OCTET_STREAM, TYPE_FULFILL, TYPE_REJECT,
};
use crate::summary::{percentile, Summary, MEASURE_START};

/// What one response was.
#[derive(Debug, PartialEq)]
enum Outcome {
    Fulfilled,
    Rejected([u8; 3]),
    /// Error kind, e.g. "bad_fulfillment", "http_503".
    Error(String),
}

/// Classifies an HTTP 200 body against the condition that was sent.
fn classify(body: &[u8], condition: &[u8; 32]) -> Outcome {
    match body.first() {
        Some(&TYPE_FULFILL) => match Fulfill::try_from(bytes04::BytesMut::from(body)) {
            Ok(f) => {
                if sha256(f.fulfillment()) == *condition {
                    Outcome::Fulfilled
                } else {
                    Outcome::Error("bad_fulfillment".into())
                }
            }
            Err(_) => Outcome::Error("bad_fulfill_packet".into()),
        },
        Some(&TYPE_REJECT) => match view_reject(body) {
            Some((code, _)) => Outcome::Rejected(code),
            None => match Reject::try_from(bytes04::BytesMut::from(body)) {
                Ok(r) => Outcome::Rejected(<[u8; 3]>::from(r.code())),
                Err(_) => Outcome::Error("bad_reject_packet".into()),
            },
        },
        _ => Outcome::Error("not_ilp_response".into()),
    }
}

struct SendCtx {
    addr: SocketAddr,
    path: Uri,
    host: HeaderValue,
    auth: Option<HeaderValue>,
    destination: Address,
    amount: u64,
    expiry: Duration,
    timeout: Duration,
    condition: ConditionMode,
    /// First 24 bytes of every preimage; the last 8 are the packet's sequence number.
    nonce: [u8; 24],
    fixed_condition: [u8; 32],
}

struct Phase {
    next: AtomicU64,
    total: u64,
    /// Offset added to sequence numbers so warm-up and measurement differ.
    seq_base: u64,
    /// Set when the target looks down (repeated connect failures): stop early.
    aborted: AtomicBool,
}

/// Consecutive failed connects (20 ms apart) after which a worker aborts the phase.
const MAX_CONNECT_FAILURES: u32 = 25;

#[derive(Default)]
struct WorkerStats {
    latencies_ns: Vec<u64>,
    /// Packets this worker took from the phase counter.
    attempted: u64,
    fulfilled: u64,
    rejected: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    /// First reject message seen per code (and first body per non-200
    /// status, keyed "http_NNN"), for diagnosis.
    reject_samples: BTreeMap<String, String>,
}

impl WorkerStats {
    fn merge(&mut self, o: WorkerStats) {
        self.latencies_ns.extend(o.latencies_ns);
        self.attempted += o.attempted;
        self.fulfilled += o.fulfilled;
        for (k, v) in o.rejected {
            *self.rejected.entry(k).or_default() += v;
        }
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in o.reject_samples {
            self.reject_samples.entry(k).or_insert(v);
        }
    }
    fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_string()).or_default() += 1;
    }
}

type Conn = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A Prepare built once with `PrepareBuilder`; per packet only the expiry,
/// condition and (in data mode) the 32-byte preimage are patched in place.
/// Saves a chrono format and two allocations per packet in the sender, whose
/// CPU competes with the system under test.
struct PrepareTemplate {
    bytes: Vec<u8>,
    expiry_off: usize,
    cond_off: usize,
    /// Offset of the 32 data bytes (data mode only).
    data_off: Option<usize>,
}

impl PrepareTemplate {
    fn new(ctx: &SendCtx) -> Self {
        let zero = [0u8; 32];
        let data: &[u8] = match ctx.condition {
            ConditionMode::Data => &zero,
            ConditionMode::Fixed => &[],
        };
        let p = PrepareBuilder {
            amount: ctx.amount,
            expires_at: UNIX_EPOCH,
            execution_condition: &ctx.fixed_condition,
            destination: ctx.destination.clone(),
            data,
        }
        .build();
        let bytes = bytes04::BytesMut::from(p).to_vec();
        let (_, prefix) = read_len(&bytes[1..]).expect("builder output has an envelope");
        let content = 1 + prefix;
        PrepareTemplate {
            expiry_off: content + 8,
            cond_off: content + 8 + 17,
            data_off: (ctx.condition == ConditionMode::Data).then(|| bytes.len() - 32),
            bytes,
        }
    }
}

/// Formats ILP timestamps (`%Y%m%d%H%M%S%3f`, UTC), re-formatting only when
/// the millisecond changes.
#[derive(Default)]
struct ExpiryCache {
    ms: u64,
    text: [u8; 17],
}

impl ExpiryCache {
    fn get(&mut self, t: SystemTime) -> &[u8; 17] {
        let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        if ms != self.ms || self.text[0] == 0 {
            let dt = chrono::DateTime::<chrono::Utc>::from(UNIX_EPOCH + Duration::from_millis(ms));
            let s = dt.format("%Y%m%d%H%M%S%3f").to_string();
            self.text.copy_from_slice(&s.as_bytes()[..17]);
            self.ms = ms;
        }
        &self.text
    }
}

fn build_prepare(
    ctx: &SendCtx,
    tpl: &PrepareTemplate,
    cache: &mut ExpiryCache,
    seq: u64,
) -> (Bytes, [u8; 32]) {
    let mut buf = tpl.bytes.clone();
    buf[tpl.expiry_off..tpl.expiry_off + 17].copy_from_slice(cache.get(SystemTime::now() + ctx.expiry));
    let condition = match tpl.data_off {
        Some(off) => {
            let pre = &mut buf[off..off + 32];
            pre[..24].copy_from_slice(&ctx.nonce);
            pre[24..].copy_from_slice(&seq.to_be_bytes());
            let c = sha256(pre);
            buf[tpl.cond_off..tpl.cond_off + 32].copy_from_slice(&c);
            c
        }
        None => ctx.fixed_condition, // already in the template
    };
    (Bytes::from(buf), condition)
}

async fn worker(
    ctx: Arc<SendCtx>,
    phase: Arc<Phase>,
    mut conn: Option<Conn>,
    record: bool,
) -> (Option<Conn>, WorkerStats) {
    let mut st = WorkerStats::default();
    let tpl = PrepareTemplate::new(&ctx);
    let mut expiry = ExpiryCache::default();
    if record {
        st.latencies_ns.reserve((phase.total as usize) / 8 + 16);
    }
    let mut connect_failures = 0u32;
    loop {
        if phase.aborted.load(Ordering::Relaxed) {
            break;
        }
        let i = phase.next.fetch_add(1, Ordering::Relaxed);
        if i >= phase.total {
            break;
        }
        st.attempted += 1;
        let (body, condition) = build_prepare(&ctx, &tpl, &mut expiry, phase.seq_base + i);

        // Make sure we have a usable keep-alive connection (not timed).
        let mut tx = match conn.take() {
            Some(tx) if !tx.is_closed() => tx,
            _ => match connect_http1(ctx.addr).await {
                Ok(tx) => {
                    connect_failures = 0;
                    tx
                }
                Err(_) => {
                    st.error("connect");
                    connect_failures += 1;
                    if connect_failures >= MAX_CONNECT_FAILURES {
                        phase.aborted.store(true, Ordering::Relaxed);
                        break;
                    }
                    // Do not spin against a dead target.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        if tx.ready().await.is_err() {
            st.error("connection_closed");
            continue;
        }

        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = ctx.path.clone();
        let h = req.headers_mut();
        h.insert(HOST, ctx.host.clone());
        h.insert(CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM));
        if let Some(auth) = &ctx.auth {
            h.insert(AUTHORIZATION, auth.clone());
        }

        let t0 = Instant::now();
        let exchange = async {
            let resp = tx.send_request(req).await.map_err(|_| "request_failed")?;
            let status = resp.status();
            let body = resp.into_body().collect().await.map_err(|_| "body_read_failed")?.to_bytes();
            Ok::<_, &'static str>((status, body))
        };
        let res = tokio::time::timeout(ctx.timeout, exchange).await;
        let elapsed = t0.elapsed().as_nanos() as u64;

        match res {
            Err(_) => {
                // The connection may still deliver the late response; drop it.
                st.error("timeout");
                continue;
            }
            Ok(Err(kind)) => {
                st.error(kind);
                continue;
            }
            Ok(Ok((status, body))) => {
                conn = Some(tx);
                if status != StatusCode::OK {
                    let kind = format!("http_{}", status.as_u16());
                    if !st.reject_samples.contains_key(&kind) {
                        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                        st.reject_samples.insert(kind.clone(), text);
                    }
                    st.error(&kind);
                    continue;
                }
                match classify(&body, &condition) {
                    Outcome::Fulfilled => {
                        st.fulfilled += 1;
                    }
                    Outcome::Rejected(code) => {
                        let code = String::from_utf8_lossy(&code).into_owned();
                        if !st.reject_samples.contains_key(&code) {
                            let msg = view_reject(&body)
                                .map(|(_, m)| String::from_utf8_lossy(m).into_owned())
                                .unwrap_or_default();
                            st.reject_samples.insert(code.clone(), msg);
                        }
                        *st.rejected.entry(code).or_default() += 1;
                    }
                    Outcome::Error(kind) => {
                        st.error(&kind);
                        continue;
                    }
                }
                if record {
                    st.latencies_ns.push(elapsed);
                }
            }
        }
    }
    (conn, st)
}

/// Runs one phase of `total` packets over the connections; returns them for reuse.
async fn run_phase(
    ctx: &Arc<SendCtx>,
    conns: Vec<Option<Conn>>,
    total: u64,
    seq_base: u64,
    record: bool,
) -> (Vec<Option<Conn>>, WorkerStats, Duration) {
    let phase = Arc::new(Phase { next: AtomicU64::new(0), total, seq_base, aborted: AtomicBool::new(false) });
    let t0 = Instant::now();
    let handles: Vec<_> =
        conns.into_iter().map(|c| tokio::spawn(worker(ctx.clone(), phase.clone(), c, record))).collect();
    let mut out_conns = Vec::with_capacity(handles.len());
    let mut all = WorkerStats::default();
    for h in handles {
        match h.await {
            Ok((c, st)) => {
                out_conns.push(c);
                all.merge(st);
            }
            Err(_) => {
                out_conns.push(None);
                all.error("worker_panicked");
            }
        }
    }
    let elapsed = t0.elapsed();
    if all.attempted < total {
        *all.errors.entry("not_sent_target_down".into()).or_default() += total - all.attempted;
    }
    (out_conns, all, elapsed)
}

pub(crate) async fn run_send(a: SendArgs) -> Result<(), String> {
    if a.concurrency == 0 {
        return Err("-c must be at least 1".into());
    }
    let (uri, addr) = loopback_url(&a.url)?;
    let path = Uri::from(uri.path_and_query().cloned().unwrap_or_else(|| "/".parse().unwrap()));
    let host = HeaderValue::from_str(uri.authority().map(|x| x.as_str()).unwrap_or("127.0.0.1"))
        .map_err(|e| e.to_string())?;
    let auth = match &a.token {
        Some(t) => Some(HeaderValue::from_str(&format!("Bearer {t}")).map_err(|e| format!("--token: {e}"))?),
        None => None,
    };
    let destination: Address = a.destination.parse().map_err(|e| format!("--destination: {e:?}"))?;
    let mut nonce = [0u8; 24];
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    nonce[..16].copy_from_slice(&now.to_be_bytes());
    nonce[16..20].copy_from_slice(&std::process::id().to_be_bytes());
    let ctx = Arc::new(SendCtx {
        addr,
        path,
        host,
        auth,
        destination,
        amount: a.amount,
        expiry: Duration::from_millis(a.expiry_ms),
        timeout: Duration::from_millis(a.timeout_ms),
        condition: a.condition,
        nonce,
        fixed_condition: sha256(&FIXED_FULFILLMENT),
    });

    // Open all C connections up front (not timed).
    let mut conns = Vec::with_capacity(a.concurrency);
    for _ in 0..a.concurrency {
        conns.push(connect_http1(addr).await.ok());
    }
    let opened = conns.iter().filter(|c| c.is_some()).count();
    if opened == 0 {
        return Err(format!("could not connect to {addr}"));
    }
    eprintln!("send: {opened}/{} connections open to {}", a.concurrency, a.url);

    if a.warmup > 0 {
        let (c, st, d) = run_phase(&ctx, conns, a.warmup, 1 << 62, false).await;
        conns = c;
        let errs: u64 = st.errors.values().sum();
        let rej: u64 = st.rejected.values().sum();
        eprintln!(
            "send: warm-up {} packets in {:.2}s: fulfilled={} rejected={} errors={}",
            a.warmup,
            d.as_secs_f64(),
            st.fulfilled,
            rej,
            errs
        );
    }

    eprintln!("{MEASURE_START} {} packets", a.packets);
    let cpu0 = cpu_seconds();
    let (_conns, mut st, dur) = run_phase(&ctx, conns, a.packets, 0, true).await;
    let cpu = cpu_seconds() - cpu0;

    st.latencies_ns.sort_unstable();
    let lat = &st.latencies_ns;
    let ms = |ns: u64| ns as f64 / 1e6;
    let mean = if lat.is_empty() { 0.0 } else { ms(lat.iter().sum::<u64>() / lat.len() as u64) };
    let secs = dur.as_secs_f64();
    let rejected: u64 = st.rejected.values().sum();
    let errors: u64 = st.errors.values().sum();
    // Throughput counts ILP answers only (Fulfill or Reject); errors such as
    // fast 502s must not inflate it. With errors=0 this is packets/seconds.
    let answered = st.fulfilled + rejected;
    let summary = Summary {
        label: a.label.clone(),
        url: a.url.clone(),
        packets: a.packets,
        concurrency: a.concurrency,
        seconds: secs,
        packets_per_s: answered as f64 / secs,
        fulfilled_per_s: st.fulfilled as f64 / secs,
        p50_ms: ms(percentile(lat, 50.0)),
        p90_ms: ms(percentile(lat, 90.0)),
        p99_ms: ms(percentile(lat, 99.0)),
        p999_ms: ms(percentile(lat, 99.9)),
        max_ms: ms(lat.last().copied().unwrap_or(0)),
        mean_ms: mean,
        fulfilled: st.fulfilled,
        rejected,
        errors,
        reject_codes: st.rejected.clone(),
        error_kinds: st.errors.clone(),
        sender_cpu_s: cpu,
        sender_threads: a.threads,
        aborted: st.errors.contains_key("not_sent_target_down"),
    };

    let s = &summary;
    println!("== load send {} ==", s.label);
    println!(
        "target        {}  (C={}, threads={}, condition={:?})",
        s.url, s.concurrency, a.threads, a.condition
    );
    println!(
        "packets       {} in {:.3}s  => {:.0} packets/s answered  ({:.0} fulfilled/s)",
        s.packets, s.seconds, s.packets_per_s, s.fulfilled_per_s
    );
    println!("outcome       fulfilled={}  rejected={}  errors={}", s.fulfilled, s.rejected, s.errors);
    println!(
        "latency ms    p50={:.3}  p90={:.3}  p99={:.3}  p99.9={:.3}  max={:.3}  mean={:.3}",
        s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms, s.mean_ms
    );
    println!("sender cpu    {:.2}s ({:.0}% of one core)", cpu, 100.0 * cpu / secs);
    for (code, n) in &st.rejected {
        let sample = st.reject_samples.get(code).map(String::as_str).unwrap_or("");
        println!("reject {code}    {n}  e.g. {sample:?}");
    }
    for (kind, n) in &st.errors {
        match st.reject_samples.get(kind) {
            Some(body) => println!("error {kind}  {n}  e.g. body {body:?}"),
            None => println!("error {kind}  {n}"),
        }
    }
    if s.aborted {
        println!("ABORTED: the target stopped accepting connections; figures cover a partial run");
    }
    println!("{}", s.to_json());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ConditionMode;
    use crate::packet::{sha256, view_prepare, view_reject, FIXED_FULFILLMENT, TYPE_REJECT};
    // The receiver (listed before send) answers the sender's Prepares: these tests prove the two agree.
    use crate::receiver::{Answer, ReceiverLogic};
    use interledger_packet::ErrorCode;

    fn ctx(mode: ConditionMode, dest: &str) -> SendCtx {
        SendCtx {
            addr: "127.0.0.1:1".parse().unwrap(),
            path: Uri::from_static("/"),
            host: HeaderValue::from_static("127.0.0.1:1"),
            auth: None,
            destination: dest.parse().unwrap(),
            amount: 7,
            expiry: Duration::from_secs(30),
            timeout: Duration::from_secs(1),
            condition: mode,
            nonce: [9u8; 24],
            fixed_condition: sha256(&FIXED_FULFILLMENT),
        }
    }

    fn bp(c: &SendCtx, seq: u64) -> (Bytes, [u8; 32]) {
        build_prepare(c, &PrepareTemplate::new(c), &mut ExpiryCache::default(), seq)
    }

    #[test]
    fn template_equals_prepare_builder() {
        for mode in [ConditionMode::Data, ConditionMode::Fixed] {
            // A long destination makes the envelope length prefix multi-byte.
            for dest in ["test.receiver", &format!("test.{}", "x".repeat(200))] {
                let c = ctx(mode, dest);
                let tpl = PrepareTemplate::new(&c);
                let mut cache = ExpiryCache::default();
                for seq in [0u64, 1, u64::MAX] {
                    let (got, cond) = build_prepare(&c, &tpl, &mut cache, seq);
                    let parsed =
                        interledger_packet::Prepare::try_from(bytes04::BytesMut::from(&got[..])).unwrap();
                    let mut pre = [0u8; 32];
                    pre[..24].copy_from_slice(&c.nonce);
                    pre[24..].copy_from_slice(&seq.to_be_bytes());
                    let data: &[u8] = if mode == ConditionMode::Data { &pre } else { &[] };
                    let want = PrepareBuilder {
                        amount: c.amount,
                        expires_at: parsed.expires_at(),
                        execution_condition: &cond,
                        destination: c.destination.clone(),
                        data,
                    }
                    .build();
                    assert_eq!(&got[..], want.as_ref(), "{mode:?} {dest} {seq}");
                    let left = parsed.expires_at().duration_since(SystemTime::now()).unwrap();
                    assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30), "{left:?}");
                }
            }
        }
    }

    #[test]
    fn expiry_cache_formats_utc() {
        let mut c = ExpiryCache::default();
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(c.get(t), b"20231114221320123");
        assert_eq!(c.get(t + Duration::from_micros(500)), b"20231114221320123");
        assert_eq!(c.get(t + Duration::from_millis(1)), b"20231114221320124");
    }

    fn receiver() -> ReceiverLogic {
        ReceiverLogic::new("test.receiver".parse().unwrap())
    }

    #[test]
    fn view_prepare_matches_interledger_packet() {
        let c = ctx(ConditionMode::Data, "test.receiver.alice");
        let (bytes, cond) = bp(&c, 5);
        let parsed = interledger_packet::Prepare::try_from(bytes04::BytesMut::from(&bytes[..])).unwrap();
        let v = view_prepare(&bytes).unwrap();
        assert_eq!(v.condition, parsed.execution_condition());
        assert_eq!(v.condition, &cond[..]);
        assert_eq!(v.data, parsed.data());
        assert_eq!(v.destination, b"test.receiver.alice");
        assert_eq!(parsed.amount(), 7);
        assert_eq!(&v.data[24..], &5u64.to_be_bytes());
    }

    #[test]
    fn receiver_fulfils_data_mode_and_sender_accepts() {
        let c = ctx(ConditionMode::Data, "test.receiver");
        let (bytes, cond) = bp(&c, 123);
        let Answer::Fulfill(f) = receiver().answer(&bytes) else { panic!("expected fulfill") };
        assert_eq!(classify(&f, &cond), Outcome::Fulfilled);
        // A different condition must not be accepted.
        assert_eq!(classify(&f, &[0u8; 32]), Outcome::Error("bad_fulfillment".into()));
    }

    #[test]
    fn receiver_fulfils_fixed_mode() {
        let c = ctx(ConditionMode::Fixed, "test.receiver");
        let (bytes, cond) = bp(&c, 1);
        assert_eq!(view_prepare(&bytes).unwrap().data, b"");
        let Answer::Fulfill(f) = receiver().answer(&bytes) else { panic!("expected fulfill") };
        assert_eq!(classify(&f, &cond), Outcome::Fulfilled);
    }

    #[test]
    fn receiver_rejects_unknown_condition_and_garbage() {
        let p = PrepareBuilder {
            amount: 1,
            expires_at: SystemTime::now(),
            execution_condition: &[1u8; 32],
            destination: "test.receiver".parse().unwrap(),
            data: &[2u8; 32],
        }
        .build();
        let b: bytes04::BytesMut = p.into();
        let Answer::Reject(r) = receiver().answer(&b) else { panic!("expected reject") };
        assert_eq!(classify(&r, &[1u8; 32]), Outcome::Rejected(*b"F05"));
        // The receiver's rejects parse with interledger-packet too.
        let parsed = Reject::try_from(bytes04::BytesMut::from(&r[..])).unwrap();
        assert_eq!(parsed.code(), ErrorCode::F05_WRONG_CONDITION);

        let Answer::Reject(r) = receiver().answer(b"\x0chello") else { panic!("expected reject") };
        assert_eq!(classify(&r, &[0u8; 32]), Outcome::Rejected(*b"F01"));
    }

    #[test]
    fn classify_reject_with_empty_triggered_by() {
        // type 14, len, code "T04", triggered_by "", message "busy", data "".
        let mut content = b"T04".to_vec();
        content.push(0);
        content.push(4);
        content.extend_from_slice(b"busy");
        content.push(0);
        let mut pkt = vec![TYPE_REJECT, content.len() as u8];
        pkt.extend_from_slice(&content);
        assert_eq!(classify(&pkt, &[0u8; 32]), Outcome::Rejected(*b"T04"));
        assert_eq!(view_reject(&pkt).unwrap().1, b"busy");
    }

    #[test]
    fn classify_garbage_is_error_not_panic() {
        for body in [&b""[..], b"\x0d", b"\x0d\x05abc", b"\x0e", b"\x0e\x01X", b"<html>", b"\x0d\xff"] {
            assert!(matches!(classify(body, &[0u8; 32]), Outcome::Error(_)), "{body:?}");
        }
    }
}
