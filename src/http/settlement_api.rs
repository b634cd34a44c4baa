//! The listener settlement engines call back (RFC 0038 "Accounting System HTTP API"), on its own
//! port, separate from ILP-over-HTTP.
//!
//! RFC 0038 gives this API no authentication: whoever reaches the port can credit incoming
//! settlements. So it binds to loopback by default (`settlement.listen`), and must only ever be
//! reachable by the node's own engines (same host, or a private network the operator controls).
//!
//! Routes:
//! - `POST /accounts/{id}/settlements`, `Idempotency-Key` and a JSON `Quantity`: credit an
//!   incoming settlement; 201 with the Quantity accepted.
//! - `POST /accounts/{id}/messages`, raw bytes: relay the engine's message to the peer; 201 with
//!   the peer engine's answer.
//!
//! Order of checks, cheapest first: path and method, headers (idempotency key, content type,
//! declared length), the body under its size and time limits, its parse, then a slot among the
//! requests in flight. One function, [`ApiError::into_response`], turns every refusal into its
//! status; callback outcomes map through [`incoming_status`] and [`message_status`].

use super::listener::{
    accept_until_draining, drained, media_type, percent_decode, read_body, text as plain, Accepting,
    ApiLimits, BodyError, CONTENT_TYPE_JSON,
};
use super::CONTENT_TYPE_ILP;
use crate::settlement::{Callbacks, IncomingError, MessageError, Quantity};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, error, info, warn};

/// RFC 0038's header; its value is kept by the node to credit each settlement once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The ILP Reject code of a message the peer refused (502 answers carry it).
pub const ILP_REJECT_CODE: &str = "ilp-reject-code";
/// Idempotency keys longer than this are refused (ours are 32 hex digits; engines' are UUIDs or
/// similar): a key is stored with the settlement, so its size is bounded here.
pub const IDEMPOTENCY_KEY_CHARS_MAX: usize = 128;

