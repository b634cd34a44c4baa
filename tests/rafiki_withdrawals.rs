//! Money a Rafiki peer's side pays the node back through the account's rail, recorded at the
//! Rafiki as liquidity withdrawals: once per credit, whatever answers are lost, against the
//! Rafiki test double of `tests/common/rafiki.rs` and `tests/common/rafiki_admin.rs` (a test
//! double: Rafiki cannot run in CI; its ledger reserves, posts and expires withdrawals as Rafiki
//! does, and refuses a reused transfer id with `DUPLICATE`).
//!
//! - Through an RFC 0038 engine: a real engine process (`examples/settlement_engine.rs`) is the
//!   node's; the Rafiki operator's side pays through it (`POST /ledger/transfers`, as its peer
//!   engine would), and the engine calls the node back, retrying with the same key until it
//!   gets a 2xx.
//! - Through Mojaloop: the node's backend is posted the transfer to its settlement party as its
//!   Connector posts it (the Connector itself adds nothing to what is tested here); the node
//!   answers at once, and the withdrawal owed is kept in the store and recorded by a worker,
//!   also by the next instance after a restart (Redis).

mod common;

use common::rafiki::{Options, RafikiDouble, RAFIKI_ADDRESS};
use common::rafiki_admin::{eventually, AdminOptions, Outage, WithdrawalState, NODE_PEER_ID};
use common::{admin_call, client, reserve_port, TempDir, TestNode};
use hyper::StatusCode;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};
use thitsax::store::{PacketId, Store};

const ADMIN: &str = "admin-token";
const WAIT: Duration = Duration::from_secs(30);

/// The node's settlement engine, a real RFC 0038 engine process; killed on drop.
struct Engine {
    child: Child,
    url: String,
    _dir: TempDir,
}

impl Engine {
    fn start(name: &str, connector: &str) -> Engine {
        // tests run from target/<profile>/deps; cargo builds examples into target/<profile>/examples.
        let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
        let binary = deps.parent().unwrap().join("examples").join("settlement_engine");
        assert!(binary.exists(), "{} is missing: run the tests with `cargo test`", binary.display());
        let dir = TempDir::new(&format!("withdrawals-engine-{name}"));
        let log = std::fs::File::create(dir.join("engine.log")).unwrap();
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--connector", connector, "--scale", "9"])
            .args(["--retry-max-ms", "200", "--data-dir"])
            .arg(&dir.0)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("engine said {line:?}"));
        Engine { child, url: url.trim_end_matches('/').to_string(), _dir: dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.join("engine.log")).unwrap_or_default()
    }

    /// The Rafiki operator's side pays the node: a transfer to this engine, as its peer engine
    /// sends one; the engine then credits the node's account `account`.
    async fn receive(&self, account: &str, amount: u64, transfer_id: &str) {
        let body =
            json!({"account": account, "amount": amount.to_string(), "scale": 9, "transfer_id": transfer_id});
        let url: hyper::Uri = format!("{}/ledger/transfers", self.url).parse().unwrap();
        let req = hyper::Request::post(url)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body.to_string())))
            .unwrap();
        let status = client().request(req).await.unwrap().status();
        assert_eq!(status, StatusCode::CREATED, "the engine takes the transfer:\n{}", self.log());
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the double's ledger applied of one mutation (replays answered from its idempotency cache
/// are not counted), as (transfer or withdrawal id, amount).
fn applied(rafiki: &RafikiDouble, operation: &str) -> Vec<(String, Option<u64>)> {
    let ledger = rafiki.ledger.lock().unwrap();
    let mutations = ledger.mutations().into_iter().filter(|m| m.operation == operation);
    mutations
        .map(|m| {
            let id = m.input["id"].as_str().or(m.input["withdrawalId"].as_str()).unwrap().to_string();
            (id, m.input["amount"].as_str().map(|a| a.parse().unwrap()))
        })
        .collect()
}

async fn reconcile(node: &TestNode<impl Store>) -> serde_json::Value {
    let admin = node.admin_addr.unwrap();
    let path = "/accounts/rafiki/rafiki/liquidity";
    admin_call(&client(), admin, "GET", path, Some(ADMIN), None).await.json(StatusCode::OK)
}

fn withdrawals_counted(node: &TestNode<impl Store>, outcome: &str) -> u64 {
    node.node.metrics.rafiki().withdrawals.with_label_values(&[outcome]).get()
}

