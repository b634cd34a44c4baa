//! The outgoing side of ILP-over-HTTP: one pooled keep-alive client for all next hops.

use crate::account::Outgoing;
use crate::packet::{PacketError, Response, PACKET_BYTES_MAX};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use tokio::time::Instant;

/// Why a forwarded packet got no valid answer. The caller reverses the debit for every variant.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
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
    /// Idle keep-alive connections kept per next hop.
    pub idle_connections_per_host_max: usize,
    /// Idle connections are closed after this, before a peer's own idle timeout would race us.
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            idle_connections_per_host_max: 256,
            idle_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl HttpClient {
    pub fn new(limits: &ClientLimits) -> Self {
        let mut connector = HttpConnector::new();
        // Packets are small request/response pairs: Nagle's delay would dominate latency.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(limits.connect_timeout));
        let inner = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(limits.idle_connections_per_host_max)
            .pool_idle_timeout(limits.idle_timeout)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        HttpClient { inner }
    }

    /// Posts one packet and returns the validated Fulfill or Reject. Gives up at `deadline`,
    /// the outgoing packet's own expiry: after that no answer could be honoured anyway.
    pub async fn send(&self, to: &Outgoing, packet: Bytes, deadline: Instant) -> Result<Response, SendError> {
        tokio::time::timeout_at(deadline, self.exchange(to, packet)).await.map_err(|_| SendError::TimedOut)?
    }

    async fn exchange(&self, to: &Outgoing, packet: Bytes) -> Result<Response, SendError> {
        let request = hyper::Request::post(to.url.clone())
            .header(AUTHORIZATION, to.authorization.clone())
            .header(CONTENT_TYPE, super::CONTENT_TYPE_ILP)
            .body(Full::new(packet))
            .map_err(|e| SendError::Transport(e.to_string()))?;
        let response =
            self.inner.request(request).await.map_err(|e| SendError::Transport(error_chain(&e)))?;
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
}

/// hyper's errors say little at the top level; the cause chain names the real problem.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