/// Why a request was not handled: each variant is one answer.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("not found: use POST /accounts/{{id}}/settlements or /accounts/{{id}}/messages")]
    NotFound,
    #[error("method not allowed: use POST")]
    MethodNotAllowed,
    #[error("account id in the path is not valid percent-encoded UTF-8")]
    BadAccountId,
    #[error("Idempotency-Key header required: 1 to {IDEMPOTENCY_KEY_CHARS_MAX} visible ASCII characters")]
    BadIdempotencyKey,
    #[error("Content-Type must be {0}")]
    UnsupportedMediaType(&'static str),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("{0}")]
    BadQuantity(crate::settlement::QuantityError),
    #[error("too many requests in flight; retry")]
    Busy,
    #[error("internal error; retry")]
    Internal,
    #[error(transparent)]
    Incoming(IncomingError),
    #[error(transparent)]
    Message(MessageError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound | ApiError::BadAccountId => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadIdempotencyKey | ApiError::BadQuantity(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Body(e) => e.status(),
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Incoming(e) => incoming_status(e),
            ApiError::Message(e) => message_status(e),
        }
    }

    /// A plain-text reason, except a peer's Reject: its data is the peer engine's own answer,
    /// passed back as the body with the ILP code in a header.
    fn into_response(self) -> Response<Full<Bytes>> {
        let status = self.status();
        let mut response = match &self {
            ApiError::Message(MessageError::Rejected { code, data }) => {
                let mut response = Response::new(Full::new(data.clone()));
                let headers = response.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_ILP));
                if let Ok(code) = HeaderValue::from_str(code) {
                    headers.insert(ILP_REJECT_CODE, code);
                }
                response
            }
            // The store's own error stays in the log: the engine only needs to know to retry.
            ApiError::Incoming(IncomingError::Store(_)) => plain(status, "store unavailable; retry"),
            ApiError::Incoming(IncomingError::WithdrawalUnrecorded(_)) => {
                plain(status, "credited; its record at the Rafiki is not made yet; retry with the same key")
            }
            _ => plain(status, self.to_string()),
        };
        *response.status_mut() = status;
        match status {
            StatusCode::METHOD_NOT_ALLOWED => {
                response.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// The status of an incoming settlement the node did not credit.
fn incoming_status(e: &IncomingError) -> StatusCode {
    match e {
        IncomingError::UnknownAccount(_) => StatusCode::NOT_FOUND,
        // The account exists, but not as an account of any engine: to the engine it is unknown.
        IncomingError::NoEngine(_) => StatusCode::NOT_FOUND,
        IncomingError::KeyReused => StatusCode::CONFLICT,
        IncomingError::TooLarge(_) => StatusCode::UNPROCESSABLE_ENTITY,
        // Nothing was credited and the engine retries with the same key (RFC 0038).
        IncomingError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        // Credited once already: the retry with the same key records the withdrawal.
        IncomingError::WithdrawalUnrecorded(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The status of a message the node could not relay.
fn message_status(e: &MessageError) -> StatusCode {
    match e {
        MessageError::UnknownAccount(_) | MessageError::NoEngine(_) => StatusCode::NOT_FOUND,
        // The account and its engine exist, but the node has no link to the peer to carry the
        // message: a state of the account (409), not a missing resource (404).
        MessageError::NoOutgoing(_) => StatusCode::CONFLICT,
        MessageError::Rejected { .. } | MessageError::Unreachable(_) => StatusCode::BAD_GATEWAY,
        MessageError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
    }
}

/// Shared by every connection.
struct Gate<C> {
    callbacks: Arc<C>,
    /// One permit per request being handled by the node. A callback runs in its own task with its
    /// permit, so all permits back means no credit is still being written.
    in_flight: Arc<Semaphore>,
    limits: ApiLimits,
}

/// Serves until `shutdown` reaches [`Phase::Draining`](crate::shutdown::Phase::Draining), then
/// gives in-flight requests the grace period and returns. Nothing is aborted: each callback is one
/// call into the node that finishes by itself (a credit is one atomic store operation).
pub async fn serve<C: Callbacks>(
    listener: TcpListener,
    callbacks: Arc<C>,
    limits: ApiLimits,
    shutdown: crate::shutdown::ShutdownSignal,
) {
    if listener.local_addr().is_ok_and(|a| !a.ip().is_loopback()) {
        warn!(
            addr = %listener.local_addr().expect("checked above"),
            "settlement callback API listens beyond loopback: it has no authentication (RFC 0038), \
             so only the node's engines may reach this address"
        );
    }
    let in_flight = Arc::new(Semaphore::new(limits.connections_max));
    let accepting = Accepting {
        name: "settlement",
        connections_max: limits.connections_max,
        header_read_timeout: limits.header_read_timeout,
        nodelay: false,
        keep_alive: true,
    };
    let gate = Arc::new(Gate { callbacks, in_flight: in_flight.clone(), limits });
    let handler = gate.clone();
    let handle = move |req| {
        let gate = handler.clone();
        async move { handle(&gate, req).await }
    };
    let graceful = accept_until_draining(listener, accepting, &shutdown, handle).await;
    info!("settlement API draining: no new connections");
    let grace = gate.limits.shutdown_grace;
    let drained = drained(graceful, in_flight, gate.limits.connections_max);
    if tokio::time::timeout(grace, drained).await.is_err() {
        warn!(grace_ms = grace.as_millis() as u64, "settlement API grace period over");
    }
}

async fn handle<C: Callbacks>(gate: &Gate<C>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match route(gate, req).await {
        Ok(response) => response,
        Err(e) => {
            match &e {
                ApiError::Incoming(IncomingError::Store(inner)) => {
                    warn!(error = %inner, "incoming settlement not credited: store unavailable")
                }
                // Logged where it failed, with the account and the amount.
                ApiError::Incoming(IncomingError::WithdrawalUnrecorded(_)) => {}
                ApiError::Internal => {}
                _ => debug!(error = %e, "settlement API request refused"),
            }
            e.into_response()
        }
    }
}

/// The two routes of the API.
enum Route {
    Settlements,
    Messages,
}

async fn route<C: Callbacks>(
    gate: &Gate<C>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let (account, route) = parse_path(req.uri().path())?;
    if req.method() != Method::POST {
        return Err(ApiError::MethodNotAllowed);
    }
    match route {
        Route::Settlements => settlement(gate, account, req).await,
        Route::Messages => message(gate, account, req).await,
    }
}

/// `POST /accounts/{id}/settlements`: credit an incoming settlement once per idempotency key.
async fn settlement<C: Callbacks>(
    gate: &Gate<C>,
    account: String,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let key = idempotency_key(&req)?;
    check_content_type(&req, CONTENT_TYPE_JSON)?;
    let body = read_limited(gate, req).await?;
    let quantity = Quantity::from_json(&body).map_err(ApiError::BadQuantity)?;
    let callbacks = gate.callbacks.clone();
    let accepted =
        in_task(gate, async move { callbacks.incoming_settlement(&account, &key, quantity).await })
            .await?
            .map_err(ApiError::Incoming)?;
    let mut response = Response::new(Full::new(Bytes::from(accepted.to_json())));
    *response.status_mut() = StatusCode::CREATED;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_JSON));
    Ok(response)
}

/// `POST /accounts/{id}/messages`: relay the engine's message to the peer, return its answer.
async fn message<C: Callbacks>(
    gate: &Gate<C>,
    account: String,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    check_content_type(&req, CONTENT_TYPE_ILP)?;
    let body = read_limited(gate, req).await?;
    let callbacks = gate.callbacks.clone();
    let answer = in_task(gate, async move { callbacks.send_message(&account, body).await })
        .await?
        .map_err(ApiError::Message)?;
    let mut response = Response::new(Full::new(answer));
    *response.status_mut() = StatusCode::CREATED;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_ILP));
    Ok(response)
}

/// Runs a callback in its own task, holding a slot among the requests in flight. hyper drops a
/// request's future when the engine hangs up; the node's call must not be cut off half way.
async fn in_task<C, T: Send + 'static>(
    gate: &Gate<C>,
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, ApiError> {
    let slot = gate.in_flight.clone().try_acquire_owned().map_err(|_| ApiError::Busy)?;
    let task = tokio::spawn(async move {
        let out = work.await;
        drop(slot);
        out
    });
    task.await.map_err(|e| {
        error!(error = %e, "settlement callback task failed; check the account's balance");
        ApiError::Internal
    })
}

/// `/accounts/{id}/settlements` or `/accounts/{id}/messages`, with `id` percent-decoded.
fn parse_path(path: &str) -> Result<(String, Route), ApiError> {
    let rest = path.strip_prefix("/accounts/").ok_or(ApiError::NotFound)?;
    let (id, route) = match rest.split_once('/') {
        Some((id, "settlements")) => (id, Route::Settlements),
        Some((id, "messages")) => (id, Route::Messages),
        _ => return Err(ApiError::NotFound),
    };
    let id = percent_decode(id).ok_or(ApiError::BadAccountId)?;
    if id.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok((id, route))
}

/// 1 to [`IDEMPOTENCY_KEY_CHARS_MAX`] visible ASCII characters (no spaces or controls).
fn idempotency_key(req: &Request<Incoming>) -> Result<String, ApiError> {
    let value = req.headers().get(IDEMPOTENCY_KEY).ok_or(ApiError::BadIdempotencyKey)?.as_bytes();
    let valid = !value.is_empty()
        && value.len() <= IDEMPOTENCY_KEY_CHARS_MAX
        && value.iter().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(ApiError::BadIdempotencyKey);
    }
    Ok(String::from_utf8(value.to_vec()).expect("checked ASCII"))
}

fn check_content_type(req: &Request<Incoming>, expected: &'static str) -> Result<(), ApiError> {
    match media_type(req).eq_ignore_ascii_case(expected) {
        true => Ok(()),
        false => Err(ApiError::UnsupportedMediaType(expected)),
    }
}

/// The body under the API's size and time limits.
async fn read_limited<C>(gate: &Gate<C>, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    Ok(read_body(req, gate.limits.body_bytes_max, gate.limits.body_read_timeout).await?)
}

#[cfg(test)]
mod tests;
