//! The real Mojaloop Connector (`@mojaloop/sdk-scheme-adapter` 18.0.2, pinned in
//! `tests/mojaloop/package-lock.json`) as a child process of a test, for the tests that make
//! ThitsaX a DFSP of a Mojaloop scheme. See `tests/mojaloop/README.md` for what it is and what
//! was observed on it.
//!
//! - Gate every test with [`mojaloop_or_skip`]: without `node`, `redis-server` or the package
//!   (installed with `npm ci --prefix tests/mojaloop` on first use) it prints `SKIPPED` and
//!   returns `None`, or fails when `CI` is set.
//! - [`Connector::start`] runs one Connector with its own `redis-server` (never the machine's
//!   shared Redis on 6379) on ports claimed for the test process ([`super::ports`]), and waits
//!   until both its outbound and inbound APIs answer HTTP. Schemes without a hub are two
//!   Connectors back to back ([`Connector::start_pair`]): each one's `PEER_ENDPOINT` is the
//!   other's inbound port, so party lookups, quotes and transfers go straight from one to the
//!   other.
//! - [`Connector::kill`] is a crash (SIGKILL); [`Connector::restart`] starts it again on the same
//!   ports and the same Redis, so what it kept there (transfers waiting for acceptance) survives,
//!   as on the real thing.
//! - The Connector is killed and reaped on drop, on panic too (its last log lines are printed
//!   then). It also dies with the test process, even one killed by SIGKILL where no `Drop` runs:
//!   `tests/mojaloop/guard.js`, preloaded with `node -r`, exits when its stdin pipe from the test
//!   process closes.
//! - Its environment is cleared and set from [`ConnectorConfig`] alone (`PATH` and `HOME` kept),
//!   so nothing from the shell running the tests changes it; its working directory is its
//!   temporary directory, so no stray `.env` file is read (the package loads one with dotenv).
//!   Its stdout and stderr (JSON log lines) go to `connector.log` there.

use super::mojaloop_backend::TestBackend;
use super::redis::{ci_is_set, file_len, redis_or_skip, tail, RedisServer};
use super::{http_call, HttpAnswer, TempDir};
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The package and version the harness runs; `tests/mojaloop/package.json` pins it exactly.
pub const PACKAGE: &str = "@mojaloop/sdk-scheme-adapter";
pub const VERSION: &str = "18.0.2";
/// From spawn to both APIs answering; about 3.5 s on an idle 2-core machine, many times that when
/// a build shares it.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// One readiness probe (a plain `GET /`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// Added to the Connector's own REQUEST_PROCESSING_TIMEOUT_SECONDS for a call to its outbound
/// API: past both, the Connector is wedged (seen after two acceptQuotes in flight), not slow.
const CALL_MARGIN: Duration = Duration::from_secs(30);
/// Log lines printed when a start fails or a test panics.
const LOG_TAIL_LINES: usize = 40;
const LOG_LINE_CHARS_MAX: usize = 2000;

pub fn mojaloop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("mojaloop")
}

/// What [`mojaloop_or_skip`] found: the `node` to run the Connector with.
#[derive(Clone, Debug)]
pub struct Mojaloop {
    node: PathBuf,
}

/// Gate for tests that run the Mojaloop Connector: `Some` to run. Needs `node` >= 18 (`$NODE` or
/// on PATH), `redis-server`, and the pinned package, installed with `npm ci --prefix
/// tests/mojaloop` if missing. When one is missing (or the install fails) it prints `SKIPPED
/// <test>: ...` and returns `None`; with `CI` set it panics instead.
pub fn mojaloop_or_skip(test: &str) -> Option<Mojaloop> {
    let node = super::js::node_binary_or_skip(test)?;
    if !redis_or_skip(test) {
        return None;
    }
    if let Err(e) = super::js::npm_ci_once(test, &mojaloop_dir(), PACKAGE) {
        assert!(!ci_is_set(std::env::var("CI").ok().as_deref()), "{test}: {e}, and CI is set");
        eprintln!("SKIPPED {test}: {e} (run `npm ci --prefix tests/mojaloop` to run it)");
        return None;
    }
    let manifest = package_dir().join("package.json");
    let text =
        std::fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("read {}: {e}", manifest.display()));
    let installed: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    assert_eq!(
        installed["version"],
        VERSION,
        "{test}: {} holds another version of {PACKAGE} than the pinned one: run `npm ci --prefix \
         tests/mojaloop`",
        manifest.display()
    );
    Some(Mojaloop { node })
}

