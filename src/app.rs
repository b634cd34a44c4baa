//! Wires a validated [`Config`] into a running node.

use crate::account::Accounts;
use crate::config::{Config, StoreConfig};
use crate::forward::Node;
use crate::http::client::HttpClient;
use crate::http::server;
use crate::routing::Router;
use crate::shutdown::Shutdown;
use crate::store::{MemoryStore, Store};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A node bound to its port, not yet serving. Tests read `local_addr` to find it.
pub struct App<S> {
    pub node: Arc<Node<S>>,
    pub listener: TcpListener,
    pub shutdown: Shutdown,
    config: Config,
}

impl App<MemoryStore> {
    /// Binds the ILP-over-HTTP listener and builds the node with the in-memory store (a config
    /// that selects Redis is refused here: use [`App::bind_with`] and a connected store).
    pub async fn bind(config: Config) -> std::io::Result<Self> {
        match config.store {
            StoreConfig::Memory => Self::bind_with(config, MemoryStore::new()).await,
            StoreConfig::Redis(_) => {
                Err(std::io::Error::other("the config selects Redis; connect a RedisStore"))
            }
        }
    }
}

impl<S: Store> App<S> {
    pub async fn bind_with(config: Config, store: S) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let shutdown = Shutdown::new().0;
        let node = Arc::new(Node {
            address: config.node_address.clone(),
            accounts: ArcSwap::from_pointee(Accounts::new(config.accounts.clone())),
            router: Router::new(config.routes.clone()),
            rates: ArcSwap::from_pointee(config.rates.clone()),
            store,
            client: HttpClient::new(&config.client),
            expiry: config.expiry.clone(),
            shutdown: shutdown.signal(),
            pending: Default::default(),
        });
        Ok(App { node, listener, shutdown, config })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Serves until `stop` resolves (or the shutdown is triggered otherwise), then drains.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) {
        let App { node, listener, shutdown, config } = self;
        // The sweeper stops by itself when the node starts draining; it is awaited below so that
        // no sweep is cut off half way.
        let sweeper = tokio::spawn(crate::sweeper::run(node.clone(), config.sweep.clone()));
        // Commits the packet path could not write in time; stopped once the last packet is done.
        let (stop_pending, pending_stop) = tokio::sync::oneshot::channel::<()>();
        let pending = tokio::spawn(crate::pending::run(node.clone(), async move {
            let _ = pending_stop.await;
        }));
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
        let _ = stop_pending.send(());
        let _ = pending.await;
    }
}
