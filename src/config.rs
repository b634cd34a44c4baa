//! The TOML configuration: parsed strictly (unknown keys are errors), then validated as a whole so
//! that every problem is reported at once with its key path, before anything binds a port.
//! All defaults live in [`defaults`].

use crate::account::{Account, AccountId, TokenHash};
use crate::http::client::ClientLimits;
use crate::http::listener::ApiLimits;
use crate::http::server::ServerLimits;
use crate::http::tls::{CaFile, Roots, TlsRules};
use crate::node::ExpiryRules;
use crate::owed::OwedRules;
use crate::packet::IlpAddress;
use crate::rates::{Rates, RatesRecord};
use crate::routing::RoutingTable;
use crate::settlement::engine::EngineLimits;
use crate::settlement::outgoing::SettleRules;
use crate::store::{ConfigSyncRules, Precedence, RedisConfig};
use crate::sweeper::SweepRules;
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Every default, in one place, units last: [`crate::limits`], named here as config reads it.
pub use crate::limits as defaults;
pub use crate::rules::{
    account_from_record, accounts_from_records, accounts_with, rates_from_record, routing_table,
    AccountInput, ConfigError, Problem, ACCOUNT_AMOUNT_FIELDS, ADMIN_ACCOUNT_PATH,
};
use crate::rules::{is_segment, RawAccount, RawRoute, Validator};
use payments::{RawSpsp, RawStream};
pub use payments::{SpspConfig, StreamConfig, StreamSecret};
use schema::Schema;

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
    #[serde(default)]
    spsp: RawSpsp,
    #[serde(default)]
    stream: RawStream,
    #[serde(default)]
    mojaloop: Option<mojaloop::RawMojaloop>,
    #[serde(default)]
    rafiki: rafiki::RawRafiki,
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
    outgoing_tls_handshake_timeout_ms: Option<u64>,
    tls_roots: Option<Roots>,
    tls_ca_file: Option<std::path::PathBuf>,
    public_url: Option<String>,
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

/// A validated configuration: everything the node needs, typed.
#[derive(Debug)]
pub struct Config {
    pub node_address: IlpAddress,
    /// Where peers send the node's packets (`http.public_url`): what auto-peering tells a Rafiki.
    pub public_url: Option<String>,
    pub log_level: String,
    /// Runtime threads running packets; `None` means one per available core.
    pub worker_threads: Option<usize>,
    pub listen: SocketAddr,
    pub server: ServerLimits,
    pub client: ClientLimits,
    /// What outgoing TLS trusts (next hops, settlement engines), the CA file already read.
    pub tls: TlsRules,
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
    pub spsp: SpspConfig,
    pub stream: StreamConfig,
    /// `[mojaloop]`: the node as a DFSP of a Mojaloop scheme; `None` when the section is absent.
    pub mojaloop: Option<crate::mojaloop::scheme::Scheme>,
    /// `[rafiki]`: the auto-peering endpoint, when served.
    pub rafiki: rafiki::RafikiConfig,
    /// The file has a `[rates]` section (without one, Redis's shared rates are never replaced).
    pub rates_in_file: bool,
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(vec![Problem { path: path.display().to_string(), message: e.to_string() }])
        })?;
        Self::from_toml(&text)
    }

    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file = Schema::read(text)?;
        let validator = Validator { invalid_ids: file.invalid_ids, ..Validator::default() };
        let semantic = match validator.validate(file.raw) {
            Ok(config) if file.problems.is_empty() => return Ok(config),
            Ok(_) => Vec::new(),
            Err(ConfigError(problems)) => problems,
        };
        // A key whose value was of the wrong type was given a stand-in to read on: what the rules
        // say of the stand-in is not the operator's problem.
        let mut problems = file.problems;
        let shown: HashSet<String> = problems.iter().map(|p| p.path.clone()).collect();
        // `store.kind` decides which other `[store]` keys belong: with the kind unreadable, the
        // default (memory) would make every Redis key look misplaced.
        let kind_unread = shown.contains("store.kind");
        let follows_on =
            |p: &Problem| shown.contains(&p.path) || (kind_unread && p.path.starts_with("store."));
        problems.extend(semantic.into_iter().filter(|p| !follows_on(p)));
        Err(ConfigError(problems))
    }
}

