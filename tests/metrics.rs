//! End-to-end: packets sent to a real node over ILP-over-HTTP show in its Prometheus metrics.

mod common;

use common::*;
use std::time::Duration;
use thitsax::metrics::{Scrape, StoreFigures};
use thitsax::packet::ErrorCode;

const TEN_SECONDS: Duration = Duration::from_secs(10);

fn config(downstream: &str) -> String {
    format!(
        r#"
[node]
ilp_address = "test.n"
log_level = "warn"

[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "alice-token"

[[accounts]]
id = "bob"
relation = "child"
asset_code = "USD"
asset_scale = 9
outgoing_url = "{downstream}"
outgoing_token = "to-bob"

[[accounts]]
id = "broke"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "broke-token"
min_balance = 0
"#
    )
}

/// The samples of `name` exactly (not of `name_bucket` and the like), in the order rendered:
/// by label values.
fn series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .collect()
}

#[tokio::test]
async fn packets_are_counted_by_source_account_outcome_and_code() {
    // bob's side fulfils, except packets for `test.n.bob.refuses...`, which it rejects with F99.
    let downstream = Downstream::start(std::sync::Arc::new(|p: &thitsax::packet::Prepare| {
        match p.destination().starts_with("test.n.bob.refuses") {
            true => Behaviour::Reject,
            false => Behaviour::Fulfill,
        }
    }))
    .await;
    let node = TestNode::start(&config(&downstream.url())).await;
    let (client, url) = (client(), node.url());
    for _ in 0..3 {
        send(&client, &url, "alice-token", &prepare("test.n.bob.x", 100, TEN_SECONDS)).await.fulfill();
    }
    for _ in 0..2 {
        let reject =
            send(&client, &url, "alice-token", &prepare("g.nowhere", 100, TEN_SECONDS)).await.reject();
        assert_code(&reject, ErrorCode::F02_UNREACHABLE);
    }
    let p = prepare("test.n.bob.refuses", 100, TEN_SECONDS);
    assert_code(&send(&client, &url, "alice-token", &p).await.reject(), ErrorCode::F99_APPLICATION_ERROR);
    let p = prepare("test.n.bob.x", 100, TEN_SECONDS);
    assert_code(
        &send(&client, &url, "broke-token", &p).await.reject(),
        ErrorCode::T04_INSUFFICIENT_LIQUIDITY,
    );

    let balances = [("alice", node.balance("alice").await), ("bob", node.balance("bob").await)];
    let store = Some(StoreFigures { balances: &balances, settlements_pending: 0 });
    let text =
        node.node.metrics.render(&Scrape { settlements: node.node.settlement.counters.figures(), store });

    assert_eq!(
        series(&text, "thitsax_packets_total"),
        [
            r#"thitsax_packets_total{account="alice",code="F02",outcome="rejected"} 2"#,
            r#"thitsax_packets_total{account="alice",code="F99",outcome="rejected"} 1"#,
            r#"thitsax_packets_total{account="alice",code="none",outcome="fulfilled"} 3"#,
            r#"thitsax_packets_total{account="broke",code="T04",outcome="rejected"} 1"#,
        ],
        "{text}"
    );
    assert_eq!(
        series(&text, "thitsax_forward_duration_seconds_count"),
        [
            r#"thitsax_forward_duration_seconds_count{outcome="fulfilled"} 3"#,
            r#"thitsax_forward_duration_seconds_count{outcome="rejected"} 4"#,
        ]
    );
    assert_eq!(series(&text, "thitsax_packets_in_flight"), ["thitsax_packets_in_flight 0"]);
    assert_eq!(
        series(&text, "thitsax_balance"),
        [r#"thitsax_balance{account="alice"} -300"#, r#"thitsax_balance{account="bob"} 300"#]
    );
    assert_eq!(series(&text, "thitsax_store_up"), ["thitsax_store_up 1"]);
    assert_eq!(series(&text, "thitsax_settlements_pending"), ["thitsax_settlements_pending 0"]);
    assert_eq!(
        series(&text, "thitsax_settlements_total"),
        [
            r#"thitsax_settlements_total{state="begun"} 0"#,
            r#"thitsax_settlements_total{state="refunded"} 0"#,
            r#"thitsax_settlements_total{state="settled"} 0"#,
        ]
    );
}
