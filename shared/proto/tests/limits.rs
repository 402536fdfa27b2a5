//! The generated limit checks, against what the proto comments document: every documented limit
//! holds at its value and refuses one more, whatever the field; nested fields are named by their
//! path; responses are never checked.

use cosell_proto::limits::{Bounded, FieldLimit, Path, Violation, Wire};
use cosell_proto::{deals, directory, identity, migration};
use proptest::prelude::*;

/// Every package's table and decoder, as `build.rs` generated them.
type Decoder = fn(&str, &[u8]) -> Option<Result<Vec<Violation>, prost::DecodeError>>;
const PACKAGES: &[(&str, &[FieldLimit], Decoder)] = &[
    (
        "cosell.identity.v1",
        identity::FIELD_LIMITS,
        identity::check_encoded,
    ),
    (
        "cosell.directory.v1",
        directory::FIELD_LIMITS,
        directory::check_encoded,
    ),
    ("cosell.deals.v1", deals::FIELD_LIMITS, deals::check_encoded),
    (
        "cosell.migration.v1",
        migration::FIELD_LIMITS,
        migration::check_encoded,
    ),
];

fn check<M: Bounded>(m: &M) -> Vec<Violation> {
    let mut out = Vec::new();
    m.check(&Path::ROOT, &mut out);
    out
}

// --- messages made by hand: one field, nothing else ---

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn key(number: u32, wire_type: u8, out: &mut Vec<u8>) {
    varint(u64::from(number) << 3 | u64::from(wire_type), out);
}

/// One occurrence of the field holding `value` (text and bytes) or its empty/zero value.
fn occurrence(f: &FieldLimit, value: &[u8], out: &mut Vec<u8>) {
    match f.wire {
        Wire::Text | Wire::Bytes | Wire::Message => {
            key(f.number, 2, out);
            varint(value.len() as u64, out);
            out.extend_from_slice(value);
        }
        Wire::Varint => {
            key(f.number, 0, out);
            varint(0, out);
        }
        Wire::Fixed64 => {
            key(f.number, 1, out);
            out.extend_from_slice(&[0; 8]);
        }
        Wire::Fixed32 => {
            key(f.number, 5, out);
            out.extend_from_slice(&[0; 4]);
        }
    }
}

/// Text of `n` characters, two bytes each when `wide`: a character limit counts characters, not
/// the bytes of their UTF-8.
fn text(n: usize, wide: bool) -> Vec<u8> {
    if wide { "é" } else { "x" }.repeat(n).into_bytes()
}

/// The violations of a message of `f`'s type holding `count` occurrences of `value`.
fn violations(decode: Decoder, f: &FieldLimit, count: usize, value: &[u8]) -> Vec<Violation> {
    let mut bytes = Vec::new();
    for _ in 0..count {
        occurrence(f, value, &mut bytes);
    }
    decode(f.message, &bytes)
        .unwrap_or_else(|| panic!("{}: no decoder for a request message", f.message))
        .unwrap_or_else(|e| panic!("{}.{}: {e}", f.message, f.field))
}

