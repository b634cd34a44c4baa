//! The admin API with Redis: two real ThitsaX instances on one `redis-server` the test starts; a
//! change made through one instance's admin API is served by that instance when it answers, and
//! by the other within its poll bound, with packets to prove it.

mod common;

use common::redis::{redis_or_skip, RedisServer};
use common::*;
use hyper::StatusCode;
use std::time::{Duration, Instant};
use thitsax::config::{Config, StoreConfig};
use thitsax::store::RedisStore;

const TOKEN: &str = "operator-secret";
const TEN_SECONDS: Duration = Duration::from_secs(10);
const POLL_MS: u64 = 300;
/// Within the poll interval, plus the reload itself and scheduling on a shared 2-core machine.
const SEEN_WITHIN: Duration = Duration::from_millis(POLL_MS + 1_200);

/// An instance on `redis`: alice (USD child, sends), bob (USD child, receives at `downstream`).
fn toml(redis: &RedisServer, downstream: &str) -> String {
    format!(
        r#"
[node]
ilp_address = "test.n"
log_level = "warn"
[admin]
token = "{TOKEN}"
[store]
kind = "redis"
url = "{url}"
prefix = "admin"
config_poll_interval_ms = {POLL_MS}
config_pubsub = false
[rates.prices]
USD = "1"
MXN = "0.05"
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 2
incoming_token = "alice-token"
min_balance = -1000000
[[accounts]]
id = "bob"
relation = "child"
asset_code = "USD"
asset_scale = 2
outgoing_url = "{downstream}"
outgoing_token = "to-bob"
"#,
        url = redis.url()
    )
}

async fn instance(toml: &str) -> TestNode<RedisStore> {
    let StoreConfig::Redis(redis) = Config::from_toml(toml).unwrap().store else { panic!("redis config") };
    TestNode::start_redis(toml, RedisStore::connect(&redis).await.unwrap()).await
}

async fn call(node: &TestNode<RedisStore>, method: &str, path: &str, body: Option<&str>) -> HttpAnswer {
    admin_call(&client(), node.admin_addr.expect("admin API"), method, path, Some(TOKEN), body).await
}

