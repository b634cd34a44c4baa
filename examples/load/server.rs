//! What the receiver and the proxy share as HTTP/1 servers: the accept loop,
//! the server builder (keep-alive on), and the counters they print when they
//! stop.
//!
//! Both must accept connections the same way, so that the proxy reference and
//! the receiver add no difference of their own to a comparison.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
pub(crate) struct ServerStats {
    /// Accepted TCP connections (tells whether the client keeps them alive).
    pub(crate) connections: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) fulfilled: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) bad: AtomicU64,
}

/// Accept loop shared by receiver and proxy; `serve` handles one connection.
pub(crate) async fn accept_loop<F, Fut>(listener: TcpListener, connections: Arc<ServerStats>, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                connections.connections.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream));
            }
            Err(e) => {
                // E.g. EMFILE: back off instead of spinning.
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

pub(crate) fn http1_server() -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.keep_alive(true);
    b
}
