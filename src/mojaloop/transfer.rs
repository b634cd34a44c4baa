//! One Mojaloop transfer the node pays, exactly once whatever fails when: the steps a settlement
//! and a payout share. The caller keeps the attempt's state in its store record ([`Attempt`]):
//! a lease, so that no two calls for one transfer are ever in flight on any instance (two
//! `acceptQuote` at once pay twice and wedge the Connector), and the Connector's `transferId`,
//! kept before the one call that moves money.
//!
//! [`pay_once`] is called again and again until its [`Outcome`] ends the attempt:
//! 1. the lease is taken ([`Attempt::claim`]); every call to the Connector ends within its
//!    timeout, well inside the lease;
//! 2. without a kept transfer: `POST /transfers` (the party is looked up), `acceptParty` (the
//!    payee quotes), the quote checked (exactly the amount, in the currency), then the
//!    `transferId` kept ([`Attempt::keep`]). Nothing moves before `acceptQuote`, so a failure of
//!    these steps made nothing, and a Connector transfer left behind is never accepted;
//! 3. the lease again, then `acceptQuote` for the kept transfer, also after an unknown outcome
//!    (no answer, the Connector killed): the Connector sends the same transfer again and the
//!    payee's duplicate check answers it as the first time. `GET /transfers/{id}` is never
//!    called: it overwrites the Connector's record.
//!
//! `COMMITTED` is paid. A refusal with an FSPIOP code of the scheme (not 1xxx/2xxx), or a payee
//! that answered `ABORTED`, holds for every attempt under that transfer id (the payee answers a
//! repeat as the first time). Anything else is tried again with the same transfer.

use super::amount::FspiopAmount;
use super::error::FailureOutcome;
use super::outbound::{Answer, Finish, NewTransfer, OutboundError, Stage};
use super::party::Party;
use super::Dfsp;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

/// The lease outlasts one call to the Connector by this much: the call is bounded by the
/// outbound timeout, so the next holder can only start once this one's call is over.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// How long a lease taken before a call lasts.
pub fn lease(dfsp: &Dfsp) -> Duration {
    dfsp.scheme.outbound.timeout + LEASE_MARGIN
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The lease is this caller's; the transfer kept for the attempt, if one was.
    Taken(Option<String>),
    /// Another instance holds it (it is driving the attempt).
    Held,
    /// The attempt is over (another instance ended it).
    Ended,
}

/// Where an attempt's lease and transfer id are kept (a settlement's or a payout's record).
pub trait Attempt {
    /// Takes (or renews) the lease for [`lease`]; `Err` when the store cannot be asked.
    fn claim(&self) -> impl Future<Output = Result<Claim, String>> + Send;
    /// Keeps the transfer id; the one kept (the first wins), or `None` when the lease was lost.
    fn keep(&self, transfer_id: &str) -> impl Future<Output = Result<Option<String>, String>> + Send;
}

/// The transfer an attempt makes.
#[derive(Debug, Clone)]
pub struct Transfer<'a> {
    /// The node's id for what it pays (a settlement's or a payout's): `homeTransactionId`.
    pub home_id: &'a str,
    pub from: &'a Party,
    pub to: &'a Party,
    pub currency: &'a str,
    pub amount: FspiopAmount,
    pub note: &'a str,
}

/// How one call of [`pay_once`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Paid: `COMMITTED`.
    Committed,
    /// Refused before anything was accepted: nothing moved, and no transfer id was kept.
    RefusedBeforeAcceptance(String),
    /// Refused for the kept transfer, which covers every attempt under its id.
    RefusedThroughout(String),
    /// Nothing was paid by this call (the Connector not reached, the lease held elsewhere):
    /// call again later.
    NotMade(String),
    /// This call may have paid: call again later, with the same transfer.
    Unknown(String),
    /// Another instance ended the attempt.
    Ended,
}

