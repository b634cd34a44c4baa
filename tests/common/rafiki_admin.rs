//! The **test double** of Rafiki's operator side, beside its connector (`rafiki.rs`): its peer
//! liquidity **ledger** (shared with the connector double), its **admin GraphQL API** and its
//! **webhooks**, behaving as `../shared/wire/rafiki.md` describes. Rafiki cannot run in CI, so
//! tests speak to this double; it refuses what real Rafiki refuses.
//!
//! Layout:
//! - [`Ledger`]: peers' liquidity and thresholds, transfer ids (for `DUPLICATE`), withdrawals
//!   (reserved, posted, voided, expired: expiry is checked lazily on every access), the
//!   idempotency cache and a log of the mutations done;
//! - [`AdminDouble`]: `POST /graphql` on its own port, every request signed (`signature: t=<ms>,
//!   v1=<hex>` over the exact canonical bytes sent, fresh within 30 s either way, never replayed)
//!   with the operator's `tenant-id`, else 401 text/plain `Unauthorized`; `GET /healthz` open.
//!   Test controls: outages for the next N requests, a record of every request;
//! - [`Webhooks`]: `peer.liquidity_low` events posted to the operator's URL, signed with
//!   `Rafiki-Signature`, the body deliberately not in canonical order, retried until an HTTP 200
//!   (10 attempts, 2 s each, waiting per a delay list).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thitsax::rafiki::signature::{canonical, sign};
use tokio::net::TcpListener;

/// The peer id Rafiki gave the node it peered with (the connector double's one peer).
pub const NODE_PEER_ID: &str = "3f9c2a71-5b4e-4d8a-9c1f-7e2b6a0d4c58";
/// The operator's tenant, as the auto-peering answer names it.
pub const TENANT_ID: &str = "8e1db008-ab2f-4f1d-8c44-593bf2d54d1a";
/// The asset's id in Rafiki (webhooks and `peer` name it).
pub const ASSET_ID: &str = "b7e4c1d2-9a3f-4e6b-8d2c-1f5a7e9b3c60";
/// The operator's admin API secret, unless the test names another.
pub const ADMIN_SECRET: &[u8] = b"rafiki-double-admin-secret";
/// A new peer's liquidity in Rafiki's auto-peering (2^53 - 1), with no threshold.
pub const AUTO_PEERING_LIQUIDITY: u64 = 9_007_199_254_740_991;
/// How far a request's `t` may be from the double's clock, either way (Rafiki: 30 s past;
/// nothing bounds the future there, our stricter double bounds it too).
pub const SIGNATURE_AGE_MAX: Duration = Duration::from_secs(30);
/// A `t` below this is taken for seconds, not milliseconds (10^12 ms is September 2001).
const T_MS_MIN: u128 = 1_000_000_000_000;
/// Webhook attempts per event, the first included (Rafiki's).
pub const WEBHOOK_ATTEMPTS_MAX: u32 = 10;
/// Each webhook attempt is given up after this long (Rafiki's).
pub const WEBHOOK_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Rafiki's waits after each failed attempt, in seconds.
pub const RAFIKI_RETRY_DELAYS_S: [u64; 9] = [10, 20, 30, 40, 50, 60, 60, 60, 60];
/// How long after a fulfilled packet Rafiki posts its `peer.liquidity_low`.
pub const LIQUIDITY_LOW_DELAY: Duration = Duration::from_millis(100);

/// A new random UUID v4, as Rafiki makes its ids.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).expect("random bytes");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Whether `s` is a UUID v4 (hex in either case, version nibble 4, RFC 4122 variant).
pub fn is_uuid_v4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let lengths_ok = parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]);
    lengths_ok
        && parts.iter().all(|p| p.bytes().all(|c| c.is_ascii_hexdigit()))
        && parts[2].starts_with('4')
        && matches!(parts[3].as_bytes()[0].to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b')
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}

/// Polls `done` every 10 ms until it holds; panics naming `what` after `timeout`. For tests'
/// assertions on things that happen asynchronously (webhooks, expiries): never a fixed sleep.
pub async fn eventually(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "not within {timeout:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The ledger

/// The asset the double holds (Rafiki's `asset {id, code, scale}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub id: String,
    pub code: String,
    pub scale: u8,
}

