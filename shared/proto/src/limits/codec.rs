//! The codec of every generated client and server (`build.rs` sets it as tonic's `codec_path`):
//! tonic-prost's encoder and decoder, with [`Bounded::check`] run on each message right after it
//! is decoded. On a server that is every request, streamed chunks included, so nothing over a
//! documented limit reaches a handler. On a client it is every response, whose check is empty.

use std::collections::HashMap;
use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstDecoder, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt};

use super::{Bounded, Path, Violation};

/// tonic-prost's codec with the limit check on decoding.
#[derive(Debug, Clone)]
pub struct Codec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Bounded + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder(ProstDecoder::new(BufferSettings::default()))
    }
}

/// Decodes with prost, then refuses a message over a documented limit.
#[derive(Debug, Clone)]
pub struct BoundedDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default + Bounded> Decoder for BoundedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let message = self.0.decode(buf)?;
        if let Some(m) = &message {
            let mut violations = Vec::new();
            m.check(&Path::ROOT, &mut violations);
            if !violations.is_empty() {
                return Err(refusal(U::DOMAIN, violations));
            }
        }
        Ok(message)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// `INVALID_ARGUMENT` with a `BadRequest` field violation per field, and an `ErrorInfo` whose
/// reason is the first violation's (`FIELD_TOO_LONG`, `TOO_MANY_ITEMS`): the same shape as
/// every other bad field the services report.
pub fn refusal(domain: &str, violations: Vec<Violation>) -> Status {
    let message = match violations.as_slice() {
        [one] => format!("invalid {}: {}", one.field, one.description),
        _ => format!(
            "invalid fields: {}",
            violations
                .iter()
                .map(|v| v.field.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let reason = violations.first().map_or("FIELD_TOO_LONG", |v| v.reason);
    let mut details = ErrorDetails::with_error_info(reason, domain, HashMap::new());
    details.set_bad_request(
        violations
            .into_iter()
            .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
            .collect::<Vec<_>>(),
    );
    Status::with_error_details(Code::InvalidArgument, message, details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_each_field() {
        let status = refusal(
            "deals.cosell",
            vec![
                Violation {
                    field: "query".into(),
                    description: "is 201 characters long; at most 200 are accepted".into(),
                    reason: "FIELD_TOO_LONG",
                },
                Violation {
                    field: "names".into(),
                    description: "has 2 items; at most 1 are accepted".into(),
                    reason: "TOO_MANY_ITEMS",
                },
            ],
        );
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "invalid fields: query, names");
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(info.reason, "FIELD_TOO_LONG");
        assert_eq!(info.domain, "deals.cosell");
        let fields: Vec<_> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        assert_eq!(fields, ["query", "names"]);
    }
}
