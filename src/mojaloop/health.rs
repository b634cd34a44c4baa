//! The Mojaloop Connector's health, as a real request finds it. A watcher ([`run`], started by the
//! app with `[mojaloop]`) asks the Connector's outbound API for a party lookup every
//! `health_interval_ms`, with a short timeout (`health_timeout_ms`), and keeps what it found in
//! [`ConnectorHealth`]: while the Connector is down the node's `GET /ready` answers 503 naming it,
//! `thitsax_mojaloop_connector_up` is 0, and each change of standing is logged once.
//!
//! # Why a party lookup
//! What a wedged Connector does, as observed on `@mojaloop/sdk-scheme-adapter` 18.0.2
//! (`tests/mojaloop_health.rs` reproduces it):
//! - Two `acceptQuote` calls in flight for one transfer both wait on the transfer's Redis pub/sub
//!   channel; the first fulfil wakes both, both unsubscribe, and the second fulfil, published a
//!   moment later, reaches the subscription with no callback left: the Connector's handler
//!   (`lib/cache.js`) throws inside the Redis client's reply decoder (`uncaughtException: Cannot
//!   convert undefined or null to object`). The process lives on, but no pub/sub message reaches
//!   a waiting call any more: every request that waits for the scheme's callback (a party lookup,
//!   a new transfer, an `acceptParty`) hangs until the Connector is restarted.
//! - What waits for no callback still answers: `GET /` (200: the Connector's own health route
//!   touches nothing), a `PUT` on a completed transfer (answered from its record), a request its
//!   validation refuses. None of them can see the wedge.
//! - `GET /parties/{idType}/{idValue}` waits for its callback as a transfer does, and moves no
//!   money. The party looked up is the node's own (`mojaloop.party`): in a scheme the lookup ends
//!   at the hub's account lookup service or at the node's own backend, and asks no other DFSP's.
//!   The Connector keeps of it only the lookup's own record (`key-parties-<type>-<id>-...` in its
//!   Redis), written afresh by each probe; a transfer never reads it.
//!
//! Never `GET /transfers/{id}`: it overwrites the Connector's record of the transfer.
//!
//! # One lookup in flight, never two
//! A lookup waits on its party's pub/sub channel as an `acceptQuote` waits on its transfer's
//! (`lib/model/lib/deferredJob.js`), and two lookups of one party in flight in the Connector at
//! once could wedge it the same way, should their two answers come close together (a hub that
//! stalls, then answers both). The Connector goes on waiting for an answer after its caller hung
//! up, for REQUEST_PROCESSING_TIMEOUT_SECONDS (30 s by default). So a probe not answered within
//! `health_timeout_ms` counts as failed but is not abandoned: the next tick waits on the same
//! request (and counts another failure if it is still unanswered) rather than send a second. It
//! is given up only after `outbound_timeout_ms` (40 s by default, past the Connector's own
//! wait, after which it answers 504 itself).
//!
//! # Standing
//! A probe answered when the lookup completed: 200 with `currentState: "COMPLETED"` (found or not:
//! 18.0.2 answers a party nobody holds so too), or the handler's 404 with `errorInformation`. No
//! connection, no answer within the timeout, or any other answer (a 5xx: the Connector cannot
//! reach its Redis or the scheme, and cannot pay either) is a failure. The Connector is declared
//! down after `health_down_after_failures` failures in a row, so one slow answer is not an outage
//! (a Connector that answers nothing for that many intervals is), and up again as soon as a probe
//! answers. Until the first answer after the start its standing is unknown, and the node is not
//! ready: nothing says yet that it can pay through the Connector.

use super::outbound::OutboundLimits;
use super::party::Party;
use crate::http::client::{body_prefix, get, GetError};
use crate::http::tls::{Connector, TlsConfig};
use crate::shutdown::{Phase, ShutdownSignal};
use hyper::{StatusCode, Uri};
use prometheus::IntGauge;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;
use tracing::{debug, error, info, warn};