/// One peer's account in Rafiki's ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAccount {
    /// What the peer may still send through Rafiki (its prefunding), in the asset's scale.
    pub liquidity: u64,
    /// At or below this after a fulfilled packet from the peer, `peer.liquidity_low` fires.
    pub threshold: Option<u64>,
}

/// Where a liquidity withdrawal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithdrawalState {
    /// Taken from the liquidity, given back if voided or at `expires_at`.
    Reserved {
        expires_at: Instant,
    },
    Posted,
    Voided,
    /// Reached its timeout reserved: given back.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub peer_id: String,
    pub amount: u64,
    pub state: WithdrawalState,
}

/// What a transfer id was used for (ids are unique across kinds, as in Rafiki's ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    Deposit,
    Withdrawal,
}

/// A mutation the ledger applied (replays answered from the idempotency cache are not here).
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub operation: String,
    pub input: Value,
}

/// Rafiki's peer liquidity ledger, shared (behind [`SharedLedger`]) by the connector double
/// (packets debit and credit it) and the admin API (deposits and withdrawals).
#[derive(Debug)]
pub struct Ledger {
    pub asset: Asset,
    peers: HashMap<String, PeerAccount>,
    transfers: HashMap<String, TransferKind>,
    withdrawals: HashMap<String, Withdrawal>,
    /// idempotencyKey → (the arguments' fingerprint, the answer first given). Errors are not
    /// cached; keys are shared across mutations.
    idempotency: HashMap<String, (String, Value)>,
    log: Vec<Mutation>,
}

pub type SharedLedger = Arc<Mutex<Ledger>>;

/// A refusal of the admin API: a GraphQL error with its `extensions.code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphqlError {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: &str) -> GraphqlError {
    GraphqlError { code, message: message.to_string() }
}

impl Ledger {
    pub fn new(asset: Asset) -> Ledger {
        Ledger {
            asset,
            peers: HashMap::new(),
            transfers: HashMap::new(),
            withdrawals: HashMap::new(),
            idempotency: HashMap::new(),
            log: Vec::new(),
        }
    }

    pub fn shared(self) -> SharedLedger {
        Arc::new(Mutex::new(self))
    }

    /// Gives back the reservations past their timeout: called on every access, so expiry needs
    /// no timer task.
    fn expire(&mut self) {
        let now = Instant::now();
        for w in self.withdrawals.values_mut() {
            if let WithdrawalState::Reserved { expires_at } = w.state {
                if expires_at <= now {
                    w.state = WithdrawalState::Expired;
                    let peer = self.peers.get_mut(&w.peer_id).expect("a withdrawal's peer exists");
                    peer.liquidity += w.amount;
                }
            }
        }
    }

    pub fn add_peer(&mut self, peer_id: &str, account: PeerAccount) {
        self.peers.insert(peer_id.to_string(), account);
    }

    pub fn peer(&mut self, peer_id: &str) -> Option<PeerAccount> {
        self.expire();
        self.peers.get(peer_id).copied()
    }

    pub fn liquidity(&mut self, peer_id: &str) -> Option<u64> {
        self.peer(peer_id).map(|p| p.liquidity)
    }

    /// Sets a peer's liquidity as a test wants it (no transfer, nothing logged).
    pub fn set_liquidity(&mut self, peer_id: &str, liquidity: u64) {
        self.expire();
        self.peers.get_mut(peer_id).expect("a known peer").liquidity = liquidity;
    }

    pub fn set_threshold(&mut self, peer_id: &str, threshold: Option<u64>) {
        self.peers.get_mut(peer_id).expect("a known peer").threshold = threshold;
    }

    pub fn withdrawal(&mut self, id: &str) -> Option<Withdrawal> {
        self.expire();
        self.withdrawals.get(id).cloned()
    }

    /// The mutations applied, in order.
    pub fn mutations(&self) -> Vec<Mutation> {
        self.log.clone()
    }

    /// How many times a mutation `operation` was applied with this transfer `id` (at most once,
    /// whatever the retries, if idempotency works).
    pub fn applied(&self, operation: &str, id: &str) -> usize {
        self.log.iter().filter(|m| m.operation == operation && m.input["id"] == id).count()
    }

    pub fn deposits(&self, id: &str) -> usize {
        self.applied("depositPeerLiquidity", id)
    }

