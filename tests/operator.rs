//! The `thitsax` binary as a new operator first meets it: how it takes its file, what it says at
//! start-up, and what it says when it cannot start.

mod common;

use common::*;
use std::process::{Command, Output};
use std::time::Duration;

use process::{start_binary, BIN};

/// A valid memory-store node on `port`, with two accounts and one static route; `extra` is
/// appended (more sections).
fn config(port: u16, extra: &str) -> String {
    format!(
        r#"
[node]
ilp_address = "test.op"
log_level = "info"
[http]
listen = "127.0.0.1:{port}"
[[accounts]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 9
incoming_token = "alice-token"
[[accounts]]
id = "bank"
relation = "peer"
asset_code = "USD"
asset_scale = 9
ilp_address = "test.bank"
outgoing_url = "http://127.0.0.1:9/"
outgoing_token = "to-bank"
[[routes]]
prefix = "test.partner"
account = "bank"
{extra}
"#
    )
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN).args(args).env_remove("RUST_LOG").output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts the node and returns its stderr lines up to and including the "serving" line.
fn start_and_read_banner(path: &std::path::Path) -> (process::Running, Vec<String>) {
    let (running, lines, _) = start_binary(path);
    (running, lines)
}

#[test]
fn a_busy_admin_port_names_the_admin_listener_and_its_address() {
    let dir = TempDir::new("op-busy-admin");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap();
    let ilp = reserve_port();
    let extra = format!("[admin]\ntoken = \"admin-token\"\nlisten = \"{busy_addr}\"\n");
    let path = write(&dir, "node.toml", &config(ilp, &extra));
    let out = run(&["--config".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("admin listener"), "listener not named:\n{stderr}");
    assert!(stderr.contains(&busy_addr.to_string()), "address not named:\n{stderr}");
    assert!(!stderr.contains("ILP-over-HTTP listener"), "the wrong listener is named:\n{stderr}");
}

#[test]
fn a_busy_settlement_port_names_the_settlement_listener_and_its_address() {
    let dir = TempDir::new("op-busy-settlement");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap();
    let ilp = reserve_port();
    let path = write(&dir, "node.toml", &config(ilp, &format!("[settlement]\nlisten = \"{busy_addr}\"\n")));
    let out = run(&["--config".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("settlement callbacks listener"), "listener not named:\n{stderr}");
    assert!(stderr.contains(&busy_addr.to_string()), "address not named:\n{stderr}");
    assert!(!stderr.contains("ILP-over-HTTP listener"), "the wrong listener is named:\n{stderr}");
}

#[test]
fn a_busy_ilp_port_names_the_ilp_listener_and_its_address() {
    let dir = TempDir::new("op-busy-ilp");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let path = write(&dir, "node.toml", &config(port, ""));
    let out = run(&["--config".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("ILP-over-HTTP listener on 127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn start_up_says_what_listens_where_the_store_and_what_was_loaded() {
    let dir = TempDir::new("op-banner");
    let (ilp, admin) = (reserve_port(), reserve_port());
    let extra = format!("[admin]\ntoken = \"admin-token\"\nlisten = \"127.0.0.1:{admin}\"\n");
    let path = write(&dir, "node.toml", &config(ilp, &extra));
    let (_node, lines) = start_and_read_banner(&path);
    let all = lines.join("\n");
    let has = |needle: &str| assert!(all.contains(needle), "{needle:?} missing from start-up:\n{all}");
    has(&format!("ILP-over-HTTP on 127.0.0.1:{ilp}"));
    has(&format!("admin API on 127.0.0.1:{admin}"));
    has("settlement callbacks not bound");
    has("store: memory");
    has("2 accounts");
    // The static route, the peer's own prefix and the child's address.
    has("3 routes");
    assert!(!all.contains("admin-token") && !all.contains("alice-token"), "a token in the log:\n{all}");
}

#[test]
fn start_up_says_why_the_admin_api_is_not_bound() {
    let dir = TempDir::new("op-banner-no-admin");
    let ilp = reserve_port();
    let path = write(&dir, "node.toml", &config(ilp, ""));
    let (_node, lines) = start_and_read_banner(&path);
    let all = lines.join("\n");
    assert!(all.contains("admin API not bound: no admin.token"), "{all}");
}

#[test]
fn check_config_and_audit_take_the_file_as_config_option_or_positional() {
    let dir = TempDir::new("op-config-flag");
    let path = write(&dir, "node.toml", &config(reserve_port(), ""));
    let file = path.as_os_str();
    for args in [
        vec!["check-config".as_ref(), "--config".as_ref(), file],
        vec!["--config".as_ref(), file, "check-config".as_ref()],
        vec!["check-config".as_ref(), file],
        vec!["--config".as_ref(), file, "check-config".as_ref(), file],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("valid (2 accounts"), "{args:?}: {}", text(&out.stdout));
    }
    // The memory store has no journal: audit gets as far as reading the file and says so.
    for args in [vec!["audit".as_ref(), "--config".as_ref(), file], vec!["audit".as_ref(), file]] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("audit needs store.kind = \"redis\""),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn two_different_config_files_are_refused_naming_both() {
    let dir = TempDir::new("op-two-files");
    let a = write(&dir, "a.toml", &config(reserve_port(), ""));
    let b = write(&dir, "b.toml", &config(reserve_port(), ""));
    for subcommand in ["check-config", "audit"] {
        let out = run(&["--config".as_ref(), a.as_os_str(), subcommand.as_ref(), b.as_os_str()]);
        assert_eq!(out.status.code(), Some(2), "{subcommand}: {}", text(&out.stdout));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("a.toml") && stderr.contains("b.toml"), "{subcommand}: {stderr}");
    }
}

#[test]
fn a_subcommand_without_a_file_says_how_to_give_one() {
    let out = run(&["check-config".as_ref()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--config FILE"), "{}", text(&out.stderr));
}

/// Every configuration the project ships, by folder: `connector.toml.example` and
/// `examples/**/*.toml` (the files of one folder are nodes meant to run side by side).
fn shipped_configs() -> Vec<Vec<(std::path::PathBuf, thitsax::config::Config)>> {
    fn toml_files(dir: &std::path::Path, out: &mut Vec<Vec<std::path::PathBuf>>) {
        let mut here = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                toml_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "toml") {
                here.push(path);
            }
        }
        if !here.is_empty() {
            out.push(here);
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut folders = vec![vec![root.join("connector.toml.example")]];
    toml_files(&root.join("examples"), &mut folders);
    assert!(folders.len() > 1, "no example configs found under examples/");
    folders
        .into_iter()
        .map(|files| {
            files
                .into_iter()
                .map(|path| {
                    let config = thitsax::config::Config::from_file(&path)
                        .unwrap_or_else(|e| panic!("{} is not valid:\n{e}", path.display()));
                    (path, config)
                })
                .collect()
        })
        .collect()
}

/// A listener of the node, with its default when the file does not set it: a listener not bound
/// today is bound as soon as an admin token or an engine is added.
fn listeners(config: &thitsax::config::Config) -> [(&'static str, std::net::SocketAddr); 3] {
    [
        ("http.listen", config.listen),
        ("admin.listen", config.admin.listen),
        ("settlement.listen", config.settlement.listen),
    ]
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// Sending an account's packets to one of the node's own listeners (a child's URL on the default
/// settlement port, say) makes the node talk to itself: every packet T01, nothing logged. So in
/// every shipped file no listener, default or configured, may equal another, nor the loopback port
/// of any account's outgoing URL; a URL may name a listener of another node of the same folder
/// only when it is that node's ILP listener (a peer).
#[test]
fn no_shipped_config_sends_packets_to_a_listener_of_its_own_or_a_default_port() {
    let mut clashes = Vec::new();
    for folder in shipped_configs() {
        for (path, config) in &folder {
            let name = path.file_name().unwrap().to_string_lossy();
            let own = listeners(config);
            for (i, (key, addr)) in own.iter().enumerate() {
                for (other, other_addr) in &own[i + 1..] {
                    if addr.port() == other_addr.port() {
                        clashes.push(format!("{name}: {key} and {other} both on port {}", addr.port()));
                    }
                }
            }
            for account in &config.accounts {
                let Some(outgoing) = &account.outgoing else { continue };
                let (Some(host), Some(port)) = (outgoing.url.host(), outgoing.url.port_u16()) else {
                    continue;
                };
                if !is_loopback(host) {
                    continue;
                }
                for (key, addr) in own {
                    if addr.port() == port {
                        clashes
                            .push(format!("{name}: account {} sends to port {port}, its {key}", account.id));
                    }
                }
                for (sibling_path, sibling) in folder.iter().filter(|(p, _)| p != path) {
                    let sibling_name = sibling_path.file_name().unwrap().to_string_lossy();
                    for (key, addr) in listeners(sibling).into_iter().skip(1) {
                        if addr.port() == port {
                            clashes.push(format!(
                                "{name}: account {} sends to port {port}, {sibling_name}'s {key}",
                                account.id
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(clashes.is_empty(), "ports clash:\n{}", clashes.join("\n"));
}

/// Reads `logs` until a line contains every one of `needles`, or panics after 20 s.
fn wait_for_line(logs: &std::sync::mpsc::Receiver<String>, needles: &[&str]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match logs.recv_timeout(left) {
            Ok(line) if needles.iter().all(|n| line.contains(n)) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line with {needles:?}; seen:\n{}", seen.join("\n")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_hop_that_is_down_and_a_refused_token_are_warned_about_once_without_the_token() {
    let dir = TempDir::new("op-warn");
    let ilp = reserve_port();
    // The peer's URL is a port nothing listens on (reserved here, never bound).
    let down = reserve_port();
    let text = config(ilp, "").replace("http://127.0.0.1:9/", &format!("http://127.0.0.1:{down}/"));
    let path = write(&dir, "node.toml", &text);
    let (_node, _, logs) = start_binary(&path);
    let url = format!("http://127.0.0.1:{ilp}/");
    let client = client();
    for _ in 0..3 {
        let answer =
            send(&client, &url, "alice-token", &prepare("test.partner.x", 5, Duration::from_secs(5))).await;
        assert_code(&answer.reject(), thitsax::packet::ErrorCode::T01_PEER_UNREACHABLE);
    }
    let line = wait_for_line(&logs, &["WARN", "next hop failed", "bank"]);
    assert!(line.contains(&format!("127.0.0.1:{down}")), "the next hop's URL is not named: {line}");
    for _ in 0..3 {
        let answer = post_raw(
            &client,
            &url,
            Some("not-a-token-of-ours"),
            Some("application/octet-stream"),
            vec![0].into(),
        )
        .await;
        assert_eq!(answer.status, 401);
    }
    let line = wait_for_line(&logs, &["WARN", "bad token", "127.0.0.1"]);
    assert!(!line.contains("not-a-token-of-ours"), "the token was logged: {line}");
    // Both were warned about once: the packets and refusals after the first were counted instead
    // (the lines that said so come with the next warning, after the interval).
    let later: Vec<String> =
        std::iter::from_fn(|| logs.recv_timeout(Duration::from_millis(500)).ok()).collect();
    assert!(
        !later.iter().any(|l| l.contains("next hop failed") || l.contains("bad token")),
        "warned more than once per interval: {later:#?}"
    );
}

#[test]
fn start_up_names_the_redis_store_without_its_password() {
    if !common::redis::redis_or_skip("start_up_names_the_redis_store_without_its_password") {
        return;
    }
    // A user of its own with a password; the default user stays open for the harness.
    let redis = common::redis::RedisServer::start();
    let created = redis.cmd(&["ACL", "SETUSER", "thitsax-op", "on", ">s3cret-pass", "~*", "&*", "+@all"]);
    assert!(created.is_ok(), "{created:?}");
    let dir = TempDir::new("op-banner-redis");
    let ilp = reserve_port();
    let url = format!("redis://thitsax-op:s3cret-pass@127.0.0.1:{}/", redis.port());
    let extra = format!("[store]\nkind = \"redis\"\nurl = \"{url}\"\nprefix = \"op\"\n");
    let path = write(&dir, "node.toml", &config(ilp, &extra));
    let (_node, lines) = start_and_read_banner(&path);
    let all = lines.join("\n");
    let shown = format!("store: Redis redis://thitsax-op:***@127.0.0.1:{}/", redis.port());
    assert!(all.contains(&shown), "{shown:?} missing from start-up:\n{all}");
    assert!(!all.contains("s3cret-pass"), "the Redis password is in the log:\n{all}");
    assert!(all.contains("2 accounts"), "{all}");
}
