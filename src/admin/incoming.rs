//! The admin API's incoming payments: what a local account expects to receive over STREAM.
//!
//! - `POST /accounts/{id}/incoming-payments`: creates one (`{"id"?, "target"?, "expires_at"? |
//!   "expires_in_s"?, "metadata"?}`); 201 with it, 200 with the stored one when the same id is
//!   posted again with the same terms (a client's retry), 409 when the id is taken by other terms.
//! - `GET /accounts/{id}/incoming-payments`: the newest, at most [`LIST_MAX`].
//! - `GET /accounts/{id}/incoming-payments/{payment}`: one.
//!
//! Amounts are decimal strings in the account's scale; times are RFC 3339 (UTC, milliseconds).

use super::{json_body, AdminError, Gate};
use crate::account::{Account, Relation};
use crate::http::listener::{respond, CONTENT_TYPE_JSON};
use crate::limits::{
    INCOMING_METADATA_BYTES_MAX, INCOMING_PAYMENT_EXPIRY_S_DEFAULT, INCOMING_PAYMENT_EXPIRY_S_MAX,
};
use crate::store::{
    CompletionReason, CreatedIncoming, IncomingPayment, IncomingPaymentId, IncomingState, InvalidIncoming,
    NewIncomingPayment, Store,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::info;

type Answer = Result<Response<Full<Bytes>>, AdminError>;

/// Payments one list answer shows, newest first.
pub const LIST_MAX: usize = 1000;

/// The body of `POST /accounts/{id}/incoming-payments`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPaymentInput {
    id: Option<String>,
    /// A decimal string (or, as for account amounts, a JSON number).
    target: Option<serde_json::Value>,
    expires_at: Option<String>,
    expires_in_s: Option<u64>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

fn invalid(field: &str, message: impl Into<String>) -> AdminError {
    let problem =
        crate::rules::Problem { path: format!("incoming_payment.{field}"), message: message.into() };
    AdminError::Invalid { what: "incoming payment", problems: crate::rules::ConfigError(vec![problem]) }
}

/// The local account named in the path.
fn local_account<S>(gate: &Gate<S>, id: &str) -> Result<Arc<Account>, AdminError> {
    let account = gate
        .node
        .accounts
        .load()
        .get(id)
        .cloned()
        .ok_or_else(|| AdminError::NotFound(format!("no account {id:?}")))?;
    if account.relation != Relation::Local {
        return Err(AdminError::Conflict(format!(
            "account {id:?} is not a local account: only the node's own (relation \"local\") receive payments"
        )));
    }
    Ok(account)
}

/// Checks the input into the store's form; every field's problem names the field. Also says
/// whether the expiry was given as a time: only then does a repeated request name the same one.
fn new_payment(body: &[u8], now: SystemTime) -> Result<(NewIncomingPayment, bool), AdminError> {
    let input: NewPaymentInput = serde_json::from_slice(body)
        .map_err(|e| invalid("(body)", format!("not an incoming payment: {e}")))?;
    let id = match input.id {
        Some(text) => IncomingPaymentId::parse(&text).ok_or_else(|| {
            invalid("id", "must be one ILP address segment (letters, digits, _ ~ -), 1 to 64 bytes")
        })?,
        None => IncomingPaymentId::random(),
    };
    let target = match input.target {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => {
            let text = match &value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return Err(invalid("target", "must be a decimal string")),
            };
            match text.parse::<u64>() {
                Ok(0) => return Err(invalid("target", "must be greater than 0 (omit it for no target)")),
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(invalid(
                        "target",
                        "must be a whole number of the account's units, up to 2^64 - 1",
                    ))
                }
            }
        }
    };
    let expiry_given = input.expires_at.is_some();
    let expires_at = match (input.expires_at, input.expires_in_s) {
        (Some(_), Some(_)) => {
            return Err(invalid("expires_in_s", "give expires_at or expires_in_s, not both"))
        }
        (Some(text), None) => chrono::DateTime::parse_from_rfc3339(&text)
            .map(SystemTime::from)
            .map_err(|_| invalid("expires_at", "must be an RFC 3339 time, e.g. 2026-12-01T12:00:00Z"))?,
        (None, Some(s)) => now + Duration::from_secs(s),
        (None, None) => now + Duration::from_secs(INCOMING_PAYMENT_EXPIRY_S_DEFAULT),
    };
    if expires_at <= now {
        return Err(invalid("expires_at", "must be in the future"));
    }
    if expires_at > now + Duration::from_secs(INCOMING_PAYMENT_EXPIRY_S_MAX) {
        return Err(invalid("expires_at", format!("must be within {INCOMING_PAYMENT_EXPIRY_S_MAX} s")));
    }
    let metadata = match input.metadata {
        None => "null".to_string(),
        Some(value) => value.to_string(),
    };
    if metadata.len() > INCOMING_METADATA_BYTES_MAX {
        return Err(invalid(
            "metadata",
            format!("must be at most {INCOMING_METADATA_BYTES_MAX} bytes as JSON"),
        ));
    }
    let new = NewIncomingPayment { id, target, expires_at, metadata };
    // The store's own rules, the last word (the checks above name the common mistakes first).
    new.check(now).map_err(|e| {
        let field = match e {
            InvalidIncoming::TargetZero | InvalidIncoming::TargetTooLarge(_) => "target",
            InvalidIncoming::MetadataTooLong(_) | InvalidIncoming::MetadataNotJson => "metadata",
            InvalidIncoming::ExpiresAtNotAfterNow | InvalidIncoming::ExpiresAtTooFar => "expires_at",
        };
        invalid(field, e.to_string())
    })?;
    Ok((new, expiry_given))
}

