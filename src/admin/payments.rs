//! The admin API's outgoing payments: what a local account pays over STREAM.
//!
//! - `POST /payments`: `{"id", "account", "receiver" (payment pointer or SPSP URL) | "destination_address" +
//!   "shared_secret" (base64), "amount", "amount_kind"?: "source" (default) | "delivered",
//!   "source_max"? (with "delivered": the most the account may spend), "slippage"? ("0.01"),
//!   "deadline"? (RFC 3339) | "deadline_in_s"? (default 60)}`. 201 with the payment, or 200 with
//!   the stored one when the id exists for that account (a client's retry never pays twice: the
//!   stored payment is answered whatever the second request asked); 400 naming the field.
//! - `GET /payments/{id}` (`?account=` when two local accounts use the id) and
//!   `GET /accounts/{id}/payments`: state, amounts sent and delivered, in flight and in doubt,
//!   packets, rejects by code, why it stopped.

use super::{json_body, AdminError, Gate};
use crate::account::{Account, Relation};
use crate::admin::incoming::rfc3339;
use crate::http::listener::{respond, CONTENT_TYPE_JSON};
use crate::limits::{OUTGOING_PAYMENT_DEADLINE_S_DEFAULT, STREAM_SLIPPAGE};
use crate::packet::IlpAddress;
use crate::store::{
    AmountKind, CreatedOutgoing, NewOutgoingPayment, OutgoingPayment, OutgoingPaymentId, OutgoingState, Store,
};
use base64::Engine;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPaymentInput {
    id: String,
    account: String,
    receiver: Option<String>,
    destination_address: Option<String>,
    shared_secret: Option<String>,
    amount: serde_json::Value,
    amount_kind: Option<String>,
    source_max: Option<serde_json::Value>,
    slippage: Option<String>,
    deadline: Option<String>,
    deadline_in_s: Option<u64>,
}

fn invalid(field: &str, message: impl Into<String>) -> AdminError {
    let problem = crate::rules::Problem { path: format!("payment.{field}"), message: message.into() };
    AdminError::Invalid { what: "payment", problems: crate::rules::ConfigError(vec![problem]) }
}

/// A whole number of units, as a decimal string or a JSON number.
fn units(field: &str, value: &serde_json::Value) -> Result<u64, AdminError> {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err(invalid(field, "must be a decimal string")),
    };
    text.parse().map_err(|_| invalid(field, "must be a whole number of units, up to 2^63 - 1"))
}

fn local_account<S>(gate: &Gate<S>, id: &str) -> Result<Arc<Account>, AdminError> {
    let account = gate.node.accounts.load().get(id).cloned();
    let account = account.ok_or_else(|| invalid("account", format!("no account {id:?}")))?;
    if account.relation != Relation::Local {
        return Err(invalid("account", "only a local account (relation \"local\") pays from the node"));
    }
    Ok(account)
}

/// Direct STREAM credentials: the destination and the 32-byte secret.
type Credentials = (IlpAddress, [u8; 32]);

fn new_payment(
    input: NewPaymentInput,
    now: SystemTime,
) -> Result<(NewOutgoingPayment, Option<Credentials>), AdminError> {
    let id = OutgoingPaymentId::parse(&input.id).ok_or_else(|| {
        invalid("id", "must be one ILP address segment (letters, digits, _ ~ -), 1 to 64 bytes")
    })?;
    let (receiver, credentials) = match (input.receiver, input.destination_address, input.shared_secret) {
        (Some(receiver), None, None) => {
            crate::spsp::query_url(&receiver).map_err(|e| invalid("receiver", e.to_string()))?;
            (receiver, None)
        }
        (None, Some(address), Some(secret)) => {
            let address =
                IlpAddress::parse(&address).map_err(|e| invalid("destination_address", e.to_string()))?;
            let secret = base64::engine::general_purpose::STANDARD
                .decode(secret)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| invalid("shared_secret", "must be 32 bytes in base64"))?;
            (address.to_string(), Some((address, secret)))
        }
        _ => return Err(invalid("receiver", "give receiver, or destination_address and shared_secret")),
    };
    let kind = match input.amount_kind.as_deref() {
        None | Some("source") => AmountKind::Source,
        Some("delivered") => AmountKind::Delivered,
        Some(_) => return Err(invalid("amount_kind", "must be \"source\" or \"delivered\"")),
    };
    let deadline = match (input.deadline, input.deadline_in_s) {
        (Some(_), Some(_)) => {
            return Err(invalid("deadline_in_s", "give deadline or deadline_in_s, not both"))
        }
        (Some(text), None) => chrono::DateTime::parse_from_rfc3339(&text)
            .map(SystemTime::from)
            .map_err(|_| invalid("deadline", "must be an RFC 3339 time"))?,
        (None, seconds) => now + Duration::from_secs(seconds.unwrap_or(OUTGOING_PAYMENT_DEADLINE_S_DEFAULT)),
    };
    let new = NewOutgoingPayment {
        id,
        receiver,
        amount: units("amount", &input.amount)?,
        kind,
        slippage: input.slippage.unwrap_or_else(|| STREAM_SLIPPAGE.to_string()),
        deadline,
        source_max: input.source_max.as_ref().map(|v| units("source_max", v)).transpose()?,
        // The admin API's payments probe their own path.
        probed: None,
    };
    new.check(now).map_err(|e| invalid(e.field(), e.to_string()))?;
    Ok((new, credentials))
}

