//! Money coming back from a Rafiki peer's side through the account's rail, recorded at the
//! Rafiki as a withdrawal of the node's liquidity.
//!
//! The node's balance with a Rafiki peer is minus its liquidity there. When the Rafiki's operator
//! pays the node through the account's rail (an RFC 0038 engine's incoming settlement, or a
//! Mojaloop transfer to the node's settlement party), the credit raises the balance, so Rafiki's
//! figure must drop by what was credited: [`record`] reserves a withdrawal
//! (`createPeerLiquidityWithdrawal`) and posts it (`postLiquidityWithdrawal`).
//!
//! **One withdrawal per credit, whatever is retried.** Its transfer id and its two idempotency
//! keys (one per mutation: Rafiki shares keys across mutations) are derived from the credit's own
//! key, which the credit is deduplicated by ([`withdrawal_ids`]): every attempt, on any instance,
//! after any crash, records the same withdrawal. Rafiki answers a repeated key from its cache
//! (24 h), and a reused transfer id after that with `DUPLICATE` (the reservation exists: go on to
//! post it); a post repeated after the cache forgot it is `CONFLICT` "already posted" (done).
//!
//! **A reservation that expired.** If posting fails for longer than the reservation's timeout
//! ([`RAFIKI_WITHDRAWAL_TIMEOUT_S`]), Rafiki releases it ("Transfer already expired"; an operator's
//! void is the same for the node) and its id is taken for good. The withdrawal is still owed, so
//! the node goes on with the next *generation* of ids (the same derivation with a counter): every
//! attempt walks the generations from the first, so all attempts agree on which one is current,
//! and a generation is only ever begun once the one before it is known released (its money back
//! in the liquidity), so two can never both stand. The walk is bounded
//! ([`RAFIKI_WITHDRAWAL_GENERATIONS_MAX`]).
//!
//! **Who retries.** An engine's callback is answered only once the withdrawal is recorded: on
//! failure the engine is answered 503 and calls again with the same key (see
//! `settlement::incoming`). A Mojaloop transfer cannot wait, so its credit keeps the withdrawal
//! owed in the store in the same step ([`Store::credit_settlement_owing_withdrawal`]), and
//! [`run`] drives it to the Rafiki with bounded backoff, on every instance, until it is recorded.
//!
//! Layer 5: runs on the node.

use crate::account::{Account, AccountId};
use crate::backoff::Backoff;
use crate::limits::{
    RAFIKI_WITHDRAWALS_PER_PASS_MAX, RAFIKI_WITHDRAWAL_GENERATIONS_MAX, RAFIKI_WITHDRAWAL_POLL_INTERVAL_MS,
    RAFIKI_WITHDRAWAL_RETRY_FIRST_MS, RAFIKI_WITHDRAWAL_RETRY_MAX_MS, RAFIKI_WITHDRAWAL_TIMEOUT_S,
};
use crate::node::Node;
use crate::rafiki::admin_api::{uuid_v4, AdminApi, ApiError};
use crate::shutdown::Phase;
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// The ids one generation of a credit's withdrawal is recorded under at the Rafiki.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalIds {
    /// The transfer id (a UUID v4).
    pub id: String,
    /// `createPeerLiquidityWithdrawal`'s idempotency key.
    pub create_key: String,
    /// `postLiquidityWithdrawal`'s: another one, as Rafiki keeps one answer per key whatever the
    /// mutation.
    pub post_key: String,
}

