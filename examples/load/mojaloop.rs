//! `mojaloop`: Mojaloop → ILP transfers per second through ThitsaX, side by side in the same run
//! with the same Connector pair paying a backend in this tool directly (no ILP leg), and
//! ThitsaX's own time per request of the backend API.
//!
//! Per round and side, fresh processes: two real Mojaloop Connectors back to back
//! (`connector`), each with its own redis-server; the payer's backend is the tool's (nothing is
//! asked of it); the payee's `BACKEND_ENDPOINT` is the timing proxy (`timing`), which forwards
//! to
//! - `direct`: the tool's minimal payee backend (`backend`);
//! - `thitsax`: ThitsaX node `dfsp`'s `[mojaloop]` backend API, which pays every transfer over
//!   STREAM through ILP-over-HTTP (`nodes`) to `--payee`: node `wallet` (`thitsax-wallet`, the
//!   default), or a wallet address of the Rafiki test double in this process (`rafiki`, the
//!   cross-network provider's case), through peer account `rafiki`.
//!
//! The payer (`payer`) sends `--warmup` transfers, then, once the machine is quiet, the
//! `--transfers` measured ones, `--concurrency` in flight, each one `POST /transfers` on the
//! payer Connector's outbound API (both auto-accepts on). Measured: committed transfers per
//! second, the payer's time per transfer, the timing proxy's time per backend request (request
//! received to answer sent) by kind, the CPU of every process. Sides alternate which goes first
//! from round to round, so that drift of the machine hits both alike. After each run the books
//! are checked: the direct backend paid each transferId once; ThitsaX's `ana` (or the double's
//! wallet) got exactly what the committed transfers sent, `usd` paid exactly that, and (rafiki)
//! the node's prefunded liquidity at the double fell by exactly that.
//!
//! Exit status 0 when every check passes (`report::checks`), 1 when a goal is missed, 2 on an
//! error, a failed transfer or books that do not add up (the figures are printed first).

mod backend;
mod connector;
mod nodes;
mod payer;
mod ports;
mod rafiki;
mod report;
mod timing;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use ::thitsax::mojaloop::amount::FspiopAmount;

use crate::cli::{MojaloopArgs, Payee};
use crate::compare::lab::{Children, Lab};
use crate::compare::redis::redis_server_version;
use crate::compare::wait_quiet;
use crate::cpu::process_cpu_seconds;
use crate::signal::shutdown_signal;
use backend::Backend;
use connector::{ConnectorPorts, ConnectorSpec, Js};
use nodes::{NodeSettings, Nodes, NodesPorts, PayeeNode, CURRENCY_DECIMALS, WALLET_SCALE};
use payer::{Plan, CURRENCY};
use ports::Ports;
use rafiki::{RafikiDouble, PREFUNDED_LIQUIDITY};
use report::{checks, report_json, report_text, summarize, Goals, Setup, Side, SideRun};
use timing::{Sample, TimingProxy};

/// What every run of the comparison shares.
struct Bench<'a> {
    a: &'a MojaloopArgs,
    lab: &'a Lab,
    js: Js,
    redis_version: String,
    ports: Ports,
    /// The in-process listeners (backends, timing proxy), on a thread of their own so that the
    /// payer's work does not delay their answers and times.
    servers: tokio::runtime::Runtime,
    /// The payer's runtime, driven from the comparison's thread.
    payer: tokio::runtime::Runtime,
    /// `--payee rafiki`: the Rafiki double's runtime, one thread of its own as node `wallet` is a
    /// process of its own (so that it neither delays the timing proxy nor is delayed by it), and
    /// that thread's `/proc` path for its CPU time.
    rafiki: Option<(tokio::runtime::Runtime, String)>,
    /// The transfer's amount in the scheme currency's decimals, and in `ana`'s scale.
    units: (u64, u64),
}

/// The timing proxy's samples of every measured phase, one line each, in `timings.csv`.
fn write_samples(lab: &Lab, tag: &str, samples: &[Sample]) {
    let path = lab.dir.join("timings.csv");
    let new = !path.exists();
    let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(&path) else { return };
    let mut text = if new { "run,request,status,at_us,us\n".to_string() } else { String::new() };
    for s in samples {
        text += &format!("{tag},{},{},{},{}\n", s.kind.name(), s.status, s.at_micros, s.micros);
    }
    let _ = file.write_all(text.as_bytes());
}

