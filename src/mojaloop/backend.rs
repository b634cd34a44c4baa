//! The backend API the Mojaloop Connector calls when the scheme pays the node (the node is the
//! payee DFSP): a listener of its own (`mojaloop.backend_listen`, the Connector's
//! BACKEND_ENDPOINT), private like the admin API.
//!
//! Served so far:
//! - `GET /parties/{idType}/{idValue}`: a party the node answers for (`[[mojaloop.parties]]`)
//!   whose Interledger receiver answers an SPSP query gets 200 with its `idType` and `idValue`
//!   (the Connector needs both echoed); a party the node does not answer for, or whose receiver
//!   says there is no such receiver, gets 404 with FSPIOP 3204; a receiver that cannot be asked
//!   now (unreachable, timed out) gets 503 with 2003.
//! - `POST /quoterequests` (`amountType` SEND): the ILP path's rate is probed from the
//!   currency's local account to the party's receiver (STREAM test packets, nothing paid), and
//!   the answer is the amount to transfer (the amount asked) with what the receiver gets at
//!   least, in its own asset (`payeeReceiveAmount`: the probed rate less the slippage the
//!   transfer's payment accepts, so the promise holds), and the node's fee (`payeeFspFeeAmount`,
//!   the currency's `fee_rate`, rounded up to its decimals) when it has one: the fee stays with
//!   the node, the rest is paid on. An unserved currency gets 5106, RECEIVE
//!   3100 (not offered yet), a path that cannot be probed its ILP code mapped to FSPIOP.
//!
//! - `POST /transfers`: the node pays the party's receiver over STREAM, the quote's
//!   `transferAmount` from the currency's local account, as an outgoing payment whose id is the
//!   `transferId` (so a transfer sent again, by a replay or a retry, finds the payment and is
//!   answered as the first time, never paid twice, on any instance sharing the store), and
//!   answers 2xx only once it was delivered; on failure the FSPIOP code of its ILP outcome. The
//!   payment's deadline is `mojaloop.payment_timeout_ms` (never past the quote's expiration) and
//!   no packet outlives it, so the node's answer is never overtaken by a late success. A new
//!   transfer past its quote's expiration is refused (3303).
//! - The same three for a party that is the node's own settlement party for a peer
//!   (`mojaloop_settlement.own_party`): found without a receiver, quoted at exactly the amount
//!   in the account's currency (5106 otherwise), and credited to that account once per transfer
//!   id ([`settlement::credit`]).

//!
//! Every error answer carries both `statusCode` (the FSPIOP code) and `message`: without both,
//! the Connector passes nothing on and the payer waits 30 s for nothing.
//!
//! Order of checks, cheapest first: method and path, a slot among the requests in flight (503
//! past `backend_connections_max`), the party's id, the configuration, then the SPSP query.

use super::amount::{FspiopAmount, FSPIOP_DECIMALS_MAX};
use super::error::FspiopCode;
use super::party::{id_value_ok, ID_TYPES};
use super::scheme::{Scheme, SchemeCurrency};
use super::settlement;
use crate::account::Account;
use crate::balance::AMOUNT_MAX;
use crate::http::listener::{
    accept_until_draining, drained, percent_decode, read_body, respond, Accepting, CONTENT_TYPE_JSON,
};
use crate::limits::{STREAM_OUTCOME_GRACE_MS, STREAM_SLIPPAGE};
use crate::node::Node;
use crate::packet::{ErrorCode, Prepare, Response as IlpResponse};
use crate::payments::outgoing::{SPSP_BODY_BYTES_MAX, SPSP_TIMEOUT};
use crate::spsp::SpspError;
use crate::store::Store;
use crate::store::{
    AmountKind, CreatedOutgoing, NewOutgoingPayment, OutgoingPayment, OutgoingPaymentId, OutgoingState,
    ProbedRate, StoreError,
};
use crate::stream::sender::{
    self, Amount, AssetDetails, Payment, Progress, Rules, Slippage, StopReason, Transport,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, error, info, warn};

