//! Prometheus metrics: what the packet path records as it goes, and the text a scrape returns.
//!
//! Each [`Metrics`] has its own registry, not the crate's global default one, so that several
//! nodes in one process (the tests run many) never add to each other's figures.
//!
//! # Metrics
//! Recorded by the packet path ([`Metrics::packet_started`], [`InFlight::finished`]):
//! - `thitsax_packets_total{account, outcome, code}` (counter): Prepares answered, by `account`,
//!   the id of the account that sent the Prepare; `outcome`, `fulfilled` or `rejected`; and
//!   `code`, the ILP error code of the Reject sent back (`F02`, `T04`...), whether this node or one
//!   further on refused the packet, `none` for a Fulfill. A code that is not a class letter (`F`,
//!   `T`, `R`) and two digits, as RFC 0027 writes them, is counted as `other`, so that a next
//!   hop cannot make up series: at most 302 series per account. Requests refused before the
//!   packet path (HTTP errors, T03 when the node is busy) are not counted here. A deleted
//!   account's series stay until the node restarts: a counter that vanished would read as reset.
//! - `thitsax_forward_duration_seconds{outcome}` (histogram): from the Prepare's arrival to its
//!   answer, by `outcome` as above; buckets from 100 µs to 30 s, the longest a packet is held.
//! - `thitsax_packets_in_flight` (gauge): Prepares being handled now. A packet whose handling
//!   was cut off (a panic, the runtime stopping) leaves this gauge but is counted in neither of
//!   the above; a sender hanging up does not cut it off (the HTTP server runs it to the end).
//!
//! Set by the Mojaloop Connector's health watcher, with `[mojaloop]` only
//! ([`Metrics::mojaloop_connector_up`]):
//! - `thitsax_mojaloop_connector_up` (gauge): 1 while the Connector answers its probes, 0 before
//!   its first answer and once it is down (as `GET /ready` reports it).
//!
//! Counted by the Mojaloop payouts ([`Metrics::mojaloop_payout`]), with `[mojaloop]` only:
//! - `thitsax_mojaloop_payouts_total{state}` (counter): payouts into the scheme since the node
//!   started, by `state`: `created`, `paid`, `failed` (refused for good; kept for an operator),
//!   `retried` and `refunded` (an operator's call).
//! - `thitsax_mojaloop_payout_attempts_retried_total` (counter): attempts tried again after an
//!   unknown outcome or a Connector out of reach.
//!
//! Set by the Rafiki liquidity work, with `[rafiki.admin]` only ([`Metrics::rafiki`]):
//! - `thitsax_rafiki_liquidity{account}` (gauge): the node's liquidity at the Rafiki as its last
//!   reconciliation read it, in the account's units;
//! - `thitsax_rafiki_liquidity_difference{account}` (gauge): that figure less the node's own
//!   (minus the balance, less top-ups not yet recorded there, plus withdrawals owed and not yet
//!   recorded there); anything but 0 is also an error in the log;
//! - `thitsax_rafiki_webhooks_total{outcome}` (counter): Rafiki webhooks by outcome (`handled`,
//!   `repeated`, `ignored`, `refused`);
//! - `thitsax_rafiki_withdrawals_total{outcome}` (counter): money the Rafiki's side paid the node
//!   through the account's rail, recorded at the Rafiki as liquidity withdrawals, by outcome of
//!   each attempt: `recorded` (now), `repeated` (an earlier attempt had), `refused` (Rafiki said
//!   no: kept owed, for an operator), `failed` (an outage or a refused signature: retried).
//!
//! Read at scrape time by the caller and handed to [`Metrics::render`] in a [`Scrape`]:
//! - `thitsax_store_up` (gauge): 1 when the store could be read for this scrape, 0 when not (the
//!   balance and pending lines are then left out, rather than reported as 0).
//! - `thitsax_balance{account}` (gauge): what the node owes the account, in the account's own
//!   units (its asset scale), as the store holds it.
//! - `thitsax_settlements_total{state}` (counter): outgoing settlements since the node started, by
//!   `state`: `begun`, `settled` (the settlement system paid) or `refunded` (it refused for good
//!   and the amount went back to the balance).
//! - `thitsax_settlement_retries_total` (counter): failed settlement attempts that were retried.
//! - `thitsax_settlements_pending` (gauge): settlements begun and not yet settled or refunded,
//!   as the store holds them (those of earlier runs included).

