//! The settlement systems the worker pays through, chosen per account by its
//! [`SettlementRail`]: an RFC 0038 engine, or the node's Mojaloop scheme.

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
            None => Err(no_rail(account)),
        }
    }

    async fn close_account(&self, account: &Account) -> Result<(), SettleError> {
        match account.settlement_rail() {
            Some(SettlementRail::Engine(_)) => SettlementSystem::close_account(&self.engines, account).await,
            Some(SettlementRail::Mojaloop(_)) => Ok(()),
            None => Err(no_rail(account)),
        }
    }

    async fn settle(
        &self,
        account: &Account,
        quantity: Quantity,
        id: SettlementId,
    ) -> Result<Paid, SettleError> {
        match account.settlement_rail() {
            Some(SettlementRail::Engine(_)) => {
                SettlementSystem::settle(&self.engines, account, quantity, id).await
            }
            Some(SettlementRail::Mojaloop(_)) => {
                crate::mojaloop::settlement::settle(&self.node, account, quantity, id).await
            }
            // Its settlement system was removed while a settlement was pending: kept pending
            // (money may be on its way) for an operator, never refunded on a guess.
            None => Err(SettleError::NotMade(format!("account {} no longer settles", account.id))),
        }
    }
}

fn no_rail(account: &Account) -> SettleError {
    SettleError::Definitive(format!("account {} does not settle", account.id))
}
