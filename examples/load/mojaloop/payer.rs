//! The payer DFSP's core system, the load: `n` transfers with `c` in flight against the payer
//! Connector's outbound API, each `POST /transfers` (amountType SEND, the same small amount, a
//! unique homeTransactionId) on one of `c` keep-alive connections. With both auto-accepts on,
//! that one call runs the whole transfer (party lookup, quote, transfer) and answers at its end.
//!
//! Every transfer pays its own payee party (MSISDN `PAYEE_PREFIX` + a number), all of them the
//! same account behind the payee: the Connector 18.0.2 wedges when lookups of one party id are
//! in flight together. Its cache (`src/lib/cache.js`) keeps one pub/sub subscription per
//! channel (`parties-MSISDN-<id>-undefined` for a lookup) with a callback per waiting transfer;
//! once the first answer made the last callback leave, a second answer on that channel reaches
//! the message handler with the channel's entry deleted (`Object.entries(undefined)`, a
//! TypeError at cache.js:151), and from then on no callback of any channel is delivered: every
//! later transfer times out.
//!
//! Success is `fulfil.body.transferState == "COMMITTED"` in a 200: the Connector reports
//! `currentState: "COMPLETED"` even when the payee aborted. Anything else is a failure, kept
//! with the status and the start of the answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use serde_json::{json, Value};

use crate::loopback::connect_http1;

/// One transfer's whole time at most: the Connector's own wait (30 s) and a margin; past it the
/// Connector is wedged, not slow.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(60);
/// A failure's answer is kept up to this many characters.
const ANSWER_CHARS_MAX: usize = 300;
/// The payer party, and the start of every payee party's MSISDN (ThitsaX serves them all by
/// this prefix, `[[mojaloop.parties]] id_value_prefix`).
pub(crate) const PAYER_MSISDN: &str = "5215559999";
pub(crate) const PAYEE_PREFIX: &str = "52155";
pub(crate) const CURRENCY: &str = "USD";

/// What one batch of transfers came to.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) elapsed: Duration,
    /// Each committed transfer's time, POST to answer, in microseconds.
    pub(crate) latencies_us: Vec<u64>,
    /// Each failed transfer: its homeTransactionId and why.
    pub(crate) failures: Vec<String>,
}

/// What every transfer of a batch has in common.
pub(crate) struct Plan<'a> {
    pub(crate) outbound: SocketAddr,
    /// homeTransactionIds are `<id_prefix>-<i>`.
    pub(crate) id_prefix: &'a str,
    pub(crate) amount: &'a str,
    pub(crate) transfers: u64,
    /// The first transfer's payee number; transfer `i` pays party `first_party + i`.
    pub(crate) first_party: u64,
    pub(crate) concurrency: usize,
}

/// The MSISDN of payee party `n`: the prefix and 7 digits (12 digits in all).
pub(crate) fn payee_msisdn(n: u64) -> String {
    format!("{PAYEE_PREFIX}{:07}", n % 10_000_000)
}

fn request_body(home_transaction_id: &str, payee: &str, amount: &str) -> String {
    json!({
        "homeTransactionId": home_transaction_id,
        "from": {"idType": "MSISDN", "idValue": PAYER_MSISDN, "displayName": "load payer"},
        "to": {"idType": "MSISDN", "idValue": payee},
        "amountType": "SEND",
        "currency": CURRENCY,
        "amount": amount,
        "transactionType": "TRANSFER",
        "note": "load",
    })
    .to_string()
}

/// `Ok` when the answer is a committed transfer, else why not: the Connector's message and
/// FSPIOP error when it gave them, the start of the answer otherwise.
fn committed(status: u16, body: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(body);
    let short = || text.chars().take(ANSWER_CHARS_MAX).collect::<String>();
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Err(format!("status {status}, not JSON: {}", short()));
    };
    let error = v.pointer("/transferState/lastError/mojaloopError/errorInformation");
    match (status, v.pointer("/fulfil/body/transferState").and_then(Value::as_str), &v["message"]) {
        (200, Some("COMMITTED"), _) => Ok(()),
        (200, state, _) => Err(format!("transferState {state:?}, currentState {}", v["currentState"])),
        (_, _, Value::String(message)) => {
            Err(format!("status {status}: {message}{}", error.map_or(String::new(), |e| format!(" ({e})"))))
        }
        _ => Err(format!("status {status}: {}", short())),
    }
}

