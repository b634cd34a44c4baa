//! Settlement kind `mojaloop` between two ThitsaX nodes that are DFSPs of one scheme, through two
//! real Mojaloop Connectors (`@mojaloop/sdk-scheme-adapter` 18.0.2) back to back, each in the
//! two-step flow with its node as its backend. Node A and node B peer over ILP-over-HTTP in MXN
//! (scale 4); each account of the relationship names the other's settlement party
//! (`mojaloop_settlement`). Payments push A's balance with B over its threshold: A settles with
//! one Mojaloop transfer, B credits it once; then the other way. The scheme carries 2 decimals:
//! what it cannot carry stays on the balances, and both nodes' books agree to the unit.

mod common;

use common::mojaloop::{mojaloop_or_skip, Connector, ConnectorConfig};
use common::{admin_call, client, reserve_port, TestNode};
use hyper::StatusCode;
use std::time::Duration;
use thitsax::store::Store;

const ADMIN: &str = "admin-token";

/// One node of the pair: `me` and `peer` are "a" or "b".
fn node(me: &str, peer: &str, listen: u16, peer_listen: u16, outbound_port: u16) -> String {
    format!(
        r#"
[node]
ilp_address = "test.{me}"
[http]
listen = "127.0.0.1:{listen}"
[admin]
token = "{ADMIN}"
[settlement]
scan_interval_ms = 200
retry_first_ms = 100
retry_max_ms = 1000
[[accounts]]
id = "mxn"
relation = "local"
asset_code = "MXN"
asset_scale = 4
min_balance = -1000000000000
[[accounts]]
id = "{peer}"
relation = "peer"
asset_code = "MXN"
asset_scale = 4
ilp_address = "test.{peer}"
incoming_token = "{peer}-to-{me}"
outgoing_url = "http://127.0.0.1:{peer_listen}/"
outgoing_token = "{me}-to-{peer}"
min_balance = -1000000000000
settle_threshold = 100000
settle_to = 0
mojaloop_settlement = {{ peer_party = {{ id_type = "ACCOUNT_ID", id_value = "{me}-at-{peer}", fsp_id = "thitsax{peer}" }}, own_party = {{ id_type = "ACCOUNT_ID", id_value = "{peer}-at-{me}" }} }}
[mojaloop]
dfsp_id = "thitsax{me}"
outbound_url = "http://127.0.0.1:{outbound_port}"
party = {{ id_type = "BUSINESS", id_value = "thitsax-{me}" }}
[[mojaloop.currencies]]
code = "MXN"
decimals = 2
account = "mxn"
"#
    )
}