/// An FSPIOP error answer: the HTTP status, the code and the message the payer will see.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    status: StatusCode,
    code: FspiopCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: FspiopCode, message: impl Into<String>) -> Refusal {
        Refusal { status, code, message: message.into() }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({ "statusCode": self.code.to_string(), "message": self.message });
        respond(self.status, CONTENT_TYPE_JSON, body.to_string())
    }
}

/// Serves the Connector until the node drains, then gives requests in flight the grace period.
pub async fn serve<S: Store>(listener: TcpListener, node: Arc<Node<S>>, scheme: Arc<Scheme>) {
    let limits = scheme.backend.clone();
    let shutdown = node.shutdown.clone();
    let in_flight = Arc::new(Semaphore::new(limits.connections_max));
    let accepting = Accepting {
        name: "mojaloop backend",
        connections_max: limits.connections_max,
        header_read_timeout: limits.header_read_timeout,
        nodelay: true,
        // The Connector opens a new connection for every request and leaves the last one idle.
        keep_alive: false,
    };
    let slots = in_flight.clone();
    let handle = move |req| {
        let (node, scheme, slots) = (node.clone(), scheme.clone(), slots.clone());
        async move {
            match answer(&node, &scheme, &slots, req).await {
                Ok(response) => response,
                Err(refusal) => refusal.into_response(),
            }
        }
    };
    let graceful = accept_until_draining(listener, accepting, &shutdown, handle).await;
    info!("Mojaloop backend listener draining: no new connections");
    if tokio::time::timeout(limits.shutdown_grace, drained(graceful, in_flight, limits.connections_max))
        .await
        .is_err()
    {
        warn!(grace_ms = limits.shutdown_grace.as_millis() as u64, "Mojaloop backend grace period over");
    }
}

async fn answer<S: Store>(
    node: &Node<S>,
    scheme: &Scheme,
    slots: &Arc<Semaphore>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Refusal> {
    let segments: Vec<&str> = req.uri().path().trim_start_matches('/').split('/').collect();
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["parties", id_type, id_value]) => {
            let (id_type, id_value) = (decoded(id_type)?, decoded(id_value)?);
            let _slot = slots.try_acquire().map_err(|_| busy())?;
            party(node, scheme, &id_type, &id_value).await
        }
        (&Method::POST, ["quoterequests"]) => {
            let _slot = slots.try_acquire().map_err(|_| busy())?;
            let request: QuoteRequest = json_request(req, scheme, "a quote request").await?;
            quote(node, scheme, &request).await
        }
        (&Method::POST, ["transfers"]) => {
            let _slot = slots.try_acquire().map_err(|_| busy())?;
            let request: TransferRequest = json_request(req, scheme, "a transfer").await?;
            transfer(node, scheme, &request).await
        }
        (_, ["parties", ..]) => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            FspiopCode::PARTY_NOT_FOUND,
            "parties are looked up by GET /parties/{idType}/{idValue}; sub-ids are not served",
        )),
        _ => Err(Refusal::new(StatusCode::NOT_FOUND, FspiopCode::UNKNOWN_URI, "not served by this node")),
    }
}

fn decoded(segment: &str) -> Result<String, Refusal> {
    percent_decode(segment).ok_or_else(|| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            FspiopCode::VALIDATION_ERROR,
            "a path segment is not percent-encoded UTF-8",
        )
    })
}

/// The request's JSON body, read within the backend's limits: 3100 when it is not `what`.
async fn json_request<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    scheme: &Scheme,
    what: &str,
) -> Result<T, Refusal> {
    let invalid = |why: String| Refusal::new(StatusCode::BAD_REQUEST, FspiopCode::VALIDATION_ERROR, why);
    let limits = &scheme.backend;
    let body = read_body(req, limits.body_bytes_max, limits.body_read_timeout)
        .await
        .map_err(|e| invalid(format!("the request body: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| invalid(format!("not {what}: {e}")))
}

/// The served currency `code` and the local account that holds it: 5106 when not served.
fn currency_account<'s, S>(
    node: &Node<S>,
    scheme: &'s Scheme,
    code: &str,
) -> Result<(&'s SchemeCurrency, Arc<Account>), Refusal> {
    let currency = scheme.currency(code).ok_or_else(|| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            FspiopCode::PAYEE_UNSUPPORTED_CURRENCY,
            format!("{code} is not a currency this node serves"),
        )
    })?;
    let account = node.accounts.load().get(&currency.account).cloned().ok_or_else(|| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            FspiopCode::SERVICE_UNAVAILABLE,
            "the currency's account is gone",
        )
    })?;
    Ok((currency, account))
}

