//! Settlement kind `mojaloop` when the node's Mojaloop Connector is killed (kill -9) in the
//! middle of a settlement and restarted: during the quote, before anything was accepted; between
//! the quote and its acceptance (the transfer quoted and its id kept, the acceptance sent to a
//! Connector that just died); and while the transfer is in flight at the payee. The payee is a DFSP of the scheme whose core
//! system is the test backend (a test double that deduplicates transfers on their id, as a real
//! DFSP and a hub do), behind a real Connector back to back with the node's. Each time the
//! settlement is paid exactly once, with one transfer id, and the node's books end where the
//! payee's do.

mod common;

use common::mojaloop::{mojaloop_or_skip, Connector, ConnectorConfig, Mojaloop};
use common::mojaloop_backend::{Held, TestBackend};
use common::TestNode;
use std::sync::atomic::Ordering;
use std::time::Duration;
use thitsax::store::{PacketId, Store};

/// The payee DFSP's party for the node: what the node's settlements pay.
const PEER_PARTY: &str = "thitsax-settles";

fn node(outbound_port: u16) -> String {
    format!(
        r#"
[node]
ilp_address = "test.node"
[settlement]
scan_interval_ms = 200
retry_first_ms = 100
retry_max_ms = 1000
[[accounts]]
id = "mxn"
relation = "local"
asset_code = "MXN"
asset_scale = 2
[[accounts]]
id = "coop"
relation = "peer"
asset_code = "MXN"
asset_scale = 2
ilp_address = "test.coop"
incoming_token = "coop-to-node"
outgoing_url = "http://127.0.0.1:9/"
outgoing_token = "node-to-coop"
mojaloop_settlement = {{ peer_party = {{ id_type = "ACCOUNT_ID", id_value = "{PEER_PARTY}", fsp_id = "payeefsp" }}, own_party = {{ id_type = "ACCOUNT_ID", id_value = "coop-settles" }} }}
[mojaloop]
dfsp_id = "thitsaxfsp"
outbound_url = "http://127.0.0.1:{outbound_port}"
party = {{ id_type = "BUSINESS", id_value = "thitsax" }}
[[mojaloop.currencies]]
code = "MXN"
decimals = 2
account = "mxn"
"#
    )
}

struct Setup {
    node: TestNode,
    connector: Connector,
    _payee: Connector,
    payee_backend: TestBackend,
}

async fn setup(mojaloop: &Mojaloop) -> Setup {
    let payer = ConnectorConfig::new("thitsaxfsp", "127.0.0.1:9").auto_accept(false);
    let node = TestNode::start(&node(payer.ports.outbound)).await;
    let payee_backend = TestBackend::start().await;
    payee_backend.add_party("ACCOUNT_ID", PEER_PARTY, "ThitsaX's settlements");
    let payee = ConnectorConfig::new("payeefsp", &payee_backend.endpoint()).auto_accept(false);
    // The node's Connector has no backend of the node's here: it only pays.
    let (connector, payee) = Connector::start_pair(mojaloop, payer, payee).await;
    Setup { node, connector, _payee: payee, payee_backend }
}

/// The node owes the peer 123.45 MXN (as after packets it forwarded): settled now, through the
/// worker like any settlement.
async fn settle_12345(node: &TestNode) {
    let account = node.node.accounts.load().get("coop").unwrap().clone();
    node.node.store.credit_fulfill(&account, 12_345, PacketId::next()).await.unwrap();
    let (_, amount) = node.node.settle_now("coop").await.unwrap().expect("begun");
    assert_eq!(amount, 12_345);
}

