//! Page sizes and opaque page tokens for List RPCs (AIP-158).
//!
//! A token carries the sort key of the last item returned (keyset paging, so a page never skips
//! or repeats an item while others are inserted) and a fingerprint of the query it belongs to, so
//! that a token reused with other filters is refused instead of answering nonsense.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Page size when the request leaves it at 0.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Larger requests are served this many.
pub const MAX_PAGE_SIZE: u64 = 1000;

/// Normalizes a request's `page_size`; a negative one is an error.
pub fn page_size(requested: i32) -> Result<u64, String> {
    match requested {
        n if n < 0 => Err(format!("must not be negative (got {n})")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as u64).min(MAX_PAGE_SIZE)),
    }
}

#[derive(Serialize, Deserialize)]
struct Token {
    /// Format version.
    v: u8,
    /// Sort key of the last item of the previous page.
    k: String,
    /// Fingerprint of the query.
    q: String,
}

fn fingerprint(query: &str) -> String {
    let digest = Sha256::digest(query.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..9])
}

/// Makes the token for the page after `last_key`. `query` is every filter of the request in a
/// canonical text form.
pub fn encode(last_key: &str, query: &str) -> String {
    let token = Token {
        v: 1,
        k: last_key.to_owned(),
        q: fingerprint(query),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// Reads a request's `page_token`: `None` for the first page, else the last key of the
/// previous page.
pub fn decode(token: &str, query: &str) -> Result<Option<String>, String> {
    if token.is_empty() {
        return Ok(None);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| "is not a page token returned by this service".to_string())?;
    let token: Token = serde_json::from_slice(&bytes)
        .map_err(|_| "is not a page token returned by this service".to_string())?;
    if token.v != 1 {
        return Err("comes from an incompatible version of this service".into());
    }
    if token.q != fingerprint(query) {
        return Err(
            "belongs to a request with other filters; keep them unchanged while paging".into(),
        );
    }
    Ok(Some(token.k))
}

/// Cuts a page out of the items fetched after the cursor (fetch `size + 1` to know whether more
/// follow): the page, and the token of the next one (empty on the last page).
pub fn cut<T>(
    mut items: Vec<T>,
    size: u64,
    query: &str,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, String) {
    let more = items.len() as u64 > size;
    items.truncate(size as usize);
    let next = match (more, items.last()) {
        (true, Some(last)) => encode(&key(last), query),
        _ => String::new(),
    };
    (items, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_filter_check() {
        let t = encode("ada@contoso.com", "parent=organizations/1");
        assert_eq!(
            decode(&t, "parent=organizations/1").unwrap().as_deref(),
            Some("ada@contoso.com")
        );
        assert!(decode(&t, "parent=organizations/2").is_err());
        assert_eq!(decode("", "x").unwrap(), None);
    }

    #[test]
    fn cut_pages() {
        let (page, next) = cut(vec![1, 2, 3], 2, "q", |n| n.to_string());
        assert_eq!(page, vec![1, 2]);
        assert_eq!(decode(&next, "q").unwrap().as_deref(), Some("2"));
        let (page, next) = cut(vec![1, 2], 2, "q", |n| n.to_string());
        assert_eq!(page, vec![1, 2]);
        assert!(next.is_empty());
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(5), Ok(5));
        assert_eq!(page_size(5000), Ok(MAX_PAGE_SIZE));
        assert!(page_size(-1).is_err());
    }

    proptest! {
        #[test]
        fn garbage_tokens_are_refused_not_panics(s in ".*") {
            let _ = decode(&s, "q");
        }

        #[test]
        fn any_key_round_trips(k in ".*", q in ".*") {
            prop_assert_eq!(decode(&encode(&k, &q), &q).unwrap(), Some(k));
        }
    }
}
