//! `compare`: proxy vs ThitsaX vs ilp-connector side by side in one command.
//!
//! It starts every target as a child process (`targets`, `lab`), runs one
//! `send` child per target and round, interleaved and after waiting for quiet
//! CPUs, reads each target's CPU over the measured phase, then prints the
//! medians and checks (`figures`, `checks`, `report`). Runs on a blocking
//! thread so that SIGINT/SIGTERM can stop the children while it waits on one.

mod checks;
pub(crate) mod figures;
pub(crate) mod lab;
pub(crate) mod redis;
mod report;
pub(crate) mod targets;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{CompareArgs, ThitsaxStore};
use crate::compare::checks::{checks, overall, Thresholds, Verdict};
use crate::compare::figures::{parse_send_json, summarize, Run, Target, TargetSummary};
use crate::compare::lab::{Children, Lab};
use crate::compare::redis::{commandstats_delta, redis_server_version, start_redis, RedisRun, RedisServer};
use crate::compare::report::{progress_line, report_json, report_text};
use crate::compare::targets::{
    find_node, start_ilp_connector, start_proxy, start_receiver, start_thitsax, Endpoint,
    COMPARE_DESTINATION, SENDER_TOKEN,
};
use crate::cpu::{idle_fraction, process_cpu_seconds, read_cpu_ticks};
use crate::signal::shutdown_signal;
use crate::summary::MEASURE_START;

/// Waits until the CPUs were at least `min_idle` idle over one second.
/// Returns false when that did not happen within `timeout`.
pub(crate) fn wait_quiet(children: &Children, min_idle: f64, timeout: Duration) -> Result<bool, String> {
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

/// Runs `compare` on a blocking thread and stops it on SIGINT/SIGTERM: the
/// handler kills the children, which ends whatever the thread is blocked on;
/// the thread's `Lab` then reaps them and removes the temp dir before this
/// returns.
pub(crate) async fn run_compare(a: CompareArgs) -> Result<(), String> {
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
