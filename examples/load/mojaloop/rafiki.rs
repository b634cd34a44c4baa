//! `--payee rafiki`: the thitsax side's payee is a **test double** of a Rafiki instance, run in
//! this process (Rafiki itself cannot run here: it has no published server package), so that the
//! transfer is the cross-network provider's: Mojaloop in, STREAM through a Rafiki peer, a Rafiki
//! wallet address credited. It behaves as `../shared/wire/rafiki.md` describes for what the run
//! uses:
//!
//! - its **connector** (ILP-over-HTTP, any path and method): `Authorization: Bearer <token>`
//!   required (401 `Bearer token required in Authorization header` without, `Access Denied -
//!   Invalid Token` for another token), `Content-Type` exactly `application/octet-stream` (400
//!   otherwise), an unparseable Prepare 500; then a Prepare that expires in less than
//!   [`EXPIRY_LEFT_MIN`] is R02, one to an address that is not a wallet's STREAM address F02
//!   (`peer.config` too: Rafiki serves no ILDCP to peers);
//! - a **liquidity ledger** for its one peer, the node: a Prepare from the node is debited from
//!   the node's prefunded liquidity (T04 `InsufficientBalance`, nothing changed, when it would go
//!   below 0) and credited back when the wallet's STREAM receiver rejects it, as Rafiki voids the
//!   pending transfer;
//! - its **wallet addresses**, `tests/common/rafiki_wallets.rs` as the tests use it (included,
//!   not copied): SPSP on a listener of their own, STREAM packets answered with ThitsaX's own
//!   receiver, a wallet credited only for a fulfilled packet.
//!
//! Not modelled, because nothing in this run reaches them: the 5 s booking window (answers come
//! from this process in microseconds), the admin API, webhooks and top-ups (the liquidity is
//! prefunded for the whole run, see [`PREFUNDED_LIQUIDITY`]), and Rafiki's limit of 10,000
//! packets per minute from one peer, which is counted instead ([`RafikiDouble::prepares`]) so
//! that the report says how close a run comes to it.

// The tests' wallets also pay out of a wallet (`Wallets::pay`), which this tool does not use.
#[allow(dead_code)]
#[path = "../../../tests/common/rafiki_wallets.rs"]
mod rafiki_wallets;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::runtime::Handle;
use tokio::task::{JoinHandle, JoinSet};

use ::thitsax::packet::{ErrorCode, IlpAddress, Prepare, Reject};
use rafiki_wallets::{Answer, Wallets};

use crate::mojaloop::nodes::WALLET_SCALE;
use crate::mojaloop::payer::CURRENCY;
use crate::server::http1_server;

/// The double's ILP address: node `dfsp`'s peer account `rafiki` routes it there.
pub(crate) const RAFIKI_ADDRESS: &str = "test.rafiki";
/// The one wallet address every payee party is: parties are distinct only for the payer
/// Connector's sake (see `payer`), the money may all go to one wallet.
pub(crate) const WALLET: &str = "load-payee";
/// The token the double accepts from the node (the node's `outgoing_token`).
pub(crate) const NODE_TO_RAFIKI_TOKEN: &str = "dfsp-to-rafiki";
/// The token the node accepts from the double (its `incoming_token`); the double sends nothing in
/// this run, but a peer account has both.
pub(crate) const RAFIKI_TO_NODE_TOKEN: &str = "rafiki-to-dfsp";
/// The node's liquidity at the double when a run starts: what Rafiki gives a peer it auto-peers
/// with (2^53 − 1, in the asset's scale), far beyond any run, so that no top-up takes part in
/// the measurement (top-ups are timed apart: the webhook burst of `tests/rafiki_liquidity.rs`).
pub(crate) const PREFUNDED_LIQUIDITY: u64 = 9_007_199_254_740_991;
/// Rafiki rejects R02 a Prepare that is expired or expires less than about 2 s from now.
pub(crate) const EXPIRY_LEFT_MIN: Duration = Duration::from_secs(2);

/// A Prepare the node's liquidity cannot cover: Rafiki's T04 `InsufficientBalance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InsufficientBalance {
    pub(crate) liquidity: u64,
    pub(crate) amount: u64,
}

/// The node's prefunded liquidity at the double, in the asset's scale.
#[derive(Debug)]
pub(crate) struct Liquidity {
    left: u64,
}

impl Liquidity {
    pub(crate) fn new(left: u64) -> Liquidity {
        Liquidity { left }
    }

    pub(crate) fn left(&self) -> u64 {
        self.left
    }

    /// The pending phase of a packet from the node: never below 0.
    pub(crate) fn debit(&mut self, amount: u64) -> Result<u64, InsufficientBalance> {
        let left =
            self.left.checked_sub(amount).ok_or(InsufficientBalance { liquidity: self.left, amount })?;
        self.left = left;
        Ok(left)
    }

