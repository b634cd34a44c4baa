//! Mojaloop → Interledger to a receiver nobody in this project wrote: a payer DFSP of a Mojaloop
//! scheme (its core system a test double, [`TestBackend`], and a real Mojaloop Connector,
//! `@mojaloop/sdk-scheme-adapter` 18.0.2) pays a party that ThitsaX node A serves as the payee
//! DFSP (its `[mojaloop]` section, its backend API, a Connector of its own back to back with the
//! payer's). The party is a STREAM receiver of the JS reference (`ilp-protocol-stream` 2.7.1,
//! `tests/interop/spsp-receiver.js`, found by SPSP), a child of a second ThitsaX node B; A pays
//! B over ILP-over-HTTP in MXN, and B converts MXN into USD at its own price and spread.
//!
//! ```text
//! payer backend ─ payer Connector ═FSPIOP═ thitsaxfsp Connector ─backend API→ A (test.a)
//!   A: "mxn" (local, MXN 2, the scheme's money; 1 % fee) ─peer "b" (MXN 2)→ B (test.b)
//!   B: peer "a" (MXN 2) ─converts, MXN 0.0537 USD, spread 0.2 %→ child "shop" (USD 6)
//!   "shop" = spsp-receiver.js (ILP-over-HTTP to B, SPSP at http://127.0.0.1:<port>/<idValue>)
//! ```
//!
//! What it proves, with exact figures: the quote the payer sees promises what the transfer then
//! guarantees; the Mojaloop transfer commits only once the JS receiver has the money; every hop's
//! rounding is the node's exact rates', to the unit; a replay of the transfer pays nothing more.
//!
//! Needs Node >= 18, `redis-server` (each Connector's own, never the machine's shared Redis), the
//! Connector package (`npm ci --prefix tests/mojaloop`) and the interop packages (`npm ci
//! --prefix tests/interop`): skipped without them unless `CI` is set, when it fails.

mod common;

use common::js::{node_or_skip, Script};
use common::mojaloop::{mojaloop_or_skip, Connector, ConnectorConfig};
use common::mojaloop_backend::TestBackend;
use common::{admin_call, client as client_http, http_call, reserve_port, TestNode};
use hyper::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use thitsax::mojaloop::amount::FspiopAmount;

const A_ADMIN: &str = "a-admin-token";
const B_ADMIN: &str = "b-admin-token";
/// The party A serves, and the one paying it from the payer DFSP.
const PAYEE_MSISDN: &str = "5215550042";
const PAYER_MSISDN: &str = "5215559999";
/// The JS scripts' start (ILDCP, SPSP listener) and the money's arrival, on a busy 2-core machine.
const JS_TIMEOUT: Duration = Duration::from_secs(30);

// The figures, by hand from the configs below.
//
// The payer sends 250.75 MXN. A's fee for MXN is fee_rate 0.01 of it, rounded UP to the
// currency's 2 decimals: 2.5075 → 2.51 MXN, kept by A. The rest, 248.24 MXN, is 24 824 units of
// A's "mxn" account (scale 2), paid on to B over its MXN peer account at scale 2: no conversion at
// A (same asset, same scale, no spread), so B receives 24 824 units.
//
// B converts MXN (scale 2) into the child's USD (scale 6), rounding DOWN (src/rates.rs):
//   24 824 · price(MXN) · (1 − spread) · 10^6 / (price(USD) · 10^2)
//   = 24 824 · 0.0537 · 0.998 · 10^4 = 24 824 · 537 · 998 / 1 000
//   = 13 303 827 024 / 1 000 = 13 303 827.024 → 13 303 827 units = 13.303827 USD.
// The payment goes in one packet (no hop limits its size), so that single floor is all the
// rounding there is: the JS receiver gets exactly 13 303 827.
//
// The quote (src/mojaloop/backend.rs) probes the path with test packets of 24 824 (the whole
// source amount) and powers of ten below it. The rate's lower bound `lower` is the largest
// floor(s · r) / s over them; it is at least floor(24 824 · r) / 24 824 and at most r, so
// floor(24 824 · lower) = floor(24 824 · r) = 13 303 827: what one packet of it delivers. The
// quote promises that less the transfer's slippage (limits::STREAM_SLIPPAGE, 0.01), rounded
// down: floor(13 303 827 · 0.99) = floor(13 170 788.73) = 13 170 788 units, written with FSPIOP's
// 4 decimals at most, rounded down again: 13.1707 USD (payeeReceiveAmount). The transfer then
// delivers 13.303827 USD, at least that.
const TRANSFER_AMOUNT: &str = "250.75";
const FEE: &str = "2.51";
const PAID_ON_MXN_UNITS: i128 = 24_824;
const DELIVERED_USD_UNITS: u64 = 13_303_827;
const QUOTED_RECEIVE_AMOUNT: &str = "13.1707";

