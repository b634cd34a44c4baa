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
use crate::admin::incoming::rfc3339;
use crate::http::listener::{respond, CONTENT_TYPE_JSON};
use crate::rafiki::peering::{self, Asset, PeeringRecord, PeeringRequest, RAFIKI_HOLD_TIME_MS};
use crate::rules::AccountInput;
use crate::store::Store;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use tracing::info;

/// What a peering, either way, says of the Rafiki peer's account.
struct Peered<'a> {
    id: &'a str,
    asset: Asset,
    rafiki_address: &'a str,
    rafiki_url: &'a str,
    /// The token Rafiki sends (the account's incoming token; only its hash is kept).
    rafiki_token: &'a str,
    /// The token the node sends (the account's outgoing token).
    node_token: &'a str,
    max_packet_amount: Option<u64>,
    hold_time_ms_max: u64,
}

impl Peered<'_> {
    /// The account as it was, its limits and settlement keys kept, with what the peering says.
    fn record(&self, existing: Option<&crate::account::Account>) -> serde_json::Value {
        let mut record = match existing {
            Some(a) => serde_json::to_value(a.to_record()).expect("a record serializes"),
            None => serde_json::json!({ "id": self.id, "relation": "peer" }),
        };
        let fields = record.as_object_mut().expect("a record is an object");
        fields.remove("incoming_token_sha256");
        fields.insert("asset_code".into(), self.asset.code.clone().into());
        fields.insert("asset_scale".into(), self.asset.scale.into());
        fields.insert("ilp_address".into(), self.rafiki_address.into());
        fields.insert("incoming_token".into(), self.rafiki_token.into());
        fields.insert("outgoing_url".into(), self.rafiki_url.into());
        fields.insert("outgoing_token".into(), self.node_token.into());
        if let Some(max) = self.max_packet_amount {
            fields.insert("max_packet_amount".into(), max.to_string().into());
        }
        fields.insert("hold_time_ms_max".into(), self.hold_time_ms_max.into());
        record
    }
}

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
    let hold = input
        .hold_time_ms_max
        .or(existing.as_ref().and_then(|a| a.hold_time_max.map(|h| h.as_millis() as u64)));
    let peered = Peered {
        id: &input.id,
        asset: Asset { code: input.asset_code.clone(), scale: input.asset_scale },
        rafiki_address: &answer.static_ilp_address,
        rafiki_url: &answer.ilp_connector_url,
        rafiki_token: &answer.http_token,
        node_token: &token,
        max_packet_amount: input.max_packet_amount,
        hold_time_ms_max: hold.unwrap_or(RAFIKI_HOLD_TIME_MS),
    };
    let record = peered.record(existing.as_deref());
    let input_account = AccountInput::from_json(record.to_string().as_bytes())
        .map_err(|problems| AdminError::Invalid { what: "account", problems })?;
    let account = put_account(gate, input_account).await?;
    info!(account = %account.id, rafiki = %answer.static_ilp_address, url = %input.url, name = ?answer.name, "auto-peered with a Rafiki; tokens rotated");
    node.peerings.record(PeeringRecord {
        at: rfc3339(std::time::SystemTime::now()),
        direction: "outgoing",
        account: account.id.to_string(),
        rafiki_address: answer.static_ilp_address.clone(),
        rafiki_url: input.url.clone(),
        rafiki_name: answer.name.clone(),
    });
    let status = if existing.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    let mut body = view(&account);
    body["rafiki_name"] = answer.name.into();
    Ok(respond(status, CONTENT_TYPE_JSON, body.to_string()))
}

/// The endpoint a Rafiki's `createOrUpdatePeerByUrl` posts to (`rafiki.peering_listen`), served
/// until the node drains. `POST /` (or `POST /<peering_secret>`) with Rafiki's request
/// `{ilpConnectorUrl, staticIlpAddress, asset: {code, scale}, httpToken, maxPacketAmount?,
/// name?}`; the answer `{ilpConnectorUrl, staticIlpAddress, httpToken, name}` (the token is the
/// one the node will send). The peer account is `rafiki-<name>`, written as `POST /peers/auto`
/// writes it. Refusals are Rafiki's own error shape, `{"error": {"code", "message", "type"}}`.
pub(super) async fn serve<S: Store>(
    listener: tokio::net::TcpListener,
    gate: std::sync::Arc<Gate<S>>,
    rules: crate::rafiki::peering::PeeringServer,
    shutdown: &crate::shutdown::ShutdownSignal,
) {
    use crate::http::listener::{accept_until_draining, drained, Accepting};
    let limits = gate.limits.clone();
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.connections_max));
    let accepting = Accepting {
        name: "rafiki peering",
        connections_max: limits.connections_max,
        header_read_timeout: limits.header_read_timeout,
        nodelay: false,
        keep_alive: false,
    };
    let rules = std::sync::Arc::new(rules);
    let window = std::sync::Arc::new(std::sync::Mutex::new((tokio::time::Instant::now(), 0u32)));
    let handle = move |req| {
        let (gate, rules, window) = (gate.clone(), rules.clone(), window.clone());
        async move {
            match peer_request(&gate, &rules, &window, req).await {
                Ok(response) => response,
                Err((status, kind, message)) => {
                    tracing::info!(%status, kind, %message, "Rafiki auto-peering refused");
                    let body = serde_json::json!({"error": {"code": status.as_u16(), "message": message, "type": kind}});
                    respond(status, CONTENT_TYPE_JSON, body.to_string())
                }
            }
        }
    };
    let graceful = accept_until_draining(listener, accepting, shutdown, handle).await;
    let _ = tokio::time::timeout(limits.shutdown_grace, drained(graceful, in_flight, limits.connections_max))
        .await;
}

