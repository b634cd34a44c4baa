//! The Rafiki test double (`tests/common/rafiki.rs`, `tests/common/rafiki_admin.rs`) checked
//! against the wire facts of `../shared/wire/rafiki.md`, without a ThitsaX node: the tests that
//! use it can only be as right as it is. Its admin API takes only fresh, canonical, signed,
//! never-replayed requests for its tenant; its liquidity mutations answer as Rafiki's do
//! (idempotency, DUPLICATE, BAD_USER_INPUT, FORBIDDEN, two-phase withdrawals); its connector
//! debits and credits the same ledger; its webhooks are signed over the canonical form of a body
//! sent in another order, and retried until an HTTP 200; its wallet addresses answer SPSP and
//! take STREAM money only when fulfilled, its connector refuses with R02, F08 and T04 as Rafiki
//! does, and a Fulfill later than its 5 s booking window is relayed but not booked.

mod common;

use bytes::Bytes;
use common::rafiki::{Options, RafikiDouble, NODE_PEER_ID, RAFIKI_ADDRESS};
use common::rafiki_admin::{
    eventually, new_uuid, AdminOptions, Outage, Outcome, Tamper, WebhookOptions, ASSET_ID, TENANT_ID,
};
use common::rafiki_wallets::{spsp_get, spsp_query};
use common::{assert_code, client, prepare, send, Behaviour, Downstream};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use thitsax::packet::ErrorCode;
use thitsax::rafiki::signature::{canonical, sign, verify};
use thitsax::stream::sender::Outcome as PaymentOutcome;
use tokio::net::TcpListener;

const DEPOSIT: &str =
    "mutation DepositPeerLiquidity($input: DepositPeerLiquidityInput!) { depositPeerLiquidity(input: $input) { success } }";
const WITHDRAW: &str =
    "mutation CreatePeerLiquidityWithdrawal($input: CreatePeerLiquidityWithdrawalInput!) { \
     createPeerLiquidityWithdrawal(input: $input) { success } }";
const POST: &str = "mutation PostLiquidityWithdrawal($input: PostLiquidityWithdrawalInput!) { \
     postLiquidityWithdrawal(input: $input) { success } }";
const VOID: &str = "mutation VoidLiquidityWithdrawal($input: VoidLiquidityWithdrawalInput!) { \
     voidLiquidityWithdrawal(input: $input) { success } }";
const PEER: &str = "query Peer($id: String!) { peer(id: $id) { id liquidity } }";
/// Long enough for any wait here on a busy 2-core machine.
const PATIENCE: Duration = Duration::from_secs(20);

async fn rafiki_with_admin(liquidity: u64) -> RafikiDouble {
    let options =
        Options { admin: Some(AdminOptions::default()), initial_liquidity: liquidity, ..Options::default() };
    RafikiDouble::start_with(("USD", 9), options).await
}

/// POSTs `body` as it is to the admin API with these headers: status, content type, body.
async fn post_admin(
    rafiki: &RafikiDouble,
    body: String,
    signature: Option<&str>,
    tenant: Option<&str>,
) -> (StatusCode, String, String) {
    let mut req = Request::post(rafiki.admin().url()).header("content-type", "application/json");
    if let Some(signature) = signature {
        req = req.header("signature", signature);
    }
    if let Some(tenant) = tenant {
        req = req.header("tenant-id", tenant);
    }
    let answer =
        client().request(req.body(Full::new(Bytes::from(body))).unwrap()).await.expect("the admin API");
    let status = answer.status();
    let content_type = answer.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    (status, content_type.unwrap_or_default(), String::from_utf8_lossy(&body).into_owned())
}

/// A request as the node must send it: the canonical bytes, signed at `at`.
fn signed(body: &Value, at: SystemTime) -> (String, String) {
    let bytes = canonical(body).unwrap();
    let header = sign(&AdminOptions::default().secret, at, &bytes);
    (bytes, header)
}

