//! Parsers for the identity service's inputs: each returns the normalized value or a reason a
//! person can act on (the caller adds the field name).

pub use cosell_platform::email::is_consumer_domain;

/// A domain name: lower case labels of letters, digits and hyphens, at least two labels.
pub fn domain(input: &str) -> Result<String, String> {
    let d = input.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() {
        return Err("is required".into());
    }
    if d.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "`{input}` is not a domain name (it needs a dot, like `contoso.com`)"
        ));
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("`{input}` is not a domain name"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!("`{input}` is not a domain name"));
    }
    Ok(d)
}

/// A work email address, lower case. Returns the address and its domain.
pub fn email(input: &str) -> Result<(String, String), String> {
    let e = input.trim();
    if e.is_empty() {
        return Err("is required".into());
    }
    if e.len() > 254 {
        return Err("is longer than 254 characters".into());
    }
    let (local, dom) = e
        .rsplit_once('@')
        .ok_or_else(|| format!("`{input}` is not an email address (no @)"))?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    if !local_ok {
        return Err(format!("`{input}` is not an email address"));
    }
    let dom = domain(dom).map_err(|_| format!("`{input}` is not an email address (bad domain)"))?;
    Ok((format!("{}@{}", local.to_ascii_lowercase(), dom), dom))
}

/// A work email: as [`email`], and not at a consumer provider (rule I1).
pub fn work_email(input: &str) -> Result<(String, String), String> {
    let (email, domain) = email(input)?;
    if is_consumer_domain(&domain) {
        return Err(format!(
            "`{domain}` is a consumer email provider; only work accounts can be users (use the \
             address of your company's verified domain)"
        ));
    }
    Ok((email, domain))
}

pub use cosell_platform::names::mpn_id;

/// An ISO 3166-1 alpha-2 country code, upper case.
pub fn country_code(input: &str) -> Result<String, String> {
    let c = input.trim().to_ascii_uppercase();
    if c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
        return Err(format!(
            "`{input}` is not an ISO 3166-1 alpha-2 country code (like `US`)"
        ));
    }
    Ok(c)
}

/// Free text of at most `max` characters, trimmed; `required` refuses empty text.
pub fn text(input: &str, max: usize, required: bool) -> Result<String, String> {
    let t = input.trim();
    if required && t.is_empty() {
        return Err("is required".into());
    }
    if t.chars().count() > max {
        return Err(format!("is longer than {max} characters"));
    }
    if t.chars().any(|c| c.is_control()) {
        return Err("contains control characters".into());
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails() {
        assert_eq!(
            email("Ada.Admin@Contoso.COM"),
            Ok(("ada.admin@contoso.com".into(), "contoso.com".into()))
        );
        assert!(email("not-an-email").is_err());
        assert!(email("a@b").is_err());
        assert!(email("@contoso.com").is_err());
        assert!(email("a..b@contoso.com").is_err());
        assert!(email("a b@contoso.com").is_err());
    }

    #[test]
    fn consumer_domains_are_refused() {
        for e in [
            "x@gmail.com",
            "x@outlook.com",
            "x@hotmail.co.uk",
            "x@live.com",
            "x@yahoo.fr",
            "x@icloud.com",
            "x@aol.com",
            "x@proton.me",
        ] {
            let err = work_email(e).unwrap_err();
            assert!(err.contains("consumer"), "{e}: {err}");
        }
        assert!(work_email("ada@contoso.com").is_ok());
        assert!(work_email("pdm@microsoft.com").is_ok());
    }

    #[test]
    fn mpn_ids() {
        assert_eq!(mpn_id("4000001"), Ok("4000001".into()));
        assert!(mpn_id("123456").is_ok());
        assert!(mpn_id("12345").is_err());
        assert!(mpn_id("12345678").is_err());
        assert!(mpn_id("40000a1").is_err());
        assert!(mpn_id("").is_err());
    }

    #[test]
    fn countries() {
        assert_eq!(country_code("de"), Ok("DE".into()));
        assert!(country_code("DEU").is_err());
        assert!(country_code("1A").is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = email(&s);
            let _ = work_email(&s);
            let _ = domain(&s);
            let _ = mpn_id(&s);
            let _ = country_code(&s);
            let _ = text(&s, 10, true);
        }

        #[test]
        fn valid_emails_normalize_to_lower_case(local in "[a-zA-Z0-9._%+-]{1,20}", d in "[a-z]{2,10}\\.(com|de|io)") {
            prop_assume!(!local.starts_with('.') && !local.ends_with('.') && !local.contains(".."));
            let (e, dom) = email(&format!("{local}@{d}")).unwrap();
            prop_assert_eq!(e, format!("{}@{}", local.to_ascii_lowercase(), d));
            prop_assert_eq!(dom, d);
        }
    }
}
