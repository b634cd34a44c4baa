//! ThitsaX: an Interledger connector node speaking ILP-over-HTTP.
//!
//! # Layout
//! Each line uses only the lines above it.
//! 1. [`packet`] (codec, addresses, validation), [`balance`] (pure rules), [`shutdown`],
//!    [`metrics`] (Prometheus counters, rendered with figures read at scrape time);
//! 2. [`account`], [`reject`] (the one mapping from refusals to ILP codes), [`http::listener`]
//!    (what the node's three listeners share: accepting, draining, bounded bodies);
//! 3. [`routing`], [`rates`], [`store`], [`http::client`], [`ildcp`], [`settlement`];
//! 4. [`forward`]: the packet's path, top to bottom; [`sweeper`]: crash recovery of reservations;
//!    [`pending`]: commits retried after their Fulfill was relayed, kept durable in [`owed`] (the
//!    owed-writes file);
//! 5. [`http::server`]: the edge that receives traffic and calls `forward`;
//!    [`http::settlement_api`]: the edge settlement engines call back (credits, messages);
//! 6. [`config`] parses and validates the TOML file (and, with its rules, accounts and routes read
//!    from Redis); [`reload`] keeps accounts, routes and rates in step with Redis; [`admin`] is the
//!    operator's API (its changes are checked with config's rules and applied to the node's
//!    tables or through Redis); [`app`] wires everything; `main` runs it.

pub mod account;
pub mod admin;
pub mod app;
pub mod balance;
pub mod config;
pub mod forward;
pub mod http;
pub mod ildcp;
pub mod metrics;
pub mod owed;
pub mod packet;
pub mod pending;
pub mod rates;
pub mod reject;
pub mod reload;
pub mod routing;
pub mod settlement;
pub mod shutdown;
pub mod store;
pub mod sweeper;
