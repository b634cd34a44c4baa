//! ThitsaX as the payee DFSP of a Mojaloop scheme, through the real Connector
//! (`@mojaloop/sdk-scheme-adapter` 18.0.2): a payer DFSP (its core system a test backend, a test
//! double) and its Connector, back to back with ThitsaX's Connector, whose backend is the node's
//! backend API. The party is a wallet on a second ThitsaX node (a local USD account); the node
//! serving the scheme holds MXN and converts over ILP-over-HTTP. The party is found, the quote
//! probed, the transfer paid over STREAM before the Connector commits it; a replay pays nothing
//! more; a transfer past its quote's expiration is refused.

mod common;

use common::mojaloop::{mojaloop_or_skip, Connector, ConnectorConfig};
use common::mojaloop_backend::TestBackend;
use common::{admin_call, client as client_http, TestNode};
use hyper::StatusCode;
use std::time::Duration;
use thitsax::http::tls::TlsConfig;
use thitsax::mojaloop::amount::FspiopAmount;
use thitsax::mojaloop::outbound::{Finish, NewTransfer, OutboundClient, OutboundLimits, Stage};
use thitsax::mojaloop::party::Party;

const WALLET: &str = r#"
[node]
ilp_address = "test.wallet"
[[accounts]]
id = "cnp"
relation = "peer"
asset_code = "USD"
asset_scale = 9
ilp_address = "test.cnp"
incoming_token = "cnp-to-wallet"
outgoing_url = "http://127.0.0.1:9/"
outgoing_token = "wallet-to-cnp"
min_balance = -1000000000000
[[accounts]]
id = "ana"
relation = "local"
asset_code = "USD"
asset_scale = 9
"#;

