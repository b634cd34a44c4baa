//! Wallet addresses of the Rafiki **test double** (`rafiki.rs`), as `../shared/wire/rafiki.md`
//! describes them:
//!
//! - **SPSP**: `GET /<wallet>` with `Accept: application/spsp4+json` answers
//!   `{"destination_account": "<rafiki address>.<token>", "shared_secret": "<base64>",
//!   "receipts_enabled": false}`; an unknown wallet 404, another `Accept` 406. A new token per
//!   query, one STREAM connection each.
//! - **STREAM receiving**: a Prepare to `<rafiki address>.<token>` of a token it issued is read
//!   with ThitsaX's own receiver (`thitsax::stream::open`): test packets are answered F99 with
//!   the amount that arrived (how a sender probes), money is credited to the wallet when the
//!   packet is fulfilled, never otherwise.
//! - **STREAM sending**: a payment from a wallet to an SPSP receiver ([`Wallets::pay`]), with
//!   ThitsaX's own sender (`thitsax::stream::sender::pay`) over the double's connector link to
//!   its peer; the wallet is debited what each fulfilled packet carried.
//!
//! The double's connector decides what the peer's liquidity does around it (debited for a
//! packet from the peer, credited back when the wallet refuses it).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;
use thitsax::packet::{ErrorCode as IlpErrorCode, Fulfill, IlpAddress, Prepare, Reject};
use thitsax::stream::sender::{self, Amount, AssetDetails, Outcome, Payment, Progress, Rules, Transport};
use thitsax::stream::{open, ServerSecret, SharedSecret};

/// What an SPSP answer is, and what a query must accept.
pub const SPSP_CONTENT_TYPE: &str = "application/spsp4+json";

/// One credit to a wallet: a fulfilled packet's amount, and when it was counted (before the
/// Fulfill went back).
#[derive(Debug, Clone)]
pub struct Credit {
    pub wallet: String,
    pub amount: u64,
    pub at: SystemTime,
}

/// The wallets of one Rafiki, in its asset.
pub struct Wallets {
    address: String,
    asset: (String, u8),
    server: ServerSecret,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    balances: BTreeMap<String, u64>,
    /// Token (one per SPSP query) → its wallet.
    tokens: HashMap<String, String>,
    credits: Vec<Credit>,
    /// SPSP queries answered, by wallet.
    queries: BTreeMap<String, usize>,
}

/// What the connector does with a packet addressed to a wallet.
pub enum Answer {
    /// Credited to the wallet (the Fulfill's bytes).
    Fulfilled(Bytes),
    /// Refused by the wallet's receiver (the Reject's bytes): nothing credited.
    Rejected(Bytes),
}

