//! Settlement kind `mojaloop` when the `thitsax` process itself is killed (kill -9) at each step
//! of a settlement, on Redis (its own `redis-server`): while the payee's party is looked up,
//! while the payee quotes, and while the transfer is in flight at the payee (paid, its answer not
//! back). Each restart resumes the pending settlement once the dead instance's lease on it ended:
//! from the start while no transfer id was kept (nothing was accepted, so nothing moved), with
//! the kept transfer after that. The settlement is paid exactly once and the node's books, read
//! from Redis, end where the payee's do. The payee is the test backend (a test double that
//! deduplicates transfers on their id) behind a real Connector, back to back with the node's.

mod common;

use common::mojaloop::{mojaloop_or_skip, Connector, ConnectorConfig};
use common::mojaloop_backend::{Held, TestBackend};
use common::process::{start_binary, Running};
use common::redis::{redis_or_skip, RedisServer};
use common::{reserve_port, TempDir};
use std::time::Duration;
use thitsax::store::{PacketId, RedisConfig, RedisStore, Store};

const PEER_PARTY: &str = "thitsax-settles";
const PREFIX: &str = "mlcrash";

fn config(redis: &str, ilp: u16, outbound: u16, owed: &std::path::Path) -> String {
    format!(
        r#"
[node]
ilp_address = "test.node"
log_level = "info"
[http]
listen = "127.0.0.1:{ilp}"
[store]
kind = "redis"
url = "{redis}"
prefix = "{PREFIX}"
owed_writes_path = "{}"
[settlement]
scan_interval_ms = 200
retry_first_ms = 100
retry_max_ms = 1000
[[accounts]]
id = "mxn"
relation = "local"
asset_code = "MXN"
asset_scale = 2
[[accounts]]
id = "coop"
relation = "peer"
asset_code = "MXN"
asset_scale = 2
ilp_address = "test.coop"
incoming_token = "coop-to-node"
outgoing_url = "http://127.0.0.1:9/"
outgoing_token = "node-to-coop"
settle_threshold = 10000
settle_to = 0
mojaloop_settlement = {{ peer_party = {{ id_type = "ACCOUNT_ID", id_value = "{PEER_PARTY}", fsp_id = "payeefsp" }}, own_party = {{ id_type = "ACCOUNT_ID", id_value = "coop-settles" }} }}
[mojaloop]
dfsp_id = "thitsaxfsp"
outbound_url = "http://127.0.0.1:{outbound}"
# Short, so that a dead instance's lease on a settlement (this plus 5 s) ends soon.
outbound_timeout_ms = 5000
backend_listen = "127.0.0.1:{}"
party = {{ id_type = "BUSINESS", id_value = "thitsax" }}
[[mojaloop.currencies]]
code = "MXN"
decimals = 2
account = "mxn"
"#,
        owed.display(),
        reserve_port(),
    )
}

async fn store(redis: &RedisServer) -> RedisStore {
    RedisStore::connect(&RedisConfig {
        urls: vec![redis.url()],
        cluster: false,
        prefix: PREFIX.into(),
        response_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        credit_marker_ttl_s: 90_000,
    })
    .await
    .unwrap()
}

/// Kills the node (SIGKILL: no drain, its lease kept until it ends).
fn kill(node: Running) {
    let mut node = node;
    node.0.kill().unwrap();
    node.0.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_at_every_step_of_a_mojaloop_settlement_pays_it_once() {
    let test = "a_node_killed_at_every_step_of_a_mojaloop_settlement_pays_it_once";
    let Some(mojaloop) = mojaloop_or_skip(test) else { return };
    if !redis_or_skip(test) {
        return;
    }
    let redis = RedisServer::start();
    let dir = TempDir::new("mojaloop-node-crash");
    let payer = ConnectorConfig::new("thitsaxfsp", "127.0.0.1:9").auto_accept(false);
    let file = dir.join("node.toml");
    std::fs::write(&file, config(&redis.url(), reserve_port(), payer.ports.outbound, &dir.join("owed.log")))
        .unwrap();
    let backend = TestBackend::start().await;
    backend.add_party("ACCOUNT_ID", PEER_PARTY, "ThitsaX's settlements");
    let payee = ConnectorConfig::new("payeefsp", &backend.endpoint()).auto_accept(false);
    let (_connector, _payee): (Connector, Connector) = Connector::start_pair(&mojaloop, payer, payee).await;

    // The node owes the peer 123.45 MXN, over its 100.00 threshold (as after packets it
    // forwarded): the worker's next scan begins the settlement.
    let store = store(&redis).await;
    let account = thitsax::account::test_account("coop");
    backend.hold(Held::Parties);
    let (node, _, _) = start_binary(&file);
    store.credit_fulfill(&account, 12_345, PacketId::next()).await.unwrap();
    let wait = Duration::from_secs(90);

    // 1. Killed while the payee's party is looked up.
    // (The node's Connector health probe looks its own party up too: wait for the payee's.)
    let peer_lookup = |b: &TestBackend| b.party_lookups().iter().any(|p| p.contains(PEER_PARTY));
    backend.wait_until("asked for the payee's party", wait, peer_lookup).await;
    kill(node);
    assert_eq!(store.balance("coop").await, Ok(0), "begun: the balance moved to settle_to");
    assert_eq!(store.pending_settlements(&account).await.unwrap().len(), 1);
    backend.release();
    backend.hold(Held::Quotes);
    let (node, _, _) = start_binary(&file);

    // 2. Killed while the payee quotes (nothing accepted yet).
    backend.wait_until("asked for a quote", wait, |b| !b.quote_requests().is_empty()).await;
    kill(node);
    backend.release();
    backend.hold(Held::Transfers);
    let (node, _, _) = start_binary(&file);

    // 3. Killed with the transfer in flight: the payee paid, its answer held back.
    backend.wait_until("paid, answer held", wait, |b| b.transfers().len() == 1).await;
    kill(node);
    backend.release();
    let (node, _, _) = start_binary(&file);

    // The restarted node finishes the settlement with the kept transfer: paid once.
    let deadline = tokio::time::Instant::now() + wait;
    while !store.pending_settlements(&account).await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "still pending; payee: {:?}", backend.transfers());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let paid = backend.paid();
    assert_eq!(paid.len(), 1, "one transfer paid: {paid:#?}");
    assert_eq!((paid[0].amount.as_str(), paid[0].currency.as_str()), ("123.45", "MXN"));
    assert_eq!(store.balance("coop").await, Ok(0), "settled, not refunded");
    assert!(store.audit("coop").await.unwrap().agrees());
    drop(node);
}
