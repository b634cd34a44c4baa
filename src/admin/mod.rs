//! The operator's API: accounts, balances, routes, exchange rates, "settle now", health,
//! readiness and Prometheus metrics, as JSON over HTTP on its own listener (`[admin] listen`,
//! loopback by default), bound only when an admin token is configured.
//!
//! Every route but `GET /health` and `GET /ready` needs `Authorization: Bearer <admin token>`;
//! the token's SHA-256 is compared in constant time, and the token itself is never logged.
//! Changes are validated with the config file's rules against the tables served now, then
//! applied by a [`Tables`]: the node's own (memory store) or Redis (every instance reloads).
//! Writes are serialized per instance, so two requests never validate against the same tables
//! and then both apply.
//!
//! Order of checks, cheapest first: path and method, the token, a slot among the requests in
//! flight (503 past `connections_max`), then the body under its size and time limits, its parse,
//! its validation. Each request runs in its own task: a client that hangs up never cuts a change
//! (or a settlement begun by "settle now") in half. One function, [`AdminError::into_response`],
//! turns every refusal into its status and JSON body `{"error": ..., "problems": [...]}`.

mod endpoints;
mod incoming;
mod payments;
mod payouts;
mod peers;
pub mod tables;

use crate::account::{constant_time_eq, hash_token, TokenHash};
use crate::http::listener::{
    accept_until_draining, bearer_token, drained, media_type, read_body, respond, Accepting, ApiLimits,
    BodyError, CONTENT_TYPE_JSON,
};
use crate::node::Node;
use crate::rules::ConfigError;
use crate::store::{ConfigStoreError, Store};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

pub use tables::{Change, LocalTables, RedisTables, Tables, TablesError};

