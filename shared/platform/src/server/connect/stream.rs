//! Connect's streaming protocol (`application/connect+json` or `+proto`), for every method that
//! streams: the request body's enveloped messages become gRPC's framed ones as they arrive, and
//! the reply's framed messages Connect's envelopes as they leave, so neither side is held in
//! memory whole (a `WatchDealMigration` runs for minutes, an `ImportPscExport` carries hundreds
//! of megabytes). The stream ends with Connect's end-of-stream envelope: the error, if any, and
//! gRPC's trailers as metadata. HTTP's status is 200 once the stream has begun, as the protocol
//! says; an error is in the end envelope.

use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use parking_lot::Mutex;
use prost_reflect::{MessageDescriptor, MethodDescriptor};
use tokio::time::Instant;
use tonic::Code;
use tonic::body::Body;
use tower::ServiceExt;

use super::codec::{self, Deframer, Format};
use super::error::{self, ConnectError};
use super::{Below, BoxError, FromBelow, Procedures};

/// Flags of an envelope.
const COMPRESSED: u8 = 0x01;
const END_STREAM: u8 = 0x02;

/// The format of a Connect streaming call's `Content-Type`.
pub fn format_of(content_type: &str) -> Option<Format> {
    match codec::media_type(content_type) {
        "application/connect+json" => Some(Format::Json),
        "application/connect+proto" => Some(Format::Proto),
        _ => None,
    }
}

/// The error that ended the request's stream, taken over the service's own answer to it (which
/// only saw its request end early).
type Refused = Arc<Mutex<Option<ConnectError>>>;

/// One Connect streaming call, through `inner` as the gRPC call it stands for.
pub async fn call<S, B>(
    inner: S,
    procedures: Arc<Procedures>,
    method: MethodDescriptor,
    format: Format,
    request: Request<Body>,
) -> Result<Response<Body>, ConnectError>
where
    S: Below<B>,
    B: FromBelow + Send + 'static,
{
    let (parts, body) = request.into_parts();
    super::check_headers(&parts.headers)?;
    let timeout = super::timeout(&parts.headers)?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let refused = Refused::default();
    let messages = requests(body, method.input(), format, refused.clone());
    let grpc = super::grpc_request(parts, messages, timeout);
    let answered = inner.oneshot(grpc);
    let answered = match deadline {
        Some(at) => tokio::time::timeout_at(at, answered)
            .await
            .map_err(|_| past_deadline())?,
        None => answered.await,
    };
    let (head, body) = answered
        .map_err(|e| ConnectError::new(Code::Unavailable, e.into().to_string()))?
        .into_parts();
    let mut response = match tonic::Status::from_header_map(&head.headers) {
        // Trailers only: the stream ended before its first message.
        Some(status) => {
            let end = end_stream(status, HeaderMap::new(), &refused, &procedures);
            Response::new(Body::new(http_body_util::Full::new(end)))
        }
        None => Response::new(replies(
            body,
            method.output(),
            format,
            refused,
            deadline,
            procedures,
        )),
    };
    let headers = response.headers_mut();
    error::copy_metadata(head.headers, headers, "");
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(match format {
            Format::Json => "application/connect+json",
            Format::Proto => "application/connect+proto",
        }),
    );
    Ok(response)
}

fn past_deadline() -> ConnectError {
    ConnectError::new(Code::DeadlineExceeded, "no end within Connect-Timeout-Ms")
}

/// The request's envelopes as gRPC frames of protobuf messages of type `input`. A message that
/// is not one ends the stream, and its error is `refused`.
fn requests(body: Body, input: MessageDescriptor, format: Format, refused: Refused) -> Body {
    let state = Requests {
        body,
        deframer: Deframer::default(),
        input,
        format,
        refused,
        ended: false,
    };
    let frames = futures::stream::unfold(state, |mut s| async move {
        if s.ended {
            return None;
        }
        match s.next().await {
            Ok(Some(frames)) => Some((Ok(Frame::data(frames)), s)),
            Ok(None) => None,
            Err(e) => {
                s.ended = true;
                Some((Err(e), s))
            }
        }
    });
    Body::new(StreamBody::new(frames))
}

struct Requests {
    body: Body,
    deframer: Deframer,
    input: MessageDescriptor,
    format: Format,
    refused: Refused,
    ended: bool,
}