/// What is paid on over Interledger for `amount` received in `currency`, and the node's fee
/// (`None` without a fee rate, or a fee of zero): 5000 when the fee takes it all.
fn net_of_fee(
    amount: &FspiopAmount,
    currency: &SchemeCurrency,
) -> Result<(FspiopAmount, Option<FspiopAmount>), Refusal> {
    let too_small = || {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            FspiopCode::PAYEE_ERROR,
            "the amount does not cover the node's fee",
        )
    };
    let Some(rate) = currency.fee_rate else { return Ok((*amount, None)) };
    let fee = amount.fee(&rate, currency.decimals).ok_or_else(too_small)?;
    let net = amount.checked_sub(&fee).filter(|n| !n.is_zero()).ok_or_else(too_small)?;
    Ok((net, Some(fee).filter(|f| !f.is_zero())))
}

/// The Interledger receiver of a party the node answers for: 3204 otherwise.
fn party_receiver(scheme: &Scheme, party: &PartyIdInfo) -> Result<String, Refusal> {
    let (id_type, id_value) = (party.id_type.as_str(), party.id_value.as_str());
    (ID_TYPES.contains(&id_type) && id_value_ok(id_value))
        .then(|| scheme.receiver_for(id_type, id_value))
        .flatten()
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, FspiopCode::PARTY_NOT_FOUND, "no such party"))
}

fn incoming_refusal(e: settlement::IncomingRefusal) -> Refusal {
    let status = match e {
        settlement::IncomingRefusal::Store => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    Refusal::new(status, e.code(), e.to_string())
}

fn busy() -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        FspiopCode::SERVICE_UNAVAILABLE,
        "too many requests in flight; retry",
    )
}

/// `GET /parties/{idType}/{idValue}`: the party, if the node answers for it and its receiver
/// answers an SPSP query now.
async fn party<S: Store>(
    node: &Node<S>,
    scheme: &Scheme,
    id_type: &str,
    id_value: &str,
) -> Result<Response<Full<Bytes>>, Refusal> {
    let not_found = |why: &str| Refusal::new(StatusCode::NOT_FOUND, FspiopCode::PARTY_NOT_FOUND, why);
    if !ID_TYPES.contains(&id_type) || !id_value_ok(id_value) {
        return Err(not_found("no such party"));
    }
    // The node's own party for a peer it settles with: the node itself answers for it.
    if settlement::account_of(node, id_type, id_value).is_some() {
        let body = serde_json::json!({ "idType": id_type, "idValue": id_value, "fspId": scheme.dfsp_id });
        return Ok(respond(StatusCode::OK, CONTENT_TYPE_JSON, body.to_string()));
    }
    let receiver = scheme.receiver_for(id_type, id_value).ok_or_else(|| not_found("no such party"))?;
    match crate::spsp::resolve(node.client.connector(), &receiver, SPSP_TIMEOUT, SPSP_BODY_BYTES_MAX).await {
        Ok(_) => {
            debug!(id_type, id_value, %receiver, "Mojaloop party found");
            let body = serde_json::json!({ "idType": id_type, "idValue": id_value, "fspId": scheme.dfsp_id });
            Ok(respond(StatusCode::OK, CONTENT_TYPE_JSON, body.to_string()))
        }
        Err(e) => {
            let refusal = lookup_refusal(&e);
            info!(id_type, id_value, %receiver, error = %e, code = %refusal.code, "Mojaloop party lookup refused");
            Err(refusal)
        }
    }
}

