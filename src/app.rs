//! Wires a validated [`Config`] into a running node.

use crate::account::{Accounts, TokenHash};
use crate::admin::{LocalTables, RedisTables, Tables};
use crate::config::{Config, StoreConfig};
use crate::http::client::HttpClient;
use crate::http::tls::TlsConfig;
use crate::http::{server, settlement_api};
use crate::log_limit::{LogLimit, NEXT_HOP_WARNING_INTERVAL_MS};
use crate::metrics::Metrics;
use crate::mojaloop::health::{self, ConnectorHealth};
use crate::mojaloop::outbound::OutboundClient;
use crate::node::{Node, Receiving, Sending};
use crate::owed::{OwedError, OwedFile};
use crate::payments::completions::{self, CompletionHook, CompletionRules, LogCompletions};
use crate::pending::{self, PendingCommits, PENDING_MAX};
use crate::reload::{self, Reloader, Seed};
use crate::routing::{Router, RoutingTable};
use crate::settlement::engine::EngineClient;
use crate::shutdown::Shutdown;
use crate::store::{ConfigStoreError, MemoryStore, RedisStore, Store};
use crate::stream::ServerSecret;
use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A node bound to its port, not yet serving. Tests read `local_addr` to find it.
pub struct App<S> {
    pub node: Arc<Node<S>>,
    pub listener: TcpListener,
    pub shutdown: Shutdown,
    config: Config,
    /// Work that runs beside serving and ends by itself once the node drains (the Redis config
    /// reloader). None of it moves money.
    background: Vec<BoxFuture<'static, ()>>,
    /// The settlement engines' callback listener: bound when an account settles through an
    /// engine at start-up.
    settlement_listener: Option<TcpListener>,
    /// The admin API's listener and the hash of its token: bound when a token is configured.
    admin_listener: Option<(TcpListener, TokenHash)>,
    /// Rafiki's auto-peering endpoint, with `rafiki.peering_listen` (served with the admin API).
    peering_listener: Option<(TcpListener, crate::rafiki::peering::PeeringServer)>,
    /// Rafiki's webhooks, with `rafiki.admin.webhook_listen`.
    webhook_listener: Option<(TcpListener, crate::account::Secret)>,
    /// Where admin changes go: the node's own tables, or Redis ([`App::bind_redis`]).
    tables: Arc<dyn Tables>,
    /// The outgoing clients' TLS configuration, kept for the start-up report of what it trusts.
    tls: TlsConfig,
    /// The public SPSP listener: bound when a local account exists at start-up or
    /// `spsp.listen` is named.
    spsp_listener: Option<TcpListener>,
    /// The backend API the Mojaloop Connector calls: bound with `[mojaloop]`.
    mojaloop_listener: Option<TcpListener>,
    /// What acts on completed incoming payments ([`App::set_completion_hook`]).
    completion_hook: Arc<dyn CompletionHook>,
}

/// The node's listeners, named as the operator's messages name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Ilp,
    Admin,
    SettlementCallbacks,
    Spsp,
    MojaloopBackend,
    RafikiPeering,
    RafikiWebhooks,
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Listener::Ilp => "ILP-over-HTTP",
            Listener::Admin => "admin",
            Listener::SettlementCallbacks => "settlement callbacks",
            Listener::Spsp => "SPSP",
            Listener::MojaloopBackend => "Mojaloop backend",
            Listener::RafikiPeering => "Rafiki auto-peering",
            Listener::RafikiWebhooks => "Rafiki webhooks",
        })
    }
}

/// A listener that could not be bound: which one and where, so that a busy port is found at once.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind the {listener} listener on {address}: {source}")]
pub struct BindError {
    pub listener: Listener,
    pub address: SocketAddr,
    pub source: std::io::Error,
}