/// One side's run in `round`: starts its processes, warms up, measures, checks the books, and
/// stops them.
fn run_side(b: &Bench, side: Side, round: usize) -> Result<SideRun, String> {
    let (a, lab) = (b.a, b.lab);
    let tag = format!("r{round}-{}", side.name());
    let servers = b.servers.handle();
    let payer_ports = ConnectorPorts::claim(&b.ports)?;
    let payee_ports = ConnectorPorts::claim(&b.ports)?;
    let payer_backend = Backend::start(servers)?;
    // The payee's real backend, which the timing proxy forwards to.
    let (direct, nodes, double, target) = match side {
        Side::Direct => {
            let backend = Backend::start(servers)?;
            let addr = backend.addr;
            (Some(backend), None, None, addr)
        }
        Side::Thitsax => {
            let settings = NodeSettings {
                worker_threads: a.thitsax_worker_threads,
                log_level: &a.thitsax_log_level,
                backend_connections_max: a.thitsax_backend_connections_max,
                backend_header_read_timeout_ms: a.thitsax_backend_header_read_timeout_ms,
            };
            let double = match &b.rafiki {
                Some((rt, _)) => Some(RafikiDouble::start(rt.handle(), PREFUNDED_LIQUIDITY)?),
                None => None,
            };
            let payee = match &double {
                Some(d) => PayeeNode::Rafiki { connector: d.connector, wallet_url: d.wallet_url() },
                None => PayeeNode::Wallet,
            };
            let ports = NodesPorts::claim(&b.ports, &payee)?;
            let nodes = nodes::start(lab, &a.thitsax, &tag, ports, &settings, payee_ports.outbound, &payee)?;
            (None, Some(nodes), double, SocketAddr::from(([127, 0, 0, 1], ports.dfsp_backend)))
        }
    };
    let proxy = TimingProxy::start(servers, target)?;
    let payer_spec = ConnectorSpec {
        name: format!("{tag}-payer-connector"),
        dfsp_id: "payerfsp",
        ports: payer_ports,
        backend: payer_backend.endpoint(),
    };
    let payee_spec = ConnectorSpec {
        name: format!("{tag}-payee-connector"),
        dfsp_id: "payeefsp",
        ports: payee_ports,
        backend: proxy.endpoint(),
    };
    let (payer, payee) = connector::start_pair(lab, &b.js, &b.redis_version, &payer_spec, &payee_spec)?;

    let plan = |id_prefix: &str, transfers: u64, first_party: u64| {
        let plan = Plan {
            outbound: payer_ports.outbound_addr(),
            id_prefix,
            amount: &a.amount,
            transfers,
            first_party,
            concurrency: a.concurrency,
        };
        b.payer.block_on(payer::pay(&plan))
    };
    // Warm-up: fresh Node processes compile their hot paths on the first transfers.
    let warmup = plan(&format!("{tag}-warmup"), a.warmup, 0);
    let _ = proxy.take();
    let quiet =
        wait_quiet(&lab.children, a.quiet_idle_pct / 100.0, Duration::from_secs(a.quiet_timeout_secs))?;
    // Each one's /proc/<path>/stat: a process, or the double's thread in this one.
    let mut processes =
        vec![("payer Connector", payer.pid.to_string()), ("payee Connector", payee.pid.to_string())];
    if let Some(n) = &nodes {
        processes.push(("ThitsaX dfsp", n.dfsp_pid.to_string()));
        if let Some(pid) = n.wallet_pid {
            processes.push(("ThitsaX wallet", pid.to_string()));
        }
    }
    if let (Some(_), Some((_, thread))) = (&double, &b.rafiki) {
        processes.push(("Rafiki double (tool thread)", thread.clone()));
    }
    let cpu = || processes.iter().map(|(_, path)| process_cpu_seconds(path)).collect::<Vec<_>>();
    let prepares = || double.as_ref().map(|d| d.counts().prepares.load(std::sync::atomic::Ordering::Relaxed));
    let (cpu0, prepares0) = (cpu(), prepares());
    let batch = plan(&format!("{tag}-measured"), a.transfers, a.warmup);
    let (cpu1, prepares1) = (cpu(), prepares());
    let (samples, connections) = proxy.take();
    write_samples(lab, &tag, &samples);
    if lab.children.stopped() {
        return Err("interrupted".into());
    }

    let mut run = SideRun::new(side, round, &batch, &samples, a.transfers);
    run.quiet = quiet;
    run.backend_connections = connections;
    run.cpu_ms_per_transfer = processes
        .iter()
        .zip(cpu0.iter().zip(&cpu1))
        .map(|((name, _), (c0, c1))| (*name, (c1 - c0) * 1e3 / a.transfers as f64))
        .collect();
    run.problems.extend(warmup.failures.iter().map(|f| format!("failed warm-up transfer {f}")));
    let committed = (a.warmup - warmup.failures.len() as u64) + run.committed;
    run.problems.extend(books(&direct, &nodes, double.as_ref(), committed, b.units));
    if let (Some(p0), Some(p1)) = (prepares0, prepares1) {
        // Rafiki limits a peer to 10,000 packets per minute by default; the double counts them.
        let packets = p1 - p0;
        eprintln!(
            "mojaloop: round {round} {}: the Rafiki double got {packets} Prepares in the measured phase: \
             {:.1} per transfer, {:.0} per minute",
            side.name(),
            packets as f64 / a.transfers as f64,
            packets as f64 * 60.0 / batch.elapsed.as_secs_f64()
        );
    }
    payer.stop(lab);
    payee.stop(lab);
    if let Some(n) = &nodes {
        n.stop(lab);
    }
    Ok(run)
}

