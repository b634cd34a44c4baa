//! Rafiki (the Interledger Foundation's wallet platform) as a peer of the node: what ThitsaX does
//! around the packets it already exchanges with one. Wire facts: `../shared/wire/rafiki.md`.
//!
//! - [`peering`]: auto-peering with a Rafiki, as its client (the admin API's `POST /peers/auto`).
//!
//! Layer 3: a client of the outside world.

pub mod peering;
