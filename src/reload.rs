//! Accounts, routes and exchange rates shared through Redis: loaded at start-up, kept in memory,
//! reloaded when they change. Never read per packet.
//!
//! At start-up the config file's accounts, static routes and rates are written into Redis
//! according to `store.config_precedence` ([`Precedence`]), then the whole set is read back and
//! served from the node's tables (`Node::accounts`, `Node::router`, `Node::rates`). While the node
//! runs, [`run`] watches the config version in Redis two ways: a pub/sub subscription for prompt
//! reloads, and a poll of the version key every `store.config_poll_interval_ms`, which bounds how
//! late a change is seen even when a message is missed. A changed version reloads everything.
//!
//! A reload validates every entry with the config file's rules. An entry that fails (bad JSON,
//! a rule broken) is logged and skipped; if the node already serves an account with that id, it
//! keeps serving that one, so garbage in Redis never replaces a good account. A reload that
//! cannot read Redis keeps the tables as they are and is tried again at the next poll.
//!
//! Rates, then accounts: the rates are validated first and alone (the spread in [0, 1), every
//! price a positive decimal). Rates that fail, or that Redis holds over the size limit, are logged
//! and the rates served now are kept; so are they when Redis holds none. Only then are the
//! accounts validated, against those rates: when accounts use several assets, one whose asset has
//! no price is skipped (it could not be converted to or from). The other way round would be
//! circular, and worse: rates checked against the accounts would let one stale account block every
//! change of prices, and accounts checked against the old rates would let in an account the new
//! rates cannot convert. (The admin API refuses rates that drop a price in use, so an account is
//! dropped this way only by a direct write into Redis or two changes crossing.)
//!
//! Swapping: the rates first, then the accounts table, then the routing table, each atomically,
//! so a packet sees a whole old or a whole new table. The packet path reads the accounts
//! (authentication, routing) before the rates (conversion), and arc-swap's operations have one
//! global order even across values, so a packet that saw the new accounts converts with the new
//! rates: an account a reload brings in never meets rates without its price. Swapping accounts
//! first would open that window. The window left is a packet that read the old accounts just
//! before the swaps and converts after them: if the new rates dropped its asset's price, its
//! account is one this reload removes, and the packet is refused (no rate, F02) as if it had
//! arrived a moment later. Between the accounts and the routes a packet may see new accounts with
//! old routes: a route to an account just deleted finds no account (F02), a new account is not yet
//! routed to (F02). Packets in flight hold their own `Arc<Account>`, so an account deleted
//! meanwhile finishes its packets with the limits they started with; its balance stays in Redis.
//!
//! One reload at a time per node (the [`Reloader`]'s lock): the watcher and
//! [`Reloader::reload_now`] (the admin API's, after a write) may both reload, and without it an
//! older snapshot could be swapped in after a newer one and stay served while the watcher believes
//! the newer version is.

use crate::account::{Account, AccountId, AccountRecord, Accounts};
use crate::backoff::Backoff;
use crate::node::Node;
use crate::packet::IlpAddress;
use crate::rates::{Rates, RatesRecord};
use crate::routing::RoutingTable;
use crate::rules::{self, Problem};
use crate::shutdown::Phase;
use crate::store::{ConfigSnapshot, ConfigStoreError, ConfigSyncRules, Entry, RatesEntry, RedisStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};
use tracing::{debug, info, warn};

pub use crate::store::Precedence;

/// First and longest wait between two attempts to subscribe again after the subscription failed
/// or ended (jittered, so instances that lost Redis together do not come back in step).
const RESUBSCRIBE_DELAY_FIRST: Duration = Duration::from_millis(100);
const RESUBSCRIBE_DELAY_MAX: Duration = Duration::from_secs(5);

/// The config file's share of the set: written at start-up, and again if Redis lost the set.
#[derive(Debug, Clone)]
pub struct Seed {
    pub accounts: Vec<Account>,
    /// Static routes (prefix, account id).
    pub routes: Vec<(String, AccountId)>,
    /// The file's `[rates]`; `None` when the file has no such section (Redis's are then kept
    /// whatever the precedence).
    pub rates: Option<RatesRecord>,
    pub precedence: Precedence,
}

impl Seed {
    async fn write(&self, store: &RedisStore) -> Result<(), ConfigStoreError> {
        let seeded =
            store.seed_config(&self.accounts, &self.routes, self.rates.as_ref(), self.precedence).await?;
        info!(
            precedence = ?self.precedence,
            accounts_written = seeded.accounts,
            routes_written = seeded.routes,
            rates_written = seeded.rates,
            version = seeded.version,
            "config file's accounts, routes and rates written to Redis"
        );
        Ok(())
    }
}

/// The tables built from one snapshot.
#[derive(Debug)]
pub struct Tables {
    pub accounts: Accounts,
    pub routes: RoutingTable,
    /// Redis's rates, or the ones served before when Redis's are missing or unusable.
    pub rates: Rates,
    /// The version they were read at (`None`: Redis held no config).
    pub version: Option<u64>,
    /// Entries skipped, with why.
    pub problems: Vec<Problem>,
}

