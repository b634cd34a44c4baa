//! ThitsaX: an Interledger connector node speaking ILP-over-HTTP.
//!
//! # Layout
//! Each line uses only its own line and the lines above it (`tests/layering.rs` checks the
//! imports against this map, and lists the few still being moved).
//! 1. leaves: [`packet`] (codec, addresses, validation), [`balance`] (pure money rules),
//!    [`quantity`] and [`settlement_id`] (settlement's value types), [`backoff`] (retry waits),
//!    [`shutdown`], [`metrics`] (Prometheus counters, rendered with figures read at scrape time);
//! 2. [`account`], [`reject`] (the one mapping from refusals to ILP codes), [`http::listener`]
//!    (what the node's three listeners share: accepting, draining, bounded bodies);
//! 3. [`routing`], [`rates`], [`store`], [`http::client`], [`ildcp`];
//! 4. [`forward`]: the packet's path, top to bottom; [`settlement`]: one seam
//!    ([`settlement::SettlementSystem`]) for every way of settling, its worker and callbacks;
//!    [`sweeper`]: crash recovery of reservations; [`pending`]: writes retried after their
//!    Fulfill was relayed;
//! 5. the edges that receive traffic: [`http::server`] (calls `forward`),
//!    [`http::settlement_api`] (settlement engines call back), [`admin`] (the operator's API);
//! 6. [`config`] parses and validates the TOML file (and, with its rules, accounts and routes read
//!    from Redis or given to the admin API); [`reload`] keeps accounts, routes and rates in step
//!    with Redis; [`app`] wires everything; `main` runs it.

pub mod account;
pub mod admin;
pub mod app;
pub mod backoff;
pub mod balance;
pub mod config;
pub mod forward;
pub mod http;
pub mod ildcp;
pub mod metrics;
pub mod packet;
pub mod pending;
pub mod quantity;
pub mod rates;
pub mod reject;
pub mod reload;
pub mod routing;
pub mod settlement;
pub mod settlement_id;
pub mod shutdown;
pub mod store;
pub mod sweeper;
