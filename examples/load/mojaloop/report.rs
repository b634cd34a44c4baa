//! What `mojaloop` measures and prints: the figures of one side's run, their medians over the
//! rounds, the checks, and the table and JSON line.
//!
//! Pure functions over plain values, so that the figures and verdicts are tested without
//! running anything; each figure is its own median over the rounds, like `compare`'s.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::cli::Payee;
use crate::compare::figures::median;
use crate::mojaloop::payer::Batch;
use crate::mojaloop::timing::{Kind, Sample};
use crate::summary::percentile;

/// Problems printed (and put in the JSON per run); the rest are counted.
const PROBLEMS_SHOWN_MAX: usize = 20;

/// The two sides: the same Connector pair, the payee's backend the tool's own or ThitsaX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Direct,
    Thitsax,
}

impl Side {
    pub(crate) const ALL: [Side; 2] = [Side::Direct, Side::Thitsax];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Side::Direct => "direct",
            Side::Thitsax => "thitsax",
        }
    }

    pub(crate) fn path(self, payee: Payee) -> &'static str {
        match (self, payee) {
            (Side::Direct, _) => {
                "payer Connector -> payee Connector -> timing proxy -> the tool's payee backend (no ILP leg)"
            }
            (Side::Thitsax, Payee::ThitsaxWallet) => {
                "payer Connector -> payee Connector -> timing proxy -> ThitsaX node `dfsp` (backend API) \
                 -> STREAM over ILP-over-HTTP -> ThitsaX node `wallet` (local account `ana`, found by SPSP)"
            }
            (Side::Thitsax, Payee::Rafiki) => {
                "payer Connector -> payee Connector -> timing proxy -> ThitsaX node `dfsp` (backend API) \
                 -> STREAM over ILP-over-HTTP -> peer `rafiki`: the Rafiki test double in the tool \
                 (prefunded liquidity ledger, a wallet address found by SPSP)"
            }
        }
    }
}

/// One kind of backend request over one measured phase, in ms.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct KindFigures {
    pub(crate) count: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    /// Answers that were not 2xx.
    pub(crate) not_2xx: u64,
}

impl KindFigures {
    fn of(samples: &[Sample], kind: Kind) -> KindFigures {
        let mut us: Vec<u64> = samples.iter().filter(|s| s.kind == kind).map(|s| s.micros).collect();
        us.sort_unstable();
        let ms = |p: f64| if us.is_empty() { f64::NAN } else { percentile(&us, p) as f64 / 1e3 };
        KindFigures {
            count: us.len() as u64,
            p50_ms: ms(50.0),
            p99_ms: ms(99.0),
            max_ms: ms(100.0),
            not_2xx: samples.iter().filter(|s| s.kind == kind && !(200..300).contains(&s.status)).count()
                as u64,
        }
    }
}

/// One side's measured phase in one round.
#[derive(Clone, Debug)]
pub(crate) struct SideRun {
    pub(crate) side: Side,
    pub(crate) round: usize,
    /// Transfers sent in the measured phase.
    pub(crate) transfers: u64,
    pub(crate) committed: u64,
    pub(crate) seconds: f64,
    /// Committed transfers per second of the measured phase.
    pub(crate) transfers_per_s: f64,
    /// The payer's time per committed transfer (POST to answer).
    pub(crate) payer_p50_ms: f64,
    pub(crate) payer_p99_ms: f64,
    /// Parties, quotes, transfers, other.
    pub(crate) backend: BTreeMap<Kind, KindFigures>,
    /// Connections the payee Connector opened to its backend (the timing proxy).
    pub(crate) backend_connections: u64,
    /// Process name to CPU ms per transfer over the measured phase.
    pub(crate) cpu_ms_per_transfer: Vec<(&'static str, f64)>,
    /// Failed transfers (warm-up included) and anything else that went wrong: a book that does
    /// not add up, a backend answer that was not 2xx.
    pub(crate) problems: Vec<String>,
    /// False when the machine was still busy when the quiet wait gave up.
    pub(crate) quiet: bool,
}

impl SideRun {
    pub(crate) fn new(
        side: Side,
        round: usize,
        batch: &Batch,
        samples: &[Sample],
        transfers: u64,
    ) -> SideRun {
        let mut us = batch.latencies_us.clone();
        us.sort_unstable();
        let ms = |p: f64| if us.is_empty() { f64::NAN } else { percentile(&us, p) as f64 / 1e3 };
        let seconds = batch.elapsed.as_secs_f64();
        let committed = us.len() as u64;
        let mut backend: BTreeMap<Kind, KindFigures> =
            Kind::MEASURED.iter().map(|k| (*k, KindFigures::of(samples, *k))).collect();
        let other = KindFigures::of(samples, Kind::Other);
        if other.count > 0 {
            backend.insert(Kind::Other, other);
        }
        let mut problems: Vec<String> =
            batch.failures.iter().map(|f| format!("failed transfer {f}")).collect();
        for (kind, f) in &backend {
            if f.not_2xx > 0 {
                problems.push(format!("{} answers of {} were not 2xx", f.not_2xx, kind.name()));
            }
            // Each transfer makes one request of each kind; more means a repeat, fewer a miss.
            if *kind != Kind::Other && batch.failures.is_empty() && f.count != transfers {
                problems.push(format!("{} {} requests for {transfers} transfers", f.count, kind.name()));
            }
        }
        SideRun {
            side,
            round,
            transfers,
            committed,
            seconds,
            transfers_per_s: if seconds > 0.0 { committed as f64 / seconds } else { f64::NAN },
            payer_p50_ms: ms(50.0),
            payer_p99_ms: ms(99.0),
            backend,
            backend_connections: 0,
            cpu_ms_per_transfer: Vec::new(),
            problems,
            quiet: true,
        }
    }

