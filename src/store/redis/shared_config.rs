//! Accounts, static routes and exchange rates in Redis, shared by every instance on the same Redis
//! and prefix.
//!
//! # Key schema
//! The four keys share the hash tag `{config}`, so each script below touches one cluster slot:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `<prefix>:{config}:accounts` | hash | account id → its [`AccountRecord`] as JSON |
//! | `<prefix>:{config}:routes` | hash | static route prefix → account id |
//! | `<prefix>:{config}:rates` | string | the spread and prices: a [`RatesRecord`] as JSON |
//! | `<prefix>:{config}:version` | string (int) | incremented by every change of any of the above |
//!
//! Every change is also published on the channel `<prefix>:config` (the message is the new
//! version). Channels are not keys: on a Redis Cluster a PUBLISH reaches every node, so a
//! subscriber on any one node hears every change.
//!
//! # Who reads it
//! Nothing here is read per packet: each instance keeps the accounts, routes and rates in memory
//! and reloads them when the version changes (see `crate::reload`). The writers are the start-up
//! seeding ([`RedisStore::seed_config`]) and the change API (`put_account`, `delete_account`,
//! `put_route`, `delete_route`, `put_rates`) that an admin API calls. Each change is one script:
//! the write, the version bump and the publish happen together or not at all.
//!
//! # Limits
//! At most [`ACCOUNTS_MAX`] accounts and [`ROUTES_MAX`] routes are written or read; a field or
//! value over [`ENTRY_BYTES_MAX`], or rates over [`RATES_BYTES_MAX`], are never read back (the
//! snapshot leaves them out, the reader reports them). Incoming tokens are stored only as their
//! SHA-256; the outgoing tokens are stored in clear because the node must send them, so Redis must
//! be protected like the config file.

use super::{store_error, RedisStore};
use crate::account::{Account, AccountRecord};
use crate::packet::IlpAddress;
use crate::rates::RatesRecord;
use crate::store::StoreError;
use futures::{Stream, StreamExt};
use redis::Script;
use std::time::Duration;

/// Most accounts Redis may hold for one prefix: more is refused when writing and when reading.
pub const ACCOUNTS_MAX: usize = 100_000;
/// Most static routes Redis may hold for one prefix.
pub const ROUTES_MAX: usize = 100_000;
/// Largest field or value of either hash read back; an account's JSON is a few hundred bytes.
pub const ENTRY_BYTES_MAX: usize = 16 * 1024;
/// Largest rates value written or read back: a price is a few dozen bytes, so this is thousands
/// of assets, while a reload never copies an unbounded value out of Redis.
pub const RATES_BYTES_MAX: usize = 256 * 1024;

/// Which side wins at start-up when the config file and Redis both hold an account id, a route
/// prefix or rates (config `store.config_precedence`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precedence {
    /// The file is the truth for its own entries: each replaces Redis's. Entries only Redis
    /// holds are kept.
    #[default]
    File,
    /// Redis is the truth: the file's entries are only added where Redis has none (seeding).
    Redis,
}

/// How an instance keeps its accounts and routes in step with Redis.
#[derive(Debug, Clone)]
pub struct ConfigSyncRules {
    pub precedence: Precedence,
    /// The version key is read this often, so a change is seen within it even when its pub/sub
    /// message was missed (subscriber reconnecting, pub/sub off).
    pub poll_interval: Duration,
    /// Subscribe to the change channel for prompt reloads (the poll remains the bound).
    pub pubsub: bool,
}

/// Why a change of the shared config was not made, or a snapshot not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Redis holds {count} {what}, more than the {max} a node loads")]
    TooMany { what: &'static str, count: u64, max: usize },
    #[error("{what} take {bytes} bytes, more than the {max} a node reads back")]
    TooLarge { what: &'static str, bytes: usize, max: usize },
    #[error("a route must lead to an account in Redis; there is no account {0:?}")]
    UnknownAccount(String),
    #[error("Redis answered a config script with the unknown code {0}")]
    UnknownCode(i64),
}

/// One entry as read: its field and value, or a mark that it was over [`ENTRY_BYTES_MAX`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Read {
        field: String,
        value: String,
    },
    /// Over the size limit or not UTF-8: not read, reported by the caller.
    Unreadable,
}