    pub fn withdrawals(&self, id: &str) -> usize {
        self.applied("createPeerLiquidityWithdrawal", id)
    }

    /// A Prepare from `peer_id` through Rafiki: debited if the liquidity covers it (fulfilled:
    /// the double's two phases collapse into one post). The liquidity left; `None` (an unknown
    /// peer, or too little liquidity: T04) leaves everything unchanged.
    pub fn debit_packet(&mut self, peer_id: &str, amount: u64) -> Option<u64> {
        self.expire();
        let peer = self.peers.get_mut(peer_id)?;
        peer.liquidity = peer.liquidity.checked_sub(amount)?;
        Some(peer.liquidity)
    }

    /// A fulfilled Prepare Rafiki sent to `peer_id`: credited, with no cap.
    pub fn credit_packet(&mut self, peer_id: &str, amount: u64) {
        self.expire();
        if let Some(peer) = self.peers.get_mut(peer_id) {
            peer.liquidity = peer.liquidity.saturating_add(amount);
        }
    }

    /// One admin mutation, through the idempotency cache: the answer's `data` field value, or
    /// the refusal.
    pub fn mutate(&mut self, operation: &str, input: &Value) -> Result<Value, GraphqlError> {
        self.expire();
        let key = input["idempotencyKey"]
            .as_str()
            .ok_or_else(|| refuse("BAD_USER_INPUT", "idempotencyKey is required"))?
            .to_string();
        let fingerprint = canonical(&json!({"operation": operation, "input": input}))
            .map_err(|e| refuse("BAD_USER_INPUT", &e.to_string()))?;
        if let Some((first, answer)) = self.idempotency.get(&key) {
            if *first != fingerprint {
                return Err(refuse(
                    "INTERNAL_SERVER_ERROR",
                    "Incoming arguments are different than the original request for idempotencyKey",
                ));
            }
            return Ok(answer.clone());
        }
        let answer = match operation {
            "depositPeerLiquidity" => self.deposit(input)?,
            "createPeerLiquidityWithdrawal" => self.withdraw(input)?,
            "postLiquidityWithdrawal" => self.settle_withdrawal(input, WithdrawalState::Posted)?,
            "voidLiquidityWithdrawal" => self.settle_withdrawal(input, WithdrawalState::Voided)?,
            other => return Err(refuse("GRAPHQL_VALIDATION_FAILED", &format!("Unknown mutation {other}"))),
        };
        self.idempotency.insert(key, (fingerprint, answer.clone()));
        self.log.push(Mutation { operation: operation.to_string(), input: input.clone() });
        Ok(answer)
    }

    /// The checks deposits and withdrawals share: a UUID v4 transfer id, a known peer, a
    /// non-zero u64 amount, an id never used.
    fn transfer_checks(&self, input: &Value) -> Result<(String, String, u64), GraphqlError> {
        let id = input["id"].as_str().unwrap_or_default();
        if !is_uuid_v4(id) {
            return Err(refuse("BAD_USER_INPUT", "Invalid transfer id"));
        }
        let peer_id = input["peerId"].as_str().unwrap_or_default();
        if !self.peers.contains_key(peer_id) {
            return Err(refuse("NOT_FOUND", "Unknown peer"));
        }
        let amount = amount_of(&input["amount"])?;
        if amount == 0 {
            return Err(refuse("FORBIDDEN", "Transfer amount is zero"));
        }
        if self.transfers.contains_key(id) {
            return Err(refuse("DUPLICATE", "Transfer already exists"));
        }
        Ok((id.to_string(), peer_id.to_string(), amount))
    }

    fn deposit(&mut self, input: &Value) -> Result<Value, GraphqlError> {
        let (id, peer_id, amount) = self.transfer_checks(input)?;
        let peer = self.peers.get_mut(&peer_id).expect("checked");
        peer.liquidity = peer
            .liquidity
            .checked_add(amount)
            .ok_or_else(|| refuse("FORBIDDEN", "Transfer exceeds limit"))?;
        self.transfers.insert(id, TransferKind::Deposit);
        Ok(json!({"success": true}))
    }

