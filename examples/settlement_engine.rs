//! A real RFC 0038 settlement engine, for tests: it "settles" by telling the peer's engine
//! directly over HTTP, as if both kept accounts on one shared ledger.
//!
//! ```text
//! cargo run --example settlement_engine -- --listen 127.0.0.1:0 \
//!     --connector http://127.0.0.1:7761 --peer-engine http://127.0.0.1:4102 \
//!     --scale 9 --data-dir /tmp/engine-a
//! ```
//!
//! It prints one line on stdout once it serves, `listening on http://127.0.0.1:PORT`, then logs
//! to stderr (`RUST_LOG` filters).
//!
//! # The engine API (connector → engine, RFC 0038)
//! - `POST /accounts` `{"id": ...}` → 201 (again for a known account: 201, nothing changes). Then
//!   sends a hello to the peer's engine through the connector (below).
//! - `DELETE /accounts/{id}` → 204 (404 if unknown).
//! - `POST /accounts/{id}/settlements`, `Idempotency-Key` (400 without) and a Quantity → 201 with
//!   the same Quantity: the engine takes all of it on. It converts it to its own scale; what that
//!   scale cannot hold is kept per account as a leftover and added to the next settlement (RFC
//!   "Scale conversions"). The key, the leftover and the transfer to make are written in one
//!   journal line before the answer; the transfer is then sent to the peer's engine and retried
//!   with capped backoff until acknowledged (also after a restart). The same key again answers
//!   the same and makes no transfer; the same key with another body gets 409.
//! - `POST /accounts/{id}/messages`: raw bytes in and out. The only message is
//!   `{"type":"hello","engine":"<url>","account":"<id>"}`: the sender's engine URL and the id
//!   under which the sender's side knows this account's peer (its own account id for us). The
//!   answer is our hello. Each side learns from the other where to send transfers and under which
//!   account id.
//!
//! # Between the two test engines (private, no auth: loopback tests only)
//! - `POST /ledger/transfers` `{"account","amount","scale","transfer_id"}` → 201, idempotent per
//!   `transfer_id` (409 if the same id comes with another body). Then credits the connector:
//!   `POST {connector}/accounts/{account}/settlements` with an Idempotency-Key derived from the
//!   transfer id (stable across retries and restarts), retried with capped backoff until it
//!   succeeds; a definitive refusal (4xx) is logged and kept, not retried.
//!
//! # Where transfers go
//! The peer learned by hello for the account, else `--peer-engine` with the account id
//! `--peer-account` (default: the same id as ours). Without either, a transfer waits and retries.
//!
//! # State
//! `--data-dir/journal.jsonl`: one JSON line per change (fsync'd before the HTTP answer). At
//! start-up it is replayed, idempotency keys older than `--key-retention-s` (at least a day, RFC
//! 0038) are dropped with finished transfers, and it is rewritten as one snapshot line.
//!
//! # Test aid
//! `--fail-settlements-with <status>` answers every settlement request with that HTTP status and
//! does nothing else; it exists only so tests can see how a connector handles refusals.

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thitsax::http::listener::percent_decode;
use thitsax::http::tls::{Roots, TlsConfig, TlsRules};
use thitsax::settlement::engine::{EngineClient, EngineError, EngineLimits};
use thitsax::settlement::quantity::rescale;
use thitsax::settlement::{Quantity, SettlementId};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, error, info, warn};

/// Request bodies are tiny JSON or short messages.
const BODY_BYTES_MAX: usize = 64 * 1024;
const CONNECTIONS_MAX: usize = 64;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// One call to the peer engine or the connector.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// Hellos are a convenience; transfers and credits retry forever (RFC 0038), hellos give up.
const HELLO_ATTEMPTS_MAX: u32 = 8;
/// Account ids and transfer ids: URL-safe and bounded.
const ID_CHARS_MAX: usize = 128;
/// RFC 0038: keys are kept at least 24 hours after their last use.
const KEY_RETENTION_S_MIN: u64 = 86_400;

