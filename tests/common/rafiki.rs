//! A **test double** of a Rafiki instance (Rafiki itself cannot run in CI: no published server
//! package), behaving as `../shared/wire/rafiki.md` describes for what the tests use:
//!
//! - its **auto-peering endpoint** (`POST /`, JSON, no authentication): an asset it does not
//!   hold gets 404 `{"error": {"code": 404, "message": "Unknown asset", "type": "UnknownAsset"}}`;
//!   invalid JSON 400; a missing `asset` or `httpToken` a plain-text 500; a bad address or URL
//!   400 `InvalidPeerIlpConfiguration`. An accepted request (even an identical repeat) rotates
//!   the tokens: the caller's `httpToken` becomes the one it accepts (the old one then gets
//!   401), and it answers a new one it will send;
//! - its **connector** (ILP-over-HTTP, any path): `Authorization: Bearer` required (401 `Bearer
//!   token required in Authorization header`, or `Access Denied - Invalid Token`),
//!   `Content-Type` exactly `application/octet-stream` (400 otherwise), an unparseable Prepare
//!   500; `peer.config` is F02 (Rafiki serves no ILDCP to peers); a Prepare expiring less than
//!   2 s from now is R02; one above the peer's `maxPacketAmount` (when set) F08 with what
//!   arrived and the maximum; a Prepare more than the
//!   node peer's liquidity is T04 `InsufficientBalance` with nothing changed; any other is
//!   fulfilled with the preimage the tests put in its data and debited from that liquidity
//!   (a fulfilled packet leaving it at or below the threshold fires `peer.liquidity_low` ~100 ms
//!   later); zero-amount packets change nothing;
//! - and it **sends** Prepares to its peer's connector URL with the token it answered, as Rafiki
//!   does (`Content-Type: application/octet-stream`, `Authorization: Bearer`); a Fulfill credits
//!   the node peer's liquidity, with no cap, when it came within the 5 s booking window (a
//!   later one is relayed and not booked).
//!
//! Its ledger, admin GraphQL API and webhooks are in `rafiki_admin.rs` ([`Options`] turns them
//! on); its wallet addresses (SPSP, a STREAM receiver and sender) in `rafiki_wallets.rs`: a
//! Prepare to a wallet's STREAM address debits the peer's liquidity as any other, and is credited
//! back when the wallet's receiver rejects it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use thitsax::packet::{ErrorCode, Fulfill, IlpAddress, Prepare, Reject, Response as IlpResponse};
use thitsax::stream::sender;
use tokio::net::TcpListener;

pub use super::rafiki_admin::NODE_PEER_ID;
use super::rafiki_admin::{
    AdminDouble, AdminOptions, Asset, Ledger, PeerAccount, SharedLedger, WebhookOptions, Webhooks, ASSET_ID,
    AUTO_PEERING_LIQUIDITY, LIQUIDITY_LOW_DELAY,
};
use super::rafiki_wallets::{Answer, Wallets};

/// Rafiki's own address, as its auto-peering answers it.
pub const RAFIKI_ADDRESS: &str = "test.rafiki";
/// A Fulfill from the peer later than this after Rafiki sent the Prepare is relayed but not
/// booked: the pending ledger transfer timed out (TIGERBEETLE_TWO_PHASE_TIMEOUT_SECONDS).
pub const BOOKING_WINDOW: Duration = Duration::from_secs(5);
/// A Prepare expiring sooner than this from now is R02 (Rafiki's "~2 s").
pub const EXPIRY_LEFT_MIN: Duration = Duration::from_secs(2);

/// What the double knows of its one peer (the node).
#[derive(Debug, Default, Clone)]
pub struct PeerState {
    /// The token it accepts from the peer (the peer's last `httpToken`).
    pub accepted_token: Option<String>,
    /// The token it sends (its last answer's `httpToken`).
    pub send_token: Option<String>,
    pub connector_url: Option<String>,
    pub static_ilp_address: Option<String>,
    /// Auto-peering requests accepted.
    pub peerings: usize,
    /// Prepares its connector received, with the Authorization and Content-Type they came with.
    pub received: Vec<(String, String, String)>,
    /// The peer's `maxPacketAmount`: a Prepare from it above this is F08.
    pub max_packet_amount: Option<u64>,
    /// Fulfills from the peer that came after [`BOOKING_WINDOW`]: relayed, not booked.
    pub unbooked: usize,
}

