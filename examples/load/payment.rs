//! `payment`: one STREAM payment, ThitsaX against the JS reference, in interleaved rounds.
//!
//! The same payment on both sides: `--amount` units (USD, scale 9, so the rate is 1) from a
//! sender through one connector to a receiver, the connector capping the sender's packets at
//! `--max-packet` (the sender learns it from F08).
//!
//! * ThitsaX: node `s` pays from its local account `treasury` (`POST /payments`: the sender in
//!   the node, every packet reserved and recorded in its store) to the SPSP URL of node `r`'s local
//!   account `shop`, through node `hub`, over ILP-over-HTTP. The time runs from the POST to the
//!   first `GET /payments/{id}` that shows it completed (polled every `POLL_INTERVAL`), so it
//!   includes the SPSP query, the connection handshake and the rate probe.
//! * JS: `run-js-only.js` (tests/interop): `ilp-protocol-stream`'s client → `ilp-connector` →
//!   `ilp-protocol-stream`'s server, each over `ilp-plugin-http`. The time is the sender's own
//!   `elapsedMs`: `stream.sendTotal` only, after `createConnection` (handshake and probe are not
//!   counted), so the comparison leans toward the JS side.
//!
//! Every round starts fresh processes on both sides (run-js-only.js starts its own), so that
//! neither side's figure is of warmed-up processes while the other's is not. The check: ThitsaX's
//! median time at least `--ratio-min` (10) times shorter. Exit status 0 when it holds, 1 when not,
//! 2 on error.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::PaymentArgs;
use crate::compare::figures::median;
use crate::compare::lab::{free_port, Children, Lab};
use crate::compare::targets::find_node;
use crate::compare::wait_quiet;
use crate::signal::shutdown_signal;

/// How often the ThitsaX payment's state is read while it runs.
const POLL_INTERVAL: Duration = Duration::from_millis(2);
/// The longest either payment may take before the run is an error.
const PAYMENT_TIMEOUT: Duration = Duration::from_secs(120);
pub(crate) const ADMIN_TOKEN: &str = "bench-admin-token";
/// A limit far beyond any run, so that no balance limit takes part.
const MIN_BALANCE: &str = "-1000000000000000";

/// One measured payment.
#[derive(Debug, Clone)]
struct PaymentRun {
    elapsed: Duration,
    /// The packets that carried the money (the sides count their probes' test packets differently:
    /// ThitsaX's payment records only money packets).
    fulfilled: u64,
    delivered: u64,
}

impl PaymentRun {
    fn packets_per_s(&self) -> f64 {
        self.fulfilled as f64 / self.elapsed.as_secs_f64()
    }
}

/// The ports of one ThitsaX node.
struct NodePorts {
    ilp: u16,
    admin: u16,
    spsp: u16,
}

impl NodePorts {
    fn free() -> Result<NodePorts, String> {
        Ok(NodePorts { ilp: free_port()?, admin: free_port()?, spsp: free_port()? })
    }

    fn listeners(&self, address: &str) -> String {
        format!(
            "[node]\nilp_address = \"{address}\"\nlog_level = \"warn\"\nworker_threads = 1\n\
             [http]\nlisten = \"127.0.0.1:{}\"\n[admin]\nlisten = \"127.0.0.1:{}\"\ntoken = \"{ADMIN_TOKEN}\"\n\
             [spsp]\nlisten = \"127.0.0.1:{}\"\n",
            self.ilp, self.admin, self.spsp
        )
    }
}

/// A peer account of `id` at `address`, reached at `port` (0: never sent to).
fn peer(id: &str, address: &str, port: u16, incoming: &str, outgoing: &str, extra: &str) -> String {
    format!(
        "[[accounts]]\nid = \"{id}\"\nrelation = \"peer\"\nasset_code = \"USD\"\nasset_scale = 9\n\
         ilp_address = \"{address}\"\nincoming_token = \"{incoming}\"\noutgoing_url = \"http://127.0.0.1:{port}/\"\n\
         outgoing_token = \"{outgoing}\"\nmin_balance = {MIN_BALANCE}\n{extra}"
    )
}

fn local(id: &str) -> String {
    format!(
        "[[accounts]]\nid = \"{id}\"\nrelation = \"local\"\nasset_code = \"USD\"\nasset_scale = 9\n\
         min_balance = {MIN_BALANCE}\n"
    )
}

