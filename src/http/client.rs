//! The outgoing side of ILP-over-HTTP: keep-alive HTTP/1.1 connections pooled per next hop.
//!
//! Each next hop (`host:port`) has its own pool with a hard cap on connections, so one slow peer
//! cannot exhaust the node's sockets and a burst cannot open unbounded connections to a peer.
//! HTTP/1.1 carries one request per connection at a time, so the cap is also the cap on packets
//! in flight to that peer; a packet waits for a connection until its own deadline.
//!
//! Next hops are `http://` or `https://`; pools are keyed by the scheme too (an account's
//! [`Origin`](crate::http::origin::Origin)), so the two never share a connection. A TLS connection
//! is opened (and its certificate verified) once, then pooled like a plain one: the per-packet
//! path is the same for both.
//!
//! [`get`] is the other way out: one GET on a connection of its own (SPSP queries), bounded in
//! body and time.

use super::origin::{Origin, OriginError};
use super::tls::{ConnectError, Connector, TlsConfig};
use crate::account::Outgoing;
use crate::packet::{PacketError, Response, PACKET_BYTES_MAX};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{StatusCode, Uri};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::debug;

/// Why a forwarded packet got no valid answer. The caller reverses the debit for every variant.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be opened: refused, timed out, or the server's TLS certificate was
    /// refused (the message says which, for the operator).
    #[error("connection failed: {0}")]
    Connect(#[from] ConnectError),
    #[error("connection failed: {0}")]
    Transport(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("no answer before the packet expired")]
    TimedOut,
    #[error("response body over {PACKET_BYTES_MAX} bytes or unreadable")]
    Body,
    #[error("response is not an ILP Fulfill or Reject: {0}")]
    Invalid(#[from] PacketError),
}

#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// Connections to one next hop, busy and idle together.
    pub connections_per_peer_max: usize,
    /// Idle connections are dropped after this, before a peer's own idle timeout would race us.
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    /// A TLS handshake (an `https://` next hop), after the TCP connect.
    pub tls_handshake_timeout: Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        use crate::limits::*;
        ClientLimits {
            connections_per_peer_max: OUTGOING_CONNECTIONS_PER_PEER_MAX,
            idle_timeout: Duration::from_millis(OUTGOING_IDLE_TIMEOUT_MS),
            connect_timeout: Duration::from_millis(OUTGOING_CONNECT_TIMEOUT_MS),
            tls_handshake_timeout: Duration::from_millis(OUTGOING_TLS_HANDSHAKE_TIMEOUT_MS),
        }
    }
}

/// Connections to one next hop.
struct PeerPool {
    /// One permit per busy connection: at most `connections_per_peer_max` requests in flight.
    busy: Semaphore,
    /// Idle connections, most recently used last (reused first: it is the least likely to have
    /// been closed by the peer).
    idle: Mutex<Vec<(SendRequest<Full<Bytes>>, Instant)>>,
}

#[derive(Clone)]
pub struct HttpClient {
    limits: ClientLimits,
    /// Opens the pools' connections, plain or TLS, within the limits' timeouts.
    connector: Connector,
    /// One pool per origin key (`scheme://host:port`).
    peers: Arc<RwLock<HashMap<Arc<str>, Arc<PeerPool>>>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("limits", &self.limits).finish()
    }
}

impl HttpClient {
    /// `tls` is the node's one TLS configuration, shared with its other clients.
    pub fn new(limits: &ClientLimits, tls: &TlsConfig) -> Self {
        let connector = Connector::new(tls, limits.connect_timeout, limits.tls_handshake_timeout);
        HttpClient { limits: limits.clone(), connector, peers: Default::default() }
    }

    /// The connector this client opens connections with, for other one-off requests.
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// One GET, on a connection of its own (see [`get`]), with this client's connector.
    pub async fn get(
        &self,
        url: &Uri,
        accept: &str,
        body_bytes_max: usize,
        timeout: Duration,
    ) -> Result<Fetched, GetError> {
        get(&self.connector, url, accept, body_bytes_max, timeout).await
    }

