//! Mojaloop: ThitsaX as a DFSP of a Mojaloop scheme, through the Mojaloop Connector
//! (`@mojaloop/sdk-scheme-adapter`): its outbound API to pay, the backend API it calls to be paid.
//!
//! What stands here so far: the scheme's value rules, which every part of the bridge shares and
//! which must be exact before any money moves, and the client the node pays with:
//! - [`amount`]: FSPIOP amount strings, converted exactly from and to an account's scale (what a
//!   currency's decimals cannot carry stays on the balance; never a zero transfer);
//! - [`error`]: FSPIOP error codes, their mapping from the ILP outcome of a payment (the payer's
//!   `statusCode`) and to ILP, and whether a failure means the scheme refused (no money moved)
//!   or the outcome is unknown (the same transfer id must be sent again);
//! - [`party`]: FSPIOP parties, checked before they reach a request or a URL;
//! - [`outbound`]: the Connector's outbound API in its two-step flow, each failure telling
//!   whether money may have moved;
//! - [`scheme`]: the node's place in the scheme as `[mojaloop]` sets it (DFSP id, own party,
//!   Connector, currencies and their accounts, the parties it answers for);
//! - [`transfer`]: one transfer the node pays, exactly once whatever fails when (the steps a
//!   settlement and a payout share);
//! - [`settlement`]: settlement kind `mojaloop`, an account's settlements paid as Mojaloop
//!   transfers exactly once, and the peer's transfers to the node credited once (layer 5: it
//!   runs on the node);
//! - [`payouts`]: ILP → Mojaloop, a party's SPSP receiver whose completed payments are paid out
//!   in the scheme exactly once, and kept for an operator when refused (layer 5);
//! - [`backend`]: the backend API the Connector calls when the scheme pays the node (layer 6,
//!   with the other listeners: it runs on the node);
//! - [`health`]: the Connector's health as a real request (a party lookup) finds it, for the
//!   node's readiness: a wedged Connector answers `GET /` and hangs every lookup.
//!
//! Layer 3 but for [`backend`] (imports the packet codec's error codes and the HTTP client's
//! pieces). Wire facts:
//! `../shared/wire/mojaloop.md`.

pub mod amount;
pub mod backend;
pub mod error;
pub mod health;
pub mod outbound;
pub mod party;
pub mod payouts;
pub mod scheme;
pub mod settlement;
pub mod transfer;

/// The node as a DFSP of the scheme: its place in it and its client of the Connector.
#[derive(Debug)]
pub struct Dfsp {
    pub scheme: scheme::Scheme,
    pub outbound: outbound::OutboundClient,
    pub payouts: payouts::PayoutSignals,
    /// One transfer at a time per payee party (see [`transfer::PartyLocks`]).
    pub parties: transfer::PartyLocks,
}
