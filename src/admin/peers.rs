//! `POST /peers/auto`: peering with a Rafiki through its auto-peering endpoint
//! ([`crate::rafiki::peering`]). Body `{"id", "url" (Rafiki's auto-peering URL), "asset_code",
//! "asset_scale", "max_packet_amount"?, "hold_time_ms_max"? (default 4000)}`. The node sends its
//! address, `http.public_url` and a new token; from Rafiki's answer the peer account is written
//! (its address, connector URL, the token Rafiki will send, hashed, and the one it accepts): 201
//! with it, or 200 when the account existed (peering again rotates both tokens; its other keys
//! are kept). 409 without `http.public_url` or when the id is another kind of account; 502 with
//! Rafiki's refusal or when it cannot be reached.

use super::endpoints::{put_account, view};
use super::{json_body, AdminError, Gate};
use crate::account::Relation;
use crate::http::listener::{respond, CONTENT_TYPE_JSON};
use crate::rafiki::peering::{self, Asset, PeeringRequest, RAFIKI_HOLD_TIME_MS};
use crate::rules::AccountInput;
use crate::store::Store;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use tracing::info;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoPeering {
    id: String,
    url: String,
    asset_code: String,
    asset_scale: u8,
    max_packet_amount: Option<u64>,
    hold_time_ms_max: Option<u64>,
}

pub(super) async fn auto_peer<S: Store>(
    gate: &Gate<S>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, AdminError> {
    let body = json_body(gate, req).await?;
    let input: AutoPeering = serde_json::from_slice(&body)
        .map_err(|e| AdminError::BadRequest(format!("not an auto-peering request: {e}")))?;
    let node = &gate.node;
    let Some(public_url) = node.public_url.clone() else {
        return Err(AdminError::Conflict(
            "set http.public_url: Rafiki must be told where to send packets".into(),
        ));
    };
    let _write = gate.writes.lock().await;
    let existing = node.accounts.load().get(input.id.as_str()).cloned();
    if let Some(existing) = &existing {
        if existing.relation != Relation::Peer {
            return Err(AdminError::Conflict(format!("account {:?} exists and is not a peer", input.id)));
        }
    }
    let token = peering::new_token();
    let request = PeeringRequest {
        static_ilp_address: node.address.to_string(),
        ilp_connector_url: public_url,
        asset: Asset { code: input.asset_code.clone(), scale: input.asset_scale },
        http_token: token.clone(),
        max_packet_amount: input.max_packet_amount,
        name: node.address.to_string(),
    };
    let answer = peering::peer_with(node.client.connector(), &input.url, &request)
        .await
        .map_err(|e| AdminError::BadGateway(e.to_string()))?;
    // The account as it was (its limits and settlement keys kept), with what the peering says.
    let mut record = match &existing {
        Some(a) => serde_json::to_value(a.to_record()).expect("a record serializes"),
        None => serde_json::json!({ "id": input.id, "relation": "peer" }),
    };
    let fields = record.as_object_mut().expect("a record is an object");
    fields.remove("incoming_token_sha256");
    fields.insert("asset_code".into(), input.asset_code.clone().into());
    fields.insert("asset_scale".into(), input.asset_scale.into());
    fields.insert("ilp_address".into(), answer.static_ilp_address.clone().into());
    fields.insert("incoming_token".into(), answer.http_token.clone().into());
    fields.insert("outgoing_url".into(), answer.ilp_connector_url.clone().into());
    fields.insert("outgoing_token".into(), token.into());
    if let Some(max) = input.max_packet_amount {
        fields.insert("max_packet_amount".into(), max.to_string().into());
    }
    let hold = input
        .hold_time_ms_max
        .or(existing.as_ref().and_then(|a| a.hold_time_max.map(|h| h.as_millis() as u64)));
    fields.insert("hold_time_ms_max".into(), hold.unwrap_or(RAFIKI_HOLD_TIME_MS).into());
    let input_account = AccountInput::from_json(record.to_string().as_bytes())
        .map_err(|problems| AdminError::Invalid { what: "account", problems })?;
    let account = put_account(gate, input_account).await?;
    info!(account = %account.id, rafiki = %answer.static_ilp_address, url = %input.url, name = ?answer.name, "auto-peered with a Rafiki; tokens rotated");
    let status = if existing.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    let mut body = view(&account);
    body["rafiki_name"] = answer.name.into();
    Ok(respond(status, CONTENT_TYPE_JSON, body.to_string()))
}
