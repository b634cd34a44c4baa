//! Settlement kind `mojaloop`: an account that is also a DFSP of the node's scheme settles with
//! Mojaloop transfers, from the node's own party for that peer to the peer's party
//! ([`MojaloopSettlement`]), instead of an RFC 0038 engine.
//!
//! **Outgoing, exactly once whatever fails when.** The settlement worker begins a settlement (the
//! balance moved to `settle_to`, the amount recorded under a [`SettlementId`]) and calls
//! [`settle`] until it ends, with the same id each time. Each call:
//! 1. takes the settlement's lease in the store ([`Store::claim_settlement`]), so that no two
//!    calls for one transfer are ever in flight, on any instance: two `acceptQuote` at once pay
//!    twice and wedge the Connector. Every call to the Connector ends within its timeout, well
//!    inside the lease;
//! 2. without a kept transfer: `POST /transfers` (the party is looked up), `acceptParty` (the
//!    payee quotes), the quote checked (exactly the amount, in the account's currency, no fees),
//!    then the Connector's `transferId` kept in the store ([`Store::set_settlement_reference`]).
//!    Nothing moves before `acceptQuote`, so a failure of these steps made nothing, and a
//!    Connector transfer left behind is never accepted;
//! 3. `acceptQuote` for the kept transfer, again after an unknown outcome (no answer, the
//!    Connector killed): the Connector sends the same transfer again and the payee's duplicate
//!    check answers it as the first time. The Connector's `GET /transfers/{id}` is never called:
//!    it overwrites the Connector's record.
//!
//! `COMMITTED` is paid. A refusal with an FSPIOP code of the scheme (not 1xxx/2xxx), or a payee
//! that answered `ABORTED`, refunds the settlement: for one transfer id the payee answers every
//! repeat the same, so it holds for the earlier attempts too. Anything else is retried with the
//! same transfer. What the currency's decimals cannot carry is not sent and goes back to the
//! balance when the settlement ends ([`Paid::AllBut`]).
//!
//! **Incoming, once per transfer.** A transfer whose payee is an account's own party credits that
//! account ([`credit`]), keyed by the transfer id: a repeat is answered as the first time and
//! credits nothing; the same id with another amount is refused (3106).

