//! The client of the Mojaloop Connector's outbound API (the node pays in the scheme), in its
//! two-step flow: `POST /transfers` (the party is looked up), `PUT /transfers/{id}`
//! `{"acceptParty": true}` (the payee quotes), `PUT /transfers/{id}` `{"acceptQuote": true}` (the
//! transfer is made). Only the last moves money, so a caller records the Connector's transfer id
//! before it, and every failure of the two steps before it means nothing was paid.
//!
//! The Connector must run with `AUTO_ACCEPT_PARTY=false` and `AUTO_ACCEPT_QUOTES=false`; one that
//! accepts by itself answers the first call `COMPLETED` ([`Stage::Finished`] from
//! [`OutboundClient::begin`]), which a caller must book as paid.
//!
//! What this client never does, because the real Connector punishes it (`../shared/wire/mojaloop.md`):
//! `GET /transfers/{id}` (it overwrites the Connector's record), and two calls at once for one
//! transfer (two `acceptQuote` in flight pay twice and wedge it): a caller makes one call at a time
//! per transfer. Success is `fulfil.body.transferState == "COMMITTED"`, not the Connector's
//! `currentState`.
//!
//! Every failure says whether money may have moved ([`OutboundError::money_may_have_moved`]):
//! not when nothing reached the Connector or the scheme refused; yes when no answer came, when
//! the Connector timed out waiting for the scheme (504), or when the answer says nothing certain.

use super::amount::FspiopAmount;
use super::error::{FailureOutcome, FspiopCode};
use super::party::Party;
use crate::http::client::{body_prefix, error_chain, read_bounded};
use crate::http::tls::{Connector, TlsConfig};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;
use std::time::Duration;
use tracing::debug;

const CONTENT_TYPE_JSON: &str = "application/json";
/// Idle pooled connections are closed after this, before the Connector's own idle timeout could
/// close one under a request (Node's HTTP server closes idle connections after 5 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Idle connections kept to the Connector: the node makes few calls, one at a time per transfer.
const IDLE_CONNECTIONS_MAX: usize = 8;

#[derive(Debug, Clone)]
pub struct OutboundLimits {
    /// One call as a whole. Each step waits for the scheme (lookup, quote, transfer) up to the
    /// Connector's REQUEST_PROCESSING_TIMEOUT_SECONDS (30 s by default), so this is longer: the
    /// Connector's own 504 is then what a slow scheme gives.
    pub timeout: Duration,
    /// Larger answers are refused.
    pub response_bytes_max: usize,
}

/// A transfer to begin: `amount` of `currency` from the node's `from` party to `to`.
#[derive(Debug, Clone)]
pub struct NewTransfer<'a> {
    /// The node's own id for what it pays (a settlement's or a payout's id): the Connector keeps
    /// it as `homeTransactionId`.
    pub home_transaction_id: &'a str,
    pub from: &'a Party,
    pub to: &'a Party,
    pub currency: &'a str,
    pub amount: FspiopAmount,
    pub note: Option<&'a str>,
}

/// What the payee quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// What the transfer will move.
    pub transfer_amount: FspiopAmount,
    pub currency: String,
    /// The quote's `expiration`, as the Connector gave it (FSPIOP DateTime).
    pub expiration: Option<String>,
}

/// Where a transfer stands after a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// `WAITING_FOR_PARTY_ACCEPTANCE`: the party was found; nothing is quoted or paid.
    PartyToAccept,
    /// `WAITING_FOR_QUOTE_ACCEPTANCE`: quoted; nothing is paid.
    QuoteToAccept(Quote),
    /// `COMPLETED`: the payee side answered the transfer.
    Finished(Finish),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// `fulfil.body.transferState == "COMMITTED"`: paid.
    Committed,
    /// Any other transfer state (`ABORTED`, `RESERVED`, none): not committed, although the
    /// Connector says `COMPLETED`.
    NotCommitted(String),
}

/// The Connector's answer to a call that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The Connector's id of the transfer (a UUID), for the next steps.
    pub transfer_id: String,
    pub stage: Stage,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// Nothing reached the Connector (no connection could be opened).
    #[error("the Mojaloop Connector was not reached: {0}")]
    NotSent(String),
    /// The Connector or the scheme answered with an error.
    #[error("the Mojaloop Connector answered HTTP {status}{}: {message}", code.map(|c| format!(" ({c})")).unwrap_or_default())]
    Refused { status: u16, code: Option<FspiopCode>, message: String },
    /// No answer, or one that says nothing certain.
    #[error("the outcome is unknown: {0}")]
    Unknown(String),
    /// An answer that is not what the outbound API answers.
    #[error("the Mojaloop Connector's answer is not understood: {0}")]
    Malformed(String),
}

