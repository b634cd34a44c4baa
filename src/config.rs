//! The TOML configuration: parsed strictly (unknown keys are errors), then validated as a whole so
//! that every problem is reported at once with its key path, before anything binds a port.
//! All defaults live in [`defaults`].

use crate::account::{
    hash_token, Account, AccountId, AccountRecord, Outgoing, OutgoingError, Relation, Secret, TokenHash,
};
use crate::forward::ExpiryRules;
use crate::http::client::ClientLimits;
use crate::http::listener::ApiLimits;
use crate::http::server::ServerLimits;
use crate::owed::OwedRules;
use crate::packet::IlpAddress;
use crate::rates::{Decimal, Rates, RatesRecord};
use crate::routing::RoutingTable;
use crate::settlement::engine::EngineLimits;
use crate::settlement::outgoing::SettleRules;
use crate::store::{ConfigSyncRules, Precedence, RedisConfig};
use crate::sweeper::SweepRules;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Every default, in one place, units last.
pub mod defaults {
    pub const LISTEN: &str = "127.0.0.1:7770";
    pub const LOG_LEVEL: &str = "info";
    /// Upper bound on `node.worker_threads`; the default is one per available core.
    pub const WORKER_THREADS_MAX: usize = 256;
    pub const BODY_BYTES_MAX: usize = 64 * 1024;
    pub const CONNECTIONS_MAX: usize = 1024;
    pub const REQUESTS_IN_FLIGHT_MAX: usize = 4096;
    pub const HEADER_READ_TIMEOUT_MS: u64 = 30_000;
    pub const BODY_READ_TIMEOUT_MS: u64 = 10_000;
    pub const SHUTDOWN_GRACE_MS: u64 = 5_000;
    pub const OUTGOING_CONNECTIONS_PER_PEER_MAX: usize = 256;
    pub const OUTGOING_IDLE_TIMEOUT_MS: u64 = 20_000;
    pub const OUTGOING_CONNECT_TIMEOUT_MS: u64 = 5_000;
    pub const EXPIRY_MARGIN_MS: u64 = 1_000;
    pub const HOLD_TIME_MS_MAX: u64 = 30_000;
    pub const MIN_OUTGOING_WINDOW_MS: u64 = 500;
    pub const SPREAD: &str = "0";
    pub const REDIS_PREFIX: &str = "thitsax";
    pub const SWEEP_INTERVAL_MS: u64 = 1_000;
    pub const SWEEP_GRACE_MS: u64 = 2_000;
    pub const SWEEP_BATCH_MAX: usize = 1_000;
    /// A day: a commit retried after an outage, or from a node that stalled, arrives well within.
    pub const SWEEP_TOMBSTONE_RETENTION_S: u64 = 86_400;
    /// A week of per-packet history in Redis; older entries are folded into a checkpoint.
    pub const JOURNAL_RETENTION_S: u64 = 7 * 86_400;
    /// A fulfilled packet's credit marker in Redis lives `store.sweep_tombstone_retention_s`
    /// (the age past which owed writes are no longer replayed) plus this: the background retries
    /// of a relayed Fulfill's writes (ten minutes) and clock differences fit well within.
    pub const CREDIT_MARKER_TTL_MARGIN_S: u64 = 3_600;
    /// The owed-writes file, relative to the working directory (each node needs its own: it is
    /// locked while the node runs).
    pub const OWED_WRITES_PATH: &str = "thitsax-owed-writes.log";
    /// Writes of relayed Fulfills owed to Redis at once (a write is one line of about 100 bytes).
    pub const OWED_WRITES_MAX: usize = 10_000;
    /// A floor, so that recent packets stay in the journal for reconciliation. (A credit's retry
    /// no longer reads the journal: it checks the packet's credit marker.)
    pub const JOURNAL_RETENTION_S_MIN: u64 = 3_600;
    pub const REDIS_RESPONSE_TIMEOUT_MS: u64 = 1_000;
    pub const REDIS_CONNECT_TIMEOUT_MS: u64 = 2_000;
    /// Every instance sees a change of accounts or routes in Redis within this, even if it missed
    /// the change's pub/sub message.
    pub const CONFIG_POLL_INTERVAL_MS: u64 = 1_000;
    /// Asset scales above this are refused: 10^18 already covers wei.
    pub const ASSET_SCALE_MAX: u8 = 18;
    /// Bounds on operator-set limits, so a typo cannot disable a limit.
    pub const BODY_BYTES_MAX_CEILING: usize = 16 * 1024 * 1024;
    pub const BODY_BYTES_MAX_FLOOR: usize = 1024;
    /// The shutdown drain counts in-flight packets with a u32 semaphore acquisition.
    pub const REQUESTS_IN_FLIGHT_CEILING: usize = 1_000_000;

