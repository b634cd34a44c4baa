//! ILP → Mojaloop: the node pays a Mojaloop party out as the payer DFSP.
//!
//! 1. **A receiver per party.** `GET /mojaloop/{idType}/{idValue}[?currency=MXN&amount=12.34]` on
//!    the SPSP listener ([`open`]) opens an incoming payment on the currency's local account,
//!    marked in its metadata as a payout to that party, with the amount (exact, in the
//!    currency) as its target when given, for `mojaloop.payout_window_ms`; the answer is its SPSP
//!    credentials. Every query opens a new one.
//! 2. **The payout, once per incoming payment.** When the payment completes (its target reached,
//!    or its window over), the completion hook ([`PayoutHook`], at least once per completion)
//!    creates a payout under the payment's id with what was received, less what the currency's
//!    decimals cannot carry (that stays on the account): the store takes the amount off the
//!    account in the same step, once per id, so a hook run twice creates one payout.
//! 3. **Paid exactly once.** The worker ([`run`]) drives each pending payout with
//!    [`transfer::pay_once`] from `mojaloop.party` to the party, its lease and transfer id kept
//!    in the payout's record, retrying with backoff until the scheme commits or refuses. A payout
//!    refused for good is kept, failed, with its money, for an operator (admin API): paid again
//!    (a new attempt, a new transfer) or refunded to the account.

use super::amount::FspiopAmount;
use super::party::Party;
use super::transfer::{self, Attempt, Claim, Outcome, Transfer};
use super::Dfsp;
use crate::account::{Account, Relation};
use crate::backoff::Backoff;
use crate::limits::{MOJALOOP_PAYOUTS_IN_FLIGHT_MAX, MOJALOOP_PAYOUT_SCAN_INTERVAL_MS};
use crate::node::Node;
use crate::payments::completions::{CompletionHook, HookError, LogCompletions};
use crate::shutdown::Phase;
use crate::store::{
    CreatedIncoming, CreatedPayout, IncomingPayment, IncomingPaymentId, NewIncomingPayment, NewPayout,
    Payout, PayoutEnd, PayoutState, Store, StoreError,
};
use futures::future::BoxFuture;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// The metadata key that marks an incoming payment as a payout, and names its party.
pub const METADATA_KEY: &str = "mojaloop_payout";
/// Open payouts looked at per currency per scan.
const SCAN_BATCH_MAX: usize = 100;
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// The payout worker's wake-up (a payout created or retried).
#[derive(Debug, Default)]
pub struct PayoutSignals {
    pub wake: tokio::sync::Notify,
}

/// Why a payout receiver was not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenRefusal {
    /// No `[mojaloop]`, or not a party id: the same answer as any unknown receiver.
    #[error("no such receiver")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("receiver unavailable; retry")]
    Unavailable,
}

/// Opens an incoming payment paid out to the party when it completes; `query` is the URL's
/// query (`currency`, `amount`). Returns the account it credits and the payment.
pub async fn open<S: Store>(
    node: &Node<S>,
    id_type: &str,
    id_value: &str,
    query: Option<&str>,
) -> Result<(Arc<Account>, IncomingPaymentId), OpenRefusal> {
    let dfsp = node.mojaloop.as_deref().ok_or(OpenRefusal::NotFound)?;
    let party = Party::new(id_type, id_value, None).map_err(|_| OpenRefusal::NotFound)?;
    let (mut currency, mut amount) = (None, None);
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("currency", c)) => currency = Some(c),
            Some(("amount", a)) => amount = Some(a),
            _ => {
                return Err(OpenRefusal::Invalid(format!(
                    "unknown query parameter {pair:?}: use currency, amount"
                )))
            }
        }
    }
    let currency = match currency {
        Some(code) => dfsp.scheme.currency(code),
        None if dfsp.scheme.currencies.len() == 1 => dfsp.scheme.currencies.first(),
        None => return Err(OpenRefusal::Invalid("name the currency: ?currency=<code>".into())),
    };
    let currency =
        currency.ok_or_else(|| OpenRefusal::Invalid("not a currency of this node's scheme".into()))?;
    let account = node.accounts.load().get(&currency.account).cloned().ok_or(OpenRefusal::Unavailable)?;
    let target = match amount {
        None => None,
        Some(text) => {
            let not_carried = || {
                let (code, decimals) = (&currency.code, currency.decimals);
                OpenRefusal::Invalid(format!("{text} is not an amount of {code} ({decimals} decimals)"))
            };
            let amount = FspiopAmount::parse(text).map_err(|e| OpenRefusal::Invalid(e.to_string()))?;
            let units = amount.to_account(account.asset_scale).map_err(|_| not_carried())?;
            // The currency must carry it as given: a payout of it is then exactly it.
            match FspiopAmount::from_account(units, account.asset_scale, currency.decimals) {
                Ok((carried, 0)) if carried == amount => Some(units),
                _ => return Err(not_carried()),
            }
        }
    };
    let now = SystemTime::now();
    let metadata = serde_json::json!({ METADATA_KEY: {
        "id_type": party.id_type, "id_value": party.id_value, "currency": currency.code,
    }});
    let new = NewIncomingPayment {
        id: IncomingPaymentId::random(),
        target,
        expires_at: now + dfsp.scheme.payout_window,
        metadata: metadata.to_string(),
    };
    match node.store.create_incoming_payment(&account, &new, now).await {
        Ok(CreatedIncoming::Created(p)) | Ok(CreatedIncoming::Exists(p)) => {
            info!(account = %account.id, payment = %p.id, party = %party, target = ?target, "payout receiver opened");
            Ok((account, p.id))
        }
        Err(e) => {
            warn!(error = %e, account = %account.id, "payout receiver: store unavailable");
            Err(OpenRefusal::Unavailable)
        }
    }
}

