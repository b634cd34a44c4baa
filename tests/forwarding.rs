//! End-to-end: real nodes on loopback ports, real ILP-over-HTTP, balances checked after each case.

mod common;

use bytes::Bytes;
use common::*;
use hyper::StatusCode;
use std::time::{Duration, Instant, SystemTime};
use thitsax::ildcp;
use thitsax::packet::{amount_too_large_data, ErrorCode, Prepare, Reject};

const SECOND: Duration = Duration::from_secs(1);
const TEN_SECONDS: Duration = Duration::from_secs(10);

/// One node `test.n` with children whose outgoing URL is `downstream`.
fn single_node(downstream: &str, extra: &str) -> String {
    format!(
        r#"
[node]
ilp_address = "test.n"
log_level = "warn"
[forwarding]
expiry_margin_ms = 1000
hold_time_ms_max = 20000
min_outgoing_window_ms = 500
{extra}
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "alice-token"
outgoing_url = "{downstream}"
outgoing_token = "to-alice"
max_packet_amount = 1000000000
min_balance = -5000000000

[[accounts]]
id = "carol"
relation = "child"
asset_code = "USD"
asset_scale = 2
incoming_token = "carol-token"
outgoing_url = "{downstream}"
outgoing_token = "to-carol"

[[accounts]]
id = "dave"
relation = "child"
asset_code = "USD"
asset_scale = 18
outgoing_url = "{downstream}"
outgoing_token = "to-dave"

[[accounts]]
id = "whale"
relation = "child"
asset_code = "USD"
asset_scale = 0
incoming_token = "whale-token"

[[accounts]]
id = "silent"
relation = "child"
asset_code = "USD"
asset_scale = 9

[[accounts]]
id = "partner"
relation = "peer"
asset_code = "USD"
asset_scale = 9
ilp_address = "test.partner"
incoming_token = "partner-token"
outgoing_url = "{downstream}"
outgoing_token = "to-partner"
"#
    )
}

async fn balances(node: &TestNode) -> Vec<(String, i128)> {
    let mut out = Vec::new();
    for id in ["alice", "carol", "dave", "whale", "silent", "partner"] {
        out.push((id.to_string(), node.balance(id).await));
    }
    out
}

async fn assert_all_zero(node: &TestNode) {
    for (id, balance) in balances(node).await {
        assert_eq!(balance, 0, "balance of {id} changed");
    }
}

/// Sends one Prepare from `token`'s account to a fresh node (children forwarding to
/// `downstream`), checks the node answered a Reject with `code` and that no balance moved.
async fn expect_refusal(downstream: &str, token: &str, prepare: &Prepare, code: ErrorCode) -> Reject {
    let node = TestNode::start(&single_node(downstream, "")).await;
    let reject = send(&client(), &node.url(), token, prepare).await.reject();
    assert_code(&reject, code);
    assert_all_zero(&node).await;
    reject
}

/// A URL nobody listens on.
fn closed_url() -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/", closed.local_addr().unwrap())
}

const NOWHERE: &str = "http://127.0.0.1:9/";

