//! Load tool for ThitsaX (and any ILP-over-HTTP connector).
//!
//! Six subcommands, all loopback-only:
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
//! * `payment` — one STREAM payment, ThitsaX against the JS reference.
//! * `mojaloop` — Mojaloop → ILP transfers per second through ThitsaX against
//!   the same pair of real Mojaloop Connectors paying a backend in the tool
//!   directly, and ThitsaX's own time per backend request (see `mojaloop`).
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
//!
//! Layout (each module's doc says why it is apart). A module imports only
//! modules listed before it; `main` parses the arguments and wires:
//!
//! * `packet` — ILP type bytes, OER lengths, zero-copy Prepare/Reject views.
//! * `cli` — the subcommands' arguments.
//! * `loopback`, `cpu`, `signal` — loopback-only addresses and HTTP/1
//!   connections, CPU time from /proc, stopping on SIGINT/SIGTERM.
//! * `server` — accept loop and counters shared by receiver and proxy.
//! * `receiver`, `proxy` — the two servers.
//! * `summary` — percentiles and the JSON line `send` prints and `compare` reads.
//! * `send` — the sender.
//! * `payment` — one STREAM payment, ThitsaX against the JS reference (uses
//!   `compare`'s lab, node lookup and quiet wait).
//! * `mojaloop` — the Mojaloop comparison (uses `compare`'s lab, redis-server
//!   and quiet wait, and `payment`'s admin call), with, in the same order:
//!   `mojaloop/ports` (claimed ports for children), `mojaloop/payer` (the
//!   load), `mojaloop/connector` (the Connectors), `mojaloop/backend` (the
//!   direct side's payee), `mojaloop/timing` (the timing proxy),
//!   `mojaloop/nodes` (the two ThitsaX nodes) and `mojaloop/report`.
//! * `compare` — the comparison, with, in the same order: `compare/lab` (child
//!   processes, temp dir), `compare/redis` (its own redis-server),
//!   `compare/figures` (medians), `compare/checks` (pass/fail),
//!   `compare/targets` (starting the systems under test) and
//!   `compare/report` (text and JSON output).

mod cli;
mod compare;
mod cpu;
mod loopback;
mod mojaloop;
mod packet;
mod payment;
mod proxy;
mod receiver;
mod send;
mod server;
mod signal;
mod summary;

use clap::Parser;

use crate::cli::{Cli, Cmd};
use crate::compare::run_compare;
use crate::mojaloop::run_mojaloop;
use crate::payment::run_payment;
use crate::proxy::run_proxy;
use crate::receiver::run_receiver;
use crate::send::run_send;

fn main() {
    let cli = Cli::parse();
    let threads = match &cli.cmd {
        Cmd::Receiver(a) => a.common.threads,
        Cmd::Proxy(a) => a.common.threads,
        Cmd::Send(a) => a.threads,
        // The runtime only waits for the compare thread and for signals.
        Cmd::Compare(_) | Cmd::Payment(_) | Cmd::Mojaloop(_) => 1,
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
            Cmd::Payment(a) => run_payment(a).await,
            Cmd::Mojaloop(a) => run_mojaloop(a).await,
        }
    });
    if let Err(e) = result {
        eprintln!("load: {e}");
        std::process::exit(2);
    }
}