async fn bind(listener: Listener, address: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(address).await.map_err(|source| BindError { listener, address, source })
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A config that selects Redis given to [`App::bind`], which has no Redis store.
    #[error("the config selects Redis; connect a RedisStore")]
    NeedsRedisStore,
    #[error("cannot load accounts and routes from Redis: {0}")]
    SharedConfig(#[from] ConfigStoreError),
    #[error(transparent)]
    OwedWrites(#[from] OwedError),
    #[error("cannot read or keep the STREAM server secret in Redis: {0}")]
    StreamSecret(ConfigStoreError),
}

impl App<MemoryStore> {
    /// Binds the ILP-over-HTTP listener and builds the node with the in-memory store (a config
    /// that selects Redis is refused here: use [`App::bind_with`] and a connected store).
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        match config.store {
            StoreConfig::Memory => Ok(Self::bind_with(config, MemoryStore::new()).await?),
            StoreConfig::Redis(_) => Err(StartError::NeedsRedisStore),
        }
    }
}

impl App<RedisStore> {
    /// Binds a node whose accounts, routes and rates are shared through Redis: the file's are written
    /// into Redis by `store.config_precedence`, the node serves the whole set read back, and
    /// reloads it whenever it changes (see [`crate::reload`]). Without `config_sync` (which
    /// config validation always sets for Redis) the file alone is served.
    pub async fn bind_redis(config: Config, store: RedisStore) -> Result<Self, StartError> {
        // Writes owed since the last run are replayed below, before the node serves a packet.
        let (owed_file, owed) = match &config.owed_writes {
            Some(rules) => {
                let (file, owed) = OwedFile::open(rules)?;
                (Some(Arc::new(file)), owed)
            }
            None => (None, Vec::new()),
        };
        let pending = PendingCommits::new(owed_file, PENDING_MAX, config.sweep.tombstone_retention);
        // Every instance on this Redis must derive the same credentials: the secret is the
        // file's, or the one kept in Redis (made by the first instance that needed it).
        let secret = match &config.stream.secret {
            Some(secret) => ServerSecret::from_bytes(&secret.0),
            None => {
                let shared =
                    store.shared_stream_secret(random_secret()).await.map_err(StartError::StreamSecret)?;
                ServerSecret::from_bytes(&shared)
            }
        };
        let Some(rules) = config.config_sync.clone() else {
            let (accounts, routes) = (Accounts::new(config.accounts.clone()), config.routes.clone());
            let app = Self::bind_tables(config, store, accounts, routes, pending, secret).await?;
            pending::replay(&app.node.store, &app.node.accounts.load(), &app.node.pending, owed).await;
            return Ok(app);
        };
        let seed = Seed {
            accounts: config.accounts.clone(),
            routes: config.static_routes.clone(),
            rates: config.rates_in_file.then(|| config.rates.to_record()),
            precedence: rules.precedence,
        };
        let tables = reload::load_at_start(&store, &seed, &config.node_address, &config.rates).await?;
        let version = tables.version;
        // Redis's rates are served, not the file's: with `config_precedence = "redis"` they differ.
        let config = Config { rates: tables.rates, ..config };
        let mut app =
            Self::bind_tables(config, store, tables.accounts, tables.routes, pending, secret).await?;
        pending::replay(&app.node.store, &app.node.accounts.load(), &app.node.pending, owed).await;
        // The watcher and the admin API reload through one reloader; admin changes go to Redis,
        // so that every instance serves them.
        let reloader = Arc::new(Reloader::new(app.node.clone(), seed));
        app.tables = Arc::new(RedisTables::new(reloader.clone()));
        app.background.push(Box::pin(reload::run(reloader, rules, version)));
        Ok(app)
    }
}

impl<S: Store> App<S> {
    /// Binds a node serving the config file's accounts and routes.
    /// Without `stream.secret` in the file, the node makes a STREAM server secret of its own:
    /// credentials it issues then last as long as the process (as the memory store's balances do).
    pub async fn bind_with(config: Config, store: S) -> Result<Self, BindError> {
        let (accounts, routes) = (Accounts::new(config.accounts.clone()), config.routes.clone());
        let pending = PendingCommits::new(None, PENDING_MAX, config.sweep.tombstone_retention);
        let secret = ServerSecret::from_bytes(
            &config.stream.secret.as_ref().map(|s| s.0).unwrap_or_else(random_secret),
        );
        Self::bind_tables(config, store, accounts, routes, pending, secret).await
    }

    /// Replaces what acts on completed incoming payments (by default they are logged and
    /// counted). Runs at least once per completion: see [`crate::payments::completions`].
    pub fn set_completion_hook(&mut self, hook: Arc<dyn CompletionHook>) {
        self.completion_hook = hook;
    }

    async fn bind_tables(
        config: Config,
        store: S,
        accounts: Accounts,
        routes: RoutingTable,
        pending: PendingCommits,
        secret: ServerSecret,
    ) -> Result<Self, BindError> {
        let listener = bind(Listener::Ilp, config.listen).await?;
        let local_at_start = accounts.iter().any(|a| a.relation == crate::account::Relation::Local);
        let spsp_listener = match local_at_start || config.spsp.listen_always {
            true => Some(bind(Listener::Spsp, config.spsp.listen).await?),
            false => None,
        };
        let engines_at_start = accounts.iter().any(|a| a.settlement_engine_url.is_some());
        let settlement_listener = match engines_at_start || config.settlement.listen_always {
            true => Some(bind(Listener::SettlementCallbacks, config.settlement.listen).await?),
            false => None,
        };
        let mojaloop_listener = match &config.mojaloop {
            Some(scheme) => Some(bind(Listener::MojaloopBackend, scheme.backend_listen).await?),
            None => None,
        };
        let admin_listener = match config.admin.token_hash {
            Some(token_hash) => Some((bind(Listener::Admin, config.admin.listen).await?, token_hash)),
            None => None,
        };
        let peering_listener = match &config.rafiki.peering {
            Some(rules) => Some((bind(Listener::RafikiPeering, rules.listen).await?, rules.clone())),
            None => None,
        };
        let webhook_listener = match config.rafiki.admin.as_ref().and_then(|a| a.webhooks.as_ref()) {
            Some((listen, secret)) => Some((bind(Listener::RafikiWebhooks, *listen).await?, secret.clone())),
            None => None,
        };
        let public_url = config.spsp.public_url.clone().unwrap_or_else(|| {
            let bound = spsp_listener.as_ref().and_then(|l| l.local_addr().ok());
            format!("http://{}", bound.unwrap_or(config.spsp.listen))
        });
        let shutdown = Shutdown::new().0;
        // One TLS configuration for every outgoing client (the system's roots are read here).
        let tls = TlsConfig::new(&config.tls);
        let metrics = Metrics::new();
        // With `[mojaloop]`, the Connector's health: written by its watcher (started in
        // `run_until`), read by `GET /ready` and the gauge.
        let mojaloop_health = config.mojaloop.as_ref().map(|scheme| {
            Arc::new(ConnectorHealth::new(
                &scheme.outbound_url,
                &scheme.health,
                metrics.mojaloop_connector_up(),
            ))
        });
        let client = HttpClient::new(&config.client, &tls);
        let node = Arc::new(Node {
            address: config.node_address.clone(),
            public_url: config.public_url.clone(),
            peerings: Default::default(),
            accounts: ArcSwap::from_pointee(accounts),
            router: Router::new(routes),
            rates: ArcSwap::from_pointee(config.rates.clone()),
            store,
            client: client.clone(),
            expiry: config.expiry.clone(),
            shutdown: shutdown.signal(),
            pending,
            settlement: Default::default(),
            engines: EngineClient::new(&config.settlement.engine, &tls),
            metrics,
            next_hop_warnings: LogLimit::new(Duration::from_millis(NEXT_HOP_WARNING_INTERVAL_MS)),
            receiving: Receiving::new(secret, &public_url),
            sending: Sending::new(),
            mojaloop: config.mojaloop.clone().map(|scheme| {
                let outbound = OutboundClient::new(&scheme.outbound_url, &scheme.outbound, &tls);
                Arc::new(crate::mojaloop::Dfsp {
                    scheme,
                    outbound,
                    payouts: Default::default(),
                    parties: Default::default(),
                })
            }),
            mojaloop_health,
            rafiki: config.rafiki.admin.as_ref().map(|admin| {
                Arc::new(crate::rafiki::admin_api::AdminApi::new(
                    admin.api.clone(),
                    client.connector().clone(),
                ))
            }),
            rafiki_withdrawals: tokio::sync::Notify::new(),
        });
        let tables = Arc::new(LocalTables::new(node.clone(), config.static_routes.clone()));
        // With a scheme, a payout receiver's completed payment is paid out in it.
        let completion_hook: Arc<dyn CompletionHook> = match node.mojaloop.is_some() {
            true => Arc::new(crate::mojaloop::payouts::PayoutHook::new(node.clone())),
            false => Arc::new(LogCompletions),
        };
        Ok(App {
            node,
            listener,
            shutdown,
            config,
            background: Vec::new(),
            settlement_listener,
            admin_listener,
            peering_listener,
            webhook_listener,
            tables,
            tls,
            spsp_listener,
            mojaloop_listener,
            completion_hook,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Where settlement engines call back, when the listener is bound.
    pub fn settlement_addr(&self) -> Option<SocketAddr> {
        self.settlement_listener.as_ref().map(|l| l.local_addr().expect("bound listener has an address"))
    }

    /// Where the SPSP listener listens, when it is bound.
    pub fn spsp_addr(&self) -> Option<SocketAddr> {
        self.spsp_listener.as_ref().map(|l| l.local_addr().expect("bound listener has an address"))
    }

    /// Where the Mojaloop Connector calls the node's backend API, with `[mojaloop]`.
    pub fn mojaloop_backend_addr(&self) -> Option<SocketAddr> {
        self.mojaloop_listener.as_ref().map(|l| l.local_addr().expect("bound listener has an address"))
    }

    /// Where the admin API listens, when it is bound.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener.as_ref().map(|(l, _)| l.local_addr().expect("bound listener has an address"))
    }

    /// Where a Rafiki's `createOrUpdatePeerByUrl` peers with the node, with `rafiki.peering_listen`.
    pub fn rafiki_peering_addr(&self) -> Option<SocketAddr> {
        self.peering_listener.as_ref().map(|(l, _)| l.local_addr().expect("bound listener has an address"))
    }

    /// Where Rafiki's webhooks arrive, with `rafiki.admin.webhook_listen`.
    pub fn rafiki_webhooks_addr(&self) -> Option<SocketAddr> {
        self.webhook_listener.as_ref().map(|(l, _)| l.local_addr().expect("bound listener has an address"))
    }

    /// What the operator needs to know once the node is bound: each listener's address (or why it
    /// is not bound), the store, what was loaded, and what outgoing TLS trusts. One line each, in
    /// this order.
    pub fn start_up_report(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let settlement_why_not =
            "no account settles through an engine at start-up and settlement.listen is not set";
        let listeners = [
            (Listener::Ilp, Some(self.local_addr()), ""),
            (Listener::Admin, self.admin_addr(), "no admin.token or admin.token_sha256"),
            (Listener::SettlementCallbacks, self.settlement_addr(), settlement_why_not),
            (Listener::Spsp, self.spsp_addr(), "no local account at start-up and spsp.listen is not set"),
            (Listener::MojaloopBackend, self.mojaloop_backend_addr(), "no [mojaloop] section"),
            (Listener::RafikiPeering, self.rafiki_peering_addr(), "rafiki.peering_listen is not set"),
            (Listener::RafikiWebhooks, self.rafiki_webhooks_addr(), "rafiki.admin.webhook_listen is not set"),
        ];
        for (listener, address, why_not) in listeners {
            let name = match listener {
                Listener::Ilp => "ILP-over-HTTP",
                Listener::Admin => "admin API",
                Listener::SettlementCallbacks => "settlement callbacks",
                Listener::Spsp => "SPSP",
                Listener::MojaloopBackend => "Mojaloop backend API",
                Listener::RafikiPeering => "Rafiki auto-peering endpoint",
                Listener::RafikiWebhooks => "Rafiki webhook receiver",
            };
            lines.push(match address {
                Some(address) => format!("{name} on {address}"),
                None => format!("{name} not bound: {why_not}"),
            });
        }
        lines.push(match &self.config.store {
            StoreConfig::Memory => "store: memory (balances are lost when the process stops)".to_string(),
            StoreConfig::Redis(redis) => {
                let urls: Vec<String> = redis.urls.iter().map(|u| without_password(u)).collect();
                let kind = if redis.cluster { "Redis Cluster" } else { "Redis" };
                format!("store: {kind} {} (key prefix {:?})", urls.join(", "), redis.prefix)
            }
        });
        let accounts = self.node.accounts.load().iter().count();
        let routes = self.node.router.table().len();
        let default = match self.node.router.table().default_route() {
            Some(parent) => format!(", default route to {parent}"),
            None => String::new(),
        };
        lines.push(format!("loaded {accounts} accounts and {routes} routes{default}"));
        lines.push(self.tls.summary().to_string());
        lines
    }

    /// Serves until `stop` resolves (or the shutdown is triggered otherwise), then drains.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) {
        let App {
            node,
            listener,
            shutdown,
            config,
            background,
            settlement_listener,
            admin_listener,
            peering_listener,
            webhook_listener,
            tables,
            tls,
            spsp_listener,
            mojaloop_listener,
            completion_hook,
        } = self;
        let background: Vec<_> = background.into_iter().map(tokio::spawn).collect();
        // Settlements: the worker that settles balances above their threshold, and the listener
        // engines call back. Both stop once the last packet is done; pending settlements stay in
        // the store for the next start.
        let (stop_settling, settling_stop) = tokio::sync::oneshot::channel::<()>();
        let settling = tokio::spawn(crate::settlement::outgoing::run(
            node.clone(),
            Arc::new(crate::settlement::rails::Rails::new(node.clone())),
            config.settlement.rules.clone(),
            async move {
                let _ = settling_stop.await;
            },
        ));
        let callbacks = settlement_listener.map(|listener| {
            let limits = config.settlement.api.clone();
            tokio::spawn(settlement_api::serve(listener, node.clone(), limits, shutdown.signal()))
        });
        let admin = admin_listener.map(|(listener, token_hash)| {
            let (node, limits) = (node.clone(), config.admin.limits.clone());
            tokio::spawn(crate::admin::serve(listener, node, tables, token_hash, limits, peering_listener))
        });
        let webhooks = webhook_listener.map(|(listener, secret)| {
            let webhooks = Arc::new(crate::rafiki::webhooks::Webhooks::new(secret));
            tokio::spawn(crate::rafiki::webhooks::serve(listener, node.clone(), webhooks))
        });
        let spsp = spsp_listener.map(|listener| {
            tokio::spawn(crate::http::spsp::serve(listener, node.clone(), config.spsp.limits.clone()))
        });
        let mojaloop = mojaloop_listener.zip(config.mojaloop.clone()).map(|(listener, scheme)| {
            tokio::spawn(crate::mojaloop::backend::serve(listener, node.clone(), Arc::new(scheme)))
        });
        // Probes the Connector with a real request until the node drains (a wedged Connector
        // answers `GET /` but hangs every lookup): `GET /ready` reports it down. Moves no money.
        let watching = node.mojaloop_health.clone().zip(config.mojaloop.as_ref()).map(|(state, scheme)| {
            let probe = health::Probe::new(
                &scheme.outbound_url,
                &scheme.party,
                &scheme.health,
                &scheme.outbound,
                &tls,
            );
            tokio::spawn(health::run(state, probe, scheme.health.clone(), shutdown.signal()))
        });
        // Stops by itself when the node starts draining; awaited below so that no completion is
        // cut off between the hook and its acknowledgement (it would only run again).
        let completing =
            tokio::spawn(completions::run(node.clone(), completion_hook, CompletionRules::default()));
        // Payments the node sends itself: resumed here (whichever instance takes their lease);
        // a payment cut off by the shutdown keeps its lease until it expires, then any instance
        // resumes it with what is left.
        let paying = tokio::spawn(crate::payments::outgoing::run(node.clone()));
        // Payouts into the Mojaloop scheme (none without `[mojaloop]`); stops once draining.
        let paying_out = tokio::spawn(crate::mojaloop::payouts::run(node.clone()));
        // Reconciles the Rafiki peers' liquidity (none without `[rafiki.admin]`); stops once
        // draining.
        let reconciling =
            config.rafiki.admin.as_ref().map(|admin| {
                tokio::spawn(crate::rafiki::liquidity::run(node.clone(), admin.reconcile_interval))
            });
        // Records the withdrawals owed at the Rafiki peers (none without `[rafiki.admin]`); stops
        // once draining, and what is still owed stays in the store for the next start.
        let withdrawing = tokio::spawn(crate::rafiki::withdrawals::run(node.clone()));
        // The sweeper stops by itself when the node starts draining; it is awaited below so that
        // no sweep is cut off half way.
        let sweeper = tokio::spawn(crate::sweeper::run(node.clone(), config.sweep.clone()));
        // Commits the packet path could not write in time; stopped once the last packet is done.
        let (stop_pending, pending_stop) = tokio::sync::oneshot::channel::<()>();
        let pending = {
            let node = node.clone();
            tokio::spawn(async move {
                let stop = async move {
                    let _ = pending_stop.await;
                };
                crate::pending::run(&node.store, &node.pending, stop).await
            })
        };
        let serving = server::serve(listener, node, config.server.clone(), &shutdown);
        tokio::pin!(serving);
        tokio::select! {
            _ = &mut serving => {}
            _ = stop => {
                shutdown.drain();
                serving.await;
            }
        }
        // Serving can also end on its own (without `stop`); either way the sweeper must stop.
        shutdown.drain();
        let _ = sweeper.await;
        let _ = completing.await;
        let _ = paying.await;
        let _ = paying_out.await;
        if let Some(reconciling) = reconciling {
            let _ = reconciling.await;
        }
        let _ = withdrawing.await;
        if let Some(spsp) = spsp {
            let _ = spsp.await;
        }
        if let Some(webhooks) = webhooks {
            let _ = webhooks.await;
        }
        if let Some(mojaloop) = mojaloop {
            let _ = mojaloop.await;
        }
        if let Some(watching) = watching {
            let _ = watching.await;
        }
        for task in background {
            let _ = task.await;
        }
        let _ = stop_pending.send(());
        let _ = pending.await;
        if let Some(callbacks) = callbacks {
            let _ = callbacks.await;
        }
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        let _ = stop_settling.send(());
        let _ = settling.await;
    }
}

/// A new random STREAM server secret.
fn random_secret() -> [u8; crate::limits::STREAM_SECRET_BYTES] {
    let mut bytes = [0u8; crate::limits::STREAM_SECRET_BYTES];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the OS random source works");
    bytes
}

/// A Redis URL with its password masked (`redis://user:***@host/`), for logs: whoever reads the
/// log must not learn it.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        // `user:password@` or `:password@`; a user name alone is not a secret.
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn a_redis_url_is_logged_without_its_password() {
        assert_eq!(without_password("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
        assert_eq!(without_password("redis://:s3cret@host:6379/0"), "redis://:***@host:6379/0");
        assert_eq!(without_password("rediss://app:s3cret@host/"), "rediss://app:***@host/");
        assert_eq!(without_password("redis://app:p@ss@host"), "redis://app:***@host");
        assert_eq!(without_password("redis://app@host/"), "redis://app@host/");
    }
}
