//! compare's own redis-server for `--thitsax-store redis`: starting it, one
//! command at a time over a plain socket, and the `INFO commandstats` figures
//! of a measured phase.
//!
//! It never touches the machine's shared Redis (port 6379): it refuses that
//! port outright and checks with `INFO server` that the server answering is
//! the process it started.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::compare::lab::{free_port, Lab};

/// The machine's shared Redis: compare never starts a server on it nor talks to it.
const SHARED_REDIS_PORT: u16 = 6379;

/// One command's counters from `INFO commandstats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CommandStat {
    pub(crate) calls: u64,
    /// Microseconds Redis spent in the command (a script's includes the commands it ran).
    pub(crate) usec: u64,
    /// rejected_calls + failed_calls (Redis >= 6.2; 0 before).
    pub(crate) failed: u64,
}

/// Command name (lower case; `a|b` for a subcommand, e.g. `client|setinfo`) to its counters.
pub(crate) type CommandStats = BTreeMap<String, CommandStat>;

/// Parses the reply to `INFO commandstats`: one line per command,
/// `cmdstat_<name>:calls=N,usec=N,usec_per_call=F,rejected_calls=N,failed_calls=N`.
fn parse_commandstats(info: &str) -> Result<CommandStats, String> {
    let mut out = CommandStats::new();
    for line in info.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("cmdstat_") else { continue };
        let bad = |what: &str| format!("INFO commandstats: {what} in {line:?}");
        let (name, fields) = rest.split_once(':').ok_or_else(|| bad("no ':'"))?;
        let mut stat = CommandStat::default();
        let mut has_calls = false;
        for (key, value) in fields.split(',').filter_map(|f| f.split_once('=')) {
            let num = || value.parse::<u64>().map_err(|_| bad(&format!("bad {key}")));
            match key {
                "calls" => {
                    stat.calls = num()?;
                    has_calls = true;
                }
                "usec" => stat.usec = num()?,
                "rejected_calls" | "failed_calls" => stat.failed += num()?,
                _ => {}
            }
        }
        if !has_calls {
            return Err(bad("no calls="));
        }
        out.insert(name.to_ascii_lowercase(), stat);
    }
    Ok(out)
}

/// What Redis ran between two `INFO commandstats` snapshots, minus the calls
/// compare itself made in between (`own`: command name and calls); commands
/// left with neither calls nor failures are dropped.
pub(crate) fn commandstats_delta(
    before: &CommandStats,
    after: &CommandStats,
    own: &[(&str, u64)],
) -> CommandStats {
    after
        .iter()
        .filter_map(|(name, a)| {
            let b = before.get(name).copied().unwrap_or_default();
            let mine: u64 = own.iter().filter(|(n, _)| n == name).map(|(_, c)| c).sum();
            let d = CommandStat {
                calls: a.calls.saturating_sub(b.calls).saturating_sub(mine),
                usec: a.usec.saturating_sub(b.usec),
                failed: a.failed.saturating_sub(b.failed),
            };
            (d.calls > 0 || d.failed > 0).then(|| (name.clone(), d))
        })
        .collect()
}

/// `field` of `INFO`-style text (`field:value` lines).
fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(|v| v.trim().to_string()))
}

/// Sends one command to 127.0.0.1:`port` on a fresh connection and returns the
/// reply (a simple or bulk string, or an integer as text). Refuses the shared
/// Redis's port outright.
fn redis_command(port: u16, args: &[&str]) -> Result<String, String> {
    use std::io::{Read as _, Write as _};
    if port == SHARED_REDIS_PORT {
        return Err(format!("compare never talks to the shared Redis on port {SHARED_REDIS_PORT}"));
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let io = |e: std::io::Error| format!("redis {addr} {}: {e}", args.first().copied().unwrap_or(""));
    let timeout = Duration::from_secs(5);
    let stream = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    (&stream).write_all(request.as_bytes()).map_err(io)?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).map_err(io)?;
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" | ":" => Ok(rest.to_string()),
        "-" => Err(format!("redis {addr} {}: {rest}", args.join(" "))),
        "$" => {
            let n: usize = rest.parse().map_err(|_| format!("redis {addr}: no bulk reply: {line:?}"))?;
            let mut data = vec![0; n + 2];
            r.read_exact(&mut data).map_err(io)?;
            data.truncate(n);
            Ok(String::from_utf8_lossy(&data).into_owned())
        }
        _ => Err(format!("redis {addr}: unexpected reply {line:?}")),
    }
}

