//! The node's client of a Rafiki's admin GraphQL API, for what it keeps in step there: the
//! node's liquidity as a peer (deposits, two-phase withdrawals) and reading it back.
//!
//! Every request is signed as Rafiki asks (`signature: t=<ms>, v1=<HMAC>` over `"<t>." +` the
//! body's RFC 8785 canonical JSON, plus `tenant-id`), and the bytes sent are exactly the
//! canonical ones that were signed. Each attempt is signed anew: Rafiki refuses a signature it
//! saw before, so a retry never replays one.
//!
//! What comes back is told apart: a GraphQL refusal (`errors[]`, Rafiki said no and did
//! nothing; its `extensions.code` kept) from a refused signature (401: the secret, the tenant
//! or the clock) and from an outage (unreachable, timed out, 5xx, an answer that is not
//! GraphQL), after which the call may or may not have been made. Outages are retried a bounded
//! number of times; mutations carry the caller's idempotency key, so a retry does nothing twice.

use crate::account::Secret;
use crate::backoff::Backoff;
use crate::http::client::{one_shot, GetError, Posted};
use crate::http::tls::Connector;
use bytes::Bytes;
use hyper::{StatusCode, Uri};
use serde_json::{json, Value};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::warn;

/// Larger answers are refused.
pub const ANSWER_BYTES_MAX: usize = 64 * 1024;

/// Where and as whom the node calls a Rafiki's admin API (`[rafiki.admin]`).
#[derive(Clone, PartialEq, Eq)]
pub struct AdminApiSettings {
    /// `http[s]://host:port/graphql`.
    pub url: String,
    /// The admin API's signing secret: an HMAC key, so kept as given (never logged).
    pub secret: Secret,
    pub tenant_id: String,
    /// One attempt, connecting and answering included.
    pub request_timeout: Duration,
    /// Attempts of one call in all, when the first ones meet an outage.
    pub attempts_max: u32,
    /// First wait after an outage; doubles from there.
    pub retry_first: Duration,
}

impl fmt::Debug for AdminApiSettings {
    /// Everything but the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminApiSettings")
            .field("url", &self.url)
            .field("tenant_id", &self.tenant_id)
            .field("request_timeout", &self.request_timeout)
            .field("attempts_max", &self.attempts_max)
            .finish_non_exhaustive()
    }
}

/// Why a call has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Rafiki refused it (a GraphQL error): nothing was done by this call.
    #[error("Rafiki refused: {message} ({code})")]
    Refused { code: String, message: String },
    /// Rafiki refused the signature or the tenant (HTTP 401): nothing was done.
    #[error("Rafiki refused the request's signature or tenant (check [rafiki.admin] secret, tenant_id and the clock): {0}")]
    Unauthorized(String),
    /// No usable answer: the call may or may not have been made.
    #[error("Rafiki's admin API unreachable or failing: {0}")]
    Outage(String),
}

impl ApiError {
    /// Rafiki answered, with a refusal of this code.
    pub fn refused_with(&self, code: &str) -> bool {
        matches!(self, ApiError::Refused { code: c, .. } if c == code)
    }
}

/// A Rafiki's admin API, as the node calls it.
#[derive(Clone)]
pub struct AdminApi {
    settings: AdminApiSettings,
    connector: Connector,
}

impl fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminApi").field("settings", &self.settings).finish_non_exhaustive()
    }
}

const DEPOSIT: &str = "mutation DepositPeerLiquidity($input: DepositPeerLiquidityInput!) { depositPeerLiquidity(input: $input) { success } }";
const WITHDRAW: &str = "mutation CreatePeerLiquidityWithdrawal($input: CreatePeerLiquidityWithdrawalInput!) { createPeerLiquidityWithdrawal(input: $input) { success } }";
const POST_WITHDRAWAL: &str = "mutation PostLiquidityWithdrawal($input: PostLiquidityWithdrawalInput!) { postLiquidityWithdrawal(input: $input) { success } }";
const PEER: &str = "query Peer($id: String!) { peer(id: $id) { id liquidity } }";

impl AdminApi {
    pub fn new(settings: AdminApiSettings, connector: Connector) -> Self {
        AdminApi { settings, connector }
    }

    /// Records a deposit of `amount` (the peer's asset scale) to the node's liquidity, as
    /// transfer `id` (a UUID v4), once per `key`.
    pub async fn deposit(&self, peer_id: &str, amount: u64, id: &str, key: &str) -> Result<(), ApiError> {
        let input = json!({"peerId": peer_id, "amount": amount.to_string(), "id": id, "idempotencyKey": key});
        self.mutate(DEPOSIT, "depositPeerLiquidity", input).await
    }