impl OutboundError {
    /// Whether the call may have moved money, had it been the quote's acceptance: a refusal with
    /// a communication or server code (1xxx, 2xxx) says as little as no answer.
    pub fn money_may_have_moved(&self) -> bool {
        match self {
            OutboundError::NotSent(_) => false,
            OutboundError::Refused { code: Some(code), .. } => code.outcome() == FailureOutcome::Unknown,
            OutboundError::Refused { code: None, status, .. } => *status >= 500,
            OutboundError::Unknown(_) | OutboundError::Malformed(_) => true,
        }
    }
}

/// Shared by the node: cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct OutboundClient {
    client: Client<Connector, Full<Bytes>>,
    /// The outbound API's base URL, without a trailing `/`.
    base: String,
    limits: OutboundLimits,
}

impl std::fmt::Debug for OutboundClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundClient").field("base", &self.base).field("limits", &self.limits).finish()
    }
}

impl OutboundClient {
    /// `base`: the Connector's outbound API (`http://host:port`, validated by the config).
    pub fn new(base: &str, limits: &OutboundLimits, tls: &TlsConfig) -> Self {
        let connector = Connector::new(tls, limits.timeout, limits.timeout);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(IDLE_CONNECTIONS_MAX)
            .build(connector);
        OutboundClient { client, base: base.trim_end_matches('/').to_string(), limits: limits.clone() }
    }

    /// `POST /transfers`: looks the party up. Moves no money (unless the Connector accepts by
    /// itself: then the answer is [`Stage::Finished`]).
    pub async fn begin(&self, t: &NewTransfer<'_>) -> Result<Answer, OutboundError> {
        let mut body = serde_json::json!({
            "homeTransactionId": t.home_transaction_id,
            "from": party_json(t.from),
            "to": party_json(t.to),
            "amountType": "SEND",
            "currency": t.currency,
            "amount": t.amount.to_string(),
            "transactionType": "TRANSFER",
        });
        if let Some(note) = t.note {
            body["note"] = Value::from(note);
        }
        self.call(Method::POST, "/transfers".into(), body).await
    }

    /// `PUT /transfers/{id}` `{"acceptParty": true}`: the payee quotes. Moves no money.
    pub async fn accept_party(&self, transfer_id: &str) -> Result<Answer, OutboundError> {
        let path = transfer_path(transfer_id)?;
        self.call(Method::PUT, path, serde_json::json!({ "acceptParty": true })).await
    }

    /// `PUT /transfers/{id}` `{"acceptQuote": true}`: the transfer is made. Never called twice
    /// at once for one transfer.
    pub async fn accept_quote(&self, transfer_id: &str) -> Result<Answer, OutboundError> {
        let path = transfer_path(transfer_id)?;
        self.call(Method::PUT, path, serde_json::json!({ "acceptQuote": true })).await
    }

    async fn call(&self, method: Method, path: String, body: Value) -> Result<Answer, OutboundError> {
        let uri: Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|e| OutboundError::NotSent(format!("bad URL {}{path}: {e}", self.base)))?;
        let mut request = Request::new(Full::new(Bytes::from(body.to_string())));
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri;
        request.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_JSON));
        request.headers_mut().insert(ACCEPT, HeaderValue::from_static(CONTENT_TYPE_JSON));
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    OutboundError::NotSent(error_chain(&e))
                } else {
                    OutboundError::Unknown(error_chain(&e))
                }
            })?;
            let status = response.status();
            let (body, cut) = read_bounded(response.into_body(), self.limits.response_bytes_max)
                .await
                .map_err(|e| OutboundError::Unknown(format!("reading the answer: {e}")))?;
            if cut {
                return Err(OutboundError::Malformed(format!(
                    "an answer longer than {} bytes",
                    self.limits.response_bytes_max
                )));
            }
            Ok((status, body))
        };
        let timeout = self.limits.timeout;
        let (status, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| OutboundError::Unknown(format!("no answer within {} ms", timeout.as_millis())))??;
        debug!(%method, %path, status = status.as_u16(), "Mojaloop Connector answered");
        read_answer(status, &body)
    }
}

fn party_json(p: &Party) -> Value {
    let mut v = serde_json::json!({ "idType": p.id_type, "idValue": p.id_value });
    if let Some(fsp) = &p.fsp_id {
        v["fspId"] = Value::from(fsp.as_str());
    }
    v
}

