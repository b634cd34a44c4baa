//! The real listener on 127.0.0.1:0, real HTTP/1.1 requests, and an in-memory stand-in for the
//! node's [`Callbacks`] whose account names choose the outcome. It tests the HTTP layer only.

use super::*;
use crate::shutdown::Shutdown;
use crate::store::StoreError;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Account `alice` works; other names produce the failure they are named after.
#[derive(Default)]
struct FakeNode {
    /// Idempotency key → (account, quantity) credited.
    credited: Mutex<HashMap<String, (String, Quantity)>>,
}

impl Callbacks for FakeNode {
    async fn incoming_settlement(
        &self,
        account: &str,
        idempotency_key: &str,
        quantity: Quantity,
    ) -> Result<Quantity, IncomingError> {
        match account {
            "alice" | "alice/x" => {}
            "slow" => tokio::time::sleep(Duration::from_millis(300)).await,
            "no-engine" => return Err(IncomingError::NoEngine(account.into())),
            "huge" => return Err(IncomingError::TooLarge(account.into())),
            "store-down" => return Err(StoreError::Unavailable("redis secret detail".into()).into()),
            _ => return Err(IncomingError::UnknownAccount(account.into())),
        }
        let mut credited = self.credited.lock().unwrap();
        let entry = (account.to_string(), quantity);
        match credited.get(idempotency_key) {
            Some(first) if *first == entry => Ok(quantity),
            Some(_) => Err(IncomingError::KeyReused),
            None => {
                credited.insert(idempotency_key.to_string(), entry);
                Ok(quantity)
            }
        }
    }

    async fn send_message(&self, account: &str, message: Bytes) -> Result<Bytes, MessageError> {
        match account {
            "alice" => Ok(Bytes::from([b"re:".as_slice(), &message].concat())),
            "no-engine" => Err(MessageError::NoEngine(account.into())),
            "no-link" => Err(MessageError::NoOutgoing(account.into())),
            "rejecting" => Err(MessageError::Rejected {
                code: "F99".into(),
                data: Bytes::from_static(b"\x01peer says no"),
            }),
            "offline" => Err(MessageError::Unreachable("connection refused".into())),
            _ => Err(MessageError::UnknownAccount(account.into())),
        }
    }
}

struct Api {
    addr: SocketAddr,
    node: Arc<FakeNode>,
    shutdown: Shutdown,
    serving: tokio::task::JoinHandle<()>,
}

async fn start() -> Api {
    let limits = ApiLimits {
        body_bytes_max: 1024,
        connections_max: 8,
        header_read_timeout: Duration::from_secs(2),
        body_read_timeout: Duration::from_millis(300),
        shutdown_grace: Duration::from_secs(2),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let node = Arc::new(FakeNode::default());
    let (shutdown, signal) = Shutdown::new();
    let serving = tokio::spawn(serve(listener, node.clone(), limits, signal));
    Api { addr, node, shutdown, serving }
}

/// An answer: status, headers, body.
struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request on a fresh connection.
async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder().method(method).uri(path).header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer { status, headers, body }
}

const JSON: (&str, &str) = ("content-type", "application/json");
const OCTETS: (&str, &str) = ("content-type", "application/octet-stream");
const QUANTITY: &[u8] = br#"{"amount":"1234","scale":9}"#;

async fn settle(addr: SocketAddr, account: &str, key: &str, body: &[u8]) -> Answer {
    let path = format!("/accounts/{account}/settlements");
    send(addr, "POST", &path, &[JSON, ("idempotency-key", key)], body).await
}

