//! The SPSP client (RFC 0009): from a receiver as a person writes it to what a STREAM sender
//! needs, its ILP address and the connection's shared secret.
//!
//! A receiver is either
//! - a **payment pointer** (RFC 0026): `$host/path` is queried at `https://host/path`, and `$host`
//!   alone at `https://host/.well-known/pay`. Only https; no port, user, query or fragment (the
//!   RFC's syntax has none, and @interledger/pay refuses them too); a trailing slash is dropped;
//! - an **SPSP URL**, `http://` or `https://`, queried as it is (a wallet address URL such as
//!   Rafiki's answers SPSP on the same URL).
//!
//! The query is one `GET` with `Accept: application/spsp4+json` on a connection of its own
//! ([`crate::http::client::get`], bounded in time and body). The answer must be 200 with
//! `Content-Type: application/spsp4+json`, and JSON with a valid `destination_account` and a
//! `shared_secret` that is base64 of exactly 32 bytes (padded or not, standard or URL-safe
//! alphabet: senders in the wild produce both). Every other answer is a typed [`SpspError`].
//!
//! Layer 3, beside [`crate::http::client`], which it calls; it also names [`crate::stream`]'s
//! shared secret and [`crate::packet`]'s address.

use crate::http::client::{get, GetError};
use crate::http::tls::Connector;
use crate::packet::{AddressError, IlpAddress};
use crate::stream::SharedSecret;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use hyper::Uri;
use std::time::Duration;

/// RFC 0009's media type, asked for and required in the answer.
pub const CONTENT_TYPE: &str = "application/spsp4+json";
/// Where `$host` alone points (RFC 0026).
const WELL_KNOWN_PATH: &str = "/.well-known/pay";
const SHARED_SECRET_BYTES: usize = 32;

/// What a sender needs to pay the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentTarget {
    pub destination: IlpAddress,
    pub shared_secret: SharedSecret,
    /// The receiver sends STREAM receipts (RFC 0039).
    pub receipts_enabled: bool,
}

/// Why a receiver could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SpspError {
    #[error("not a payment pointer ($host/path) or an http(s) SPSP URL: {0}")]
    Receiver(&'static str),
    #[error("the SPSP query got no whole answer within {} ms", .0.as_millis())]
    TimedOut(Duration),
    /// Connecting, the TLS handshake, or the HTTP exchange failed.
    #[error("the SPSP query failed: {0}")]
    Query(GetError),
    #[error("no receiver at this address (HTTP 404)")]
    NotFound,
    #[error("the server does not answer SPSP (HTTP 406 to Accept: application/spsp4+json)")]
    NotAcceptable,
    #[error("the SPSP server answered HTTP {0}")]
    Status(u16),
    #[error("the answer's Content-Type is {0:?}, not application/spsp4+json")]
    ContentType(Option<String>),
    #[error("the answer is not SPSP JSON: {0}")]
    Json(String),
    #[error("the answer's destination_account is not an ILP address: {0}")]
    DestinationAccount(AddressError),
    #[error("the answer's shared_secret is not base64 of 32 bytes")]
    SharedSecret,
}

impl From<GetError> for SpspError {
    fn from(e: GetError) -> Self {
        match e {
            GetError::TimedOut(after) => SpspError::TimedOut(after),
            other => SpspError::Query(other),
        }
    }
}

/// The answer's fields; others are ignored (RFC 0009 lets servers add their own).
#[derive(serde::Deserialize)]
struct Answer {
    destination_account: String,
    shared_secret: String,
    #[serde(default)]
    receipts_enabled: bool,
}

/// Resolves `receiver` (a payment pointer or an SPSP URL) with one query through `connector`,
/// within `timeout`, reading at most `body_bytes_max` of the answer.
pub async fn resolve(
    connector: &Connector,
    receiver: &str,
    timeout: Duration,
    body_bytes_max: usize,
) -> Result<PaymentTarget, SpspError> {
    let url = query_url(receiver)?;
    let fetched = get(connector, &url, CONTENT_TYPE, body_bytes_max, timeout).await?;
    match fetched.status.as_u16() {
        200 => {}
        404 => return Err(SpspError::NotFound),
        406 => return Err(SpspError::NotAcceptable),
        other => return Err(SpspError::Status(other)),
    }
    if !is_spsp_content_type(fetched.content_type.as_deref()) {
        return Err(SpspError::ContentType(fetched.content_type));
    }
    read_answer(&fetched.body)
}