async fn one(tx: &mut SendRequest<Full<Bytes>>, outbound: SocketAddr, body: String) -> Result<(), String> {
    let request = Request::post("/transfers")
        .header("host", outbound.to_string())
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    tx.ready().await.map_err(|e| format!("connection: {e}"))?;
    let answer = tx.send_request(request).await.map_err(|e| format!("request: {e}"))?;
    let status = answer.status().as_u16();
    let body = answer.into_body().collect().await.map_err(|e| format!("answer: {e}"))?.to_bytes();
    committed(status, &body)
}

/// Runs the batch: `concurrency` workers, each on its own connection, take the next transfer
/// until all are sent.
pub(crate) async fn pay(plan: &Plan<'_>) -> Batch {
    let next = AtomicU64::new(0);
    let latencies = Mutex::new(Vec::with_capacity(plan.transfers as usize));
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    let worker = || async {
        let mut connection: Option<SendRequest<Full<Bytes>>> = None;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= plan.transfers {
                return;
            }
            let id = format!("{}-{i}", plan.id_prefix);
            let sent = Instant::now();
            let result = async {
                let tx = match &mut connection {
                    Some(tx) if !tx.is_closed() => tx,
                    slot => slot.insert(connect_http1(plan.outbound).await?),
                };
                let body = request_body(&id, &payee_msisdn(plan.first_party + i), plan.amount);
                match tokio::time::timeout(TRANSFER_TIMEOUT, one(tx, plan.outbound, body)).await {
                    Ok(result) => result,
                    Err(_) => Err(format!("no answer within {TRANSFER_TIMEOUT:?}")),
                }
            }
            .await;
            match result {
                Ok(()) => latencies.lock().unwrap().push(sent.elapsed().as_micros() as u64),
                Err(why) => {
                    // The connection may be in any state: the next transfer opens a new one.
                    connection = None;
                    failures.lock().unwrap().push(format!("{id}: {why}"));
                }
            }
        }
    };
    futures::future::join_all((0..plan.concurrency).map(|_| worker())).await;
    Batch {
        elapsed: started.elapsed(),
        latencies_us: latencies.into_inner().unwrap(),
        failures: failures.into_inner().unwrap(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_committed_transfer_is_a_success() {
        let ok = br#"{"currentState":"COMPLETED","fulfil":{"body":{"transferState":"COMMITTED"}}}"#;
        assert_eq!(committed(200, ok), Ok(()));
        let aborted = br#"{"currentState":"COMPLETED","fulfil":{"body":{"transferState":"ABORTED"}}}"#;
        let why = committed(200, aborted).unwrap_err();
        assert!(why.contains("ABORTED") && why.contains("COMPLETED"), "{why}");
        let refused = br#"{"message":"Payee FSP insufficient liquidity","statusCode":"5001",
            "transferState":{"lastError":{"mojaloopError":{"errorInformation":{"errorCode":"5001"}}}}}"#;
        let why = committed(500, refused).unwrap_err();
        assert!(why.starts_with("status 500: Payee FSP insufficient") && why.contains("5001"), "{why}");
        assert!(committed(504, b"timeout").unwrap_err().starts_with("status 504, not JSON"));
        assert!(committed(200, b"").is_err());
        let body: Value = serde_json::from_str(&request_body("h-1", &payee_msisdn(42), "1")).unwrap();
        assert_eq!(
            (body["homeTransactionId"].as_str(), body["amountType"].as_str()),
            (Some("h-1"), Some("SEND"))
        );
        assert_eq!(body["to"]["idValue"], "521550000042");
    }
}