use prometheus::{GaugeVec, Histogram, HistogramOpts, HistogramVec, TextEncoder};
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::sync::OnceLock;
use std::time::Instant;

/// The upper bounds of the forward duration buckets: 1-2.5-5 steps from 100 µs, up to the 30 s a
/// packet can be held (`hold_time_ms_max`'s ceiling); longer answers land in `+Inf`.
const DURATION_BUCKETS_SECONDS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0,
];

/// The `code` label of a Fulfill.
const FULFILLED_CODE: &str = "none";

/// The `code` label of a Reject whose code is not a class letter and two digits.
const OTHER_CODE: &str = "other";

/// One node's metrics: the packet path's counters and the registry they are gathered from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    packets: IntCounterVec,
    duration_fulfilled: Histogram,
    duration_rejected: Histogram,
    in_flight: IntGauge,
    /// Balance changes owed that the store refused and an operator must look at.
    money_errors: IntCounterVec,
    /// STREAM packets the node's receiver answered, by local account and outcome, and the units
    /// it took.
    received_packets: IntCounterVec,
    received_amount: IntCounterVec,
    /// Incoming payments whose completion the hook handled, by reason.
    incoming_completed: IntCounterVec,
    /// Outgoing payments ended, by state; units the node's own sender got fulfilled, by account.
    outgoing_ended: IntCounterVec,
    sent_amount: IntCounterVec,
    /// Registered on first use, so that a node without `[mojaloop]` has no such series.
    mojaloop_connector_up: OnceLock<IntGauge>,
    /// The same for the payouts.
    mojaloop_payouts: OnceLock<(IntCounterVec, IntCounter)>,
    /// The same for the Rafiki liquidity series.
    rafiki: OnceLock<RafikiMetrics>,
    // No cache of per-account counters beside `packets`: `with_label_values` (a hash of the three
    // values and a read lock) took 64 ns, a `RwLock<HashMap>` of each account's counter 60 ns
    // (benches/packet_path.rs, `metrics/record_packet`); the two clock reads cost 100 ns.
}

/// A balance change the node owes and could not apply, by kind (the `kind` label). Each is also
/// logged at error level with the account and packet or settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneyError {
    /// A reservation's release (Reject, timeout, sweep) would take the balance past i64: it stays
    /// reserved and is tried again by every sweep.
    ReleaseOverflow,
    /// A refused settlement's refund would take the balance past i64: it stays pending and is
    /// tried again.
    RefundOverflow,
    /// The store holds data this binary cannot read (or a script answered what it does not
    /// know): nothing is retried.
    Corrupt,
    /// A relayed Fulfill's write (the source's commit or the destination's credit) the store
    /// refused for good (out of range, or a retry that can no longer be verified): the packet
    /// was paid downstream and the books must be corrected by hand.
    FulfillWriteRefused,
}

impl MoneyError {
    fn label(self) -> &'static str {
        match self {
            MoneyError::ReleaseOverflow => "release_overflow",
            MoneyError::RefundOverflow => "refund_overflow",
            MoneyError::Corrupt => "corrupt",
            MoneyError::FulfillWriteRefused => "fulfill_write_refused",
        }
    }
}

/// How the node's own receiver answered a packet (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceivedOutcome {
    Fulfilled,
    /// Not issued by the node (address or token), or data that does not decrypt.
    NotOurs,
    /// A probe, a packet below the sender's minimum, or one closing the connection.
    Unfulfillable,
    /// The incoming payment refused it (over its target, completed, expired, unknown).
    PaymentRefused,
    /// The store failed (T00).
    StoreFailed,
}

