//! `proxy`: a bare forwarding HTTP proxy, the ceiling reference for a
//! connector in the same position. It streams each request body to one
//! target URL and the response back: no ILP parsing, no state.
//!
//! Two upstream strategies (`--mode`): one shared keep-alive pool, or one
//! upstream connection pinned to each downstream connection.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, HOST};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::cli::{ProxyArgs, ProxyMode};
use crate::cpu::cpu_seconds;
use crate::loopback::{connect_http1, loopback_url, require_loopback};
use crate::server::{accept_loop, http1_server, ServerStats};
use crate::signal::shutdown_signal;

type ProxyBody = Either<Incoming, Full<Bytes>>;

fn bad_gateway() -> Response<ProxyBody> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from_static(b"upstream error\n"))));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}

fn strip_hop_by_hop(h: &mut hyper::HeaderMap) {
    h.remove(CONNECTION);
    h.remove("keep-alive");
}

pub(crate) async fn run_proxy(a: ProxyArgs) -> Result<(), String> {
    require_loopback(&a.common.listen)?;
    let (target, target_addr) = loopback_url(&a.to)?;
    let listener =
        TcpListener::bind(a.common.listen).await.map_err(|e| format!("bind {}: {e}", a.common.listen))?;
    eprintln!(
        "proxy listening on http://{} -> {} (mode={:?}, threads={})",
        a.common.listen, target, a.mode, a.common.threads
    );
    let stats = Arc::new(ServerStats::default());
    let server = http1_server();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let accept = {
        let stats = stats.clone();
        let target = target.clone();
        async move {
            match a.mode {
                ProxyMode::Pool => {
                    let mut connector = HttpConnector::new();
                    connector.set_nodelay(true);
                    let client: Client<HttpConnector, Incoming> =
                        Client::builder(TokioExecutor::new()).build(connector);
                    accept_loop(listener, stats.clone(), move |stream| {
                        let client = client.clone();
                        let stats = stats.clone();
                        let target = target.clone();
                        let conn = server.serve_connection(
                            TokioIo::new(stream),
                            service_fn(move |req: Request<Incoming>| {
                                stats.requests.fetch_add(1, Ordering::Relaxed);
                                let (mut parts, body) = req.into_parts();
                                parts.uri = target.clone();
                                parts.headers.remove(HOST);
                                strip_hop_by_hop(&mut parts.headers);
                                let fut = client.request(Request::from_parts(parts, body));
                                let stats = stats.clone();
                                async move {
                                    Ok::<_, Infallible>(match fut.await {
                                        Ok(resp) => {
                                            let (mut parts, body) = resp.into_parts();
                                            strip_hop_by_hop(&mut parts.headers);
                                            Response::from_parts(parts, Either::Left(body))
                                        }
                                        Err(_) => {
                                            stats.bad.fetch_add(1, Ordering::Relaxed);
                                            bad_gateway()
                                        }
                                    })
                                }
                            }),
                        );
                        async move {
                            let _ = conn.await;
                        }
                    })
                    .await
                }
                ProxyMode::Pinned => {
                    let path =
                        Uri::from(target.path_and_query().cloned().unwrap_or_else(|| "/".parse().unwrap()));
                    let host =
                        HeaderValue::from_str(target.authority().map(|a| a.as_str()).unwrap_or("127.0.0.1"))
                            .expect("authority is a valid header");
                    accept_loop(listener, stats.clone(), move |stream| {
                        let stats = stats.clone();
                        let path = path.clone();
                        let host = host.clone();
                        // The upstream connection of this downstream connection.
                        // HTTP/1 serves requests one at a time, so the sender is
                        // taken for a request and put back afterwards.
                        let upstream: Arc<Mutex<Option<hyper::client::conn::http1::SendRequest<Incoming>>>> =
                            Arc::new(Mutex::new(None));
                        let conn = server.serve_connection(
                            TokioIo::new(stream),
                            service_fn(move |req: Request<Incoming>| {
                                stats.requests.fetch_add(1, Ordering::Relaxed);
                                let (mut parts, body) = req.into_parts();
                                parts.uri = path.clone();
                                parts.headers.insert(HOST, host.clone());
                                strip_hop_by_hop(&mut parts.headers);
                                let req = Request::from_parts(parts, body);
                                let upstream = upstream.clone();
                                let stats = stats.clone();
                                async move {
                                    let taken = upstream.lock().unwrap().take();
                                    let mut tx = match taken {
                                        Some(tx) if !tx.is_closed() => tx,
                                        _ => match connect_http1(target_addr).await {
                                            Ok(tx) => tx,
                                            Err(_) => {
                                                stats.bad.fetch_add(1, Ordering::Relaxed);
                                                return Ok::<_, Infallible>(bad_gateway());
                                            }
                                        },
                                    };
                                    let res = match tx.ready().await {
                                        Ok(()) => tx.send_request(req).await,
                                        Err(e) => Err(e),
                                    };
                                    Ok(match res {
                                        Ok(resp) => {
                                            *upstream.lock().unwrap() = Some(tx);
                                            let (mut parts, body) = resp.into_parts();
                                            strip_hop_by_hop(&mut parts.headers);
                                            Response::from_parts(parts, Either::Left(body))
                                        }
                                        Err(_) => {
                                            stats.bad.fetch_add(1, Ordering::Relaxed);
                                            bad_gateway()
                                        }
                                    })
                                }
                            }),
                        );
                        async move {
                            let _ = conn.await;
                        }
                    })
                    .await
                }
            }
        }
    };
    let why = tokio::select! {
        _ = accept => "accept loop ended",
        w = shutdown_signal(a.common.exit_after_secs) => w,
    };
    eprintln!(
        "proxy stopping ({why}) after {:.1}s: connections={} requests={} upstream_errors={} cpu_s={:.2}",
        t0.elapsed().as_secs_f64(),
        stats.connections.load(Ordering::Relaxed),
        stats.requests.load(Ordering::Relaxed),
        stats.bad.load(Ordering::Relaxed),
        cpu_seconds() - cpu0,
    );
    Ok(())
}