#[test]
fn every_documented_limit_holds_at_its_value_and_refuses_one_more() {
    let mut checked = 0;
    for (_, fields, decode) in PACKAGES {
        for f in fields.iter() {
            let name = format!("{}.{}", f.message, f.field);
            let element = if f.repeated {
                format!("{}[0]", f.field)
            } else {
                f.field.to_owned()
            };
            if let Some(max) = f.chars {
                for wide in [false, true] {
                    assert_eq!(
                        violations(*decode, f, 1, &text(max, wide)),
                        vec![],
                        "{name}: {max} characters"
                    );
                    let over = violations(*decode, f, 1, &text(max + 1, wide));
                    assert_eq!(over.len(), 1, "{name}: {} characters: {over:?}", max + 1);
                    assert_eq!(over[0].field, element, "{name}");
                    assert_eq!(over[0].reason, "FIELD_TOO_LONG", "{name}");
                }
                checked += 1;
            }
            if let Some(max) = f.bytes {
                assert_eq!(violations(*decode, f, 1, &text(max, false)), vec![]);
                let over = violations(*decode, f, 1, &text(max + 1, false));
                assert_eq!(over.len(), 1, "{name}: {} bytes: {over:?}", max + 1);
                assert_eq!(over[0].field, element, "{name}");
                checked += 1;
            }
            if let Some(max) = f.words {
                let words = |n: usize| vec!["w"; n].join(" ").into_bytes();
                let reasons = |found: Vec<Violation>| -> Vec<(String, &str)> {
                    found.into_iter().map(|v| (v.field, v.reason)).collect()
                };
                assert_eq!(reasons(violations(*decode, f, 1, &words(max))), vec![]);
                assert_eq!(
                    reasons(violations(*decode, f, 1, &words(max + 1))),
                    vec![(element.clone(), "TOO_MANY_WORDS")],
                    "{name}: {} words",
                    max + 1
                );
                checked += 1;
            }
            if let Some(max) = f.items {
                assert_eq!(
                    violations(*decode, f, max, b""),
                    vec![],
                    "{name}: {max} items"
                );
                let over = violations(*decode, f, max + 1, b"");
                assert_eq!(over.len(), 1, "{name}: {} items: {over:?}", max + 1);
                assert_eq!(over[0].field, f.field, "{name}");
                assert_eq!(over[0].reason, "TOO_MANY_ITEMS", "{name}");
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no documented limit was found");
}

// --- nesting, through real generated types ---

fn contact(email: &str) -> deals::Contact {
    deals::Contact {
        first_name: "Rita".into(),
        last_name: "Referrals".into(),
        email: email.into(),
        phone: "+1 425 555 0101".into(),
    }
}

#[test]
fn a_nested_field_is_named_by_its_path() {
    let mut team: Vec<deals::Contact> = (0..5).map(|_| contact("r@contoso.com")).collect();
    team[3] = contact(&format!("{}@contoso.com", "r".repeat(300)));
    let request = deals::CreateReferralRequest {
        referral: Some(deals::Referral {
            team,
            ..Default::default()
        }),
        ..Default::default()
    };
    let found = check(&request);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].field, "referral.team[3].email");
    assert_eq!(
        found[0].description,
        "is 312 characters long; at most 200 are accepted"
    );
}

#[test]
fn every_field_over_its_limit_is_reported() {
    let request = deals::ListReferralsRequest {
        customer_name: "c".repeat(201),
        team_member_email: "e".repeat(255),
        ..Default::default()
    };
    let fields: Vec<String> = check(&request).into_iter().map(|v| v.field).collect();
    assert_eq!(fields, ["customer_name", "team_member_email"]);
}

#[test]
fn too_many_items_are_counted_not_each_looked_at() {
    let request = deals::UpdateReferralRequest {
        referral: Some(deals::Referral {
            solutions: vec![
                deals::ReferralSolution {
                    solution: "s".repeat(1000),
                    ..Default::default()
                };
                51
            ],
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["solutions".into()],
        }),
    };
    let found = check(&request);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].field, "referral.solutions");
    assert_eq!(
        found[0].description,
        "has 51 items; at most 50 are accepted"
    );
}

#[test]
fn responses_are_never_checked() {
    // What a server may answer is its own business: a client decoding it refuses nothing, even
    // when it holds a message whose fields are bounded in requests.
    let response = deals::GetReferralResponse {
        referral: Some(deals::Referral {
            notes: "n".repeat(100_000),
            team: vec![contact(&"e".repeat(1000)); 1000],
            ..Default::default()
        }),
    };
    assert_eq!(check(&response), vec![]);
}