/// How a [`RafikiDouble`] starts; [`Options::default`] is Rafiki's auto-peering default (the
/// node's peer with 2^53 - 1 liquidity and no threshold), no admin API, no webhook URL.
#[derive(Debug, Clone)]
pub struct Options {
    /// The admin GraphQL API, on its own port, when set.
    pub admin: Option<AdminOptions>,
    /// The node peer's liquidity at start.
    pub initial_liquidity: u64,
    /// The node peer's `liquidityThreshold`.
    pub liquidity_threshold: Option<u64>,
    pub webhook: WebhookOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            admin: None,
            initial_liquidity: AUTO_PEERING_LIQUIDITY,
            liquidity_threshold: None,
            webhook: WebhookOptions::default(),
        }
    }
}

pub struct RafikiDouble {
    pub peering_port: u16,
    pub connector_port: u16,
    /// Wallet addresses: `http://127.0.0.1:<wallet_port>/<wallet>` (SPSP).
    pub wallet_port: u16,
    pub wallets: Arc<Wallets>,
    pub state: Arc<Mutex<PeerState>>,
    /// The peer liquidity ledger, shared by the connector and the admin API.
    pub ledger: SharedLedger,
    pub webhooks: Arc<Webhooks>,
    admin: Option<AdminDouble>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RafikiDouble {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.webhooks.stop();
    }
}

/// What the connector's requests need: the peer, its ledger, the webhook sender.
#[derive(Clone)]
struct Connector {
    state: Arc<Mutex<PeerState>>,
    ledger: SharedLedger,
    webhooks: Arc<Webhooks>,
    wallets: Arc<Wallets>,
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", "text/plain".parse().unwrap());
    r
}

fn json_answer(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", "application/json".parse().unwrap());
    r
}

fn octets(body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    r.headers_mut().insert("content-type", "application/octet-stream".parse().unwrap());
    r
}

impl RafikiDouble {
    /// Starts both endpoints on claimed loopback ports; it holds `asset` (code, scale).
    pub async fn start(asset: (&str, u8)) -> RafikiDouble {
        Self::start_with(asset, Options::default()).await
    }

    /// Starts the double as `options` say: the peering endpoint and the connector always, the
    /// admin API when `options.admin` is set.
    pub async fn start_with(asset: (&str, u8), options: Options) -> RafikiDouble {
        let (peering_port, connector_port, wallet_port) =
            (super::ports::claim(), super::ports::claim(), super::ports::claim());
        let wallets = Arc::new(Wallets::new(RAFIKI_ADDRESS, asset));
        let state = Arc::new(Mutex::new(PeerState::default()));
        let mut ledger =
            Ledger::new(Asset { id: ASSET_ID.to_string(), code: asset.0.to_string(), scale: asset.1 });
        let node_peer =
            PeerAccount { liquidity: options.initial_liquidity, threshold: options.liquidity_threshold };
        ledger.add_peer(NODE_PEER_ID, node_peer);
        let ledger = ledger.shared();
        let webhooks = Webhooks::new(options.webhook.clone(), ledger.clone());
        let tenant =
            options.admin.as_ref().map_or_else(|| AdminOptions::default().tenant_id, |a| a.tenant_id.clone());
        let asset = (asset.0.to_string(), asset.1);
        let peering = {
            let state = state.clone();
            serve(peering_port, move |req| {
                let (state, asset, tenant) = (state.clone(), asset.clone(), tenant.clone());
                async move { peer(req, &state, &asset, connector_port, &tenant).await }
            })
            .await
        };
        let connector = {
            let shared = Connector {
                state: state.clone(),
                ledger: ledger.clone(),
                webhooks: webhooks.clone(),
                wallets: wallets.clone(),
            };
            serve(connector_port, move |req| {
                let shared = shared.clone();
                async move { connect(req, &shared).await }
            })
            .await
        };
        let spsp = {
            let wallets = wallets.clone();
            serve(wallet_port, move |req| {
                let wallets = wallets.clone();
                async move { wallets.spsp(req).await }
            })
            .await
        };
        let admin = match options.admin {
            Some(admin) => Some(AdminDouble::start(admin, ledger.clone()).await),
            None => None,
        };
        RafikiDouble {
            peering_port,
            connector_port,
            wallet_port,
            wallets,
            state,
            ledger,
            webhooks,
            admin,
            tasks: vec![peering, connector, spsp],
        }
    }

    /// The admin GraphQL API; panics when [`Options::admin`] was not set.
    pub fn admin(&self) -> &AdminDouble {
        self.admin.as_ref().expect("the Rafiki double was started without its admin API")
    }

    /// The node peer's liquidity now.
    pub fn node_liquidity(&self) -> u64 {
        self.ledger.lock().unwrap().liquidity(NODE_PEER_ID).expect("the node's peer")
    }