fn cnp(wallet_url: &str, wallet_spsp: &str, outbound_port: u16) -> String {
    format!(
        r#"
[node]
ilp_address = "test.cnp"
[rates.prices]
USD = "1"
MXN = "0.05"
[[accounts]]
id = "mxn"
relation = "local"
asset_code = "MXN"
asset_scale = 2
min_balance = -100000000
[[accounts]]
id = "wallet"
relation = "peer"
asset_code = "USD"
asset_scale = 9
ilp_address = "test.wallet"
incoming_token = "wallet-to-cnp"
outgoing_url = "{wallet_url}"
outgoing_token = "cnp-to-wallet"
[mojaloop]
dfsp_id = "thitsaxfsp"
outbound_url = "http://127.0.0.1:{outbound_port}"
party = {{ id_type = "BUSINESS", id_value = "thitsax" }}
[[mojaloop.currencies]]
code = "MXN"
decimals = 2
account = "mxn"
fee_rate = "0.01"
[[mojaloop.parties]]
id_type = "MSISDN"
id_value = "5215550001"
receiver = "http://{wallet_spsp}/ana"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payer_in_the_scheme_pays_a_wallet_over_interledger_once_quoted_and_never_twice() {
    let test = "a_payer_in_the_scheme_pays_a_wallet_over_interledger_once_quoted_and_never_twice";
    let Some(mojaloop) = mojaloop_or_skip(test) else { return };
    let wallet = TestNode::start(WALLET).await;
    let mut payee = ConnectorConfig::new("thitsaxfsp", "127.0.0.1:9").auto_accept(false);
    let node =
        TestNode::start(&cnp(&wallet.url(), &wallet.spsp_addr.unwrap().to_string(), payee.ports.outbound))
            .await;
    payee.backend_endpoint = node.mojaloop_addr.unwrap().to_string();
    let payer_backend = TestBackend::start().await;
    let payer = ConnectorConfig::new("payerfsp", &payer_backend.endpoint()).auto_accept(false);
    let (payer, _payee): (Connector, Connector) = Connector::start_pair(&mojaloop, payer, payee).await;

    let limits = OutboundLimits { timeout: Duration::from_secs(40), response_bytes_max: 65_536 };
    let client = OutboundClient::new(&payer.outbound_url(), &limits, &TlsConfig::new(&Default::default()));
    let from = Party::new("MSISDN", "5215559999", None).unwrap();
    let to = Party::new("MSISDN", "5215550001", None).unwrap();
    let amount = FspiopAmount::parse("100").unwrap();
    let transfer =
        NewTransfer { home_transaction_id: "q-1", from: &from, to: &to, currency: "MXN", amount, note: None };

    // The lookup reaches ThitsaX's backend, which asks the wallet's SPSP.
    let begun = client.begin(&transfer).await.unwrap();
    assert_eq!(begun.stage, Stage::PartyToAccept, "{begun:?}");
    // The quote: ThitsaX keeps 1 % (1 MXN) and probed the path for the rest (99 MXN at 0.05 USD
    // = 4.95 USD); nothing moved.
    let quoted = client.accept_party(&begun.transfer_id).await.unwrap();
    let Stage::QuoteToAccept(quote) = &quoted.stage else { panic!("not quoted: {quoted:?}") };
    assert_eq!((quote.transfer_amount.to_string().as_str(), quote.currency.as_str()), ("100", "MXN"));
    // What the payer sees of it, as the Connector relayed it: what the wallet gets at least.
    let raw = serde_json::json!({
        "homeTransactionId": "q-2",
        "from": {"idType": "MSISDN", "idValue": "5215559999"},
        "to": {"idType": "MSISDN", "idValue": "5215550001"},
        "amountType": "SEND", "currency": "MXN", "amount": "100", "transactionType": "TRANSFER",
    });
    let posted = payer.post_transfer(&raw).await;
    let accepted =
        payer.put_transfer(posted.str("/transferId"), &serde_json::json!({"acceptParty": true})).await;
    // At least 4.95 USD less the transfer's 1 % slippage: 4.9005 (the wallet gets 4.95 below).
    assert_eq!(accepted.str("/quoteResponse/body/payeeReceiveAmount/amount"), "4.9005", "{}", accepted.text);
    assert_eq!(accepted.str("/quoteResponse/body/payeeFspFee/amount"), "1", "{}", accepted.text);
    assert_eq!(accepted.str("/quoteResponse/body/payeeFspFee/currency"), "MXN", "{}", accepted.text);
    assert_eq!(accepted.str("/quoteResponse/body/payeeReceiveAmount/currency"), "USD", "{}", accepted.text);
    for (account, node) in [("mxn", &node), ("wallet", &node), ("ana", &wallet)] {
        assert_eq!(node.balance(account).await, 0, "{account}: a quote moved money");
    }

    // The transfer: ThitsaX pays the wallet over STREAM and answers only once it arrived.
    let done = client.accept_quote(&begun.transfer_id).await.unwrap();
    assert_eq!(done.stage, Stage::Finished(Finish::Committed), "{done:?}");
    assert_eq!(wallet.balance("ana").await, 4_950_000_000, "exactly 4.95 USD for 100 MXN less the fee");
    assert_eq!(node.balance("mxn").await, -9_900, "99 MXN paid on from the currency's account: 1 MXN kept");
    assert_eq!(node.balance("wallet").await, 4_950_000_000);

    // The same transfer again (a replay: the Connector does no duplicate check) is answered as
    // the first time, and nothing more is paid.
    let backend = node.mojaloop_addr.unwrap();
    let replay = |transfer_id: &str, expiration: &str| {
        format!(
            r#"{{"transferId": "{transfer_id}", "quote": {{"transferAmount": "100", "transferAmountCurrency": "MXN",
                "expiration": "{expiration}"}}, "to": {{"idType": "MSISDN", "idValue": "5215550001"}},
                "from": {{"idType": "MSISDN", "idValue": "5215559999"}}, "amountType": "SEND", "currency": "MXN",
                "amount": "100"}}"#
        )
    };
    let again = admin_call(
        &client_http(),
        backend,
        "POST",
        "/transfers",
        None,
        Some(&replay(&begun.transfer_id, "2020-01-01T00:00:00.000Z")),
    )
    .await
    .json(StatusCode::OK);
    assert_eq!(again["homeTransactionId"], begun.transfer_id.as_str());
    assert_eq!(wallet.balance("ana").await, 4_950_000_000, "a replay paid again");
    // A new transfer whose quote has expired is refused, and pays nothing.
    let expired = admin_call(
        &client_http(),
        backend,
        "POST",
        "/transfers",
        None,
        Some(&replay("5b9e2e3c-8a51-4a2b-9d8e-0f1e2d3c4b5a", "2020-01-01T00:00:00.000Z")),
    )
    .await
    .json(StatusCode::BAD_REQUEST);
    assert_eq!(expired["statusCode"], "3303", "{expired}");
    assert_eq!(wallet.balance("ana").await, 4_950_000_000);
    node.stop().await;
    wallet.stop().await;
}
