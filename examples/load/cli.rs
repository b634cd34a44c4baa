//! The command line: one `Args` struct per subcommand, and the small value
//! enums (`ProxyMode`, `ConditionMode`, `ThitsaxStore`) that the subcommands
//! read from it.
//!
//! Kept apart from `main` so that every subcommand's module can take its own
//! arguments without importing `main`: this module imports nothing of ours.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "load", about = "ILP-over-HTTP load tool: sender, fulfilling receiver, bare proxy")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// ILP-over-HTTP receiver that fulfils Prepares.
    Receiver(ReceiverArgs),
    /// Bare forwarding HTTP proxy (no ILP parsing, no state): the ceiling reference.
    Proxy(ProxyArgs),
    /// Send N Prepares with C in flight and report packets/s and latency.
    Send(SendArgs),
    /// Proxy vs ThitsaX vs ilp-connector, side by side, with the pass/fail checks.
    Compare(CompareArgs),
    /// One STREAM payment, ThitsaX (sender node -> node -> receiver node) vs ilp-protocol-stream
    /// through ilp-connector, in interleaved rounds, with the 10x check.
    Payment(PaymentArgs),
    /// Mojaloop -> ILP transfers/s through ThitsaX vs the same Connector pair paying a backend
    /// directly, and ThitsaX's own time per backend request, in interleaved rounds.
    Mojaloop(MojaloopArgs),
}

#[derive(Args, Clone)]
pub(crate) struct ServerCommon {
    /// Address to listen on (loopback only).
    #[arg(long)]
    pub(crate) listen: SocketAddr,
    /// Runtime worker threads; 1 = current-thread runtime.
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// Exit by itself after this many seconds (0 = run until SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0)]
    pub(crate) exit_after_secs: u64,
}

#[derive(Args)]
pub(crate) struct ReceiverArgs {
    #[command(flatten)]
    pub(crate) common: ServerCommon,
    /// ILP address put in triggered_by of the receiver's own Rejects.
    #[arg(long, default_value = "test.receiver")]
    pub(crate) address: String,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Debug)]
pub(crate) enum ProxyMode {
    /// One shared keep-alive pool (hyper-util legacy Client) to the target.
    Pool,
    /// One dedicated upstream keep-alive connection per downstream connection.
    Pinned,
}

#[derive(Args)]
pub(crate) struct ProxyArgs {
    #[command(flatten)]
    pub(crate) common: ServerCommon,
    /// Target URL every request is POSTed to (http://127.0.0.1:PORT/path).
    #[arg(long)]
    pub(crate) to: String,
    /// Upstream connection strategy.
    #[arg(long, value_enum, default_value_t = ProxyMode::Pool)]
    pub(crate) mode: ProxyMode,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Debug)]
pub(crate) enum ConditionMode {
    /// Unique 32-byte preimage per packet in data; condition = SHA-256(data).
    Data,
    /// Empty data; condition = SHA-256(FIXED_FULFILLMENT).
    Fixed,
}

#[derive(Args)]
pub(crate) struct SendArgs {
    /// ILP-over-HTTP endpoint (http://127.0.0.1:PORT/path).
    #[arg(long)]
    pub(crate) url: String,
    /// Bearer token for the Authorization header (omitted if not given).
    #[arg(long)]
    pub(crate) token: Option<String>,
    /// Number of measured Prepares.
    #[arg(short = 'n', long, default_value_t = 100_000)]
    pub(crate) packets: u64,
    /// Maximum in flight (= number of keep-alive connections).
    #[arg(short = 'c', long, default_value_t = 50)]
    pub(crate) concurrency: usize,
    /// Prepares sent before the measurement (same connections), not counted.
    #[arg(long, default_value_t = 0)]
    pub(crate) warmup: u64,
    /// ILP destination address.
    #[arg(long, default_value = "test.receiver")]
    pub(crate) destination: String,
    /// Amount of every Prepare.
    #[arg(long, default_value_t = 1)]
    pub(crate) amount: u64,
    /// Expiry of each Prepare, relative to its send time.
    #[arg(long, default_value_t = 30_000)]
    pub(crate) expiry_ms: u64,
    /// Per-request timeout (counted as an error when hit).
    #[arg(long, default_value_t = 60_000)]
    pub(crate) timeout_ms: u64,
    /// How conditions are chosen (see the file header).
    #[arg(long, value_enum, default_value_t = ConditionMode::Data)]
    pub(crate) condition: ConditionMode,
    /// Runtime worker threads; 1 = current-thread runtime.
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// Free-form label copied into the JSON line.
    #[arg(long, default_value = "")]
    pub(crate) label: String,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub(crate) enum ThitsaxStore {
    /// Balances in the ThitsaX process (`[store] kind = "memory"`).
    Memory,
    /// Balances in compare's own redis-server (`[store] kind = "redis"`).
    Redis,
}

impl ThitsaxStore {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ThitsaxStore::Memory => "memory",
            ThitsaxStore::Redis => "redis",
        }
    }
}

