//! The real Mojaloop Connector (`@mojaloop/sdk-scheme-adapter` 18.0.2 from
//! `tests/mojaloop/node_modules`) as a child process, started as `tests/common/mojaloop.rs` starts
//! it for the tests, compactly (an example cannot import `tests/common`):
//!
//! - `node -r tests/mojaloop/guard.js .../src/index.js`: guard.js binds its servers to 127.0.0.1,
//!   stands in for the native gRPC module it loads but never uses, and exits when its stdin pipe
//!   from this tool closes, so a Connector also dies with a tool killed by SIGKILL;
//! - its environment cleared and set here alone (`PATH` and `HOME` kept), its working directory
//!   an empty one of its own (the package reads a `.env` file there);
//! - its own `redis-server` (`CACHE_URL`) on a claimed port, never the shared 6379;
//! - ready when its outbound API's `GET /` answers 200 and its inbound API answers at all (both
//!   listen only once it is connected to its Redis).
//!
//! Two of them back to back (each one's `PEER_ENDPOINT` the other's inbound port) make a scheme
//! without a hub: party lookup, quote and transfer go straight from the payer to the payee.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::compare::lab::Lab;
use crate::compare::redis::start_redis_at;
use crate::compare::targets::find_node;
use crate::mojaloop::ports::Ports;

pub(crate) const PACKAGE: &str = "@mojaloop/sdk-scheme-adapter";
/// The version `tests/mojaloop/package.json` pins, checked in the installed package.
pub(crate) const VERSION: &str = "18.0.2";
/// From spawn to both APIs answering: ~3.5 s on an idle 2-core machine, many times that when a
/// build shares it.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// One readiness probe (a plain `GET /`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `node` and the directory holding `guard.js` and the installed package.
pub(crate) struct Js {
    pub(crate) node: PathBuf,
    dir: PathBuf,
}

impl Js {
    /// Checks that `node` runs and that `dir` holds the pinned package.
    pub(crate) fn find(dir: &Path) -> Result<Js, String> {
        let node = find_node().ok_or("node not found (PATH or $NODE): the Connectors cannot run")?;
        let manifest = dir.join("node_modules").join(PACKAGE).join("package.json");
        let text = std::fs::read_to_string(&manifest).map_err(|e| {
            format!(
                "{}: {e}: run `npm ci --prefix {} --no-audit --no-fund --ignore-scripts`",
                manifest.display(),
                dir.display()
            )
        })?;
        let version = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["version"].as_str().map(str::to_string))
            .unwrap_or_default();
        if version != VERSION {
            return Err(format!("{} is {PACKAGE} {version:?}, not the pinned {VERSION}", manifest.display()));
        }
        let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Js { node, dir })
    }
}

/// The ports one Connector listens on (each the environment variable of the same name).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectorPorts {
    /// FSPIOP from the scheme, here the other Connector: `INBOUND_LISTEN_PORT`.
    pub(crate) inbound: u16,
    /// The DFSP's API to pay: `OUTBOUND_LISTEN_PORT`.
    pub(crate) outbound: u16,
    /// `TEST_LISTEN_PORT`: served only with test features on, claimed anyway (it is read).
    pub(crate) test: u16,
    /// `METRICS_SERVER_LISTEN_PORT`.
    pub(crate) metrics: u16,
    /// Its own redis-server's port.
    pub(crate) redis: u16,
}

impl ConnectorPorts {
    pub(crate) fn claim(ports: &Ports) -> Result<ConnectorPorts, String> {
        Ok(ConnectorPorts {
            inbound: ports.claim()?,
            outbound: ports.claim()?,
            test: ports.claim()?,
            metrics: ports.claim()?,
            redis: ports.claim()?,
        })
    }

    pub(crate) fn outbound_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.outbound))
    }
}

/// One Connector of a pair: what it is called and where it listens.
pub(crate) struct ConnectorSpec {
    /// The lab's name for it (its log is `<name>.log`).
    pub(crate) name: String,
    /// `DFSP_ID`.
    pub(crate) dfsp_id: &'static str,
    pub(crate) ports: ConnectorPorts,
    /// `BACKEND_ENDPOINT`, `host:port`.
    pub(crate) backend: String,
}

/// A running Connector and its Redis, killed by [`Lab`] at the latest.
pub(crate) struct Connector {
    pub(crate) pid: u32,
    pub(crate) redis_pid: u32,
}

impl Connector {
    pub(crate) fn stop(&self, lab: &Lab) {
        lab.children.kill(self.pid);
        lab.children.kill(self.redis_pid);
    }
}