    fn withdraw(&mut self, input: &Value) -> Result<Value, GraphqlError> {
        let (id, peer_id, amount) = self.transfer_checks(input)?;
        let timeout_s = amount_of(&input["timeoutSeconds"])?;
        let peer = self.peers.get_mut(&peer_id).expect("checked");
        if amount > peer.liquidity {
            return Err(refuse("FORBIDDEN", "Insufficient transfer balance"));
        }
        peer.liquidity -= amount;
        let state = match timeout_s {
            0 => WithdrawalState::Posted,
            s => WithdrawalState::Reserved { expires_at: Instant::now() + Duration::from_secs(s) },
        };
        self.transfers.insert(id.clone(), TransferKind::Withdrawal);
        self.withdrawals.insert(id, Withdrawal { peer_id, amount, state });
        Ok(json!({"success": true}))
    }

    fn settle_withdrawal(&mut self, input: &Value, to: WithdrawalState) -> Result<Value, GraphqlError> {
        let id = input["withdrawalId"].as_str().unwrap_or_default();
        let w = self.withdrawals.get_mut(id).ok_or_else(|| refuse("NOT_FOUND", "Unknown transfer"))?;
        match w.state {
            WithdrawalState::Posted => return Err(refuse("CONFLICT", "Transfer already posted")),
            WithdrawalState::Voided => return Err(refuse("CONFLICT", "Transfer already voided")),
            WithdrawalState::Expired => return Err(refuse("FORBIDDEN", "Transfer already expired")),
            WithdrawalState::Reserved { .. } => {}
        }
        w.state = to;
        if to == WithdrawalState::Voided {
            let amount = w.amount;
            let peer_id = w.peer_id.clone();
            self.peers.get_mut(&peer_id).expect("a withdrawal's peer exists").liquidity += amount;
        }
        Ok(json!({"success": true}))
    }
}

/// A GraphQL `UInt64`: a string of digits or a JSON integer.
fn amount_of(v: &Value) -> Result<u64, GraphqlError> {
    match v {
        Value::String(s) if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) => {
            s.parse().map_err(|_| refuse("BAD_USER_INPUT", "Invalid UInt64"))
        }
        Value::Number(n) => n.as_u64().ok_or_else(|| refuse("BAD_USER_INPUT", "Invalid UInt64")),
        _ => Err(refuse("BAD_USER_INPUT", "Invalid UInt64")),
    }
}

// ---------------------------------------------------------------------------------------------
// The admin GraphQL API

/// The operator's credentials the admin API checks.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    pub secret: Vec<u8>,
    pub tenant_id: String,
}

impl Default for AdminOptions {
    fn default() -> Self {
        AdminOptions { secret: ADMIN_SECRET.to_vec(), tenant_id: TENANT_ID.to_string() }
    }
}

/// How the admin API fails a request, for testing the node's retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// HTTP 500 text/plain, nothing done.
    ServerError,
    /// Answers nothing for this long, then 500 with nothing done (a client that gives up
    /// sooner sees a hang).
    Hang(Duration),
    /// Closes the connection without an answer, nothing done.
    Drop,
    /// Does the request, then closes the connection without an answer: the answer is lost, so
    /// only the idempotency key keeps the node's retry from doing it twice.
    DropAfterApplying,
}

/// One request the admin API received.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminRequest {
    /// The GraphQL field called (`depositPeerLiquidity`, `peer` ...), if one was recognized.
    pub operation: Option<String>,
    /// `variables.input` for mutations, `variables` for queries.
    pub input: Value,
    /// 0 when the connection was closed without an answer.
    pub status: u16,
    /// Whether the `signature` header verified: well formed, fresh, not replayed, over the
    /// exact canonical bytes received.
    pub signature_valid: bool,
    pub tenant_valid: bool,
    pub outage: Option<Outage>,
}

struct AdminState {
    options: AdminOptions,
    ledger: SharedLedger,
    /// Every `v1` accepted: a replay is refused even with another body.
    seen: Mutex<HashSet<String>>,
    outages: Mutex<VecDeque<Outage>>,
    requests: Mutex<Vec<AdminRequest>>,
}

/// Rafiki's admin GraphQL API on its own claimed loopback port.
pub struct AdminDouble {
    pub port: u16,
    state: Arc<AdminState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AdminDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Ends the connection without an answer (hyper closes it when the service fails).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the Rafiki double")
    }
}

impl std::error::Error for Dropped {}