    pub(crate) fn kind(&self, kind: Kind) -> Option<&KindFigures> {
        self.backend.get(&kind)
    }

    pub(crate) fn progress_line(&self) -> String {
        let t = self.kind(Kind::Transfers);
        format!(
            "mojaloop: round {} {}: {}/{} committed in {:.2} s = {:.1} transfers/s; payer p50 {:.1} ms p99 {:.1} ms; \
             backend POST /transfers p50 {:.2} ms p99 {:.2} ms{}{}",
            self.round,
            self.side.name(),
            self.committed,
            self.transfers,
            self.seconds,
            self.transfers_per_s,
            self.payer_p50_ms,
            self.payer_p99_ms,
            t.map_or(f64::NAN, |t| t.p50_ms),
            t.map_or(f64::NAN, |t| t.p99_ms),
            if self.problems.is_empty() { String::new() } else { format!("; {} problems", self.problems.len()) },
            if self.quiet { "" } else { " (machine busy)" },
        )
    }
}

/// One side's medians over the rounds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SideSummary {
    pub(crate) side: Side,
    pub(crate) rounds: usize,
    pub(crate) transfers_per_s: f64,
    pub(crate) payer_p50_ms: f64,
    pub(crate) payer_p99_ms: f64,
    /// Per kind: (p50, p99, max) medians.
    pub(crate) backend: BTreeMap<Kind, (f64, f64, f64)>,
    pub(crate) cpu_ms_per_transfer: Vec<(&'static str, f64)>,
    /// Connections the payee Connector opened to its backend per backend request.
    pub(crate) connections_per_request: f64,
    pub(crate) failed: u64,
}

pub(crate) fn summarize(side: Side, runs: &[SideRun]) -> Option<SideSummary> {
    let mine: Vec<&SideRun> = runs.iter().filter(|r| r.side == side).collect();
    if mine.is_empty() {
        return None;
    }
    let med = |f: &dyn Fn(&SideRun) -> f64| median(&mine.iter().map(|r| f(r)).collect::<Vec<_>>());
    let kinds: std::collections::BTreeSet<Kind> =
        mine.iter().flat_map(|r| r.backend.keys().copied()).collect();
    let backend = kinds
        .into_iter()
        .map(|k| {
            let of = |f: fn(&KindFigures) -> f64| med(&|r| r.kind(k).map_or(f64::NAN, f));
            (k, (of(|f| f.p50_ms), of(|f| f.p99_ms), of(|f| f.max_ms)))
        })
        .collect();
    let cpu = mine[0]
        .cpu_ms_per_transfer
        .iter()
        .map(|(name, _)| {
            let of =
                |r: &SideRun| r.cpu_ms_per_transfer.iter().find(|(n, _)| n == name).map_or(f64::NAN, |c| c.1);
            (*name, med(&of))
        })
        .collect();
    Some(SideSummary {
        side,
        rounds: mine.len(),
        transfers_per_s: med(&|r| r.transfers_per_s),
        payer_p50_ms: med(&|r| r.payer_p50_ms),
        payer_p99_ms: med(&|r| r.payer_p99_ms),
        backend,
        cpu_ms_per_transfer: cpu,
        connections_per_request: med(&|r| {
            let requests: u64 = r.backend.values().map(|k| k.count).sum();
            if requests == 0 {
                f64::NAN
            } else {
                r.backend_connections as f64 / requests as f64
            }
        }),
        failed: mine.iter().map(|r| r.transfers - r.committed).sum(),
    })
}

/// The goals the comparison checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Goals {
    /// thitsax/direct transfers per second, at least.
    pub(crate) ratio_min: f64,
    /// ThitsaX's own time for POST /transfers, p99, below (ms).
    pub(crate) own_p99_ms_max: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) value: f64,
    pub(crate) pass: bool,
}

