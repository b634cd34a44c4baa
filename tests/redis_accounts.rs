//! Accounts, static routes and rates shared through Redis, with real ThitsaX nodes on
//! `redis-server` processes the tests start: which side wins at start-up, a change made through
//! one instance seen by another within the poll bound (with pub/sub, without it, on a cluster),
//! and bad entries in Redis skipped while the node keeps serving.

mod common;

use common::redis::{redis_or_skip, RedisCluster, RedisServer, Resp};
use common::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thitsax::account::Account;
use thitsax::config::{Config, StoreConfig};
use thitsax::packet::{ErrorCode, IlpAddress, Response};
use thitsax::rates::RatesRecord;
use thitsax::reload::{self, Precedence, Seed};
use thitsax::store::shared_config::RATES_BYTES_MAX;
use thitsax::store::{Change, RedisStore};

const TEN_SECONDS: Duration = Duration::from_secs(10);
/// The poll interval the nodes here run with: every change must be seen within it (plus the
/// reload itself and scheduling on a shared 2-core machine).
const POLL_MS: u64 = 300;
const SEEN_WITHIN: Duration = Duration::from_millis(POLL_MS + 1_200);

/// A node on Redis: alice (child, sends), carol (child, receives at `downstream`). `store` is the
/// url or cluster_urls line plus any extra `[store]` keys; `min_balance` is alice's.
fn toml(store: &str, downstream: &str, min_balance: i64) -> String {
    format!(
        r#"
[node]
ilp_address = "test.n"
log_level = "error"
[store]
kind = "redis"
{store}
prefix = "shared"
config_poll_interval_ms = {POLL_MS}
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "alice-token"
min_balance = {min_balance}
[[accounts]]
id = "carol"
relation = "child"
asset_code = "USD"
asset_scale = 6
outgoing_url = "{downstream}"
outgoing_token = "to-carol"
"#
    )
}

fn url_line(redis: &RedisServer) -> String {
    format!("url = \"{}\"", redis.url())
}

async fn store_for(toml: &str) -> RedisStore {
    let StoreConfig::Redis(redis) = Config::from_toml(toml).unwrap().store else { panic!("redis config") };
    RedisStore::connect(&redis).await.unwrap()
}

async fn node(toml: &str) -> TestNode<RedisStore> {
    TestNode::start_redis(toml, store_for(toml).await).await
}

/// The account `id` of `toml`'s file, as the admin API would build it.
fn account(toml: &str, id: &str) -> Account {
    Config::from_toml(toml).unwrap().accounts.into_iter().find(|a| &*a.id == id).unwrap()
}

fn min_balance(node: &TestNode<RedisStore>, id: &str) -> Option<i128> {
    node.node.accounts.load().get(id).map(|a| a.min_balance).unwrap_or_else(|| panic!("no account {id}"))
}

/// Polls `check` until it holds; returns how long that took, or panics after `within`.
async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "not seen within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// Sends 1 USD (1,000,000 units) from alice to `destination`; the answer's packet.
async fn pay(node: &TestNode<RedisStore>, destination: &str) -> Response {
    send(&client(), &node.url(), "alice-token", &prepare(destination, 1_000_000, TEN_SECONDS)).await.packet()
}