/// The party and currency an incoming payment's metadata names, if it is a payout's.
fn payout_of(metadata: &str) -> Option<(String, String, String)> {
    let value: serde_json::Value = serde_json::from_str(metadata).ok()?;
    let payout = value.get(METADATA_KEY)?;
    let text = |k: &str| payout.get(k)?.as_str().map(str::to_string);
    Some((text("id_type")?, text("id_value")?, text("currency")?))
}

/// The completion hook with `[mojaloop]`: a payout's incoming payment becomes a payout; any
/// other completion is logged, as without it.
pub struct PayoutHook<S> {
    node: Arc<Node<S>>,
}

impl<S> PayoutHook<S> {
    pub fn new(node: Arc<Node<S>>) -> Self {
        PayoutHook { node }
    }
}

impl<S: Store> CompletionHook for PayoutHook<S> {
    fn completed<'a>(&'a self, payment: &'a IncomingPayment) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(async move {
            let Some((id_type, id_value, code)) = payout_of(&payment.metadata) else {
                return LogCompletions.completed(payment).await;
            };
            let (node, id) = (&self.node, payment.id.as_str());
            let Some(dfsp) = node.mojaloop.as_deref() else {
                return Err(HookError("a payout completed on an instance without [mojaloop]".into()));
            };
            let account = node.accounts.load().get(payment.account.as_str()).cloned();
            let (Some(account), Some(currency)) = (account, dfsp.scheme.currency(&code)) else {
                error!(payment = id, account = %payment.account, currency = %code, "a payout's account or currency is gone: its money stays on the account; reconcile it");
                return Ok(());
            };
            // What the currency's decimals cannot carry stays on the account.
            let carried =
                FspiopAmount::from_account(payment.received, account.asset_scale, currency.decimals)
                    .ok()
                    .and_then(|(amount, _)| amount.to_account(account.asset_scale).ok());
            let Some(amount) = carried.filter(|a| *a > 0) else {
                info!(
                    payment = id,
                    received = payment.received,
                    "payout receiver completed with nothing a transfer can carry: no payout"
                );
                return Ok(());
            };
            let new =
                NewPayout { id: id.to_string(), id_type, id_value, fsp_id: None, currency: code, amount };
            match node.store.create_payout(&account, &new, SystemTime::now()).await {
                Ok(CreatedPayout::Created(p)) => {
                    node.metrics.mojaloop_payout("created");
                    info!(payout = %p.id, party = %format!("{}/{}", p.id_type, p.id_value), amount = p.amount, received = payment.received, "payout created");
                    dfsp.payouts.wake.notify_one();
                    Ok(())
                }
                Ok(CreatedPayout::Exists(_)) => Ok(()),
                Err(e @ StoreError::InvalidPayout(_)) => {
                    error!(payment = id, error = %e, "a payout cannot be made: its money stays on the account; reconcile it");
                    Ok(())
                }
                Err(e) => Err(HookError(format!("payout {id} not created: {e}"))),
            }
        })
    }
}