/// Node B: peer "a" (MXN, scale 2) in, child "shop" (USD, scale 6; the JS receiver) out; it
/// converts at MXN = 0.0537 USD with a 0.2 % spread.
fn node_b(a_port: u16, shop_port: u16, packet_mxn_units_max: Option<u64>) -> String {
    let max_packet = packet_mxn_units_max.map(|m| format!("max_packet_amount = {m}")).unwrap_or_default();
    format!(
        r#"
[node]
ilp_address = "test.b"
log_level = "warn"
[admin]
token = "{B_ADMIN}"
[rates]
spread = "0.002"
[rates.prices]
USD = "1"
MXN = "0.0537"
[[accounts]]
id = "a"
relation = "peer"
asset_code = "MXN"
asset_scale = 2
ilp_address = "test.a"
incoming_token = "a-to-b"
outgoing_url = "http://127.0.0.1:{a_port}/"
outgoing_token = "b-to-a"
min_balance = -100000000
{max_packet}
[[accounts]]
id = "shop"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "shop-to-b"
outgoing_url = "http://127.0.0.1:{shop_port}/"
outgoing_token = "b-to-shop"
"#
    )
}

/// Node A, on `a_port` (B names it): the payee DFSP for MXN, with a 1 % fee, serving the party
/// whose receiver is the JS receiver's SPSP URL; peer "b" (MXN, scale 2) towards it.
fn node_a(a_port: u16, b_url: &str, outbound_port: u16, spsp_port: u16) -> String {
    format!(
        r#"
[node]
ilp_address = "test.a"
log_level = "warn"
[http]
listen = "127.0.0.1:{a_port}"
[admin]
token = "{A_ADMIN}"
[[accounts]]
id = "mxn"
relation = "local"
asset_code = "MXN"
asset_scale = 2
min_balance = -100000000
[[accounts]]
id = "b"
relation = "peer"
asset_code = "MXN"
asset_scale = 2
ilp_address = "test.b"
incoming_token = "b-to-a"
outgoing_url = "{b_url}"
outgoing_token = "a-to-b"
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
id_value = "{PAYEE_MSISDN}"
receiver = "http://127.0.0.1:{spsp_port}/{{id_value}}"
"#
    )
}

/// Every account's balance, as the node's admin API tells it: id → decimal string.
async fn balances<S: thitsax::store::Store>(node: &TestNode<S>, token: &str) -> BTreeMap<String, String> {
    let addr = node.admin_addr.expect("the admin API is bound");
    let listed =
        admin_call(&client_http(), addr, "GET", "/balances", Some(token), None).await.json(StatusCode::OK);
    let listed = listed.as_array().unwrap_or_else(|| panic!("GET /balances is not a list: {listed}"));
    listed
        .iter()
        .map(|b| (b["account"].as_str().unwrap().to_string(), b["balance"].as_str().unwrap().to_string()))
        .collect()
}

fn map(entries: &[(&str, i128)]) -> BTreeMap<String, String> {
    entries.iter().map(|(id, v)| (id.to_string(), v.to_string())).collect()
}

/// What the JS receiver has received so far (`GET /totals` on its SPSP listener).
async fn js_totals(spsp: SocketAddr) -> Value {
    http_call(&client_http(), spsp, "GET", "/totals", None, None).await.json(StatusCode::OK)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mojaloop_payer_pays_a_js_stream_receiver_through_two_thitsax_hops_exactly_and_once() {
    let test = "a_mojaloop_payer_pays_a_js_stream_receiver_through_two_thitsax_hops_exactly_and_once";
    through_two_hops(test, None).await;
}

/// The same with B taking at most 10 MXN per packet: 25 packets, each converted (and rounded
/// down) on its own. The receiver's connection must stay up through all of them: it once closed
/// after the first money arrived, because it could not probe back to the sender's address the
/// node had sent (a local account's, which reaches no receiver), and the transfer failed with
/// most of its money delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mojaloop_transfer_paid_in_many_packets_to_a_js_receiver_completes() {
    through_two_hops("a_mojaloop_transfer_paid_in_many_packets_to_a_js_receiver_completes", Some(1000)).await;
}