impl ReceivedOutcome {
    fn label(self) -> &'static str {
        match self {
            ReceivedOutcome::Fulfilled => "fulfilled",
            ReceivedOutcome::NotOurs => "not_ours",
            ReceivedOutcome::Unfulfillable => "unfulfillable",
            ReceivedOutcome::PaymentRefused => "payment_refused",
            ReceivedOutcome::StoreFailed => "store_failed",
        }
    }
}

/// How a packet ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Fulfilled,
    /// With the Reject's ILP error code, as it is on the wire.
    Rejected([u8; 3]),
}

/// A packet being handled: counted in `thitsax_packets_in_flight` until dropped, whether or not
/// [`InFlight::finished`] recorded how it ended.
#[derive(Debug)]
#[must_use = "the packet is counted in flight only while this lives"]
/// The Rafiki liquidity series ([`Metrics::rafiki`]).
pub struct RafikiMetrics {
    pub liquidity: IntGaugeVec,
    pub difference: IntGaugeVec,
    pub webhooks: IntCounterVec,
    pub withdrawals: IntCounterVec,
}

pub struct InFlight<'a> {
    metrics: &'a Metrics,
    started: Instant,
}

/// What the caller read for one scrape, rendered beside the registry's metrics.
#[derive(Debug, Clone, Copy)]
pub struct Scrape<'a> {
    pub settlements: SettlementFigures,
    /// `None` when the store could not be read: `thitsax_store_up 0`, no balance or pending lines.
    pub store: Option<StoreFigures<'a>>,
}

/// Outgoing settlements counted since the node started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettlementFigures {
    pub begun: u64,
    pub settled: u64,
    pub refunded: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
}