#[tokio::test]
async fn child_pays_child_across_two_nodes_with_currency_conversion() {
    let bob_receiver = Downstream::always(Behaviour::Fulfill).await;
    let alice_side = Downstream::always(Behaviour::Reject).await;
    // Node B first, so A can point at it; B points back at A by a port reserved up front.
    let a_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a_addr = a_listener.local_addr().unwrap();
    drop(a_listener);
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
asset_scale = 6
ilp_address = "test.a"
incoming_token = "a-to-b"
outgoing_url = "http://{a_addr}/"
outgoing_token = "b-to-a"
min_balance = -1000000000
[[accounts]]
id = "bob"
relation = "child"
asset_code = "MXN"
asset_scale = 2
incoming_token = "bob-token"
outgoing_url = "{}"
outgoing_token = "to-bob"
"#,
        bob_receiver.url()
    ))
    .await;
    let node_a = TestNode::start(&format!(
        r#"
[node]
ilp_address = "test.a"
log_level = "warn"
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "alice-token"
outgoing_url = "{}"
outgoing_token = "to-alice"
min_balance = -10000000000
[[accounts]]
id = "b"
relation = "peer"
asset_code = "USD"
asset_scale = 6
ilp_address = "test.b"
incoming_token = "b-to-a"
outgoing_url = "{}"
outgoing_token = "a-to-b"
"#,
        alice_side.url(),
        node_b.url()
    ))
    .await;
    let client = client();

    // Alice learns her address from node A.
    let info = send(&client, &node_a.url(), "alice-token", &ildcp::request()).await.fulfill();
    let info = ildcp::parse_response(info.data()).unwrap();
    assert_eq!(info.address, "test.a.alice");

    // 1 USD at scale 9 → 1_000_000 at scale 6 → 18.18 MXN = 1818 cents (rounded down).
    let fulfill = send(
        &client,
        &node_a.url(),
        "alice-token",
        &prepare("test.b.bob.wallet", 1_000_000_000, TEN_SECONDS),
    )
    .await
    .fulfill();
    assert_eq!(fulfill.data(), b"fulfilled");
    let got = bob_receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].amount, 1818);
    assert_eq!(got[0].destination, "test.b.bob.wallet");
    assert_eq!(node_a.balance("alice").await, -1_000_000_000);
    assert_eq!(node_a.balance("b").await, 1_000_000);
    assert_eq!(node_b.balance("a").await, -1_000_000);
    assert_eq!(node_b.balance("bob").await, 1818);
    // Each hop took its margin off the expiry.
    let left = got[0].expires_at.duration_since(SystemTime::now()).unwrap();
    assert!(left < Duration::from_secs(8) + Duration::from_millis(200), "{left:?}");

    // A reject from bob's side comes back unchanged through both nodes and undoes both debits.
    drop(bob_receiver);
    let answer =
        send(&client, &node_a.url(), "alice-token", &prepare("test.b.bob.wallet", 500_000_000, TEN_SECONDS))
            .await;
    let reject = answer.reject();
    assert_code(&reject, ErrorCode::T01_PEER_UNREACHABLE);
    assert_eq!(reject.triggered_by(), "test.b", "node B's own reject is relayed unchanged by A");
    assert_eq!(node_a.balance("alice").await, -1_000_000_000);
    assert_eq!(node_a.balance("b").await, 1_000_000);
    assert_eq!(node_b.balance("a").await, -1_000_000);
    assert_eq!(node_b.balance("bob").await, 1818);
    node_a.stop().await;
    node_b.stop().await;
}

#[tokio::test]
async fn ildcp_tells_a_child_its_address_asset_and_scale() {
    let node = TestNode::start(&single_node(NOWHERE, "")).await;
    let client = client();
    let answer = send(&client, &node.url(), "carol-token", &ildcp::request()).await;
    let fulfill = answer.fulfill();
    assert_eq!(fulfill.fulfillment(), &ildcp::FULFILLMENT);
    let info = ildcp::parse_response(fulfill.data()).unwrap();
    assert_eq!(
        info,
        ildcp::IldcpInfo { address: "test.n.carol".into(), asset_scale: 2, asset_code: "USD".into() }
    );
    // Peers do not get ILDCP from us, and other peer.* protocols are not served.
    assert_code(
        &send(&client, &node.url(), "partner-token", &ildcp::request()).await.reject(),
        ErrorCode::F02_UNREACHABLE,
    );
    let route_control = prepare("peer.route.control", 0, TEN_SECONDS);
    assert_code(
        &send(&client, &node.url(), "carol-token", &route_control).await.reject(),
        ErrorCode::F02_UNREACHABLE,
    );
    // Peer protocols move no money: one carrying an amount is refused, not fulfilled.
    let paid_config = prepare("peer.config", 5, TEN_SECONDS);
    assert_code(
        &send(&client, &node.url(), "carol-token", &paid_config).await.reject(),
        ErrorCode::F00_BAD_REQUEST,
    );
    assert_all_zero(&node).await;
}

#[tokio::test]
async fn fulfilled_packet_debits_source_and_credits_destination_with_scale_change() {
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let node = TestNode::start(&single_node(&downstream.url(), "")).await;
    let client = client();
    // Scale 9 → scale 2: 123_456_789 → 12 (rounded down, in the node's favour).
    send(&client, &node.url(), "alice-token", &prepare("test.n.carol.x", 123_456_789, TEN_SECONDS))
        .await
        .fulfill();
    assert_eq!(node.balance("alice").await, -123_456_789);
    assert_eq!(node.balance("carol").await, 12);
    let got = downstream.received();
    assert_eq!(got[0].amount, 12);
    // Outgoing headers exactly as Rafiki expects them.
    assert_eq!(got[0].authorization, "Bearer to-carol");
    assert_eq!(got[0].content_type, "application/octet-stream");
    // The peer's own prefix routes to it too.
    send(&client, &node.url(), "alice-token", &prepare("test.partner.y", 5, TEN_SECONDS)).await.fulfill();
    assert_eq!(node.balance("partner").await, 5);
}

