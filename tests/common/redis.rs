//! Real Redis servers for tests: a standalone `redis-server` ([`RedisServer`]) or a Redis Cluster
//! of N masters ([`RedisCluster`]), each process on its own free 127.0.0.1 port with its own
//! temporary directory, stopped and removed on drop.
//!
//! - Gate every test with [`redis_or_skip`]: without `redis-server`/`redis-cli` it skips, or fails
//!   when `CI` is set.
//! - Nothing here ever talks to 127.0.0.1:6379 (the machine's shared Redis): ports are claimed
//!   outside the kernel's ephemeral range, 6379 is refused outright, and no command is sent to a
//!   server before it has proved to be the process this harness started (`INFO server`
//!   `process_id`).
//! - A server's port (and a cluster node's bus port) is claimed for the whole test process (see
//!   [`super::ports`]): while a server is stopped for a restart, no other test's server or node,
//!   in this process or another, can be handed its port, so the node that was using it never
//!   reconnects to a stranger's Redis.
//! - Every `redis-server` runs under a small `sh` guard whose stdin is a pipe from this test
//!   process. When the test process dies, even by SIGKILL where no `Drop` runs, the kernel closes
//!   the pipe and the guard kills its server and removes its directory: nothing outlives the tests.
//! - The API is blocking (std only). From a `#[tokio::test]` whose other tasks must keep running
//!   meanwhile (a node under load while Redis restarts), call `stop`/`restart`/`start` inside
//!   `tokio::task::spawn_blocking` (or `block_in_place` on a multi-thread runtime).
//! - `REDIS_SERVER` and `REDIS_CLI` override the binaries (default: `redis-server` and `redis-cli`
//!   on `PATH`).
//!
//! Each server's directory holds `redis.conf` (what it runs with), `redis.log`, `redis.stdout`
//! (anything printed before the log file opens), the AOF directory when AOF is on, and
//! `nodes.conf` for cluster nodes. Start-up failures panic with the tail of those logs.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The machine's shared Redis: never used, never touched.
const SHARED_REDIS_PORT: u16 = 6379;
/// A cluster node's bus listens on its port + 10000.
const CLUSTER_BUS_OFFSET: u16 = 10000;
const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const RESTART_PORT_WAIT: Duration = Duration::from_secs(15);
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(60);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Fresh ports tried when the picked one turns out to be taken.
const PORT_ATTEMPTS: usize = 8;

// ---------------------------------------------------------------------------
// Binaries and the skip gate
// ---------------------------------------------------------------------------

fn binary(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| default.into())
}

/// `redis-server` to run: `$REDIS_SERVER`, else `redis-server` on `PATH`.
pub fn redis_server_bin() -> PathBuf {
    binary("REDIS_SERVER", "redis-server")
}

/// `redis-cli` to run: `$REDIS_CLI`, else `redis-cli` on `PATH`.
pub fn redis_cli_bin() -> PathBuf {
    binary("REDIS_CLI", "redis-cli")
}

fn version_of(bin: &Path) -> Result<String, String> {
    match Command::new(bin).arg("--version").stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        Ok(out) => Err(format!("{} not runnable (`--version` exited {})", bin.display(), out.status)),
        Err(e) => Err(format!("{} not found ({e})", bin.display())),
    }
}

/// `Ok(version)` when both `redis-server` and `redis-cli` run; otherwise what is missing.
/// Checked once per test binary.
pub fn redis_available() -> Result<String, String> {
    static AVAILABLE: OnceLock<Result<String, String>> = OnceLock::new();
    AVAILABLE
        .get_or_init(|| {
            let server = version_of(&redis_server_bin())?;
            version_of(&redis_cli_bin())?;
            Ok(server)
        })
        .clone()
}