/// The fields of the Connector's quote request the node reads (others are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuoteRequest {
    quote_id: String,
    to: PartyIdInfo,
    #[serde(default)]
    from: Option<PayerInfo>,
    amount_type: String,
    amount: String,
    currency: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartyIdInfo {
    id_type: String,
    id_value: String,
}

/// The payer as the Connector names it: its DFSP, when given.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayerInfo {
    #[serde(default)]
    fsp_id: Option<String>,
}

/// How long a quote's probe may take: well inside the payer's wait for the quote.
const QUOTE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// `POST /quoterequests`: probes the path from the currency's account to the party's receiver.
async fn quote<S: Store>(
    node: &Node<S>,
    scheme: &Scheme,
    request: &QuoteRequest,
) -> Result<Response<Full<Bytes>>, Refusal> {
    let invalid = |why: String| Refusal::new(StatusCode::BAD_REQUEST, FspiopCode::VALIDATION_ERROR, why);
    if let Some(peer) = settlement::account_of(node, &request.to.id_type, &request.to.id_value) {
        let payer = request.from.as_ref().and_then(|f| f.fsp_id.as_deref());
        settlement::check_payer(&peer, payer).map_err(incoming_refusal)?;
        let amount = settlement::quote(&peer, &request.currency, &request.amount_type, &request.amount)
            .map_err(incoming_refusal)?;
        info!(quote = %request.quote_id, account = %peer.id, %amount, "Mojaloop settlement quoted");
        let body = serde_json::json!({
            "transferAmount": amount.to_string(),
            "transferAmountCurrency": request.currency,
        });
        return Ok(respond(StatusCode::OK, CONTENT_TYPE_JSON, body.to_string()));
    }
    let (currency, account) = currency_account(node, scheme, &request.currency)?;
    if request.amount_type != "SEND" {
        return Err(invalid(format!(
            "amountType {} is not offered: quote a SEND amount",
            request.amount_type
        )));
    }
    let amount = FspiopAmount::parse(&request.amount).map_err(|e| invalid(e.to_string()))?;
    let (net, fee) = net_of_fee(&amount, currency)?;
    let source = net.to_account(account.asset_scale).map_err(|e| invalid(e.to_string()))?;
    if source == 0 {
        return Err(invalid("the amount is zero".into()));
    }
    let receiver = party_receiver(scheme, &request.to)?;
    let target = crate::spsp::resolve(node.client.connector(), &receiver, SPSP_TIMEOUT, SPSP_BODY_BYTES_MAX)
        .await
        .map_err(|e| lookup_refusal(&e))?;
    let payment = Payment {
        destination: target.destination,
        shared_secret: target.shared_secret,
        source_asset: AssetDetails { code: account.asset_code.to_string(), scale: account.asset_scale },
        // Empty, as the transfer's payment sends it (see payments::outgoing).
        source_address: None,
        amount: Amount::Source(source),
    };
    let rules = Rules { quote_only: true, ..Rules::new(tokio::time::Instant::now() + QUOTE_PROBE_TIMEOUT) };
    let transport = FromAccount { node, account: &account };
    let outcome =
        sender::pay(&transport, &payment, &rules, Progress::default(), |_| async {}).await.map_err(|e| {
            Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, FspiopCode::INTERNAL_SERVER_ERROR, e.to_string())
        })?;
    let (Some((lower, _)), Some(asset), StopReason::Quoted) =
        (outcome.rate, outcome.destination_asset, &outcome.stop)
    else {
        let code = last_reject_code(&outcome.rejects_by_code);
        info!(quote = %request.quote_id, %receiver, stop = ?outcome.stop, "Mojaloop quote: the ILP path could not be probed");
        return Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            FspiopCode::from_ilp(code),
            format!("the Interledger path to the party could not be quoted ({:?})", outcome.stop),
        ));
    };
    // What the transfer's payment guarantees: it pays at the probed rate's lower bound less its
    // slippage, so that is the least the receiver gets, not the probed rate itself.
    let probed = u64::try_from(lower.floor_of(source)).unwrap_or(u64::MAX);
    let receives = guaranteed(u128::from(probed), STREAM_SLIPPAGE);
    let mut body = serde_json::json!({
        "transferAmount": amount.to_string(),
        "transferAmountCurrency": request.currency,
    });
    // Kept by the Connector with the quote and given back with its transfer, which pays at this
    // rate without probing again (see `TransferQuote::probed`).
    body[PROBED_RATE_FIELD] =
        serde_json::json!({ "sent": source.to_string(), "delivered": probed.to_string() });
    if let Some(fee) = fee {
        body["payeeFspFeeAmount"] = serde_json::Value::from(fee.to_string());
        body["payeeFspFeeAmountCurrency"] = serde_json::Value::from(request.currency.as_str());
    }
    // What the receiver gets at least, in its asset, as far as FSPIOP can write it.
    let decimals = asset.scale.min(FSPIOP_DECIMALS_MAX);
    if let Ok((receive_amount, _)) = FspiopAmount::from_account(receives, asset.scale, decimals) {
        body["payeeReceiveAmount"] = serde_json::Value::from(receive_amount.to_string());
        body["payeeReceiveAmountCurrency"] = serde_json::Value::from(asset.code);
    }
    info!(quote = %request.quote_id, %receiver, amount = %amount, receives, "Mojaloop quote answered");
    Ok(respond(StatusCode::OK, CONTENT_TYPE_JSON, body.to_string()))
}

