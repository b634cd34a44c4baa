//! The client against a real HTTP/1.1 server on 127.0.0.1:0 that records what it receives and
//! answers as each test tells it.

use super::*;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::sync::Mutex;

/// One request as the engine saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    /// The raw path, exactly as sent (still percent-encoded).
    path: String,
    headers: hyper::HeaderMap,
    body: Bytes,
}

/// What the engine answers, after `delay`.
struct Reply {
    status: u16,
    body: Bytes,
    delay: Duration,
}

fn reply(status: u16, body: &'static str) -> Reply {
    Reply { status, body: Bytes::from_static(body.as_bytes()), delay: Duration::ZERO }
}

type Record = Arc<Mutex<Vec<Seen>>>;

/// Starts an engine answering every request with `respond`; returns its URL and its record.
async fn engine(respond: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> (String, Record) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Record = Default::default();
    let respond = Arc::new(respond);
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (respond, record) = (respond.clone(), record.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (respond, record) = (respond.clone(), record.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let seen = Seen {
                            method: parts.method,
                            path: parts.uri.path().to_string(),
                            headers: parts.headers,
                            body,
                        };
                        let reply = respond(&seen);
                        record.lock().unwrap().push(seen);
                        tokio::time::sleep(reply.delay).await;
                        let mut response = hyper::Response::new(Full::new(reply.body));
                        *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen)
}

fn client() -> EngineClient {
    let limits =
        EngineLimits { timeout: Duration::from_millis(500), connections_max: 4, response_bytes_max: 1024 };
    let tls = crate::http::tls::TlsRules { roots: crate::http::tls::Roots::Webpki, ca_file: None };
    EngineClient::new(&limits, &TlsConfig::new(&tls))
}

fn key() -> SettlementId {
    SettlementId([0xab; 16])
}

#[tokio::test]
async fn settle_posts_the_quantity_with_the_idempotency_key_to_the_encoded_account_path() {
    let (url, seen) = engine(|_| reply(201, r#"{"amount":"5","scale":2}"#)).await;
    client().settle(&url, "al ice/..?x", &key(), &Quantity::new(12_345, 2)).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/accounts/al%20ice%2F%2E%2E%3Fx/settlements");
    assert_eq!(request.headers[IDEMPOTENCY_KEY], "abababababababababababababababab");
    assert_eq!(request.headers[CONTENT_TYPE], "application/json");
    assert_eq!(Quantity::from_json(&request.body), Ok(Quantity::new(12_345, 2)));
}

#[tokio::test]
async fn create_and_delete_account_accept_already_done() {
    let statuses = Arc::new(Mutex::new(vec![201u16, 409, 204, 404, 200].into_iter()));
    let (url, seen) = engine(move |_| reply(statuses.lock().unwrap().next().unwrap(), "")).await;
    let client = client();
    client.create_account(&url, "bob").await.unwrap();
    client.create_account(&url, "bob").await.unwrap();
    client.delete_account(&url, "bob").await.unwrap();
    client.delete_account(&url, "bob").await.unwrap();
    client.delete_account(&url, "bob").await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].path, "/accounts");
    assert_eq!(seen[0].headers[CONTENT_TYPE], "application/json");
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body, serde_json::json!({ "id": "bob" }));
    assert_eq!(seen[2].method, Method::DELETE);
    assert_eq!(seen[2].path, "/accounts/bob");
}

#[tokio::test]
async fn messages_go_out_and_come_back_as_octets() {
    let (url, seen) = engine(|seen| Reply {
        status: 201,
        body: Bytes::from([b"re:".as_slice(), &seen.body].concat()),
        delay: Duration::ZERO,
    })
    .await;
    let answer = client().send_message(&url, "bob", Bytes::from_static(b"\x00hi")).await.unwrap();
    assert_eq!(&answer[..], b"re:\x00hi");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].path, "/accounts/bob/messages");
    assert_eq!(seen[0].headers[CONTENT_TYPE], "application/octet-stream");
    assert!(seen[0].headers.get(IDEMPOTENCY_KEY).is_none());
}

