//! TLS for the tests' own servers: a CA made at test time (rcgen, ring backend), certificates it
//! signs for the names a test chooses, and a small HTTP/1.1 server, plain or TLS, that records
//! what it receives and counts the connections it served.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A certificate authority of the test's own: no system or webpki root knows it.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "ThitsaX test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let key = rcgen::KeyPair::generate().unwrap();
        TestCa { issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap() }
    }

    /// The CA's certificate as PEM, written to `dir/ca.pem` (what `http.tls_ca_file` names).
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.issuer.pem()).unwrap();
        path
    }

    /// A server's TLS acceptor with a certificate for `names` (DNS names or IP addresses), signed
    /// by this CA; the chain sent is the certificate and the CA's.
    pub fn acceptor(&self, names: &[&str]) -> TlsAcceptor {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "test server");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone(), self.issuer.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

/// One request as a [`Server`] saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: hyper::Method,
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// What a [`Server`] answers: status, content type, body, after a delay.
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
    pub delay: Duration,
}

impl Answer {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
        Answer { status, content_type, body: body.into(), delay: Duration::ZERO }
    }
}

type Respond = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

/// An HTTP/1.1 server on 127.0.0.1:0, plain or TLS, answering every request with `respond`.
pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections served: accepted and, with TLS, through the handshake.
    pub connections: Arc<AtomicUsize>,
    /// TLS handshakes that failed (the client refused the certificate, or spoke plain HTTP).
    pub failed_handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(
        tls: Option<TlsAcceptor>,
        respond: impl Fn(&Seen) -> Answer + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Default::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let failed_handshakes = Arc::new(AtomicUsize::new(0));
        let respond: Respond = Arc::new(respond);
        let (record, served, failed) = (seen.clone(), connections.clone(), failed_handshakes.clone());
        let task = tokio::spawn(async move {
            // Connection tasks live in this set, so aborting the accept loop closes them too.
            let mut tasks = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (respond, record, served, failed, tls) =
                    (respond.clone(), record.clone(), served.clone(), failed.clone(), tls.clone());
                tasks.spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        let (respond, record) = (respond.clone(), record.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let seen = Seen {
                                method: parts.method,
                                path: parts.uri.path().to_string(),
                                headers: parts.headers,
                                body,
                            };
                            let answer = respond(&seen);
                            record.lock().unwrap().push(seen);
                            tokio::time::sleep(answer.delay).await;
                            let mut response = hyper::Response::new(Full::new(answer.body));
                            *response.status_mut() = hyper::StatusCode::from_u16(answer.status).unwrap();
                            if !answer.content_type.is_empty() {
                                response
                                    .headers_mut()
                                    .insert("content-type", answer.content_type.parse().unwrap());
                            }
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            served.fetch_add(1, Ordering::SeqCst);
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => {
                                served.fetch_add(1, Ordering::SeqCst);
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                            Err(_) => {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                        },
                    }
                });
            }
        });
        Server { addr, seen, connections, failed_handshakes, task }
    }

    /// `https://localhost:<port>` (or `http://`): the name the test certificates carry.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://localhost:{}", self.addr.port())
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