#[tokio::test]
async fn an_incoming_settlement_is_credited_once_per_key() {
    let api = start().await;
    let first = settle(api.addr, "alice", "key-1", QUANTITY).await;
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!(first.headers["content-type"], "application/json");
    assert_eq!(Quantity::from_json(&first.body), Ok(Quantity::new(1234, 9)));
    // The same request again answers the same; the same key with another amount is refused.
    let again = settle(api.addr, "alice", "key-1", QUANTITY).await;
    assert_eq!((again.status, again.body), (201, first.body));
    let reused = settle(api.addr, "alice", "key-1", br#"{"amount":"1","scale":9}"#).await;
    assert_eq!(reused.status, 409, "{}", reused.text());
    assert_eq!(api.node.credited.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_account_id_is_percent_decoded_from_the_path() {
    let api = start().await;
    let answer = settle(api.addr, "alice%2Fx", "k", QUANTITY).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    let account = api.node.credited.lock().unwrap()["k"].0.clone();
    assert_eq!(account, "alice/x");
    for bad in ["%zz", "%C3", "%"] {
        assert_eq!(settle(api.addr, bad, "k", QUANTITY).await.status, 404, "{bad}");
    }
}

#[tokio::test]
async fn settlements_need_a_sane_idempotency_key() {
    let api = start().await;
    let path = "/accounts/alice/settlements";
    let missing = send(api.addr, "POST", path, &[JSON], QUANTITY).await;
    assert_eq!(missing.status, 400);
    assert!(missing.text().contains("Idempotency-Key"), "{}", missing.text());
    let long = "k".repeat(129);
    for bad in ["", "has space", long.as_str()] {
        assert_eq!(settle(api.addr, "alice", bad, QUANTITY).await.status, 400, "{bad:?}");
    }
    assert_eq!(settle(api.addr, "alice", &"k".repeat(128), QUANTITY).await.status, 201);
    assert!(api.node.credited.lock().unwrap().len() == 1);
}

#[tokio::test]
async fn settlements_need_json_and_a_valid_quantity() {
    let api = start().await;
    let path = "/accounts/alice/settlements";
    let key = ("idempotency-key", "k");
    let wrong = send(api.addr, "POST", path, &[OCTETS, key], QUANTITY).await;
    assert_eq!(wrong.status, 415);
    let none = send(api.addr, "POST", path, &[key], QUANTITY).await;
    assert_eq!(none.status, 415);
    let with_charset =
        send(api.addr, "POST", path, &[("content-type", "application/json; charset=utf-8"), key], QUANTITY)
            .await;
    assert_eq!(with_charset.status, 201);
    let negative = settle(api.addr, "alice", "k2", br#"{"amount":"-5","scale":2}"#).await;
    assert_eq!(negative.status, 400);
    assert!(negative.text().contains("digits"), "{}", negative.text());
    let garbage = settle(api.addr, "alice", "k3", b"\xff\x00{").await;
    assert_eq!(garbage.status, 400);
    let too_big = settle(api.addr, "alice", "k4", &[b' '; 2048]).await;
    assert_eq!(too_big.status, 413);
    assert_eq!(api.node.credited.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn node_refusals_map_to_their_statuses() {
    let api = start().await;
    for (account, status) in [("nobody", 404), ("no-engine", 404), ("huge", 422), ("store-down", 503)] {
        let answer = settle(api.addr, account, "k", QUANTITY).await;
        assert_eq!(answer.status, status, "{account}: {}", answer.text());
        assert_eq!(answer.headers["content-type"], "text/plain; charset=utf-8");
    }
    let down = settle(api.addr, "store-down", "k", QUANTITY).await;
    assert_eq!(down.headers["retry-after"], "1");
    assert!(!down.text().contains("secret"), "store details stay in the log: {}", down.text());
}

#[tokio::test]
async fn messages_are_relayed_and_refusals_mapped() {
    let api = start().await;
    let message = |account: &str| format!("/accounts/{account}/messages");
    let ok = send(api.addr, "POST", &message("alice"), &[OCTETS], b"\x00hello").await;
    assert_eq!(ok.status, 201);
    assert_eq!(ok.headers["content-type"], "application/octet-stream");
    assert_eq!(&ok.body[..], b"re:\x00hello");
    for (account, status) in [("nobody", 404), ("no-engine", 404), ("no-link", 409), ("offline", 502)] {
        let answer = send(api.addr, "POST", &message(account), &[OCTETS], b"m").await;
        assert_eq!(answer.status, status, "{account}: {}", answer.text());
    }
    let rejected = send(api.addr, "POST", &message("rejecting"), &[OCTETS], b"m").await;
    assert_eq!(rejected.status, 502);
    assert_eq!(rejected.headers["ilp-reject-code"], "F99");
    assert_eq!(&rejected.body[..], b"\x01peer says no");
    let json = send(api.addr, "POST", &message("alice"), &[JSON], b"{}").await;
    assert_eq!(json.status, 415);
    let too_big = send(api.addr, "POST", &message("alice"), &[OCTETS], &[0; 1025]).await;
    assert_eq!(too_big.status, 413);
}

#[tokio::test]
async fn other_paths_and_methods_are_refused() {
    let api = start().await;
    for path in ["/", "/accounts", "/accounts/alice", "/accounts//settlements", "/accounts/alice/ilp"] {
        let answer = send(api.addr, "POST", path, &[JSON, ("idempotency-key", "k")], QUANTITY).await;
        assert_eq!(answer.status, 404, "{path}");
    }
    let get = send(api.addr, "GET", "/accounts/alice/settlements", &[], b"").await;
    assert_eq!(get.status, 405);
    assert_eq!(get.headers["allow"], "POST");
    let delete = send(api.addr, "DELETE", "/accounts/alice/messages", &[], b"").await;
    assert_eq!(delete.status, 405);
}

#[tokio::test]
async fn garbage_and_slow_bodies_do_not_hurt_the_listener() {
    let api = start().await;
    // Not HTTP at all: hyper answers 400 and closes.
    let mut stream = tokio::net::TcpStream::connect(api.addr).await.unwrap();
    stream.write_all(b"\x00\x01\x02 garbage\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    assert!(answer.starts_with(b"HTTP/1.1 400"), "{:?}", String::from_utf8_lossy(&answer));
    // A body announced but never sent: 408 after the body read timeout.
    let mut stream = tokio::net::TcpStream::connect(api.addr).await.unwrap();
    let head = "POST /accounts/alice/settlements HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                idempotency-key: k\r\ncontent-length: 27\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut answer)).await.unwrap().unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(&answer[..n]));
    // The listener still serves.
    assert_eq!(settle(api.addr, "alice", "k", QUANTITY).await.status, 201);
}

#[tokio::test]
async fn draining_lets_an_in_flight_credit_finish() {
    let api = start().await;
    let addr = api.addr;
    let slow = tokio::spawn(async move { settle(addr, "slow", "k", QUANTITY).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.shutdown.drain();
    assert_eq!(slow.await.unwrap().status, 201);
    tokio::time::timeout(Duration::from_secs(3), api.serving).await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the port is closed after draining");
}