/// The fields of the Connector's transfer the node reads: the quote is the node's own answer,
/// with the expiration the Connector added.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransferRequest {
    transfer_id: String,
    quote: TransferQuote,
    to: PartyIdInfo,
    #[serde(default)]
    from: Option<PayerInfo>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransferQuote {
    transfer_amount: String,
    transfer_amount_currency: String,
    expiration: Option<String>,
    /// The rate the quote's probe found, as the node's quote answer gave it: the transfer pays
    /// at it (what the quote promised the payee) and sends no test packets of its own. Absent
    /// from quotes of an older node; then the payment probes.
    #[serde(default, rename = "thitsaxProbedRate")]
    probed: Option<ProbedRateField>,
}

/// The field of the node's own quote answer that [`TransferQuote::probed`] reads back.
const PROBED_RATE_FIELD: &str = "thitsaxProbedRate";

/// A probe's reply, amounts as decimal strings: `sent` in the account's units, `delivered` in
/// the receiver's.
#[derive(Debug, Deserialize)]
struct ProbedRateField {
    sent: String,
    delivered: String,
}

impl ProbedRateField {
    /// The rate, if it was probed for this very source amount; anything else is not the node's
    /// quote of this transfer, and the payment probes anew.
    fn for_source(&self, source: u64) -> Option<ProbedRate> {
        let sent = self.sent.parse::<u64>().ok().filter(|&sent| sent == source)?;
        let delivered = self.delivered.parse::<u64>().ok().filter(|&d| (1..=AMOUNT_MAX).contains(&d))?;
        Some(ProbedRate { sent, delivered })
    }
}

