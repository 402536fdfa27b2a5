//! One Connect unary call: the body read within its limit and its time, checked against the
//! method's input type, sent as the gRPC call it stands for; the one answer back in the caller's
//! format, with the gRPC headers and trailers (`trailer-`) it came with.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full};
use prost_reflect::{MessageDescriptor, MethodDescriptor};
use tonic::Code;
use tonic::body::Body;
use tower::ServiceExt;

use super::codec::{self, Format};
use super::error::{self, ConnectError};
use super::{Below, FromBelow, check_headers, grpc_request, timeout};

/// One Connect unary call, through `inner` as the gRPC call it stands for.
pub async fn call<S, B>(
    inner: S,
    method: &MethodDescriptor,
    format: Format,
    request: Request<Body>,
    read_within: Duration,
) -> Result<Response<Full<Bytes>>, ConnectError>
where
    S: Below<B>,
    B: FromBelow,
{
    let (parts, body) = request.into_parts();
    check_headers(&parts.headers)?;
    let timeout = timeout(&parts.headers)?;
    let call = async move {
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let read = codec::read_bounded(body, declared, format.request_limit());
        let body = tokio::time::timeout(read_within, read)
            .await
            .map_err(|_| {
                ConnectError::new(
                    Code::DeadlineExceeded,
                    format!(
                        "the request body did not arrive within {} s",
                        read_within.as_secs()
                    ),
                )
            })??;
        let message = format.request(&method.input(), &body)?;
        let grpc = grpc_request(parts, Body::new(Full::new(codec::frame(&message))), timeout);
        reply(inner, grpc, &method.output(), format).await
    };
    within(timeout, call).await
}

/// `call`, ended with `DEADLINE_EXCEEDED` past `timeout` (the caller's `Connect-Timeout-Ms`).
pub async fn within<T>(
    timeout: Option<Duration>,
    call: impl Future<Output = Result<T, ConnectError>>,
) -> Result<T, ConnectError> {
    match timeout {
        None => call.await,
        Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(ConnectError::new(
                Code::DeadlineExceeded,
                format!(
                    "no answer within Connect-Timeout-Ms ({} ms)",
                    limit.as_millis()
                ),
            ))
        }),
    }
}

/// Sends `grpc`, a call with one answer, and turns its answer (a message of type `output`) into
/// `format`; a failed call into its error.
pub async fn reply<S, B>(
    inner: S,
    grpc: Request<Body>,
    output: &MessageDescriptor,
    format: Format,
) -> Result<Response<Full<Bytes>>, ConnectError>
where
    S: Below<B>,
    B: FromBelow,
{
    let response = inner
        .oneshot(grpc)
        .await
        .map_err(|e| ConnectError::new(Code::Unavailable, e.into().to_string()))?;
    let (head, body) = response.into_parts();
    if let Some(status) = tonic::Status::from_header_map(&head.headers) {
        // A reply of trailers only: an error before any message.
        if status.code() != Code::Ok {
            return Err(status.into());
        }
    }
    let collected = http_body_util::Limited::new(body, codec::REPLY_LIMIT)
        .collect()
        .await
        .map_err(|e| ConnectError::new(Code::Internal, format!("the reply broke: {e}")))?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    match tonic::Status::from_header_map(&trailers) {
        Some(status) if status.code() == Code::Ok => {}
        Some(status) => return Err(status.into()),
        None => return Err(ConnectError::new(Code::Internal, "the reply has no status")),
    }
    let reply = format.reply(output, codec::unframe(collected.to_bytes())?)?;
    let mut response = Response::new(Full::new(reply));
    let headers = response.headers_mut();
    error::copy_metadata(head.headers, headers, "");
    error::copy_metadata(trailers, headers, "trailer-");
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}