#[tokio::test]
async fn expired_prepare_is_r00() {
    let mut p = prepare("test.n.carol", 1_000_000_000, SECOND);
    p.set_amount_and_expiry(1_000_000_000, SystemTime::now() - SECOND);
    let reject = expect_refusal(NOWHERE, "alice-token", &p, ErrorCode::R00_TRANSFER_TIMED_OUT).await;
    assert_eq!(reject.triggered_by(), "test.n");
}

#[tokio::test]
async fn amount_above_max_packet_amount_is_f08_with_both_amounts() {
    let p = prepare("test.n.carol", 1_000_000_001, TEN_SECONDS);
    let reject = expect_refusal(NOWHERE, "alice-token", &p, ErrorCode::F08_AMOUNT_TOO_LARGE).await;
    assert_eq!(reject.data(), &amount_too_large_data(1_000_000_001, 1_000_000_000));
}

#[tokio::test]
async fn unroutable_destinations_are_f02() {
    let node = TestNode::start(&single_node(NOWHERE, "")).await;
    let client = client();
    for destination in [
        "g.nowhere",       // no route at all
        "test.n.nobody",   // under our address but no such child
        "test.n.alice.x",  // back to the sender
        "test.n.silent",   // an account without an outgoing URL
        "test.partnerx.y", // not on a segment boundary of test.partner
    ] {
        let reject =
            send(&client, &node.url(), "alice-token", &prepare(destination, 10, TEN_SECONDS)).await.reject();
        assert_code(&reject, ErrorCode::F02_UNREACHABLE);
    }
    assert_all_zero(&node).await;
}

#[tokio::test]
async fn amount_rounding_to_zero_is_r01() {
    // 9_999_999 at scale 9 is less than one cent.
    let p = prepare("test.n.carol", 9_999_999, TEN_SECONDS);
    expect_refusal(NOWHERE, "alice-token", &p, ErrorCode::R01_INSUFFICIENT_SOURCE_AMOUNT).await;
}

#[tokio::test]
async fn conversion_overflow_is_f08_with_the_largest_convertible_amount() {
    // Scale 0 → scale 18 multiplies by 10^18: 100 units fit, u64::MAX / 2 does not.
    let p = prepare("test.n.dave", u64::MAX / 2, TEN_SECONDS);
    let reject = expect_refusal(NOWHERE, "whale-token", &p, ErrorCode::F08_AMOUNT_TOO_LARGE).await;
    assert_eq!(reject.data(), &amount_too_large_data(u64::MAX / 2, i64::MAX as u64 / 10u64.pow(18)));
}

#[tokio::test]
async fn amount_above_what_one_packet_may_move_is_f08() {
    // No max_packet_amount on this account, but one packet moves at most i64::MAX units.
    let p = prepare("test.n.carol", u64::MAX, TEN_SECONDS);
    let reject = expect_refusal(NOWHERE, "whale-token", &p, ErrorCode::F08_AMOUNT_TOO_LARGE).await;
    assert_eq!(reject.data(), &amount_too_large_data(u64::MAX, i64::MAX as u64));
}

#[tokio::test]
async fn too_little_time_left_is_r02() {
    // 1.3 s left, minus the 1 s margin, is under the 500 ms minimum window.
    let p = prepare("test.n.carol", 1_000_000_000, Duration::from_millis(1300));
    expect_refusal(NOWHERE, "alice-token", &p, ErrorCode::R02_INSUFFICIENT_TIMEOUT).await;
}

#[tokio::test]
async fn expiry_is_capped_by_the_maximum_hold_time() {
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let node = TestNode::start(&single_node(&downstream.url(), "")).await;
    send(
        &client(),
        &node.url(),
        "alice-token",
        &prepare("test.n.carol", 1_000_000_000, Duration::from_secs(600)),
    )
    .await
    .fulfill();
    let left = downstream.received()[0].expires_at.duration_since(SystemTime::now()).unwrap();
    assert!(left <= Duration::from_secs(20), "hold time not capped: {left:?}");
    assert!(left > Duration::from_secs(18), "{left:?}");
}