/// Whether a `CI` value means "running in CI": set, non-empty, and not `0` or `false`.
pub fn ci_is_set(value: Option<&str>) -> bool {
    matches!(value, Some(v) if !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// What [`redis_or_skip`] does, as a pure function: `Ok(true)` run, `Ok(false)` skip (after
/// printing `SKIPPED <test>: ...`), `Err(message)` fail the test.
pub fn skip_decision(
    test: &str,
    available: Result<String, String>,
    ci: Option<&str>,
) -> Result<bool, String> {
    match available {
        Ok(_) => Ok(true),
        Err(why) if ci_is_set(ci) => Err(format!(
            "{test}: {why}, and CI is set: install redis-server (Debian package `redis-server`, which \
             also provides redis-cli; .ci/run does this)"
        )),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why} (install Debian's `redis-server` to run the Redis tests)");
            Ok(false)
        }
    }
}

/// Gate for tests that need real Redis: `true` to run. When `redis-server` or `redis-cli` is
/// missing it prints `SKIPPED <test>: redis-server not found (...)` and returns `false`, or panics
/// when `CI` is set.
pub fn redis_or_skip(test: &str) -> bool {
    let ci = std::env::var("CI").ok();
    match skip_decision(test, redis_available(), ci.as_deref()) {
        Ok(run) => run,
        Err(message) => panic!("{message}"),
    }
}

// ---------------------------------------------------------------------------
// A minimal RESP client (one command per connection)
// ---------------------------------------------------------------------------

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// The text of a simple or bulk string (lossy UTF-8); `None` for anything else and for nil.
    pub fn text(&self) -> Option<String> {
        match self {
            Resp::Simple(s) => Some(s.clone()),
            Resp::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Resp::Simple(s) if s == "OK")
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Resp::Bulk(None) | Resp::Array(None))
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Sends one command to 127.0.0.1:`port` on a fresh connection and reads one reply.
fn command(port: u16, args: &[&str], timeout: Duration) -> io::Result<Resp> {
    assert_ne!(port, SHARED_REDIS_PORT, "the Redis test harness never talks to the shared Redis on 6379");
    let stream = TcpStream::connect_timeout(&loopback(port), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    (&stream).write_all(&request)?;
    read_reply(&mut BufReader::new(stream))
}

fn read_reply(r: &mut impl BufRead) -> io::Result<Resp> {
    let mut line = Vec::new();
    if r.read_until(b'\n', &mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.strip_suffix(b"\r\n").ok_or_else(|| invalid("reply line without CRLF"))?;
    let (&kind, rest) = line.split_first().ok_or_else(|| invalid("empty reply line"))?;
    let rest = String::from_utf8_lossy(rest).into_owned();
    let int = |s: &str| s.parse::<i64>().map_err(|_| invalid("bad integer in reply"));
    Ok(match kind {
        b'+' => Resp::Simple(rest),
        b'-' => Resp::Error(rest),
        b':' => Resp::Integer(int(&rest)?),
        b'$' => match usize::try_from(int(&rest)?) {
            Err(_) => Resp::Bulk(None),
            Ok(n) => {
                let mut data = vec![0; n + 2];
                r.read_exact(&mut data)?;
                data.truncate(n);
                Resp::Bulk(Some(data))
            }
        },
        b'*' => match usize::try_from(int(&rest)?) {
            Err(_) => Resp::Array(None),
            Ok(n) => Resp::Array(Some((0..n).map(|_| read_reply(r)).collect::<io::Result<_>>()?)),
        },
        _ => return Err(invalid("unknown reply type")),
    })
}

/// `field` from `INFO`-style text (`field:value` lines).
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(|v| v.trim().to_string()))
}

// ---------------------------------------------------------------------------
// Ports, directories, processes
// ---------------------------------------------------------------------------

fn random_u64() -> u64 {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_usize(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

/// Whether the harness could hand `port` to a new server now: see [`super::ports`].
pub fn port_available(port: u16) -> bool {
    super::ports::available(port)
}

/// A port claimed for this process (and, for a cluster node, its bus port + 10000 too): free now,
/// outside the kernel's ephemeral range, and handed to no other server or listener of any test
/// process while this one lives, so a server stopped for a restart finds its port again.
fn free_port(cluster: bool) -> u16 {
    if cluster {
        super::ports::claim_pair(CLUSTER_BUS_OFFSET)
    } else {
        super::ports::claim()
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "thitsax-redis-{}-{label}-{:x}",
            std::process::id(),
            random_u64() & 0xffff_ffff
        ));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `$1 $2` (redis-server and its config) with output appended to `$3`, prints its pid, and
/// exits with the server's status when the server exits. A watcher SIGKILLs the server as soon as
/// stdin gets a line or closes: the harness writes `keep` first (the directory `$4` stays for a
/// restart or for `TempDir` to remove); a bare close means the test process died without running
/// `Drop`, so the watcher removes `$4` too. fd 3 hands the pipe to the watcher: POSIX gives
/// background jobs /dev/null as stdin.
const GUARD_SCRIPT: &str = r#"
exec 3<&0
"$1" "$2" </dev/null >>"$3" 2>&1 3<&- &
pid=$!
echo "$pid"
(
  read -r line <&3
  trap '' TERM
  kill -KILL "$pid"
  if [ "$line" != keep ]; then
    i=0
    while [ "$i" -lt 100 ] && kill -0 "$pid"; do sleep 0.05; i=$((i + 1)); done
    rm -rf -- "$4"
  fi
) >/dev/null 2>&1 &
watcher=$!
exec 3<&-
wait "$pid"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
"#;

/// A running redis-server under its guard.
struct Guarded {
    guard: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
}

impl Guarded {
    /// Has the guard SIGKILL the server (keeping its directory); does not wait.
    fn signal_kill(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"keep\n");
        }
    }

    /// Waits for the server (and so its guard) to exit; `None` on timeout.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.guard.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => return None,
                Err(_) => return None,
            }
        }
    }

    /// SIGKILLs the server and waits until it is gone.
    fn kill(&mut self) {
        self.signal_kill();
        if self.wait(STOP_TIMEOUT).is_none() {
            // The system call, not the `kill` binary: minimal images lack procps.
            if let Some(pid) = i32::try_from(self.pid).ok().and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            let _ = self.guard.kill();
            let _ = self.guard.wait();
        }
    }
}

