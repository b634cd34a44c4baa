//! Accounts and static routes shared through Redis, with real ThitsaX nodes on `redis-server`
//! processes the tests start: which side wins at start-up, a change made through one instance
//! seen by another within the poll bound (with pub/sub, without it, on a cluster), and bad
//! entries in Redis skipped while the node keeps serving.

mod common;

use common::redis::{redis_or_skip, RedisCluster, RedisServer, Resp};
use common::*;
use std::time::{Duration, Instant};
use thitsax::account::Account;
use thitsax::config::{Config, StoreConfig};
use thitsax::packet::{ErrorCode, IlpAddress, Response};
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
    store.seed_config(&file.accounts, &[], &file.rates.to_record(), Default::default()).await.unwrap();
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