/// The checks; a figure that could not be measured (NaN) fails its check.
pub(crate) fn checks(
    direct: &SideSummary,
    thitsax: &SideSummary,
    goals: Goals,
    problems: usize,
) -> Vec<Check> {
    let ratio = thitsax.transfers_per_s / direct.transfers_per_s;
    let own = thitsax.backend.get(&Kind::Transfers).map_or(f64::NAN, |k| k.1);
    vec![
        Check {
            name: format!("thitsax/direct transfers/s at least {}", goals.ratio_min),
            value: ratio,
            pass: ratio >= goals.ratio_min,
        },
        Check {
            name: format!("ThitsaX's own time for POST /transfers, p99 under {} ms", goals.own_p99_ms_max),
            value: own,
            pass: own < goals.own_p99_ms_max,
        },
        Check {
            name: "every transfer committed, paid once, every backend answer 2xx (problems)".into(),
            value: problems as f64,
            pass: problems == 0,
        },
    ]
}

/// What the run was, for the header and the JSON.
pub(crate) struct Setup<'a> {
    pub(crate) payee: Payee,
    pub(crate) transfers: u64,
    pub(crate) concurrency: usize,
    pub(crate) warmup: u64,
    pub(crate) rounds: usize,
    pub(crate) amount: &'a str,
    pub(crate) currency: &'a str,
    pub(crate) thitsax_worker_threads: usize,
    pub(crate) thitsax_log_level: &'a str,
    /// `dfsp`'s backend listener limits as set (`"defaults"` when none is).
    pub(crate) thitsax_backend_limits: String,
}

fn fmt(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "-".into()
    }
}

pub(crate) fn report_text(
    setup: &Setup,
    sides: &[SideSummary],
    checks: &[Check],
    runs: &[SideRun],
) -> String {
    let mut out = format!(
        "mojaloop: {} transfers of {} {} per side and round, {} in flight, {} warm-up, {} rounds (medians); \
         payee {}; ThitsaX nodes: worker_threads = {}, log_level = {}, backend listener: {}\n",
        setup.transfers,
        setup.amount,
        setup.currency,
        setup.concurrency,
        setup.warmup,
        setup.rounds,
        payee_name(setup.payee),
        setup.thitsax_worker_threads,
        setup.thitsax_log_level,
        setup.thitsax_backend_limits
    );
    for s in sides {
        out += &format!("  {:<8} {}\n", s.side.name(), s.side.path(setup.payee));
    }
    out += &format!(
        "\n{:<8} {:>12} {:>13} {:>13} {:>7}\n",
        "side", "transfers/s", "payer p50 ms", "payer p99 ms", "failed"
    );
    for s in sides {
        out += &format!(
            "{:<8} {:>12} {:>13} {:>13} {:>7}\n",
            s.side.name(),
            fmt(s.transfers_per_s, 1),
            fmt(s.payer_p50_ms, 1),
            fmt(s.payer_p99_ms, 1),
            s.failed
        );
    }
    out += "\ntime at the backend per request (timing proxy: request received -> answer sent), ms:\n";
    out += &format!("{:<20}", "request");
    for s in sides {
        out += &format!(" | {:<7} {:>7} {:>7} {:>7}", s.side.name(), "p50", "p99", "max");
    }
    out += "\n";
    let kinds: std::collections::BTreeSet<Kind> =
        sides.iter().flat_map(|s| s.backend.keys().copied()).collect();
    for k in kinds {
        out += &format!("{:<20}", k.name());
        for s in sides {
            let (p50, p99, max) = s.backend.get(&k).copied().unwrap_or((f64::NAN, f64::NAN, f64::NAN));
            out += &format!(" | {:<7} {:>7} {:>7} {:>7}", "", fmt(p50, 2), fmt(p99, 2), fmt(max, 1));
        }
        out += "\n";
    }
    let each: Vec<String> =
        sides.iter().map(|s| format!("{} {}", s.side.name(), fmt(s.connections_per_request, 2))).collect();
    out +=
        &format!("connections the payee Connector opened to its backend per request: {}\n", each.join(", "));
    out += "\nCPU ms per transfer (measured phase):\n";
    for s in sides {
        let each: Vec<String> =
            s.cpu_ms_per_transfer.iter().map(|(n, v)| format!("{n} {}", fmt(*v, 2))).collect();
        out += &format!("  {:<8} {}\n", s.side.name(), each.join(", "));
    }
    for side in Side::ALL {
        let each: Vec<String> =
            runs.iter().filter(|r| r.side == side).map(|r| fmt(r.transfers_per_s, 1)).collect();
        let own: Vec<String> = runs
            .iter()
            .filter(|r| r.side == side)
            .map(|r| r.kind(Kind::Transfers).map_or("-".into(), |k| fmt(k.p99_ms, 1)))
            .collect();
        out += &format!(
            "per round, {}: transfers/s [{}], POST /transfers p99 ms [{}]\n",
            side.name(),
            each.join(", "),
            own.join(", ")
        );
    }
    for c in checks {
        out += &format!("check: {}: {}: {}\n", c.name, fmt(c.value, 2), if c.pass { "PASS" } else { "FAIL" });
    }
    let problems: Vec<&String> = runs.iter().flat_map(|r| &r.problems).collect();
    for (r, p) in runs.iter().flat_map(|r| r.problems.iter().map(move |p| (r, p))).take(PROBLEMS_SHOWN_MAX) {
        out += &format!("problem: round {} {}: {p}\n", r.round, r.side.name());
    }
    if problems.len() > PROBLEMS_SHOWN_MAX {
        out += &format!("problem: ... and {} more\n", problems.len() - PROBLEMS_SHOWN_MAX);
    }
    if runs.iter().any(|r| !r.quiet) {
        out += "note: some runs were measured on a busy machine (the quiet wait gave up)\n";
    }
    out
}

