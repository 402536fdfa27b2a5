//! Sign-in through an external OpenID Connect issuer: an issuer made by the test (discovery and
//! JWKS over HTTP on 127.0.0.1, RS256 and ES256 keys), its tokens accepted as bearer tokens and
//! exchanged for ours, and refused, each bad case on its own, with its reason.

use cosell_identity::oidc::OidcConfig;
use cosell_proto::identity as pb;
use cosell_testkit::authed;
use cosell_testkit::oidc::{SigningKey, TestIssuer};
use tonic::Code;
use tonic_types::StatusExt;

use crate::harness::{Harness, expect_err};

const AUDIENCE: &str = "cosell-test-client";

async fn with_issuer() -> (Harness, TestIssuer) {
    let issuer = TestIssuer::start(AUDIENCE).await;
    let config = OidcConfig {
        issuer: issuer.issuer.clone(),
        audience: AUDIENCE.into(),
    };
    let h = Harness::start_with(|c| {
        c.oidc = Some(config);
        c.dev_auth = false;
    })
    .await;
    (h, issuer)
}

async fn caller(h: &Harness, token: &str) -> Result<pb::GetCallerResponse, tonic::Status> {
    h.access()
        .get_caller(authed(token, pb::GetCallerRequest {}))
        .await
        .map(|r| r.into_inner())
}

