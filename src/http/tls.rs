//! Outgoing TLS, for every client the node has: the one rustls client configuration, built at
//! start-up ([`TlsConfig`]), and the one way a connection is opened ([`Connector::connect`]):
//! plain TCP for `http://`, TLS for `https://`, with a connect timeout and a handshake timeout,
//! `TCP_NODELAY` and ALPN `http/1.1`. The ILP-over-HTTP client, the settlement engines' client and
//! one-shot GETs (SPSP queries) all connect through it.
//!
//! Trust: the system's roots or Mozilla's list compiled in (`http.tls_roots`), plus the CA
//! certificates of an optional PEM file (`http.tls_ca_file`) for private networks. The server's
//! certificate is always verified against them, and its names against the URL's host: there is
//! no switch that turns either off. A certificate refused is an operating failure of the next hop,
//! told plainly ([`ConnectError::Certificate`]: "certificate not valid for host X", "unknown
//! issuer"): T01 for a packet, a retry later for a settlement; never a panic.
//!
//! The crypto is rustls's ring provider (no OpenSSL, no aws-lc); TLS 1.3 and 1.2.

use super::origin::Origin;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Which roots a server's certificate may chain to (besides [`TlsRules::ca_file`]'s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Roots {
    /// The system's store, read at start-up (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured):
    /// the operator's own trust decisions and the distribution's updates apply.
    #[default]
    System,
    /// Mozilla's root list as compiled into this build (webpki-roots): for images without a CA
    /// bundle; updated with the build, not with the system.
    Webpki,
}

impl Roots {
    fn name(self) -> &'static str {
        match self {
            Roots::System => "the system's",
            Roots::Webpki => "the bundled webpki",
        }
    }
}

/// CA certificates read from a PEM file, each checked to be usable as a trust anchor.
#[derive(Clone)]
pub struct CaFile {
    pub path: PathBuf,
    roots: RootCertStore,
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaFile").field("path", &self.path).field("certificates", &self.len()).finish()
    }
}

/// Why a CA file cannot be used; the caller names the key that gave its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} is not PEM: {reason}")]
    NotPem { path: String, reason: String },
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----; convert a DER file with `openssl x509 -inform der`)")]
    NoCertificate { path: String },
    #[error("certificate {index} of {path} cannot be a trust root: {reason}")]
    NotATrustRoot { path: String, index: usize, reason: String },
}

impl CaFile {
    /// Reads every certificate of the PEM file at `path` (other sections, such as keys, are
    /// skipped). The file should hold the issuing CAs: a server's own self-signed certificate is
    /// not accepted as its own root by the verifier.
    pub fn read(path: &Path) -> Result<CaFile, CaFileError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path)
            .map_err(|e| CaFileError::Read { path: shown.clone(), reason: e.to_string() })?;
        let mut roots = RootCertStore::empty();
        for (index, cert) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
            let cert =
                cert.map_err(|e| CaFileError::NotPem { path: shown.clone(), reason: e.to_string() })?;
            roots.add(cert).map_err(|e| CaFileError::NotATrustRoot {
                path: shown.clone(),
                index,
                reason: e.to_string(),
            })?;
        }
        if roots.is_empty() {
            return Err(CaFileError::NoCertificate { path: shown });
        }
        Ok(CaFile { path: path.to_path_buf(), roots })
    }

    /// How many certificates the file holds.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

/// What the node trusts, as configured (`[http]`'s `tls_roots` and `tls_ca_file`).
#[derive(Clone, Debug, Default)]
pub struct TlsRules {
    pub roots: Roots,
    pub ca_file: Option<CaFile>,
}

/// The node's one TLS client configuration: shared by every client (cheap to clone), so TLS
/// session tickets are reused across them too.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<ClientConfig>,
    /// What is trusted, in a line for the operator's start-up report.
    summary: Arc<str>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").field("summary", &self.summary).finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Builds the configuration: reads the system's roots when they are chosen (certificates it
    /// cannot use are counted in the summary, not fatal: the node may never need TLS), adds the CA
    /// file's. Verification of certificates and host names is rustls's default, always on.
    pub fn new(rules: &TlsRules) -> TlsConfig {
        let mut roots = RootCertStore::empty();
        let mut notes = Vec::new();
        match rules.roots {
            Roots::Webpki => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                let (_, unusable) = roots.add_parsable_certificates(found.certs);
                if unusable > 0 {
                    notes.push(format!("{unusable} unusable"));
                }
                if let Some(first) = found.errors.first() {
                    notes.push(format!("{} read errors, first: {first}", found.errors.len()));
                }
            }
        }
        let from_system = roots.len();
        let mut summary = format!("outgoing TLS trusts {} roots ({from_system}", rules.roots.name());
        for note in notes {
            summary.push_str(&format!(", {note}"));
        }
        summary.push(')');
        if let Some(ca) = &rules.ca_file {
            roots.extend(ca.roots.roots.iter().cloned());
            summary.push_str(&format!(" and {} from {}", ca.len(), ca.path.display()));
        }
        if roots.is_empty() {
            summary.push_str(
                ": none at all, so every https:// next hop is refused (unknown issuer); install the \
                 system's CA certificates, or set http.tls_roots = \"webpki\" or http.tls_ca_file",
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Every client of ours speaks HTTP/1.1: a server that would pick h2 must not.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsConfig { config: Arc::new(config), summary: summary.into() }
    }

    pub fn summary(&self) -> &str {
        &self.summary
    }
}

