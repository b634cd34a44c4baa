//! Shared pieces for end-to-end tests: real ThitsaX nodes on loopback ports, a scripted
//! downstream ILP-over-HTTP endpoint, and a raw HTTP sender.
#![allow(dead_code)]

pub mod js;
pub mod mojaloop;
pub mod mojaloop_backend;
pub mod ports;
pub mod process;
pub mod rafiki;
pub mod rafiki_admin;
pub mod rafiki_wallets;
pub mod redis;
pub mod stream;
pub mod tls;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use thitsax::app::App;
use thitsax::config::Config;
use thitsax::node::Node;
use thitsax::packet::{ErrorCode, Fulfill, IlpAddress, Prepare, Reject, Response as IlpResponse};
use thitsax::store::{MemoryStore, RedisStore, Store};
use tokio::net::TcpListener;

/// A node running in this process on a loopback port, stopped (drained) on drop.
pub struct TestNode<S: Store = MemoryStore> {
    pub addr: SocketAddr,
    /// The settlement engines' callback listener, when an account settles through an engine.
    pub settlement_addr: Option<SocketAddr>,
    /// The admin API, when the config has an admin token.
    pub admin_addr: Option<SocketAddr>,
    /// The SPSP listener, when the node has a local account (or names `spsp.listen`).
    pub spsp_addr: Option<SocketAddr>,
    /// The backend API the Mojaloop Connector calls, with `[mojaloop]`.
    pub mojaloop_addr: Option<SocketAddr>,
    pub node: Arc<Node<S>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Holds the node's owed-writes file when the config left its path at the default (each
    /// node needs its own, and the default is one name in the working directory).
    owed_dir: Option<TempDir>,
}

impl TestNode<MemoryStore> {
    /// Starts a node with the in-memory store from TOML; `listen` is forced to 127.0.0.1:0.
    pub async fn start(toml: &str) -> Self {
        Self::start_with(toml, MemoryStore::new()).await
    }

    /// Starts a node with the in-memory store from TOML as it is, `listen` included (for
    /// topologies that need a port known in advance: see [`reserve_port`]); only the admin
    /// listener moves to a free port.
    pub async fn start_as_is(toml: &str) -> Self {
        let mut config = Config::from_toml(toml).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        // The admin API is found through `admin_addr`, never named in advance.
        config.admin.listen = "127.0.0.1:0".parse().unwrap();
        config.spsp.listen = "127.0.0.1:0".parse().unwrap();
        free_mojaloop_listener(&mut config);
        Self::run(App::bind_with(config, MemoryStore::new()).await.expect("bind"))
    }
}

/// The Mojaloop backend listener, when configured, on a free port: found through `mojaloop_addr`.
fn free_mojaloop_listener(config: &mut Config) {
    if let Some(scheme) = config.mojaloop.as_mut() {
        scheme.backend_listen = "127.0.0.1:0".parse().unwrap();
    }
}

/// A free loopback port, for a listener a config must name before it is bound: claimed for this
/// test process, so no other test's listener or server, in this process or another, is handed it
/// (see [`ports`]).
pub fn reserve_port() -> u16 {
    ports::claim()
}

impl TestNode<RedisStore> {
    /// Starts a node on Redis as `thitsax` does: the file's accounts and routes written into
    /// Redis by `store.config_precedence`, the shared set served and reloaded on change.
    /// An owed-writes path set in `toml` is kept (a test restarting a node over one file).
    pub async fn start_redis(toml: &str, store: RedisStore) -> Self {
        let mut config = Config::from_toml(toml).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.settlement.listen = "127.0.0.1:0".parse().unwrap();
        config.admin.listen = "127.0.0.1:0".parse().unwrap();
        config.spsp.listen = "127.0.0.1:0".parse().unwrap();
        let mut owed_dir = None;
        if let Some(owed) = config.owed_writes.as_mut() {
            if owed.path == std::path::Path::new(thitsax::config::defaults::OWED_WRITES_PATH) {
                static NODES: AtomicUsize = AtomicUsize::new(0);
                let dir = TempDir::new(&format!("owed-{}", NODES.fetch_add(1, Ordering::SeqCst)));
                owed.path = dir.join("owed.log");
                owed_dir = Some(dir);
            }
        }
        let mut node = Self::run(App::bind_redis(config, store).await.expect("start on Redis"));
        node.owed_dir = owed_dir;
        node
    }
}

impl<S: Store> TestNode<S> {
    /// Starts a node on `store` from TOML; `listen` is forced to 127.0.0.1:0.
    pub async fn start_with(toml: &str, store: S) -> Self {
        let mut config = Config::from_toml(toml).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.settlement.listen = "127.0.0.1:0".parse().unwrap();
        config.admin.listen = "127.0.0.1:0".parse().unwrap();
        config.spsp.listen = "127.0.0.1:0".parse().unwrap();
        free_mojaloop_listener(&mut config);
        Self::run(App::bind_with(config, store).await.expect("bind"))
    }

