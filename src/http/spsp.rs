//! The public SPSP listener (RFC 0009): where senders learn how to pay the node's local
//! accounts. A listener of its own, apart from ILP-over-HTTP and the admin API, so that an
//! operator can expose it alone (behind a TLS proxy) and keep the others private.
//!
//! `GET /<account>` (a local account: money sent there is credited to it) or
//! `GET /<account>/<incoming payment>` (one open incoming payment of it), with
//! `Accept: application/spsp4+json`, answers `{destination_account, shared_secret,
//! receipts_enabled}`: new credentials every time, derived from the node's STREAM server secret
//! and stored nowhere (see [`crate::stream::credentials`]). Another `Accept` gets 406; a receiver
//! that does not exist, is not local or is no longer open gets 404 (the same answer for each, so
//! the listener tells strangers nothing about the node's other accounts); a store outage 503.
//!
//! `GET /mojaloop/<idType>/<idValue>[?currency=<code>&amount=<FSPIOP amount>]`, with `[mojaloop]`:
//! a new incoming payment paid out to that Mojaloop party once it completes (see
//! [`crate::mojaloop::payouts`]); its credentials, as for any incoming payment. A bad query gets
//! 400.
//!
//! Order of checks, cheapest first: method, path, `Accept`, a slot among the requests in flight
//! (503 past `connections_max`), then the receiver (an incoming payment is read from the store).

use super::listener::{accept_until_draining, drained, percent_decode, respond, text, Accepting, ApiLimits};
use crate::account::{Account, Relation};
use crate::mojaloop::payouts::{self, OpenRefusal};
use crate::node::Node;
use crate::store::{IncomingPaymentId, IncomingState, Store};
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CACHE_CONTROL, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn};

/// SPSP v4's media type (RFC 0009).
pub const CONTENT_TYPE_SPSP4: &str = "application/spsp4+json";

/// Why a query got no credentials: each variant is one answer.
#[derive(Debug, thiserror::Error)]
enum SpspError {
    #[error("method not allowed: use GET")]
    MethodNotAllowed,
    #[error("no such receiver")]
    NotFound,
    #[error("this endpoint answers only Accept: application/spsp4+json")]
    NotAcceptable,
    #[error("too many queries in flight; retry")]
    Busy,
    #[error("receiver unavailable; retry")]
    Unavailable,
    #[error("{0}")]
    BadRequest(String),
}

