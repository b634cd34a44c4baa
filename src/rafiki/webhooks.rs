//! The receiver of a Rafiki's webhooks (`rafiki.admin.webhook_listen`): its operator's
//! `WEBHOOK_URL` points here.
//!
//! `POST` any path, JSON `{id, type, data}` with `Rafiki-Signature: t=<ms>, v1=<HMAC>` over the
//! body's canonical JSON (Rafiki sends it in another order: it is re-canonicalized here), checked
//! within 30 s either way and in constant time. A missing or wrong signature gets 401 and does
//! nothing. Each event id is handled once: a repeat (Rafiki retries until it gets a 200, with
//! the same id) is answered 200 again and does nothing. 200 is answered only once the event is
//! handled; a store outage gets 503, so that Rafiki retries.
//!
//! `peer.liquidity_low` starts a top-up of the peer at once (the node's balance with it moved to
//! `settle_to`, whatever its threshold), unless one is in flight: a burst of events for one
//! peer causes one top-up. Other event types are acknowledged and ignored.
//!
//! Layer 6: an edge that receives traffic.

use crate::http::listener::{accept_until_draining, drained, read_body, text, Accepting, ApiLimits};
use crate::node::Node;
use crate::rafiki::signature;
use crate::store::Store;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn};

/// Event ids remembered as handled, newest kept: Rafiki retries an event for about 7 minutes.
pub const WEBHOOK_IDS_REMEMBERED_MAX: usize = 100_000;

/// The receiver's state: its secret, the events handled, and one lock per peer under which a
/// top-up is looked for and begun.
pub struct Webhooks {
    secret: crate::account::Secret,
    handled: Mutex<Handled>,
    peers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Default)]
struct Handled {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Handled {
    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    fn insert(&mut self, id: String) {
        if self.ids.insert(id.clone()) {
            self.order.push_back(id);
            while self.order.len() > WEBHOOK_IDS_REMEMBERED_MAX {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
        }
    }
}

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A top-up begun, or one already in flight that covers it.
    Handled,
    /// Its id was handled before.
    Repeated,
    /// Not an event the node acts on (another type, a peer it does not know).
    Ignored,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::Repeated => "repeated",
            Outcome::Ignored => "ignored",
        }
    }
}

/// Why an event was not handled.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("only POST is served")]
    MethodNotAllowed,
    #[error("{0}")]
    Body(String),
    #[error("Rafiki-Signature header missing")]
    Unsigned,
    #[error("bad signature: {0}")]
    Signature(#[from] signature::SignatureError),
    #[error("not a Rafiki event: {0}")]
    BadEvent(String),
    #[error("the node's store is unavailable; retry")]
    Unavailable,
}

