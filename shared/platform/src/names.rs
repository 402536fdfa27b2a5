//! Resource names (`organizations/{id}`, `organizations/{id}/users/{id}`, ...) parsed into ids,
//! with a field violation naming the request field when one is malformed; and MPN IDs, which
//! every service names things by.

use uuid::Uuid;

/// Parses `{collection}/{uuid}`.
pub fn parse_one(name: &str, collection: &str) -> Result<Uuid, String> {
    if name.is_empty() {
        return Err(format!("is required (`{collection}/{{id}}`)"));
    }
    name.strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| format!("must be `{collection}/{{id}}` with a UUID id (got `{name}`)"))
}

/// Parses `{parent_collection}/{uuid}/{collection}/{uuid}`.
pub fn parse_two(
    name: &str,
    parent_collection: &str,
    collection: &str,
) -> Result<(Uuid, Uuid), String> {
    let shape = format!("`{parent_collection}/{{id}}/{collection}/{{id}}`");
    if name.is_empty() {
        return Err(format!("is required ({shape})"));
    }
    let bad = || format!("must be {shape} with UUID ids (got `{name}`)");
    let rest = name
        .strip_prefix(parent_collection)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(bad)?;
    let (parent, rest) = rest.split_once('/').ok_or_else(bad)?;
    let child = rest
        .strip_prefix(collection)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(bad)?;
    Ok((
        Uuid::parse_str(parent).map_err(|_| bad())?,
        Uuid::parse_str(child).map_err(|_| bad())?,
    ))
}

/// An MPN ID: 6 or 7 digits (surrounding spaces ignored).
pub fn mpn_id(input: &str) -> Result<String, String> {
    let m = input.trim();
    if m.is_empty() {
        return Err("is required".into());
    }
    if !(6..=7).contains(&m.len()) || !m.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("`{input}` is not an MPN ID (6 or 7 digits)"));
    }
    Ok(m.to_owned())
}

/// `organizations/{id}`.
pub fn organization(id: Uuid) -> String {
    format!("organizations/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert_eq!(
            parse_one(&format!("organizations/{a}"), "organizations"),
            Ok(a)
        );
        assert!(parse_one("organizations/", "organizations").is_err());
        assert!(parse_one(&format!("users/{a}"), "organizations").is_err());
        assert_eq!(
            parse_two(
                &format!("organizations/{a}/users/{b}"),
                "organizations",
                "users"
            ),
            Ok((a, b))
        );
        assert!(
            parse_two(
                &format!("organizations/{a}/roles/{b}"),
                "organizations",
                "users"
            )
            .is_err()
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in ".*") {
            let _ = parse_one(&s, "organizations");
            let _ = parse_two(&s, "organizations", "users");
        }
    }
}
