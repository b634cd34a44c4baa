//! A test double of a payee DFSP's core system: the Mojaloop Connector's **backend API**, which a
//! DFSP serves at the Connector's `BACKEND_ENDPOINT` to be paid (see `tests/mojaloop/README.md`).
//! It is not a DFSP: no ledger, no limits, just
//! enough behaviour for a payer's transfer to complete, and a record of what it was asked.
//!
//! - `GET /parties/{idType}/{idValue}[/{idSubValue}]`: a party added with [`TestBackend::add_party`]
//!   gets 200 echoing its `idType` and `idValue` with its `displayName`; any other gets 404
//!   `{"statusCode": "3204", "message": ...}` (party not found), which the Connector turns into an
//!   FSPIOP 3204 error for the payer.
//! - `POST /quoterequests`: 200 `{"transferAmount": <amount>, "transferAmountCurrency": <currency>}`,
//!   the requested amount and currency as they came (no fees).
//! - `POST /transfers`: deduplicated on `transferId`, as a real DFSP must (the Connector replays
//!   whatever reaches it and checks nothing): the first request for an id is recorded and
//!   answered, a repeat gets the same answer and is recorded nowhere but in
//!   [`transfer_requests`](TestBackend::transfer_requests). Answers 200 `{"homeTransactionId":
//!   ...}` (paid), or, after [`refuse_transfers`](TestBackend::refuse_transfers), the refusal
//!   (e.g. 500 `{"statusCode": "5001", "message": "insufficient"}`).
//! - anything else: 404.
//!
//! [`hold`](TestBackend::hold) makes the party lookups, the quote requests or the transfers wait, recorded (a held
//! transfer is paid) but unanswered, until [`release`](TestBackend::release): a test kills a
//! process while the request is in flight.
//!
//! It listens on 127.0.0.1 on a port the kernel picks, held for its whole life (the Connector is
//! started after it, with [`endpoint`](TestBackend::endpoint)); dropped, it stops serving.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A transfer the backend was asked to make, recorded once per `transferId`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedTransfer {
    pub transfer_id: String,
    /// `amount` of the request: the amount the payer asked for (not the quote's transferAmount).
    pub amount: String,
    pub currency: String,
    /// The payee party, `to.idType` and `to.idValue`.
    pub payee_id_type: String,
    pub payee_id_value: String,
    /// Whether the backend answered 2xx (the payee was paid) rather than the refusal.
    pub paid: bool,
    /// The whole request body, for assertions on fields not copied out here.
    pub body: Value,
}

/// What the backend answers `POST /transfers` with instead of paying.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub status: StatusCode,
    /// The FSPIOP error code (4 digits); with `message`, the Connector relays it to the payer.
    pub status_code: String,
    pub message: String,
}

#[derive(Default)]
struct State {
    /// `(idType, idValue)` → displayName.
    parties: HashMap<(String, String), String>,
    refusal: Option<Refusal>,
    /// First request of each transferId, in arrival order.
    transfers: Vec<ReceivedTransfer>,
    /// The answer given to each transferId, repeated as is for a repeat.
    answers: HashMap<String, (StatusCode, Value)>,
    /// Every `POST /transfers`, repeats included.
    transfer_requests: usize,
    /// Every `POST /quoterequests` body.
    quote_requests: Vec<Value>,
    /// Every `GET /parties/...` path.
    party_lookups: Vec<String>,
    /// Requests of these kinds wait, recorded, until released.
    held: Vec<Held>,
}

/// Which requests [`TestBackend::hold`] makes wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    Parties,
    Quotes,
    Transfers,
}

