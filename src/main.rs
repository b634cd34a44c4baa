//! `thitsax --config FILE` runs a node; `thitsax check-config --config FILE` only validates;
//! `thitsax audit --config FILE` reconciles a Redis store; `thitsax pay --config FILE ...` asks
//! the running node (its admin API) to pay from a local account and waits for the outcome. The subcommands also take the file as
//! their only argument, as earlier versions did.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use thitsax::app::App;
use thitsax::config::{Config, StoreConfig};
use thitsax::store::{MemoryStore, RedisStore, Store};

#[derive(Parser)]
#[command(name = "thitsax", version, about = "ThitsaX Interledger connector (ILP-over-HTTP)")]
struct Cli {
    /// Configuration file (TOML); see connector.toml.example. Accepted before or after a
    /// subcommand.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file and exit: 0 when valid, 1 with every problem listed.
    CheckConfig {
        /// The file, as `--config FILE` or (as earlier versions took it) as the only argument.
        file: Option<PathBuf>,
    },
    /// Reconcile the Redis store: every account's balance (the file's and those in Redis) must
    /// equal the sum of its journal. Exit 0 when all agree, 1 otherwise.
    Audit {
        /// The file, as `--config FILE` or (as earlier versions took it) as the only argument.
        file: Option<PathBuf>,
    },
    /// Pay from a local account over STREAM through the running node's admin API (POST
    /// /payments), wait until the payment ends and print it as JSON: exit 0 when completed, 1
    /// otherwise. Sent again with the same --id, it never pays twice.
    Pay(PayArgs),
}

#[derive(clap::Args)]
struct PayArgs {
    /// The local account that pays.
    #[arg(long)]
    account: String,
    /// Payment pointer ($host/path) or SPSP URL of the receiver.
    #[arg(long)]
    to: String,
    /// In the paying account's units, or with --delivered in the receiver's.
    #[arg(long)]
    amount: u64,
    /// The amount is what the receiver must get (exactly).
    #[arg(long)]
    delivered: bool,
    /// With --delivered: the most the account may spend, in its units (required then).
    #[arg(long)]
    source_max: Option<u64>,
    /// The payment's id (default: a new random one). Give your own to retry safely.
    #[arg(long)]
    id: Option<String>,
    #[arg(long, default_value = "0.01")]
    slippage: String,
    #[arg(long, default_value_t = 60)]
    deadline_s: u64,
    /// The admin token (or THITSAX_ADMIN_TOKEN); the file may hold only its hash.
    #[arg(long, env = "THITSAX_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
}

