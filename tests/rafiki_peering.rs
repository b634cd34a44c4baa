//! Auto-peering with a Rafiki (`POST /peers/auto` on the admin API), against the Rafiki test
//! double of `tests/common/rafiki.rs` (a test double: Rafiki cannot run in CI), which refuses
//! what Rafiki refuses. The node tells it its address, `http.public_url` and a new token; the
//! peer account is written from the answer; packets then flow both ways with the right tokens
//! and content type, within the 5 s Rafiki books a Fulfill in; peering again rotates both
//! tokens.

mod common;

use common::rafiki::{RafikiDouble, RAFIKI_ADDRESS};
use common::{admin_call, client, prepare, reserve_port, send, Behaviour, Downstream, TestNode};
use hyper::StatusCode;
use std::time::{Duration, SystemTime};
use thitsax::packet::Response as IlpResponse;

const ADMIN: &str = "admin-token";

fn config(listen: u16, alice: &str, public: bool) -> String {
    let public_url =
        if public { format!("public_url = \"http://127.0.0.1:{listen}/\"") } else { String::new() };
    format!(
        r#"
[node]
ilp_address = "test.n"
[http]
listen = "127.0.0.1:{listen}"
{public_url}
[admin]
token = "{ADMIN}"
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "alice-token"
outgoing_url = "{alice}"
outgoing_token = "to-alice"
"#
    )
}

