//! Email rules every service shares: the shape of an address, and which domains are consumer
//! (non-work) providers (rule I1: never a user; the migration reports such PSC users instead of
//! moving them).

/// Consumer (non-work) email providers: never a user (rule I1). Matched on the domain's first
/// label for providers that own many country domains (`yahoo.co.uk`, `hotmail.fr`, ...) when
/// the rest is such a country or generic suffix (so `outlook.contoso.com`, a company's own
/// subdomain, is not one), and exactly for the rest.
const CONSUMER_PROVIDERS: &[&str] = &[
    "outlook",
    "hotmail",
    "live",
    "msn",
    "gmail",
    "googlemail",
    "yahoo",
    "ymail",
    "aol",
    "gmx",
    "yandex",
    "protonmail",
];
const CONSUMER_DOMAINS: &[&str] = &[
    "icloud.com",
    "me.com",
    "mac.com",
    "proton.me",
    "pm.me",
    "mail.com",
    "zoho.com",
    "qq.com",
    "163.com",
    "126.com",
    "web.de",
    "t-online.de",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "libero.it",
    "mail.ru",
    "rambler.ru",
    "rediffmail.com",
    "tutanota.com",
    "fastmail.com",
    "hey.com",
    "comcast.net",
    "verizon.net",
    "att.net",
    "sbcglobal.net",
    "bigpond.com",
];

/// Whether `domain` (lower case) belongs to a consumer email provider.
pub fn is_consumer_domain(domain: &str) -> bool {
    if CONSUMER_DOMAINS.contains(&domain) {
        return true;
    }
    let Some((first, rest)) = domain.split_once('.') else {
        return false;
    };
    CONSUMER_PROVIDERS.contains(&first) && is_public_suffix_like(rest)
}

/// `com`, `fr`, `co.uk`, `com.au`: what follows a provider's name in its country domains.
fn is_public_suffix_like(rest: &str) -> bool {
    match rest.split_once('.') {
        None => true,
        Some((second, tld)) => {
            !tld.contains('.')
                && tld.len() == 2
                && ["co", "com", "net", "org", "ne", "or"].contains(&second)
        }
    }
}

/// `local@domain.tld`, without spaces: what every service takes as an email address.
pub fn is_address(email: &str) -> bool {
    !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_providers_in_every_country_but_not_company_subdomains() {
        for d in [
            "gmail.com",
            "outlook.com",
            "hotmail.fr",
            "yahoo.co.uk",
            "live.com.au",
            "icloud.com",
        ] {
            assert!(is_consumer_domain(d), "{d}");
        }
        for d in [
            "contoso.com",
            "outlook.contoso.com",
            "live.events.example",
            "gmail.example.com",
            "yahoo.com.example",
        ] {
            assert!(!is_consumer_domain(d), "{d}");
        }
    }
}