/// The withdrawal the credit of `key` on `account` owes, in its `generation` (0 first): the same
/// on every call. The account is part of it because credit keys are unique per account only (two
/// engines may use the same key), while transfer ids are unique across the whole Rafiki.
pub fn withdrawal_ids(account: &str, key: &str, generation: u32) -> WithdrawalIds {
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    // Lengths before the parts: no two (account, key) pairs hash the same bytes.
    for part in [b"thitsax-withdrawal".as_slice(), account.as_bytes(), key.as_bytes()] {
        hash.update(&(part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.update(&generation.to_be_bytes());
    let digest = hash.finish();
    let bytes: [u8; 16] = digest.as_ref()[..16].try_into().expect("SHA-256 is 32 bytes");
    let id = uuid_v4(bytes);
    WithdrawalIds {
        create_key: format!("thitsax-withdrawal-{id}"),
        post_key: format!("thitsax-post-{id}"),
        id,
    }
}

/// How a recording ended well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Posted by this call (or answered from Rafiki's cache of an earlier attempt's post).
    Posted { generation: u32 },
    /// An earlier attempt had posted it ("Transfer already posted").
    AlreadyPosted { generation: u32 },
    /// A credit of 0: nothing to record (Rafiki refuses a zero amount).
    Nothing,
}

/// Why a withdrawal is not recorded yet; the credit stands, so it stays owed and is tried again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WithdrawalError {
    #[error("account {0} is not a Rafiki peer")]
    NotRafiki(String),
    /// `[rafiki.admin]` was removed by a reload.
    #[error("the node has no [rafiki.admin] to record the withdrawal through")]
    NoAdmin,
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Every generation's reservation was released before it could be posted.
    #[error(
        "the first {0} reservations of the withdrawal at the Rafiki all expired before they were posted"
    )]
    Expired(u32),
}

impl WithdrawalError {
    /// Rafiki answered no (not an outage): retrying soon will not help, an operator must look.
    pub fn is_refusal(&self) -> bool {
        matches!(self, WithdrawalError::Api(ApiError::Refused { .. }) | WithdrawalError::Expired(_))
    }
}

/// Records at the Rafiki the withdrawal that the credit of `amount` (the account's scale) under
/// `key` owes, once whatever the retries. Counted in `thitsax_rafiki_withdrawals_total`.
pub async fn record<S: Store>(
    node: &Node<S>,
    account: &Account,
    key: &str,
    amount: u64,
) -> Result<Recorded, WithdrawalError> {
    let result = match (&account.rafiki_liquidity, &node.rafiki) {
        (None, _) => Err(WithdrawalError::NotRafiki(account.id.to_string())),
        (Some(_), None) => Err(WithdrawalError::NoAdmin),
        (Some(_), Some(_)) if amount == 0 => Ok(Recorded::Nothing),
        (Some(rafiki), Some(api)) => {
            walk(api, &rafiki.peer_id, &account.id, key, amount, RAFIKI_WITHDRAWAL_TIMEOUT_S).await
        }
    };
    let outcome = match &result {
        Ok(Recorded::Posted { generation }) => {
            info!(account = %account.id, key, amount, generation, "incoming money recorded at the Rafiki as a withdrawal");
            "recorded"
        }
        Ok(Recorded::AlreadyPosted { generation }) => {
            info!(account = %account.id, key, amount, generation, "withdrawal already recorded at the Rafiki");
            "repeated"
        }
        Ok(Recorded::Nothing) => return result,
        Err(e) if e.is_refusal() => {
            error!(error = %e, account = %account.id, key, amount, "the Rafiki refuses to record money paid back through the rail as a withdrawal; kept owed and retried: fix the peer at the Rafiki");
            "refused"
        }
        Err(e) => {
            warn!(error = %e, account = %account.id, key, amount, "could not record a withdrawal at the Rafiki yet; retried");
            "failed"
        }
    };
    node.metrics.rafiki().withdrawals.with_label_values(&[outcome]).inc();
    result
}

/// What a refused post means for the walk.
#[derive(Debug, PartialEq, Eq)]
enum AfterPost {
    /// An earlier attempt posted it.
    Posted,
    /// The reservation was released (timed out, or voided): its money is back in the liquidity
    /// and its id is taken, so the next generation records the withdrawal.
    Released,
    Failed,
}

fn after_post(e: &ApiError) -> AfterPost {
    match e {
        ApiError::Refused { code, message } => {
            let message = message.to_ascii_lowercase();
            match code.as_str() {
                "CONFLICT" if message.contains("posted") => AfterPost::Posted,
                "CONFLICT" if message.contains("voided") => AfterPost::Released,
                "FORBIDDEN" if message.contains("expired") => AfterPost::Released,
                _ => AfterPost::Failed,
            }
        }
        _ => AfterPost::Failed,
    }
}

