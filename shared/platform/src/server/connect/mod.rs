//! The Connect protocol on the gRPC port, for the callers that cannot speak gRPC (a CRM's HTTP
//! callouts, curl, web pages): `POST /{package}.{Service}/{Method}` over HTTP/1.1 or HTTP/2,
//! unary methods with a JSON (`application/json`) or protobuf (`application/proto`) body,
//! streaming ones with Connect's enveloped messages (`application/connect+json`, [`stream`]).
//!
//! [`ConnectLayer`] sits outside every other layer of the server. A Connect call is turned into
//! the gRPC call it stands for (the body checked against the method's input type from the
//! descriptor sets and framed as gRPC's one message; the headers, `authorization` among them,
//! kept) and sent down the same stack as any gRPC call: tracing, metrics, authentication, the
//! concurrency limit and the deadline apply unchanged, and no RPC has a handler of its own here.
//! The reply comes back as the output type in the caller's format ([`codec`]), an error as
//! Connect's error JSON under the HTTP status its code maps to ([`error`]). Every other request
//! goes to gRPC untouched: only its body's type changes ([`ReplyBody`]'s gRPC side), no copy, no
//! allocation.
//!
//! gRPC-Web (`application/grpc-web+proto`, from browsers) goes through tonic-web's translation
//! here too, so that gRPC calls never pay for it; which pages may call is [`super::cors`]. A file
//! `POST`ed to an upload's route goes to its client-streaming method ([`upload`]).
//!
//! `Connect-Timeout-Ms` is the call's deadline, enforced here: tonic reads `grpc-timeout` before
//! this layer runs. Compressed bodies are refused (`unimplemented`), as Connect lets a server do.

pub mod codec;
pub mod error;
pub mod stream;
pub mod unary;
pub mod upload;

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, Either as EitherFuture, MapOk};
use futures::{FutureExt, TryFutureExt};
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::Either;
use prost_reflect::{DescriptorPool, MethodDescriptor};
use tonic::Code;
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};

use codec::Format;
use error::ConnectError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The server's stack below this layer, as the calls here send to it: gRPC requests in, replies
/// with bodies of `B` out.
pub trait Below<B>: Service<Request<Body>, Response = Response<B>, Error: Into<BoxError>> {}

impl<S, B> Below<B> for S
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
{
}

/// The body of a reply from below.
pub trait FromBelow: http_body::Body<Data = Bytes, Error: Into<BoxError>> {}

impl<B> FromBelow for B
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
}

/// The methods a server answers, by path, with the types their messages are read and written by.
#[derive(Default)]
pub struct Procedures {
    pool: DescriptorPool,
    by_path: HashMap<String, MethodDescriptor>,
    uploads: HashMap<&'static str, upload::HttpUpload>,
}

impl Procedures {
    /// Every method of the services in `descriptor_sets` (encoded `FileDescriptorSet`s; files
    /// they share are read once), and the routes of `uploads` ([`upload`]).
    pub fn new(
        descriptor_sets: &[&[u8]],
        uploads: &[upload::HttpUpload],
    ) -> Result<Self, prost_reflect::DescriptorError> {
        let mut pool = DescriptorPool::new();
        for set in descriptor_sets {
            pool.decode_file_descriptor_set(*set)?;
        }
        let by_path = pool
            .services()
            .flat_map(|s| s.methods().collect::<Vec<_>>())
            .map(|m| {
                (
                    format!("/{}/{}", m.parent_service().full_name(), m.name()),
                    m,
                )
            })
            .collect();
        let uploads = uploads.iter().map(|u| (u.path, *u)).collect();
        Ok(Self {
            pool,
            by_path,
            uploads,
        })
    }

    /// Every type the methods use, and the error details' types.
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    pub fn get(&self, path: &str) -> Option<&MethodDescriptor> {
        self.by_path.get(path)
    }
}

