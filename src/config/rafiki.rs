//! `[rafiki]`: serving the auto-peering endpoint a Rafiki's `createOrUpdatePeerByUrl` calls. Off
//! unless `peering_listen` is set; then restricted (a secret path, an allow-list of Rafiki
//! connector URLs, or both; at least one) and rate-limited.

use super::Validator;
use crate::limits as defaults;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRafiki {
    peering_listen: Option<String>,
    /// `POST /<secret>` only; kept as its SHA-256.
    peering_secret: Option<String>,
    peering_secret_sha256: Option<String>,
    /// The Rafiki connector URLs (`ilpConnectorUrl`) allowed to peer.
    #[serde(default)]
    peering_allowed_urls: Vec<String>,
    peering_requests_per_minute_max: Option<u32>,
}

/// The validated `[rafiki]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RafikiConfig {
    pub peering: Option<PeeringServer>,
}

pub use crate::rafiki::peering::PeeringServer;

impl Validator {
    /// `http.public_url`: an absolute http(s) URL with a host, as a peer would post to it.
    pub(super) fn public_ilp_url(&mut self, url: String) -> Option<String> {
        let uri = self.check("http.public_url", url.parse::<hyper::Uri>())?;
        self.check("http.public_url", crate::http::origin::Origin::from_uri(&uri))?;
        Some(url)
    }

    /// `[rafiki]`; the endpoint is served with the admin API (`admin_on`) and tells Rafiki the
    /// node's `http.public_url` (`public_url_given`).
    pub(super) fn rafiki(&mut self, raw: RawRafiki, admin_on: bool, public_url_given: bool) -> RafikiConfig {
        let config = self.rafiki_section(raw);
        if config.peering.is_some() {
            if !admin_on {
                let why = "needs admin.token: the endpoint writes accounts as the admin API does, and is served with it";
                self.problem("rafiki.peering_listen", why);
            }
            if !public_url_given && !self.problems.iter().any(|p| p.path == "http.public_url") {
                self.problem(
                    "rafiki.peering_listen",
                    "needs http.public_url: the answer tells Rafiki where to send packets",
                );
            }
        }
        config
    }

    fn rafiki_section(&mut self, raw: RawRafiki) -> RafikiConfig {
        let Some(listen) = raw.peering_listen else {
            let given = raw.peering_secret.is_some()
                || raw.peering_secret_sha256.is_some()
                || !raw.peering_allowed_urls.is_empty();
            if given {
                self.problem(
                    "rafiki.peering_listen",
                    "required with the other peering keys (auto-peering is off without it)",
                );
            }
            return RafikiConfig { peering: None };
        };
        let listen = self.check("rafiki.peering_listen", listen.parse::<SocketAddr>());
        let secret_sha256 = self.token_or_hash(
            (raw.peering_secret.as_deref(), raw.peering_secret_sha256.as_deref()),
            ("rafiki.peering_secret", "rafiki.peering_secret_sha256"),
        );
        if secret_sha256.is_none()
            && raw.peering_allowed_urls.is_empty()
            && !self.problems.iter().any(|p| p.path.starts_with("rafiki."))
        {
            self.problem(
                "rafiki.peering_listen",
                "the endpoint has no authentication of its own: give peering_secret or peering_allowed_urls (or both)",
            );
        }
        let mut allowed_urls = Vec::new();
        for (i, url) in raw.peering_allowed_urls.iter().enumerate() {
            let path = format!("rafiki.peering_allowed_urls[{i}]");
            if let Some(uri) = self.check(&path, url.parse::<hyper::Uri>()) {
                if self.check(&path, crate::http::origin::Origin::from_uri(&uri)).is_some() {
                    allowed_urls.push(url.trim_end_matches('/').to_string());
                }
            }
        }
        let requests_per_minute_max =
            raw.peering_requests_per_minute_max.unwrap_or(defaults::RAFIKI_PEERING_REQUESTS_PER_MINUTE_MAX);
        if requests_per_minute_max == 0 {
            self.problem("rafiki.peering_requests_per_minute_max", "must be greater than 0");
        }
        RafikiConfig {
            peering: listen.map(|listen| PeeringServer {
                listen,
                secret_sha256,
                allowed_urls,
                requests_per_minute_max,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "[node]\nilp_address = \"test.node\"\n[http]\npublic_url = \"https://ilp.example/\"\n[admin]\ntoken = \"t\"\n";

    fn paths(text: &str) -> Vec<String> {
        Config::from_toml(text).unwrap_err().0.into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn the_peering_endpoint_is_off_by_default_and_restricted_when_on() {
        assert_eq!(Config::from_toml(BASE).unwrap().rafiki.peering, None);
        let on = format!("{BASE}[rafiki]\npeering_listen = \"127.0.0.1:7795\"\npeering_secret = \"s3cret\"\npeering_allowed_urls = [\"http://rafiki:3002/\"]\n");
        let peering = Config::from_toml(&on).unwrap().rafiki.peering.unwrap();
        assert_eq!(peering.allowed_urls, ["http://rafiki:3002"]);
        assert_eq!(peering.secret_sha256, Some(crate::account::hash_token(b"s3cret")));
        assert_eq!(peering.requests_per_minute_max, crate::limits::RAFIKI_PEERING_REQUESTS_PER_MINUTE_MAX);
        let open = format!("{BASE}[rafiki]\npeering_listen = \"127.0.0.1:7795\"\n");
        assert_eq!(paths(&open), ["rafiki.peering_listen"], "no restriction");
        let listenless = format!("{BASE}[rafiki]\npeering_secret = \"s\"\n");
        assert_eq!(paths(&listenless), ["rafiki.peering_listen"]);
        let bad_url = format!(
            "{BASE}[rafiki]\npeering_listen = \"127.0.0.1:7795\"\npeering_allowed_urls = [\"ftp://x\"]\n"
        );
        assert_eq!(paths(&bad_url), ["rafiki.peering_allowed_urls[0]"]);
    }
}
