//! The node's own STREAM receiver and SPSP listener, end to end: real nodes on loopback ports,
//! real HTTP, STREAM packets built and read by the test (a sender written with the crate's
//! `stream` protocol module: the JS reference senders are in tests/interop.rs).

mod common;

use common::stream::{query, reply, spsp_get, stream_prepare, Spsp};
use common::{admin_call, assert_code, client, send, TestNode};
use hyper::StatusCode;
use std::time::{Duration, SystemTime};
use thitsax::packet::{ErrorCode, IlpAddress, Prepare, Response as IlpResponse};
use thitsax::stream::{Frame, PacketType};

const ADMIN: &str = "admin-token";

fn config() -> String {
    format!(
        r#"
[node]
ilp_address = "test.recv"

[admin]
token = "{ADMIN}"

[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 2
incoming_token = "alice-token"
min_balance = -1000000

[[accounts]]
id = "shop"
relation = "local"
asset_code = "USD"
asset_scale = 2
"#
    )
}

async fn pay(node: &TestNode, to: &Spsp, amount: u64, sequence: u64) -> IlpResponse {
    send(&client(), &node.url(), "alice-token", &stream_prepare(to, amount, sequence, false)).await.packet()
}

#[tokio::test]
async fn spsp_answers_new_credentials_for_local_accounts_only() {
    let node = TestNode::start(&config()).await;
    let a = query(&node, "/shop").await;
    let b = query(&node, "/shop").await;
    assert!(a.destination.starts_with("test.recv.shop."), "{}", a.destination);
    assert_ne!(a.destination, b.destination, "new credentials for every query");
    let (status, _, _) = spsp_get(&node, "/shop", "application/json").await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    for path in ["/nobody", "/alice", "/shop/no-such-payment", "/shop/a/b", "/"] {
        let (status, _, body) = spsp_get(&node, path, "application/spsp4+json").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    node.stop().await;
}

#[tokio::test]
async fn a_stream_payment_to_a_local_account_is_credited_once_per_fulfilled_packet() {
    let node = TestNode::start(&config()).await;
    let to = query(&node, "/shop").await;
    let IlpResponse::Fulfill(fulfill) = pay(&node, &to, 250, 1).await else { panic!("expected a Fulfill") };
    let answer = reply(&to, fulfill.data());
    assert_eq!((answer.packet_type, answer.sequence, answer.prepare_amount), (PacketType::Fulfill, 1, 250));
    assert!(answer
        .frames
        .contains(&Frame::ConnectionAssetDetails { asset_code: "USD".into(), asset_scale: 2 }));
    assert_eq!((node.balance("alice").await, node.balance("shop").await), (-250, 250));
    // A probe (a condition the receiver cannot fulfil) learns what arrives and moves nothing.
    let probe = stream_prepare(&to, 40, 2, true);
    let reject = send(&client(), &node.url(), "alice-token", &probe).await.reject();
    assert_code(&reject, ErrorCode::F99_APPLICATION_ERROR);
    let answer = reply(&to, reject.data());
    assert_eq!((answer.packet_type, answer.prepare_amount), (PacketType::Reject, 40));
    assert_eq!((node.balance("alice").await, node.balance("shop").await), (-250, 250));
    node.stop().await;
}

#[tokio::test]
async fn garbage_wrong_tokens_and_wrong_secrets_are_rejected_and_move_nothing() {
    let node = TestNode::start(&config()).await;
    let to = query(&node, "/shop").await;
    let other = query(&node, "/shop").await;
    let c = client();
    // Data that is not this connection's: encrypted with another connection's key.
    let mut wrong_key = stream_prepare(&other, 10, 1, false);
    let destination = IlpAddress::parse(&to.destination).unwrap();
    wrong_key = Prepare::build(
        &destination,
        10,
        wrong_key.expires_at(),
        wrong_key.execution_condition(),
        wrong_key.data(),
    );
    assert_code(
        &send(&c, &node.url(), "alice-token", &wrong_key).await.reject(),
        ErrorCode::F06_UNEXPECTED_PAYMENT,
    );
    // Garbage data.
    let garbage =
        Prepare::build(&destination, 10, SystemTime::now() + Duration::from_secs(30), &[1; 32], b"garbage");
    assert_code(
        &send(&c, &node.url(), "alice-token", &garbage).await.reject(),
        ErrorCode::F06_UNEXPECTED_PAYMENT,
    );
    // A token the node never issued, and a real token moved under another address.
    let token = to.destination.rsplit('.').next().unwrap();
    for address in ["test.recv.shop.madeup".to_string(), format!("test.recv.shop.inv1.{token}")] {
        let p = stream_prepare(&Spsp { destination: address, keys: to.keys.clone() }, 10, 1, false);
        assert_code(&send(&c, &node.url(), "alice-token", &p).await.reject(), ErrorCode::F02_UNREACHABLE);
    }
    assert_eq!((node.balance("alice").await, node.balance("shop").await), (0, 0));
    node.stop().await;
}

#[tokio::test]
async fn a_replayed_stream_packet_moves_its_money_once() {
    let node = TestNode::start(&config()).await;
    let to = query(&node, "/shop").await;
    let c = client();
    let prepare = stream_prepare(&to, 70, 1, false);
    assert!(matches!(send(&c, &node.url(), "alice-token", &prepare).await.packet(), IlpResponse::Fulfill(_)));
    // The same Prepare again (a connector retrying it, or anyone replaying it): refused, and the
    // sender's debit reversed.
    let replay = send(&c, &node.url(), "alice-token", &prepare).await.reject();
    assert_code(&replay, ErrorCode::F99_APPLICATION_ERROR);
    assert_eq!((node.balance("alice").await, node.balance("shop").await), (-70, 70));
    // The connection goes on: the next sequence number is paid.
    assert!(matches!(pay(&node, &to, 30, 2).await, IlpResponse::Fulfill(_)));
    assert_eq!((node.balance("alice").await, node.balance("shop").await), (-100, 100));
    node.stop().await;
}

#[tokio::test]
async fn an_incoming_payment_takes_exactly_its_target_then_completes() {
    let node = TestNode::start(&config()).await;
    let (c, admin) = (client(), node.admin_addr.unwrap());
    let created = admin_call(
        &c,
        admin,
        "POST",
        "/accounts/shop/incoming-payments",
        Some(ADMIN),
        Some(r#"{"id": "inv-1", "target": "1000", "metadata": {"order": 42}}"#),
    )
    .await
    .json(StatusCode::CREATED);
    assert_eq!((created["state"].as_str(), created["received"].as_str()), (Some("open"), Some("0")));
    assert_eq!(created["metadata"]["order"], 42);
    let spsp_path =
        created["spsp_url"].as_str().unwrap().split_once("//").unwrap().1.split_once('/').unwrap().1;
    let to = query(&node, &format!("/{spsp_path}")).await;
    assert!(to.destination.starts_with("test.recv.shop.inv-1."));
    assert!(matches!(pay(&node, &to, 600, 1).await, IlpResponse::Fulfill(_)));
    // Over the target: refused, nothing moves; the reply says what the payment may still take.
    let IlpResponse::Reject(over) = pay(&node, &to, 600, 2).await else {
        panic!("over the target must be refused")
    };
    assert_code(&over, ErrorCode::F99_APPLICATION_ERROR);
    let answer = reply(&to, over.data());
    assert!(
        answer.frames.contains(&Frame::StreamMaxMoney {
            stream_id: 1,
            receive_max: 1000,
            total_received: 600
        }),
        "{answer:?}"
    );
    assert!(matches!(pay(&node, &to, 400, 3).await, IlpResponse::Fulfill(_)));
    // Complete: later packets are refused and the connection closed.
    let IlpResponse::Reject(late) = pay(&node, &to, 1, 4).await else {
        panic!("a complete payment takes nothing")
    };
    assert!(reply(&to, late.data()).frames.iter().any(|f| matches!(f, Frame::ConnectionClose { .. })));
    assert_eq!((node.balance("alice").await, node.balance("shop").await), (-1000, 1000));
    // The completion is handed to the hook (the default logs it) and acknowledged.
    let shown = wait_for(|| async {
        let p =
            admin_call(&client(), admin, "GET", "/accounts/shop/incoming-payments/inv-1", Some(ADMIN), None)
                .await
                .json(StatusCode::OK);
        (p["completion_handled"] == true).then_some(p)
    })
    .await;
    assert_eq!(
        (shown["state"].as_str(), shown["completion"].as_str()),
        (Some("completed"), Some("target_reached"))
    );
    assert_eq!(shown["received"], "1000");
    // Its SPSP URL no longer hands out credentials; the same create again is answered the same.
    let (status, _, _) = spsp_get(&node, &format!("/{spsp_path}"), "application/spsp4+json").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let again = admin_call(
        &c,
        admin,
        "POST",
        "/accounts/shop/incoming-payments",
        Some(ADMIN),
        Some(r#"{"id": "inv-1", "target": "1000", "metadata": {"order": 42}}"#),
    )
    .await
    .json(StatusCode::OK);
    assert_eq!(again["received"], "1000");
    let clash = admin_call(
        &c,
        admin,
        "POST",
        "/accounts/shop/incoming-payments",
        Some(ADMIN),
        Some(r#"{"id": "inv-1", "target": "5"}"#),
    )
    .await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    node.stop().await;
}

#[tokio::test]
async fn an_expired_incoming_payment_refuses_money_and_completes_as_expired() {
    let node = TestNode::start(&config()).await;
    let (c, admin) = (client(), node.admin_addr.unwrap());
    let expires = thitsax_time(SystemTime::now() + Duration::from_millis(1500));
    let body = format!(r#"{{"id": "soon", "expires_at": "{expires}"}}"#);
    admin_call(&c, admin, "POST", "/accounts/shop/incoming-payments", Some(ADMIN), Some(&body))
        .await
        .json(StatusCode::CREATED);
    let to = query(&node, "/shop/soon").await;
    assert!(matches!(pay(&node, &to, 5, 1).await, IlpResponse::Fulfill(_)));
    let shown = wait_for(|| async {
        let p =
            admin_call(&client(), admin, "GET", "/accounts/shop/incoming-payments/soon", Some(ADMIN), None)
                .await
                .json(StatusCode::OK);
        (p["completion_handled"] == true).then_some(p)
    })
    .await;
    assert_eq!((shown["completion"].as_str(), shown["received"].as_str()), (Some("expired"), Some("5")));
    let IlpResponse::Reject(late) = pay(&node, &to, 5, 2).await else {
        panic!("an expired payment takes nothing")
    };
    assert_code(&late, ErrorCode::F99_APPLICATION_ERROR);
    assert_eq!((node.balance("alice").await, node.balance("shop").await), (-5, 5));
    node.stop().await;
}

#[tokio::test]
async fn incoming_payments_are_checked_and_only_for_local_accounts() {
    let node = TestNode::start(&config()).await;
    let (c, admin) = (client(), node.admin_addr.unwrap());
    let post = |path: &'static str, body: &'static str| {
        let c = c.clone();
        async move { admin_call(&c, admin, "POST", path, Some(ADMIN), Some(body)).await }
    };
    assert_eq!(post("/accounts/alice/incoming-payments", "{}").await.status, StatusCode::CONFLICT);
    assert_eq!(post("/accounts/nobody/incoming-payments", "{}").await.status, StatusCode::NOT_FOUND);
    for bad in [
        r#"{"target": "0"}"#,
        r#"{"target": "-1"}"#,
        r#"{"id": "a.b"}"#,
        r#"{"expires_in_s": 0}"#,
        r#"{"expires_at": "yesterday"}"#,
        r#"{"unknown": 1}"#,
    ] {
        let answer = post("/accounts/shop/incoming-payments", bad).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {}", answer.text());
    }
    let listed = admin_call(&c, admin, "GET", "/accounts/shop/incoming-payments", Some(ADMIN), None).await;
    assert_eq!(listed.json(StatusCode::OK), serde_json::json!([]));
    node.stop().await;
}

fn thitsax_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Polls `check` until it gives a value (at most 20 s: the worker scans every second).
async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(check: impl Fn() -> F) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "condition not reached in 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