impl Validator {
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
        let tls = self.tls(&raw.http);
        let public_url = raw.http.public_url.clone().and_then(|url| self.public_ilp_url(url));
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
        for (i, account) in accounts.iter().enumerate() {
            let problem =
                account.hold_time_max.zip(expiry.as_ref()).and_then(|(h, e)| e.account_hold_problem(h));
            if let Some(problem) = problem {
                self.problem(format!("accounts[{i}].hold_time_ms_max"), problem);
            }
        }
        let (routes, static_routes) = self.routes(&accounts, raw.routes, &|i, _| format!("routes[{i}]"));
        let settlement = self.settlement(raw.settlement);
        let admin = self.admin(raw.admin);
        let spsp = self.spsp(raw.spsp);
        let stream = self.stream(raw.stream);
        let mojaloop_given = raw.mojaloop.is_some();
        let mojaloop = raw.mojaloop.and_then(|m| self.mojaloop(m, &accounts));
        self.mojaloop_settlements(&accounts, mojaloop_given, mojaloop.as_ref());
        let rafiki_admin_given = raw.rafiki.admin.is_some();
        let rafiki = self.rafiki(raw.rafiki, admin.token_hash.is_some(), public_url.is_some());
        self.rafiki_accounts(&accounts, rafiki_admin_given);

        match (self.problems.is_empty(), node_address, listen, expiry, rates, store) {
            (true, Some(node_address), Some(listen), Some(expiry), Some((rates, _)), Some(store)) => {
                Ok(Config {
                    node_address,
                    public_url,
                    log_level,
                    worker_threads: raw.node.worker_threads,
                    listen,
                    server,
                    client,
                    tls,
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
                    spsp,
                    stream,
                    mojaloop,
                    rafiki,
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
            tls_handshake_timeout: self.positive_ms(
                "http.outgoing_tls_handshake_timeout_ms",
                raw.outgoing_tls_handshake_timeout_ms,
                defaults::OUTGOING_TLS_HANDSHAKE_TIMEOUT_MS,
            ),
        }
    }

    /// The roots outgoing TLS trusts, and the CA file added to them: read and parsed now, so that
    /// a missing or broken file stops the node at start-up (and `check-config`), named by its key.
    fn tls(&mut self, raw: &RawHttp) -> TlsRules {
        let ca_file = match &raw.tls_ca_file {
            Some(path) if path.as_os_str().is_empty() => {
                self.problem("http.tls_ca_file", "must name a PEM file of CA certificates");
                None
            }
            Some(path) => self.check("http.tls_ca_file", CaFile::read(path)),
            None => None,
        };
        TlsRules { roots: raw.tls_roots.unwrap_or_default(), ca_file }
    }

    fn positive_ms(&mut self, path: &str, value: Option<u64>, default: u64) -> Duration {
        Duration::from_millis(self.positive(path, value, default))
    }

    /// The three times checked against each other: the margin has a floor and stays below the
    /// hold time (a node keeping more time for itself than it ever gives a next hop would refuse
    /// every packet), and the minimum window is positive and fits in the hold time.
    fn forwarding(&mut self, raw: RawForwarding) -> Option<ExpiryRules> {
        let before = self.problems.len();
        let margin = raw.expiry_margin_ms.unwrap_or(defaults::EXPIRY_MARGIN_MS);
        let hold =
            self.positive("forwarding.hold_time_ms_max", raw.hold_time_ms_max, defaults::HOLD_TIME_MS_MAX);
        let window = self.positive(
            "forwarding.min_outgoing_window_ms",
            raw.min_outgoing_window_ms,
            defaults::MIN_OUTGOING_WINDOW_MS,
        );
        if margin < defaults::EXPIRY_MARGIN_MS_MIN {
            self.problem(
                "forwarding.expiry_margin_ms",
                format!(
                    "must be at least {} ms: a Fulfill arriving at the last moment must still be recorded and relayed before the incoming Prepare expires",
                    defaults::EXPIRY_MARGIN_MS_MIN
                ),
            );
        } else if margin >= hold {
            self.problem("forwarding.expiry_margin_ms", "must be less than forwarding.hold_time_ms_max");
        }
        if window > hold {
            self.problem("forwarding.min_outgoing_window_ms", "must not exceed forwarding.hold_time_ms_max");
        }
        if self.problems.len() > before {
            return None;
        }
        Some(ExpiryRules {
            margin: Duration::from_millis(margin),
            hold_time_max: Duration::from_millis(hold),
            outgoing_window_min: Duration::from_millis(window),
        })
    }
}
mod mojaloop;
mod payments;
pub mod rafiki;
mod schema;

#[cfg(test)]
mod tests;