    // [settlement]: RFC 0038 settlement engines.
    /// Loopback: the engines' callback API has no authentication (RFC 0038).
    pub const SETTLEMENT_LISTEN: &str = "127.0.0.1:7771";
    pub const SETTLEMENT_BODY_BYTES_MAX: usize = 64 * 1024;
    pub const SETTLEMENT_CONNECTIONS_MAX: usize = 64;
    pub const SETTLEMENT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
    pub const SETTLEMENT_BODY_READ_TIMEOUT_MS: u64 = 10_000;
    pub const SETTLEMENT_SHUTDOWN_GRACE_MS: u64 = 5_000;
    pub const SETTLEMENT_ENGINE_TIMEOUT_MS: u64 = 10_000;
    pub const SETTLEMENT_ENGINE_CONNECTIONS_MAX: usize = 32;
    pub const SETTLEMENT_ENGINE_RESPONSE_BYTES_MAX: usize = 64 * 1024;
    pub const SETTLEMENT_RETRY_FIRST_MS: u64 = 500;
    pub const SETTLEMENT_RETRY_MAX_MS: u64 = 60_000;
    pub const SETTLEMENT_SCAN_INTERVAL_MS: u64 = 10_000;
    pub const SETTLEMENT_CONCURRENT_MAX: usize = 64;
    pub const SETTLEMENT_REFUSAL_PAUSE_MS: u64 = 60_000;
    /// The admin API: loopback, and only bound when a token is configured.
    pub const ADMIN_LISTEN: &str = "127.0.0.1:7760";
    pub const ADMIN_BODY_BYTES_MAX: usize = 64 * 1024;
    pub const ADMIN_CONNECTIONS_MAX: usize = 16;
    pub const ADMIN_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
    pub const ADMIN_BODY_READ_TIMEOUT_MS: u64 = 10_000;
    pub const ADMIN_SHUTDOWN_GRACE_MS: u64 = 5_000;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: RawNode,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    forwarding: RawForwarding,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    rates: Option<RatesRecord>,
    #[serde(default)]
    accounts: Vec<RawAccount>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    settlement: RawSettlement,
    #[serde(default)]
    admin: RawAdmin,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    ilp_address: String,
    log_level: Option<String>,
    worker_threads: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    body_bytes_max: Option<usize>,
    connections_max: Option<usize>,
    requests_in_flight_max: Option<usize>,
    header_read_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    outgoing_connections_per_peer_max: Option<usize>,
    outgoing_idle_timeout_ms: Option<u64>,
    outgoing_connect_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawForwarding {
    expiry_margin_ms: Option<u64>,
    hold_time_ms_max: Option<u64>,
    min_outgoing_window_ms: Option<u64>,
}

/// Which store keeps balances.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum StoreKind {
    #[default]
    Memory,
    Redis,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default)]
    kind: StoreKind,
    url: Option<String>,
    cluster_urls: Option<Vec<String>>,
    prefix: Option<String>,
    response_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    sweep_interval_ms: Option<u64>,
    sweep_grace_ms: Option<u64>,
    sweep_batch_max: Option<usize>,
    sweep_tombstone_retention_s: Option<u64>,
    journal_retention_s: Option<u64>,
    owed_writes_path: Option<std::path::PathBuf>,
    owed_writes_max: Option<usize>,
    config_precedence: Option<Precedence>,
    config_poll_interval_ms: Option<u64>,
    config_pubsub: Option<bool>,
}

/// The validated store choice.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// Balances in this process (lost on restart).
    Memory,
    /// Balances in Redis, shared by every instance using the same Redis and prefix.
    Redis(RedisConfig),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    id: String,
    relation: Relation,
    asset_code: String,
    asset_scale: u8,
    ilp_address: Option<String>,
    incoming_token: Option<String>,
    incoming_token_sha256: Option<String>,
    outgoing_url: Option<String>,
    outgoing_token: Option<String>,
    max_packet_amount: Option<u64>,
    min_balance: Option<i64>,
    settle_threshold: Option<i64>,
    settle_to: Option<i64>,
    settlement_engine_url: Option<String>,
}

/// `[settlement]`: the engines' callback listener and the client that calls engines.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSettlement {
    listen: Option<String>,
    body_bytes_max: Option<usize>,
    connections_max: Option<usize>,
    header_read_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    engine_timeout_ms: Option<u64>,
    engine_connections_max: Option<usize>,
    engine_response_bytes_max: Option<usize>,
    retry_first_ms: Option<u64>,
    retry_max_ms: Option<u64>,
    scan_interval_ms: Option<u64>,
    concurrent_max: Option<usize>,
    refusal_pause_ms: Option<u64>,
}

/// The validated `[settlement]` section.
#[derive(Debug, Clone)]
pub struct SettlementConfig {
    /// Where the engines' callback API listens (loopback by default: it has no authentication).
    pub listen: SocketAddr,
    /// `listen` was set explicitly: bind it even when no account settles through an engine at
    /// start-up (engine accounts may be added later, through the admin API or Redis). Otherwise
    /// the listener is bound only when one does.
    pub listen_always: bool,
    pub api: ApiLimits,
    pub engine: EngineLimits,
    /// How the outgoing settlement worker retries and scans.
    pub rules: SettleRules,
}

/// `[admin]`: the operator's API.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    token: Option<String>,
    token_sha256: Option<String>,
    body_bytes_max: Option<usize>,
    connections_max: Option<usize>,
    header_read_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
}

/// The limits every API listener has (`[settlement]`, `[admin]`), as written.
struct RawApiLimits {
    body_bytes_max: Option<usize>,
    connections_max: Option<usize>,
    header_read_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
}

/// The validated `[admin]` section.
#[derive(Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// SHA-256 of the bearer token; `None`: no token configured, so no admin listener at all.
    pub token_hash: Option<TokenHash>,
    pub limits: ApiLimits,
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token_hash", &self.token_hash.map(|_| "<set>"))
            .field("limits", &self.limits)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    prefix: String,
    account: String,
}

/// A validated configuration: everything the node needs, typed.
#[derive(Debug)]
pub struct Config {
    pub node_address: IlpAddress,
    pub log_level: String,
    /// Runtime threads running packets; `None` means one per available core.
    pub worker_threads: Option<usize>,
    pub listen: SocketAddr,
    pub server: ServerLimits,
    pub client: ClientLimits,
    pub expiry: ExpiryRules,
    pub store: StoreConfig,
    /// How accounts and routes are shared through Redis; `None` with the memory store.
    pub config_sync: Option<ConfigSyncRules>,
    pub sweep: SweepRules,
    /// Where a relayed Fulfill's unapplied writes are kept durable; `None` with the memory store
    /// (its writes cannot fail that way, and its balances do not outlive the process anyway).
    pub owed_writes: Option<OwedRules>,
    pub rates: Rates,
    pub accounts: Vec<Account>,
    /// The whole table: the static routes plus the routes the accounts imply (children, peers'
    /// and parents' own prefixes, the parent as default).
    pub routes: RoutingTable,
    /// The `[[routes]]` entries alone (prefix, account), as written to a shared store.
    pub static_routes: Vec<(String, AccountId)>,
    pub settlement: SettlementConfig,
    pub admin: AdminConfig,
    /// The file has a `[rates]` section (without one, Redis's shared rates are never replaced).
    pub rates_in_file: bool,
}