/// The three configs: `s` (sender), `hub` (connector, caps `s`'s packets), `r` (receiver).
fn thitsax_configs(s: &NodePorts, hub: &NodePorts, r: &NodePorts, max_packet: u64) -> [String; 3] {
    let s_toml = format!(
        "{}{}{}[[routes]]\nprefix = \"test.r\"\naccount = \"hub\"\n",
        s.listeners("test.s"),
        local("treasury"),
        peer("hub", "test.hub", hub.ilp, "hub-to-s", "s-to-hub", "")
    );
    let hub_toml = format!(
        "{}{}{}",
        hub.listeners("test.hub"),
        peer("s", "test.s", s.ilp, "s-to-hub", "hub-to-s", &format!("max_packet_amount = {max_packet}\n")),
        peer("r", "test.r", r.ilp, "r-to-hub", "hub-to-r", "")
    );
    let r_toml = format!(
        "{}{}{}",
        r.listeners("test.r"),
        local("shop"),
        peer("hub", "test.hub", hub.ilp, "hub-to-r", "r-to-hub", "")
    );
    [s_toml, hub_toml, r_toml]
}

/// One admin call over a fresh connection: the status and the JSON body.
pub(crate) fn admin(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, Value), String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("admin API on port {port}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(|e| format!("admin API on port {port}: {e}"))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|e| format!("admin API on port {port}: {e}"))?;
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    Ok((status, serde_json::from_str(json).unwrap_or(Value::Null)))
}

fn units(v: &Value, field: &str) -> Result<u64, String> {
    v[field].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| format!("payment has no {field}: {v}"))
}