/// The generations in turn, from the first: reserve (or find reserved), then post.
async fn walk(
    api: &AdminApi,
    peer_id: &str,
    account: &AccountId,
    key: &str,
    amount: u64,
    timeout_s: u64,
) -> Result<Recorded, WithdrawalError> {
    for generation in 0..RAFIKI_WITHDRAWAL_GENERATIONS_MAX {
        let ids = withdrawal_ids(account, key, generation);
        match api.create_withdrawal(peer_id, amount, &ids.id, &ids.create_key, timeout_s).await {
            Ok(()) => {}
            // The id is this credit's alone: an earlier attempt reserved it (and Rafiki no longer
            // remembers that attempt's key, or answered it to another key's call).
            Err(e) if e.refused_with("DUPLICATE") => {}
            Err(e) => return Err(e.into()),
        }
        match api.post_withdrawal(&ids.id, &ids.post_key).await {
            Ok(()) => return Ok(Recorded::Posted { generation }),
            Err(e) => match after_post(&e) {
                AfterPost::Posted => return Ok(Recorded::AlreadyPosted { generation }),
                AfterPost::Released => {
                    warn!(account = %account, key, generation, withdrawal = ids.id, "a withdrawal's reservation at the Rafiki was released before it was posted; recording it anew");
                }
                AfterPost::Failed => return Err(e.into()),
            },
        }
    }
    Err(WithdrawalError::Expired(RAFIKI_WITHDRAWAL_GENERATIONS_MAX))
}

/// When an owed withdrawal that failed is tried next.
struct Retry {
    backoff: Backoff,
    due: Instant,
}

/// Drives the withdrawals owed in the store to the Rafiki until the node drains: each pass reads
/// every Rafiki peer's (at most [`RAFIKI_WITHDRAWALS_PER_PASS_MAX`] each), records those due and
/// forgets each once recorded. Woken by each new one, and every
/// [`RAFIKI_WITHDRAWAL_POLL_INTERVAL_MS`] for those left by a crash or another instance. Several
/// instances may drive the same one at once: they send the same ids and keys, so Rafiki records
/// it once (a concurrent call with one key is refused and retried by the client), and no lease is
/// needed.
pub async fn run<S: Store>(node: Arc<Node<S>>) {
    // Without `[rafiki.admin]` nothing can be recorded: what is owed waits in the store for an
    // instance that has it.
    if node.rafiki.is_none() {
        return;
    }
    let poll = Duration::from_millis(RAFIKI_WITHDRAWAL_POLL_INTERVAL_MS);
    let mut retries: HashMap<(AccountId, String), Retry> = HashMap::new();
    loop {
        tokio::select! {
            _ = node.rafiki_withdrawals.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = node.shutdown.reached(Phase::Draining) => return,
        }
        pass(&node, &mut retries).await;
    }
}

