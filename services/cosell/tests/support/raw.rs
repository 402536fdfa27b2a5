//! Any RPC of the suite spoken without generated types: its descriptor from the services'
//! descriptor sets, its request and answer as bytes. For the tests that sweep every RPC.

use std::time::Duration;

use prost::bytes::{Buf, BufMut};
use prost_reflect::{DescriptorPool, MethodDescriptor};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

/// How long a stream that was accepted may stay quiet before it counts as answered (a watch
/// waits for changes).
const QUIET: Duration = Duration::from_secs(1);

/// Messages as encoded bytes, both ways: the test speaks every RPC without generated types.
#[derive(Clone, Copy, Default)]
pub struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut item = vec![0; src.remaining()];
        src.copy_to_slice(&mut item);
        Ok(Some(item))
    }
}

/// Every service of the suite.
pub fn pool() -> DescriptorPool {
    let mut pool = DescriptorPool::new();
    for set in [
        cosell_proto::identity::FILE_DESCRIPTOR_SET,
        cosell_proto::directory::FILE_DESCRIPTOR_SET,
        cosell_proto::deals::FILE_DESCRIPTOR_SET,
        cosell_proto::migration::FILE_DESCRIPTOR_SET,
    ] {
        pool.decode_file_descriptor_set(set).unwrap();
    }
    pool
}

/// Calls `method` with the encoded request `body` (as the only message of an upload), the
/// bearer `token` if any, and `deadline`: `Ok` with the answer's bytes when it was accepted (a
/// stream's first message, or nothing at its end or while it stays quiet for a second), else
/// the status it ended with.
pub async fn call(
    channel: &Channel,
    method: &MethodDescriptor,
    token: Option<&str>,
    body: Vec<u8>,
    deadline: Duration,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("not ready: {e}")))?;
    let path: PathAndQuery = format!("/{}/{}", method.parent_service().full_name(), method.name())
        .parse()
        .expect("a method's path");
    let authorize = |req: &mut tonic::metadata::MetadataMap| {
        if let Some(t) = token
            && let Ok(value) = format!("Bearer {t}").parse()
        {
            req.insert("authorization", value);
        }
    };
    match (method.is_client_streaming(), method.is_server_streaming()) {
        (false, false) => {
            let mut req = tonic::Request::new(body);
            authorize(req.metadata_mut());
            req.set_timeout(deadline);
            grpc.unary(req, path, Raw).await.map(|r| r.into_inner())
        }
        (false, true) => {
            let mut req = tonic::Request::new(body);
            authorize(req.metadata_mut());
            match tokio::time::timeout(deadline, grpc.server_streaming(req, path, Raw)).await {
                Err(_) => Err(tonic::Status::deadline_exceeded(
                    "no answer within the deadline",
                )),
                Ok(Err(s)) => Err(s),
                Ok(Ok(stream)) => {
                    match tokio::time::timeout(QUIET, stream.into_inner().message()).await {
                        Err(_) => Ok(Vec::new()),
                        Ok(r) => r.map(Option::unwrap_or_default),
                    }
                }
            }
        }
        (true, _) => {
            let mut req = tonic::Request::new(tokio_stream::iter(vec![body]));
            authorize(req.metadata_mut());
            req.set_timeout(deadline);
            grpc.client_streaming(req, path, Raw)
                .await
                .map(|r| r.into_inner())
        }
    }
}