async fn through_two_hops(test: &str, packet_mxn_units_max: Option<u64>) {
    let Some(mojaloop) = mojaloop_or_skip(test) else { return };
    let Some(node_js) = node_or_skip(test) else { return };
    // Every port a child process listens on, or a config names before its listener is bound.
    let (a_port, shop_port, spsp_port) = (reserve_port(), reserve_port(), reserve_port());
    let spsp = SocketAddr::from((Ipv4Addr::LOCALHOST, spsp_port));

    let b = TestNode::start(&node_b(a_port, shop_port, packet_mxn_units_max)).await;
    let args = [
        "--port",
        &shop_port.to_string(),
        "--url",
        &b.url(),
        "--incoming-token",
        "b-to-shop",
        "--outgoing-token",
        "shop-to-b",
        "--spsp-port",
        &spsp_port.to_string(),
        "--timeout-ms",
        "300000",
    ]
    .map(String::from);
    let mut shop = Script::start(&node_js, "spsp-receiver", "spsp-receiver.js", &args);
    let ready = shop.event("ready", JS_TIMEOUT).await;
    assert_eq!(ready["clientAddress"], "test.b.shop", "{ready}");
    assert_eq!(
        (ready["assetCode"].as_str(), ready["assetScale"].as_u64()),
        (Some("USD"), Some(6)),
        "{ready}"
    );

    let mut payee = ConnectorConfig::new("thitsaxfsp", "127.0.0.1:9").auto_accept(false);
    let a = TestNode::start_as_is(&node_a(a_port, &b.url(), payee.ports.outbound, spsp_port)).await;
    payee.backend_endpoint = a.mojaloop_addr.expect("A serves the backend API").to_string();
    let payer_backend = TestBackend::start().await;
    let payer = ConnectorConfig::new("payerfsp", &payer_backend.endpoint()).auto_accept(false);
    let (payer, _payee): (Connector, Connector) = Connector::start_pair(&mojaloop, payer, payee).await;

    // The party: A's backend asks the JS receiver's SPSP and answers for it.
    let posted = payer
        .post_transfer(&json!({
            "homeTransactionId": "js-receiver-1",
            "from": {"idType": "MSISDN", "idValue": PAYER_MSISDN, "displayName": "Payer"},
            "to": {"idType": "MSISDN", "idValue": PAYEE_MSISDN},
            "amountType": "SEND", "currency": "MXN", "amount": TRANSFER_AMOUNT, "transactionType": "TRANSFER",
        }))
        .await;
    posted.expect_status(200);
    assert_eq!(posted.str("/currentState"), "WAITING_FOR_PARTY_ACCEPTANCE", "{}", posted.text);
    let transfer_id = posted.str("/transferId").to_string();
    let lookup = shop.event("spsp-query", JS_TIMEOUT).await;
    assert_eq!(lookup["path"], format!("/{PAYEE_MSISDN}"), "the receiver URL with the id put in: {lookup}");

    // The quote: A keeps its fee and probed the path for the rest; nothing moved anywhere.
    let quoted = payer.put_transfer(&transfer_id, &json!({"acceptParty": true})).await;
    quoted.expect_status(200);
    assert_eq!(quoted.str("/currentState"), "WAITING_FOR_QUOTE_ACCEPTANCE", "{}", quoted.text);
    let quote = |field: &str| quoted.str(&format!("/quoteResponse/body/{field}")).to_string();
    assert_eq!(
        (quote("transferAmount/amount"), quote("transferAmount/currency")),
        (TRANSFER_AMOUNT.into(), "MXN".into())
    );
    assert_eq!((quote("payeeFspFee/amount"), quote("payeeFspFee/currency")), (FEE.into(), "MXN".into()));
    assert_eq!(
        (quote("payeeReceiveAmount/amount"), quote("payeeReceiveAmount/currency")),
        (QUOTED_RECEIVE_AMOUNT.into(), "USD".into()),
        "the probed 13.303827 USD less 1 % slippage, rounded down to 4 decimals: {}",
        quoted.text
    );
    let nothing = js_totals(spsp).await;
    assert_eq!((nothing["total"].as_str(), nothing["packets"].as_u64()), (Some("0"), Some(0)), "{nothing}");
    assert_eq!(balances(&a, A_ADMIN).await, map(&[("b", 0), ("mxn", 0)]), "a quote moved money at A");
    assert_eq!(balances(&b, B_ADMIN).await, map(&[("a", 0), ("shop", 0)]), "a quote moved money at B");

    // The transfer: A pays the JS receiver over STREAM, through B, and answers the Connector only
    // once it was delivered; then the Connector commits.
    let done = payer.put_transfer(&transfer_id, &json!({"acceptQuote": true})).await;
    done.expect_status(200);
    assert_eq!(done.str("/currentState"), "COMPLETED", "{}", done.text);
    assert_eq!(done.str("/fulfil/body/transferState"), "COMMITTED", "{}", done.text);
    // Read at once: the money was counted before the Fulfill went back, so before A answered.
    let received = js_totals(spsp).await;
    let delivered: u64 = received["total"].as_str().and_then(|t| t.parse().ok()).expect("a total");
    let packets = match packet_mxn_units_max {
        None => {
            assert_eq!(delivered, DELIVERED_USD_UNITS, "exactly 13.303827 USD: {received}");
            assert_eq!(received["packets"], 1, "one packet, one rounding: {received}");
            1
        }
        Some(max) => {
            // Each packet rounds down on its own: at most one unit of USD scale 6 each is lost.
            let packets = PAID_ON_MXN_UNITS.unsigned_abs().div_ceil(u128::from(max)) as u64;
            assert_eq!(received["packets"], packets, "{received}");
            assert!(
                delivered <= DELIVERED_USD_UNITS && delivered + packets >= DELIVERED_USD_UNITS,
                "{received}"
            );
            packets
        }
    };
    let paying: Vec<(&String, &Value)> = received["connections"]
        .as_object()
        .expect("connections by query")
        .iter()
        .filter(|(_, c)| c["received"] != "0")
        .collect();
    assert_eq!(paying.len(), 1, "one connection got the money (the quote's probe got none): {received}");
    // The quote's promise holds: what arrived is at least what the payer was told.
    let promised = FspiopAmount::parse(&quote("payeeReceiveAmount/amount")).unwrap().to_account(6).unwrap();
    assert_eq!(promised, 13_170_700, "13.1707 USD at the receiver's scale 6");
    assert!(delivered >= promised, "delivered {delivered} < promised {promised}");
    // And in time: the JS receiver had the money before the payee's Connector completed the
    // transfer (its completedTimestamp is taken once A's backend answered; one machine, one clock).
    let mut money = shop.event("money", JS_TIMEOUT).await;
    for _ in 1..packets {
        money = shop.event("money", JS_TIMEOUT).await;
    }
    if packets == 1 {
        assert_eq!(money["amount"], DELIVERED_USD_UNITS.to_string(), "{money}");
    }
    let completed = done.str("/fulfil/body/completedTimestamp");
    let completed_ms = chrono::DateTime::parse_from_rfc3339(completed)
        .unwrap_or_else(|e| panic!("completedTimestamp {completed:?}: {e}"))
        .timestamp_millis();
    let money_ms = money["atMs"].as_i64().expect("atMs");
    assert!(money_ms <= completed_ms, "the money arrived at {money_ms}, after the commit at {completed_ms}");

    // Balances, in each account's own units: A paid 248.24 MXN on from the scheme's account and
    // kept the 2.51 fee (it never left "mxn"); B took 24 824 MXN units and paid 13 303 827 USD units.
    let after_a = map(&[("b", PAID_ON_MXN_UNITS), ("mxn", -PAID_ON_MXN_UNITS)]);
    let after_b = map(&[("a", -PAID_ON_MXN_UNITS), ("shop", i128::from(delivered))]);
    assert_eq!(balances(&a, A_ADMIN).await, after_a);
    assert_eq!(balances(&b, B_ADMIN).await, after_b);

    // The same transfer again, straight to A's backend (the Connector replays whatever reaches
    // it): answered as the first time, and nothing more is paid, anywhere. Its quote expired long
    // ago: a transfer seen before is known by its id before any expiry is looked at.
    let replay = json!({
        "transferId": transfer_id,
        "quote": {"transferAmount": TRANSFER_AMOUNT, "transferAmountCurrency": "MXN",
                  "expiration": "2020-01-01T00:00:00.000Z"},
        "from": {"idType": "MSISDN", "idValue": PAYER_MSISDN},
        "to": {"idType": "MSISDN", "idValue": PAYEE_MSISDN},
        "amountType": "SEND", "currency": "MXN", "amount": TRANSFER_AMOUNT,
    });
    let backend = a.mojaloop_addr.unwrap();
    let again = admin_call(&client_http(), backend, "POST", "/transfers", None, Some(&replay.to_string()))
        .await
        .json(StatusCode::OK);
    assert_eq!(again["homeTransactionId"], transfer_id.as_str(), "{again}");
    let still = js_totals(spsp).await;
    assert_eq!(still["total"], delivered.to_string(), "a replay paid the JS receiver again: {still}");
    assert_eq!(still["packets"], packets, "{still}");
    assert_eq!(balances(&a, A_ADMIN).await, after_a, "a replay moved money at A");
    assert_eq!(balances(&b, B_ADMIN).await, after_b, "a replay moved money at B");

    drop(shop);
    a.stop().await;
    b.stop().await;
}