#[derive(Clone)]
pub struct ConnectLayer {
    procedures: Arc<Procedures>,
    /// Longest a unary call's body may take to arrive: the server's request time limit, which
    /// the deadline layer can only apply once the body has become a gRPC call.
    read_within: Duration,
}

impl ConnectLayer {
    pub fn new(procedures: Procedures, read_within: Duration) -> Self {
        Self {
            procedures: Arc::new(procedures),
            read_within,
        }
    }
}

impl<S> Layer<S> for ConnectLayer {
    type Service = Connect<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Connect {
            inner,
            procedures: self.procedures.clone(),
            read_within: self.read_within,
        }
    }
}

#[derive(Clone)]
pub struct Connect<S> {
    inner: S,
    procedures: Arc<Procedures>,
    read_within: Duration,
}

type Reply<B> = Response<ReplyBody<B>>;

fn grpc_reply<B>(response: Response<B>) -> Reply<B> {
    response.map(ReplyBody::grpc)
}

pin_project_lite::pin_project! {
    /// A reply's body: gRPC's own, untouched, or one this layer made. Empty by default, as a
    /// CORS preflight's answer is.
    pub struct ReplyBody<B> {
        #[pin]
        inner: Either<B, Body>,
    }
}

impl<B> ReplyBody<B> {
    fn grpc(body: B) -> Self {
        Self {
            inner: Either::Left(body),
        }
    }

    fn made(body: Body) -> Self {
        Self {
            inner: Either::Right(body),
        }
    }
}

impl<B> Default for ReplyBody<B> {
    fn default() -> Self {
        Self::made(Body::empty())
    }
}

impl<B> http_body::Body for ReplyBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<S, B> Service<Request<Body>> for Connect<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + std::fmt::Display,
{
    type Response = Reply<B>;
    type Error = S::Error;
    #[allow(clippy::type_complexity)]
    type Future = EitherFuture<
        MapOk<S::Future, fn(Response<B>) -> Reply<B>>,
        BoxFuture<'static, Result<Reply<B>, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let Some(protocol) = Protocol::of(&request, &self.procedures) else {
            return EitherFuture::Left(self.inner.call(request).map_ok(grpc_reply as fn(_) -> _));
        };
        // The service that was made ready goes with this call; its clone waits for the next.
        let inner = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, inner);
        let (procedures, read_within) = (self.procedures.clone(), self.read_within);
        EitherFuture::Right(match protocol {
            Protocol::GrpcWeb => tonic_web::GrpcWebLayer::new()
                .layer(inner)
                .oneshot(request)
                .map_ok(|r| r.map(ReplyBody::made))
                .boxed(),
            Protocol::Upload(upload) => async move {
                let answer = match procedures.get(upload.method) {
                    Some(method) => upload::call(inner, &upload, method, request)
                        .await
                        .map(|r| r.map(Body::new)),
                    None => Err(ConnectError::new(
                        Code::Unimplemented,
                        format!("no procedure {} for {}", upload.method, upload.path),
                    )),
                };
                Ok(answer
                    .unwrap_or_else(|e| e.into_response(&procedures.pool).map(Body::new))
                    .map(ReplyBody::made))
            }
            .boxed(),
            Protocol::Connect(kind) => async move {
                let answer = connect(inner, &procedures, kind, request, read_within).await;
                Ok(answer
                    .unwrap_or_else(|e| e.into_response(&procedures.pool).map(Body::new))
                    .map(ReplyBody::made))
            }
            .boxed(),
        })
    }
}

