//! The STREAM sender (`thitsax::stream::sender`) end to end, against real software: it posts
//! ILP-over-HTTP to a ThitsaX node as a child account, and the money reaches a receiver of the
//! JS reference (`ilp-protocol-stream` 2.7.1, `tests/interop/receiver.js`), through a second
//! ThitsaX node that converts USD to MXN, or through the JS reference connector `ilp-connector`.
//!
//! Needs Node >= 18 and the interop packages (see `tests/common/js.rs`: skipped without node
//! unless `CI` is set, as `tests/interop.rs` is).

mod common;

use base64::Engine;
use common::js::{node_or_skip, Script};
use common::{reserve_port, TempDir, TestNode};
use serde_json::Value;
use std::time::{Duration, SystemTime};
use thitsax::account::{Outgoing, Secret};
use thitsax::http::client::{ClientLimits, HttpClient, SendError};
use thitsax::http::tls::{TlsConfig, TlsRules};
use thitsax::packet::{ErrorCode, IlpAddress, Prepare, Reject, Response};
use thitsax::stream::sender::{
    pay, Amount, AssetDetails, Outcome, Payment, Progress, Rules, StopReason, Transport,
};
use thitsax::stream::SharedSecret;
use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);

/// The sender's side of ILP-over-HTTP: every Prepare posted to the node with the child's token,
/// a failure to get an answer mapped to the Reject a connector would make of it.
struct OverHttp {
    client: HttpClient,
    node: Outgoing,
    own_address: IlpAddress,
}

impl OverHttp {
    fn new(node_url: &str, token: &str, own_address: &str) -> OverHttp {
        OverHttp {
            client: HttpClient::new(&ClientLimits::default(), &TlsConfig::new(&TlsRules::default())),
            node: Outgoing::new(node_url.parse().unwrap(), &Secret::new(token.into())).unwrap(),
            own_address: IlpAddress::parse(own_address).unwrap(),
        }
    }
}

impl Transport for OverHttp {
    async fn send(&self, prepare: Prepare) -> Response {
        let left = prepare.expires_at().duration_since(SystemTime::now()).unwrap_or_default();
        match self.client.send(&self.node, prepare.into_bytes(), Instant::now() + left).await {
            Ok(response) => response,
            Err(SendError::TimedOut) => {
                self.reject(ErrorCode::R00_TRANSFER_TIMED_OUT, "no answer before expiry")
            }
            Err(e) => self.reject(ErrorCode::T01_PEER_UNREACHABLE, &e.to_string()),
        }
    }
}

impl OverHttp {
    fn reject(&self, code: ErrorCode, message: &str) -> Response {
        Response::Reject(Reject::build(code, &self.own_address, message, b""))
    }
}

/// receiver.js on `port`, a child of the connector at `upstream`, expecting `amount`; returns it
/// with its `ready` event (address, shared secret, ILDCP details).
async fn start_receiver(node: &std::path::Path, port: u16, upstream: &str, amount: u64) -> (Script, Value) {
    let args = [
        "--port",
        &port.to_string(),
        "--url",
        upstream,
        "--incoming-token",
        "connector-to-receiver",
        "--outgoing-token",
        "receiver-token",
        "--expect",
        &amount.to_string(),
        "--timeout-ms",
        "90000",
    ]
    .map(String::from);
    let mut receiver = Script::start(node, "receiver", "receiver.js", &args);
    let ready = receiver.event("ready", Duration::from_secs(30)).await;
    (receiver, ready)
}

fn payment_to(ready: &Value, amount: Amount, source_address: &str) -> Payment {
    let secret =
        base64::engine::general_purpose::STANDARD.decode(ready["sharedSecret"].as_str().unwrap()).unwrap();
    Payment {
        destination: IlpAddress::parse(ready["address"].as_str().unwrap()).unwrap(),
        shared_secret: SharedSecret::from_bytes(secret.try_into().unwrap()),
        source_asset: AssetDetails { code: "USD".into(), scale: 9 },
        source_address: Some(IlpAddress::parse(source_address).unwrap()),
        amount,
    }
}

