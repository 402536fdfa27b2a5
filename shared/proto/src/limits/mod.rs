//! Input limits: the lengths and counts the proto comments document (`at most N characters`,
//! `at most N bytes`, `at most N items`, `at most N words`; see `grammar.rs`), checked on every
//! request message as it is decoded, before any handler sees it.
//!
//! - [`Bounded`]: implemented by `build.rs` for every generated message. Messages reachable from
//!   a request check their documented limits, recursing into message fields; the others (every
//!   response) check nothing, so that a client decoding an answer pays nothing and is never
//!   refused.
//! - [`codec`]: the gRPC codec of every generated client and server (tonic-prost's, plus the
//!   check), and the `INVALID_ARGUMENT` it answers with.
//! - [`FieldLimit`]: what the build read, field by field, for the tests that every request field
//!   is bounded and that each bound is enforced.

pub mod codec;
#[cfg(test)]
mod grammar;

pub use codec::Codec;

/// At most this many violations are reported for one message: enough to fix a request, few
/// enough that the error stays small.
pub const MAX_VIOLATIONS: usize = 20;

/// How many paths a `google.protobuf.FieldMask` in a request may carry (a referral has 13
/// updatable paths), and how long each may be. The one limit not written in a proto comment:
/// the message is Google's.
pub const MAX_MASK_PATHS: usize = 50;
/// See [`MAX_MASK_PATHS`].
pub const MAX_MASK_PATH_CHARS: usize = 200;

/// A message whose fields have documented limits.
pub trait Bounded {
    /// The `ErrorInfo` domain of a refusal: `deals.cosell` for `cosell.deals.v1`.
    const DOMAIN: &'static str = "cosell";

    /// Adds a violation to `out` for each field over its limit, `at` being where this message
    /// is in the request.
    fn check(&self, at: &Path<'_>, out: &mut Vec<Violation>);
}

/// A field over its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field's path in the request, e.g. `referral.team[3].email`.
    pub field: String,
    /// For a person: `is 201 characters long; at most 200 are accepted`.
    pub description: String,
    /// `FIELD_TOO_LONG`, `TOO_MANY_ITEMS` or `TOO_MANY_WORDS`.
    pub reason: &'static str,
}

/// Where a field is in a request: a chain of steps on the stack, made into text only when a
/// violation is reported, so that checking a message that passes allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    step: Step,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Root,
    Field(&'static str),
    Index(usize),
}

impl<'a> Path<'a> {
    /// The request message itself.
    pub const ROOT: Path<'static> = Path {
        parent: None,
        step: Step::Root,
    };

    /// A field of the message at `self`.
    pub fn field(&'a self, name: &'static str) -> Path<'a> {
        Path {
            parent: Some(self),
            step: Step::Field(name),
        }
    }

    /// An element of the repeated field at `self`.
    pub fn index(&'a self, i: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            step: Step::Index(i),
        }
    }

    fn render(&self, out: &mut String) {
        if let Some(parent) = self.parent {
            parent.render(out);
        }
        match self.step {
            Step::Root => {}
            Step::Field(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Step::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        self.render(&mut s);
        f.write_str(&s)
    }
}

fn report(out: &mut Vec<Violation>, at: &Path<'_>, reason: &'static str, description: String) {
    if out.len() < MAX_VIOLATIONS {
        out.push(Violation {
            field: at.to_string(),
            description,
            reason,
        });
    }
}

/// A string of at most `max` Unicode scalar values. The characters are counted only when the
/// UTF-8 length is over `max` (a character is at least one byte), so a string that passes costs
/// one comparison.
#[inline]
pub fn chars(value: &str, max: usize, at: &Path<'_>, out: &mut Vec<Violation>) {
    if value.len() > max {
        let n = value.chars().count();
        if n > max {
            report(
                out,
                at,
                "FIELD_TOO_LONG",
                format!(
                    "is {} characters long; at most {} are accepted",
                    thousands(n),
                    thousands(max)
                ),
            );
        }
    }
}

/// A string (UTF-8) or bytes field of at most `max` bytes.
#[inline]
pub fn bytes(len: usize, max: usize, at: &Path<'_>, out: &mut Vec<Violation>) {
    if len > max {
        report(
            out,
            at,
            "FIELD_TOO_LONG",
            format!(
                "is {} bytes long; at most {} are accepted",
                thousands(len),
                thousands(max)
            ),
        );
    }
}

/// A string of at most `max` words: runs of letters and digits (`char::is_alphanumeric`), the
/// words of a search. Counted only when the string is long enough to hold more (a word and the
/// separator after it take a byte each at least).
#[inline]
pub fn words(value: &str, max: usize, at: &Path<'_>, out: &mut Vec<Violation>) {
    if value.len().div_ceil(2) > max {
        let mut n = 0;
        let mut in_word = false;
        for c in value.chars() {
            let alnum = c.is_alphanumeric();
            if alnum && !in_word {
                n += 1;
            }
            in_word = alnum;
        }
        if n > max {
            report(
                out,
                at,
                "TOO_MANY_WORDS",
                format!(
                    "has {} words; at most {} are accepted",
                    thousands(n),
                    thousands(max)
                ),
            );
        }
    }
}

/// A repeated field of at most `max` elements. `false` when over: its elements are then not
/// looked at (the count is the problem, and they may be many).
#[inline]
pub fn items(len: usize, max: usize, at: &Path<'_>, out: &mut Vec<Violation>) -> bool {
    if len > max {
        report(
            out,
            at,
            "TOO_MANY_ITEMS",
            format!(
                "has {} items; at most {} are accepted",
                thousands(len),
                thousands(max)
            ),
        );
        return false;
    }
    true
}

/// `10000` as `10,000`, as the proto comments write numbers.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Bounded for prost_types::FieldMask {
    fn check(&self, at: &Path<'_>, out: &mut Vec<Violation>) {
        let paths = at.field("paths");
        if items(self.paths.len(), MAX_MASK_PATHS, &paths, out) {
            for (i, p) in self.paths.iter().enumerate() {
                chars(p, MAX_MASK_PATH_CHARS, &paths.index(i), out);
            }
        }
    }
}

