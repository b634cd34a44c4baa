//! Load tool for ThitsaX (and any ILP-over-HTTP connector).
//!
//! Four subcommands, all loopback-only:
//!
//! * `receiver` — ILP-over-HTTP (RFC 0035) endpoint that fulfils every Prepare
//!   whose execution condition it can meet (see "Conditions" below).
//! * `proxy` — bare forwarding HTTP proxy: streams the request body to a fixed
//!   target URL and streams the response body back. No ILP parsing, no state.
//!   This is the ceiling reference for a connector in the same position.
//! * `send` — sends N Prepares with at most C in flight over C keep-alive
//!   connections, then prints a human-readable summary and one JSON line.
//! * `compare` — the side-by-side comparison in one command: starts a
//!   receiver, a bare proxy, ThitsaX and (with `--ilp-connector`) the JS
//!   reference connector as child processes, runs `send` against each in
//!   interleaved rounds and prints medians, ratios and the pass/fail checks
//!   (see "compare" below).
//!
//! Conditions: by default (`--condition data`) every Prepare carries a unique
//! 32-byte preimage as its data and the condition is SHA-256(preimage); the
//! receiver answers with that preimage as the fulfillment. ILP connectors
//! forward `data` unchanged, so this works through any connector. With
//! `--condition fixed` the data is empty and the condition is
//! SHA-256(FIXED_FULFILLMENT), which the receiver also recognises (it then
//! answers with a pre-built constant Fulfill).
//!
//! Typical topology (three terminals or background jobs):
//!
//! ```text
//! cargo run --release --example load -- receiver --listen 127.0.0.1:4001
//! cargo run --release --example load -- proxy --listen 127.0.0.1:4000 --to http://127.0.0.1:4001/
//! cargo run --release --example load -- send --url http://127.0.0.1:4000/ -n 200000 -c 50 \
//!     --destination test.receiver --amount 1 --warmup 5000
//! ```
//!
//! For a connector, point `send` at the connector (`--token` = the incoming
//! token of the sending account, `--destination` routed to an account whose
//! outgoing URL is the receiver) and the connector at the receiver.
//!
//! Output of `send`: a human-readable block, then one JSON line (the last line
//! on stdout). `packets_per_s` counts ILP answers (Fulfill + Reject) per second
//! of the measured phase; errors (non-200, timeouts, connection failures, bad
//! fulfillments) are counted apart and excluded from throughput and latency.
//! The receiver and proxy print their connection/request counts and CPU
//! seconds on SIGINT/SIGTERM (or at `--exit-after-secs`) to stderr.
//!
//! compare:
//!
//! ```text
//! cargo build --release
//! cargo run --release --example load -- compare --thitsax target/release/thitsax \
//!     --ilp-connector tests/interop/bench-connector.js -n 100000 -c 50 --warmup 5000 --rounds 3 \
//!     [--thitsax-store memory|redis] [--thitsax-worker-threads N] [--json]
//! ```
//!
//! Each round runs proxy, ThitsaX, ilp-connector in turn (interleaved so that
//! drift of the machine hits all three alike), each with a fresh `send` child
//! process, after waiting until the CPUs are idle (`--quiet-idle-pct` over 1 s,
//! giving up with a warning after `--quiet-timeout-secs`). ilp-connector gets
//! `--connector-packets` (default n/5) measured packets: it is about ten times
//! slower. The table shows per target the median over rounds of each figure
//! and the target process's CPU time (user + system, all threads, from
//! /proc/PID/stat) per packet of the measured phase; then the checks
//! ThitsaX/proxy packets/s >= 0.60, ThitsaX/ilp-connector >= 6, ThitsaX p99
//! < 5 ms, every packet fulfilled. Exit status 0 when all pass, 1 when one
//! fails or could not be measured, 2 on error. Every child is killed and the
//! temp dir removed at the end, also on error and on SIGINT/SIGTERM; node
//! also exits when compare dies by SIGKILL (its stdin pipe closes), the
//! receiver, proxy, ThitsaX and redis-server do not.
//!
//! `--thitsax-store redis` runs ThitsaX on the Redis store: compare starts its
//! own `redis-server` (from PATH) on a free 127.0.0.1 port (never 6379; it
//! checks with `INFO server` that the process answering there is the one it
//! started), with its `--dir` in the temp dir and no persistence (`--save ""`, `--appendonly
//! no`). Around each ThitsaX measured phase (same bounds as the CPU figures)
//! it reads `INFO commandstats` and reports Redis commands per measured packet,
//! in total and per command (Redis counts the commands a Lua script runs as
//! well as the EVALSHA itself; compare's own INFO is left out), and the
//! redis-server's CPU per packet. The throughput targets are then
//! ThitsaX/proxy >= 0.40 and ThitsaX/ilp-connector >= 4 (p99 < 5 ms and
//! every packet fulfilled as with the memory store).
//!
//! Threads: every subcommand defaults to a current-thread runtime
//! (`--threads 1`). On a 2-core machine shared by sender, middle box and
//! receiver, that was the fastest for sender and receiver; multi-thread
//! runtimes only added cross-thread wake-ups. Try `--threads 2` for the proxy
//! when comparing with a multi-threaded connector (`--mode pinned` scales with
//! it; the pooled client got slower).

mod cli;
mod cpu;
mod loopback;
mod packet;
mod proxy;
mod receiver;
mod send;
mod server;
mod signal;
mod summary;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use crate::cli::{Cli, Cmd, CompareArgs, ThitsaxStore};
use crate::cpu::{idle_fraction, process_cpu_seconds, read_cpu_ticks};
use crate::proxy::run_proxy;
use crate::receiver::run_receiver;
use crate::send::run_send;
use crate::signal::shutdown_signal;
use crate::summary::MEASURE_START;

fn main() {
    let cli = Cli::parse();
    let threads = match &cli.cmd {
        Cmd::Receiver(a) => a.common.threads,
        Cmd::Proxy(a) => a.common.threads,
        Cmd::Send(a) => a.threads,
        // The runtime only waits for the compare thread and for signals.
        Cmd::Compare(_) => 1,
    };
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    }
    .expect("tokio runtime");
    let result = rt.block_on(async move {
        match cli.cmd {
            Cmd::Receiver(a) => run_receiver(a).await,
            Cmd::Proxy(a) => run_proxy(a).await,
            Cmd::Send(a) => run_send(a).await,
            Cmd::Compare(a) => run_compare(a).await,
        }
    });
    if let Err(e) = result {
        eprintln!("load: {e}");
        std::process::exit(2);
    }
}

