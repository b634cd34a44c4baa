//! ILP → Mojaloop: `@interledger/pay` (the sender Rafiki uses), as a child of a ThitsaX node,
//! pays a Mojaloop party's SPSP receiver on the node (`/mojaloop/MSISDN/<id>?amount=`), and the
//! node pays the party out in the scheme through two real Mojaloop Connectors
//! (`@mojaloop/sdk-scheme-adapter` 18.0.2, back to back, the node's in the two-step flow) to a
//! payee DFSP whose core system is the test backend (a test double). Exact amounts; a payout
//! the scheme refuses is kept, failed, with its money, and paid again or refunded by an
//! operator's call.

mod common;

use common::js::{node_or_skip, Script};
use common::mojaloop::{mojaloop_or_skip, Connector, ConnectorConfig, Mojaloop};
use common::mojaloop_backend::TestBackend;
use common::{admin_call, client, reserve_port, TestNode};
use hyper::StatusCode;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use thitsax::mojaloop::amount::FspiopAmount;

const ADMIN: &str = "admin-token";
const PARTY: &str = "5215550001";
const JS_TIMEOUT: Duration = Duration::from_secs(60);

fn node(plugin_port: u16, outbound_port: u16) -> String {
    format!(
        r#"
[node]
ilp_address = "test.node"
[admin]
token = "{ADMIN}"
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
outgoing_url = "http://127.0.0.1:{plugin_port}/"
outgoing_token = "node-to-sender"
max_packet_amount = 500
[mojaloop]
dfsp_id = "thitsaxfsp"
outbound_url = "http://127.0.0.1:{outbound_port}"
party = {{ id_type = "BUSINESS", id_value = "thitsax" }}
payout_window_ms = 30000
[[mojaloop.currencies]]
code = "MXN"
decimals = 2
account = "mxn"
"#
    )
}

struct Setup {
    node: TestNode,
    backend: TestBackend,
    _connectors: (Connector, Connector),
    plugin_port: u16,
}

async fn setup(mojaloop: &Mojaloop) -> Setup {
    let plugin_port = reserve_port();
    let payer = ConnectorConfig::new("thitsaxfsp", "127.0.0.1:9").auto_accept(false);
    let node = TestNode::start(&node(plugin_port, payer.ports.outbound)).await;
    let backend = TestBackend::start().await;
    let payee = ConnectorConfig::new("payeefsp", &backend.endpoint()).auto_accept(false);
    let connectors = Connector::start_pair(mojaloop, payer, payee).await;
    Setup { node, backend, _connectors: connectors, plugin_port }
}

/// `pay.js` delivers `units` (MXN, scale 2) to the party's receiver; returns its "paid" event
/// and the id of the incoming payment it paid (the payout's id).
async fn pay(setup: &Setup, node_js: &Path, name: &str, units: u64) -> (Value, String) {
    let spsp = setup.node.spsp_addr.unwrap();
    // As FSPIOP writes it ("7", never "7.00", which the receiver refuses).
    let amount = FspiopAmount::from_account(units, 2, 2).unwrap().0;
    let args = [
        "--port".to_string(),
        setup.plugin_port.to_string(),
        "--url".into(),
        setup.node.url(),
        "--incoming-token".into(),
        "node-to-sender".into(),
        "--outgoing-token".into(),
        "sender-token".into(),
        "--spsp-url".into(),
        format!("http://{spsp}/mojaloop/MSISDN/{PARTY}?currency=MXN&amount={amount}"),
        "--amount-to-deliver".into(),
        units.to_string(),
    ];
    let mut script = Script::start(node_js, name, "pay.js", &args);
    let set_up = script.event("setup", JS_TIMEOUT).await;
    // test.node.mxn.<incoming payment>.<token>
    let address = set_up["destinationAddress"].as_str().expect("destinationAddress").to_string();
    let payment = address.split('.').nth(3).expect("the payment's segment").to_string();
    (script.event("paid", JS_TIMEOUT).await, payment)
}

async fn admin(node: &TestNode, method: &str, path: &str) -> common::HttpAnswer {
    admin_call(&client(), node.admin_addr.unwrap(), method, path, Some(ADMIN), None).await
}

