//! curl's side of the Connect protocol, for the HTTP/JSON tests: a POST and what came back, a
//! Connect stream's envelopes both ways, and a sign-in in JSON.

use std::process::Command;

use serde_json::{Value, json};

use super::Server;

/// What curl saw: the HTTP status, the protocol version and the body.
pub struct Answer {
    pub status: u16,
    pub version: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The Connect error's detail of `type`, as JSON (its `debug` form).
    pub fn detail(&self, kind: &str) -> Value {
        let body = self.json();
        let details = body["details"].as_array().cloned().unwrap_or_default();
        details
            .into_iter()
            .find(|d| d["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {body}"))["debug"]
            .clone()
    }
}

/// One message of a Connect stream: flags, length, message.
pub fn envelope(flags: u8, message: &[u8]) -> Vec<u8> {
    let mut framed = vec![flags];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// A Connect stream's JSON envelopes, with their flags.
pub fn envelopes(mut body: &[u8]) -> Vec<(u8, Value)> {
    let mut messages = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let message = serde_json::from_slice(&body[5..5 + len]).unwrap();
        messages.push((body[0], message));
        body = &body[5 + len..];
    }
    assert!(body.is_empty(), "the stream ends on an envelope's end");
    messages
}

#[derive(Clone, Copy)]
pub enum Http {
    One,
    Two,
}

/// `curl -X POST` of `body` to `path` with `content_type`, the bearer `token` and `headers`.
pub fn curl(
    server: &Server,
    http: Http,
    path: &str,
    content_type: &str,
    body: &[u8],
    token: Option<&str>,
    headers: &[&str],
) -> Answer {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), body).unwrap();
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-X",
        "POST",
        "-o",
        "-",
        "-w",
        "\n%{http_code} %{http_version}",
    ])
    .arg(match http {
        Http::One => "--http1.1",
        Http::Two => "--http2-prior-knowledge",
    })
    .args(["-H", &format!("content-type: {content_type}")])
    .args(["-H", "connect-protocol-version: 1"])
    .arg("--data-binary")
    .arg(format!("@{}", file.path().display()));
    if let Some(token) = token {
        cmd.args(["-H", &format!("authorization: Bearer {token}")]);
    }
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd.arg(format!("{}{path}", server.url()));
    let out = cmd.output().expect("curl runs");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let split = out.stdout.iter().rposition(|&b| b == b'\n').unwrap();
    let tail = String::from_utf8(out.stdout[split + 1..].to_vec()).unwrap();
    let (status, version) = tail.split_once(' ').unwrap();
    Answer {
        status: status.parse().unwrap(),
        version: version.to_string(),
        body: out.stdout[..split].to_vec(),
    }
}

/// A JSON call that must succeed; its reply.
pub fn call(server: &Server, http: Http, path: &str, request: Value, token: Option<&str>) -> Value {
    let answer = curl(
        server,
        http,
        path,
        "application/json",
        request.to_string().as_bytes(),
        token,
        &[],
    );
    assert_eq!(
        answer.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()
}

/// `email` signed in over HTTP/JSON: (the token, the user's organization).
pub fn sign_in(server: &Server, email: &str) -> (String, String) {
    let signed_in = call(server, Http::One, TOKENS, json!({ "email": email }), None);
    let user = signed_in["user"].as_str().unwrap();
    assert!(user.starts_with("organizations/"), "{signed_in}");
    let organization = user.split("/users/").next().unwrap().to_string();
    (
        signed_in["accessToken"].as_str().unwrap().to_string(),
        organization,
    )
}

pub const TOKENS: &str = "/cosell.identity.v1.TokenService/SignInWithEmail";