/// `/transfers/{id}` for a transfer id the Connector gave: a UUID, so nothing else can reach the
/// path.
fn transfer_path(transfer_id: &str) -> Result<String, OutboundError> {
    let uuid = transfer_id.len() == 36
        && transfer_id.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if !uuid {
        return Err(OutboundError::Malformed(format!("transfer id {transfer_id:?} is not a UUID")));
    }
    Ok(format!("/transfers/{transfer_id}"))
}

/// The answer of one call, by status and body.
fn read_answer(status: StatusCode, body: &[u8]) -> Result<Answer, OutboundError> {
    if status == StatusCode::NO_CONTENT {
        // The Connector's answer to a PUT on a transfer whose record is in error: it sent nothing
        // now, and what it did before is not known from here.
        return Err(OutboundError::Unknown(
            "the Connector's record of the transfer is in error (204)".into(),
        ));
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if !status.is_success() {
        return Err(refusal(status, json.as_ref(), body));
    }
    let json = json.ok_or_else(|| OutboundError::Malformed(format!("not JSON: {}", body_prefix(body))))?;
    let transfer_id = json["transferId"]
        .as_str()
        .ok_or_else(|| OutboundError::Malformed(format!("no transferId: {}", body_prefix(body))))?
        .to_string();
    transfer_path(&transfer_id)?;
    let stage = match json["currentState"].as_str() {
        Some("WAITING_FOR_PARTY_ACCEPTANCE") => Stage::PartyToAccept,
        Some("WAITING_FOR_QUOTE_ACCEPTANCE") => Stage::QuoteToAccept(quote(&json)?),
        Some("COMPLETED") => Stage::Finished(match json["fulfil"]["body"]["transferState"].as_str() {
            Some("COMMITTED") => Finish::Committed,
            other => Finish::NotCommitted(other.unwrap_or("(none)").to_string()),
        }),
        Some("ERROR_OCCURRED") => return Err(refusal(StatusCode::INTERNAL_SERVER_ERROR, Some(&json), body)),
        other => return Err(OutboundError::Malformed(format!("currentState {other:?}"))),
    };
    Ok(Answer { transfer_id, stage })
}

/// The quote of a `WAITING_FOR_QUOTE_ACCEPTANCE` answer.
fn quote(json: &Value) -> Result<Quote, OutboundError> {
    let q = &json["quoteResponse"]["body"];
    let amount = &q["transferAmount"];
    let text = amount["amount"]
        .as_str()
        .ok_or_else(|| OutboundError::Malformed("a quote without transferAmount".into()))?;
    let transfer_amount = FspiopAmount::parse(text)
        .map_err(|e| OutboundError::Malformed(format!("quote's transferAmount: {e}")))?;
    Ok(Quote {
        transfer_amount,
        currency: amount["currency"].as_str().unwrap_or_default().to_string(),
        expiration: q["expiration"].as_str().map(str::to_string),
    })
}

/// An error answer: its FSPIOP code where the Connector gives one (`statusCode`, or the scheme's
/// `errorCode` inside `transferState.lastError`), and its message. A 504 is the Connector's own
/// timeout waiting for the scheme: the outcome is unknown.
fn refusal(status: StatusCode, json: Option<&Value>, body: &[u8]) -> OutboundError {
    let message =
        json.and_then(|j| j["message"].as_str().map(str::to_string)).unwrap_or_else(|| body_prefix(body));
    if status == StatusCode::GATEWAY_TIMEOUT {
        return OutboundError::Unknown(format!(
            "the Connector timed out waiting for the scheme (504): {message}"
        ));
    }
    let scheme_code = json.and_then(|j| {
        j["transferState"]["lastError"]["mojaloopError"]["errorInformation"]["errorCode"].as_str()
    });
    let code = scheme_code
        .or_else(|| json.and_then(|j| j["statusCode"].as_str()))
        .and_then(|c| FspiopCode::parse(c).ok());
    OutboundError::Refused { status: status.as_u16(), code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5b9e2e3c-8a51-4a2b-9d8e-0f1e2d3c4b5a";

    fn answer(status: u16, body: &str) -> Result<Answer, OutboundError> {
        read_answer(StatusCode::from_u16(status).unwrap(), body.as_bytes())
    }

    #[test]
    fn each_stage_of_the_two_step_flow_is_read() {
        let a = answer(
            200,
            &format!(r#"{{"transferId": "{ID}", "currentState": "WAITING_FOR_PARTY_ACCEPTANCE"}}"#),
        );
        assert_eq!(a, Ok(Answer { transfer_id: ID.into(), stage: Stage::PartyToAccept }));
        let quoted = format!(
            r#"{{"transferId": "{ID}", "currentState": "WAITING_FOR_QUOTE_ACCEPTANCE",
                "quoteResponse": {{"body": {{"transferAmount": {{"amount": "10.5", "currency": "MXN"}},
                "expiration": "2026-12-02T01:00:00.000Z"}}}}}}"#
        );
        let Ok(Answer { stage: Stage::QuoteToAccept(q), .. }) = answer(200, &quoted) else { panic!() };
        assert_eq!(q.transfer_amount.to_string(), "10.5");
        assert_eq!((q.currency.as_str(), q.expiration.as_deref()), ("MXN", Some("2026-12-02T01:00:00.000Z")));
        let done = |state: &str| {
            answer(200, &format!(r#"{{"transferId": "{ID}", "currentState": "COMPLETED", "fulfil": {{"body": {{"transferState": "{state}"}}}}}}"#))
                .unwrap()
                .stage
        };
        assert_eq!(done("COMMITTED"), Stage::Finished(Finish::Committed));
        // The Connector says COMPLETED whatever the payee answered: only COMMITTED is paid.
        assert_eq!(done("ABORTED"), Stage::Finished(Finish::NotCommitted("ABORTED".into())));
        assert_eq!(done("RESERVED"), Stage::Finished(Finish::NotCommitted("RESERVED".into())));
    }

    #[test]
    fn errors_say_whether_money_may_have_moved() {
        // The scheme's refusal, with its code inside the transfer state.
        let e = answer(
            500,
            r#"{"message": "payer limit", "statusCode": "4001", "transferState": {"currentState": "ERROR_OCCURRED",
                "lastError": {"mojaloopError": {"errorInformation": {"errorCode": "4001", "errorDescription": "x"}}}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            OutboundError::Refused {
                status: 500,
                code: Some(FspiopCode::PAYER_INSUFFICIENT_LIQUIDITY),
                message: "payer limit".into()
            }
        );
        assert!(!e.money_may_have_moved());
        // A party that does not exist.
        let e = answer(500, r#"{"message": "not found", "statusCode": "3204"}"#).unwrap_err();
        assert!(matches!(e, OutboundError::Refused { code: Some(FspiopCode::PARTY_NOT_FOUND), .. }));
        assert!(!e.money_may_have_moved());
        // A server error from the scheme: unknown.
        assert!(answer(500, r#"{"message": "x", "statusCode": "2001"}"#).unwrap_err().money_may_have_moved());
        // The Connector's own timeout, a 204 on an errored record, an empty 502: unknown.
        for (status, body) in [(504, r#"{"statusCode": "504", "message": "timeout"}"#), (204, ""), (502, "")]
        {
            let e = answer(status, body).unwrap_err();
            assert!(e.money_may_have_moved(), "{status}: {e}");
        }
        // A request the Connector's validation refused: nothing happened.
        let e = answer(400, r#"{"message": "amount must match pattern"}"#).unwrap_err();
        assert!(!e.money_may_have_moved(), "{e}");
        assert!(!OutboundError::NotSent("refused".into()).money_may_have_moved());
    }

    #[test]
    fn answers_that_are_not_the_outbound_api_s_are_refused() {
        for body in [
            "not json".to_string(),
            r#"{"currentState": "COMPLETED"}"#.into(),
            r#"{"transferId": "../admin", "currentState": "COMPLETED"}"#.into(),
            format!(r#"{{"transferId": "{ID}", "currentState": "SOMETHING_NEW"}}"#),
            format!(
                r#"{{"transferId": "{ID}", "currentState": "WAITING_FOR_QUOTE_ACCEPTANCE", "quoteResponse": {{"body": {{"transferAmount": {{"amount": "10.50"}}}}}}}}"#
            ),
        ] {
            assert!(matches!(answer(200, &body), Err(OutboundError::Malformed(_))), "{body}");
        }
    }

    #[test]
    fn transfer_ids_are_uuids_before_they_enter_a_path() {
        assert_eq!(transfer_path(ID), Ok(format!("/transfers/{ID}")));
        for bad in [
            "",
            "x",
            "5b9e2e3c-8a51-4a2b-9d8e-0f1e2d3c4b5/",
            "5b9e2e3c/8a51-4a2b-9d8e-0f1e2d3c4b5a",
            &format!("{ID}?"),
        ] {
            assert!(transfer_path(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_connector_that_is_not_listening_is_not_sent_to() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let limits = OutboundLimits { timeout: Duration::from_secs(5), response_bytes_max: 65536 };
        let client = OutboundClient::new(&url, &limits, &TlsConfig::new(&Default::default()));
        let e = client.accept_quote(ID).await.unwrap_err();
        assert!(matches!(e, OutboundError::NotSent(_)), "{e}");
        assert!(!e.money_may_have_moved());
    }
}
