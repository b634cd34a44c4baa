//! ILP-over-HTTP (RFC 0035). The outgoing [`client`] sits below the packet path; the incoming
//! [`server`] sits above it and calls into it. Nothing in `client` may import `server`.
//! [`settlement_api`] is the separate listener settlement engines call back (RFC 0038); like
//! `server`, it is an edge: it calls down into [`crate::settlement`], nothing imports it.
//! [`origin`] reads where a URL connects (a leaf); [`tls`] opens those connections, plain or TLS,
//! for every client.

pub mod client;
pub mod listener;
pub mod origin;
pub mod server;
pub mod settlement_api;
pub mod tls;

/// RFC 0035's content type; Rafiki accepts nothing else on requests we send.
pub const CONTENT_TYPE_ILP: &str = "application/octet-stream";
/// Also accepted on requests we receive.
pub const CONTENT_TYPE_ILP_ALT: &str = "application/ilp+octet-stream";