    /// Posts one packet and returns the validated Fulfill or Reject. Gives up at `deadline`,
    /// the outgoing packet's own expiry: after that no answer could be honoured anyway.
    pub async fn send(&self, to: &Outgoing, packet: Bytes, deadline: Instant) -> Result<Response, SendError> {
        tokio::time::timeout_at(deadline, self.exchange(to, packet)).await.map_err(|_| SendError::TimedOut)?
    }

    async fn exchange(&self, to: &Outgoing, packet: Bytes) -> Result<Response, SendError> {
        let pool = self.pool(&to.origin.key);
        let _busy = pool.busy.acquire().await.expect("pool semaphore is never closed");
        let mut request = Some(request(to, packet));
        // A pooled connection the peer closed while idle refuses the request before writing any
        // of it; only then is it safe to send the same packet again, on a fresh connection.
        for _ in 0..2 {
            let (mut conn, reused) = match self.idle_connection(&pool) {
                Some(conn) => (conn, true),
                None => (self.connect(to).await?, false),
            };
            let req = request.take().expect("request is present until sent");
            match conn.try_send_request(req).await {
                Ok(response) => {
                    let result = read_response(response).await;
                    if result.is_ok() {
                        self.release(&pool, conn);
                    }
                    return result;
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => request = Some(unsent),
                    _ => return Err(SendError::Transport(error_chain(&e.into_error()))),
                },
            }
        }
        Err(SendError::Transport("connection closed before the request was sent".into()))
    }

    fn pool(&self, key: &Arc<str>) -> Arc<PeerPool> {
        if let Some(pool) = self.peers.read().unwrap_or_else(|e| e.into_inner()).get(key) {
            return pool.clone();
        }
        let mut peers = self.peers.write().unwrap_or_else(|e| e.into_inner());
        peers
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(PeerPool {
                    busy: Semaphore::new(self.limits.connections_per_peer_max),
                    idle: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }

    /// The most recently used idle connection that is still open and fresh.
    fn idle_connection(&self, pool: &PeerPool) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((conn, since)) = idle.pop() {
            if conn.is_ready() && since.elapsed() < self.limits.idle_timeout {
                return Some(conn);
            }
        }
        None
    }

    /// Puts a connection back. Busy + idle never exceed the cap: a connection is only opened
    /// when no idle one exists, by a request holding one of the cap's permits.
    fn release(&self, pool: &PeerPool, conn: SendRequest<Full<Bytes>>) {
        if conn.is_ready() {
            let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            // Drop connections that have idled too long (oldest first) while we hold the lock.
            let timeout = self.limits.idle_timeout;
            idle.retain(|(_, since)| since.elapsed() < timeout);
            idle.push((conn, Instant::now()));
        }
    }

    /// A new connection to the account's origin: TCP (no Nagle delay), TLS for `https://`.
    async fn connect(&self, to: &Outgoing) -> Result<SendRequest<Full<Bytes>>, SendError> {
        let stream = self.connector.connect(&to.origin).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Transport(error_chain(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "outgoing connection closed with an error");
            }
        });
        Ok(sender)
    }
}

/// An answer to [`get`]: its status, content type and whole body (redirects are not followed:
/// a 3xx is an answer like any other).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// Why [`get`] has no answer.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error("{0}")]
    Url(#[from] OriginError),
    #[error("connection failed: {0}")]
    Connect(#[from] ConnectError),
    #[error("HTTP exchange failed: {0}")]
    Http(String),
    #[error("body over {0} bytes")]
    BodyTooLarge(usize),
    #[error("no whole answer within {} ms", .0.as_millis())]
    TimedOut(Duration),
}

/// One `GET url` with `Accept: accept` on a connection of its own (plain or TLS, as the URL
/// says), closed afterwards: for queries made now and then, such as SPSP's (`accept` =
/// `application/spsp4+json`). Everything (connecting, the handshake, the answer) within
/// `timeout`; a body longer than `body_bytes_max` is refused, not cut.
pub async fn get(
    connector: &Connector,
    url: &Uri,
    accept: &str,
    body_bytes_max: usize,
    timeout: Duration,
) -> Result<Fetched, GetError> {
    one_shot(connector, url, accept, None, body_bytes_max, timeout).await
}

/// A request to send with [`one_shot`]: POST with this content type and body.
#[derive(Debug, Clone)]
pub struct Posted<'a> {
    pub content_type: &'a str,
    pub body: Bytes,
    /// More headers (a signature, a tenant): marked sensitive, so never logged by hyper.
    pub headers: &'a [(&'static str, String)],
}