    /// Reserves a withdrawal of `amount` (the peer's asset scale) from the node's liquidity as
    /// transfer `id` (a UUID v4), once per `key`; Rafiki releases it after `timeout_s` unless it
    /// is posted.
    pub async fn create_withdrawal(
        &self,
        peer_id: &str,
        amount: u64,
        id: &str,
        key: &str,
        timeout_s: u64,
    ) -> Result<(), ApiError> {
        let input = json!({
            "peerId": peer_id, "amount": amount.to_string(), "id": id,
            "idempotencyKey": key, "timeoutSeconds": timeout_s,
        });
        self.mutate(WITHDRAW, "createPeerLiquidityWithdrawal", input).await
    }

    /// Posts a reserved withdrawal, once per `key`: the liquidity is then gone for good.
    pub async fn post_withdrawal(&self, withdrawal_id: &str, key: &str) -> Result<(), ApiError> {
        let input = json!({"withdrawalId": withdrawal_id, "idempotencyKey": key});
        self.mutate(POST_WITHDRAWAL, "postLiquidityWithdrawal", input).await
    }

    /// The node's liquidity at Rafiki now (the peer's asset scale).
    pub async fn liquidity(&self, peer_id: &str) -> Result<u64, ApiError> {
        let data = self.call(PEER, json!({"id": peer_id})).await?;
        let peer = &data["peer"];
        if peer.is_null() {
            return Err(ApiError::Refused {
                code: "NOT_FOUND".into(),
                message: format!("no peer {peer_id}"),
            });
        }
        uint64(&peer["liquidity"])
            .ok_or_else(|| ApiError::Outage(format!("peer liquidity is not a UInt64: {}", peer["liquidity"])))
    }

    async fn mutate(&self, query: &str, field: &str, input: Value) -> Result<(), ApiError> {
        let data = self.call(query, json!({"input": input})).await?;
        match data[field]["success"].as_bool() {
            Some(true) => Ok(()),
            // Older Rafikis answer `{code, success: false, message}` rather than errors[].
            Some(false) => Err(ApiError::Refused {
                code: data[field]["code"].as_str().unwrap_or("UNSUCCESSFUL").to_string(),
                message: data[field]["message"].as_str().unwrap_or("success: false").to_string(),
            }),
            None => Err(ApiError::Outage(format!("{field} answered without success: {data}"))),
        }
    }