/// How the watcher probes the Connector (`[mojaloop]` `health_*`, validated with the section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRules {
    /// From the start of one probe to the start of the next.
    pub interval: Duration,
    /// A probe not answered within this failed (the request is still waited on: see the module
    /// doc). Below `interval`, so that a Connector that hangs is probed at the pace of one that
    /// answers.
    pub timeout: Duration,
    /// Failed probes in a row that make the Connector down (at least 1).
    pub down_after_failures: u32,
}

/// What the node knows of its Connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// No probe has answered since the node started, and fewer than `down_after_failures` have
    /// failed.
    Unknown,
    Up,
    Down,
}

impl Standing {
    fn name(self) -> &'static str {
        match self {
            Standing::Unknown => "unknown",
            Standing::Up => "up",
            Standing::Down => "down",
        }
    }
}

/// Why one probe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// No connection could be opened: nothing listens (the Connector is not running).
    #[error("not reached: {0}")]
    NotReached(String),
    /// No whole answer yet, this long after the request was sent: what a wedged Connector does.
    #[error("no answer for {} ms", .0.as_millis())]
    NoAnswer(Duration),
    /// An answer that is not a completed lookup.
    #[error("answered HTTP {status}: {message}")]
    Refused { status: u16, message: String },
    /// The exchange broke off (the connection closed under it) or the answer was too long.
    #[error("{0}")]
    Broken(String),
}

/// The Connector's health: its standing and what the probes found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub standing: Standing,
    /// When it took this standing: the node's start (unknown), the answer that made it up, the
    /// first of the failures in a row (down).
    pub since: Instant,
    /// Probes failed in a row since the last that answered.
    pub failures: u32,
    /// When the request of the first of those failures was sent; `None` while the last probe
    /// answered.
    pub failing_since: Option<Instant>,
    /// The last failure, kept after an answer too: a clue to a Connector that flaps.
    pub last_error: Option<ProbeError>,
}

/// A change of standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub from: Standing,
    pub to: Standing,
}

impl Health {
    pub fn new(now: Instant) -> Health {
        Health { standing: Standing::Unknown, since: now, failures: 0, failing_since: None, last_error: None }
    }

    /// Takes one probe's outcome `at` the time it counts from: its answer's arrival, or for a
    /// failure the sending of its request (a Connector is down since the first request it left
    /// unanswered). Returns the change of standing it makes, if any.
    pub fn observe(
        &mut self,
        outcome: Result<(), ProbeError>,
        at: Instant,
        down_after_failures: u32,
    ) -> Option<Change> {
        debug_assert!(down_after_failures >= 1, "validated with [mojaloop]");
        let from = self.standing;
        match outcome {
            Ok(()) => {
                self.failures = 0;
                self.failing_since = None;
                if from == Standing::Up {
                    return None;
                }
                self.standing = Standing::Up;
                self.since = at;
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                let first = *self.failing_since.get_or_insert(at);
                self.last_error = Some(e);
                if from == Standing::Down || self.failures < down_after_failures {
                    return None;
                }
                self.standing = Standing::Down;
                self.since = first;
            }
        }
        Some(Change { from, to: self.standing })
    }
}

/// Why the node is not ready because of its Connector: the text `GET /ready` answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("the Mojaloop Connector at {url} has not answered a probe yet{}", failures_text(.failures, .last))]
    NotYetAnswered { url: String, failures: u32, last: Option<ProbeError> },
    #[error(
        "the Mojaloop Connector at {url} is down: no probe answered for {:.1} s{}",
        .down_for.as_secs_f64(),
        failures_text(.failures, .last)
    )]
    Down { url: String, down_for: Duration, failures: u32, last: Option<ProbeError> },
}

fn failures_text(failures: &u32, last: &Option<ProbeError>) -> String {
    match last {
        Some(e) if *failures > 0 => format!(" ({failures} failed in a row, the last: {e})"),
        _ => String::new(),
    }
}