/// `redis-server --version`'s version ("7.0.15"), or why there is no redis-server to run.
pub(crate) fn redis_server_version() -> Result<String, String> {
    let out = Command::new("redis-server")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("--thitsax-store redis needs redis-server on PATH: {e}"))?;
    if !out.status.success() {
        return Err(format!("redis-server --version failed ({})", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.split_whitespace().find_map(|w| w.strip_prefix("v=")).unwrap_or("?").to_string())
}

/// compare's own redis-server, holding ThitsaX's balances with `--thitsax-store redis`.
pub(crate) struct RedisServer {
    pub(crate) pid: u32,
    port: u16,
    pub(crate) version: String,
}

impl RedisServer {
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub(crate) fn commandstats(&self) -> Result<CommandStats, String> {
        parse_commandstats(&redis_command(self.port, &["INFO", "commandstats"])?)
    }
}

/// Starts a redis-server without persistence on a free port, its `--dir` in
/// the lab's temp dir (so the lab kills it and removes the dir), and waits
/// until it answers PING and `INFO server` shows it is the process started here.
pub(crate) fn start_redis(lab: &Lab, version: String) -> Result<RedisServer, String> {
    let port = loop {
        let port = free_port()?;
        if port != SHARED_REDIS_PORT {
            break port;
        }
    };
    start_redis_at(lab, "redis-server", port, version)
}

/// The same on `port`, named `name` in the lab (its log `<name>.log`, its dir `<name>/`):
/// `mojaloop` starts one per Connector on ports it claimed.
pub(crate) fn start_redis_at(
    lab: &Lab,
    name: &str,
    port: u16,
    version: String,
) -> Result<RedisServer, String> {
    if port == SHARED_REDIS_PORT {
        return Err(format!("never a redis-server on the shared Redis's port {SHARED_REDIS_PORT}"));
    }
    let dir = lab.dir.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"]).arg(&dir).args([
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]);
    let pid = lab.start(name, &mut cmd, false)?;
    lab.wait_for(name, pid, &format!("answering PING on 127.0.0.1:{port}"), Duration::from_secs(20), || {
        redis_command(port, &["PING"]).is_ok_and(|r| r == "PONG")
    })?;
    let info = redis_command(port, &["INFO", "server"])?;
    let serving = info_field(&info, "process_id");
    if serving.as_deref() != Some(pid.to_string().as_str()) {
        return Err(format!(
            "127.0.0.1:{port} is served by redis-server pid {}, not by the one started here ({pid})",
            serving.as_deref().unwrap_or("?")
        ));
    }
    Ok(RedisServer { pid, port, version })
}

/// What ThitsaX's redis-server did during one measured phase.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RedisRun {
    /// Commands Redis ran (those run by Lua scripts included), compare's own INFO left out.
    pub(crate) commands: CommandStats,
    /// redis-server's CPU seconds (user + system).
    pub(crate) cpu_s: f64,
}

impl RedisRun {
    pub(crate) fn calls(&self) -> u64 {
        self.commands.values().map(|c| c.calls).sum()
    }

    pub(crate) fn failed(&self) -> u64 {
        self.commands.values().map(|c| c.failed).sum()
    }
}

