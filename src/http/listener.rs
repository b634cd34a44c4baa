//! What the node's three listeners (ILP-over-HTTP, the engines' callbacks, the admin API) share:
//! accepting connections under a limit until the node drains, reading a body under its size and
//! time limits, and the small parsing rules of their requests. Each listener keeps its own routes,
//! its own answers and its own drain policy; only the plumbing lives here.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

pub const CONTENT_TYPE_TEXT: &str = "text/plain; charset=utf-8";
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// The limits of an API listener whose requests are small (the engines' callbacks, the admin
/// API); each has its own values (`[settlement]`, `[admin]`).
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Larger request bodies get 413.
    pub body_bytes_max: usize,
    /// TCP connections served at once, and also requests being handled at once (past it, 503).
    /// Further connections wait in the kernel's accept queue.
    pub connections_max: usize,
    /// Time a client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// Time a client has, after its headers, to send the body (408 past it).
    pub body_read_timeout: Duration,
    /// On shutdown, time requests in flight get to finish.
    pub shutdown_grace: Duration,
}

/// The address a request came from, in its extensions: for logs about strangers (a refused
/// token), which have no account to name.
#[derive(Debug, Clone, Copy)]
pub struct RemoteAddr(pub std::net::SocketAddr);

/// How a listener takes connections.
#[derive(Debug, Clone, Copy)]
pub struct Accepting {
    /// Which listener, in logs.
    pub name: &'static str,
    /// TCP connections served at once; further ones wait in the kernel's accept queue.
    pub connections_max: usize,
    /// Time a client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// Disable Nagle (the packet path answers small bodies and is latency bound).
    pub nodelay: bool,
    /// Keep a connection open for the client's next request. Off for a client that opens a new
    /// connection per request and leaves the old one idle (the Mojaloop Connector does): held
    /// idle until the header timeout, those would fill `connections_max`.
    pub keep_alive: bool,
}

/// Accepts connections until `shutdown` reaches [`Phase::Draining`](crate::shutdown::Phase),
/// serving each request with `handle`, then closes the listener. Returns the watcher of the
/// connections still open, for the caller's own drain.
pub async fn accept_until_draining<H, F>(
    listener: TcpListener,
    accepting: Accepting,
    shutdown: &crate::shutdown::ShutdownSignal,
    handle: H,
) -> GracefulShutdown
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let draining = crate::shutdown::Phase::Draining;
    let connections = Arc::new(Semaphore::new(accepting.connections_max));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("connection semaphore is never closed"),
            _ = shutdown.reached(draining) => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    warn!(listener = accepting.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.reached(draining) => break,
        };
        if accepting.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let handle = handle.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(RemoteAddr(remote));
            let answer = handle(req);
            async move { Ok::<_, Infallible>(answer.await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .keep_alive(accepting.keep_alive)
            .header_read_timeout(accepting.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let name = accepting.name;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(listener = name, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful
}

/// Done when every connection has closed and all `permits` of `in_flight` are back: a request
/// whose client hung up has no connection left but may still be running in its own task.
pub async fn drained(graceful: GracefulShutdown, in_flight: Arc<Semaphore>, permits: usize) {
    graceful.shutdown().await;
    let _ = in_flight.acquire_many(u32::try_from(permits).unwrap_or(u32::MAX)).await;
}

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("body not received within {} ms", .0.as_millis())]
    Timeout(Duration),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

/// The body, refused early on a declared length over `max`, cut off at `max` and at `timeout`
/// otherwise: a slow or endless sender holds only its own connection, for a bounded time.
pub async fn read_body(req: Request<Incoming>, max: usize, timeout: Duration) -> Result<Bytes, BodyError> {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge(max));
    }
    Ok(tokio::time::timeout(timeout, Limited::new(req.into_body(), max).collect())
        .await
        .map_err(|_| BodyError::Timeout(timeout))?
        .map_err(|_| BodyError::TooLarge(max))?
        .to_bytes())
}

/// The request's media type, without parameters such as `charset` ("" when absent).
pub fn media_type<B>(req: &Request<B>) -> &str {
    let value = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    value.split(';').next().unwrap_or("").trim()
}

/// A response with a body and its content type.
pub fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A plain-text answer.
pub fn text(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    respond(status, CONTENT_TYPE_TEXT, message.into())
}

/// Strict percent-decoding of a path segment: every `%` starts two hex digits, the result is
/// UTF-8; `None` otherwise.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750).
pub fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bear"), None);
    }

    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("%e2%82%ac").as_deref(), Some("€"));
        for bad in ["%", "%2", "%zz", "%ff"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }
}
