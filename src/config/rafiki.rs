//! `[rafiki]`: serving the auto-peering endpoint a Rafiki's `createOrUpdatePeerByUrl` calls. Off
//! unless `peering_listen` is set; then restricted (a secret path, an allow-list of Rafiki
//! connector URLs, or both; at least one) and rate-limited.
//!
//! `[rafiki.admin]`: the Rafiki admin API the node keeps its peers' liquidity in step through
//! (accounts with `rafiki_liquidity` need it).

use super::Validator;
use crate::limits as defaults;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

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
    pub(super) admin: Option<RawRafikiAdmin>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRafikiAdmin {
    url: String,
    secret: String,
    tenant_id: String,
    request_timeout_ms: Option<u64>,
    attempts_max: Option<u32>,
    reconcile_interval_ms: Option<u64>,
    webhook_listen: Option<String>,
    /// Rafiki's webhook signing secret: an HMAC key, kept as given.
    webhook_secret: Option<String>,
}

/// The validated `[rafiki]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RafikiConfig {
    pub peering: Option<PeeringServer>,
    pub admin: Option<RafikiAdmin>,
}

/// `[rafiki.admin]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RafikiAdmin {
    pub api: AdminApiSettings,
    /// How often each Rafiki peer's liquidity is compared with the node's figure.
    pub reconcile_interval: Duration,
    /// Where Rafiki's webhooks arrive, and the secret they are signed with.
    pub webhooks: Option<(SocketAddr, crate::account::Secret)>,
}

pub use crate::rafiki::admin_api::AdminApiSettings;

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
    pub(super) fn rafiki(
        &mut self,
        mut raw: RawRafiki,
        admin_on: bool,
        public_url_given: bool,
    ) -> RafikiConfig {
        let admin = raw.admin.take().and_then(|a| self.rafiki_admin(a));
        let mut config = self.rafiki_section(raw);
        config.admin = admin;
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
            return RafikiConfig { peering: None, admin: None };
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
            admin: None,
            peering: listen.map(|listen| PeeringServer {
                listen,
                secret_sha256,
                allowed_urls,
                requests_per_minute_max,
            }),
        }
    }
}

impl Validator {
    fn rafiki_admin(&mut self, raw: RawRafikiAdmin) -> Option<RafikiAdmin> {
        let before = self.problems.len();
        if let Some(uri) = self.check("rafiki.admin.url", raw.url.parse::<hyper::Uri>()) {
            self.check("rafiki.admin.url", crate::http::origin::Origin::from_uri(&uri));
        }
        if raw.secret.is_empty() {
            self.problem("rafiki.admin.secret", "must not be empty");
        }
        if !crate::rules::is_uuid(&raw.tenant_id) {
            self.problem("rafiki.admin.tenant_id", "must be the operator's tenant id, a UUID");
        }
        let timeout = raw.request_timeout_ms.unwrap_or(defaults::RAFIKI_ADMIN_REQUEST_TIMEOUT_MS);
        if !(100..=60_000).contains(&timeout) {
            self.problem("rafiki.admin.request_timeout_ms", "must be 100 to 60000 ms");
        }
        let attempts = raw.attempts_max.unwrap_or(defaults::RAFIKI_ADMIN_ATTEMPTS_MAX);
        if !(1..=10).contains(&attempts) {
            self.problem("rafiki.admin.attempts_max", "must be 1 to 10");
        }
        let reconcile = raw.reconcile_interval_ms.unwrap_or(defaults::RAFIKI_RECONCILE_INTERVAL_MS);
        if reconcile < 1_000 {
            self.problem("rafiki.admin.reconcile_interval_ms", "must be at least 1000 ms");
        }
        let webhooks = match (raw.webhook_listen, raw.webhook_secret) {
            (Some(listen), Some(secret)) if !secret.is_empty() => self
                .check("rafiki.admin.webhook_listen", listen.parse::<SocketAddr>())
                .map(|listen| (listen, crate::account::Secret::new(secret))),
            (Some(_), _) => {
                self.problem(
                    "rafiki.admin.webhook_secret",
                    "required with webhook_listen: every webhook's signature is checked",
                );
                None
            }
            (None, Some(_)) => {
                self.problem("rafiki.admin.webhook_listen", "required with webhook_secret");
                None
            }
            (None, None) => None,
        };
        (self.problems.len() == before).then(|| RafikiAdmin {
            webhooks,
            api: AdminApiSettings {
                url: raw.url,
                secret: crate::account::Secret::new(raw.secret),
                tenant_id: raw.tenant_id.to_ascii_lowercase(),
                request_timeout: Duration::from_millis(timeout),
                attempts_max: attempts,
                retry_first: Duration::from_millis(200),
            },
            reconcile_interval: Duration::from_millis(reconcile),
        })
    }

