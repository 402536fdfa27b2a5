//! Deadlines over HTTP (the Connect protocol on `cosell serve --demo`'s port): the caller's
//! `Connect-Timeout-Ms` ends a unary call and a stream; without it, a request body that never
//! arrives is given up after `--request-timeout-secs`.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Server;
use support::curl::{Http, curl, envelope, envelopes, sign_in};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A raw HTTP/1.1 POST whose headers promise a 64-byte body that never comes, with `headers`
/// added; the answer's status and JSON body, and how long it took.
async fn stalled_post(server: &Server, headers: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let mut socket = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let head = format!(
        "POST /cosell.identity.v1.AccessService/GetCaller HTTP/1.1\r\nhost: {}\r\n\
         content-type: application/json\r\ncontent-length: 64\r\n{headers}\r\n",
        server.addr
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = socket.read(&mut chunk).await.unwrap();
            answer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&answer);
            let Some(end) = text.find("\r\n\r\n") else {
                assert!(n > 0, "closed before the headers: {text}");
                continue;
            };
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .expect("a content-length")
                .trim()
                .parse()
                .unwrap();
            if answer.len() >= end + 4 + length || n == 0 {
                return end + 4;
            }
        }
    };
    let body_at = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s");
    let status = String::from_utf8_lossy(&answer[9..12]).parse().unwrap();
    let body = serde_json::from_slice(&answer[body_at..]).unwrap();
    (status, body, started.elapsed())
}

/// A call's deadline holds over HTTP too: `Connect-Timeout-Ms` ends a unary call whose body
/// never arrives and a stream that has nothing to send, with `deadline_exceeded`; without it,
/// a body that never arrives is given up after `--request-timeout-secs`, so that a stalled
/// client holds nothing longer than a call may run.
#[tokio::test(flavor = "multi_thread")]
async fn deadlines_end_stalled_bodies_and_quiet_streams() {
    let server = Server::start_with(&["--demo", "--request-timeout-secs", "2"]).await;

    let (status, body, took) = stalled_post(&server, "connect-timeout-ms: 300\r\n").await;
    assert_eq!(body["code"], "deadline_exceeded", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Connect-Timeout-Ms (300 ms)"),
        "{body}"
    );
    assert_eq!(status, 504, "{body}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(
        took < Duration::from_secs(2),
        "ended by its own deadline: {took:?}"
    );

    let (status, body, took) = stalled_post(&server, "").await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["code"], "deadline_exceeded", "{body}");
    assert_eq!(
        body["message"], "the request body did not arrive within 2 s",
        "{body}"
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");

    // A watch of the change feed with nothing new to say ends at the caller's deadline, its
    // end message saying so.
    let (token, organization) = sign_in(&server, "rita.referrals@contoso.com");
    let started = Instant::now();
    let answer = curl(
        &server,
        Http::Two,
        "/cosell.deals.v1.EventService/WatchEvents",
        "application/connect+json",
        &envelope(0, json!({ "parent": organization }).to_string().as_bytes()),
        Some(&token),
        &["connect-timeout-ms: 500"],
    );
    let took = started.elapsed();
    assert_eq!(answer.status, 200, "a stream's error is in its end");
    let messages = envelopes(&answer.body);
    let (flags, end) = messages.last().unwrap();
    assert_eq!(*flags, 2, "the last envelope ends the stream");
    assert_eq!(end["error"]["code"], "deadline_exceeded", "{end}");
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(server.stop().success());
}
