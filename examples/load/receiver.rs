//! `receiver`: the ILP-over-HTTP (RFC 0035) endpoint at the end of every load
//! run. It fulfils each Prepare whose condition it can meet (the preimage in
//! the data, or the fixed fulfillment) and rejects the rest.
//!
//! `ReceiverLogic` is the pure part (bytes in, answer out), so that tests prove
//! the answers without a socket; the rest is the HTTP server around it.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use interledger_packet::{Address, ErrorCode, FulfillBuilder, RejectBuilder};
use tokio::net::TcpListener;

use crate::cli::ReceiverArgs;
use crate::cpu::cpu_seconds;
use crate::loopback::require_loopback;
use crate::packet::{bytes04_to_1, sha256, view_prepare, FIXED_FULFILLMENT, OCTET_STREAM};
use crate::server::{accept_loop, http1_server, ServerStats};
use crate::signal::shutdown_signal;

pub(crate) enum Answer {
    Fulfill(Bytes),
    Reject(Bytes),
}

pub(crate) struct ReceiverLogic {
    fixed_fulfill: Bytes,
    fixed_condition: [u8; 32],
    address: Address,
}

impl ReceiverLogic {
    pub(crate) fn new(address: Address) -> Self {
        let fixed_fulfill =
            bytes04_to_1(FulfillBuilder { fulfillment: &FIXED_FULFILLMENT, data: &[] }.build().into());
        ReceiverLogic { fixed_fulfill, fixed_condition: sha256(&FIXED_FULFILLMENT), address }
    }

    fn reject(&self, code: ErrorCode, message: &str) -> Answer {
        let r =
            RejectBuilder { code, message: message.as_bytes(), triggered_by: Some(&self.address), data: &[] }
                .build();
        Answer::Reject(bytes04_to_1(r.into()))
    }

    pub(crate) fn answer(&self, body: &[u8]) -> Answer {
        let Some(p) = view_prepare(body) else {
            return self.reject(ErrorCode::F01_INVALID_PACKET, "load receiver: not a valid ILP Prepare");
        };
        if p.data.len() >= 32 {
            let pre: &[u8; 32] = p.data[..32].try_into().unwrap();
            if sha256(pre)[..] == *p.condition {
                let f = FulfillBuilder { fulfillment: pre, data: &[] }.build();
                return Answer::Fulfill(bytes04_to_1(f.into()));
            }
        }
        if *p.condition == self.fixed_condition[..] {
            return Answer::Fulfill(self.fixed_fulfill.clone());
        }
        self.reject(ErrorCode::F05_WRONG_CONDITION, "load receiver: unknown condition")
    }
}

pub(crate) async fn run_receiver(a: ReceiverArgs) -> Result<(), String> {
    require_loopback(&a.common.listen)?;
    let address: Address = a.address.parse().map_err(|e| format!("--address: {e:?}"))?;
    let logic = Arc::new(ReceiverLogic::new(address));
    let stats = Arc::new(ServerStats::default());
    let listener =
        TcpListener::bind(a.common.listen).await.map_err(|e| format!("bind {}: {e}", a.common.listen))?;
    eprintln!("receiver listening on http://{} (threads={})", a.common.listen, a.common.threads);
    let server = http1_server();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let st = stats.clone();
    let accept = accept_loop(listener, stats.clone(), move |stream| {
        let logic = logic.clone();
        let stats = st.clone();
        let conn = server.serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| receiver_handle(req, logic.clone(), stats.clone())),
        );
        async move {
            let _ = conn.await;
        }
    });
    let why = tokio::select! {
        _ = accept => "accept loop ended",
        w = shutdown_signal(a.common.exit_after_secs) => w,
    };
    eprintln!(
        "receiver stopping ({why}) after {:.1}s: connections={} requests={} fulfilled={} rejected={} bad={} cpu_s={:.2}",
        t0.elapsed().as_secs_f64(),
        stats.connections.load(Ordering::Relaxed),
        stats.requests.load(Ordering::Relaxed),
        stats.fulfilled.load(Ordering::Relaxed),
        stats.rejected.load(Ordering::Relaxed),
        stats.bad.load(Ordering::Relaxed),
        cpu_seconds() - cpu0,
    );
    Ok(())
}

fn plain(status: StatusCode, msg: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(msg.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn receiver_handle(
    req: Request<Incoming>,
    logic: Arc<ReceiverLogic>,
    stats: Arc<ServerStats>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    if req.method() != Method::POST {
        stats.bad.fetch_add(1, Ordering::Relaxed);
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "POST only\n"));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            stats.bad.fetch_add(1, Ordering::Relaxed);
            return Ok(plain(StatusCode::BAD_REQUEST, "body read error\n"));
        }
    };
    let packet = match logic.answer(&body) {
        Answer::Fulfill(b) => {
            stats.fulfilled.fetch_add(1, Ordering::Relaxed);
            b
        }
        Answer::Reject(b) => {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            b
        }
    };
    let mut resp = Response::new(Full::new(packet));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM));
    Ok(resp)
}
