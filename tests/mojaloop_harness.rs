//! Self-tests of the Mojaloop Connector harness (tests/common/mojaloop.rs and its test backend)
//! against the real Connector, `@mojaloop/sdk-scheme-adapter` 18.0.2: two Connectors back to back
//! (DFSPs `payerfsp` and `payeefsp`, each one's PEER_ENDPOINT the other's inbound port), each
//! with its own test backend and its own Redis. The later Mojaloop tests build on what these
//! prove: a transfer commits and reaches the payee once, the two-step flow moves no money before
//! acceptQuote, an unknown party and a payee's refusal come back with their FSPIOP codes, and a
//! payer Connector crashed between the two steps still completes the transfer, once.

mod common;

use common::mojaloop::{mojaloop_or_skip, BackToBack, Connector, ConnectorConfig, OutboundAnswer};
use common::mojaloop_backend::TestBackend;
use hyper::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The payee's party known to its backend.
const PAYEE_MSISDN: &str = "255700000002";

/// An outbound `POST /transfers` request from payerfsp's customer to `to_msisdn`.
fn transfer_request(to_msisdn: &str, amount: &str) -> Value {
    json!({
        "homeTransactionId": format!("harness-{}", std::process::id()),
        "from": {"idType": "MSISDN", "idValue": "255700000001", "displayName": "Payer One"},
        "to": {"idType": "MSISDN", "idValue": to_msisdn},
        "amountType": "SEND",
        "currency": "USD",
        "amount": amount,
        "transactionType": "TRANSFER",
        "note": "harness self-test",
    })
}

async fn back_to_back(test: &str, auto_accept: bool) -> Option<BackToBack> {
    let mojaloop = mojaloop_or_skip(test)?;
    let started = Instant::now();
    let pair = BackToBack::start(&mojaloop, auto_accept, |_| {}).await;
    eprintln!("{test}: two Connectors answering after {:?}", started.elapsed());
    pair.payee_backend.add_party("MSISDN", PAYEE_MSISDN, "Payee Two");
    Some(pair)
}

/// A Connector's config with no peer Connector: its PEER_ENDPOINT is its backend too (which
/// answers no FSPIOP; enough for tests of the process, not of payments). The backend is returned
/// to be kept for the test's length.
async fn alone(dfsp_id: &str) -> (TestBackend, ConnectorConfig) {
    let backend = TestBackend::start().await;
    let mut config = ConnectorConfig::new(dfsp_id, &backend.endpoint());
    config.peer_endpoint = backend.endpoint();
    (backend, config)
}

fn assert_committed(answer: &OutboundAnswer) {
    answer.expect_status(200);
    assert_eq!(answer.str("/currentState"), "COMPLETED", "answer: {}", answer.text);
    // COMPLETED alone is not success: the payee may have answered ABORTED or RESERVED.
    assert_eq!(answer.str("/fulfil/body/transferState"), "COMMITTED", "answer: {}", answer.text);
}