#[tokio::test]
async fn debit_past_min_balance_is_t04_and_changes_nothing() {
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let node = TestNode::start(&single_node(&downstream.url(), "")).await;
    let client = client();
    // min_balance is -5 USD: five packets of 1 USD pass, the sixth does not.
    for _ in 0..5 {
        send(&client, &node.url(), "alice-token", &prepare("test.n.carol", 1_000_000_000, TEN_SECONDS))
            .await
            .fulfill();
    }
    // One cent more would pass the limit.
    let reject = send(&client, &node.url(), "alice-token", &prepare("test.n.carol", 10_000_000, TEN_SECONDS))
        .await
        .reject();
    assert_code(&reject, ErrorCode::T04_INSUFFICIENT_LIQUIDITY);
    assert_eq!(node.balance("alice").await, -5_000_000_000);
    assert_eq!(node.balance("carol").await, 500);
    assert_eq!(downstream.received().len(), 5, "the refused packet was never sent");
}

#[tokio::test]
async fn wrong_fulfillment_is_f05_and_reverses_the_debit() {
    let downstream = Downstream::always(Behaviour::WrongFulfillment).await;
    let p = prepare("test.n.carol", 1_000_000_000, TEN_SECONDS);
    let reject = expect_refusal(&downstream.url(), "alice-token", &p, ErrorCode::F05_WRONG_CONDITION).await;
    assert_eq!(reject.triggered_by(), "test.n");
}

#[tokio::test]
async fn downstream_reject_is_relayed_unchanged_and_reverses_the_debit() {
    let downstream = Downstream::always(Behaviour::Reject).await;
    let node = TestNode::start(&single_node(&downstream.url(), "")).await;
    let answer =
        send(&client(), &node.url(), "alice-token", &prepare("test.n.carol", 1_000_000_000, TEN_SECONDS))
            .await;
    assert_eq!(&answer.body[..], &[14, 6, b'F', b'9', b'9', 0, 0, 0], "relayed byte for byte");
    assert_all_zero(&node).await;
}

#[tokio::test]
async fn unreachable_or_failing_next_hop_is_t01() {
    let p = prepare("test.n.carol", 1_000_000_000, TEN_SECONDS);
    expect_refusal(&closed_url(), "alice-token", &p, ErrorCode::T01_PEER_UNREACHABLE).await;
    let failing = Downstream::always(Behaviour::ServerError).await;
    expect_refusal(&failing.url(), "alice-token", &p, ErrorCode::T01_PEER_UNREACHABLE).await;
}

#[tokio::test]
async fn invalid_response_from_next_hop_is_f09() {
    let downstream = Downstream::always(Behaviour::Garbage).await;
    let p = prepare("test.n.carol", 1_000_000_000, TEN_SECONDS);
    expect_refusal(&downstream.url(), "alice-token", &p, ErrorCode::F09_INVALID_PEER_RESPONSE).await;
}

#[tokio::test]
async fn silent_next_hop_times_out_at_the_packet_expiry_with_r00() {
    let downstream = Downstream::always(Behaviour::Hang).await;
    let node = TestNode::start(&single_node(&downstream.url(), "")).await;
    let started = Instant::now();
    let reject = send(
        &client(),
        &node.url(),
        "alice-token",
        &prepare("test.n.carol", 1_000_000_000, Duration::from_millis(2500)),
    )
    .await
    .reject();
    let waited = started.elapsed();
    assert_code(&reject, ErrorCode::R00_TRANSFER_TIMED_OUT);
    // The outgoing expiry was 1.5 s away: the node gave up then, not at some fixed timeout.
    assert!(waited >= Duration::from_millis(1300) && waited < Duration::from_millis(2400), "{waited:?}");
    assert_all_zero(&node).await;
}

#[tokio::test]
async fn requests_past_the_in_flight_limit_get_t03() {
    let downstream = Downstream::always(Behaviour::Hang).await;
    let node = TestNode::start(&single_node(&downstream.url(), "[http]\nrequests_in_flight_max = 1\n")).await;
    let url = node.url();
    let first = tokio::spawn(async move {
        send(
            &client(),
            &url,
            "alice-token",
            &prepare("test.n.carol", 1_000_000_000, Duration::from_millis(2000)),
        )
        .await
        .reject()
    });
    while downstream.requests.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reject =
        send(&client(), &node.url(), "alice-token", &prepare("test.n.carol", 1_000_000_000, TEN_SECONDS))
            .await
            .reject();
    assert_code(&reject, ErrorCode::T03_CONNECTOR_BUSY);
    assert_code(&first.await.unwrap(), ErrorCode::R00_TRANSFER_TIMED_OUT);
    assert_all_zero(&node).await;
}