#[derive(Parser, Debug, Clone)]
#[command(about = "RFC 0038 settlement engine for ThitsaX tests (settles by telling the peer's engine)")]
struct Args {
    /// Address to listen on (loopback only); `:0` picks a free port, printed on stdout.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The connector's settlement callback API, e.g. http://127.0.0.1:7761.
    #[arg(long)]
    connector: String,
    /// The other side's engine, for accounts whose peer was not learned by hello.
    #[arg(long)]
    peer_engine: Option<String>,
    /// The id the peer's engine knows us by, with --peer-engine (default: our own account id).
    #[arg(long)]
    peer_account: Option<String>,
    /// This engine's own scale: settlements are made in whole units of it.
    #[arg(long, default_value_t = 9)]
    scale: u8,
    /// Where the journal (idempotency keys, leftovers, pending transfers) is kept.
    #[arg(long)]
    data_dir: PathBuf,
    /// Cap on the backoff between retries.
    #[arg(long, default_value_t = 2_000)]
    retry_max_ms: u64,
    /// How long idempotency keys are kept (at least 86400).
    #[arg(long, default_value_t = 2 * KEY_RETENTION_S_MIN)]
    key_retention_s: u64,
    /// TEST AID: answer every settlement request with this HTTP status and do nothing else.
    #[arg(long)]
    fail_settlements_with: Option<u16>,
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("--listen must be a loopback address (this engine has no authentication)")]
    NotLoopback,
    #[error("--key-retention-s must be at least {KEY_RETENTION_S_MIN} (RFC 0038)")]
    Retention,
    #[error("--fail-settlements-with must be an HTTP status 100-599")]
    Status,
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("cannot listen: {0}")]
    Bind(std::io::Error),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        match start(args).await {
            Ok((addr, serving)) => {
                println!("listening on http://{addr}");
                let _ = std::io::stdout().flush();
                serving.await;
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("settlement_engine: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}

/// Opens the journal, binds, resumes unfinished work; returns the address and the serving loop.
async fn start(args: Args) -> Result<(SocketAddr, impl std::future::Future<Output = ()>), StartError> {
    if !args.listen.ip().is_loopback() {
        return Err(StartError::NotLoopback);
    }
    if args.key_retention_s < KEY_RETENTION_S_MIN {
        return Err(StartError::Retention);
    }
    if args.fail_settlements_with.is_some_and(|s| StatusCode::from_u16(s).is_err()) {
        return Err(StartError::Status);
    }
    let journal = Journal::open(&args.data_dir, now_s(), args.key_retention_s)?;
    let listener = TcpListener::bind(args.listen).await.map_err(StartError::Bind)?;
    let addr = listener.local_addr().map_err(StartError::Bind)?;
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CALL_TIMEOUT));
    let engine = Arc::new(Engine {
        url: format!("http://{addr}"),
        journal: Mutex::new(journal),
        // The connector's callback API is plain http on loopback: the bundled roots are never used.
        connector: EngineClient::new(
            &EngineLimits { timeout: CALL_TIMEOUT, connections_max: 8, response_bytes_max: BODY_BYTES_MAX },
            &TlsConfig::new(&TlsRules { roots: Roots::Webpki, ca_file: None }),
        ),
        http: Client::builder(TokioExecutor::new()).build(connector),
        args,
    });
    engine.resume();
    Ok((addr, serve(listener, engine)))
}

/// The engine's state and its links.
struct Engine {
    /// Our own URL, sent in hellos.
    url: String,
    journal: Mutex<Journal>,
    /// Calls the connector's callback API, which has the same shape as an engine's
    /// (`/accounts/{id}/settlements` with an Idempotency-Key, `/accounts/{id}/messages`).
    connector: EngineClient,
    /// Calls the peer engine's private ledger endpoint.
    http: Client<HttpConnector, Full<Bytes>>,
    args: Args,
}

// ---------------------------------------------------------------------------------------------
// State and journal

/// Everything the engine must not forget across a restart.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    accounts: BTreeMap<String, AccountState>,
    /// Idempotency key → the settlement request it answered.
    keys: BTreeMap<String, KeyRecord>,
    /// Transfers to the peer engine not yet acknowledged, by transfer id.
    outgoing: BTreeMap<String, Transfer>,
    /// Transfers received from the peer engine, by transfer id (kept like keys, for retries).
    incoming: BTreeMap<String, IncomingTransfer>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct AccountState {
    /// What this engine's scale could not settle yet (RFC 0038 "Scale conversions").
    leftover: Option<Quantity>,
    /// Learned by hello: the peer engine's URL and its id for this account's peer.
    peer: Option<Peer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Peer {
    engine: String,
    account: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct KeyRecord {
    account: String,
    request: Quantity,
    at_s: u64,
}

/// An amount at this engine's scale for one of our accounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Transfer {
    account: String,
    amount: Quantity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct IncomingTransfer {
    account: String,
    amount: Quantity,
    at_s: u64,
    /// None until the connector credited it (`Some(201)`) or refused it for good (`Some(4xx)`).
    outcome: Option<u16>,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    /// The whole state, first line after a compaction.
    Snapshot {
        state: State,
    },
    Account {
        id: String,
    },
    AccountDeleted {
        id: String,
    },
    Peer {
        account: String,
        peer: Peer,
    },
    /// A settlement request taken on: its key, the account's leftover after it, and the transfer
    /// (if its scale could settle any of it), all in one line so a crash keeps all or none.
    Settle {
        key: String,
        record: KeyRecord,
        leftover: Option<Quantity>,
        transfer: Option<(String, Transfer)>,
    },
    TransferAcked {
        transfer_id: String,
    },
    Incoming {
        transfer_id: String,
        transfer: IncomingTransfer,
    },
    CreditOutcome {
        transfer_id: String,
        status: u16,
    },
}

impl State {
    /// Applies one event. Pure, so that replay and live changes agree.
    fn apply(&mut self, event: Event) {
        match event {
            Event::Snapshot { state } => *self = state,
            Event::Account { id } => {
                self.accounts.entry(id).or_default();
            }
            Event::AccountDeleted { id } => {
                self.accounts.remove(&id);
            }
            Event::Peer { account, peer } => {
                if let Some(a) = self.accounts.get_mut(&account) {
                    a.peer = Some(peer);
                }
            }
            Event::Settle { key, record, leftover, transfer } => {
                if let Some(a) = self.accounts.get_mut(&record.account) {
                    a.leftover = leftover;
                }
                self.keys.insert(key, record);
                if let Some((id, transfer)) = transfer {
                    self.outgoing.insert(id, transfer);
                }
            }
            Event::TransferAcked { transfer_id } => {
                self.outgoing.remove(&transfer_id);
            }
            Event::Incoming { transfer_id, transfer } => {
                self.incoming.insert(transfer_id, transfer);
            }
            Event::CreditOutcome { transfer_id, status } => {
                if let Some(t) = self.incoming.get_mut(&transfer_id) {
                    t.outcome = Some(status);
                }
            }
        }
    }

    /// Drops keys, and finished incoming transfers, older than the retention.
    fn expire(&mut self, now_s: u64, retention_s: u64) {
        let keep = |at_s: u64| now_s.saturating_sub(at_s) < retention_s;
        self.keys.retain(|_, k| keep(k.at_s));
        self.incoming.retain(|_, t| t.outcome.is_none() || keep(t.at_s));
    }
}

#[derive(Debug, thiserror::Error)]
enum JournalError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} line {line}: {message}")]
    Corrupt { path: PathBuf, line: usize, message: String },
}

/// The state and the append-only file behind it.
struct Journal {
    state: State,
    file: std::fs::File,
    path: PathBuf,
}

impl Journal {
    /// Replays `dir/journal.jsonl`, expires old keys, and rewrites it as one snapshot line (so it
    /// stays bounded by the live state plus one run's changes). A torn last line (a crash in the
    /// middle of a write, never acknowledged) is ignored; a bad line before it is an error.
    fn open(dir: &Path, now_s: u64, retention_s: u64) -> Result<Journal, JournalError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join("journal.jsonl");
        let mut state = State::default();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                for (i, line) in lines.iter().enumerate() {
                    match serde_json::from_str::<Event>(line) {
                        Ok(event) => state.apply(event),
                        Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {
                            warn!(line = i + 1, "ignoring the torn last line of the journal");
                        }
                        Err(e) => {
                            return Err(JournalError::Corrupt { path, line: i + 1, message: e.to_string() })
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(JournalError::Io { path, source: e }),
        }
        state.expire(now_s, retention_s);
        let tmp = dir.join("journal.jsonl.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        let line = serde_json::to_string(&Event::Snapshot { state: state.clone() }).expect("serializable");
        writeln!(file, "{line}").and_then(|_| file.sync_all()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        let file = std::fs::OpenOptions::new().append(true).open(&path).map_err(io(&path))?;
        Ok(Journal { state, file, path })
    }

    /// Writes the event durably, then applies it. On a write error nothing is applied (the
    /// request fails and its sender retries).
    fn record(&mut self, event: Event) -> Result<(), JournalError> {
        let line = serde_json::to_string(&event).expect("serializable");
        let path = self.path.clone();
        writeln!(self.file, "{line}")
            .and_then(|_| self.file.sync_data())
            .map_err(|source| JournalError::Io { path, source })?;
        self.state.apply(event);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Pure money rules

/// Adds `incoming` to the account's `leftover` and splits the sum into whole units at `scale`
/// (to settle now) and what is left (at the finer of the two scales). `None` on overflow.
fn settlable(leftover: Option<Quantity>, incoming: Quantity, scale: u8) -> Option<(u128, Option<Quantity>)> {
    let leftover = leftover.unwrap_or(Quantity::new(0, incoming.scale));
    let common = leftover.scale.max(incoming.scale);
    // Up to the finer scale: exact, remainders are zero.
    let (a, _) = rescale(leftover.amount, leftover.scale, common)?;
    let (b, _) = rescale(incoming.amount, incoming.scale, common)?;
    let sum = a.checked_add(b)?;
    let (whole, rest) = rescale(sum, common, scale)?;
    Some((whole, (rest > 0).then_some(Quantity::new(rest, common))))
}

/// The connector-side key for crediting a transfer: stable for the transfer (so every retry,
/// across restarts, carries the same key) and as unguessable as the random transfer id.
fn credit_key(transfer_id: &str) -> SettlementId {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("credit:{transfer_id}").as_bytes());
    SettlementId(digest.as_ref()[..16].try_into().expect("32-byte digest"))
}

fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= ID_CHARS_MAX
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~' | b'.'))
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn random_id() -> String {
    SettlementId::random().to_string()
}

// ---------------------------------------------------------------------------------------------
// HTTP server

/// What a request got wrong, answered with its status and a plain-text reason.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    BadRequest(String),
    #[error("no account {0:?}")]
    UnknownAccount(String),
    #[error("{0} already used with a different request")]
    Conflict(&'static str),
    #[error("body larger than {BODY_BYTES_MAX} bytes or not received in time")]
    Body,
    #[error("amount too large")]
    TooLarge,
    #[error("journal unavailable; retry")]
    Journal(#[from] JournalError),
    #[error("refused by --fail-settlements-with (test aid)")]
    Injected(StatusCode),
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::NotFound | Refusal::UnknownAccount(_) => StatusCode::NOT_FOUND,
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::Conflict(_) => StatusCode::CONFLICT,
            Refusal::Body => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::TooLarge => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::Journal(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Injected(status) => *status,
        }
    }
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn serve(listener: TcpListener, engine: Arc<Engine>) {
    let connections = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let permit = connections.clone().acquire_owned().await.expect("never closed");
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let engine = engine.clone();
        let service = hyper::service::service_fn(move |req| {
            let engine = engine.clone();
            async move {
                let response = match engine.handle(req).await {
                    Ok(response) => response,
                    Err(refusal) => {
                        debug!(error = %refusal, "request refused");
                        answer(refusal.status(), "text/plain; charset=utf-8", refusal.to_string())
                    }
                };
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Refusal> {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_BYTES_MAX as u64) {
        return Err(Refusal::Body);
    }
    let collect = Limited::new(req.into_body(), BODY_BYTES_MAX).collect();
    match tokio::time::timeout(BODY_READ_TIMEOUT, collect).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        _ => Err(Refusal::Body),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    id: String,
}

/// The message engines exchange through their connectors.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Message {
    Hello { engine: String, account: String },
}

/// The private endpoint's body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct LedgerTransfer {
    account: String,
    amount: String,
    scale: u8,
    transfer_id: String,
}

impl Engine {
    async fn handle(self: &Arc<Self>, req: Request<Incoming>) -> Result<Answer, Refusal> {
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = req.method().clone();
        match (segments.as_slice(), method) {
            (["accounts"], Method::POST) => self.create_account(read_body(req).await?),
            (["accounts", id], Method::DELETE) => self.delete_account(&account_id(id)?),
            (["accounts", id, "settlements"], Method::POST) => {
                let id = account_id(id)?;
                let key =
                    req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
                self.settle(&id, key, read_body(req).await?)
            }
            (["accounts", id, "messages"], Method::POST) => {
                self.message(&account_id(id)?, &read_body(req).await?)
            }
            (["ledger", "transfers"], Method::POST) => self.ledger_transfer(&read_body(req).await?),
            (["accounts"] | ["accounts", _] | ["accounts", _, "settlements" | "messages"], _)
            | (["ledger", "transfers"], _) => Err(Refusal::MethodNotAllowed),
            _ => Err(Refusal::NotFound),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn create_account(self: &Arc<Self>, body: Bytes) -> Result<Answer, Refusal> {
        let NewAccount { id } = serde_json::from_slice(&body)
            .map_err(|e| Refusal::BadRequest(format!("expected {{\"id\": ...}}: {e}")))?;
        if !is_id(&id) {
            return Err(Refusal::BadRequest(format!(
                "account id must be 1 to {ID_CHARS_MAX} URL-safe characters"
            )));
        }
        let known = {
            let mut journal = self.lock();
            let known = journal.state.accounts.contains_key(&id);
            if !known {
                journal.record(Event::Account { id: id.clone() })?;
            }
            known
        };
        info!(account = %id, known, "account set up");
        tokio::spawn(self.clone().hello(id));
        Ok(answer(StatusCode::CREATED, "application/json", "{}"))
    }

    fn delete_account(&self, id: &str) -> Result<Answer, Refusal> {
        let mut journal = self.lock();
        if !journal.state.accounts.contains_key(id) {
            return Err(Refusal::UnknownAccount(id.into()));
        }
        journal.record(Event::AccountDeleted { id: id.into() })?;
        info!(account = %id, "account deleted");
        Ok(answer(StatusCode::NO_CONTENT, "text/plain; charset=utf-8", ""))
    }

    /// Takes a settlement on: checks the key, splits off the leftover, and records the key, the
    /// new leftover and the transfer in one journal line before answering.
    fn settle(self: &Arc<Self>, account: &str, key: Option<String>, body: Bytes) -> Result<Answer, Refusal> {
        if let Some(status) = self.args.fail_settlements_with {
            return Err(Refusal::Injected(StatusCode::from_u16(status).expect("checked at start")));
        }
        let key = key
            .filter(|k| !k.is_empty() && k.len() <= ID_CHARS_MAX)
            .ok_or_else(|| Refusal::BadRequest("Idempotency-Key header required".into()))?;
        let request = Quantity::from_json(&body).map_err(|e| Refusal::BadRequest(e.to_string()))?;
        let transfer = {
            let mut journal = self.lock();
            let Some(state) = journal.state.accounts.get(account) else {
                return Err(Refusal::UnknownAccount(account.into()));
            };
            if let Some(seen) = journal.state.keys.get(&key) {
                if seen.account != account || seen.request != request {
                    return Err(Refusal::Conflict("Idempotency-Key"));
                }
                return Ok(answer(StatusCode::CREATED, "application/json", request.to_json()));
            }
            let (whole, leftover) =
                settlable(state.leftover, request, self.args.scale).ok_or(Refusal::TooLarge)?;
            let transfer = (whole > 0).then(|| {
                (
                    random_id(),
                    Transfer { account: account.into(), amount: Quantity::new(whole, self.args.scale) },
                )
            });
            let record = KeyRecord { account: account.into(), request, at_s: now_s() };
            journal.record(Event::Settle {
                key: key.clone(),
                record,
                leftover,
                transfer: transfer.clone(),
            })?;
            info!(%account, %key, %request, settle_now = whole, ?leftover, "settlement taken on");
            transfer
        };
        if let Some((id, transfer)) = transfer {
            tokio::spawn(self.clone().send_transfer(id, transfer));
        }
        Ok(answer(StatusCode::CREATED, "application/json", request.to_json()))
    }

    /// A hello from the peer's engine: learn where it is, answer with ours.
    fn message(&self, account: &str, body: &[u8]) -> Result<Answer, Refusal> {
        let Message::Hello { engine, account: peer_account } =
            serde_json::from_slice(body).map_err(|e| Refusal::BadRequest(format!("unknown message: {e}")))?;
        {
            let mut journal = self.lock();
            if !journal.state.accounts.contains_key(account) {
                return Err(Refusal::UnknownAccount(account.into()));
            }
            let peer = Peer { engine, account: peer_account };
            if journal.state.accounts[account].peer.as_ref() != Some(&peer) {
                info!(%account, peer_engine = %peer.engine, peer_account = %peer.account, "peer learned from hello");
                journal.record(Event::Peer { account: account.into(), peer })?;
            }
        }
        let ours = Message::Hello { engine: self.url.clone(), account: account.into() };
        Ok(answer(
            StatusCode::CREATED,
            "application/octet-stream",
            serde_json::to_vec(&ours).expect("serializable"),
        ))
    }

    /// `POST /ledger/transfers` from the peer engine: record once, answer, then credit.
    fn ledger_transfer(self: &Arc<Self>, body: &[u8]) -> Result<Answer, Refusal> {
        let t: LedgerTransfer =
            serde_json::from_slice(body).map_err(|e| Refusal::BadRequest(format!("bad transfer: {e}")))?;
        if !is_id(&t.transfer_id) {
            return Err(Refusal::BadRequest("bad transfer_id".into()));
        }
        let amount = Quantity::from_json(
            serde_json::json!({ "amount": t.amount, "scale": t.scale }).to_string().as_bytes(),
        )
        .map_err(|e| Refusal::BadRequest(e.to_string()))?;
        let incoming = IncomingTransfer { account: t.account.clone(), amount, at_s: now_s(), outcome: None };
        {
            let mut journal = self.lock();
            if let Some(seen) = journal.state.incoming.get(&t.transfer_id) {
                if seen.account != incoming.account || seen.amount != incoming.amount {
                    return Err(Refusal::Conflict("transfer_id"));
                }
                return Ok(answer(StatusCode::CREATED, "application/json", "{}"));
            }
            if !journal.state.accounts.contains_key(&t.account) {
                return Err(Refusal::UnknownAccount(t.account));
            }
            journal
                .record(Event::Incoming { transfer_id: t.transfer_id.clone(), transfer: incoming.clone() })?;
        }
        info!(account = %incoming.account, amount = %incoming.amount, transfer = %t.transfer_id, "transfer received");
        tokio::spawn(self.clone().credit(t.transfer_id, incoming));
        Ok(answer(StatusCode::CREATED, "application/json", "{}"))
    }

    // -----------------------------------------------------------------------------------------
    // Background work: each loop retries with capped exponential backoff and jitter.

    /// At start-up: unacknowledged transfers and uncredited incoming ones carry on; accounts with
    /// no peer say hello again.
    fn resume(self: &Arc<Self>) {
        let state = self.lock().state.clone();
        for (id, transfer) in state.outgoing {
            tokio::spawn(self.clone().send_transfer(id, transfer));
        }
        for (id, incoming) in state.incoming.into_iter().filter(|(_, t)| t.outcome.is_none()) {
            tokio::spawn(self.clone().credit(id, incoming));
        }
        for (id, _) in state.accounts.into_iter().filter(|(_, a)| a.peer.is_none()) {
            tokio::spawn(self.clone().hello(id));
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = Duration::from_millis(self.args.retry_max_ms.max(1));
        let base = RETRY_FIRST.saturating_mul(1u32 << attempt.min(16)).min(cap);
        // Jitter: up to a quarter more, so that retries from many tasks spread out.
        let jitter = u64::from(SettlementId::random().0[0]) * (base.as_millis() as u64 / 4 + 1) / 256;
        base + Duration::from_millis(jitter)
    }

    /// Where a transfer for `account` goes: the learned peer, else the configured one.
    fn peer_of(&self, account: &str) -> Option<Peer> {
        let learned = self.lock().state.accounts.get(account).and_then(|a| a.peer.clone());
        learned.or_else(|| {
            let engine = self.args.peer_engine.clone()?;
            Some(Peer { engine, account: self.args.peer_account.clone().unwrap_or_else(|| account.into()) })
        })
    }

    /// Sends one transfer to the peer engine until it acknowledges; retried forever (RFC 0038:
    /// a settlement taken on is never dropped), the interval capped by `--retry-max-ms`.
    async fn send_transfer(self: Arc<Self>, id: String, transfer: Transfer) {
        for attempt in 0u32.. {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
            let Some(peer) = self.peer_of(&transfer.account) else {
                warn!(account = %transfer.account, "no peer engine known yet; transfer waits");
                continue;
            };
            let body = LedgerTransfer {
                account: peer.account.clone(),
                amount: transfer.amount.amount.to_string(),
                scale: transfer.amount.scale,
                transfer_id: id.clone(),
            };
            match self.post_json(&format!("{}/ledger/transfers", peer.engine), &body).await {
                Ok(status) if (200..300).contains(&status) => {
                    if let Err(e) = self.lock().record(Event::TransferAcked { transfer_id: id.clone() }) {
                        // The peer dedupes by transfer id: resending after a restart is harmless.
                        error!(error = %e, "could not record the acknowledgement");
                    }
                    info!(transfer = %id, amount = %transfer.amount, "transfer acknowledged by the peer engine");
                    return;
                }
                Ok(status) => {
                    warn!(transfer = %id, status, attempt, "peer engine refused the transfer; retrying")
                }
                Err(e) => warn!(transfer = %id, error = %e, attempt, "peer engine unreachable; retrying"),
            }
        }
    }

    /// Credits a received transfer at the connector until it answers; the key is derived from
    /// the transfer id, so the connector credits it once however often this runs.
    async fn credit(self: Arc<Self>, transfer_id: String, incoming: IncomingTransfer) {
        let key = credit_key(&transfer_id);
        for attempt in 0u32.. {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
            let outcome =
                self.connector.settle(&self.args.connector, &incoming.account, &key, &incoming.amount).await;
            let status = match outcome {
                Ok(()) => {
                    info!(transfer = %transfer_id, %key, amount = %incoming.amount, "connector credited the settlement");
                    201
                }
                Err(EngineError::Definitive { status, body }) => {
                    error!(transfer = %transfer_id, status, %body, "connector refused the credit for good");
                    status
                }
                Err(e) => {
                    warn!(transfer = %transfer_id, error = %e, attempt, "crediting the connector; retrying");
                    continue;
                }
            };
            let event = Event::CreditOutcome { transfer_id: transfer_id.clone(), status };
            if let Err(e) = self.lock().record(event) {
                // The connector dedupes by key: crediting again after a restart is harmless.
                error!(error = %e, "could not record the credit's outcome");
            }
            return;
        }
    }

    /// Tells the peer's engine, through the connector, who we are; learns the same from its
    /// answer. Never fatal: transfers fall back to `--peer-engine`.
    async fn hello(self: Arc<Self>, account: String) {
        let ours = Message::Hello { engine: self.url.clone(), account: account.clone() };
        let message = Bytes::from(serde_json::to_vec(&ours).expect("serializable"));
        for attempt in 0..HELLO_ATTEMPTS_MAX {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
            match self.connector.send_message(&self.args.connector, &account, message.clone()).await {
                Ok(answer) => match serde_json::from_slice::<Message>(&answer) {
                    Ok(Message::Hello { engine, account: peer_account }) => {
                        let peer = Peer { engine, account: peer_account };
                        info!(%account, peer_engine = %peer.engine, "peer learned from its hello answer");
                        if let Err(e) = self.lock().record(Event::Peer { account: account.clone(), peer }) {
                            error!(error = %e, "could not record the peer");
                        }
                        return;
                    }
                    Err(e) => warn!(%account, error = %e, "peer answered the hello with something else"),
                },
                Err(e) => debug!(%account, error = %e, attempt, "hello not delivered"),
            }
        }
        warn!(%account, "no hello answer; transfers use --peer-engine");
    }

    /// POSTs JSON; the status, or why there is none.
    async fn post_json(&self, url: &str, body: &impl Serialize) -> Result<u16, String> {
        let json = serde_json::to_vec(body).expect("serializable");
        let request = Request::post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(json)))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            // Drain a bounded amount so the connection can be reused.
            let _ = Limited::new(response.into_body(), BODY_BYTES_MAX).collect().await;
            Ok(status)
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange).await.map_err(|_| "timed out".to_string())?
    }
}

/// An account id from the path: percent-decoded, URL-safe.
fn account_id(segment: &str) -> Result<String, Refusal> {
    percent_decode(segment)
        .filter(|id| is_id(id))
        .ok_or_else(|| Refusal::BadRequest("account id must be URL-safe".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_kept_until_they_make_a_whole_unit() {
        // Engine scale 2 (cents). 1.234 settles 1.23 now and keeps 0.004.
        let (whole, left) = settlable(None, Quantity::new(1234, 3), 2).unwrap();
        assert_eq!((whole, left), (123, Some(Quantity::new(4, 3))));
        // 0.004 + 0.0005 = 0.0045: still under a cent, all kept at the finer scale.
        let (whole, left) = settlable(left, Quantity::new(5, 4), 2).unwrap();
        assert_eq!((whole, left), (0, Some(Quantity::new(45, 4))));
        // + 0.0055 = 0.01: one cent, nothing left.
        let (whole, left) = settlable(left, Quantity::new(55, 4), 2).unwrap();
        assert_eq!((whole, left), (1, None));
        // A coarser request is scaled up exactly.
        assert_eq!(settlable(None, Quantity::new(7, 0), 9), Some((7_000_000_000, None)));
        assert_eq!(settlable(None, Quantity::new(u128::MAX, 0), 1), None);
        assert_eq!(settlable(Some(Quantity::new(u128::MAX, 2)), Quantity::new(1, 2), 2), None);
        assert_eq!(settlable(None, Quantity::new(0, 5), 2), Some((0, None)));
    }

    #[test]
    fn credit_keys_are_stable_per_transfer_and_distinct_across_transfers() {
        assert_eq!(credit_key("t1"), credit_key("t1"));
        assert_ne!(credit_key("t1"), credit_key("t2"));
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("thitsax-engine-{name}-{}", random_id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn settle_event(key: &str, at_s: u64, transfer: Option<(&str, u128)>) -> Event {
        Event::Settle {
            key: key.into(),
            record: KeyRecord { account: "bob".into(), request: Quantity::new(1234, 3), at_s },
            leftover: Some(Quantity::new(4, 3)),
            transfer: transfer.map(|(id, amount)| {
                (id.to_string(), Transfer { account: "bob".into(), amount: Quantity::new(amount, 2) })
            }),
        }
    }

    #[test]
    fn the_journal_round_trips_and_expires_only_old_keys() {
        let dir = temp_dir("journal");
        let now = 10 * KEY_RETENTION_S_MIN;
        let mut journal = Journal::open(&dir, now, KEY_RETENTION_S_MIN).unwrap();
        journal.record(Event::Account { id: "bob".into() }).unwrap();
        let peer = Peer { engine: "http://127.0.0.1:1".into(), account: "alice".into() };
        journal.record(Event::Peer { account: "bob".into(), peer: peer.clone() }).unwrap();
        journal.record(settle_event("old", now - KEY_RETENTION_S_MIN - 1, Some(("t-old", 5)))).unwrap();
        journal.record(settle_event("new", now - 10, Some(("t-new", 123)))).unwrap();
        journal.record(Event::TransferAcked { transfer_id: "t-old".into() }).unwrap();
        let incoming =
            IncomingTransfer { account: "bob".into(), amount: Quantity::new(9, 2), at_s: now, outcome: None };
        journal.record(Event::Incoming { transfer_id: "in-1".into(), transfer: incoming.clone() }).unwrap();
        let before = journal.state.clone();
        drop(journal);

        let reopened = Journal::open(&dir, now, KEY_RETENTION_S_MIN).unwrap();
        let state = &reopened.state;
        assert_eq!(state.accounts["bob"].peer, Some(peer));
        assert_eq!(state.accounts["bob"].leftover, Some(Quantity::new(4, 3)));
        assert!(state.keys.contains_key("new"));
        assert!(!state.keys.contains_key("old"), "older than the retention");
        assert_eq!(state.outgoing.keys().collect::<Vec<_>>(), vec!["t-new"], "only the unacknowledged one");
        assert_eq!(state.incoming["in-1"], incoming);
        let mut expected = before;
        expected.keys.remove("old");
        assert_eq!(*state, expected);
        // Compacted to one snapshot line.
        let text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_a_corrupt_middle_is_refused() {
        let dir = temp_dir("torn");
        let mut journal = Journal::open(&dir, 0, KEY_RETENTION_S_MIN).unwrap();
        journal.record(Event::Account { id: "bob".into() }).unwrap();
        drop(journal);
        let path = dir.join("journal.jsonl");
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        write!(file, "{{\"type\":\"acc").unwrap();
        drop(file);
        let journal = Journal::open(&dir, 0, KEY_RETENTION_S_MIN).unwrap();
        assert!(journal.state.accounts.contains_key("bob"));
        drop(journal);
        std::fs::write(&path, "garbage\n{\"type\":\"account\",\"id\":\"x\"}\n").unwrap();
        assert!(matches!(
            Journal::open(&dir, 0, KEY_RETENTION_S_MIN),
            Err(JournalError::Corrupt { line: 1, .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A connector stand-in that records credits (key, account, body) and answers 201; messages
    /// get 404, so hellos fail and engines fall back to --peer-engine.
    async fn fake_connector() -> (String, Arc<Mutex<Vec<(String, String, Quantity)>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let credits: Arc<Mutex<Vec<(String, String, Quantity)>>> = Default::default();
        let record = credits.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let record = record.clone();
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let record = record.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let key =
                            req.headers().get("idempotency-key").map(|v| v.to_str().unwrap().to_string());
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let status = match (path.strip_suffix("/settlements"), key) {
                            (Some(account), Some(key)) => {
                                let account = account.trim_start_matches("/accounts/").to_string();
                                record.lock().unwrap().push((
                                    key,
                                    account,
                                    Quantity::from_json(&body).unwrap(),
                                ));
                                201
                            }
                            _ => 404,
                        };
                        let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                        *response.status_mut() = StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (url, credits)
    }

    async fn post(url: String, key: Option<&str>, body: &str) -> (u16, String) {
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let mut request = Request::post(url).header(CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response =
            client.request(request.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn args(connector: &str, peer: Option<String>, scale: u8, dir: &Path) -> Args {
        Args {
            listen: "127.0.0.1:0".parse().unwrap(),
            connector: connector.into(),
            peer_engine: peer,
            peer_account: Some("alice".into()),
            scale,
            data_dir: dir.to_path_buf(),
            retry_max_ms: 50,
            key_retention_s: KEY_RETENTION_S_MIN,
            fail_settlements_with: None,
        }
    }

    /// Engine A (scale 2) settles with engine B (scale 2), which credits B's connector once per
    /// transfer: the same key twice makes one transfer, and leftovers wait for a whole cent.
    #[tokio::test]
    async fn a_settlement_reaches_the_peer_connector_once() {
        let (connector_a, _) = fake_connector().await;
        let (connector_b, credits) = fake_connector().await;
        let (dir_a, dir_b) = (temp_dir("a"), temp_dir("b"));
        let (addr_b, serving_b) = start(args(&connector_b, None, 2, &dir_b)).await.unwrap();
        tokio::spawn(serving_b);
        let peer = Some(format!("http://{addr_b}"));
        let (addr_a, serving_a) = start(args(&connector_a, peer, 2, &dir_a)).await.unwrap();
        tokio::spawn(serving_a);
        assert_eq!(post(format!("http://{addr_a}/accounts"), None, r#"{"id":"bob"}"#).await.0, 201);
        assert_eq!(post(format!("http://{addr_b}/accounts"), None, r#"{"id":"alice"}"#).await.0, 201);

        let settle = format!("http://{addr_a}/accounts/bob/settlements");
        let quantity = r#"{"amount":"1234","scale":3}"#;
        assert_eq!(post(settle.clone(), None, quantity).await.0, 400, "a key is required");
        let first = post(settle.clone(), Some("key-1"), quantity).await;
        assert_eq!(first, (201, quantity.to_string()));
        assert_eq!(post(settle.clone(), Some("key-1"), quantity).await, first);
        assert_eq!(post(settle.clone(), Some("key-1"), r#"{"amount":"1","scale":3}"#).await.0, 409);
        // 0.004 left over; 0.006 more makes one cent.
        assert_eq!(post(settle.clone(), Some("key-2"), r#"{"amount":"6","scale":3}"#).await.0, 201);

        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while credits.lock().unwrap().len() < 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let credits = credits.lock().unwrap().clone();
        let mut amounts: Vec<Quantity> = credits.iter().map(|c| c.2).collect();
        amounts.sort_by_key(|q| q.amount);
        assert_eq!(amounts, vec![Quantity::new(1, 2), Quantity::new(123, 2)], "{credits:?}");
        assert!(credits.iter().all(|c| c.1 == "alice" && c.0.len() == 32));
        assert_ne!(credits[0].0, credits[1].0);
        let _ = std::fs::remove_dir_all(&dir_a);
        let _ = std::fs::remove_dir_all(&dir_b);
    }
}