/// Every variable one Connector is started with. The same for every Connector of a run but for
/// the ids, the ports and the backend: both sides of a comparison run the same configuration.
fn env(spec: &ConnectorSpec, peer: &ConnectorPorts) -> Vec<(&'static str, String)> {
    let ports = &spec.ports;
    vec![
        ("DFSP_ID", spec.dfsp_id.to_string()),
        ("ILP_SECRET", format!("{}-ilp-secret", spec.dfsp_id)),
        ("CACHE_URL", format!("redis://127.0.0.1:{}", ports.redis)),
        ("INBOUND_LISTEN_PORT", ports.inbound.to_string()),
        ("OUTBOUND_LISTEN_PORT", ports.outbound.to_string()),
        ("TEST_LISTEN_PORT", ports.test.to_string()),
        ("METRICS_SERVER_LISTEN_PORT", ports.metrics.to_string()),
        ("PEER_ENDPOINT", format!("127.0.0.1:{}", peer.inbound)),
        ("BACKEND_ENDPOINT", spec.backend.clone()),
        // One POST /transfers on the payer's outbound API completes the whole transfer.
        ("AUTO_ACCEPT_PARTY", "true".into()),
        ("AUTO_ACCEPT_QUOTES", "true".into()),
        ("EXPIRY_SECONDS", "60".into()),
        ("REQUEST_PROCESSING_TIMEOUT_SECONDS", "30".into()),
        // No JWS and no mutual TLS between the two Connectors: loopback, no keys to manage.
        ("JWS_SIGN", "false".into()),
        ("VALIDATE_INBOUND_JWS", "false".into()),
        ("INBOUND_MUTUAL_TLS_ENABLED", "false".into()),
        ("OUTBOUND_MUTUAL_TLS_ENABLED", "false".into()),
        ("LOG_INDENT", "0".into()),
    ]
}

/// Starts `payer` and `payee` back to back, each with its own redis-server, and waits until both
/// answer.
pub(crate) fn start_pair(
    lab: &Lab,
    js: &Js,
    redis_version: &str,
    payer: &ConnectorSpec,
    payee: &ConnectorSpec,
) -> Result<(Connector, Connector), String> {
    let mut started = Vec::new();
    for (spec, peer) in [(payer, &payee.ports), (payee, &payer.ports)] {
        let redis_name = format!("{}-redis", spec.name);
        let redis = start_redis_at(lab, &redis_name, spec.ports.redis, redis_version.to_string())?;
        let cwd = lab.dir.join(&spec.name);
        std::fs::create_dir_all(&cwd).map_err(|e| format!("create {}: {e}", cwd.display()))?;
        let mut cmd = Command::new(&js.node);
        cmd.current_dir(&cwd)
            .arg("-r")
            .arg(js.dir.join("guard.js"))
            .arg(js.dir.join("node_modules").join(PACKAGE).join("src").join("index.js"))
            .env_clear()
            .envs(["PATH", "HOME"].iter().filter_map(|k| Some((k, std::env::var_os(k)?))))
            .envs(env(spec, peer));
        // stdin piped, never written: guard.js exits when it closes.
        let pid = lab.start(&spec.name, &mut cmd, true)?;
        started.push(Connector { pid, redis_pid: redis.pid });
    }
    // Started together, waited for together: each start-up takes seconds.
    for (spec, connector) in [payer, payee].iter().zip(&started) {
        lab.wait_for(&spec.name, connector.pid, "answering on its APIs", START_TIMEOUT, || {
            http_status(spec.ports.outbound) == Some(200) && http_status(spec.ports.inbound).is_some()
        })?;
    }
    let payee_connector = started.pop().expect("two started");
    let payer_connector = started.pop().expect("two started");
    Ok((payer_connector, payee_connector))
}

/// The status of `GET /` on 127.0.0.1:`port`, if it answers HTTP.
fn http_status(port: u16) -> Option<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.strip_prefix("HTTP/1.1 ").or_else(|| line.strip_prefix("HTTP/1.0 "))?.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_get_the_same_configuration_but_ids_ports_and_backend() {
        let p = |base: u16| ConnectorPorts {
            inbound: base,
            outbound: base + 1,
            test: base + 2,
            metrics: base + 3,
            redis: base + 4,
        };
        let spec = |backend: &str| ConnectorSpec {
            name: "x".into(),
            dfsp_id: "payeefsp",
            ports: p(20000),
            backend: backend.into(),
        };
        let a = env(&spec("127.0.0.1:1"), &p(21000));
        let b = env(&spec("127.0.0.1:2"), &p(21000));
        let differ: Vec<&str> = a.iter().zip(&b).filter(|(x, y)| x != y).map(|(x, _)| x.0).collect();
        assert_eq!(differ, ["BACKEND_ENDPOINT"]);
        let get = |k: &str| a.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PEER_ENDPOINT"), Some("127.0.0.1:21000"));
        assert_eq!(get("CACHE_URL"), Some("redis://127.0.0.1:20004"));
        assert_eq!(get("AUTO_ACCEPT_QUOTES"), Some("true"));
    }
}
