//! The `thitsax` binary run as a child process by the tests that meet it as an operator does.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_thitsax");

/// Kills the child when the test ends, whatever happened (a test that stops it itself waits on
/// it first, so this then finds it gone).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the node on `path` and returns its stderr lines up to and including the "serving"
/// line, and the lines that follow as they come.
pub fn start_binary(path: &Path) -> (Running, Vec<String>, Receiver<String>) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let running = Running(child);
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no serving line: {lines:#?}"));
        let done = line.contains("serving ILP-over-HTTP");
        lines.push(line);
        if done {
            return (running, lines, rx);
        }
    }
}