/// Pays, recording what the hook was told; returns the outcome and the hook's last totals.
async fn pay_over(transport: &OverHttp, payment: &Payment) -> (Outcome, Progress) {
    let recorded = std::sync::Arc::new(std::sync::Mutex::new(Progress::default()));
    let hook = recorded.clone();
    let rules = Rules::new(Instant::now() + MINUTE);
    let outcome = pay(transport, payment, &rules, Progress::default(), move |paid| {
        *hook.lock().unwrap() = paid.total;
        async {}
    })
    .await
    .unwrap();
    eprintln!("outcome: {outcome:?}");
    let last = *recorded.lock().unwrap();
    (outcome, last)
}

/// sender (child of A, USD 9) → A → B (peer, USD 9; converts at 1 USD = 18.18 MXN) → receiver.js
/// (child of B, MXN 2). A caps the sender's packets at 2 USD and B its peer's at 1 USD: both F08.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_mxn_amount_is_delivered_from_usd_through_two_thitsax_nodes() {
    let Some(node) = node_or_skip("an_exact_mxn_amount_is_delivered_from_usd_through_two_thitsax_nodes")
    else {
        return;
    };
    let _dir = TempDir::new("stream-sender-two-nodes");
    let receiver_port = reserve_port();
    let node_b = TestNode::start(&format!(
        r#"
[node]
ilp_address = "test.b"
log_level = "warn"
[rates.prices]
USD = "1"
MXN = "0.055"
[[accounts]]
id = "a"
relation = "peer"
asset_code = "USD"
asset_scale = 9
ilp_address = "test.a"
incoming_token = "a-to-b"
outgoing_url = "http://127.0.0.1:9/"
outgoing_token = "b-to-a"
max_packet_amount = 1000000000
[[accounts]]
id = "receiver"
relation = "child"
asset_code = "MXN"
asset_scale = 2
incoming_token = "receiver-token"
outgoing_url = "http://127.0.0.1:{receiver_port}/"
outgoing_token = "connector-to-receiver"
"#
    ))
    .await;
    let node_a = TestNode::start(&format!(
        r#"
[node]
ilp_address = "test.a"
log_level = "warn"
[[accounts]]
id = "sender"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "sender-token"
max_packet_amount = 2000000000
min_balance = -100000000000
[[accounts]]
id = "b"
relation = "peer"
asset_code = "USD"
asset_scale = 9
ilp_address = "test.b"
incoming_token = "b-to-a"
outgoing_url = "{}"
outgoing_token = "a-to-b"
"#,
        node_b.url()
    ))
    .await;

    // 123.45 MXN.
    let amount = 12_345;
    let (mut receiver, ready) = start_receiver(&node, receiver_port, &node_b.url(), amount).await;
    assert_eq!(ready["clientAddress"], "test.b.receiver", "{ready}");
    assert_eq!((ready["assetCode"].as_str(), ready["assetScale"].as_u64()), (Some("MXN"), Some(2)));

    let transport = OverHttp::new(&node_a.url(), "sender-token", "test.a.sender");
    let payment = payment_to(&ready, Amount::Delivered(amount), "test.a.sender");
    let (outcome, recorded) = pay_over(&transport, &payment).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert_eq!(outcome.delivered, amount);
    assert_eq!(recorded, Progress { sent: outcome.sent, delivered: amount }, "the hook saw the totals");
    assert_eq!(outcome.destination_asset, Some(AssetDetails { code: "MXN".into(), scale: 2 }));
    // Both limits answered F08 while probing; the tighter one (B's 1 USD) sized the packets.
    assert_eq!(outcome.max_packet_amount, Some(1_000_000_000), "{outcome:?}");
    assert!(outcome.rejects_by_code.get("F08").copied().unwrap_or(0) >= 2, "{outcome:?}");
    // 1 USD = 1818.18 cents: 123.45 MXN costs at least 6.7897 USD, and loses under a cent a packet.
    let packets = outcome.packets_fulfilled;
    assert!(outcome.sent >= 12_345 * 550_000 && outcome.sent < (12_345 + packets) * 550_000, "{outcome:?}");

    let received = receiver.event("received", Duration::from_secs(10)).await;
    assert_eq!(received["total"], amount.to_string(), "exactly, not more: {received}");
    let sent = i128::from(outcome.sent);
    assert_eq!(node_a.balance("sender").await, -sent);
    assert_eq!(node_a.balance("b").await, sent);
    assert_eq!(node_b.balance("a").await, -sent);
    assert_eq!(node_b.balance("receiver").await, i128::from(amount));
    node_a.stop().await;
    node_b.stop().await;
}

