//! Payouts into Mojaloop when the `thitsax` process itself is killed (kill -9), on Redis (its
//! own `redis-server`): `@interledger/pay` pays a party's SPSP receiver on the node; the node
//! is killed while the payee quotes the payout, and again while the payout's transfer is in
//! flight at the payee (paid, its answer held back), and restarted each time. The payout resumes
//! once the dead instance's lease ended and the party is paid exactly once. The payee DFSP's
//! core system is the test backend (a test double that deduplicates transfers on their id),
//! behind a real Connector back to back with the node's.

mod common;

use common::js::{node_or_skip, Script};
use common::mojaloop::{mojaloop_or_skip, Connector, ConnectorConfig};
use common::mojaloop_backend::{Held, TestBackend};
use common::process::{start_binary, Running};
use common::redis::{redis_or_skip, RedisServer};
use common::{admin_call, client, reserve_port, TempDir};
use hyper::StatusCode;
use std::net::SocketAddr;
use std::time::Duration;

const ADMIN: &str = "admin-token";
const PARTY: &str = "5215550001";

struct Ports {
    ilp: u16,
    spsp: u16,
    admin: u16,
    plugin: u16,
    outbound: u16,
}

fn config(redis: &str, p: &Ports, owed: &std::path::Path) -> String {
    format!(
        r#"
[node]
ilp_address = "test.node"
log_level = "info"
[http]
listen = "127.0.0.1:{ilp}"
[spsp]
listen = "127.0.0.1:{spsp}"
[admin]
listen = "127.0.0.1:{admin}"
token = "{ADMIN}"
[store]
kind = "redis"
url = "{redis}"
prefix = "payoutcrash"
owed_writes_path = "{owed}"
[[accounts]]
id = "mxn"
relation = "local"
asset_code = "MXN"
asset_scale = 2
[[accounts]]
id = "sender"
relation = "child"
asset_code = "MXN"
asset_scale = 2
incoming_token = "sender-token"
outgoing_url = "http://127.0.0.1:{plugin}/"
outgoing_token = "node-to-sender"
[mojaloop]
dfsp_id = "thitsaxfsp"
outbound_url = "http://127.0.0.1:{outbound}"
# Short, so that a dead instance's lease on the payout (this plus 5 s) ends soon.
outbound_timeout_ms = 5000
backend_listen = "127.0.0.1:{backend}"
party = {{ id_type = "BUSINESS", id_value = "thitsax" }}
[[mojaloop.currencies]]
code = "MXN"
decimals = 2
account = "mxn"
"#,
        ilp = p.ilp,
        spsp = p.spsp,
        admin = p.admin,
        plugin = p.plugin,
        outbound = p.outbound,
        backend = reserve_port(),
        owed = owed.display(),
    )
}

fn kill(node: Running) {
    let mut node = node;
    node.0.kill().unwrap();
    node.0.wait().unwrap();
}

async fn payout_view(admin: u16, id: &str) -> serde_json::Value {
    let path = format!("/payouts/{id}");
    let addr = SocketAddr::from(([127, 0, 0, 1], admin));
    admin_call(&client(), addr, "GET", &path, Some(ADMIN), None).await.json(StatusCode::OK)
}

/// Waits for the restarted node's admin API.
async fn admin_up(admin: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", admin)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the node's admin API never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_payout_pays_the_party_once() {
    let test = "a_node_killed_mid_payout_pays_the_party_once";
    let Some(mojaloop) = mojaloop_or_skip(test) else { return };
    let Some(node_js) = node_or_skip(test) else { return };
    if !redis_or_skip(test) {
        return;
    }
    let redis = RedisServer::start();
    let dir = TempDir::new("mojaloop-payout-crash");
    let payer = ConnectorConfig::new("thitsaxfsp", "127.0.0.1:9").auto_accept(false);
    let ports = Ports {
        ilp: reserve_port(),
        spsp: reserve_port(),
        admin: reserve_port(),
        plugin: reserve_port(),
        outbound: payer.ports.outbound,
    };
    let file = dir.join("node.toml");
    std::fs::write(&file, config(&redis.url(), &ports, &dir.join("owed.log"))).unwrap();
    let backend = TestBackend::start().await;
    backend.add_party("MSISDN", PARTY, "Ana");
    let payee = ConnectorConfig::new("payeefsp", &backend.endpoint()).auto_accept(false);
    let (_connector, _payee): (Connector, Connector) = Connector::start_pair(&mojaloop, payer, payee).await;
    let wait = Duration::from_secs(90);

    backend.hold(Held::Quotes);
    let (node, _, _) = start_binary(&file);
    let args = [
        "--port".to_string(),
        ports.plugin.to_string(),
        "--url".into(),
        format!("http://127.0.0.1:{}/", ports.ilp),
        "--incoming-token".into(),
        "node-to-sender".into(),
        "--outgoing-token".into(),
        "sender-token".into(),
        "--spsp-url".into(),
        format!("http://127.0.0.1:{}/mojaloop/MSISDN/{PARTY}?amount=12.34", ports.spsp),
        "--amount-to-deliver".into(),
        "1234".into(),
    ];
    let mut pay = Script::start(&node_js, "pay", "pay.js", &args);
    let set_up = pay.event("setup", Duration::from_secs(60)).await;
    let address = set_up["destinationAddress"].as_str().unwrap().to_string();
    let id = address.split('.').nth(3).expect("the payment's segment").to_string();
    let paid = pay.event("paid", Duration::from_secs(60)).await;
    assert_eq!(paid["amountDelivered"].as_str(), Some("1234"), "{paid}");

    // 1. Killed while the payee quotes the payout (nothing accepted).
    backend.wait_until("asked for a quote", wait, |b| !b.quote_requests().is_empty()).await;
    let before = payout_view(ports.admin, &id).await;
    assert_eq!(
        (before["state"].as_str(), before["amount"].as_str()),
        (Some("pending"), Some("1234")),
        "{before}"
    );
    kill(node);
    backend.release();
    backend.hold(Held::Transfers);
    let (node, _, _) = start_binary(&file);

    // 2. Killed with the payout's transfer in flight: the payee paid, its answer held back.
    backend.wait_until("paid, answer held", wait, |b| b.transfers().len() == 1).await;
    kill(node);
    backend.release();
    let (node, _, _) = start_binary(&file);
    admin_up(ports.admin).await;

    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let view = payout_view(ports.admin, &id).await;
        if view["state"] == "paid" {
            assert_eq!(view["transfer_id"].as_str(), Some(backend.paid()[0].transfer_id.as_str()), "{view}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not paid: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let transfers = backend.paid();
    assert_eq!(transfers.len(), 1, "paid once: {transfers:#?}");
    assert_eq!((transfers[0].amount.as_str(), transfers[0].payee_id_value.as_str()), ("12.34", PARTY));
    drop(node);
}