proptest! {
    /// The query of the catalog search, at lengths around its limit, in any script.
    #[test]
    fn a_query_is_refused_exactly_when_over_its_length(
        query in proptest::collection::vec(any::<char>(), 190..=210)
    ) {
        let query: String = query.into_iter().collect();
        let found = check(&deals::ListSolutionsRequest { query: query.clone(), ..Default::default() });
        let too_long: Vec<&Violation> =
            found.iter().filter(|v| v.reason == "FIELD_TOO_LONG").collect();
        let n = query.chars().count();
        if n <= 200 {
            prop_assert!(too_long.is_empty(), "{} characters: {:?}", n, found);
        } else {
            prop_assert_eq!(too_long.len(), 1);
            prop_assert_eq!(&too_long[0].field, "query");
            prop_assert_eq!(
                &too_long[0].description,
                &format!("is {n} characters long; at most 200 are accepted")
            );
        }
    }

    /// The query of the catalog search, with word counts around its limit, the words in any
    /// script and apart by anything that is neither a letter nor a digit.
    #[test]
    fn a_query_is_refused_exactly_when_over_its_words(
        words in proptest::collection::vec("[\\p{L}\\p{Nd}]{1,6}", 5..15),
        gap in "[ ,.'/()-]{1,3}",
    ) {
        let query = format!("{gap}{}{gap}", words.join(&gap));
        let found = check(&deals::ListSolutionsRequest { query, ..Default::default() });
        let too_many: Vec<&Violation> =
            found.iter().filter(|v| v.reason == "TOO_MANY_WORDS").collect();
        prop_assert_eq!(too_many.len(), usize::from(words.len() > 10), "{:?}", found);
    }

    /// A contact's email anywhere in a referral's team, at lengths around its limit.
    #[test]
    fn a_team_email_is_refused_exactly_when_over_its_limit(
        at in 0usize..50,
        len in 195usize..205,
        wide: bool,
    ) {
        let email: String = std::iter::repeat_n(if wide { 'ü' } else { 'u' }, len).collect();
        let mut team = vec![contact("r@contoso.com"); 50];
        team[at] = contact(&email);
        let request = deals::CreateInboundReferralRequest {
            referral: Some(deals::Referral { team, ..Default::default() }),
            ..Default::default()
        };
        let found = check(&request);
        if len <= 200 {
            prop_assert!(found.is_empty(), "{:?}", found);
        } else {
            prop_assert_eq!(found.len(), 1);
            prop_assert_eq!(&found[0].field, &format!("referral.team[{at}].email"));
        }
    }

    /// The number of names of a batch read of the directory, around its limit.
    #[test]
    fn a_batch_is_refused_exactly_when_over_its_limit(n in 990usize..1010) {
        let request = directory::BatchGetEntitiesRequest {
            names: vec!["entities/X".into(); n],
        };
        let found = check(&request);
        prop_assert_eq!(found.len(), usize::from(n > 1000));
    }
}

// --- every request field is bounded ---

/// Packages whose request fields are not all documented yet, and so not all bounded. Only for
/// work in progress elsewhere: remove a package as soon as its comments carry its limits.
const PACKAGES_NOT_YET_BOUNDED: &[&str] = &[];

#[test]
fn every_request_field_documents_its_limit() {
    let mut missing = Vec::new();
    let mut seen = 0;
    for (package, fields, _) in PACKAGES {
        if PACKAGES_NOT_YET_BOUNDED.contains(package) {
            continue;
        }
        for f in fields.iter() {
            seen += 1;
            if !f.documented() {
                let wanted = match (f.repeated, f.wire) {
                    (true, Wire::Text) => "`at most N items, each at most M characters`",
                    (true, Wire::Bytes) => "`at most N items, each at most M bytes`",
                    (true, _) => "`at most N items`",
                    (false, Wire::Bytes) => "`at most N bytes`",
                    (false, _) => "`at most N characters`",
                };
                missing.push(format!("{}.{}: {wanted}", f.message, f.field));
            }
        }
    }
    assert!(seen > 100, "only {seen} request fields found");
    assert!(
        missing.is_empty(),
        "request fields without a documented limit (write it in the field's comment):\n{}",
        missing.join("\n")
    );
}
