//! Interop with third-party JavaScript Interledger software (see
//! tests/interop/README.md): STREAM payments from `ilp-protocol-stream` 2.7.1
//! over `ilp-plugin-http` 1.6.1 through ThitsaX, directly and via the JS
//! reference connector `ilp-connector` 23.0.2.
//!
//! Needs Node >= 18 and npm; the pinned packages are installed with `npm ci` on first use
//! (`.ci/run` installs them up front). Without `node` on
//! PATH (or in $NODE) the tests print a skip note and pass, unless `CI` is set,
//! in which case they fail.
//!
//! Every child process (ThitsaX and the Node scripts) is killed when the test
//! ends, also on panic (`Procs` drop guard); the Node scripts additionally
//! exit when their stdin pipe closes (`--watch-stdin`), i.e. when this test
//! process dies.

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const AMOUNT: u64 = 10_000;
const MAX_PACKET: u64 = 1_000;

// ---------------------------------------------------------------------------
// Environment: node, npm packages, temp dirs, ports
// ---------------------------------------------------------------------------

use common::js::{interop_dir, node_or_skip};

/// `n` distinct loopback ports for the processes this test starts, claimed for this test process
/// outside the kernel's ephemeral range (see `common::ports`): a port merely bound to `:0` and
/// released could be handed by the kernel to another test's listener or to an outgoing connection
/// before the process that is to listen on it binds it (CI saw "Address already in use").
fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| common::ports::claim()).collect()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let p = std::env::temp_dir().join(format!("thitsax-interop-{}-{name}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Child processes with JSON-line stdout
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Lines {
    events: Vec<Value>,
    exited: bool,
}

struct Proc {
    name: String,
    child: Child,
    lines: Arc<(Mutex<Lines>, Condvar)>,
    /// Last stderr lines, for failure messages.
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

/// Owns every child of a test; kills them all when dropped (also on panic).
#[derive(Default)]
struct Procs(Vec<Proc>);

impl Drop for Procs {
    fn drop(&mut self) {
        for p in &mut self.0 {
            let _ = p.child.kill();
        }
        for p in &mut self.0 {
            let _ = p.child.wait();
        }
    }
}

impl Procs {
    /// Spawn `cmd` with piped stdio. Stdout lines that parse as JSON objects
    /// are collected as events; stderr is echoed (captured by the test
    /// harness) with a `[name]` prefix.
    fn spawn(&mut self, name: &str, mut cmd: Command) -> usize {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let lines = Arc::new((Mutex::new(Lines::default()), Condvar::new()));
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));

        let (l2, l3, t2) = (lines.clone(), lines.clone(), stderr_tail.clone());
        echo_lines(
            child.stdout.take().unwrap(),
            format!("{name} stdout"),
            move |line| {
                if let Ok(ev) = serde_json::from_str::<Value>(&line) {
                    let (m, cv) = &*l2;
                    m.lock().unwrap().events.push(ev);
                    cv.notify_all();
                }
            },
            move || {
                let (m, cv) = &*l3;
                m.lock().unwrap().exited = true;
                cv.notify_all();
            },
        );
        echo_lines(
            child.stderr.take().unwrap(),
            name.to_string(),
            move |line| {
                let mut t = t2.lock().unwrap();
                if t.len() == 40 {
                    t.pop_front();
                }
                t.push_back(line);
            },
            || {},
        );
        self.0.push(Proc { name: name.to_string(), child, lines, stderr_tail });
        self.0.len() - 1
    }

    /// Start a harness script: `node <script> args... --watch-stdin`.
    fn node(&mut self, node: &Path, name: &str, script: &str, args: &[String]) -> usize {
        let mut cmd = Command::new(node);
        cmd.current_dir(interop_dir()).arg(script).args(args).arg("--watch-stdin");
        self.spawn(name, cmd)
    }

    fn diagnostics(&mut self, i: usize) -> String {
        let p = &mut self.0[i];
        let status = match p.child.try_wait() {
            Ok(Some(s)) => format!("exited with {s}"),
            Ok(None) => "still running".to_string(),
            Err(e) => format!("wait error {e}"),
        };
        let tail: Vec<String> = p.stderr_tail.lock().unwrap().iter().cloned().collect();
        format!("{} {status}; last stderr lines:\n  {}", p.name, tail.join("\n  "))
    }

    /// Wait for the first event named `event` from process `i`. Panics on an
    /// `{"event":"error"}` line, on exit, or after `timeout`.
    fn wait_event(&mut self, i: usize, event: &str, timeout: Duration) -> Value {
        self.wait_event_any(i, &[event], timeout)
    }

    /// Wait for the first event named one of `events` from process `i`, as `wait_event` does.
    fn wait_event_any(&mut self, i: usize, events: &[&str], timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let lines = self.0[i].lines.clone();
        let (m, cv) = &*lines;
        let mut g = m.lock().unwrap();
        let event = events.join("\" or \"");
        loop {
            if let Some(ev) =
                g.events.iter().find(|e| e["event"].as_str().is_some_and(|name| events.contains(&name)))
            {
                return ev.clone();
            }
            if let Some(err) = g.events.iter().find(|e| e["event"].as_str() == Some("error")) {
                let msg = format!("{} reported an error: {}", self.0[i].name, err);
                drop(g);
                let diag = self.diagnostics(i);
                panic!("{msg}\n{diag}");
            }
            let now = Instant::now();
            if g.exited || now >= deadline {
                let why = if g.exited { "exited" } else { "timed out" };
                drop(g);
                let (name, diag) = (self.0[i].name.clone(), self.diagnostics(i));
                panic!("{name} {why} before \"{event}\" ({timeout:?})\n{diag}");
            }
            g = cv.wait_timeout(g, (deadline - now).min(Duration::from_millis(200))).unwrap().0;
        }
    }

    /// Wait until `port` on 127.0.0.1 accepts TCP connections (process `i` must keep running).
    fn wait_port(&mut self, i: usize, port: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
            {
                return;
            }
            if let Ok(Some(_)) = self.0[i].child.try_wait() {
                let (name, diag) = (self.0[i].name.clone(), self.diagnostics(i));
                panic!("{name} exited before listening on port {port}\n{diag}");
            }
            if Instant::now() >= deadline {
                let (name, diag) = (self.0[i].name.clone(), self.diagnostics(i));
                panic!("{name} not listening on 127.0.0.1:{port} after {timeout:?}\n{diag}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// On a new thread: echo every line of `pipe` to stderr as `[prefix] line`
/// (captured by the test harness) and pass it to `on_line`; at the end of the
/// pipe (or a read error), call `on_end`.
fn echo_lines(
    pipe: impl Read + Send + 'static,
    prefix: String,
    mut on_line: impl FnMut(String) + Send + 'static,
    on_end: impl FnOnce() + Send + 'static,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            eprintln!("[{prefix}] {line}");
            on_line(line);
        }
        on_end();
    });
}

// ---------------------------------------------------------------------------
// ThitsaX
// ---------------------------------------------------------------------------

struct Account<'a> {
    id: &'a str,
    relation: &'a str,
    incoming_token: &'a str,
    outgoing_url: String,
    outgoing_token: &'a str,
    max_packet_amount: u64,
    ilp_address: Option<&'a str>,
}

fn thitsax_config(port: u16, accounts: &[Account]) -> String {
    let mut s = format!(
        r#"# generated by tests/interop.rs
[node]
ilp_address = "test.thitsax"
log_level = "info"

[http]
listen = "127.0.0.1:{port}"

[forwarding]
expiry_margin_ms = 1000
hold_time_ms_max = 30000
min_outgoing_window_ms = 500

[store]
kind = "memory"

[rates]
spread = "0.0"

[rates.prices]
USD = "1"
"#
    );
    for a in accounts {
        s.push_str(&format!(
            r#"
[[accounts]]
id = "{}"
relation = "{}"
asset_code = "USD"
asset_scale = 9
incoming_token = "{}"
outgoing_url = "{}"
outgoing_token = "{}"
max_packet_amount = {}
"#,
            a.id, a.relation, a.incoming_token, a.outgoing_url, a.outgoing_token, a.max_packet_amount
        ));
        if let Some(addr) = a.ilp_address {
            s.push_str(&format!("ilp_address = \"{addr}\"\n"));
        }
    }
    s
}

/// Validate the config with `thitsax check-config`, then start `thitsax
/// --config` and wait until it listens.
fn start_thitsax(procs: &mut Procs, dir: &Path, port: u16, config: &str) -> usize {
    let bin = env!("CARGO_BIN_EXE_thitsax");
    let path = dir.join("thitsax.toml");
    std::fs::File::create(&path).and_then(|mut f| f.write_all(config.as_bytes())).expect("write config");
    let check = Command::new(bin)
        .arg("check-config")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("run thitsax check-config");
    assert!(
        check.status.success(),
        "thitsax check-config rejected the generated config ({}):\n{}{}\n--- config ---\n{config}",
        check.status,
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(&path).env("NO_COLOR", "1");
    let i = procs.spawn("thitsax", cmd);
    procs.wait_port(i, port, Duration::from_secs(20));
    i
}

// ---------------------------------------------------------------------------
// Assertions on the STREAM results
// ---------------------------------------------------------------------------

fn check_payment(paid: &Value, received: &Value, max_packet: u64, f08_from: &str) {
    let amount = AMOUNT.to_string();
    assert_eq!(paid["sent"].as_str(), Some(amount.as_str()), "sender did not send the full amount: {paid}");
    assert_eq!(paid["delivered"].as_str(), Some(amount.as_str()), "sender: not all delivered: {paid}");
    assert_eq!(
        received["total"].as_str(),
        Some(amount.as_str()),
        "receiver did not get the full amount: {received}"
    );
    let packets = paid.get("packets").unwrap_or_else(|| panic!("no packet stats: {paid}"));
    let f08 = packets["rejectCodes"]["F08"].as_u64().unwrap_or(0);
    let fulfills = packets["fulfills"].as_u64().unwrap_or(0);
    let max_fulfilled: u64 =
        packets["maxFulfilledAmount"].as_str().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
    assert!(f08 >= 1, "expected at least one F08 (amount too large) reject: {paid}");
    let f08_by = packets.get("rejectTriggeredBy").and_then(|t| t.get("F08"));
    assert!(
        matches!(f08_by, Some(Value::Array(a)) if a.iter().all(|v| v.as_str() == Some(f08_from))),
        "expected every F08 to be triggered by {f08_from}: {paid}"
    );
    assert!(
        fulfills >= AMOUNT / max_packet,
        "expected the payment split into >= {} packets, got {fulfills}: {paid}",
        AMOUNT / max_packet
    );
    assert!(
        max_fulfilled <= max_packet,
        "a fulfilled packet exceeded max_packet_amount {max_packet}: {paid}"
    );
}

// ---------------------------------------------------------------------------
// The STREAM endpoints (receiver.js, sender.js)
// ---------------------------------------------------------------------------

/// `max_packet_amount` of the receiver's account on ThitsaX: far above `AMOUNT`.
const RECEIVER_MAX_PACKET: u64 = 1_000_000_000;

/// How a JS endpoint reaches its upstream connector: its own ILP-over-HTTP
/// port, the connector's URL, and the bearer tokens it accepts and presents.
struct Upstream<'a> {
    port: u16,
    url: String,
    incoming_token: &'a str,
    outgoing_token: &'a str,
}

impl<'a> Upstream<'a> {
    /// `--port`, `--url`, `--incoming-token`, `--outgoing-token`, followed by `rest`.
    fn args<const N: usize>(&self, rest: [String; N]) -> Vec<String> {
        let mut args = vec![
            "--port".into(),
            self.port.to_string(),
            "--url".into(),
            self.url.clone(),
            "--incoming-token".into(),
            self.incoming_token.into(),
            "--outgoing-token".into(),
            self.outgoing_token.into(),
        ];
        args.extend(rest);
        args
    }

    /// ThitsaX's account `id` for this endpoint when ThitsaX is its upstream:
    /// a child, sending to the endpoint's port with the tokens mirrored.
    fn thitsax_account(&self, id: &'a str, max_packet_amount: u64) -> Account<'a> {
        Account {
            id,
            relation: "child",
            incoming_token: self.outgoing_token,
            outgoing_url: format!("http://127.0.0.1:{}/", self.port),
            outgoing_token: self.incoming_token,
            max_packet_amount,
            ilp_address: None,
        }
    }
}

/// receiver.js on `port` as ThitsaX's child "receiver", reaching ThitsaX at `url`.
fn receiver_upstream(port: u16, url: String) -> Upstream<'static> {
    Upstream { port, url, incoming_token: "thitsax-to-receiver", outgoing_token: "receiver-token" }
}

/// Start receiver.js over `upstream`, expecting `AMOUNT`, and wait until it is
/// ready. Asserts that it learned `test.thitsax.receiver` by ILDCP; returns its
/// index and "ready" event.
fn start_receiver(procs: &mut Procs, node: &Path, upstream: &Upstream) -> (usize, Value) {
    let args = upstream.args(["--expect".into(), AMOUNT.to_string(), "--timeout-ms".into(), "90000".into()]);
    let rx = procs.node(node, "receiver", "receiver.js", &args);
    let ready = procs.wait_event(rx, "ready", Duration::from_secs(30));
    assert_eq!(ready["clientAddress"].as_str(), Some("test.thitsax.receiver"), "receiver ILDCP: {ready}");
    (rx, ready)
}

/// Send `AMOUNT` with sender.js over `upstream` to the receiver `rx` (whose
/// "ready" event is `ready`). Asserts that the sender learned `source_address`
/// by ILDCP and that the payment went through split on ThitsaX's F08s
/// (`check_payment`), then waits for the sender to exit.
fn pay_and_check(
    procs: &mut Procs,
    node: &Path,
    upstream: &Upstream,
    source_address: &str,
    (rx, ready): (usize, &Value),
) {
    let args = upstream.args([
        "--destination".into(),
        ready["address"].as_str().expect("receiver address").to_string(),
        "--shared-secret".into(),
        ready["sharedSecret"].as_str().expect("receiver sharedSecret").to_string(),
        "--amount".into(),
        AMOUNT.to_string(),
        "--timeout-ms".into(),
        "60000".into(),
    ]);
    let tx = procs.node(node, "sender", "sender.js", &args);
    let connected = procs.wait_event(tx, "connected", Duration::from_secs(40));
    assert_eq!(connected["sourceAddress"].as_str(), Some(source_address), "sender ILDCP: {connected}");
    let paid = procs.wait_event(tx, "paid", Duration::from_secs(65));
    let received = procs.wait_event(rx, "received", Duration::from_secs(10));
    check_payment(&paid, &received, MAX_PACKET, "test.thitsax");
    procs.wait_event(tx, "exit", Duration::from_secs(10));
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// sender (child "sender", max_packet_amount 1000) -> ThitsaX -> receiver (child "receiver").
/// Both JS endpoints learn their addresses from ThitsaX by ILDCP.
#[test]
fn stream_payment_through_thitsax_splits_on_f08() {
    let Some(node) = node_or_skip("stream_payment_through_thitsax_splits_on_f08") else { return };
    let dir = TempDir::new("direct");
    let [pt, ps, pr] = free_ports(3)[..] else { unreachable!() };
    let mut procs = Procs::default();

    let sender = Upstream {
        port: ps,
        url: format!("http://127.0.0.1:{pt}/ilp"),
        incoming_token: "thitsax-to-sender",
        outgoing_token: "sender-token",
    };
    let receiver = receiver_upstream(pr, format!("http://127.0.0.1:{pt}/accounts/receiver/ilp"));
    let config = thitsax_config(
        pt,
        &[
            sender.thitsax_account("sender", MAX_PACKET),
            receiver.thitsax_account("receiver", RECEIVER_MAX_PACKET),
        ],
    );
    start_thitsax(&mut procs, &dir.0, pt, &config);

    let (rx, ready) = start_receiver(&mut procs, &node, &receiver);
    assert_eq!(ready["assetCode"].as_str(), Some("USD"), "receiver ILDCP: {ready}");
    assert_eq!(ready["assetScale"].as_u64(), Some(9), "receiver ILDCP: {ready}");

    pay_and_check(&mut procs, &node, &sender, "test.thitsax.sender", (rx, &ready));
}

/// sender (child "sender" of ilp-connector test.jsc) -> ilp-connector
///   -> (peer "thitsax" / peer "jsc", ILP-over-HTTP, max_packet_amount 1000 on ThitsaX)
///   -> ThitsaX -> receiver (child "receiver" of ThitsaX).
#[test]
fn stream_payment_via_ilp_connector_and_thitsax() {
    let Some(node) = node_or_skip("stream_payment_via_ilp_connector_and_thitsax") else { return };
    let dir = TempDir::new("via-jsc");
    let [pt, ps, pr, pj_sender, pj_thitsax] = free_ports(5)[..] else { unreachable!() };
    let mut procs = Procs::default();

    let receiver = receiver_upstream(pr, format!("http://127.0.0.1:{pt}/"));
    let config = thitsax_config(
        pt,
        &[
            Account {
                id: "jsc",
                relation: "peer",
                incoming_token: "jsc-to-thitsax",
                outgoing_url: format!("http://127.0.0.1:{pj_thitsax}/"),
                outgoing_token: "thitsax-to-jsc",
                max_packet_amount: MAX_PACKET,
                ilp_address: Some("test.jsc"),
            },
            receiver.thitsax_account("receiver", RECEIVER_MAX_PACKET),
        ],
    );
    start_thitsax(&mut procs, &dir.0, pt, &config);

    let jsc_config = format!(
        r#"{{
  "ilpAddress": "test.jsc",
  "routes": [{{"targetPrefix": "test.thitsax", "peerId": "thitsax"}}],
  "accounts": {{
    "sender": {{"relation": "child", "assetCode": "USD", "assetScale": 9,
      "http": {{"listenPort": {pj_sender}, "url": "http://127.0.0.1:{ps}/",
               "incomingToken": "sender-to-jsc", "outgoingToken": "jsc-to-sender"}}}},
    "thitsax": {{"relation": "peer", "assetCode": "USD", "assetScale": 9,
      "http": {{"listenPort": {pj_thitsax}, "url": "http://127.0.0.1:{pt}/accounts/jsc/ilp",
               "incomingToken": "thitsax-to-jsc", "outgoingToken": "jsc-to-thitsax"}}}}
  }}
}}"#
    );
    let jsc_path = dir.0.join("ilp-connector.json");
    std::fs::write(&jsc_path, &jsc_config).expect("write ilp-connector config");
    let jsc = procs.node(
        &node,
        "ilp-connector",
        "connector.js",
        &["--config".into(), jsc_path.display().to_string()],
    );
    let jsc_ready = procs.wait_event(jsc, "ready", Duration::from_secs(30));
    assert_eq!(jsc_ready["address"].as_str(), Some("test.jsc"), "{jsc_ready}");

    let (rx, ready) = start_receiver(&mut procs, &node, &receiver);

    let sender = Upstream {
        port: ps,
        url: format!("http://127.0.0.1:{pj_sender}/"),
        incoming_token: "jsc-to-sender",
        outgoing_token: "sender-to-jsc",
    };
    pay_and_check(&mut procs, &node, &sender, "test.jsc.sender", (rx, &ready));
}