/// The throughput targets ThitsaX is held to; they depend on its store.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Thresholds {
    /// ThitsaX must reach this fraction of the bare proxy's packets/s...
    min_ratio_vs_proxy: f64,
    /// ...and this multiple of ilp-connector's packets/s.
    min_ratio_vs_ilp_connector: f64,
}

impl Thresholds {
    fn of(store: ThitsaxStore) -> Thresholds {
        match store {
            ThitsaxStore::Memory => Thresholds { min_ratio_vs_proxy: 0.60, min_ratio_vs_ilp_connector: 6.0 },
            // The issue's targets for the Redis store: every packet adds Redis round trips.
            ThitsaxStore::Redis => Thresholds { min_ratio_vs_proxy: 0.40, min_ratio_vs_ilp_connector: 4.0 },
        }
    }
}

/// ThitsaX must keep its p99 latency below this, whatever the store.
const MAX_P99_MS: f64 = 5.0;

/// Bearer token the sender presents to every target, so that all three get
/// requests of the same size (the proxy forwards it, the receiver ignores it).
const SENDER_TOKEN: &str = "sender-token";
/// Routed by ThitsaX to its child account "receiver"; ilp-connector's
/// default route takes every "test." address to the receiver.
const COMPARE_DESTINATION: &str = "test.thitsax.receiver.x";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Proxy,
    Thitsax,
    IlpConnector,
}

impl Target {
    /// Order within a round, and of the table.
    const ALL: [Target; 3] = [Target::Proxy, Target::Thitsax, Target::IlpConnector];

    fn name(self) -> &'static str {
        match self {
            Target::Proxy => "proxy",
            Target::Thitsax => "thitsax",
            Target::IlpConnector => "ilp-connector",
        }
    }
}

/// A running system under test.
struct Endpoint {
    target: Target,
    url: String,
    pid: u32,
}

/// What `compare` reads from the JSON line of one `send` run.
#[derive(Clone, Debug, PartialEq)]
struct SendFigures {
    packets: u64,
    packets_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    fulfilled: u64,
    rejected: u64,
    errors: u64,
    aborted: bool,
    sender_cpu_s: f64,
}