/// Starts the three nodes of one round and pays once.
fn thitsax_round(lab: &Lab, bin: &Path, a: &PaymentArgs, round: usize) -> Result<PaymentRun, String> {
    let ports = [NodePorts::free()?, NodePorts::free()?, NodePorts::free()?];
    let configs = thitsax_configs(&ports[0], &ports[1], &ports[2], a.max_packet);
    let mut pids = Vec::new();
    for ((name, toml), p) in ["s", "hub", "r"].iter().zip(&configs).zip(&ports) {
        let name = format!("thitsax-{name}-{round}");
        let file = lab.dir.join(format!("{name}.toml"));
        std::fs::write(&file, toml).map_err(|e| format!("write {}: {e}", file.display()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(&file).env("NO_COLOR", "1");
        let pid = lab.start(&name, &mut cmd, false)?;
        lab.wait_port(&name, pid, p.admin)?;
        pids.push(pid);
    }
    let body = format!(
        r#"{{"id": "bench-{round}", "account": "treasury", "receiver": "http://127.0.0.1:{}/shop",
            "amount": "{}", "deadline_in_s": {}}}"#,
        ports[2].spsp,
        a.amount,
        PAYMENT_TIMEOUT.as_secs()
    );
    let started = Instant::now();
    let (status, created) = admin(ports[0].admin, "POST", "/payments", &body)?;
    if status != 201 {
        return Err(format!("POST /payments answered {status}: {created}"));
    }
    let ended = loop {
        let (_, p) = admin(ports[0].admin, "GET", &format!("/payments/bench-{round}"), "")?;
        if p["state"] != "sending" {
            break p;
        }
        if started.elapsed() > PAYMENT_TIMEOUT {
            return Err(format!("the ThitsaX payment did not end in {PAYMENT_TIMEOUT:?}: {p}"));
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let elapsed = started.elapsed();
    if ended["state"] != "completed" || units(&ended, "delivered")? != a.amount {
        return Err(format!("the ThitsaX payment did not deliver {}: {ended}", a.amount));
    }
    let fulfilled = ended["packets_fulfilled"].as_u64().ok_or("no packets_fulfilled")?;
    // The receiving node's books: what the shop got.
    let (_, shop) = admin(ports[2].admin, "GET", "/accounts/shop/balance", "")?;
    let got = shop["balance"].as_str().and_then(|b| b.parse::<u64>().ok());
    if got != Some(a.amount) {
        return Err(format!("node r's shop holds {shop}, not {}", a.amount));
    }
    for pid in pids {
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let _ = lab.children.reap(pid);
    }
    Ok(PaymentRun { elapsed, fulfilled, delivered: a.amount })
}

/// One run of run-js-only.js (it starts and stops its own connector, sender and receiver).
fn js_round(
    lab: &Lab,
    node: &Path,
    script: &Path,
    a: &PaymentArgs,
    round: usize,
) -> Result<PaymentRun, String> {
    let name = format!("js-{round}");
    let mut cmd = Command::new(node);
    cmd.arg(script)
        .args(["--amount", &a.amount.to_string(), "--max-packet-amount", &a.max_packet.to_string()])
        .args(["--timeout-ms", &PAYMENT_TIMEOUT.as_millis().to_string()]);
    let pid = lab.start(&name, &mut cmd, true)?;
    let log = lab.log_path(&name);
    let mut ok = None;
    lab.wait_for(&name, pid, "its ok line", PAYMENT_TIMEOUT + Duration::from_secs(30), || {
        ok = std::fs::read_to_string(&log).ok().and_then(|s| {
            s.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|v| v["event"] == "ok")
        });
        ok.is_some()
    })?;
    let _ = lab.children.reap(pid);
    let ok = ok.expect("found");
    let ms = ok["paymentMs"].as_u64().ok_or_else(|| format!("no paymentMs: {ok}"))?;
    let delivered = ok["delivered"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0);
    if delivered != a.amount {
        return Err(format!("the JS payment delivered {delivered}, not {}: {ok}", a.amount));
    }
    Ok(PaymentRun {
        elapsed: Duration::from_millis(ms),
        fulfilled: ok["fulfilledPackets"].as_u64().unwrap_or(0),
        delivered,
    })
}

fn median_of(runs: &[PaymentRun], f: impl Fn(&PaymentRun) -> f64) -> f64 {
    median(&runs.iter().map(f).collect::<Vec<_>>())
}

fn report(a: &PaymentArgs, thitsax: &[PaymentRun], js: &[PaymentRun]) -> (String, bool) {
    let ms = |r: &PaymentRun| r.elapsed.as_secs_f64() * 1e3;
    let (t_ms, j_ms) = (median_of(thitsax, ms), median_of(js, ms));
    let ratio = j_ms / t_ms;
    let pass = ratio >= a.ratio_min;
    let mut out = format!(
        "payment of {} units, packets of at most {}, {} rounds (medians):\n\
         {:<66} {:>10} {:>10} {:>10}\n",
        a.amount, a.max_packet, a.rounds, "", "ms", "fulfilled", "packets/s"
    );
    for (name, runs) in [
        ("ThitsaX: node s -> node hub -> node r", thitsax),
        ("JS: ilp-protocol-stream -> ilp-connector -> ilp-protocol-stream", js),
    ] {
        out += &format!(
            "{name:<66} {:>10.1} {:>10} {:>10.0}\n",
            median_of(runs, ms),
            median_of(runs, |r| r.fulfilled as f64),
            median_of(runs, PaymentRun::packets_per_s)
        );
    }
    let each =
        |runs: &[PaymentRun]| runs.iter().map(|r| format!("{:.1}", ms(r))).collect::<Vec<_>>().join(", ");
    out += &format!("per round, ms: ThitsaX [{}], JS [{}]\n", each(thitsax), each(js));
    out += &format!(
        "check: ThitsaX {ratio:.1}x faster (JS ms / ThitsaX ms), at least {}: {}\n",
        a.ratio_min,
        if pass { "PASS" } else { "FAIL" }
    );
    let json = serde_json::json!({
        "amount": a.amount.to_string(),
        "max_packet": a.max_packet.to_string(),
        "thitsax_ms": t_ms,
        "js_ms": j_ms,
        "ratio": ratio,
        "thitsax_packets_per_s": median_of(thitsax, PaymentRun::packets_per_s),
        "js_packets_per_s": median_of(js, PaymentRun::packets_per_s),
        "pass": pass,
        "delivered": thitsax.iter().chain(js).all(|r| r.delivered == a.amount),
    });
    if a.json {
        out += &format!("{json}\n");
    }
    (out, pass)
}

fn compare_payments(a: PaymentArgs, children: Children) -> Result<bool, String> {
    if a.rounds == 0 || a.amount == 0 || a.max_packet == 0 {
        return Err("--rounds, --amount and --max-packet must be at least 1".into());
    }
    if !a.thitsax.is_file() {
        return Err(format!("--thitsax {}: no such file (cargo build --release first)", a.thitsax.display()));
    }
    let script: PathBuf = a.js_dir.join("run-js-only.js");
    if !a.js_dir.join("node_modules").is_dir() {
        return Err(format!(
            "{}/node_modules is missing: run `npm ci --prefix {}`",
            a.js_dir.display(),
            a.js_dir.display()
        ));
    }
    let node = find_node().ok_or("node not found (PATH or $NODE): the JS side cannot run")?;
    let lab = Lab::new(children)?;
    let (mut thitsax, mut js) = (Vec::new(), Vec::new());
    for round in 1..=a.rounds {
        for side in ["thitsax", "js"] {
            if !wait_quiet(
                &lab.children,
                a.quiet_idle_pct / 100.0,
                Duration::from_secs(a.quiet_timeout_secs),
            )? {
                eprintln!("payment: WARNING: CPUs not {}% idle; measuring anyway", a.quiet_idle_pct);
            }
            let run = match side {
                "thitsax" => thitsax_round(&lab, &a.thitsax, &a, round)?,
                _ => js_round(&lab, &node, &script, &a, round)?,
            };
            eprintln!(
                "payment: round {round} {side}: {:.1} ms, {} packets fulfilled",
                run.elapsed.as_secs_f64() * 1e3,
                run.fulfilled
            );
            if side == "thitsax" { &mut thitsax } else { &mut js }.push(run);
        }
    }
    let (text, pass) = report(&a, &thitsax, &js);
    print!("{text}");
    Ok(pass)
}

/// Runs the comparison on a blocking thread, stopped (children killed) on SIGINT/SIGTERM.
pub(crate) async fn run_payment(a: PaymentArgs) -> Result<(), String> {
    let children = Children::default();
    let mut job = tokio::task::spawn_blocking({
        let children = children.clone();
        move || compare_payments(a, children)
    });
    let done = tokio::select! {
        done = &mut job => done,
        why = shutdown_signal(0) => {
            eprintln!("payment: {why}: stopping the child processes");
            children.stop();
            let _ = job.await;
            return Err(format!("interrupted by {why}"));
        }
    };
    match done.map_err(|e| format!("payment thread: {e}"))?? {
        true => Ok(()),
        false => std::process::exit(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_accepted_by_thitsax_and_route_s_to_r_through_hub() {
        let p = |base: u16| NodePorts { ilp: base, admin: base + 1, spsp: base + 2 };
        let [s, hub, r] = thitsax_configs(&p(4000), &p(4010), &p(4020), 1000);
        let parse = |t: &str| thitsax::config::Config::from_toml(t).unwrap_or_else(|e| panic!("{e}\n{t}"));
        let (s, hub, r) = (parse(&s), parse(&hub), parse(&r));
        assert_eq!(s.static_routes.len(), 1, "s routes test.r to hub");
        let capped = hub.accounts.iter().find(|a| &*a.id == "s").unwrap();
        assert_eq!(capped.max_packet_amount, 1000);
        assert!(r.accounts.iter().any(|a| &*a.id == "shop"));
    }

    #[test]
    fn the_check_is_the_ratio_of_median_times() {
        let run = |ms: u64| PaymentRun { elapsed: Duration::from_millis(ms), fulfilled: 100, delivered: 5 };
        let args = |ratio_min: f64| PaymentArgs {
            thitsax: PathBuf::new(),
            js_dir: PathBuf::new(),
            amount: 5,
            max_packet: 1,
            rounds: 3,
            ratio_min,
            quiet_idle_pct: 0.0,
            quiet_timeout_secs: 0,
            json: true,
        };
        let (thitsax, js) = ([run(10), run(12), run(500)], [run(150), run(100), run(110)]);
        let (text, pass) = report(&args(10.0), &thitsax, &js);
        assert!(!pass, "110 ms / 12 ms is under 10:\n{text}");
        let (text, pass) = report(&args(9.0), &thitsax, &js);
        assert!(pass, "{text}");
        assert!(text.contains("\"ratio\":9.16"), "{text}");
    }
}