/// One `GET` (no `post`) or `POST` on a connection of its own, as [`get`] describes: for calls
/// made now and then to another system's API (Rafiki's auto-peering).
pub async fn one_shot(
    connector: &Connector,
    url: &Uri,
    accept: &str,
    post: Option<Posted<'_>>,
    body_bytes_max: usize,
    timeout: Duration,
) -> Result<Fetched, GetError> {
    let origin = Origin::from_uri(url)?;
    let accept = HeaderValue::from_str(accept).map_err(|e| GetError::Http(format!("Accept: {e}")))?;
    let exchange = async {
        let stream = connector.connect(&origin).await?;
        let (mut sender, connection) =
            http1::handshake(TokioIo::new(stream)).await.map_err(|e| GetError::Http(error_chain(&e)))?;
        // The connection is driven beside the exchange and dropped with it (on success, timeout or
        // error alike), so no task outlives the call.
        // It ends once the answer is in, maybe before its body was read out: it then waits, so
        // that the select below always ends with the exchange.
        let driving = async move {
            let _ = connection.await;
            futures::future::pending::<std::convert::Infallible>().await
        };
        let asking = async {
            let mut request =
                hyper::Request::new(Full::new(post.as_ref().map(|p| p.body.clone()).unwrap_or_default()));
            if let Some(post) = &post {
                *request.method_mut() = hyper::Method::POST;
                let content_type =
                    HeaderValue::from_str(post.content_type).map_err(|e| GetError::Http(e.to_string()))?;
                request.headers_mut().insert(CONTENT_TYPE, content_type);
                for (name, value) in post.headers {
                    let mut value =
                        HeaderValue::from_str(value).map_err(|e| GetError::Http(e.to_string()))?;
                    value.set_sensitive(true);
                    request.headers_mut().insert(*name, value);
                }
            }
            *request.uri_mut() = url
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
                .parse()
                .map_err(|e: hyper::http::uri::InvalidUri| GetError::Http(e.to_string()))?;
            let host = url.authority().map(|a| a.as_str()).unwrap_or_default();
            let headers = request.headers_mut();
            headers.insert(HOST, HeaderValue::from_str(host).map_err(|e| GetError::Http(e.to_string()))?);
            headers.insert(ACCEPT, accept);
            let response = sender.send_request(request).await.map_err(|e| GetError::Http(error_chain(&e)))?;
            let status = response.status();
            let content_type =
                response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
            let declared = response.headers().get(hyper::header::CONTENT_LENGTH);
            if declared
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .is_some_and(|n| n > body_bytes_max as u64)
            {
                return Err(GetError::BodyTooLarge(body_bytes_max));
            }
            let body =
                Limited::new(response.into_body(), body_bytes_max).collect().await.map_err(|e| {
                    match e.downcast_ref::<http_body_util::LengthLimitError>() {
                        Some(_) => GetError::BodyTooLarge(body_bytes_max),
                        None => GetError::Http(error_chain(&*e)),
                    }
                })?;
            Ok(Fetched { status, content_type, body: body.to_bytes() })
        };
        tokio::select! {
            fetched = asking => fetched,
            never = driving => match never {},
        }
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| GetError::TimedOut(timeout))?
}

fn request(to: &Outgoing, packet: Bytes) -> hyper::Request<Full<Bytes>> {
    let mut request = hyper::Request::new(Full::new(packet));
    *request.method_mut() = hyper::Method::POST;
    *request.uri_mut() = to.path.clone();
    let headers = request.headers_mut();
    headers.insert(HOST, to.host.clone());
    headers.insert(AUTHORIZATION, to.authorization.clone());
    headers.insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static(super::CONTENT_TYPE_ILP));
    request
}

async fn read_response(response: hyper::Response<hyper::body::Incoming>) -> Result<Response, SendError> {
    if !response.status().is_success() {
        return Err(SendError::Status(response.status().as_u16()));
    }
    let body = Limited::new(response.into_body(), PACKET_BYTES_MAX)
        .collect()
        .await
        .map_err(|_| SendError::Body)?
        .to_bytes();
    Ok(Response::parse(body)?)
}