/// A blocking GET on loopback: status and body (HTTP/1.1, `Connection: close`).
fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// A node's balances from its admin API, by account.
fn balances(admin_port: u16, token: &str) -> std::collections::HashMap<String, i128> {
    let (status, body) = http_get(admin_port, "/balances", &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(status, 200, "{body}");
    let list: Vec<Value> = serde_json::from_str(&body).expect("balances JSON");
    list.iter()
        .map(|b| {
            (b["account"].as_str().unwrap().to_string(), b["balance"].as_str().unwrap().parse().unwrap())
        })
        .collect()
}

/// sender.js (child "sender", max_packet_amount 1000) -> ThitsaX's own STREAM receiver: the
/// local account "shop", found by SPSP. The JS client probes the rate, sizes its packets from
/// ThitsaX's F08s and pays the whole amount; ThitsaX credits exactly that.
#[test]
fn stream_client_pays_a_thitsax_receiver_found_by_spsp() {
    let Some(node) = node_or_skip("stream_client_pays_a_thitsax_receiver_found_by_spsp") else { return };
    let dir = TempDir::new("thitsax-receiver");
    let [pt, ps, pspsp, padmin] = free_ports(4)[..] else { unreachable!() };
    let mut procs = Procs::default();
    let sender = Upstream {
        port: ps,
        url: format!("http://127.0.0.1:{pt}/ilp"),
        incoming_token: "thitsax-to-sender",
        outgoing_token: "sender-token",
    };
    let mut config = thitsax_config(pt, &[sender.thitsax_account("sender", MAX_PACKET)]);
    config.push_str(&format!(
        r#"
[[accounts]]
id = "shop"
relation = "local"
asset_code = "USD"
asset_scale = 9

[spsp]
listen = "127.0.0.1:{pspsp}"

[admin]
listen = "127.0.0.1:{padmin}"
token = "admin-token"
"#
    ));
    start_thitsax(&mut procs, &dir.0, pt, &config);
    let (status, _) = http_get(pspsp, "/shop", &[("Accept", "application/json")]);
    assert_eq!(status, 406, "SPSP answers only application/spsp4+json");
    let (status, body) = http_get(pspsp, "/shop", &[("Accept", "application/spsp4+json")]);
    assert_eq!(status, 200, "{body}");
    let spsp: Value = serde_json::from_str(&body).expect("SPSP JSON");
    let args = sender.args([
        "--destination".into(),
        spsp["destination_account"].as_str().expect("destination_account").to_string(),
        "--shared-secret".into(),
        spsp["shared_secret"].as_str().expect("shared_secret").to_string(),
        "--amount".into(),
        AMOUNT.to_string(),
        "--timeout-ms".into(),
        "60000".into(),
    ]);
    let tx = procs.node(&node, "sender", "sender.js", &args);
    let connected = procs.wait_event(tx, "connected", Duration::from_secs(40));
    assert_eq!(connected["destinationAsset"]["code"].as_str(), Some("USD"), "{connected}");
    let paid = procs.wait_event(tx, "paid", Duration::from_secs(65));
    let amount = AMOUNT.to_string();
    assert_eq!(paid["sent"].as_str(), Some(amount.as_str()), "{paid}");
    assert_eq!(paid["delivered"].as_str(), Some(amount.as_str()), "{paid}");
    assert!(paid["packets"]["rejectCodes"]["F08"].as_u64().unwrap_or(0) >= 1, "split on F08: {paid}");
    procs.wait_event(tx, "exit", Duration::from_secs(10));
    let balances = balances(padmin, "admin-token");
    assert_eq!((balances["sender"], balances["shop"]), (-(AMOUNT as i128), AMOUNT as i128), "{balances:?}");
}

/// @interledger/pay (the sender Rafiki uses), as ThitsaX's child "sender" (max_packet_amount
/// 1000), pays a ThitsaX incoming payment with a target, from its SPSP URL: the payment
/// completes with exactly its target received. A second payment to the same URL finds no open
/// receiver, and one over the first payment's own STREAM credentials is refused: nothing more
/// is received, and the sender's balance moved by exactly the target.
#[test]
fn interledger_pay_pays_a_thitsax_incoming_payment_exactly_its_target() {
    let Some(node) = node_or_skip("interledger_pay_pays_a_thitsax_incoming_payment_exactly_its_target")
    else {
        return;
    };
    let dir = TempDir::new("pay-incoming");
    let [pt, ps, pspsp, padmin] = free_ports(4)[..] else { unreachable!() };
    let mut procs = Procs::default();
    let sender = Upstream {
        port: ps,
        url: format!("http://127.0.0.1:{pt}/ilp"),
        incoming_token: "thitsax-to-sender",
        outgoing_token: "sender-token",
    };
    let mut config = thitsax_config(pt, &[sender.thitsax_account("sender", MAX_PACKET)]);
    config.push_str(&format!(
        "\n[[accounts]]\nid = \"shop\"\nrelation = \"local\"\nasset_code = \"USD\"\nasset_scale = 9\n\n\
         [spsp]\nlisten = \"127.0.0.1:{pspsp}\"\n\n[admin]\nlisten = \"127.0.0.1:{padmin}\"\ntoken = \"admin-token\"\n"
    ));
    start_thitsax(&mut procs, &dir.0, pt, &config);
    let created = http_post_json(
        padmin,
        "/accounts/shop/incoming-payments",
        "admin-token",
        &format!(r#"{{"id": "order-1", "target": "{AMOUNT}"}}"#),
    );
    let spsp_url = created["spsp_url"].as_str().expect("spsp_url").to_string();
    let pay = |procs: &mut Procs, name: &str, target: [String; 2]| {
        let mut rest = vec![target[0].clone(), target[1].clone()];
        rest.extend(["--amount-to-deliver".to_string(), AMOUNT.to_string()]);
        let mut args = sender.args([]);
        args.extend(rest);
        procs.node(&node, name, "pay.js", &args)
    };
    let first = pay(&mut procs, "pay", ["--spsp-url".into(), spsp_url.clone()]);
    let setup = procs.wait_event_any(first, &["setup", "failed"], Duration::from_secs(40));
    assert_eq!(setup["event"].as_str(), Some("setup"), "pay could not set the payment up: {setup}");
    assert_eq!(setup["destinationAsset"]["code"].as_str(), Some("USD"), "{setup}");
    let paid = procs.wait_event(first, "paid", Duration::from_secs(65));
    let amount = AMOUNT.to_string();
    assert_eq!(paid["amountDelivered"].as_str(), Some(amount.as_str()), "{paid}");
    assert_eq!(paid["amountSent"].as_str(), Some(amount.as_str()), "{paid}");
    assert!(paid["error"].is_null(), "{paid}");
    let payment = http_get_json(padmin, "/accounts/shop/incoming-payments/order-1", "admin-token");
    assert_eq!(payment["received"].as_str(), Some(amount.as_str()), "{payment}");
    assert_eq!(payment["state"].as_str(), Some("completed"), "{payment}");
    assert_eq!(payment["completion"].as_str(), Some("target_reached"), "{payment}");
    // Complete: its SPSP URL answers 404, and its credentials take no more money.
    let again = pay(&mut procs, "pay-again", ["--spsp-url".into(), spsp_url]);
    let refused = procs.wait_event(again, "failed", Duration::from_secs(40));
    assert_eq!(
        (refused["stage"].as_str(), refused["status"].as_u64()),
        (Some("spsp"), Some(404)),
        "{refused}"
    );
    let secret = setup["sharedSecret"].as_str().unwrap().to_string();
    let address = setup["destinationAddress"].as_str().unwrap().to_string();
    let mut args = sender.args([]);
    args.extend(["--destination-address".into(), address, "--shared-secret".into(), secret]);
    args.extend(["--amount-to-deliver".into(), AMOUNT.to_string()]);
    let reuse = procs.node(&node, "pay-reuse", "pay.js", &args);
    let outcome = procs.wait_event_any(reuse, &["failed", "paid"], Duration::from_secs(40));
    assert!(
        outcome["event"] == "failed" || outcome["amountDelivered"] == "0",
        "nothing more may be delivered to a completed payment: {outcome}"
    );
    let balances = balances(padmin, "admin-token");
    assert_eq!((balances["sender"], balances["shop"]), (-(AMOUNT as i128), AMOUNT as i128), "{balances:?}");
}

fn http_get_json(port: u16, path: &str, token: &str) -> Value {
    let (status, body) = http_get(port, path, &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

/// A blocking POST of JSON to the admin API; the answer's JSON (201 or 200 expected).
fn http_post_json(port: u16, path: &str, token: &str, body: &str) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    let status: u16 = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    assert!(status == 200 || status == 201, "POST {path}: {answer}");
    serde_json::from_str(json).expect("JSON")
}
