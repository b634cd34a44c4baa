//! Where a client connects for a URL, read once: plain or TLS (with the name the server's
//! certificate must carry), the `host:port` to dial, and the key its connections are pooled by.
//! A leaf, so that [`crate::account`] can derive an account's once, at configuration time, and
//! every client ([`crate::http::client`], the settlement engines', SPSP queries) reads URLs by the
//! same rule.

use hyper::Uri;
use rustls::pki_types::ServerName;
use std::sync::Arc;

/// `scheme://host:port`, read from an absolute `http://` or `https://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `Some` for `https://`: the name the server's certificate must be valid for (a DNS name, or
    /// an IP address for a URL that names one), checked on every handshake.
    pub tls: Option<ServerName<'static>>,
    /// `host:port` to connect to: the URL's port, else 80 (`http`) or 443 (`https`).
    pub address: Arc<str>,
    /// `http://host:port` or `https://host:port`: connections are pooled by this, so an `http`
    /// and an `https` URL to the same `host:port` never share one.
    pub key: Arc<str>,
}

/// Why a URL names no origin a client can connect to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("must be an absolute http:// or https:// URL with a host")]
    Url,
    /// `user:password@` would go out in the `Host` header and into the logs with the URL.
    #[error("must not carry user:password@ (the outgoing token is sent as a bearer token)")]
    UserInfo,
    /// A TLS server name is a DNS name or an IP address: `under_score.example` is neither.
    #[error("its host {0:?} is not a name a TLS certificate can be checked against")]
    ServerName(String),
}

impl Origin {
    pub fn from_uri(uri: &Uri) -> Result<Origin, OriginError> {
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(OriginError::Url),
        };
        let authority = uri.authority().ok_or(OriginError::Url)?;
        if authority.as_str().contains('@') {
            return Err(OriginError::UserInfo);
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(OriginError::Url);
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let server_name = match tls {
            // An IPv6 host keeps its brackets in `host:port`, but the name to check is the address.
            true => {
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                let name = ServerName::try_from(bare)
                    .map_err(|_| OriginError::ServerName(host.to_string()))?
                    .to_owned();
                Some(name)
            }
            false => None,
        };
        let scheme = if tls { "https" } else { "http" };
        Ok(Origin {
            tls: server_name,
            address: format!("{host}:{port}").into(),
            key: format!("{scheme}://{host}:{port}").into(),
        })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> Result<Origin, OriginError> {
        Origin::from_uri(&url.parse().unwrap())
    }

    #[test]
    fn default_ports_follow_the_scheme_and_the_key_keeps_the_scheme() {
        let plain = origin("http://peer.example/ilp").unwrap();
        assert_eq!(
            (&*plain.address, &*plain.key, plain.tls),
            ("peer.example:80", "http://peer.example:80", None)
        );
        let tls = origin("https://peer.example/ilp").unwrap();
        assert_eq!((&*tls.address, &*tls.key), ("peer.example:443", "https://peer.example:443"));
        assert_eq!(tls.tls, Some(ServerName::try_from("peer.example").unwrap().to_owned()));
        // The same host:port by both schemes: two pools, never one.
        let (a, b) = (origin("http://h:8443/").unwrap(), origin("https://h:8443/").unwrap());
        assert_eq!(a.address, b.address);
        assert_ne!(a.key, b.key);
    }

    #[test]
    fn ip_hosts_are_checked_as_addresses() {
        let v4 = origin("https://127.0.0.1:9/").unwrap();
        assert!(matches!(v4.tls, Some(ServerName::IpAddress(_))));
        let v6 = origin("https://[::1]:9/").unwrap();
        assert!(matches!(v6.tls, Some(ServerName::IpAddress(_))));
        assert_eq!(&*v6.address, "[::1]:9");
    }

    #[test]
    fn other_schemes_relative_urls_and_unnameable_hosts_are_refused() {
        for bad in ["ftp://h/", "/relative", "h:80"] {
            assert_eq!(Origin::from_uri(&bad.parse().unwrap()), Err(OriginError::Url), "{bad}");
        }
        // A last label of digits only is neither a DNS name nor an IP address.
        assert_eq!(origin("https://peer.1/"), Err(OriginError::ServerName("peer.1".into())));
        assert_eq!(origin("http://user:pw@peer.example/"), Err(OriginError::UserInfo));
        // Plain http needs no server name.
        assert!(origin("http://peer.1/").is_ok());
    }
}