/// The backend API test double; see the module doc.
pub struct TestBackend {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// Bumped after every request, so a test waits for a condition without polling on a timer.
    changed: watch::Receiver<u64>,
    /// Wakes held requests when the held kinds change.
    release: Arc<watch::Sender<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestBackend {
    /// Starts serving on 127.0.0.1 with no parties and transfers accepted.
    pub async fn start() -> TestBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the test backend");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let (bump, changed) = watch::channel(0u64);
        let bump = Arc::new(bump);
        let release = Arc::new(watch::channel(0u64).0);
        let (served, released) = (state.clone(), release.clone());
        let task = tokio::spawn(async move {
            // Connection tasks live in this set, so aborting the accept loop closes them too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (state, bump, release) = (served.clone(), bump.clone(), released.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (state, bump, release) = (state.clone(), bump.clone(), release.clone());
                        async move {
                            let response = answer(req, &state, &bump, &release).await;
                            bump.send_modify(|n| *n += 1);
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestBackend { addr, state, changed, release, task }
    }

    /// `host:port`, as the Connector's `BACKEND_ENDPOINT` wants it (no scheme).
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Makes `GET /parties/{id_type}/{id_value}` answer 200 with `display_name`.
    pub fn add_party(&self, id_type: &str, id_value: &str, display_name: &str) {
        self.lock().parties.insert((id_type.into(), id_value.into()), display_name.into());
    }

    /// New transfers get `status` with `{"statusCode": status_code, "message": message}` and pay
    /// nothing (transferIds already answered keep their answer).
    pub fn refuse_transfers(&self, status: StatusCode, status_code: &str, message: &str) {
        self.lock().refusal =
            Some(Refusal { status, status_code: status_code.into(), message: message.into() });
    }

    /// Requests of `kind` wait, recorded but unanswered, until [`release`](Self::release).
    pub fn hold(&self, kind: Held) {
        self.lock().held.push(kind);
        self.release.send_modify(|n| *n += 1);
    }

    /// Held requests are answered, and no more are held.
    pub fn release(&self) {
        self.lock().held.clear();
        self.release.send_modify(|n| *n += 1);
    }

    /// New transfers are paid again.
    pub fn accept_transfers(&self) {
        self.lock().refusal = None;
    }

    /// Every transfer received, once per transferId, paid or refused, in arrival order.
    pub fn transfers(&self) -> Vec<ReceivedTransfer> {
        self.lock().transfers.clone()
    }

    /// The transfers paid (answered 2xx).
    pub fn paid(&self) -> Vec<ReceivedTransfer> {
        self.lock().transfers.iter().filter(|t| t.paid).cloned().collect()
    }

    /// `POST /transfers` requests received, repeats of a transferId included.
    pub fn transfer_requests(&self) -> usize {
        self.lock().transfer_requests
    }

    /// Every `POST /quoterequests` body received.
    pub fn quote_requests(&self) -> Vec<Value> {
        self.lock().quote_requests.clone()
    }

    /// Every `GET /parties/...` path received.
    pub fn party_lookups(&self) -> Vec<String> {
        self.lock().party_lookups.clone()
    }

    /// Waits until `done(self)` holds, re-checked after every request the backend answers;
    /// panics after `timeout` with what it received.
    pub async fn wait_until(&self, what: &str, timeout: Duration, done: impl Fn(&TestBackend) -> bool) {
        let mut changed = self.changed.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Marked seen before the check, so a request answered during it wakes the wait.
            changed.borrow_and_update();
            if done(self) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
                panic!(
                    "backend {}: not {what} within {timeout:?}; transfers: {:#?}, quote requests: {}, \
                     party lookups: {:?}",
                    self.addr,
                    self.transfers(),
                    self.quote_requests().len(),
                    self.party_lookups()
                );
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", "application/json".parse().unwrap());
    response
}

fn text(body: &Value, pointer: &str) -> String {
    body.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string()
}

async fn answer(
    req: Request<Incoming>,
    state: &Mutex<State>,
    bump: &watch::Sender<u64>,
    release: &watch::Sender<u64>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let kind = match (req.method(), path.as_str()) {
        (&Method::GET, p) if p.starts_with("/parties/") => Some(Held::Parties),
        (&Method::POST, "/quoterequests") => Some(Held::Quotes),
        (&Method::POST, "/transfers") => Some(Held::Transfers),
        _ => None,
    };
    let response = respond(req, state).await;
    // Recorded (a held transfer is paid): the test sees it, then the answer waits.
    let held = |s: &Mutex<State>| {
        kind.is_some_and(|k| s.lock().unwrap_or_else(|e| e.into_inner()).held.contains(&k))
    };
    if held(state) {
        let mut released = release.subscribe();
        bump.send_modify(|n| *n += 1);
        while held(state) {
            if released.changed().await.is_err() {
                break;
            }
        }
    }
    response
}

async fn respond(req: Request<Incoming>, state: &Mutex<State>) -> Response<Full<Bytes>> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    match (&method, segments.as_slice()) {
        (&Method::GET, ["parties", id_type, id_value, ..]) => {
            state.party_lookups.push(path.clone());
            match state.parties.get(&(id_type.to_string(), id_value.to_string())) {
                Some(name) => json_response(
                    StatusCode::OK,
                    &json!({"idType": id_type, "idValue": id_value, "displayName": name}),
                ),
                None => json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"statusCode": "3204", "message": format!("no party {id_type} {id_value}")}),
                ),
            }
        }
        (&Method::POST, ["quoterequests"]) => {
            let quote = json!({
                "transferAmount": text(&body, "/amount"),
                "transferAmountCurrency": text(&body, "/currency"),
            });
            state.quote_requests.push(body);
            json_response(StatusCode::OK, &quote)
        }
        (&Method::POST, ["transfers"]) => {
            state.transfer_requests += 1;
            let transfer_id = text(&body, "/transferId");
            if let Some((status, answer)) = state.answers.get(&transfer_id) {
                return json_response(*status, answer);
            }
            let (status, answer) = match &state.refusal {
                Some(r) => (r.status, json!({"statusCode": r.status_code, "message": r.message})),
                None => (StatusCode::OK, json!({"homeTransactionId": format!("home-{transfer_id}")})),
            };
            state.transfers.push(ReceivedTransfer {
                transfer_id: transfer_id.clone(),
                amount: text(&body, "/amount"),
                currency: text(&body, "/currency"),
                payee_id_type: text(&body, "/to/idType"),
                payee_id_value: text(&body, "/to/idValue"),
                paid: status.is_success(),
                body,
            });
            state.answers.insert(transfer_id, (status, answer.clone()));
            json_response(status, &answer)
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"message": format!("no route {method} {path}")})),
    }
}