/// The one configuration file, however it was given: `--config FILE` (before or after the
/// subcommand) or a subcommand's positional FILE. Two different files is an error naming both,
/// never one of them silently ignored.
fn config_file(option: Option<PathBuf>, positional: Option<PathBuf>) -> Result<PathBuf, String> {
    match (option, positional) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "two configuration files given: --config {} and {}; give one",
            a.display(),
            b.display()
        )),
        (Some(file), _) | (None, Some(file)) => Ok(file),
        (None, None) => Err("give the configuration file: --config FILE (see --help)".into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut pay_args = None;
    let (file, mode) = match cli.command {
        Some(Command::CheckConfig { file }) => (file, Mode::Check),
        Some(Command::Audit { file }) => (file, Mode::Audit),
        Some(Command::Pay(args)) => {
            pay_args = Some(args);
            (None, Mode::Pay)
        }
        None => (None, Mode::Run),
    };
    let path = match config_file(cli.config, file) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("thitsax: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::from_file(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("thitsax: {} is not valid:\n{e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    if mode == Mode::Check {
        println!(
            "{}: valid ({} accounts, {} routes)",
            path.display(),
            config.accounts.len(),
            config.routes.len()
        );
        return ExitCode::SUCCESS;
    }
    if let Some(args) = pay_args {
        return match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(pay(&config, args)),
            Err(e) => {
                eprintln!("thitsax: cannot start the runtime: {e}");
                ExitCode::FAILURE
            }
        };
    }
    init_logging(&config.log_level);
    if mode == Mode::Audit {
        return match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(audit(config)),
            Err(e) => {
                eprintln!("thitsax: cannot start the runtime: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match runtime(config.worker_threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("thitsax: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    match config.store.clone() {
        StoreConfig::Memory => serve(App::bind_with(config, MemoryStore::new()).await).await,
        StoreConfig::Redis(redis) => match RedisStore::connect(&redis).await {
            Ok(store) => serve(App::bind_redis(config, store).await).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot reach Redis at start-up");
                ExitCode::FAILURE
            }
        },
    }
}

#[derive(PartialEq, Eq)]
enum Mode {
    Run,
    Check,
    Audit,
    Pay,
}

/// `thitsax pay`: POST /payments to the node's admin API, then GET /payments/{id} until it ended.
async fn pay(config: &Config, args: PayArgs) -> ExitCode {
    let base = format!("http://{}", config.admin.listen);
    let id = args.id.clone().unwrap_or_else(|| {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .expect("the OS random source works");
        hex::encode(bytes)
    });
    let mut body = serde_json::json!({
        "id": id,
        "account": args.account,
        "receiver": args.to,
        "amount": args.amount.to_string(),
        "amount_kind": if args.delivered { "delivered" } else { "source" },
        "slippage": args.slippage,
        "deadline_in_s": args.deadline_s,
    });
    if let Some(max) = args.source_max {
        body["source_max"] = serde_json::Value::String(max.to_string());
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let call = |method: hyper::Method, path: String, body: Option<String>| {
        let client = client.clone();
        let (base, token) = (base.clone(), args.admin_token.clone());
        async move {
            let mut req = hyper::Request::builder()
                .method(method)
                .uri(format!("{base}{path}"))
                .header("authorization", format!("Bearer {token}"));
            if body.is_some() {
                req = req.header("content-type", "application/json");
            }
            let req = req
                .body(http_body_util::Full::new(bytes::Bytes::from(body.unwrap_or_default())))
                .map_err(|e| e.to_string())?;
            let answer = tokio::time::timeout(std::time::Duration::from_secs(10), client.request(req))
                .await
                .map_err(|_| "the admin API did not answer within 10 s".to_string())?
                .map_err(|e| format!("the admin API at {base} is unreachable: {e}"))?;
            let status = answer.status();
            let text = http_body_util::BodyExt::collect(answer.into_body())
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, String::from_utf8_lossy(&text).into_owned()))
        }
    };
    match call(hyper::Method::POST, "/payments".into(), Some(body.to_string())).await {
        Ok((status, _)) if status.is_success() => {}
        Ok((status, text)) => {
            eprintln!("thitsax pay: refused ({status}): {text}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("thitsax pay: {e}");
            return ExitCode::FAILURE;
        }
    }
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(args.deadline_s + 30);
    loop {
        match call(hyper::Method::GET, format!("/payments/{id}"), None).await {
            Ok((status, text)) if status.is_success() => {
                let payment: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if payment["state"] != "sending" {
                    println!("{text}");
                    return if payment["state"] == "completed" {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    };
                }
            }
            Ok((status, text)) => eprintln!("thitsax pay: reading payment {id}: {status} {text}"),
            Err(e) => eprintln!("thitsax pay: reading payment {id}: {e}"),
        }
        if tokio::time::Instant::now() >= until {
            eprintln!(
                "thitsax pay: payment {id} still sending past its deadline; read it with GET /payments/{id}"
            );
            return ExitCode::FAILURE;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Prints one line per account and whether its balance equals its journal's sum.
async fn audit(config: Config) -> ExitCode {
    let StoreConfig::Redis(redis) = &config.store else {
        eprintln!("thitsax audit: the memory store keeps no journal; audit needs store.kind = \"redis\"");
        return ExitCode::FAILURE;
    };
    let store = match RedisStore::connect(redis).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("thitsax audit: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{:<24} {:>22} {:>22} {:>10} {:>9}  verdict",
        "account", "balance", "journal sum", "entries", "in flight"
    );
    let mut all_agree = true;
    for id in audited_ids(&config, &store).await {
        match store.audit(&id).await {
            Ok(line) => {
                let verdict = if line.agrees() { "ok" } else { "MISMATCH" };
                all_agree &= line.agrees();
                println!(
                    "{:<24} {:>22} {:>22} {:>10} {:>9}  {verdict}",
                    line.account, line.balance, line.journal_sum, line.entries, line.reserved
                );
            }
            Err(e) => {
                all_agree = false;
                println!("{:<24} error: {e}", id);
            }
        }
    }
    all_agree &= audit_rafiki(&config, &store).await;
    if all_agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// With `[rafiki.admin]`: each Rafiki peer of the file, Rafiki's figure of the node's liquidity
/// beside the node's own. True when every one agrees.
async fn audit_rafiki(config: &Config, store: &RedisStore) -> bool {
    use thitsax::rafiki::{admin_api::AdminApi, liquidity};
    let Some(admin) = &config.rafiki.admin else { return true };
    let tls = thitsax::http::tls::TlsConfig::new(&config.tls);
    let client = thitsax::http::client::HttpClient::new(&config.client, &tls);
    let api = AdminApi::new(admin.api.clone(), client.connector().clone());
    let mut agree = true;
    let peers: Vec<_> = config.accounts.iter().filter(|a| a.rafiki_liquidity.is_some()).collect();
    if peers.is_empty() {
        return true;
    }
    println!();
    println!(
        "{:<24} {:>22} {:>22} {:>22}  verdict",
        "rafiki peer", "rafiki liquidity", "node's figure", "difference"
    );
    for account in peers {
        let rafiki = account.rafiki_liquidity.as_ref().expect("filtered");
        match liquidity::compare(store, &api, account, rafiki).await {
            Ok(r) => {
                let verdict = if r.difference == 0 { "ok" } else { "MISMATCH" };
                agree &= r.difference == 0;
                println!(
                    "{:<24} {:>22} {:>22} {:>22}  {verdict}",
                    account.id, r.rafiki, r.expected, r.difference
                );
            }
            Err(e) => {
                agree = false;
                println!("{:<24} error: {e}", account.id);
            }
        }
    }
    agree
}

/// The file's accounts and, when accounts are shared through Redis, every account there too (an
/// account added through the API has a balance as much as a configured one).
async fn audited_ids(config: &Config, store: &RedisStore) -> Vec<String> {
    let mut ids: std::collections::BTreeSet<String> =
        config.accounts.iter().map(|a| a.id.to_string()).collect();
    if config.config_sync.is_some() {
        match store.config_snapshot().await {
            Ok(snapshot) => ids.extend(snapshot.accounts.into_iter().filter_map(|e| match e {
                thitsax::store::Entry::Read { field, .. } => Some(field),
                thitsax::store::Entry::Unreadable => None,
            })),
            Err(e) => {
                eprintln!("thitsax audit: cannot list the accounts in Redis ({e}); auditing the file's")
            }
        }
    }
    ids.into_iter().collect()
}

async fn serve<S: Store>(app: Result<App<S>, impl std::fmt::Display>) -> ExitCode {
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    for line in app.start_up_report() {
        tracing::info!("{line}");
    }
    tracing::info!(address = %app.node.address, listen = %app.local_addr(), "ThitsaX node serving ILP-over-HTTP");
    app.run_until(thitsax::shutdown::os_signal()).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// One worker: tokio's current-thread scheduler, which skips cross-thread wake-ups (the best
/// choice when the node shares a small machine). More: the multi-thread scheduler.
fn runtime(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    match worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
        None => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    }
}

/// `RUST_LOG` wins over the config's `node.log_level`. Logs go to stderr.
fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour codes only for a terminal: in a pipe or a log file they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}
