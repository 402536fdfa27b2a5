//! The messages of a Connect call: a request body read within its limit and checked against the
//! method's input type (JSON through the descriptors, or protobuf), framed as gRPC's one message;
//! the reply's one gRPC message turned back into the caller's format.

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};
use tonic::Code;

use super::error::ConnectError;

/// Largest request message taken in protobuf: tonic's limit on a decoded gRPC message.
pub const REQUEST_LIMIT: usize = 4 * 1024 * 1024;

/// Largest request message taken in JSON: room for a protobuf message at the limit whose bytes
/// fields grow by a third in base64. What it becomes must still fit [`REQUEST_LIMIT`].
pub const JSON_REQUEST_LIMIT: usize = 6 * 1024 * 1024;

/// Largest reply turned into JSON: a page of 1,000 referrals is about 1 MiB.
pub const REPLY_LIMIT: usize = 64 * 1024 * 1024;

/// How the caller's messages are written, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`: canonical proto3 JSON.
    Json,
    /// `application/proto`: the protobuf encoding.
    Proto,
}

impl Format {
    /// The format of a unary call's `Content-Type` (parameters such as `charset=utf-8` aside).
    pub fn of_unary(content_type: &str) -> Option<Self> {
        match media_type(content_type) {
            "application/json" => Some(Self::Json),
            "application/proto" => Some(Self::Proto),
            _ => None,
        }
    }

    /// Largest request message taken in this format.
    pub fn request_limit(self) -> usize {
        match self {
            Self::Json => JSON_REQUEST_LIMIT,
            Self::Proto => REQUEST_LIMIT,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Proto => "application/proto",
        }
    }

    /// The request's message in protobuf, checked against `input`: a malformed body is
    /// `INVALID_ARGUMENT` naming where it went wrong (for JSON, the field's path as written).
    pub fn request(self, input: &MessageDescriptor, body: &[u8]) -> Result<Bytes, ConnectError> {
        match self {
            Self::Proto => match DynamicMessage::decode(input.clone(), body) {
                Ok(_) => Ok(Bytes::copy_from_slice(body)),
                Err(e) => Err(ConnectError::field(
                    "body",
                    format!("is not a protobuf {}: {e}", input.full_name()),
                )),
            },
            // An empty body is the empty message, as in protobuf.
            Self::Json if body.iter().all(u8::is_ascii_whitespace) => Ok(Bytes::new()),
            Self::Json => {
                let message = from_json(input, body)?.encode_to_vec();
                if message.len() > REQUEST_LIMIT {
                    return Err(ConnectError::field(
                        "body",
                        format!(
                            "is {} bytes in protobuf; at most {REQUEST_LIMIT} are taken",
                            message.len()
                        ),
                    ));
                }
                Ok(message.into())
            }
        }
    }

    /// The reply's message, `protobuf`, in this format.
    pub fn reply(self, output: &MessageDescriptor, protobuf: Bytes) -> Result<Bytes, ConnectError> {
        match self {
            Self::Proto => Ok(protobuf),
            Self::Json => {
                let message = DynamicMessage::decode(output.clone(), protobuf).map_err(|e| {
                    ConnectError::new(Code::Internal, format!("the reply did not decode: {e}"))
                })?;
                to_json(&message).map(Bytes::from)
            }
        }
    }
}

/// `type/subtype` of a `Content-Type`, lower-cased parameters and spaces aside.
pub fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// A JSON message of type `input`; unknown fields are refused, as a typo would otherwise be
/// silently dropped.
pub fn from_json(input: &MessageDescriptor, body: &[u8]) -> Result<DynamicMessage, ConnectError> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let mut track = serde_path_to_error::Track::new();
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let tracked = serde_path_to_error::Deserializer::new(&mut json, &mut track);
    match DynamicMessage::deserialize_with_options(input.clone(), tracked, &options) {
        Ok(message) => match json.end() {
            Ok(()) => Ok(message),
            Err(e) => Err(ConnectError::field(
                "body",
                format!("has more after the message: {e}"),
            )),
        },
        Err(e) => {
            let reason = e.to_string();
            let mut path = track.path().to_string();
            // The path ends at the message that holds an unknown field; the reason names it.
            if let Some(name) = reason
                .strip_prefix("unrecognized field name '")
                .and_then(|rest| rest.split('\'').next())
            {
                path = if path == "." {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
            }
            let field = if path == "." { "body" } else { &path };
            Err(ConnectError::field(field, reason))
        }
    }
}