    /// The node's `[rafiki.admin]` section for this double's admin API (its URL, secret and
    /// tenant), with short timeouts and two attempts per call; more keys of the section may
    /// follow it.
    pub fn admin_section(&self) -> String {
        let admin = self.admin();
        let options = admin.options();
        format!(
            "[rafiki.admin]\nurl = \"{}\"\nsecret = \"{}\"\ntenant_id = \"{}\"\nrequest_timeout_ms = 2000\nattempts_max = 2\n",
            admin.url(),
            std::str::from_utf8(&options.secret).expect("a UTF-8 secret"),
            options.tenant_id,
        )
    }

    /// The amounts of the deposits the ledger applied, in order (replays answered from its
    /// idempotency cache are not counted).
    pub fn deposits(&self) -> Vec<u64> {
        let ledger = self.ledger.lock().unwrap();
        let deposits = ledger.mutations().into_iter().filter(|m| m.operation == "depositPeerLiquidity");
        deposits.map(|m| m.input["amount"].as_str().unwrap().parse().unwrap()).collect()
    }

    /// The node peer's `maxPacketAmount` (`None`: no limit, the default).
    pub fn set_max_packet_amount(&self, max: Option<u64>) {
        self.state.lock().unwrap().max_packet_amount = max;
    }

    pub fn set_node_liquidity(&self, liquidity: u64) {
        self.ledger.lock().unwrap().set_liquidity(NODE_PEER_ID, liquidity);
    }

    /// Fires `peer.liquidity_low` for the node's peer now (delivered in the background); the
    /// event id.
    pub fn fire_liquidity_low(&self) -> String {
        self.webhooks.fire_liquidity_low(NODE_PEER_ID)
    }

    /// `n` distinct `peer.liquidity_low` events at once; returns when all were delivered or
    /// given up. Their ids.
    pub async fn fire_liquidity_low_burst(&self, n: usize) -> Vec<String> {
        self.webhooks.fire_liquidity_low_burst(NODE_PEER_ID, n).await
    }

    /// `createPeer` by its operator, with no auto-peering: Rafiki sends to `connector_url` with
    /// `send_token` and accepts `accepted_token` from the peer at `address`.
    pub fn create_peer(&self, address: &str, connector_url: &str, send_token: &str, accepted_token: &str) {
        let mut s = self.state.lock().unwrap();
        s.static_ilp_address = Some(address.to_string());
        s.connector_url = Some(connector_url.to_string());
        s.send_token = Some(send_token.to_string());
        s.accepted_token = Some(accepted_token.to_string());
    }

    /// Wallet `name`'s address (its SPSP URL), as Rafiki serves it.
    pub fn wallet_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.wallet_port)
    }

    /// Pays `amount` from wallet `from` to the SPSP receiver at `spsp_url` over STREAM, through
    /// the peer (the node), as Rafiki's outgoing payments do.
    pub async fn pay_from_wallet(&self, from: &str, spsp_url: &str, amount: u64) -> sender::Outcome {
        let link = Link { state: self.state.clone(), ledger: self.ledger.clone() };
        self.wallets.pay(&link, from, spsp_url, amount).await
    }

    pub fn peering_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.peering_port)
    }

    pub fn state(&self) -> PeerState {
        self.state.lock().unwrap().clone()
    }

    /// `createOrUpdatePeerByUrl`: posts Rafiki's peering request to `url` as Rafiki does (JSON,
    /// no authentication, a new token it will send) and keeps what the answer says (the token it
    /// will accept, where to send). The HTTP status and the answer's JSON.
    pub async fn peer_by_url(&self, url: &str, asset: (&str, u8)) -> (StatusCode, Value) {
        let send_token = thitsax::rafiki::peering::new_token();
        let request = json!({
            "ilpConnectorUrl": format!("http://127.0.0.1:{}/", self.connector_port),
            "staticIlpAddress": RAFIKI_ADDRESS,
            "asset": {"code": asset.0, "scale": asset.1},
            "httpToken": send_token,
            "maxPacketAmount": null,
            "name": "rafiki-double",
        });
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<Bytes>>();
        let mut req = Request::new(Full::new(Bytes::from(request.to_string())));
        *req.method_mut() = hyper::Method::POST;
        *req.uri_mut() = url.parse().unwrap();
        req.headers_mut().insert("content-type", "application/json".parse().unwrap());
        let answer = client.request(req).await.expect("the peer answers");
        let status = answer.status();
        let body: Value = serde_json::from_slice(&answer.into_body().collect().await.unwrap().to_bytes())
            .unwrap_or(Value::Null);
        // Rafiki accepts any 2xx JSON with an address, a connector URL and a token.
        if let (true, Some(url), Some(token)) =
            (status.is_success(), body["ilpConnectorUrl"].as_str(), body["httpToken"].as_str())
        {
            let mut s = self.state.lock().unwrap();
            s.connector_url = Some(url.to_string());
            s.accepted_token = Some(token.to_string());
            s.send_token = Some(send_token);
            s.static_ilp_address = body["staticIlpAddress"].as_str().map(str::to_string);
        }
        (status, body)
    }

    /// Sends `prepare` to the peer as Rafiki does, with `token` (its current one by default);
    /// the HTTP status and body.
    pub async fn send(&self, prepare: &Prepare, token: Option<&str>) -> (StatusCode, Bytes) {
        send_to_peer(&self.state, &self.ledger, prepare, token).await.expect("the peer answers")
    }
}