impl AdminDouble {
    pub async fn start(options: AdminOptions, ledger: SharedLedger) -> AdminDouble {
        let port = super::ports::claim();
        let state = Arc::new(AdminState {
            options,
            ledger,
            seen: Mutex::new(HashSet::new()),
            outages: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind the Rafiki admin double");
        let served = state.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let state = served.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { admin(req, &state).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Finished connections are reaped so a long test does not pile them up.
                while connections.try_join_next().is_some() {}
            }
        });
        AdminDouble { port, state, task }
    }

    /// `http://127.0.0.1:<port>/graphql`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/graphql", self.port)
    }

    pub fn options(&self) -> &AdminOptions {
        &self.state.options
    }

    /// The next `n` GraphQL requests fail as `outage` (after any already queued).
    pub fn fail_next(&self, n: usize, outage: Outage) {
        self.state.outages.lock().unwrap().extend(std::iter::repeat_n(outage, n));
    }

    /// The outages still queued are dropped: the API answers again from the next request.
    pub fn recover(&self) {
        self.state.outages.lock().unwrap().clear();
    }

    /// Every GraphQL request received, in order.
    pub fn requests(&self) -> Vec<AdminRequest> {
        self.state.requests.lock().unwrap().clone()
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", "text/plain".parse().unwrap());
    r
}

fn json_ok(body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    r.headers_mut().insert("content-type", "application/json".parse().unwrap());
    r
}

fn graphql_error(e: &GraphqlError) -> Value {
    json!({"data": null, "errors": [{"message": e.message, "extensions": {"code": e.code}}]})
}

/// The GraphQL field a query calls: the mutations by name, else `peer(` as a whole word.
fn operation_of(query: &str) -> Option<&'static str> {
    let mutations = [
        "depositPeerLiquidity",
        "createPeerLiquidityWithdrawal",
        "postLiquidityWithdrawal",
        "voidLiquidityWithdrawal",
    ];
    if let Some(m) = mutations.into_iter().find(|m| query.contains(m)) {
        return Some(m);
    }
    let called = query.match_indices("peer").any(|(at, _)| {
        let before = query[..at].chars().next_back().is_none_or(|c| !c.is_alphanumeric() && c != '_');
        before && query[at + 4..].trim_start().starts_with('(')
    });
    called.then_some("peer")
}

/// Checks the `signature` header against the exact bytes received: `Ok(v1)` when it verifies.
fn check_signature(secret: &[u8], header: Option<&str>, body: &[u8]) -> Result<String, &'static str> {
    let header = header.ok_or("no signature")?;
    let (t, v1) = header.split_once(", ").ok_or("malformed")?;
    let t = t.strip_prefix("t=").filter(|t| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()));
    let t_ms: u128 = t.and_then(|t| t.parse().ok()).ok_or("malformed")?;
    let v1 = v1.strip_prefix("v1=").ok_or("malformed")?;
    let given = hex::decode(v1).map_err(|_| "malformed")?;
    if t_ms < T_MS_MIN {
        return Err("t in seconds");
    }
    if now_ms().abs_diff(t_ms) > SIGNATURE_AGE_MAX.as_millis() {
        return Err("stale or future t");
    }
    // The node must send exactly the canonical bytes it signed.
    let parsed: Value = serde_json::from_slice(body).map_err(|_| "not JSON")?;
    if canonical(&parsed).map_err(|_| "no canonical form")?.as_bytes() != body {
        return Err("not the canonical bytes");
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut message = format!("{t_ms}.").into_bytes();
    message.extend_from_slice(body);
    ring::hmac::verify(&key, &message, &given).map_err(|_| "wrong HMAC")?;
    Ok(v1.to_ascii_lowercase())
}