/// The URL to query for `receiver`.
pub fn query_url(receiver: &str) -> Result<Uri, SpspError> {
    match receiver.strip_prefix('$') {
        Some(pointer) => pointer_url(pointer),
        None => spsp_url(receiver),
    }
}

/// `host[/path]` of a payment pointer, as its https URL.
fn pointer_url(pointer: &str) -> Result<Uri, SpspError> {
    let (host, path) = pointer.split_at(pointer.find('/').unwrap_or(pointer.len()));
    if host.is_empty() {
        return Err(SpspError::Receiver("a payment pointer needs a host"));
    }
    if host.contains([':', '@']) {
        return Err(SpspError::Receiver("a payment pointer has no port or user"));
    }
    // A DNS name or an IPv4 address: what a TLS certificate can be checked against.
    if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') || host.starts_with('.') {
        return Err(SpspError::Receiver("a payment pointer's host is a domain name"));
    }
    if path.contains(['?', '#']) {
        return Err(SpspError::Receiver("a payment pointer has no query or fragment"));
    }
    let path = path.strip_suffix('/').unwrap_or(path);
    let path = if path.is_empty() { WELL_KNOWN_PATH } else { path };
    let url: Uri = format!("https://{host}{path}")
        .parse()
        .map_err(|_| SpspError::Receiver("a payment pointer's host and path must form a URL"))?;
    // The parser must have read what was written: the host as the whole authority.
    if url.authority().map(|a| a.as_str()) != Some(host) || url.path() != path {
        return Err(SpspError::Receiver("a payment pointer's host and path must form a URL"));
    }
    Ok(url)
}

/// An `http://` or `https://` URL with a host, as given.
fn spsp_url(text: &str) -> Result<Uri, SpspError> {
    let url: Uri = text.parse().map_err(|_| SpspError::Receiver("not a URL"))?;
    if !matches!(url.scheme_str(), Some("http" | "https")) {
        return Err(SpspError::Receiver("an SPSP URL is http:// or https://"));
    }
    match url.authority() {
        Some(a) if !a.host().is_empty() && !a.as_str().contains('@') => Ok(url),
        Some(_) => Err(SpspError::Receiver("an SPSP URL has a host and no user")),
        None => Err(SpspError::Receiver("an SPSP URL has a host")),
    }
}

