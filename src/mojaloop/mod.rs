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
pub mod scheme;