#[tokio::test]
async fn http_errors_are_4xx_with_a_reason_and_change_nothing() {
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let node = TestNode::start(&single_node(&downstream.url(), "")).await;
    let client = client();
    let url = node.url();
    let body = prepare("test.n.carol", 1_000_000_000, TEN_SECONDS).to_bytes();
    let octets = Some("application/octet-stream");

    let a = post_raw(&client, &url, None, octets, body.clone()).await;
    assert_eq!((a.status, a.text().as_str()), (StatusCode::UNAUTHORIZED, "missing bearer token"));
    let a = post_raw(&client, &url, Some("nope"), octets, body.clone()).await;
    assert_eq!((a.status, a.text().as_str()), (StatusCode::UNAUTHORIZED, "unknown token"));
    let a = post_raw(
        &client,
        &format!("http://{}/accounts/carol/ilp", node.addr),
        Some("alice-token"),
        octets,
        body.clone(),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "a token is valid only for its own account path");
    let a = post_raw(&client, &url, Some("alice-token"), Some("application/json"), body.clone()).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(a.text().contains("application/octet-stream"));
    let a = post_raw(&client, &url, Some("alice-token"), octets, Bytes::from(vec![12u8; 70_000])).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    let a = post_raw(&client, &url, Some("alice-token"), octets, Bytes::from_static(&[12, 0x80, 1])).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.text().starts_with("body is not a valid ILP Prepare"), "{}", a.text());
    let a =
        post_raw(&client, &format!("http://{}/other", node.addr), Some("alice-token"), octets, body.clone())
            .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let get = hyper::Request::get(&url).body(http_body_util::Full::new(Bytes::new())).unwrap();
    assert_eq!(client.request(get).await.unwrap().status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_all_zero(&node).await;
    assert!(downstream.received().is_empty());

    // The three accepted paths and content types all work.
    for (path, ct) in [
        ("/", "application/octet-stream"),
        ("/ilp", "application/ilp+octet-stream"),
        ("/accounts/alice/ilp", "application/octet-stream"),
    ] {
        let p = prepare("test.n.carol", 1_000_000_000, TEN_SECONDS).to_bytes();
        let a =
            post_raw(&client, &format!("http://{}{path}", node.addr), Some("alice-token"), Some(ct), p).await;
        a.fulfill();
    }
    assert_eq!(node.balance("carol").await, 300);
}

#[tokio::test]
async fn a_sender_hanging_up_mid_packet_still_gets_its_debit_reversed() {
    use tokio::io::AsyncWriteExt;
    let downstream = Downstream::always(Behaviour::Hang).await;
    let node = TestNode::start(&single_node(&downstream.url(), "")).await;
    // A raw HTTP request on a socket we close as soon as the packet has left the node.
    let body = prepare("test.n.carol", 1_000_000_000, Duration::from_millis(1800)).to_bytes();
    let mut socket = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nhost: x\r\nauthorization: Bearer alice-token\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body).await.unwrap();
    while downstream.requests.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(node.balance("alice").await, -1_000_000_000, "debited while in flight");
    drop(socket);
    // The outgoing packet expires 0.8 s after it left; then the debit must be reversed even
    // though nobody is left to hear the Reject.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_all_zero(&node).await;
}

#[tokio::test]
async fn unknown_destinations_go_to_the_parent_but_our_own_subtree_never_does() {
    let parent = Downstream::always(Behaviour::Fulfill).await;
    let extra = format!(
        "\n[[accounts]]\nid = \"upstream\"\nrelation = \"parent\"\nasset_code = \"USD\"\nasset_scale = 9\noutgoing_url = \"{}\"\noutgoing_token = \"to-parent\"\n",
        parent.url()
    );
    let node = TestNode::start(&format!("{}{extra}", single_node(NOWHERE, ""))).await;
    let client = client();
    send(&client, &node.url(), "alice-token", &prepare("g.somewhere.else", 1_000, TEN_SECONDS))
        .await
        .fulfill();
    assert_eq!(parent.received()[0].destination, "g.somewhere.else");
    assert_eq!(node.balance("upstream").await, 1_000);
    // Under our own address but no such child: refused here, not bounced to the parent.
    let reject = send(&client, &node.url(), "alice-token", &prepare("test.n.nobody", 1_000, TEN_SECONDS))
        .await
        .reject();
    assert_code(&reject, ErrorCode::F02_UNREACHABLE);
    assert_eq!(parent.received().len(), 1);
    assert_eq!(node.balance("alice").await, -1_000);
}