/// The payee's backend was paid exactly once, `amount` USD to the payee's party, for
/// `transfer_id`; the payer's backend was asked to pay nothing.
fn assert_paid_once(pair: &BackToBack, transfer_id: &str, amount: &str) {
    let paid = pair.payee_backend.paid();
    assert_eq!(paid.len(), 1, "payee backend paid: {paid:#?}");
    let transfer = &paid[0];
    assert_eq!(transfer.transfer_id, transfer_id);
    assert_eq!((transfer.amount.as_str(), transfer.currency.as_str()), (amount, "USD"));
    assert_eq!((transfer.payee_id_type.as_str(), transfer.payee_id_value.as_str()), ("MSISDN", PAYEE_MSISDN));
    assert_eq!(pair.payee_backend.transfer_requests(), 1, "POST /transfers repeated to the payee backend");
    assert!(pair.payer_backend.transfers().is_empty(), "the payer's backend was asked to pay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_accepted_transfer_commits_and_reaches_the_payee_backend_once() {
    let test = "auto_accepted_transfer_commits_and_reaches_the_payee_backend_once";
    let Some(pair) = back_to_back(test, true).await else { return };

    let started = Instant::now();
    let answer = pair.payer.post_transfer(&transfer_request(PAYEE_MSISDN, "10.5")).await;
    eprintln!("{test}: POST /transfers answered in {:?}", started.elapsed());

    assert_committed(&answer);
    assert_paid_once(&pair, answer.str("/transferId"), "10.5");
    assert_eq!(pair.payee_backend.quote_requests().len(), 1, "one quote before the transfer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_step_transfer_moves_no_money_before_accept_quote() {
    let test = "two_step_transfer_moves_no_money_before_accept_quote";
    let Some(pair) = back_to_back(test, false).await else { return };

    let posted = pair.payer.post_transfer(&transfer_request(PAYEE_MSISDN, "7.25")).await;
    posted.expect_status(200);
    assert_eq!(posted.str("/currentState"), "WAITING_FOR_PARTY_ACCEPTANCE", "answer: {}", posted.text);
    let transfer_id = posted.str("/transferId").to_string();
    assert_eq!(pair.payee_backend.party_lookups(), [format!("/parties/MSISDN/{PAYEE_MSISDN}")]);

    let party_accepted = pair.payer.put_transfer(&transfer_id, &json!({"acceptParty": true})).await;
    party_accepted.expect_status(200);
    assert_eq!(
        party_accepted.str("/currentState"),
        "WAITING_FOR_QUOTE_ACCEPTANCE",
        "answer: {}",
        party_accepted.text
    );
    assert_eq!(party_accepted.str("/quoteResponse/body/transferAmount/amount"), "7.25");
    assert_eq!(party_accepted.str("/quoteResponse/body/transferAmount/currency"), "USD");
    assert_eq!(pair.payee_backend.quote_requests().len(), 1);
    assert!(pair.payee_backend.transfers().is_empty(), "money moved before acceptQuote");
    assert_eq!(pair.payee_backend.transfer_requests(), 0);

    let completed = pair.payer.put_transfer(&transfer_id, &json!({"acceptQuote": true})).await;
    assert_committed(&completed);
    assert_eq!(completed.str("/transferId"), transfer_id);
    assert_paid_once(&pair, &transfer_id, "7.25");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_party_comes_back_as_fspiop_3204() {
    let test = "unknown_party_comes_back_as_fspiop_3204";
    let Some(pair) = back_to_back(test, true).await else { return };

    let answer = pair.payer.post_transfer(&transfer_request("255799999999", "10")).await;

    // As observed on 18.0.2: 500 with the FSPIOP code as statusCode, the state ERROR_OCCURRED,
    // the payee's error relayed under lastError.
    answer.expect_status(500);
    assert_eq!(answer.str("/statusCode"), "3204", "answer: {}", answer.text);
    assert_eq!(answer.str("/transferState/currentState"), "ERROR_OCCURRED", "answer: {}", answer.text);
    assert_eq!(
        answer.str("/transferState/lastError/mojaloopError/errorInformation/errorCode"),
        "3204",
        "answer: {}",
        answer.text
    );
    assert_eq!(pair.payee_backend.party_lookups(), ["/parties/MSISDN/255799999999"]);
    assert!(pair.payee_backend.quote_requests().is_empty(), "quoted for a party that does not exist");
    assert!(pair.payee_backend.transfers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payee_refusal_comes_back_with_its_fspiop_code_and_pays_nothing() {
    let test = "payee_refusal_comes_back_with_its_fspiop_code_and_pays_nothing";
    let Some(pair) = back_to_back(test, true).await else { return };
    pair.payee_backend.refuse_transfers(StatusCode::INTERNAL_SERVER_ERROR, "5001", "insufficient");

    let answer = pair.payer.post_transfer(&transfer_request(PAYEE_MSISDN, "3")).await;

    answer.expect_status(500);
    assert_eq!(answer.str("/statusCode"), "5001", "answer: {}", answer.text);
    assert_eq!(answer.str("/transferState/currentState"), "ERROR_OCCURRED", "answer: {}", answer.text);
    let received = pair.payee_backend.transfers();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert!(!received[0].paid);
    assert!(pair.payee_backend.paid().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payer_connector_killed_between_accept_party_and_accept_quote_completes_once_after_restart() {
    let test = "payer_connector_killed_between_accept_party_and_accept_quote_completes_once_after_restart";
    let Some(mut pair) = back_to_back(test, false).await else { return };

    let posted = pair.payer.post_transfer(&transfer_request(PAYEE_MSISDN, "42")).await;
    assert_eq!(posted.str("/currentState"), "WAITING_FOR_PARTY_ACCEPTANCE", "answer: {}", posted.text);
    let transfer_id = posted.str("/transferId").to_string();
    let party_accepted = pair.payer.put_transfer(&transfer_id, &json!({"acceptParty": true})).await;
    assert_eq!(
        party_accepted.str("/currentState"),
        "WAITING_FOR_QUOTE_ACCEPTANCE",
        "answer: {}",
        party_accepted.text
    );

    let (outbound, pid) = (pair.payer.outbound_url(), pair.payer.pid().expect("running"));
    pair.payer.kill();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the killed Connector {pid} is not reaped"
    );
    // The transfer is kept in the payer's Redis while its Connector is down.
    let key = format!("transferModel_out_{transfer_id}");
    assert!(pair.payer.redis().cmd(&["GET", &key]).text().is_some(), "{key} not in the payer's Redis");

    let started = Instant::now();
    pair.payer.restart().await;
    eprintln!("{test}: restarted payer answering after {:?}", started.elapsed());
    assert_eq!(pair.payer.outbound_url(), outbound, "restarted on other ports");
    assert!(pair.payee_backend.transfers().is_empty(), "money moved before acceptQuote");

    let completed = pair.payer.put_transfer(&transfer_id, &json!({"acceptQuote": true})).await;
    assert_committed(&completed);
    assert_paid_once(&pair, &transfer_id, "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_exits_when_the_test_process_lets_go_of_its_stdin() {
    let test = "connector_exits_when_the_test_process_lets_go_of_its_stdin";
    let Some(mojaloop) = mojaloop_or_skip(test) else { return };
    let (_backend, config) = alone("lonefsp").await;
    let mut connector = Connector::start(&mojaloop, config).await;

    // What the kernel does when the test process dies: the pipe's write end closes.
    let pid = connector.close_stdin();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !connector.has_exited() {
        assert!(Instant::now() < deadline, "the Connector {pid} outlived its stdin by 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_failing_at_start_up_is_reported_at_once_with_its_log() {
    let test = "connector_failing_at_start_up_is_reported_at_once_with_its_log";
    let Some(mojaloop) = mojaloop_or_skip(test) else { return };
    let (_backend, mut config) = alone("brokenfsp").await;
    // The Connector's config refuses it before anything listens.
    config.extra_env.push(("EXPIRY_SECONDS".into(), "-1".into()));

    let started = Instant::now();
    let failed = tokio::spawn(async move { Connector::start(&mojaloop, config).await }).await;
    let panic = failed.err().expect("a Connector with EXPIRY_SECONDS=-1 started").into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("the Connector exited"), "{message}");
    assert!(message.contains("EXPIRY_SECONDS"), "the log tail is not in the message: {message}");
    // Seen exiting, not left to the 60 s start-up timeout.
    assert!(started.elapsed() < Duration::from_secs(30), "reported after {:?}", started.elapsed());
}

/// The test backend alone (no Connector): what a replayed FSPIOP transfer would meet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_backend_answers_a_repeated_transfer_the_same_and_pays_it_once() {
    let backend = TestBackend::start().await;
    let addr = backend.endpoint().parse().unwrap();
    let client = common::client();
    let transfer = |id: &str| {
        json!({"transferId": id, "amount": "5", "currency": "USD", "to": {"idType": "MSISDN", "idValue": PAYEE_MSISDN}})
            .to_string()
    };
    let post = |body: String| {
        let client = client.clone();
        async move { common::http_call(&client, addr, "POST", "/transfers", None, Some(&body)).await }
    };

    let first = tokio::spawn(post(transfer("t-1")));
    backend.wait_until("asked for t-1", Duration::from_secs(10), |b| b.transfer_requests() == 1).await;
    let first = first.await.unwrap().json(StatusCode::OK);
    let again = post(transfer("t-1")).await.json(StatusCode::OK);
    assert_eq!(again, first, "a repeat answered differently");
    assert_eq!(first["homeTransactionId"], "home-t-1");

    backend.refuse_transfers(StatusCode::INTERNAL_SERVER_ERROR, "5001", "insufficient");
    let refused = post(transfer("t-2")).await.json(StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(refused, json!({"statusCode": "5001", "message": "insufficient"}));
    // An id answered before keeps its answer; a refused one stays refused once accepted again.
    assert_eq!(post(transfer("t-1")).await.json(StatusCode::OK), first);
    backend.accept_transfers();
    assert_eq!(post(transfer("t-2")).await.json(StatusCode::INTERNAL_SERVER_ERROR), refused);

    assert_eq!(backend.transfer_requests(), 5);
    let ids: Vec<(String, bool)> = backend.transfers().into_iter().map(|t| (t.transfer_id, t.paid)).collect();
    assert_eq!(ids, [("t-1".to_string(), true), ("t-2".to_string(), false)]);
    assert_eq!(backend.paid().len(), 1);
}