impl WebhookError {
    fn status(&self) -> StatusCode {
        match self {
            WebhookError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            WebhookError::Body(_) | WebhookError::BadEvent(_) => StatusCode::BAD_REQUEST,
            WebhookError::Unsigned | WebhookError::Signature(_) => StatusCode::UNAUTHORIZED,
            WebhookError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl Webhooks {
    pub fn new(secret: crate::account::Secret) -> Self {
        Webhooks { secret, handled: Default::default(), peers: Default::default() }
    }

    /// Checks and handles one event (its signature header and body as received).
    pub async fn receive<S: Store>(
        &self,
        node: &Node<S>,
        signature_header: Option<&str>,
        body: &[u8],
    ) -> Result<Outcome, WebhookError> {
        let header = signature_header.ok_or(WebhookError::Unsigned)?;
        let event: Value = serde_json::from_slice(body).map_err(|e| WebhookError::BadEvent(e.to_string()))?;
        // Only the signed members count (Rafiki signs {id, type, data}).
        let signed = serde_json::json!({"id": event["id"], "type": event["type"], "data": event["data"]});
        signature::verify(self.secret.expose().as_bytes(), header, &signed, SystemTime::now())?;
        let id = event["id"].as_str().ok_or_else(|| WebhookError::BadEvent("no event id".into()))?;
        if self.lock_handled().contains(id) {
            return Ok(Outcome::Repeated);
        }
        let outcome = match event["type"].as_str() {
            Some("peer.liquidity_low") => {
                let peer = event["data"]["id"].as_str().unwrap_or_default();
                self.liquidity_low(node, peer, id).await?
            }
            _ => Outcome::Ignored,
        };
        self.lock_handled().insert(id.to_string());
        Ok(outcome)
    }

    fn lock_handled(&self) -> std::sync::MutexGuard<'_, Handled> {
        self.handled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a top-up of the peer's account unless one is in flight. Events for one peer take
    /// turns: those of a burst behind the first find its top-up pending, and are answered only
    /// then (if the first failed, the next tries itself).
    async fn liquidity_low<S: Store>(
        &self,
        node: &Node<S>,
        peer: &str,
        event: &str,
    ) -> Result<Outcome, WebhookError> {
        let accounts = node.accounts.load();
        let Some(account) = accounts
            .iter()
            .find(|a| a.rafiki_liquidity.as_ref().is_some_and(|r| r.peer_id.eq_ignore_ascii_case(peer)))
        else {
            warn!(peer, event, "peer.liquidity_low for a Rafiki peer no account names; ignored");
            return Ok(Outcome::Ignored);
        };
        let id = account.id.to_string();
        let lock =
            self.peers.lock().unwrap_or_else(|e| e.into_inner()).entry(id.clone()).or_default().clone();
        let _turn = lock.lock().await;
        let unavailable = |e: crate::store::StoreError| {
            warn!(error = %e, account = %id, "Rafiki webhook: store unavailable");
            WebhookError::Unavailable
        };
        if !node.store.pending_settlements(account).await.map_err(unavailable)?.is_empty() {
            return Ok(Outcome::Handled); // A top-up is in flight.
        }
        match node.settle_now(&id).await {
            Ok(Some((settlement, amount))) => {
                info!(account = %id, event, %settlement, amount, "peer.liquidity_low: top-up begun")
            }
            Ok(None) => {
                info!(account = %id, event, "peer.liquidity_low: the balance is at settle_to already")
            }
            Err(crate::settlement::outgoing::SettleNowError::Store(e)) => return Err(unavailable(e)),
            Err(e) => warn!(error = %e, account = %id, event, "peer.liquidity_low: no top-up"),
        }
        Ok(Outcome::Handled)
    }
}

/// Limits of the webhook listener.
pub const WEBHOOK_LIMITS: ApiLimits = ApiLimits {
    body_bytes_max: 64 * 1024,
    connections_max: 256,
    header_read_timeout: std::time::Duration::from_secs(5),
    body_read_timeout: std::time::Duration::from_secs(5),
    shutdown_grace: std::time::Duration::from_secs(2),
};

/// Serves webhooks until the node drains.
pub async fn serve<S: Store>(listener: TcpListener, node: Arc<Node<S>>, webhooks: Arc<Webhooks>) {
    let limits = WEBHOOK_LIMITS;
    let shutdown = node.shutdown.clone();
    let in_flight = Arc::new(Semaphore::new(limits.connections_max));
    let accepting = Accepting {
        name: "rafiki-webhooks",
        connections_max: limits.connections_max,
        header_read_timeout: limits.header_read_timeout,
        nodelay: true,
        // Each event comes on a connection of its own; one kept open idle would hold its slot
        // until the header read timeout. Measured with a burst of 1,000 events at once: with
        // keep-alive, 129 attempts got no answer within Rafiki's 2 s and were retried; without,
        // none were, and all were answered within 1.5 s.
        keep_alive: false,
    };
    let slots = in_flight.clone();
    let handle = move |req| {
        let (node, webhooks, slots) = (node.clone(), webhooks.clone(), slots.clone());
        async move {
            let Ok(_slot) = slots.try_acquire() else {
                return text(StatusCode::SERVICE_UNAVAILABLE, "busy; retry");
            };
            answer(&node, &webhooks, req).await
        }
    };
    let graceful = accept_until_draining(listener, accepting, &shutdown, handle).await;
    let _ = tokio::time::timeout(limits.shutdown_grace, drained(graceful, in_flight, limits.connections_max))
        .await;
}

async fn answer<S: Store>(
    node: &Node<S>,
    webhooks: &Webhooks,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let metrics = node.metrics.rafiki();
    let result = async {
        if req.method() != Method::POST {
            return Err(WebhookError::MethodNotAllowed);
        }
        let header = req.headers().get("rafiki-signature").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = read_body(req, WEBHOOK_LIMITS.body_bytes_max, WEBHOOK_LIMITS.body_read_timeout)
            .await
            .map_err(|e| WebhookError::Body(e.to_string()))?;
        webhooks.receive(node, header.as_deref(), &body).await
    }
    .await;
    match result {
        Ok(outcome) => {
            metrics.webhooks.with_label_values(&[outcome.label()]).inc();
            text(StatusCode::OK, outcome.label())
        }
        Err(e) => {
            if matches!(e, WebhookError::Unsigned | WebhookError::Signature(_)) {
                warn!(error = %e, "Rafiki webhook refused");
            }
            metrics.webhooks.with_label_values(&["refused"]).inc();
            text(e.status(), e.to_string())
        }
    }
}
