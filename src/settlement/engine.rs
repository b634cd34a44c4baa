//! The connector's client for an RFC 0038 settlement engine (connector → engine).
//!
//! Four calls, each one HTTP/1.1 request with a timeout and a bounded response body:
//! `POST /accounts`, `DELETE /accounts/{id}`, `POST /accounts/{id}/settlements` (with the
//! settlement's Idempotency-Key) and `POST /accounts/{id}/messages`.
//!
//! Every failure is one of three kinds, because the caller must act differently on them:
//! - [`EngineError::NotMade`]: the engine certainly did not act on the request (no connection
//!   could be opened; 408 or 429, 1xx or 3xx). Retried later with the *same* idempotency key.
//! - [`EngineError::Retryable`]: the engine may have acted on it, or is acting on it now (reset,
//!   timeout, 5xx, and 409: the same key is still being processed). Retried with the same key;
//!   the engine then either does it once or answers as it did the first time. Until an answer
//!   proves otherwise, the settlement may have been made.
//! - [`EngineError::Definitive`]: the engine answered and refused the request for good (any other
//!   4xx). A settlement refused so, and never possibly made before, may go back to the balance.
//!
//! Built on hyper-util's pooled client rather than [`crate::http::client`]: that pool is shaped for
//! ILP packets (bearer token, Fulfill/Reject parsing, deadline = packet expiry), while engines take
//! arbitrary methods, paths and JSON, at a low rate. The pool's own cap is on idle connections
//! only, so a semaphore per engine caps the requests (and so the connections) in flight to it.
//! Connections are opened by the node's shared [`Connector`]: engines may be `http://` or
//! `https://` (the certificate verified like a next hop's); a certificate refused means nothing
//! was sent ([`EngineError::NotMade`]), and the settlement is retried later.

use super::{Paid, Quantity, SettleError, SettlementId, SettlementSystem};
use crate::account::Account;
use crate::http::client::{body_prefix, error_chain, read_bounded};
use crate::http::origin::Origin;
use crate::http::tls::{Connector, TlsConfig};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::debug;

/// RFC 0038's header carrying a settlement's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
const CONTENT_TYPE_JSON: &str = "application/json";
const CONTENT_TYPE_OCTETS: &str = "application/octet-stream";
/// Idle pooled connections are closed after this, before a typical server's own idle timeout
/// would close them under a request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct EngineLimits {
    /// One call as a whole: waiting for a connection slot, connecting, sending, reading the answer.
    pub timeout: Duration,
    /// Requests (so connections) in flight to one engine at once.
    pub connections_max: usize,
    /// Larger answers are cut here (an error's body) or refused (a message's answer).
    pub response_bytes_max: usize,
}

impl Default for EngineLimits {
    fn default() -> Self {
        use crate::limits::*;
        EngineLimits {
            timeout: Duration::from_millis(SETTLEMENT_ENGINE_TIMEOUT_MS),
            connections_max: SETTLEMENT_ENGINE_CONNECTIONS_MAX,
            response_bytes_max: SETTLEMENT_ENGINE_RESPONSE_BYTES_MAX,
        }
    }
}

/// Why a call to an engine did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The engine certainly did not act on the request: retry with the same idempotency key.
    #[error("settlement engine did not take the request (retry): {0}")]
    NotMade(String),
    /// The engine may have acted on the request, or is acting on it: retry with the same
    /// idempotency key.
    #[error("settlement engine unavailable (retry): {0}")]
    Retryable(String),
    /// The engine refused the request for good (`body`: the start of its answer, or why the
    /// answer itself was refused).
    #[error("settlement engine refused the request with HTTP {status}: {body}")]
    Definitive { status: u16, body: String },
    /// The engine URL and account id do not make a valid request URL; nothing was sent. Config
    /// validation makes this unreachable for configured engines.
    #[error("invalid settlement engine URL: {0}")]
    BadUrl(String),
}

impl EngineError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, EngineError::Retryable(_) | EngineError::NotMade(_))
    }
}

/// Shared by the node: cheap to clone (the pool and the per-engine slots are shared).
#[derive(Clone)]
pub struct EngineClient {
    client: Client<Connector, Full<Bytes>>,
    limits: EngineLimits,
    /// Request slots per engine origin (`scheme://host:port`).
    engines: Arc<RwLock<HashMap<String, Arc<Semaphore>>>>,
}