    /// A debited packet voided (the wallet refused it). Only ever gives back what `debit` took,
    /// so it cannot pass the prefunded amount; saturating all the same, never a panic here.
    pub(crate) fn credit_back(&mut self, amount: u64) {
        self.left = self.left.saturating_add(amount);
    }
}

/// What the connector was sent and did with it.
#[derive(Default)]
pub(crate) struct Counts {
    /// Prepares that passed the token and content-type checks.
    pub(crate) prepares: AtomicU64,
    pub(crate) fulfilled: AtomicU64,
    pub(crate) rejected: AtomicU64,
    /// HTTP refusals: 401, 400, 500.
    pub(crate) refused: AtomicU64,
}

struct Shared {
    wallets: Wallets,
    liquidity: Mutex<Liquidity>,
    by: IlpAddress,
    counts: Counts,
}

/// The running double: its connector and SPSP listeners on the runtime it was started on, until
/// it is dropped.
pub(crate) struct RafikiDouble {
    pub(crate) connector: SocketAddr,
    pub(crate) spsp: SocketAddr,
    shared: Arc<Shared>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for RafikiDouble {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn bind() -> Result<(std::net::TcpListener, SocketAddr), String> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind the Rafiki double: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    Ok((listener, addr))
}

/// Serves `handle` on `listener`, each connection in the accept task's `JoinSet` (aborting the
/// task closes them too), with the tool's HTTP/1 server settings.
fn serve<F, Fut>(rt: &Handle, listener: std::net::TcpListener, handle: F) -> JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    rt.spawn(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let handle = handle.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handle = handle.clone();
                    async move { Ok::<_, Infallible>(handle(req).await) }
                });
                let _ = http1_server().serve_connection(TokioIo::new(stream), service).await;
            });
            while connections.try_join_next().is_some() {}
        }
    })
}

impl RafikiDouble {
    /// Starts the double on `rt` with wallet [`WALLET`] at 0 and the node's liquidity at
    /// `liquidity`.
    pub(crate) fn start(rt: &Handle, liquidity: u64) -> Result<RafikiDouble, String> {
        let shared = Arc::new(Shared::new(liquidity));
        let (connector_listener, connector) = bind()?;
        let (spsp_listener, spsp) = bind()?;
        let at_connector = shared.clone();
        let connector_task = serve(rt, connector_listener, move |req| {
            let shared = at_connector.clone();
            async move { shared.connect(req).await }
        });
        let at_spsp = shared.clone();
        let spsp_task = serve(rt, spsp_listener, move |req| {
            let shared = at_spsp.clone();
            async move { shared.wallets.spsp(req).await }
        });
        Ok(RafikiDouble { connector, spsp, shared, tasks: [connector_task, spsp_task] })
    }

    /// The wallet address URL (SPSP) of [`WALLET`].
    pub(crate) fn wallet_url(&self) -> String {
        format!("http://{}/{WALLET}", self.spsp)
    }

    /// What [`WALLET`] holds, in the asset's scale.
    pub(crate) fn wallet_balance(&self) -> u64 {
        self.shared.wallets.balance(WALLET).unwrap_or(0)
    }

    pub(crate) fn liquidity(&self) -> u64 {
        self.shared.liquidity.lock().unwrap_or_else(|e| e.into_inner()).left()
    }

    pub(crate) fn counts(&self) -> &Counts {
        &self.shared.counts
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", "text/plain".parse().expect("valid header"));
    r
}

fn octets(body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    r.headers_mut().insert("content-type", "application/octet-stream".parse().expect("valid header"));
    r
}

impl Shared {
    fn new(liquidity: u64) -> Shared {
        let wallets = Wallets::new(RAFIKI_ADDRESS, (CURRENCY, WALLET_SCALE));
        wallets.add(WALLET, 0);
        Shared {
            wallets,
            liquidity: Mutex::new(Liquidity::new(liquidity)),
            by: IlpAddress::parse(RAFIKI_ADDRESS).expect("a valid address"),
            counts: Counts::default(),
        }
    }

    async fn connect(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (authorization, content_type) = (header("authorization"), header("content-type"));
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        self.answer(authorization.as_deref(), content_type.as_deref(), &body, SystemTime::now())
    }

    fn reject(&self, code: ErrorCode, message: &str) -> Response<Full<Bytes>> {
        self.counts.rejected.fetch_add(1, Ordering::Relaxed);
        octets(Reject::build(code, &self.by, message, &[]).as_bytes().clone())
    }