/// sender (child of A) → A → ilp-connector `test.jsc` (peer of A; 0.5 USD max per packet from
/// A) → receiver.js (child of the JS connector). Same asset throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_amount_is_delivered_through_thitsax_and_the_js_connector() {
    let Some(node) = node_or_skip("an_exact_amount_is_delivered_through_thitsax_and_the_js_connector") else {
        return;
    };
    let dir = TempDir::new("stream-sender-jsc");
    let (jsc_from_thitsax, jsc_from_receiver, receiver_port) =
        (reserve_port(), reserve_port(), reserve_port());
    let node_a = TestNode::start(&format!(
        r#"
[node]
ilp_address = "test.a"
log_level = "warn"
[[accounts]]
id = "sender"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "sender-token"
min_balance = -100000000000
[[accounts]]
id = "jsc"
relation = "peer"
asset_code = "USD"
asset_scale = 9
ilp_address = "test.jsc"
incoming_token = "jsc-to-a"
outgoing_url = "http://127.0.0.1:{jsc_from_thitsax}/"
outgoing_token = "a-to-jsc"
"#
    ))
    .await;
    let jsc_config = format!(
        r#"{{
  "ilpAddress": "test.jsc",
  "accounts": {{
    "thitsax": {{"relation": "peer", "assetCode": "USD", "assetScale": 9, "maxPacketAmount": "500000000",
      "http": {{"listenPort": {jsc_from_thitsax}, "url": "{a}",
               "incomingToken": "a-to-jsc", "outgoingToken": "jsc-to-a"}}}},
    "receiver": {{"relation": "child", "assetCode": "USD", "assetScale": 9,
      "http": {{"listenPort": {jsc_from_receiver}, "url": "http://127.0.0.1:{receiver_port}/",
               "incomingToken": "receiver-token", "outgoingToken": "connector-to-receiver"}}}}
  }}
}}"#,
        a = node_a.url()
    );
    let jsc_path = dir.join("ilp-connector.json");
    std::fs::write(&jsc_path, jsc_config).unwrap();
    let mut jsc = Script::start(
        &node,
        "ilp-connector",
        "connector.js",
        &["--config".into(), jsc_path.display().to_string()],
    );
    let jsc_ready = jsc.event("ready", Duration::from_secs(30)).await;
    assert_eq!(jsc_ready["address"], "test.jsc", "{jsc_ready}");

    let amount = 3_333_333_333;
    let upstream = format!("http://127.0.0.1:{jsc_from_receiver}/");
    let (mut receiver, ready) = start_receiver(&node, receiver_port, &upstream, amount).await;
    assert_eq!(ready["clientAddress"], "test.jsc.receiver", "{ready}");

    let transport = OverHttp::new(&node_a.url(), "sender-token", "test.a.sender");
    let payment = payment_to(&ready, Amount::Delivered(amount), "test.a.sender");
    let (outcome, _) = pay_over(&transport, &payment).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert_eq!((outcome.sent, outcome.delivered), (amount, amount), "one to one: {outcome:?}");
    assert_eq!(outcome.max_packet_amount, Some(500_000_000), "the JS connector's F08: {outcome:?}");
    assert!(outcome.packets_fulfilled >= 7, "{outcome:?}");

    let received = receiver.event("received", Duration::from_secs(10)).await;
    assert_eq!(received["total"], amount.to_string(), "{received}");
    let sent = i128::from(outcome.sent);
    assert_eq!(node_a.balance("sender").await, -sent);
    assert_eq!(node_a.balance("jsc").await, sent);
    node_a.stop().await;
}
