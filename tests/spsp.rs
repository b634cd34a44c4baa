//! SPSP queries (`thitsax::spsp::resolve`) against small HTTP servers the tests start: plain
//! http SPSP URLs, https with a CA made at test time, and every answer a receiver may get wrong.

mod common;

use common::tls::{Answer, Seen, Server, TestCa};
use common::TempDir;
use std::time::Duration;
use thitsax::http::tls::{CaFile, Connector, Roots, TlsConfig, TlsRules};
use thitsax::spsp::{resolve, SpspError, CONTENT_TYPE};

const SECOND: Duration = Duration::from_secs(1);
const BODY_BYTES_MAX: usize = 4096;
/// Base64 of the bytes 0, 1, ..., 31.
const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn answer_body() -> String {
    format!(
        r#"{{"destination_account":"test.rafiki.alice~token","shared_secret":"{SECRET}","receipts_enabled":false}}"#
    )
}

fn plain_connector() -> Connector {
    Connector::new(&TlsConfig::new(&TlsRules { roots: Roots::Webpki, ca_file: None }), SECOND, SECOND)
}

#[tokio::test]
async fn an_spsp_url_resolves_to_the_receivers_address_and_secret() {
    let body = answer_body();
    let server = Server::start(None, move |_| Answer::new(200, CONTENT_TYPE, body.clone())).await;
    let receiver = format!("{}/alice?x=1", server.url("http"));
    let target = resolve(&plain_connector(), &receiver, SECOND, BODY_BYTES_MAX).await.unwrap();
    assert_eq!(target.destination.as_str(), "test.rafiki.alice~token");
    assert_eq!(target.shared_secret.as_bytes().to_vec(), (0..32).collect::<Vec<u8>>());
    assert!(!target.receipts_enabled);
    let seen: Vec<Seen> = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, hyper::Method::GET);
    assert_eq!(seen[0].path, "/alice");
    assert_eq!(seen[0].headers["accept"], CONTENT_TYPE);
}

#[tokio::test]
async fn an_https_spsp_url_is_queried_over_tls_with_the_certificate_checked() {
    let ca = TestCa::new();
    let dir = TempDir::new("spsp-tls");
    let trusting = TlsConfig::new(&TlsRules {
        roots: Roots::Webpki,
        ca_file: Some(CaFile::read(&ca.write_pem(&dir)).unwrap()),
    });
    let body = answer_body();
    let server = Server::start(Some(ca.acceptor(&["localhost"])), move |_| {
        Answer::new(200, "application/spsp4+json; charset=utf-8", body.clone())
    })
    .await;
    let receiver = format!("{}/.well-known/pay", server.url("https"));
    let connector = Connector::new(&trusting, SECOND, SECOND);
    let target = resolve(&connector, &receiver, SECOND, BODY_BYTES_MAX).await.unwrap();
    assert_eq!(target.destination.as_str(), "test.rafiki.alice~token");
    // A connector that does not trust the test CA refuses the server.
    let refused = resolve(&plain_connector(), &receiver, SECOND, BODY_BYTES_MAX).await;
    assert!(matches!(refused, Err(SpspError::Query(_))), "{refused:?}");
}

/// Whether an error is the one a case expects.
type Expected = fn(&SpspError) -> bool;

#[tokio::test]
async fn every_wrong_answer_is_its_own_error() {
    let cases: Vec<(Answer, Expected)> = vec![
        (Answer::new(404, "text/plain", "no"), |e| matches!(e, SpspError::NotFound)),
        (Answer::new(406, "text/plain", "no"), |e| matches!(e, SpspError::NotAcceptable)),
        (Answer::new(500, "text/plain", "boom"), |e| matches!(e, SpspError::Status(500))),
        (Answer::new(302, "", ""), |e| matches!(e, SpspError::Status(302))),
        (Answer::new(200, "application/json", "{}"), |e| matches!(e, SpspError::ContentType(Some(_)))),
        (Answer::new(200, "", "{}"), |e| matches!(e, SpspError::ContentType(None))),
        (Answer::new(200, CONTENT_TYPE, "not json"), |e| matches!(e, SpspError::Json(_))),
        (
            Answer::new(200, CONTENT_TYPE, r#"{"destination_account":"nowhere","shared_secret":"AA=="}"#),
            |e| matches!(e, SpspError::DestinationAccount(_)),
        ),
        (Answer::new(200, CONTENT_TYPE, r#"{"destination_account":"g.a.b","shared_secret":"AAEC"}"#), |e| {
            matches!(e, SpspError::SharedSecret)
        }),
        (Answer::new(200, CONTENT_TYPE, vec![b' '; BODY_BYTES_MAX + 1]), |e| {
            matches!(e, SpspError::Query(_))
        }),
    ];
    for (answer, expected) in cases {
        let shown = format!("{} {:?}", answer.status, answer.content_type);
        let answer = std::sync::Mutex::new(Some(answer));
        let server = Server::start(None, move |_| answer.lock().unwrap().take().expect("one query")).await;
        let result = resolve(&plain_connector(), &server.url("http"), SECOND, BODY_BYTES_MAX).await;
        match result {
            Err(e) if expected(&e) => {}
            other => panic!("{shown}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_slow_or_absent_server_is_a_timeout_or_a_failed_query() {
    let slow = Server::start(None, |_| Answer {
        delay: Duration::from_secs(5),
        ..Answer::new(200, CONTENT_TYPE, "{}")
    })
    .await;
    let started = std::time::Instant::now();
    let late =
        resolve(&plain_connector(), &slow.url("http"), Duration::from_millis(300), BODY_BYTES_MAX).await;
    assert!(matches!(late, Err(SpspError::TimedOut(t)) if t == Duration::from_millis(300)), "{late:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let nobody = resolve(&plain_connector(), &url, SECOND, BODY_BYTES_MAX).await;
    assert!(matches!(nobody, Err(SpspError::Query(_))), "{nobody:?}");

    let not_a_receiver = resolve(&plain_connector(), "alice@example.com", SECOND, BODY_BYTES_MAX).await;
    assert!(matches!(not_a_receiver, Err(SpspError::Receiver(_))), "{not_a_receiver:?}");
}