    /// The connector's answer to one HTTP request, at `now`.
    fn answer(
        &self,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
        now: SystemTime,
    ) -> Response<Full<Bytes>> {
        let refuse = |status, why| {
            self.counts.refused.fetch_add(1, Ordering::Relaxed);
            text(status, why)
        };
        let token = match authorization.and_then(|a| a.split_once(' ')) {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token,
            _ => return refuse(StatusCode::UNAUTHORIZED, "Bearer token required in Authorization header"),
        };
        if token != NODE_TO_RAFIKI_TOKEN {
            return refuse(StatusCode::UNAUTHORIZED, "Access Denied - Invalid Token");
        }
        if content_type != Some("application/octet-stream") {
            return refuse(StatusCode::BAD_REQUEST, "Expected Content-Type of application/octet-stream");
        }
        let Ok(prepare) = Prepare::parse(body) else {
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        };
        self.counts.prepares.fetch_add(1, Ordering::Relaxed);
        if prepare.expires_at().duration_since(now).map_or(true, |left| left < EXPIRY_LEFT_MIN) {
            return self.reject(ErrorCode::R02_INSUFFICIENT_TIMEOUT, "expires too soon");
        }
        // Debited before the wallet sees it, as Rafiki's pending transfer is.
        let amount = prepare.amount();
        if amount > 0 {
            let debited = self.liquidity.lock().unwrap_or_else(|e| e.into_inner()).debit(amount);
            if debited.is_err() {
                return self.reject(ErrorCode::T04_INSUFFICIENT_LIQUIDITY, "InsufficientBalance");
            }
        }
        match self.wallets.receive(&prepare) {
            Some(Answer::Fulfilled(fulfill)) => {
                self.counts.fulfilled.fetch_add(1, Ordering::Relaxed);
                octets(fulfill)
            }
            answer => {
                // Voided: the wallet refused it, or it is no wallet's (no route).
                if amount > 0 {
                    self.liquidity.lock().unwrap_or_else(|e| e.into_inner()).credit_back(amount);
                }
                match answer {
                    Some(Answer::Rejected(reject)) => {
                        self.counts.rejected.fetch_add(1, Ordering::Relaxed);
                        octets(reject)
                    }
                    _ => self.reject(ErrorCode::F02_UNREACHABLE, "unknown destination account"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::thitsax::packet::Response as IlpResponse;
    use ::thitsax::stream::sender::{self, Amount, AssetDetails, Payment, Progress, Rules, Transport};

    const OCTETS: Option<&str> = Some("application/octet-stream");
    const BEARER: Option<&str> = Some("Bearer dfsp-to-rafiki");

    fn later(secs: u64) -> SystemTime {
        SystemTime::now() + Duration::from_secs(secs)
    }

    fn prepare(to: &str, amount: u64, expires_at: SystemTime) -> Prepare {
        Prepare::build(&IlpAddress::parse(to).unwrap(), amount, expires_at, &[7; 32], b"not stream")
    }

    async fn body(r: Response<Full<Bytes>>) -> (StatusCode, Bytes) {
        let status = r.status();
        (status, r.into_body().collect().await.unwrap().to_bytes())
    }

    fn code(bytes: Bytes) -> ErrorCode {
        match IlpResponse::parse(bytes).expect("an ILP answer") {
            IlpResponse::Reject(r) => r.code(),
            IlpResponse::Fulfill(_) => panic!("fulfilled"),
        }
    }

    #[test]
    fn liquidity_never_goes_below_zero_and_a_void_gives_it_back() {
        let mut l = Liquidity::new(10);
        assert_eq!(l.debit(4), Ok(6));
        assert_eq!(l.debit(7), Err(InsufficientBalance { liquidity: 6, amount: 7 }));
        assert_eq!(l.left(), 6);
        l.credit_back(4);
        assert_eq!(l.left(), 10);
    }

    #[tokio::test]
    async fn the_connector_refuses_what_rafiki_refuses() {
        let s = Shared::new(1_000);
        let p = prepare("test.rafiki.unknown", 5, later(30));
        let bytes = p.to_bytes();
        let cases = [
            (None, OCTETS, StatusCode::UNAUTHORIZED, "Bearer token required in Authorization header"),
            (
                Some("Basic x"),
                OCTETS,
                StatusCode::UNAUTHORIZED,
                "Bearer token required in Authorization header",
            ),
            (Some("Bearer other"), OCTETS, StatusCode::UNAUTHORIZED, "Access Denied - Invalid Token"),
            (BEARER, Some("application/ilp+octet-stream"), StatusCode::BAD_REQUEST, "Expected Content-Type"),
            (BEARER, None, StatusCode::BAD_REQUEST, "Expected Content-Type"),
        ];
        for (auth, ct, status, why) in cases {
            let (got, text) = body(s.answer(auth, ct, &bytes, SystemTime::now())).await;
            assert_eq!(got, status, "{auth:?} {ct:?}");
            assert!(String::from_utf8_lossy(&text).starts_with(why), "{text:?}");
        }
        // The scheme is case-insensitive.
        let (status, _) =
            body(s.answer(Some("bearer dfsp-to-rafiki"), OCTETS, &bytes, SystemTime::now())).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = body(s.answer(BEARER, OCTETS, b"\x0cgarbage", SystemTime::now())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        // No route (and no ILDCP): F02, the liquidity untouched.
        for to in ["test.rafiki.unknown", "peer.config", "test.elsewhere"] {
            let (_, answer) =
                body(s.answer(BEARER, OCTETS, &prepare(to, 5, later(30)).to_bytes(), SystemTime::now()))
                    .await;
            assert_eq!(code(answer), ErrorCode::F02_UNREACHABLE, "{to}");
        }
        // Expiring in less than 2 s: R02.
        let soon = prepare("test.rafiki.unknown", 5, later(1));
        let (_, answer) = body(s.answer(BEARER, OCTETS, &soon.to_bytes(), SystemTime::now())).await;
        assert_eq!(code(answer), ErrorCode::R02_INSUFFICIENT_TIMEOUT);
        // More than the liquidity: T04.
        let big = prepare("test.rafiki.unknown", 1_001, later(30));
        let (_, answer) = body(s.answer(BEARER, OCTETS, &big.to_bytes(), SystemTime::now())).await;
        assert_eq!(code(answer), ErrorCode::T04_INSUFFICIENT_LIQUIDITY);
        assert_eq!(s.liquidity.lock().unwrap().left(), 1_000);
        assert_eq!(s.wallets.balance(WALLET), Some(0));
    }

    /// The node's side of the link in a test: every Prepare straight to the connector's answer.
    struct Link(Arc<Shared>);

    impl Transport for Link {
        async fn send(&self, prepare: Prepare) -> IlpResponse {
            let r = self.0.answer(BEARER, OCTETS, &prepare.to_bytes(), SystemTime::now());
            IlpResponse::parse(r.into_body().collect().await.unwrap().to_bytes()).expect("an ILP answer")
        }
    }

    async fn pay(double: &RafikiDouble, amount: u64, deadline: Duration) -> sender::Outcome {
        let (destination, shared_secret) = super::rafiki_wallets::spsp_query(&double.wallet_url()).await;
        assert!(destination.as_str().starts_with("test.rafiki."), "{destination:?}");
        let payment = Payment {
            destination,
            shared_secret,
            source_asset: AssetDetails { code: CURRENCY.into(), scale: WALLET_SCALE },
            source_address: None,
            amount: Amount::Source(amount),
        };
        let rules = Rules::new(tokio::time::Instant::now() + deadline);
        sender::pay(&Link(double.shared.clone()), &payment, &rules, Progress::default(), |_| async {})
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_stream_payment_credits_the_wallet_and_spends_exactly_that_liquidity() {
        let double = RafikiDouble::start(&Handle::current(), 5_000_000_000).unwrap();
        let outcome = pay(&double, 1_000_000_000, Duration::from_secs(30)).await;
        assert_eq!((outcome.sent, outcome.delivered), (1_000_000_000, 1_000_000_000), "{outcome:?}");
        assert_eq!(double.wallet_balance(), 1_000_000_000);
        // The probe's test packets were debited and voided; only the money stayed spent.
        assert_eq!(double.liquidity(), 4_000_000_000);
        let c = double.counts();
        assert!(c.rejected.load(Ordering::Relaxed) > 0, "the probe's packets are rejected");
        assert_eq!(c.refused.load(Ordering::Relaxed), 0);

        // A packet the wallet's receiver refuses (not a STREAM packet of its token) is voided.
        let (destination, _) = super::rafiki_wallets::spsp_query(&double.wallet_url()).await;
        let p = prepare(destination.as_str(), 10, later(30));
        let (_, answer) = body(double.shared.answer(BEARER, OCTETS, &p.to_bytes(), SystemTime::now())).await;
        assert!(matches!(IlpResponse::parse(answer), Ok(IlpResponse::Reject(_))));
        assert_eq!((double.wallet_balance(), double.liquidity()), (1_000_000_000, 4_000_000_000));
    }

    #[tokio::test]
    async fn a_payment_beyond_the_liquidity_is_refused_t04_and_nothing_moves() {
        let double = RafikiDouble::start(&Handle::current(), 999).unwrap();
        // T04 is retried (a T code) until the deadline, and R02 once packets expire too soon.
        let outcome = pay(&double, 1_000, Duration::from_secs(3)).await;
        assert_eq!(outcome.delivered, 0, "{outcome:?}");
        assert!(outcome.rejects_by_code.contains_key("T04"), "{outcome:?}");
        assert_eq!((double.wallet_balance(), double.liquidity()), (0, 999));
    }
}