/// One Connect call, unary or streaming, as the method it names is.
async fn connect<S: Below<B>, B: FromBelow + Send + 'static>(
    inner: S,
    procedures: &Arc<Procedures>,
    kind: Kind,
    request: Request<Body>,
    read_within: Duration,
) -> Result<Response<Body>, ConnectError> {
    let path = request.uri().path();
    let Some(method) = procedures.get(path).cloned() else {
        return Err(ConnectError::new(
            Code::Unimplemented,
            format!("no procedure {path}"),
        ));
    };
    match kind {
        Kind::Unary(format) if !streams(&method) => {
            unary::call(inner, &method, format, request, read_within)
                .await
                .map(|r| r.map(Body::new))
        }
        Kind::Stream(format) if streams(&method) => {
            stream::call(inner, procedures.clone(), method, format, request).await
        }
        Kind::Unary(_) => Err(ConnectError::new(
            Code::Unimplemented,
            format!(
                "{} streams: call it with application/connect+json or application/connect+proto",
                method.full_name()
            ),
        )),
        Kind::Stream(_) => Err(ConnectError::new(
            Code::Unimplemented,
            format!(
                "{} is unary: call it with application/json or application/proto",
                method.full_name()
            ),
        )),
    }
}

fn streams(method: &MethodDescriptor) -> bool {
    method.is_client_streaming() || method.is_server_streaming()
}

/// Which protocol other than gRPC a request speaks, by its `Content-Type`; `None` for gRPC and
/// anything else.
#[derive(Debug, Clone, Copy)]
enum Protocol {
    Connect(Kind),
    /// gRPC-Web, from browsers: tonic-web's translation.
    GrpcWeb,
    /// A file as one `POST` to an upload's route, whatever its type.
    Upload(upload::HttpUpload),
}

/// Connect's two ways of calling.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Unary(Format),
    Stream(Format),
}

impl Protocol {
    fn of<B>(request: &Request<B>, procedures: &Procedures) -> Option<Self> {
        if request.method() != Method::POST {
            return None;
        }
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // gRPC first: it is nearly every call.
        if content_type.starts_with("application/grpc") {
            return content_type
                .starts_with("application/grpc-web")
                .then_some(Self::GrpcWeb);
        }
        Format::of_unary(content_type)
            .map(Kind::Unary)
            .or_else(|| stream::format_of(content_type).map(Kind::Stream))
            .map(Self::Connect)
            .or_else(|| {
                let upload = procedures.uploads.get(request.uri().path())?;
                Some(Self::Upload(*upload))
            })
    }
}

/// Refuses what this server does not take: another protocol version, a compressed body.
fn check_headers(headers: &http::HeaderMap) -> Result<(), ConnectError> {
    if let Some(version) = headers.get("connect-protocol-version")
        && version != "1"
    {
        return Err(ConnectError::field(
            "connect-protocol-version",
            "must be 1, the only version of the protocol",
        ));
    }
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING)
        && encoding != "identity"
    {
        return Err(ConnectError::new(
            Code::Unimplemented,
            format!(
                "content-encoding {} is not taken: send the body uncompressed",
                String::from_utf8_lossy(encoding.as_bytes())
            ),
        ));
    }
    Ok(())
}

/// `Connect-Timeout-Ms`: at most 10 digits, as the protocol says.
fn timeout(headers: &http::HeaderMap) -> Result<Option<Duration>, ConnectError> {
    let Some(value) = headers.get("connect-timeout-ms") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConnectError::field(
            "connect-timeout-ms",
            "must be a whole number of milliseconds, at most 10 digits",
        ));
    }
    Ok(Some(Duration::from_millis(
        text.parse().unwrap_or(u64::MAX),
    )))
}

/// The gRPC request a Connect call stands for: its headers but the ones about its own framing,
/// its deadline as `grpc-timeout` (for handlers that pass it on), `body` gRPC's frames.
fn grpc_request(
    mut parts: http::request::Parts,
    body: Body,
    timeout: Option<Duration>,
) -> Request<Body> {
    let headers = &mut parts.headers;
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::ACCEPT_ENCODING,
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("connect-protocol-version");
    headers.remove("connect-timeout-ms");
    headers.remove("keep-alive");
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    if let Some(limit) = timeout
        && let Ok(value) = HeaderValue::try_from(format!("{}m", limit.as_millis().min(99_999_999)))
    {
        headers.insert("grpc-timeout", value);
    }
    parts.version = http::Version::HTTP_2;
    Request::from_parts(parts, body)
}