    /// Accounts with `rafiki_liquidity` need `[rafiki.admin]`, and one Rafiki peer names one
    /// account (a webhook about it must find one).
    pub(super) fn rafiki_accounts(&mut self, accounts: &[crate::account::Account], admin_given: bool) {
        let mut peers = std::collections::HashMap::new();
        for (i, account) in accounts.iter().enumerate() {
            let Some(rafiki) = &account.rafiki_liquidity else { continue };
            let path = format!("accounts[{i}].rafiki_liquidity");
            if !admin_given {
                self.problem(&path, "needs the node's [rafiki.admin] section (the Rafiki admin API it records liquidity through)");
            }
            if let Some(other) = peers.insert(rafiki.peer_id.clone(), account.id.clone()) {
                self.problem(
                    format!("{path}.peer_id"),
                    format!("account {other:?} has the same Rafiki peer"),
                );
            }
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

    const ADMIN: &str = "[rafiki.admin]\nurl = \"http://127.0.0.1:3001/graphql\"\nsecret = \"shh\"\ntenant_id = \"8E1DB008-ab2f-4f1d-8c44-593bf2d54d1a\"\n";
    const PEER_ID: &str = "5c1f6b2e-7d3a-4e0b-9f8a-1b2c3d4e5f60";

    fn rafiki_peer(extra: &str) -> String {
        format!(
            "[[accounts]]\nid = \"rafiki\"\nrelation = \"peer\"\nasset_code = \"USD\"\nasset_scale = 9\nilp_address = \"test.rafiki\"\nsettle_threshold = -300\nsettle_to = -1000\n{extra}"
        )
    }

    #[test]
    fn a_rafiki_peer_needs_the_admin_api_and_a_negative_threshold() {
        let peer = rafiki_peer(&format!("rafiki_liquidity = {{ peer_id = \"{PEER_ID}\" }}\n"));
        let config = Config::from_toml(&format!("{BASE}{ADMIN}{peer}")).unwrap();
        let admin = config.rafiki.admin.as_ref().unwrap();
        assert_eq!(admin.api.tenant_id, "8e1db008-ab2f-4f1d-8c44-593bf2d54d1a");
        assert_eq!(admin.api.attempts_max, crate::limits::RAFIKI_ADMIN_ATTEMPTS_MAX);
        assert!(!format!("{admin:?}").contains("shh"), "the secret is never printed");
        let account = &config.accounts[0];
        assert_eq!(&*account.rafiki_liquidity.as_ref().unwrap().peer_id, PEER_ID);
        assert!(account.settles() && account.settlement_rail().is_none());
        // Its record round-trips (the admin API and the shared store carry it).
        assert_eq!(account.to_record().rafiki_liquidity.unwrap().peer_id, PEER_ID);

        assert_eq!(paths(&format!("{BASE}{peer}")), ["accounts[0].rafiki_liquidity"], "no [rafiki.admin]");
        let bad_id = rafiki_peer("rafiki_liquidity = { peer_id = \"peer-1\" }\n");
        assert_eq!(paths(&format!("{BASE}{ADMIN}{bad_id}")), ["accounts[0].rafiki_liquidity.peer_id"]);
        let positive = peer
            .replace("settle_threshold = -300", "settle_threshold = 300")
            .replace("settle_to = -1000", "settle_to = 0");
        assert_eq!(paths(&format!("{BASE}{ADMIN}{positive}")), ["accounts[0].settle_threshold"]);
        let child = peer
            .replace("relation = \"peer\"", "relation = \"child\"")
            .replace("ilp_address = \"test.rafiki\"\n", "");
        assert_eq!(paths(&format!("{BASE}{ADMIN}{child}")), ["accounts[0].rafiki_liquidity"]);
        let twice = format!(
            "{peer}{}",
            peer.replace("id = \"rafiki\"", "id = \"rafiki2\"").replace("test.rafiki", "test.rafiki2")
        );
        assert_eq!(paths(&format!("{BASE}{ADMIN}{twice}")), ["accounts[1].rafiki_liquidity.peer_id"]);
        let bad_admin =
            ADMIN.replace("8E1DB008-ab2f-4f1d-8c44-593bf2d54d1a", "tenant").replace("http://", "ftp://");
        let mut found = paths(&format!("{BASE}{bad_admin}"));
        found.sort();
        assert_eq!(found, ["rafiki.admin.tenant_id", "rafiki.admin.url"]);
    }
}