/// The Connector's health, shared by the watcher (which writes it) and the readiness probe.
#[derive(Debug)]
pub struct ConnectorHealth {
    /// The Connector as the messages name it: its outbound API's URL.
    url: String,
    down_after_failures: u32,
    health: Mutex<Health>,
    /// `thitsax_mojaloop_connector_up`: set under the same lock as `health`, so that a scrape and
    /// `GET /ready` never tell two stories.
    up: IntGauge,
}

impl ConnectorHealth {
    /// Unknown until a probe answers; `up` is set to 0 now.
    pub fn new(url: &str, rules: &HealthRules, up: IntGauge) -> ConnectorHealth {
        up.set(0);
        ConnectorHealth {
            url: url.to_string(),
            down_after_failures: rules.down_after_failures,
            health: Mutex::new(Health::new(Instant::now())),
            up,
        }
    }

    pub fn health(&self) -> Health {
        self.lock().clone()
    }

    /// `Ok` while the Connector is up.
    pub fn ready(&self) -> Result<(), NotReady> {
        let h = self.lock();
        let (url, failures, last) = (self.url.clone(), h.failures, h.last_error.clone());
        match h.standing {
            Standing::Up => Ok(()),
            Standing::Unknown => Err(NotReady::NotYetAnswered { url, failures, last }),
            Standing::Down => Err(NotReady::Down { url, down_for: h.since.elapsed(), failures, last }),
        }
    }

