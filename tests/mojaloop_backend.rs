//! The backend API the Mojaloop Connector calls (the node as payee DFSP), on a real node: party
//! lookups answered from `[[mojaloop.parties]]` and an SPSP query to each party's Interledger
//! receiver — here a second real node's local account — with the FSPIOP error codes the
//! Connector passes on (each answer with both `statusCode` and `message`).

mod common;

use common::{admin_call, client, TestNode};
use hyper::StatusCode;

/// A node whose local accounts are the receivers the parties are mapped to.
const RECEIVER: &str = r#"
[node]
ilp_address = "test.wallet"
[[accounts]]
id = "shop"
relation = "local"
asset_code = "MXN"
asset_scale = 2
[[accounts]]
id = "5217755"
relation = "local"
asset_code = "MXN"
asset_scale = 2
"#;

fn scheme_node(receiver_spsp: &str, closed: u16) -> String {
    format!(
        r#"
[node]
ilp_address = "test.cnp"
[rates.prices]
MXN = "0.05"
USD = "1"
[[accounts]]
id = "mxn"
relation = "local"
asset_code = "MXN"
asset_scale = 6
[[accounts]]
id = "usd"
relation = "local"
asset_code = "USD"
asset_scale = 6
[mojaloop]
dfsp_id = "thitsax"
outbound_url = "http://127.0.0.1:9/"
party = {{ id_type = "BUSINESS", id_value = "thitsax" }}
[[mojaloop.currencies]]
code = "MXN"
decimals = 2
account = "mxn"
[[mojaloop.currencies]]
code = "USD"
decimals = 2
account = "usd"
[[mojaloop.parties]]
id_type = "MSISDN"
id_value = "5215550001"
receiver = "http://{receiver_spsp}/shop"
[[mojaloop.parties]]
id_type = "MSISDN"
id_value_prefix = "52177"
receiver = "http://{receiver_spsp}/{{id_value}}"
[[mojaloop.parties]]
id_type = "ALIAS"
id_value = "down"
receiver = "http://127.0.0.1:{closed}/shop"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parties_are_found_through_their_receivers_and_refused_with_fspiop_codes() {
    let wallet = TestNode::start(RECEIVER).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let node = TestNode::start(&scheme_node(&wallet.spsp_addr.unwrap().to_string(), closed_port)).await;
    let backend = node.mojaloop_addr.expect("the backend listener is bound with [mojaloop]");
    let get = |path: String| async move { admin_call(&client(), backend, "GET", &path, None, None).await };

    // A served party whose receiver answers SPSP: found, idType and idValue echoed.
    let found = get("/parties/MSISDN/5215550001".into()).await.json(StatusCode::OK);
    assert_eq!((found["idType"].as_str(), found["idValue"].as_str()), (Some("MSISDN"), Some("5215550001")));
    assert_eq!(found["fspId"], "thitsax");

    // Refusals: (path, HTTP status, FSPIOP code).
    let cases = [
        // Served by prefix, but the receiver says there is no such receiver (no account "5217700").
        ("/parties/MSISDN/5217700", StatusCode::NOT_FOUND, "3204"),
        // Not served at all.
        ("/parties/MSISDN/5219990000", StatusCode::NOT_FOUND, "3204"),
        ("/parties/EMAIL/5215550001", StatusCode::NOT_FOUND, "3204"),
        // Not an id at all.
        ("/parties/MSISDN/a%2Fb", StatusCode::NOT_FOUND, "3204"),
        ("/parties/MSISDN/5215550001/sub", StatusCode::NOT_FOUND, "3204"),
        // The receiver cannot be asked now.
        ("/parties/ALIAS/down", StatusCode::SERVICE_UNAVAILABLE, "2003"),
        // Not a path of the backend API this node serves.
        ("/participants", StatusCode::NOT_FOUND, "3002"),
        ("/parties/MSISDN/%zz", StatusCode::BAD_REQUEST, "3100"),
    ];
    for (path, status, code) in cases {
        let answer = get(path.into()).await.json(status);
        assert_eq!(answer["statusCode"], code, "{path}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{path}: {answer}");
    }
    // A prefix-served party whose receiver exists: the id went into the receiver's URL.
    let by_prefix = get("/parties/MSISDN/5217755".into()).await.json(StatusCode::OK);
    assert_eq!(by_prefix["idValue"], "5217755");
    node.stop().await;
    wallet.stop().await;
}

/// Quote requests the node cannot serve, each refused with its FSPIOP code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quote_requests_the_node_cannot_serve_are_refused_with_their_codes() {
    let wallet = TestNode::start(RECEIVER).await;
    let node = TestNode::start(&scheme_node(&wallet.spsp_addr.unwrap().to_string(), 9)).await;
    let backend = node.mojaloop_addr.unwrap();
    let quote = |currency: &str, amount_type: &str, to: &str, amount: &str| {
        format!(
            r#"{{"quoteId": "q", "transactionId": "t", "to": {{"idType": "MSISDN", "idValue": "{to}"}},
                "from": {{"idType": "MSISDN", "idValue": "1"}}, "amountType": "{amount_type}",
                "amount": "{amount}", "currency": "{currency}", "transactionType": {{}}}}"#
        )
    };
    let cases = [
        (quote("EUR", "SEND", "5215550001", "10"), StatusCode::BAD_REQUEST, "5106"),
        (quote("MXN", "RECEIVE", "5215550001", "10"), StatusCode::BAD_REQUEST, "3100"),
        (quote("MXN", "SEND", "5215550001", "10.50"), StatusCode::BAD_REQUEST, "3100"),
        (quote("MXN", "SEND", "5215550001", "0.00001"), StatusCode::BAD_REQUEST, "3100"),
        // Served, but this node has no route to the receiver's node: the probe's F02 is the
        // destination's error.
        (quote("MXN", "SEND", "5215550001", "0.0001"), StatusCode::INTERNAL_SERVER_ERROR, "3201"),
        (quote("MXN", "SEND", "5219990000", "10"), StatusCode::NOT_FOUND, "3204"),
        ("{not json".to_string(), StatusCode::BAD_REQUEST, "3100"),
    ];
    for (body, status, code) in cases {
        let answer =
            admin_call(&client(), backend, "POST", "/quoterequests", None, Some(&body)).await.json(status);
        assert_eq!(answer["statusCode"], code, "{body}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    }
    // No money moved: the probe's reservations were released.
    assert_eq!(node.balance("mxn").await, 0);
    node.stop().await;
    wallet.stop().await;
}

/// A transfer to a party whose receiver is down: the scheme hears a destination communication
/// error, and no money moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_to_a_receiver_that_is_down_is_refused_and_moves_nothing() {
    let wallet = TestNode::start(RECEIVER).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let node = TestNode::start(&scheme_node(&wallet.spsp_addr.unwrap().to_string(), closed_port)).await;
    let in_a_minute = chrono::Utc::now() + chrono::Duration::seconds(60);
    let body = format!(
        r#"{{"transferId": "0b9e2e3c-8a51-4a2b-9d8e-0f1e2d3c4b5a", "quote": {{"transferAmount": "10",
            "transferAmountCurrency": "MXN", "expiration": "{}"}},
            "to": {{"idType": "ALIAS", "idValue": "down"}}}}"#,
        in_a_minute.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    let backend = node.mojaloop_addr.unwrap();
    let answer = admin_call(&client(), backend, "POST", "/transfers", None, Some(&body))
        .await
        .json(StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer["statusCode"], "1001", "{answer}");
    assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    assert_eq!(node.balance("mxn").await, 0);
    // The same transferId again in another served currency: the transfer modified, not a second
    // payment (payment ids are per account).
    let in_usd = body.replace("\"MXN\"", "\"USD\"");
    let modified = admin_call(&client(), backend, "POST", "/transfers", None, Some(&in_usd))
        .await
        .json(StatusCode::BAD_REQUEST);
    assert_eq!(modified["statusCode"], "3106", "{modified}");
    assert_eq!(node.balance("usd").await, 0);
    node.stop().await;
    wallet.stop().await;
}

#[tokio::test]
async fn without_a_mojaloop_section_no_backend_listener_is_bound() {
    let node = TestNode::start(RECEIVER).await;
    assert_eq!(node.mojaloop_addr, None);
    node.stop().await;
}