/// hyper's errors say little at the top level; the cause chain names the real problem.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Reads at most `max` bytes of `body`; the rest is not read (the connection is then not reused,
/// which is the right price for a server sending too much). True when the body went on past it.
pub(crate) async fn read_bounded(
    mut body: hyper::body::Incoming,
    max: usize,
) -> Result<(Bytes, bool), hyper::Error> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        let room = max - out.len();
        if data.len() > room {
            out.extend_from_slice(&data[..room]);
            return Ok((out.into(), true));
        }
        out.extend_from_slice(&data);
    }
    Ok((out.into(), false))
}

/// How much of an API's error body goes into an error message: enough to read the reason, not
/// enough to fill logs with whatever the server sent.
const ERROR_BODY_CHARS_MAX: usize = 200;

/// The start of an answer's body, printable: control characters become spaces.
pub(crate) fn body_prefix(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String =
        text.chars().take(ERROR_BODY_CHARS_MAX).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().count() > ERROR_BODY_CHARS_MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::Secret;
    use crate::packet::Fulfill;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A next hop that counts connections and answers every request with a Fulfill after `delay`.
    async fn peer(delay: Duration, connections: Arc<AtomicUsize>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| async move {
                        tokio::time::sleep(delay).await;
                        let body = Fulfill::build(&[0; 32], b"").as_bytes().clone();
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(body)))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    }

    /// These peers are plain http: the bundled roots, never read from the system.
    fn tls() -> TlsConfig {
        TlsConfig::new(&crate::http::tls::TlsRules { roots: crate::http::tls::Roots::Webpki, ca_file: None })
    }

    fn outgoing(addr: std::net::SocketAddr) -> Outgoing {
        Outgoing::new(format!("http://{addr}/ilp").parse().unwrap(), &Secret::new("t".into())).unwrap()
    }

    #[tokio::test]
    async fn connections_per_peer_are_capped_and_reused() {
        let connections = Arc::new(AtomicUsize::new(0));
        let addr = peer(Duration::from_millis(20), connections.clone()).await;
        let limits = ClientLimits { connections_per_peer_max: 4, ..ClientLimits::default() };
        let client = HttpClient::new(&limits, &tls());
        let to = outgoing(addr);
        let deadline = Instant::now() + Duration::from_secs(10);
        let sends = (0..40).map(|_| client.send(&to, Bytes::from_static(b"x"), deadline));
        for result in futures::future::join_all(sends).await {
            assert!(matches!(result, Ok(Response::Fulfill(_))));
        }
        assert!(
            connections.load(Ordering::SeqCst) <= 4,
            "{} connections",
            connections.load(Ordering::SeqCst)
        );
        // A later packet reuses an idle connection.
        client.send(&to, Bytes::from_static(b"x"), deadline).await.unwrap();
        assert!(connections.load(Ordering::SeqCst) <= 4);
    }

    #[tokio::test]
    async fn a_packet_waiting_for_a_connection_gives_up_at_its_deadline() {
        let addr = peer(Duration::from_millis(500), Arc::new(AtomicUsize::new(0))).await;
        let client =
            HttpClient::new(&ClientLimits { connections_per_peer_max: 1, ..ClientLimits::default() }, &tls());
        let to = outgoing(addr);
        let far = Instant::now() + Duration::from_secs(10);
        let near = Instant::now() + Duration::from_millis(100);
        let (slow, waiting) =
            tokio::join!(client.send(&to, Bytes::new(), far), client.send(&to, Bytes::new(), near));
        assert!(slow.is_ok());
        assert!(matches!(waiting, Err(SendError::TimedOut)));
    }

    #[tokio::test]
    async fn a_connection_closed_by_the_peer_while_idle_is_replaced() {
        // The peer closes each connection after one response.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_req| async {
                        let body = Fulfill::build(&[0; 32], b"").as_bytes().clone();
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(body)))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let client = HttpClient::new(&ClientLimits::default(), &tls());
        let to = outgoing(addr);
        for _ in 0..5 {
            let deadline = Instant::now() + Duration::from_secs(5);
            assert!(client.send(&to, Bytes::new(), deadline).await.is_ok());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
