//! The incoming side of ILP-over-HTTP (RFC 0035, synchronous mode).
//!
//! Order of checks on a request, cheapest and least trusting first: method and path, then the
//! bearer token (so strangers cannot make us read bodies), content type, declared length, the
//! body under its size and time limits, packet validation, and finally a slot among the packets
//! in flight.
//! Only a valid Prepare from a known account reaches [`Node::forward`].

use super::listener::{
    accept_until_draining, bearer_token, drained, media_type, read_body, text, Accepting, BodyError,
    RemoteAddr,
};
use super::{CONTENT_TYPE_ILP, CONTENT_TYPE_ILP_ALT};
use crate::account::Account;
use crate::log_limit::{LogLimit, REFUSED_TOKEN_WARNING_INTERVAL_MS};
use crate::node::Node;
use crate::packet::Prepare;
use crate::reject::Refusal;
use crate::shutdown::{Phase, Shutdown};
use crate::store::Store;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, error, info, warn};

#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Larger request bodies get 413 (a maximal valid Prepare is ~33 KB).
    pub body_bytes_max: usize,
    /// TCP connections served at once; further ones wait in the kernel's accept queue.
    pub connections_max: usize,
    /// Requests being processed at once; past this a Prepare gets a T03 Reject at once.
    pub requests_in_flight_max: usize,
    /// Time a client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// Time a client has, after its headers, to send the body (408 past it).
    pub body_read_timeout: Duration,
    /// On shutdown, time in-flight packets get to finish before they are rejected.
    pub shutdown_grace: Duration,
}

/// What a request got wrong, answered as a 4xx with a short plain-text reason.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error("not found: use POST /, /ilp or /accounts/{{id}}/ilp")]
    NotFound,
    #[error("method not allowed: use POST (or GET /health, GET /ready)")]
    MethodNotAllowed,
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("Content-Type must be application/octet-stream")]
    UnsupportedMediaType,
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("body is not a valid ILP Prepare: {0}")]
    BadRequest(String),
}

