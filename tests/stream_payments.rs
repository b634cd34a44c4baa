//! Payments the node sends itself (`POST /payments`), end to end on a real node: from a local
//! account through the node's own packet path (currency conversion included) to a local
//! receiver found by SPSP, and to another node's; the same id never pays twice.

mod common;

use common::{admin_call, client, TestNode};
use hyper::StatusCode;
use std::time::Duration;

const ADMIN: &str = "admin-token";

fn config() -> String {
    format!(
        r#"
[node]
ilp_address = "test.pay"

[admin]
token = "{ADMIN}"

[rates.prices]
USD = "1"
MXN = "0.055"

[[accounts]]
id = "treasury"
relation = "local"
asset_code = "USD"
asset_scale = 9
min_balance = -1000000000000

[[accounts]]
id = "shop"
relation = "local"
asset_code = "MXN"
asset_scale = 2

[[accounts]]
id = "empty"
relation = "local"
asset_code = "USD"
asset_scale = 9
"#
    )
}

async fn post(node: &TestNode, body: &str) -> common::HttpAnswer {
    admin_call(&client(), node.admin_addr.unwrap(), "POST", "/payments", Some(ADMIN), Some(body)).await
}

/// Polls the payment until it ended (at most 60 s).
async fn ended(node: &TestNode, id: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let path = format!("/payments/{id}");
        let p = admin_call(&client(), node.admin_addr.unwrap(), "GET", &path, Some(ADMIN), None)
            .await
            .json(StatusCode::OK);
        if p["state"] != "sending" {
            return p;
        }
        assert!(tokio::time::Instant::now() < deadline, "payment still sending: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_delivers_exactly_its_amount_and_the_same_id_never_pays_twice() {
    let node = TestNode::start(&config()).await;
    let receiver = format!("http://{}/shop", node.spsp_addr.unwrap());
    let body = format!(
        r#"{{"id": "p1", "account": "treasury", "receiver": "{receiver}", "amount": "12345",
            "amount_kind": "delivered", "source_max": "10000000000", "deadline_in_s": 30}}"#
    );
    let created = post(&node, &body).await.json(StatusCode::CREATED);
    assert_eq!(created["id"], "p1");
    let paid = ended(&node, "p1").await;
    assert_eq!(
        (paid["state"].as_str(), paid["delivered"].as_str()),
        (Some("completed"), Some("12345")),
        "{paid}"
    );
    let sent: i128 = paid["sent"].as_str().unwrap().parse().unwrap();
    assert!(sent > 0 && paid["in_doubt"] == "0", "{paid}");
    assert_eq!((node.balance("treasury").await, node.balance("shop").await), (-sent, 12345));
    // The same id again, even asking for more: the stored payment, and nothing more is paid.
    let again = post(&node, &body.replace("12345", "99999")).await.json(StatusCode::OK);
    assert_eq!((again["state"].as_str(), again["delivered"].as_str()), (Some("completed"), Some("12345")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((node.balance("treasury").await, node.balance("shop").await), (-sent, 12345));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_amount_is_sent_exactly_and_an_account_pays_only_what_it_holds() {
    let node = TestNode::start(&config()).await;
    let receiver = format!("http://{}/shop", node.spsp_addr.unwrap());
    let body =
        format!(r#"{{"id": "p2", "account": "treasury", "receiver": "{receiver}", "amount": "3000000000"}}"#);
    post(&node, &body).await.json(StatusCode::CREATED);
    let paid = ended(&node, "p2").await;
    assert_eq!(
        (paid["state"].as_str(), paid["sent"].as_str()),
        (Some("completed"), Some("3000000000")),
        "{paid}"
    );
    let delivered: i128 = paid["delivered"].as_str().unwrap().parse().unwrap();
    assert_eq!((node.balance("treasury").await, node.balance("shop").await), (-3_000_000_000, delivered));
    // 3 USD is 54.54 MXN at the configured prices, rounded down in the node's favour.
    assert_eq!(delivered, 5454);
    // A local account without credit holds nothing: its payment moves nothing and fails.
    let body = format!(r#"{{"id": "p3", "account": "empty", "receiver": "{receiver}", "amount": "1000"}}"#);
    post(&node, &body).await.json(StatusCode::CREATED);
    let failed = ended(&node, "p3").await;
    assert_eq!((failed["state"].as_str(), failed["sent"].as_str()), (Some("failed"), Some("0")), "{failed}");
    assert_eq!(node.balance("empty").await, 0);
    node.stop().await;
}

#[tokio::test]
async fn payments_are_checked_before_anything_is_sent() {
    let node = TestNode::start(&config()).await;
    for (body, field) in [
        (r#"{"id": "x", "account": "nobody", "receiver": "$w.example/a", "amount": "1"}"#, "payment.account"),
        (r#"{"id": "x", "account": "treasury", "receiver": "ftp://x", "amount": "1"}"#, "payment.receiver"),
        (
            r#"{"id": "x", "account": "treasury", "receiver": "$w.example/a", "amount": "0"}"#,
            "payment.amount",
        ),
        (r#"{"id": "a.b", "account": "treasury", "receiver": "$w.example/a", "amount": "1"}"#, "payment.id"),
        (
            r#"{"id": "x", "account": "treasury", "receiver": "$w.example/a", "amount": "1", "slippage": "2"}"#,
            "payment.slippage",
        ),
        (
            r#"{"id": "x", "account": "treasury", "receiver": "$w.example/a", "amount": "1", "amount_kind": "delivered"}"#,
            "payment.source_max",
        ),
    ] {
        let answer = post(&node, body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.text());
        let json: serde_json::Value = serde_json::from_str(&answer.text()).unwrap();
        assert_eq!(json["problems"][0]["field"], field, "{json}");
    }
    let none = admin_call(&client(), node.admin_addr.unwrap(), "GET", "/payments/x", Some(ADMIN), None).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    node.stop().await;
}

/// A (local `treasury`, USD) pays B's local `shop` (MXN) found by B's SPSP URL, over
/// ILP-over-HTTP between the two nodes; B caps A's packets at 1 USD (F08, several packets). The
/// exact MXN amount arrives and the two nodes' books of their relationship agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_to_another_node_delivers_exactly_and_both_nodes_agree() {
    let node_b = TestNode::start(
        r#"
[node]
ilp_address = "test.b"
[rates.prices]
USD = "1"
MXN = "0.055"
[[accounts]]
id = "a"
relation = "peer"
asset_code = "USD"
asset_scale = 9
ilp_address = "test.a"
incoming_token = "a-to-b"
outgoing_url = "http://127.0.0.1:9/"
outgoing_token = "b-to-a"
max_packet_amount = 1000000000
min_balance = -1000000000000
[[accounts]]
id = "shop"
relation = "local"
asset_code = "MXN"
asset_scale = 2
"#,
    )
    .await;
    let node_a = TestNode::start(&format!(
        r#"
[node]
ilp_address = "test.a"
[admin]
token = "{ADMIN}"
[[accounts]]
id = "treasury"
relation = "local"
asset_code = "USD"
asset_scale = 9
min_balance = -1000000000000
[[accounts]]
id = "b"
relation = "peer"
asset_code = "USD"
asset_scale = 9
ilp_address = "test.b"
incoming_token = "b-to-a"
outgoing_url = "{}"
outgoing_token = "a-to-b"
"#,
        node_b.url()
    ))
    .await;
    let receiver = format!("http://{}/shop", node_b.spsp_addr.unwrap());
    let body = format!(
        r#"{{"id": "to-b", "account": "treasury", "receiver": "{receiver}", "amount": "12345",
            "amount_kind": "delivered", "source_max": "10000000000", "deadline_in_s": 30}}"#
    );
    post(&node_a, &body).await.json(StatusCode::CREATED);
    let paid = ended(&node_a, "to-b").await;
    assert_eq!(
        (paid["state"].as_str(), paid["delivered"].as_str()),
        (Some("completed"), Some("12345")),
        "{paid}"
    );
    assert!(paid["packets_fulfilled"].as_u64().unwrap() >= 7, "123.45 MXN is over 6.7 USD: {paid}");
    let sent: i128 = paid["sent"].as_str().unwrap().parse().unwrap();
    // A: the treasury paid what the payment sent, all of it forwarded to B.
    assert_eq!(node_a.balance("treasury").await, -sent);
    assert_eq!(node_a.balance("b").await, sent, "A's books of B: what A forwarded");
    // B: the same amount from A, the exact MXN in the shop.
    assert_eq!(node_b.balance("a").await, -sent, "B's books of A agree with A's books of B");
    assert_eq!(node_b.balance("shop").await, 12345);
    node_a.stop().await;
    node_b.stop().await;
}

/// `thitsax pay` asks the running node's admin API (found through the config file's
/// `admin.listen`) to pay, waits, prints the payment and exits 0 once completed; run again with
/// the same `--id`, it prints the same payment and nothing more is paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thitsax_pay_pays_from_the_command_line_and_never_twice_for_one_id() {
    let node = TestNode::start(&config()).await;
    let dir = common::TempDir::new("thitsax-pay");
    let file = dir.join("node.toml");
    let admin = node.admin_addr.unwrap();
    let text = config().replace("[admin]\n", &format!("[admin]\nlisten = \"{admin}\"\n"));
    std::fs::write(&file, text).unwrap();
    let receiver = format!("http://{}/shop", node.spsp_addr.unwrap());
    let run = |file: std::path::PathBuf, receiver: String| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_thitsax"))
                .args(["pay", "--config"])
                .arg(&file)
                .args(["--account", "treasury", "--to", &receiver, "--amount", "1000000000", "--id", "cli-1"])
                .env("THITSAX_ADMIN_TOKEN", ADMIN)
                .output()
                .unwrap()
        })
    };
    let first = run(file.clone(), receiver.clone()).await.unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let paid: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!((paid["state"].as_str(), paid["sent"].as_str()), (Some("completed"), Some("1000000000")));
    let balances = (node.balance("treasury").await, node.balance("shop").await);
    let again = run(file, receiver).await.unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let repeated: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(repeated["sent"], paid["sent"]);
    assert_eq!((node.balance("treasury").await, node.balance("shop").await), balances);
    assert_eq!(balances.0, -1_000_000_000);
    node.stop().await;
}
