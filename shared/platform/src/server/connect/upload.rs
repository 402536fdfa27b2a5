//! An upload as one HTTP `POST` of a file (a PSC export's `.zip`), for callers that cannot send a
//! stream of messages: the body goes to a client-streaming method as its messages' bytes field,
//! [`CHUNK`] at a time as it arrives (never held whole), the first message also carrying the
//! fields the query names. The method's answer comes back as JSON, an error as Connect's error
//! JSON: the same call, limits and errors as the stream's.

use bytes::{Bytes, BytesMut};
use http::{Request, Response, Uri};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use prost::Message;
use prost_reflect::{DynamicMessage, MethodDescriptor, Value};
use tonic::body::Body;

use super::codec::{self, Format};
use super::error::ConnectError;
use super::{Below, BoxError, FromBelow, check_headers, grpc_request, timeout, unary};

/// An HTTP route whose body goes to a client-streaming method, chunk by chunk.
#[derive(Debug, Clone, Copy)]
pub struct HttpUpload {
    /// The route, e.g. `/upload/psc-export`.
    pub path: &'static str,
    /// The method, `/package.Service/Method`.
    pub method: &'static str,
    /// The bytes field each chunk goes into.
    pub chunk: &'static str,
    /// String fields set in every message, e.g. the file name.
    pub fixed: &'static [(&'static str, &'static str)],
    /// Query parameters taken, each into the first message's string field of the same name.
    pub query: &'static [&'static str],
}

/// Bytes a message carries at most; the body's frames are gathered up to it.
pub const CHUNK: usize = 1024 * 1024;

/// The upload `upload` of `request`'s body, through `inner` as the stream `method` takes.
pub async fn call<S, B>(
    inner: S,
    upload: &HttpUpload,
    method: &MethodDescriptor,
    request: Request<Body>,
) -> Result<Response<Full<Bytes>>, ConnectError>
where
    S: Below<B>,
    B: FromBelow,
{
    let (mut parts, body) = request.into_parts();
    check_headers(&parts.headers)?;
    let timeout = timeout(&parts.headers)?;
    let mut later = DynamicMessage::new(method.input());
    for (field, value) in upload.fixed {
        set(&mut later, field, value)?;
    }
    let mut first = later.clone();
    for (name, value) in query(parts.uri.query().unwrap_or_default()) {
        if !upload.query.contains(&name.as_str()) {
            return Err(ConnectError::field(
                &name,
                format!(
                    "is not a parameter of {}; it takes {}",
                    upload.path,
                    upload.query.join(", ")
                ),
            ));
        }
        set(&mut first, &name, &value)?;
    }
    parts.uri = Uri::from_static(upload.method);
    let messages = chunks(body, first, later, upload.chunk);
    let grpc = grpc_request(parts, messages, timeout);
    unary::within(
        timeout,
        unary::reply(inner, grpc, &method.output(), Format::Json),
    )
    .await
}

/// Sets the string field `field` of `message`.
fn set(message: &mut DynamicMessage, field: &str, value: &str) -> Result<(), ConnectError> {
    message
        .try_set_field_by_name(field, Value::String(value.to_owned()))
        .map_err(|e| ConnectError::field(field, format!("cannot be set from the query: {e}")))
}

/// A query's `name=value` pairs, percent-decoded (`+` a space, as forms send it).
fn query(text: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// The body as gRPC frames of messages: `first`, then `later`, each with up to [`CHUNK`] bytes
/// of the body in `field`. An empty body is one message with no bytes.
fn chunks(body: Body, first: DynamicMessage, later: DynamicMessage, field: &'static str) -> Body {
    struct State {
        body: Body,
        held: BytesMut,
        next: Option<DynamicMessage>,
        later: DynamicMessage,
        field: &'static str,
        ended: bool,
    }
    impl State {
        /// The next message, with `bytes`.
        fn frame(&mut self, bytes: Bytes) -> Bytes {
            let mut message = self.next.take().unwrap_or_else(|| self.later.clone());
            message.set_field_by_name(self.field, Value::Bytes(bytes));
            codec::frame(&message.encode_to_vec())
        }
    }
    let state = State {
        body,
        held: BytesMut::new(),
        next: Some(first),
        later,
        field,
        ended: false,
    };
    let frames = futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.held.len() >= CHUNK {
                let bytes = s.held.split_to(CHUNK).freeze();
                return Some((Ok::<_, BoxError>(Frame::data(s.frame(bytes))), s));
            }
            if s.ended {
                // The rest, or the only message of an empty body.
                if !s.held.is_empty() || s.next.is_some() {
                    let bytes = s.held.split().freeze();
                    return Some((Ok(Frame::data(s.frame(bytes))), s));
                }
                return None;
            }
            match s.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        s.held.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    s.ended = true;
                    s.next = None;
                    s.held.clear();
                    return Some((Err(BoxError::from(e)), s));
                }
                None => s.ended = true,
            }
        }
    });
    Body::new(StreamBody::new(frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_as_forms_send_them() {
        assert_eq!(
            query("organization=organizations%2Fab+c&x="),
            [
                ("organization".to_string(), "organizations/ab c".to_string()),
                ("x".to_string(), String::new())
            ]
        );
        assert!(query("").is_empty());
    }
}