async fn admin(req: Request<Incoming>, state: &AdminState) -> Result<Response<Full<Bytes>>, Dropped> {
    if req.uri().path() == "/healthz" && req.method() == hyper::Method::GET {
        return Ok(text(StatusCode::OK, "OK"));
    }
    if req.uri().path() != "/graphql" || req.method() != hyper::Method::POST {
        return Ok(text(StatusCode::NOT_FOUND, "Not Found"));
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (signature, tenant) = (header("signature"), header("tenant-id"));
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let operation = parsed["query"].as_str().and_then(operation_of);
    let input = match operation {
        Some("peer") | None => parsed["variables"].clone(),
        Some(_) => parsed["variables"]["input"].clone(),
    };
    let mut record = AdminRequest {
        operation: operation.map(str::to_string),
        input: input.clone(),
        status: 0,
        signature_valid: false,
        tenant_valid: false,
        outage: None,
    };
    let outage = state.outages.lock().unwrap().pop_front();
    record.outage = outage;
    let log = |record: AdminRequest| state.requests.lock().unwrap().push(record);
    match outage {
        Some(Outage::ServerError) => {
            log(AdminRequest { status: 500, ..record });
            return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"));
        }
        Some(Outage::Hang(d)) => {
            log(AdminRequest { status: 500, ..record });
            tokio::time::sleep(d).await;
            return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"));
        }
        Some(Outage::Drop) => {
            log(record);
            return Err(Dropped);
        }
        Some(Outage::DropAfterApplying) | None => {}
    }

    let verified = check_signature(&state.options.secret, signature.as_deref(), &body);
    record.tenant_valid = tenant.as_deref() == Some(state.options.tenant_id.as_str());
    // A v1 that verified once is never accepted again, whatever came with it.
    let replayed = match &verified {
        Ok(v1) => !state.seen.lock().unwrap().insert(v1.clone()),
        Err(_) => false,
    };
    record.signature_valid = verified.is_ok() && !replayed;
    if !record.signature_valid || !record.tenant_valid {
        log(AdminRequest { status: 401, ..record });
        return Ok(text(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }

    let answer = match operation {
        None => {
            let e = refuse("GRAPHQL_VALIDATION_FAILED", "Cannot query this field on the Rafiki double");
            log(AdminRequest { status: 400, ..record });
            let mut r = json_ok(&graphql_error(&e));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(r);
        }
        Some("peer") => {
            let mut ledger = state.ledger.lock().unwrap();
            let id = input["id"].as_str().unwrap_or_default().to_string();
            let asset = ledger.asset.clone();
            match ledger.peer(&id) {
                Some(p) => json!({"data": {"peer": {
                    "id": id,
                    "liquidity": p.liquidity.to_string(),
                    "liquidityThreshold": p.threshold.map(|t| t.to_string()),
                    "asset": {"id": asset.id, "code": asset.code, "scale": asset.scale},
                }}}),
                None => graphql_error(&refuse("NOT_FOUND", "peer not found")),
            }
        }
        Some(op) => match state.ledger.lock().unwrap().mutate(op, &input) {
            Ok(data) => json!({"data": {op: data}}),
            Err(e) => graphql_error(&e),
        },
    };
    if outage == Some(Outage::DropAfterApplying) {
        log(record);
        return Err(Dropped);
    }
    log(AdminRequest { status: 200, ..record });
    Ok(json_ok(&answer))
}

// ---------------------------------------------------------------------------------------------
// Webhooks

/// Where and how Rafiki posts its webhooks.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// The operator's WEBHOOK_URL; settable later ([`Webhooks::set_url`]), as a node's webhook
    /// listener may start after the double. Without one, events are recorded and not sent.
    pub url: Option<String>,
    /// The signing secret: without one, no `Rafiki-Signature` header (as Rafiki).
    pub secret: Option<Vec<u8>>,
    /// The wait after each failed attempt (the last repeated if the list is short).
    pub retry_delays: Vec<Duration>,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            url: None,
            secret: Some(b"rafiki-double-webhook-secret".to_vec()),
            retry_delays: RAFIKI_RETRY_DELAYS_S.iter().map(|s| Duration::from_secs(*s)).collect(),
        }
    }
}

/// One webhook attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// `None` when the attempt timed out or the connection failed.
    pub status: Option<u16>,
    /// The `Rafiki-Signature` header sent.
    pub signature: Option<String>,
}

/// How an event's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    /// Answered 200 at this attempt.
    Delivered(u32),
    /// No 200 in [`WEBHOOK_ATTEMPTS_MAX`] attempts.
    GaveUp,
    /// No webhook URL was set.
    NotSent,
}

/// One webhook event Rafiki made.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    /// `{id, type, data}`, the signed value.
    pub value: Value,
    pub outcome: Outcome,
}

/// How [`Webhooks::send_tampered`] spoils a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Signed with another secret.
    WrongSecret,
    /// Signed 31 s ago.
    Stale,
    /// Signed 31 s ahead.
    Future,
    /// `t` in seconds.
    Seconds,
    /// No `Rafiki-Signature` header.
    Unsigned,
    /// The body changed after signing (the balance).
    AlteredBody,
}

