//! The JavaScript interop scripts (`tests/interop/*.js`) as children of an async test: started
//! with `node`, their JSON-line events read as they come, killed when dropped (on panic too).
//!
//! The rules are `tests/interop.rs`'s: without `node` on PATH (or in `$NODE`) a test prints a skip
//! note and passes, unless `CI` is set, when it fails; the pinned packages are installed with
//! `npm ci --prefix tests/interop` on first use. Every script also exits when its stdin closes
//! (`--watch-stdin`), so none outlives a test process that died.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;

pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("interop")
}

/// The `node` to use, or `None` after printing why `test` is skipped; the interop packages
/// installed (`npm ci --prefix tests/interop`) on first use. Panics when node is missing and `CI`
/// is set, when it is older than 18, or when the install fails.
pub fn node_or_skip(test: &str) -> Option<PathBuf> {
    let node = node_binary_or_skip(test)?;
    if let Err(e) = npm_ci_once(test, &interop_dir(), "ilp-protocol-stream") {
        panic!("{test}: {e}");
    }
    Some(node)
}

/// `$NODE`, else `node` on PATH, if it runs; `None` after printing why `test` is skipped.
/// Panics when node is missing and `CI` is set, or when it is older than 18 (the oldest the JS
/// harnesses under `tests/` are run with).
pub fn node_binary_or_skip(test: &str) -> Option<PathBuf> {
    let node = std::env::var_os("NODE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("node"));
    match Command::new(&node).arg("--version").stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let major: u32 =
                version.trim_start_matches('v').split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
            assert!(major >= 18, "{test}: node {version} is too old; the JS test harnesses need Node >= 18");
            Some(node)
        }
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
            assert!(
                !ci,
                "{test}: `{}` not found or not runnable, and CI is set: install Node >= 18",
                node.display()
            );
            eprintln!("SKIPPED {test}: `{}` not found (install Node >= 18 to run it)", node.display());
            None
        }
    }
}

/// `npm ci --prefix <dir>` unless `<dir>/node_modules/<package>` is installed already; at most
/// once per directory per test binary (concurrent tests wait for the first one's install).
/// `Err` says what failed (npm missing, the registry unreachable, the lockfile refused).
pub fn npm_ci_once(test: &str, dir: &Path, package: &str) -> Result<(), String> {
    static INSTALLED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    let marker = dir.join("node_modules").join(package).join("package.json");
    if installed.iter().any(|d| d == dir) || marker.exists() {
        installed.push(dir.to_path_buf());
        return Ok(());
    }
    eprintln!("{test}: installing the packages pinned in {} with `npm ci`", dir.display());
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(dir)
        .stdin(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() && marker.exists() => {
            installed.push(dir.to_path_buf());
            Ok(())
        }
        other => Err(format!("`npm ci --prefix {}` failed ({other:?})", dir.display())),
    }
}

/// A running script: its events, in order, and the child, killed on drop.
pub struct Script {
    name: String,
    child: Child,
    /// Held open: the script exits when it closes (`--watch-stdin`).
    _stdin: Option<ChildStdin>,
    events: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
}

impl Script {
    /// `node <script> args... --watch-stdin` in `tests/interop`. Stdout lines that are JSON
    /// objects become events; stderr is echoed with a `[name]` prefix (the harness captures it).
    pub fn start(node: &Path, name: &str, script: &str, args: &[String]) -> Script {
        let mut child = Command::new(node)
            .current_dir(interop_dir())
            .arg(script)
            .args(args)
            .arg("--watch-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let (tx, events) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("piped");
        let prefix = format!("{name} stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{prefix}] {line}");
                if let Ok(event @ Value::Object(_)) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(event);
                }
            }
        });
        let stderr = child.stderr.take().expect("piped");
        let prefix = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{prefix}] {line}");
            }
        });
        let stdin = child.stdin.take();
        Script { name: name.to_string(), child, _stdin: stdin, events, seen: Vec::new() }
    }

    /// The first event named `event` (one seen earlier counts). Panics on an `error` event, on
    /// exit, or after `timeout`.
    pub async fn event(&mut self, event: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self.seen.iter().find(|e| e["event"] == event) {
                return found.clone();
            }
            if let Some(error) = self.seen.iter().find(|e| e["event"] == "error") {
                panic!("{} reported an error: {error}", self.name);
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(next)) => self.seen.push(next),
                Ok(None) => panic!("{} exited before {event:?}", self.name),
                Err(_) => panic!("{} sent no {event:?} within {timeout:?}", self.name),
            }
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
