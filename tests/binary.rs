//! The `thitsax` binary as an operator runs it: config checking, start-up refusal, and SIGTERM.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use thitsax::packet::ErrorCode;

use process::{start_binary, Running, BIN};

fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("node.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn temp_dir(name: &str) -> TempDir {
    TempDir::new(name)
}

fn node_config(port: u16, downstream: &str, grace_ms: u64) -> String {
    format!(
        r#"
[node]
ilp_address = "test.bin"
log_level = "info"
[http]
listen = "127.0.0.1:{port}"
shutdown_grace_ms = {grace_ms}
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "alice-token"
[[accounts]]
id = "bob"
relation = "child"
asset_code = "USD"
asset_scale = 9
outgoing_url = "{downstream}"
outgoing_token = "to-bob"
"#
    )
}

#[test]
fn check_config_accepts_the_example_and_lists_every_problem_of_a_bad_file() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/connector.toml.example");
    let ok = Command::new(BIN).args(["check-config", example]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    let dir = temp_dir("check");
    let bad = write_config(
        &dir,
        "[node]\nilp_address = \"bad\"\n[http]\nlisten = \"nope\"\n[[accounts]]\nid = \"a\"\nrelation = \"child\"\nasset_code = \"USD\"\nasset_scale = 2\nincoming_token = \"s3cret-value\"\nincoming_token_sha256 = \"00\"\n",
    );
    let out = Command::new(BIN).args(["check-config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for path in ["node.ilp_address", "http.listen", "accounts[0].incoming_token_sha256"] {
        assert!(stderr.contains(path), "{path} not reported:\n{stderr}");
    }
    assert!(!stderr.contains("s3cret-value"), "a token leaked into the error output");
}

#[test]
fn an_invalid_config_exits_non_zero_before_binding() {
    let dir = temp_dir("invalid");
    let port = reserve_port();
    let text = node_config(port, "http://127.0.0.1:9/", 1000)
        .replace("asset_scale = 9\noutgoing_url", "asset_scale = 99\noutgoing_url");
    let path = write_config(&dir, &text);
    let out = Command::new(BIN).arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("accounts[1].asset_scale"));
    // Nothing was bound: the port is still free.
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("port left free");
}

/// Starts the binary and waits for its "serving" log line; every line it writes, before and
/// after, is checked for the tokens of its config.
fn start(path: &std::path::Path) -> Running {
    let (running, lines, rest) = start_binary(path);
    let secret = |line: &str| line.contains("alice-token") || line.contains("to-bob");
    for line in &lines {
        assert!(!secret(line), "secret in log: {line}");
    }
    std::thread::spawn(move || {
        for line in rest {
            // Tokens must never reach the logs.
            assert!(!secret(&line), "secret in log: {line}");
        }
    });
    running
}

/// SIGTERM by the system call itself: minimal images have no `kill` binary (procps).
fn sigterm(child: &Child) {
    rustix::process::kill_process(rustix::process::Pid::from_child(child), rustix::process::Signal::TERM)
        .expect("SIGTERM to the node");
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < within, "node did not exit within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_packets_then_exits_zero() {
    let downstream = Downstream::start(std::sync::Arc::new(|_| {
        std::thread::sleep(Duration::from_millis(300));
        Behaviour::Fulfill
    }))
    .await;
    let dir = temp_dir("drain");
    let port = reserve_port();
    // worker_threads = 1 runs the node on tokio's current-thread scheduler; the abort test below
    // uses the default multi-thread one, so both runtimes are exercised end to end.
    let text = node_config(port, &downstream.url(), 3000)
        .replace("log_level = \"info\"", "log_level = \"info\"\nworker_threads = 1");
    let path = write_config(&dir, &text);
    let mut node = start(&path);
    let url = format!("http://127.0.0.1:{port}/");

    let in_flight = {
        let url = url.clone();
        tokio::spawn(async move {
            send(&client(), &url, "alice-token", &prepare("test.bin.bob", 5, Duration::from_secs(10))).await
        })
    };
    while downstream.requests.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sigterm(&node.0);
    // The packet already in flight completes normally.
    in_flight.await.unwrap().fulfill();
    let status = wait_exit(&mut node.0, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    // And the listener is gone.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_rejects_packets_still_in_flight_after_the_grace_period() {
    let downstream = Downstream::always(Behaviour::Hang).await;
    let dir = temp_dir("abort");
    let port = reserve_port();
    let path = write_config(&dir, &node_config(port, &downstream.url(), 300));
    let mut node = start(&path);
    let url = format!("http://127.0.0.1:{port}/");
    let in_flight = tokio::spawn(async move {
        send(&client(), &url, "alice-token", &prepare("test.bin.bob", 5, Duration::from_secs(20))).await
    });
    while downstream.requests.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    sigterm(&node.0);
    let reject = in_flight.await.unwrap().reject();
    assert_code(&reject, ErrorCode::T00_INTERNAL_ERROR);
    assert!(started.elapsed() < Duration::from_secs(3), "rejected after the grace period, not at expiry");
    assert_eq!(wait_exit(&mut node.0, Duration::from_secs(5)).code(), Some(0));
}

/// The SIGTERM tests above run in a minimal image too, where no `kill` binary is installed
/// (procps): this runs them again in a child test process whose `PATH` finds nothing at all.
#[test]
fn signal_tests_need_no_kill_binary() {
    if std::env::var_os("THITSAX_EMPTY_PATH_CHILD").is_some() {
        return; // the child runs only the tests named below, never this one again
    }
    let empty = temp_dir("empty-path");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigterm_finishes_in_flight_packets_then_exits_zero",
            "sigterm_rejects_packets_still_in_flight_after_the_grace_period",
        ])
        .env("PATH", &*empty)
        .env("THITSAX_EMPTY_PATH_CHILD", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("2 passed"),
        "the SIGTERM tests failed without `kill` on PATH:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