/// Transfers to one payee party, one at a time in this process: two in flight to one party can
/// wedge the Connector (seen on 18.0.2 with two `POST /transfers`, and with two lookups, of one
/// party at once; two `acceptQuote` of one transfer always risk it, which the lease prevents).
#[derive(Debug, Default)]
pub struct PartyLocks {
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl PartyLocks {
    /// Waits until no other transfer of this process is in flight to `party`.
    pub async fn one_at_a_time(&self, party: &Party) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            // Parties nobody pays now are forgotten: the map holds only those in flight.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            locks.entry(party.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// Drives the attempt one step further, as described above.
pub async fn pay_once(dfsp: &Dfsp, attempt: &impl Attempt, t: &Transfer<'_>) -> Outcome {
    let _one_at_a_time = dfsp.parties.one_at_a_time(t.to).await;
    let transfer_id = match attempt.claim().await {
        Err(e) => return Outcome::NotMade(format!("the store: {e}")),
        Ok(Claim::Held) => return Outcome::NotMade("another instance is driving it".into()),
        Ok(Claim::Ended) => return Outcome::Ended,
        Ok(Claim::Taken(Some(kept))) => kept,
        Ok(Claim::Taken(None)) => {
            let transfer_id = match quote(dfsp, t).await {
                Ok(Quoted::Transfer(id)) => id,
                Ok(Quoted::CommittedAlready) => return Outcome::Committed,
                Err(outcome) => return outcome,
            };
            match attempt.keep(&transfer_id).await {
                Ok(Some(kept)) => kept,
                Ok(None) => return Outcome::NotMade("the lease was taken over".into()),
                Err(e) => return Outcome::NotMade(format!("the transfer id could not be kept: {e}")),
            }
        }
    };
    // The lease again, just before the one call that moves money: still ours, for its length.
    match attempt.claim().await {
        Ok(Claim::Taken(_)) => {}
        Ok(Claim::Ended) => return Outcome::Ended,
        Ok(Claim::Held) => return Outcome::NotMade("the lease was taken over".into()),
        Err(e) => return Outcome::NotMade(format!("the store: {e}")),
    }
    info!(home = t.home_id, transfer = %transfer_id, amount = %t.amount, currency = t.currency, "Mojaloop transfer: accepting the quote");
    match dfsp.outbound.accept_quote(&transfer_id).await {
        Ok(Answer { stage: Stage::Finished(Finish::Committed), .. }) => Outcome::Committed,
        Ok(Answer { stage: Stage::Finished(Finish::NotCommitted(state)), .. }) if state == "ABORTED" => {
            Outcome::RefusedThroughout(format!("the payee aborted transfer {transfer_id}"))
        }
        Ok(answer) => {
            Outcome::Unknown(format!("transfer {transfer_id} is not committed: {:?}", answer.stage))
        }
        Err(OutboundError::NotSent(e)) => Outcome::NotMade(e),
        Err(e @ OutboundError::Refused { code: Some(code), .. })
            if code.outcome() == FailureOutcome::Refused =>
        {
            Outcome::RefusedThroughout(format!("transfer {transfer_id}: {e}"))
        }
        Err(e) => Outcome::Unknown(format!("transfer {transfer_id}: {e}")),
    }
}

enum Quoted {
    Transfer(String),
    /// The Connector went on by itself (it accepts automatically) and it was committed.
    CommittedAlready,
}

/// Begins the transfer and has it quoted: its Connector id once the quote is exactly the amount.
async fn quote(dfsp: &Dfsp, t: &Transfer<'_>) -> Result<Quoted, Outcome> {
    let new = NewTransfer {
        home_transaction_id: t.home_id,
        from: t.from,
        to: t.to,
        currency: t.currency,
        amount: t.amount,
        note: Some(t.note),
    };
    let before = |e| before_acceptance(t, e);
    let begun = dfsp.outbound.begin(&new).await.map_err(before)?;
    match begun.stage {
        Stage::PartyToAccept => {}
        Stage::Finished(Finish::Committed) => {
            error!(home = t.home_id, transfer = %begun.transfer_id, "the Mojaloop Connector accepted the transfer by itself: run it with AUTO_ACCEPT_PARTY=false and AUTO_ACCEPT_QUOTES=false");
            return Ok(Quoted::CommittedAlready);
        }
        other => {
            return Err(Outcome::Unknown(format!(
                "transfer {} began at {other:?}; the Connector must wait for acceptances",
                begun.transfer_id
            )))
        }
    }
    let quoted = dfsp.outbound.accept_party(&begun.transfer_id).await.map_err(before)?;
    let Stage::QuoteToAccept(quote) = quoted.stage else {
        return Err(Outcome::NotMade(format!(
            "transfer {} was not quoted: {:?}",
            quoted.transfer_id, quoted.stage
        )));
    };
    // Nothing is accepted but exactly the amount: a payee's fee would be paid on top.
    if quote.transfer_amount != t.amount || quote.currency != t.currency {
        return Err(Outcome::RefusedBeforeAcceptance(format!(
            "the payee quoted {} {} for {} {}; not accepted",
            quote.transfer_amount, quote.currency, t.amount, t.currency
        )));
    }
    Ok(Quoted::Transfer(quoted.transfer_id))
}

/// A failure before `acceptQuote` moved nothing (the Connector waits for the acceptance): the
/// scheme's refusal is final, anything else is tried again from the start.
fn before_acceptance(t: &Transfer<'_>, e: OutboundError) -> Outcome {
    warn!(home = t.home_id, error = %e, "Mojaloop transfer: could not be quoted");
    match e {
        OutboundError::Refused { code: Some(code), .. } if code.outcome() == FailureOutcome::Refused => {
            Outcome::RefusedBeforeAcceptance(e.to_string())
        }
        _ => Outcome::NotMade(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transfers_to_one_party_wait_for_each_other_and_others_do_not() {
        let locks = PartyLocks::default();
        let (ana, ben) = (Party::new("MSISDN", "1", None).unwrap(), Party::new("MSISDN", "2", None).unwrap());
        let first = locks.one_at_a_time(&ana).await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), locks.one_at_a_time(&ana)).await;
        assert!(waiting.is_err(), "a second transfer to the same party waited");
        let other = tokio::time::timeout(Duration::from_millis(50), locks.one_at_a_time(&ben)).await;
        assert!(other.is_ok(), "another party's transfer did not wait");
        drop((first, other));
        let again = tokio::time::timeout(Duration::from_millis(50), locks.one_at_a_time(&ana)).await;
        assert!(again.is_ok(), "free once the first ended");
        drop(again);
        locks.one_at_a_time(&ben).await;
        assert!(locks.locks.lock().unwrap().len() <= 1, "parties nobody pays are forgotten");
    }
}
