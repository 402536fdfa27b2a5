//! Which web pages may call the server from a browser: the origins given with `--cors-origin`
//! (none by default, so a page elsewhere is refused by its browser). Applied only when some are
//! given, so that gRPC callers pay nothing for it. Allowed: POST (every protocol's calls), the
//! headers the protocols send (`authorization`, gRPC-Web's and Connect's own), and the gRPC
//! status headers exposed for gRPC-Web clients to read.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may keep a preflight's answer.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// `text` as an origin (`https://crm.example.com`, `http://127.0.0.1:8080`): a scheme, a host,
/// an optional port and nothing after, as browsers send it.
pub fn origin(text: &str) -> Result<HeaderValue, String> {
    let bad = |why: &str| format!("--cors-origin {text:?}: {why} (e.g. https://crm.example.com)");
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| bad("must start with https:// or http://"))?;
    if scheme != "https" && scheme != "http" {
        return Err(bad("must start with https:// or http://"));
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '*', ' ']) {
        return Err(bad(
            "must be a scheme and a host (and a port), with no path and no wildcard",
        ));
    }
    HeaderValue::from_str(text).map_err(|_| bad("is not a valid header value"))
}

/// The layer that answers preflights and marks the answers of the allowed `origins`.
pub fn layer(origins: Vec<HeaderValue>) -> CorsLayer {
    let named = |names: &[&'static str]| -> Vec<HeaderName> {
        names.iter().map(|n| HeaderName::from_static(n)).collect()
    };
    let mut allowed = named(&[
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "connect-protocol-version",
        "connect-timeout-ms",
    ]);
    allowed.extend([header::AUTHORIZATION, header::CONTENT_TYPE]);
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST])
        .allow_headers(allowed)
        .expose_headers(named(&[
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
        ]))
        .max_age(MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_a_scheme_a_host_and_a_port() {
        for good in ["https://crm.example.com", "http://127.0.0.1:8080"] {
            assert_eq!(origin(good).unwrap(), good);
        }
        for (bad, why) in [
            ("crm.example.com", "https://"),
            ("ftp://crm.example.com", "https://"),
            ("https://crm.example.com/", "no path"),
            ("https://*.example.com", "wildcard"),
            ("https://", "a host"),
        ] {
            let e = origin(bad).unwrap_err();
            assert!(e.contains(why) && e.contains("--cors-origin"), "{bad}: {e}");
        }
    }
}