type Refused = (StatusCode, &'static str, String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RafikiRequest {
    ilp_connector_url: String,
    static_ilp_address: String,
    asset: Asset,
    http_token: String,
    #[serde(default)]
    max_packet_amount: Option<u64>,
    #[serde(default)]
    name: Option<String>,
}

async fn peer_request<S: Store>(
    gate: &Gate<S>,
    rules: &crate::rafiki::peering::PeeringServer,
    window: &std::sync::Mutex<(tokio::time::Instant, u32)>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Refused> {
    let not_found = || (StatusCode::NOT_FOUND, "NotFound", "not found".to_string());
    if req.method() != hyper::Method::POST {
        return Err(not_found());
    }
    // The secret path, compared as hashes in constant time.
    let path = req.uri().path().trim_start_matches('/').to_string();
    match &rules.secret_sha256 {
        Some(secret) => {
            let given = crate::account::hash_token(path.as_bytes());
            if !crate::account::constant_time_eq(&given, secret) {
                return Err(not_found());
            }
        }
        None if !path.is_empty() => return Err(not_found()),
        None => {}
    }
    {
        let mut w = window.lock().unwrap_or_else(|e| e.into_inner());
        if w.0.elapsed() >= std::time::Duration::from_secs(60) {
            *w = (tokio::time::Instant::now(), 0);
        }
        if w.1 >= rules.requests_per_minute_max {
            return Err((
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "too many peering requests; retry later".into(),
            ));
        }
        w.1 += 1;
    }
    let body = crate::http::listener::read_body(
        req,
        peering::PEERING_ANSWER_BYTES_MAX,
        gate.limits.body_read_timeout,
    )
    .await
    .map_err(|e| (StatusCode::BAD_REQUEST, "InvalidPeeringRequest", e.to_string()))?;
    let request: RafikiRequest = serde_json::from_slice(&body).map_err(|e| {
        (StatusCode::BAD_REQUEST, "InvalidPeeringRequest", format!("not a peering request: {e}"))
    })?;
    let allowed = request.ilp_connector_url.trim_end_matches('/');
    if !rules.allowed_urls.is_empty() && !rules.allowed_urls.iter().any(|u| u == allowed) {
        return Err((
            StatusCode::FORBIDDEN,
            "InvalidPeeringRequest",
            format!("{allowed} may not peer with this node"),
        ));
    }
    let node = &gate.node;
    let public_url = node.public_url.clone().ok_or_else(|| {
        (StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "the node has no http.public_url".to_string())
    })?;
    let name = request.name.clone().unwrap_or_else(|| request.static_ilp_address.clone());
    let segment: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '~' | '-') { c } else { '-' })
        .take(48)
        .collect();
    let id = format!("rafiki-{segment}");
    let _write = gate.writes.lock().await;
    let existing = node.accounts.load().get(id.as_str()).cloned();
    if let Some(existing) = &existing {
        let same = existing.relation == Relation::Peer
            && existing.ilp_address.as_ref().map(|a| a.to_string()).as_deref()
                == Some(request.static_ilp_address.as_str());
        if !same {
            return Err((
                StatusCode::BAD_REQUEST,
                "InvalidPeeringRequest",
                format!("account {id} is another peer"),
            ));
        }
    }
    let token = peering::new_token();
    let hold = existing.as_ref().and_then(|a| a.hold_time_max.map(|h| h.as_millis() as u64));
    let peered = Peered {
        id: &id,
        asset: request.asset.clone(),
        rafiki_address: &request.static_ilp_address,
        rafiki_url: &request.ilp_connector_url,
        rafiki_token: &request.http_token,
        node_token: &token,
        max_packet_amount: request.max_packet_amount,
        hold_time_ms_max: hold.unwrap_or(RAFIKI_HOLD_TIME_MS),
    };
    let record = peered.record(existing.as_deref());
    let input = AccountInput::from_json(record.to_string().as_bytes())
        .map_err(|problems| (StatusCode::BAD_REQUEST, "InvalidPeerIlpConfiguration", problems.to_string()))?;
    let account = put_account(gate, input).await.map_err(|e| match e {
        AdminError::Invalid { problems, .. } => {
            (StatusCode::BAD_REQUEST, "InvalidPeerIlpConfiguration", problems.to_string())
        }
        e => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable", e.to_string()),
    })?;
    info!(account = %account.id, rafiki = %request.static_ilp_address, url = %request.ilp_connector_url, "a Rafiki auto-peered with the node; tokens rotated");
    node.peerings.record(PeeringRecord {
        at: rfc3339(std::time::SystemTime::now()),
        direction: "incoming",
        account: account.id.to_string(),
        rafiki_address: request.static_ilp_address.clone(),
        rafiki_url: request.ilp_connector_url.clone(),
        rafiki_name: request.name.clone(),
    });
    let answer = serde_json::json!({
        "ilpConnectorUrl": public_url,
        "staticIlpAddress": node.address.to_string(),
        "httpToken": token,
        "name": node.address.to_string(),
    });
    Ok(respond(StatusCode::OK, CONTENT_TYPE_JSON, answer.to_string()))
}

/// `GET /peers/auto`: this instance's latest auto-peerings, both ways, oldest first.
pub(super) fn list<S>(gate: &Gate<S>) -> Result<Response<Full<Bytes>>, AdminError> {
    let body = serde_json::to_string(&gate.node.peerings.list()).expect("records serialize");
    Ok(respond(StatusCode::OK, CONTENT_TYPE_JSON, body))
}
