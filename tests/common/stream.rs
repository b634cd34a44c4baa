//! A STREAM sender's side for the end-to-end tests of the node's own receiver: SPSP queries,
//! STREAM Prepares built with the crate's `stream` module, and their replies read back.

use super::{client, TestNode};
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use std::time::{Duration, SystemTime};
use thitsax::packet::{IlpAddress, Prepare};
use thitsax::store::Store;
use thitsax::stream::{Frame, PacketType, SharedSecret, StreamKeys, StreamPacket};

/// What an SPSP query answered.
pub struct Spsp {
    pub destination: String,
    pub keys: StreamKeys,
}

pub async fn spsp_get<S: Store>(
    node: &TestNode<S>,
    path: &str,
    accept: &str,
) -> (StatusCode, String, String) {
    let addr = node.spsp_addr.expect("the SPSP listener is bound for a local account");
    let req =
        Request::get(format!("http://{addr}{path}")).header("accept", accept).body(Full::default()).unwrap();
    let response = client().request(req).await.expect("SPSP listener reachable");
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, content_type, body)
}

pub async fn query<S: Store>(node: &TestNode<S>, path: &str) -> Spsp {
    let (status, content_type, body) = spsp_get(node, path, "application/spsp4+json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "application/spsp4+json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["receipts_enabled"], false);
    let secret =
        base64::engine::general_purpose::STANDARD.decode(json["shared_secret"].as_str().unwrap()).unwrap();
    let secret = SharedSecret::from_bytes(secret.try_into().expect("32 bytes"));
    Spsp {
        destination: json["destination_account"].as_str().unwrap().to_string(),
        keys: StreamKeys::new(&secret),
    }
}

/// A STREAM Prepare for `amount` on stream 1, fulfillable unless `probe`.
pub fn stream_prepare(to: &Spsp, amount: u64, sequence: u64, probe: bool) -> Prepare {
    let packet = StreamPacket {
        packet_type: PacketType::Prepare,
        sequence,
        prepare_amount: 0,
        frames: vec![Frame::StreamMoney { stream_id: 1, shares: 1 }],
    };
    let data = to.keys.encrypt(&packet.encode()).unwrap();
    let condition = if probe { [7u8; 32] } else { to.keys.condition(&data) };
    let destination = IlpAddress::parse(&to.destination).unwrap();
    Prepare::build(&destination, amount, SystemTime::now() + Duration::from_secs(30), &condition, &data)
}

/// The STREAM reply in a Fulfill's or F99 Reject's data.
pub fn reply(to: &Spsp, data: &[u8]) -> StreamPacket {
    StreamPacket::decode(&to.keys.decrypt(data).expect("the reply decrypts")).expect("the reply decodes")
}
