//! compare's output: the progress line after each run, the text report (the
//! table of medians, the redis-server block, the checks) and the `--json`
//! line.
//!
//! Formatting only: every figure is computed in `figures` and `checks`, so
//! the report and the JSON line cannot disagree.

use crate::cli::CompareArgs;
use crate::compare::checks::{overall, Check, Verdict};
use crate::compare::figures::{per_packet_us, RedisSummary, Run, Target, TargetSummary};
use crate::compare::redis::RedisServer;
use crate::compare::targets::COMPARE_DESTINATION;

pub(crate) fn progress_line(r: &Run) -> String {
    let redis = match &r.redis {
        Some(x) => format!(
            "  redis {:.2} cmds/packet cpu {:.1} µs/packet{}",
            r.redis_calls_per_packet(),
            r.redis_cpu_us_per_packet(),
            if x.failed() > 0 { format!(" FAILED CALLS {}", x.failed()) } else { String::new() }
        ),
        None => String::new(),
    };
    format!(
        "compare: round {} {:<13} {:>8.0} packets/s  p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  cpu {:.1} µs/packet  not fulfilled {}{redis}{}",
        r.round,
        r.target.name(),
        r.send.packets_per_s,
        r.send.p50_ms,
        r.send.p99_ms,
        r.send.max_ms,
        r.target_cpu_us_per_packet(),
        r.not_fulfilled(),
        if r.quiet { "" } else { "  (machine was busy)" }
    )
}

pub(crate) fn report_text(
    a: &CompareArgs,
    connector_packets: u64,
    redis: Option<&RedisServer>,
    summaries: &[TargetSummary],
    checks: &[Check],
    runs: &[Run],
) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let names: Vec<&str> = summaries.iter().map(|t| t.target.name()).collect();
    let _ = writeln!(s, "== load compare: {} ==", names.join(" vs "));
    let _ = writeln!(
        s,
        "runs          {} rounds of ({}), C={}, warm-up {} per run, one `send` child process per run",
        a.rounds,
        names.join(", "),
        a.concurrency,
        a.warmup
    );
    let _ = write!(
        s,
        "thitsax       node.worker_threads = {}, store = {}",
        a.thitsax_worker_threads,
        a.thitsax_store.name()
    );
    if let Some(r) = redis {
        let _ = write!(s, " (own redis-server {} at {}, no persistence)", r.version, r.url());
    }
    let _ = writeln!(s);
    let _ = write!(s, "packets       {} measured per run", a.packets);
    if summaries.iter().any(|t| t.target == Target::IlpConnector) {
        let _ =
            write!(s, "; ilp-connector {connector_packets} per run (--connector-packets: it is ~10x slower)");
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "figures       median over rounds; cpu = target process user+system time per measured packet"
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<15} {:>10} {:>9} {:>9} {:>9} {:>11} {:>14}",
        "target", "packets/s", "p50 ms", "p99 ms", "max ms", "cpu µs/pkt", "not fulfilled"
    );
    for t in summaries {
        let _ = writeln!(
            s,
            "{:<15} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>11.1} {:>14}",
            t.target.name(),
            t.packets_per_s,
            t.p50_ms,
            t.p99_ms,
            t.max_ms,
            t.cpu_us_per_packet,
            t.not_fulfilled
        );
    }
    if let Some(r) = summaries.iter().find_map(|t| t.redis.as_ref()) {
        let _ = writeln!(s);
        let _ = write!(s, "{}", redis_text(r));
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{:<34} {:>8}  {:<8} verdict", "check", "value", "limit");
    for c in checks {
        let value = c.value.map(|v| format!("{v:.*}", c.decimals)).unwrap_or_else(|| "-".into());
        let _ = writeln!(s, "{:<34} {:>8}  {:<8} {}", c.what, value, c.limit, c.verdict.text());
    }
    let busy = runs.iter().filter(|r| !r.quiet).count();
    if busy > 0 {
        let _ = writeln!(
            s,
            "WARNING: {busy} of {} runs started while the CPUs were below {}% idle (figures may be low)",
            runs.len(),
            a.quiet_idle_pct
        );
    }
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    let _ = writeln!(
        s,
        "result        {} ({} passed, {} failed, {} not measured)",
        overall(checks).text(),
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::NotMeasured)
    );
    s
}

