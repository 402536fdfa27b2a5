//! The longest value each string field of each request may hold: one table, checked before a
//! handler does anything else (no identity call, no database work), so that a long value costs
//! nothing beyond its decoding. The proto comment of each field states its maximum.

use cosell_platform::{ApiError, Violations};
use cosell_proto::migration as pb;

/// A resource name, `organizations/{id}` (50 characters; a little room for a longer id).
pub(super) const NAME: usize = 100;
/// A page token (a PSC deal id of at most 100 characters and a fingerprint, encoded).
pub(super) const PAGE_TOKEN: usize = 1000;
/// A PSC partner account id (the import refuses longer ones).
pub(super) const ACCOUNT_ID: usize = crate::psc::files::MAX_ID_CHARS;
/// An MPN ID (6 or 7 digits).
pub(super) const MPN_ID: usize = 20;
/// A file name of an upload.
pub(super) const FILE_NAME: usize = 255;
/// Bytes of one upload message's chunk.
pub(super) const CHUNK_BYTES: usize = 4 << 20;

/// A request's string fields with their maximum lengths in characters.
pub(super) trait Limited {
    fn strings(&self) -> Vec<(&'static str, &str, usize)>;
}

/// `INVALID_ARGUMENT`, a violation per field longer than its maximum.
pub(super) fn check(request: &impl Limited) -> Result<(), ApiError> {
    let mut v = Violations::new();
    for (field, value, max) in request.strings() {
        // Characters are counted only when the bytes say they may be too many.
        if value.len() > max && value.chars().count() > max {
            v.add(field, format!("is longer than {max} characters"));
        }
    }
    v.finish()
}

macro_rules! parent_only {
    ($($request:ty),* $(,)?) => {$(
        impl Limited for $request {
            fn strings(&self) -> Vec<(&'static str, &str, usize)> {
                vec![("parent", &self.parent, NAME)]
            }
        }
    )*};
}

parent_only!(
    pb::ListPscImportsRequest,
    pb::GetMpnCheckRequest,
    pb::GetDealMigrationStatusRequest,
    pb::ListUserMigrationRequest,
    pb::RunUserMigrationRequest,
    pb::StartDealMigrationRequest,
    pb::WatchDealMigrationRequest,
    pb::GetCutoverRequest,
    pb::UpdateCutoverRequest,
);

impl Limited for pb::ListDealReadinessRequest {
    fn strings(&self) -> Vec<(&'static str, &str, usize)> {
        vec![
            ("parent", &self.parent, NAME),
            ("page_token", &self.page_token, PAGE_TOKEN),
        ]
    }
}

impl Limited for pb::ListDealMigrationReportRequest {
    fn strings(&self) -> Vec<(&'static str, &str, usize)> {
        vec![
            ("parent", &self.parent, NAME),
            ("page_token", &self.page_token, PAGE_TOKEN),
        ]
    }
}

impl Limited for pb::CorrectMpnAssociationRequest {
    fn strings(&self) -> Vec<(&'static str, &str, usize)> {
        vec![
            ("parent", &self.parent, NAME),
            ("account_id", &self.account_id, ACCOUNT_ID),
            ("mpn_id", &self.mpn_id, MPN_ID),
        ]
    }
}

/// Each message of an upload; its chunk is bounded in bytes by [`check_message`].
impl Limited for pb::ImportPscExportRequest {
    fn strings(&self) -> Vec<(&'static str, &str, usize)> {
        vec![
            ("organization", &self.organization, NAME),
            ("file_name", &self.file_name, FILE_NAME),
        ]
    }
}

/// One upload message: its strings, and its chunk of at most [`CHUNK_BYTES`].
pub(super) fn check_message(m: &pb::ImportPscExportRequest) -> Result<(), ApiError> {
    check(m)?;
    if m.chunk.len() > CHUNK_BYTES {
        return Err(ApiError::invalid_field(
            "chunk",
            format!("is larger than {CHUNK_BYTES} bytes; send the file in smaller chunks"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// The string and bytes fields of `message` in the service's descriptor, with their
    /// comments (whitespace folded).
    fn text_fields(
        descriptors: &prost_types::FileDescriptorSet,
        message: &str,
    ) -> Vec<(String, String)> {
        use prost_types::field_descriptor_proto::Type;
        for file in &descriptors.file {
            let Some(at) = file.message_type.iter().position(|m| m.name() == message) else {
                continue;
            };
            let comment = |field: usize| {
                let path = [4, at as i32, 2, field as i32];
                file.source_code_info
                    .iter()
                    .flat_map(|i| &i.location)
                    .find(|l| l.path == path)
                    .map(|l| {
                        l.leading_comments()
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default()
            };
            return file.message_type[at]
                .field
                .iter()
                .enumerate()
                .filter(|(_, f)| matches!(f.r#type(), Type::String | Type::Bytes))
                .map(|(i, f)| (f.name().to_owned(), comment(i)))
                .collect();
        }
        panic!("{message} is not in the descriptor")
    }

    #[test]
    fn every_string_field_of_every_request_has_a_maximum() {
        let descriptors =
            prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).expect("descriptors");
        let service = descriptors
            .file
            .iter()
            .flat_map(|f| &f.service)
            .find(|s| s.name() == "MigrationService")
            .unwrap();
        for method in &service.method {
            let input = method.input_type().rsplit('.').next().unwrap();
            let limited: Vec<(&str, usize)> = match input {
                "ImportPscExportRequest" => {
                    let mut fields = limits(&pb::ImportPscExportRequest::default());
                    fields.push(("chunk", CHUNK_BYTES));
                    fields
                }
                "ListPscImportsRequest" => limits(&pb::ListPscImportsRequest::default()),
                "GetMpnCheckRequest" => limits(&pb::GetMpnCheckRequest::default()),
                "CorrectMpnAssociationRequest" => {
                    limits(&pb::CorrectMpnAssociationRequest::default())
                }
                "GetDealMigrationStatusRequest" => {
                    limits(&pb::GetDealMigrationStatusRequest::default())
                }
                "ListDealReadinessRequest" => limits(&pb::ListDealReadinessRequest::default()),
                "ListUserMigrationRequest" => limits(&pb::ListUserMigrationRequest::default()),
                "RunUserMigrationRequest" => limits(&pb::RunUserMigrationRequest::default()),
                "StartDealMigrationRequest" => limits(&pb::StartDealMigrationRequest::default()),
                "WatchDealMigrationRequest" => limits(&pb::WatchDealMigrationRequest::default()),
                "ListDealMigrationReportRequest" => {
                    limits(&pb::ListDealMigrationReportRequest::default())
                }
                "GetCutoverRequest" => limits(&pb::GetCutoverRequest::default()),
                "UpdateCutoverRequest" => limits(&pb::UpdateCutoverRequest::default()),
                other => panic!("{other}: no maximum lengths for its fields"),
            };
            let fields = text_fields(&descriptors, input);
            let mut names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
            let mut checked: Vec<&str> = limited.iter().map(|(f, _)| *f).collect();
            names.sort();
            checked.sort();
            assert_eq!(names, checked, "{input}: the fields checked");
            // The contract says each maximum.
            for (field, comment) in &fields {
                let max = limited.iter().find(|(f, _)| f == field).unwrap().1;
                let unit = if *field == "chunk" {
                    "bytes"
                } else {
                    "characters"
                };
                assert!(
                    comment.contains(&format!("At most {max} {unit}")),
                    "{input}.{field}: the comment does not say `At most {max} {unit}`: {comment}"
                );
            }
        }
    }

    fn limits(request: &impl Limited) -> Vec<(&'static str, usize)> {
        request
            .strings()
            .iter()
            .map(|(f, _, max)| (*f, *max))
            .collect()
    }

    #[test]
    fn a_value_over_its_maximum_is_a_violation_of_its_field() {
        let at = pb::CorrectMpnAssociationRequest {
            parent: "p".repeat(NAME),
            account_id: "é".repeat(ACCOUNT_ID),
            mpn_id: "1".repeat(MPN_ID),
        };
        assert!(check(&at).is_ok());
        let over = pb::CorrectMpnAssociationRequest {
            account_id: "é".repeat(ACCOUNT_ID + 1),
            ..at
        };
        let e = check(&over).unwrap_err();
        assert_eq!(e.code, tonic::Code::InvalidArgument);
        assert_eq!(e.details.field_violations.len(), 1);
        assert_eq!(e.details.field_violations[0].field, "account_id");
        assert_eq!(
            e.details.field_violations[0].description,
            "is longer than 100 characters"
        );
        let chunk = pb::ImportPscExportRequest {
            chunk: vec![0; CHUNK_BYTES + 1],
            ..Default::default()
        };
        assert_eq!(
            check_message(&chunk).unwrap_err().details.field_violations[0].field,
            "chunk"
        );
    }
}