/// Seeds Redis from the file according to `precedence`, then reads back the shared set. Called
/// before the node serves: any error here stops the start-up. `rates` are the file's, served if
/// Redis's are unusable.
pub async fn load_at_start(
    store: &RedisStore,
    seed: &Seed,
    node: &IlpAddress,
    rates: &Rates,
) -> Result<Tables, ConfigStoreError> {
    seed.write(store).await?;
    let snapshot = store.config_snapshot().await?;
    let tables = build(&snapshot, node, rates, &Accounts::default());
    log_problems(&tables.problems);
    Ok(tables)
}

/// Builds the tables from a snapshot, validating every entry; `rates` and `cached` are the rates
/// and accounts served now, kept where Redis's are missing (rates) or unusable. The rates are
/// validated first and alone, then the accounts against them (see the module doc). Pure: no I/O.
pub fn build(snapshot: &ConfigSnapshot, node: &IlpAddress, rates: &Rates, cached: &Accounts) -> Tables {
    let mut problems = Vec::new();
    let rates = match &snapshot.rates {
        None => rates.clone(),
        Some(entry) => parse_rates(entry).unwrap_or_else(|mut why| {
            why.message.push_str("; the rates served before are kept");
            problems.push(why);
            rates.clone()
        }),
    };
    let mut records = Vec::with_capacity(snapshot.accounts.len());
    for entry in &snapshot.accounts {
        let (id, value) = match entry {
            Entry::Read { field, value } => (field, value),
            Entry::Unreadable => {
                problems.push(problem(
                    "redis accounts",
                    "an entry over the size limit or not UTF-8 was skipped".into(),
                ));
                continue;
            }
        };
        match parse_record(node, id, value) {
            Ok(record) => records.push(record),
            Err(mut why) => {
                // The one served now stays: a bad write must not take an account away.
                if let Some(account) = cached.get(id) {
                    why.message.push_str("; the account as loaded before is kept");
                    records.push(account.to_record());
                }
                problems.push(why);
            }
        }
    }
    // Rules across accounts keep the first of two that clash (a shared token, a second parent):
    // in id order, so every instance keeps the same one whatever order Redis answered in.
    records.sort_by(|a, b| a.id.cmp(&b.id));
    let (accounts, set_problems) = rules::accounts_from_records(node, &rates, records);
    problems.extend(set_problems);
    let routes = snapshot.routes.iter().filter_map(|entry| match entry {
        Entry::Read { field, value } => Some((field.clone(), value.clone())),
        Entry::Unreadable => None,
    });
    let (routes, route_problems) = rules::routing_table(&accounts, routes);
    problems.extend(route_problems);
    let unreadable_routes = snapshot.routes.iter().filter(|e| **e == Entry::Unreadable).count();
    if unreadable_routes > 0 {
        problems.push(problem(
            "redis routes",
            format!("{unreadable_routes} entries over the size limit skipped"),
        ));
    }
    Tables { accounts: Accounts::new(accounts), routes, rates, version: snapshot.version, problems }
}

/// The rates' JSON, checked alone: the spread and each price by the rules of `[rates]`. Which
/// accounts they price is the accounts' check, after.
fn parse_rates(entry: &RatesEntry) -> Result<Rates, Problem> {
    let path = "redis rates";
    let RatesEntry::Read(value) = entry else {
        return Err(problem(path, "over the size limit, not UTF-8 or not a string: skipped".into()));
    };
    let record: RatesRecord = serde_json::from_str(value).map_err(|e| problem(path, json_error(&e)))?;
    rules::rates_from_record(record, []).map_err(|e| problem(path, e.to_string().replace('\n', "; ")))
}

fn problem(path: &str, message: String) -> Problem {
    Problem { path: path.to_string(), message }
}

/// One account's JSON, checked alone (the rules across accounts come after).
fn parse_record(node: &IlpAddress, id: &str, value: &str) -> Result<AccountRecord, Problem> {
    let path = format!("redis accounts[{id:?}]");
    let record: AccountRecord = serde_json::from_str(value).map_err(|e| problem(&path, json_error(&e)))?;
    if record.id != id {
        return Err(problem(&path, format!("holds the record of account {:?}", record.id)));
    }
    match rules::account_from_record(node, record.clone()) {
        Ok(_) => Ok(record),
        Err(e) => Err(problem(&path, e.to_string().replace('\n', "; "))),
    }
}

/// A JSON error without the value it quotes: a misplaced token must not reach the logs. Field
/// names (unknown or missing fields) are kept, they are what the operator needs.
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("unknown field") || text.starts_with("missing field") {
        return format!("invalid record: {}", text.split(", expected").next().unwrap_or(&text));
    }
    format!("invalid record: {:?} error at line {} column {}", e.classify(), e.line(), e.column())
}