/// Drives the pending payouts of every served currency until the node drains. Payouts being
/// paid when it does are left pending under their lease: any instance resumes them once it ends.
pub async fn run<S: Store>(node: Arc<Node<S>>) {
    let Some(dfsp) = node.mojaloop.clone() else { return };
    let mut tasks: JoinSet<(String, String)> = JoinSet::new();
    let mut driving: HashSet<(String, String)> = HashSet::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(MOJALOOP_PAYOUT_SCAN_INTERVAL_MS)) => {}
            _ = dfsp.payouts.wake.notified() => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(key) = done {
                    driving.remove(&key);
                }
                continue;
            }
            _ = node.shutdown.reached(Phase::Draining) => break,
        }
        // A task that panicked is let go of by rebuilding the set from the running ones.
        if tasks.is_empty() {
            driving.clear();
        }
        for currency in &dfsp.scheme.currencies {
            let Some(account) = node.accounts.load().get(&currency.account).cloned() else { continue };
            let open = match node.store.open_payouts(&account, SCAN_BATCH_MAX).await {
                Ok(open) => open,
                Err(e) => {
                    warn!(error = %e, account = %account.id, "payouts: could not list the open ones");
                    continue;
                }
            };
            for payout in open.into_iter().filter(|p| p.state == PayoutState::Pending) {
                let key = (account.id.to_string(), payout.id.clone());
                if tasks.len() >= MOJALOOP_PAYOUTS_IN_FLIGHT_MAX || !driving.insert(key.clone()) {
                    continue;
                }
                let (node, dfsp, account) = (node.clone(), dfsp.clone(), account.clone());
                tasks.spawn(async move {
                    drive(&node, &dfsp, &account, payout).await;
                    key
                });
            }
        }
    }
    tasks.abort_all();
}

/// Pays one payout's current attempt to its end (paid or failed), or until the node drains.
async fn drive<S: Store>(node: &Node<S>, dfsp: &Dfsp, account: &Account, payout: Payout) {
    let id = payout.id.as_str();
    let party = Party::new(&payout.id_type, &payout.id_value, payout.fsp_id.as_deref());
    let amount = dfsp
        .scheme
        .currency(&payout.currency)
        .and_then(|c| FspiopAmount::from_account(payout.amount, account.asset_scale, c.decimals).ok());
    let attempt = PayoutAttempt { node, dfsp, account, id };
    let (party, amount) = match (party, amount) {
        (Ok(party), Some((amount, 0))) => (party, amount),
        _ => {
            // Failed for good, by the lease holder alone (only it may end an attempt).
            if let Ok(Claim::Taken(_)) = attempt.claim().await {
                let why = "the payout's party, currency or amount is not one the scheme takes";
                finish(node, account, id, PayoutEnd::Failed(why.into())).await;
            }
            return;
        }
    };
    // One home id per attempt: an operator's retry is a new transfer.
    let home = format!("{id}-{}", payout.attempt);
    let note = format!("ThitsaX payout {id}");
    let t = Transfer {
        home_id: &home,
        from: &dfsp.scheme.party,
        to: &party,
        currency: &payout.currency,
        amount,
        note: &note,
    };
    let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
    loop {
        let outcome = transfer::pay_once(dfsp, &attempt, &t).await;
        let end = match outcome {
            Outcome::Committed => PayoutEnd::Paid,
            Outcome::RefusedBeforeAcceptance(reason) | Outcome::RefusedThroughout(reason) => {
                PayoutEnd::Failed(reason)
            }
            Outcome::Ended => return,
            Outcome::NotMade(reason) | Outcome::Unknown(reason) => {
                node.metrics.mojaloop_payout_attempt_retried();
                warn!(payout = id, %reason, retry_in_ms = backoff.peek().as_millis() as u64, "payout attempt not finished; trying again with the same transfer");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_wait()) => continue,
                    _ = node.shutdown.reached(Phase::Draining) => return,
                }
            }
        };
        finish(node, account, id, end).await;
        return;
    }
}