/// How often a transfer's payment is read while the node waits for its end, when no end of a
/// payment of this instance wakes it first.
const TRANSFER_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// `POST /transfers`: pays the party's receiver once per transfer id, and answers when done.
async fn transfer<S: Store>(
    node: &Node<S>,
    scheme: &Scheme,
    request: &TransferRequest,
) -> Result<Response<Full<Bytes>>, Refusal> {
    let invalid = |why: String| Refusal::new(StatusCode::BAD_REQUEST, FspiopCode::VALIDATION_ERROR, why);
    let expiration = match &request.quote.expiration {
        Some(text) => Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map(SystemTime::from)
                .map_err(|_| invalid(format!("quote.expiration {text:?} is not a date-time")))?,
        ),
        None => None,
    };
    if let Some(peer) = settlement::account_of(node, &request.to.id_type, &request.to.id_value) {
        let quote = &request.quote;
        let payer = request.from.as_ref().and_then(|f| f.fsp_id.as_deref());
        settlement::check_payer(&peer, payer).map_err(incoming_refusal)?;
        settlement::credit(
            node,
            &peer,
            &request.transfer_id,
            &quote.transfer_amount_currency,
            &quote.transfer_amount,
            expiration,
        )
        .await
        .map_err(incoming_refusal)?;
        let body = serde_json::json!({ "homeTransactionId": request.transfer_id });
        return Ok(respond(StatusCode::OK, CONTENT_TYPE_JSON, body.to_string()));
    }
    let id = OutgoingPaymentId::parse(&request.transfer_id).ok_or_else(|| {
        invalid(format!("transferId {:?} is not an id this node takes", request.transfer_id))
    })?;
    let (currency, account) = currency_account(node, scheme, &request.quote.transfer_amount_currency)?;
    let store_down = |e: StoreError| {
        warn!(error = %e, transfer = %id, "Mojaloop transfer: store unavailable");
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            FspiopCode::SERVICE_UNAVAILABLE,
            "the node's store is unavailable; retry",
        )
    };
    // A transfer seen before is answered as the first time: by its payment, never a second one.
    if let Some(existing) = node.store.outgoing_payment(&account, &id).await.map_err(store_down)? {
        info!(transfer = %id, "Mojaloop transfer received again: answered by its payment");
        return transfer_answer(node, &account, existing).await;
    }
    // Payment ids are per account: the same transferId in another served currency is the same
    // transfer modified, never a second payment.
    for other in scheme.currencies.iter().filter(|c| c.account != account.id) {
        let Some(other_account) = node.accounts.load().get(&other.account).cloned() else { continue };
        if node.store.outgoing_payment(&other_account, &id).await.map_err(store_down)?.is_some() {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                FspiopCode::MODIFIED_REQUEST,
                format!("transfer {id} was received before in {}", other.code),
            ));
        }
    }
    let now = SystemTime::now();
    if expiration.is_some_and(|at| at <= now) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            FspiopCode::TRANSFER_EXPIRED,
            "the transfer's quote has expired",
        ));
    }
    let receiver = party_receiver(scheme, &request.to)?;
    let amount = FspiopAmount::parse(&request.quote.transfer_amount).map_err(|e| invalid(e.to_string()))?;
    // The fee as the node's own rate makes it, not as the quote's echo says.
    let (net, _fee) = net_of_fee(&amount, currency)?;
    let source = net.to_account(account.asset_scale).map_err(|e| invalid(e.to_string()))?;
    // The ILP leg ends by the payment timeout, and never after the quote's expiration.
    let deadline = expiration.map_or(now + scheme.payment_timeout, |at| at.min(now + scheme.payment_timeout));
    let new = NewOutgoingPayment {
        id: id.clone(),
        receiver,
        amount: source,
        kind: AmountKind::Source,
        slippage: STREAM_SLIPPAGE.to_string(),
        deadline,
        source_max: None,
        probed: request.quote.probed.as_ref().and_then(|p| p.for_source(source)),
    };
    if request.quote.probed.is_some() && new.probed.is_none() {
        warn!(transfer = %id, "Mojaloop transfer: its quote's probed rate is not for its amount; probing again");
    }
    new.check(now).map_err(|e| invalid(e.to_string()))?;
    let payment = match node.store.create_outgoing_payment(&account, &new, now).await.map_err(store_down)? {
        CreatedOutgoing::Created(p) => {
            info!(transfer = %id, amount = %amount, account = %account.id, "Mojaloop transfer: paying over Interledger");
            node.sending.wake.notify_one();
            p
        }
        CreatedOutgoing::Exists(p) => p,
    };
    transfer_answer(node, &account, payment).await
}

