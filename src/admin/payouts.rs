//! The admin API's payouts into the Mojaloop scheme (see [`crate::mojaloop::payouts`]).
//!
//! - `GET /payouts`: the open ones (pending, and failed ones waiting for an operator), oldest
//!   first, of every currency's account.
//! - `GET /payouts/{id}`: one, open or ended within its retention.
//! - `POST /payouts/{id}/retry`: a failed payout is paid again, as a new attempt (a new transfer:
//!   the last one was refused, so nothing moved under it). 200 with it; 409 unless failed.
//! - `POST /payouts/{id}/refund`: a failed payout's money goes back to its account, and it ends.
//!   200 with it; 409 unless failed.

use super::{AdminError, Gate};
use crate::admin::incoming::rfc3339;
use crate::http::listener::{respond, CONTENT_TYPE_JSON};
use crate::mojaloop::payouts::payout_accounts;
use crate::store::{Payout, PayoutAction, PayoutActionRefused, Store};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use std::time::SystemTime;
use tracing::info;

type Answer = Result<Response<Full<Bytes>>, AdminError>;

/// Open payouts one list answer shows, per currency.
pub const LIST_MAX: usize = 1000;

fn view(p: &Payout) -> serde_json::Value {
    serde_json::json!({
        "id": p.id,
        "account": p.account,
        "party": { "id_type": p.id_type, "id_value": p.id_value, "fsp_id": p.fsp_id },
        "currency": p.currency,
        "amount": p.amount.to_string(),
        "state": p.state.as_str(),
        "attempt": p.attempt,
        "transfer_id": p.reference,
        "earlier_transfer_ids": p.earlier_references,
        "error": p.error,
        "created_at": rfc3339(p.created_at),
        "updated_at": rfc3339(p.updated_at),
    })
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    respond(status, CONTENT_TYPE_JSON, value.to_string())
}

pub(super) async fn list<S: Store>(gate: &Gate<S>) -> Answer {
    let mut all = Vec::new();
    for account in payout_accounts(&gate.node) {
        all.extend(gate.node.store.open_payouts(&account, LIST_MAX).await?.iter().map(view));
    }
    Ok(json(StatusCode::OK, &serde_json::Value::Array(all)))
}

pub(super) async fn get<S: Store>(gate: &Gate<S>, id: &str) -> Answer {
    for account in payout_accounts(&gate.node) {
        if let Some(p) = gate.node.store.payout(&account, id).await? {
            return Ok(json(StatusCode::OK, &view(&p)));
        }
    }
    Err(AdminError::NotFound(format!("payout {id:?}")))
}

pub(super) async fn act<S: Store>(gate: &Gate<S>, id: &str, action: PayoutAction) -> Answer {
    for account in payout_accounts(&gate.node) {
        match gate.node.store.act_on_payout(&account, id, action, SystemTime::now()).await? {
            Ok(p) => {
                info!(payout = id, ?action, amount = p.amount, "payout acted on by an operator");
                gate.node.metrics.mojaloop_payout(match action {
                    PayoutAction::Retry => "retried",
                    PayoutAction::Refund => "refunded",
                });
                if let (PayoutAction::Retry, Some(dfsp)) = (action, gate.node.mojaloop.as_deref()) {
                    dfsp.payouts.wake.notify_one();
                }
                return Ok(json(StatusCode::OK, &view(&p)));
            }
            Err(PayoutActionRefused::NotFailed(p)) => {
                return Err(AdminError::Conflict(format!(
                    "payout {id:?} is {}: only a failed payout is retried or refunded",
                    p.state.as_str()
                )))
            }
            Err(PayoutActionRefused::Unknown) => {}
        }
    }
    Err(AdminError::NotFound(format!("payout {id:?}")))
}
