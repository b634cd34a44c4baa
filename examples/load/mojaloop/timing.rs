//! The timing proxy between the payee Connector and its backend (the tool's, or ThitsaX's): the
//! Connector's `BACKEND_ENDPOINT` names it, it forwards every request to the real backend and
//! records, per request, the time from the request received (its head read; the body, a few
//! hundred bytes, follows at once) to the answer handed back to the connection (read whole from
//! the backend first; written at once). On the direct side the backend answers in microseconds,
//! so its figures are the proxy's own overhead.
//!
//! Each Connector connection gets one upstream keep-alive connection of its own (HTTP/1 serves
//! one request at a time per connection), so the proxy never queues a request behind another.
//! A failure to reach the backend answers 502, recorded with the rest (any non-2xx is reported).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::runtime::Handle;
use tokio::task::JoinSet;

use crate::loopback::connect_http1;
use crate::server::http1_server;

/// The backend API's requests, told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// `GET /parties/...`: ThitsaX asks the receiver's SPSP server.
    Parties,
    /// `POST /quoterequests`: ThitsaX probes the ILP path (STREAM test packets).
    Quotes,
    /// `POST /transfers`: ThitsaX pays over STREAM, and answers once the money arrived.
    Transfers,
    Other,
}

impl Kind {
    pub(crate) const MEASURED: [Kind; 3] = [Kind::Parties, Kind::Quotes, Kind::Transfers];

    fn of(method: &Method, path: &str) -> Kind {
        match (method, path.trim_start_matches('/').split('/').next().unwrap_or("")) {
            (&Method::GET, "parties") => Kind::Parties,
            (&Method::POST, "quoterequests") => Kind::Quotes,
            (&Method::POST, "transfers") => Kind::Transfers,
            _ => Kind::Other,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Parties => "GET /parties",
            Kind::Quotes => "POST /quoterequests",
            Kind::Transfers => "POST /transfers",
            Kind::Other => "other",
        }
    }

    /// The key in the JSON output.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Kind::Parties => "parties",
            Kind::Quotes => "quoterequests",
            Kind::Transfers => "transfers",
            Kind::Other => "other",
        }
    }
}

/// One request through the proxy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sample {
    pub(crate) kind: Kind,
    pub(crate) status: u16,
    /// Request received to answer handed back, in microseconds.
    pub(crate) micros: u64,
    /// When it was received, microseconds after the proxy started (to line up with logs).
    pub(crate) at_micros: u64,
}

type Samples = Arc<Mutex<Vec<Sample>>>;

pub(crate) struct TimingProxy {
    pub(crate) addr: SocketAddr,
    samples: Samples,
    /// Connections accepted from the Connector: it opens one per backend request (a new
    /// keep-alive agent per inbound FSPIOP request) and leaves it open.
    connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TimingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TimingProxy {
    /// Listens on 127.0.0.1:0 and forwards to `target`.
    pub(crate) fn start(servers: &Handle, target: SocketAddr) -> Result<TimingProxy, String> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind timing proxy: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let samples = Samples::default();
        let recorded = samples.clone();
        let connections = Arc::new(AtomicU64::new(0));
        let accepted = connections.clone();
        let started = Instant::now();
        let task = servers.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                accepted.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let samples = recorded.clone();
                // This connection's upstream connection, taken for a request and put back.
                let upstream: Arc<Mutex<Option<SendRequest<Full<Bytes>>>>> = Arc::default();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (samples, upstream) = (samples.clone(), upstream.clone());
                        async move {
                            Ok::<_, Infallible>(forward(req, target, &upstream, &samples, started).await)
                        }
                    });
                    let _ = http1_server().serve_connection(TokioIo::new(stream), service).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(TimingProxy { addr, samples, connections, task })
    }

    /// `host:port`, as `BACKEND_ENDPOINT` wants it.
    pub(crate) fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// The samples recorded and the connections accepted since the last call.
    pub(crate) fn take(&self) -> (Vec<Sample>, u64) {
        let samples = std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
        (samples, self.connections.swap(0, Ordering::Relaxed))
    }
}

/// Hop-by-hop and framing headers: hyper frames the whole bodies itself.
fn strip(headers: &mut HeaderMap) {
    for h in [CONNECTION, TRANSFER_ENCODING, CONTENT_LENGTH] {
        headers.remove(h);
    }
    headers.remove("keep-alive");
}

