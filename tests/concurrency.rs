//! The money invariant under load: thousands of concurrent packets, with the next hop fulfilling,
//! rejecting, failing and timing out at random. Whatever happens, the source was debited exactly
//! what the fulfilled packets carried and the destination credited exactly what they delivered.

mod common;

use common::*;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thitsax::packet::{ErrorCode, Response};

const PACKETS: u64 = 4000;
const IN_FLIGHT: usize = 200;

/// The behaviour for a packet, chosen from its id (first 8 bytes of the preimage in the data).
fn behaviour_for(id: u64) -> Behaviour {
    match id % 10 {
        0..=5 => Behaviour::Fulfill,
        6 => Behaviour::Reject,
        7 => Behaviour::ServerError,
        8 => Behaviour::Hang,
        _ => Behaviour::WrongFulfillment,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_changes_equal_exactly_what_was_fulfilled() {
    let fulfilled_downstream = Arc::new(Mutex::new(HashMap::<u64, u64>::new()));
    let record = fulfilled_downstream.clone();
    let downstream = Downstream::start(Arc::new(move |p| {
        let id = u64::from_be_bytes(p.data()[..8].try_into().unwrap());
        let b = behaviour_for(id);
        if b == Behaviour::Fulfill {
            record.lock().unwrap().insert(id, p.amount());
        }
        b
    }))
    .await;
    let node = TestNode::start(&format!(
        r#"
[node]
ilp_address = "test.n"
log_level = "error"
[forwarding]
expiry_margin_ms = 200
min_outgoing_window_ms = 100
[rates]
spread = "0.003"
[[accounts]]
id = "sender"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "sender-token"
min_balance = -1000000000000000
max_packet_amount = 100000000000
[[accounts]]
id = "receiver"
relation = "child"
asset_code = "USD"
asset_scale = 6
outgoing_url = "{}"
outgoing_token = "t"
"#,
        downstream.url()
    ))
    .await;
    let client = client();
    let url = node.url();

    // Amounts vary so that rounding and the spread matter; timeouts expire in ~0.5 s.
    let outcomes: Vec<(u64, u64, Result<(), ErrorCode>)> = stream::iter(0..PACKETS)
        .map(|id| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let amount = 1_000_000 + id * 7_919_993 % 50_000_000_000;
                // Only the packets meant to time out get a short expiry, so load cannot turn a
                // fulfilment into a timeout.
                let expiry = match behaviour_for(id) {
                    Behaviour::Hang => Duration::from_millis(700),
                    _ => Duration::from_secs(30),
                };
                let p = prepare_with_id("test.n.receiver.x", amount, expiry, id);
                let answer = send(&client, &url, "sender-token", &p).await;
                let outcome = match answer.packet() {
                    Response::Fulfill(_) => Ok(()),
                    Response::Reject(r) => Err(r.code()),
                };
                (id, amount, outcome)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;

    let fulfilled_in: u128 = outcomes.iter().filter(|o| o.2.is_ok()).map(|o| o.1 as u128).sum();
    // Scale 9 → 6 with a 0.3 % spread, rounded down: exactly floor(amount · 997 / 10^6).
    let expected_out = |amount: u64| amount as u128 * 997 / 1_000_000;
    let fulfilled_out: u128 = outcomes.iter().filter(|o| o.2.is_ok()).map(|o| expected_out(o.1)).sum();
    let delivered: u128 = fulfilled_downstream.lock().unwrap().values().map(|a| *a as u128).sum();
    assert_eq!(delivered, fulfilled_out, "the next hop received exactly the converted amounts");
    let count = |code: Option<ErrorCode>| outcomes.iter().filter(|o| o.2.err() == code).count();
    let fulfilled = count(None);

    // Every packet got the outcome its behaviour dictates.
    for (id, _, outcome) in &outcomes {
        let expected = match behaviour_for(*id) {
            Behaviour::Fulfill => Ok(()),
            Behaviour::Reject => Err(ErrorCode::F99_APPLICATION_ERROR),
            Behaviour::ServerError => Err(ErrorCode::T01_PEER_UNREACHABLE),
            Behaviour::Hang => Err(ErrorCode::R00_TRANSFER_TIMED_OUT),
            _ => Err(ErrorCode::F05_WRONG_CONDITION),
        };
        assert_eq!(outcome, &expected, "packet {id}");
    }
    assert_eq!(fulfilled, fulfilled_downstream.lock().unwrap().len());
    assert!(fulfilled > 2000 && count(Some(ErrorCode::R00_TRANSFER_TIMED_OUT)) > 300);

    // The invariant: balances moved by exactly the fulfilled amounts, nothing else.
    assert_eq!(node.balance("sender").await, -(fulfilled_in as i128));
    assert_eq!(node.balance("receiver").await, fulfilled_out as i128);
    // And the node kept its spread plus rounding, never more than 0.3 % + 1 unit per packet.
    let kept_in_source_units = fulfilled_in - fulfilled_out * 1000;
    assert!(kept_in_source_units <= fulfilled_in * 3 / 1000 + fulfilled as u128 * 1000);
    node.stop().await;
}
