//! A Rafiki peer whose top-ups are paid through the Mojaloop scheme before they are recorded at
//! the Rafiki: the Rafiki's operator is also a DFSP of the scheme (`rafikifsp`, its core system
//! the test backend), so the node's settlement of the account is a Mojaloop transfer to the
//! operator's party, then `depositPeerLiquidity` at the Rafiki (the test double of
//! `tests/common/rafiki.rs`: Rafiki cannot run in CI).
//!
//! What it proves, through two real Mojaloop Connectors:
//! - a top-up whose deposit answers are lost, more times than one call tries, is paid **once** in
//!   the scheme and recorded **once** at the Rafiki. The worker's retry runs the rail again with
//!   the settlement's kept transfer (the Connector answers a completed transfer as it was,
//!   sending nothing), then the deposit with the same id and key;
//! - money the operator pays back in the scheme, to the node's own party for the account, is
//!   credited once and recorded at the Rafiki as **one** withdrawal (reserved, then posted),
//!   though the Rafiki's answers are lost: the Connector was answered at once, and the
//!   withdrawal owed, kept in the store with the credit, is recorded by the worker.
//!
//! Needs Node >= 18, `redis-server` and the Connector package (`npm ci --prefix tests/mojaloop`):
//! skipped without them unless `CI` is set, when it fails.

mod common;

use common::mojaloop::{mojaloop_or_skip, Connector, ConnectorConfig};
use common::mojaloop_backend::TestBackend;
use common::rafiki::{Options, RafikiDouble, RAFIKI_ADDRESS};
use common::rafiki_admin::{eventually, AdminOptions, Outage, NODE_PEER_ID};
use common::{admin_call, client, TestNode};
use hyper::StatusCode;
use std::time::Duration;
use thitsax::store::Store;

const ADMIN: &str = "admin-token";
/// The operator's party in the scheme that the node's top-ups pay.
const OPERATOR_PARTY: &str = "thitsax-liquidity";
const WAIT: Duration = Duration::from_secs(60);