/// `POST /payments`.
pub(super) async fn create<S: Store>(gate: &Gate<S>, req: Request<Incoming>) -> Answer {
    let body = json_body(gate, req).await?;
    let input: NewPaymentInput =
        serde_json::from_slice(&body).map_err(|e| invalid("(body)", format!("not a payment: {e}")))?;
    let account = local_account(gate, &input.account)?;
    let now = SystemTime::now();
    let (new, credentials) = new_payment(input, now)?;
    let node = &gate.node;
    let payment = match node.store.create_outgoing_payment(&account, &new, now).await? {
        CreatedOutgoing::Exists(payment) => return Ok(json(StatusCode::OK, &view(&payment))),
        CreatedOutgoing::Created(payment) => payment,
    };
    if let Some((address, secret)) = credentials {
        // Kept before any instance sends it: the worker waits for them (the receiver is an
        // address, which no SPSP query resolves).
        let owner = node.sending.owner.as_str();
        let lease = crate::payments::outgoing::LEASE;
        let grace = crate::payments::outgoing::DOUBT_GRACE;
        if node.store.claim_outgoing_payment(&account, &payment.id, owner, now, lease, grace).await?.is_some()
        {
            node.store
                .set_outgoing_connection(&account, &payment.id, owner, address.as_str(), &secret)
                .await?;
        }
    }
    info!(account = %account.id, payment = %payment.id, amount = payment.amount, "outgoing payment created");
    node.sending.wake.notify_one();
    let payment = node.store.outgoing_payment(&account, &payment.id).await?.unwrap_or(payment);
    Ok(json(StatusCode::CREATED, &view(&payment)))
}

/// `GET /payments/{id}`: looked for in every local account (or the one `?account=` names).
pub(super) async fn get<S: Store>(gate: &Gate<S>, id: &str, query: &str) -> Answer {
    let unknown = || AdminError::NotFound(format!("no payment {id:?}"));
    let id = OutgoingPaymentId::parse(id).ok_or_else(unknown)?;
    let only = query.split('&').find_map(|pair| pair.strip_prefix("account="));
    let accounts = gate.node.accounts.load();
    let mut found = Vec::new();
    for account in
        accounts.iter().filter(|a| a.relation == Relation::Local && only.is_none_or(|o| *a.id == *o))
    {
        if let Some(payment) = gate.node.store.outgoing_payment(account, &id).await? {
            found.push(payment);
        }
    }
    match found.len() {
        0 => Err(unknown()),
        1 => Ok(json(StatusCode::OK, &view(&found[0]))),
        _ => Err(AdminError::Conflict(format!(
            "several local accounts have a payment {:?}: add ?account=",
            id.as_str()
        ))),
    }
}

/// `GET /accounts/{id}/payments`: newest first.
pub(super) async fn list<S: Store>(gate: &Gate<S>, account: &str) -> Answer {
    let account = gate
        .node
        .accounts
        .load()
        .get(account)
        .cloned()
        .ok_or_else(|| AdminError::NotFound(format!("no account {account:?}")))?;
    let payments = gate.node.store.outgoing_payments(&account, LIST_MAX).await.map_err(AdminError::from)?;
    Ok(json(StatusCode::OK, &serde_json::Value::Array(payments.iter().map(view).collect())))
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    respond(status, CONTENT_TYPE_JSON, value.to_string())
}

/// A payment as the API shows it (the shared secret never).
fn view(p: &OutgoingPayment) -> serde_json::Value {
    let state = match p.state {
        OutgoingState::Sending => "sending",
        OutgoingState::Completed => "completed",
        OutgoingState::Failed => "failed",
    };
    serde_json::json!({
        "id": p.id.as_str(),
        "account": p.account,
        "receiver": p.receiver,
        "amount": p.amount.to_string(),
        "amount_kind": match p.kind { AmountKind::Source => "source", AmountKind::Delivered => "delivered" },
        "source_max": p.source_max.map(|m| m.to_string()),
        "slippage": p.slippage,
        "deadline": rfc3339(p.deadline),
        "created_at": rfc3339(p.created_at),
        "updated_at": rfc3339(p.updated_at),
        "state": state,
        "sent": p.sent.to_string(),
        "delivered": p.delivered.to_string(),
        "in_flight": p.in_flight.to_string(),
        "in_doubt": p.in_doubt.to_string(),
        "packets_fulfilled": p.packets_fulfilled,
        "packets_rejected": p.packets_rejected,
        "rejects": p.rejects,
        "stop_reason": p.stop_reason,
        "destination": p.destination,
    })
}
