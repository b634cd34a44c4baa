//! The node's shared state: its identity, tables, balances, clients and the handles of its
//! workers, in one struct that the packet path ([`crate::forward`]), the workers and the edges
//! share through an `Arc`. It holds state and handles only: the behaviour is in the modules
//! above it, so none of them needs another to reach the state.

use crate::account::Accounts;
use crate::http::client::HttpClient;
use crate::log_limit::LogLimit;
use crate::metrics::Metrics;
use crate::mojaloop::health::ConnectorHealth;
use crate::packet::IlpAddress;
use crate::pending::PendingCommits;
use crate::rates::Rates;
use crate::routing::Router;
use crate::settlement::engine::EngineClient;
use crate::settlement::Triggers;
use crate::shutdown::ShutdownSignal;
use crate::store::{IncomingPaymentId, OutgoingPaymentId};
use crate::stream::ServerSecret;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::Duration;

/// Timing rules for outgoing Prepares.
#[derive(Debug, Clone)]
pub struct ExpiryRules {
    /// Taken off the incoming expiry so we can still relay the outcome in time.
    pub margin: Duration,
    /// No outgoing Prepare holds our liquidity longer than this.
    pub hold_time_max: Duration,
    /// Less than this left to the next hop: R02 rather than a packet doomed to expire.
    pub outgoing_window_min: Duration,
}

impl ExpiryRules {
    /// Why an account's own `hold_time_ms_max` cannot work with these rules: a hold below the
    /// minimum outgoing window would refuse every packet to it (R02), one at or above the node's
    /// own maximum would change nothing.
    pub fn account_hold_problem(&self, hold: Duration) -> Option<String> {
        if hold < self.outgoing_window_min {
            return Some(format!(
                "must be at least forwarding.min_outgoing_window_ms ({} ms): below it every packet to the account is refused",
                self.outgoing_window_min.as_millis()
            ));
        }
        if hold >= self.hold_time_max {
            return Some(format!(
                "must be below forwarding.hold_time_ms_max ({} ms), which holds already",
                self.hold_time_max.as_millis()
            ));
        }
        None
    }
}

/// One connector node: its identity, tables, balances and the way out.
pub struct Node<S> {
    pub address: IlpAddress,
    /// Where peers send the node's packets (`http.public_url`), when configured.
    pub public_url: Option<String>,
    /// The latest auto-peerings with a Rafiki, both ways (`GET /peers/auto`).
    pub peerings: crate::rafiki::peering::PeeringLog,
    pub accounts: ArcSwap<Accounts>,
    pub router: Router,
    pub rates: ArcSwap<Rates>,
    pub store: S,
    pub client: HttpClient,
    pub expiry: ExpiryRules,
    pub shutdown: ShutdownSignal,
    pub pending: PendingCommits,
    /// Signals to the settlement worker.
    pub settlement: Triggers,
    /// The RFC 0038 engines' client (messages from peers, account setup, settlements).
    pub engines: EngineClient,
    /// Packets counted and timed by [`Node::forward`], rendered for scrapes.
    pub metrics: Metrics,
    /// Next hops that are down or answer errors are warned about once per account per
    /// [`NEXT_HOP_WARNING_INTERVAL_MS`](crate::log_limit::NEXT_HOP_WARNING_INTERVAL_MS).
    pub next_hop_warnings: LogLimit,
    /// What the node needs to receive payments on its local accounts.
    pub receiving: Receiving,
    /// This instance as the sender of its local accounts' outgoing payments.
    pub sending: Sending,
    /// The node as a DFSP of a Mojaloop scheme, with `[mojaloop]`.
    pub mojaloop: Option<Arc<crate::mojaloop::Dfsp>>,
    /// The Mojaloop Connector's health as its watcher last found it, with `[mojaloop]`: the node
    /// is not ready while the Connector is down.
    pub mojaloop_health: Option<Arc<ConnectorHealth>>,
    /// The Rafiki admin API the node records its Rafiki peers' liquidity through, with
    /// `[rafiki.admin]`.
    pub rafiki: Option<Arc<crate::rafiki::admin_api::AdminApi>>,
    /// Wakes the Rafiki withdrawals worker when a credit leaves a withdrawal owed in the store
    /// (it also polls, for those a crash or another instance left).
    pub rafiki_withdrawals: tokio::sync::Notify,
}

/// This instance's identity in the leases of outgoing payments, the payments it sends now, and
/// the sending worker's wake-up (see [`crate::payments::outgoing`]).
pub struct Sending {
    /// Unique per process: a restarted instance is a new owner (its old leases expire).
    pub owner: String,
    pub wake: tokio::sync::Notify,
    /// Bumped each time a payment sent here ends, so that a waiter for one (a Mojaloop transfer
    /// waiting for its payment) reads it at once rather than at its next poll.
    pub ended: tokio::sync::watch::Sender<u64>,
    running: std::sync::Mutex<std::collections::HashSet<(String, OutgoingPaymentId)>>,
}

impl Sending {
    pub fn new() -> Self {
        let mut bytes = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .expect("the OS random source works");
        Sending {
            owner: hex::encode(bytes),
            wake: tokio::sync::Notify::new(),
            ended: tokio::sync::watch::Sender::new(0),
            running: Default::default(),
        }
    }

    /// Marks a payment as sent here; false if it already is.
    pub fn start(&self, key: (String, OutgoingPaymentId)) -> bool {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(key)
    }

    pub fn done(&self, key: &(String, OutgoingPaymentId)) {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

impl Default for Sending {
    fn default() -> Self {
        Self::new()
    }
}

/// What receiving payments on local accounts needs: the STREAM server secret every credential
/// is derived from (the same on every instance sharing a store, so any of them can answer any
/// packet), where senders query SPSP, and the completion worker's wake-up.
pub struct Receiving {
    pub secret: ServerSecret,
    /// The SPSP listener's public base URL, without a trailing `/`.
    pub public_url: Arc<str>,
    /// Notified when a packet completes an incoming payment, so its completion is handled at
    /// once rather than at the worker's next scan.
    pub completed: tokio::sync::Notify,
}

impl Receiving {
    pub fn new(secret: ServerSecret, public_url: &str) -> Self {
        Receiving { secret, public_url: public_url.into(), completed: tokio::sync::Notify::new() }
    }

    /// The SPSP URL of a local account (`<public url>/<account>`) or of one of its incoming
    /// payments (`<public url>/<account>/<payment>`).
    pub fn spsp_url(&self, account: &str, payment: Option<&IncomingPaymentId>) -> String {
        match payment {
            Some(payment) => format!("{}/{account}/{payment}", self.public_url),
            None => format!("{}/{account}", self.public_url),
        }
    }
}

/// The payment pointer (RFC 0026) that resolves to `url`: `$host/path` for an https URL; `None`
/// for http, which a payment pointer cannot name.
pub fn payment_pointer(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    Some(format!("${rest}"))
}