/// Records the attempt's end (the lease holder's); the store may be out for a while.
async fn finish<S: Store>(node: &Node<S>, account: &Account, id: &str, end: PayoutEnd) {
    let owner = node.sending.owner.as_str();
    let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
    loop {
        match node.store.finish_payout(account, id, owner, &end, SystemTime::now()).await {
            Ok(Some(p)) => {
                match &end {
                    PayoutEnd::Paid => {
                        node.metrics.mojaloop_payout("paid");
                        info!(payout = id, amount = p.amount, transfer = ?p.reference, "payout paid");
                    }
                    PayoutEnd::Failed(reason) => {
                        node.metrics.mojaloop_payout("failed");
                        error!(payout = id, amount = p.amount, %reason, "payout refused for good: kept with its money for an operator (admin API: retry or refund)");
                    }
                }
                return;
            }
            // Taken over (this instance's lease ended): the new holder ends it.
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, payout = id, "could not record a payout's end; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_wait()) => {}
                    _ = node.shutdown.reached(Phase::Draining) => return,
                }
            }
        }
    }
}

/// A payout's lease and transfer id, in its store record.
struct PayoutAttempt<'a, S> {
    node: &'a Node<S>,
    dfsp: &'a Dfsp,
    account: &'a Account,
    id: &'a str,
}

impl<S: Store> Attempt for PayoutAttempt<'_, S> {
    async fn claim(&self) -> Result<Claim, String> {
        let now = SystemTime::now();
        let (store, owner) = (&self.node.store, self.node.sending.owner.as_str());
        let until = now + transfer::lease(self.dfsp);
        if let Some(p) =
            store.claim_payout(self.account, self.id, owner, now, until).await.map_err(|e| e.to_string())?
        {
            return Ok(Claim::Taken(p.reference));
        }
        let found = store.payout(self.account, self.id).await.map_err(|e| e.to_string())?;
        Ok(match found.map(|p| p.state) {
            Some(PayoutState::Pending) => Claim::Held,
            _ => Claim::Ended,
        })
    }

    async fn keep(&self, transfer_id: &str) -> Result<Option<String>, String> {
        let owner = self.node.sending.owner.as_str();
        let kept = self.node.store.set_payout_reference(self.account, self.id, owner, transfer_id).await;
        kept.map_err(|e| e.to_string())
    }
}

/// The account a payout lives on: one of the scheme's currency accounts (local).
pub fn payout_accounts<S>(node: &Node<S>) -> Vec<Arc<Account>> {
    let Some(dfsp) = node.mojaloop.as_deref() else { return Vec::new() };
    let accounts = node.accounts.load();
    dfsp.scheme
        .currencies
        .iter()
        .filter_map(|c| accounts.get(&c.account).cloned())
        .filter(|a| a.relation == Relation::Local)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::App;
    use crate::config::Config;

    const CONFIG: &str = r#"
[node]
ilp_address = "test.node"
[[accounts]]
id = "mxn"
relation = "local"
asset_code = "MXN"
asset_scale = 2
[mojaloop]
dfsp_id = "thitsax"
outbound_url = "http://127.0.0.1:9"
party = { id_type = "BUSINESS", id_value = "thitsax" }
[[mojaloop.currencies]]
code = "MXN"
decimals = 2
account = "mxn"
"#;

    #[tokio::test]
    async fn a_payout_the_scheme_cannot_take_ends_failed_with_its_money_held() {
        let mut config = Config::from_toml(CONFIG).unwrap();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.mojaloop.as_mut().unwrap().backend_listen = "127.0.0.1:0".parse().unwrap();
        let node = App::bind(config).await.unwrap().node;
        let account = node.accounts.load().get("mxn").cloned().unwrap();
        // Its currency is no longer served (the configuration changed since it was created).
        let new = NewPayout {
            id: "p-eur".into(),
            id_type: "MSISDN".into(),
            id_value: "5215550001".into(),
            fsp_id: None,
            currency: "EUR".into(),
            amount: 700,
        };
        let CreatedPayout::Created(payout) =
            node.store.create_payout(&account, &new, SystemTime::now()).await.unwrap()
        else {
            panic!("not created")
        };
        let dfsp = node.mojaloop.clone().unwrap();
        drive(&node, &dfsp, &account, payout).await;
        let ended = node.store.payout(&account, "p-eur").await.unwrap().unwrap();
        assert_eq!(ended.state, PayoutState::Failed, "{ended:?}");
        assert!(ended.error.unwrap().contains("not one the scheme takes"));
        assert_eq!(node.store.balance("mxn").await, Ok(-700), "the money stays with the payout");
    }
}
