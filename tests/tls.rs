//! Outgoing HTTPS against TLS servers the tests start on 127.0.0.1:0, with certificates for
//! `localhost`/127.0.0.1 from a CA made at test time: next hops through a real node (trusted by
//! `http.tls_ca_file`, refused without it, refused for another host's certificate), the
//! settlement engine client, and the one-shot GET that SPSP queries use.

mod common;

use bytes::Bytes;
use common::tls::{Answer, Server, TestCa};
use common::*;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;
use thitsax::account::{Outgoing, Secret};
use thitsax::http::client::{get, ClientLimits, GetError, HttpClient, SendError};
use thitsax::http::origin::Origin;
use thitsax::http::tls::{CaFile, CertificateProblem, ConnectError, Connector, Roots, TlsConfig, TlsRules};
use thitsax::packet::{ErrorCode, Fulfill};
use thitsax::settlement::engine::{EngineClient, EngineError, EngineLimits, IDEMPOTENCY_KEY};
use thitsax::settlement_id::SettlementId;

const TEN_SECONDS: Duration = Duration::from_secs(10);
const SECOND: Duration = Duration::from_secs(1);

/// A node `test.n`: alice sends, bob's packets go to `downstream`; `http` is the `[http]` section.
fn node_config(downstream: &str, http: &str) -> String {
    format!(
        r#"
[node]
ilp_address = "test.n"
log_level = "warn"
[http]
{http}
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "alice-token"
min_balance = -1000000
[[accounts]]
id = "bob"
relation = "child"
asset_code = "USD"
asset_scale = 9
outgoing_url = "{downstream}"
outgoing_token = "to-bob"
"#
    )
}

/// `tls_ca_file = "<path>"`, as a TOML line.
fn ca_file_line(path: &std::path::Path) -> String {
    format!("tls_ca_file = {:?}", path.display().to_string())
}

fn fulfills() -> Script {
    Arc::new(|_| Behaviour::Fulfill)
}

/// The TLS configuration of a node with `ca` in its CA file (and the bundled roots).
fn trusting(ca: &TestCa, dir: &std::path::Path) -> TlsConfig {
    let ca_file = CaFile::read(&ca.write_pem(dir)).unwrap();
    TlsConfig::new(&TlsRules { roots: Roots::Webpki, ca_file: Some(ca_file) })
}

fn trusting_nothing_of_ours() -> TlsConfig {
    TlsConfig::new(&TlsRules { roots: Roots::Webpki, ca_file: None })
}

/// Sends alice's packet to bob through `node` and expects a T01 whose message says `why`, with
/// no balance moved and nothing received downstream.
async fn expect_t01(node: &TestNode, bob: &Downstream, why: &str) {
    let reject =
        send(&client(), &node.url(), "alice-token", &prepare("test.n.bob", 100, TEN_SECONDS)).await.reject();
    assert_code(&reject, ErrorCode::T01_PEER_UNREACHABLE);
    let message = String::from_utf8_lossy(reject.message()).into_owned();
    assert!(message.contains(why), "T01 message {message:?} does not say {why:?}");
    assert_eq!((node.balance("alice").await, node.balance("bob").await), (0, 0), "nothing is debited");
    assert!(bob.received().is_empty(), "no packet got through");
    assert_eq!(bob.connections.load(SeqCst), 0, "no connection was served");
}

#[tokio::test]
async fn packets_reach_an_https_next_hop_trusted_through_the_ca_file_over_one_pooled_connection() {
    let ca = TestCa::new();
    let dir = TempDir::new("tls-forward");
    let bob = Downstream::start_tls(fulfills(), ca.acceptor(&["localhost", "127.0.0.1"])).await;
    let node = TestNode::start(&node_config(&bob.url(), &ca_file_line(&ca.write_pem(&dir)))).await;
    let client = client();
    for _ in 0..5 {
        send(&client, &node.url(), "alice-token", &prepare("test.n.bob", 100, TEN_SECONDS)).await.fulfill();
    }
    let received = bob.received();
    assert_eq!(received.len(), 5);
    assert_eq!(received[0].authorization, "Bearer to-bob");
    assert_eq!(received[0].content_type, "application/octet-stream");
    // One TLS connection carried them all: opened, and its certificate checked, once; then pooled.
    assert_eq!(bob.connections.load(SeqCst), 1);
    assert_eq!((node.balance("alice").await, node.balance("bob").await), (-500, 500));
}

