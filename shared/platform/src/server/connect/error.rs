//! A failed call as Connect sends it: the HTTP status its code maps to, and a JSON body with the
//! code's name, the message and the details the gRPC status carried (`ErrorInfo`, `BadRequest`,
//! `PreconditionFailure`, `RetryInfo`), each as its type, its protobuf in base64 and, for
//! people reading it, the same as JSON under `debug`.

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::Full;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::error::ApiError;

/// The `ErrorInfo` domain of the errors this translation answers by itself.
pub const DOMAIN: &str = "connect.cosell";

/// A call that ends in an error, on its way to a Connect caller.
#[derive(Debug)]
pub struct ConnectError(Status);

impl ConnectError {
    /// An error of this layer's own, with no field to name.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        let reason = format!("{code:?}").to_uppercase();
        Self(ApiError::new(code, reason, message).into_status(DOMAIN))
    }

    /// `INVALID_ARGUMENT` for `field` (a path in the request, or `body` for the whole).
    pub fn field(field: &str, description: impl Into<String>) -> Self {
        Self(ApiError::invalid_field(field, description).into_status(DOMAIN))
    }

    pub fn into_status(self) -> Status {
        self.0
    }

    pub fn code(&self) -> Code {
        self.0.code()
    }

    /// The first field violation, for tests and logs.
    pub fn violation(&self) -> Option<(String, String)> {
        let bad = self.0.get_details_bad_request()?;
        let first = bad.field_violations.first()?;
        Some((first.field.clone(), first.description.clone()))
    }

    /// The response: the code's HTTP status, the status's metadata as headers, the JSON body.
    /// `pool` names the details' types for their `debug` form.
    pub fn into_response(self, pool: &DescriptorPool) -> http::Response<Full<Bytes>> {
        let mut response =
            http::Response::new(Full::new(Bytes::from(self.to_json(pool).to_string())));
        *response.status_mut() = http_status(self.code());
        let headers = response.headers_mut();
        copy_metadata(self.0.metadata().clone().into_headers(), headers, "");
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl ConnectError {
    /// Connect's error object: `code`, `message` and `details`.
    pub fn to_json(&self, pool: &DescriptorPool) -> serde_json::Value {
        let status = &self.0;
        let mut body = serde_json::Map::new();
        body.insert("code".into(), code_name(status.code()).into());
        if !status.message().is_empty() {
            body.insert("message".into(), status.message().into());
        }
        let details = details(status, pool);
        if !details.is_empty() {
            body.insert("details".into(), details.into());
        }
        serde_json::Value::Object(body)
    }

    /// The status's metadata, as a stream's end lists it: each name with its values.
    pub fn metadata(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        copy_metadata(self.0.metadata().clone().into_headers(), &mut headers, "");
        headers
    }
}

impl From<Status> for ConnectError {
    fn from(status: Status) -> Self {
        Self(status)
    }
}

/// Copies a gRPC reply's headers or trailers that are the application's (not gRPC's own, not
/// the framing's) into `to`, each name after `prefix` (`trailer-` for a unary reply's trailers).
pub fn copy_metadata(from: HeaderMap, to: &mut HeaderMap, prefix: &str) {
    let mut last = None;
    for (name, value) in from {
        // `None` repeats the name before it.
        let Some(name) = name.or(last.take()) else {
            continue;
        };
        last = Some(name.clone());
        let own = name.as_str().starts_with("grpc-")
            || name == header::CONTENT_TYPE
            || name == header::CONTENT_LENGTH
            || name == header::TE
            || name == header::TRAILER;
        if own {
            continue;
        }
        match http::HeaderName::try_from(format!("{prefix}{name}")) {
            Ok(prefixed) => {
                to.append(prefixed, value);
            }
            Err(_) => continue,
        }
    }
}

/// Connect's name of a code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The HTTP status Connect maps a code to.
pub fn http_status(code: Code) -> StatusCode {
    let n = match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::PermissionDenied => 403,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::Unauthenticated => 401,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    };
    StatusCode::from_u16(n).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The status's details, as Connect lists them.
fn details(status: &Status, pool: &DescriptorPool) -> Vec<serde_json::Value> {
    let Ok(rpc) = tonic_types::pb::Status::decode(status.details()) else {
        return Vec::new();
    };
    rpc.details
        .into_iter()
        .map(|any| {
            let name = any.type_url.rsplit('/').next().unwrap_or_default();
            let mut detail = serde_json::Map::new();
            detail.insert("type".into(), name.into());
            detail.insert(
                "value".into(),
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .encode(&any.value)
                    .into(),
            );
            let debug = pool.get_message_by_name(name).and_then(|descriptor| {
                let message = DynamicMessage::decode(descriptor, any.value.as_slice()).ok()?;
                message
                    .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
                    .ok()
            });
            if let Some(debug) = debug {
                detail.insert("debug".into(), debug);
            }
            serde_json::Value::Object(detail)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(tonic_types::pb::FILE_DESCRIPTOR_SET).unwrap()
    }

    async fn json(response: http::Response<Full<Bytes>>) -> serde_json::Value {
        let body = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn a_field_violation_travels_as_bad_request_with_its_field() {
        let response = ConnectError::field("referral.title", "is empty").into_response(&pool());
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = json(response).await;
        assert_eq!(body["code"], "invalid_argument");
        assert_eq!(body["message"], "invalid referral.title: is empty");
        let details = body["details"].as_array().unwrap();
        let bad = details
            .iter()
            .find(|d| d["type"] == "google.rpc.BadRequest")
            .unwrap();
        assert_eq!(
            bad["debug"]["fieldViolations"][0]["field"],
            "referral.title"
        );
        // The value is the protobuf itself, unpadded base64, as Connect clients decode it.
        let value = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(bad["value"].as_str().unwrap())
            .unwrap();
        let decoded = tonic_types::pb::BadRequest::decode(value.as_slice()).unwrap();
        assert_eq!(decoded.field_violations[0].description, "is empty");
        let info = details
            .iter()
            .find(|d| d["type"] == "google.rpc.ErrorInfo")
            .unwrap();
        assert_eq!(info["debug"]["domain"], DOMAIN);
    }

    #[tokio::test]
    async fn metadata_becomes_headers_and_grpc_own_do_not() {
        let mut status = Status::unavailable("down");
        status
            .metadata_mut()
            .insert("retry-after-ms", "50".parse().unwrap());
        status
            .metadata_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        let response = ConnectError::from(status).into_response(&pool());
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after-ms"], "50");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(json(response).await["code"], "unavailable");
    }

    #[test]
    fn every_code_has_the_protocol_s_name_and_status() {
        for (code, name, http) in [
            (Code::NotFound, "not_found", 404),
            (Code::Unauthenticated, "unauthenticated", 401),
            (Code::PermissionDenied, "permission_denied", 403),
            (Code::FailedPrecondition, "failed_precondition", 400),
            (Code::ResourceExhausted, "resource_exhausted", 429),
            (Code::DeadlineExceeded, "deadline_exceeded", 504),
            (Code::Cancelled, "canceled", 499),
        ] {
            assert_eq!(code_name(code), name);
            assert_eq!(http_status(code).as_u16(), http);
        }
    }
}