/// Waits for the transfer's payment to end, then answers: 200 once delivered, else the FSPIOP
/// code of its ILP outcome.
async fn transfer_answer<S: Store>(
    node: &Node<S>,
    account: &Account,
    mut payment: OutgoingPayment,
) -> Result<Response<Full<Bytes>>, Refusal> {
    // Every packet's outcome is known by the deadline and the grace for its answer.
    let give_up =
        payment.deadline + Duration::from_millis(STREAM_OUTCOME_GRACE_MS) + TRANSFER_POLL_INTERVAL * 5;
    // Woken as soon as a payment of this instance ends; the poll is for one another instance
    // sends (its end is only seen in the store).
    let mut ended = node.sending.ended.subscribe();
    while payment.state == OutgoingState::Sending && SystemTime::now() < give_up {
        if let Ok(Err(_)) = tokio::time::timeout(TRANSFER_POLL_INTERVAL, ended.changed()).await {
            // No sender any more (the node is going away): poll only.
            tokio::time::sleep(TRANSFER_POLL_INTERVAL).await;
        }
        if let Ok(Some(read)) = node.store.outgoing_payment(account, &payment.id).await {
            payment = read;
        }
    }
    match payment.state {
        OutgoingState::Completed => {
            let body = serde_json::json!({ "homeTransactionId": payment.id.as_str() });
            Ok(respond(StatusCode::OK, CONTENT_TYPE_JSON, body.to_string()))
        }
        OutgoingState::Failed => {
            let why = payment.stop_reason.as_deref().unwrap_or("failed");
            // Nothing was sent and no packet was refused: the receiver could not be reached (its
            // SPSP query failed), not refused.
            let code = match payment.rejects.is_empty() && payment.sent == 0 && payment.in_doubt == 0 {
                true => ErrorCode::T01_PEER_UNREACHABLE,
                false => last_reject_code(&payment.rejects),
            };
            if payment.sent > 0 || payment.in_doubt > 0 {
                // STREAM has no all-or-nothing: part of the money reached the receiver while the
                // scheme is told the transfer failed.
                error!(
                    transfer = %payment.id, sent = payment.sent, delivered = payment.delivered, in_doubt = payment.in_doubt,
                    %why, "Mojaloop transfer refused after part of its Interledger payment was delivered: reconcile this payment"
                );
            } else {
                info!(transfer = %payment.id, %why, "Mojaloop transfer: the Interledger payment failed");
            }
            Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                FspiopCode::from_ilp(code),
                format!("the Interledger payment to the party failed: {why}"),
            ))
        }
        OutgoingState::Sending => Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            FspiopCode::SERVER_TIMED_OUT,
            "the Interledger payment did not end in time",
        )),
    }
}

/// `at_rate` less the `slippage` a payment accepts, rounded down: the least it delivers.
fn guaranteed(at_rate: u128, slippage: &str) -> u64 {
    let (num, den) = Slippage::parse(slippage).expect("the node's slippage is valid").as_fraction();
    let least = at_rate * u128::from(den - num) / u128::from(den);
    u64::try_from(least).unwrap_or(u64::MAX)
}

/// The reject code that says most about a failed probe: the final one if any, else any.
fn last_reject_code(rejects: &std::collections::BTreeMap<String, u64>) -> ErrorCode {
    let parse = |code: &String| code.as_bytes().try_into().ok().map(ErrorCode::new);
    rejects
        .keys()
        .filter(|c| c.starts_with('F') && c.as_str() != "F99")
        .chain(rejects.keys())
        .find_map(parse)
        .unwrap_or(ErrorCode::T00_INTERNAL_ERROR)
}

/// The node's own packet path from a local account: how a quote probes.
struct FromAccount<'a, S> {
    node: &'a Node<S>,
    account: &'a Account,
}

impl<S: Store> Transport for FromAccount<'_, S> {
    async fn send(&self, prepare: Prepare) -> IlpResponse {
        crate::payments::outgoing::forward_from(self.node, self.account, prepare).await
    }
}