fn config(rafiki: &RafikiDouble, outbound_port: u16) -> String {
    format!(
        r#"
[node]
ilp_address = "test.n"
log_level = "warn"
[admin]
token = "{ADMIN}"
[settlement]
scan_interval_ms = 200
retry_first_ms = 100
retry_max_ms = 1000
[mojaloop]
dfsp_id = "thitsaxfsp"
outbound_url = "http://127.0.0.1:{outbound_port}"
party = {{ id_type = "BUSINESS", id_value = "thitsax" }}
[[mojaloop.currencies]]
code = "MXN"
decimals = 2
account = "mxn"
{admin}[[accounts]]
id = "mxn"
relation = "local"
asset_code = "MXN"
asset_scale = 2
[[accounts]]
id = "rafiki"
relation = "peer"
asset_code = "MXN"
asset_scale = 2
ilp_address = "{RAFIKI_ADDRESS}"
outgoing_url = "http://127.0.0.1:{connector}/"
outgoing_token = "to-rafiki"
hold_time_ms_max = 4000
settle_threshold = -300
settle_to = -1000
rafiki_liquidity = {{ peer_id = "{NODE_PEER_ID}" }}
mojaloop_settlement = {{ peer_party = {{ id_type = "ACCOUNT_ID", id_value = "{OPERATOR_PARTY}", fsp_id = "rafikifsp" }}, own_party = {{ id_type = "ACCOUNT_ID", id_value = "rafiki-at-thitsax" }} }}
"#,
        admin = rafiki.admin_section(),
        connector = rafiki.connector_port,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_ups_and_paybacks_through_mojaloop_are_paid_and_recorded_once_through_lost_answers() {
    let test = "top_ups_and_paybacks_through_mojaloop_are_paid_and_recorded_once_through_lost_answers";
    let Some(mojaloop) = mojaloop_or_skip(test) else { return };
    let options =
        Options { admin: Some(AdminOptions::default()), initial_liquidity: 0, ..Options::default() };
    let rafiki = RafikiDouble::start_with(("MXN", 2), options).await;
    // Every deposit answer is lost after Rafiki applied it, three times: more than one call's
    // two attempts, so the worker must retry the whole settlement, rail included.
    rafiki.admin().fail_next(3, Outage::DropAfterApplying);

    let mut node_connector = ConnectorConfig::new("thitsaxfsp", "127.0.0.1:9").auto_accept(false);
    let node = TestNode::start(&config(&rafiki, node_connector.ports.outbound)).await;
    node_connector.backend_endpoint = node.mojaloop_addr.expect("the backend API is bound").to_string();
    let operator = TestBackend::start().await;
    operator.add_party("ACCOUNT_ID", OPERATOR_PARTY, "Rafiki operator");
    let operator_connector = ConnectorConfig::new("rafikifsp", &operator.endpoint()).auto_accept(false);
    let (_node_connector, operator_connector): (Connector, Connector) =
        Connector::start_pair(&mojaloop, node_connector, operator_connector).await;

    // The prefunding: balance 0 is above -300, so 1000 units (10.00 MXN) are paid in the scheme
    // and then recorded at Rafiki.
    eventually("the deposit recorded", WAIT, || rafiki.node_liquidity() == 1000).await;
    let account = node.node.accounts.load().get("rafiki").cloned().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !node.node.store.pending_settlements(&account).await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the top-up never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests = rafiki.admin().requests();
    let lost = requests.iter().filter(|r| r.outage.is_some()).count();
    assert_eq!(lost, 3, "the answers were lost as told: {requests:?}");

    // Paid once in the scheme, though the rail ran again on the retry.
    let paid = operator.paid();
    assert_eq!(paid.len(), 1, "{paid:#?}");
    assert_eq!((paid[0].amount.as_str(), paid[0].currency.as_str()), ("10", "MXN"));
    assert_eq!(paid[0].payee_id_value, OPERATOR_PARTY);
    // Recorded once at Rafiki, under one id and key.
    assert_eq!(rafiki.deposits(), [1000]);
    assert_eq!(node.balance("rafiki").await, -1000);

    // And the books agree.
    let path = "/accounts/rafiki/rafiki/liquidity";
    let admin = node.admin_addr.unwrap();
    let reconciled = admin_call(&client(), admin, "GET", path, Some(ADMIN), None).await.json(StatusCode::OK);
    assert_eq!(reconciled["difference"], "0", "{reconciled}");

    // The operator pays 4.00 MXN back in the scheme to the node's party for the account, while
    // the Rafiki's answers are lost after it applied them (the reservation's and then the post's).
    rafiki.admin().fail_next(2, Outage::DropAfterApplying);
    let posted = operator_connector
        .post_transfer(&serde_json::json!({
            "homeTransactionId": "operator-pays-back-1",
            "from": {"idType": "ACCOUNT_ID", "idValue": OPERATOR_PARTY, "displayName": "Rafiki operator"},
            "to": {"idType": "ACCOUNT_ID", "idValue": "rafiki-at-thitsax"},
            "amountType": "SEND", "currency": "MXN", "amount": "4", "transactionType": "TRANSFER",
        }))
        .await;
    posted.expect_status(200);
    let transfer_id = posted.str("/transferId").to_string();
    let quoted =
        operator_connector.put_transfer(&transfer_id, &serde_json::json!({"acceptParty": true})).await;
    quoted.expect_status(200);
    assert_eq!(quoted.str("/quoteResponse/body/transferAmount/amount"), "4", "{}", quoted.text);
    let done = operator_connector.put_transfer(&transfer_id, &serde_json::json!({"acceptQuote": true})).await;
    done.expect_status(200);
    assert_eq!(done.str("/fulfil/body/transferState"), "COMMITTED", "{}", done.text);
    // Credited at once; the withdrawal follows, recorded once whatever was lost.
    assert_eq!(node.balance("rafiki").await, -600);
    eventually("the withdrawal recorded", WAIT, || rafiki.node_liquidity() == 600).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !node.node.store.withdrawals_owed(&account, 10).await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the withdrawal is still owed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let applied = |operation: &str| {
        let ledger = rafiki.ledger.lock().unwrap();
        ledger.mutations().into_iter().filter(|m| m.operation == operation).collect::<Vec<_>>()
    };
    let reserved = applied("createPeerLiquidityWithdrawal");
    assert_eq!(reserved.len(), 1, "{reserved:?}");
    assert_eq!(reserved[0].input["amount"], "400");
    assert_eq!(applied("postLiquidityWithdrawal").len(), 1);
    let lost = rafiki.admin().requests().iter().filter(|r| r.outage.is_some()).count();
    assert_eq!(lost, 3 + 2, "the withdrawal's answers were lost as told");
    let reconciled = admin_call(&client(), admin, "GET", path, Some(ADMIN), None).await.json(StatusCode::OK);
    assert_eq!(
        (reconciled["rafiki_liquidity"].as_str(), reconciled["difference"].as_str()),
        (Some("600"), Some("0")),
        "{reconciled}"
    );
    assert_eq!(reconciled["withdrawals_owed"], "0", "{reconciled}");
    node.stop().await;
}