/// Whether a stored payment has the terms a repeated request asks for: its target and metadata,
/// and its expiry (to the millisecond, the precision the store keeps) when given as a time.
fn same_terms(stored: &IncomingPayment, new: &NewIncomingPayment, expiry_given: bool) -> bool {
    let ms = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    stored.target == new.target
        && stored.metadata == new.metadata
        && (!expiry_given || ms(stored.expires_at) == ms(new.expires_at))
}

/// `POST /accounts/{id}/incoming-payments`.
pub(super) async fn create<S: Store>(gate: &Gate<S>, account: &str, req: Request<Incoming>) -> Answer {
    let account = local_account(gate, account)?;
    let body = json_body(gate, req).await?;
    let now = SystemTime::now();
    let (new, expiry_given) = new_payment(&body, now)?;
    match gate.node.store.create_incoming_payment(&account, &new, now).await? {
        CreatedIncoming::Created(payment) => {
            info!(account = %account.id, payment = %payment.id, target = ?payment.target, "incoming payment created");
            Ok(json(StatusCode::CREATED, &view(gate, &payment)))
        }
        // A client's retry of the same request (its first answer lost) is answered again.
        CreatedIncoming::Exists(payment) if same_terms(&payment, &new, expiry_given) => {
            Ok(json(StatusCode::OK, &view(gate, &payment)))
        }
        CreatedIncoming::Exists(payment) => Err(AdminError::Conflict(format!(
            "incoming payment {:?} exists with other terms",
            payment.id.as_str()
        ))),
    }
}

/// `GET /accounts/{id}/incoming-payments`: the newest first.
pub(super) async fn list<S: Store>(gate: &Gate<S>, account: &str) -> Answer {
    let account = local_account(gate, account)?;
    let payments = gate.node.store.incoming_payments(&account, LIST_MAX).await?;
    let views: Vec<serde_json::Value> = payments.iter().map(|p| view(gate, p)).collect();
    Ok(json(StatusCode::OK, &serde_json::Value::Array(views)))
}

/// `GET /accounts/{id}/incoming-payments/{payment}`.
pub(super) async fn get<S: Store>(gate: &Gate<S>, account: &str, payment: &str) -> Answer {
    let account = local_account(gate, account)?;
    let unknown =
        || AdminError::NotFound(format!("no incoming payment {payment:?} for account {:?}", &*account.id));
    let id = IncomingPaymentId::parse(payment).ok_or_else(unknown)?;
    let payment = gate.node.store.incoming_payment(&account, &id).await?.ok_or_else(unknown)?;
    Ok(json(StatusCode::OK, &view(gate, &payment)))
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    respond(status, CONTENT_TYPE_JSON, value.to_string())
}

/// RFC 3339, UTC, milliseconds.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A payment as the API shows it, with the SPSP URL senders query for it (and, when that URL is
/// https, its payment pointer, RFC 0026).
fn view<S>(gate: &Gate<S>, payment: &IncomingPayment) -> serde_json::Value {
    let spsp_url = gate.node.receiving.spsp_url(&payment.account, Some(&payment.id));
    let (state, completion, completed_at) = match payment.state {
        IncomingState::Open => ("open", None, None),
        IncomingState::Completed { at, reason } => (
            "completed",
            Some(match reason {
                CompletionReason::TargetReached => "target_reached",
                CompletionReason::Expired => "expired",
            }),
            Some(rfc3339(at)),
        ),
    };
    let metadata: serde_json::Value =
        serde_json::from_str(&payment.metadata).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "id": payment.id.as_str(),
        "account": payment.account,
        "target": payment.target.map(|t| t.to_string()),
        "received": payment.received.to_string(),
        "state": state,
        "completion": completion,
        "completed_at": completed_at,
        "completion_handled": payment.completion_handled,
        "created_at": rfc3339(payment.created_at),
        "expires_at": rfc3339(payment.expires_at),
        "metadata": metadata,
        "payment_pointer": crate::node::payment_pointer(&spsp_url),
        "spsp_url": spsp_url,
    })
}