/// A receiver that answered "no" is no party; one that could not be asked is unavailable now.
fn lookup_refusal(e: &SpspError) -> Refusal {
    match e {
        SpspError::TimedOut(_) | SpspError::Query(_) | SpspError::Status(500..=599) => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            FspiopCode::SERVICE_UNAVAILABLE,
            "the party's Interledger receiver cannot be reached now; retry",
        ),
        _ => Refusal::new(StatusCode::NOT_FOUND, FspiopCode::PARTY_NOT_FOUND, "no such party"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receiver_that_said_no_is_no_party_and_one_that_could_not_be_asked_is_unavailable() {
        assert_eq!(lookup_refusal(&SpspError::NotFound).code, FspiopCode::PARTY_NOT_FOUND);
        assert_eq!(lookup_refusal(&SpspError::NotAcceptable).code, FspiopCode::PARTY_NOT_FOUND);
        assert_eq!(lookup_refusal(&SpspError::Status(410)).code, FspiopCode::PARTY_NOT_FOUND);
        let down = lookup_refusal(&SpspError::TimedOut(std::time::Duration::from_secs(1)));
        assert_eq!(
            (down.status, down.code),
            (StatusCode::SERVICE_UNAVAILABLE, FspiopCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(lookup_refusal(&SpspError::Status(502)).code, FspiopCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn the_quoted_amount_is_what_the_slippage_still_guarantees() {
        assert_eq!(guaranteed(4_950_000_000, "0.01"), 4_900_500_000);
        assert_eq!(guaranteed(4_950_000_000, "0"), 4_950_000_000);
        assert_eq!(guaranteed(99, "0.01"), 98, "rounded down");
        assert_eq!(guaranteed(u128::from(u64::MAX) * 2, "0"), u64::MAX);
    }

    #[test]
    fn a_quote_s_probed_rate_is_read_back_from_its_transfer_only_for_the_quoted_amount() {
        let mut answer = serde_json::json!({ "transferAmount": "3.5", "transferAmountCurrency": "MXN" });
        answer[PROBED_RATE_FIELD] = serde_json::json!({ "sent": "350", "delivered": "6384" });
        answer["expiration"] = serde_json::Value::from("2026-12-02T17:43:07.045Z");
        let quote: TransferQuote = serde_json::from_value(answer).unwrap();
        let probed = quote.probed.unwrap();
        assert_eq!(probed.for_source(350), Some(ProbedRate { sent: 350, delivered: 6384 }));
        assert_eq!(probed.for_source(351), None, "a quote of another amount");
        let field =
            |sent: &str, delivered: &str| ProbedRateField { sent: sent.into(), delivered: delivered.into() };
        assert_eq!(field("350", &(AMOUNT_MAX + 1).to_string()).for_source(350), None);
        assert_eq!(field("350", "-1").for_source(350), None);
        assert_eq!(field("350", "0").for_source(350), None, "delivered nothing: no rate");
        assert_eq!(field("0350", "1").for_source(350), Some(ProbedRate { sent: 350, delivered: 1 }));
        // An older node's quote has none: the transfer probes.
        let older: TransferQuote =
            serde_json::from_str(r#"{"transferAmount": "1", "transferAmountCurrency": "MXN"}"#).unwrap();
        assert!(older.probed.is_none());
    }

    #[test]
    fn a_failed_probe_is_named_by_its_most_telling_reject() {
        let of = |codes: &[&str]| {
            let map: std::collections::BTreeMap<String, u64> =
                codes.iter().map(|c| (c.to_string(), 1)).collect();
            last_reject_code(&map)
        };
        assert_eq!(of(&["F02", "F99", "T04"]), ErrorCode::F02_UNREACHABLE);
        assert_eq!(of(&["F99", "T04"]), ErrorCode::F99_APPLICATION_ERROR);
        assert_eq!(of(&["T04"]), ErrorCode::T04_INSUFFICIENT_LIQUIDITY);
        assert_eq!(of(&[]), ErrorCode::T00_INTERNAL_ERROR);
        assert_eq!(of(&["other"]), ErrorCode::T00_INTERNAL_ERROR);
    }

    #[test]
    fn every_refusal_carries_a_status_code_and_a_message() {
        let response =
            Refusal::new(StatusCode::NOT_FOUND, FspiopCode::PARTY_NOT_FOUND, "no such party").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
