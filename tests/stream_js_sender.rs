//! ThitsaX's STREAM receiver (`src/stream/`) answering the JS reference, `ilp-protocol-stream`
//! 2.7.1, as its sender: `tests/interop/stream-client.js` prints every Prepare it sends and reads
//! the answer on its stdin, and this test is its network and its receiver. It issues the
//! credentials with a `ServerSecret`, answers ILDCP, and answers every STREAM packet with
//! `stream::open` and `Opened::fulfill` / `reject`, keeping the totals as the node would.
//!
//! What the JS sender must accept from us: the F99 replies to its exchange-rate probes (the
//! amount that arrived), our asset details, the fulfilled money with its StreamMaxMoney, a
//! stream closed at the receiver's maximum, F06 for packets under another secret, F02 for a
//! token we did not issue.
//!
//! Needs Node >= 18 and `npm ci --prefix tests/interop` (run by `.ci/run`; missing packages are
//! installed on first use). Without `node` the tests print a skip note and pass, unless `CI`
//! is set.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use thitsax::ildcp;
use thitsax::packet::{ErrorCode as IlpErrorCode, Fulfill, IlpAddress, Prepare, Reject};
use thitsax::stream::credentials::split_destination;
use thitsax::stream::{open, ErrorCode, ServerSecret};

const NODE_ADDRESS: &str = "test.thitsax";
const SENDER_ADDRESS: &str = "test.thitsax.sender";
const ASSET_CODE: &str = "XOF";
const ASSET_SCALE: u8 = 0;

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("interop")
}

/// `node`, with the pinned packages installed, or `None` after printing why the test is skipped.
fn node_or_skip(test: &str) -> Option<PathBuf> {
    let node = std::env::var_os("NODE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("node"));
    let runs =
        Command::new(&node).arg("--version").stdin(Stdio::null()).output().is_ok_and(|o| o.status.success());
    if !runs {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        assert!(!ci, "{test}: `{}` not found and CI is set: install Node >= 18", node.display());
        eprintln!("SKIPPED {test}: `{}` not found (install Node >= 18 to run it)", node.display());
        return None;
    }
    let marker = interop_dir().join("node_modules").join("ilp-protocol-stream").join("package.json");
    if !marker.exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(interop_dir())
            .stdin(Stdio::null())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()) && marker.exists(),
            "{test}: `npm ci --prefix tests/interop` failed; is npm installed and the registry reachable?"
        );
    }
    Some(node)
}

/// The receiving side as the node would run it: stateless credentials, totals per connection.
struct Receiver {
    server: ServerSecret,
    node: IlpAddress,
    /// The most a connection may receive; its stream is closed when it gets there.
    receive_max: u64,
    /// Totals per token (one connection each), as the node's store would keep them.
    totals: BTreeMap<String, u64>,
    /// ILP codes of every answer to a STREAM packet, in order.
    answers: Vec<String>,
}

impl Receiver {
    fn new(receive_max: u64) -> Self {
        Receiver {
            server: ServerSecret::from_bytes(&[0x5e; 32]),
            node: IlpAddress::parse(NODE_ADDRESS).unwrap(),
            receive_max,
            totals: BTreeMap::new(),
            answers: Vec::new(),
        }
    }

    /// The answer to one Prepare, as ILP packet bytes.
    fn answer(&mut self, bytes: &[u8]) -> Vec<u8> {
        let prepare = Prepare::parse(bytes).expect("the JS sender sends valid Prepares");
        if prepare.destination() == ildcp::DESTINATION {
            let sender = IlpAddress::parse(SENDER_ADDRESS).unwrap();
            return ildcp::response(&sender, "USD", 9).as_bytes().to_vec();
        }
        let (code, answer) = self.stream(&prepare);
        self.answers.push(code);
        answer
    }

    fn stream(&mut self, prepare: &Prepare) -> (String, Vec<u8>) {
        let reject = |code: IlpErrorCode, data: &[u8]| {
            (code.to_string(), Reject::build(code, &self.node, "", data).as_bytes().to_vec())
        };
        let Some((receiver, token)) = split_destination(NODE_ADDRESS, prepare.destination()) else {
            return reject(IlpErrorCode::F02_UNREACHABLE, &[]);
        };
        let Ok(secret) = self.server.shared_secret(receiver, token) else {
            return reject(IlpErrorCode::F02_UNREACHABLE, &[]);
        };
        let keys = secret.keys();
        let opened = match open(&keys, prepare.amount(), prepare.execution_condition(), prepare.data()) {
            Ok(opened) => opened,
            Err(refused) => return reject(refused.code(), &[]),
        };
        let total = self.totals.get(token).copied().unwrap_or(0);
        let reply = opened.reply().asset_details(ASSET_CODE, ASSET_SCALE);
        // The money goes to stream 1 (the only one the sender opens).
        let fits = total.checked_add(opened.amount()).filter(|t| *t <= self.receive_max);
        match fits {
            Some(new_total) if opened.is_fulfillable() => {
                assert_eq!(opened.money().iter().map(|m| m.amount).sum::<u64>(), opened.amount());
                self.totals.insert(token.to_string(), new_total);
                let mut reply = reply.max_money(1, self.receive_max, new_total);
                if new_total == self.receive_max {
                    reply = reply.close_stream(1, ErrorCode::NoError, "");
                }
                let fulfilled = opened.fulfill(&reply).unwrap();
                let fulfill = Fulfill::build(&fulfilled.fulfillment, &fulfilled.data);
                ("fulfill".to_string(), fulfill.as_bytes().to_vec())
            }
            _ => {
                let data = opened.reject(&reply.max_money(1, self.receive_max, total)).unwrap();
                reject(thitsax::stream::receiver::REJECT_CODE, &data)
            }
        }
    }
}