async fn pay(from: &TestNode, to: &TestNode, id: &str, amount: u64) {
    let receiver = format!("http://{}/mxn", to.spsp_addr.unwrap());
    let body = format!(
        r#"{{"id": "{id}", "account": "mxn", "receiver": "{receiver}", "amount": "{amount}",
            "amount_kind": "source", "deadline_in_s": 30}}"#
    );
    let admin = from.admin_addr.unwrap();
    admin_call(&client(), admin, "POST", "/payments", Some(ADMIN), Some(&body))
        .await
        .json(StatusCode::CREATED);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let path = format!("/payments/{id}");
        let p = admin_call(&client(), admin, "GET", &path, Some(ADMIN), None).await.json(StatusCode::OK);
        if p["state"] != "sending" {
            assert_eq!(p["state"], "completed", "{p}");
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "payment still sending: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the node's balance of `account` is `expected` (settlements run in the background).
async fn balance_becomes(node: &TestNode, account: &str, expected: i128, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let balance = node.balance(account).await;
        if balance == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: balance of {account} is {balance}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dfsp_nodes_settle_both_ways_with_one_mojaloop_transfer_each() {
    let test = "two_dfsp_nodes_settle_both_ways_with_one_mojaloop_transfer_each";
    let Some(mojaloop) = mojaloop_or_skip(test) else { return };
    let (listen_a, listen_b) = (reserve_port(), reserve_port());
    let mut connector_a = ConnectorConfig::new("thitsaxa", "127.0.0.1:9").auto_accept(false);
    let mut connector_b = ConnectorConfig::new("thitsaxb", "127.0.0.1:9").auto_accept(false);
    let a = TestNode::start_as_is(&node("a", "b", listen_a, listen_b, connector_a.ports.outbound)).await;
    let b = TestNode::start_as_is(&node("b", "a", listen_b, listen_a, connector_b.ports.outbound)).await;
    connector_a.backend_endpoint = a.mojaloop_addr.unwrap().to_string();
    connector_b.backend_endpoint = b.mojaloop_addr.unwrap().to_string();
    let (_connector_a, _connector_b): (Connector, Connector) =
        Connector::start_pair(&mojaloop, connector_a, connector_b).await;

    // A pays 12.3456 MXN to B's local account: A owes B 123456 units, over the 100000 threshold.
    // A settles all of it that the scheme's 2 decimals carry, 12.34 MXN, in one transfer; the 56
    // units below a cent stay on the balance. B credits the transfer to A's account.
    pay(&a, &b, "a-to-b-1", 123_456).await;
    balance_becomes(&a, "b", 56, "A settled 12.34 MXN").await;
    balance_becomes(&b, "a", -56, "B credited A's 12.34 MXN").await;
    assert_eq!(b.balance("mxn").await, 123_456);

    // The other way: B pays 20 MXN; it owes A 200000 - 56 = 199944, and settles 19.99 MXN.
    pay(&b, &a, "b-to-a-1", 200_000).await;
    balance_becomes(&b, "a", 44, "B settled 19.99 MXN").await;
    balance_becomes(&a, "b", -44, "A credited B's 19.99 MXN").await;

    // One transfer each way, and nothing more comes: the settlements ended.
    for (node, peer) in [(&a, "b"), (&b, "a")] {
        let figures = &node.node.settlement.counters;
        // A settlement ends when the payer's Connector answers, which may be after the payee's
        // node credited it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while figures.settled.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "the settlement with {peer} did not end");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(figures.settled.load(std::sync::atomic::Ordering::Relaxed), 1, "{peer}");
        assert_eq!(figures.refunded.load(std::sync::atomic::Ordering::Relaxed), 0, "{peer}");
        let account = node.node.accounts.load().get(peer).unwrap().clone();
        assert!(node.node.store.pending_settlements(&account).await.unwrap().is_empty());
    }
    // Another DFSP cannot pay into A's account's settlement party at B.
    let intruder = r#"{"quoteId": "q-x", "transactionId": "t-x", "amountType": "SEND", "amount": "1",
        "currency": "MXN", "to": {"idType": "ACCOUNT_ID", "idValue": "a-at-b"},
        "from": {"idType": "ACCOUNT_ID", "idValue": "x", "fspId": "intruderfsp"}}"#;
    let refused =
        admin_call(&client(), b.mojaloop_addr.unwrap(), "POST", "/quoterequests", None, Some(intruder))
            .await
            .json(StatusCode::BAD_REQUEST);
    assert_eq!(refused["statusCode"], "5100", "{refused}");

    // A settlement transfer from A's DFSP sent to B's backend again (the Connector replays what
    // reaches it) is answered as the first time and credited once, also after its quote expired;
    // the same id with another amount is refused (3106), a new one past its expiration too (3303).
    let transfer = |id: &str, amount: &str, expiration: &str| {
        format!(
            r#"{{"transferId": "{id}", "quote": {{"transferAmount": "{amount}", "transferAmountCurrency": "MXN",
                "expiration": "{expiration}"}}, "to": {{"idType": "ACCOUNT_ID", "idValue": "a-at-b"}},
                "from": {{"idType": "ACCOUNT_ID", "idValue": "b-at-a", "fspId": "thitsaxa"}},
                "amountType": "SEND", "currency": "MXN", "amount": "{amount}"}}"#
        )
    };
    let backend = b.mojaloop_addr.unwrap();
    let post = |body: String| async move {
        admin_call(&client(), backend, "POST", "/transfers", None, Some(&body)).await
    };
    let id = "1f0c2b4e-7d1a-4c2e-9b3f-5a6d7e8f9a0b";
    let future = "2999-01-01T00:00:00.000Z";
    let past = "2020-01-01T00:00:00.000Z";
    post(transfer(id, "1.5", future)).await.json(StatusCode::OK);
    balance_becomes(&b, "a", 44 + 15_000, "B credited 1.50 MXN").await;
    assert_eq!(post(transfer(id, "1.5", past)).await.json(StatusCode::OK)["homeTransactionId"], id);
    assert_eq!(post(transfer(id, "2", future)).await.json(StatusCode::BAD_REQUEST)["statusCode"], "3106");
    let expired = post(transfer("5c4b3a29-1807-4f6e-8d5c-4b3a29180706", "1", past)).await;
    assert_eq!(expired.json(StatusCode::BAD_REQUEST)["statusCode"], "3303");
    assert_eq!(b.balance("a").await, 44 + 15_000, "credited once");
    a.stop().await;
    b.stop().await;
}