    fn run(app: App<S>) -> Self {
        let (addr, settlement_addr, admin_addr) = (app.local_addr(), app.settlement_addr(), app.admin_addr());
        let (spsp_addr, mojaloop_addr) = (app.spsp_addr(), app.mojaloop_backend_addr());
        let node = app.node.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        TestNode {
            addr,
            settlement_addr,
            admin_addr,
            spsp_addr,
            mojaloop_addr,
            node,
            stop: Some(tx),
            task: Some(task),
            owed_dir: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub async fn balance(&self, account: &str) -> i128 {
        self.node.store.balance(account).await.unwrap()
    }

    /// Drains and waits until the node has stopped.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl<S: Store> Drop for TestNode<S> {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// What a scripted downstream endpoint does with a Prepare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Fulfil with the preimage the sender put in the data.
    Fulfill,
    /// Fulfil with a wrong preimage.
    WrongFulfillment,
    /// Answer with an F99 Reject triggered by an empty address, as STREAM receivers do.
    Reject,
    /// Never answer (the connector must time out at the packet's expiry).
    Hang,
    /// HTTP 500.
    ServerError,
    /// 200 with bytes that are not an ILP packet.
    Garbage,
}

pub type Script = Arc<dyn Fn(&Prepare) -> Behaviour + Send + Sync>;

/// A downstream ILP-over-HTTP endpoint that follows a script; records what it received.
pub struct Downstream {
    pub addr: SocketAddr,
    pub received: Arc<std::sync::Mutex<Vec<ReceivedPacket>>>,
    pub requests: Arc<AtomicUsize>,
    /// Connections served (with TLS: through the handshake).
    pub connections: Arc<AtomicUsize>,
    /// Serves TLS ([`Downstream::start_tls`]): its URL is `https://localhost:<port>/`.
    tls: bool,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Debug)]
pub struct ReceivedPacket {
    pub amount: u64,
    pub destination: String,
    pub expires_at: SystemTime,
    pub authorization: String,
    pub content_type: String,
}

impl Downstream {
    pub async fn start(script: Script) -> Downstream {
        Self::start_on(script, None).await
    }

    /// The same endpoint behind TLS, with the certificate `acceptor` presents.
    pub async fn start_tls(script: Script, acceptor: tokio_rustls::TlsAcceptor) -> Downstream {
        Self::start_on(script, Some(acceptor)).await
    }

    async fn start_on(script: Script, tls: Option<tokio_rustls::TlsAcceptor>) -> Downstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (rec, reqs, served, is_tls) =
            (received.clone(), requests.clone(), connections.clone(), tls.is_some());
        let task = tokio::spawn(async move {
            // Connection tasks live in this set, so aborting the accept loop closes them too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let _ = stream.set_nodelay(true);
                let (script, rec, reqs, served, tls) =
                    (script.clone(), rec.clone(), reqs.clone(), served.clone(), tls.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (script, rec, reqs) = (script.clone(), rec.clone(), reqs.clone());
                        async move { Ok::<_, std::convert::Infallible>(answer(req, &*script, &rec, &reqs).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            served.fetch_add(1, Ordering::SeqCst);
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        // A client that refuses the certificate ends the handshake: nothing served.
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                served.fetch_add(1, Ordering::SeqCst);
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                    }
                });
            }
        });
        Downstream { addr, received, requests, connections, tls: is_tls, task }
    }

    pub async fn always(behaviour: Behaviour) -> Downstream {
        Self::start(Arc::new(move |_| behaviour)).await
    }

    pub fn url(&self) -> String {
        match self.tls {
            false => format!("http://{}/", self.addr),
            // The name the test certificates carry (see [`tls::TestCa`]).
            true => format!("https://localhost:{}/", self.addr.port()),
        }
    }

    pub fn received(&self) -> Vec<ReceivedPacket> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Downstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    script: &(dyn Fn(&Prepare) -> Behaviour + Send + Sync),
    received: &std::sync::Mutex<Vec<ReceivedPacket>>,
    requests: &AtomicUsize,
) -> Response<Full<Bytes>> {
    requests.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (authorization, content_type) = (header("authorization"), header("content-type"));
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let prepare = Prepare::parse(&body).expect("connector forwards valid prepares");
    received.lock().unwrap().push(ReceivedPacket {
        amount: prepare.amount(),
        destination: prepare.destination().to_string(),
        expires_at: prepare.expires_at(),
        authorization,
        content_type,
    });
    let packet = match script(&prepare) {
        Behaviour::Fulfill => Fulfill::build(&preimage_of(&prepare), b"fulfilled").as_bytes().clone(),
        Behaviour::WrongFulfillment => Fulfill::build(&[0xEE; 32], b"").as_bytes().clone(),
        Behaviour::Reject => Bytes::from_static(&[14, 6, b'F', b'9', b'9', 0, 0, 0]),
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            unreachable!()
        }
        Behaviour::ServerError => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"boom")));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return r;
        }
        Behaviour::Garbage => Bytes::from_static(b"not a packet"),
    };
    Response::new(Full::new(packet))
}