/// The rates as read: their JSON, or a mark that they were not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RatesEntry {
    Read(String),
    /// Over [`RATES_BYTES_MAX`], not UTF-8, or not a string key: not read, reported by the caller.
    Unreadable,
}

/// Accounts, routes and rates at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSnapshot {
    /// `None` when the version key does not exist: Redis holds no config (new, or lost).
    pub version: Option<u64>,
    /// account id → JSON record.
    pub accounts: Vec<Entry>,
    /// prefix → account id.
    pub routes: Vec<Entry>,
    /// `None` when Redis holds no rates.
    pub rates: Option<RatesEntry>,
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Written; every instance reloads at this version.
    Applied { version: u64 },
    /// Redis already held exactly this (or had nothing to delete): no new version.
    Unchanged,
}

/// What start-up seeding wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub accounts: usize,
    pub routes: usize,
    /// Whether the file's rates were written.
    pub rates: bool,
    pub version: u64,
}

pub(super) struct ConfigScripts {
    put_account: Script,
    delete_account: Script,
    put_route: Script,
    delete_route: Script,
    put_rates: Script,
    seed: Script,
    snapshot: Script,
}

impl ConfigScripts {
    pub(super) fn load() -> Self {
        ConfigScripts {
            put_account: Script::new(include_str!("config_put_account.lua")),
            delete_account: Script::new(include_str!("config_delete_account.lua")),
            put_route: Script::new(include_str!("config_put_route.lua")),
            delete_route: Script::new(include_str!("config_delete_route.lua")),
            put_rates: Script::new(include_str!("config_put_rates.lua")),
            seed: Script::new(include_str!("config_seed.lua")),
            snapshot: Script::new(include_str!("config_snapshot.lua")),
        }
    }
}

/// The key names, built once per store.
#[derive(Debug, Clone)]
pub(super) struct ConfigKeys {
    accounts: String,
    routes: String,
    rates: String,
    version: String,
    channel: String,
    stream_secret: String,
}

impl ConfigKeys {
    pub(super) fn new(prefix: &str) -> Self {
        ConfigKeys {
            accounts: format!("{prefix}:{{config}}:accounts"),
            routes: format!("{prefix}:{{config}}:routes"),
            rates: format!("{prefix}:{{config}}:rates"),
            version: format!("{prefix}:{{config}}:version"),
            channel: format!("{prefix}:config"),
            stream_secret: format!("{prefix}:{{config}}:stream-secret"),
        }
    }
}

/// A version as the scripts return it (a decimal string, `""` when the key is missing).
fn parse_version(text: &str) -> Result<Option<u64>, StoreError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        StoreError::Unavailable(format!("the config version in Redis is not a number: {text:?}"))
    })
}

fn applied(code: i64, version: &str) -> Result<Change, ConfigStoreError> {
    match code {
        1 => Ok(Change::Applied { version: parse_version(version)?.unwrap_or(0) }),
        2 | 0 => Ok(Change::Unchanged),
        other => Err(ConfigStoreError::UnknownCode(other)),
    }
}

/// Pairs of a flat HGETALL answer; an entry that is blank (over the size limit) or not UTF-8 is
/// [`Entry::Unreadable`].
fn entries(flat: Vec<Vec<u8>>) -> Vec<Entry> {
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(field), Some(value)) = (it.next(), it.next()) {
        out.push(match (String::from_utf8(field), String::from_utf8(value)) {
            (Ok(field), Ok(value)) if !field.is_empty() => Entry::Read { field, value },
            _ => Entry::Unreadable,
        });
    }
    out
}

/// The rates part of a snapshot's answer: its state code (see `config_snapshot.lua`) and value.
fn rates_entry(state: i64, value: Vec<u8>) -> Option<RatesEntry> {
    match state {
        0 => None,
        1 => Some(String::from_utf8(value).map_or(RatesEntry::Unreadable, RatesEntry::Read)),
        _ => Some(RatesEntry::Unreadable),
    }
}