/// Opens connections to origins, plain or TLS, within its timeouts. Cheap to clone.
#[derive(Clone)]
pub struct Connector {
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("connect_timeout", &self.connect_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Connector {
    pub fn new(tls: &TlsConfig, connect_timeout: Duration, handshake_timeout: Duration) -> Connector {
        Connector { tls: tls.config.clone().into(), connect_timeout, handshake_timeout }
    }

    /// A TCP connection to `origin`, `TCP_NODELAY` set (small request/response pairs: Nagle's delay
    /// would dominate), with TLS on it for `https://`: the certificate verified against the
    /// trusted roots and for the origin's host.
    pub async fn connect(&self, origin: &Origin) -> Result<Stream, ConnectError> {
        let connecting = TcpStream::connect(&*origin.address);
        let tcp = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| ConnectError::ConnectTimedOut {
                address: origin.address.clone(),
                after: self.connect_timeout,
            })?
            .map_err(|e| ConnectError::Tcp { address: origin.address.clone(), error: e.to_string() })?;
        let _ = tcp.set_nodelay(true);
        let Some(name) = &origin.tls else { return Ok(Stream::Plain(tcp)) };
        let handshake = self.tls.connect(name.clone(), tcp);
        match tokio::time::timeout(self.handshake_timeout, handshake).await {
            Ok(Ok(tls)) => Ok(Stream::Tls(Box::new(tls))),
            Ok(Err(e)) => Err(ConnectError::from_handshake(name, e)),
            Err(_) => Err(ConnectError::HandshakeTimedOut {
                host: name.to_str().into_owned(),
                after: self.handshake_timeout,
            }),
        }
    }
}

/// Why no connection could be opened. Nothing was sent on it, whatever the variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {address}: {error}")]
    Tcp { address: Arc<str>, error: String },
    #[error("connecting to {address} timed out after {} ms", .after.as_millis())]
    ConnectTimedOut { address: Arc<str>, after: Duration },
    #[error("TLS handshake with {host} timed out after {} ms", .after.as_millis())]
    HandshakeTimedOut { host: String, after: Duration },
    /// The server's certificate was refused: for an operator to fix, at the next hop or in
    /// `http.tls_roots` / `http.tls_ca_file`.
    #[error("TLS: {}", .problem.describe(.host))]
    Certificate { host: String, problem: CertificateProblem },
    /// Any other handshake failure: no protocol or cipher in common, the server's alert, a reset.
    #[error("TLS handshake with {host} failed: {reason}")]
    Handshake { host: String, reason: String },
}

/// What was wrong with a server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateProblem {
    /// Hostname verification: the certificate names other hosts (`presented`, when known).
    NotValidForHost {
        presented: Vec<String>,
    },
    /// Not signed by a root the node trusts.
    UnknownIssuer,
    Expired,
    NotYetValid,
    Revoked,
    /// Any other reason, as rustls words it.
    Other(String),
}

impl CertificateProblem {
    fn describe(&self, host: &str) -> String {
        match self {
            CertificateProblem::NotValidForHost { presented } if presented.is_empty() => {
                format!("certificate not valid for host {host}")
            }
            CertificateProblem::NotValidForHost { presented } => {
                format!("certificate not valid for host {host} (it is for {})", presented.join(", "))
            }
            CertificateProblem::UnknownIssuer => format!(
                "certificate of {host} has an unknown issuer (no root trusted by http.tls_roots or \
                 http.tls_ca_file signed it)"
            ),
            CertificateProblem::Expired => format!("certificate of {host} has expired"),
            CertificateProblem::NotYetValid => format!("certificate of {host} is not valid yet"),
            CertificateProblem::Revoked => format!("certificate of {host} is revoked"),
            CertificateProblem::Other(reason) => format!("certificate of {host} refused: {reason}"),
        }
    }
}

