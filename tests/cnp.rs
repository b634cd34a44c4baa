//! The cross-network provider of `examples/cnp/` end to end: a ThitsaX node, configured by
//! `examples/cnp/cnp.toml` itself (only its addresses moved to the test's ports), that is a DFSP
//! of a Mojaloop scheme and a peer of a Rafiki.
//!
//! ```text
//! credit union "mfifsp" (test backend) ─ Connector ═FSPIOP═ Connector "cnpfsp" ─backend API→ ThitsaX CNP
//!   ThitsaX CNP (test.cnp): local "mxn" (the scheme's MXN) ─peer "rafiki" (MXN 2)→ Rafiki (test.rafiki)
//!   Rafiki: wallet addresses http://127.0.0.1:<port>/<name> (SPSP, STREAM), admin GraphQL, webhooks
//! ```
//!
//! The Mojaloop side is real (`@mojaloop/sdk-scheme-adapter` 18.0.2, two Connectors back to
//! back); the Rafiki is the **test double** of `tests/common/rafiki.rs` (Rafiki cannot run in CI),
//! which refuses what Rafiki refuses: its connector's token and content-type rules and T04 when
//! the node's liquidity runs out, signed admin GraphQL with replay and age checks, signed
//! webhooks with retries, and wallet addresses whose STREAM receiver is ThitsaX's own
//! (`thitsax::stream`), crediting a wallet only for a fulfilled packet.
//!
//! What it proves, with exact figures:
//! - **Mojaloop → Rafiki**: the credit union's customer pays a party the CNP maps to a Rafiki
//!   wallet; the CNP pays the wallet over STREAM through the Rafiki peer, keeps its fee, and the
//!   Mojaloop transfer commits only after the wallet was credited.
//! - **Liquidity**: that payment takes the node's liquidity at Rafiki below the threshold Rafiki
//!   watches; Rafiki's `peer.liquidity_low` webhook arrives and the node tops it up (its own,
//!   lower threshold was not crossed: the webhook did it).
//! - **Rafiki → Mojaloop**: a wallet pays a credit union's member over STREAM to the CNP's payout
//!   receiver, and the member is paid exactly that in the scheme, once.
//! - At the end Rafiki's figure of the node's liquidity and the node's own agree.
//!
//! Needs Node >= 18, `redis-server` (each Connector's own) and the Connector package (`npm ci
//! --prefix tests/mojaloop`): skipped without them unless `CI` is set, when it fails.

mod common;

use common::mojaloop::{mojaloop_or_skip, Connector, ConnectorConfig};
use common::mojaloop_backend::TestBackend;
use common::rafiki::{Options, RafikiDouble};
use common::rafiki_admin::{eventually, AdminOptions, Outcome, WebhookOptions, NODE_PEER_ID};
use common::{admin_call, client, reserve_port, TestNode};
use hyper::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

/// The example's own credentials, which the test's Rafiki double is given.
const ADMIN: &str = "cnp-admin-dev-token";
const RAFIKI_ADMIN_SECRET: &str = "cnp-rafiki-admin-dev-secret";
const RAFIKI_TENANT: &str = "8e1db008-ab2f-4f1d-8c44-593bf2d54d1a";
const RAFIKI_WEBHOOK_SECRET: &str = "cnp-rafiki-webhook-dev-secret";
const RAFIKI_TO_CNP: &str = "rafiki-to-cnp-dev-token";
const CNP_TO_RAFIKI: &str = "cnp-to-rafiki-dev-token";
/// The wallet a credit union's customer pays (an MSISDN under the example's `52166` prefix), and
/// the wallet that pays a credit union's member.
const WALLET_MSISDN: &str = "5216600042";
const PAYING_WALLET: &str = "lucia";
const MEMBER_MSISDN: &str = "5215550001";
const PAYER_MSISDN: &str = "5215559999";
/// Rafiki's `liquidityThreshold` for the node's peer: 200.00 MXN.
const RAFIKI_THRESHOLD: u64 = 20_000;
const WAIT: Duration = Duration::from_secs(60);

