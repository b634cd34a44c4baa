//! What compare measures and how it sums up the rounds: the targets, the
//! figures of one `send` run read from its JSON line, and the per-target
//! medians.
//!
//! Pure functions over plain values, so that the medians are tested without
//! running anything; each figure is its own median over the rounds.

use std::collections::BTreeMap;

use crate::compare::redis::{CommandStat, RedisRun};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Proxy,
    Thitsax,
    IlpConnector,
}

impl Target {
    /// Order within a round, and of the table.
    pub(crate) const ALL: [Target; 3] = [Target::Proxy, Target::Thitsax, Target::IlpConnector];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Target::Proxy => "proxy",
            Target::Thitsax => "thitsax",
            Target::IlpConnector => "ilp-connector",
        }
    }
}

/// What `compare` reads from the JSON line of one `send` run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SendFigures {
    pub(crate) packets: u64,
    pub(crate) packets_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) fulfilled: u64,
    pub(crate) rejected: u64,
    pub(crate) errors: u64,
    pub(crate) aborted: bool,
    pub(crate) sender_cpu_s: f64,
}

pub(crate) fn parse_send_json(line: &str) -> Result<SendFigures, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("send's last line is not JSON ({e}): {line:?}"))?;
    let num = |k: &str| v[k].as_f64().ok_or_else(|| format!("send's JSON has no number {k:?}: {line}"));
    let int = |k: &str| v[k].as_u64().ok_or_else(|| format!("send's JSON has no integer {k:?}: {line}"));
    Ok(SendFigures {
        packets: int("packets")?,
        packets_per_s: num("packets_per_s")?,
        p50_ms: num("p50_ms")?,
        p99_ms: num("p99_ms")?,
        max_ms: num("max_ms")?,
        fulfilled: int("fulfilled")?,
        rejected: int("rejected")?,
        errors: int("errors")?,
        aborted: v["aborted"].as_bool().unwrap_or(true),
        sender_cpu_s: v["sender_cpu_s"].as_f64().unwrap_or(f64::NAN),
    })
}

/// One `send` run against one target, with the CPU the target and the
/// receiver used during its measured phase.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub(crate) target: Target,
    pub(crate) round: usize,
    pub(crate) send: SendFigures,
    pub(crate) target_cpu_s: f64,
    pub(crate) receiver_cpu_s: f64,
    /// ThitsaX's redis-server over the measured phase (ThitsaX runs with `--thitsax-store redis`).
    pub(crate) redis: Option<RedisRun>,
    /// False when the machine was still busy when the quiet wait gave up.
    pub(crate) quiet: bool,
}

impl Run {
    /// Packets sent in the measured phase that did not come back as a Fulfill.
    pub(crate) fn not_fulfilled(&self) -> u64 {
        self.send.packets.saturating_sub(self.send.fulfilled)
    }

    pub(crate) fn target_cpu_us_per_packet(&self) -> f64 {
        per_packet_us(self.target_cpu_s, self.send.packets)
    }

    /// Redis commands per measured packet (NaN without Redis).
    pub(crate) fn redis_calls_per_packet(&self) -> f64 {
        self.redis.as_ref().map_or(f64::NAN, |r| per_packet(r.calls() as f64, self.send.packets))
    }

    pub(crate) fn redis_cpu_us_per_packet(&self) -> f64 {
        self.redis.as_ref().map_or(f64::NAN, |r| per_packet_us(r.cpu_s, self.send.packets))
    }
}

fn per_packet(value: f64, packets: u64) -> f64 {
    if packets == 0 {
        return f64::NAN;
    }
    value / packets as f64
}

pub(crate) fn per_packet_us(cpu_s: f64, packets: u64) -> f64 {
    per_packet(cpu_s * 1e6, packets)
}

/// Median of the finite values (mean of the middle two for an even count);
/// NaN when there is none.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Medians over the rounds of one target. Each figure is its own median, so
/// the p99 shown may come from another round than the packets/s.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TargetSummary {
    pub(crate) target: Target,
    pub(crate) rounds: usize,
    pub(crate) packets: u64,
    pub(crate) packets_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) cpu_us_per_packet: f64,
    pub(crate) not_fulfilled: u64,
    /// ThitsaX's redis-server, when it ran on one.
    pub(crate) redis: Option<RedisSummary>,
}

/// ThitsaX's redis-server per measured packet, medians over the rounds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RedisSummary {
    pub(crate) calls_per_packet: f64,
    pub(crate) cpu_us_per_packet: f64,
    /// ThitsaX's and redis-server's CPU together.
    pub(crate) thitsax_and_redis_cpu_us_per_packet: f64,
    /// Per command: (calls, usec) per packet, each its own median (0 in a round
    /// without that command), so they need not add up to `calls_per_packet`.
    pub(crate) commands: BTreeMap<String, (f64, f64)>,
    /// Failed and rejected calls, summed over all rounds.
    pub(crate) failed: u64,
}