impl Wallets {
    pub fn new(address: &str, asset: (&str, u8)) -> Wallets {
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret).expect("random bytes");
        Wallets {
            address: address.to_string(),
            asset: (asset.0.to_string(), asset.1),
            server: ServerSecret::from_bytes(&secret),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Opens wallet `name` (letters, digits, `-`, `_`) with `balance`.
    pub fn add(&self, name: &str, balance: u64) {
        self.inner.lock().unwrap().balances.insert(name.to_string(), balance);
    }

    pub fn balance(&self, name: &str) -> Option<u64> {
        self.inner.lock().unwrap().balances.get(name).copied()
    }

    pub fn credits(&self) -> Vec<Credit> {
        self.inner.lock().unwrap().credits.clone()
    }

    pub fn queries(&self, name: &str) -> usize {
        self.inner.lock().unwrap().queries.get(name).copied().unwrap_or(0)
    }

    /// The SPSP answer for `GET <path>` with `accept`.
    pub async fn spsp(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let accept = req.headers().get("accept").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !accept.split(',').any(|media| media.trim().starts_with(SPSP_CONTENT_TYPE)) {
            return respond(StatusCode::NOT_ACCEPTABLE, "text/plain", "Not Acceptable".into());
        }
        let name = req.uri().path().trim_start_matches('/').to_string();
        let mut inner = self.inner.lock().unwrap();
        if !inner.balances.contains_key(&name) {
            return respond(StatusCode::NOT_FOUND, "application/json", r#"{"error":"not found"}"#.into());
        }
        let credentials = self.server.issue(&name).expect("a wallet name is a receiver name");
        inner.tokens.insert(credentials.token.clone(), name.clone());
        *inner.queries.entry(name).or_default() += 1;
        use base64::Engine;
        let secret = base64::engine::general_purpose::STANDARD.encode(credentials.shared_secret.as_bytes());
        let body = serde_json::json!({
            "destination_account": format!("{}.{}", self.address, credentials.token),
            "shared_secret": secret,
            "receipts_enabled": false,
        });
        respond(StatusCode::OK, SPSP_CONTENT_TYPE, body.to_string())
    }

    /// The wallet's answer to `prepare`, or `None` when it is not addressed to a token this
    /// double issued (the connector then treats it as any other packet).
    pub fn receive(&self, prepare: &Prepare) -> Option<Answer> {
        let token = prepare.destination().strip_prefix(&self.address)?.strip_prefix('.')?;
        let wallet = self.inner.lock().unwrap().tokens.get(token).cloned()?;
        let by = IlpAddress::parse(&self.address).expect("a valid address");
        let reject = |code: IlpErrorCode, data: &[u8]| {
            Answer::Rejected(Reject::build(code, &by, "", data).as_bytes().clone())
        };
        let Ok(secret) = self.server.shared_secret(&wallet, token) else {
            return Some(reject(IlpErrorCode::F02_UNREACHABLE, &[]));
        };
        let keys = secret.keys();
        let opened = match open(&keys, prepare.amount(), prepare.execution_condition(), prepare.data()) {
            Ok(opened) => opened,
            Err(refused) => return Some(reject(refused.code(), &[])),
        };
        let reply = opened.reply().asset_details(&self.asset.0, self.asset.1);
        if !opened.is_fulfillable() {
            let data = opened.reject(&reply).expect("a reply fits");
            return Some(reject(thitsax::stream::receiver::REJECT_CODE, &data));
        }
        let mut inner = self.inner.lock().unwrap();
        let balance = inner.balances.get_mut(&wallet).expect("a wallet with a token exists");
        let Some(credited) = balance.checked_add(opened.amount()) else {
            drop(inner);
            let data = opened.reject(&reply).expect("a reply fits");
            return Some(reject(thitsax::stream::receiver::REJECT_CODE, &data));
        };
        *balance = credited;
        inner.credits.push(Credit { wallet, amount: opened.amount(), at: SystemTime::now() });
        drop(inner);
        let fulfilled = opened.fulfill(&reply).expect("a reply fits");
        Some(Answer::Fulfilled(Fulfill::build(&fulfilled.fulfillment, &fulfilled.data).as_bytes().clone()))
    }

    /// Pays `amount` (the wallet's asset and scale, sent exactly) from wallet `from` to the
    /// receiver at `spsp_url`, through `link` (the double's connection to its peer). Debits the
    /// wallet what each fulfilled packet carried; refuses before sending what the wallet does not
    /// hold.
    pub async fn pay<T: Transport>(&self, link: &T, from: &str, spsp_url: &str, amount: u64) -> Outcome {
        {
            let inner = self.inner.lock().unwrap();
            let balance = inner.balances.get(from).copied().unwrap_or(0);
            assert!(balance >= amount, "wallet {from} holds {balance}, less than {amount}");
        }
        let target = spsp_query(spsp_url).await;
        let payment = Payment {
            destination: target.0,
            shared_secret: target.1,
            source_asset: AssetDetails { code: self.asset.0.clone(), scale: self.asset.1 },
            source_address: None,
            amount: Amount::Source(amount),
        };
        let rules = Rules::new(tokio::time::Instant::now() + std::time::Duration::from_secs(60));
        let outcome = sender::pay(link, &payment, &rules, Progress::default(), |paid| {
            let mut inner = self.inner.lock().unwrap();
            let balance = inner.balances.get_mut(from).expect("the paying wallet");
            *balance = balance.checked_sub(paid.sent).expect("never more than the wallet held");
            async {}
        })
        .await
        .expect("the default rules are valid");
        outcome
    }
}

/// `GET url` with SPSP's `Accept`: the status and the body.
pub async fn spsp_get(url: &str) -> (StatusCode, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.uri_mut() = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
    req.headers_mut().insert("accept", SPSP_CONTENT_TYPE.parse().unwrap());
    let answer = client.request(req).await.unwrap_or_else(|e| panic!("SPSP query {url}: {e}"));
    let status = answer.status();
    (status, answer.into_body().collect().await.unwrap().to_bytes())
}

/// An SPSP query, as Rafiki's sender makes it: the destination and the shared secret.
pub async fn spsp_query(url: &str) -> (IlpAddress, SharedSecret) {
    let (status, body) = spsp_get(url).await;
    assert_eq!(status, StatusCode::OK, "SPSP query {url}: {}", String::from_utf8_lossy(&body));
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("SPSP JSON");
    assert_eq!(answer["receipts_enabled"], false, "{answer}");
    let destination = IlpAddress::parse(answer["destination_account"].as_str().expect("destination_account"))
        .expect("an ILP address");
    use base64::Engine;
    let secret = answer["shared_secret"].as_str().expect("shared_secret");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(secret)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(secret))
        .expect("base64");
    (destination, SharedSecret::from_bytes(bytes.try_into().expect("32 bytes")))
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", content_type.parse().unwrap());
    r
}
