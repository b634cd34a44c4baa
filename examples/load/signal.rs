//! How a long-running subcommand learns it should stop: SIGINT, SIGTERM, or
//! its own `--exit-after-secs`.
//!
//! Shared by receiver, proxy and compare, which each print their figures (or
//! kill their children) before exiting instead of dying mid-report.

use std::time::Duration;

pub(crate) async fn shutdown_signal(exit_after_secs: u64) -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let timer = async {
        if exit_after_secs == 0 {
            std::future::pending::<()>().await
        } else {
            tokio::time::sleep(Duration::from_secs(exit_after_secs)).await
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = timer => "exit-after-secs",
    }
}
