//! ThitsaX: an Interledger connector node speaking ILP-over-HTTP.
//!
//! # Layout
//! Each line uses only its own line and the lines above it (`tests/layering.rs` checks the
//! imports against this map, and lists the few still being moved).
//! 1. leaves: [`packet`] (codec, addresses, validation), [`balance`] (pure money rules),
//!    [`quantity`] and [`settlement_id`] (settlement's value types), [`limits`] (every limit and
//!    default), [`backoff`] (retry waits),
//!    [`shutdown`], [`metrics`] (Prometheus counters, rendered with figures read at scrape time),
//!    [`log_limit`] (warnings rate-limited per account or remote address), [`http::origin`]
//!    (where a URL connects: plain or TLS, `host:port`, the pool key), [`mojaloop::party`]
//!    (FSPIOP parties, which accounts name);
//! 2. [`account`], [`reject`] (the one mapping from refusals to ILP codes), [`http::listener`]
//!    (what the node's three listeners share: accepting, draining, bounded bodies);
//! 3. [`routing`], [`rates`], [`rules`] (what an account, a route and the rates must follow,
//!    wherever they come from), [`store`], [`http::tls`] (outgoing connections, plain or TLS,
//!    for every client), [`http::client`], [`spsp`] (resolving payment pointers and SPSP URLs),
//!    [`ildcp`], [`stream`] (STREAM: packets and frames, crypto, stateless receiver credentials,
//!    the receiver's decision for one Prepare, the sender of one payment), [`rafiki`] (auto-peering with a Rafiki), [`mojaloop`] (the
//!    scheme's value rules: FSPIOP amounts and error codes; the Connector's outbound client,
//!    one transfer paid exactly once, the Connector's health watcher); and the handles the node
//!    holds: [`settlement`] (the one seam for every way of settling,
//!    [`settlement::SettlementSystem`], its signals and the RFC 0038 engine client), [`pending`]
//!    (writes owed after their Fulfill was relayed, kept durable in [`owed`], the owed-writes
//!    file);
//! 4. [`node`]: the node's shared state, one struct behind an `Arc`;
//! 5. what runs on it: [`forward`], the packet's path, top to bottom; [`payments`], what the
//!    node sends and receives itself on its local accounts (the STREAM receiver a local
//!    account's packets are handed to, and the completion worker); settlement's worker
//!    ([`settlement::outgoing`]), the systems it pays through ([`settlement::rails`]) and the
//!    engines' callbacks ([`settlement::incoming`]); settlement kind `mojaloop`
//!    ([`mojaloop::settlement`]) and the payouts into the scheme ([`mojaloop::payouts`]);
//!    settlement kind `rafiki` ([`rafiki::liquidity`]: top-ups, reconciliation) and the money
//!    paid back recorded as withdrawals ([`rafiki::withdrawals`], with its worker);
//!    [`sweeper`]: crash
//!    recovery of reservations; [`reload`] keeps accounts, routes and rates in step with Redis;
//! 6. the edges that receive traffic: [`http::server`] (calls `forward`),
//!    [`http::settlement_api`] (settlement engines call back), [`http::spsp`] (senders query
//!    SPSP, RFC 0009), [`mojaloop::backend`] (the Mojaloop Connector calls when the scheme pays the
//!    node), [`admin`] (the operator's API);
//! 7. [`config`] reads and validates the TOML file (its accounts, routes and rates with
//!    [`rules`]); [`app`] wires everything; `main` runs it.

pub mod account;
pub mod admin;
pub mod app;
pub mod backoff;
pub mod balance;
pub mod config;
pub mod forward;
pub mod http;
pub mod ildcp;
pub mod limits;
pub mod log_limit;
pub mod metrics;
pub mod mojaloop;
pub mod node;
pub mod owed;
pub mod packet;
pub mod payments;
pub mod pending;
pub mod quantity;
pub mod rafiki;
pub mod rates;
pub mod reject;
pub mod reload;
pub mod routing;
pub mod rules;
pub mod settlement;
pub mod settlement_id;
pub mod shutdown;
pub mod spsp;
pub mod store;
pub mod stream;
pub mod sweeper;