/// `--payee`'s value, as given.
pub(crate) fn payee_name(payee: Payee) -> &'static str {
    match payee {
        Payee::ThitsaxWallet => "thitsax-wallet",
        Payee::Rafiki => "rafiki",
    }
}

fn side_json(s: &SideSummary, payee: Payee) -> Value {
    let backend: serde_json::Map<String, Value> = s
        .backend
        .iter()
        .map(|(k, (p50, p99, max))| {
            (k.key().to_string(), json!({"p50_ms": p50, "p99_ms": p99, "max_ms": max}))
        })
        .collect();
    let cpu: serde_json::Map<String, Value> =
        s.cpu_ms_per_transfer.iter().map(|(n, v)| (n.to_string(), json!(v))).collect();
    json!({
        "path": s.side.path(payee),
        "rounds": s.rounds,
        "transfers_per_s": s.transfers_per_s,
        "payer_p50_ms": s.payer_p50_ms,
        "payer_p99_ms": s.payer_p99_ms,
        "backend": backend,
        "cpu_ms_per_transfer": cpu,
        "backend_connections_per_request": s.connections_per_request,
        "failed": s.failed,
    })
}

pub(crate) fn report_json(setup: &Setup, sides: &[SideSummary], checks: &[Check], runs: &[SideRun]) -> Value {
    let by_side: serde_json::Map<String, Value> =
        sides.iter().map(|s| (s.side.name().to_string(), side_json(s, setup.payee))).collect();
    let runs: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({
                "side": r.side.name(),
                "round": r.round,
                "committed": r.committed,
                "transfers_per_s": r.transfers_per_s,
                "transfers_p99_ms": r.kind(Kind::Transfers).map(|k| k.p99_ms),
                "quoterequests_p99_ms": r.kind(Kind::Quotes).map(|k| k.p99_ms),
                "quiet": r.quiet,
                "problems_count": r.problems.len(),
                "problems": r.problems.iter().take(PROBLEMS_SHOWN_MAX).collect::<Vec<_>>(),
            })
        })
        .collect();
    let ratio = checks.first().map_or(f64::NAN, |c| c.value);
    json!({
        "transfers": setup.transfers,
        "payee": payee_name(setup.payee),
        "concurrency": setup.concurrency,
        "warmup": setup.warmup,
        "rounds": setup.rounds,
        "amount": setup.amount,
        "currency": setup.currency,
        "thitsax_worker_threads": setup.thitsax_worker_threads,
        "thitsax_log_level": setup.thitsax_log_level,
        "thitsax_backend_limits": setup.thitsax_backend_limits,
        "sides": by_side,
        "ratio": ratio,
        "checks": checks.iter().map(|c| json!({"name": c.name, "value": c.value, "pass": c.pass})).collect::<Vec<_>>(),
        "pass": checks.iter().all(|c| c.pass),
        "runs": runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample(kind: Kind, ms: u64) -> Sample {
        Sample { kind, status: 200, micros: ms * 1000, at_micros: 0 }
    }

    fn run(side: Side, round: usize, seconds: u64, transfer_ms: u64) -> SideRun {
        let batch = Batch {
            elapsed: Duration::from_secs(seconds),
            latencies_us: (1..=100).map(|i| i * 1000).collect(),
            failures: vec![],
        };
        let mut samples = Vec::new();
        for i in 0..100 {
            samples.push(sample(Kind::Parties, 1));
            samples.push(sample(Kind::Quotes, 2));
            samples.push(sample(Kind::Transfers, if i == 99 { 10 * transfer_ms } else { transfer_ms }));
        }
        let mut r = SideRun::new(side, round, &batch, &samples, 100);
        r.cpu_ms_per_transfer = vec![("payee Connector", round as f64)];
        r
    }

    #[test]
    fn a_run_has_the_throughput_and_percentiles_of_its_transfers() {
        let r = run(Side::Thitsax, 1, 2, 30);
        assert_eq!((r.committed, r.transfers_per_s), (100, 50.0));
        assert_eq!((r.payer_p50_ms, r.payer_p99_ms), (50.0, 99.0));
        let t = r.kind(Kind::Transfers).unwrap();
        assert_eq!((t.count, t.p50_ms, t.p99_ms, t.max_ms), (100, 30.0, 30.0, 300.0));
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert!(r.kind(Kind::Other).is_none());
    }

    #[test]
    fn failures_missing_requests_and_error_answers_are_problems() {
        let batch = Batch {
            elapsed: Duration::from_secs(1),
            latencies_us: vec![1000; 9],
            failures: vec!["t-3: status 500".into()],
        };
        let mut samples: Vec<Sample> = (0..10).map(|_| sample(Kind::Transfers, 5)).collect();
        samples[0].status = 502;
        let r = SideRun::new(Side::Direct, 1, &batch, &samples, 10);
        assert_eq!(r.committed, 9);
        assert!(r.problems.iter().any(|p| p.contains("t-3")), "{:?}", r.problems);
        assert!(r.problems.iter().any(|p| p.contains("not 2xx")), "{:?}", r.problems);
        // Without failures, a request count other than the transfers' is a problem.
        let ok = Batch { failures: vec![], ..batch };
        let r = SideRun::new(Side::Direct, 1, &ok, &samples[1..], 10);
        assert!(r.problems.iter().any(|p| p.contains("9 POST /transfers requests")), "{:?}", r.problems);
    }

    #[test]
    fn medians_over_rounds_and_the_checks() {
        let runs = [
            run(Side::Direct, 1, 1, 1),
            run(Side::Thitsax, 1, 2, 30),
            run(Side::Direct, 2, 2, 1),
            run(Side::Thitsax, 2, 1, 60),
            run(Side::Direct, 3, 1, 1),
            run(Side::Thitsax, 3, 1, 40),
        ];
        let d = summarize(Side::Direct, &runs).unwrap();
        let t = summarize(Side::Thitsax, &runs).unwrap();
        assert_eq!((d.rounds, d.transfers_per_s, t.transfers_per_s), (3, 100.0, 100.0));
        assert_eq!(t.backend[&Kind::Transfers].0, 40.0);
        assert_eq!(t.cpu_ms_per_transfer, vec![("payee Connector", 2.0)]);
        let goals = Goals { ratio_min: 0.8, own_p99_ms_max: 50.0 };
        let c = checks(&d, &t, goals, 0);
        assert_eq!(c.iter().map(|c| c.pass).collect::<Vec<_>>(), [true, true, true]);
        let c = checks(&d, &t, Goals { own_p99_ms_max: 40.0, ..goals }, 1);
        assert_eq!(c.iter().map(|c| c.pass).collect::<Vec<_>>(), [true, false, false]);
        let setup = Setup {
            payee: Payee::Rafiki,
            transfers: 100,
            concurrency: 10,
            warmup: 0,
            rounds: 3,
            amount: "1",
            currency: "USD",
            thitsax_worker_threads: 1,
            thitsax_log_level: "info",
            thitsax_backend_limits: "defaults".into(),
        };
        let text = report_text(&setup, &[d.clone(), t.clone()], &c, &runs);
        assert!(text.contains("POST /quoterequests") && text.contains("FAIL"), "{text}");
        assert!(text.contains("payee rafiki") && text.contains("Rafiki test double"), "{text}");
        let j = report_json(&setup, &[d, t], &c, &runs);
        assert_eq!(j["ratio"], 1.0);
        assert_eq!(j["sides"]["thitsax"]["backend"]["transfers"]["p50_ms"], 40.0);
        assert_eq!(j["pass"], false);
        assert_eq!(j["payee"], "rafiki");
    }
}