impl std::fmt::Debug for EngineClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineClient").field("limits", &self.limits).finish()
    }
}

/// An engine's answer, its body read up to the limit.
struct Answer {
    status: StatusCode,
    body: Bytes,
    /// The body went on past `response_bytes_max`; `body` holds its start.
    cut: bool,
}

impl EngineClient {
    /// `tls` is the node's one TLS configuration, shared with its other clients. Connecting and
    /// the TLS handshake each get the call's whole timeout, which bounds the call anyway.
    pub fn new(limits: &EngineLimits, tls: &TlsConfig) -> Self {
        assert!(limits.connections_max > 0 && limits.response_bytes_max > 0, "validated by config");
        let connector = Connector::new(tls, limits.timeout, limits.timeout);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(limits.connections_max)
            .build(connector);
        EngineClient { client, limits: limits.clone(), engines: Default::default() }
    }

    /// `POST {engine}/accounts` `{"id": account}`. 409 counts as success: the node calls this at
    /// every start-up, and an engine that already has the account is where we want it.
    pub async fn create_account(&self, engine_url: &str, account: &str) -> Result<(), EngineError> {
        let body = serde_json::json!({ "id": account }).to_string();
        let answer = self
            .call(engine_url, Method::POST, "/accounts".into(), Some(CONTENT_TYPE_JSON), None, body.into())
            .await?;
        match answer.status {
            StatusCode::CONFLICT => Ok(()),
            _ => expect_success(&answer).map(drop),
        }
    }

    /// `DELETE {engine}/accounts/{id}`. 404 counts as success: the account is gone either way.
    pub async fn delete_account(&self, engine_url: &str, account: &str) -> Result<(), EngineError> {
        let path = format!("/accounts/{}", encode_segment(account));
        let answer = self.call(engine_url, Method::DELETE, path, None, None, Bytes::new()).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(()),
            _ => expect_success(&answer).map(drop),
        }
    }

    /// `POST {engine}/accounts/{id}/settlements` with `Idempotency-Key: key` and `quantity`.
    /// Success means the engine has taken the settlement on (RFC 0038: it settles asynchronously
    /// and retries by itself); the body of its answer is not needed.
    pub async fn settle(
        &self,
        engine_url: &str,
        account: &str,
        key: &SettlementId,
        quantity: &Quantity,
    ) -> Result<(), EngineError> {
        let path = format!("/accounts/{}/settlements", encode_segment(account));
        let key = HeaderValue::from_str(&key.to_string()).expect("hex digits are a valid header value");
        let body = Bytes::from(quantity.to_json());
        let answer =
            self.call(engine_url, Method::POST, path, Some(CONTENT_TYPE_JSON), Some(key), body).await?;
        expect_success(&answer).map(drop)
    }

    /// `POST {engine}/accounts/{id}/messages`: a message from the peer's engine in, this engine's
    /// answer out, raw bytes both ways. An answer over `response_bytes_max` is refused as
    /// [`EngineError::Definitive`] (the same message would get the same answer).
    pub async fn send_message(
        &self,
        engine_url: &str,
        account: &str,
        message: Bytes,
    ) -> Result<Bytes, EngineError> {
        let path = format!("/accounts/{}/messages", encode_segment(account));
        let answer =
            self.call(engine_url, Method::POST, path, Some(CONTENT_TYPE_OCTETS), None, message).await?;
        expect_success(&answer)?;
        if answer.cut {
            return Err(EngineError::Definitive {
                status: answer.status.as_u16(),
                body: format!("answer larger than {} bytes", self.limits.response_bytes_max),
            });
        }
        Ok(answer.body)
    }

    /// One request, under the engine's slot limit and the call timeout.
    async fn call(
        &self,
        engine_url: &str,
        method: Method,
        path: String,
        content_type: Option<&'static str>,
        idempotency_key: Option<HeaderValue>,
        body: Bytes,
    ) -> Result<Answer, EngineError> {
        let uri: Uri =
            format!("{engine_url}{path}").parse().map_err(|e| EngineError::BadUrl(format!("{e}")))?;
        let origin = Origin::from_uri(&uri).map_err(|e| EngineError::BadUrl(format!("{engine_url}: {e}")))?;
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        if let Some(content_type) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(ACCEPT, HeaderValue::from_static(content_type));
        }
        if let Some(key) = idempotency_key {
            headers.insert(IDEMPOTENCY_KEY, key);
        }
        let slots = self.slots(&origin.key);
        let exchange = async {
            let _slot = slots.acquire().await.expect("engine semaphore is never closed");
            let response = self.client.request(request).await.map_err(|e| {
                // No connection could be opened: nothing was sent. Otherwise (a reset, an answer
                // hyper could not parse) the engine may or may not have processed the request.
                if e.is_connect() {
                    EngineError::NotMade(error_chain(&e))
                } else {
                    EngineError::Retryable(error_chain(&e))
                }
            })?;
            let status = response.status();
            let (body, cut) = read_bounded(response.into_body(), self.limits.response_bytes_max)
                .await
                .map_err(|e| EngineError::Retryable(format!("reading the answer: {e}")))?;
            Ok(Answer { status, body, cut })
        };
        let timeout = self.limits.timeout;
        let answer = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| EngineError::Retryable(format!("no answer within {} ms", timeout.as_millis())))??;
        debug!(%method, %path, status = answer.status.as_u16(), "settlement engine answered");
        Ok(answer)
    }

    fn slots(&self, key: &str) -> Arc<Semaphore> {
        if let Some(slots) = self.engines.read().unwrap_or_else(|e| e.into_inner()).get(key) {
            return slots.clone();
        }
        let mut engines = self.engines.write().unwrap_or_else(|e| e.into_inner());
        engines
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.limits.connections_max)))
            .clone()
    }
}