/// What the payee's books say against `committed` transfers of `units`: each paid once.
fn books(
    direct: &Option<Backend>,
    nodes: &Option<Nodes>,
    double: Option<&RafikiDouble>,
    committed: u64,
    units: (u64, u64),
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(d) = direct {
        let (paid, requests) =
            (d.counts.paid(), d.counts.transfer_requests.load(std::sync::atomic::Ordering::Relaxed));
        if paid != committed || requests != paid {
            problems.push(format!(
                "the direct backend paid {paid} transferIds ({requests} requests) for {committed} committed transfers"
            ));
        }
    }
    if let Some(n) = nodes {
        let (paid, delivered) = (-(committed as i128 * units.0 as i128), committed as i128 * units.1 as i128);
        match n.usd() {
            Ok(usd) if usd == paid => {}
            Ok(usd) => problems
                .push(format!("ThitsaX's usd: {usd} (expected {paid}) for {committed} committed transfers")),
            Err(e) => problems.push(format!("ThitsaX's usd not read: {e}")),
        }
        match double {
            None => match n.ana() {
                Ok(ana) if ana == delivered => {}
                Ok(ana) => problems.push(format!(
                    "ThitsaX's ana: {ana} (expected {delivered}) for {committed} committed transfers"
                )),
                Err(e) => problems.push(format!("ThitsaX's ana not read: {e}")),
            },
            Some(d) => {
                let (wallet, spent) = (d.wallet_balance(), PREFUNDED_LIQUIDITY - d.liquidity());
                if i128::from(wallet) != delivered || i128::from(spent) != delivered {
                    problems.push(format!(
                        "the Rafiki double: wallet {wallet}, liquidity spent {spent} (both expected \
                         {delivered}) for {committed} committed transfers"
                    ));
                }
            }
        }
    }
    problems
}

/// The outcome: whether every goal was met, and whether anything failed.
struct Outcome {
    pass: bool,
    problems: usize,
}

