//! Rafiki (the Interledger Foundation's wallet platform) as a peer of the node: what ThitsaX does
//! around the packets it already exchanges with one. Wire facts: `../shared/wire/rafiki.md`.
//!
//! - [`peering`]: auto-peering with a Rafiki: the client (the admin API's `POST /peers/auto`),
//!   what both directions share, and the log of peerings;
//! - [`signature`]: Rafiki's request signatures over RFC 8785 canonical JSON (its admin API's
//!   requests, its webhooks).
//!
//! Layer 3: a client of the outside world.

pub mod peering;
pub mod signature;
