//! The backend API the Mojaloop Connector calls when the scheme pays the node (the node is the
//! payee DFSP): a listener of its own (`mojaloop.backend_listen`, the Connector's
//! BACKEND_ENDPOINT), private like the admin API.
//!
//! Served so far: `GET /parties/{idType}/{idValue}`: a party the node answers for
//! (`[[mojaloop.parties]]`) whose Interledger receiver answers an SPSP query gets 200 with its
//! `idType` and `idValue` (the Connector needs both echoed); a party the node does not answer
//! for, or whose receiver says there is no such receiver, gets 404 with FSPIOP 3204; a receiver
//! that cannot be asked now (unreachable, timed out) gets 503 with 2003. Quotes and transfers
//! are the next steps of issue 12; until then their paths are unknown (404, 3002).
//!
//! Every error answer carries both `statusCode` (the FSPIOP code) and `message`: without both,
//! the Connector passes nothing on and the payer waits 30 s for nothing.
//!
//! Order of checks, cheapest first: method and path, a slot among the requests in flight (503
//! past `backend_connections_max`), the party's id, the configuration, then the SPSP query.

use super::error::FspiopCode;
use super::party::{id_value_ok, ID_TYPES};
use super::scheme::Scheme;
use crate::http::listener::{
    accept_until_draining, drained, percent_decode, respond, Accepting, CONTENT_TYPE_JSON,
};
use crate::node::Node;
use crate::payments::outgoing::{SPSP_BODY_BYTES_MAX, SPSP_TIMEOUT};
use crate::spsp::SpspError;
use crate::store::Store;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// An FSPIOP error answer: the HTTP status, the code and the message the payer will see.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    status: StatusCode,
    code: FspiopCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: FspiopCode, message: impl Into<String>) -> Refusal {
        Refusal { status, code, message: message.into() }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({ "statusCode": self.code.to_string(), "message": self.message });
        respond(self.status, CONTENT_TYPE_JSON, body.to_string())
    }
}

/// Serves the Connector until the node drains, then gives requests in flight the grace period.
pub async fn serve<S: Store>(listener: TcpListener, node: Arc<Node<S>>, scheme: Arc<Scheme>) {
    let limits = scheme.backend.clone();
    let shutdown = node.shutdown.clone();
    let in_flight = Arc::new(Semaphore::new(limits.connections_max));
    let accepting = Accepting {
        name: "mojaloop backend",
        connections_max: limits.connections_max,
        header_read_timeout: limits.header_read_timeout,
        nodelay: true,
    };
    let slots = in_flight.clone();
    let handle = move |req| {
        let (node, scheme, slots) = (node.clone(), scheme.clone(), slots.clone());
        async move {
            match answer(&node, &scheme, &slots, req).await {
                Ok(response) => response,
                Err(refusal) => refusal.into_response(),
            }
        }
    };
    let graceful = accept_until_draining(listener, accepting, &shutdown, handle).await;
    info!("Mojaloop backend listener draining: no new connections");
    if tokio::time::timeout(limits.shutdown_grace, drained(graceful, in_flight, limits.connections_max))
        .await
        .is_err()
    {
        warn!(grace_ms = limits.shutdown_grace.as_millis() as u64, "Mojaloop backend grace period over");
    }
}

async fn answer<S: Store>(
    node: &Node<S>,
    scheme: &Scheme,
    slots: &Arc<Semaphore>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Refusal> {
    let segments: Vec<&str> = req.uri().path().trim_start_matches('/').split('/').collect();
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["parties", id_type, id_value]) => {
            let (id_type, id_value) = (decoded(id_type)?, decoded(id_value)?);
            let _slot = slots.try_acquire().map_err(|_| busy())?;
            party(node, scheme, &id_type, &id_value).await
        }
        (_, ["parties", ..]) => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            FspiopCode::PARTY_NOT_FOUND,
            "parties are looked up by GET /parties/{idType}/{idValue}; sub-ids are not served",
        )),
        _ => Err(Refusal::new(StatusCode::NOT_FOUND, FspiopCode::UNKNOWN_URI, "not served by this node")),
    }
}

fn decoded(segment: &str) -> Result<String, Refusal> {
    percent_decode(segment).ok_or_else(|| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            FspiopCode::VALIDATION_ERROR,
            "a path segment is not percent-encoded UTF-8",
        )
    })
}

fn busy() -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        FspiopCode::SERVICE_UNAVAILABLE,
        "too many requests in flight; retry",
    )
}

/// `GET /parties/{idType}/{idValue}`: the party, if the node answers for it and its receiver
/// answers an SPSP query now.
async fn party<S: Store>(
    node: &Node<S>,
    scheme: &Scheme,
    id_type: &str,
    id_value: &str,
) -> Result<Response<Full<Bytes>>, Refusal> {
    let not_found = |why: &str| Refusal::new(StatusCode::NOT_FOUND, FspiopCode::PARTY_NOT_FOUND, why);
    if !ID_TYPES.contains(&id_type) || !id_value_ok(id_value) {
        return Err(not_found("no such party"));
    }
    let receiver = scheme.receiver_for(id_type, id_value).ok_or_else(|| not_found("no such party"))?;
    match crate::spsp::resolve(node.client.connector(), &receiver, SPSP_TIMEOUT, SPSP_BODY_BYTES_MAX).await {
        Ok(_) => {
            debug!(id_type, id_value, %receiver, "Mojaloop party found");
            let body = serde_json::json!({ "idType": id_type, "idValue": id_value, "fspId": scheme.dfsp_id });
            Ok(respond(StatusCode::OK, CONTENT_TYPE_JSON, body.to_string()))
        }
        Err(e) => {
            let refusal = lookup_refusal(&e);
            info!(id_type, id_value, %receiver, error = %e, code = %refusal.code, "Mojaloop party lookup refused");
            Err(refusal)
        }
    }
}

/// A receiver that answered "no" is no party; one that could not be asked is unavailable now.
fn lookup_refusal(e: &SpspError) -> Refusal {
    match e {
        SpspError::TimedOut(_) | SpspError::Query(_) | SpspError::Status(500..=599) => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            FspiopCode::SERVICE_UNAVAILABLE,
            "the party's Interledger receiver cannot be reached now; retry",
        ),
        _ => Refusal::new(StatusCode::NOT_FOUND, FspiopCode::PARTY_NOT_FOUND, "no such party"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receiver_that_said_no_is_no_party_and_one_that_could_not_be_asked_is_unavailable() {
        assert_eq!(lookup_refusal(&SpspError::NotFound).code, FspiopCode::PARTY_NOT_FOUND);
        assert_eq!(lookup_refusal(&SpspError::NotAcceptable).code, FspiopCode::PARTY_NOT_FOUND);
        assert_eq!(lookup_refusal(&SpspError::Status(410)).code, FspiopCode::PARTY_NOT_FOUND);
        let down = lookup_refusal(&SpspError::TimedOut(std::time::Duration::from_secs(1)));
        assert_eq!(
            (down.status, down.code),
            (StatusCode::SERVICE_UNAVAILABLE, FspiopCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(lookup_refusal(&SpspError::Status(502)).code, FspiopCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn every_refusal_carries_a_status_code_and_a_message() {
        let response =
            Refusal::new(StatusCode::NOT_FOUND, FspiopCode::PARTY_NOT_FOUND, "no such party").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