/// Success, or which failure, by status. 1xx and 3xx count as not made: the engine did not act
/// on the request, and an operator who fixes the URL lets the same key go through, while treating
/// them as refusals would return money the engine might yet settle. 409 is the answer to a key
/// whose first request is still being processed (an earlier attempt timed out while the engine
/// worked on it): the settlement may yet be made, so it is never a refusal.
fn expect_success(answer: &Answer) -> Result<&Answer, EngineError> {
    let status = answer.status;
    if status.is_success() {
        return Ok(answer);
    }
    let reason = || format!("HTTP {}: {}", status.as_u16(), body_prefix(&answer.body));
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || !status.is_client_error() && !status.is_server_error()
    {
        Err(EngineError::NotMade(reason()))
    } else if status.is_server_error() || status == StatusCode::CONFLICT {
        Err(EngineError::Retryable(reason()))
    } else {
        Err(EngineError::Definitive { status: status.as_u16(), body: body_prefix(&answer.body) })
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, and `.` too (so that `..`
/// cannot name a parent path). RFC 0038 asks for URL-safe ids, and ours are ILP address segments,
/// but an id must never be able to add a path segment or a query to the engine's URL.
pub fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;

/// RFC 0038 engines as the node's settlement system: each account names its engine.
impl SettlementSystem for EngineClient {
    async fn open_account(&self, account: &Account) -> Result<(), SettleError> {
        let engine = engine_of(account)?;
        self.create_account(engine, &account.id).await.map_err(SettleError::from)
    }

    async fn close_account(&self, account: &Account) -> Result<(), SettleError> {
        let engine = engine_of(account)?;
        self.delete_account(engine, &account.id).await.map_err(SettleError::from)
    }

    async fn settle(
        &self,
        account: &Account,
        quantity: Quantity,
        id: SettlementId,
    ) -> Result<Paid, SettleError> {
        let engine = engine_of(account)?;
        // An engine keeps what it cannot pay yet and pays it with a later settlement (RFC 0038).
        EngineClient::settle(self, engine, &account.id, &id, &quantity).await.map_err(SettleError::from)?;
        Ok(Paid::All)
    }
}

fn engine_of(account: &Account) -> Result<&str, SettleError> {
    account
        .settlement_engine_url
        .as_deref()
        .ok_or_else(|| SettleError::Definitive(format!("account {} has no settlement engine", account.id)))
}

impl From<EngineError> for SettleError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotMade(reason) => SettleError::NotMade(reason),
            EngineError::Retryable(reason) => SettleError::Retryable(reason),
            EngineError::Definitive { status, body } => {
                SettleError::Definitive(format!("HTTP {status}: {body}"))
            }
            EngineError::BadUrl(url) => SettleError::Definitive(format!("bad engine URL {url}")),
        }
    }
}
