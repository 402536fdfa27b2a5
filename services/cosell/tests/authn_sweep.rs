//! Who may call at all, as one table over every RPC (issue 19's security table, its credential
//! columns): each RPC of the four services' descriptor sets is called on `cosell serve --demo`
//! (which also trusts an OpenID Connect issuer the test runs) with no token, a tampered token,
//! an expired one, one for another audience, one from an issuer nobody trusts, and one that is
//! not signed at all. Every cell is `UNAUTHENTICATED`, except the four public RPCs of
//! `TokenService` (signing in, the token exchange, the service tokens and the signing keys),
//! which answer something else: they never ask for a token.

mod support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cosell_testkit::oidc::TestIssuer;
use cosell_testkit::refusal;
use prost::Message;
use prost_reflect::DynamicMessage;
use support::{Server, raw};

const AUDIENCE: &str = "cosell-sweep";

/// The RPCs that take no token.
const PUBLIC: &[&str] = &[
    "cosell.identity.v1.TokenService/SignInWithEmail",
    "cosell.identity.v1.TokenService/ExchangeToken",
    "cosell.identity.v1.TokenService/IssueServiceToken",
    "cosell.identity.v1.TokenService/ListSigningKeys",
];

/// `token` with its claims replaced by `edit`'s, the signature kept: a forgery.
fn tampered(token: &str, edit: impl Fn(&mut serde_json::Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut claims);
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_but_the_public_ones_refuses_a_caller_it_cannot_trust() {
    let issuer = TestIssuer::start(AUDIENCE).await;
    let stranger = TestIssuer::start(AUDIENCE).await;
    let server = Server::start_with(&[
        "--demo",
        "--oidc-issuer",
        &issuer.issuer,
        "--oidc-audience",
        AUDIENCE,
    ])
    .await;
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let ada = "ada.admin@contoso.com";
    let now = chrono::Utc::now().timestamp();
    let valid = issuer.token(ada);
    let mut expired = issuer.claims(ada);
    expired["iat"] = (now - 7200).into();
    expired["exp"] = (now - 3600).into();
    let mut elsewhere = issuer.claims(ada);
    elsewhere["aud"] = "another-service".into();
    let credentials: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        (
            "tampered (another user's email, the signature kept)",
            Some(tampered(&valid, |c| {
                c["email"] = "oli.operator@platform.example".into()
            })),
        ),
        ("expired an hour ago", Some(issuer.rsa.sign(&expired))),
        ("for another audience", Some(issuer.rsa.sign(&elsewhere))),
        ("from an issuer nobody trusts", Some(stranger.token(ada))),
        (
            "not signed (alg none)",
            Some(TestIssuer::unsigned(&issuer.claims(ada))),
        ),
    ];

    // The valid token is let in (so that a refusal below is the credential's doing).
    let pool = raw::pool();
    let get_caller = pool
        .get_service_by_name("cosell.identity.v1.AccessService")
        .and_then(|s| s.methods().find(|m| m.name() == "GetCaller"))
        .unwrap();
    let empty =
        |m: &prost_reflect::MethodDescriptor| DynamicMessage::new(m.input()).encode_to_vec();
    raw::call(
        &channel,
        &get_caller,
        Some(&valid),
        empty(&get_caller),
        Duration::from_secs(10),
    )
    .await
    .expect("the issuer's valid token is accepted");

    let mut cells = 0;
    let mut wrong = Vec::new();
    let mut public_seen = Vec::new();
    for service in pool.services() {
        for method in service.methods() {
            let name = format!("{}/{}", service.full_name(), method.name());
            let public = PUBLIC.contains(&name.as_str());
            if public {
                public_seen.push(name.clone());
            }
            for (what, token) in &credentials {
                cells += 1;
                let answer = raw::call(
                    &channel,
                    &method,
                    token.as_deref(),
                    empty(&method),
                    Duration::from_secs(10),
                )
                .await;
                let code = answer.as_ref().err().map(|s| s.code());
                let ok = if public {
                    code != Some(tonic::Code::Unauthenticated)
                        && code != Some(tonic::Code::Internal)
                } else {
                    code == Some(tonic::Code::Unauthenticated)
                        && answer
                            .as_ref()
                            .err()
                            .is_some_and(|s| !refusal(s).reason.is_empty())
                };
                if !ok {
                    wrong.push(format!("{name} ({what}): {answer:?}"));
                }
            }
        }
    }
    eprintln!("{cells} cells checked");
    assert_eq!(public_seen.len(), PUBLIC.len(), "{public_seen:?}");
    assert!(cells >= 6 * 50, "only {cells} cells");
    assert!(
        wrong.is_empty(),
        "{} cells were wrong:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(30)].join("\n")
    );
}