use super::amount::{AmountError, FspiopAmount};
use super::error::{FailureOutcome, FspiopCode};
use super::outbound::{Answer, Finish, NewTransfer, OutboundError, Stage};
use super::Dfsp;
use crate::account::{Account, MojaloopSettlement};
use crate::node::Node;
use crate::quantity::Quantity;
use crate::settlement::{Paid, SettleError, SettlementId};
use crate::store::{IncomingCredit, SettlementClaim, Store, StoreError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::{error, info, warn};

/// The lease outlasts one call to the Connector by this much: the call is bounded by the
/// outbound timeout, so the next holder can only start once this one's call is over.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Pays one settlement of `quantity` (the account's scale) for the account, as described above.
pub async fn settle<S: Store>(
    node: &Node<S>,
    account: &Account,
    quantity: Quantity,
    id: SettlementId,
) -> Result<Paid, SettleError> {
    let parties = account.mojaloop_settlement.as_deref().ok_or_else(|| {
        SettleError::Definitive(format!("account {} has no mojaloop_settlement", account.id))
    })?;
    // Not configured on this instance (the account came from a shared store): kept pending
    // until an instance with `[mojaloop]` drives it.
    let dfsp = node.mojaloop.as_deref().ok_or_else(|| {
        SettleError::NotMade("this instance has no [mojaloop] section; kept pending".into())
    })?;
    let currency = dfsp.scheme.currency(&account.asset_code).ok_or_else(|| {
        SettleError::NotMade(format!("[mojaloop] does not serve {}; kept pending", account.asset_code))
    })?;
    let units = u64::try_from(quantity.amount)
        .map_err(|_| SettleError::Definitive(format!("settlement amount {quantity} is beyond u64")))?;
    let (amount, unpaid) = FspiopAmount::from_account(units, account.asset_scale, currency.decimals)
        .map_err(|e| {
            SettleError::Definitive(format!("{quantity} cannot be sent in {}: {e}", currency.code))
        })?;
    let owner = node.sending.owner.as_str();
    let transfer_id = match claim(node, dfsp, account, id).await? {
        Claimed::Taken(SettlementClaim { reference: Some(kept) }) => kept,
        Claimed::Taken(SettlementClaim { reference: None }) => {
            let transfer = Transfer { dfsp, parties, currency: &currency.code, amount, id };
            let Some(transfer_id) = transfer.quote().await? else {
                // The Connector accepted by itself and it was committed: paid.
                return Ok(paid(unpaid));
            };
            match node.store.set_settlement_reference(account, id, owner, &transfer_id).await {
                Ok(Some(kept)) => kept,
                Ok(None) => return Err(SettleError::NotMade("the settlement's lease was taken over".into())),
                Err(e) => {
                    return Err(SettleError::NotMade(format!("the transfer id could not be kept: {e}")))
                }
            }
        }
        Claimed::Ended => {
            info!(account = %account.id, settlement = %id, "settlement ended by another instance");
            return Ok(paid(unpaid));
        }
    };
    // The lease again, just before the one call that moves money: still ours, for its length.
    if !matches!(claim(node, dfsp, account, id).await?, Claimed::Taken(_)) {
        return Err(SettleError::NotMade("the settlement ended or was taken over".into()));
    }
    info!(account = %account.id, settlement = %id, transfer = %transfer_id, %amount, "Mojaloop settlement: accepting the quote");
    match dfsp.outbound.accept_quote(&transfer_id).await {
        Ok(Answer { stage: Stage::Finished(Finish::Committed), .. }) => Ok(paid(unpaid)),
        Ok(Answer { stage: Stage::Finished(Finish::NotCommitted(state)), .. }) if state == "ABORTED" => {
            Err(SettleError::RefusedThroughout(format!("the payee aborted transfer {transfer_id}")))
        }
        Ok(answer) => Err(SettleError::Retryable(format!(
            "transfer {transfer_id} is not committed: {:?}",
            answer.stage
        ))),
        Err(OutboundError::NotSent(e)) => Err(SettleError::NotMade(e)),
        Err(e @ OutboundError::Refused { code: Some(code), .. })
            if code.outcome() == FailureOutcome::Refused =>
        {
            Err(SettleError::RefusedThroughout(format!("transfer {transfer_id}: {e}")))
        }
        Err(e) => Err(SettleError::Retryable(format!("transfer {transfer_id}: {e}"))),
    }
}

fn paid(unpaid: u64) -> Paid {
    match unpaid {
        0 => Paid::All,
        unpaid => Paid::AllBut { unpaid },
    }
}

enum Claimed {
    Taken(SettlementClaim),
    /// Not pending any more: another instance finished it.
    Ended,
}

/// Takes the settlement's lease: `NotMade` while another instance holds it (it is driving it).
async fn claim<S: Store>(
    node: &Node<S>,
    dfsp: &Dfsp,
    account: &Account,
    id: SettlementId,
) -> Result<Claimed, SettleError> {
    let now = SystemTime::now();
    let until = now + dfsp.scheme.outbound.timeout + LEASE_MARGIN;
    let store = |e: StoreError| SettleError::NotMade(format!("the store: {e}"));
    let owner = node.sending.owner.as_str();
    if let Some(claim) = node.store.claim_settlement(account, id, owner, now, until).await.map_err(store)? {
        return Ok(Claimed::Taken(claim));
    }
    let pending = node.store.pending_settlements(account).await.map_err(store)?;
    match pending.iter().any(|p| p.id == id) {
        true => Err(SettleError::NotMade("another instance is driving this settlement".into())),
        false => Ok(Claimed::Ended),
    }
}

/// The steps before money can move.
struct Transfer<'a> {
    dfsp: &'a Dfsp,
    parties: &'a MojaloopSettlement,
    currency: &'a str,
    amount: FspiopAmount,
    id: SettlementId,
}

impl Transfer<'_> {
    /// Begins the transfer and has it quoted: its Connector id once the quote is exactly what
    /// the settlement pays, `None` when the Connector went on by itself and it was committed.
    async fn quote(&self) -> Result<Option<String>, SettleError> {
        let home = self.id.to_string();
        let note = format!("ThitsaX settlement {home}");
        let new = NewTransfer {
            home_transaction_id: &home,
            from: &self.parties.own,
            to: &self.parties.peer,
            currency: self.currency,
            amount: self.amount,
            note: Some(&note),
        };
        let begun = self.dfsp.outbound.begin(&new).await.map_err(|e| self.before_acceptance(e))?;
        match begun.stage {
            Stage::PartyToAccept => {}
            Stage::Finished(Finish::Committed) => {
                error!(settlement = %self.id, transfer = %begun.transfer_id, "the Mojaloop Connector accepted the transfer by itself: run it with AUTO_ACCEPT_PARTY=false and AUTO_ACCEPT_QUOTES=false");
                return Ok(None);
            }
            other => {
                return Err(SettleError::Retryable(format!(
                    "transfer {} began at {other:?}; the Connector must wait for acceptances",
                    begun.transfer_id
                )))
            }
        }
        let quoted = self
            .dfsp
            .outbound
            .accept_party(&begun.transfer_id)
            .await
            .map_err(|e| self.before_acceptance(e))?;
        let Stage::QuoteToAccept(quote) = quoted.stage else {
            return Err(SettleError::Retryable(format!(
                "transfer {} was not quoted: {:?}",
                quoted.transfer_id, quoted.stage
            )));
        };
        // Nothing is accepted but exactly the settlement: a payee's fee would be paid on top.
        if quote.transfer_amount != self.amount || quote.currency != self.currency {
            return Err(SettleError::Definitive(format!(
                "the payee quoted {} {} for a settlement of {} {}; not accepted",
                quote.transfer_amount, quote.currency, self.amount, self.currency
            )));
        }
        Ok(Some(quoted.transfer_id))
    }

    /// A failure before `acceptQuote` moved nothing (the Connector waits for the acceptance):
    /// the scheme's refusal is final, anything else is tried again from the start.
    fn before_acceptance(&self, e: OutboundError) -> SettleError {
        warn!(settlement = %self.id, error = %e, "Mojaloop settlement: the transfer could not be quoted");
        match e {
            OutboundError::Refused { code: Some(code), .. } if code.outcome() == FailureOutcome::Refused => {
                SettleError::Definitive(e.to_string())
            }
            _ => SettleError::NotMade(e.to_string()),
        }
    }
}