/// What a scrape read from the store.
#[derive(Debug, Clone, Copy)]
pub struct StoreFigures<'a> {
    /// Each account's id and balance.
    pub balances: &'a [(&'a str, i128)],
    /// Settlements begun and not yet settled or refunded.
    pub settlements_pending: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let packets = IntCounterVec::new(
            Opts::new("thitsax_packets_total", "Prepares answered, by source account, outcome and ILP code."),
            &["account", "outcome", "code"],
        )
        .expect("valid metric options");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "thitsax_forward_duration_seconds",
                "Time from a Prepare's arrival to its answer, by outcome.",
            )
            .buckets(DURATION_BUCKETS_SECONDS.to_vec()),
            &["outcome"],
        )
        .expect("valid metric options");
        let in_flight = IntGauge::new("thitsax_packets_in_flight", "Prepares being handled now.")
            .expect("valid metric options");
        registry.register(Box::new(packets.clone())).expect("names registered once");
        registry.register(Box::new(duration.clone())).expect("names registered once");
        let money_errors = IntCounterVec::new(
            Opts::new(
                "thitsax_money_errors_total",
                "Balance changes owed that the store refused (out of the int64 range, or corrupt data), by kind: each needs an operator.",
            ),
            &["kind"],
        )
        .expect("valid metric options");
        for kind in [
            MoneyError::ReleaseOverflow,
            MoneyError::RefundOverflow,
            MoneyError::Corrupt,
            MoneyError::FulfillWriteRefused,
        ] {
            money_errors.with_label_values(&[kind.label()]);
        }
        registry.register(Box::new(in_flight.clone())).expect("names registered once");
        registry.register(Box::new(money_errors.clone())).expect("names registered once");
        let received_packets = IntCounterVec::new(
            Opts::new(
                "thitsax_stream_received_packets_total",
                "STREAM packets the node's own receiver answered, by local account and outcome (fulfilled, or the reason money was not taken).",
            ),
            &["account", "outcome"],
        )
        .expect("valid metric options");
        let received_amount = IntCounterVec::new(
            Opts::new(
                "thitsax_stream_received_units_total",
                "Units the node's own receiver took (fulfilled packets), by local account, in its asset scale.",
            ),
            &["account"],
        )
        .expect("valid metric options");
        let incoming_completed = IntCounterVec::new(
            Opts::new(
                "thitsax_incoming_payments_completed_total",
                "Incoming payments whose completion the hook handled, by reason (target_reached, expired).",
            ),
            &["reason"],
        )
        .expect("valid metric options");
        for reason in ["target_reached", "expired"] {
            incoming_completed.with_label_values(&[reason]);
        }
        registry.register(Box::new(received_packets.clone())).expect("names registered once");
        registry.register(Box::new(received_amount.clone())).expect("names registered once");
        registry.register(Box::new(incoming_completed.clone())).expect("names registered once");
        let outgoing_ended = IntCounterVec::new(
            Opts::new(
                "thitsax_outgoing_payments_total",
                "Outgoing payments ended, by state (completed, failed).",
            ),
            &["state"],
        )
        .expect("valid metric options");
        for state in ["completed", "failed"] {
            outgoing_ended.with_label_values(&[state]);
        }
        let sent_amount = IntCounterVec::new(
            Opts::new(
                "thitsax_stream_sent_units_total",
                "Units the node's own STREAM sender got fulfilled, by local account, in its asset scale.",
            ),
            &["account"],
        )
        .expect("valid metric options");
        registry.register(Box::new(outgoing_ended.clone())).expect("names registered once");
        registry.register(Box::new(sent_amount.clone())).expect("names registered once");
        Metrics {
            registry,
            packets,
            duration_fulfilled: duration.with_label_values(&["fulfilled"]),
            duration_rejected: duration.with_label_values(&["rejected"]),
            in_flight,
            money_errors,
            received_packets,
            received_amount,
            incoming_completed,
            outgoing_ended,
            sent_amount,
            mojaloop_connector_up: OnceLock::new(),
            mojaloop_payouts: OnceLock::new(),
            rafiki: OnceLock::new(),
        }
    }

    /// The Rafiki liquidity series, registered by the first call.
    pub fn rafiki(&self) -> &RafikiMetrics {
        self.rafiki.get_or_init(|| {
            let gauge = |name: &str, help: &str| {
                let gauge =
                    IntGaugeVec::new(Opts::new(name, help), &["account"]).expect("valid metric options");
                self.registry.register(Box::new(gauge.clone())).expect("names registered once");
                gauge
            };
            let counter = |name: &str, help: &str, label: &str| {
                let counter =
                    IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric options");
                self.registry.register(Box::new(counter.clone())).expect("names registered once");
                counter
            };
            RafikiMetrics {
                liquidity: gauge(
                    "thitsax_rafiki_liquidity",
                    "The node's liquidity at the Rafiki as last reconciled, in the account's units.",
                ),
                difference: gauge(
                    "thitsax_rafiki_liquidity_difference",
                    "Rafiki's liquidity figure less the node's own for the relationship (0 when they agree).",
                ),
                webhooks: counter(
                    "thitsax_rafiki_webhooks_total",
                    "Rafiki webhooks received, by outcome.",
                    "outcome",
                ),
                withdrawals: counter(
                    "thitsax_rafiki_withdrawals_total",
                    "Attempts to record money paid back through the rail as Rafiki liquidity withdrawals, by outcome.",
                    "outcome",
                ),
            }
        })
    }

    fn payouts(&self) -> &(IntCounterVec, IntCounter) {
        self.mojaloop_payouts.get_or_init(|| {
            let opts =
                Opts::new("thitsax_mojaloop_payouts_total", "Payouts into the Mojaloop scheme, by state.");
            let by_state = IntCounterVec::new(opts, &["state"]).expect("valid metric options");
            let retried = IntCounter::new(
                "thitsax_mojaloop_payout_attempts_retried_total",
                "Payout attempts tried again after an unknown outcome or a Connector out of reach.",
            )
            .expect("valid metric options");
            self.registry.register(Box::new(by_state.clone())).expect("names registered once");
            self.registry.register(Box::new(retried.clone())).expect("names registered once");
            (by_state, retried)
        })
    }

    /// Counts a payout reaching `state` (`created`, `paid`, `failed`, `retried`, `refunded`).
    pub fn mojaloop_payout(&self, state: &'static str) {
        self.payouts().0.with_label_values(&[state]).inc();
    }

    /// Counts a payout attempt tried again.
    pub fn mojaloop_payout_attempt_retried(&self) {
        self.payouts().1.inc();
    }

    /// `thitsax_mojaloop_connector_up`, registered by the first call: a handle the Connector's
    /// health watcher sets (the same gauge on every call).
    pub fn mojaloop_connector_up(&self) -> IntGauge {
        self.mojaloop_connector_up
            .get_or_init(|| {
                let gauge = IntGauge::new(
                    "thitsax_mojaloop_connector_up",
                    "Whether the Mojaloop Connector answers its health probes (a party lookup): 1 up, 0 not yet or down.",
                )
                .expect("valid metric options");
                self.registry.register(Box::new(gauge.clone())).expect("names registered once");
                gauge
            })
            .clone()
    }

    /// Counts an outgoing payment's end.
    pub fn outgoing_payment_ended(&self, completed: bool) {
        self.outgoing_ended.with_label_values(&[if completed { "completed" } else { "failed" }]).inc();
    }

    /// Counts a fulfilled packet of the node's own sender.
    pub fn stream_sent(&self, account: &str, amount: u64) {
        self.sent_amount.with_label_values(&[account]).inc_by(amount);
    }

    /// Counts a packet the node's own receiver answered: `outcome` is `fulfilled` (and `amount`
    /// the units taken) or why no money was taken.
    pub fn stream_received(&self, account: &str, outcome: ReceivedOutcome, amount: u64) {
        self.received_packets.with_label_values(&[account, outcome.label()]).inc();
        if outcome == ReceivedOutcome::Fulfilled {
            self.received_amount.with_label_values(&[account]).inc_by(amount);
        }
    }

    /// Counts a completion the hook handled.
    pub fn incoming_payment_completed(&self, reason: &str) {
        self.incoming_completed.with_label_values(&[reason]).inc();
    }

    /// Counts a balance change owed that the store refused (see [`MoneyError`]).
    pub fn money_error(&self, kind: MoneyError) {
        self.money_errors.with_label_values(&[kind.label()]).inc();
    }

    /// Called when a Prepare arrives: counts it in flight until the guard is dropped.
    pub fn packet_started(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight { metrics: self, started: Instant::now() }
    }

    /// The registry's metrics and the scrape's figures in the Prometheus text format (0.0.4).
    pub fn render(&self, scrape: &Scrape) -> String {
        let mut families = self.registry.gather();
        families.extend(scraped(scrape).gather());
        // Both lists come sorted by name; the whole is too, so the output does not depend on
        // which list a family came from.
        families.sort_by(|a, b| a.get_name().cmp(b.get_name()));
        let mut text = String::new();
        TextEncoder::new()
            .encode_utf8(&families, &mut text)
            .expect("gathered families are never empty and always named");
        text
    }
}

