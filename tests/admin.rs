//! The admin API end to end: a real node with the memory store, real HTTP on its admin listener,
//! and real ILP-over-HTTP packets to show that each change takes effect without a restart.

mod common;

use common::*;
use hyper::StatusCode;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use thitsax::packet::ErrorCode;

const TOKEN: &str = "operator-secret";
const TEN_SECONDS: Duration = Duration::from_secs(10);

/// Node `test.n` with an admin token; alice (child, USD scale 2) sends, bob (child) receives at
/// `downstream`; partner is a peer at `test.partner`. Prices for USD and MXN.
fn toml(downstream: &str) -> String {
    format!(
        r#"
[node]
ilp_address = "test.n"
log_level = "warn"
[admin]
token = "{TOKEN}"
[rates]
spread = "0"
[rates.prices]
USD = "1"
MXN = "0.05"
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 2
incoming_token = "alice-token"
min_balance = -100000
[[accounts]]
id = "bob"
relation = "child"
asset_code = "USD"
asset_scale = 2
outgoing_url = "{downstream}"
outgoing_token = "to-bob"
[[accounts]]
id = "partner"
relation = "peer"
asset_code = "USD"
asset_scale = 2
ilp_address = "test.partner"
outgoing_url = "{downstream}"
outgoing_token = "to-partner"
[[routes]]
prefix = "test.elsewhere"
account = "partner"
"#
    )
}

