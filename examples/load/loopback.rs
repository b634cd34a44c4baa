//! Loopback-only addressing and HTTP/1 client connections.
//!
//! The tool sends load as fast as it can, so it refuses any address outside
//! 127.0.0.0/8 and ::1: it must never be pointed at another machine by
//! mistake. The proxy and the sender share `connect_http1`, one keep-alive
//! connection without a pool.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub(crate) fn require_loopback(addr: &SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!("{addr} is not a loopback address; this tool only talks to 127.0.0.0/8 or ::1"))
    }
}

/// Parses an http:// URL whose host is a loopback address or `localhost`.
pub(crate) fn loopback_url(url: &str) -> Result<(Uri, SocketAddr), String> {
    let uri: Uri = url.parse().map_err(|e| format!("bad URL {url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// is supported"));
    }
    let host = uri.host().ok_or_else(|| format!("{url}: no host"))?;
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("{url}: host must be a loopback IP or localhost"))?
    };
    let addr = SocketAddr::new(ip, uri.port_u16().unwrap_or(80));
    require_loopback(&addr)?;
    Ok((uri, addr))
}

pub(crate) async fn connect_http1<B>(
    addr: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        assert!(loopback_url("http://127.0.0.1:3000/ilp").is_ok());
        assert!(loopback_url("http://localhost:3000/").is_ok());
        assert!(loopback_url("http://[::1]:3000/").is_ok());
        assert!(loopback_url("http://10.0.0.1:3000/").is_err());
        assert!(loopback_url("http://example.com/").is_err());
        assert!(loopback_url("https://127.0.0.1/").is_err());
        assert!(require_loopback(&"0.0.0.0:1".parse().unwrap()).is_err());
    }
}