impl RedisStore {
    /// The STREAM server secret every instance on this Redis shares (hex under
    /// `<prefix>:{config}:stream-secret`): `candidate` if none is kept yet (SET NX, so of two
    /// instances starting at once one wins and both read its secret), else the one kept.
    pub async fn shared_stream_secret(&self, candidate: [u8; 32]) -> Result<[u8; 32], ConfigStoreError> {
        let mut set = redis::cmd("SET");
        set.arg(&self.config_keys.stream_secret).arg(hex::encode(candidate)).arg("NX");
        let _: Option<String> = self.cmd(&set).await?;
        let mut get = redis::cmd("GET");
        get.arg(&self.config_keys.stream_secret);
        let kept: Option<String> = self.cmd(&get).await?;
        let kept = kept.and_then(|text| hex::decode(text).ok()).and_then(|b| <[u8; 32]>::try_from(b).ok());
        kept.ok_or_else(|| {
            StoreError::Corrupt("the STREAM server secret in Redis is not 64 hexadecimal characters".into())
                .into()
        })
    }

    /// The current config version (`None`: Redis holds no config). Cheap: the poll's read.
    pub async fn config_version(&self) -> Result<Option<u64>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(&self.config_keys.version);
        let version: Option<String> = self.cmd(&cmd).await?;
        parse_version(version.as_deref().unwrap_or(""))
    }

    /// Every account and route, and the rates, with their version, read atomically; refused past
    /// the limits.
    pub async fn config_snapshot(&self) -> Result<ConfigSnapshot, ConfigStoreError> {
        let k = &self.config_keys;
        let mut invocation = self.config_scripts.snapshot.key(&k.accounts);
        invocation.key(&k.routes).key(&k.version).key(&k.rates);
        invocation.arg(ACCOUNTS_MAX).arg(ROUTES_MAX).arg(ENTRY_BYTES_MAX).arg(RATES_BYTES_MAX);
        type Answer = (i64, String, u64, u64, Vec<Vec<u8>>, Vec<Vec<u8>>, i64, Vec<u8>);
        let (code, version, n_accounts, n_routes, accounts, routes, rates_state, rates): Answer =
            self.script(&invocation).await?;
        if code == 0 {
            return Err(if n_accounts > ACCOUNTS_MAX as u64 {
                ConfigStoreError::TooMany { what: "accounts", count: n_accounts, max: ACCOUNTS_MAX }
            } else {
                ConfigStoreError::TooMany { what: "routes", count: n_routes, max: ROUTES_MAX }
            });
        }
        Ok(ConfigSnapshot {
            version: parse_version(&version)?,
            accounts: entries(accounts),
            routes: entries(routes),
            rates: rates_entry(rates_state, rates),
        })
    }

    /// Writes the config file's accounts, static routes and rates in one script, the file's
    /// entries replacing Redis's ([`Precedence::File`]) or only filling gaps
    /// ([`Precedence::Redis`]). The rates are one entry: the file's replace Redis's whole, or are
    /// written only where Redis holds none.
    pub async fn seed_config(
        &self,
        accounts: &[Account],
        routes: &[(String, crate::account::AccountId)],
        rates: Option<&RatesRecord>,
        precedence: Precedence,
    ) -> Result<Seeded, ConfigStoreError> {
        if accounts.len() > ACCOUNTS_MAX {
            let count = accounts.len() as u64;
            return Err(ConfigStoreError::TooMany { what: "accounts in the file", count, max: ACCOUNTS_MAX });
        }
        if routes.len() > ROUTES_MAX {
            let count = routes.len() as u64;
            return Err(ConfigStoreError::TooMany { what: "routes in the file", count, max: ROUTES_MAX });
        }
        // No `[rates]` in the file: Redis's rates, whatever they are, are not the file's to replace.
        let rates = match rates {
            Some(rates) => rates_json(rates, "rates in the file")?,
            None => String::new(),
        };
        let k = &self.config_keys;
        let mut invocation = self.config_scripts.seed.key(&k.accounts);
        invocation.key(&k.routes).key(&k.version).key(&k.rates);
        invocation.arg(if precedence == Precedence::File { "1" } else { "0" });
        invocation.arg(&k.channel).arg(accounts.len()).arg(rates);
        for account in accounts {
            invocation.arg(&*account.id).arg(record_json(&account.to_record()));
        }
        for (prefix, account) in routes {
            invocation.arg(prefix).arg(&**account);
        }
        let (accounts, routes, rates, version): (usize, usize, i64, String) =
            self.script(&invocation).await?;
        Ok(Seeded { accounts, routes, rates: rates == 1, version: parse_version(&version)?.unwrap_or(0) })
    }

    /// Creates or replaces an account (validated by the caller: an [`Account`] is valid by
    /// construction). Only the hash of its incoming token is written.
    pub async fn put_account(&self, account: &Account) -> Result<Change, ConfigStoreError> {
        let k = &self.config_keys;
        let mut invocation = self.config_scripts.put_account.key(&k.accounts);
        invocation.key(&k.version).arg(&*account.id).arg(record_json(&account.to_record()));
        invocation.arg(&k.channel).arg(ACCOUNTS_MAX);
        let (code, version): (i64, String) = self.script(&invocation).await?;
        if code == 0 {
            return Err(ConfigStoreError::TooMany {
                what: "accounts",
                count: ACCOUNTS_MAX as u64,
                max: ACCOUNTS_MAX,
            });
        }
        applied(code, &version)
    }

    /// Removes an account and the static routes to it. Its balance and journal stay in Redis, and
    /// packets already in flight finish with the account they started with.
    pub async fn delete_account(&self, id: &str) -> Result<Change, ConfigStoreError> {
        let k = &self.config_keys;
        let mut invocation = self.config_scripts.delete_account.key(&k.accounts);
        invocation.key(&k.routes).key(&k.version).arg(id).arg(&k.channel);
        let (code, version, _routes): (i64, String, u64) = self.script(&invocation).await?;
        applied(code, &version)
    }

    /// Creates or re-points a static route; the account must exist in Redis.
    pub async fn put_route(&self, prefix: &IlpAddress, account: &str) -> Result<Change, ConfigStoreError> {
        let k = &self.config_keys;
        let mut invocation = self.config_scripts.put_route.key(&k.accounts);
        invocation.key(&k.routes).key(&k.version).arg(prefix.as_str()).arg(account);
        invocation.arg(&k.channel).arg(ROUTES_MAX);
        let (code, version): (i64, String) = self.script(&invocation).await?;
        match code {
            0 => Err(ConfigStoreError::UnknownAccount(account.to_string())),
            3 => Err(ConfigStoreError::TooMany { what: "routes", count: ROUTES_MAX as u64, max: ROUTES_MAX }),
            _ => applied(code, &version),
        }
    }

    pub async fn delete_route(&self, prefix: &str) -> Result<Change, ConfigStoreError> {
        let k = &self.config_keys;
        let mut invocation = self.config_scripts.delete_route.key(&k.routes);
        invocation.key(&k.version).arg(prefix).arg(&k.channel);
        let (code, version): (i64, String) = self.script(&invocation).await?;
        applied(code, &version)
    }

    /// Replaces the rates (checked by the caller with `config::rates_from_record`, against the
    /// accounts served). `Unchanged` when Redis already holds exactly this record.
    pub async fn put_rates(&self, rates: &RatesRecord) -> Result<Change, ConfigStoreError> {
        let rates = rates_json(rates, "rates")?;
        let k = &self.config_keys;
        let mut invocation = self.config_scripts.put_rates.key(&k.rates);
        invocation.key(&k.version).arg(rates).arg(&k.channel);
        let (code, version): (i64, String) = self.script(&invocation).await?;
        applied(code, &version)
    }

    /// Subscribes to the change channel on one of the configured servers (`attempt` picks which,
    /// round robin, so a reconnect tries the next seed node of a cluster). The stream yields once
    /// per change message and ends when the connection is lost.
    pub async fn config_changes(&self, attempt: usize) -> Result<impl Stream<Item = ()>, StoreError> {
        let url = self
            .urls
            .get(attempt % self.urls.len().max(1))
            .ok_or_else(|| StoreError::Unavailable("no Redis URL to subscribe on".into()))?;
        let client = redis::Client::open(url.as_str()).map_err(store_error)?;
        let subscribe = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&self.config_keys.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::time::timeout(self.connect_timeout, subscribe)
            .await
            .map_err(|_| StoreError::Unavailable(format!("subscribing on {} timed out", redacted(url))))?
            .map_err(store_error)?;
        Ok(pubsub.into_on_message().map(|_| ()))
    }
}