/// Polls until `check` holds, or panics after `within`; returns how long it took.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) -> Duration {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < SEEN_WITHIN, "not seen within {SEEN_WITHIN:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_through_one_instances_admin_api_reach_every_instance() {
    if !redis_or_skip("changes_through_one_instances_admin_api_reach_every_instance") {
        return;
    }
    let redis = RedisServer::start();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let config = toml(&redis, &downstream.url());
    let (one, two) = (instance(&config).await, instance(&config).await);

    // An account created through instance one: one serves it when it answers, two within the
    // poll bound.
    let mx = format!(
        r#"{{"id":"mx","relation":"child","asset_code":"MXN","asset_scale":2,"incoming_token":"mx-token",
            "outgoing_url":"{}","outgoing_token":"to-mx"}}"#,
        downstream.url()
    );
    call(&one, "POST", "/accounts", Some(&mx)).await.json(StatusCode::CREATED);
    let to_mx = || prepare("test.n.mx.x", 100, TEN_SECONDS);
    send(&client(), &one.url(), "alice-token", &to_mx()).await.fulfill();
    let took = eventually("two serves mx", || async {
        call(&two, "GET", "/accounts/mx", None).await.status == StatusCode::OK
    })
    .await;
    send(&client(), &two.url(), "mx-token", &prepare("test.n.bob.x", 100, TEN_SECONDS)).await.fulfill();
    eprintln!("account seen by the second instance after {took:?}");
    // 1 USD at 0.05 USD per MXN: 20 MXN.
    assert_eq!(downstream.received()[0].amount, 2000);

    // Rates set through instance two convert on instance one.
    let rates = r#"{"spread":"0","prices":{"USD":"1","MXN":"0.04"}}"#;
    call(&two, "PUT", "/rates", Some(rates)).await.json(StatusCode::OK);
    eventually("one converts at the new price", || async {
        call(&one, "GET", "/rates", None).await.text().contains("0.04")
    })
    .await;
    send(&client(), &one.url(), "alice-token", &to_mx()).await.fulfill();
    assert_eq!(downstream.received().last().unwrap().amount, 2500);
    // An instance whose file has no [rates] leaves the shared ones as they are (with a [rates]
    // section and the default precedence, the file's would replace them).
    let no_rates = config.replace("[rates.prices]\nUSD = \"1\"\nMXN = \"0.05\"\n", "");
    assert!(!no_rates.contains("[rates"), "{no_rates}");
    let three = instance(&no_rates).await;
    assert!(call(&three, "GET", "/rates", None).await.text().contains("0.04"));
    assert!(call(&one, "GET", "/rates", None).await.text().contains("0.04"));
    drop(three);

    // A static route set through one, used by two; deleted through two, gone from one.
    call(&one, "PUT", "/routes/test.far", Some(r#"{"account":"bob"}"#)).await.json(StatusCode::OK);
    eventually("two routes test.far", || async {
        call(&two, "GET", "/routes", None).await.text().contains("test.far")
    })
    .await;
    send(&client(), &two.url(), "alice-token", &prepare("test.far.x", 1, TEN_SECONDS)).await.fulfill();
    assert_eq!(call(&two, "DELETE", "/routes/test.far", None).await.status, StatusCode::NO_CONTENT);
    eventually("one no longer routes test.far", || async {
        !call(&one, "GET", "/routes", None).await.text().contains("test.far")
    })
    .await;

    // Deleted through two (mx has a balance: force), gone from one; balances stay in Redis.
    assert_eq!(call(&two, "DELETE", "/accounts/mx", None).await.status, StatusCode::CONFLICT);
    assert_eq!(call(&two, "DELETE", "/accounts/mx?force=true", None).await.status, StatusCode::NO_CONTENT);
    eventually("one no longer serves mx", || async {
        call(&one, "GET", "/accounts/mx", None).await.status == StatusCode::NOT_FOUND
    })
    .await;
    let balance = call(&one, "GET", "/balances", None).await.json(StatusCode::OK);
    let alice = balance.as_array().unwrap().iter().find(|b| b["account"] == "alice").unwrap().clone();
    assert_eq!(alice["balance"], "-201");

    // Invalid input through either instance changes nothing anywhere.
    let bad = r#"{"id":"x","relation":"child","asset_code":"USD","asset_scale":40}"#;
    assert_eq!(call(&one, "POST", "/accounts", Some(bad)).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(redis.cmd(&["HEXISTS", "admin:{config}:accounts", "x"]), common::redis::Resp::Integer(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_is_503_and_says_whether_a_change_may_still_land() {
    if !redis_or_skip("a_store_outage_is_503_and_says_whether_a_change_may_still_land") {
        return;
    }
    let redis = RedisServer::start();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let node = instance(&toml(&redis, &downstream.url())).await;
    // Redis stops answering (every command waits 10 s; the node gives up after 1 s).
    redis.cmd(&["CLIENT", "PAUSE", "10000", "ALL"]);
    let ready = admin_call(&client(), node.admin_addr.unwrap(), "GET", "/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.text());
    // A create first reads the store (a balance left under the id?): that read fails, so nothing
    // was sent and the answer says so.
    let carol = r#"{"id":"carol","relation":"child","asset_code":"USD","asset_scale":2}"#;
    let answer = call(&node, "POST", "/accounts", Some(carol)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.text());
    assert!(answer.text().contains("store unavailable; retry"), "{}", answer.text());
    // A write whose script was sent: Redis may run it once it answers again, and the node says so.
    let rates = r#"{"spread":"0","prices":{"USD":"1","MXN":"0.04"}}"#;
    let answer = call(&node, "PUT", "/rates", Some(rates)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.text());
    assert!(answer.text().contains("may still be applied"), "{}", answer.text());
    assert_eq!(call(&node, "GET", "/balances", None).await.status, StatusCode::SERVICE_UNAVAILABLE);
    // The scrape still answers, and says the store is down instead of showing balances of 0.
    let scrape = call(&node, "GET", "/metrics", None).await;
    assert_eq!(scrape.status, StatusCode::OK);
    assert!(scrape.text().lines().any(|l| l == "thitsax_store_up 0"), "{}", scrape.text());
    assert!(!scrape.text().contains("thitsax_balance{"), "{}", scrape.text());
    // Back: /ready says so by itself; the rates write may have landed meanwhile, and sending it
    // again is harmless; the create is retried and carol served.
    let start = Instant::now();
    while admin_call(&client(), node.admin_addr.unwrap(), "GET", "/ready", None, None).await.status
        != StatusCode::OK
    {
        assert!(start.elapsed() < Duration::from_secs(15), "Redis did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    call(&node, "PUT", "/rates", Some(rates)).await.json(StatusCode::OK);
    call(&node, "POST", "/accounts", Some(carol)).await.json(StatusCode::CREATED);
    eventually("carol served", || async {
        call(&node, "GET", "/accounts/carol", None).await.status == StatusCode::OK
    })
    .await;
}