type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Rafiki's webhook sender. Delivery tasks live in a set dropped with the double.
pub struct Webhooks {
    ledger: SharedLedger,
    options: Mutex<WebhookOptions>,
    client: Client,
    deliveries: Mutex<Vec<Delivery>>,
    events: Mutex<Vec<Event>>,
    tasks: Mutex<tokio::task::JoinSet<()>>,
}

/// The body as Rafiki puts it on the wire: NOT in canonical order ("type" first, data's keys
/// shuffled, spaces), so a receiver that checks the bytes as they came fails.
fn wire_body(event: &Value) -> String {
    let s = |v: &Value| v.to_string();
    let (data, asset) = (&event["data"], &event["data"]["asset"]);
    format!(
        r#"{{"type": {}, "data": {{"balance": {}, "liquidityThreshold": {}, "id": {}, "asset": {{"scale": {}, "id": {}, "code": {}}}}}, "id": {}}}"#,
        s(&event["type"]),
        s(&data["balance"]),
        s(&data["liquidityThreshold"]),
        s(&data["id"]),
        s(&asset["scale"]),
        s(&asset["id"]),
        s(&asset["code"]),
        s(&event["id"]),
    )
}

impl Webhooks {
    pub fn new(options: WebhookOptions, ledger: SharedLedger) -> Arc<Webhooks> {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Arc::new(Webhooks {
            ledger,
            options: Mutex::new(options),
            client,
            deliveries: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
            tasks: Mutex::new(tokio::task::JoinSet::new()),
        })
    }