async fn forward(
    req: Request<Incoming>,
    target: SocketAddr,
    upstream: &Mutex<Option<SendRequest<Full<Bytes>>>>,
    samples: &Mutex<Vec<Sample>>,
    started: Instant,
) -> Response<Full<Bytes>> {
    let received = Instant::now();
    let kind = Kind::of(req.method(), req.uri().path());
    let response = match relay(req, target, upstream).await {
        Ok(response) => response,
        Err(why) => {
            let mut r = Response::new(Full::new(Bytes::from(format!("timing proxy: {why}\n"))));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r
        }
    };
    let sample = Sample {
        kind,
        status: response.status().as_u16(),
        micros: received.elapsed().as_micros() as u64,
        at_micros: received.duration_since(started).as_micros() as u64,
    };
    samples.lock().unwrap_or_else(|e| e.into_inner()).push(sample);
    response
}

async fn relay(
    req: Request<Incoming>,
    target: SocketAddr,
    upstream: &Mutex<Option<SendRequest<Full<Bytes>>>>,
) -> Result<Response<Full<Bytes>>, String> {
    let (mut parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|e| format!("request body: {e}"))?.to_bytes();
    strip(&mut parts.headers);
    let taken = upstream.lock().unwrap_or_else(|e| e.into_inner()).take();
    let mut tx = match taken {
        Some(tx) if !tx.is_closed() => tx,
        _ => connect_http1(target).await?,
    };
    tx.ready().await.map_err(|e| format!("backend connection: {e}"))?;
    let answer = tx
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| format!("backend: {e}"))?;
    let (mut parts, body) = answer.into_parts();
    let body = body.collect().await.map_err(|e| format!("backend's answer: {e}"))?.to_bytes();
    *upstream.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    strip(&mut parts.headers);
    Ok(Response::from_parts(parts, Full::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mojaloop::backend::Backend;

    #[test]
    fn the_proxy_forwards_to_the_backend_and_times_every_request() {
        let servers =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let backend = Backend::start(servers.handle()).unwrap();
        let proxy = TimingProxy::start(servers.handle(), backend.addr).unwrap();
        let client = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let answers = client.block_on(async {
            let mut tx = connect_http1::<Full<Bytes>>(proxy.addr).await.unwrap();
            let mut answers = Vec::new();
            for (method, path, body) in [
                ("GET", "/parties/MSISDN/521550000001", ""),
                ("POST", "/quoterequests", r#"{"amount": "1.5", "currency": "USD"}"#),
                ("POST", "/transfers", r#"{"transferId": "t-1"}"#),
                ("POST", "/transfers", r#"{"transferId": "t-1"}"#),
                ("PUT", "/transfers/t-1", "{}"),
            ] {
                let request = Request::builder()
                    .method(method)
                    .uri(path)
                    .header("host", "backend")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                tx.ready().await.unwrap();
                let answer = tx.send_request(request).await.unwrap();
                let status = answer.status().as_u16();
                let body = answer.into_body().collect().await.unwrap().to_bytes();
                answers.push((status, serde_json::from_slice::<serde_json::Value>(&body).unwrap()));
            }
            answers
        });
        assert_eq!(
            answers[0],
            (
                200,
                serde_json::json!({"idType": "MSISDN", "idValue": "521550000001", "displayName": "load payee"})
            )
        );
        assert_eq!(
            answers[1],
            (200, serde_json::json!({"transferAmount": "1.5", "transferAmountCurrency": "USD"}))
        );
        assert_eq!(answers[2], (200, serde_json::json!({"homeTransactionId": "t-1"})));
        assert_eq!(answers[3], answers[2], "a repeat is answered alike");
        assert_eq!(answers[4].0, 404);
        // Paid once, asked twice.
        assert_eq!(backend.counts.paid(), 1);
        assert_eq!(backend.counts.transfer_requests.load(Ordering::Relaxed), 2);
        let (samples, connections) = proxy.take();
        let kinds: Vec<(Kind, u16)> = samples.iter().map(|s| (s.kind, s.status)).collect();
        assert_eq!(
            kinds,
            [
                (Kind::Parties, 200),
                (Kind::Quotes, 200),
                (Kind::Transfers, 200),
                (Kind::Transfers, 200),
                (Kind::Other, 404)
            ]
        );
        assert!(samples.windows(2).all(|w| w[0].at_micros <= w[1].at_micros));
        assert_eq!(connections, 1, "one keep-alive connection, one upstream connection");
        assert_eq!(proxy.take(), (vec![], 0), "taken");
    }

    #[test]
    fn requests_are_told_apart_by_method_and_first_segment() {
        assert_eq!(Kind::of(&Method::GET, "/parties/MSISDN/123"), Kind::Parties);
        assert_eq!(Kind::of(&Method::POST, "/quoterequests"), Kind::Quotes);
        assert_eq!(Kind::of(&Method::POST, "/transfers"), Kind::Transfers);
        assert_eq!(Kind::of(&Method::PUT, "/transfers/abc"), Kind::Other);
        assert_eq!(Kind::of(&Method::GET, "/"), Kind::Other);
    }
}