// The figures, by hand from examples/cnp/cnp.toml (MXN, scale 2 everywhere).
//
// Prefunding: the node starts at balance 0, above its settle_threshold -10 000, so it tops up to
// settle_to -50 000: a deposit of 50 000 (500.00 MXN), and Rafiki holds that for the node.
//
// Mojaloop → Rafiki: the payer sends 350.00 MXN. The CNP's fee is fee_rate 0.005 of it, 1.75 MXN,
// kept; the rest, 348.25 MXN = 34 825 units, is paid to the wallet in one packet (same asset and
// scale: no conversion). The quote promises that less the transfer's slippage (0.01), rounded
// down: floor(34 825 · 0.99) = 34 476 units = 344.76 MXN.
//
// Rafiki then holds 50 000 − 34 825 = 15 175 for the node: at or below its threshold 20 000, so
// `peer.liquidity_low` fires. The node's balance is −15 175, still below its own settle_threshold
// −10 000: only the webhook makes it top up, by 34 825 to −50 000.
//
// Rafiki → Mojaloop: wallet "lucia" pays 12.34 MXN (1 234 units) to the member's payout receiver:
// the packets credit the node's liquidity (51 234) and the member is paid 12.34 MXN.
const PREFUNDING: u64 = 50_000;
const TRANSFER_AMOUNT: &str = "350";
const FEE: &str = "1.75";
const WALLET_CREDITED: u64 = 34_825;
const QUOTED_RECEIVE_AMOUNT: &str = "344.76";
const PAYOUT_UNITS: u64 = 1_234;

/// `examples/cnp/cnp.toml` with each of its addresses swapped for the test's: every one must be
/// found, so the example cannot drift from what is tested.
fn example_config(swaps: &[(&str, String)]) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cnp/cnp.toml");
    let mut toml = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (from, to) in swaps {
        assert!(toml.contains(from), "examples/cnp/cnp.toml no longer has {from:?}");
        toml = toml.replace(from, to);
    }
    toml
}

async fn admin(node: &TestNode, method: &str, path: &str) -> common::HttpAnswer {
    admin_call(&client(), node.admin_addr.unwrap(), method, path, Some(ADMIN), None).await
}