async fn auto_peer(node: &TestNode, body: &str) -> common::HttpAnswer {
    admin_call(&client(), node.admin_addr.unwrap(), "POST", "/peers/auto", Some(ADMIN), Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_auto_peers_with_rafiki_and_packets_flow_both_ways_with_rotated_tokens() {
    let rafiki = RafikiDouble::start(("USD", 9)).await;
    let alice = Downstream::always(Behaviour::Fulfill).await;
    let listen = reserve_port();
    let node = TestNode::start_as_is(&config(listen, &alice.url(), true)).await;
    let request = format!(
        r#"{{"id": "rafiki", "url": "{}", "asset_code": "USD", "asset_scale": 9}}"#,
        rafiki.peering_url()
    );

    // Peered: the account from Rafiki's answer, capped below Rafiki's 5 s booking window.
    let account = auto_peer(&node, &request).await.json(StatusCode::CREATED);
    assert_eq!(account["ilp_address"], RAFIKI_ADDRESS, "{account}");
    assert_eq!(account["hold_time_ms_max"], 4000, "{account}");
    assert_eq!(account["outgoing_url"], format!("http://127.0.0.1:{}/", rafiki.connector_port), "{account}");
    let told = rafiki.state();
    assert_eq!(told.static_ilp_address.as_deref(), Some("test.n"));
    assert_eq!(told.connector_url.as_deref(), Some(format!("http://127.0.0.1:{listen}/").as_str()));

    // Node → Rafiki: with the token Rafiki accepts, as application/octet-stream, expiring
    // within the account's hold time.
    let to_wallet = prepare(&format!("{RAFIKI_ADDRESS}.wallet"), 1_000, Duration::from_secs(60));
    send(&client(), &node.url(), "alice-token", &to_wallet).await.fulfill();
    let got = rafiki.state().received;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, format!("Bearer {}", told.accepted_token.as_deref().unwrap()));
    assert_eq!(got[0].1, "application/octet-stream");
    let sent = thitsax::packet::Prepare::parse(&hex::decode(&got[0].2).unwrap()).unwrap();
    let left = sent.expires_at().duration_since(SystemTime::now()).unwrap_or_default();
    assert!(left <= Duration::from_secs(4), "held longer than Rafiki books: {left:?}");
    assert_eq!(node.balance("rafiki").await, 1_000);

    // Rafiki → node: with the token it answered.
    let to_alice = prepare("test.n.alice", 500, Duration::from_secs(30));
    let (status, body) = rafiki.send(&to_alice, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(matches!(IlpResponse::parse(body).unwrap(), IlpResponse::Fulfill(_)));
    assert_eq!(node.balance("rafiki").await, 500);

    // Peering again rotates both tokens: Rafiki's old one is refused, the new ones work.
    let old = told.send_token.clone().unwrap();
    let again = auto_peer(&node, &request).await.json(StatusCode::OK);
    assert_eq!(again["hold_time_ms_max"], 4000, "{again}");
    let rotated = rafiki.state();
    assert_eq!(rotated.peerings, 2);
    assert_ne!(rotated.send_token.as_deref(), Some(old.as_str()));
    assert_ne!(rotated.accepted_token, told.accepted_token);
    let listed = admin_call(&client(), node.admin_addr.unwrap(), "GET", "/peers/auto", Some(ADMIN), None)
        .await
        .json(StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(
        (listed[1]["direction"].as_str(), listed[1]["rafiki_address"].as_str()),
        (Some("outgoing"), Some(RAFIKI_ADDRESS))
    );
    let (status, _) = rafiki.send(&prepare("test.n.alice", 1, Duration::from_secs(30)), Some(&old)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old token still works");
    let (status, _) = rafiki.send(&prepare("test.n.alice", 1, Duration::from_secs(30)), None).await;
    assert_eq!(status, StatusCode::OK);
    send(&client(), &node.url(), "alice-token", &to_wallet).await.fulfill();
    let last = rafiki.state().received.last().cloned().unwrap();
    assert_eq!(last.0, format!("Bearer {}", rotated.accepted_token.unwrap()), "the node sends its new token");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rafiki_s_refusals_and_a_missing_public_url_are_clear_and_change_nothing() {
    let rafiki = RafikiDouble::start(("USD", 9)).await;
    let alice = Downstream::always(Behaviour::Fulfill).await;
    let node = TestNode::start_as_is(&config(reserve_port(), &alice.url(), true)).await;
    let eur = format!(
        r#"{{"id": "rafiki", "url": "{}", "asset_code": "EUR", "asset_scale": 2}}"#,
        rafiki.peering_url()
    );
    let refused = auto_peer(&node, &eur).await.json(StatusCode::BAD_GATEWAY);
    assert!(refused["error"].as_str().unwrap().contains("Unknown asset (UnknownAsset)"), "{refused}");
    let down = format!(
        r#"{{"id": "rafiki", "url": "http://127.0.0.1:{}/", "asset_code": "USD", "asset_scale": 9}}"#,
        reserve_port()
    );
    auto_peer(&node, &down).await.json(StatusCode::BAD_GATEWAY);
    let alice_again =
        r#"{"id": "alice", "url": "http://127.0.0.1:9/", "asset_code": "USD", "asset_scale": 9}"#;
    auto_peer(&node, alice_again).await.json(StatusCode::CONFLICT);
    let accounts = admin_call(&client(), node.admin_addr.unwrap(), "GET", "/accounts", Some(ADMIN), None)
        .await
        .json(StatusCode::OK);
    assert_eq!(accounts.as_array().unwrap().len(), 1, "nothing was created: {accounts}");
    node.stop().await;

    let private = TestNode::start_as_is(&config(reserve_port(), &alice.url(), false)).await;
    let usd = format!(
        r#"{{"id": "rafiki", "url": "{}", "asset_code": "USD", "asset_scale": 9}}"#,
        rafiki.peering_url()
    );
    let refused = auto_peer(&private, &usd).await.json(StatusCode::CONFLICT);
    assert!(refused["error"].as_str().unwrap().contains("http.public_url"), "{refused}");
    assert_eq!(rafiki.state().peerings, 0, "Rafiki was never asked");
    private.stop().await;
}

/// A Rafiki's `createOrUpdatePeerByUrl` peering with the node's own endpoint (`[rafiki]`,
/// restricted by a secret path and an allow-list, rate-limited): the account `rafiki-<name>` is
/// made from its request, and packets flow both ways with the tokens the two answers named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rafiki_peers_with_the_node_s_endpoint_only_through_its_secret_path_and_allow_list() {
    let rafiki = RafikiDouble::start(("USD", 9)).await;
    let alice = Downstream::always(Behaviour::Fulfill).await;
    let (listen, peering) = (reserve_port(), reserve_port());
    let text = config(listen, &alice.url(), true).replace(
        "[admin]",
        &format!(
            "[rafiki]\npeering_listen = \"127.0.0.1:{peering}\"\npeering_secret = \"path-secret\"\n\
             peering_allowed_urls = [\"http://127.0.0.1:{}/\"]\npeering_requests_per_minute_max = 5\n[admin]",
            rafiki.connector_port
        ),
    );
    let node = TestNode::start_as_is(&text).await;
    let base = format!("http://127.0.0.1:{peering}");
    // Without the secret path: not found, nothing written.
    let (status, _) = rafiki.peer_by_url(&format!("{base}/"), ("USD", 9)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = rafiki.peer_by_url(&format!("{base}/wrong"), ("USD", 9)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // With it, from a connector URL outside the allow-list: refused.
    let stranger = RafikiDouble::start(("USD", 9)).await;
    let (status, answer) = stranger.peer_by_url(&format!("{base}/path-secret"), ("USD", 9)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["error"]["type"], "InvalidPeeringRequest", "{answer}");
    // With it, from the allowed one: peered.
    let (status, answer) = rafiki.peer_by_url(&format!("{base}/path-secret"), ("USD", 9)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["staticIlpAddress"], "test.n");
    assert_eq!(answer["ilpConnectorUrl"], format!("http://127.0.0.1:{listen}/"));
    let account = admin_call(
        &client(),
        node.admin_addr.unwrap(),
        "GET",
        "/accounts/rafiki-rafiki-double",
        Some(ADMIN),
        None,
    )
    .await
    .json(StatusCode::OK);
    assert_eq!(
        (account["ilp_address"].as_str(), account["hold_time_ms_max"].as_u64()),
        (Some(RAFIKI_ADDRESS), Some(4000))
    );
    let to_wallet = prepare(&format!("{RAFIKI_ADDRESS}.wallet"), 1_000, Duration::from_secs(60));
    send(&client(), &node.url(), "alice-token", &to_wallet).await.fulfill();
    let (status, body) = rafiki.send(&prepare("test.n.alice", 500, Duration::from_secs(30)), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(matches!(IlpResponse::parse(body).unwrap(), IlpResponse::Fulfill(_)));
    assert_eq!(node.balance("rafiki-rafiki-double").await, 500);
    // Rate-limited: 5 requests a minute in all (the wrong paths were refused before it counts;
    // the stranger's and the first peering count): 3 more pass, then 429.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(rafiki.peer_by_url(&format!("{base}/path-secret"), ("USD", 9)).await.0);
    }
    let ok = StatusCode::OK;
    let limited = StatusCode::TOO_MANY_REQUESTS;
    assert_eq!(statuses, [ok, ok, ok, limited, limited]);
    // Every accepted peering is listed (this instance's latest), the refused ones are not.
    let listed = admin_call(&client(), node.admin_addr.unwrap(), "GET", "/peers/auto", Some(ADMIN), None)
        .await
        .json(StatusCode::OK);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(
        listed.iter().all(|p| p["direction"] == "incoming" && p["account"] == "rafiki-rafiki-double"),
        "{listed:?}"
    );
    // The last accepted peering's tokens work both ways.
    send(&client(), &node.url(), "alice-token", &to_wallet).await.fulfill();
    let (status, _) = rafiki.send(&prepare("test.n.alice", 1, Duration::from_secs(30)), None).await;
    assert_eq!(status, StatusCode::OK);
    node.stop().await;
}

/// Rafiki serves no ILDCP to its peers (`peer.config` is F02 there): a node peered with a Rafiki
/// never depends on it. The node's address is its own configuration (it never asks a peer or a
/// parent for one), and a child's `peer.config` is answered by the node itself, never relayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_peered_with_rafiki_never_depends_on_ildcp() {
    let rafiki = RafikiDouble::start(("USD", 9)).await;
    let alice = Downstream::always(Behaviour::Fulfill).await;
    let listen = reserve_port();
    let node = TestNode::start_as_is(&config(listen, &alice.url(), true)).await;
    let request = format!(
        r#"{{"id": "rafiki", "url": "{}", "asset_code": "USD", "asset_scale": 9}}"#,
        rafiki.peering_url()
    );
    auto_peer(&node, &request).await.json(StatusCode::CREATED);
    // The double really refuses ILDCP, as Rafiki does.
    let (status, body) = rafiki.send(&prepare("peer.config", 0, Duration::from_secs(30)), None).await;
    assert_eq!(status, StatusCode::OK);
    let answered = IlpResponse::parse(body).unwrap();
    assert!(
        matches!(answered, IlpResponse::Reject(_)),
        "Rafiki's double must refuse peer.config to its peers"
    );
    // The node's child asks the node for its address: answered here, not sent to the Rafiki.
    let asked = thitsax::ildcp::request();
    let received_before = rafiki.state().received.len();
    let answer = send(&client(), &node.url(), "alice-token", &asked).await.fulfill();
    let info = thitsax::ildcp::parse_response(answer.data()).unwrap();
    assert_eq!(info.address.to_string(), "test.n.alice");
    assert_eq!(rafiki.state().received.len(), received_before, "peer.config went to the Rafiki");
    node.stop().await;
}