/// `application/spsp4+json`, in any case, with or without parameters (`; charset=utf-8`).
fn is_spsp_content_type(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

/// The answer's JSON, checked field by field.
fn read_answer(body: &[u8]) -> Result<PaymentTarget, SpspError> {
    let answer: Answer = serde_json::from_slice(body).map_err(|e| SpspError::Json(e.to_string()))?;
    let destination =
        IlpAddress::parse(&answer.destination_account).map_err(SpspError::DestinationAccount)?;
    let shared_secret = decode_secret(&answer.shared_secret).ok_or(SpspError::SharedSecret)?;
    Ok(PaymentTarget { destination, shared_secret, receipts_enabled: answer.receipts_enabled })
}

/// Base64 of exactly 32 bytes, in the standard or the URL-safe alphabet, padded or not.
fn decode_secret(text: &str) -> Option<SharedSecret> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
    let bytes = STANDARD.decode(text).or_else(|_| URL_SAFE.decode(text)).ok()?;
    let bytes: [u8; SHARED_SECRET_BYTES] = bytes.try_into().ok()?;
    Some(SharedSecret::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(receiver: &str) -> String {
        query_url(receiver).unwrap_or_else(|e| panic!("{receiver}: {e}")).to_string()
    }

    fn refused(receiver: &str) {
        assert!(matches!(query_url(receiver), Err(SpspError::Receiver(_))), "{receiver} was accepted");
    }

    #[test]
    fn payment_pointers_resolve_as_rfc_0026_says() {
        assert_eq!(url("$example.com"), "https://example.com/.well-known/pay");
        assert_eq!(url("$example.com/"), "https://example.com/.well-known/pay");
        assert_eq!(url("$example.com/alice"), "https://example.com/alice");
        assert_eq!(url("$example.com/alice/"), "https://example.com/alice", "the trailing slash is dropped");
        assert_eq!(url("$ilp.rafiki.money/alice/usd"), "https://ilp.rafiki.money/alice/usd");
        assert_eq!(url("$example.com/.well-known/pay"), "https://example.com/.well-known/pay");
        assert_eq!(url("$example.com/%E2%82%AC"), "https://example.com/%E2%82%AC");
        assert_eq!(url("$127.0.0.1/bob"), "https://127.0.0.1/bob");
    }

    #[test]
    fn payment_pointers_outside_the_syntax_are_refused() {
        for bad in [
            "$",
            "$/alice",
            "$example.com:8443/alice",
            "$user@example.com",
            "$example.com/alice?x=1",
            "$example.com/alice#top",
            "$exa mple.com",
            "$example.com/al ice",
            "$$example.com",
            "$.example.com",
            "$example_com",
        ] {
            refused(bad);
        }
    }

    #[test]
    fn spsp_urls_are_taken_as_they_are() {
        assert_eq!(url("https://wallet.example/alice"), "https://wallet.example/alice");
        assert_eq!(url("http://127.0.0.1:7768/spsp/bob?tag=7"), "http://127.0.0.1:7768/spsp/bob?tag=7");
        for bad in [
            "ftp://example.com/x",
            "example.com/alice",
            "/alice",
            "",
            "https://user@example.com/",
            "https:///x",
        ] {
            refused(bad);
        }
    }

    #[test]
    fn the_content_type_is_spsp4_with_any_parameters() {
        assert!(is_spsp_content_type(Some("application/spsp4+json")));
        assert!(is_spsp_content_type(Some("Application/SPSP4+JSON; charset=utf-8")));
        assert!(!is_spsp_content_type(Some("application/json")));
        assert!(!is_spsp_content_type(Some("application/spsp+json")));
        assert!(!is_spsp_content_type(None));
    }

    #[test]
    fn an_answer_is_checked_field_by_field() {
        let secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let good =
            format!(r#"{{"destination_account":"test.rafiki.abc","shared_secret":"{secret}","extra":1}}"#);
        let target = read_answer(good.as_bytes()).unwrap();
        assert_eq!(target.destination.as_str(), "test.rafiki.abc");
        let expected: Vec<u8> = (0..32).collect();
        assert_eq!(&target.shared_secret.as_bytes()[..], &expected[..]);
        assert!(!target.receipts_enabled);

        let unpadded_url_safe = secret.trim_end_matches('=').replace('/', "_").replace('+', "-");
        let body = format!(
            r#"{{"destination_account":"g.x.y","shared_secret":"{unpadded_url_safe}","receipts_enabled":true}}"#
        );
        let target = read_answer(body.as_bytes()).unwrap();
        assert!(target.receipts_enabled);
        assert_eq!(&target.shared_secret.as_bytes()[..], &expected[..]);

        let with = |address: &str, secret: &str| {
            read_answer(
                format!(r#"{{"destination_account":"{address}","shared_secret":"{secret}"}}"#).as_bytes(),
            )
        };
        assert!(matches!(with("not an address", secret), Err(SpspError::DestinationAccount(_))));
        assert!(matches!(with("g.x", "AAEC"), Err(SpspError::SharedSecret)), "3 bytes");
        let thirty_three = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g";
        assert!(matches!(with("g.x", thirty_three), Err(SpspError::SharedSecret)));
        assert!(matches!(with("g.x", "!!!"), Err(SpspError::SharedSecret)));
        assert!(matches!(read_answer(b"{}"), Err(SpspError::Json(_))));
        assert!(matches!(read_answer(b"<html>"), Err(SpspError::Json(_))));
        assert!(matches!(
            read_answer(br#"{"destination_account":7,"shared_secret":""}"#),
            Err(SpspError::Json(_))
        ));
    }
}