    /// Ends every delivery in flight (the tasks hold the sender, so dropping it would not).
    pub fn stop(&self) {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).abort_all();
    }

    pub fn set_url(&self, url: &str) {
        self.options.lock().unwrap().url = Some(url.to_string());
    }

    pub fn set_retry_delays(&self, delays: Vec<Duration>) {
        self.options.lock().unwrap().retry_delays = delays;
    }

    pub fn secret(&self) -> Option<Vec<u8>> {
        self.options.lock().unwrap().secret.clone()
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub fn outcome(&self, event_id: &str) -> Option<Outcome> {
        self.events.lock().unwrap().iter().find(|e| e.id == event_id).map(|e| e.outcome)
    }

    /// A new `peer.liquidity_low` event for `peer_id` at its current liquidity and threshold.
    fn liquidity_low_event(&self, peer_id: &str) -> Value {
        let mut ledger = self.ledger.lock().unwrap();
        let asset = ledger.asset.clone();
        let peer = ledger.peer(peer_id).expect("a known peer");
        json!({
            "id": new_uuid(),
            "type": "peer.liquidity_low",
            "data": {
                "id": peer_id,
                "asset": {"id": asset.id, "code": asset.code, "scale": asset.scale},
                "liquidityThreshold": peer.threshold.map(|t| t.to_string()),
                "balance": peer.liquidity.to_string(),
            },
        })
    }

    /// Fires `peer.liquidity_low` for `peer_id` now; delivered (with retries) in the
    /// background. The event id.
    pub fn fire_liquidity_low(self: &Arc<Self>, peer_id: &str) -> String {
        self.fire_liquidity_low_after(peer_id, Duration::ZERO)
    }

    /// As Rafiki after a fulfilled packet: the event is made at once (the balance the packet
    /// left), posted `delay` later.
    pub(crate) fn fire_liquidity_low_after(self: &Arc<Self>, peer_id: &str, delay: Duration) -> String {
        let event = self.liquidity_low_event(peer_id);
        let id = event["id"].as_str().expect("an id").to_string();
        let this = self.clone();
        self.tasks.lock().unwrap().spawn(async move {
            tokio::time::sleep(delay).await;
            this.deliver(event).await;
        });
        id
    }

    /// `n` distinct events for `peer_id`, sent concurrently; returns when every one was
    /// delivered or given up. Their ids.
    pub async fn fire_liquidity_low_burst(self: &Arc<Self>, peer_id: &str, n: usize) -> Vec<String> {
        let events: Vec<Value> = (0..n).map(|_| self.liquidity_low_event(peer_id)).collect();
        let ids = events.iter().map(|e| e["id"].as_str().expect("an id").to_string()).collect();
        let mut burst = tokio::task::JoinSet::new();
        for event in events {
            let this = self.clone();
            burst.spawn(async move { this.deliver(event).await });
        }
        while burst.join_next().await.is_some() {}
        ids
    }

    /// Posts `event` until a 200, as Rafiki: a new `t` on every attempt, 2 s per attempt, the
    /// configured waits between them.
    async fn deliver(&self, event: Value) -> Outcome {
        let id = event["id"].as_str().expect("an id").to_string();
        self.events.lock().unwrap().push(Event {
            id: id.clone(),
            value: event.clone(),
            outcome: Outcome::Pending,
        });
        let options = self.options.lock().unwrap().clone();
        let outcome = match options.url.as_deref() {
            None => Outcome::NotSent,
            Some(url) => self.attempts(url, &options, &id, &event).await,
        };
        if let Some(e) = self.events.lock().unwrap().iter_mut().find(|e| e.id == id) {
            e.outcome = outcome;
        }
        outcome
    }

    async fn attempts(&self, url: &str, options: &WebhookOptions, id: &str, event: &Value) -> Outcome {
        let signed = canonical(event).expect("an event has a canonical form");
        for attempt in 1..=WEBHOOK_ATTEMPTS_MAX {
            let signature = options.secret.as_deref().map(|s| sign(s, SystemTime::now(), &signed));
            let status = self.post(url, signature.as_deref(), wire_body(event)).await;
            self.deliveries.lock().unwrap().push(Delivery {
                event_id: id.to_string(),
                attempt,
                status: status.map(|s| s.as_u16()),
                signature,
            });
            if status == Some(StatusCode::OK) {
                return Outcome::Delivered(attempt);
            }
            if attempt < WEBHOOK_ATTEMPTS_MAX {
                let i = (attempt as usize - 1).min(options.retry_delays.len().saturating_sub(1));
                tokio::time::sleep(options.retry_delays.get(i).copied().unwrap_or_default()).await;
            }
        }
        Outcome::GaveUp
    }

    /// One POST within [`WEBHOOK_ATTEMPT_TIMEOUT`]: its status, `None` on a timeout or a
    /// connection failure.
    async fn post(&self, url: &str, signature: Option<&str>, body: String) -> Option<StatusCode> {
        let mut req = Request::post(url).header("content-type", "application/json");
        if let Some(signature) = signature {
            req = req.header("rafiki-signature", signature);
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("a valid request");
        let attempt = async {
            let answer = self.client.request(req).await.ok()?;
            let status = answer.status();
            let _ = answer.into_body().collect().await;
            Some(status)
        };
        tokio::time::timeout(WEBHOOK_ATTEMPT_TIMEOUT, attempt).await.ok().flatten()
    }

    /// One attempt of a new `peer.liquidity_low` for `peer_id`, spoiled as `tamper` says, not
    /// retried nor recorded: the receiver's status (`None`: no answer).
    pub async fn send_tampered(&self, peer_id: &str, tamper: Tamper) -> Option<StatusCode> {
        let options = self.options.lock().unwrap().clone();
        let url = options.url.clone().expect("a webhook URL");
        let secret = options.secret.clone().unwrap_or_else(|| b"rafiki-double-webhook-secret".to_vec());
        let mut event = self.liquidity_low_event(peer_id);
        let signed = canonical(&event).expect("an event has a canonical form");
        let now = SystemTime::now();
        let skew = SIGNATURE_AGE_MAX + Duration::from_secs(1);
        let signature = match tamper {
            Tamper::WrongSecret => Some(sign(b"not-the-operator-s-secret", now, &signed)),
            Tamper::Stale => Some(sign(&secret, now - skew, &signed)),
            Tamper::Future => Some(sign(&secret, now + skew, &signed)),
            Tamper::Seconds => {
                let t_s = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
                let v1 = ring::hmac::sign(&key, format!("{t_s}.{signed}").as_bytes());
                Some(format!("t={t_s}, v1={}", hex::encode(v1.as_ref())))
            }
            Tamper::Unsigned => None,
            Tamper::AlteredBody => {
                let header = sign(&secret, now, &signed);
                event["data"]["balance"] = json!("1");
                Some(header)
            }
        };
        self.post(&url, signature.as_deref(), wire_body(&event)).await
    }
}