fn code(response: Response) -> Option<ErrorCode> {
    match response {
        Response::Fulfill(_) => None,
        Response::Reject(r) => Some(r.code()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_wins_at_start_up_by_default() {
    if !redis_or_skip("the_file_wins_at_start_up_by_default") {
        return;
    }
    let redis = RedisServer::start();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    // Redis already holds another alice (no credit) and a dave the file does not know.
    let before = toml(&url_line(&redis), &downstream.url(), 0);
    let store = store_for(&before).await;
    let file = Config::from_toml(&before).unwrap();
    store.seed_config(&file.accounts, &[], Some(&file.rates.to_record()), Default::default()).await.unwrap();
    let dave = Account { id: "dave".into(), incoming_token_hash: None, ..account(&before, "alice") };
    store.put_account(&dave).await.unwrap();

    let node = node(&toml(&url_line(&redis), &downstream.url(), -5_000_000)).await;
    assert_eq!(min_balance(&node, "alice"), Some(-5_000_000), "the file's alice is served");
    assert!(node.node.accounts.load().get("dave").is_some(), "entries only Redis holds are kept");
    let stored = redis.cmd(&["HGET", "shared:{config}:accounts", "alice"]).text().unwrap();
    assert!(stored.contains("-5000000"), "the file's alice replaced Redis's: {stored}");
    assert!(!stored.contains("alice-token"), "only the token's hash is stored: {stored}");
    assert_eq!(code(pay(&node, "test.n.carol").await), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_wins_at_start_up_with_config_precedence_redis() {
    if !redis_or_skip("redis_wins_at_start_up_with_config_precedence_redis") {
        return;
    }
    let redis = RedisServer::start();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let store_lines = format!("{}\nconfig_precedence = \"redis\"", url_line(&redis));
    // Redis holds alice without credit, and no carol.
    let before = toml(&store_lines, &downstream.url(), 0);
    store_for(&before).await.put_account(&account(&before, "alice")).await.unwrap();

    let node = node(&toml(&store_lines, &downstream.url(), -5_000_000)).await;
    assert_eq!(min_balance(&node, "alice"), Some(0), "Redis's alice is served, not the file's");
    assert!(node.node.accounts.load().get("carol").is_some(), "the file's carol was added");
    assert_code(
        &match pay(&node, "test.n.carol").await {
            Response::Reject(r) => r,
            Response::Fulfill(_) => panic!("Redis's alice has no credit"),
        },
        ErrorCode::T04_INSUFFICIENT_LIQUIDITY,
    );
    let stored = redis.cmd(&["HGET", "shared:{config}:accounts", "alice"]).text().unwrap();
    assert!(!stored.contains("-5000000"), "Redis's alice stayed: {stored}");
}

/// Two instances on one store: a route added and a credit limit changed through instance A's API
/// change what instance B does, within the poll bound.
async fn a_change_through_one_instance_reaches_the_other(store_lines: &str) {
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let toml = toml(store_lines, &downstream.url(), -1_000_000_000);
    let (a, b) = (node(&toml).await, node(&toml).await);
    assert_eq!(code(pay(&b, "g.elsewhere.bob").await), Some(ErrorCode::F02_UNREACHABLE));

    let route = a.node.store.put_route(&IlpAddress::parse("g.elsewhere").unwrap(), "carol").await.unwrap();
    assert!(matches!(route, Change::Applied { .. }));
    let took = eventually(SEEN_WITHIN, "the new route on B", || {
        b.node.router.table().lookup("g.elsewhere.bob").is_some()
    })
    .await;
    eprintln!("route seen by the other instance after {took:?}");
    assert_eq!(code(pay(&b, "g.elsewhere.bob").await), None, "B routes to the new prefix");

    let no_credit = Account { min_balance: Some(0), ..account(&toml, "alice") };
    a.node.store.put_account(&no_credit).await.unwrap();
    eventually(SEEN_WITHIN, "alice's new limit on B", || min_balance(&b, "alice") == Some(0)).await;
    assert_eq!(code(pay(&b, "test.n.carol").await), Some(ErrorCode::T04_INSUFFICIENT_LIQUIDITY));

    a.node.store.delete_route("g.elsewhere").await.unwrap();
    eventually(SEEN_WITHIN, "the route deleted on B", || {
        b.node.router.table().lookup("g.elsewhere.bob").is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_instance_reaches_the_other_on_one_redis() {
    if !redis_or_skip("a_change_through_one_instance_reaches_the_other_on_one_redis") {
        return;
    }
    let redis = RedisServer::start();
    a_change_through_one_instance_reaches_the_other(&url_line(&redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_instance_reaches_the_other_on_a_redis_cluster() {
    if !redis_or_skip("a_change_through_one_instance_reaches_the_other_on_a_redis_cluster") {
        return;
    }
    let cluster = RedisCluster::start(3);
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    a_change_through_one_instance_reaches_the_other(&format!("cluster_urls = [{}]", urls.join(", "))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_alone_sees_a_change_without_pubsub() {
    if !redis_or_skip("the_poll_alone_sees_a_change_without_pubsub") {
        return;
    }
    let redis = RedisServer::start();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let toml = toml(&format!("{}\nconfig_pubsub = false", url_line(&redis)), &downstream.url(), -1);
    let node = node(&toml).await;
    // No subscriber at all: the change's message reaches nobody.
    let subscribers = redis.cmd(&["PUBSUB", "NUMSUB", "shared:config"]);
    assert_eq!(
        subscribers,
        Resp::Array(Some(vec![Resp::Bulk(Some(b"shared:config".to_vec())), Resp::Integer(0)]))
    );
    let other = store_for(&toml).await;
    other.put_account(&Account { min_balance: Some(-7), ..account(&toml, "alice") }).await.unwrap();
    let took =
        eventually(SEEN_WITHIN, "the change by the poll", || min_balance(&node, "alice") == Some(-7)).await;
    eprintln!("change seen by the poll alone after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_while_the_subscriber_is_disconnected_is_still_seen() {
    if !redis_or_skip("a_change_made_while_the_subscriber_is_disconnected_is_still_seen") {
        return;
    }
    let redis = RedisServer::start();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    // A poll far slower than the test: only the subscription (and its catch-up check after
    // reconnecting) can make the change visible in time.
    let slow_poll = toml(&url_line(&redis), &downstream.url(), -1)
        .replace(&format!("config_poll_interval_ms = {POLL_MS}"), "config_poll_interval_ms = 60000");
    let node = node(&slow_poll).await;
    let subscribed = || redis.cmd(&["PUBSUB", "NUMSUB", "shared:config"]);
    eventually(
        Duration::from_secs(5),
        "the subscription",
        || matches!(subscribed(), Resp::Array(Some(v)) if v.get(1) == Some(&Resp::Integer(1))),
    )
    .await;
    // Cut the subscriber off, then change alice while it is away.
    redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    let other = store_for(&slow_poll).await;
    other.put_account(&Account { min_balance: Some(-9), ..account(&slow_poll, "alice") }).await.unwrap();
    eventually(Duration::from_secs(5), "the change after resubscribing", || {
        min_balance(&node, "alice") == Some(-9)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_entries_in_redis_are_skipped_and_the_node_keeps_serving() {
    if !redis_or_skip("invalid_entries_in_redis_are_skipped_and_the_node_keeps_serving") {
        return;
    }
    let redis = RedisServer::start();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let toml = toml(&url_line(&redis), &downstream.url(), -1_000_000_000);
    let node = node(&toml).await;
    // Garbage over the good alice, a new account that is not JSON, a route to no account; then
    // the version bump every writer makes.
    redis.cmd(&["HSET", "shared:{config}:accounts", "alice", "{\"id\": \"alice\", oops"]);
    redis.cmd(&["HSET", "shared:{config}:accounts", "bob", "not json"]);
    redis.cmd(&["HSET", "shared:{config}:routes", "g.ghost", "nobody"]);
    redis.cmd(&["HSET", "shared:{config}:routes", "g.fine", "carol"]);
    redis.cmd(&["INCR", "shared:{config}:version"]);
    eventually(SEEN_WITHIN, "the reload", || node.node.router.table().lookup("g.fine.x").is_some()).await;
    let accounts = node.node.accounts.load();
    assert!(accounts.get("bob").is_none());
    assert_eq!(accounts.get("alice").unwrap().min_balance, Some(-1_000_000_000), "the good alice is kept");
    assert!(node.node.router.table().lookup("g.ghost.x").is_none());
    assert_eq!(code(pay(&node, "test.n.carol").await), None, "alice still pays");
    assert_eq!(code(pay(&node, "g.fine.x").await), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_redis_is_seeded_again_from_the_file() {
    if !redis_or_skip("a_flushed_redis_is_seeded_again_from_the_file") {
        return;
    }
    let redis = RedisServer::start();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let toml = toml(&url_line(&redis), &downstream.url(), -1_000_000_000);
    let node = node(&toml).await;
    // Our own server: its data is lost (as after a restart without persistence).
    redis.flushall();
    let present = || matches!(redis.cmd(&["HEXISTS", "shared:{config}:accounts", "alice"]), Resp::Integer(1));
    eventually(SEEN_WITHIN, "the file written again", present).await;
    assert!(node.node.accounts.load().get("alice").is_some(), "never served an empty set");
    assert_eq!(code(pay(&node, "test.n.carol").await), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_account_is_no_longer_served_and_its_balance_stays() {
    if !redis_or_skip("a_deleted_account_is_no_longer_served_and_its_balance_stays") {
        return;
    }
    let redis = RedisServer::start();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let toml = toml(&url_line(&redis), &downstream.url(), -1_000_000_000);
    let (a, b) = (node(&toml).await, node(&toml).await);
    assert_eq!(code(pay(&b, "test.n.carol").await), None);
    assert!(matches!(a.node.store.delete_account("alice").await.unwrap(), Change::Applied { .. }));
    assert_eq!(a.node.store.delete_account("alice").await.unwrap(), Change::Unchanged);
    eventually(SEEN_WITHIN, "alice gone on B", || b.node.accounts.load().get("alice").is_none()).await;
    let answer = send(&client(), &b.url(), "alice-token", &prepare("test.n.carol", 1, TEN_SECONDS)).await;
    assert_eq!(answer.status, hyper::StatusCode::UNAUTHORIZED);
    assert_eq!(b.balance("alice").await, -1_000_000, "the money stays where it was");
}

/// `toml` plus maria, a child on MXN (scale 6 like alice) receiving at `downstream`, and the
/// prices: USD 1, MXN `mxn`, so 1 USD buys 1/`mxn` MXN.
fn with_pesos(toml: String, downstream: &str, mxn: &str) -> String {
    format!(
        r#"{toml}
[rates.prices]
USD = "1"
MXN = "{mxn}"
[[accounts]]
id = "maria"
relation = "child"
asset_code = "MXN"
asset_scale = 6
outgoing_url = "{downstream}"
outgoing_token = "to-maria"
"#
    )
}

/// Rates as the admin API would write them.
fn pesos_at(mxn: &str) -> RatesRecord {
    RatesRecord { spread: None, prices: [("USD".into(), "1".into()), ("MXN".into(), mxn.into())].into() }
}

fn mxn_price(node: &TestNode<RedisStore>) -> String {
    node.node.rates.load().to_record().prices.get("MXN").cloned().unwrap_or_default()
}

/// Pays maria 1 USD through `node`; the amount her endpoint received.
async fn pesos_for_a_dollar(node: &TestNode<RedisStore>, downstream: &Downstream) -> u64 {
    assert_eq!(code(pay(node, "test.n.maria").await), None);
    let last = downstream.received().pop().expect("maria received the packet");
    assert_eq!(last.destination, "test.n.maria");
    last.amount
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_follow_the_config_precedence_at_start_up() {
    if !redis_or_skip("rates_follow_the_config_precedence_at_start_up") {
        return;
    }
    let redis = RedisServer::start();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let file_wins =
        with_pesos(toml(&url_line(&redis), &downstream.url(), -1_000_000_000), &downstream.url(), "0.05");
    let stored = || redis.cmd(&["GET", "shared:{config}:rates"]).text().unwrap_or_default();

    // Redis holds other prices; the file's replace them.
    store_for(&file_wins).await.put_rates(&pesos_at("0.04")).await.unwrap();
    let first = node(&file_wins).await;
    assert_eq!(mxn_price(&first), "0.05", "the file's rates are served");
    assert!(stored().contains("\"0.05\""), "and written to Redis: {}", stored());
    assert_eq!(pesos_for_a_dollar(&first, &downstream).await, 20_000_000);
    first.stop().await;

    // Redis wins: its prices stay, and are the ones served.
    let redis_wins =
        file_wins.replace("prefix = \"shared\"", "prefix = \"shared\"\nconfig_precedence = \"redis\"");
    store_for(&redis_wins).await.put_rates(&pesos_at("0.04")).await.unwrap();
    let node = node(&redis_wins).await;
    assert_eq!(mxn_price(&node), "0.04", "Redis's rates are served, not the file's");
    assert!(stored().contains("\"0.04\""), "Redis's rates stayed: {}", stored());
    assert_eq!(pesos_for_a_dollar(&node, &downstream).await, 25_000_000);
}

/// Two instances on one store: new prices written through instance A's store convert B's packets
/// within the poll bound, and A serves them as soon as `reload_now` returns.
async fn new_rates_through_one_instance_convert_on_the_other(store_lines: &str) {
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let toml = with_pesos(toml(store_lines, &downstream.url(), -1_000_000_000), &downstream.url(), "0.05");
    let (a, b) = (node(&toml).await, node(&toml).await);
    assert_eq!(pesos_for_a_dollar(&b, &downstream).await, 20_000_000);

    let Change::Applied { version } = a.node.store.put_rates(&pesos_at("0.04")).await.unwrap() else {
        panic!("new prices are a change")
    };
    assert_eq!(a.node.store.put_rates(&pesos_at("0.04")).await.unwrap(), Change::Unchanged);
    let config = Config::from_toml(&toml).unwrap();
    let seed = Seed {
        accounts: config.accounts.clone(),
        routes: config.static_routes.clone(),
        rates: Some(config.rates.to_record()),
        precedence: Precedence::File,
    };
    let served = reload::Reloader::new(a.node.clone(), seed).reload_now().await.unwrap();
    assert!(served >= Some(version), "{served:?} < {version}");
    assert_eq!(mxn_price(&a), "0.04", "A serves its own change once reload_now returns");

    let took = eventually(SEEN_WITHIN, "the new price on B", || mxn_price(&b) == "0.04").await;
    eprintln!("new rates seen by the other instance after {took:?}");
    assert_eq!(pesos_for_a_dollar(&b, &downstream).await, 25_000_000, "B converts at the new price");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_rates_through_one_instance_convert_on_the_other_on_one_redis() {
    if !redis_or_skip("new_rates_through_one_instance_convert_on_the_other_on_one_redis") {
        return;
    }
    let redis = RedisServer::start();
    new_rates_through_one_instance_convert_on_the_other(&url_line(&redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_rates_through_one_instance_convert_on_the_other_on_a_redis_cluster() {
    if !redis_or_skip("new_rates_through_one_instance_convert_on_the_other_on_a_redis_cluster") {
        return;
    }
    let cluster = RedisCluster::start(3);
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    new_rates_through_one_instance_convert_on_the_other(&format!("cluster_urls = [{}]", urls.join(", ")))
        .await;
}

/// What the node logged, shared with the subscriber that writes it.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// One thread: the log subscriber below is this thread's, and every task of the test (the node's
// reloader included) runs on it.
#[tokio::test(flavor = "current_thread")]
async fn invalid_rates_in_redis_are_skipped_logged_and_the_old_ones_kept() {
    if !redis_or_skip("invalid_rates_in_redis_are_skipped_logged_and_the_old_ones_kept") {
        return;
    }
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let redis = RedisServer::start();
    let downstream = Downstream::always(Behaviour::Fulfill).await;
    let toml =
        with_pesos(toml(&url_line(&redis), &downstream.url(), -1_000_000_000), &downstream.url(), "0.05");
    let node = node(&toml).await;
    // Valid rates, but more bytes than a node reads back: only their size makes them skipped.
    let mut huge = pesos_at("0.01");
    huge.prices.extend((0..RATES_BYTES_MAX / 10).map(|i| (format!("X{i}"), "1".to_string())));
    let huge = serde_json::to_string(&huge).unwrap();
    let bad = [("{\"prices\": oops", "invalid record"), (huge.as_str(), "over the size limit")];
    for (i, (value, why)) in bad.into_iter().enumerate() {
        // A route written with it tells when the reload that skipped it is done.
        let route = format!("g.fine{i}");
        redis.cmd(&["SET", "shared:{config}:rates", value]);
        redis.cmd(&["HSET", "shared:{config}:routes", &route, "carol"]);
        redis.cmd(&["INCR", "shared:{config}:version"]);
        eventually(SEEN_WITHIN, "the reload", || node.node.router.table().lookup(&route).is_some()).await;
        assert_eq!(mxn_price(&node), "0.05", "{why}: the old rates are kept");
        assert_eq!(pesos_for_a_dollar(&node, &downstream).await, 20_000_000, "{why}");
        let text = logs.text();
        let skipped: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("entry in Redis skipped") && l.contains("redis rates"))
            .collect();
        assert_eq!(skipped.len(), i + 1, "one warning per bad value:\n{text}");
        assert!(
            skipped[i].contains("WARN") && skipped[i].contains(why) && skipped[i].contains("kept"),
            "{skipped:?}"
        );
    }
    assert!(!logs.text().contains("oops"), "the value itself is not logged");
}
