//! Auto-peering with a Rafiki (its `AUTO_PEERING_SERVER_PORT`, `POST /`, no authentication): the
//! node sends its address, its ILP-over-HTTP URL, the asset, and the token Rafiki is to accept
//! from it; Rafiki answers with its own address, its connector URL and the token it will send.
//! Every accepted request rotates both tokens (Rafiki's notes: even an identical repeat), so the
//! account is written from each answer, and the token sent is a new random one each time.

use crate::http::client::{one_shot, GetError, Posted};
use crate::http::tls::Connector;
use crate::packet::IlpAddress;
use bytes::Bytes;
use hyper::Uri;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One auto-peering call, as a whole.
pub const PEERING_TIMEOUT: Duration = Duration::from_secs(10);
/// Larger answers are refused.
pub const PEERING_ANSWER_BYTES_MAX: usize = 16 * 1024;
/// Hold time of a Rafiki peer unless the operator gives another: Rafiki books a Fulfill only
/// within 5 s of its Prepare.
pub const RAFIKI_HOLD_TIME_MS: u64 = 4_000;

/// The node's own auto-peering endpoint, as `[rafiki]` configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeeringServer {
    pub listen: std::net::SocketAddr,
    /// The endpoint is `POST /<secret>`: its SHA-256.
    pub secret_sha256: Option<[u8; 32]>,
    /// The Rafiki connector URLs that may peer, without a trailing `/` (empty: any).
    pub allowed_urls: Vec<String>,
    pub requests_per_minute_max: u32,
}

/// What the node tells Rafiki.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeeringRequest {
    pub static_ilp_address: String,
    pub ilp_connector_url: String,
    pub asset: Asset,
    /// The token Rafiki is to accept from the node (the node's outgoing token).
    pub http_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_packet_amount: Option<u64>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    pub code: String,
    pub scale: u8,
}

/// What Rafiki answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeeringAnswer {
    /// Where the node sends Rafiki's packets.
    pub ilp_connector_url: String,
    /// Rafiki's address: routed to it.
    pub static_ilp_address: String,
    /// The token Rafiki will send (the node's incoming token for it).
    pub http_token: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// Why Rafiki did not peer.
#[derive(Debug, thiserror::Error)]
pub enum PeeringError {
    #[error("the auto-peering URL is not a URL: {0}")]
    Url(String),
    #[error("Rafiki could not be asked: {0}")]
    Unreachable(String),
    /// Rafiki refused, with its status and message (`UnknownAsset`, `InvalidPeeringRequest`...).
    #[error("Rafiki refused the peering (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("Rafiki's answer is not an auto-peering answer: {0}")]
    Malformed(String),
}

/// A fresh token for Rafiki to accept from the node: 256 random bits, as hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the OS random source works");
    hex::encode(bytes)
}

/// Asks the Rafiki at `url` to peer; its answer checked (an address, an http(s) URL, a token).
pub async fn peer_with(
    connector: &Connector,
    url: &str,
    request: &PeeringRequest,
) -> Result<PeeringAnswer, PeeringError> {
    let uri: Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| PeeringError::Url(e.to_string()))?;
    let body = Bytes::from(serde_json::to_vec(request).expect("a peering request serializes"));
    let post = Posted { content_type: "application/json", body, headers: &[] };
    let fetched =
        one_shot(connector, &uri, "application/json", Some(post), PEERING_ANSWER_BYTES_MAX, PEERING_TIMEOUT)
            .await
            .map_err(|e| match e {
                GetError::Url(e) => PeeringError::Url(e.to_string()),
                e => PeeringError::Unreachable(e.to_string()),
            })?;
    if !fetched.status.is_success() {
        let text = String::from_utf8_lossy(&fetched.body);
        // Rafiki's refusals are `{"error": {"code", "message", "type"}}`; some are plain text.
        let message = serde_json::from_slice::<serde_json::Value>(&fetched.body)
            .ok()
            .and_then(|v| {
                let e = v.get("error")?;
                Some(format!(
                    "{} ({})",
                    e.get("message")?.as_str()?,
                    e.get("type").and_then(|t| t.as_str()).unwrap_or("?")
                ))
            })
            .unwrap_or_else(|| text.chars().take(200).collect());
        return Err(PeeringError::Refused { status: fetched.status.as_u16(), message });
    }
    let answer: PeeringAnswer =
        serde_json::from_slice(&fetched.body).map_err(|e| PeeringError::Malformed(e.to_string()))?;
    check(&answer)?;
    Ok(answer)
}

