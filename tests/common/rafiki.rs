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
//!   500; `peer.config` is F02 (Rafiki serves no ILDCP to peers); any other Prepare is fulfilled
//!   with the preimage the tests put in its data;
//! - and it **sends** Prepares to its peer's connector URL with the token it answered, as Rafiki
//!   does (`Content-Type: application/octet-stream`, `Authorization: Bearer`).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use thitsax::packet::{ErrorCode, Fulfill, IlpAddress, Prepare, Reject};
use tokio::net::TcpListener;

/// Rafiki's own address, as its auto-peering answers it.
pub const RAFIKI_ADDRESS: &str = "test.rafiki";

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
}

pub struct RafikiDouble {
    pub peering_port: u16,
    pub connector_port: u16,
    pub state: Arc<Mutex<PeerState>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RafikiDouble {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
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
        let (peering_port, connector_port) = (super::ports::claim(), super::ports::claim());
        let state = Arc::new(Mutex::new(PeerState::default()));
        let asset = (asset.0.to_string(), asset.1);
        let peering = {
            let state = state.clone();
            serve(peering_port, move |req| {
                let (state, asset) = (state.clone(), asset.clone());
                async move { peer(req, &state, &asset, connector_port).await }
            })
            .await
        };
        let connector = {
            let state = state.clone();
            serve(connector_port, move |req| {
                let state = state.clone();
                async move { connect(req, &state).await }
            })
            .await
        };
        RafikiDouble { peering_port, connector_port, state, tasks: vec![peering, connector] }
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
        let (url, current) = {
            let s = self.state.lock().unwrap();
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
        let answer = client.request(req).await.expect("the peer answers");
        let status = answer.status();
        (status, answer.into_body().collect().await.unwrap().to_bytes())
    }
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
            "tenantId": "8e1db008-ab2f-4f1d-8c44-593bf2d54d1a",
        }),
    )
}

async fn connect(req: Request<Incoming>, state: &Mutex<PeerState>) -> Response<Full<Bytes>> {
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
    octets(Fulfill::build(&super::preimage_of(&prepare), b"").as_bytes().clone())
}