/// Waits until the Rafiki account's balance is `want` with no top-up pending.
async fn settled_at(node: &TestNode, want: i128) {
    use thitsax::store::Store;
    let account = node.node.accounts.load().get("rafiki").cloned().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = node.balance("rafiki").await;
        if now == want && node.node.store.pending_settlements(&account).await.unwrap().is_empty() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "balance {now}, want {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn metric(metrics: &str, line: &str) -> bool {
    metrics.lines().any(|l| l == line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_crosses_between_a_mojaloop_scheme_and_rafiki_wallets_both_ways_and_the_books_agree() {
    let test = "money_crosses_between_a_mojaloop_scheme_and_rafiki_wallets_both_ways_and_the_books_agree";
    let Some(mojaloop) = mojaloop_or_skip(test) else { return };

    // The Rafiki: the node's peer with no liquidity yet (the node prefunds) and a threshold, its
    // admin API and webhooks under the example's credentials, two wallets.
    let webhook_port = reserve_port();
    let options = Options {
        admin: Some(AdminOptions {
            secret: RAFIKI_ADMIN_SECRET.as_bytes().to_vec(),
            tenant_id: RAFIKI_TENANT.to_string(),
        }),
        initial_liquidity: 0,
        liquidity_threshold: Some(RAFIKI_THRESHOLD),
        webhook: WebhookOptions {
            url: Some(format!("http://127.0.0.1:{webhook_port}/")),
            secret: Some(RAFIKI_WEBHOOK_SECRET.as_bytes().to_vec()),
            retry_delays: vec![Duration::from_millis(200)],
        },
    };
    let rafiki = RafikiDouble::start_with(("MXN", 2), options).await;
    rafiki.wallets.add(WALLET_MSISDN, 0);
    rafiki.wallets.add(PAYING_WALLET, 100_000);

    // The CNP node, from the example, and its Connector (told the backend's port once bound).
    let mut cnp_connector = ConnectorConfig::new("cnpfsp", "127.0.0.1:9").auto_accept(false);
    let config = example_config(&[
        ("log_level = \"info\"", "log_level = \"warn\"".into()),
        ("http://127.0.0.1:4001", format!("http://127.0.0.1:{}", cnp_connector.ports.outbound)),
        ("http://127.0.0.1:3010/", format!("http://127.0.0.1:{}/", rafiki.wallet_port)),
        ("http://127.0.0.1:3001/graphql", rafiki.admin().url()),
        ("http://127.0.0.1:3002/", format!("http://127.0.0.1:{}/", rafiki.connector_port)),
        ("127.0.0.1:7796", format!("127.0.0.1:{webhook_port}")),
    ]);
    assert!(config.contains(NODE_PEER_ID), "the example names the double's peer id for the node");
    let node = TestNode::start(&config).await;
    cnp_connector.backend_endpoint = node.mojaloop_addr.expect("the backend API is bound").to_string();
    // Rafiki's operator created the node's peer: where to send, which tokens.
    rafiki.create_peer("test.cnp", &node.url(), RAFIKI_TO_CNP, CNP_TO_RAFIKI);
    let mfi_backend = TestBackend::start().await;
    mfi_backend.add_party("MSISDN", MEMBER_MSISDN, "Ana");
    let mfi = ConnectorConfig::new("mfifsp", &mfi_backend.endpoint()).auto_accept(false);
    let (mfi, _cnp): (Connector, Connector) = Connector::start_pair(&mojaloop, mfi, cnp_connector).await;

    // Prefunding: the first top-up, recorded at Rafiki.
    eventually("the prefunding", WAIT, || rafiki.node_liquidity() == PREFUNDING).await;
    settled_at(&node, -(PREFUNDING as i128)).await;
    assert_eq!(rafiki.deposits(), [PREFUNDING]);

    // ---- Mojaloop → Rafiki ---------------------------------------------------------------
    let posted = mfi
        .post_transfer(&json!({
            "homeTransactionId": "cnp-in-1",
            "from": {"idType": "MSISDN", "idValue": PAYER_MSISDN, "displayName": "Payer"},
            "to": {"idType": "MSISDN", "idValue": WALLET_MSISDN},
            "amountType": "SEND", "currency": "MXN", "amount": TRANSFER_AMOUNT, "transactionType": "TRANSFER",
        }))
        .await;
    posted.expect_status(200);
    assert_eq!(posted.str("/currentState"), "WAITING_FOR_PARTY_ACCEPTANCE", "{}", posted.text);
    let transfer_id = posted.str("/transferId").to_string();
    assert!(rafiki.wallets.queries(WALLET_MSISDN) >= 1, "the party lookup asked the wallet's SPSP");

    let quoted = mfi.put_transfer(&transfer_id, &json!({"acceptParty": true})).await;
    quoted.expect_status(200);
    assert_eq!(quoted.str("/currentState"), "WAITING_FOR_QUOTE_ACCEPTANCE", "{}", quoted.text);
    let quote = |field: &str| quoted.str(&format!("/quoteResponse/body/{field}")).to_string();
    assert_eq!(quote("transferAmount/amount"), TRANSFER_AMOUNT, "{}", quoted.text);
    assert_eq!(quote("payeeFspFee/amount"), FEE, "{}", quoted.text);
    assert_eq!(quote("payeeReceiveAmount/amount"), QUOTED_RECEIVE_AMOUNT, "{}", quoted.text);
    assert_eq!(rafiki.wallets.balance(WALLET_MSISDN), Some(0), "a quote pays nothing");
    assert_eq!(rafiki.node_liquidity(), PREFUNDING, "the quote's probes moved no liquidity");
    let quote_packets = rafiki.state().received.len();

    let done = mfi.put_transfer(&transfer_id, &json!({"acceptQuote": true})).await;
    done.expect_status(200);
    assert_eq!(done.str("/currentState"), "COMPLETED", "{}", done.text);
    assert_eq!(done.str("/fulfil/body/transferState"), "COMMITTED", "{}", done.text);
    // Read at once: the wallet was credited before the CNP answered its Connector.
    assert_eq!(rafiki.wallets.balance(WALLET_MSISDN), Some(WALLET_CREDITED));
    let credits = rafiki.wallets.credits();
    assert_eq!(credits.len(), 1, "one packet: {credits:?}");
    // The transfer paid at its quote's probed rate: the money packet and the close, no probe.
    // (Rafiki limits the packets a peer may send a minute.)
    let transfer_packets = rafiki.state().received.len() - quote_packets;
    assert_eq!(transfer_packets, 2, "the transfer's Prepares (the quote's: {quote_packets})");
    let completed = done.str("/fulfil/body/completedTimestamp");
    let completed_ms = chrono::DateTime::parse_from_rfc3339(completed)
        .unwrap_or_else(|e| panic!("completedTimestamp {completed:?}: {e}"))
        .timestamp_millis();
    // The Connector's timestamp has milliseconds: the credit's, truncated alike (one clock).
    let credited_ms = credits[0].at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!(
        credited_ms <= completed_ms,
        "the wallet was credited at {credited_ms}, after the commit at {completed_ms}"
    );

    // ---- Liquidity: Rafiki's webhook, the node's top-up ----------------------------------
    eventually("the webhook's top-up", WAIT, || rafiki.deposits().len() == 2).await;
    eventually("Rafiki's liquidity restored", WAIT, || rafiki.node_liquidity() == PREFUNDING).await;
    settled_at(&node, -(PREFUNDING as i128)).await;
    assert_eq!(rafiki.deposits(), [PREFUNDING, WALLET_CREDITED], "one top-up of what the payment spent");
    let events = rafiki.webhooks.events();
    assert_eq!(events.len(), 1, "one liquidity_low event, for the one packet: {events:?}");
    eventually("the event delivered", WAIT, || {
        matches!(rafiki.webhooks.outcome(&events[0].id), Some(Outcome::Delivered(_)))
    })
    .await;
    let metrics = admin(&node, "GET", "/metrics").await.text();
    assert!(metric(&metrics, r#"thitsax_rafiki_webhooks_total{outcome="handled"} 1"#), "{metrics}");

    // ---- Rafiki → Mojaloop ---------------------------------------------------------------
    let spsp = node.spsp_addr.expect("the SPSP listener is bound");
    let receiver = format!("http://{spsp}/mojaloop/MSISDN/{MEMBER_MSISDN}?currency=MXN&amount=12.34");
    let paid = rafiki.pay_from_wallet(PAYING_WALLET, &receiver, PAYOUT_UNITS).await;
    assert!(paid.is_completed(), "{paid:?}");
    assert_eq!((paid.sent, paid.delivered), (PAYOUT_UNITS, PAYOUT_UNITS), "{paid:?}");
    assert_eq!(rafiki.wallets.balance(PAYING_WALLET), Some(100_000 - PAYOUT_UNITS));
    mfi_backend.wait_until("the member paid", WAIT, |b| !b.paid().is_empty()).await;
    let transfers = mfi_backend.paid();
    assert_eq!(transfers.len(), 1, "{transfers:#?}");
    assert_eq!((transfers[0].amount.as_str(), transfers[0].currency.as_str()), ("12.34", "MXN"));
    assert_eq!(transfers[0].payee_id_value, MEMBER_MSISDN);
    // The payout ends paid: no longer open, counted once.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let metrics = admin(&node, "GET", "/metrics").await.text();
        let open = admin(&node, "GET", "/payouts").await.json(StatusCode::OK);
        if metric(&metrics, r#"thitsax_mojaloop_payouts_total{state="paid"} 1"#) && open == json!([]) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "open payouts {open}; metrics:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // ---- The books -----------------------------------------------------------------------
    // Rafiki holds the prefunding plus what its wallet paid in; the node's balance mirrors it.
    let liquidity = PREFUNDING + PAYOUT_UNITS;
    assert_eq!(rafiki.node_liquidity(), liquidity);
    settled_at(&node, -(liquidity as i128)).await;
    // The scheme's MXN: 348.25 paid to the wallet (the fee stayed), 12.34 in and out again.
    assert_eq!(node.balance("mxn").await, -(WALLET_CREDITED as i128));
    let reconciled: Value =
        admin(&node, "GET", "/accounts/rafiki/rafiki/liquidity").await.json(StatusCode::OK);
    assert_eq!(reconciled["rafiki_liquidity"], liquidity.to_string(), "{reconciled}");
    assert_eq!(reconciled["difference"], "0", "{reconciled}");
    assert_eq!(reconciled["agrees"], true, "{reconciled}");
    assert_eq!(rafiki.deposits(), [PREFUNDING, WALLET_CREDITED], "no more top-ups");
    node.stop().await;
}