/// The double's link to its peer, for its STREAM sender: a Prepare sent as [`send_to_peer`]
/// does; a failed exchange is the T00 Rafiki's sender sees.
struct Link {
    state: Arc<Mutex<PeerState>>,
    ledger: SharedLedger,
}

impl sender::Transport for Link {
    async fn send(&self, prepare: Prepare) -> IlpResponse {
        let sent = send_to_peer(&self.state, &self.ledger, &prepare, None).await;
        match sent.map(|(status, body)| (status, IlpResponse::parse(body))) {
            Ok((StatusCode::OK, Ok(answer))) => answer,
            _ => {
                let by = IlpAddress::parse(RAFIKI_ADDRESS).expect("a valid address");
                let code = ErrorCode::T00_INTERNAL_ERROR;
                IlpResponse::Reject(Reject::build(code, &by, "unexpected internal error", &[]))
            }
        }
    }
}

/// `prepare` to the peer's connector with `token` (the current one by default), as Rafiki sends;
/// a Fulfill credits the peer's liquidity. The HTTP status and body, or why none came.
async fn send_to_peer(
    state: &Mutex<PeerState>,
    ledger: &SharedLedger,
    prepare: &Prepare,
    token: Option<&str>,
) -> Result<(StatusCode, Bytes), String> {
    let (url, current) = {
        let s = state.lock().unwrap();
        (s.connector_url.clone().expect("peered"), s.send_token.clone().expect("peered"))
    };
    let token = token.map(str::to_string).unwrap_or(current);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = Request::new(Full::new(prepare.to_bytes()));
    *req.method_mut() = hyper::Method::POST;
    *req.uri_mut() = url.parse().unwrap();
    req.headers_mut().insert("content-type", "application/octet-stream".parse().unwrap());
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let sent = Instant::now();
    let answer = client.request(req).await.map_err(|e| format!("the peer did not answer: {e}"))?;
    let status = answer.status();
    let body = answer.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    // A packet to a peer credits its liquidity once fulfilled, with no cap, if the Fulfill came
    // within the booking window.
    if status == StatusCode::OK {
        if let Ok(IlpResponse::Fulfill(_)) = IlpResponse::parse(body.clone()) {
            if sent.elapsed() <= BOOKING_WINDOW {
                ledger.lock().unwrap().credit_packet(NODE_PEER_ID, prepare.amount());
            } else {
                state.lock().unwrap().unbooked += 1;
            }
        }
    }
    Ok((status, body))
}

async fn serve<F, Fut>(port: u16, handle: F) -> tokio::task::JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send,
{
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind the Rafiki double");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handle = handle.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn peer(
    req: Request<Incoming>,
    state: &Mutex<PeerState>,
    asset: &(String, u8),
    connector_port: u16,
    tenant: &str,
) -> Response<Full<Bytes>> {
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return json_answer(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"code": 400, "message": "invalid json", "type": "BadRequest"}}),
        );
    };
    let (Some(request_asset), Some(token)) = (request.get("asset"), request["httpToken"].as_str()) else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    if request_asset["code"].as_str() != Some(asset.0.as_str())
        || request_asset["scale"].as_u64() != Some(u64::from(asset.1))
    {
        return json_answer(
            StatusCode::NOT_FOUND,
            &json!({"error": {"code": 404, "message": "Unknown asset", "type": "UnknownAsset"}}),
        );
    }
    let address = request["staticIlpAddress"].as_str().unwrap_or_default();
    let url = request["ilpConnectorUrl"].as_str().unwrap_or_default();
    if IlpAddress::parse(address).is_err() || url.parse::<hyper::Uri>().map_or(true, |u| u.host().is_none()) {
        return json_answer(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"code": 400, "message": "Invalid ILP configuration", "type": "InvalidPeerIlpConfiguration"}}),
        );
    }
    let send_token = thitsax::rafiki::peering::new_token();
    let mut s = state.lock().unwrap();
    s.accepted_token = Some(token.to_string());
    s.send_token = Some(send_token.clone());
    s.connector_url = Some(url.to_string());
    s.static_ilp_address = Some(address.to_string());
    s.peerings += 1;
    json_answer(
        StatusCode::OK,
        &json!({
            "ilpConnectorUrl": format!("http://127.0.0.1:{connector_port}/"),
            "staticIlpAddress": RAFIKI_ADDRESS,
            "httpToken": send_token,
            "name": "rafiki-double",
            "tenantId": tenant,
        }),
    )
}