fn summarize_redis(runs: &[&Run]) -> Option<RedisSummary> {
    let with: Vec<(&Run, &RedisRun)> = runs.iter().filter_map(|r| Some((*r, r.redis.as_ref()?))).collect();
    if with.is_empty() {
        return None;
    }
    let med =
        |f: &dyn Fn(&Run, &RedisRun) -> f64| median(&with.iter().map(|(r, x)| f(r, x)).collect::<Vec<_>>());
    let names: std::collections::BTreeSet<&String> =
        with.iter().flat_map(|(_, x)| x.commands.keys()).collect();
    let commands = names
        .into_iter()
        .map(|name| {
            let of = |r: &Run, x: &RedisRun, f: fn(&CommandStat) -> u64| {
                per_packet(x.commands.get(name).map_or(0, f) as f64, r.send.packets)
            };
            let calls = med(&|r, x| of(r, x, |c| c.calls));
            let usec = med(&|r, x| of(r, x, |c| c.usec));
            (name.clone(), (calls, usec))
        })
        .collect();
    Some(RedisSummary {
        calls_per_packet: med(&|r, _| r.redis_calls_per_packet()),
        cpu_us_per_packet: med(&|r, _| r.redis_cpu_us_per_packet()),
        thitsax_and_redis_cpu_us_per_packet: med(&|r, x| {
            per_packet_us(r.target_cpu_s + x.cpu_s, r.send.packets)
        }),
        commands,
        failed: with.iter().map(|(_, x)| x.failed()).sum(),
    })
}

pub(crate) fn summarize(target: Target, runs: &[Run]) -> Option<TargetSummary> {
    let mine: Vec<&Run> = runs.iter().filter(|r| r.target == target).collect();
    if mine.is_empty() {
        return None;
    }
    let med = |f: &dyn Fn(&Run) -> f64| median(&mine.iter().map(|r| f(r)).collect::<Vec<_>>());
    Some(TargetSummary {
        target,
        rounds: mine.len(),
        packets: mine[0].send.packets,
        packets_per_s: med(&|r| r.send.packets_per_s),
        p50_ms: med(&|r| r.send.p50_ms),
        p99_ms: med(&|r| r.send.p99_ms),
        max_ms: med(&|r| r.send.max_ms),
        cpu_us_per_packet: med(&|r| r.target_cpu_us_per_packet()),
        not_fulfilled: mine.iter().map(|r| r.not_fulfilled()).sum(),
        redis: summarize_redis(&mine),
    })
}

// Visible to the other compare modules: report's tests reuse a helper.
#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::summary::Summary;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
        assert!(median(&[]).is_nan());
        // A round whose CPU could not be read does not drag the median.
        assert_eq!(median(&[f64::NAN, 5.0, 1.0, 3.0]), 3.0);
        assert!(median(&[f64::NAN]).is_nan());
    }

    pub(crate) fn run(target: Target, round: usize, packets_per_s: f64, fulfilled: u64) -> Run {
        Run {
            target,
            round,
            send: SendFigures {
                packets: 1000,
                packets_per_s,
                p50_ms: round as f64,
                p99_ms: 10.0 * round as f64,
                max_ms: 100.0,
                fulfilled,
                rejected: 1000 - fulfilled,
                errors: 0,
                aborted: false,
                sender_cpu_s: 0.5,
            },
            target_cpu_s: 0.01 * round as f64,
            receiver_cpu_s: 0.0,
            redis: None,
            quiet: true,
        }
    }

    #[test]
    fn summarize_takes_each_median_and_sums_failures() {
        let runs = [
            run(Target::Proxy, 1, 300.0, 1000),
            run(Target::Thitsax, 1, 100.0, 1000),
            run(Target::Proxy, 2, 100.0, 998),
            run(Target::Proxy, 3, 200.0, 999),
        ];
        let s = summarize(Target::Proxy, &runs).unwrap();
        assert_eq!((s.rounds, s.packets), (3, 1000));
        assert_eq!(s.packets_per_s, 200.0);
        assert_eq!((s.p50_ms, s.p99_ms), (2.0, 20.0));
        assert!((s.cpu_us_per_packet - 20.0).abs() < 1e-9, "{}", s.cpu_us_per_packet);
        assert_eq!(s.not_fulfilled, 3);
        assert!(summarize(Target::IlpConnector, &runs).is_none());
    }

    #[test]
    fn send_json_line_round_trips() {
        let mut s = Summary {
            label: "x".into(),
            url: "http://127.0.0.1:1/".into(),
            packets: 1000,
            concurrency: 50,
            seconds: 0.5,
            packets_per_s: 1996.0,
            fulfilled_per_s: 1990.0,
            p50_ms: 1.25,
            p90_ms: 2.0,
            p99_ms: 3.5,
            p999_ms: 4.0,
            max_ms: 7.125,
            mean_ms: 1.3,
            fulfilled: 995,
            rejected: 3,
            errors: 2,
            reject_codes: BTreeMap::new(),
            error_kinds: BTreeMap::new(),
            sender_cpu_s: 0.25,
            sender_threads: 1,
            aborted: false,
        };
        let f = parse_send_json(&s.to_json()).unwrap();
        let want = SendFigures {
            packets: 1000,
            packets_per_s: 1996.0,
            p50_ms: 1.25,
            p99_ms: 3.5,
            max_ms: 7.125,
            fulfilled: 995,
            rejected: 3,
            errors: 2,
            aborted: false,
            sender_cpu_s: 0.25,
        };
        assert_eq!(f, want);
        s.p99_ms = f64::NAN; // written as null
        assert!(parse_send_json(&s.to_json()).is_err());
        assert!(parse_send_json("send: 50/50 connections open").is_err());
    }
}