/// The redis-server block of the text report.
fn redis_text(r: &RedisSummary) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "redis-server  per measured ThitsaX packet, median over rounds (commands run by Lua scripts count too)"
    );
    let _ = writeln!(s, "  {:<22} {:>9.3}", "commands/packet", r.calls_per_packet);
    let _ = writeln!(s, "  {:<22} {:>9.1}", "cpu µs/packet", r.cpu_us_per_packet);
    let _ = writeln!(s, "  {:<22} {:>9.1}", "thitsax+redis cpu µs", r.thitsax_and_redis_cpu_us_per_packet);
    let _ = writeln!(s, "  {:<22} {:>9} {:>9}", "command", "calls/pkt", "µs/pkt");
    // Most called first.
    let mut commands: Vec<(&String, &(f64, f64))> = r.commands.iter().collect();
    commands.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0).then_with(|| a.0.cmp(b.0)));
    // A command far rarer than packets (e.g. the sweeper's) would show as 0.000.
    let rare = |v: f64, decimals: usize| {
        let shown = format!("{v:.decimals$}");
        if v > 0.0 && shown.trim_start_matches(['0', '.']).is_empty() {
            format!("<{:.decimals$}", 0.1f64.powi(decimals as i32))
        } else {
            shown
        }
    };
    for (name, (calls, usec)) in commands {
        let _ = writeln!(s, "  {name:<22} {:>9} {:>9}", rare(*calls, 3), rare(*usec, 2));
    }
    if r.failed > 0 {
        let _ =
            writeln!(s, "  WARNING: {} failed or rejected Redis calls during the measured phases", r.failed);
    }
    s
}

