//! The child processes and temp dir of one `compare` run.
//!
//! `Children` is shared with the signal handler, so that Ctrl-C kills every
//! child while the compare thread is blocked reading one of them; `Lab` owns
//! the temp dir and, when dropped, kills and reaps the children and removes
//! the dir, whether the run ended normally, with an error, or interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Every child of `compare`, shared with the signal handler so that Ctrl-C can
/// kill them while the compare thread is blocked reading from one of them.
#[derive(Clone, Default)]
pub(crate) struct Children {
    list: Arc<Mutex<Vec<Child>>>,
    stopped: Arc<AtomicBool>,
}

pub(crate) struct Spawned {
    pub(crate) pid: u32,
    /// The child's stderr when the command asked for a pipe.
    pub(crate) stderr: Option<ChildStderr>,
}

impl Children {
    pub(crate) fn spawn(&self, name: &str, cmd: &mut Command) -> Result<Spawned, String> {
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
    pub(crate) fn exited(&self, pid: u32) -> Option<ExitStatus> {
        let mut list = self.list.lock().unwrap();
        let child = list.iter_mut().find(|c| c.id() == pid)?;
        child.try_wait().ok().flatten()
    }

    /// Takes child `pid` out of the set and waits for it. Only for a child
    /// that has closed its output, i.e. is ending anyway.
    pub(crate) fn reap(&self, pid: u32) -> Result<ExitStatus, String> {
        let mut child = {
            let mut list = self.list.lock().unwrap();
            let i = list.iter().position(|c| c.id() == pid).ok_or("child already reaped")?;
            list.swap_remove(i)
        };
        child.wait().map_err(|e| format!("wait for child {pid}: {e}"))
    }

    /// Kills child `pid` (SIGKILL), waits for it and takes it out of the set: a process of one
    /// run stopped before the next run starts. No-op when it is not a child (any more).
    pub(crate) fn kill(&self, pid: u32) {
        let child = {
            let mut list = self.list.lock().unwrap();
            list.iter().position(|c| c.id() == pid).map(|i| list.swap_remove(i))
        };
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills every child (SIGKILL) and refuses new ones. Whatever the compare
    /// thread is blocked on then ends: pipes close, waits return.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        for c in self.list.lock().unwrap().iter_mut() {
            let _ = c.kill();
        }
    }

    pub(crate) fn stopped(&self) -> bool {
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
pub(crate) struct Lab {
    pub(crate) dir: PathBuf,
    pub(crate) children: Children,
    /// Leave the dir in place when dropped (its logs and configs, to look into a run).
    pub(crate) keep_dir: bool,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.children.stop_and_reap_all();
        if self.keep_dir {
            eprintln!("kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Lab {
    pub(crate) fn new(children: Children) -> Result<Lab, String> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let dir = std::env::temp_dir().join(format!("thitsax-compare-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        Ok(Lab { dir, children, keep_dir: false })
    }

    pub(crate) fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Starts a long-running child with stdout and stderr in `<name>.log`.
    /// With `stdin_pipe` the child's stdin stays open as long as we live.
    pub(crate) fn start(&self, name: &str, cmd: &mut Command, stdin_pipe: bool) -> Result<u32, String> {
        let path = self.log_path(name);
        let log = std::fs::File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(if stdin_pipe { Stdio::piped() } else { Stdio::null() }).stdout(log).stderr(log2);
        Ok(self.children.spawn(name, cmd)?.pid)
    }

    /// `what` went wrong with `name`, plus the end of its log.
    pub(crate) fn failure(&self, name: &str, what: &str) -> String {
        let log = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        format!("{name} {what}; last lines of its output:\n  {}", tail.join("\n  "))
    }

    /// Polls `ready` until it holds; fails when child `pid` exits, on Ctrl-C, or after `timeout`.
    pub(crate) fn wait_for(
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

    pub(crate) fn wait_port(&self, name: &str, pid: u32, port: u16) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        self.wait_for(name, pid, &format!("listening on {addr}"), Duration::from_secs(20), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
    }
}

/// A port that was free on 127.0.0.1 a moment ago.
pub(crate) fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}