/// The last `lines` lines of `path` from byte `from` on (a log since a given start); empty when
/// the file cannot be read.
pub fn tail(path: &Path, from: u64, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.seek(SeekFrom::Start(from));
        let _ = f.read_to_string(&mut text);
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The length of `path` in bytes; 0 when it does not exist.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Runs `cmd` with stdout and stderr in files under `dir`, killing it after `timeout`; returns
/// its status (`None` on timeout) and its output.
fn run_with_timeout(mut cmd: Command, dir: &Path, timeout: Duration) -> (Option<ExitStatus>, String) {
    let n = random_u64() & 0xffff_ffff;
    let (out_path, err_path) = (dir.join(format!("cmd-{n:x}.out")), dir.join(format!("cmd-{n:x}.err")));
    let out = std::fs::File::create(&out_path).expect("create command output file");
    let err = std::fs::File::create(&err_path).expect("create command output file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut output = std::fs::read_to_string(&out_path).unwrap_or_default();
    output.push_str(&std::fs::read_to_string(&err_path).unwrap_or_default());
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    (status, output)
}

/// Pids of live `redis-server` processes serving 127.0.0.1:`port`, read from `/proc/*/cmdline`
/// as `pgrep -f` does (redis-server titles itself `redis-server 127.0.0.1:PORT [cluster]`).
pub fn redis_pids_on_port(port: u16) -> Vec<u32> {
    let needle = format!("127.0.0.1:{port}");
    processes_where(|cmdline| {
        let mut words = cmdline.split_whitespace();
        words.next().is_some_and(|w| w.ends_with("redis-server")) && words.any(|w| w == needle)
    })
}

/// Pids of live processes whose command line contains `needle` (for example a server's directory,
/// which its guard's command line names).
pub fn pids_mentioning(needle: &str) -> Vec<u32> {
    processes_where(|cmdline| cmdline.contains(needle))
}

fn processes_where(matches: impl Fn(&str) -> bool) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
            let cmdline: String = String::from_utf8_lossy(&raw).replace('\0', " ");
            matches(cmdline.trim())
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Panics if any redis-server still serves one of `ports` (checked in `/proc`, and with
/// `pgrep -f` where procps is installed).
pub fn assert_no_redis_on_ports(ports: &[u16]) {
    for &port in ports {
        let left = redis_pids_on_port(port);
        assert!(left.is_empty(), "redis-server still running on 127.0.0.1:{port}: pids {left:?}");
        let pattern = format!(r"redis-server 127\.0\.0\.1:{port}( |$)");
        if let Ok(out) = Command::new("pgrep").args(["-f", &pattern]).stdin(Stdio::null()).output() {
            let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert!(found.is_empty(), "pgrep -f '{pattern}' still finds pids: {found}");
        }
    }
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// How to run redis-server: the defaults are an in-memory server (`save ""`, `appendonly no`).
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    aof: bool,
    config: Vec<(String, String)>,
}

impl RedisOptions {
    pub fn new() -> RedisOptions {
        RedisOptions::default()
    }

    /// AOF on with `appendfsync always`: every acknowledged write survives a SIGKILL
    /// ([`RedisServer::kill`]) and a restart. For crash tests.
    pub fn aof(mut self, on: bool) -> RedisOptions {
        self.aof = on;
        self
    }

    /// Any further `redis.conf` directive, written after the harness's own (for most directives
    /// the last one wins; `save` lines add up instead).
    pub fn config(mut self, key: &str, value: &str) -> RedisOptions {
        self.config.push((key.to_string(), value.to_string()));
        self
    }

    pub fn start(self) -> RedisServer {
        RedisServer::launch_fresh(self, false)
    }

    /// A cluster of `masters` (at least 3) masters and no replicas, each node run with these
    /// options; `cluster-node-timeout` is 5000 ms unless set here.
    pub fn start_cluster(self, masters: usize) -> RedisCluster {
        RedisCluster::launch(self, masters)
    }
}

// ---------------------------------------------------------------------------
// A standalone server (also one cluster node)
// ---------------------------------------------------------------------------

enum LaunchError {
    PortTaken(String),
    Failed(String),
}

/// A `redis-server` of this test's own on 127.0.0.1:[`port`](RedisServer::port), with its own
/// temporary directory. Drop kills it and removes the directory.
pub struct RedisServer {
    port: u16,
    cluster: bool,
    process: Option<Guarded>,
    /// Declared last: removed after the process is gone.
    dir: TempDir,
}

impl RedisServer {
    /// A fresh in-memory server (`save ""`, `appendonly no`).
    pub fn start() -> RedisServer {
        RedisOptions::new().start()
    }

    /// A fresh server with AOF and `appendfsync always` (for crash tests).
    pub fn start_with_aof() -> RedisServer {
        RedisOptions::new().aof(true).start()
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    /// The server's directory (`--dir`): config, log, AOF, `nodes.conf`.
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// The redis-server process id since the last start or restart; `None` after `stop`/`kill`.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// Whether the process is alive (it may have exited by itself, e.g. after `SHUTDOWN`).
    pub fn is_running(&mut self) -> bool {
        match self.process.as_mut() {
            Some(p) => matches!(p.guard.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The whole `redis.log` (every run since the server was created).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("redis.log")).unwrap_or_default()
    }

    /// One command on a fresh connection; `Err` if the server cannot be reached.
    pub fn try_cmd(&self, args: &[&str]) -> io::Result<Resp> {
        command(self.port, args, COMMAND_TIMEOUT)
    }

    /// One command on a fresh connection; panics if the server cannot be reached (an error reply
    /// is returned as `Resp::Error`).
    pub fn cmd(&self, args: &[&str]) -> Resp {
        self.try_cmd(args).unwrap_or_else(|e| panic!("redis 127.0.0.1:{} {args:?}: {e}", self.port))
    }

    /// `INFO section` as text.
    pub fn info(&self, section: &str) -> String {
        match self.cmd(&["INFO", section]) {
            Resp::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("INFO {section} on 127.0.0.1:{}: {other:?}", self.port),
        }
    }

    /// Runs `redis-cli -h 127.0.0.1 -p PORT ARGS...` (put `-c` first for cluster mode) and returns
    /// its trimmed output; panics if it fails or hangs.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(redis_cli_bin());
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]).args(args);
        match run_with_timeout(cmd, self.dir(), COMMAND_TIMEOUT) {
            (Some(status), out) if status.success() => out.trim().to_string(),
            (status, out) => panic!("redis-cli -p {} {args:?}: {status:?}\n{out}", self.port),
        }
    }

    /// `FLUSHALL` on this server (only ever on a server this harness started).
    pub fn flushall(&self) {
        let reply = self.cmd(&["FLUSHALL"]);
        assert!(reply.is_ok(), "FLUSHALL on 127.0.0.1:{}: {reply:?}", self.port);
    }

    /// Stops the server cleanly (`SHUTDOWN NOSAVE`; with AOF on, the AOF is flushed) and waits for
    /// it to exit; SIGKILL if it does not within 10 s. The port and directory are kept for
    /// [`restart`](Self::restart). No-op when stopped.
    pub fn stop(&mut self) {
        let Some(mut p) = self.process.take() else { return };
        let _ = command(self.port, &["SHUTDOWN", "NOSAVE"], Duration::from_secs(5));
        if p.wait(STOP_TIMEOUT).is_none() {
            p.kill();
        }
    }

    /// Crashes the server: SIGKILL, no shutdown. With AOF (`appendfsync always`) every write it
    /// acknowledged is still there after [`restart`](Self::restart). No-op when stopped.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Starts the server again on the same port with the same directory (so the same AOF and,
    /// for a cluster node, the same `nodes.conf`), stopping it first if it runs; waits until it
    /// answers `PING` (after loading its AOF). Waits up to 15 s for the port if something else
    /// holds it meanwhile.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + RESTART_PORT_WAIT;
        loop {
            match self.spawn() {
                Ok(p) => {
                    self.process = Some(p);
                    return;
                }
                Err(LaunchError::PortTaken(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(LaunchError::PortTaken(log)) => panic!(
                    "restart: 127.0.0.1:{} (or its cluster bus port) stayed taken by another process \
                     for {RESTART_PORT_WAIT:?}:\n{log}",
                    self.port
                ),
                Err(LaunchError::Failed(message)) => panic!("restart: {message}"),
            }
        }
    }

    fn launch_fresh(options: RedisOptions, cluster: bool) -> RedisServer {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port(cluster);
            let mut server =
                RedisServer { port, cluster, process: None, dir: TempDir::new(&port.to_string()) };
            server.write_config(&options);
            match server.spawn() {
                Ok(p) => {
                    server.process = Some(p);
                    return server;
                }
                // Someone took the port between the check and redis-server's bind: a new port
                // and a new directory.
                Err(LaunchError::PortTaken(log)) => last = log,
                Err(LaunchError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!("redis-server: every port tried ({PORT_ATTEMPTS}) was taken; last log:\n{last}");
    }

    fn write_config(&self, options: &RedisOptions) {
        let dir = self.dir();
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let mut lines: Vec<(String, String)> = vec![
            ("port".into(), self.port.to_string()),
            ("bind".into(), "127.0.0.1".into()),
            ("protected-mode".into(), "no".into()),
            ("daemonize".into(), "no".into()),
            ("dir".into(), dir.to_string_lossy().into_owned()),
            ("logfile".into(), path("redis.log")),
            ("save".into(), String::new()),
            ("appendonly".into(), if options.aof { "yes" } else { "no" }.into()),
            ("appendfsync".into(), if options.aof { "always" } else { "everysec" }.into()),
        ];
        if self.cluster {
            lines.push(("cluster-enabled".into(), "yes".into()));
            lines.push(("cluster-config-file".into(), path("nodes.conf")));
            lines.push(("cluster-node-timeout".into(), "5000".into()));
        }
        lines.extend(options.config.iter().cloned());
        let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let text: String = lines.iter().map(|(k, v)| format!("{k} {}\n", quote(v))).collect();
        std::fs::write(dir.join("redis.conf"), text).expect("write redis.conf");
    }

    /// Starts redis-server under its guard and waits until it answers PING as our process.
    fn spawn(&self) -> Result<Guarded, LaunchError> {
        assert_ne!(self.port, SHARED_REDIS_PORT, "never run a test Redis on the shared Redis's port");
        let dir = self.dir();
        let (log, stdout) = (dir.join("redis.log"), dir.join("redis.stdout"));
        let (log_from, stdout_from) = (file_len(&log), file_len(&stdout));
        let logs = || {
            format!(
                "--- {} (tail) ---\n{}\n--- {} ---\n{}",
                log.display(),
                tail(&log, log_from, 30),
                stdout.display(),
                tail(&stdout, stdout_from, 30)
            )
        };

        let mut guard = Command::new("sh")
            .arg("-c")
            .arg(GUARD_SCRIPT)
            .arg("thitsax-redis-guard")
            .arg(redis_server_bin())
            .arg(dir.join("redis.conf"))
            .arg(&stdout)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| LaunchError::Failed(format!("cannot run sh for redis-server: {e}")))?;
        let mut line = String::new();
        let _ = BufReader::new(guard.stdout.take().expect("piped stdout")).read_line(&mut line);
        let stdin = guard.stdin.take();
        let Ok(pid) = line.trim().parse::<u32>() else {
            let _ = guard.kill();
            let _ = guard.wait();
            return Err(LaunchError::Failed(format!("redis-server guard printed no pid ({line:?})")));
        };
        let mut p = Guarded { guard, stdin, pid };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = p.guard.try_wait() {
                let logs = logs();
                return Err(if logs.contains("Address already in use") {
                    LaunchError::PortTaken(logs)
                } else {
                    LaunchError::Failed(format!(
                        "redis-server on 127.0.0.1:{} exited ({status}) before answering PING:\n{logs}",
                        self.port
                    ))
                });
            }
            let short = Duration::from_millis(500);
            if let Ok(Resp::Simple(pong)) = command(self.port, &["PING"], short) {
                // Our process, not a stranger that held the port (ours then fails to bind and
                // exits, which the check above sees).
                let ours = match command(self.port, &["INFO", "server"], short) {
                    Ok(Resp::Bulk(Some(info))) => {
                        info_field(&String::from_utf8_lossy(&info), "process_id") == Some(pid.to_string())
                    }
                    _ => false,
                };
                if pong == "PONG" && ours {
                    return Ok(p);
                }
            }
            if Instant::now() >= deadline {
                p.kill();
                return Err(LaunchError::Failed(format!(
                    "redis-server on 127.0.0.1:{} did not answer PING within {START_TIMEOUT:?}:\n{}",
                    self.port,
                    logs()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// A cluster
// ---------------------------------------------------------------------------

/// A Redis Cluster of N masters (no replicas) built with `redis-cli --cluster create`, each node a
/// [`RedisServer`] with `cluster-enabled yes`. Drop kills every node and removes their directories.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// `masters` (at least 3) in-memory masters, ready: `cluster_state:ok` on every node.
    pub fn start(masters: usize) -> RedisCluster {
        RedisOptions::new().start_cluster(masters)
    }

    fn launch(options: RedisOptions, masters: usize) -> RedisCluster {
        assert!(masters >= 3, "redis-cli --cluster create needs at least 3 masters, got {masters}");
        let cluster = RedisCluster {
            nodes: (0..masters).map(|_| RedisServer::launch_fresh(options.clone(), true)).collect(),
        };
        let mut cmd = Command::new(redis_cli_bin());
        cmd.args(["--cluster", "create"]);
        cmd.args(cluster.ports().iter().map(|p| format!("127.0.0.1:{p}")));
        cmd.args(["--cluster-replicas", "0", "--cluster-yes"]);
        match run_with_timeout(cmd, cluster.nodes[0].dir(), CLUSTER_TIMEOUT) {
            (Some(status), _) if status.success() => {}
            (status, out) => {
                panic!("redis-cli --cluster create on ports {:?}: {status:?}\n{out}", cluster.ports())
            }
        }
        cluster.wait_ok(CLUSTER_TIMEOUT);
        cluster
    }

    /// `redis://127.0.0.1:P/` for every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// A node, to stop, kill or restart it (a restarted node rejoins from its `nodes.conf`; then
    /// [`wait_ok`](Self::wait_ok)).
    pub fn node_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    /// `CLUSTER INFO` of node `i` as text.
    pub fn cluster_info(&self, i: usize) -> String {
        match self.nodes[i].cmd(&["CLUSTER", "INFO"]) {
            Resp::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("CLUSTER INFO on 127.0.0.1:{}: {other:?}", self.nodes[i].port()),
        }
    }

    /// Waits until every node reports `cluster_state:ok`, all 16384 slots ok, every node known and
    /// every master serving slots; panics after `timeout` with what each node said.
    pub fn wait_ok(&self, timeout: Duration) {
        let n = self.nodes.len().to_string();
        let deadline = Instant::now() + timeout;
        loop {
            let infos: Vec<Result<String, String>> = self
                .nodes
                .iter()
                .map(|node| match node.try_cmd(&["CLUSTER", "INFO"]) {
                    Ok(Resp::Bulk(Some(b))) => Ok(String::from_utf8_lossy(&b).into_owned()),
                    Ok(other) => Err(format!("{other:?}")),
                    Err(e) => Err(e.to_string()),
                })
                .collect();
            let ready = infos.iter().all(|info| {
                info.as_ref().is_ok_and(|info| {
                    let is = |field: &str, want: &str| info_field(info, field).as_deref() == Some(want);
                    is("cluster_state", "ok")
                        && is("cluster_slots_ok", "16384")
                        && is("cluster_known_nodes", &n)
                        && is("cluster_size", &n)
                })
            });
            if ready {
                return;
            }
            if Instant::now() >= deadline {
                let report: Vec<String> = self
                    .ports()
                    .iter()
                    .zip(&infos)
                    .map(|(p, i)| format!("--- 127.0.0.1:{p}\n{i:?}"))
                    .collect();
                panic!("cluster not ok within {timeout:?}:\n{}", report.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `FLUSHALL` on every running node.
    pub fn flushall(&self) {
        for node in &self.nodes {
            if node.pid().is_some() {
                node.flushall();
            }
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        // Signal every node first so they die together, then each node's Drop waits for it.
        for node in &mut self.nodes {
            if let Some(p) = node.process.as_mut() {
                p.signal_kill();
            }
        }
    }
}