impl Bounded for prost_types::Timestamp {
    #[inline]
    fn check(&self, _: &Path<'_>, _: &mut Vec<Violation>) {}
}

/// Checks `bytes` decoded as `M`: what the codec does, for tests that make their messages by
/// hand (see [`FieldLimit`]).
pub fn check_encoded<M: prost::Message + Default + Bounded>(
    bytes: &[u8],
) -> Result<Vec<Violation>, prost::DecodeError> {
    let message = M::decode(bytes)?;
    let mut out = Vec::new();
    message.check(&Path::ROOT, &mut out);
    Ok(out)
}

/// How a field travels on the wire, for tests that encode it by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Strings.
    Text,
    /// Bytes.
    Bytes,
    /// Messages.
    Message,
    /// Enums, integers, booleans.
    Varint,
    /// `fixed64`, `sfixed64`, `double`.
    Fixed64,
    /// `fixed32`, `sfixed32`, `float`.
    Fixed32,
}

/// One string, bytes or repeated field of a message reachable from a request, and the limits
/// its comment documents (none: undocumented, which a test refuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLimit {
    /// The message's full name, e.g. `cosell.deals.v1.Contact`.
    pub message: &'static str,
    /// The field's name.
    pub field: &'static str,
    /// The field's number.
    pub number: u32,
    /// The field's (element's) wire form.
    pub wire: Wire,
    /// Whether the field is repeated.
    pub repeated: bool,
    /// `at most N items`.
    pub items: Option<usize>,
    /// `at most N characters`.
    pub chars: Option<usize>,
    /// `at most N bytes`.
    pub bytes: Option<usize>,
    /// `at most N words`.
    pub words: Option<usize>,
}

impl FieldLimit {
    /// Whether the comment bounds everything about the field that can grow: its count when
    /// repeated, and its (elements') length when text or bytes.
    pub fn documented(&self) -> bool {
        let count = !self.repeated || self.items.is_some();
        let length =
            !matches!(self.wire, Wire::Text | Wire::Bytes) || self.chars.or(self.bytes).is_some();
        count && length
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_as_in_requests() {
        let root = Path::ROOT;
        let referral = root.field("referral");
        let team = referral.field("team");
        let third = team.index(3);
        assert_eq!(third.field("email").to_string(), "referral.team[3].email");
        assert_eq!(root.field("query").to_string(), "query");
        assert_eq!(root.field("names").index(0).to_string(), "names[0]");
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(200), "200");
        assert_eq!(thousands(1024), "1,024");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(2_097_152), "2,097,152");
    }

    #[test]
    fn characters_not_bytes_are_counted() {
        let mut out = Vec::new();
        // 3 characters, 6 bytes.
        chars("äöü", 3, &Path::ROOT.field("name"), &mut out);
        assert!(out.is_empty());
        chars("äöüß", 3, &Path::ROOT.field("name"), &mut out);
        assert_eq!(
            out,
            vec![Violation {
                field: "name".into(),
                description: "is 4 characters long; at most 3 are accepted".into(),
                reason: "FIELD_TOO_LONG",
            }]
        );
    }

    #[test]
    fn words_are_runs_of_letters_and_digits() {
        let count = |text: &str, max: usize| {
            let mut out = Vec::new();
            words(text, max, &Path::ROOT.field("query"), &mut out);
            out
        };
        assert!(count("contoso cloud", 2).is_empty());
        assert!(count("  contoso -- cloud, ", 2).is_empty());
        assert!(count("Ünïted-Data 4000", 3).is_empty());
        let over = count("Ünïted-Data 4000", 2);
        assert_eq!(over.len(), 1);
        assert_eq!(over[0].reason, "TOO_MANY_WORDS");
        assert_eq!(over[0].description, "has 3 words; at most 2 are accepted");
        assert_eq!(count("a b c d e", 4).len(), 1);
    }

    #[test]
    fn violations_are_capped() {
        let mut out = Vec::new();
        for i in 0..100 {
            chars("long", 1, &Path::ROOT.field("names").index(i), &mut out);
        }
        assert_eq!(out.len(), MAX_VIOLATIONS);
    }

    #[test]
    fn field_masks_are_bounded() {
        let mask = |n: usize, len: usize| prost_types::FieldMask {
            paths: vec!["x".repeat(len); n],
        };
        let check = |m: &prost_types::FieldMask| {
            let mut out = Vec::new();
            m.check(&Path::ROOT.field("update_mask"), &mut out);
            out
        };
        assert!(check(&mask(MAX_MASK_PATHS, MAX_MASK_PATH_CHARS)).is_empty());
        let too_many = check(&mask(MAX_MASK_PATHS + 1, 1));
        assert_eq!(too_many.len(), 1);
        assert_eq!(too_many[0].field, "update_mask.paths");
        assert_eq!(too_many[0].reason, "TOO_MANY_ITEMS");
        let too_long = check(&mask(2, MAX_MASK_PATH_CHARS + 1));
        assert_eq!(too_long.len(), 2);
        assert_eq!(too_long[1].field, "update_mask.paths[1]");
    }
}