impl InFlight<'_> {
    /// Records how the packet ended, from `account`; the in-flight count drops with `self`.
    pub fn finished(self, account: &str, outcome: Outcome) {
        let seconds = self.started.elapsed().as_secs_f64();
        let metrics = self.metrics;
        let (label, code, duration) = match &outcome {
            Outcome::Fulfilled => ("fulfilled", FULFILLED_CODE, &metrics.duration_fulfilled),
            Outcome::Rejected(code) => ("rejected", code_label(code), &metrics.duration_rejected),
        };
        metrics.packets.with_label_values(&[account, label, code]).inc();
        duration.observe(seconds);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

/// The `code` label of a Reject: its code when written as RFC 0027 does (class letter, two
/// digits), else `other`, which bounds the codes a next hop can make us count.
fn code_label(code: &[u8; 3]) -> &str {
    match code {
        [b'F' | b'T' | b'R', tens, units] if tens.is_ascii_digit() && units.is_ascii_digit() => {
            std::str::from_utf8(code).expect("ASCII")
        }
        _ => OTHER_CODE,
    }
}

/// A registry for one scrape's figures, built afresh each time so that nothing read for an
/// earlier scrape (a deleted account's balance) lingers.
fn scraped(scrape: &Scrape) -> Registry {
    let registry = Registry::new();
    let register = |collector: Box<dyn prometheus::core::Collector>| {
        registry.register(collector).expect("names registered once");
    };
    let store_up = IntGauge::new("thitsax_store_up", "Whether the store could be read for this scrape.")
        .expect("valid metric options");
    store_up.set(i64::from(scrape.store.is_some()));
    register(Box::new(store_up));

    let settlements = IntCounterVec::new(
        Opts::new("thitsax_settlements_total", "Outgoing settlements since start, by state."),
        &["state"],
    )
    .expect("valid metric options");
    let figures = &scrape.settlements;
    for (state, count) in
        [("begun", figures.begun), ("settled", figures.settled), ("refunded", figures.refunded)]
    {
        settlements.with_label_values(&[state]).inc_by(count);
    }
    register(Box::new(settlements));
    let retries = IntCounter::new(
        "thitsax_settlement_retries_total",
        "Failed settlement attempts that were retried, since start.",
    )
    .expect("valid metric options");
    retries.inc_by(figures.retries);
    register(Box::new(retries));

    if let Some(store) = &scrape.store {
        // A gauge holds an f64: balances past 2^53 lose their last digits here, which a chart
        // does not show; the store keeps them exact.
        let balances = GaugeVec::new(
            Opts::new("thitsax_balance", "What the node owes each account, in the account's units."),
            &["account"],
        )
        .expect("valid metric options");
        for (account, balance) in store.balances {
            balances.with_label_values(&[account]).set(*balance as f64);
        }
        register(Box::new(balances));
        let pending = IntGauge::new(
            "thitsax_settlements_pending",
            "Outgoing settlements begun and not yet settled or refunded.",
        )
        .expect("valid metric options");
        pending.set(i64::try_from(store.settlements_pending).unwrap_or(i64::MAX));
        register(Box::new(pending));
    }
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample written exactly as `series` (name and labels), if any.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    fn nothing_read() -> Scrape<'static> {
        Scrape { settlements: SettlementFigures::default(), store: None }
    }

    #[test]
    fn counts_packets_by_account_outcome_and_code() {
        let metrics = Metrics::new();
        for _ in 0..3 {
            metrics.packet_started().finished("alice", Outcome::Fulfilled);
        }
        metrics.packet_started().finished("alice", Outcome::Rejected(*b"F02"));
        metrics.packet_started().finished("alice", Outcome::Rejected(*b"F02"));
        metrics.packet_started().finished("bob", Outcome::Rejected(*b"T04"));
        let text = metrics.render(&nothing_read());
        let count = |series: &str| sample(&text, series);
        assert_eq!(
            count(r#"thitsax_packets_total{account="alice",code="none",outcome="fulfilled"}"#),
            Some(3.0)
        );
        assert_eq!(
            count(r#"thitsax_packets_total{account="alice",code="F02",outcome="rejected"}"#),
            Some(2.0)
        );
        assert_eq!(count(r#"thitsax_packets_total{account="bob",code="T04",outcome="rejected"}"#), Some(1.0));
        assert_eq!(count(r#"thitsax_packets_total{account="bob",code="none",outcome="fulfilled"}"#), None);
        assert_eq!(count(r#"thitsax_forward_duration_seconds_count{outcome="fulfilled"}"#), Some(3.0));
        assert_eq!(count(r#"thitsax_forward_duration_seconds_count{outcome="rejected"}"#), Some(3.0));
        assert_eq!(
            count(r#"thitsax_forward_duration_seconds_bucket{outcome="rejected",le="+Inf"}"#),
            Some(3.0)
        );
        assert_eq!(count("thitsax_packets_in_flight"), Some(0.0));
        assert!(text.contains("# TYPE thitsax_packets_total counter\n"), "{text}");
        assert!(text.contains("# TYPE thitsax_forward_duration_seconds histogram\n"), "{text}");
    }

    #[test]
    fn a_packet_is_in_flight_until_its_guard_is_dropped_finished_or_not() {
        let metrics = Metrics::new();
        let in_flight = || sample(&metrics.render(&nothing_read()), "thitsax_packets_in_flight");
        let (first, second) = (metrics.packet_started(), metrics.packet_started());
        assert_eq!(in_flight(), Some(2.0));
        first.finished("alice", Outcome::Fulfilled);
        assert_eq!(in_flight(), Some(1.0));
        // Cut off (its future dropped) before an outcome: nothing to count, but no longer in flight.
        drop(second);
        assert_eq!(in_flight(), Some(0.0));
        let text = metrics.render(&nothing_read());
        assert_eq!(
            sample(&text, r#"thitsax_forward_duration_seconds_count{outcome="fulfilled"}"#),
            Some(1.0)
        );
        assert_eq!(sample(&text, r#"thitsax_forward_duration_seconds_count{outcome="rejected"}"#), Some(0.0));
    }

    #[test]
    fn durations_fall_in_buckets_up_to_thirty_seconds() {
        assert!(DURATION_BUCKETS_SECONDS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((DURATION_BUCKETS_SECONDS[0], DURATION_BUCKETS_SECONDS[16]), (0.0001, 30.0));
        let metrics = Metrics::new();
        metrics.packet_started().finished("alice", Outcome::Fulfilled);
        let text = metrics.render(&nothing_read());
        // Recorded at once: well under the 30 s bound, and counted in it.
        let series = r#"thitsax_forward_duration_seconds_bucket{outcome="fulfilled",le="30"}"#;
        assert_eq!(sample(&text, series), Some(1.0), "{text}");
    }

    #[test]
    fn codes_not_written_as_rfc_0027_does_are_counted_as_other() {
        assert_eq!(code_label(b"F02"), "F02");
        assert_eq!(code_label(b"R99"), "R99");
        assert_eq!(code_label(b"T0A"), "other");
        assert_eq!(code_label(b"Fzz"), "other");
        assert_eq!(code_label(b"X00"), "other");
        assert_eq!(code_label(&[b'F', 0xFF, b'0']), "other");
        let metrics = Metrics::new();
        metrics.packet_started().finished("alice", Outcome::Rejected(*b"Fab"));
        let text = metrics.render(&nothing_read());
        let series = r#"thitsax_packets_total{account="alice",code="other",outcome="rejected"}"#;
        assert_eq!(sample(&text, series), Some(1.0), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.packet_started().finished("a\"b\\c\nd", Outcome::Fulfilled);
        let balances = [("q\"uote", -5)];
        let store = Some(StoreFigures { balances: &balances, settlements_pending: 0 });
        let text = metrics.render(&Scrape { settlements: SettlementFigures::default(), store });
        let series = r#"thitsax_packets_total{account="a\"b\\c\nd",code="none",outcome="fulfilled"}"#;
        assert_eq!(sample(&text, series), Some(1.0), "{text}");
        assert_eq!(sample(&text, r#"thitsax_balance{account="q\"uote"}"#), Some(-5.0), "{text}");
    }

    #[test]
    fn renders_the_scrape_figures() {
        let metrics = Metrics::new();
        let balances = [("alice", -1_500), ("bob", 2_000_000_000_000), ("carol", 0)];
        let settlements = SettlementFigures { begun: 5, settled: 3, refunded: 1, retries: 7 };
        let store = Some(StoreFigures { balances: &balances, settlements_pending: 1 });
        let text = metrics.render(&Scrape { settlements, store });
        let value = |series: &str| sample(&text, series);
        assert_eq!(value("thitsax_store_up"), Some(1.0));
        assert_eq!(value(r#"thitsax_balance{account="alice"}"#), Some(-1500.0));
        assert_eq!(value(r#"thitsax_balance{account="bob"}"#), Some(2e12));
        assert_eq!(value(r#"thitsax_balance{account="carol"}"#), Some(0.0));
        assert_eq!(value(r#"thitsax_settlements_total{state="begun"}"#), Some(5.0));
        assert_eq!(value(r#"thitsax_settlements_total{state="settled"}"#), Some(3.0));
        assert_eq!(value(r#"thitsax_settlements_total{state="refunded"}"#), Some(1.0));
        assert_eq!(value("thitsax_settlement_retries_total"), Some(7.0));
        assert_eq!(value("thitsax_settlements_pending"), Some(1.0));
        assert!(text.contains("# TYPE thitsax_balance gauge\n"), "{text}");
        assert!(text.contains("# TYPE thitsax_settlements_total counter\n"), "{text}");
        // Families come in name order, whichever registry they came from.
        let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    }

    #[test]
    fn a_store_that_could_not_be_read_shows_as_down_not_as_zero_balances() {
        let metrics = Metrics::new();
        let settlements = SettlementFigures { begun: 2, ..Default::default() };
        let text = metrics.render(&Scrape { settlements, store: None });
        assert_eq!(sample(&text, "thitsax_store_up"), Some(0.0));
        assert!(!text.contains("thitsax_balance"), "{text}");
        assert!(!text.contains("thitsax_settlements_pending"), "{text}");
        // What the node counted itself is still there.
        assert_eq!(sample(&text, r#"thitsax_settlements_total{state="begun"}"#), Some(2.0));
    }

    #[test]
    fn payout_counts_show_only_once_counted() {
        let metrics = Metrics::new();
        assert!(!metrics.render(&nothing_read()).contains("thitsax_mojaloop_payouts_total"));
        metrics.mojaloop_payout("created");
        metrics.mojaloop_payout("created");
        metrics.mojaloop_payout("paid");
        metrics.mojaloop_payout_attempt_retried();
        let text = metrics.render(&nothing_read());
        assert_eq!(sample(&text, r#"thitsax_mojaloop_payouts_total{state="created"}"#), Some(2.0));
        assert_eq!(sample(&text, r#"thitsax_mojaloop_payouts_total{state="paid"}"#), Some(1.0));
        assert_eq!(sample(&text, "thitsax_mojaloop_payout_attempts_retried_total"), Some(1.0));
    }

    #[test]
    fn the_rafiki_series_show_only_once_used() {
        let metrics = Metrics::new();
        assert!(!metrics.render(&nothing_read()).contains("thitsax_rafiki"));
        metrics.rafiki().difference.with_label_values(&["rafiki"]).set(-5);
        metrics.rafiki().webhooks.with_label_values(&["handled"]).inc();
        metrics.rafiki().withdrawals.with_label_values(&["recorded"]).inc_by(2);
        let text = metrics.render(&nothing_read());
        assert_eq!(sample(&text, r#"thitsax_rafiki_withdrawals_total{outcome="recorded"}"#), Some(2.0));
        assert_eq!(sample(&text, r#"thitsax_rafiki_liquidity_difference{account="rafiki"}"#), Some(-5.0));
        assert_eq!(sample(&text, r#"thitsax_rafiki_webhooks_total{outcome="handled"}"#), Some(1.0));
    }

    #[test]
    fn the_mojaloop_connector_gauge_shows_only_once_asked_for() {
        let metrics = Metrics::new();
        assert!(!metrics.render(&nothing_read()).contains("thitsax_mojaloop_connector_up"));
        metrics.mojaloop_connector_up().set(1);
        assert_eq!(sample(&metrics.render(&nothing_read()), "thitsax_mojaloop_connector_up"), Some(1.0));
        // Every call hands out the same gauge.
        metrics.mojaloop_connector_up().set(0);
        assert_eq!(sample(&metrics.render(&nothing_read()), "thitsax_mojaloop_connector_up"), Some(0.0));
    }

    #[test]
    fn nodes_in_one_process_keep_their_own_figures() {
        let (one, two) = (Metrics::new(), Metrics::new());
        one.packet_started().finished("alice", Outcome::Fulfilled);
        let series = r#"thitsax_packets_total{account="alice",code="none",outcome="fulfilled"}"#;
        assert_eq!(sample(&one.render(&nothing_read()), series), Some(1.0));
        assert_eq!(sample(&two.render(&nothing_read()), series), None);
    }
}