    /// Records one probe's outcome `at` the time it counts from ([`Health::observe`]), and logs a
    /// change of standing (only then: a failure that does not change it is logged at debug level).
    pub fn observe(&self, outcome: Result<(), ProbeError>, at: Instant) {
        let mut h = self.lock();
        let failed = outcome.as_ref().err().cloned();
        let stood_since = h.since;
        let Some(change) = h.observe(outcome, at, self.down_after_failures) else {
            if let Some(e) = failed {
                debug!(connector = %self.url, failures = h.failures, error = %e, "Mojaloop Connector probe failed");
            }
            return;
        };
        self.up.set(i64::from(change.to == Standing::Up));
        let url = &self.url;
        match (change.from, change.to) {
            (Standing::Unknown, Standing::Up) => info!(connector = %url, "the Mojaloop Connector answers"),
            (_, Standing::Up) => warn!(
                connector = %url,
                down_ms = stood_since.elapsed().as_millis() as u64,
                "the Mojaloop Connector answers again: the node is ready"
            ),
            (from, _) => error!(
                connector = %url,
                was = from.name(),
                failures = h.failures,
                not_answering_ms = h.since.elapsed().as_millis() as u64,
                last_error = %failed.map(|e| e.to_string()).unwrap_or_default(),
                "the Mojaloop Connector is down: its probes failed in a row (a wedged Connector hangs \
                 until it is restarted); the node reports unready until one answers"
            ),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One probe of the Connector: `GET {outbound_url}/parties/{idType}/{idValue}` of the node's own
/// party, on a connection of its own (a pooled one could be closed by the Connector's idle timeout
/// just as a probe reuses it, and count as a failure of the Connector).
#[derive(Debug)]
pub struct Probe {
    connector: Connector,
    url: Uri,
    /// The request is given up after this: the outbound API's call timeout, longer than the
    /// Connector's own wait for the scheme.
    given_up_after: Duration,
    response_bytes_max: usize,
}

impl Probe {
    /// `outbound_url` and `party` as `[mojaloop]` validated them: the party's id adds no path
    /// segment or query to the URL. Connecting must succeed within `rules.timeout`.
    pub fn new(
        outbound_url: &str,
        party: &Party,
        rules: &HealthRules,
        outbound: &OutboundLimits,
        tls: &TlsConfig,
    ) -> Probe {
        let url =
            format!("{}/parties/{}/{}", outbound_url.trim_end_matches('/'), party.id_type, party.id_value);
        let url = url.parse().expect("a validated outbound_url and party make a valid URL");
        Probe {
            connector: Connector::new(tls, rules.timeout, rules.timeout),
            url,
            given_up_after: outbound.timeout,
            response_bytes_max: outbound.response_bytes_max,
        }
    }

    /// One lookup, to its answer or until it is given up.
    pub async fn once(&self) -> Result<(), ProbeError> {
        let (bytes_max, given_up_after) = (self.response_bytes_max, self.given_up_after);
        match get(&self.connector, &self.url, "application/json", bytes_max, given_up_after).await {
            Ok(answer) => completed_lookup(answer.status, &answer.body),
            Err(GetError::Connect(e)) => Err(ProbeError::NotReached(e.to_string())),
            Err(GetError::TimedOut(after)) => Err(ProbeError::NoAnswer(after)),
            Err(e) => Err(ProbeError::Broken(e.to_string())),
        }
    }
}

/// Whether an answer is that of a lookup that completed (see the module doc).
fn completed_lookup(status: StatusCode, body: &[u8]) -> Result<(), ProbeError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let completed = match status {
        StatusCode::OK => json.as_ref().is_some_and(|j| j["currentState"] == "COMPLETED"),
        StatusCode::NOT_FOUND => json.as_ref().is_some_and(|j| j.get("errorInformation").is_some()),
        _ => false,
    };
    if completed {
        return Ok(());
    }
    let message = json
        .as_ref()
        .and_then(|j| j["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("not a completed party lookup: {}", body_prefix(body)));
    Err(ProbeError::Refused { status: status.as_u16(), message })
}

/// Probes the Connector every `rules.interval` until the node starts draining, recording each
/// outcome in `health`. One request at a time: one still unanswered is waited on again at the next
/// tick, never joined by a second (see the module doc).
pub async fn run(health: Arc<ConnectorHealth>, probe: Probe, rules: HealthRules, shutdown: ShutdownSignal) {
    let mut ticks = tokio::time::interval(rules.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The request waiting for its answer, and when it was sent.
    let mut in_flight = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.reached(Phase::Draining) => return,
        }
        let (sent, asking) = in_flight.get_or_insert_with(|| (Instant::now(), Box::pin(probe.once())));
        let sent = *sent;
        let answered = tokio::select! {
            answered = tokio::time::timeout(rules.timeout, asking.as_mut()) => answered.ok(),
            _ = shutdown.reached(Phase::Draining) => return,
        };
        let (outcome, at) = match answered {
            Some(outcome) => {
                in_flight = None;
                let at = if outcome.is_ok() { Instant::now() } else { sent };
                (outcome, at)
            }
            None => (Err(ProbeError::NoAnswer(sent.elapsed())), sent),
        };
        health.observe(outcome, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOWN_AFTER: u32 = 3;
    const SECOND: Duration = Duration::from_secs(1);

    fn no_answer() -> Result<(), ProbeError> {
        Err(ProbeError::NoAnswer(Duration::from_millis(3000)))
    }

    fn change(from: Standing, to: Standing) -> Option<Change> {
        Some(Change { from, to })
    }

    #[test]
    fn the_first_answer_brings_the_connector_up_from_unknown() {
        let start = Instant::now();
        let mut h = Health::new(start);
        assert_eq!(h.standing, Standing::Unknown);
        assert_eq!(h.observe(Ok(()), start + SECOND, DOWN_AFTER), change(Standing::Unknown, Standing::Up));
        assert_eq!((h.standing, h.since, h.failures), (Standing::Up, start + SECOND, 0));
        // Answers that follow change nothing.
        assert_eq!(h.observe(Ok(()), start + 2 * SECOND, DOWN_AFTER), None);
        assert_eq!(h.since, start + SECOND);
    }

    #[test]
    fn failures_in_a_row_make_it_down_since_the_first_of_them_and_one_answer_brings_it_back() {
        let t0 = Instant::now();
        let mut h = Health::new(t0);
        h.observe(Ok(()), t0, DOWN_AFTER);
        assert_eq!(h.observe(no_answer(), t0 + SECOND, DOWN_AFTER), None);
        assert_eq!(h.observe(no_answer(), t0 + 2 * SECOND, DOWN_AFTER), None);
        assert_eq!(h.standing, Standing::Up, "two failures are not an outage");
        assert_eq!(h.observe(no_answer(), t0 + 3 * SECOND, DOWN_AFTER), change(Standing::Up, Standing::Down));
        assert_eq!((h.standing, h.since, h.failures), (Standing::Down, t0 + SECOND, 3));
        // Further failures are counted, and change nothing else.
        assert_eq!(h.observe(no_answer(), t0 + 4 * SECOND, DOWN_AFTER), None);
        assert_eq!((h.since, h.failures), (t0 + SECOND, 4));
        assert_eq!(h.observe(Ok(()), t0 + 5 * SECOND, DOWN_AFTER), change(Standing::Down, Standing::Up));
        assert_eq!(
            (h.standing, h.since, h.failures, h.failing_since),
            (Standing::Up, t0 + 5 * SECOND, 0, None)
        );
        assert_eq!(h.last_error, Some(ProbeError::NoAnswer(Duration::from_millis(3000))), "kept as a clue");
    }

    #[test]
    fn an_answer_between_failures_starts_the_count_again() {
        let t0 = Instant::now();
        let mut h = Health::new(t0);
        h.observe(Ok(()), t0, DOWN_AFTER);
        for round in 0..10u32 {
            let at = t0 + SECOND * (3 * round + 1);
            assert_eq!(h.observe(no_answer(), at, DOWN_AFTER), None);
            assert_eq!(h.observe(no_answer(), at + SECOND, DOWN_AFTER), None);
            assert_eq!(h.observe(Ok(()), at + 2 * SECOND, DOWN_AFTER), None);
        }
        assert_eq!((h.standing, h.failures), (Standing::Up, 0));
    }

    #[test]
    fn a_connector_that_never_answered_is_down_after_as_many_failures() {
        let t0 = Instant::now();
        let mut h = Health::new(t0);
        let refused = || Err(ProbeError::NotReached("connection refused".into()));
        assert_eq!(h.observe(refused(), t0 + SECOND, DOWN_AFTER), None);
        assert_eq!(h.observe(refused(), t0 + 2 * SECOND, DOWN_AFTER), None);
        assert_eq!(h.standing, Standing::Unknown);
        assert_eq!(
            h.observe(refused(), t0 + 3 * SECOND, DOWN_AFTER),
            change(Standing::Unknown, Standing::Down)
        );
        assert_eq!(h.since, t0 + SECOND);
        // With one failure allowed, the first makes it down.
        let mut strict = Health::new(t0);
        strict.observe(Ok(()), t0, 1);
        assert_eq!(strict.observe(refused(), t0 + SECOND, 1), change(Standing::Up, Standing::Down));
    }

    #[test]
    fn the_failure_count_does_not_overflow() {
        let t0 = Instant::now();
        let mut h = Health { failures: u32::MAX - 1, ..Health::new(t0) };
        h.observe(no_answer(), t0, DOWN_AFTER);
        h.observe(no_answer(), t0, DOWN_AFTER);
        assert_eq!((h.standing, h.failures), (Standing::Down, u32::MAX));
    }

    fn rules() -> HealthRules {
        HealthRules { interval: SECOND, timeout: Duration::from_millis(500), down_after_failures: DOWN_AFTER }
    }

    fn outbound() -> OutboundLimits {
        OutboundLimits { timeout: Duration::from_secs(40), response_bytes_max: 65_536 }
    }

    #[test]
    fn readiness_names_the_connector_and_the_gauge_follows_the_standing() {
        let gauge = IntGauge::new("up", "up").unwrap();
        gauge.set(1);
        let health = ConnectorHealth::new("http://127.0.0.1:4001", &rules(), gauge.clone());
        assert_eq!(gauge.get(), 0, "not up before an answer");
        let e = health.ready().unwrap_err();
        assert!(matches!(e, NotReady::NotYetAnswered { failures: 0, .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "the Mojaloop Connector at http://127.0.0.1:4001 has not answered a probe yet"
        );
        let now = Instant::now();
        health.observe(Ok(()), now);
        assert_eq!((health.ready(), gauge.get()), (Ok(()), 1));
        for _ in 0..DOWN_AFTER {
            health.observe(no_answer(), now);
        }
        assert_eq!(gauge.get(), 0);
        let text = health.ready().unwrap_err().to_string();
        assert!(
            text.starts_with(
                "the Mojaloop Connector at http://127.0.0.1:4001 is down: no probe answered for "
            ),
            "{text}"
        );
        assert!(text.ends_with(" s (3 failed in a row, the last: no answer for 3000 ms)"), "{text}");
        health.observe(Ok(()), now);
        assert_eq!((health.ready(), gauge.get()), (Ok(()), 1));
    }

    #[test]
    fn only_a_completed_lookup_counts_as_an_answer() {
        let ok = |status: u16, body: &str| {
            completed_lookup(StatusCode::from_u16(status).unwrap(), body.as_bytes())
        };
        // As 18.0.2 answers a lookup, found or not.
        assert_eq!(ok(200, r#"{"party": {"body": {}}, "currentState": "COMPLETED"}"#), Ok(()));
        assert_eq!(ok(404, r#"{"errorInformation": {"errorCode": "3204"}}"#), Ok(()));
        // The scheme cannot be reached, or its Redis: the Connector cannot pay either.
        assert_eq!(
            ok(500, r#"{"message": "connect ECONNREFUSED 127.0.0.1:4000", "statusCode": "500"}"#),
            Err(ProbeError::Refused { status: 500, message: "connect ECONNREFUSED 127.0.0.1:4000".into() })
        );
        // Anything else, at that URL, is not the Connector's outbound API answering a lookup.
        for (status, body) in
            [(200, ""), (200, r#"{"currentState": "ERROR_OCCURRED"}"#), (404, "Not Found"), (204, "")]
        {
            let e = ok(status, body).unwrap_err();
            assert!(matches!(e, ProbeError::Refused { .. }), "{status} {body}: {e}");
        }
    }

    #[test]
    fn the_probe_asks_for_the_node_s_own_party() {
        let party = Party::new("BUSINESS", "thitsax", Some("thitsaxfsp")).unwrap();
        let tls = TlsConfig::new(&Default::default());
        let probe = Probe::new("http://127.0.0.1:4001/sdk/", &party, &rules(), &outbound(), &tls);
        assert_eq!(probe.url.to_string(), "http://127.0.0.1:4001/sdk/parties/BUSINESS/thitsax");
    }

    /// A Connector that accepts and never answers: down after as many ticks, on one request only
    /// (a second lookup in flight could wedge a real Connector).
    #[tokio::test]
    async fn a_probe_never_answered_counts_at_every_tick_and_is_never_joined_by_a_second() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let holding = {
            let accepted = accepted.clone();
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((stream, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    held.push(stream);
                }
            })
        };
        let party = Party::new("BUSINESS", "thitsax", None).unwrap();
        let rules = HealthRules {
            interval: Duration::from_millis(40),
            timeout: Duration::from_millis(20),
            down_after_failures: 5,
        };
        let health = Arc::new(ConnectorHealth::new(&url, &rules, IntGauge::new("up", "up").unwrap()));
        let probe = Probe::new(&url, &party, &rules, &outbound(), &TlsConfig::new(&Default::default()));
        let (shutdown, signal) = crate::shutdown::Shutdown::new();
        let watching = tokio::spawn(run(health.clone(), probe, rules, signal));
        let deadline = Instant::now() + Duration::from_secs(30);
        while health.health().standing != Standing::Down {
            assert!(Instant::now() < deadline, "not down: {:?}", health.health());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let h = health.health();
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "{h:?}");
        let Some(ProbeError::NoAnswer(waited)) = h.last_error else { panic!("{h:?}") };
        // Five ticks 40 ms apart, the first waited on since the first.
        assert!(waited >= Duration::from_millis(4 * 40), "{waited:?}");
        shutdown.drain();
        tokio::time::timeout(Duration::from_secs(10), watching).await.expect("stops on drain").unwrap();
        holding.abort();
    }
}