/// One problem in the file, at a key path such as `accounts[2].outgoing_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// All problems found; reading stops only where parsing could not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<Problem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", p.path, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(vec![Problem { path: path.display().to_string(), message: e.to_string() }])
        })?;
        Self::from_toml(&text)
    }

    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().to_string();
            let at = inner
                .span()
                .map(|s| line_of(text, s.start))
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            ConfigError(vec![Problem {
                path: if path == "." { "(top level)".into() } else { path },
                message: message + &at,
            }])
        })?;
        Validator::default().validate(raw)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { path: path.into(), message: message.into() });
    }

    /// Runs `parse` and records its error at `path`.
    fn check<T, E: fmt::Display>(&mut self, path: &str, parsed: Result<T, E>) -> Option<T> {
        parsed.map_err(|e| self.problem(path, e.to_string())).ok()
    }

    fn validate(mut self, raw: RawConfig) -> Result<Config, ConfigError> {
        let node_address = self.check("node.ilp_address", IlpAddress::parse(&raw.node.ilp_address));
        let log_level = raw.node.log_level.unwrap_or_else(|| defaults::LOG_LEVEL.into());
        self.check("node.log_level", tracing_subscriber::EnvFilter::try_new(&log_level));
        if raw.node.worker_threads.is_some_and(|n| n == 0 || n > defaults::WORKER_THREADS_MAX) {
            self.problem(
                "node.worker_threads",
                format!("must be between 1 and {}", defaults::WORKER_THREADS_MAX),
            );
        }

        let sweep = self.sweep(&raw.store);
        let config_sync = self.config_sync(&raw.store);
        let owed_writes = self.owed_writes(&raw.store);
        let store = self.store(raw.store, &sweep);
        let client = self.client(&raw.http);
        let (listen, server) = self.http(raw.http);
        let expiry = self.forwarding(raw.forwarding);
        let rates_in_file = raw.rates.is_some();
        let rates = self.rates(raw.rates.unwrap_or_default());
        // With a bad node address, accounts are still checked (against a stand-in) so that every
        // problem is reported in one go; the config is refused either way.
        let stand_in = IlpAddress::parse("private.unset").expect("valid address");
        let accounts = self.accounts(node_address.as_ref().unwrap_or(&stand_in), raw.accounts, &|i, _| {
            format!("accounts[{i}]")
        });
        self.rate_coverage(&accounts, rates.as_ref().map(|r| &r.1));
        let (routes, static_routes) = self.routes(&accounts, raw.routes, &|i, _| format!("routes[{i}]"));
        let settlement = self.settlement(raw.settlement);
        let admin = self.admin(raw.admin);

        match (self.problems.is_empty(), node_address, listen, expiry, rates, store) {
            (true, Some(node_address), Some(listen), Some(expiry), Some((rates, _)), Some(store)) => {
                Ok(Config {
                    node_address,
                    log_level,
                    worker_threads: raw.node.worker_threads,
                    listen,
                    server,
                    client,
                    expiry,
                    store,
                    config_sync,
                    sweep,
                    owed_writes,
                    rates,
                    accounts,
                    routes,
                    static_routes,
                    settlement,
                    admin,
                    rates_in_file,
                })
            }
            _ => Err(ConfigError(self.problems)),
        }
    }

    fn http(&mut self, raw: RawHttp) -> (Option<SocketAddr>, ServerLimits) {
        let listen = raw.listen.as_deref().unwrap_or(defaults::LISTEN);
        let listen = self.check("http.listen", listen.parse::<SocketAddr>());
        let body_bytes_max = raw.body_bytes_max.unwrap_or(defaults::BODY_BYTES_MAX);
        if !(defaults::BODY_BYTES_MAX_FLOOR..=defaults::BODY_BYTES_MAX_CEILING).contains(&body_bytes_max) {
            self.problem(
                "http.body_bytes_max",
                format!(
                    "must be between {} and {}",
                    defaults::BODY_BYTES_MAX_FLOOR,
                    defaults::BODY_BYTES_MAX_CEILING
                ),
            );
        }
        let connections_max =
            self.positive("http.connections_max", raw.connections_max, defaults::CONNECTIONS_MAX);
        let requests_in_flight_max = self.positive(
            "http.requests_in_flight_max",
            raw.requests_in_flight_max,
            defaults::REQUESTS_IN_FLIGHT_MAX,
        );
        if requests_in_flight_max > defaults::REQUESTS_IN_FLIGHT_CEILING {
            let limit = defaults::REQUESTS_IN_FLIGHT_CEILING;
            self.problem("http.requests_in_flight_max", format!("must be at most {limit}"));
        }
        let header_read_timeout = self.positive_ms(
            "http.header_read_timeout_ms",
            raw.header_read_timeout_ms,
            defaults::HEADER_READ_TIMEOUT_MS,
        );
        let body_read_timeout = self.positive_ms(
            "http.body_read_timeout_ms",
            raw.body_read_timeout_ms,
            defaults::BODY_READ_TIMEOUT_MS,
        );
        let limits = ServerLimits {
            body_bytes_max,
            connections_max,
            requests_in_flight_max,
            header_read_timeout,
            body_read_timeout,
            shutdown_grace: Duration::from_millis(
                raw.shutdown_grace_ms.unwrap_or(defaults::SHUTDOWN_GRACE_MS),
            ),
        };
        (listen, limits)
    }

    /// `[settlement]`. A bad listen address is reported (so the file is refused) and the default
    /// stands in, keeping this section out of `validate`'s final match.
    fn settlement(&mut self, raw: RawSettlement) -> SettlementConfig {
        let listen_always = raw.listen.is_some();
        let listen = raw.listen.as_deref().unwrap_or(defaults::SETTLEMENT_LISTEN);
        let listen = self.check("settlement.listen", listen.parse::<SocketAddr>());
        let listen = listen.unwrap_or_else(|| defaults::SETTLEMENT_LISTEN.parse().expect("valid default"));
        let response_bytes_max =
            raw.engine_response_bytes_max.unwrap_or(defaults::SETTLEMENT_ENGINE_RESPONSE_BYTES_MAX);
        self.bytes_in_bounds("settlement.engine_response_bytes_max", response_bytes_max);
        let given = RawApiLimits {
            body_bytes_max: raw.body_bytes_max,
            connections_max: raw.connections_max,
            header_read_timeout_ms: raw.header_read_timeout_ms,
            body_read_timeout_ms: raw.body_read_timeout_ms,
            shutdown_grace_ms: raw.shutdown_grace_ms,
        };
        let defaults = ApiLimits {
            body_bytes_max: defaults::SETTLEMENT_BODY_BYTES_MAX,
            connections_max: defaults::SETTLEMENT_CONNECTIONS_MAX,
            header_read_timeout: Duration::from_millis(defaults::SETTLEMENT_HEADER_READ_TIMEOUT_MS),
            body_read_timeout: Duration::from_millis(defaults::SETTLEMENT_BODY_READ_TIMEOUT_MS),
            shutdown_grace: Duration::from_millis(defaults::SETTLEMENT_SHUTDOWN_GRACE_MS),
        };
        let api = self.api_limits("settlement", given, defaults);
        let engine = EngineLimits {
            timeout: self.positive_ms(
                "settlement.engine_timeout_ms",
                raw.engine_timeout_ms,
                defaults::SETTLEMENT_ENGINE_TIMEOUT_MS,
            ),
            connections_max: self.positive(
                "settlement.engine_connections_max",
                raw.engine_connections_max,
                defaults::SETTLEMENT_ENGINE_CONNECTIONS_MAX,
            ),
            response_bytes_max,
        };
        let rules = SettleRules {
            retry_first: self.positive_ms(
                "settlement.retry_first_ms",
                raw.retry_first_ms,
                defaults::SETTLEMENT_RETRY_FIRST_MS,
            ),
            retry_max: self.positive_ms(
                "settlement.retry_max_ms",
                raw.retry_max_ms,
                defaults::SETTLEMENT_RETRY_MAX_MS,
            ),
            scan_interval: self.positive_ms(
                "settlement.scan_interval_ms",
                raw.scan_interval_ms,
                defaults::SETTLEMENT_SCAN_INTERVAL_MS,
            ),
            concurrent_max: self.positive(
                "settlement.concurrent_max",
                raw.concurrent_max,
                defaults::SETTLEMENT_CONCURRENT_MAX,
            ),
            refusal_pause: self.positive_ms(
                "settlement.refusal_pause_ms",
                raw.refusal_pause_ms,
                defaults::SETTLEMENT_REFUSAL_PAUSE_MS,
            ),
        };
        if rules.retry_max > Duration::from_secs(3600) {
            // RFC 0038: the longest wait between two attempts is one hour.
            self.problem("settlement.retry_max_ms", "must be at most 3600000 (one hour, RFC 0038)");
        }
        SettlementConfig { listen, listen_always, api, engine, rules }
    }

    fn admin(&mut self, raw: RawAdmin) -> AdminConfig {
        let listen = raw.listen.as_deref().unwrap_or(defaults::ADMIN_LISTEN);
        let listen = self.check("admin.listen", listen.parse::<SocketAddr>());
        let listen = listen.unwrap_or_else(|| defaults::ADMIN_LISTEN.parse().expect("valid default"));
        let token_hash = self.token_or_hash(
            (raw.token.as_deref(), raw.token_sha256.as_deref()),
            ("admin.token", "admin.token_sha256"),
        );
        let given = RawApiLimits {
            body_bytes_max: raw.body_bytes_max,
            connections_max: raw.connections_max,
            header_read_timeout_ms: raw.header_read_timeout_ms,
            body_read_timeout_ms: raw.body_read_timeout_ms,
            shutdown_grace_ms: raw.shutdown_grace_ms,
        };
        let defaults = ApiLimits {
            body_bytes_max: defaults::ADMIN_BODY_BYTES_MAX,
            connections_max: defaults::ADMIN_CONNECTIONS_MAX,
            header_read_timeout: Duration::from_millis(defaults::ADMIN_HEADER_READ_TIMEOUT_MS),
            body_read_timeout: Duration::from_millis(defaults::ADMIN_BODY_READ_TIMEOUT_MS),
            shutdown_grace: Duration::from_millis(defaults::ADMIN_SHUTDOWN_GRACE_MS),
        };
        let limits = self.api_limits("admin", given, defaults);
        AdminConfig { listen, token_hash, limits }
    }

    /// An API listener's limits, each key checked under `section`; what is not given is taken
    /// from `defaults`.
    fn api_limits(&mut self, section: &str, given: RawApiLimits, defaults: ApiLimits) -> ApiLimits {
        let at = |key: &str| format!("{section}.{key}");
        let ms = |d: Duration| d.as_millis() as u64;
        let body_bytes_max = given.body_bytes_max.unwrap_or(defaults.body_bytes_max);
        self.bytes_in_bounds(&at("body_bytes_max"), body_bytes_max);
        ApiLimits {
            body_bytes_max,
            connections_max: self.connections_max(
                &at("connections_max"),
                given.connections_max,
                defaults.connections_max,
            ),
            header_read_timeout: self.positive_ms(
                &at("header_read_timeout_ms"),
                given.header_read_timeout_ms,
                ms(defaults.header_read_timeout),
            ),
            body_read_timeout: self.positive_ms(
                &at("body_read_timeout_ms"),
                given.body_read_timeout_ms,
                ms(defaults.body_read_timeout),
            ),
            shutdown_grace: given
                .shutdown_grace_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.shutdown_grace),
        }
    }

    /// A listener's connection limit: above zero, at most the in-flight ceiling.
    fn connections_max(&mut self, path: &str, value: Option<usize>, default: usize) -> usize {
        let connections_max = self.positive(path, value, default);
        if connections_max > defaults::REQUESTS_IN_FLIGHT_CEILING {
            let limit = defaults::REQUESTS_IN_FLIGHT_CEILING;
            self.problem(path, format!("must be at most {limit}"));
        }
        connections_max
    }

    fn bytes_in_bounds(&mut self, path: &str, value: usize) {
        let (floor, ceiling) = (defaults::BODY_BYTES_MAX_FLOOR, defaults::BODY_BYTES_MAX_CEILING);
        if !(floor..=ceiling).contains(&value) {
            self.problem(path, format!("must be between {floor} and {ceiling}"));
        }
    }

    fn sweep(&mut self, raw: &RawStore) -> SweepRules {
        SweepRules {
            interval: self.positive_ms(
                "store.sweep_interval_ms",
                raw.sweep_interval_ms,
                defaults::SWEEP_INTERVAL_MS,
            ),
            grace: Duration::from_millis(raw.sweep_grace_ms.unwrap_or(defaults::SWEEP_GRACE_MS)),
            batch_max: self.positive("store.sweep_batch_max", raw.sweep_batch_max, defaults::SWEEP_BATCH_MAX),
            tombstone_retention: Duration::from_secs(self.positive(
                "store.sweep_tombstone_retention_s",
                raw.sweep_tombstone_retention_s,
                defaults::SWEEP_TOMBSTONE_RETENTION_S,
            )),
            journal_retention: Duration::from_secs(self.journal_retention(raw.journal_retention_s)),
        }
    }

    fn journal_retention(&mut self, value: Option<u64>) -> u64 {
        let value = value.unwrap_or(defaults::JOURNAL_RETENTION_S);
        if value < defaults::JOURNAL_RETENTION_S_MIN {
            self.problem(
                "store.journal_retention_s",
                format!(
                    "must be at least {} (recent packets stay in the journal for reconciliation)",
                    defaults::JOURNAL_RETENTION_S_MIN
                ),
            );
        }
        value
    }

    /// The owed-writes file: only with Redis (`store()` reports its keys with the memory store).
    fn owed_writes(&mut self, raw: &RawStore) -> Option<OwedRules> {
        if raw.kind == StoreKind::Memory {
            return None;
        }
        let path = raw.owed_writes_path.clone().unwrap_or_else(|| defaults::OWED_WRITES_PATH.into());
        if path.as_os_str().is_empty() {
            self.problem("store.owed_writes_path", "must name a file");
        }
        let entries_max =
            self.positive("store.owed_writes_max", raw.owed_writes_max, defaults::OWED_WRITES_MAX);
        Some(OwedRules { path, entries_max })
    }

    /// The shared accounts and routes: only with Redis (the memory store has nothing to share).
    fn config_sync(&mut self, raw: &RawStore) -> Option<ConfigSyncRules> {
        if raw.kind == StoreKind::Memory {
            // `store()` reports these keys, with the other Redis-only ones.
            return None;
        }
        let poll_interval = self.positive_ms(
            "store.config_poll_interval_ms",
            raw.config_poll_interval_ms,
            defaults::CONFIG_POLL_INTERVAL_MS,
        );
        Some(ConfigSyncRules {
            precedence: raw.config_precedence.unwrap_or_default(),
            poll_interval,
            pubsub: raw.config_pubsub.unwrap_or(true),
        })
    }

    fn store(&mut self, raw: RawStore, sweep: &SweepRules) -> Option<StoreConfig> {
        let redis_only = [
            ("store.url", raw.url.is_some()),
            ("store.cluster_urls", raw.cluster_urls.is_some()),
            ("store.prefix", raw.prefix.is_some()),
            ("store.response_timeout_ms", raw.response_timeout_ms.is_some()),
            ("store.connect_timeout_ms", raw.connect_timeout_ms.is_some()),
            ("store.config_precedence", raw.config_precedence.is_some()),
            ("store.config_poll_interval_ms", raw.config_poll_interval_ms.is_some()),
            ("store.config_pubsub", raw.config_pubsub.is_some()),
            ("store.owed_writes_path", raw.owed_writes_path.is_some()),
            ("store.owed_writes_max", raw.owed_writes_max.is_some()),
        ];
        if raw.kind == StoreKind::Memory {
            for (path, given) in redis_only {
                if given {
                    let why = if path.starts_with("store.config_") {
                        "only used with store.kind = \"redis\" (accounts and routes are shared \
                         through Redis; with the memory store the file is the only source)"
                    } else {
                        "only used with store.kind = \"redis\""
                    };
                    self.problem(path, why);
                }
            }
            return Some(StoreConfig::Memory);
        }
        let (urls, cluster) = match (raw.url, raw.cluster_urls) {
            (Some(url), None) => (vec![url], false),
            (None, Some(urls)) if !urls.is_empty() => (urls, true),
            (None, Some(_)) => {
                self.problem("store.cluster_urls", "needs at least one seed node URL");
                return None;
            }
            _ => {
                self.problem(
                    "store.url",
                    "give store.url (one server) or store.cluster_urls (a Redis Cluster), not both",
                );
                return None;
            }
        };
        for (i, url) in urls.iter().enumerate() {
            let path = if cluster { format!("store.cluster_urls[{i}]") } else { "store.url".into() };
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                self.problem(path, "must be a redis:// URL");
            } else if redis::Client::open(url.as_str()).is_err() {
                self.problem(path, "is not a valid Redis URL");
            }
        }
        let prefix = raw.prefix.unwrap_or_else(|| defaults::REDIS_PREFIX.into());
        if !is_segment(&prefix) {
            self.problem("store.prefix", "must be letters, digits, _ ~ - only (it is part of every key)");
        }
        Some(StoreConfig::Redis(RedisConfig {
            urls,
            cluster,
            prefix,
            response_timeout: self.positive_ms(
                "store.response_timeout_ms",
                raw.response_timeout_ms,
                defaults::REDIS_RESPONSE_TIMEOUT_MS,
            ),
            connect_timeout: self.positive_ms(
                "store.connect_timeout_ms",
                raw.connect_timeout_ms,
                defaults::REDIS_CONNECT_TIMEOUT_MS,
            ),
            credit_marker_ttl_s: sweep
                .tombstone_retention
                .as_secs()
                .saturating_add(defaults::CREDIT_MARKER_TTL_MARGIN_S),
        }))
    }

    fn client(&mut self, raw: &RawHttp) -> ClientLimits {
        ClientLimits {
            connections_per_peer_max: self.positive(
                "http.outgoing_connections_per_peer_max",
                raw.outgoing_connections_per_peer_max,
                defaults::OUTGOING_CONNECTIONS_PER_PEER_MAX,
            ),
            idle_timeout: self.positive_ms(
                "http.outgoing_idle_timeout_ms",
                raw.outgoing_idle_timeout_ms,
                defaults::OUTGOING_IDLE_TIMEOUT_MS,
            ),
            connect_timeout: self.positive_ms(
                "http.outgoing_connect_timeout_ms",
                raw.outgoing_connect_timeout_ms,
                defaults::OUTGOING_CONNECT_TIMEOUT_MS,
            ),
        }
    }

    fn positive_ms(&mut self, path: &str, value: Option<u64>, default: u64) -> Duration {
        Duration::from_millis(self.positive(path, value, default))
    }

    fn positive<T: PartialOrd + Default + Copy>(&mut self, path: &str, value: Option<T>, default: T) -> T {
        let value = value.unwrap_or(default);
        if value <= T::default() {
            self.problem(path, "must be greater than 0");
        }
        value
    }

    fn forwarding(&mut self, raw: RawForwarding) -> Option<ExpiryRules> {
        let margin = raw.expiry_margin_ms.unwrap_or(defaults::EXPIRY_MARGIN_MS);
        let hold =
            self.positive("forwarding.hold_time_ms_max", raw.hold_time_ms_max, defaults::HOLD_TIME_MS_MAX);
        let window = raw.min_outgoing_window_ms.unwrap_or(defaults::MIN_OUTGOING_WINDOW_MS);
        if window > hold {
            self.problem("forwarding.min_outgoing_window_ms", "must not exceed forwarding.hold_time_ms_max");
            return None;
        }
        Some(ExpiryRules {
            margin: Duration::from_millis(margin),
            hold_time_max: Duration::from_millis(hold),
            outgoing_window_min: Duration::from_millis(window),
        })
    }

    /// Returns the rates and the set of priced asset codes.
    fn rates(&mut self, raw: RatesRecord) -> Option<(Rates, HashSet<String>)> {
        let spread = raw.spread.as_deref().unwrap_or(defaults::SPREAD);
        let spread = self.check("rates.spread", Decimal::parse(spread));
        if let Some(s) = spread {
            if !s.is_below_one() {
                self.problem("rates.spread", "must be below 1 (it is the fraction the node keeps)");
            }
        }
        let mut prices = HashMap::new();
        for (code, price) in &raw.prices {
            let path = format!("rates.prices.{code}");
            if let Some(p) = self.check(&path, Decimal::parse(price)) {
                if p.is_zero() {
                    self.problem(&path, "a price must be greater than 0");
                } else {
                    prices.insert(Arc::<str>::from(code.as_str()), p);
                }
            }
        }
        let spread = spread.filter(Decimal::is_below_one)?;
        let priced = prices.keys().map(|k| k.to_string()).collect();
        (prices.len() == raw.prices.len()).then(|| (Rates::new(prices, spread), priced))
    }

    /// Every account rule; an account with a problem is left out of the result (the file is then
    /// refused as a whole; a shared store's entry is skipped). `name` gives an entry's key path.
    fn accounts(&mut self, node: &IlpAddress, raw: Vec<RawAccount>, name: &Namer) -> Vec<Account> {
        let mut ids = HashSet::new();
        let mut tokens: HashMap<TokenHash, String> = HashMap::new();
        let mut parents = 0;
        let mut out = Vec::new();
        for (i, raw) in raw.into_iter().enumerate() {
            let base = name(i, &raw.id);
            let at = |field: &str| format!("{base}.{field}");
            let before = self.problems.len();
            if !is_segment(&raw.id) {
                self.problem(at("id"), "must be one ILP address segment: letters, digits, _ ~ - only");
            } else if !ids.insert(raw.id.clone()) {
                self.problem(at("id"), format!("duplicate account id {:?}", raw.id));
            }
            if raw.asset_code.is_empty() || raw.asset_code.len() > 16 || !raw.asset_code.is_ascii() {
                self.problem(at("asset_code"), "must be 1 to 16 ASCII characters");
            }
            if raw.asset_scale > defaults::ASSET_SCALE_MAX {
                self.problem(at("asset_scale"), format!("must be at most {}", defaults::ASSET_SCALE_MAX));
            }
            let ilp_address = self.account_address(node, &raw, &at("ilp_address"));
            if raw.relation == Relation::Parent {
                parents += 1;
                if parents > 1 {
                    self.problem(at("relation"), "only one parent account is supported");
                }
            }
            let token_hash = self.incoming_token(&raw, &at);
            if let Some(hash) = token_hash {
                if let Some(other) = tokens.insert(hash, raw.id.clone()) {
                    self.problem(at("incoming_token"), format!("same token as account {other:?}"));
                }
            }
            let outgoing = self.outgoing(&raw, &at);
            let settlement_engine_url = self.settlement_engine_url(&raw, &at);
            if let (Some(threshold), Some(to)) = (raw.settle_threshold, raw.settle_to) {
                if to > threshold {
                    self.problem(at("settle_to"), "must not exceed settle_threshold");
                }
            }
            if let Some(0) = raw.max_packet_amount {
                self.problem(at("max_packet_amount"), "must be greater than 0 (omit it for no limit)");
            }
            if self.problems.len() == before {
                out.push(Account {
                    id: raw.id.as_str().into(),
                    relation: raw.relation,
                    asset_code: raw.asset_code.as_str().into(),
                    asset_scale: raw.asset_scale,
                    ilp_address,
                    incoming_token_hash: token_hash,
                    outgoing,
                    max_packet_amount: raw.max_packet_amount.unwrap_or(u64::MAX),
                    min_balance: raw.min_balance.map(Into::into),
                    settle_threshold: raw.settle_threshold.map(Into::into),
                    settle_to: raw.settle_to.unwrap_or(0).into(),
                    settlement_engine_url,
                });
            }
        }
        out
    }

    /// Children get `<node>.<id>`; peers and parents may name their own prefix.
    fn account_address(&mut self, node: &IlpAddress, raw: &RawAccount, path: &str) -> Option<IlpAddress> {
        match (raw.relation, &raw.ilp_address) {
            (Relation::Child, Some(_)) => {
                self.problem(
                    path,
                    "children get their address from the node (<node address>.<id>); remove it",
                );
                None
            }
            (Relation::Child, None) => is_segment(&raw.id).then(|| node.with_suffix(&raw.id).ok()).flatten(),
            (_, Some(address)) => self.check(path, IlpAddress::parse(address)),
            (_, None) => None,
        }
    }

    fn incoming_token(&mut self, raw: &RawAccount, at: &dyn Fn(&str) -> String) -> Option<TokenHash> {
        self.token_or_hash(
            (raw.incoming_token.as_deref(), raw.incoming_token_sha256.as_deref()),
            (&at("incoming_token"), &at("incoming_token_sha256")),
        )
    }

    /// A bearer token given in clear (hashed here; the clear value is not kept) or as its
    /// SHA-256 in hex; `paths` name the two keys.
    fn token_or_hash(
        &mut self,
        given: (Option<&str>, Option<&str>),
        paths: (&str, &str),
    ) -> Option<TokenHash> {
        match given {
            (Some(_), Some(_)) => {
                self.problem(paths.1, format!("give {} or {}, not both", key_of(paths.0), key_of(paths.1)));
                None
            }
            (Some(""), None) => {
                self.problem(paths.0, "must not be empty");
                None
            }
            (Some(token), None) => Some(hash_token(token.as_bytes())),
            (None, Some(hex)) => {
                let parsed = hex::decode(hex).ok().and_then(|b| <TokenHash>::try_from(b).ok());
                if parsed.is_none() {
                    self.problem(paths.1, "must be 64 hexadecimal characters (a SHA-256)");
                }
                parsed
            }
            (None, None) => None,
        }
    }

    fn outgoing(&mut self, raw: &RawAccount, at: &dyn Fn(&str) -> String) -> Option<Outgoing> {
        let (url, token) = match (&raw.outgoing_url, &raw.outgoing_token) {
            (None, None) => return None,
            (Some(url), Some(token)) => (url, token),
            (Some(_), None) => {
                self.problem(at("outgoing_token"), "required with outgoing_url");
                return None;
            }
            (None, Some(_)) => {
                self.problem(at("outgoing_url"), "required with outgoing_token");
                return None;
            }
        };
        let uri = self.check(&at("outgoing_url"), url.parse::<hyper::Uri>())?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            let reason = if uri.scheme_str() == Some("https") {
                "https is not supported by this build: front the peer with a local TLS proxy"
            } else {
                "must be an absolute http:// URL"
            };
            self.problem(at("outgoing_url"), reason);
            return None;
        }
        // The token's value is never echoed into an error message.
        match Outgoing::new(uri, &Secret::new(token.clone())) {
            Ok(outgoing) => Some(outgoing),
            Err(e @ OutgoingError::Url) => self.check(&at("outgoing_url"), Err(e)),
            Err(e @ OutgoingError::Token) => self.check(&at("outgoing_token"), Err(e)),
        }
    }

    /// An absolute `http://` URL with no query; kept without a trailing `/` so paths append.
    fn settlement_engine_url(&mut self, raw: &RawAccount, at: &dyn Fn(&str) -> String) -> Option<Arc<str>> {
        let url = raw.settlement_engine_url.as_ref()?;
        let path = at("settlement_engine_url");
        let uri = self.check(&path, url.parse::<hyper::Uri>())?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() || uri.query().is_some() {
            self.problem(path, "must be an absolute http:// URL without a query");
            return None;
        }
        Some(url.trim_end_matches('/').into())
    }

    /// Packets between different asset codes need a price for both.
    fn rate_coverage(&mut self, accounts: &[Account], priced: Option<&HashSet<String>>) {
        let Some(priced) = priced else { return };
        let codes: HashSet<&str> = accounts.iter().map(|a| &*a.asset_code).collect();
        if codes.len() < 2 {
            return;
        }
        let mut missing: Vec<&str> = codes.into_iter().filter(|c| !priced.contains(*c)).collect();
        missing.sort();
        for code in missing {
            self.problem(
                format!("rates.prices.{code}"),
                "accounts use several assets, so every asset needs a price",
            );
        }
    }

    /// The whole table and the static routes alone; a route with a problem is left out.
    fn routes(
        &mut self,
        accounts: &[Account],
        raw: Vec<RawRoute>,
        name: &Namer,
    ) -> (RoutingTable, Vec<(String, AccountId)>) {
        let mut prefixes: HashMap<String, Arc<str>> = HashMap::new();
        let mut default = None;
        for account in accounts {
            match (account.relation, &account.ilp_address) {
                (Relation::Parent, _) => default = Some(account.id.clone()),
                (_, Some(address)) => {
                    prefixes.insert(address.to_string(), account.id.clone());
                }
                _ => {}
            }
        }
        let by_id: HashMap<&str, &AccountId> = accounts.iter().map(|a| (&*a.id, &a.id)).collect();
        let mut static_routes = Vec::new();
        for (i, route) in raw.into_iter().enumerate() {
            let base = name(i, &route.prefix);
            let at = |field: &str| format!("{base}.{field}");
            if self.check(&at("prefix"), IlpAddress::parse(&route.prefix)).is_none() {
                continue;
            }
            let Some(&account) = by_id.get(route.account.as_str()) else {
                self.problem(at("account"), format!("no account with id {:?}", route.account));
                continue;
            };
            if prefixes.contains_key(&route.prefix) {
                self.problem(at("prefix"), format!("prefix {:?} is already routed", route.prefix));
                continue;
            }
            prefixes.insert(route.prefix.clone(), account.clone());
            static_routes.push((route.prefix, account.clone()));
        }
        (RoutingTable::new(prefixes, default), static_routes)
    }
}