/// Canonical proto3 JSON: fields by their JSON names, enums by name, defaults left out.
pub fn to_json(message: &DynamicMessage) -> Result<Vec<u8>, ConnectError> {
    let mut out = Vec::with_capacity(message.encoded_len() * 2);
    let mut json = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut json, &SerializeOptions::new())
        .map_err(|e| ConnectError::new(Code::Internal, format!("the reply did not print: {e}")))?;
    Ok(out)
}

/// A body of at most `limit` bytes, refused by its declared length before any of it is read.
/// What a refused body still sends is read and dropped, for at most [`DISCARD_LIMIT`] bytes and
/// [`DISCARD_TIME`]: an HTTP/2 client told no before it has finished sending sees the answer
/// instead of its stream reset.
pub async fn read_bounded<B>(
    body: B,
    declared: Option<u64>,
    limit: usize,
) -> Result<Bytes, ConnectError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_big = |len: String| {
        ConnectError::field("body", format!("is {len} bytes; at most {limit} are taken"))
    };
    let mut body = std::pin::pin!(body);
    if let Some(len) = declared.filter(|&len| len > limit as u64) {
        discard(body.as_mut()).await;
        return Err(too_big(len.to_string()));
    }
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let e: Box<dyn std::error::Error + Send + Sync> = e.into();
            ConnectError::new(
                Code::Cancelled,
                format!("the request body did not arrive: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if read.len() + data.len() > limit {
                discard(body.as_mut()).await;
                return Err(too_big("more than that".into()));
            }
            read.extend_from_slice(&data);
        }
    }
    Ok(read.freeze())
}

/// Most of a refused body read and dropped.
pub const DISCARD_LIMIT: usize = 16 * 1024 * 1024;
pub const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(2);