/// The JS sender, killed when dropped (also when an assertion fails).
struct Sender {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sender {
    fn start(node: &Path, destination: &str, shared_secret: &[u8; 32], amount: u64) -> Sender {
        let mut child = Command::new(node)
            .current_dir(interop_dir())
            .arg("stream-client.js")
            .args(["--destination", destination, "--amount", &amount.to_string()])
            .args(["--shared-secret", &base64(shared_secret), "--timeout-ms", "20000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Sender { child, stdin, lines }
    }

    /// Answers every Prepare until the sender reports how its payment ended; returns the events.
    fn run(&mut self, receiver: &mut Receiver) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line =
                self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("no end of payment: {events:?}"));
            let event: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
            match event["event"].as_str() {
                Some("prepare") => {
                    let packet = hex::decode(event["packet"].as_str().unwrap()).unwrap();
                    let answer = receiver.answer(&packet);
                    let reply = serde_json::json!({"id": event["id"], "packet": hex::encode(answer)});
                    writeln!(self.stdin, "{reply}").unwrap();
                }
                Some("paid" | "send-failed" | "error") => {
                    events.push(event);
                    return events;
                }
                _ => events.push(event),
            }
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            let c = if i <= chunk.len() { ALPHABET[(n >> shift & 0x3f) as usize] } else { b'=' };
            out.push(char::from(c));
        }
    }
    out
}

fn event<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events.iter().find(|e| e["event"] == name).unwrap_or_else(|| panic!("no {name} event in {events:?}"))
}

#[test]
fn a_js_sender_pays_our_receiver_after_probing_the_rate_and_learning_our_asset() {
    let Some(node) = node_or_skip("a_js_sender_pays_our_receiver") else { return };
    let mut receiver = Receiver::new(u64::MAX);
    let issued = receiver.server.issue("bob").unwrap();
    let destination = format!("{NODE_ADDRESS}.bob.{}", issued.token);
    let mut sender = Sender::start(&node, &destination, issued.shared_secret.as_bytes(), 10_000);
    let events = sender.run(&mut receiver);

    let connected = event(&events, "connected");
    assert_eq!(connected["destinationAsset"]["code"], ASSET_CODE, "{connected}");
    assert_eq!(connected["destinationAsset"]["scale"], ASSET_SCALE, "{connected}");
    assert_eq!(connected["exchangeRate"], "1", "the F99 replies to the probes carried the amounts");
    let paid = event(&events, "paid");
    assert_eq!((paid["sent"].as_str(), paid["delivered"].as_str()), (Some("10000"), Some("10000")), "{paid}");
    assert_eq!(receiver.totals.get(&issued.token), Some(&10_000));
    assert!(receiver.answers.iter().any(|c| c == "F99"), "probes were rejected: {:?}", receiver.answers);
    assert!(receiver.answers.iter().any(|c| c == "fulfill"), "{:?}", receiver.answers);
}

#[test]
fn our_receiver_closes_the_stream_at_its_maximum_and_the_js_sender_stops() {
    let Some(node) = node_or_skip("our_receiver_closes_the_stream_at_its_maximum") else { return };
    let mut receiver = Receiver::new(6_000);
    let issued = receiver.server.issue("bob").unwrap();
    let destination = format!("{NODE_ADDRESS}.bob.{}", issued.token);
    let mut sender = Sender::start(&node, &destination, issued.shared_secret.as_bytes(), 10_000);
    let events = sender.run(&mut receiver);

    let failed = event(&events, "send-failed");
    assert_eq!(failed["delivered"], "6000", "{failed}");
    let message = failed["message"].as_str().unwrap_or_default();
    assert!(message.contains("Stream was closed"), "the sender saw our StreamClose: {failed}");
    assert_eq!(receiver.totals.get(&issued.token), Some(&6_000), "never more than the maximum");
}

#[test]
fn packets_under_another_secret_get_f06_and_tokens_we_did_not_issue_f02() {
    let Some(node) = node_or_skip("packets_under_another_secret_get_f06") else { return };
    let mut receiver = Receiver::new(u64::MAX);
    let issued = receiver.server.issue("bob").unwrap();
    let destination = format!("{NODE_ADDRESS}.bob.{}", issued.token);
    let mut sender = Sender::start(&node, &destination, &[1; 32], 10_000);
    let events = sender.run(&mut receiver);
    assert!(events.iter().any(|e| e["event"] != "paid"), "{events:?}");
    assert!(
        !receiver.answers.is_empty() && receiver.answers.iter().all(|c| c == "F06"),
        "{:?}",
        receiver.answers
    );
    assert!(receiver.totals.is_empty());
    drop(sender);

    // The same token issued for another receiver.
    let mut receiver = Receiver::new(u64::MAX);
    let issued = receiver.server.issue("bob").unwrap();
    let destination = format!("{NODE_ADDRESS}.alice.{}", issued.token);
    let mut sender = Sender::start(&node, &destination, issued.shared_secret.as_bytes(), 10_000);
    let events = sender.run(&mut receiver);
    assert!(events.iter().any(|e| e["event"] != "paid"), "{events:?}");
    assert!(
        !receiver.answers.is_empty() && receiver.answers.iter().all(|c| c == "F02"),
        "{:?}",
        receiver.answers
    );
}