/// The last key of a path (`incoming_token` of `accounts[0].incoming_token`).
fn key_of(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// An entry's key path from its index and its id (an account's id, a route's prefix).
type Namer = dyn Fn(usize, &str) -> String;

/// Where a shared store's account `id` is reported: `redis accounts["id"]`.
fn redis_account_path(_: usize, id: &str) -> String {
    format!("redis accounts[{id:?}]")
}

impl From<AccountRecord> for RawAccount {
    fn from(r: AccountRecord) -> Self {
        RawAccount {
            id: r.id,
            relation: r.relation,
            asset_code: r.asset_code,
            asset_scale: r.asset_scale,
            ilp_address: r.ilp_address,
            incoming_token: None,
            incoming_token_sha256: r.incoming_token_sha256,
            outgoing_url: r.outgoing_url,
            outgoing_token: r.outgoing_token,
            max_packet_amount: r.max_packet_amount,
            min_balance: r.min_balance,
            settle_threshold: r.settle_threshold,
            settle_to: r.settle_to,
            settlement_engine_url: r.settlement_engine_url,
        }
    }
}

/// One account read from a shared store (or given to the admin API), checked with the rules of
/// an `[[accounts]]` entry that concern it alone. The rules across accounts (unique tokens, one
/// parent, prices) are [`accounts_from_records`]'s.
pub fn account_from_record(node: &IlpAddress, record: AccountRecord) -> Result<Account, ConfigError> {
    let mut validator = Validator::default();
    let mut accounts = validator.accounts(node, vec![record.into()], &redis_account_path);
    match (accounts.pop(), validator.problems.is_empty()) {
        (Some(account), true) => Ok(account),
        _ => Err(ConfigError(validator.problems)),
    }
}

/// A whole set of accounts from a shared store, checked with every rule of the config file. An
/// entry that breaks a rule is left out and reported; the others are kept (unlike the file, which
/// is refused as a whole, a shared store's set is served as far as it is valid).
pub fn accounts_from_records(
    node: &IlpAddress,
    rates: &Rates,
    records: Vec<AccountRecord>,
) -> (Vec<Account>, Vec<Problem>) {
    let mut validator = Validator::default();
    let raw = records.into_iter().map(RawAccount::from).collect();
    let mut accounts = validator.accounts(node, raw, &redis_account_path);
    // Packets between different assets need both prices: an account whose asset has none could
    // not be converted to or from, so it is left out (the file is refused instead).
    let codes: HashSet<&str> = accounts.iter().map(|a| &*a.asset_code).collect();
    if codes.len() > 1 {
        let unpriced: Vec<AccountId> =
            accounts.iter().filter(|a| !rates.has_price(&a.asset_code)).map(|a| a.id.clone()).collect();
        for id in &unpriced {
            let code = &accounts.iter().find(|a| a.id == *id).expect("listed above").asset_code;
            validator.problem(
                format!("{}.asset_code", redis_account_path(0, id)),
                format!("no price for {code} in rates.prices, and accounts use several assets"),
            );
        }
        accounts.retain(|a| !unpriced.contains(&a.id));
    }
    (accounts, validator.problems)
}

/// The routing table of `accounts` plus the static routes read from a shared store (prefix,
/// account id), checked with the rules of `[[routes]]`: a bad prefix, an unknown account or a
/// prefix already routed is left out and reported.
pub fn routing_table(
    accounts: &[Account],
    routes: impl IntoIterator<Item = (String, String)>,
) -> (RoutingTable, Vec<Problem>) {
    let mut validator = Validator::default();
    let raw = routes.into_iter().map(|(prefix, account)| RawRoute { prefix, account }).collect();
    let (table, _) = validator.routes(accounts, raw, &|_, prefix| format!("redis routes[{prefix:?}]"));
    (table, validator.problems)
}

/// An account as the admin API receives it: the fields of an `[[accounts]]` entry as JSON, the
/// incoming token in clear (`incoming_token`, hashed once checked; the clear value is dropped) or
/// as `incoming_token_sha256`.
pub struct AccountInput(RawAccount);

impl fmt::Debug for AccountInput {
    /// The id only: the input may carry tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AccountInput").field(&self.0.id).finish()
    }
}