/// The payout's admin view once it is in `state`.
async fn payout_in(node: &TestNode, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let all = admin(node, "GET", "/payouts").await.json(StatusCode::OK);
        if let Some(found) = all.as_array().unwrap().iter().find(|p| p["state"] == state) {
            return found.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no payout {state}: {all}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interledger_pay_pays_a_mojaloop_party_out_exactly_once() {
    let test = "interledger_pay_pays_a_mojaloop_party_out_exactly_once";
    let Some(mojaloop) = mojaloop_or_skip(test) else { return };
    let Some(node_js) = node_or_skip(test) else { return };
    let setup = setup(&mojaloop).await;
    setup.backend.add_party("MSISDN", PARTY, "Ana");

    // 12.34 MXN, in packets of at most 5 MXN: the receiver's target, reached exactly.
    let (paid, id) = pay(&setup, &node_js, "pay", 1234).await;
    assert_eq!((paid["amountDelivered"].as_str(), paid["error"].is_null()), (Some("1234"), true), "{paid}");

    // The payout: one transfer of exactly 12.34 MXN to the party, from the node's party.
    let backend = &setup.backend;
    backend.wait_until("paid the party", Duration::from_secs(90), |b| !b.paid().is_empty()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while admin(&setup.node, "GET", &format!("/payouts/{id}")).await.json(StatusCode::OK)["state"] != "paid" {
        assert!(tokio::time::Instant::now() < deadline, "the payout did not end paid");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let view = admin(&setup.node, "GET", &format!("/payouts/{id}")).await.json(StatusCode::OK);
    assert_eq!((view["state"].as_str(), view["amount"].as_str()), (Some("paid"), Some("1234")), "{view}");
    let transfers = backend.paid();
    assert_eq!(transfers.len(), 1, "{transfers:#?}");
    assert_eq!((transfers[0].amount.as_str(), transfers[0].currency.as_str()), ("12.34", "MXN"));
    assert_eq!(
        (transfers[0].payee_id_type.as_str(), transfers[0].payee_id_value.as_str()),
        ("MSISDN", PARTY)
    );
    assert_eq!(view["transfer_id"].as_str(), Some(transfers[0].transfer_id.as_str()), "{view}");
    let metrics = admin(&setup.node, "GET", "/metrics").await.text();
    for line in [
        r#"thitsax_mojaloop_payouts_total{state="created"} 1"#,
        r#"thitsax_mojaloop_payouts_total{state="paid"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in:\n{metrics}");
    }
    // The books: the child paid 12.34 MXN; the node's MXN account received it and paid it out.
    assert_eq!(setup.node.balance("sender").await, -1234);
    assert_eq!(setup.node.balance("mxn").await, 0);
    setup.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_payout_is_kept_with_its_money_then_paid_again_or_refunded() {
    let test = "a_refused_payout_is_kept_with_its_money_then_paid_again_or_refunded";
    let Some(mojaloop) = mojaloop_or_skip(test) else { return };
    let Some(node_js) = node_or_skip(test) else { return };
    let setup = setup(&mojaloop).await;
    // The party is unknown to the payee DFSP: the scheme refuses (3204) before anything is
    // accepted.
    let (paid, _) = pay(&setup, &node_js, "pay", 700).await;
    assert_eq!(paid["amountDelivered"].as_str(), Some("700"), "{paid}");
    let failed = payout_in(&setup.node, "failed").await;
    assert_eq!(failed["amount"].as_str(), Some("700"), "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("3204"), "{failed}");
    assert!(setup.backend.paid().is_empty());
    assert_eq!(setup.node.balance("mxn").await, 0, "the money is held by the payout");
    let id = failed["id"].as_str().unwrap().to_string();
    // Only a failed payout is acted on; an unknown one is 404.
    admin(&setup.node, "POST", "/payouts/nope/retry").await.json(StatusCode::NOT_FOUND);

    // The party now exists: the operator pays it again, as a new transfer.
    setup.backend.add_party("MSISDN", PARTY, "Ana");
    let retried = admin(&setup.node, "POST", &format!("/payouts/{id}/retry")).await.json(StatusCode::OK);
    assert_eq!(
        (retried["state"].as_str(), retried["attempt"].as_u64()),
        (Some("pending"), Some(2)),
        "{retried}"
    );
    let backend = &setup.backend;
    backend.wait_until("paid the party", Duration::from_secs(90), |b| b.paid().len() == 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let view = admin(&setup.node, "GET", &format!("/payouts/{id}")).await.json(StatusCode::OK);
        if view["state"] == "paid" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(backend.paid()[0].amount, "7");
    let again = admin(&setup.node, "POST", &format!("/payouts/{id}/refund")).await;
    again.json(StatusCode::CONFLICT);

    // Another is refused (the payee refuses its transfers); the operator refunds it: its money
    // goes back to the node's MXN account, once.
    backend.refuse_transfers(StatusCode::INTERNAL_SERVER_ERROR, "5001", "payee has no liquidity");
    pay(&setup, &node_js, "pay-2", 300).await;
    let failed = payout_in(&setup.node, "failed").await;
    assert!(failed["error"].as_str().unwrap().contains("5001"), "{failed}");
    let id = failed["id"].as_str().unwrap().to_string();
    let refunded = admin(&setup.node, "POST", &format!("/payouts/{id}/refund")).await.json(StatusCode::OK);
    assert_eq!(refunded["state"].as_str(), Some("refunded"), "{refunded}");
    assert_eq!(setup.node.balance("mxn").await, 300, "refunded to the node's account");
    admin(&setup.node, "POST", &format!("/payouts/{id}/refund")).await.json(StatusCode::CONFLICT);
    assert_eq!(setup.node.balance("mxn").await, 300, "once");
    assert_eq!(backend.paid().len(), 1, "the refused transfer paid nothing");
    assert_eq!(setup.node.balance("sender").await, -1000);
    setup.node.stop().await;
}