#[tokio::test]
async fn without_the_ca_an_https_next_hop_is_refused_as_an_unknown_issuer_with_t01_and_nothing_debited() {
    let ca = TestCa::new();
    // The system's roots (the default) and the bundled ones: neither knows the test's CA.
    for roots in ["", "tls_roots = \"webpki\""] {
        let bob = Downstream::start_tls(fulfills(), ca.acceptor(&["localhost", "127.0.0.1"])).await;
        let node = TestNode::start(&node_config(&bob.url(), roots)).await;
        expect_t01(&node, &bob, "certificate of localhost has an unknown issuer").await;
    }
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused_with_t01_even_from_a_trusted_ca() {
    let ca = TestCa::new();
    let dir = TempDir::new("tls-hostname");
    let bob = Downstream::start_tls(fulfills(), ca.acceptor(&["other.example"])).await;
    let node = TestNode::start(&node_config(&bob.url(), &ca_file_line(&ca.write_pem(&dir)))).await;
    expect_t01(&node, &bob, "certificate not valid for host localhost").await;
}

#[tokio::test]
async fn the_connector_checks_an_ip_host_against_the_certificate_s_addresses() {
    let ca = TestCa::new();
    let dir = TempDir::new("tls-ip");
    let tls = trusting(&ca, &dir);
    let connector = Connector::new(&tls, SECOND, SECOND);
    let named = Server::start(Some(ca.acceptor(&["localhost"])), |_| Answer::new(200, "", "")).await;
    let by_ip = Origin::from_uri(&format!("https://{}/", named.addr).parse().unwrap()).unwrap();
    match connector.connect(&by_ip).await {
        Err(ConnectError::Certificate { host, problem: CertificateProblem::NotValidForHost { .. } }) => {
            assert_eq!(host, "127.0.0.1")
        }
        other => panic!("expected a host name refusal, got {other:?}"),
    }
    let addressed = Server::start(Some(ca.acceptor(&["127.0.0.1"])), |_| Answer::new(200, "", "")).await;
    let by_ip = Origin::from_uri(&format!("https://{}/", addressed.addr).parse().unwrap()).unwrap();
    assert!(connector.connect(&by_ip).await.unwrap().is_tls());
}

#[tokio::test]
async fn an_http_and_an_https_url_to_one_host_and_port_never_share_a_pooled_connection() {
    let ca = TestCa::new();
    let dir = TempDir::new("tls-pool-key");
    let fulfill = Fulfill::build(&[0; 32], b"").as_bytes().clone();
    let server =
        Server::start(Some(ca.acceptor(&["localhost"])), move |_| Answer::new(200, "", fulfill.clone()))
            .await;
    let client = HttpClient::new(&ClientLimits::default(), &trusting(&ca, &dir));
    let token = Secret::new("t".into());
    let https = Outgoing::new(format!("{}/ilp", server.url("https")).parse().unwrap(), &token).unwrap();
    let http = Outgoing::new(format!("{}/ilp", server.url("http")).parse().unwrap(), &token).unwrap();
    let deadline = tokio::time::Instant::now() + TEN_SECONDS;
    client.send(&https, Bytes::from_static(b"x"), deadline).await.unwrap();
    client.send(&https, Bytes::from_static(b"x"), deadline).await.unwrap();
    assert_eq!(server.connections.load(SeqCst), 1);
    // The plain URL gets a connection of its own (which fails: the server speaks TLS only), not
    // the pooled TLS one.
    let plain = client.send(&http, Bytes::from_static(b"x"), deadline).await;
    assert!(matches!(plain, Err(SendError::Transport(_))), "{plain:?}");
    assert_eq!(server.failed_handshakes.load(SeqCst), 1);
    assert_eq!(server.seen().len(), 2);
}

fn engine_client(tls: &TlsConfig) -> EngineClient {
    let limits =
        EngineLimits { timeout: Duration::from_secs(5), connections_max: 4, response_bytes_max: 1024 };
    EngineClient::new(&limits, tls)
}

#[tokio::test]
async fn the_settlement_engine_client_settles_over_https_and_a_refused_certificate_is_not_made() {
    let ca = TestCa::new();
    let dir = TempDir::new("tls-engine");
    let engine = Server::start(Some(ca.acceptor(&["localhost"])), |_| {
        Answer::new(201, "application/json", r#"{"amount":"5","scale":2}"#)
    })
    .await;
    let key = SettlementId([0xab; 16]);
    let quantity = thitsax::quantity::Quantity::new(5, 2);
    engine_client(&trusting(&ca, &dir)).settle(&engine.url("https"), "bob", &key, &quantity).await.unwrap();
    let seen = engine.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/accounts/bob/settlements");
    assert_eq!(seen[0].headers[IDEMPOTENCY_KEY], key.to_string().as_str());

    // Without the CA: nothing was sent, so the settlement is retried later with the same key.
    let refused =
        engine_client(&trusting_nothing_of_ours()).settle(&engine.url("https"), "bob", &key, &quantity).await;
    match refused {
        Err(EngineError::NotMade(reason)) => assert!(reason.contains("unknown issuer"), "{reason}"),
        other => panic!("expected NotMade, got {other:?}"),
    }
    assert_eq!(engine.seen().len(), 1);
}

const SPSP: &str = "application/spsp4+json";

#[tokio::test]
async fn a_one_shot_get_reads_status_type_and_body_over_https_and_http() {
    let ca = TestCa::new();
    let dir = TempDir::new("tls-get");
    let connector = Connector::new(&trusting(&ca, &dir), SECOND, SECOND);
    let body = r#"{"destination_account":"test.n.bob","shared_secret":"AAAA"}"#;
    let answer = move |_: &common::tls::Seen| Answer::new(200, SPSP, body);
    for (server, scheme) in [
        (Server::start(Some(ca.acceptor(&["localhost"])), answer).await, "https"),
        (Server::start(None, answer).await, "http"),
    ] {
        let url = format!("{}/.well-known/pay?x=1", server.url(scheme)).parse().unwrap();
        let fetched = get(&connector, &url, SPSP, 4096, TEN_SECONDS).await.unwrap();
        assert_eq!(fetched.status, 200);
        assert_eq!(fetched.content_type.as_deref(), Some(SPSP));
        assert_eq!(fetched.body, body.as_bytes());
        let seen = server.seen();
        assert_eq!(seen[0].method, hyper::Method::GET);
        assert_eq!(seen[0].path, "/.well-known/pay");
        assert_eq!(seen[0].headers["accept"], SPSP);
        assert_eq!(seen[0].headers["host"], format!("localhost:{}", server.addr.port()).as_str());
    }
    // Through the node's packet client too, which SPSP code holds.
    let server = Server::start(Some(ca.acceptor(&["localhost"])), answer).await;
    let client = HttpClient::new(&ClientLimits::default(), &trusting(&ca, &dir));
    let url = server.url("https").parse().unwrap();
    assert_eq!(client.get(&url, SPSP, 4096, TEN_SECONDS).await.unwrap().status, 200);
}

#[tokio::test]
async fn a_one_shot_get_refuses_a_body_over_its_limit_an_answer_too_late_and_an_unknown_issuer() {
    let ca = TestCa::new();
    let dir = TempDir::new("tls-get-limits");
    let connector = Connector::new(&trusting(&ca, &dir), SECOND, SECOND);
    let big =
        Server::start(Some(ca.acceptor(&["localhost"])), |_| Answer::new(200, SPSP, vec![b'x'; 2000])).await;
    let url = big.url("https").parse().unwrap();
    assert!(matches!(
        get(&connector, &url, SPSP, 1000, TEN_SECONDS).await,
        Err(GetError::BodyTooLarge(1000))
    ));
    assert_eq!(get(&connector, &url, SPSP, 2000, TEN_SECONDS).await.unwrap().body.len(), 2000);

    let slow = Server::start(Some(ca.acceptor(&["localhost"])), |_| Answer {
        delay: Duration::from_secs(5),
        ..Answer::new(200, SPSP, "{}")
    })
    .await;
    let url = slow.url("https").parse().unwrap();
    let started = std::time::Instant::now();
    let late = get(&connector, &url, SPSP, 1000, Duration::from_millis(300)).await;
    assert!(matches!(late, Err(GetError::TimedOut(_))), "{late:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let untrusted = Connector::new(&trusting_nothing_of_ours(), SECOND, SECOND);
    match get(&untrusted, &big.url("https").parse().unwrap(), SPSP, 4096, TEN_SECONDS).await {
        Err(GetError::Connect(e)) => {
            assert!(e.is_certificate() && e.to_string().contains("unknown issuer"), "{e}")
        }
        other => panic!("expected a certificate refusal, got {other:?}"),
    }
    let bad_scheme = get(&connector, &"ftp://localhost/".parse().unwrap(), SPSP, 1000, SECOND).await;
    assert!(matches!(bad_scheme, Err(GetError::Url(_))), "{bad_scheme:?}");
}