#[tokio::test]
async fn server_errors_and_conflicts_may_be_made_throttling_is_not_made_other_4xx_are_definitive() {
    // 409: the same key is still being processed (an earlier attempt's answer was lost): the
    // engine may yet pay, so it is never a refusal.
    for status in [500u16, 502, 503, 409] {
        let (url, _) = engine(move |_| reply(status, "try later")).await;
        let result = client().settle(&url, "bob", &key(), &Quantity::new(1, 0)).await;
        match result {
            Err(EngineError::Retryable(reason)) => assert!(reason.contains(&status.to_string()), "{reason}"),
            other => panic!("{status}: {other:?}"),
        }
    }
    for status in [408u16, 429, 302] {
        let (url, _) = engine(move |_| reply(status, "later")).await;
        let result = client().settle(&url, "bob", &key(), &Quantity::new(1, 0)).await;
        match result {
            Err(EngineError::NotMade(reason)) => assert!(reason.contains(&status.to_string()), "{reason}"),
            other => panic!("{status}: {other:?}"),
        }
    }
    for status in [400u16, 404, 422] {
        let (url, _) = engine(move |_| reply(status, "no such account\n")).await;
        let result = client().settle(&url, "bob", &key(), &Quantity::new(1, 0)).await;
        assert_eq!(
            result,
            Err(EngineError::Definitive { status, body: "no such account ".into() }),
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    // Bind then drop: nothing listens on the port afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let result =
        client().settle(&format!("http://127.0.0.1:{port}"), "bob", &key(), &Quantity::new(1, 0)).await;
    assert!(matches!(result, Err(EngineError::NotMade(_))), "nothing was sent: {result:?}");
}

#[tokio::test]
async fn an_engine_that_hangs_times_out_as_retryable() {
    let (url, seen) =
        engine(|_| Reply { status: 201, body: Bytes::new(), delay: Duration::from_secs(30) }).await;
    let started = std::time::Instant::now();
    let result = client().settle(&url, "bob", &key(), &Quantity::new(1, 0)).await;
    assert_eq!(result, Err(EngineError::Retryable("no answer within 500 ms".into())));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(seen.lock().unwrap().len(), 1, "the request did reach the engine");
}

#[tokio::test]
async fn huge_answers_are_cut_in_errors_and_refused_as_messages() {
    static HUGE: [u8; 1 << 20] = [b'x'; 1 << 20];
    let huge = || Bytes::from_static(&HUGE);
    let (url, _) = engine(move |_| Reply { status: 500, body: huge(), delay: Duration::ZERO }).await;
    match client().settle(&url, "bob", &key(), &Quantity::new(1, 0)).await {
        Err(EngineError::Retryable(reason)) => assert!(reason.len() < 300, "{} chars", reason.len()),
        other => panic!("{other:?}"),
    }
    let (url, _) = engine(move |_| Reply { status: 201, body: huge(), delay: Duration::ZERO }).await;
    assert_eq!(
        client().send_message(&url, "bob", Bytes::new()).await,
        Err(EngineError::Definitive { status: 201, body: "answer larger than 1024 bytes".into() })
    );
    // A settlement the engine accepted stays accepted, whatever else its answer carries.
    client().settle(&url, "bob", &key(), &Quantity::new(1, 0)).await.unwrap();
}

#[tokio::test]
async fn requests_in_flight_to_one_engine_are_capped() {
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (url, _) = {
        let (in_flight, peak) = (in_flight.clone(), peak.clone());
        engine(move |_| {
            // Counted when the request arrives; released by the client's slot below (the reply is
            // delayed, so four slots mean at most four arrivals before one finishes).
            let now = in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
            Reply { status: 201, body: Bytes::new(), delay: Duration::from_millis(50) }
        })
        .await
    };
    let client = client();
    let calls = (0..12).map(|_| {
        let (client, url, in_flight) = (client.clone(), url.clone(), in_flight.clone());
        async move {
            let result = client.settle(&url, "bob", &key(), &Quantity::new(1, 0)).await;
            in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            result
        }
    });
    // 12 calls of 50 ms through 4 slots: 150 ms, well within the 500 ms timeout.
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=4).contains(&peak), "peak {peak}");
}

#[test]
fn ids_are_encoded_to_one_path_segment() {
    assert_eq!(encode_segment("alice-1_~"), "alice-1_~");
    assert_eq!(encode_segment("a/b?c#d"), "a%2Fb%3Fc%23d");
    assert_eq!(encode_segment(".."), "%2E%2E");
    assert_eq!(encode_segment("é"), "%C3%A9");
}

#[test]
fn bad_urls_are_refused_before_sending() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for url in ["ftp://127.0.0.1:1", "127.0.0.1:1", "https://engine.1"] {
        let result = runtime.block_on(client().settle(url, "bob", &key(), &Quantity::new(1, 0)));
        assert!(matches!(result, Err(EngineError::BadUrl(_))), "{url}: {result:?}");
    }
}