#[derive(Args)]
pub(crate) struct CompareArgs {
    /// ThitsaX binary, e.g. target/release/thitsax.
    #[arg(long)]
    pub(crate) thitsax: PathBuf,
    /// tests/interop/bench-connector.js: also measure ilp-connector (needs node, or $NODE).
    #[arg(long)]
    pub(crate) ilp_connector: Option<PathBuf>,
    /// Measured Prepares per run against the proxy and ThitsaX.
    #[arg(short = 'n', long, default_value_t = 100_000)]
    pub(crate) packets: u64,
    /// Measured Prepares per ilp-connector run [default: n/5].
    #[arg(long)]
    pub(crate) connector_packets: Option<u64>,
    /// Maximum in flight (= keep-alive connections) of every run.
    #[arg(short = 'c', long, default_value_t = 50)]
    pub(crate) concurrency: usize,
    /// Prepares sent before each run's measurement, not counted.
    #[arg(long, default_value_t = 5000)]
    pub(crate) warmup: u64,
    /// Rounds; each round measures every target once. Figures are medians over rounds.
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: usize,
    /// Before each run, wait until the CPUs were at least this idle (%) over one second.
    #[arg(long, default_value_t = 90.0)]
    pub(crate) quiet_idle_pct: f64,
    /// Give up waiting for a quiet machine after this long, warn, and measure anyway.
    #[arg(long, default_value_t = 60)]
    pub(crate) quiet_timeout_secs: u64,
    /// ThitsaX's `node.worker_threads`. 1 by default: sender, receiver and node share the
    /// machine, and the proxy reference is single-threaded too.
    #[arg(long, default_value_t = 1)]
    pub(crate) thitsax_worker_threads: usize,
    /// ThitsaX's balance store. `redis` starts a private redis-server (from PATH) on a free
    /// 127.0.0.1 port and reports Redis commands and CPU per packet.
    #[arg(long, value_enum, default_value_t = ThitsaxStore::Memory)]
    pub(crate) thitsax_store: ThitsaxStore,
    /// Also print one JSON line with every figure (the last line on stdout).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct PaymentArgs {
    /// ThitsaX binary, e.g. target/release/thitsax.
    #[arg(long)]
    pub(crate) thitsax: PathBuf,
    /// The interop directory with run-js-only.js and its node_modules (`npm ci --prefix` it).
    #[arg(long, default_value = "tests/interop")]
    pub(crate) js_dir: PathBuf,
    /// The payment's amount (USD, scale 9, on both sides).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) amount: u64,
    /// The connector's max_packet_amount for the sender's packets.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) max_packet: u64,
    /// Rounds; each pays once on each side (fresh processes). Figures are medians over rounds.
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: usize,
    /// The check: JS median time / ThitsaX median time at least this.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) ratio_min: f64,
    /// Before each payment, wait until the CPUs were at least this idle (%) over one second.
    #[arg(long, default_value_t = 90.0)]
    pub(crate) quiet_idle_pct: f64,
    /// Give up waiting for a quiet machine after this long, warn, and measure anyway.
    #[arg(long, default_value_t = 60)]
    pub(crate) quiet_timeout_secs: u64,
    /// Also print one JSON line with the figures (the last line on stdout).
    #[arg(long)]
    pub(crate) json: bool,
}