fn log_problems(problems: &[Problem]) {
    for p in problems {
        warn!(path = %p.path, problem = %p.message, "entry in Redis skipped");
    }
}

/// Reloads one node's tables from Redis: shared by the watcher ([`run`]) and the admin API.
pub struct Reloader {
    node: Arc<Node<RedisStore>>,
    seed: Seed,
    /// Held from reading a snapshot to the last swap.
    one_at_a_time: Mutex<()>,
}

impl Reloader {
    pub fn new(node: Arc<Node<RedisStore>>, seed: Seed) -> Self {
        Reloader { node, seed, one_at_a_time: Mutex::new(()) }
    }

    pub fn node(&self) -> &Arc<Node<RedisStore>> {
        &self.node
    }

    /// Reads a snapshot and swaps the tables in; returns the version served. If Redis holds no
    /// config at all (its data was lost, or flushed), the file is written again first, as at
    /// start-up, rather than serving nothing. The admin API calls it after a change, so that the
    /// instance that made it serves it before answering; the others see it through [`run`].
    pub async fn reload_now(&self) -> Result<Option<u64>, ConfigStoreError> {
        let (node, seed) = (&self.node, &self.seed);
        let _one_at_a_time = self.one_at_a_time.lock().await;
        let mut snapshot = node.store.config_snapshot().await?;
        if snapshot.version.is_none() {
            warn!("Redis holds no config version (lost or flushed): writing the config file's again");
            seed.write(&node.store).await?;
            snapshot = node.store.config_snapshot().await?;
        }
        let tables = build(&snapshot, &node.address, &node.rates.load(), &node.accounts.load());
        log_problems(&tables.problems);
        info!(
            version = tables.version,
            accounts = tables.accounts.iter().count(),
            routes = tables.routes.len(),
            skipped = tables.problems.len(),
            "accounts, routes and rates reloaded from Redis"
        );
        // Rates, accounts, routes: a packet that sees an account converts with rates that price it,
        // and a route never leads to an account the node does not know yet for longer than between
        // the last two stores (see the module doc).
        node.rates.store(Arc::new(tables.rates));
        node.accounts.store(Arc::new(tables.accounts));
        node.router.replace(tables.routes);
        // Engine accounts of added or deleted accounts are set up or closed now, not at the next scan.
        node.settlement.accounts_changed();
        Ok(tables.version)
    }
}

/// Keeps the node's accounts, routes and rates in step with Redis until the node starts draining.
/// `version` is the one the node's tables were loaded at.
pub async fn run(reloader: Arc<Reloader>, rules: ConfigSyncRules, version: Option<u64>) {
    let node = &reloader.node;
    let changed = Notify::new();
    let watch = watch_version(&reloader, &rules, version, &changed);
    let subscribe = async {
        if rules.pubsub {
            subscribe(&node.store, &changed).await
        } else {
            std::future::pending().await
        }
    };
    tokio::select! {
        _ = watch => {}
        _ = subscribe => {}
        _ = node.shutdown.reached(Phase::Draining) => {}
    }
}

/// Reloads when the version differs from the one served: at every poll tick and whenever the
/// subscriber says so.
async fn watch_version(
    reloader: &Reloader,
    rules: &ConfigSyncRules,
    mut served: Option<u64>,
    changed: &Notify,
) {
    let node = &reloader.node;
    let mut tick = tokio::time::interval(rules.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = changed.notified() => {}
        }
        match node.store.config_version().await {
            Ok(now) if now == served && now.is_some() => continue,
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "cannot read the config version from Redis; serving the tables as they are");
                continue;
            }
        }
        match reloader.reload_now().await {
            Ok(version) => served = version,
            Err(e) => warn!(error = %e, "config reload failed; serving the tables as they are"),
        }
    }
}

/// Wakes `changed` at every change message, and once after each (re)subscription, since a
/// change may have been published while no subscription was listening. Reconnects forever, with a
/// growing delay; the poll covers the gaps.
async fn subscribe(store: &RedisStore, changed: &Notify) {
    let mut attempt = 0usize;
    let fresh = || Backoff::new(RESUBSCRIBE_DELAY_FIRST, RESUBSCRIBE_DELAY_MAX);
    let mut backoff = fresh();
    loop {
        match store.config_changes(attempt).await {
            Ok(messages) => {
                debug!("subscribed to config changes");
                backoff = fresh();
                changed.notify_one();
                futures::pin_mut!(messages);
                while futures::StreamExt::next(&mut messages).await.is_some() {
                    changed.notify_one();
                }
                warn!("config change subscription lost; the version poll covers until it is back");
            }
            Err(e) => warn!(error = %e, "cannot subscribe to config changes; the version poll covers"),
        }
        attempt = attempt.wrapping_add(1);
        tokio::time::sleep(backoff.next_wait()).await;
    }
}

#[cfg(test)]
mod tests;