/// Where the admin API reports a problem of the account it was given: `account.<field>`.
pub const ADMIN_ACCOUNT_PATH: &str = "account";

impl AccountInput {
    /// Parses one JSON object; an unknown, missing or mistyped field is named in the error.
    pub fn from_json(body: &[u8]) -> Result<Self, ConfigError> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let parsed: Result<RawAccount, _> = serde_path_to_error::deserialize(&mut deserializer);
        let raw = parsed.map_err(|e| {
            let path = match e.path().to_string() {
                p if p == "." => ADMIN_ACCOUNT_PATH.to_string(),
                p => format!("{ADMIN_ACCOUNT_PATH}.{p}"),
            };
            let inner = e.into_inner();
            // serde_json's message may quote the value; it goes back to the operator who sent it
            // and is never logged.
            ConfigError(vec![Problem { path, message: inner.to_string() }])
        })?;
        deserializer.end().map_err(|e| {
            ConfigError(vec![Problem { path: ADMIN_ACCOUNT_PATH.into(), message: e.to_string() }])
        })?;
        Ok(AccountInput(raw))
    }

    pub fn id(&self) -> &str {
        &self.0.id
    }
}

/// The accounts once `input` joins `current`, or replaces the account with its id, checked with
/// every rule of the config file: the input's own problems are reported as `account.<field>`;
/// a rule across accounts (one parent, unique tokens) is held against the input, since the others
/// already met it; a missing price is reported under `rates.prices.<code>`.
pub fn accounts_with<'a>(
    node: &IlpAddress,
    rates: &Rates,
    current: impl IntoIterator<Item = &'a Account>,
    input: AccountInput,
) -> Result<Vec<Account>, ConfigError> {
    let id = input.0.id.clone();
    let mut raw: Vec<RawAccount> =
        current.into_iter().filter(|a| *a.id != *id).map(|a| RawAccount::from(a.to_record())).collect();
    raw.push(input.0);
    let mut validator = Validator::default();
    let name = move |_: usize, entry: &str| match entry == id {
        true => ADMIN_ACCOUNT_PATH.to_string(),
        false => format!("accounts[{entry:?}]"),
    };
    let accounts = validator.accounts(node, raw, &name);
    let priced: HashSet<String> = accounts
        .iter()
        .filter(|a| rates.has_price(&a.asset_code))
        .map(|a| a.asset_code.to_string())
        .collect();
    validator.rate_coverage(&accounts, Some(&priced));
    match validator.problems.is_empty() {
        true => Ok(accounts),
        false => Err(ConfigError(validator.problems)),
    }
}

/// Rates given to the admin API or read from Redis, checked with the rules of `[rates]`, and
/// against the assets `accounts` use (several assets: every one needs a price).
pub fn rates_from_record<'a>(
    record: RatesRecord,
    accounts: impl IntoIterator<Item = &'a Account>,
) -> Result<Rates, ConfigError> {
    let mut validator = Validator::default();
    let rates = validator.rates(record);
    let accounts: Vec<Account> = accounts.into_iter().cloned().collect();
    validator.rate_coverage(&accounts, rates.as_ref().map(|r| &r.1));
    match (rates, validator.problems.is_empty()) {
        (Some((rates, _)), true) => Ok(rates),
        _ => Err(ConfigError(validator.problems)),
    }
}

/// One ILP address segment (RFC 0015): `[a-zA-Z0-9_~-]+`.
fn is_segment(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'~' | b'-'))
}

#[cfg(test)]
mod tests;