impl Requests {
    /// The gRPC frames of the next messages that arrived whole; `None` at the end.
    async fn next(&mut self) -> Result<Option<Bytes>, BoxError> {
        loop {
            let data = match self.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
                Some(Err(e)) => return Err(e.into()),
                None if self.deframer.is_empty() => return Ok(None),
                None => {
                    return Err(self.refuse(ConnectError::field("body", "ends inside a message")));
                }
            };
            self.deframer.push(data);
            let mut frames = BytesMut::new();
            while let Some(message) = self.message().map_err(|e| self.refuse(e))? {
                frames.extend_from_slice(&codec::frame(&message));
            }
            if !frames.is_empty() {
                return Ok(Some(frames.freeze()));
            }
        }
    }

    /// The next whole message, in protobuf.
    fn message(&mut self) -> Result<Option<Bytes>, ConnectError> {
        match self.deframer.next(self.format.request_limit()) {
            Ok(Some((flags, _))) if flags & COMPRESSED != 0 => Err(ConnectError::new(
                Code::Unimplemented,
                "compressed messages are not taken: send them uncompressed",
            )),
            Ok(Some((_, message))) => self.format.request(&self.input, &message).map(Some),
            Ok(None) => Ok(None),
            Err(why) => Err(ConnectError::field("body", why)),
        }
    }

    /// Keeps `e` as the call's answer; what the service is told.
    fn refuse(&self, e: ConnectError) -> BoxError {
        let told = format!("the request stream was refused: {:?}", e.code());
        self.refused.lock().get_or_insert(e);
        told.into()
    }
}

/// The reply's gRPC frames as Connect envelopes of `output` in `format`, then the end of the
/// stream.
fn replies<B>(
    body: B,
    output: MessageDescriptor,
    format: Format,
    refused: Refused,
    deadline: Option<Instant>,
    procedures: Arc<Procedures>,
) -> Body
where
    B: FromBelow + Send + 'static,
{
    let state = Replies {
        body: Box::pin(body),
        deframer: Deframer::default(),
        output,
        format,
        deadline,
        ended: false,
    };
    let envelopes = futures::stream::unfold(state, move |mut s| {
        let (refused, procedures) = (refused.clone(), procedures.clone());
        async move {
            if s.ended {
                return None;
            }
            let envelopes = match s.next().await {
                Ok(envelopes) => envelopes,
                Err((status, trailers)) => {
                    s.ended = true;
                    end_stream(status, trailers, &refused, &procedures)
                }
            };
            Some((Ok::<_, BoxError>(Frame::data(envelopes)), s))
        }
    });
    Body::new(StreamBody::new(envelopes))
}

struct Replies<B> {
    body: Pin<Box<B>>,
    deframer: Deframer,
    output: MessageDescriptor,
    format: Format,
    deadline: Option<Instant>,
    ended: bool,
}

impl<B> Replies<B>
where
    B: FromBelow,
{
    /// The envelopes of the next messages that arrived whole, or the status (and trailers) the
    /// stream ended with.
    async fn next(&mut self) -> Result<Bytes, (tonic::Status, HeaderMap)> {
        loop {
            let frame = match self.deadline {
                Some(at) => tokio::time::timeout_at(at, self.body.frame())
                    .await
                    .map_err(|_| (past_deadline().into_status(), HeaderMap::new()))?,
                None => self.body.frame().await,
            };
            let frame = match frame {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    let broken = format!("the stream broke: {}", e.into());
                    return Err((tonic::Status::unavailable(broken), HeaderMap::new()));
                }
                None => return Err((no_status(), HeaderMap::new())),
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    let trailers = frame.into_trailers().unwrap_or_default();
                    let status =
                        tonic::Status::from_header_map(&trailers).unwrap_or_else(no_status);
                    return Err((status, trailers));
                }
            };
            self.deframer.push(data);
            let mut envelopes = BytesMut::new();
            loop {
                let message = match self.deframer.next(codec::REPLY_LIMIT) {
                    Ok(Some((_, message))) => message,
                    Ok(None) => break,
                    Err(why) => {
                        let e = tonic::Status::internal(format!("the reply: {why}"));
                        return Err((e, HeaderMap::new()));
                    }
                };
                let message = self
                    .format
                    .reply(&self.output, message)
                    .map_err(|e| (e.into_status(), HeaderMap::new()))?;
                envelopes.extend_from_slice(&codec::envelope(0, &message));
            }
            if !envelopes.is_empty() {
                return Ok(envelopes.freeze());
            }
        }
    }
}

fn no_status() -> tonic::Status {
    tonic::Status::internal("the reply ended with no status")
}

/// The end-of-stream envelope: `status`'s error unless it is OK (a refused request's instead,
/// if there was one), and the metadata of the status and of `trailers`.
fn end_stream(
    status: tonic::Status,
    trailers: HeaderMap,
    refused: &Refused,
    procedures: &Procedures,
) -> Bytes {
    let error = match refused.lock().take() {
        Some(e) => Some(e),
        None if status.code() == Code::Ok => None,
        None => Some(ConnectError::from(status)),
    };
    let mut metadata = HeaderMap::new();
    error::copy_metadata(trailers, &mut metadata, "");
    let mut end = serde_json::Map::new();
    if let Some(e) = error {
        end.insert("error".into(), e.to_json(procedures.pool()));
        metadata.extend(e.metadata());
    }
    if !metadata.is_empty() {
        let mut listed = serde_json::Map::new();
        for name in metadata.keys() {
            let values: Vec<serde_json::Value> = metadata
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into())
                .collect();
            listed.insert(name.as_str().into(), values.into());
        }
        end.insert("metadata".into(), listed.into());
    }
    codec::envelope(
        END_STREAM,
        serde_json::Value::Object(end).to_string().as_bytes(),
    )
}