fn parse_send_json(line: &str) -> Result<SendFigures, String> {
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
struct Run {
    target: Target,
    round: usize,
    send: SendFigures,
    target_cpu_s: f64,
    receiver_cpu_s: f64,
    /// ThitsaX's redis-server over the measured phase (ThitsaX runs with `--thitsax-store redis`).
    redis: Option<RedisRun>,
    /// False when the machine was still busy when the quiet wait gave up.
    quiet: bool,
}

/// What ThitsaX's redis-server did during one measured phase.
#[derive(Clone, Debug, PartialEq)]
struct RedisRun {
    /// Commands Redis ran (those run by Lua scripts included), compare's own INFO left out.
    commands: CommandStats,
    /// redis-server's CPU seconds (user + system).
    cpu_s: f64,
}

impl RedisRun {
    fn calls(&self) -> u64 {
        self.commands.values().map(|c| c.calls).sum()
    }

    fn failed(&self) -> u64 {
        self.commands.values().map(|c| c.failed).sum()
    }
}

impl Run {
    /// Packets sent in the measured phase that did not come back as a Fulfill.
    fn not_fulfilled(&self) -> u64 {
        self.send.packets.saturating_sub(self.send.fulfilled)
    }

    fn target_cpu_us_per_packet(&self) -> f64 {
        per_packet_us(self.target_cpu_s, self.send.packets)
    }

    /// Redis commands per measured packet (NaN without Redis).
    fn redis_calls_per_packet(&self) -> f64 {
        self.redis.as_ref().map_or(f64::NAN, |r| per_packet(r.calls() as f64, self.send.packets))
    }

    fn redis_cpu_us_per_packet(&self) -> f64 {
        self.redis.as_ref().map_or(f64::NAN, |r| per_packet_us(r.cpu_s, self.send.packets))
    }
}

fn per_packet(value: f64, packets: u64) -> f64 {
    if packets == 0 {
        return f64::NAN;
    }
    value / packets as f64
}

fn per_packet_us(cpu_s: f64, packets: u64) -> f64 {
    per_packet(cpu_s * 1e6, packets)
}

/// Median of the finite values (mean of the middle two for an even count);
/// NaN when there is none.
fn median(values: &[f64]) -> f64 {
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
struct TargetSummary {
    target: Target,
    rounds: usize,
    packets: u64,
    packets_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    cpu_us_per_packet: f64,
    not_fulfilled: u64,
    /// ThitsaX's redis-server, when it ran on one.
    redis: Option<RedisSummary>,
}

/// ThitsaX's redis-server per measured packet, medians over the rounds.
#[derive(Clone, Debug, PartialEq)]
struct RedisSummary {
    calls_per_packet: f64,
    cpu_us_per_packet: f64,
    /// ThitsaX's and redis-server's CPU together.
    thitsax_and_redis_cpu_us_per_packet: f64,
    /// Per command: (calls, usec) per packet, each its own median (0 in a round
    /// without that command), so they need not add up to `calls_per_packet`.
    commands: BTreeMap<String, (f64, f64)>,
    /// Failed and rejected calls, summed over all rounds.
    failed: u64,
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

fn summarize(target: Target, runs: &[Run]) -> Option<TargetSummary> {
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

/// `a / b`, or None when it means nothing (b zero, either not finite).
fn ratio(a: f64, b: f64) -> Option<f64> {
    let r = a / b;
    (a.is_finite() && b.is_finite() && b > 0.0 && r.is_finite()).then_some(r)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail,
    /// A target of the check was not measured (e.g. no `--ilp-connector`).
    NotMeasured,
}

impl Verdict {
    fn of(value: Option<f64>, ok: impl Fn(f64) -> bool) -> Verdict {
        match value {
            None => Verdict::NotMeasured,
            Some(v) if ok(v) => Verdict::Pass,
            Some(_) => Verdict::Fail,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::NotMeasured => "NOT MEASURED",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Check {
    what: &'static str,
    value: Option<f64>,
    /// Decimals `value` is printed with.
    decimals: usize,
    limit: String,
    verdict: Verdict,
}

/// The comparison the project reports, from the per-target medians.
fn checks(summaries: &[TargetSummary], limits: Thresholds) -> Vec<Check> {
    let Thresholds { min_ratio_vs_proxy, min_ratio_vs_ilp_connector } = limits;
    let get = |t: Target| summaries.iter().find(|s| s.target == t);
    let pps = |t: Target| get(t).map(|s| s.packets_per_s);
    let thitsax_over = |t: Target| pps(Target::Thitsax).zip(pps(t)).and_then(|(a, b)| ratio(a, b));
    let vs_proxy = thitsax_over(Target::Proxy);
    let vs_connector = thitsax_over(Target::IlpConnector);
    let p99 = get(Target::Thitsax).map(|s| s.p99_ms).filter(|v| v.is_finite());
    // Throughput counts Rejects and leaves errors out, so a target that fails
    // packets fast could look good: the comparison only holds if all were fulfilled.
    let not_fulfilled =
        (!summaries.is_empty()).then(|| summaries.iter().map(|s| s.not_fulfilled).sum::<u64>());
    vec![
        Check {
            what: "ThitsaX/proxy packets/s",
            value: vs_proxy,
            decimals: 2,
            limit: format!(">= {min_ratio_vs_proxy:.2}"),
            verdict: Verdict::of(vs_proxy, |r| r >= min_ratio_vs_proxy),
        },
        Check {
            what: "ThitsaX/ilp-connector packets/s",
            value: vs_connector,
            decimals: 1,
            limit: format!(">= {min_ratio_vs_ilp_connector:.1}"),
            verdict: Verdict::of(vs_connector, |r| r >= min_ratio_vs_ilp_connector),
        },
        Check {
            what: "ThitsaX p99 ms",
            value: p99,
            decimals: 3,
            limit: format!("< {MAX_P99_MS:.1}"),
            verdict: Verdict::of(p99, |v| v < MAX_P99_MS),
        },
        Check {
            what: "packets not fulfilled (all runs)",
            value: not_fulfilled.map(|n| n as f64),
            decimals: 0,
            limit: "= 0".to_string(),
            verdict: Verdict::of(not_fulfilled.map(|n| n as f64), |n| n == 0.0),
        },
    ]
}

/// Key prefix of ThitsaX's Redis store in compare's own redis-server.
const REDIS_PREFIX: &str = "bench";

/// The ThitsaX config of the comparison: `sender` sends with SENDER_TOKEN,
/// `receiver` forwards to the load receiver. With `redis_url` the balances
/// live in that Redis (`[store] kind = "redis"`), else in memory (the default).
fn thitsax_config(port: u16, receiver_url: &str, worker_threads: usize, redis_url: Option<&str>) -> String {
    let store = match redis_url {
        Some(url) => format!("\n[store]\nkind = \"redis\"\nurl = \"{url}\"\nprefix = \"{REDIS_PREFIX}\"\n"),
        None => String::new(),
    };
    format!(
        r#"# generated by examples/load.rs compare
[node]
ilp_address = "test.thitsax"
log_level = "warn"
worker_threads = {worker_threads}

[http]
listen = "127.0.0.1:{port}"
{store}
[[accounts]]
id = "sender"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "{SENDER_TOKEN}"

[[accounts]]
id = "receiver"
relation = "child"
asset_code = "USD"
asset_scale = 9
outgoing_url = "{receiver_url}"
outgoing_token = "to-receiver"
"#
    )
}

/// The machine's shared Redis: compare never starts a server on it nor talks to it.
const SHARED_REDIS_PORT: u16 = 6379;

/// One command's counters from `INFO commandstats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct CommandStat {
    calls: u64,
    /// Microseconds Redis spent in the command (a script's includes the commands it ran).
    usec: u64,
    /// rejected_calls + failed_calls (Redis >= 6.2; 0 before).
    failed: u64,
}

/// Command name (lower case; `a|b` for a subcommand, e.g. `client|setinfo`) to its counters.
type CommandStats = BTreeMap<String, CommandStat>;

/// Parses the reply to `INFO commandstats`: one line per command,
/// `cmdstat_<name>:calls=N,usec=N,usec_per_call=F,rejected_calls=N,failed_calls=N`.
fn parse_commandstats(info: &str) -> Result<CommandStats, String> {
    let mut out = CommandStats::new();
    for line in info.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("cmdstat_") else { continue };
        let bad = |what: &str| format!("INFO commandstats: {what} in {line:?}");
        let (name, fields) = rest.split_once(':').ok_or_else(|| bad("no ':'"))?;
        let mut stat = CommandStat::default();
        let mut has_calls = false;
        for (key, value) in fields.split(',').filter_map(|f| f.split_once('=')) {
            let num = || value.parse::<u64>().map_err(|_| bad(&format!("bad {key}")));
            match key {
                "calls" => {
                    stat.calls = num()?;
                    has_calls = true;
                }
                "usec" => stat.usec = num()?,
                "rejected_calls" | "failed_calls" => stat.failed += num()?,
                _ => {}
            }
        }
        if !has_calls {
            return Err(bad("no calls="));
        }
        out.insert(name.to_ascii_lowercase(), stat);
    }
    Ok(out)
}

/// What Redis ran between two `INFO commandstats` snapshots, minus the calls
/// compare itself made in between (`own`: command name and calls); commands
/// left with neither calls nor failures are dropped.
fn commandstats_delta(before: &CommandStats, after: &CommandStats, own: &[(&str, u64)]) -> CommandStats {
    after
        .iter()
        .filter_map(|(name, a)| {
            let b = before.get(name).copied().unwrap_or_default();
            let mine: u64 = own.iter().filter(|(n, _)| n == name).map(|(_, c)| c).sum();
            let d = CommandStat {
                calls: a.calls.saturating_sub(b.calls).saturating_sub(mine),
                usec: a.usec.saturating_sub(b.usec),
                failed: a.failed.saturating_sub(b.failed),
            };
            (d.calls > 0 || d.failed > 0).then(|| (name.clone(), d))
        })
        .collect()
}

/// `field` of `INFO`-style text (`field:value` lines).
fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(|v| v.trim().to_string()))
}

/// Sends one command to 127.0.0.1:`port` on a fresh connection and returns the
/// reply (a simple or bulk string, or an integer as text). Refuses the shared
/// Redis's port outright.
fn redis_command(port: u16, args: &[&str]) -> Result<String, String> {
    use std::io::{Read as _, Write as _};
    if port == SHARED_REDIS_PORT {
        return Err(format!("compare never talks to the shared Redis on port {SHARED_REDIS_PORT}"));
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let io = |e: std::io::Error| format!("redis {addr} {}: {e}", args.first().copied().unwrap_or(""));
    let timeout = Duration::from_secs(5);
    let stream = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    (&stream).write_all(request.as_bytes()).map_err(io)?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).map_err(io)?;
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" | ":" => Ok(rest.to_string()),
        "-" => Err(format!("redis {addr} {}: {rest}", args.join(" "))),
        "$" => {
            let n: usize = rest.parse().map_err(|_| format!("redis {addr}: no bulk reply: {line:?}"))?;
            let mut data = vec![0; n + 2];
            r.read_exact(&mut data).map_err(io)?;
            data.truncate(n);
            Ok(String::from_utf8_lossy(&data).into_owned())
        }
        _ => Err(format!("redis {addr}: unexpected reply {line:?}")),
    }
}

/// `redis-server --version`'s version ("7.0.15"), or why there is no redis-server to run.
fn redis_server_version() -> Result<String, String> {
    let out = Command::new("redis-server")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("--thitsax-store redis needs redis-server on PATH: {e}"))?;
    if !out.status.success() {
        return Err(format!("redis-server --version failed ({})", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.split_whitespace().find_map(|w| w.strip_prefix("v=")).unwrap_or("?").to_string())
}

/// compare's own redis-server, holding ThitsaX's balances with `--thitsax-store redis`.
struct RedisServer {
    pid: u32,
    port: u16,
    version: String,
}

impl RedisServer {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn commandstats(&self) -> Result<CommandStats, String> {
        parse_commandstats(&redis_command(self.port, &["INFO", "commandstats"])?)
    }
}

/// Starts a redis-server without persistence on a free port, its `--dir` in
/// the lab's temp dir (so the lab kills it and removes the dir), and waits
/// until it answers PING and `INFO server` shows it is the process started here.
fn start_redis(lab: &Lab, version: String) -> Result<RedisServer, String> {
    let port = loop {
        let port = free_port()?;
        if port != SHARED_REDIS_PORT {
            break port;
        }
    };
    let dir = lab.dir.join("redis");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"]).arg(&dir).args([
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]);
    let pid = lab.start("redis-server", &mut cmd, false)?;
    lab.wait_for(
        "redis-server",
        pid,
        &format!("answering PING on 127.0.0.1:{port}"),
        Duration::from_secs(20),
        || redis_command(port, &["PING"]).is_ok_and(|r| r == "PONG"),
    )?;
    let info = redis_command(port, &["INFO", "server"])?;
    let serving = info_field(&info, "process_id");
    if serving.as_deref() != Some(pid.to_string().as_str()) {
        return Err(format!(
            "127.0.0.1:{port} is served by redis-server pid {}, not by the one compare started ({pid})",
            serving.as_deref().unwrap_or("?")
        ));
    }
    Ok(RedisServer { pid, port, version })
}

/// Every child of `compare`, shared with the signal handler so that Ctrl-C can
/// kill them while the compare thread is blocked reading from one of them.
#[derive(Clone, Default)]
struct Children {
    list: Arc<Mutex<Vec<Child>>>,
    stopped: Arc<AtomicBool>,
}

struct Spawned {
    pid: u32,
    /// The child's stderr when the command asked for a pipe.
    stderr: Option<ChildStderr>,
}

impl Children {
    fn spawn(&self, name: &str, cmd: &mut Command) -> Result<Spawned, String> {
        if self.stopped() {
            return Err("interrupted".into());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({}): {e}", cmd.get_program().to_string_lossy()))?;
        let spawned = Spawned { pid: child.id(), stderr: child.stderr.take() };
        self.list.lock().unwrap().push(child);
        Ok(spawned)
    }

    /// The exit status of child `pid` if it has ended.
    fn exited(&self, pid: u32) -> Option<ExitStatus> {
        let mut list = self.list.lock().unwrap();
        let child = list.iter_mut().find(|c| c.id() == pid)?;
        child.try_wait().ok().flatten()
    }

    /// Takes child `pid` out of the set and waits for it. Only for a child
    /// that has closed its output, i.e. is ending anyway.
    fn reap(&self, pid: u32) -> Result<ExitStatus, String> {
        let mut child = {
            let mut list = self.list.lock().unwrap();
            let i = list.iter().position(|c| c.id() == pid).ok_or("child already reaped")?;
            list.swap_remove(i)
        };
        child.wait().map_err(|e| format!("wait for child {pid}: {e}"))
    }

    /// Kills every child (SIGKILL) and refuses new ones. Whatever the compare
    /// thread is blocked on then ends: pipes close, waits return.
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        for c in self.list.lock().unwrap().iter_mut() {
            let _ = c.kill();
        }
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    fn stop_and_reap_all(&self) {
        self.stop();
        for mut c in std::mem::take(&mut *self.list.lock().unwrap()) {
            let _ = c.wait();
        }
    }
}

/// The temp dir (config, logs) and children of one `compare`. Dropping it
/// kills and reaps every child and removes the dir, whether the comparison
/// ended normally, with an error, or because of Ctrl-C.
struct Lab {
    dir: PathBuf,
    children: Children,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.children.stop_and_reap_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    fn new(children: Children) -> Result<Lab, String> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let dir = std::env::temp_dir().join(format!("thitsax-compare-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        Ok(Lab { dir, children })
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Starts a long-running child with stdout and stderr in `<name>.log`.
    /// With `stdin_pipe` the child's stdin stays open as long as we live.
    fn start(&self, name: &str, cmd: &mut Command, stdin_pipe: bool) -> Result<u32, String> {
        let path = self.log_path(name);
        let log = std::fs::File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(if stdin_pipe { Stdio::piped() } else { Stdio::null() }).stdout(log).stderr(log2);
        Ok(self.children.spawn(name, cmd)?.pid)
    }

    /// `what` went wrong with `name`, plus the end of its log.
    fn failure(&self, name: &str, what: &str) -> String {
        let log = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        format!("{name} {what}; last lines of its output:\n  {}", tail.join("\n  "))
    }

    /// Polls `ready` until it holds; fails when child `pid` exits, on Ctrl-C, or after `timeout`.
    fn wait_for(
        &self,
        name: &str,
        pid: u32,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            if self.children.stopped() {
                return Err("interrupted".into());
            }
            if let Some(status) = self.children.exited(pid) {
                return Err(self.failure(name, &format!("exited ({status}) before {what}")));
            }
            if Instant::now() >= deadline {
                return Err(self.failure(name, &format!("not {what} after {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_port(&self, name: &str, pid: u32, port: u16) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        self.wait_for(name, pid, &format!("listening on {addr}"), Duration::from_secs(20), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
    }
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn start_receiver(lab: &Lab, exe: &Path) -> Result<(String, u32), String> {
    let port = free_port()?;
    let mut cmd = Command::new(exe);
    cmd.args(["receiver", "--listen", &format!("127.0.0.1:{port}")]);
    let pid = lab.start("receiver", &mut cmd, false)?;
    lab.wait_port("receiver", pid, port)?;
    Ok((format!("http://127.0.0.1:{port}/"), pid))
}

fn start_proxy(lab: &Lab, exe: &Path, receiver_url: &str) -> Result<Endpoint, String> {
    let port = free_port()?;
    let mut cmd = Command::new(exe);
    cmd.args(["proxy", "--listen", &format!("127.0.0.1:{port}"), "--to", receiver_url]);
    let pid = lab.start("proxy", &mut cmd, false)?;
    lab.wait_port("proxy", pid, port)?;
    Ok(Endpoint { target: Target::Proxy, url: format!("http://127.0.0.1:{port}/"), pid })
}

fn start_thitsax(
    lab: &Lab,
    bin: &Path,
    receiver_url: &str,
    worker_threads: usize,
    redis_url: Option<&str>,
) -> Result<Endpoint, String> {
    let port = free_port()?;
    let config = lab.dir.join("thitsax.toml");
    std::fs::write(&config, thitsax_config(port, receiver_url, worker_threads, redis_url))
        .map_err(|e| format!("write {}: {e}", config.display()))?;
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(&config).env("NO_COLOR", "1");
    let pid = lab.start("thitsax", &mut cmd, false)?;
    lab.wait_port("thitsax", pid, port)?;
    Ok(Endpoint { target: Target::Thitsax, url: format!("http://127.0.0.1:{port}/"), pid })
}

/// The `node` to run bench-connector.js with ($NODE or `node` on PATH), if it runs.
fn find_node() -> Option<PathBuf> {
    let node = std::env::var_os("NODE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("node"));
    let out = Command::new(&node).arg("--version").stdin(Stdio::null()).output().ok()?;
    out.status.success().then_some(node)
}

fn start_ilp_connector(
    lab: &Lab,
    node: &Path,
    script: &Path,
    receiver_url: &str,
) -> Result<Endpoint, String> {
    let modules = script.parent().unwrap_or(Path::new(".")).join("node_modules");
    if !modules.is_dir() {
        return Err(format!(
            "{} is missing: run `npm ci --prefix {}`",
            modules.display(),
            script.parent().unwrap_or(Path::new(".")).display()
        ));
    }
    let port = free_port()?;
    let mut cmd = Command::new(node);
    cmd.arg(script)
        .args(["--port", &port.to_string(), "--token", SENDER_TOKEN, "--receiver-url", receiver_url])
        // --watch-stdin: node exits when our end of its stdin pipe closes,
        // even if this process dies by SIGKILL.
        .args(["--lean", "--watch-stdin"]);
    let pid = lab.start("ilp-connector", &mut cmd, true)?;
    // It listens before its routes are loaded; "ready" comes after.
    let log = lab.log_path("ilp-connector");
    lab.wait_for("ilp-connector", pid, "ready", Duration::from_secs(30), || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains(r#"{"event":"ready""#))
    })?;
    Ok(Endpoint { target: Target::IlpConnector, url: format!("http://127.0.0.1:{port}/"), pid })
}

/// Waits until the CPUs were at least `min_idle` idle over one second.
/// Returns false when that did not happen within `timeout`.
fn wait_quiet(children: &Children, min_idle: f64, timeout: Duration) -> Result<bool, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let before = read_cpu_ticks()?;
        std::thread::sleep(Duration::from_secs(1));
        if children.stopped() {
            return Err("interrupted".into());
        }
        if idle_fraction(before, read_cpu_ticks()?) >= min_idle {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}

/// What every run of one comparison has in common.
struct RunPlan<'a> {
    exe: &'a Path,
    receiver_pid: u32,
    concurrency: usize,
    warmup: u64,
    /// ThitsaX's redis-server, with `--thitsax-store redis`.
    redis: Option<&'a RedisServer>,
}

/// One `send` child process against `ep`. In-process sending would share a
/// runtime and CPU accounting with compare itself; a child is what an
/// operator runs.
fn measure(
    lab: &Lab,
    plan: &RunPlan,
    ep: &Endpoint,
    packets: u64,
    round: usize,
    quiet: bool,
) -> Result<Run, String> {
    let name = format!("send-{}-{round}", ep.target.name());
    let out_path = lab.log_path(&name);
    let out = std::fs::File::create(&out_path).map_err(|e| format!("create {}: {e}", out_path.display()))?;
    let mut cmd = Command::new(plan.exe);
    cmd.args(["send", "--url", &ep.url, "--token", SENDER_TOKEN, "--destination", COMPARE_DESTINATION])
        .args(["-n", &packets.to_string(), "-c", &plan.concurrency.to_string()])
        .args(["--warmup", &plan.warmup.to_string(), "--label", &name])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::piped());
    let spawned = lab.children.spawn(&name, &mut cmd)?;
    let stderr = spawned.stderr.ok_or("send: no stderr pipe")?;

    // The target's CPU clock runs from send's "measuring" line to its exit,
    // so that connection set-up and the warm-up are not charged. ThitsaX's
    // redis-server is read over the same span: its CPU and INFO commandstats
    // (read outside the CPU span, so that the INFO's own work is not charged).
    let redis = plan.redis.filter(|_| ep.target == Target::Thitsax);
    let cpu_now = || {
        (
            process_cpu_seconds(&ep.pid.to_string()),
            process_cpu_seconds(&plan.receiver_pid.to_string()),
            redis.map_or(f64::NAN, |r| process_cpu_seconds(&r.pid.to_string())),
        )
    };
    let stats_now = || redis.map(RedisServer::commandstats);
    let mut start = None;
    let mut stderr_lines = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if start.is_none() && line.starts_with(MEASURE_START) {
            let stats = stats_now();
            start = Some((cpu_now(), stats));
        }
        stderr_lines.push(line);
    }
    let end = (cpu_now(), stats_now());
    let status = lab.children.reap(spawned.pid)?;
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let Some(start) = start.filter(|_| status.success()) else {
        if lab.children.stopped() {
            return Err("interrupted".into());
        }
        return Err(format!(
            "{name} failed ({status}):\n  {}\n  {}",
            stderr_lines.join("\n  "),
            stdout.lines().collect::<Vec<_>>().join("\n  ")
        ));
    };
    let send = parse_send_json(stdout.lines().last().unwrap_or(""))?;
    let ((cpu0, stats0), (cpu1, stats1)) = (start, end);
    let redis = match (stats0, stats1) {
        (Some(before), Some(after)) => {
            let info = |e: String| format!("{name}: redis-server's INFO commandstats: {e}");
            Some(RedisRun {
                // The INFO that took `before` is counted in `after`.
                commands: commandstats_delta(&before.map_err(info)?, &after.map_err(info)?, &[("info", 1)]),
                cpu_s: cpu1.2 - cpu0.2,
            })
        }
        _ => None,
    };
    Ok(Run {
        target: ep.target,
        round,
        send,
        target_cpu_s: cpu1.0 - cpu0.0,
        receiver_cpu_s: cpu1.1 - cpu0.1,
        redis,
        quiet,
    })
}

fn progress_line(r: &Run) -> String {
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

/// Starts everything, measures, prints; true when every check passed.
fn compare(a: CompareArgs, children: Children) -> Result<bool, String> {
    if a.rounds == 0 || a.packets == 0 || a.concurrency == 0 {
        return Err("--rounds, -n and -c must be at least 1".into());
    }
    if !a.thitsax.is_file() {
        return Err(format!("--thitsax {}: no such file (cargo build --release first)", a.thitsax.display()));
    }
    let connector_packets = a.connector_packets.unwrap_or((a.packets / 5).max(1));
    let node = match &a.ilp_connector {
        Some(script) if !script.is_file() => {
            return Err(format!("--ilp-connector {}: no such file", script.display()))
        }
        Some(script) => match find_node() {
            Some(node) => Some((node, script.clone())),
            None => {
                eprintln!("compare: WARNING: node not found (PATH or $NODE): ilp-connector is not measured");
                None
            }
        },
        None => None,
    };
    let redis_version = match a.thitsax_store {
        ThitsaxStore::Redis => Some(redis_server_version()?),
        ThitsaxStore::Memory => None,
    };
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;

    let lab = Lab::new(children)?;
    let (receiver_url, receiver_pid) = start_receiver(&lab, &exe)?;
    let redis = redis_version.map(|v| start_redis(&lab, v)).transpose()?;
    if let Some(r) = &redis {
        eprintln!("compare: redis-server {} at {} (pid {})", r.version, r.url(), r.pid);
    }
    let redis_url = redis.as_ref().map(RedisServer::url);
    let mut endpoints = vec![
        start_proxy(&lab, &exe, &receiver_url)?,
        start_thitsax(&lab, &a.thitsax, &receiver_url, a.thitsax_worker_threads, redis_url.as_deref())?,
    ];
    if let Some((node, script)) = &node {
        endpoints.push(start_ilp_connector(&lab, node, script, &receiver_url)?);
    }
    for ep in &endpoints {
        eprintln!("compare: {} at {} (pid {})", ep.target.name(), ep.url, ep.pid);
    }

    let plan = RunPlan {
        exe: &exe,
        receiver_pid,
        concurrency: a.concurrency,
        warmup: a.warmup,
        redis: redis.as_ref(),
    };
    let quiet_timeout = Duration::from_secs(a.quiet_timeout_secs);
    let mut runs = Vec::new();
    for round in 1..=a.rounds {
        // Interleaved: whatever drifts on the machine during the comparison
        // hits every target alike instead of the last one measured.
        for ep in &endpoints {
            let quiet = wait_quiet(&lab.children, a.quiet_idle_pct / 100.0, quiet_timeout)?;
            if !quiet {
                eprintln!(
                    "compare: WARNING: CPUs not {}% idle within {quiet_timeout:?}; measuring anyway",
                    a.quiet_idle_pct
                );
            }
            let packets = if ep.target == Target::IlpConnector { connector_packets } else { a.packets };
            let run = measure(&lab, &plan, ep, packets, round, quiet)?;
            eprintln!("{}", progress_line(&run));
            runs.push(run);
            // A target that died mid-run makes every later figure meaningless.
            for ep in &endpoints {
                if let Some(status) = lab.children.exited(ep.pid) {
                    return Err(lab.failure(ep.target.name(), &format!("exited ({status}) during the runs")));
                }
            }
            if let Some(status) = redis.as_ref().and_then(|r| lab.children.exited(r.pid)) {
                return Err(lab.failure("redis-server", &format!("exited ({status}) during the runs")));
            }
        }
    }

    let summaries: Vec<TargetSummary> = Target::ALL.iter().filter_map(|t| summarize(*t, &runs)).collect();
    let checks = checks(&summaries, Thresholds::of(a.thitsax_store));
    let pass = overall(&checks) == Verdict::Pass;
    let redis = redis.as_ref();
    print!("{}", report_text(&a, connector_packets, redis, &summaries, &checks, &runs));
    if a.json {
        println!("{}", report_json(&a, connector_packets, redis, &summaries, &checks, &runs, pass));
    }
    Ok(pass)
}

fn report_text(
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

/// FAIL if any check failed, else NOT MEASURED if any could not be made, else PASS.
fn overall(checks: &[Check]) -> Verdict {
    let any = |v: Verdict| checks.iter().any(|c| c.verdict == v);
    if any(Verdict::Fail) {
        Verdict::Fail
    } else if any(Verdict::NotMeasured) || checks.is_empty() {
        Verdict::NotMeasured
    } else {
        Verdict::Pass
    }
}

fn report_json(
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

/// Runs `compare` on a blocking thread and stops it on SIGINT/SIGTERM: the
/// handler kills the children, which ends whatever the thread is blocked on;
/// the thread's `Lab` then reaps them and removes the temp dir before this
/// returns.
async fn run_compare(a: CompareArgs) -> Result<(), String> {
    let children = Children::default();
    let mut job = tokio::task::spawn_blocking({
        let children = children.clone();
        move || compare(a, children)
    });
    let done = tokio::select! {
        done = &mut job => done,
        why = shutdown_signal(0) => {
            eprintln!("compare: {why}: stopping the child processes");
            children.stop();
            let _ = job.await;
            return Err(format!("interrupted by {why}"));
        }
    };
    match done.map_err(|e| format!("compare thread: {e}"))?? {
        true => Ok(()),
        // Not an error of the tool: the figures were printed; scripts read the status.
        false => std::process::exit(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ThitsaxStore;
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

    fn summary(target: Target, packets_per_s: f64, p99_ms: f64) -> TargetSummary {
        TargetSummary {
            target,
            rounds: 3,
            packets: 1000,
            packets_per_s,
            p50_ms: 1.0,
            p99_ms,
            max_ms: 9.0,
            cpu_us_per_packet: 10.0,
            not_fulfilled: 0,
            redis: None,
        }
    }

    fn mem_checks(s: &[TargetSummary]) -> Vec<Check> {
        checks(s, Thresholds::of(ThitsaxStore::Memory))
    }

    fn verdicts(s: &[TargetSummary]) -> Vec<Verdict> {
        mem_checks(s).iter().map(|c| c.verdict).collect()
    }

    #[test]
    fn checks_pass_at_the_limits_and_fail_past_them() {
        use Verdict::*;
        let proxy = summary(Target::Proxy, 10_000.0, 1.0);
        let jsc = summary(Target::IlpConnector, 1_000.0, 50.0);
        // Exactly 0.60 of the proxy and 6x ilp-connector pass; p99 must be strictly below 5 ms.
        let at_limits = [proxy.clone(), summary(Target::Thitsax, 6_000.0, 4.999), jsc.clone()];
        assert_eq!(verdicts(&at_limits), [Pass, Pass, Pass, Pass]);
        assert_eq!(overall(&mem_checks(&at_limits)), Pass);
        let cs = mem_checks(&at_limits);
        assert_eq!(cs[0].value, Some(0.6));
        assert_eq!(cs[1].value, Some(6.0));
        let slow = [proxy.clone(), summary(Target::Thitsax, 5_999.0, 5.0), jsc.clone()];
        assert_eq!(verdicts(&slow), [Fail, Fail, Fail, Pass]);
        assert_eq!(overall(&mem_checks(&slow)), Fail);
        let mut rejecting = summary(Target::Thitsax, 9_000.0, 1.0);
        rejecting.not_fulfilled = 1;
        assert_eq!(verdicts(&[proxy, rejecting, jsc])[3], Fail);
    }

    #[test]
    fn checks_without_a_target_are_not_measured() {
        use Verdict::*;
        let no_connector = [summary(Target::Proxy, 10_000.0, 1.0), summary(Target::Thitsax, 8_000.0, 2.0)];
        assert_eq!(verdicts(&no_connector), [Pass, NotMeasured, Pass, Pass]);
        assert_eq!(overall(&mem_checks(&no_connector)), NotMeasured);
        assert_eq!(mem_checks(&no_connector)[1].value, None);
        // A zero or NaN rate is no ratio at all, not an infinite one.
        let zero = [summary(Target::Proxy, 0.0, 1.0), summary(Target::Thitsax, 8_000.0, f64::NAN)];
        assert_eq!(verdicts(&zero)[..3], [NotMeasured, NotMeasured, NotMeasured]);
        assert_eq!(verdicts(&[]), [NotMeasured; 4]);
        assert_eq!(overall(&[]), NotMeasured);
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
    }

    fn run(target: Target, round: usize, packets_per_s: f64, fulfilled: u64) -> Run {
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
    fn config_is_accepted_by_thitsax() {
        let text = thitsax_config(4321, "http://127.0.0.1:4001/", 1, None);
        let config = thitsax::config::Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(config.listen, "127.0.0.1:4321".parse().unwrap());
        assert_eq!(config.log_level, "warn");
        assert_eq!(config.worker_threads, Some(1));
        let ids: Vec<&str> = config.accounts.iter().map(|a| &*a.id).collect();
        assert_eq!(ids, ["sender", "receiver"]);
        assert_eq!(
            config.accounts[0].incoming_token_hash,
            Some(thitsax::account::hash_token(SENDER_TOKEN.as_bytes()))
        );
        let out = config.accounts[1].outgoing.as_ref().expect("receiver has an outgoing URL");
        assert_eq!(out.url.to_string(), "http://127.0.0.1:4001/");
        assert!(COMPARE_DESTINATION.starts_with(&format!("{}.receiver.", config.node_address)));
        assert!(matches!(config.store, thitsax::config::StoreConfig::Memory));
    }

    #[test]
    fn redis_config_is_accepted_by_thitsax() {
        let text = thitsax_config(4321, "http://127.0.0.1:4001/", 2, Some("redis://127.0.0.1:12345/"));
        assert!(text
            .contains("[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:12345/\"\nprefix = \"bench\"\n"));
        let config = thitsax::config::Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(config.worker_threads, Some(2));
        let thitsax::config::StoreConfig::Redis(r) = &config.store else {
            panic!("not the Redis store:\n{text}")
        };
        assert_eq!(r.urls, ["redis://127.0.0.1:12345/"]);
        assert!(!r.cluster);
        assert_eq!(r.prefix, REDIS_PREFIX);
        assert_eq!(config.accounts.len(), 2);
    }

    /// `INFO commandstats` as Redis 7.0 answers it (CRLF lines, a subcommand with `|`).
    const COMMANDSTATS: &str = "# Commandstats\r\n\
        cmdstat_ping:calls=1,usec=3,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_evalsha:calls=200,usec=2000,usec_per_call=10.00,rejected_calls=0,failed_calls=1\r\n\
        cmdstat_client|setinfo:calls=2,usec=4,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_info:calls=3,usec=150,usec_per_call=50.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_HSET:calls=100,usec=100,usec_per_call=1.00,rejected_calls=2,failed_calls=0\r\n";

    fn stat(calls: u64, usec: u64, failed: u64) -> CommandStat {
        CommandStat { calls, usec, failed }
    }

    #[test]
    fn commandstats_parsing() {
        let m = parse_commandstats(COMMANDSTATS).unwrap();
        let names: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(names, ["client|setinfo", "evalsha", "hset", "info", "ping"]);
        assert_eq!(m["evalsha"], stat(200, 2000, 1));
        assert_eq!(m["hset"], stat(100, 100, 2));
        assert_eq!(m["client|setinfo"], stat(2, 4, 0));
        // Before 6.2 there were no rejected/failed counters.
        let old = parse_commandstats("cmdstat_get:calls=7,usec=14,usec_per_call=2.00\n").unwrap();
        assert_eq!(old["get"], stat(7, 14, 0));
        // No commands yet (a fresh server after CONFIG RESETSTAT), other sections ignored.
        assert!(parse_commandstats("# Commandstats\r\n").unwrap().is_empty());
        assert!(parse_commandstats("# Server\r\nredis_version:7.0.15\r\n").unwrap().is_empty());
        // Broken lines are errors, not zeros.
        assert!(parse_commandstats("cmdstat_get:usec=14\n").is_err());
        assert!(parse_commandstats("cmdstat_get:calls=x,usec=14\n").is_err());
        assert!(parse_commandstats("cmdstat_get calls=1\n").is_err());
    }

    #[test]
    fn commandstats_delta_leaves_out_idle_commands_and_our_info() {
        let before = parse_commandstats(COMMANDSTATS).unwrap();
        let mut after = before.clone();
        after.insert("evalsha".into(), stat(500, 5000, 1));
        after.insert("hset".into(), stat(250, 200, 3));
        after.insert("get".into(), stat(4, 8, 0)); // first seen in this phase
        after.insert("info".into(), stat(4, 200, 0)); // the INFO that took `before`
        let d = commandstats_delta(&before, &after, &[("info", 1)]);
        let want: CommandStats = [
            ("evalsha".to_string(), stat(300, 3000, 0)),
            ("get".to_string(), stat(4, 8, 0)),
            ("hset".to_string(), stat(150, 100, 1)),
        ]
        .into_iter()
        .collect();
        assert_eq!(d, want);
        let run = RedisRun { commands: d, cpu_s: 0.5 };
        assert_eq!((run.calls(), run.failed()), (454, 1));
        // Somebody else's INFO stays in; a counter reset does not underflow.
        after.insert("info".into(), stat(5, 250, 0));
        after.insert("ping".into(), stat(0, 0, 0));
        let d = commandstats_delta(&before, &after, &[("info", 1)]);
        assert_eq!(d["info"].calls, 1);
        assert!(!d.contains_key("ping"));
        assert!(commandstats_delta(&before, &before, &[]).is_empty());
    }

    #[test]
    fn info_field_and_no_shared_redis() {
        let info = "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\nprocess_supervised:no\r\n";
        assert_eq!(info_field(info, "process_id").as_deref(), Some("4242"));
        assert_eq!(info_field(info, "process"), None);
        assert_eq!(info_field(info, "tcp_port"), None);
        // Refused before any connection is made.
        let err = redis_command(SHARED_REDIS_PORT, &["PING"]).unwrap_err();
        assert!(err.contains("never talks to the shared Redis"), "{err}");
    }

    #[test]
    fn thresholds_depend_on_the_store() {
        use Verdict::*;
        assert_eq!(
            Thresholds::of(ThitsaxStore::Memory),
            Thresholds { min_ratio_vs_proxy: 0.60, min_ratio_vs_ilp_connector: 6.0 }
        );
        assert_eq!(
            Thresholds::of(ThitsaxStore::Redis),
            Thresholds { min_ratio_vs_proxy: 0.40, min_ratio_vs_ilp_connector: 4.0 }
        );
        let redis = Thresholds::of(ThitsaxStore::Redis);
        let proxy = summary(Target::Proxy, 10_000.0, 1.0);
        let jsc = summary(Target::IlpConnector, 1_000.0, 50.0);
        // Exactly 0.40 of the proxy and 4x ilp-connector pass with Redis, fail in memory.
        let at_limits = [proxy.clone(), summary(Target::Thitsax, 4_000.0, 4.999), jsc.clone()];
        let v = |s: &[TargetSummary], t| checks(s, t).iter().map(|c| c.verdict).collect::<Vec<_>>();
        assert_eq!(v(&at_limits, redis), [Pass, Pass, Pass, Pass]);
        assert_eq!(v(&at_limits, Thresholds::of(ThitsaxStore::Memory)), [Fail, Fail, Pass, Pass]);
        let cs = checks(&at_limits, redis);
        assert_eq!(
            (cs[0].limit.as_str(), cs[1].limit.as_str(), cs[2].limit.as_str()),
            (">= 0.40", ">= 4.0", "< 5.0")
        );
        // Just below, and p99 stays a check at 5 ms with Redis too.
        let slow = [proxy, summary(Target::Thitsax, 3_999.0, 5.0), jsc];
        assert_eq!(v(&slow, redis), [Fail, Fail, Fail, Pass]);
    }

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