async fn discard<B: http_body::Body<Data = Bytes>>(mut body: std::pin::Pin<&mut B>) {
    let drain = async {
        let mut dropped = 0;
        while dropped < DISCARD_LIMIT {
            match body.frame().await {
                Some(Ok(frame)) => dropped += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
}

/// gRPC's framing of one uncompressed message.
pub fn frame(message: &[u8]) -> Bytes {
    envelope(0, message)
}

/// A message framed as gRPC and Connect's streams frame it: a byte of flags, the length in four
/// bytes (big-endian), the message.
pub fn envelope(flags: u8, message: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(flags);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed.into()
}

/// The framed messages of a stream, as its bytes arrive.
#[derive(Default)]
pub struct Deframer {
    buf: BytesMut,
}

impl Deframer {
    pub fn push(&mut self, data: Bytes) {
        self.buf.extend_from_slice(&data);
    }

    /// The next whole message and its flags, `None` until one has arrived; a message declared
    /// longer than `limit` is refused before it is buffered.
    pub fn next(&mut self, limit: usize) -> Result<Option<(u8, Bytes)>, String> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > limit {
            return Err(format!(
                "a message is {len} bytes; at most {limit} are taken"
            ));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let flags = self.buf[0];
        self.buf.advance(5);
        Ok(Some((flags, self.buf.split_to(len).freeze())))
    }

    /// Whether nothing is left of a message begun.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// The one message of a unary gRPC reply's body.
pub fn unframe(mut body: Bytes) -> Result<Bytes, ConnectError> {
    let broken = |why: &str| ConnectError::new(Code::Internal, format!("the reply {why}"));
    if body.len() < 5 {
        return Err(broken("has no message"));
    }
    let compressed = body.get_u8();
    let len = body.get_u32() as usize;
    if compressed != 0 {
        return Err(broken("is compressed"));
    }
    if len != body.len() {
        return Err(broken("is not one message"));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health_request() -> MessageDescriptor {
        let pool =
            prost_reflect::DescriptorPool::decode(tonic_health::pb::FILE_DESCRIPTOR_SET).unwrap();
        pool.get_message_by_name("grpc.health.v1.HealthCheckRequest")
            .unwrap()
    }

    #[test]
    fn content_types_pick_the_format() {
        assert_eq!(
            Format::of_unary("application/json; charset=utf-8"),
            Some(Format::Json)
        );
        assert_eq!(Format::of_unary("application/proto"), Some(Format::Proto));
        assert_eq!(Format::of_unary("application/grpc"), None);
        assert_eq!(Format::of_unary("application/connect+json"), None);
    }

    #[test]
    fn json_becomes_the_same_protobuf_and_back() {
        let input = health_request();
        let bytes = Format::Json
            .request(&input, br#"{"service": "cosell.deals.v1.ReferralService"}"#)
            .unwrap();
        let message = DynamicMessage::decode(input.clone(), bytes.clone()).unwrap();
        assert_eq!(
            message.get_field_by_name("service").unwrap().as_str(),
            Some("cosell.deals.v1.ReferralService")
        );
        let json = Format::Json.reply(&input, bytes).unwrap();
        assert_eq!(
            &json[..],
            br#"{"service":"cosell.deals.v1.ReferralService"}"#
        );
    }

    #[test]
    fn bad_json_names_the_field_and_the_reason() {
        let input = health_request();
        for (body, field, reason) in [
            (&br#"{"service": 7}"#[..], "service", "invalid type"),
            (br#"{"servic": "x"}"#, "servic", "unrecognized field"),
            (
                br#"{"service": "x", "extra": {"a": 1}}"#,
                "extra",
                "unrecognized field",
            ),
            (br#"{"service": "x"} {}"#, "body", "more after"),
            (br#"{"service": "#, "service", "EOF"),
        ] {
            let e = Format::Json.request(&input, body).unwrap_err();
            let (f, d) = e.violation().unwrap();
            assert_eq!(f, field, "{}", String::from_utf8_lossy(body));
            assert!(d.contains(reason), "{d}");
            assert_eq!(e.code(), Code::InvalidArgument);
        }
    }

    #[test]
    fn an_empty_body_is_the_empty_message() {
        assert!(
            Format::Json
                .request(&health_request(), b" \n")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn frames_hold_one_message() {
        let framed = frame(b"abc");
        assert_eq!(&framed[..], b"\0\0\0\0\x03abc");
        assert_eq!(&unframe(framed).unwrap()[..], b"abc");
        assert!(unframe(Bytes::from_static(b"\0\0\0\0\x04abc")).is_err());
        assert!(unframe(Bytes::from_static(b"\x01\0\0\0\x03abc")).is_err());
    }

    #[test]
    fn a_deframer_gives_each_message_once_whatever_the_chunks() {
        let stream = [
            envelope(0, b"first"),
            envelope(2, b""),
            envelope(1, b"third"),
        ]
        .concat();
        for chunk in [1, 2, 5, 7, stream.len()] {
            let mut deframer = Deframer::default();
            let mut got = Vec::new();
            for part in stream.chunks(chunk) {
                deframer.push(Bytes::copy_from_slice(part));
                while let Some(message) = deframer.next(100).unwrap() {
                    got.push(message);
                }
            }
            assert!(deframer.is_empty());
            let want = [(0, &b"first"[..]), (2, b""), (1, b"third")];
            assert_eq!(got.len(), 3, "chunks of {chunk}");
            for ((flags, message), (f, m)) in got.iter().zip(want) {
                assert_eq!((*flags, &message[..]), (f, m));
            }
        }
        let mut deframer = Deframer::default();
        deframer.push(envelope(0, &[0; 101]));
        assert!(deframer.next(100).unwrap_err().contains("101 bytes"));
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_refused() {
        let body = http_body_util::Full::new(Bytes::from(vec![b' '; 100]));
        let e = read_bounded(body.clone(), Some(100), 99).await.unwrap_err();
        assert!(e.violation().unwrap().1.contains("is 100 bytes"));
        let e = read_bounded(body.clone(), None, 99).await.unwrap_err();
        assert_eq!(e.violation().unwrap().0, "body");
        assert_eq!(read_bounded(body, None, 100).await.unwrap().len(), 100);
    }
}