fn package_dir() -> PathBuf {
    mojaloop_dir().join("node_modules").join(PACKAGE)
}

/// The ports one Connector listens on, claimed for the whole test process so a restarted
/// Connector finds them again and its peer keeps reaching it.
#[derive(Clone, Copy, Debug)]
pub struct ConnectorPorts {
    /// FSPIOP from the scheme (here: the peer Connector). `INBOUND_LISTEN_PORT`.
    pub inbound: u16,
    /// The DFSP's own API to pay. `OUTBOUND_LISTEN_PORT`.
    pub outbound: u16,
    /// The test API, served only with ENABLE_TEST_FEATURES; claimed anyway, as the Connector
    /// reads it. `TEST_LISTEN_PORT`.
    pub test: u16,
    /// Prometheus metrics. `METRICS_SERVER_LISTEN_PORT`.
    pub metrics: u16,
}

impl ConnectorPorts {
    pub fn claim() -> ConnectorPorts {
        use super::ports::claim;
        ConnectorPorts { inbound: claim(), outbound: claim(), test: claim(), metrics: claim() }
    }

    /// `127.0.0.1:<inbound>`: what another Connector's `PEER_ENDPOINT` names to reach this one.
    pub fn inbound_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.inbound)
    }
}

/// One Connector's settings; each field is the environment variable in its doc.
#[derive(Clone, Debug)]
pub struct ConnectorConfig {
    /// `DFSP_ID`: the FSPIOP participant id it speaks as.
    pub dfsp_id: String,
    pub ports: ConnectorPorts,
    /// `PEER_ENDPOINT`, `host:port` (no scheme): where every FSPIOP request goes (the hub; here
    /// the other Connector's inbound port). Required; [`Connector::start_pair`] sets it.
    pub peer_endpoint: String,
    /// `BACKEND_ENDPOINT`, `host:port`: the DFSP's backend API (a [`TestBackend`], or ThitsaX).
    pub backend_endpoint: String,
    /// `AUTO_ACCEPT_PARTY`: `false` makes an outbound transfer stop at
    /// WAITING_FOR_PARTY_ACCEPTANCE until `PUT /transfers/{id} {"acceptParty": true}`.
    pub auto_accept_party: bool,
    /// `AUTO_ACCEPT_QUOTES`: `false` makes it stop at WAITING_FOR_QUOTE_ACCEPTANCE until
    /// `{"acceptQuote": true}`; no money moves before that.
    pub auto_accept_quotes: bool,
    /// `EXPIRY_SECONDS`: quote and transfer expiry.
    pub expiry_seconds: u32,
    /// `REQUEST_PROCESSING_TIMEOUT_SECONDS`: how long an outbound call waits for the peer's
    /// callback before answering 504 (outcome unknown).
    pub request_processing_timeout_seconds: u32,
    /// `ILP_SECRET`: what the payee side derives fulfilments from.
    pub ilp_secret: String,
    /// More variables, set last (they win over the ones above).
    pub extra_env: Vec<(String, String)>,
}

impl ConnectorConfig {
    /// `dfsp_id` on fresh ports with `backend_endpoint`, the Connector's defaults otherwise
    /// (both auto-accepts on, 60 s expiry, 30 s processing timeout); `peer_endpoint` still to set.
    pub fn new(dfsp_id: &str, backend_endpoint: &str) -> ConnectorConfig {
        ConnectorConfig {
            dfsp_id: dfsp_id.into(),
            ports: ConnectorPorts::claim(),
            peer_endpoint: String::new(),
            backend_endpoint: backend_endpoint.into(),
            auto_accept_party: true,
            auto_accept_quotes: true,
            expiry_seconds: 60,
            request_processing_timeout_seconds: 30,
            ilp_secret: format!("{dfsp_id}-ilp-secret"),
            extra_env: Vec::new(),
        }
    }