/// Waits until the settlement ended as settled, then checks it was paid once.
async fn settled_once(setup: &Setup) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let counters = &setup.node.node.settlement.counters;
    while counters.settled.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled; payee: {:?}; Connector log: {}",
            setup.payee_backend.transfers(),
            setup.connector.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let paid = setup.payee_backend.paid();
    assert_eq!(paid.len(), 1, "one transfer paid: {paid:#?}");
    assert_eq!((paid[0].amount.as_str(), paid[0].currency.as_str()), ("123.45", "MXN"));
    assert_eq!(paid[0].payee_id_value, PEER_PARTY);
    assert_eq!(counters.refunded.load(Ordering::Relaxed), 0);
    assert_eq!(setup.node.balance("coop").await, 0, "the node's books: settled, all of it");
    let account = setup.node.node.accounts.load().get("coop").unwrap().clone();
    assert!(setup.node.node.store.pending_settlements(&account).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_killed_during_the_quote_and_restarted_pays_the_settlement_once() {
    let test = "a_connector_killed_during_the_quote_and_restarted_pays_the_settlement_once";
    let Some(mojaloop) = mojaloop_or_skip(test) else { return };
    let mut setup = setup(&mojaloop).await;
    setup.payee_backend.hold(Held::Quotes);
    settle_12345(&setup.node).await;
    let backend = &setup.payee_backend;
    backend
        .wait_until("asked for a quote", Duration::from_secs(60), |b| !b.quote_requests().is_empty())
        .await;
    // Quoted at the payee, nothing accepted: the Connector dies with the node waiting on it.
    setup.connector.kill();
    setup.payee_backend.release();
    assert!(setup.payee_backend.transfers().is_empty(), "nothing was accepted, nothing paid");
    setup.connector.restart().await;
    settled_once(&setup).await;
    setup.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_killed_with_the_transfer_in_flight_and_restarted_pays_the_settlement_once() {
    let test = "a_connector_killed_with_the_transfer_in_flight_and_restarted_pays_the_settlement_once";
    let Some(mojaloop) = mojaloop_or_skip(test) else { return };
    let mut setup = setup(&mojaloop).await;
    setup.payee_backend.hold(Held::Transfers);
    settle_12345(&setup.node).await;
    let backend = &setup.payee_backend;
    backend.wait_until("paid, answer held", Duration::from_secs(60), |b| b.transfers().len() == 1).await;
    // The payee has paid; its answer has not come back: the outcome is unknown to the node.
    setup.connector.kill();
    setup.payee_backend.release();
    setup.connector.restart().await;
    settled_once(&setup).await;
    // The node sent the same transfer again (its id kept before the acceptance), and the payee
    // answered the repeat as the first time.
    assert!(setup.payee_backend.transfer_requests() >= 2, "{}", setup.payee_backend.transfer_requests());
    setup.node.stop().await;
}

/// Stands between the node and its Connector's outbound API and forwards everything, except that
/// the first `acceptQuote` it sees is held while the test kills the Connector, then answered 502
/// (what a reverse proxy answers for a dead upstream): the node cannot know whether it arrived.
struct AcceptGate {
    port: u16,
    /// Each held acceptance, to the test; the test answers once the Connector is dead.
    held: tokio::sync::mpsc::UnboundedReceiver<tokio::sync::oneshot::Sender<()>>,
    _task: tokio::task::JoinHandle<()>,
}

impl AcceptGate {
    async fn start(upstream: std::net::SocketAddr) -> AcceptGate {
        use http_body_util::{BodyExt, Full};
        let port = common::reserve_port();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let (tx, held) = tokio::sync::mpsc::unbounded_channel();
        let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (tx, armed) = (tx.clone(), armed.clone());
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let (tx, armed) = (tx.clone(), armed.clone());
                            async move {
                                let (parts, body) = req.into_parts();
                                let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                let accepting = String::from_utf8_lossy(&bytes).contains("acceptQuote");
                                if accepting && armed.swap(false, Ordering::SeqCst) {
                                    let (done, killed) = tokio::sync::oneshot::channel();
                                    let _ = tx.send(done);
                                    let _ = killed.await;
                                    let mut dead =
                                        hyper::Response::new(Full::new(bytes::Bytes::from("bad gateway")));
                                    *dead.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                                    return Ok::<_, std::convert::Infallible>(dead);
                                }
                                let mut forward = hyper::Request::from_parts(parts, Full::new(bytes));
                                *forward.uri_mut() =
                                    format!("http://{upstream}{}", forward.uri().path()).parse().unwrap();
                                let client = hyper_util::client::legacy::Client::builder(
                                    hyper_util::rt::TokioExecutor::new(),
                                )
                                .build_http::<Full<bytes::Bytes>>();
                                Ok(match client.request(forward).await {
                                    Ok(answer) => {
                                        let (parts, body) = answer.into_parts();
                                        let bytes =
                                            body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                        hyper::Response::from_parts(parts, Full::new(bytes))
                                    }
                                    Err(_) => {
                                        let mut dead = hyper::Response::new(Full::new(bytes::Bytes::from(
                                            "bad gateway",
                                        )));
                                        *dead.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                                        dead
                                    }
                                })
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        AcceptGate { port, held, _task: task }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_killed_between_the_quote_and_its_acceptance_pays_the_settlement_once() {
    let test = "a_connector_killed_between_the_quote_and_its_acceptance_pays_the_settlement_once";
    let Some(mojaloop) = mojaloop_or_skip(test) else { return };
    // The gate forwards to the node's Connector, whose port is claimed by the setup: start the
    // setup through a gate on a port of its own, pointing at the Connector once known.
    let upstream_port = common::reserve_port();
    let mut gate = AcceptGate::start(std::net::SocketAddr::from(([127, 0, 0, 1], upstream_port))).await;
    let mut setup = setup_through_ports(&mojaloop, gate.port, upstream_port).await;
    settle_12345(&setup.node).await;
    // The transfer was quoted, its id kept, and the acceptance sent: the Connector dies before it
    // gets there.
    let answer = tokio::time::timeout(Duration::from_secs(60), gate.held.recv()).await.unwrap().unwrap();
    assert!(setup.payee_backend.transfers().is_empty(), "nothing accepted yet");
    setup.connector.kill();
    let _ = answer.send(());
    setup.connector.restart().await;
    settled_once(&setup).await;
    setup.node.stop().await;
}

/// The setup with the node's Connector on `connector_outbound` and the node calling `gate_port`.
async fn setup_through_ports(mojaloop: &Mojaloop, gate_port: u16, connector_outbound: u16) -> Setup {
    let mut payer = ConnectorConfig::new("thitsaxfsp", "127.0.0.1:9").auto_accept(false);
    payer.ports.outbound = connector_outbound;
    let node = TestNode::start(&node(gate_port)).await;
    let payee_backend = TestBackend::start().await;
    payee_backend.add_party("ACCOUNT_ID", PEER_PARTY, "ThitsaX's settlements");
    let payee = ConnectorConfig::new("payeefsp", &payee_backend.endpoint()).auto_accept(false);
    let (connector, payee) = Connector::start_pair(mojaloop, payer, payee).await;
    Setup { node, connector, _payee: payee, payee_backend }
}
