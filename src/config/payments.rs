//! `[spsp]` and `[stream]`: how the node receives payments itself (local accounts). Read with the
//! same [`Validator`] as the rest of the file.

use super::defaults;
use crate::http::listener::ApiLimits;
use crate::rules::Validator;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// `[spsp]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpsp {
    listen: Option<String>,
    public_url: Option<String>,
    connections_max: Option<usize>,
    header_read_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
}

/// `[stream]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStream {
    secret: Option<String>,
}

impl fmt::Debug for RawStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawStream").field("secret", &self.secret.as_ref().map(|_| "***")).finish()
    }
}

/// The validated `[spsp]` section: the public listener that answers SPSP queries (RFC 0009).
#[derive(Debug, Clone)]
pub struct SpspConfig {
    pub listen: SocketAddr,
    /// `listen` was named: bind it even when no local account exists at start-up (they may be
    /// added later through the admin API or Redis). Otherwise it is bound only when one does.
    pub listen_always: bool,
    /// The base URL under which senders reach the listener (a TLS proxy's, usually), without a
    /// trailing `/`; the admin API shows receivers' SPSP URLs under it. `None`: the listener's
    /// own address, `http://<address bound>`.
    pub public_url: Option<String>,
    pub limits: ApiLimits,
}

/// The STREAM server secret, from which every receiver credential is derived. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamSecret(pub [u8; defaults::STREAM_SECRET_BYTES]);

impl fmt::Debug for StreamSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamSecret(***)")
    }
}

/// The validated `[stream]` section.
#[derive(Debug, Clone, Default)]
pub struct StreamConfig {
    /// `None`: not configured. With the memory store the node makes one at start-up (credentials
    /// then last as long as the process, like its balances); with Redis every instance shares
    /// the one kept in Redis (made by the first instance that needs it), so any instance can
    /// receive any payment.
    pub secret: Option<StreamSecret>,
}

impl Validator {
    pub(super) fn spsp(&mut self, raw: RawSpsp) -> SpspConfig {
        let listen_always = raw.listen.is_some();
        let listen = raw.listen.as_deref().unwrap_or(defaults::SPSP_LISTEN);
        let listen = self.check("spsp.listen", listen.parse::<SocketAddr>());
        let listen = listen.unwrap_or_else(|| defaults::SPSP_LISTEN.parse().expect("valid default"));
        let public_url = raw.public_url.map(|url| self.public_url(url));
        let limits = ApiLimits {
            body_bytes_max: defaults::SPSP_BODY_BYTES_MAX,
            connections_max: self.connections_max(
                "spsp.connections_max",
                raw.connections_max,
                defaults::SPSP_CONNECTIONS_MAX,
            ),
            header_read_timeout: self.positive_ms(
                "spsp.header_read_timeout_ms",
                raw.header_read_timeout_ms,
                defaults::SPSP_HEADER_READ_TIMEOUT_MS,
            ),
            body_read_timeout: Duration::from_millis(defaults::SPSP_BODY_READ_TIMEOUT_MS),
            shutdown_grace: Duration::from_millis(
                raw.shutdown_grace_ms.unwrap_or(defaults::SPSP_SHUTDOWN_GRACE_MS),
            ),
        };
        SpspConfig { listen, listen_always, public_url, limits }
    }

    /// An absolute http(s) URL with a host and no query or fragment, kept without a trailing `/`.
    fn public_url(&mut self, url: String) -> String {
        let parsed = url.parse::<hyper::Uri>().ok().filter(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() && u.query().is_none()
        });
        if parsed.is_none() || url.contains('#') {
            self.problem("spsp.public_url", "must be an absolute http:// or https:// URL without a query");
        }
        url.trim_end_matches('/').to_string()
    }

    pub(super) fn stream(&mut self, raw: RawStream) -> StreamConfig {
        let Some(text) = raw.secret else { return StreamConfig::default() };
        let parsed =
            hex::decode(&text).ok().and_then(|b| <[u8; defaults::STREAM_SECRET_BYTES]>::try_from(b).ok());
        if parsed.is_none() {
            // The value itself is never echoed.
            self.problem(
                "stream.secret",
                format!(
                    "must be {} hexadecimal characters (a 32-byte secret)",
                    defaults::STREAM_SECRET_BYTES * 2
                ),
            );
        }
        StreamConfig { secret: parsed.map(StreamSecret) }
    }
}