impl HttpError {
    fn status(&self) -> StatusCode {
        match self {
            HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            HttpError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HttpError::Body(e) => e.status(),
            HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = text(self.status(), self.to_string());
        if let HttpError::Unauthorized(_) = self {
            response.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Shared by every connection.
struct Gate<S> {
    node: Arc<Node<S>>,
    /// One permit per packet being processed. Each packet's task holds its permit to the end, so
    /// all permits back means no packet is still moving money.
    in_flight: Arc<Semaphore>,
    limits: ServerLimits,
    /// Refused tokens, warned about per account or remote address.
    refused_token_warnings: LogLimit,
}

/// Serves until `shutdown` drains, then gives in-flight packets the grace period, then aborts
/// what is left (those packets are rejected and their debits reversed) and returns.
pub async fn serve<S: Store>(
    listener: TcpListener,
    node: Arc<Node<S>>,
    limits: ServerLimits,
    shutdown: &Shutdown,
) {
    let in_flight = Arc::new(Semaphore::new(limits.requests_in_flight_max));
    let accepting = Accepting {
        name: "ilp",
        connections_max: limits.connections_max,
        header_read_timeout: limits.header_read_timeout,
        nodelay: true,
        keep_alive: true,
    };
    let refused_token_warnings = LogLimit::new(Duration::from_millis(REFUSED_TOKEN_WARNING_INTERVAL_MS));
    let gate = Arc::new(Gate { node, in_flight: in_flight.clone(), limits, refused_token_warnings });
    let handler = gate.clone();
    let handle = move |req| {
        let gate = handler.clone();
        async move { handle(&gate, req).await }
    };
    let graceful = accept_until_draining(listener, accepting, &shutdown.signal(), handle).await;
    info!("draining: no new connections; waiting for in-flight packets");
    let grace = gate.limits.shutdown_grace;
    let mut drained = Box::pin(drained(graceful, in_flight, gate.limits.requests_in_flight_max));
    if tokio::time::timeout(grace, &mut drained).await.is_err() {
        warn!(grace_ms = grace.as_millis() as u64, "grace period over: rejecting in-flight packets");
        shutdown.abort();
        let _ = tokio::time::timeout(Duration::from_secs(2), drained).await;
    }
}

async fn handle<S: Store>(gate: &Gate<S>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() == Method::GET {
        let probed = probe(&gate.node, req.uri().path()).await;
        return probed.unwrap_or_else(|| HttpError::MethodNotAllowed.into_response());
    }
    match accept(gate, req).await {
        Ok(packet) => {
            let mut response = Response::new(Full::new(packet));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_ILP));
            response
        }
        Err(e) => {
            debug!(error = %e, "request refused");
            e.into_response()
        }
    }
}

/// `GET /health`: the process is alive. `GET /ready`: it can serve packets now (its store
/// answers, and with `[mojaloop]` its Connector answers its health probes); 503 otherwise, so a
/// load balancer takes the instance out while its store or its Connector is away.
/// Neither needs a token: they reveal nothing but up or down. `None` for any other path. The
/// admin listener answers its probes with this too.
pub async fn probe<S: Store>(node: &Node<S>, path: &str) -> Option<Response<Full<Bytes>>> {
    Some(match path {
        "/health" => text(StatusCode::OK, "ok"),
        "/ready" => match node.store.ready().await {
            Ok(()) if node.shutdown.phase() != Phase::Running => {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down")
            }
            Ok(()) => match node.mojaloop_health.as_ref().map(|h| h.ready()) {
                Some(Err(connector)) => text(StatusCode::SERVICE_UNAVAILABLE, connector.to_string()),
                _ => text(StatusCode::OK, "ready"),
            },
            Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        },
        _ => return None,
    })
}

/// Checks a request from the outside in and, if it carries a valid Prepare, forwards it.
async fn accept<S: Store>(gate: &Gate<S>, req: Request<Incoming>) -> Result<Bytes, HttpError> {
    if req.method() != Method::POST {
        return Err(HttpError::MethodNotAllowed);
    }
    let path_account = account_in_path(req.uri().path())?;
    let account = authenticate(gate, &req, path_account)?;
    check_content_type(&req)?;
    let limits = &gate.limits;
    let body = read_body(req, limits.body_bytes_max, limits.body_read_timeout).await?;
    let prepare = Prepare::parse(&body).map_err(|e| HttpError::BadRequest(e.to_string()))?;
    // The slot is taken once the packet is in hand: slots count packets being processed, and a
    // slow sender holds only its own connection (bounded by body_read_timeout), never a slot.
    let Ok(slot) = gate.in_flight.clone().try_acquire_owned() else {
        // Overloaded: an ILP answer the sender understands (retry later), not an HTTP error.
        return Ok(Refusal::Busy.to_reject(&gate.node.address).as_bytes().clone());
    };
    // The packet runs in its own task: hyper drops this request's future when the sender hangs
    // up, and a packet cut off between its debit and its outcome would leave the debit in place.
    // The task always runs to the end (credit or reversal), holding its in-flight slot.
    let node = gate.node.clone();
    let packet = tokio::spawn(async move {
        let response = node.forward(&account, prepare).await;
        drop(slot);
        response
    });
    match packet.await {
        Ok(response) => Ok(response),
        Err(e) => {
            // Only a panic gets here, and the packet's balance change may be incomplete: say so.
            error!(error = %e, "packet task failed; balances need reconciliation");
            Ok(Refusal::Internal.to_reject(&gate.node.address).as_bytes().clone())
        }
    }
}

/// `/` and `/ilp` take the account from the token; `/accounts/{id}/ilp` names it too.
fn account_in_path(path: &str) -> Result<Option<&str>, HttpError> {
    match path {
        "/" | "/ilp" => Ok(None),
        _ => {
            let id = path.strip_prefix("/accounts/").and_then(|rest| rest.strip_suffix("/ilp"));
            match id {
                Some(id) if !id.is_empty() && !id.contains('/') => Ok(Some(id)),
                _ => Err(HttpError::NotFound),
            }
        }
    }
}

fn authenticate<S: Store>(
    gate: &Gate<S>,
    req: &Request<Incoming>,
    path_account: Option<&str>,
) -> Result<Arc<Account>, HttpError> {
    let header = req.headers().get(AUTHORIZATION).ok_or(HttpError::Unauthorized("missing bearer token"))?;
    let token =
        bearer_token(header.as_bytes()).ok_or(HttpError::Unauthorized("malformed Authorization header"))?;
    let accounts = gate.node.accounts.load();
    let refused = |reason: &'static str| {
        warn_refused_token(gate, req, path_account, reason);
        HttpError::Unauthorized("unknown token")
    };
    let account = accounts.authenticate(token).ok_or_else(|| refused("unknown token"))?;
    // Same answer as an unknown token: do not reveal which accounts a token is valid for.
    if path_account.is_some_and(|id| id != &*account.id) {
        return Err(refused("the token is another account's"));
    }
    Ok(account.clone())
}

/// A refused token is a peer misconfigured (or a stranger knocking): warned about once per
/// account named in the path, or per remote address, per interval. The token itself is never
/// logged.
fn warn_refused_token<S>(gate: &Gate<S>, req: &Request<Incoming>, path_account: Option<&str>, reason: &str) {
    let remote = req.extensions().get::<RemoteAddr>().map(|r| r.0.ip().to_string()).unwrap_or_default();
    let key = match path_account {
        Some(account) => format!("account {account}"),
        None => format!("address {remote}"),
    };
    if let Some(admitted) = gate.refused_token_warnings.admit(&key, std::time::Instant::now()) {
        warn!(
            account = path_account.unwrap_or("(not named)"),
            %remote,
            reason,
            suppressed = admitted.suppressed,
            "incoming ILP-over-HTTP request refused: bad token (one line per account or address per {} ms, \
             `suppressed` counts the refusals not logged since the last)",
            REFUSED_TOKEN_WARNING_INTERVAL_MS
        );
    }
}

fn check_content_type(req: &Request<Incoming>) -> Result<(), HttpError> {
    let media_type = media_type(req);
    if media_type.eq_ignore_ascii_case(CONTENT_TYPE_ILP)
        || media_type.eq_ignore_ascii_case(CONTENT_TYPE_ILP_ALT)
    {
        Ok(())
    } else {
        Err(HttpError::UnsupportedMediaType)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(account_in_path("/").unwrap(), None);
        assert_eq!(account_in_path("/ilp").unwrap(), None);
        assert_eq!(account_in_path("/accounts/alice/ilp").unwrap(), Some("alice"));
        for bad in ["/accounts//ilp", "/accounts/a/b/ilp", "/x", "/ilp/", "/accounts/alice"] {
            assert!(account_in_path(bad).is_err(), "{bad}");
        }
    }
}