async fn connect(req: Request<Incoming>, shared: &Connector) -> Response<Full<Bytes>> {
    let state = &shared.state;
    let header =
        |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (authorization, content_type) = (header("authorization"), header("content-type"));
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let token = match authorization.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.to_string(),
        _ => return text(StatusCode::UNAUTHORIZED, "Bearer token required in Authorization header"),
    };
    {
        let mut s = state.lock().unwrap();
        if s.accepted_token.as_deref() != Some(token.as_str()) {
            return text(StatusCode::UNAUTHORIZED, "Access Denied - Invalid Token");
        }
        s.received.push((authorization.clone(), content_type.clone(), hex::encode(&body)));
    }
    if content_type != "application/octet-stream" {
        return text(StatusCode::BAD_REQUEST, "Expected Content-Type of application/octet-stream");
    }
    let Ok(prepare) = Prepare::parse(&body) else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    if prepare.destination() == "peer.config" {
        let by = IlpAddress::parse(RAFIKI_ADDRESS).expect("a valid address");
        let reject = Reject::build(ErrorCode::F02_UNREACHABLE, &by, "unknown destination account", &[]);
        return octets(reject.as_bytes().clone());
    }
    let by = IlpAddress::parse(RAFIKI_ADDRESS).expect("a valid address");
    let too_soon = SystemTime::now() + EXPIRY_LEFT_MIN;
    if prepare.expires_at() < too_soon {
        let reject = Reject::build(ErrorCode::R02_INSUFFICIENT_TIMEOUT, &by, "packet expired", &[]);
        return octets(reject.as_bytes().clone());
    }
    // Above the incoming peer's maxPacketAmount: F08 with what arrived and the maximum.
    let amount = prepare.amount();
    let max_packet_amount = state.lock().unwrap().max_packet_amount;
    if let Some(max) = max_packet_amount.filter(|max| amount > *max) {
        let data = [amount.to_be_bytes(), max.to_be_bytes()].concat();
        let reject = Reject::build(ErrorCode::F08_AMOUNT_TOO_LARGE, &by, "amount too large", &data);
        return octets(reject.as_bytes().clone());
    }
    // A packet from the peer debits its liquidity (the pending phase); more than the liquidity
    // is T04 with nothing changed.
    let mut left = None;
    if amount > 0 {
        left = shared.ledger.lock().unwrap().debit_packet(NODE_PEER_ID, amount);
        if left.is_none() {
            let reject =
                Reject::build(ErrorCode::T04_INSUFFICIENT_LIQUIDITY, &by, "InsufficientBalance", &[]);
            return octets(reject.as_bytes().clone());
        }
    }
    let fulfill = match shared.wallets.receive(&prepare) {
        Some(Answer::Fulfilled(fulfill)) => fulfill,
        // Voided: the debit goes back, and no webhook (rejected packets never fire one).
        Some(Answer::Rejected(reject)) => {
            if amount > 0 {
                shared.ledger.lock().unwrap().credit_packet(NODE_PEER_ID, amount);
            }
            return octets(reject);
        }
        // Not a wallet's: fulfilled with the preimage the tests put in its data.
        None => Fulfill::build(&super::preimage_of(&prepare), b"").as_bytes().clone(),
    };
    // Posted: a fulfilled packet leaving the liquidity at or below the threshold fires the event.
    let threshold = shared.ledger.lock().unwrap().peer(NODE_PEER_ID).and_then(|p| p.threshold);
    if left.zip(threshold).is_some_and(|(left, t)| left <= t) {
        shared.webhooks.fire_liquidity_low_after(NODE_PEER_ID, LIQUIDITY_LOW_DELAY);
    }
    octets(fulfill)
}
