//! ThitsaX's client of the Mojaloop Connector's outbound API (`thitsax::mojaloop::outbound`)
//! against the real Connector, `@mojaloop/sdk-scheme-adapter` 18.0.2: two Connectors back to back
//! with the auto-accepts off (as the node's Connector must run), the payee DFSP served by the
//! test backend (`tests/common/mojaloop_backend.rs`, a test double of a DFSP's core system).
//!
//! Each failure the client reports must say truly whether money may have moved: the next steps
//! of the Mojaloop bridge refund or retry on it.

mod common;

use common::mojaloop::{mojaloop_or_skip, BackToBack};
use hyper::StatusCode;
use std::time::Duration;
use thitsax::http::tls::TlsConfig;
use thitsax::mojaloop::amount::FspiopAmount;
use thitsax::mojaloop::error::FspiopCode;
use thitsax::mojaloop::outbound::{
    Finish, NewTransfer, OutboundClient, OutboundError, OutboundLimits, Stage,
};
use thitsax::mojaloop::party::Party;

const PAYEE_MSISDN: &str = "255700000002";

fn client(pair: &BackToBack) -> OutboundClient {
    let limits = OutboundLimits { timeout: Duration::from_secs(40), response_bytes_max: 65_536 };
    OutboundClient::new(&pair.payer.outbound_url(), &limits, &TlsConfig::new(&Default::default()))
}

async fn two_step_pair(test: &str) -> Option<BackToBack> {
    let mojaloop = mojaloop_or_skip(test)?;
    let pair = BackToBack::start(&mojaloop, false, |_| {}).await;
    pair.payee_backend.add_party("MSISDN", PAYEE_MSISDN, "Payee Two");
    Some(pair)
}

fn parties(to: &str) -> (Party, Party) {
    (Party::new("BUSINESS", "thitsax", None).unwrap(), Party::new("MSISDN", to, None).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_step_flow_pays_once_and_only_at_the_quote_s_acceptance() {
    let test = "the_two_step_flow_pays_once_and_only_at_the_quote_s_acceptance";
    let Some(pair) = two_step_pair(test).await else { return };
    let client = client(&pair);
    let (from, to) = parties(PAYEE_MSISDN);
    // 10.503 USD at scale 9: 10.5 is sent, 0.003 stays.
    let (amount, leftover) = FspiopAmount::from_account(10_503_000_000, 9, 2).unwrap();
    assert_eq!(leftover, 3_000_000);
    let transfer = NewTransfer {
        home_transaction_id: "settlement-1",
        from: &from,
        to: &to,
        currency: "USD",
        amount,
        note: Some("ThitsaX outbound client test"),
    };

    let begun = client.begin(&transfer).await.unwrap();
    assert_eq!(begun.stage, Stage::PartyToAccept);
    let quoted = client.accept_party(&begun.transfer_id).await.unwrap();
    let Stage::QuoteToAccept(quote) = &quoted.stage else { panic!("not quoted: {quoted:?}") };
    assert_eq!((quote.transfer_amount.to_string().as_str(), quote.currency.as_str()), ("10.5", "USD"));
    assert!(pair.payee_backend.transfers().is_empty(), "money moved before acceptQuote");

    let done = client.accept_quote(&begun.transfer_id).await.unwrap();
    assert_eq!(done.stage, Stage::Finished(Finish::Committed));
    assert_eq!(done.transfer_id, begun.transfer_id);
    let paid = pair.payee_backend.paid();
    assert_eq!(paid.len(), 1, "{paid:#?}");
    assert_eq!((paid[0].amount.as_str(), paid[0].transfer_id.as_str()), ("10.5", begun.transfer_id.as_str()));
    // Accepting again is answered from the Connector's record: no second transfer.
    let again = client.accept_quote(&begun.transfer_id).await.unwrap();
    assert_eq!(again.stage, Stage::Finished(Finish::Committed));
    assert_eq!(pair.payee_backend.paid().len(), 1);
    assert_eq!(pair.payee_backend.transfer_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_that_no_money_moved() {
    let test = "refusals_say_that_no_money_moved";
    let Some(pair) = two_step_pair(test).await else { return };
    let client = client(&pair);

    // A party nobody holds: refused at the lookup with 3204.
    let (from, nobody) = parties("255799999999");
    let amount = FspiopAmount::parse("3").unwrap();
    let transfer = NewTransfer {
        home_transaction_id: "s-2",
        from: &from,
        to: &nobody,
        currency: "USD",
        amount,
        note: None,
    };
    let e = client.begin(&transfer).await.unwrap_err();
    assert!(matches!(e, OutboundError::Refused { code: Some(FspiopCode::PARTY_NOT_FOUND), .. }), "{e}");
    assert!(!e.money_may_have_moved());

    // The payee's core system refuses the transfer itself (5001): refused, nothing paid.
    pair.payee_backend.refuse_transfers(StatusCode::INTERNAL_SERVER_ERROR, "5001", "insufficient");
    let (from, to) = parties(PAYEE_MSISDN);
    let transfer =
        NewTransfer { home_transaction_id: "s-3", from: &from, to: &to, currency: "USD", amount, note: None };
    let begun = client.begin(&transfer).await.unwrap();
    client.accept_party(&begun.transfer_id).await.unwrap();
    let e = client.accept_quote(&begun.transfer_id).await.unwrap_err();
    assert!(
        matches!(e, OutboundError::Refused { code: Some(FspiopCode::PAYEE_INSUFFICIENT_LIQUIDITY), .. }),
        "{e}"
    );
    assert!(!e.money_may_have_moved(), "{e}");
    assert!(pair.payee_backend.paid().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_down_at_the_acceptance_is_not_sent_to_and_the_transfer_completes_once_after_its_restart()
{
    let test =
        "a_connector_down_at_the_acceptance_is_not_sent_to_and_the_transfer_completes_once_after_its_restart";
    let Some(mut pair) = two_step_pair(test).await else { return };
    let client = client(&pair);
    let (from, to) = parties(PAYEE_MSISDN);
    let amount = FspiopAmount::parse("42").unwrap();
    let transfer =
        NewTransfer { home_transaction_id: "s-4", from: &from, to: &to, currency: "USD", amount, note: None };
    let begun = client.begin(&transfer).await.unwrap();
    client.accept_party(&begun.transfer_id).await.unwrap();

    pair.payer.kill();
    // The connection the client pooled may not have been seen closed yet: a request written to
    // it gets no answer, and the client cannot know whether the Connector read it. So it says
    // the outcome is unknown (the bridge then retries with the same id), never that nothing moved.
    let e = client.accept_quote(&begun.transfer_id).await.unwrap_err();
    assert!(matches!(e, OutboundError::NotSent(_) | OutboundError::Unknown(_)), "{e}");
    // A new connection to the dead Connector is refused: surely not sent.
    let e = self::client(&pair).accept_quote(&begun.transfer_id).await.unwrap_err();
    assert!(matches!(e, OutboundError::NotSent(_)), "{e}");
    assert!(!e.money_may_have_moved());

    // Its record lives in its Redis: the same transfer id is accepted after the restart, once.
    pair.payer.restart().await;
    let done = client.accept_quote(&begun.transfer_id).await.unwrap();
    assert_eq!(done.stage, Stage::Finished(Finish::Committed));
    assert_eq!(pair.payee_backend.paid().len(), 1);
}