    /// One GraphQL operation: its `data`, or why none. Outages (and Rafiki's "concurrent
    /// request" refusal, which means another call with the key is still in progress) are tried
    /// again, up to `attempts_max` in all, each signed anew.
    async fn call(&self, query: &str, variables: Value) -> Result<Value, ApiError> {
        let body = json!({"query": query, "variables": variables});
        let canonical = crate::rafiki::signature::canonical(&body)
            .map_err(|e| ApiError::Outage(format!("the request has no canonical form: {e}")))?;
        let mut backoff = Backoff::new(self.settings.retry_first, self.settings.retry_first * 8);
        let mut attempt = 1;
        loop {
            let result = self.attempt(&canonical).await;
            let again = match &result {
                Err(ApiError::Outage(_)) => true,
                Err(ApiError::Refused { message, .. }) => message.contains("Concurrent request"),
                _ => false,
            };
            if !again || attempt >= self.settings.attempts_max {
                return result;
            }
            let wait = backoff.next_wait();
            if let Err(e) = &result {
                warn!(error = %e, attempt, wait_ms = wait.as_millis() as u64, "Rafiki admin API call failed; trying again");
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, canonical: &str) -> Result<Value, ApiError> {
        let signature = crate::rafiki::signature::sign(
            self.settings.secret.expose().as_bytes(),
            signing_time(),
            canonical,
        );
        let headers = [("signature", signature), ("tenant-id", self.settings.tenant_id.clone())];
        let post = Posted {
            content_type: "application/json",
            body: Bytes::copy_from_slice(canonical.as_bytes()),
            headers: &headers,
        };
        let url: Uri = self
            .settings
            .url
            .parse()
            .map_err(|e| ApiError::Outage(format!("bad URL (config checks it): {e}")))?;
        let fetched = one_shot(
            &self.connector,
            &url,
            "application/json",
            Some(post),
            ANSWER_BYTES_MAX,
            self.settings.request_timeout,
        )
        .await
        .map_err(|e| match e {
            GetError::Url(e) => ApiError::Outage(format!("bad URL: {e}")),
            e => ApiError::Outage(e.to_string()),
        })?;
        let text = || String::from_utf8_lossy(&fetched.body).chars().take(200).collect::<String>();
        if fetched.status == StatusCode::UNAUTHORIZED {
            return Err(ApiError::Unauthorized(text()));
        }
        if !fetched.status.is_success() {
            return Err(ApiError::Outage(format!("HTTP {}: {}", fetched.status.as_u16(), text())));
        }
        let answer: Value = serde_json::from_slice(&fetched.body)
            .map_err(|e| ApiError::Outage(format!("the answer is not JSON ({e}): {}", text())))?;
        answer_data(answer)
    }
}

/// When an attempt is signed: now, or 1 ms after the last attempt of this process when that is
/// later. Rafiki refuses a signature it saw before, and two identical bodies signed in the same
/// millisecond (a periodic reconciliation and one asked for, both reading the peer) would carry
/// one signature: so no two attempts share a `t`. Under more than 1,000 attempts a second `t`
/// runs ahead of the clock, which Rafiki accepts (it bounds only the past).
fn signing_time() -> SystemTime {
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let previous = LAST_MS.fetch_max(now_ms, Ordering::Relaxed);
    let t_ms = match previous < now_ms {
        true => now_ms,
        // Taken by an earlier attempt in this millisecond or later: the next free one.
        false => LAST_MS.fetch_add(1, Ordering::Relaxed) + 1,
    };
    UNIX_EPOCH + Duration::from_millis(t_ms)
}

/// A GraphQL answer's `data`, or its first error as a refusal.
fn answer_data(answer: Value) -> Result<Value, ApiError> {
    if let Some(first) = answer.get("errors").and_then(Value::as_array).and_then(|e| e.first()) {
        let code = first["extensions"]["code"].as_str().unwrap_or("UNKNOWN").to_string();
        let message = first["message"].as_str().unwrap_or_default().to_string();
        // Rafiki's own failures come as errors too: they are outages, not refusals.
        if code == "INTERNAL_SERVER_ERROR" && !message.contains("Incoming arguments are different") {
            return Err(ApiError::Outage(format!("{message} ({code})")));
        }
        return Err(ApiError::Refused { code, message });
    }
    match answer.get("data") {
        Some(data) if data.is_object() => Ok(data.clone()),
        _ => Err(ApiError::Outage(format!("a GraphQL answer without data or errors: {answer}"))),
    }
}

/// A GraphQL `UInt64`: a string of digits (as Rafiki sends it) or a JSON integer.
fn uint64(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str()?.parse().ok())
}

/// A UUID v4 made from 16 bytes: the same bytes give the same UUID (so an id derived from one
/// the store keeps is as persistent as it), with the version and variant bits set.
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_answers_are_told_apart() {
        let ok = json!({"data": {"depositPeerLiquidity": {"success": true}}});
        assert_eq!(answer_data(ok.clone()), Ok(ok["data"].clone()));
        let refused = json!({"data": null, "errors": [{"message": "Insufficient transfer balance", "extensions": {"code": "FORBIDDEN"}}]});
        let e = answer_data(refused).unwrap_err();
        assert!(e.refused_with("FORBIDDEN"), "{e}");
        let reused = json!({"errors": [{"message": "Incoming arguments are different than the original request", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]});
        assert!(answer_data(reused).unwrap_err().refused_with("INTERNAL_SERVER_ERROR"));
        let failing =
            json!({"errors": [{"message": "db down", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]});
        assert!(matches!(answer_data(failing), Err(ApiError::Outage(_))));
        assert!(matches!(answer_data(json!({"hello": 1})), Err(ApiError::Outage(_))));
    }

    #[test]
    fn no_two_attempts_are_signed_at_the_same_millisecond() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let at = |_| signing_time().duration_since(UNIX_EPOCH).unwrap().as_millis();
                    (0..500).map(at).collect::<Vec<u128>>()
                })
            })
            .collect();
        let mut all: Vec<u128> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        assert!(all.iter().all(|t| *t >= before), "never before the clock");
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "every attempt its own millisecond");
    }

    #[test]
    fn uuids_are_version_4_and_stable() {
        let id = uuid_v4([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
        assert_eq!(uuid_v4([7; 16]), uuid_v4([7; 16]));
        assert_eq!(uint64(&json!("18446744073709551615")), Some(u64::MAX));
        assert_eq!(uint64(&json!(5)), Some(5));
        assert_eq!(uint64(&json!("-1")), None);
    }
}