// Visible to the other compare modules: report's tests reuse a helper.
#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `INFO commandstats` as Redis 7.0 answers it (CRLF lines, a subcommand with `|`).
    const COMMANDSTATS: &str = "# Commandstats\r\n\
        cmdstat_ping:calls=1,usec=3,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_evalsha:calls=200,usec=2000,usec_per_call=10.00,rejected_calls=0,failed_calls=1\r\n\
        cmdstat_client|setinfo:calls=2,usec=4,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_info:calls=3,usec=150,usec_per_call=50.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_HSET:calls=100,usec=100,usec_per_call=1.00,rejected_calls=2,failed_calls=0\r\n";

    pub(crate) fn stat(calls: u64, usec: u64, failed: u64) -> CommandStat {
        CommandStat { calls, usec, failed }
    }

    #[test]
    fn commandstats_parsing() {
        let m = parse_commandstats(COMMANDSTATS).unwrap();
        let names: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(names, ["client|setinfo", "evalsha", "hset", "info", "ping"]);
        assert_eq!(m["evalsha"], stat(200, 2000, 1));
        assert_eq!(m["hset"], stat(100, 100, 2));
        assert_eq!(m["client|setinfo"], stat(2, 4, 0));
        // Before 6.2 there were no rejected/failed counters.
        let old = parse_commandstats("cmdstat_get:calls=7,usec=14,usec_per_call=2.00\n").unwrap();
        assert_eq!(old["get"], stat(7, 14, 0));
        // No commands yet (a fresh server after CONFIG RESETSTAT), other sections ignored.
        assert!(parse_commandstats("# Commandstats\r\n").unwrap().is_empty());
        assert!(parse_commandstats("# Server\r\nredis_version:7.0.15\r\n").unwrap().is_empty());
        // Broken lines are errors, not zeros.
        assert!(parse_commandstats("cmdstat_get:usec=14\n").is_err());
        assert!(parse_commandstats("cmdstat_get:calls=x,usec=14\n").is_err());
        assert!(parse_commandstats("cmdstat_get calls=1\n").is_err());
    }

    #[test]
    fn commandstats_delta_leaves_out_idle_commands_and_our_info() {
        let before = parse_commandstats(COMMANDSTATS).unwrap();
        let mut after = before.clone();
        after.insert("evalsha".into(), stat(500, 5000, 1));
        after.insert("hset".into(), stat(250, 200, 3));
        after.insert("get".into(), stat(4, 8, 0)); // first seen in this phase
        after.insert("info".into(), stat(4, 200, 0)); // the INFO that took `before`
        let d = commandstats_delta(&before, &after, &[("info", 1)]);
        let want: CommandStats = [
            ("evalsha".to_string(), stat(300, 3000, 0)),
            ("get".to_string(), stat(4, 8, 0)),
            ("hset".to_string(), stat(150, 100, 1)),
        ]
        .into_iter()
        .collect();
        assert_eq!(d, want);
        let run = RedisRun { commands: d, cpu_s: 0.5 };
        assert_eq!((run.calls(), run.failed()), (454, 1));
        // Somebody else's INFO stays in; a counter reset does not underflow.
        after.insert("info".into(), stat(5, 250, 0));
        after.insert("ping".into(), stat(0, 0, 0));
        let d = commandstats_delta(&before, &after, &[("info", 1)]);
        assert_eq!(d["info"].calls, 1);
        assert!(!d.contains_key("ping"));
        assert!(commandstats_delta(&before, &before, &[]).is_empty());
    }

    #[test]
    fn info_field_and_no_shared_redis() {
        let info = "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\nprocess_supervised:no\r\n";
        assert_eq!(info_field(info, "process_id").as_deref(), Some("4242"));
        assert_eq!(info_field(info, "process"), None);
        assert_eq!(info_field(info, "tcp_port"), None);
        // Refused before any connection is made.
        let err = redis_command(SHARED_REDIS_PORT, &["PING"]).unwrap_err();
        assert!(err.contains("never talks to the shared Redis"), "{err}");
    }
}
