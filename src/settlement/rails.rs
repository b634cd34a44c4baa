//! The settlement systems the worker pays through, chosen per account by its
//! [`SettlementRail`]: an RFC 0038 engine, or the node's Mojaloop scheme. A Rafiki peer's
//! settlement is a top-up of the node's liquidity there: paid through its rail when it has one
//! (none when one operator runs both sides), then recorded at the Rafiki.

use super::engine::EngineClient;
use super::{Paid, Quantity, SettleError, SettlementId, SettlementSystem};
use crate::account::{Account, SettlementRail};
use crate::node::Node;
use crate::store::Store;
use std::sync::Arc;

/// Every settlement system of the node, behind the one interface the worker drives.
pub struct Rails<S> {
    node: Arc<Node<S>>,
    engines: EngineClient,
}

impl<S> Rails<S> {
    pub fn new(node: Arc<Node<S>>) -> Self
    where
        S: Store,
    {
        let engines = node.engines.clone();
        Rails { node, engines }
    }
}

impl<S: Store> SettlementSystem for Rails<S> {
    async fn open_account(&self, account: &Account) -> Result<(), SettleError> {
        match account.settlement_rail() {
            Some(SettlementRail::Engine(_)) => SettlementSystem::open_account(&self.engines, account).await,
            // A Mojaloop party needs no setting up: the scheme knows it or refuses the transfer.
            Some(SettlementRail::Mojaloop(_)) => Ok(()),
            // Rafiki knows its peer, or refuses the deposit.
            None if account.rafiki_liquidity.is_some() => Ok(()),
            None => Err(no_rail(account)),
        }
    }

    async fn close_account(&self, account: &Account) -> Result<(), SettleError> {
        match account.settlement_rail() {
            Some(SettlementRail::Engine(_)) => SettlementSystem::close_account(&self.engines, account).await,
            Some(SettlementRail::Mojaloop(_)) => Ok(()),
            None if account.rafiki_liquidity.is_some() => Ok(()),
            None => Err(no_rail(account)),
        }
    }

    async fn settle(
        &self,
        account: &Account,
        quantity: Quantity,
        id: SettlementId,
    ) -> Result<Paid, SettleError> {
        // Checked before anything is paid: a refusal after the rail paid must not refund.
        let amount =
            u64::try_from(quantity.amount).map_err(|_| SettleError::Definitive("amount over u64".into()))?;
        let paid = match account.settlement_rail() {
            Some(SettlementRail::Engine(_)) => {
                Some(SettlementSystem::settle(&self.engines, account, quantity, id).await?)
            }
            Some(SettlementRail::Mojaloop(_)) => {
                Some(crate::mojaloop::settlement::settle(&self.node, account, quantity, id).await?)
            }
            None => None,
        };
        if account.rafiki_liquidity.is_none() {
            // Its settlement system was removed while a settlement was pending: kept pending
            // (money may be on its way) for an operator, never refunded on a guess.
            return paid
                .ok_or_else(|| SettleError::NotMade(format!("account {} no longer settles", account.id)));
        }
        // A retry pays through the rail again with the same id, which the rail does once; what
        // it paid is what Rafiki records.
        let recorded = match paid {
            Some(Paid::AllBut { unpaid }) => amount.saturating_sub(unpaid),
            _ => amount,
        };
        crate::rafiki::liquidity::record_top_up(&self.node, account, recorded, id, paid.is_some()).await?;
        Ok(paid.unwrap_or(Paid::All))
    }
}

fn no_rail(account: &Account) -> SettleError {
    SettleError::Definitive(format!("account {} does not settle", account.id))
}