/// Test packets carry their preimage in the first 32 bytes of data, so any hop can fulfil them.
pub fn preimage_of(prepare: &Prepare) -> [u8; 32] {
    let mut p = [0u8; 32];
    let data = prepare.data();
    p.copy_from_slice(&data[..32]);
    p
}

pub fn condition_for(preimage: &[u8; 32]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, preimage);
    d.as_ref().try_into().unwrap()
}

/// A Prepare to `destination` that the scripted downstream can fulfil.
pub fn prepare(destination: &str, amount: u64, expires_in: Duration) -> Prepare {
    prepare_with_id(destination, amount, expires_in, rand_u64())
}

pub fn prepare_with_id(destination: &str, amount: u64, expires_in: Duration, id: u64) -> Prepare {
    let mut preimage = [0u8; 32];
    preimage[..8].copy_from_slice(&id.to_be_bytes());
    preimage[8..16].copy_from_slice(&rand_u64().to_be_bytes());
    let dest = IlpAddress::parse(destination).unwrap();
    Prepare::build(&dest, amount, SystemTime::now() + expires_in, &condition_for(&preimage), &preimage)
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    u64::from_be_bytes(b)
}

type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// A raw HTTP answer: status, content type and body.
pub struct HttpAnswer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Bytes,
}

impl HttpAnswer {
    pub fn packet(&self) -> IlpResponse {
        assert_eq!(self.status, StatusCode::OK, "body: {:?}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.content_type, "application/octet-stream");
        IlpResponse::parse(self.body.clone()).expect("node answers a valid packet")
    }

    pub fn reject(&self) -> Reject {
        match self.packet() {
            IlpResponse::Reject(r) => r,
            IlpResponse::Fulfill(_) => panic!("expected a Reject, got a Fulfill"),
        }
    }

    pub fn fulfill(&self) -> Fulfill {
        match self.packet() {
            IlpResponse::Fulfill(f) => f,
            IlpResponse::Reject(r) => {
                panic!("expected a Fulfill, got {:?} {:?}", r.code(), String::from_utf8_lossy(r.message()))
            }
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// POSTs `body` with the given headers; `None` leaves a header out.
pub async fn post_raw(
    client: &Client,
    url: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Bytes,
) -> HttpAnswer {
    let mut req = Request::post(url);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let response = client.request(req.body(Full::new(body)).unwrap()).await.expect("node reachable");
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    HttpAnswer { status, content_type, body }
}

/// Sends a Prepare the way an ILP-over-HTTP peer does.
pub async fn send(client: &Client, url: &str, token: &str, prepare: &Prepare) -> HttpAnswer {
    post_raw(client, url, Some(token), Some("application/octet-stream"), prepare.to_bytes()).await
}

pub fn assert_code(reject: &Reject, code: ErrorCode) {
    assert_eq!(reject.code(), code, "message: {:?}", String::from_utf8_lossy(reject.message()));
}

/// A test's temporary directory, removed when the test ends, failed or not.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A fresh directory named after the test and this process.
    pub fn new(name: &str) -> TempDir {
        let dir = TempDir(std::env::temp_dir().join(format!("thitsax-{name}-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        dir
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One admin API request: [`http_call`] under the name the admin tests use.
// Unused in the test crates that call no admin API, like any item here; the module's dead_code
// allow does not cover a re-export.
#[allow(unused_imports)]
pub use http_call as admin_call;

/// One HTTP request to `addr`: `token` as a bearer token, `body` as JSON (content type set).
/// Panics when `addr` cannot be reached.
pub async fn http_call(
    client: &Client,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> HttpAnswer {
    let mut req = Request::builder().method(method).uri(format!("http://{addr}{path}"));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let body = Full::new(Bytes::from(body.unwrap_or("").to_string()));
    let response = client
        .request(req.body(body).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: not reachable: {e}"));
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    HttpAnswer { status, content_type, body }
}

impl HttpAnswer {
    /// The body as JSON, after checking the status.
    pub fn json(&self, status: StatusCode) -> serde_json::Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}