pub(crate) fn report_json(
    a: &CompareArgs,
    connector_packets: u64,
    redis: Option<&RedisServer>,
    summaries: &[TargetSummary],
    checks: &[Check],
    runs: &[Run],
    pass: bool,
) -> String {
    use serde_json::json;
    let targets: serde_json::Map<String, serde_json::Value> = summaries
        .iter()
        .map(|t| {
            let mut v = json!({
                "rounds": t.rounds, "packets": t.packets, "packets_per_s": t.packets_per_s,
                "p50_ms": t.p50_ms, "p99_ms": t.p99_ms, "max_ms": t.max_ms,
                "cpu_us_per_packet": t.cpu_us_per_packet, "not_fulfilled": t.not_fulfilled,
            });
            if let Some(r) = &t.redis {
                let commands: serde_json::Map<String, serde_json::Value> = r
                    .commands
                    .iter()
                    .map(|(name, (calls, usec))| {
                        (name.clone(), json!({"calls_per_packet": calls, "usec_per_packet": usec}))
                    })
                    .collect();
                v["redis"] = json!({
                    "calls_per_packet": r.calls_per_packet, "cpu_us_per_packet": r.cpu_us_per_packet,
                    "thitsax_and_redis_cpu_us_per_packet": r.thitsax_and_redis_cpu_us_per_packet,
                    "failed_calls": r.failed, "commands": commands,
                });
            }
            (t.target.name().to_string(), v)
        })
        .collect();
    let runs: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            let mut v = json!({
                "round": r.round, "target": r.target.name(), "packets": r.send.packets,
                "packets_per_s": r.send.packets_per_s, "p50_ms": r.send.p50_ms, "p99_ms": r.send.p99_ms,
                "max_ms": r.send.max_ms, "fulfilled": r.send.fulfilled, "rejected": r.send.rejected,
                "errors": r.send.errors, "aborted": r.send.aborted,
                "target_cpu_us_per_packet": r.target_cpu_us_per_packet(),
                "receiver_cpu_us_per_packet": per_packet_us(r.receiver_cpu_s, r.send.packets),
                "sender_cpu_us_per_packet": per_packet_us(r.send.sender_cpu_s, r.send.packets),
                "quiet": r.quiet,
            });
            if let Some(x) = &r.redis {
                let commands: serde_json::Map<String, serde_json::Value> = x
                    .commands
                    .iter()
                    .map(|(name, c)| {
                        (name.clone(), json!({"calls": c.calls, "usec": c.usec, "failed": c.failed}))
                    })
                    .collect();
                v["redis"] = json!({
                    "calls": x.calls(), "calls_per_packet": r.redis_calls_per_packet(),
                    "cpu_us_per_packet": r.redis_cpu_us_per_packet(), "failed_calls": x.failed(),
                    "commands": commands,
                });
            }
            v
        })
        .collect();
    let checks: Vec<serde_json::Value> = checks
        .iter()
        .map(|c| json!({"check": c.what, "value": c.value, "limit": c.limit, "verdict": c.verdict.text()}))
        .collect();
    json!({
        "compare": {
            "packets": a.packets, "connector_packets": connector_packets, "concurrency": a.concurrency,
            "warmup": a.warmup, "rounds": a.rounds, "destination": COMPARE_DESTINATION,
            "quiet_idle_pct": a.quiet_idle_pct, "thitsax_worker_threads": a.thitsax_worker_threads,
            "thitsax_store": a.thitsax_store.name(),
            "redis_server": redis.map(|r| json!({"version": r.version, "url": r.url()})),
        },
        "targets": targets,
        "checks": checks,
        "pass": pass,
        "runs": runs,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::figures::tests::run;
    use crate::compare::figures::{summarize, RedisSummary, Run, Target};
    use crate::compare::redis::tests::stat;
    use crate::compare::redis::RedisRun;

    fn redis_run(target: Target, round: usize, commands: &[(&str, u64)], cpu_s: f64) -> Run {
        let mut r = run(target, round, 100.0, 1000);
        let commands = commands.iter().map(|(n, c)| (n.to_string(), stat(*c, 2 * c, 0))).collect();
        r.redis = Some(RedisRun { commands, cpu_s });
        r
    }

    #[test]
    fn summarize_redis_per_packet_medians() {
        let runs = [
            redis_run(Target::Thitsax, 1, &[("evalsha", 3000), ("get", 10)], 0.010),
            run(Target::Proxy, 1, 300.0, 1000),
            redis_run(Target::Thitsax, 2, &[("evalsha", 3000), ("hset", 1000)], 0.030),
            redis_run(Target::Thitsax, 3, &[("evalsha", 2000), ("get", 30), ("zrangebyscore", 0)], 0.020),
        ];
        assert_eq!(runs[0].redis_calls_per_packet(), 3.01);
        assert!(run(Target::Thitsax, 1, 1.0, 1000).redis_calls_per_packet().is_nan());
        let s = summarize(Target::Thitsax, &runs).unwrap();
        let r = s.redis.expect("redis figures");
        // Totals per round: 3.01, 4.0, 2.03 calls/packet; 10, 30, 20 µs/packet.
        assert_eq!(r.calls_per_packet, 3.01);
        assert!((r.cpu_us_per_packet - 20.0).abs() < 1e-9, "{}", r.cpu_us_per_packet);
        // ThitsaX's own CPU in `run` is 0.01 * round s: 10+10, 20+30, 30+20 µs/packet.
        assert!((r.thitsax_and_redis_cpu_us_per_packet - 50.0).abs() < 1e-9);
        // A command missing from a round counts 0 there.
        assert_eq!(r.commands["evalsha"], (3.0, 6.0));
        assert_eq!(r.commands["get"], (0.01, 0.02));
        assert_eq!(r.commands["hset"], (0.0, 0.0));
        assert_eq!(r.failed, 0);
        assert!(summarize(Target::Proxy, &runs).unwrap().redis.is_none());
        let text = redis_text(&summarize(Target::Thitsax, &runs).unwrap().redis.unwrap());
        let rows: Vec<Vec<&str>> = text.lines().skip(5).map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            rows,
            [
                ["evalsha", "3.000", "6.00"],
                ["get", "0.010", "0.02"],
                ["hset", "0.000", "0.00"],
                ["zrangebyscore", "0.000", "0.00"]
            ],
            "{text}"
        );
        let rare = RedisSummary { commands: [("zrangebyscore".to_string(), (0.0002, 0.004))].into(), ..r };
        assert!(
            redis_text(&rare).contains("zrangebyscore             <0.001     <0.01"),
            "{}",
            redis_text(&rare)
        );
    }
}