/// Why a transfer to an account's own party was not credited (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncomingRefusal {
    #[error("{0} is not the settlement currency of this party")]
    Currency(String),
    #[error("{0}")]
    Invalid(String),
    #[error("transfer {0} was received before with another amount")]
    Modified(String),
    #[error("the transfer's quote has expired")]
    Expired,
    #[error("the amount would take the account's balance out of range")]
    TooLarge,
    #[error("the node's store is unavailable; retry")]
    Store,
}

impl IncomingRefusal {
    pub fn code(&self) -> FspiopCode {
        match self {
            IncomingRefusal::Currency(_) => FspiopCode::PAYEE_UNSUPPORTED_CURRENCY,
            IncomingRefusal::Invalid(_) => FspiopCode::VALIDATION_ERROR,
            IncomingRefusal::Modified(_) => FspiopCode::MODIFIED_REQUEST,
            IncomingRefusal::Expired => FspiopCode::TRANSFER_EXPIRED,
            IncomingRefusal::TooLarge => FspiopCode::PAYEE_LIMIT_ERROR,
            IncomingRefusal::Store => FspiopCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The account whose own settlement party this is, if any.
pub fn account_of<S>(node: &Node<S>, id_type: &str, id_value: &str) -> Option<Arc<Account>> {
    let accounts = node.accounts.load();
    let found = accounts.iter().find(|a| {
        a.mojaloop_settlement.as_ref().is_some_and(|m| m.own.id_type == id_type && m.own.id_value == id_value)
    });
    found.cloned()
}

/// A quote for a settlement to the account: exactly the amount, in the account's currency, no
/// fee and no probe (nothing is paid on).
pub fn quote(
    account: &Account,
    currency: &str,
    amount_type: &str,
    amount: &str,
) -> Result<FspiopAmount, IncomingRefusal> {
    if currency != &*account.asset_code {
        return Err(IncomingRefusal::Currency(currency.to_string()));
    }
    if amount_type != "SEND" {
        return Err(IncomingRefusal::Invalid(format!(
            "amountType {amount_type} is not offered: quote a SEND amount"
        )));
    }
    let amount = FspiopAmount::parse(amount).map_err(|e| IncomingRefusal::Invalid(e.to_string()))?;
    if amount.is_zero() {
        return Err(IncomingRefusal::Invalid(AmountError::Zero.to_string()));
    }
    Ok(amount)
}

/// Credits a settlement transfer to the account once per transfer id; returns what it credited
/// (the first time). A new transfer past `expiration` is refused; a repeat is answered as the
/// first time, whenever it comes.
pub async fn credit<S: Store>(
    node: &Node<S>,
    account: &Account,
    transfer_id: &str,
    currency: &str,
    amount: &str,
    expiration: Option<SystemTime>,
) -> Result<u64, IncomingRefusal> {
    let amount = quote(account, currency, "SEND", amount)?;
    let key = format!("mojaloop:{transfer_id}");
    let store = |e: StoreError| {
        warn!(error = %e, account = %account.id, transfer = transfer_id, "Mojaloop settlement: store unavailable");
        IncomingRefusal::Store
    };
    let seen = node.store.settlement_credited(account, &key).await.map_err(store)?;
    if seen.is_none() && expiration.is_some_and(|at| at <= SystemTime::now()) {
        return Err(IncomingRefusal::Expired);
    }
    // FSPIOP amounts are ten-thousandths: what the account's scale cannot hold is kept and added
    // to the next settlement, as for an engine's.
    let quantity = Quantity::new(amount.ten_thousandths(), super::amount::FSPIOP_DECIMALS_MAX);
    match node.store.credit_settlement(account, &key, quantity).await.map_err(store)? {
        IncomingCredit::Credited { credited } => {
            info!(account = %account.id, transfer = transfer_id, %amount, credited, "Mojaloop settlement received and credited");
            node.settlement.check(account);
            Ok(credited)
        }
        IncomingCredit::Repeated { credited } => {
            info!(account = %account.id, transfer = transfer_id, "Mojaloop settlement received again: credited once");
            Ok(credited)
        }
        IncomingCredit::KeyReused => Err(IncomingRefusal::Modified(transfer_id.to_string())),
        IncomingCredit::TooLarge => Err(IncomingRefusal::TooLarge),
    }
}
