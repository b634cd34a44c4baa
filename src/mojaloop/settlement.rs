//! Settlement kind `mojaloop`: an account that is also a DFSP of the node's scheme settles with
//! Mojaloop transfers, from the node's own party for that peer to the peer's party
//! ([`MojaloopSettlement`](crate::account::MojaloopSettlement)), instead of an RFC 0038 engine.
//!
//! **Outgoing, exactly once whatever fails when.** The settlement worker begins a settlement (the
//! balance moved to `settle_to`, the amount recorded under a [`SettlementId`]) and calls
//! [`settle`] until it ends, with the same id each time: each call is one step of
//! [`transfer::pay_once`], with the settlement's lease and transfer id kept in its store record
//! ([`Store::claim_settlement`], [`Store::set_settlement_reference`]). A refusal of the kept
//! transfer refunds the settlement (it holds for every attempt under the id); one before anything
//! was accepted does too. What the currency's decimals cannot carry is not sent and goes back to
//! the balance when the settlement ends ([`Paid::AllBut`]).
//!
//! **Incoming, once per transfer.** A transfer whose payee is an account's own party credits that
//! account ([`credit`]), keyed by the transfer id: a repeat is answered as the first time and
//! credits nothing; the same id with another amount is refused (3106). For a Rafiki peer the
//! credit also keeps, in the same store step, the withdrawal it owes at the Rafiki
//! ([`crate::rafiki::withdrawals`]).

use super::amount::{AmountError, FspiopAmount};
use super::error::FspiopCode;
use super::transfer::{self, Attempt, Claim, Outcome, Transfer};
use super::Dfsp;
use crate::account::Account;
use crate::node::Node;
use crate::quantity::Quantity;
use crate::settlement::{Paid, SettleError, SettlementId};
use crate::store::{IncomingCredit, SettlementClaim, Store, StoreError};
use std::sync::Arc;
use std::time::SystemTime;
use tracing::{info, warn};

/// Pays one settlement of `quantity` (the account's scale) for the account, one step of
/// [`transfer::pay_once`] per call, as the worker calls it until it ends.
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
    let home = id.to_string();
    let note = format!("ThitsaX settlement {home}");
    let t = Transfer {
        home_id: &home,
        from: &parties.own,
        to: &parties.peer,
        currency: &currency.code,
        amount,
        note: &note,
    };
    let attempt = SettlementAttempt { node, dfsp, account, id };
    match transfer::pay_once(dfsp, &attempt, &t).await {
        Outcome::Committed => Ok(paid(unpaid)),
        Outcome::Ended => {
            info!(account = %account.id, settlement = %id, "settlement ended by another instance");
            Ok(paid(unpaid))
        }
        Outcome::RefusedBeforeAcceptance(reason) => Err(SettleError::Definitive(reason)),
        Outcome::RefusedThroughout(reason) => Err(SettleError::RefusedThroughout(reason)),
        Outcome::NotMade(reason) => Err(SettleError::NotMade(reason)),
        Outcome::Unknown(reason) => Err(SettleError::Retryable(reason)),
    }
}

fn paid(unpaid: u64) -> Paid {
    match unpaid {
        0 => Paid::All,
        unpaid => Paid::AllBut { unpaid },
    }
}

/// A pending settlement's lease and transfer id, in the store's settlement records.
struct SettlementAttempt<'a, S> {
    node: &'a Node<S>,
    dfsp: &'a Dfsp,
    account: &'a Account,
    id: SettlementId,
}

