//! Where an admin change is applied: the node's own tables (memory store: one instance, the tables
//! are the truth) or Redis (every instance reloads the shared set; the one that took the request
//! reloads before it answers). The admin endpoints validate a change against the tables served
//! now; a `Tables` only applies it.

use crate::account::{Account, AccountId, Accounts};
use crate::node::Node;
use crate::packet::IlpAddress;
use crate::rates::Rates;
use crate::reload::Reloader;
use crate::rules::{self, ConfigError};
use crate::store::{ConfigStoreError, Entry, Store};
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex};

/// A change the admin endpoints validated.
#[derive(Debug)]
pub enum Change {
    /// `account` created or replaced; `accounts` is the whole set with it, validated.
    PutAccount {
        accounts: Vec<Account>,
        account: Box<Account>,
    },
    /// The account and the static routes to it.
    DeleteAccount(AccountId),
    PutRoute {
        prefix: IlpAddress,
        account: AccountId,
    },
    DeleteRoute(String),
    PutRates(Rates),
}

#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    /// The change breaks a rule across the whole set (found when the tables are rebuilt).
    #[error("{0}")]
    Invalid(ConfigError),
    /// Redis refused or did not answer; nothing was changed, or the change may not be served yet.
    #[error("shared config store: {0}")]
    Store(#[from] ConfigStoreError),
}

pub trait Tables: Send + Sync + 'static {
    /// The static routes (prefix, account) as the store holds them now.
    fn static_routes(&self) -> BoxFuture<'_, Result<Vec<(String, AccountId)>, TablesError>>;

    /// Applies a validated change. When it returns Ok, this instance serves the change; with
    /// Redis, every other instance does within its poll interval.
    fn apply(&self, change: Change) -> BoxFuture<'_, Result<(), TablesError>>;
}

/// The memory store's tables: the node's own, swapped in whole.
pub struct LocalTables<S> {
    node: Arc<Node<S>>,
    /// The static routes (the routing table also holds the routes accounts imply).
    static_routes: Mutex<Vec<(String, AccountId)>>,
}

impl<S: Store> LocalTables<S> {
    pub fn new(node: Arc<Node<S>>, static_routes: Vec<(String, AccountId)>) -> Self {
        LocalTables { node, static_routes: Mutex::new(static_routes) }
    }

    /// Builds the routing table for `accounts` and `routes`, then swaps both in (accounts first,
    /// as a reload does). Nothing is swapped if a route breaks a rule.
    fn swap(&self, accounts: Vec<Account>, routes: Vec<(String, AccountId)>) -> Result<(), TablesError> {
        let pairs = routes.iter().map(|(p, a)| (p.clone(), a.to_string()));
        let (table, problems) = rules::routing_table(&accounts, pairs);
        if !problems.is_empty() {
            return Err(TablesError::Invalid(ConfigError(problems)));
        }
        *self.static_routes.lock().unwrap_or_else(|e| e.into_inner()) = routes;
        self.node.accounts.store(Arc::new(Accounts::new(accounts)));
        self.node.router.replace(table);
        Ok(())
    }

    fn apply_now(&self, change: Change) -> Result<(), TablesError> {
        let mut routes = self.static_routes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let current = || self.node.accounts.load().iter().map(|a| Account::clone(a)).collect::<Vec<_>>();
        match change {
            Change::PutAccount { accounts, .. } => self.swap(accounts, routes),
            Change::DeleteAccount(id) => {
                let accounts = current().into_iter().filter(|a| a.id != id).collect();
                routes.retain(|(_, account)| *account != id);
                self.swap(accounts, routes)
            }
            Change::PutRoute { prefix, account } => {
                routes.retain(|(p, _)| p != prefix.as_str());
                routes.push((prefix.to_string(), account));
                self.swap(current(), routes)
            }
            Change::DeleteRoute(prefix) => {
                routes.retain(|(p, _)| *p != prefix);
                self.swap(current(), routes)
            }
            Change::PutRates(rates) => {
                self.node.rates.store(Arc::new(rates));
                Ok(())
            }
        }
    }
}

impl<S: Store> Tables for LocalTables<S> {
    fn static_routes(&self) -> BoxFuture<'_, Result<Vec<(String, AccountId)>, TablesError>> {
        let routes = self.static_routes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Box::pin(async move { Ok(routes) })
    }

    fn apply(&self, change: Change) -> BoxFuture<'_, Result<(), TablesError>> {
        // Admin writes are serialized by the caller; this is one synchronous swap.
        let applied = self.apply_now(change);
        Box::pin(async move { applied })
    }
}

/// Tables shared through Redis: a change is one write script (with its version bump and
/// publish), then this instance reloads the whole set, validated as every reload is.
pub struct RedisTables {
    /// The node's reloader, shared with the watcher so that their reloads take turns.
    reloader: Arc<Reloader>,
}

impl RedisTables {
    pub fn new(reloader: Arc<Reloader>) -> Self {
        RedisTables { reloader }
    }

    async fn write(&self, change: Change) -> Result<(), TablesError> {
        let store = &self.reloader.node().store;
        match change {
            Change::PutAccount { account, .. } => store.put_account(&account).await?,
            Change::DeleteAccount(id) => store.delete_account(&id).await?,
            Change::PutRoute { prefix, account } => store.put_route(&prefix, &account).await?,
            Change::DeleteRoute(prefix) => store.delete_route(&prefix).await?,
            Change::PutRates(rates) => store.put_rates(&rates.to_record()).await?,
        };
        self.reloader.reload_now().await?;
        Ok(())
    }
}

impl Tables for RedisTables {
    fn static_routes(&self) -> BoxFuture<'_, Result<Vec<(String, AccountId)>, TablesError>> {
        Box::pin(async move {
            let snapshot = self.reloader.node().store.config_snapshot().await?;
            Ok(snapshot
                .routes
                .into_iter()
                .filter_map(|entry| match entry {
                    Entry::Read { field, value } => Some((field, AccountId::from(value))),
                    Entry::Unreadable => None,
                })
                .collect())
        })
    }

    fn apply(&self, change: Change) -> BoxFuture<'_, Result<(), TablesError>> {
        Box::pin(self.write(change))
    }
}