impl ConnectError {
    /// tokio-rustls hands rustls's error over inside an `io::Error`: taken out here, so that a
    /// certificate problem is named as one and not as a bare I/O failure.
    fn from_handshake(name: &ServerName<'static>, e: io::Error) -> ConnectError {
        use rustls::CertificateError as C;
        let host = name.to_str().into_owned();
        let problem = match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::InvalidCertificate(c)) => match c {
                C::NotValidForName => CertificateProblem::NotValidForHost { presented: Vec::new() },
                C::NotValidForNameContext { presented, .. } => {
                    CertificateProblem::NotValidForHost { presented: presented.clone() }
                }
                C::UnknownIssuer => CertificateProblem::UnknownIssuer,
                C::Expired | C::ExpiredContext { .. } => CertificateProblem::Expired,
                C::NotValidYet | C::NotValidYetContext { .. } => CertificateProblem::NotYetValid,
                C::Revoked => CertificateProblem::Revoked,
                other => CertificateProblem::Other(other.to_string()),
            },
            Some(other) => return ConnectError::Handshake { host, reason: other.to_string() },
            None => return ConnectError::Handshake { host, reason: e.to_string() },
        };
        ConnectError::Certificate { host, problem }
    }

    /// Whether the server's certificate was refused (as opposed to the network failing).
    pub fn is_certificate(&self) -> bool {
        matches!(self, ConnectError::Certificate { .. })
    }
}

/// A connection as [`Connector::connect`] opened it: plain or TLS. Reads and writes go to the one
/// inside; both kinds write vectored, so hyper's writes are not copied.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// hyper-util's pooled client (the settlement engines') connects through the same [`Connector`].
/// It pools by scheme and authority, so `http` and `https` never share a connection there either.
impl tower_service::Service<hyper::Uri> for Connector {
    type Response = hyper_util::rt::TokioIo<Stream>;
    type Error = ConnectOrUrlError;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move {
            let origin = Origin::from_uri(&uri).map_err(ConnectOrUrlError::Url)?;
            let stream = connector.connect(&origin).await.map_err(ConnectOrUrlError::Connect)?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        })
    }
}

/// What the pooled client's connector can fail with: its URL, or the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectOrUrlError {
    #[error("URL {0}")]
    Url(super::origin::OriginError),
    #[error(transparent)]
    Connect(ConnectError),
}

impl hyper_util::client::legacy::connect::Connection for Stream {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("thitsax-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn ca_pem() -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem()
    }

    #[test]
    fn a_ca_file_is_read_with_every_certificate_and_its_other_sections_skipped() {
        let dir = dir("read");
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let path = dir.join("ca.pem");
        std::fs::write(&path, format!("{}{key}{}", ca_pem(), ca_pem())).unwrap();
        let ca = CaFile::read(&path).unwrap();
        assert_eq!(ca.len(), 2);
        let config = TlsConfig::new(&TlsRules { roots: Roots::Webpki, ca_file: Some(ca) });
        assert!(config.summary().contains(&format!("and 2 from {}", path.display())), "{}", config.summary());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_ca_file_that_is_missing_empty_or_not_pem_says_which_and_where() {
        let dir = dir("bad");
        let missing = dir.join("missing.pem");
        assert!(matches!(CaFile::read(&missing), Err(CaFileError::Read { .. })));
        let text = dir.join("text.pem");
        std::fs::write(&text, "not a certificate\n").unwrap();
        let e = CaFile::read(&text).unwrap_err();
        assert!(matches!(e, CaFileError::NoCertificate { .. }), "{e}");
        assert!(e.to_string().contains(&*text.to_string_lossy()), "{e}");
        let broken = dir.join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").unwrap();
        assert!(matches!(CaFile::read(&broken), Err(CaFileError::NotPem { .. })));
        let truncated = dir.join("truncated.pem");
        std::fs::write(&truncated, &ca_pem()[..200]).unwrap();
        assert!(CaFile::read(&truncated).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_bundled_roots_are_there_and_an_empty_trust_is_said_plainly() {
        let webpki = TlsConfig::new(&TlsRules { roots: Roots::Webpki, ca_file: None });
        assert!(webpki.summary().starts_with("outgoing TLS trusts the bundled webpki roots ("));
        assert!(!webpki.summary().contains("none at all"), "{}", webpki.summary());
        let config = &webpki.config;
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }

    #[test]
    fn certificate_problems_name_the_host() {
        let name = ServerName::try_from("peer.example").unwrap().to_owned();
        let wrap = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        let e = ConnectError::from_handshake(
            &name,
            wrap(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)),
        );
        assert_eq!(e.to_string(), "TLS: certificate not valid for host peer.example");
        let e = ConnectError::from_handshake(
            &name,
            wrap(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)),
        );
        assert!(e.is_certificate());
        assert!(e.to_string().contains("certificate of peer.example has an unknown issuer"), "{e}");
        let reset = ConnectError::from_handshake(&name, io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(matches!(reset, ConnectError::Handshake { .. }), "{reset}");
    }
}