/// A URL fit for logs and errors: without any password it may carry.
fn redacted(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_and_auth, host)) => {
            let scheme = scheme_and_auth.split("://").next().unwrap_or("redis");
            format!("{scheme}://***@{host}")
        }
        None => url.to_string(),
    }
}

/// An account record as stored. Serializing plain strings and numbers cannot fail.
fn record_json(record: &AccountRecord) -> String {
    serde_json::to_string(record).expect("an AccountRecord serializes")
}

/// Rates as stored, refused when no instance would read them back. The prices are a `BTreeMap`,
/// so equal rates always give the same text and a rewrite of the same rates changes nothing.
fn rates_json(rates: &RatesRecord, what: &'static str) -> Result<String, ConfigStoreError> {
    let json = serde_json::to_string(rates).expect("a RatesRecord serializes");
    match json.len() > RATES_BYTES_MAX {
        true => Err(ConfigStoreError::TooLarge { what, bytes: json.len(), max: RATES_BYTES_MAX }),
        false => Ok(json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let k = ConfigKeys::new("p");
        for key in [&k.accounts, &k.routes, &k.rates, &k.version] {
            assert!(key.starts_with("p:{config}:"), "{key}");
        }
        assert_eq!(k.channel, "p:config");
    }

    #[test]
    fn versions_parse_and_a_missing_key_is_none() {
        assert_eq!(parse_version(""), Ok(None));
        assert_eq!(parse_version("42"), Ok(Some(42)));
        assert!(parse_version("x").is_err());
    }

    #[test]
    fn blank_or_non_utf8_entries_are_unreadable() {
        let flat =
            vec![b"a".to_vec(), b"{}".to_vec(), Vec::new(), Vec::new(), b"b".to_vec(), vec![0xff, 0xfe]];
        assert_eq!(
            entries(flat),
            [Entry::Read { field: "a".into(), value: "{}".into() }, Entry::Unreadable, Entry::Unreadable]
        );
    }

    #[test]
    fn rates_are_read_unless_absent_oversized_or_not_utf8() {
        assert_eq!(rates_entry(0, Vec::new()), None);
        assert_eq!(rates_entry(1, b"{}".to_vec()), Some(RatesEntry::Read("{}".into())));
        assert_eq!(rates_entry(1, vec![0xff]), Some(RatesEntry::Unreadable));
        assert_eq!(rates_entry(2, Vec::new()), Some(RatesEntry::Unreadable));
    }

    #[test]
    fn rates_too_large_to_read_back_are_not_written() {
        let mut rates = RatesRecord::default();
        assert_eq!(rates_json(&rates, "rates").unwrap(), r#"{"prices":{}}"#);
        for i in 0..RATES_BYTES_MAX / 10 {
            rates.prices.insert(format!("A{i}"), "1".into());
        }
        assert!(matches!(rates_json(&rates, "rates"), Err(ConfigStoreError::TooLarge { .. })));
    }

    #[test]
    fn redacted_urls_hide_passwords() {
        assert_eq!(redacted("redis://:hunter2@h:1/"), "redis://***@h:1/");
        assert_eq!(redacted("redis://h:1/"), "redis://h:1/");
    }
}