async fn pass<S: Store>(node: &Node<S>, retries: &mut HashMap<(AccountId, String), Retry>) {
    let accounts = node.accounts.load();
    let mut seen = HashSet::new();
    for account in accounts.iter().filter(|a| a.rafiki_liquidity.is_some()) {
        let owed = match node.store.withdrawals_owed(account, RAFIKI_WITHDRAWALS_PER_PASS_MAX).await {
            Ok(owed) => owed,
            Err(e) => {
                warn!(error = %e, account = %account.id, "cannot read the withdrawals owed at the Rafiki; tried again");
                continue;
            }
        };
        for owed in owed {
            let name = (account.id.clone(), owed.key.clone());
            seen.insert(name.clone());
            if retries.get(&name).is_some_and(|r| r.due > Instant::now()) {
                continue;
            }
            match record(node, account, &owed.key, owed.amount).await {
                Ok(_) => {
                    retries.remove(&name);
                    // Forgotten only once recorded: a crash before this records it again, the
                    // same withdrawal, which Rafiki answers as done.
                    if let Err(e) = node.store.finish_withdrawal(account, &owed.key).await {
                        warn!(error = %e, account = %account.id, key = owed.key, "a withdrawal recorded at the Rafiki is still owed in the store; finished on the next pass");
                    }
                }
                Err(e) => {
                    let first = Duration::from_millis(RAFIKI_WITHDRAWAL_RETRY_FIRST_MS);
                    let max = Duration::from_millis(RAFIKI_WITHDRAWAL_RETRY_MAX_MS);
                    let retry = retries
                        .entry(name)
                        .or_insert_with(|| Retry { backoff: Backoff::new(first, max), due: Instant::now() });
                    // A refusal waits the longest: only an operator's fix at the Rafiki helps.
                    let wait = if e.is_refusal() { max } else { retry.backoff.next_wait() };
                    retry.due = Instant::now() + wait;
                }
            }
        }
    }
    // Finished elsewhere (another instance), or their account is gone: nothing to retry.
    retries.retain(|name, _| seen.contains(name));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_uuid_v4(s: &str) -> bool {
        let parts: Vec<&str> = s.split('-').collect();
        parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
            && parts[2].starts_with('4')
            && matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b')
    }

    #[test]
    fn a_credit_s_withdrawal_ids_are_stable_uuids_and_its_own() {
        let ids = withdrawal_ids("rafiki", "mojaloop:t1", 0);
        assert_eq!(ids, withdrawal_ids("rafiki", "mojaloop:t1", 0), "the same on every attempt");
        assert!(is_uuid_v4(&ids.id), "{}", ids.id);
        assert_ne!(ids.create_key, ids.post_key, "Rafiki shares keys across mutations");
        assert!(ids.create_key.contains(&ids.id) && ids.post_key.contains(&ids.id));
        let others = [
            withdrawal_ids("rafiki", "mojaloop:t1", 1),
            withdrawal_ids("rafiki", "mojaloop:t2", 0),
            withdrawal_ids("other", "mojaloop:t1", 0),
            // The parts are length-prefixed: moving a boundary makes another id.
            withdrawal_ids("rafikim", "ojaloop:t1", 0),
        ];
        for other in &others {
            assert!(is_uuid_v4(&other.id));
            assert_ne!(other.id, ids.id);
            assert_ne!(other.create_key, ids.create_key);
            assert_ne!(other.post_key, ids.post_key);
        }
        // Pinned: a change of the derivation would record every owed withdrawal a second time
        // after an upgrade.
        let pinned = withdrawal_ids("a", "k", 0);
        assert_eq!(pinned.id, "9f76ce0d-a661-4e14-a101-c668f41a124e");
        assert_eq!(pinned.create_key, "thitsax-withdrawal-9f76ce0d-a661-4e14-a101-c668f41a124e");
        assert_eq!(pinned.post_key, "thitsax-post-9f76ce0d-a661-4e14-a101-c668f41a124e");
    }

    fn refused(code: &str, message: &str) -> ApiError {
        ApiError::Refused { code: code.into(), message: message.into() }
    }

    #[test]
    fn a_refused_post_is_done_released_or_a_failure() {
        assert_eq!(after_post(&refused("CONFLICT", "Transfer already posted")), AfterPost::Posted);
        assert_eq!(after_post(&refused("CONFLICT", "Transfer already voided")), AfterPost::Released);
        assert_eq!(after_post(&refused("FORBIDDEN", "Transfer already expired")), AfterPost::Released);
        assert_eq!(after_post(&refused("FORBIDDEN", "Insufficient transfer balance")), AfterPost::Failed);
        assert_eq!(after_post(&refused("NOT_FOUND", "Unknown transfer")), AfterPost::Failed);
        assert_eq!(after_post(&ApiError::Outage("timed out".into())), AfterPost::Failed);
        assert_eq!(after_post(&ApiError::Unauthorized("Unauthorized".into())), AfterPost::Failed);
    }

    #[test]
    fn refusals_wait_for_an_operator_and_outages_are_retried_soon() {
        assert!(WithdrawalError::Api(refused("FORBIDDEN", "Insufficient transfer balance")).is_refusal());
        assert!(WithdrawalError::Expired(16).is_refusal());
        assert!(!WithdrawalError::Api(ApiError::Outage("down".into())).is_refusal());
        assert!(!WithdrawalError::Api(ApiError::Unauthorized("no".into())).is_refusal());
        assert!(!WithdrawalError::NoAdmin.is_refusal());
    }
}