fn check(answer: &PeeringAnswer) -> Result<(), PeeringError> {
    IlpAddress::parse(&answer.static_ilp_address)
        .map_err(|e| PeeringError::Malformed(format!("staticIlpAddress: {e}")))?;
    let url: Uri = answer
        .ilp_connector_url
        .parse()
        .map_err(|_| PeeringError::Malformed("ilpConnectorUrl is not a URL".into()))?;
    if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
        return Err(PeeringError::Malformed("ilpConnectorUrl must be an http(s) URL".into()));
    }
    if answer.http_token.is_empty()
        || answer.http_token.len() > 512
        || !answer.http_token.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(PeeringError::Malformed("httpToken must be 1 to 512 printable characters".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(address: &str, url: &str, token: &str) -> PeeringAnswer {
        PeeringAnswer {
            ilp_connector_url: url.into(),
            static_ilp_address: address.into(),
            http_token: token.into(),
            name: None,
        }
    }

    #[test]
    fn answers_are_checked_before_an_account_is_made_of_them() {
        assert!(check(&answer("test.rafiki", "http://rafiki:3002/", "t")).is_ok());
        assert!(check(&answer("not an address", "http://rafiki:3002/", "t")).is_err());
        assert!(check(&answer("test.rafiki", "ftp://rafiki/", "t")).is_err());
        assert!(check(&answer("test.rafiki", "http://rafiki/", "")).is_err());
        assert!(check(&answer("test.rafiki", "http://rafiki/", "a b")).is_err());
        assert_ne!(new_token(), new_token());
        assert_eq!(new_token().len(), 64);
    }

    #[test]
    fn the_request_is_what_rafiki_reads() {
        let request = PeeringRequest {
            static_ilp_address: "test.thitsax".into(),
            ilp_connector_url: "https://thitsax.example/ilp".into(),
            asset: Asset { code: "USD".into(), scale: 2 },
            http_token: "tok".into(),
            max_packet_amount: None,
            name: "ThitsaX".into(),
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"staticIlpAddress": "test.thitsax", "ilpConnectorUrl": "https://thitsax.example/ilp",
                "asset": {"code": "USD", "scale": 2}, "httpToken": "tok", "name": "ThitsaX"})
        );
    }
}

/// One auto-peering, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeeringRecord {
    /// RFC 3339.
    pub at: String,
    /// `outgoing` (the node asked, `POST /peers/auto`) or `incoming` (a Rafiki asked).
    pub direction: &'static str,
    pub account: String,
    pub rafiki_address: String,
    pub rafiki_url: String,
    pub rafiki_name: Option<String>,
}

/// The latest auto-peerings of this instance, at most
/// [`RAFIKI_PEERINGS_LISTED_MAX`](crate::limits::RAFIKI_PEERINGS_LISTED_MAX), newest last.
#[derive(Debug, Default)]
pub struct PeeringLog {
    entries: std::sync::Mutex<std::collections::VecDeque<PeeringRecord>>,
}

impl PeeringLog {
    pub fn record(&self, record: PeeringRecord) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= crate::limits::RAFIKI_PEERINGS_LISTED_MAX {
            entries.pop_front();
        }
        entries.push_back(record);
    }

    pub fn list(&self) -> Vec<PeeringRecord> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}