struct Admin {
    addr: SocketAddr,
    client: Client,
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

impl Admin {
    fn of(node: &TestNode) -> Admin {
        Admin { addr: node.admin_addr.expect("admin listener bound"), client: client() }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> HttpAnswer {
        admin_call(&self.client, self.addr, method, path, Some(TOKEN), body).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call("GET", path, None).await.json(StatusCode::OK)
    }
}

async fn start() -> (TestNode, Downstream, Admin) {
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let node = TestNode::start(&toml(&downstream.url())).await;
    let admin = Admin::of(&node);
    (node, downstream, admin)
}

/// The fields the answer names, in order.
fn fields(answer: &HttpAnswer) -> Vec<String> {
    let body = answer.json(StatusCode::BAD_REQUEST);
    body["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn without_an_admin_token_there_is_no_admin_listener() {
    let node =
        TestNode::start(&toml("http://127.0.0.1:9/").replace(&format!("token = \"{TOKEN}\""), "")).await;
    assert_eq!(node.admin_addr, None);
}

#[tokio::test]
async fn every_route_but_the_probes_needs_the_admin_token() {
    let (node, _downstream, admin) = start().await;
    let protected = [
        ("GET", "/accounts"),
        ("POST", "/accounts"),
        ("GET", "/accounts/alice"),
        ("PUT", "/accounts/alice"),
        ("DELETE", "/accounts/alice"),
        ("GET", "/accounts/alice/balance"),
        ("POST", "/accounts/alice/settle"),
        ("GET", "/balances"),
        ("GET", "/routes"),
        ("PUT", "/routes/test.x"),
        ("DELETE", "/routes/test.elsewhere"),
        ("GET", "/rates"),
        ("PUT", "/rates"),
        ("GET", "/metrics"),
        ("GET", "/no-such-route"),
    ];
    for (method, path) in protected {
        for token in [None, Some("wrong"), Some("")] {
            let answer = admin_call(&admin.client, admin.addr, method, path, token, Some("{}")).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path} with {token:?}");
        }
    }
    // An ILP account's token is not an admin token.
    let answer = admin_call(&admin.client, admin.addr, "GET", "/accounts", Some("alice-token"), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.json(StatusCode::UNAUTHORIZED)["error"].as_str().unwrap().contains("token"));
    for probe in ["/health", "/ready"] {
        let answer = admin_call(&admin.client, admin.addr, "GET", probe, None, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{probe}");
    }
    // Nothing changed.
    assert_eq!(admin.get("/accounts").await.as_array().unwrap().len(), 3);
    assert_eq!(node.balance("alice").await, 0);
}

#[tokio::test]
async fn accounts_are_listed_and_read_without_their_outgoing_token() {
    let (_node, _downstream, admin) = start().await;
    let list = admin.get("/accounts").await;
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["alice", "bob", "partner"]);
    let bob = admin.get("/accounts/bob").await;
    assert_eq!(bob["address"], "test.n.bob");
    assert_eq!(bob["asset_scale"], 2);
    assert_eq!(bob["outgoing_token_set"], true);
    assert!(bob.get("outgoing_token").is_none());
    assert!(!admin.call("GET", "/accounts/bob", None).await.text().contains("to-bob"));
    let alice = admin.get("/accounts/alice").await;
    assert_eq!(alice["incoming_token_sha256"].as_str().unwrap().len(), 64, "only the hash is shown");
    assert_eq!(admin.call("GET", "/accounts/nobody", None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_account_created_through_the_api_sends_packets_at_once() {
    let (node, downstream, admin) = start().await;
    let carol = r#"{"id":"carol","relation":"child","asset_code":"USD","asset_scale":2,
                    "incoming_token":"carol-token","min_balance":-500}"#;
    let created = admin.call("POST", "/accounts", Some(carol)).await.json(StatusCode::CREATED);
    assert_eq!(created["address"], "test.n.carol");
    assert!(created.get("incoming_token").is_none(), "the clear token is never shown");
    // Its token authenticates and its credit limit applies.
    let fulfilled =
        send(&client(), &node.url(), "carol-token", &prepare("test.n.bob.x", 300, TEN_SECONDS)).await;
    fulfilled.fulfill();
    let refused =
        send(&client(), &node.url(), "carol-token", &prepare("test.n.bob.x", 300, TEN_SECONDS)).await;
    assert_code(&refused.reject(), ErrorCode::T04_INSUFFICIENT_LIQUIDITY);
    assert_eq!(node.balance("carol").await, -300);
    assert_eq!(downstream.received().len(), 1);
    // Packets to it are routed (a child's address comes from the node's).
    assert_eq!(
        admin.get("/routes").await["routes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["prefix"] == "test.n.carol")
            .count(),
        1
    );
    // The same id again is 409 and changes nothing.
    assert_eq!(admin.call("POST", "/accounts", Some(carol)).await.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn invalid_accounts_are_400_with_the_field_named_and_change_nothing() {
    let (_node, _downstream, admin) = start().await;
    let cases = [
        (r#"{"id":"x","relation":"child","asset_code":"USD","asset_scale":19}"#, "account.asset_scale"),
        (r#"{"id":"x","relation":"child","asset_code":"USD","asset_scale":"2"}"#, "account.asset_scale"),
        (r#"{"id":"x","relation":"child","asset_code":"USD"}"#, "account"),
        (r#"{"id":"x.y","relation":"child","asset_code":"USD","asset_scale":2}"#, "account.id"),
        (r#"{"id":"x","relation":"uncle","asset_code":"USD","asset_scale":2}"#, "account.relation"),
        (
            r#"{"id":"x","relation":"child","asset_code":"USD","asset_scale":2,"incoming_token":"alice-token"}"#,
            "account.incoming_token",
        ),
        (
            r#"{"id":"x","relation":"child","asset_code":"USD","asset_scale":2,"outgoing_url":"ftp://a/"}"#,
            "account.outgoing_token",
        ),
        (
            r#"{"id":"x","relation":"child","asset_code":"USD","asset_scale":2,"settle_threshold":5,"settle_to":9}"#,
            "account.settle_to",
        ),
        (r#"{"id":"x","relation":"child","asset_code":"EUR","asset_scale":2}"#, "rates.prices.EUR"),
        (
            r#"{"id":"x","relation":"child","asset_code":"USD","asset_scale":2,"colour":"red"}"#,
            "account.colour",
        ),
        // A negative threshold with settle_to left at 0 would raise the balance when it settles.
        (
            r#"{"id":"x","relation":"child","asset_code":"USD","asset_scale":2,"settle_threshold":-10}"#,
            "account.settle_to",
        ),
    ];
    for (body, field) in cases {
        let answer = admin.call("POST", "/accounts", Some(body)).await;
        assert_eq!(fields(&answer)[0], field, "{body}: {}", answer.text());
    }
    let unknown = admin.call("POST", "/accounts", Some(cases[9].0)).await.text();
    assert!(unknown.contains("colour"), "the unknown field is named: {unknown}");
    let two_parents = r#"{"id":"p1","relation":"parent","asset_code":"USD","asset_scale":2}"#;
    assert_eq!(admin.call("POST", "/accounts", Some(two_parents)).await.status, StatusCode::CREATED);
    let answer = admin.call("POST", "/accounts", Some(&two_parents.replace("p1", "p2"))).await;
    assert_eq!(fields(&answer), ["account.relation"]);
    assert_eq!(admin.get("/accounts").await.as_array().unwrap().len(), 4, "only p1 was added");
}

#[tokio::test]
async fn account_amounts_are_taken_as_decimal_strings_or_numbers_and_answered_as_strings() {
    let (node, _downstream, admin) = start().await;
    // Past 2^53, where a JSON number read as a double would lose the last digits.
    let carol = r#"{"id":"carol","relation":"child","asset_code":"USD","asset_scale":2,
                    "incoming_token":"carol-token","min_balance":"-500",
                    "max_packet_amount":"9007199254740993","settle_threshold":"9007199254740993",
                    "settle_to":"10"}"#;
    let created = admin.call("POST", "/accounts", Some(carol)).await.json(StatusCode::CREATED);
    assert_eq!(created["min_balance"], "-500");
    assert_eq!(created["max_packet_amount"], "9007199254740993");
    assert_eq!(created["settle_threshold"], "9007199254740993");
    assert_eq!(created["settle_to"], "10");
    assert_eq!(admin.get("/accounts/carol").await["min_balance"], "-500");
    // The credit limit from the string applies.
    let refused =
        send(&client(), &node.url(), "carol-token", &prepare("test.n.bob.x", 501, TEN_SECONDS)).await;
    assert_code(&refused.reject(), ErrorCode::T04_INSUFFICIENT_LIQUIDITY);
    // Numbers are still taken, as before.
    let dave = r#"{"id":"dave","relation":"child","asset_code":"USD","asset_scale":2,"min_balance":-7}"#;
    let created = admin.call("POST", "/accounts", Some(dave)).await.json(StatusCode::CREATED);
    assert_eq!(created["min_balance"], "-7");
    // A string that is not an integer in range is refused with the field named.
    for bad in [r#""-5.5""#, r#""ten""#, r#""9223372036854775808""#, r#""""#] {
        let body = format!(
            r#"{{"id":"erin","relation":"child","asset_code":"USD","asset_scale":2,"min_balance":{bad}}}"#
        );
        let answer = admin.call("POST", "/accounts", Some(&body)).await;
        assert_eq!(fields(&answer), ["account.min_balance"], "{bad}: {}", answer.text());
    }
    let negative_max =
        r#"{"id":"erin","relation":"child","asset_code":"USD","asset_scale":2,"max_packet_amount":"-1"}"#;
    assert_eq!(
        fields(&admin.call("POST", "/accounts", Some(negative_max)).await),
        ["account.max_packet_amount"]
    );
}

#[tokio::test]
async fn an_update_takes_effect_at_once_and_cannot_change_the_asset() {
    let (node, _downstream, admin) = start().await;
    let alice = |min: i64, scale: u8| {
        format!(
            r#"{{"id":"alice","relation":"child","asset_code":"USD","asset_scale":{scale},"incoming_token":"alice-token","min_balance":{min}}}"#
        )
    };
    let updated = admin.call("PUT", "/accounts/alice", Some(&alice(-100, 2))).await.json(StatusCode::OK);
    assert_eq!(updated["min_balance"], "-100");
    let refused =
        send(&client(), &node.url(), "alice-token", &prepare("test.n.bob.x", 101, TEN_SECONDS)).await;
    assert_code(&refused.reject(), ErrorCode::T04_INSUFFICIENT_LIQUIDITY);
    send(&client(), &node.url(), "alice-token", &prepare("test.n.bob.x", 100, TEN_SECONDS)).await.fulfill();

    assert_eq!(
        admin.call("PUT", "/accounts/alice", Some(&alice(-100, 3))).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(admin.get("/accounts/alice").await["asset_scale"], 2);
    assert_eq!(
        admin.call("PUT", "/accounts/bob", Some(&alice(-100, 2))).await.status,
        StatusCode::BAD_REQUEST
    );
    let ghost = alice(0, 2).replace("alice", "ghost");
    assert_eq!(admin.call("PUT", "/accounts/ghost", Some(&ghost)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(node.balance("alice").await, -100);
}

#[tokio::test]
async fn an_account_with_a_balance_is_deleted_only_with_force() {
    let (node, _downstream, admin) = start().await;
    send(&client(), &node.url(), "alice-token", &prepare("test.n.bob.x", 250, TEN_SECONDS)).await.fulfill();
    let refused = admin.call("DELETE", "/accounts/alice", None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text());
    assert!(refused.text().contains("-250"));
    // Still served.
    send(&client(), &node.url(), "alice-token", &prepare("test.n.bob.x", 1, TEN_SECONDS)).await.fulfill();
    assert_eq!(admin.call("DELETE", "/accounts/alice?force=true", None).await.status, StatusCode::NO_CONTENT);
    // Gone: its token no longer authenticates; its balance stays in the store.
    let answer = send(&client(), &node.url(), "alice-token", &prepare("test.n.bob.x", 1, TEN_SECONDS)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(node.balance("alice").await, -251);
    assert_eq!(admin.call("GET", "/accounts/alice", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(admin.call("DELETE", "/accounts/alice", None).await.status, StatusCode::NOT_FOUND);
    // The same id again would inherit the -251: refused unless forced (the same account again).
    let alice = r#"{"id":"alice","relation":"child","asset_code":"USD","asset_scale":2,"incoming_token":"alice-token"}"#;
    let refused = admin.call("POST", "/accounts", Some(alice)).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text());
    assert!(refused.text().contains("-251"));
    admin.call("POST", "/accounts?force=true", Some(alice)).await.json(StatusCode::CREATED);
    assert_eq!(admin.get("/accounts/alice/balance").await["balance"], "-251");
    // An account with a zero balance needs no force; its static routes go with it.
    assert_eq!(admin.call("DELETE", "/accounts/partner", None).await.status, StatusCode::NO_CONTENT);
    let routes = admin.get("/routes").await;
    assert!(routes["routes"].as_array().unwrap().iter().all(|r| r["account"] != "partner"), "{routes}");
}

#[tokio::test]
async fn balances_are_read_per_account_and_all_at_once() {
    let (node, _downstream, admin) = start().await;
    send(&client(), &node.url(), "alice-token", &prepare("test.n.bob.x", 1234, TEN_SECONDS)).await.fulfill();
    let alice = admin.get("/accounts/alice/balance").await;
    assert_eq!(alice, json!({"account": "alice", "balance": "-1234", "asset_code": "USD", "asset_scale": 2}));
    let all = admin.get("/balances").await;
    let pairs: Vec<(&str, &str)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["account"].as_str().unwrap(), b["balance"].as_str().unwrap()))
        .collect();
    assert_eq!(pairs, [("alice", "-1234"), ("bob", "1234"), ("partner", "0")]);
    assert_eq!(admin.call("GET", "/accounts/nobody/balance", None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn static_routes_are_listed_set_and_deleted_and_packets_follow() {
    let (node, downstream, admin) = start().await;
    let routes = admin.get("/routes").await;
    let table: Vec<(String, String, String)> = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["prefix"].as_str().unwrap().into(),
                r["account"].as_str().unwrap().into(),
                r["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("test.elsewhere", "partner", "static"),
        ("test.n.alice", "alice", "account"),
        ("test.n.bob", "bob", "account"),
        ("test.partner", "partner", "account"),
    ];
    assert_eq!(table, expected.map(|(p, a, k)| (p.to_string(), a.to_string(), k.to_string())));
    assert_eq!(routes["default"], Value::Null);

    let to_far = || prepare("test.far.away", 10, TEN_SECONDS);
    assert_code(
        &send(&client(), &node.url(), "alice-token", &to_far()).await.reject(),
        ErrorCode::F02_UNREACHABLE,
    );
    let set =
        admin.call("PUT", "/routes/test.far", Some(r#"{"account":"partner"}"#)).await.json(StatusCode::OK);
    assert_eq!(set, json!({"prefix": "test.far", "account": "partner", "kind": "static"}));
    send(&client(), &node.url(), "alice-token", &to_far()).await.fulfill();
    assert_eq!(downstream.received().last().unwrap().destination, "test.far.away");
    // Re-pointed, then deleted.
    admin.call("PUT", "/routes/test.far", Some(r#"{"account":"bob"}"#)).await.json(StatusCode::OK);
    let routes = admin.get("/routes").await;
    let far = routes["routes"].as_array().unwrap().iter().find(|r| r["prefix"] == "test.far").cloned();
    assert_eq!(far.unwrap()["account"], "bob");
    assert_eq!(admin.call("DELETE", "/routes/test.far", None).await.status, StatusCode::NO_CONTENT);
    assert_code(
        &send(&client(), &node.url(), "alice-token", &to_far()).await.reject(),
        ErrorCode::F02_UNREACHABLE,
    );

    // Refusals.
    let bad = |prefix: &'static str, body: &'static str| admin.call("PUT", prefix, Some(body));
    assert_eq!(bad("/routes/test..x", r#"{"account":"bob"}"#).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad("/routes/test.x", r#"{"account":"nobody"}"#).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad("/routes/test.x", r#"{"acct":"bob"}"#).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(fields(&bad("/routes/test.n.bob", r#"{"account":"alice"}"#).await), ["route.prefix"]);
    assert_eq!(admin.call("DELETE", "/routes/test.n.bob", None).await.status, StatusCode::CONFLICT);
    assert_eq!(admin.call("DELETE", "/routes/test.nothing", None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rates_are_read_and_replaced_and_conversion_follows() {
    let (node, downstream, admin) = start().await;
    let rates = admin.get("/rates").await;
    assert_eq!(rates, json!({"spread": "0", "prices": {"MXN": "0.05", "USD": "1"}}));
    let mxn = r#"{"id":"mx","relation":"child","asset_code":"MXN","asset_scale":2,"outgoing_url":"URL","outgoing_token":"t"}"#
        .replace("URL", &downstream.url());
    admin.call("POST", "/accounts", Some(&mxn)).await.json(StatusCode::CREATED);
    // 1 USD at 0.05 USD per MXN: 20 MXN.
    send(&client(), &node.url(), "alice-token", &prepare("test.n.mx.x", 100, TEN_SECONDS)).await.fulfill();
    assert_eq!(downstream.received().last().unwrap().amount, 2000);
    let new = r#"{"spread":"0.01","prices":{"USD":"1","MXN":"0.04"}}"#;
    let put = admin.call("PUT", "/rates", Some(new)).await.json(StatusCode::OK);
    assert_eq!(put, json!({"spread": "0.01", "prices": {"MXN": "0.04", "USD": "1"}}));
    // 1 USD less 1 % at 0.04: 24.75 MXN.
    send(&client(), &node.url(), "alice-token", &prepare("test.n.mx.x", 100, TEN_SECONDS)).await.fulfill();
    assert_eq!(downstream.received().last().unwrap().amount, 2475);

    let invalid = admin.call("PUT", "/rates", Some(r#"{"spread":"1","prices":{"USD":"0","MXN":"x"}}"#)).await;
    assert_eq!(fields(&invalid), ["rates.spread", "rates.prices.MXN", "rates.prices.USD"]);
    let unpriced = admin.call("PUT", "/rates", Some(r#"{"prices":{"USD":"1"}}"#)).await;
    assert_eq!(fields(&unpriced), ["rates.prices.MXN"], "an account uses MXN");
    assert_eq!(
        admin.call("PUT", "/rates", Some(r#"{"prices":{},"x":1}"#)).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(admin.get("/rates").await, put, "refusals changed nothing");
}

#[tokio::test]
async fn settle_now_needs_a_known_account_with_an_engine() {
    let (_node, _downstream, admin) = start().await;
    assert_eq!(admin.call("POST", "/accounts/nobody/settle", None).await.status, StatusCode::NOT_FOUND);
    let answer = admin.call("POST", "/accounts/alice/settle", None).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert!(answer.text().contains("settlement_engine_url"));
    // The engine case (202, settled by a real engine) is in tests/settlement.rs.
}

#[tokio::test]
async fn metrics_are_scraped_in_the_prometheus_text_format() {
    let (node, _downstream, admin) = start().await;
    for _ in 0..2 {
        send(&client(), &node.url(), "alice-token", &prepare("test.n.bob.x", 100, TEN_SECONDS))
            .await
            .fulfill();
    }
    let unreachable =
        send(&client(), &node.url(), "alice-token", &prepare("test.nowhere", 1, TEN_SECONDS)).await;
    assert_code(&unreachable.reject(), ErrorCode::F02_UNREACHABLE);
    let scrape = admin.call("GET", "/metrics", None).await;
    assert_eq!(scrape.status, StatusCode::OK);
    assert_eq!(scrape.content_type, "text/plain; version=0.0.4; charset=utf-8");
    let text = scrape.text();
    for line in [
        r#"thitsax_packets_total{account="alice",code="none",outcome="fulfilled"} 2"#,
        r#"thitsax_packets_total{account="alice",code="F02",outcome="rejected"} 1"#,
        r#"thitsax_forward_duration_seconds_count{outcome="fulfilled"} 2"#,
        "thitsax_packets_in_flight 0",
        r#"thitsax_balance{account="alice"} -200"#,
        r#"thitsax_balance{account="bob"} 200"#,
        r#"thitsax_balance{account="partner"} 0"#,
        "thitsax_store_up 1",
        r#"thitsax_settlements_total{state="settled"} 0"#,
        "thitsax_settlements_pending 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("# TYPE thitsax_forward_duration_seconds histogram"));
    assert_eq!(admin.call("POST", "/metrics", Some("{}")).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn bad_requests_get_a_clear_4xx() {
    let (_node, _downstream, admin) = start().await;
    assert_eq!(admin.call("GET", "/nothing/here", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        admin.call("PATCH", "/accounts/alice", Some("{}")).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(admin.call("DELETE", "/rates", None).await.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(admin.call("GET", "/accounts/%zz", None).await.status, StatusCode::NOT_FOUND);
    // Not JSON: 415; too large: 413; not an object: 400.
    let req = hyper::Request::post(format!("http://{}/rates", admin.addr))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "text/plain")
        .method("PUT")
        .body(http_body_util::Full::new(bytes::Bytes::from("{}")))
        .unwrap();
    assert_eq!(admin.client.request(req).await.unwrap().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!(r#"{{"prices":{{"USD":"{}"}}}}"#, "1".repeat(70_000));
    assert_eq!(admin.call("PUT", "/rates", Some(&huge)).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(admin.call("POST", "/accounts", Some("[1,2]")).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(admin.call("POST", "/accounts", Some("")).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn concurrent_changes_are_validated_one_at_a_time() {
    let (_node, _downstream, admin) = start().await;
    // Twelve operators each add a parent at once (under the 16 connections the admin listener
    // serves at once): the file's rule (one parent) holds.
    let admin = std::sync::Arc::new(admin);
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let admin = admin.clone();
            tokio::spawn(async move {
                let body =
                    format!(r#"{{"id":"p{i}","relation":"parent","asset_code":"USD","asset_scale":2}}"#);
                admin.call("POST", "/accounts", Some(&body)).await.status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    let busy_or_refused = statuses
        .iter()
        .all(|s| [StatusCode::CREATED, StatusCode::BAD_REQUEST, StatusCode::SERVICE_UNAVAILABLE].contains(s));
    assert!(busy_or_refused, "{statuses:?}");
    let parents =
        admin.get("/accounts").await.as_array().unwrap().iter().filter(|a| a["relation"] == "parent").count();
    assert_eq!(parents, 1);
    assert!(admin.get("/routes").await["default"].is_string());
}