impl SpspError {
    fn into_response(self) -> Response<Full<Bytes>> {
        let status = match self {
            SpspError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            SpspError::NotFound => StatusCode::NOT_FOUND,
            SpspError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            SpspError::Busy | SpspError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            SpspError::BadRequest(_) => StatusCode::BAD_REQUEST,
        };
        let mut response = text(status, self.to_string());
        match self {
            SpspError::MethodNotAllowed => {
                response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET"));
            }
            SpspError::Busy | SpspError::Unavailable => {
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// Serves SPSP queries until the node drains, then gives queries in flight the grace period.
pub async fn serve<S: Store>(listener: TcpListener, node: Arc<Node<S>>, limits: ApiLimits) {
    let shutdown = node.shutdown.clone();
    let in_flight = Arc::new(Semaphore::new(limits.connections_max));
    let accepting = Accepting {
        name: "spsp",
        connections_max: limits.connections_max,
        header_read_timeout: limits.header_read_timeout,
        nodelay: true,
        keep_alive: true,
    };
    let slots = in_flight.clone();
    let handle = move |req| {
        let (node, slots) = (node.clone(), slots.clone());
        async move {
            match answer(&node, &slots, req).await {
                Ok(response) => response,
                Err(e) => e.into_response(),
            }
        }
    };
    let graceful = accept_until_draining(listener, accepting, &shutdown, handle).await;
    info!("SPSP listener draining: no new connections");
    if tokio::time::timeout(limits.shutdown_grace, drained(graceful, in_flight, limits.connections_max))
        .await
        .is_err()
    {
        warn!(grace_ms = limits.shutdown_grace.as_millis() as u64, "SPSP listener grace period over");
    }
}

async fn answer<S: Store>(
    node: &Node<S>,
    slots: &Arc<Semaphore>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, SpspError> {
    if req.method() != Method::GET {
        return Err(SpspError::MethodNotAllowed);
    }
    let party = payout_party(req.uri().path());
    let receiver = match &party {
        Some(_) => None,
        None => Some(Receiver::parse(req.uri().path()).ok_or(SpspError::NotFound)?),
    };
    if !accepts_spsp4(&req) {
        return Err(SpspError::NotAcceptable);
    }
    let _slot = slots.try_acquire().map_err(|_| SpspError::Busy)?;
    let receiver = match (receiver, party) {
        (Some(receiver), _) => receiver,
        // A Mojaloop party: a new incoming payment, paid out to it once complete.
        (None, Some((id_type, id_value))) => {
            let opened = payouts::open(node, &id_type, &id_value, req.uri().query()).await;
            let (account, payment) = opened.map_err(|e| match e {
                OpenRefusal::NotFound => SpspError::NotFound,
                OpenRefusal::Invalid(why) => SpspError::BadRequest(why),
                OpenRefusal::Unavailable => SpspError::Unavailable,
            })?;
            Receiver { account: account.id.to_string(), payment: Some(payment) }
        }
        (None, None) => return Err(SpspError::NotFound),
    };
    let account = node.accounts.load().get(receiver.account.as_str()).cloned().ok_or(SpspError::NotFound)?;
    if account.relation != Relation::Local {
        return Err(SpspError::NotFound);
    }
    if let Some(payment) = &receiver.payment {
        open_payment(node, &account, payment).await?;
    }
    let address = account.ilp_address.as_ref().ok_or(SpspError::NotFound)?;
    let name = crate::payments::receiver_name(&account.id, receiver.payment.as_ref());
    let credentials = node.receiving.secret.issue(&name).map_err(|e| {
        warn!(error = %e, "SPSP credentials could not be issued");
        SpspError::Unavailable
    })?;
    let destination = match &receiver.payment {
        Some(payment) => format!("{address}.{payment}.{}", credentials.token),
        None => format!("{address}.{}", credentials.token),
    };
    let body = serde_json::json!({
        "destination_account": destination,
        "shared_secret": base64::engine::general_purpose::STANDARD.encode(credentials.shared_secret.as_bytes()),
        "receipts_enabled": false,
    });
    let mut response = respond(StatusCode::OK, CONTENT_TYPE_SPSP4, body.to_string());
    // Credentials are per query: a cache that served one twice would join two senders' money
    // into one connection.
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Only an incoming payment still open gets credentials (a sender could not pay the others).
async fn open_payment<S: Store>(
    node: &Node<S>,
    account: &Account,
    payment: &IncomingPaymentId,
) -> Result<(), SpspError> {
    let found = node.store.incoming_payment(account, payment).await.map_err(|e| {
        warn!(error = %e, account = %account.id, "SPSP query: store unavailable");
        SpspError::Unavailable
    })?;
    match found {
        Some(p) if p.state == IncomingState::Open && p.expires_at > SystemTime::now() => Ok(()),
        _ => Err(SpspError::NotFound),
    }
}

/// The receiver a path names: `/<account>` or `/<account>/<payment>`.
#[derive(Debug, PartialEq, Eq)]
struct Receiver {
    account: String,
    payment: Option<IncomingPaymentId>,
}

impl Receiver {
    fn parse(path: &str) -> Option<Receiver> {
        let segments: Vec<String> =
            path.strip_prefix('/')?.split('/').map(percent_decode).collect::<Option<_>>()?;
        let valid = |s: &str| crate::rules::is_segment(s);
        match segments.as_slice() {
            [account] if valid(account) => Some(Receiver { account: account.clone(), payment: None }),
            [account, payment] if valid(account) => {
                Some(Receiver { account: account.clone(), payment: Some(IncomingPaymentId::parse(payment)?) })
            }
            _ => None,
        }
    }
}

/// The Mojaloop party a path names: `/mojaloop/<idType>/<idValue>` (see [`payouts::open`]).
fn payout_party(path: &str) -> Option<(String, String)> {
    let segments: Vec<String> =
        path.strip_prefix('/')?.split('/').map(percent_decode).collect::<Option<_>>()?;
    match segments.as_slice() {
        [mojaloop, id_type, id_value] if mojaloop == "mojaloop" => Some((id_type.clone(), id_value.clone())),
        _ => None,
    }
}

/// Whether `Accept` names SPSP v4 (parameters and case aside). Nothing else is served: a sender
/// that does not ask for it would not read the answer as SPSP.
fn accepts_spsp4<B>(req: &Request<B>) -> bool {
    req.headers().get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|value| {
        value.split(',').any(|range| {
            range.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(CONTENT_TYPE_SPSP4)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_an_account_or_one_of_its_payments() {
        let p = |path| Receiver::parse(path);
        assert_eq!(p("/alice"), Some(Receiver { account: "alice".into(), payment: None }));
        let with = p("/alice/inv-7").unwrap();
        assert_eq!((with.account.as_str(), with.payment.unwrap().as_str()), ("alice", "inv-7"));
        for bad in ["/", "//x", "/alice/", "/a/b/c", "/a.b", "/%zz", "alice", "/alice/a.b"] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_spsp4_is_accepted() {
        let with = |accept: &str| {
            let req = Request::builder().header(ACCEPT, accept).body(()).unwrap();
            accepts_spsp4(&req)
        };
        assert!(with("application/spsp4+json"));
        assert!(with("application/spsp4+json, application/spsp+json"));
        assert!(with("text/html;q=0.5, Application/SPSP4+JSON; q=1"));
        for other in ["application/json", "*/*", "application/spsp+json", ""] {
            assert!(!with(other), "{other}");
        }
        assert!(!accepts_spsp4(&Request::builder().body(()).unwrap()));
    }
}
