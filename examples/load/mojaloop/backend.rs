//! The direct side's payee: a minimal DFSP core system serving the Connector's backend API in
//! this process, the least a Connector needs for a transfer to complete (see
//! `tests/common/mojaloop_backend.rs` and `/work/shared/wire/mojaloop.md`):
//!
//! - `GET /parties/{idType}/{idValue}[/{idSubValue}]` → 200 echoing `idType` and `idValue`;
//! - `POST /quoterequests` → 200 `{"transferAmount": <amount>, "transferAmountCurrency": <currency>}`;
//! - `POST /transfers` → 200 `{"homeTransactionId": <transferId>}`, each transferId counted
//!   once (a repeat is answered alike and counted apart, so a run can tell it paid each once);
//! - anything else → 404.
//!
//! Also the payer Connector's backend on both sides, where nothing is expected of it.
//!
//! Its listener binds 127.0.0.1:0 and lives on the tool's server runtime until [`Backend`] is
//! dropped; aborting the accept task closes its connections too (they live in its `JoinSet`).

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::runtime::Handle;
use tokio::task::JoinSet;

use crate::server::http1_server;

/// What the backend was asked.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) parties: AtomicU64,
    pub(crate) quotes: AtomicU64,
    /// Every `POST /transfers`, repeats included.
    pub(crate) transfer_requests: AtomicU64,
    /// Requests it had no answer for (404) or could not read.
    pub(crate) other: AtomicU64,
    /// The transferIds paid, once each.
    paid: Mutex<HashSet<String>>,
}

impl Counts {
    pub(crate) fn paid(&self) -> u64 {
        self.paid.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }
}

pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    pub(crate) counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    pub(crate) fn start(servers: &Handle) -> Result<Backend, String> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind backend: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let counts = Arc::new(Counts::default());
        let served = counts.clone();
        let task = servers.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let counts = served.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let counts = counts.clone();
                        async move { Ok::<_, Infallible>(answer(req, &counts).await) }
                    });
                    let _ = http1_server().serve_connection(TokioIo::new(stream), service).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Backend { addr, counts, task })
    }

    /// `host:port`, as `BACKEND_ENDPOINT` wants it.
    pub(crate) fn endpoint(&self) -> String {
        self.addr.to_string()
    }
}

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", "application/json".parse().expect("valid header"));
    response
}

async fn answer(req: Request<Incoming>, counts: &Counts) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let (&Method::GET, ["parties", id_type, id_value, ..]) = (&method, segments.as_slice()) {
        counts.parties.fetch_add(1, Ordering::Relaxed);
        return json_response(
            StatusCode::OK,
            json!({"idType": id_type, "idValue": id_value, "displayName": "load payee"}),
        );
    }
    let body: Value = match req.into_body().collect().await {
        Ok(b) => serde_json::from_slice(&b.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string();
    match (&method, segments.as_slice()) {
        (&Method::POST, ["quoterequests"]) => {
            counts.quotes.fetch_add(1, Ordering::Relaxed);
            json_response(
                StatusCode::OK,
                json!({"transferAmount": text("/amount"), "transferAmountCurrency": text("/currency")}),
            )
        }
        (&Method::POST, ["transfers"]) => {
            counts.transfer_requests.fetch_add(1, Ordering::Relaxed);
            let id = text("/transferId");
            counts.paid.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone());
            json_response(StatusCode::OK, json!({"homeTransactionId": id}))
        }
        _ => {
            counts.other.fetch_add(1, Ordering::Relaxed);
            json_response(StatusCode::NOT_FOUND, json!({"statusCode": "3002", "message": "not served"}))
        }
    }
}