impl<S: Store> Attempt for SettlementAttempt<'_, S> {
    async fn claim(&self) -> Result<Claim, String> {
        let now = SystemTime::now();
        let (store, owner) = (&self.node.store, self.node.sending.owner.as_str());
        let until = now + transfer::lease(self.dfsp);
        let claimed = store.claim_settlement(self.account, self.id, owner, now, until).await;
        if let Some(SettlementClaim { reference }) = claimed.map_err(|e| e.to_string())? {
            return Ok(Claim::Taken(reference));
        }
        let pending = store.pending_settlements(self.account).await.map_err(|e| e.to_string())?;
        Ok(match pending.iter().any(|p| p.id == self.id) {
            true => Claim::Held,
            false => Claim::Ended,
        })
    }

    async fn keep(&self, transfer_id: &str) -> Result<Option<String>, String> {
        let owner = self.node.sending.owner.as_str();
        let kept = self.node.store.set_settlement_reference(self.account, self.id, owner, transfer_id).await;
        kept.map_err(|e| e.to_string())
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
    #[error("this party takes settlements from DFSP {expected} only, not {payer}")]
    NotThePeer { expected: String, payer: String },
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
            IncomingRefusal::NotThePeer { .. } => FspiopCode::PAYEE_REJECTION,
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

/// A settlement party takes transfers from its peer's DFSP alone, when the account names it and
/// the Connector names the payer's.
pub fn check_payer(account: &Account, payer_fsp: Option<&str>) -> Result<(), IncomingRefusal> {
    let expected = account.mojaloop_settlement.as_ref().and_then(|m| m.peer.fsp_id.as_deref());
    match (expected, payer_fsp) {
        (Some(expected), Some(payer)) if expected != payer => {
            Err(IncomingRefusal::NotThePeer { expected: expected.into(), payer: payer.into() })
        }
        _ => Ok(()),
    }
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
    // A Rafiki peer's money coming back: the Connector is answered as soon as it is credited
    // (failing the answer after the credit would break the transfer), so the withdrawal it owes
    // at the Rafiki is kept in the store in the same step, and the withdrawals worker records it.
    let rafiki = account.rafiki_liquidity.is_some();
    let credit = match rafiki {
        true => node.store.credit_settlement_owing_withdrawal(account, &key, quantity).await,
        false => node.store.credit_settlement(account, &key, quantity).await,
    };
    match credit.map_err(store)? {
        IncomingCredit::Credited { credited } => {
            info!(account = %account.id, transfer = transfer_id, %amount, credited, "Mojaloop settlement received and credited");
            node.settlement.check(account);
            if rafiki {
                node.rafiki_withdrawals.notify_one();
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{test_account, MojaloopSettlement};
    use crate::mojaloop::party::Party;

    fn settling() -> Account {
        let parties = MojaloopSettlement {
            peer: Party::new("ACCOUNT_ID", "us-at-peer", Some("peerfsp")).unwrap(),
            own: Party::new("ACCOUNT_ID", "peer-at-us", None).unwrap(),
        };
        Account {
            asset_code: "MXN".into(),
            mojaloop_settlement: Some(Arc::new(parties)),
            ..test_account("peer")
        }
    }

    #[test]
    fn a_settlement_is_quoted_at_exactly_its_amount_in_the_account_s_currency() {
        let account = settling();
        assert_eq!(quote(&account, "MXN", "SEND", "12.34").map(|a| a.to_string()), Ok("12.34".into()));
        assert_eq!(quote(&account, "USD", "SEND", "1"), Err(IncomingRefusal::Currency("USD".into())));
        assert!(matches!(quote(&account, "MXN", "RECEIVE", "1"), Err(IncomingRefusal::Invalid(_))));
        for bad in ["0", "12.30", "-1", "1e2", ""] {
            assert!(matches!(quote(&account, "MXN", "SEND", bad), Err(IncomingRefusal::Invalid(_))), "{bad}");
        }
        assert_eq!(IncomingRefusal::Currency("USD".into()).code(), FspiopCode::PAYEE_UNSUPPORTED_CURRENCY);
        assert_eq!(IncomingRefusal::Expired.code(), FspiopCode::TRANSFER_EXPIRED);
        assert_eq!(IncomingRefusal::Modified("t".into()).code(), FspiopCode::MODIFIED_REQUEST);
    }

    #[test]
    fn only_the_peer_s_dfsp_pays_its_settlement_party() {
        let account = settling();
        assert_eq!(check_payer(&account, Some("peerfsp")), Ok(()));
        assert_eq!(check_payer(&account, None), Ok(()), "a payer the Connector does not name");
        let refused = check_payer(&account, Some("otherfsp")).unwrap_err();
        assert_eq!(refused.code(), FspiopCode::PAYEE_REJECTION);
        let mut open = settling();
        Arc::make_mut(open.mojaloop_settlement.as_mut().unwrap()).peer.fsp_id = None;
        assert_eq!(check_payer(&open, Some("otherfsp")), Ok(()), "no DFSP named for the peer");
    }
}