/// One properly signed GraphQL call: the HTTP 200 answer's JSON.
async fn graphql(rafiki: &RafikiDouble, query: &str, variables: Value) -> Value {
    let (bytes, header) = signed(&json!({"query": query, "variables": variables}), SystemTime::now());
    let (status, _, body) = post_admin(rafiki, bytes, Some(&header), Some(TENANT_ID)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn deposit_input(amount: &str, id: &str, key: &str) -> Value {
    json!({"input": {"peerId": NODE_PEER_ID, "amount": amount, "id": id, "idempotencyKey": key}})
}

fn withdraw_input(amount: &str, id: &str, timeout_s: u64) -> Value {
    json!({"input": {
        "peerId": NODE_PEER_ID, "amount": amount, "id": id, "idempotencyKey": new_uuid(), "timeoutSeconds": timeout_s,
    }})
}

fn settle_input(withdrawal: &str) -> Value {
    json!({"input": {"withdrawalId": withdrawal, "idempotencyKey": new_uuid()}})
}

/// The `extensions.code` and message of a refusal (which has `data: null`).
fn refusal(answer: &Value) -> (String, String) {
    assert_eq!(answer["data"], Value::Null, "{answer}");
    let error = &answer["errors"][0];
    (
        error["extensions"]["code"].as_str().unwrap().to_string(),
        error["message"].as_str().unwrap().to_string(),
    )
}

fn success(answer: &Value, operation: &str) {
    assert_eq!(answer["data"][operation]["success"], true, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_takes_only_fresh_canonical_signed_requests_for_its_tenant() {
    let rafiki = rafiki_with_admin(0).await;
    let health =
        client().get(format!("http://127.0.0.1:{}/healthz", rafiki.admin().port).parse().unwrap()).await;
    assert_eq!(health.unwrap().status(), StatusCode::OK, "/healthz needs no signature");

    let body = |amount: &str| json!({"query": DEPOSIT, "variables": deposit_input(amount, &new_uuid(), &new_uuid())});
    let unauthorized = |(status, content_type, text): (StatusCode, String, String), what: &str| {
        assert_eq!(
            (status, content_type.as_str(), text.as_str()),
            (StatusCode::UNAUTHORIZED, "text/plain", "Unauthorized"),
            "{what}"
        );
    };

    // Signed now, canonical, the right tenant: done.
    let (bytes, header) = signed(&body("5"), SystemTime::now());
    let (status, _, answer) = post_admin(&rafiki, bytes.clone(), Some(&header), Some(TENANT_ID)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(rafiki.node_liquidity(), 5);
    // 29 s ago is still fresh.
    let (b, h) = signed(&body("1"), SystemTime::now() - Duration::from_secs(29));
    assert_eq!(post_admin(&rafiki, b, Some(&h), Some(TENANT_ID)).await.0, StatusCode::OK);

    // The same signature again, with its body or another: a replay.
    unauthorized(post_admin(&rafiki, bytes, Some(&header), Some(TENANT_ID)).await, "replayed");
    let other = canonical(&body("7")).unwrap();
    unauthorized(post_admin(&rafiki, other, Some(&header), Some(TENANT_ID)).await, "replayed, another body");

    let now = SystemTime::now();
    let (b, h) = signed(&body("2"), now - Duration::from_secs(31));
    unauthorized(post_admin(&rafiki, b, Some(&h), Some(TENANT_ID)).await, "31 s old");
    let (b, h) = signed(&body("2"), now + Duration::from_secs(31));
    unauthorized(post_admin(&rafiki, b, Some(&h), Some(TENANT_ID)).await, "31 s ahead");
    // t in seconds, the HMAC otherwise right.
    let b = canonical(&body("2")).unwrap();
    let t_s = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &AdminOptions::default().secret);
    let v1 = hex::encode(ring::hmac::sign(&key, format!("{t_s}.{b}").as_bytes()).as_ref());
    unauthorized(
        post_admin(&rafiki, b, Some(&format!("t={t_s}, v1={v1}")), Some(TENANT_ID)).await,
        "seconds",
    );
    // Another secret; no signature; `,` without the space.
    let b = canonical(&body("2")).unwrap();
    let h = sign(b"another-secret", SystemTime::now(), &b);
    unauthorized(post_admin(&rafiki, b.clone(), Some(&h), Some(TENANT_ID)).await, "wrong HMAC");
    unauthorized(post_admin(&rafiki, b.clone(), None, Some(TENANT_ID)).await, "no signature");
    let h = sign(&AdminOptions::default().secret, SystemTime::now(), &b).replace(", ", ",");
    unauthorized(post_admin(&rafiki, b, Some(&h), Some(TENANT_ID)).await, "malformed");
    // Right signature, wrong or missing tenant.
    let (b, h) = signed(&body("2"), SystemTime::now());
    unauthorized(post_admin(&rafiki, b, Some(&h), Some(&new_uuid())).await, "unknown tenant");
    let (b, h) = signed(&body("2"), SystemTime::now());
    unauthorized(post_admin(&rafiki, b, Some(&h), None).await, "no tenant");
    // The signature is over the canonical bytes, but other bytes (same JSON) were sent.
    let value = body("2");
    let (_, h) = signed(&value, SystemTime::now());
    let pretty = serde_json::to_string_pretty(&value).unwrap();
    unauthorized(post_admin(&rafiki, pretty, Some(&h), Some(TENANT_ID)).await, "not canonical bytes");

    // Nothing refused changed the ledger, and every request is on the record.
    assert_eq!(rafiki.node_liquidity(), 6);
    let requests = rafiki.admin().requests();
    assert_eq!(requests.len(), 13);
    assert!(requests.iter().all(|r| r.operation.as_deref() == Some("depositPeerLiquidity")));
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401]);
    let valid: Vec<bool> = requests.iter().map(|r| r.signature_valid).collect();
    let expected = [true, true, false, false, false, false, false, false, false, false, true, true, false];
    assert_eq!(valid, expected);
    assert!(!requests[10].tenant_valid && !requests[11].tenant_valid && requests[12].tenant_valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_are_idempotent_and_refused_as_rafiki_refuses() {
    let rafiki = rafiki_with_admin(100).await;
    let (id, key) = (new_uuid(), new_uuid());

    let first = graphql(&rafiki, DEPOSIT, deposit_input("1000", &id, &key)).await;
    success(&first, "depositPeerLiquidity");
    // Same key, same arguments: the first answer, done once.
    let again = graphql(&rafiki, DEPOSIT, deposit_input("1000", &id, &key)).await;
    assert_eq!(again, first);
    assert_eq!(rafiki.node_liquidity(), 1100);
    assert_eq!(rafiki.ledger.lock().unwrap().deposits(&id), 1);
    // Same key, other arguments; the key used by another mutation.
    let (code, message) = refusal(&graphql(&rafiki, DEPOSIT, deposit_input("999", &id, &key)).await);
    assert_eq!(code, "INTERNAL_SERVER_ERROR");
    assert_eq!(message, "Incoming arguments are different than the original request for idempotencyKey");
    let mut withdrawal = withdraw_input("1", &new_uuid(), 0);
    withdrawal["input"]["idempotencyKey"] = json!(key);
    assert_eq!(refusal(&graphql(&rafiki, WITHDRAW, withdrawal).await).0, "INTERNAL_SERVER_ERROR");
    // The transfer id again, with a new key.
    let duplicate = refusal(&graphql(&rafiki, DEPOSIT, deposit_input("1000", &id, &new_uuid())).await);
    assert_eq!(duplicate, ("DUPLICATE".to_string(), "Transfer already exists".to_string()));
    // Not a UUID v4 (a v1 UUID too); zero; an unknown peer.
    for bad in ["42", "not-a-uuid", "c232ab00-9414-11ec-b3c8-9f6bdeced846"] {
        let r = refusal(&graphql(&rafiki, DEPOSIT, deposit_input("1", bad, &new_uuid())).await);
        assert_eq!(r, ("BAD_USER_INPUT".to_string(), "Invalid transfer id".to_string()), "{bad}");
    }
    let zero = refusal(&graphql(&rafiki, DEPOSIT, deposit_input("0", &new_uuid(), &new_uuid())).await);
    assert_eq!(zero, ("FORBIDDEN".to_string(), "Transfer amount is zero".to_string()));
    let mut stranger = deposit_input("1", &new_uuid(), &new_uuid());
    stranger["input"]["peerId"] = json!(new_uuid());
    assert_eq!(
        refusal(&graphql(&rafiki, DEPOSIT, stranger).await),
        ("NOT_FOUND".into(), "Unknown peer".into())
    );

    // Errors are not cached: a refused key can be used again, and then works.
    let key2 = new_uuid();
    assert_eq!(
        refusal(&graphql(&rafiki, DEPOSIT, deposit_input("0", &new_uuid(), &key2)).await).0,
        "FORBIDDEN"
    );
    success(&graphql(&rafiki, DEPOSIT, deposit_input("1", &new_uuid(), &key2)).await, "depositPeerLiquidity");
    // u64 amounts past 2^53 are exact; a number works as well as a string.
    rafiki.set_node_liquidity(0);
    let big = (u64::MAX - 1).to_string();
    success(
        &graphql(&rafiki, DEPOSIT, deposit_input(&big, &new_uuid(), &new_uuid())).await,
        "depositPeerLiquidity",
    );
    assert_eq!(rafiki.node_liquidity(), u64::MAX - 1);
    let mut number = deposit_input("", &new_uuid(), &new_uuid());
    number["input"]["amount"] = json!(1);
    success(&graphql(&rafiki, DEPOSIT, number).await, "depositPeerLiquidity");
    assert_eq!(rafiki.node_liquidity(), u64::MAX);
    assert_eq!(rafiki.ledger.lock().unwrap().mutations().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawals_are_two_phase_posted_voided_or_expired() {
    let rafiki = rafiki_with_admin(1000).await;

    // More than the liquidity; zero.
    let r = refusal(&graphql(&rafiki, WITHDRAW, withdraw_input("1001", &new_uuid(), 0)).await);
    assert_eq!(r, ("FORBIDDEN".to_string(), "Insufficient transfer balance".to_string()));
    let r = refusal(&graphql(&rafiki, WITHDRAW, withdraw_input("0", &new_uuid(), 0)).await);
    assert_eq!(r, ("FORBIDDEN".to_string(), "Transfer amount is zero".to_string()));

    // timeoutSeconds 0: posted at once; posting it is a conflict.
    let at_once = new_uuid();
    success(
        &graphql(&rafiki, WITHDRAW, withdraw_input("100", &at_once, 0)).await,
        "createPeerLiquidityWithdrawal",
    );
    assert_eq!(rafiki.node_liquidity(), 900);
    let r = refusal(&graphql(&rafiki, POST, settle_input(&at_once)).await);
    assert_eq!(r, ("CONFLICT".to_string(), "Transfer already posted".to_string()));

    // Reserved, then posted: taken when reserved, kept when posted.
    let posted = new_uuid();
    success(
        &graphql(&rafiki, WITHDRAW, withdraw_input("200", &posted, 60)).await,
        "createPeerLiquidityWithdrawal",
    );
    assert_eq!(rafiki.node_liquidity(), 700);
    success(&graphql(&rafiki, POST, settle_input(&posted)).await, "postLiquidityWithdrawal");
    assert_eq!(rafiki.node_liquidity(), 700);
    assert_eq!(refusal(&graphql(&rafiki, POST, settle_input(&posted)).await).0, "CONFLICT");
    let r = refusal(&graphql(&rafiki, VOID, settle_input(&posted)).await);
    assert_eq!(r, ("CONFLICT".to_string(), "Transfer already posted".to_string()));

    // Reserved, then voided: given back; voiding again is a conflict.
    let voided = new_uuid();
    success(
        &graphql(&rafiki, WITHDRAW, withdraw_input("300", &voided, 60)).await,
        "createPeerLiquidityWithdrawal",
    );
    assert_eq!(rafiki.node_liquidity(), 400);
    success(&graphql(&rafiki, VOID, settle_input(&voided)).await, "voidLiquidityWithdrawal");
    assert_eq!(rafiki.node_liquidity(), 700);
    let r = refusal(&graphql(&rafiki, VOID, settle_input(&voided)).await);
    assert_eq!(r, ("CONFLICT".to_string(), "Transfer already voided".to_string()));

    // Unknown.
    let r = refusal(&graphql(&rafiki, POST, settle_input(&new_uuid())).await);
    assert_eq!(r, ("NOT_FOUND".to_string(), "Unknown transfer".to_string()));

    // Reserved for 2 s and left: given back at its timeout, then too late to post or void.
    let expiring = new_uuid();
    success(
        &graphql(&rafiki, WITHDRAW, withdraw_input("500", &expiring, 2)).await,
        "createPeerLiquidityWithdrawal",
    );
    assert_eq!(rafiki.node_liquidity(), 200);
    eventually("the reservation's timeout gives it back", PATIENCE, || rafiki.node_liquidity() == 700).await;
    let r = refusal(&graphql(&rafiki, POST, settle_input(&expiring)).await);
    assert_eq!(r, ("FORBIDDEN".to_string(), "Transfer already expired".to_string()));
    assert_eq!(refusal(&graphql(&rafiki, VOID, settle_input(&expiring)).await).0, "FORBIDDEN");
    assert_eq!(rafiki.node_liquidity(), 700);
    assert_eq!(rafiki.ledger.lock().unwrap().withdrawals(&expiring), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_query_reads_liquidity_and_an_unknown_peer_is_not_found() {
    let rafiki = rafiki_with_admin(12_345).await;
    let answer = graphql(&rafiki, PEER, json!({"id": NODE_PEER_ID})).await;
    assert_eq!(answer["data"]["peer"]["id"], NODE_PEER_ID, "{answer}");
    assert_eq!(answer["data"]["peer"]["liquidity"], "12345", "{answer}");
    assert_eq!(answer["data"]["peer"]["asset"]["id"], ASSET_ID, "{answer}");
    let unknown = graphql(&rafiki, PEER, json!({"id": new_uuid()})).await;
    assert_eq!(refusal(&unknown), ("NOT_FOUND".to_string(), "peer not found".to_string()));
    assert_eq!(rafiki.admin().requests()[0].operation.as_deref(), Some("peer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_fail_the_next_requests_as_told_then_it_answers() {
    let rafiki = rafiki_with_admin(0).await;
    let call = |amount: &'static str, id: String, key: String| {
        let (bytes, header) = signed(
            &json!({"query": DEPOSIT, "variables": deposit_input(amount, &id, &key)}),
            SystemTime::now(),
        );
        let req = Request::post(rafiki.admin().url())
            .header("signature", header)
            .header("tenant-id", TENANT_ID)
            .body(Full::new(Bytes::from(bytes)))
            .unwrap();
        client().request(req)
    };

    rafiki.admin().fail_next(1, Outage::ServerError);
    rafiki.admin().fail_next(1, Outage::Drop);
    rafiki.admin().fail_next(1, Outage::Hang(Duration::from_millis(300)));
    rafiki.admin().fail_next(1, Outage::DropAfterApplying);
    let (id, key) = (new_uuid(), new_uuid());
    let answer = call("10", id.clone(), key.clone()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(call("10", id.clone(), key.clone()).await.is_err(), "the connection is dropped");
    let hung = tokio::time::timeout(Duration::from_millis(100), call("10", id.clone(), key.clone())).await;
    assert!(hung.is_err(), "the request hangs");
    // The hang's late answer was never applied; the dropped-after-applying one was, once.
    eventually("the hang's request is over", PATIENCE, || rafiki.admin().requests().len() == 3).await;
    assert!(call("10", id.clone(), key.clone()).await.is_err(), "the answer is lost");
    assert_eq!(rafiki.node_liquidity(), 10);
    // The retry with the same key: the first answer, nothing done twice.
    let answer = call("10", id.clone(), key).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(rafiki.node_liquidity(), 10);
    assert_eq!(rafiki.ledger.lock().unwrap().deposits(&id), 1);
    let statuses: Vec<(u16, Option<Outage>)> =
        rafiki.admin().requests().iter().map(|r| (r.status, r.outage)).collect();
    assert_eq!(
        statuses,
        [
            (500, Some(Outage::ServerError)),
            (0, Some(Outage::Drop)),
            (500, Some(Outage::Hang(Duration::from_millis(300)))),
            (0, Some(Outage::DropAfterApplying)),
            (200, None)
        ]
    );
}

/// Peers a node-less client with the double's connector: packets sent with `token` reach it,
/// and what it sends goes to `downstream`.
async fn peer_directly(rafiki: &RafikiDouble, token: &str, downstream: &Downstream) {
    let request = json!({
        "staticIlpAddress": "test.n", "ilpConnectorUrl": downstream.url(),
        "asset": {"code": "USD", "scale": 9}, "httpToken": token,
    });
    let answer = common::post_raw(
        &client(),
        &rafiki.peering_url(),
        None,
        Some("application/json"),
        Bytes::from(request.to_string()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_debits_the_node_peer_refuses_past_its_liquidity_and_credits_what_it_sends() {
    let receiver = WebhookReceiver::start(vec![]).await;
    let options = Options {
        initial_liquidity: 1000,
        liquidity_threshold: Some(700),
        webhook: WebhookOptions { url: Some(receiver.url()), ..WebhookOptions::default() },
        ..Options::default()
    };
    let rafiki = RafikiDouble::start_with(("USD", 9), options).await;
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    peer_directly(&rafiki, "node-token", &downstream).await;
    let connector = format!("http://127.0.0.1:{}/", rafiki.connector_port);
    let wallet = format!("{RAFIKI_ADDRESS}.wallet");

    // Above the threshold: debited, no webhook.
    send(&client(), &connector, "node-token", &prepare(&wallet, 200, Duration::from_secs(30)))
        .await
        .fulfill();
    assert_eq!(rafiki.node_liquidity(), 800);
    // More than the liquidity: T04 by Rafiki, nothing changed.
    let reject = send(&client(), &connector, "node-token", &prepare(&wallet, 801, Duration::from_secs(30)))
        .await
        .reject();
    assert_code(&reject, ErrorCode::T04_INSUFFICIENT_LIQUIDITY);
    assert_eq!(reject.triggered_by(), RAFIKI_ADDRESS);
    assert_eq!(rafiki.node_liquidity(), 800);
    // Zero: fulfilled, nothing changed.
    send(&client(), &connector, "node-token", &prepare(&wallet, 0, Duration::from_secs(30))).await.fulfill();
    // Down to the threshold exactly: the webhook fires with the balance the packet left.
    send(&client(), &connector, "node-token", &prepare(&wallet, 100, Duration::from_secs(30)))
        .await
        .fulfill();
    assert_eq!(rafiki.node_liquidity(), 700);
    eventually("peer.liquidity_low delivered", PATIENCE, || receiver.received().len() == 1).await;
    let got = &receiver.received()[0];
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["type"], "peer.liquidity_low");
    assert_eq!(body["data"]["balance"], "700", "{body}");
    assert_eq!(body["data"]["liquidityThreshold"], "700", "{body}");
    assert_eq!(body["data"]["id"], NODE_PEER_ID);
    // peer.config is still F02, and never debited.
    let config = prepare("peer.config", 5, Duration::from_secs(30));
    assert_code(
        &send(&client(), &connector, "node-token", &config).await.reject(),
        ErrorCode::F02_UNREACHABLE,
    );
    assert_eq!(rafiki.node_liquidity(), 700);

    // Rafiki → the node: a Fulfill credits, with no cap.
    let (status, _) = rafiki.send(&prepare("test.n.alice", 300, Duration::from_secs(30)), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rafiki.node_liquidity(), 1000);
    assert_eq!(receiver.received().len(), 1, "only packets from the peer fire the webhook");
}

/// One webhook the receiver got.
#[derive(Clone, Debug)]
struct Received {
    signature: Option<String>,
    content_type: String,
    body: Bytes,
}

/// A tiny webhook receiver: answers the statuses scripted, in order, then 200; checks
/// nothing (the tests check what it recorded), or checks signatures when given a secret.
struct WebhookReceiver {
    addr: std::net::SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    async fn start(script: Vec<u16>) -> WebhookReceiver {
        Self::start_checking(script, None).await
    }

    /// With `secret`: 401 for a webhook whose signature does not verify (re-canonicalized).
    async fn start_checking(script: Vec<u16>, secret: Option<Vec<u8>>) -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        let (rec, secret) = (received.clone(), Arc::new(secret));
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (rec, script, secret) = (rec.clone(), script.clone(), secret.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (rec, script, secret) = (rec.clone(), script.clone(), secret.clone());
                        async move {
                            let header =
                                |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_string());
                            let (signature, content_type) =
                                (header("rafiki-signature"), header("content-type"));
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let status = match secret.as_ref() {
                                Some(secret) => {
                                    let value: Value = serde_json::from_slice(&body).unwrap();
                                    let ok = signature.as_deref().is_some_and(|s| {
                                        verify(secret, s, &value, SystemTime::now()).is_ok()
                                    });
                                    if ok {
                                        200
                                    } else {
                                        401
                                    }
                                }
                                None => script.lock().unwrap().pop_front().unwrap_or(200),
                            };
                            rec.lock().unwrap().push(Received {
                                signature,
                                content_type: content_type.unwrap_or_default(),
                                body,
                            });
                            let mut answer = Response::new(Full::new(Bytes::new()));
                            *answer.status_mut() = StatusCode::from_u16(status).unwrap();
                            Ok::<_, std::convert::Infallible>(answer)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        WebhookReceiver { addr, received, task }
    }

    fn url(&self) -> String {
        format!("http://{}/webhooks", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fast_webhooks(url: &str) -> Options {
    Options {
        initial_liquidity: 700,
        liquidity_threshold: Some(700),
        webhook: WebhookOptions {
            url: Some(url.to_string()),
            retry_delays: vec![Duration::from_millis(50), Duration::from_millis(100)],
            ..WebhookOptions::default()
        },
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_over_a_non_canonical_body_and_retried_until_a_200() {
    // 201 and 204 are not deliveries.
    let receiver = WebhookReceiver::start(vec![500, 201, 204]).await;
    let rafiki = RafikiDouble::start_with(("USD", 9), fast_webhooks(&receiver.url())).await;
    let secret = rafiki.webhooks.secret().unwrap();

    let id = rafiki.fire_liquidity_low();
    eventually("delivered at the 4th attempt", PATIENCE, || {
        rafiki.webhooks.outcome(&id) == Some(Outcome::Delivered(4))
    })
    .await;
    let got = receiver.received();
    assert_eq!(got.len(), 4);
    let attempts: Vec<(u32, Option<u16>)> =
        rafiki.webhooks.deliveries().iter().map(|d| (d.attempt, d.status)).collect();
    assert_eq!(attempts, [(1, Some(500)), (2, Some(201)), (3, Some(204)), (4, Some(200))]);
    let mut ts = Vec::new();
    for r in &got {
        assert_eq!(r.content_type, "application/json");
        let text = std::str::from_utf8(&r.body).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        assert_ne!(text, canonical(&value).unwrap(), "the body is not sent in canonical order");
        assert!(text.starts_with(r#"{"type""#), "{text}");
        let signature = r.signature.as_deref().expect("signed");
        // Verifies once re-canonicalized; the same event on every attempt, a new t each time.
        verify(&secret, signature, &value, SystemTime::now()).unwrap();
        assert_eq!(value["id"], id.as_str());
        assert_eq!(
            value["data"],
            json!({
                "id": NODE_PEER_ID,
                "asset": {"id": ASSET_ID, "code": "USD", "scale": 9},
                "liquidityThreshold": "700",
                "balance": "700",
            })
        );
        let (t, v1) = signature.split_once(", ").unwrap();
        assert!(v1.len() == 67 && v1[3..].bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        ts.push(t.to_string());
        // Checked as the bytes came, it would not verify.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        let raw = format!("{}.{text}", &t[2..]);
        assert!(ring::hmac::verify(&key, raw.as_bytes(), &hex::decode(&v1[3..]).unwrap()).is_err());
    }
    ts.dedup();
    assert_eq!(ts.len(), 4, "a new t on every attempt: {ts:?}");

    // Never a 200: ten attempts, then given up.
    let refusing = WebhookReceiver::start(vec![503; 10]).await;
    rafiki.webhooks.set_url(&refusing.url());
    rafiki.webhooks.set_retry_delays(vec![Duration::from_millis(10)]);
    let id = rafiki.fire_liquidity_low();
    eventually("given up", PATIENCE, || rafiki.webhooks.outcome(&id) == Some(Outcome::GaveUp)).await;
    assert_eq!(refusing.received().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoiled_webhooks_are_refused_by_a_checking_receiver_and_bursts_are_all_delivered() {
    let secret = WebhookOptions::default().secret.unwrap();
    let receiver = WebhookReceiver::start_checking(vec![], Some(secret)).await;
    let rafiki = RafikiDouble::start_with(("USD", 9), fast_webhooks(&receiver.url())).await;
    for tamper in [
        Tamper::WrongSecret,
        Tamper::Stale,
        Tamper::Future,
        Tamper::Seconds,
        Tamper::Unsigned,
        Tamper::AlteredBody,
    ] {
        let status = rafiki.webhooks.send_tampered(NODE_PEER_ID, tamper).await;
        assert_eq!(status, Some(StatusCode::UNAUTHORIZED), "{tamper:?}");
    }
    assert!(rafiki.webhooks.deliveries().is_empty(), "spoiled webhooks are not recorded as deliveries");

    // A burst of 1,000: distinct events, all delivered, all verified.
    let ids = rafiki.fire_liquidity_low_burst(1000).await;
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 1000);
    // (At the first attempt unless one took over 2 s on a busy machine: then retried.)
    assert!(ids.iter().all(|id| matches!(rafiki.webhooks.outcome(id), Some(Outcome::Delivered(_)))));
    let mut got: Vec<String> = receiver.received()[6..]
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["id"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    got.dedup();
    assert_eq!(got, distinct, "every event reached the receiver");
}

/// Sends Prepares to the double's connector as its peer (the node) would, with `token`.
struct AsThePeer {
    connector: String,
    token: &'static str,
}

impl thitsax::stream::sender::Transport for AsThePeer {
    async fn send(&self, prepare: thitsax::packet::Prepare) -> thitsax::packet::Response {
        send(&client(), &self.connector, self.token, &prepare).await.packet()
    }
}

/// A STREAM payment of `amount` from the peer to `wallet`'s address, as the node sends one.
async fn pay_wallet(rafiki: &RafikiDouble, peer: &AsThePeer, wallet: &str, amount: u64) -> PaymentOutcome {
    use thitsax::stream::sender::{pay, Amount, AssetDetails, Payment, Progress, Rules};
    let (destination, shared_secret) = spsp_query(&rafiki.wallet_url(wallet)).await;
    let payment = Payment {
        destination,
        shared_secret,
        source_asset: AssetDetails { code: "USD".into(), scale: 9 },
        source_address: None,
        amount: Amount::Source(amount),
    };
    let rules = Rules::new(tokio::time::Instant::now() + PATIENCE);
    pay(peer, &payment, &rules, Progress::default(), |_| async {}).await.expect("valid rules")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_addresses_answer_spsp_and_take_stream_money_only_when_fulfilled() {
    let rafiki =
        RafikiDouble::start_with(("USD", 9), Options { initial_liquidity: 10_000, ..Options::default() })
            .await;
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    peer_directly(&rafiki, "node-token", &downstream).await;
    rafiki.wallets.add("alice", 0);
    let connector = format!("http://127.0.0.1:{}/", rafiki.connector_port);
    let peer = AsThePeer { connector: connector.clone(), token: "node-token" };

    // SPSP: only for its media type, only for a wallet it holds; one segment per query.
    let url = rafiki.wallet_url("alice");
    let plain = common::http_call(&client(), wallet_addr(&rafiki), "GET", "/alice", None, None).await;
    assert_eq!(plain.status, StatusCode::NOT_ACCEPTABLE);
    let (destination, _) = spsp_query(&url).await;
    let token = destination.as_str().strip_prefix("test.rafiki.").expect("under Rafiki's address");
    assert!(!token.is_empty() && !token.contains('.'), "{destination}");
    assert_eq!(rafiki.wallets.queries("alice"), 1);
    let (unknown, _) = spsp_get(&rafiki.wallet_url("nobody")).await;
    assert_eq!(unknown, StatusCode::NOT_FOUND, "no such wallet");

    // Money: what the wallet's receiver fulfils is credited and debited from the peer, exactly;
    // the sender's rate probes (F99 from the receiver) move nothing.
    let paid = pay_wallet(&rafiki, &peer, "alice", 2_500).await;
    assert!(paid.is_completed(), "{paid:?}");
    assert_eq!(paid.delivered, 2_500);
    assert!(paid.rejects_by_code.get("F99").copied().unwrap_or(0) >= 1, "the probe: {paid:?}");
    assert_eq!((rafiki.wallets.balance("alice"), rafiki.node_liquidity()), (Some(2_500), 7_500));
    assert_eq!(rafiki.wallets.credits().iter().map(|c| c.amount).sum::<u64>(), 2_500);

    // Past the peer's liquidity: T04 before the wallet sees it; nothing moves.
    let short = pay_wallet(&rafiki, &peer, "alice", 8_000).await;
    assert!(!short.is_completed(), "{short:?}");
    assert!(short.rejects_by_code.contains_key("T04"), "{short:?}");
    assert_eq!((rafiki.wallets.balance("alice"), rafiki.node_liquidity()), (Some(2_500), 7_500));

    // The peer's maxPacketAmount: F08 with what arrived and the maximum; a sender splits.
    rafiki.set_max_packet_amount(Some(1_000));
    let big = prepare("test.rafiki.x", 1_001, Duration::from_secs(30));
    let reject = send(&client(), &connector, "node-token", &big).await.reject();
    assert_code(&reject, ErrorCode::F08_AMOUNT_TOO_LARGE);
    assert_eq!(reject.data(), [1_001u64.to_be_bytes(), 1_000u64.to_be_bytes()].concat());
    let split = pay_wallet(&rafiki, &peer, "alice", 2_000).await;
    assert!(split.is_completed(), "{split:?}");
    assert!(split.packets_fulfilled >= 2, "{split:?}");
    assert_eq!((rafiki.wallets.balance("alice"), rafiki.node_liquidity()), (Some(4_500), 5_500));

    // Expiring in less than ~2 s: R02, nothing debited.
    let hurried = prepare("test.rafiki.x", 10, Duration::from_millis(1_500));
    assert_code(
        &send(&client(), &connector, "node-token", &hurried).await.reject(),
        ErrorCode::R02_INSUFFICIENT_TIMEOUT,
    );
    assert_eq!(rafiki.node_liquidity(), 5_500);
}

fn wallet_addr(rafiki: &RafikiDouble) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], rafiki.wallet_port))
}

/// A peer that fulfils every Prepare after `delay`.
async fn slow_peer(delay: Duration) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let prepare = thitsax::packet::Prepare::parse(&body).unwrap();
                    tokio::time::sleep(delay).await;
                    let fulfill = thitsax::packet::Fulfill::build(&common::preimage_of(&prepare), b"");
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(fulfill.as_bytes().clone())))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fulfill_later_than_the_booking_window_is_relayed_but_not_booked() {
    let rafiki =
        RafikiDouble::start_with(("USD", 9), Options { initial_liquidity: 1_000, ..Options::default() })
            .await;
    let (url, task) = slow_peer(common::rafiki::BOOKING_WINDOW + Duration::from_millis(300)).await;
    rafiki.create_peer("test.n", &url, "rafiki-to-n", "n-to-rafiki");
    let (status, body) = rafiki.send(&prepare("test.n.alice", 300, Duration::from_secs(30)), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(matches!(thitsax::packet::Response::parse(body), Ok(thitsax::packet::Response::Fulfill(_))));
    assert_eq!(rafiki.node_liquidity(), 1_000, "not booked: the pending transfer had timed out");
    assert_eq!(rafiki.state().unbooked, 1);
    task.abort();
}