#[tokio::test]
async fn health_and_readiness_probes_answer_without_a_token() {
    let node = TestNode::start(&single_node(NOWHERE, "")).await;
    let client = client();
    for (path, body) in [("/health", "ok"), ("/ready", "ready")] {
        let req = hyper::Request::get(format!("http://{}{path}", node.addr))
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        let response = client.request(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let text = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        assert_eq!(&text[..], body.as_bytes());
    }
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408_and_holds_no_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let extra = "[http]\nbody_read_timeout_ms = 300\nrequests_in_flight_max = 1\n";
    let node = TestNode::start(&single_node(&downstream.url(), extra)).await;
    // Headers promising 100 bytes, then 10 bytes and silence.
    let mut slow = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let head = "POST / HTTP/1.1\r\nhost: x\r\nauthorization: Bearer alice-token\r\ncontent-type: application/octet-stream\r\ncontent-length: 100\r\n\r\n";
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&[12u8; 10]).await.unwrap();
    // While it trickles, the node's one packet slot is free for real packets.
    send(&client(), &node.url(), "alice-token", &prepare("test.n.carol", 1_000_000_000, TEN_SECONDS))
        .await
        .fulfill();
    let started = Instant::now();
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut answer)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(node.balance("alice").await, -1_000_000_000, "only the real packet moved money");
}

#[tokio::test]
async fn a_credit_the_store_refuses_after_a_fulfill_is_relayed_counted_and_logged() {
    use thitsax::store::Store;
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let node = TestNode::start(&single_node(&downstream.url(), "")).await;
    // carol's balance is one unit short of the int64 maximum: the next credit cannot be applied.
    let carol = node.node.accounts.load().get("carol").unwrap().clone();
    let top = thitsax::balance::AMOUNT_MAX - 1;
    node.node.store.credit_fulfill(&carol, top, thitsax::store::PacketId::next()).await.unwrap();
    // The next hop was paid: the Fulfill is relayed, and the refused credit is counted.
    send(&client(), &node.url(), "alice-token", &prepare("test.n.carol.x", 1_000_000_000, TEN_SECONDS))
        .await
        .fulfill();
    assert_eq!(node.balance("alice").await, -1_000_000_000, "the source pays for what was delivered");
    assert_eq!(node.balance("carol").await, top as i128, "the credit could not be applied");
    let scrape = thitsax::metrics::Scrape { settlements: Default::default(), store: None };
    let text = node.node.metrics.render(&scrape);
    let series = r#"thitsax_money_errors_total{kind="fulfill_write_refused"} 1"#;
    assert!(text.lines().any(|l| l == series), "{text}");
}

/// A peer with its own `hold_time_ms_max` (Rafiki books a Fulfill only within 5 s of its
/// Prepare): its Prepares expire within it, and a next hop slower than that is given up on in
/// time, R00, with the debit reversed, instead of a Fulfill relayed too late.
#[tokio::test]
async fn an_account_s_own_hold_time_caps_its_prepares_and_its_wait() {
    let peer = |url: &str| {
        format!(
            "{}\n[[accounts]]\nid = \"rafiki\"\nrelation = \"peer\"\nasset_code = \"USD\"\nasset_scale = 9\n\
             ilp_address = \"test.rafiki\"\noutgoing_url = \"{url}\"\noutgoing_token = \"to-rafiki\"\n\
             hold_time_ms_max = 1500\n",
            single_node(NOWHERE, "")
        )
    };
    let fast = Downstream::always(Behaviour::Fulfill).await;
    let node = TestNode::start(&peer(&fast.url())).await;
    let long = prepare("test.rafiki.wallet", 1_000, Duration::from_secs(600));
    send(&client(), &node.url(), "alice-token", &long).await.fulfill();
    let left = fast.received()[0].expires_at.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(left <= Duration::from_millis(1500), "not capped by the account's hold time: {left:?}");
    node.stop().await;

    let slow = Downstream::always(Behaviour::Hang).await;
    let node = TestNode::start(&peer(&slow.url())).await;
    let started = std::time::Instant::now();
    let reject = send(&client(), &node.url(), "alice-token", &long).await.reject();
    assert_code(&reject, ErrorCode::R00_TRANSFER_TIMED_OUT);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited {:?}, not the account's 1.5 s",
        started.elapsed()
    );
    assert_all_zero(&node).await;
}
