//! Rafiki (the Interledger Foundation's wallet platform) as a peer of the node: what ThitsaX does
//! around the packets it already exchanges with one. Wire facts: `../shared/wire/rafiki.md`.
//!
//! - [`peering`]: auto-peering with a Rafiki: the client (the admin API's `POST /peers/auto`),
//!   what both directions share, and the log of peerings;
//! - [`signature`]: Rafiki's request signatures over RFC 8785 canonical JSON (its admin API's
//!   requests, its webhooks).
//!
//! - [`admin_api`]: the client of Rafiki's admin GraphQL API (signed requests, refusals told
//!   from outages);
//! - [`liquidity`]: settlement kind `rafiki`, top-ups recorded as deposits, and reconciliation
//!   (layer 5: it runs on the node);
//! - [`withdrawals`]: money paid back through the rail recorded as withdrawals, once each, and
//!   the worker that drives those owed (layer 5);
//! - [`webhooks`]: the receiver of Rafiki's signed webhooks (layer 6: an edge).
//!
//! Layer 3 (but `liquidity`, `withdrawals` and `webhooks`): clients of the outside world.

pub mod admin_api;
pub mod liquidity;
pub mod peering;
pub mod signature;
pub mod webhooks;
pub mod withdrawals;