async fn exchange(h: &Harness, token: &str) -> Result<pb::ExchangeTokenResponse, tonic::Status> {
    h.tokens()
        .exchange_token(pb::ExchangeTokenRequest {
            subject_token: token.into(),
            organization: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

/// Both the bearer path and the exchange refuse `token` with `reason`.
async fn refused(h: &Harness, token: &str, reason: &str) {
    expect_err(caller(h, token).await, Code::Unauthenticated, reason);
    expect_err(exchange(h, token).await, Code::Unauthenticated, reason);
}

#[tokio::test]
async fn rs256_and_es256_tokens_sign_an_existing_user_in() {
    let (h, issuer) = with_issuer().await;
    let claims = issuer.claims("Ada.Admin@contoso.com");
    for token in [issuer.rsa.sign(&claims), issuer.ec.sign(&claims)] {
        let me = caller(&h, &token)
            .await
            .expect("the issuer's token is a bearer token");
        assert_eq!(me.user.as_ref().unwrap().email, "ada.admin@contoso.com");
        assert!(
            me.grants
                .iter()
                .any(|g| g.role == pb::Role::AccountAdmin as i32)
        );
        let ours = exchange(&h, &token).await.expect("exchanged");
        assert_eq!(ours.user, me.principal);
        let again = caller(&h, &ours.access_token)
            .await
            .expect("our token works");
        assert_eq!(again.principal, me.principal);
        assert!(
            ours.expire_time.unwrap().seconds <= claims["exp"].as_i64().unwrap(),
            "never outlives the issuer's token"
        );
    }
}

#[tokio::test]
async fn preferred_username_or_upn_name_the_user_without_an_email_claim() {
    let (h, issuer) = with_issuer().await;
    for claim in ["preferred_username", "upn"] {
        let mut claims = issuer.claims("x");
        claims.as_object_mut().unwrap().remove("email");
        claims[claim] = "rita.referrals@contoso.com".into();
        let me = caller(&h, &issuer.rsa.sign(&claims)).await.expect(claim);
        assert_eq!(
            me.user.as_ref().unwrap().email,
            "rita.referrals@contoso.com"
        );
    }
    let mut claims = issuer.claims("x");
    claims.as_object_mut().unwrap().remove("email");
    refused(&h, &issuer.rsa.sign(&claims), "NO_EMAIL_CLAIM").await;
}

#[tokio::test]
async fn a_token_of_another_issuer_is_refused() {
    let (h, issuer) = with_issuer().await;
    let mut claims = issuer.claims("ada.admin@contoso.com");
    claims["iss"] = "https://evil.example".into();
    refused(&h, &issuer.rsa.sign(&claims), "WRONG_ISSUER").await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let (h, issuer) = with_issuer().await;
    let mut claims = issuer.claims("ada.admin@contoso.com");
    claims["aud"] = "another-app".into();
    refused(&h, &issuer.rsa.sign(&claims), "WRONG_AUDIENCE").await;
}

#[tokio::test]
async fn a_token_signed_by_a_key_the_issuer_does_not_publish_is_refused() {
    let (h, issuer) = with_issuer().await;
    // Same key id as the published key, another key: the signature does not verify.
    let impostor = SigningKey::p256(&issuer.ec.kid);
    let token = impostor.sign(&issuer.claims("ada.admin@contoso.com"));
    refused(&h, &token, "BAD_SIGNATURE").await;
}

#[tokio::test]
async fn an_unsigned_token_is_refused() {
    let (h, issuer) = with_issuer().await;
    let token = TestIssuer::unsigned(&issuer.claims("ada.admin@contoso.com"));
    refused(&h, &token, "BAD_TOKEN_ALGORITHM").await;
}

#[tokio::test]
async fn a_token_hmacd_with_the_public_key_is_refused() {
    let (h, issuer) = with_issuer().await;
    let token = issuer.hmac_with_public_key(&issuer.claims("ada.admin@contoso.com"));
    refused(&h, &token, "BAD_TOKEN_ALGORITHM").await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let (h, issuer) = with_issuer().await;
    let mut claims = issuer.claims("ada.admin@contoso.com");
    let now = chrono::Utc::now().timestamp();
    claims["iat"] = (now - 7200).into();
    claims["exp"] = (now - 3600).into();
    refused(&h, &issuer.rsa.sign(&claims), "TOKEN_EXPIRED").await;
}

#[tokio::test]
async fn an_unknown_user_is_refused() {
    let (h, issuer) = with_issuer().await;
    refused(&h, &issuer.token("nobody@contoso.com"), "USER_UNKNOWN").await;
}

#[tokio::test]
async fn a_disabled_user_is_refused() {
    let (h, issuer) = with_issuer().await;
    let user = h
        .identity
        .store
        .users_by_email("uma.user@contoso.com")
        .await
        .unwrap()
        .remove(0);
    h.identity
        .store
        .set_user_state(
            user.organization,
            user.id,
            cosell_identity::domain::UserState::Disabled,
        )
        .await
        .unwrap();
    refused(&h, &issuer.token("uma.user@contoso.com"), "USER_DISABLED").await;
}

#[tokio::test]
async fn an_unverified_email_is_refused() {
    let (h, issuer) = with_issuer().await;
    let mut claims = issuer.claims("ada.admin@contoso.com");
    claims["email_verified"] = false.into();
    refused(&h, &issuer.rsa.sign(&claims), "EMAIL_NOT_VERIFIED").await;
}

#[tokio::test]
async fn unknown_key_ids_cost_one_jwks_fetch_for_all_callers() {
    let (h, issuer) = with_issuer().await;
    caller(&h, &issuer.token("ada.admin@contoso.com"))
        .await
        .expect("the first token fetches the keys");
    assert_eq!(issuer.jwks_fetches(), 1);
    let claims = issuer.claims("ada.admin@contoso.com");
    let calls = (0..100).map(|i| {
        let token = SigningKey::p256(&format!("forged-{i}")).sign(&claims);
        let h = &h;
        async move { caller(h, &token).await }
    });
    for r in futures::future::join_all(calls).await {
        expect_err(r, Code::Unauthenticated, "UNKNOWN_SIGNING_KEY");
    }
    assert_eq!(
        issuer.jwks_fetches(),
        1,
        "fetched at most once per 30 s, for everyone together"
    );
}

#[tokio::test]
async fn exchanges_are_rate_limited_per_user() {
    let (h, issuer) = with_issuer().await;
    let mut last = None;
    for i in 0..40 {
        // A new token each time: the bearer path's memory of a token does not hide the limit.
        let mut claims = issuer.claims("rita.referrals@contoso.com");
        claims["jti"] = format!("t{i}").into();
        match exchange(&h, &issuer.rsa.sign(&claims)).await {
            Ok(_) => {}
            Err(s) => {
                last = Some(s);
                break;
            }
        }
    }
    let s = last.expect("a burst of 40 exchanges is limited");
    assert_eq!(s.code(), Code::ResourceExhausted);
    assert!(
        s.get_error_details().retry_info().is_some(),
        "with RetryInfo"
    );
    // Another user is not slowed.
    exchange(&h, &issuer.token("ada.admin@contoso.com"))
        .await
        .expect("another user's exchange");
}

#[tokio::test]
async fn without_an_issuer_tokens_of_others_are_refused_and_exchange_says_why() {
    let h = Harness::start().await;
    let issuer = TestIssuer::start(AUDIENCE).await;
    let token = issuer.token("ada.admin@contoso.com");
    expect_err(
        caller(&h, &token).await,
        Code::Unauthenticated,
        "WRONG_ISSUER",
    );
    expect_err(
        exchange(&h, &token).await,
        Code::FailedPrecondition,
        "OIDC_NOT_CONFIGURED",
    );
}