    /// The same with both auto-accepts set to `on` (off: the two-step flow).
    pub fn auto_accept(mut self, on: bool) -> ConnectorConfig {
        self.auto_accept_party = on;
        self.auto_accept_quotes = on;
        self
    }

    /// Every variable the Connector is started with, `CACHE_URL` (its Redis) included.
    pub fn env(&self, cache_url: &str) -> Vec<(String, String)> {
        let flag = |on: bool| if on { "true" } else { "false" }.to_string();
        let mut env: Vec<(String, String)> = [
            ("DFSP_ID", self.dfsp_id.clone()),
            ("ILP_SECRET", self.ilp_secret.clone()),
            ("CACHE_URL", cache_url.to_string()),
            ("INBOUND_LISTEN_PORT", self.ports.inbound.to_string()),
            ("OUTBOUND_LISTEN_PORT", self.ports.outbound.to_string()),
            ("TEST_LISTEN_PORT", self.ports.test.to_string()),
            ("METRICS_SERVER_LISTEN_PORT", self.ports.metrics.to_string()),
            ("PEER_ENDPOINT", self.peer_endpoint.clone()),
            ("BACKEND_ENDPOINT", self.backend_endpoint.clone()),
            ("AUTO_ACCEPT_PARTY", flag(self.auto_accept_party)),
            ("AUTO_ACCEPT_QUOTES", flag(self.auto_accept_quotes)),
            ("EXPIRY_SECONDS", self.expiry_seconds.to_string()),
            ("REQUEST_PROCESSING_TIMEOUT_SECONDS", self.request_processing_timeout_seconds.to_string()),
            // No JWS and no mutual TLS between the two Connectors: loopback, no keys to manage.
            ("JWS_SIGN", flag(false)),
            ("VALIDATE_INBOUND_JWS", flag(false)),
            ("INBOUND_MUTUAL_TLS_ENABLED", flag(false)),
            ("OUTBOUND_MUTUAL_TLS_ENABLED", flag(false)),
            // One JSON object per log line, so the tail printed on failure reads line by line.
            ("LOG_INDENT", "0".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.extend(self.extra_env.iter().cloned());
        env
    }
}

/// A running Mojaloop Connector with its own Redis; see the module doc.
pub struct Connector {
    config: ConnectorConfig,
    node: PathBuf,
    /// `None` while killed.
    process: Option<Child>,
    /// The byte offset in `connector.log` where the current run's lines start (a restart
    /// appends to the same file).
    log_from: u64,
    /// Dropped after the process is killed (the fields drop after `Drop::drop`), then the
    /// directory.
    redis: RedisServer,
    dir: TempDir,
}

impl Connector {
    /// Starts a Connector with `config` and its own fresh Redis, and waits until it answers (up
    /// to 60 s). Panics with its last log lines when it exits or does not answer in time.
    pub async fn start(mojaloop: &Mojaloop, config: ConnectorConfig) -> Connector {
        assert!(
            !config.peer_endpoint.is_empty() && !config.backend_endpoint.is_empty(),
            "{}: set peer_endpoint and backend_endpoint (host:port), or use Connector::start_pair",
            config.dfsp_id
        );
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let dir =
            TempDir::new(&format!("mojaloop-{}-{}", config.dfsp_id, STARTED.fetch_add(1, Ordering::SeqCst)));
        let redis =
            tokio::task::spawn_blocking(RedisServer::start).await.expect("start the Connector's Redis");
        let mut connector =
            Connector { config, node: mojaloop.node.clone(), process: None, log_from: 0, redis, dir };
        connector.spawn_and_wait().await;
        connector
    }

    /// Two Connectors back to back, started together: each one's `peer_endpoint` is set to the
    /// other's inbound port (whatever the configs held).
    pub async fn start_pair(
        mojaloop: &Mojaloop,
        mut a: ConnectorConfig,
        mut b: ConnectorConfig,
    ) -> (Connector, Connector) {
        a.peer_endpoint = b.ports.inbound_endpoint();
        b.peer_endpoint = a.ports.inbound_endpoint();
        tokio::join!(Connector::start(mojaloop, a), Connector::start(mojaloop, b))
    }

    pub fn dfsp_id(&self) -> &str {
        &self.config.dfsp_id
    }

    pub fn config(&self) -> &ConnectorConfig {
        &self.config
    }

    /// `http://127.0.0.1:<outbound>`: the outbound API (`POST /transfers` ...), no trailing slash.
    pub fn outbound_url(&self) -> String {
        format!("http://{}", self.outbound_addr())
    }

    pub fn outbound_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.config.ports.outbound))
    }

    /// `127.0.0.1:<inbound>`: what a peer's `PEER_ENDPOINT` names.
    pub fn inbound_endpoint(&self) -> String {
        self.config.ports.inbound_endpoint()
    }

    /// Its Redis, to read what it stores (`transferModel_out_<transferId>` ...).
    pub fn redis(&self) -> &RedisServer {
        &self.redis
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("connector.log")
    }

    /// The last `lines` lines it logged since it was last (re)started, each cut to 2000
    /// characters (it logs whole transfer states, several KB a line).
    pub fn log_tail(&self, lines: usize) -> String {
        let cut = |line: &str| match line.char_indices().nth(LOG_LINE_CHARS_MAX) {
            Some((end, _)) => format!("{} [...]", &line[..end]),
            None => line.to_string(),
        };
        tail(&self.log_path(), self.log_from, lines).lines().map(cut).collect::<Vec<_>>().join("\n")
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// Crashes it: SIGKILL, then reaped. Its Redis keeps running. No-op when killed already.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Closes the pipe it reads as stdin, as the kernel does when the test process dies; it then
    /// exits on its own (`guard.js`). Returns its pid.
    pub fn close_stdin(&mut self) -> u32 {
        let child = self.process.as_mut().expect("the Connector runs");
        drop(child.stdin.take());
        child.id()
    }

    /// Whether it has exited (and is reaped); `true` when killed.
    pub fn has_exited(&mut self) -> bool {
        self.process.as_mut().is_none_or(|child| matches!(child.try_wait(), Ok(Some(_))))
    }

    /// Starts it again on the same ports with the same Redis (killing it first if it runs), and
    /// waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn_and_wait().await;
    }

    /// One call to the outbound API: `body` as JSON. Panics when the Connector does not answer
    /// within its own processing timeout plus 30 s (it is wedged then).
    pub async fn outbound(&self, method: &str, path: &str, body: Option<&Value>) -> OutboundAnswer {
        let body = body.map(Value::to_string);
        let timeout =
            Duration::from_secs(self.config.request_processing_timeout_seconds.into()) + CALL_MARGIN;
        let client = super::client();
        let call = http_call(&client, self.outbound_addr(), method, path, None, body.as_deref());
        match tokio::time::timeout(timeout, call).await {
            Ok(answer) => OutboundAnswer::from(answer),
            Err(_) => panic!("{}: {method} {path} not answered within {timeout:?}", self.config.dfsp_id),
        }
    }

    /// `POST /transfers` with `request`.
    pub async fn post_transfer(&self, request: &Value) -> OutboundAnswer {
        self.outbound("POST", "/transfers", Some(request)).await
    }

    /// `PUT /transfers/{transfer_id}` with `body` (`{"acceptParty": true}`, `{"acceptQuote": true}`).
    pub async fn put_transfer(&self, transfer_id: &str, body: &Value) -> OutboundAnswer {
        self.outbound("PUT", &format!("/transfers/{transfer_id}"), Some(body)).await
    }

    fn spawn(&mut self) {
        let log_path = self.log_path();
        self.log_from = file_len(&log_path);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", log_path.display()));
        let mut cmd = Command::new(&self.node);
        cmd.current_dir(&*self.dir)
            .arg("-r")
            .arg(mojaloop_dir().join("guard.js"))
            .arg(package_dir().join("src").join("index.js"))
            .env_clear()
            .envs(["PATH", "HOME"].iter().filter_map(|k| Some((k, std::env::var_os(k)?))))
            .envs(self.config.env(&self.redis.url()))
            // Never written to: held open until the Connector is killed, closed by the kernel if
            // the test process dies first (guard.js exits then).
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", self.node.display()));
        self.process = Some(child);
    }

    async fn spawn_and_wait(&mut self) {
        self.spawn();
        let client = super::client();
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.process.as_mut().map(Child::try_wait) {
                self.process = None;
                panic!(
                    "{}: the Connector exited ({status}) before answering; {}:\n{}",
                    self.config.dfsp_id,
                    self.log_path().display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            if self.answers(&client).await {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                self.kill();
                panic!(
                    "{}: the Connector did not answer on 127.0.0.1:{} (outbound) and :{} (inbound) within \
                     {START_TIMEOUT:?}; {}:\n{}",
                    self.config.dfsp_id,
                    self.config.ports.outbound,
                    self.config.ports.inbound,
                    self.log_path().display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// Both APIs serve HTTP: the outbound's `GET /` answers 200, the inbound answers anything
    /// (it has no route for `/`). They listen only once the Connector is connected to its Redis.
    async fn answers(&self, client: &super::Client) -> bool {
        let get = |port: u16| {
            let uri = format!("http://127.0.0.1:{port}/");
            let request = hyper::Request::get(uri).body(http_body_util::Full::default()).unwrap();
            tokio::time::timeout(PROBE_TIMEOUT, client.request(request))
        };
        let outbound = matches!(get(self.config.ports.outbound).await, Ok(Ok(r)) if r.status() == 200);
        outbound && matches!(get(self.config.ports.inbound).await, Ok(Ok(_)))
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        if std::thread::panicking() && self.process.is_some() {
            eprintln!(
                "--- Mojaloop Connector {} ({}), last {LOG_TAIL_LINES} lines ---\n{}",
                self.config.dfsp_id,
                self.log_path().display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        self.kill();
    }
}

/// An answer of the outbound API: status and JSON body (`Null` when empty, as a 204 is).
#[derive(Debug)]
pub struct OutboundAnswer {
    pub status: hyper::StatusCode,
    pub body: Value,
    pub text: String,
}

impl From<HttpAnswer> for OutboundAnswer {
    fn from(answer: HttpAnswer) -> OutboundAnswer {
        let text = answer.text();
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("outbound API answered non-JSON ({e}): {text}"))
        };
        OutboundAnswer { status: answer.status, body, text }
    }
}

impl OutboundAnswer {
    /// `body[field]` as a string, or panic with the whole answer.
    pub fn str(&self, pointer: &str) -> &str {
        self.body.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| {
            panic!("no string at {pointer} in the answer ({}): {}", self.status, self.text)
        })
    }

    /// Panics unless the status is `status`.
    pub fn expect_status(&self, status: u16) -> &OutboundAnswer {
        assert_eq!(self.status.as_u16(), status, "answer: {}", self.text);
        self
    }
}

/// A payer and a payee DFSP, each a Connector with its own [`TestBackend`], back to back.
pub struct BackToBack {
    pub payer: Connector,
    pub payee: Connector,
    pub payer_backend: TestBackend,
    pub payee_backend: TestBackend,
}

impl BackToBack {
    /// DFSPs `payerfsp` and `payeefsp` with both auto-accepts `auto_accept`; `configure` may
    /// change both configs (payer first) before they start.
    pub async fn start(
        mojaloop: &Mojaloop,
        auto_accept: bool,
        configure: impl Fn(&mut ConnectorConfig),
    ) -> BackToBack {
        let (payer_backend, payee_backend) = tokio::join!(TestBackend::start(), TestBackend::start());
        let mut payer = ConnectorConfig::new("payerfsp", &payer_backend.endpoint()).auto_accept(auto_accept);
        let mut payee = ConnectorConfig::new("payeefsp", &payee_backend.endpoint()).auto_accept(auto_accept);
        configure(&mut payer);
        configure(&mut payee);
        let (payer, payee) = Connector::start_pair(mojaloop, payer, payee).await;
        BackToBack { payer, payee, payer_backend, payee_backend }
    }
}
