//! Bad input, generated (issue 19): every RPC of the four services, found in their descriptor
//! sets, is sent malformed requests built from its request message's own fields (empty; each
//! string 100,000 characters long or a mangled resource name; each list 10,000 items; each
//! enum an unknown number; each integer negative or the largest; each field mask naming no
//! field; each timestamp out of range; the strings of each nested message huge) through
//! `cosell serve --demo` in its own process, as an account admin, a platform operator and with
//! no token. No answer may be `INTERNAL`, `UNKNOWN` (a panic), `UNIMPLEMENTED` or a hang past
//! the deadline; an `INVALID_ARGUMENT` names the field (a `BadRequest` violation); the server
//! is still serving at the end.

mod support;

use std::time::Duration;

use cosell_testkit::refusal;
use prost::Message;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor, Value,
};
use support::{Server, raw};
use tonic::transport::Channel;

/// Longer than any refusal should take.
const DEADLINE: Duration = Duration::from_secs(10);

fn with(desc: &MessageDescriptor, field: &FieldDescriptor, value: Value) -> DynamicMessage {
    let mut m = DynamicMessage::new(desc.clone());
    m.set_field(field, value);
    m
}

/// Values of one field that no request should carry, by what the field is.
fn bad_values(field: &FieldDescriptor) -> Vec<(&'static str, Value)> {
    let huge = || Value::String("x".repeat(100_000));
    if field.is_map() {
        return Vec::new();
    }
    if field.is_list() {
        return match field.kind() {
            Kind::String => vec![(
                "10,000 items",
                Value::List(vec![Value::String("x".into()); 10_000]),
            )],
            Kind::Message(m) => vec![(
                "10,000 items",
                Value::List(vec![Value::Message(DynamicMessage::new(m)); 10_000]),
            )],
            _ => Vec::new(),
        };
    }
    match field.kind() {
        Kind::String => vec![
            ("100,000 characters", huge()),
            (
                "a mangled name",
                Value::String("organizations/../users/%00\u{202e}?".into()),
            ),
        ],
        Kind::Bytes => vec![(
            "100,000 bytes of noise",
            Value::Bytes(vec![0xff; 100_000].into()),
        )],
        Kind::Enum(_) => vec![("an unknown enum number", Value::EnumNumber(999))],
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => vec![
            ("negative", Value::I32(-1)),
            ("the largest", Value::I32(i32::MAX)),
        ],
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => vec![
            ("negative", Value::I64(-1)),
            ("the largest", Value::I64(i64::MAX)),
        ],
        Kind::Message(m) if m.full_name() == "google.protobuf.FieldMask" => {
            let paths = m.get_field_by_name("paths").unwrap();
            vec![
                (
                    "a mask naming no field",
                    Value::Message(with(
                        &m,
                        &paths,
                        Value::List(vec![Value::String("no_such_field".into())]),
                    )),
                ),
                (
                    "a mask of 10,000 paths",
                    Value::Message(with(
                        &m,
                        &paths,
                        Value::List(vec![Value::String("x".into()); 10_000]),
                    )),
                ),
            ]
        }
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
            let seconds = m.get_field_by_name("seconds").unwrap();
            vec![(
                "a time out of range",
                Value::Message(with(&m, &seconds, Value::I64(i64::MAX))),
            )]
        }
        Kind::Message(m) if m.package_name().starts_with("cosell.") => {
            // One level down: each string of the nested message huge, alone.
            m.fields()
                .filter(|f| f.kind() == Kind::String && !f.is_list())
                .map(|f| {
                    (
                        "a nested string of 100,000 characters",
                        Value::Message(with(&m, &f, huge())),
                    )
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// The malformed requests of a method: (what is wrong, the request's bytes).
fn malformed(method: &MethodDescriptor) -> Vec<(String, Vec<u8>)> {
    let input = method.input();
    let mut out = vec![(
        "an empty request".to_owned(),
        DynamicMessage::new(input.clone()).encode_to_vec(),
    )];
    for field in input.fields() {
        for (what, value) in bad_values(&field) {
            out.push((
                format!("{}: {what}", field.name()),
                with(&input, &field, value).encode_to_vec(),
            ));
        }
    }
    out
}

/// Sends one request; `Ok(())` when the answer is one a client can act on.
async fn send(
    channel: &Channel,
    method: &MethodDescriptor,
    token: Option<&str>,
    body: Vec<u8>,
) -> Result<(), String> {
    let large = body.len() > 65_535;
    let Err(status) = raw::call(channel, method, token, body, DEADLINE).await else {
        return Ok(());
    };
    // An upload refused before its body was read (no token): the server answers and resets
    // the stream, as HTTP/2 allows; a client still sending more than the stream's first window
    // (64 KiB) then sees the reset, not the answer.
    if status.code() == tonic::Code::Cancelled && method.is_client_streaming() && large {
        return Ok(());
    }
    match status.code() {
        tonic::Code::Internal
        | tonic::Code::Unknown
        | tonic::Code::Unimplemented
        | tonic::Code::DataLoss
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Cancelled => Err(format!("{:?}: {}", status.code(), status.message())),
        tonic::Code::InvalidArgument if refusal(&status).violations.is_empty() => Err(format!(
            "INVALID_ARGUMENT without a field violation: {}",
            status.message()
        )),
        _ => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_malformed_requests_cleanly() {
    let mut server = Server::start().await;
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for email in ["ada.admin@contoso.com", "oli.operator@platform.example"] {
        let token =
            cosell_proto::identity::token_service_client::TokenServiceClient::new(channel.clone())
                .sign_in_with_email(cosell_proto::identity::SignInWithEmailRequest {
                    email: email.into(),
                    organization: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .access_token;
        tokens.push(Some(token));
    }
    tokens.push(None);

    let pool = raw::pool();
    let mut methods = 0;
    let mut calls = 0;
    let mut wrong = Vec::new();
    for service in pool.services() {
        for method in service.methods() {
            methods += 1;
            for (what, body) in malformed(&method) {
                for token in &tokens {
                    calls += 1;
                    if let Err(why) = send(&channel, &method, token.as_deref(), body.clone()).await
                    {
                        wrong.push(format!(
                            "{}/{} ({what}, {}): {why}",
                            service.name(),
                            method.name(),
                            if token.is_some() {
                                "signed in"
                            } else {
                                "no token"
                            }
                        ));
                    }
                }
            }
        }
    }
    eprintln!("{calls} malformed calls to {methods} RPCs");
    assert!(methods >= 50, "only {methods} RPCs found");
    assert!(
        wrong.is_empty(),
        "{} of {calls} answers were wrong, e.g.:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(30)].join("\n")
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died"
    );
}