/// Whom ThitsaX node `dfsp` pays each transfer to, on the thitsax side of `mojaloop`.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub(crate) enum Payee {
    /// Local account `ana` of a second ThitsaX node, `wallet` (Mojaloop -> ILP).
    ThitsaxWallet,
    /// A wallet address of a Rafiki test double in the tool, through peer account `rafiki`
    /// (Mojaloop -> Rafiki: the cross-network provider).
    Rafiki,
}

#[derive(Args)]
pub(crate) struct MojaloopArgs {
    /// ThitsaX binary, e.g. target/release/thitsax.
    #[arg(long)]
    pub(crate) thitsax: PathBuf,
    /// The directory with guard.js and node_modules/@mojaloop/sdk-scheme-adapter 18.0.2
    /// (`npm ci --prefix tests/mojaloop --no-audit --no-fund --ignore-scripts`).
    #[arg(long, default_value = "tests/mojaloop")]
    pub(crate) mojaloop_dir: PathBuf,
    /// Measured transfers per side and round.
    #[arg(short = 'n', long, default_value_t = 200)]
    pub(crate) transfers: u64,
    /// Whom node `dfsp` pays on the thitsax side.
    #[arg(long, value_enum, default_value_t = Payee::ThitsaxWallet)]
    pub(crate) payee: Payee,
    /// Transfers in flight, each on its own keep-alive connection to the payer's Connector.
    #[arg(short = 'c', long, default_value_t = 10)]
    pub(crate) concurrency: usize,
    /// Transfers paid before each measurement (same processes, same concurrency), not counted.
    #[arg(long, default_value_t = 20)]
    pub(crate) warmup: u64,
    /// Rounds; each measures both sides once, on fresh processes. Figures are medians over rounds.
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: usize,
    /// Every transfer's amount (an FSPIOP amount in USD, at most 2 decimals).
    #[arg(long, default_value = "1")]
    pub(crate) amount: String,
    /// `node.worker_threads` of both ThitsaX nodes.
    #[arg(long, default_value_t = 1)]
    pub(crate) thitsax_worker_threads: usize,
    /// `node.log_level` of both ThitsaX nodes (info, the product's default: a few lines per transfer).
    #[arg(long, default_value = "info")]
    pub(crate) thitsax_log_level: String,
    /// `mojaloop.backend_connections_max` of node `dfsp` [default: the node's own default, 64].
    #[arg(long)]
    pub(crate) thitsax_backend_connections_max: Option<usize>,
    /// `mojaloop.backend_header_read_timeout_ms` of node `dfsp` [default: the node's own, 10000].
    /// It also closes idle keep-alive connections: the Connector leaves one per backend request.
    #[arg(long)]
    pub(crate) thitsax_backend_header_read_timeout_ms: Option<u64>,
    /// The goal: thitsax transfers/s at least this times the direct side's.
    #[arg(long, default_value_t = 0.8)]
    pub(crate) ratio_min: f64,
    /// The goal: ThitsaX's own time for POST /transfers (timing proxy), p99 under this many ms.
    #[arg(long, default_value_t = 50.0)]
    pub(crate) own_p99_ms_max: f64,
    /// Before each measured phase, wait until the CPUs were at least this idle (%) over one second.
    #[arg(long, default_value_t = 90.0)]
    pub(crate) quiet_idle_pct: f64,
    /// Give up waiting for a quiet machine after this long, warn, and measure anyway.
    #[arg(long, default_value_t = 30)]
    pub(crate) quiet_timeout_secs: u64,
    /// Keep the temp dir: configs, every process's log, timings.csv (each backend request's time).
    #[arg(long)]
    pub(crate) keep_dir: bool,
    /// Also print one JSON line with every figure (the last line on stdout).
    #[arg(long)]
    pub(crate) json: bool,
}