/// Why a request was not served: each variant is one answer.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed: use {0}")]
    MethodNotAllowed(&'static str),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("invalid {what}")]
    Invalid { what: &'static str, problems: ConfigError },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// Another system the call needed refused or could not be reached.
    #[error("{0}")]
    BadGateway(String),
    #[error("too many admin requests in flight; retry")]
    Busy,
    #[error("store unavailable; retry")]
    Store(String),
    /// A write whose answer never came: Redis may still apply it.
    #[error("store did not answer; the change may still be applied: read it back before retrying")]
    Uncertain(String),
    #[error("internal error")]
    Internal,
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AdminError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AdminError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AdminError::Body(e) => e.status(),
            AdminError::Invalid { .. } | AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            AdminError::Busy | AdminError::Store(_) | AdminError::Uncertain(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AdminError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `{"error": reason, "problems": [{"field", "message"}]}`; the store's own error stays in
    /// the log.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let status = self.status();
        let problems: Vec<serde_json::Value> = match &self {
            AdminError::Invalid { problems, .. } => problems
                .0
                .iter()
                .map(|p| serde_json::json!({"field": p.path, "message": p.message}))
                .collect(),
            _ => Vec::new(),
        };
        let body = serde_json::json!({"error": self.to_string(), "problems": problems});
        let mut response = respond(status, CONTENT_TYPE_JSON, body.to_string());
        let headers = response.headers_mut();
        match &self {
            AdminError::MethodNotAllowed(allowed) => {
                headers.insert(ALLOW, HeaderValue::from_static(allowed));
            }
            AdminError::Unauthorized(_) => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            AdminError::Busy | AdminError::Store(_) | AdminError::Uncertain(_) => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

impl From<crate::store::StoreError> for AdminError {
    fn from(e: crate::store::StoreError) -> Self {
        warn!(error = %e, "admin request: store unavailable");
        AdminError::Store(e.to_string())
    }
}

impl From<TablesError> for AdminError {
    fn from(e: TablesError) -> Self {
        match e {
            TablesError::Invalid(problems) => AdminError::Invalid { what: "change", problems },
            // Limits of the shared set, and a race with another instance: the change was refused.
            TablesError::Store(
                e @ (ConfigStoreError::TooMany { .. } | ConfigStoreError::TooLarge { .. }),
            ) => AdminError::Conflict(e.to_string()),
            TablesError::Store(e @ ConfigStoreError::UnknownAccount(_)) => {
                AdminError::Conflict(format!("{e} (deleted through another instance meanwhile?)"))
            }
            TablesError::Store(ConfigStoreError::Store(e @ crate::store::StoreError::Unavailable(_))) => {
                warn!(error = %e, "admin change not applied: shared config store unavailable");
                AdminError::Store(e.to_string())
            }
            TablesError::Store(e) => {
                warn!(error = %e, "admin change: shared config store failed; it may still be applied");
                AdminError::Uncertain(e.to_string())
            }
        }
    }
}

/// Shared by every connection.
pub struct Gate<S> {
    node: Arc<Node<S>>,
    tables: Arc<dyn Tables>,
    token_hash: TokenHash,
    limits: ApiLimits,
    /// One permit per request being handled; all back means no change is half applied.
    in_flight: Arc<Semaphore>,
    /// Held from a change's validation to its application.
    writes: tokio::sync::Mutex<()>,
}

/// Serves the admin API until the node drains, then gives requests in flight the grace period.
pub async fn serve<S: Store>(
    listener: TcpListener,
    node: Arc<Node<S>>,
    tables: Arc<dyn Tables>,
    token_hash: TokenHash,
    limits: ApiLimits,
    peering: Option<(TcpListener, crate::rafiki::peering::PeeringServer)>,
) {
    if listener.local_addr().is_ok_and(|a| !a.ip().is_loopback()) {
        warn!(addr = %listener.local_addr().expect("checked above"), "admin API listens beyond loopback: protect its token and network");
    }
    let shutdown = node.shutdown.clone();
    let in_flight = Arc::new(Semaphore::new(limits.connections_max));
    let accepting = Accepting {
        name: "admin",
        connections_max: limits.connections_max,
        header_read_timeout: limits.header_read_timeout,
        nodelay: false,
        keep_alive: true,
    };
    let gate = Arc::new(Gate {
        node,
        tables,
        token_hash,
        limits,
        in_flight: in_flight.clone(),
        writes: tokio::sync::Mutex::new(()),
    });
    let handler = gate.clone();
    let handle = move |req| {
        let gate = handler.clone();
        async move { handle(gate, req).await }
    };
    // Rafiki's auto-peering endpoint writes accounts as the admin API does: one gate, one lock.
    let peering = peering.map(|(listener, rules)| {
        let (gate, shutdown) = (gate.clone(), shutdown.clone());
        tokio::spawn(async move { peers::serve(listener, gate, rules, &shutdown).await })
    });
    let graceful = accept_until_draining(listener, accepting, &shutdown, handle).await;
    info!("admin API draining: no new connections");
    if let Some(peering) = peering {
        let _ = peering.await;
    }
    let grace = gate.limits.shutdown_grace;
    if tokio::time::timeout(grace, drained(graceful, in_flight, gate.limits.connections_max)).await.is_err() {
        warn!(grace_ms = grace.as_millis() as u64, "admin API grace period over");
    }
}

async fn handle<S: Store>(gate: Arc<Gate<S>>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match admit(&gate, req).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// Probes answer at once; anything else needs the token and a slot, and runs in its own task.
async fn admit<S: Store>(
    gate: &Arc<Gate<S>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, AdminError> {
    if req.method() == Method::GET {
        if let Some(probed) = crate::http::server::probe(&gate.node, req.uri().path()).await {
            return Ok(probed);
        }
    }
    authenticate(gate, &req)?;
    let slot = gate.in_flight.clone().try_acquire_owned().map_err(|_| AdminError::Busy)?;
    let gate = gate.clone();
    let task = tokio::spawn(async move {
        let response = endpoints::route(&gate, req).await;
        drop(slot);
        response
    });
    task.await.map_err(|e| {
        error!(error = %e, "admin request task failed");
        AdminError::Internal
    })?
}

fn authenticate<S>(gate: &Gate<S>, req: &Request<Incoming>) -> Result<(), AdminError> {
    let header = req.headers().get(AUTHORIZATION).ok_or(AdminError::Unauthorized("missing bearer token"))?;
    let token =
        bearer_token(header.as_bytes()).ok_or(AdminError::Unauthorized("malformed Authorization header"))?;
    match constant_time_eq(&hash_token(token), &gate.token_hash) {
        true => Ok(()),
        false => Err(AdminError::Unauthorized("wrong admin token")),
    }
}

/// A JSON body: `application/json`, under the size and time limits.
async fn json_body(gate: &Gate<impl Send + Sync>, req: Request<Incoming>) -> Result<Bytes, AdminError> {
    if !media_type(&req).eq_ignore_ascii_case(CONTENT_TYPE_JSON) {
        return Err(AdminError::UnsupportedMediaType);
    }
    Ok(read_body(req, gate.limits.body_bytes_max, gate.limits.body_read_timeout).await?)
}