fn bench(a: MojaloopArgs, children: Children) -> Result<Outcome, String> {
    if a.rounds == 0 || a.transfers == 0 || a.concurrency == 0 {
        return Err("--rounds, --transfers and --concurrency must be at least 1".into());
    }
    if !a.thitsax.is_file() {
        return Err(format!("--thitsax {}: no such file (cargo build --release first)", a.thitsax.display()));
    }
    let amount = FspiopAmount::parse(&a.amount).map_err(|e| format!("--amount {:?}: {e}", a.amount))?;
    let units = (
        amount.to_account(CURRENCY_DECIMALS).map_err(|e| format!("--amount {:?}: {e}", a.amount))?,
        amount.to_account(WALLET_SCALE).map_err(|e| format!("--amount {:?}: {e}", a.amount))?,
    );
    if units.0 == 0 {
        return Err(format!("--amount {:?}: must be at least 0.01 (never a zero transfer)", a.amount));
    }
    let js = Js::find(&a.mojaloop_dir)?;
    let redis_version = redis_server_version()?;
    let mut lab = Lab::new(children)?;
    lab.keep_dir = a.keep_dir;
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("load-servers")
        .enable_all()
        .build()
        .map_err(|e| format!("servers runtime: {e}"))?;
    let payer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("payer runtime: {e}"))?;
    eprintln!(
        "mojaloop: {} {} with node {}, redis-server {redis_version}; dir {}",
        connector::PACKAGE,
        connector::VERSION,
        js.node.display(),
        lab.dir.display()
    );
    let rafiki = match a.payee {
        Payee::ThitsaxWallet => None,
        Payee::Rafiki => Some(rafiki_runtime()?),
    };
    let b =
        Bench { a: &a, lab: &lab, js, redis_version, ports: Ports::default(), servers, payer, rafiki, units };
    let mut runs = Vec::new();
    for round in 1..=a.rounds {
        // Alternated: neither side always runs first (or last) in a round.
        let order =
            if round % 2 == 1 { [Side::Direct, Side::Thitsax] } else { [Side::Thitsax, Side::Direct] };
        for side in order {
            let run = run_side(&b, side, round)?;
            eprintln!("{}", run.progress_line());
            runs.push(run);
        }
    }
    let sides: Vec<_> = Side::ALL.iter().filter_map(|s| summarize(*s, &runs)).collect();
    let problems: usize = runs.iter().map(|r| r.problems.len()).sum();
    let goals = Goals { ratio_min: a.ratio_min, own_p99_ms_max: a.own_p99_ms_max };
    let checks = checks(&sides[0], &sides[1], goals, problems);
    let setup = Setup {
        payee: a.payee,
        transfers: a.transfers,
        concurrency: a.concurrency,
        warmup: a.warmup,
        rounds: a.rounds,
        amount: &a.amount,
        currency: CURRENCY,
        thitsax_worker_threads: a.thitsax_worker_threads,
        thitsax_log_level: &a.thitsax_log_level,
        thitsax_backend_limits: match (
            a.thitsax_backend_connections_max,
            a.thitsax_backend_header_read_timeout_ms,
        ) {
            (None, None) => "defaults".into(),
            (n, ms) => format!(
                "backend_connections_max = {}, backend_header_read_timeout_ms = {}",
                n.map_or("default".into(), |n| n.to_string()),
                ms.map_or("default".into(), |ms| ms.to_string())
            ),
        },
    };
    print!("{}", report_text(&setup, &sides, &checks, &runs));
    if a.json {
        println!("{}", report_json(&setup, &sides, &checks, &runs));
    }
    Ok(Outcome { pass: checks.iter().all(|c| c.pass), problems })
}

/// The Rafiki double's runtime and its one worker's `/proc` path (`<pid>/task/<tid>`, read
/// on that thread from `/proc/thread-self`).
fn rafiki_runtime() -> Result<(tokio::runtime::Runtime, String), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("load-rafiki")
        .enable_all()
        .build()
        .map_err(|e| format!("Rafiki double runtime: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(std::fs::read_link("/proc/thread-self"));
    });
    let path = rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|e| format!("Rafiki double runtime: {e}"))?
        .map_err(|e| format!("/proc/thread-self: {e}"))?;
    Ok((rt, path.display().to_string()))
}

/// Runs the comparison on a blocking thread, stopped (children killed) on SIGINT/SIGTERM.
pub(crate) async fn run_mojaloop(a: MojaloopArgs) -> Result<(), String> {
    let children = Children::default();
    let mut job = tokio::task::spawn_blocking({
        let children = children.clone();
        move || bench(a, children)
    });
    let done = tokio::select! {
        done = &mut job => done,
        why = shutdown_signal(0) => {
            eprintln!("mojaloop: {why}: stopping the child processes");
            children.stop();
            let _ = job.await;
            return Err(format!("interrupted by {why}"));
        }
    };
    match done.map_err(|e| format!("mojaloop thread: {e}"))?? {
        Outcome { problems: 1.., .. } => {
            Err("transfers failed or books do not add up (see the problems above)".into())
        }
        Outcome { pass: true, .. } => Ok(()),
        Outcome { pass: false, .. } => std::process::exit(1),
    }
}