/// The engine's key for crediting transfer `id` (its `credit_key`): the node's withdrawal ids
/// derive from it.
fn engine_credit_key(transfer_id: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("credit:{transfer_id}").as_bytes());
    hex::encode(&digest.as_ref()[..16])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_paid_back_through_an_engine_is_credited_once_and_withdrawn_once_though_answers_are_lost() {
    let rafiki = RafikiDouble::start_with(
        ("USD", 9),
        Options { admin: Some(AdminOptions::default()), initial_liquidity: 0, ..Options::default() },
    )
    .await;
    rafiki.state.lock().unwrap().accepted_token = Some("to-rafiki".into());
    let callbacks = reserve_port();
    let engine = Engine::start("engine-path", &format!("http://127.0.0.1:{callbacks}"));
    // The engine must know where to call the node before the node starts: both ports are named.
    let node = TestNode::start_as_is(&format!(
        r#"
[node]
ilp_address = "test.n"
[http]
listen = "127.0.0.1:{listen}"
[admin]
token = "{ADMIN}"
[settlement]
listen = "127.0.0.1:{callbacks}"
scan_interval_ms = 200
retry_first_ms = 100
retry_max_ms = 1000
{admin}
[[accounts]]
id = "rafiki"
relation = "peer"
asset_code = "USD"
asset_scale = 9
ilp_address = "{RAFIKI_ADDRESS}"
outgoing_url = "http://127.0.0.1:{connector}/"
outgoing_token = "to-rafiki"
hold_time_ms_max = 4000
settle_threshold = -300
settle_to = -1000
settlement_engine_url = "{engine}"
rafiki_liquidity = {{ peer_id = "{NODE_PEER_ID}" }}
"#,
        admin = rafiki.admin_section(),
        connector = rafiki.connector_port,
        engine = engine.url,
        listen = reserve_port(),
    ))
    .await;

    // The first top-up is paid through the engine and deposited: Rafiki holds 1000.
    eventually("the first top-up", WAIT, || rafiki.node_liquidity() == 1000).await;
    eventually_settled(&node, -1000).await;

    // Rafiki's side pays 400 back through the rail. The first three admin API requests are
    // applied and their answers lost, more than one call of the node tries (2): the node answers
    // the engine 503, the engine calls again with the same key, the credit is not repeated, and
    // the withdrawal's ids, derived from the key, are the same, so Rafiki does it once.
    rafiki.admin().fail_next(3, Outage::DropAfterApplying);
    engine.receive("rafiki", 400, "rafiki-pays-back-1").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(applied(&rafiki, "postLiquidityWithdrawal").len() == 1 && rafiki.node_liquidity() == 600) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no withdrawal: liquidity {}, balance {}, admin requests {:#?}\nengine:\n{}",
            rafiki.node_liquidity(),
            node.balance("rafiki").await,
            rafiki.admin().requests(),
            engine.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eventually_settled(&node, -600).await;
    let created = applied(&rafiki, "createPeerLiquidityWithdrawal");
    assert_eq!(created.len(), 1, "reserved once: {created:?}");
    assert_eq!(created[0].1, Some(400));
    let (id, _) = &created[0];
    assert!(common::rafiki_admin::is_uuid_v4(id), "{id}");
    let key = engine_credit_key("rafiki-pays-back-1");
    assert_eq!(
        *id,
        thitsax::rafiki::withdrawals::withdrawal_ids("rafiki", &key, 0).id,
        "derived from the key"
    );
    let withdrawal = rafiki.ledger.lock().unwrap().withdrawal(id).unwrap();
    assert_eq!((withdrawal.amount, withdrawal.state), (400, WithdrawalState::Posted));
    assert_eq!(applied(&rafiki, "postLiquidityWithdrawal"), [(id.clone(), None)]);
    let requests = rafiki.admin().requests();
    assert!(
        requests.iter().all(|r| r.signature_valid && r.tenant_valid),
        "every request signed: {requests:?}"
    );
    assert_eq!(requests.iter().filter(|r| r.outage == Some(Outage::DropAfterApplying)).count(), 3);
    // The engine was answered an error first and called again: one failed attempt, one recorded.
    assert!(withdrawals_counted(&node, "failed") >= 1, "the first callback failed");
    assert_eq!(withdrawals_counted(&node, "recorded"), 1);
    let reconciled = reconcile(&node).await;
    assert_eq!(reconciled["rafiki_liquidity"], "600", "{reconciled}");
    assert_eq!(reconciled["difference"], "0", "{reconciled}");

    // A withdrawal whose reservation expired before it was posted (here made by hand under the
    // id the node derives, with a short timeout, as if an earlier attempt had reserved it and
    // then lost Rafiki for longer than its timeout): its id is taken, so the node records the
    // next generation's, once, and the expired one gave its money back.
    let key = engine_credit_key("rafiki-pays-back-2");
    let first = thitsax::rafiki::withdrawals::withdrawal_ids("rafiki", &key, 0);
    let input = json!({"peerId": NODE_PEER_ID, "amount": "100", "id": first.id, "idempotencyKey": "earlier", "timeoutSeconds": 1});
    rafiki.ledger.lock().unwrap().mutate("createPeerLiquidityWithdrawal", &input).unwrap();
    assert_eq!(rafiki.node_liquidity(), 500, "reserved");
    eventually("the reservation expires", WAIT, || {
        rafiki.ledger.lock().unwrap().withdrawal(&first.id).unwrap().state == WithdrawalState::Expired
    })
    .await;
    assert_eq!(rafiki.node_liquidity(), 600, "given back");
    engine.receive("rafiki", 100, "rafiki-pays-back-2").await;
    let second = thitsax::rafiki::withdrawals::withdrawal_ids("rafiki", &key, 1);
    eventually("the next generation posted", WAIT, || {
        rafiki
            .ledger
            .lock()
            .unwrap()
            .withdrawal(&second.id)
            .is_some_and(|w| w.state == WithdrawalState::Posted)
    })
    .await;
    eventually_settled(&node, -500).await;
    assert_eq!(rafiki.node_liquidity(), 500);
    assert_eq!(rafiki.ledger.lock().unwrap().withdrawal(&second.id).unwrap().amount, 100);
    let reconciled = reconcile(&node).await;
    assert_eq!(reconciled["difference"], "0", "{reconciled}");

    // A withdrawal reserved and posted by earlier attempts whose keys Rafiki no longer remembers
    // (made by hand here under the derived id, with other keys): the node's reservation is a
    // DUPLICATE, its post "already posted", and nothing is withdrawn a second time.
    let key = engine_credit_key("rafiki-pays-back-3");
    let done = thitsax::rafiki::withdrawals::withdrawal_ids("rafiki", &key, 0);
    let reserve = json!({"peerId": NODE_PEER_ID, "amount": "50", "id": done.id, "idempotencyKey": "forgotten-1", "timeoutSeconds": 60});
    let post = json!({"withdrawalId": done.id, "idempotencyKey": "forgotten-2"});
    {
        let mut ledger = rafiki.ledger.lock().unwrap();
        ledger.mutate("createPeerLiquidityWithdrawal", &reserve).unwrap();
        ledger.mutate("postLiquidityWithdrawal", &post).unwrap();
    }
    assert_eq!(rafiki.node_liquidity(), 450);
    engine.receive("rafiki", 50, "rafiki-pays-back-3").await;
    eventually("the repeat is recognized", WAIT, || withdrawals_counted(&node, "repeated") == 1).await;
    eventually_settled(&node, -450).await;
    assert_eq!(rafiki.node_liquidity(), 450, "withdrawn once");
    assert_eq!(applied(&rafiki, "createPeerLiquidityWithdrawal").len(), 4, "2 by the node, 2 by hand");
    let reconciled = reconcile(&node).await;
    assert_eq!(reconciled["difference"], "0", "{reconciled}");

    // The engine paid back 550 in all: exactly what the node's balance rose by, and Rafiki's
    // figure fell by.
    assert_eq!(node.balance("rafiki").await, -450);
    node.stop().await;
}

/// Waits until the balance is `want` and no top-up is pending.
async fn eventually_settled<S: Store>(node: &TestNode<S>, want: i128) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let account = node.node.accounts.load().get("rafiki").cloned().unwrap();
    loop {
        let now = node.node.store.balance("rafiki").await.unwrap();
        if now == want && node.node.store.pending_settlements(&account).await.unwrap().is_empty() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "balance {now}, want {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A node whose Rafiki peer settles through Mojaloop: its own settlement party for the peer is
/// `rafiki-at-node`. The Connector (`outbound_url`) is not there: nothing is paid out here. Each
/// call names its own backend port (a node on Redis binds it as configured).
fn mojaloop_node(rafiki_admin: &str, rafiki: &RafikiDouble, redis: Option<&str>) -> String {
    let store = match redis {
        Some(url) => format!("[store]\nkind = \"redis\"\nurl = \"{url}\"\nprefix = \"withdrawals\"\n"),
        None => String::new(),
    };
    format!(
        r#"
[node]
ilp_address = "test.n"
[admin]
token = "{ADMIN}"
{store}
{rafiki_admin}
[[accounts]]
id = "usd"
relation = "local"
asset_code = "USD"
asset_scale = 2
[[accounts]]
id = "rafiki"
relation = "peer"
asset_code = "USD"
asset_scale = 2
ilp_address = "{RAFIKI_ADDRESS}"
outgoing_url = "http://127.0.0.1:{connector}/"
outgoing_token = "to-rafiki"
hold_time_ms_max = 4000
min_balance = -1000000
rafiki_liquidity = {{ peer_id = "{NODE_PEER_ID}" }}
mojaloop_settlement = {{ peer_party = {{ id_type = "ACCOUNT_ID", id_value = "node-at-rafiki", fsp_id = "rafikifsp" }}, own_party = {{ id_type = "ACCOUNT_ID", id_value = "rafiki-at-node" }} }}
[mojaloop]
dfsp_id = "thitsax"
outbound_url = "http://127.0.0.1:{closed}"
backend_listen = "127.0.0.1:{backend}"
party = {{ id_type = "BUSINESS", id_value = "thitsax" }}
[[mojaloop.currencies]]
code = "USD"
decimals = 2
account = "usd"
"#,
        connector = rafiki.connector_port,
        closed = reserve_port(),
        backend = reserve_port(),
    )
}

/// The prefunding made before the test: Rafiki holds 1000 for the node and the node's balance
/// with it is -1000 (a debit the store applies as a forwarded packet's).
async fn prefund<S: Store>(node: &TestNode<S>, rafiki: &RafikiDouble) {
    rafiki.set_node_liquidity(1000);
    let account = node.node.accounts.load().get("rafiki").cloned().unwrap();
    let packet = PacketId::next();
    let expires = SystemTime::now() + Duration::from_secs(30);
    node.node.store.debit_prepare(&account, 1000, packet, expires).await.unwrap();
    node.node.store.commit_prepare(&account, 1000, packet).await.unwrap();
}

/// The transfer the peer's Mojaloop Connector posts to the node's backend when the peer DFSP pays
/// the node's settlement party.
async fn mojaloop_transfer<S: Store>(
    node: &TestNode<S>,
    transfer_id: &str,
    amount: &str,
) -> serde_json::Value {
    let in_a_minute = chrono::Utc::now() + chrono::Duration::seconds(60);
    let body = json!({
        "transferId": transfer_id,
        "quote": {
            "transferAmount": amount, "transferAmountCurrency": "USD",
            "expiration": in_a_minute.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        },
        "from": {"idType": "ACCOUNT_ID", "idValue": "node-at-rafiki", "fspId": "rafikifsp"},
        "to": {"idType": "ACCOUNT_ID", "idValue": "rafiki-at-node"},
    });
    let backend = node.mojaloop_addr.unwrap();
    admin_call(&client(), backend, "POST", "/transfers", None, Some(&body.to_string()))
        .await
        .json(StatusCode::OK)
}

async fn owed<S: Store>(node: &TestNode<S>) -> Vec<(String, u64)> {
    let account = node.node.accounts.load().get("rafiki").cloned().unwrap();
    let owed = node.node.store.withdrawals_owed(&account, 100).await.unwrap();
    owed.into_iter().map(|o| (o.key, o.amount)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_paid_back_through_mojaloop_is_answered_at_once_and_withdrawn_once_by_the_worker() {
    let rafiki = RafikiDouble::start_with(
        ("USD", 2),
        Options { admin: Some(AdminOptions::default()), initial_liquidity: 0, ..Options::default() },
    )
    .await;
    let node = TestNode::start(&mojaloop_node(&rafiki.admin_section(), &rafiki, None)).await;
    prefund(&node, &rafiki).await;
    assert_eq!(reconcile(&node).await["difference"], "0");

    // Rafiki's admin API fails the next requests (nothing done): the Connector is answered at
    // once all the same, the credit stands, and the withdrawal is owed in the store.
    rafiki.admin().fail_next(4, Outage::ServerError);
    let answer = mojaloop_transfer(&node, "7b0c1c9e-5a0e-4d7e-9a3f-2c1d0e9f8a71", "4").await;
    assert_eq!(answer["homeTransactionId"], "7b0c1c9e-5a0e-4d7e-9a3f-2c1d0e9f8a71");
    assert_eq!(node.balance("rafiki").await, -600, "credited at once");
    // Then the worker records it (its retry comes once the outages are used up), once.
    eventually("the withdrawal", WAIT, || rafiki.node_liquidity() == 600).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !owed(&node).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "still owed: {:?}", owed(&node).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let created = applied(&rafiki, "createPeerLiquidityWithdrawal");
    assert_eq!(created.len(), 1, "reserved once: {created:?}");
    let key = "mojaloop:7b0c1c9e-5a0e-4d7e-9a3f-2c1d0e9f8a71";
    let ids = thitsax::rafiki::withdrawals::withdrawal_ids("rafiki", key, 0);
    assert_eq!(created, [(ids.id.clone(), Some(400))]);
    assert_eq!(applied(&rafiki, "postLiquidityWithdrawal"), [(ids.id.clone(), None)]);
    assert!(withdrawals_counted(&node, "failed") >= 1, "the first attempt met the outage");

    // The Connector posts the same transfer again: answered the same, credited and withdrawn
    // once. A second transfer whose answers are lost after Rafiki applied them is recorded once.
    rafiki.admin().fail_next(3, Outage::DropAfterApplying);
    mojaloop_transfer(&node, "7b0c1c9e-5a0e-4d7e-9a3f-2c1d0e9f8a71", "4").await;
    mojaloop_transfer(&node, "0f6d2b8a-93c4-4e1f-b5a2-6d7e8f9a0b1c", "1.5").await;
    eventually("the second withdrawal", WAIT, || rafiki.node_liquidity() == 450).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !owed(&node).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "still owed: {:?}", owed(&node).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(node.balance("rafiki").await, -450);
    assert_eq!(applied(&rafiki, "createPeerLiquidityWithdrawal").len(), 2, "one per transfer");
    assert_eq!(applied(&rafiki, "postLiquidityWithdrawal").len(), 2);
    let reconciled = reconcile(&node).await;
    assert_eq!(reconciled["rafiki_liquidity"], "450", "{reconciled}");
    assert_eq!(reconciled["difference"], "0", "{reconciled}");
    node.stop().await;
}

/// The node is stopped with a withdrawal owed: its Rafiki applied what it sent but every answer
/// was lost, the whole run. The next instance on the same Redis records it, once (the ids are
/// derived from the stored credit's key, so it finds the first instance's reservation and posts
/// it), and the figures agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_owed_survives_a_restart_and_the_next_instance_records_it_once() {
    use thitsax::config::{Config, StoreConfig};
    use thitsax::store::RedisStore;
    if !common::redis::redis_or_skip(
        "a_withdrawal_owed_survives_a_restart_and_the_next_instance_records_it_once",
    ) {
        return;
    }
    let redis = common::redis::RedisServer::start();
    let rafiki = RafikiDouble::start_with(
        ("USD", 2),
        Options { admin: Some(AdminOptions::default()), initial_liquidity: 0, ..Options::default() },
    )
    .await;
    let toml = mojaloop_node(&rafiki.admin_section(), &rafiki, Some(&redis.url()));
    let StoreConfig::Redis(redis_config) = Config::from_toml(&toml).unwrap().store else { panic!("redis") };
    rafiki.admin().fail_next(10_000, Outage::DropAfterApplying);
    let first = TestNode::start_redis(&toml, RedisStore::connect(&redis_config).await.unwrap()).await;
    prefund(&first, &rafiki).await;
    mojaloop_transfer(&first, "c2d3e4f5-a6b7-4c8d-9e0f-1a2b3c4d5e6f", "2.5").await;
    assert_eq!(first.balance("rafiki").await, -750);
    let key = "mojaloop:c2d3e4f5-a6b7-4c8d-9e0f-1a2b3c4d5e6f".to_string();
    assert_eq!(owed(&first).await, [(key.clone(), 250)]);
    // Reserved at the Rafiki, its answers lost: the node does not know.
    eventually("an attempt failed", WAIT, || withdrawals_counted(&first, "failed") >= 1).await;
    assert_eq!(applied(&rafiki, "createPeerLiquidityWithdrawal").len(), 1);
    first.stop().await;
    rafiki.admin().recover();
    assert_eq!(rafiki.node_liquidity(), 750, "reserved, not posted");

    let next = TestNode::start_redis(&toml, RedisStore::connect(&redis_config).await.unwrap()).await;
    assert_eq!(next.balance("rafiki").await, -750, "the credit survived");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !owed(&next).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "still owed: {:?}", owed(&next).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let created = applied(&rafiki, "createPeerLiquidityWithdrawal");
    assert_eq!(created.len(), 1, "reserved once: {created:?}");
    assert_eq!(rafiki.node_liquidity(), 750);
    let ids = thitsax::rafiki::withdrawals::withdrawal_ids("rafiki", &key, 0);
    assert_eq!(created, [(ids.id.clone(), Some(250))]);
    assert_eq!(applied(&rafiki, "postLiquidityWithdrawal"), [(ids.id.clone(), None)]);
    let withdrawal = rafiki.ledger.lock().unwrap().withdrawal(&ids.id).unwrap();
    assert_eq!(withdrawal.state, WithdrawalState::Posted);
    let reconciled = reconcile(&next).await;
    assert_eq!(reconciled["difference"], "0", "{reconciled}");
    next.stop().await;
}

/// Two instances on one Redis both find the withdrawal owed and drive it (no lease: they send the
/// same ids and keys) while every answer is lost; once the Rafiki answers again, it is reserved
/// once and posted once, and both forget it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_drive_one_owed_withdrawal_and_rafiki_records_it_once() {
    use thitsax::config::{Config, StoreConfig};
    use thitsax::store::RedisStore;
    if !common::redis::redis_or_skip("two_instances_drive_one_owed_withdrawal_and_rafiki_records_it_once") {
        return;
    }
    let redis = common::redis::RedisServer::start();
    let rafiki = RafikiDouble::start_with(
        ("USD", 2),
        Options { admin: Some(AdminOptions::default()), initial_liquidity: 0, ..Options::default() },
    )
    .await;
    let (toml_a, toml_b) = (
        mojaloop_node(&rafiki.admin_section(), &rafiki, Some(&redis.url())),
        mojaloop_node(&rafiki.admin_section(), &rafiki, Some(&redis.url())),
    );
    let StoreConfig::Redis(redis_config) = Config::from_toml(&toml_a).unwrap().store else { panic!("redis") };
    rafiki.admin().fail_next(10_000, Outage::DropAfterApplying);
    let a = TestNode::start_redis(&toml_a, RedisStore::connect(&redis_config).await.unwrap()).await;
    let b = TestNode::start_redis(&toml_b, RedisStore::connect(&redis_config).await.unwrap()).await;
    prefund(&a, &rafiki).await;
    mojaloop_transfer(&a, "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b", "3").await;
    assert_eq!(b.balance("rafiki").await, -700, "one credit, seen by both");
    eventually("both instances tried", WAIT, || {
        withdrawals_counted(&a, "failed") >= 1 && withdrawals_counted(&b, "failed") >= 1
    })
    .await;
    rafiki.admin().recover();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !owed(&a).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "still owed: {:?}", owed(&a).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the other instance's pass (if one was under way) end: it finds nothing more to do.
    eventually("both instances done", WAIT, || {
        let done = |n: &TestNode<RedisStore>| {
            withdrawals_counted(n, "recorded") + withdrawals_counted(n, "repeated")
        };
        done(&a) + done(&b) >= 1
    })
    .await;
    let created = applied(&rafiki, "createPeerLiquidityWithdrawal");
    assert_eq!(created.len(), 1, "reserved once: {created:?}");
    assert_eq!(applied(&rafiki, "postLiquidityWithdrawal").len(), 1, "posted once");
    assert_eq!(rafiki.node_liquidity(), 700);
    assert_eq!(reconcile(&a).await["difference"], "0");
    assert_eq!(reconcile(&b).await["difference"], "0");
    a.stop().await;
    b.stop().await;
}
