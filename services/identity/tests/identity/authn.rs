//! Tokens: missing, malformed, badly signed, expired, for another audience; key rotation; dev
//! sign-in switched off; service principals.

use std::sync::Arc;

use base64::Engine;
use cosell_platform::auth::{AUDIENCE, Claims, ISSUER, RemoteKeys, TokenVerifier};
use cosell_platform::clock::{Clock, ManualClock};
use cosell_proto::identity as pb;
use cosell_testkit::authed;
use tonic::Code;

use crate::harness::{Harness, MIGRATION_SECRET, expect_err};

async fn get_caller(
    h: &Harness,
    token: Option<&str>,
) -> Result<pb::GetCallerResponse, tonic::Status> {
    let req = match token {
        Some(t) => authed(t, pb::GetCallerRequest {}),
        None => tonic::Request::new(pb::GetCallerRequest {}),
    };
    h.access().get_caller(req).await.map(|r| r.into_inner())
}

fn claims_for(sub: &str, exp_offset: i64, aud: &str) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        iss: ISSUER.into(),
        aud: aud.into(),
        sub: sub.into(),
        email: None,
        iat: now,
        exp: now + exp_offset,
        jti: uuid::Uuid::new_v4().to_string(),
    }
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated() {
    let h = Harness::start().await;
    let ada = h.token("ada.admin@contoso.com").await;
    let me = get_caller(&h, Some(&ada)).await.unwrap().principal;

    expect_err(
        get_caller(&h, None).await,
        Code::Unauthenticated,
        "MISSING_TOKEN",
    );
    expect_err(
        get_caller(&h, Some("not-a-jwt")).await,
        Code::Unauthenticated,
        "MALFORMED_TOKEN",
    );

    // Expired an hour ago, signed with the real key.
    let expired = h
        .identity
        .keys
        .sign(&claims_for(&me, -3600, AUDIENCE))
        .await
        .unwrap();
    let s = expect_err(
        get_caller(&h, Some(&expired)).await,
        Code::Unauthenticated,
        "TOKEN_EXPIRED",
    );
    assert!(s.message().contains("expired"));

    // Another audience.
    let foreign = h
        .identity
        .keys
        .sign(&claims_for(&me, 600, "someone-else"))
        .await
        .unwrap();
    expect_err(
        get_caller(&h, Some(&foreign)).await,
        Code::Unauthenticated,
        "WRONG_AUDIENCE",
    );

    // The real token with its signature replaced by another key's.
    let other_key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let (head_payload, _) = ada.rsplit_once('.').unwrap();
    let forged_sig = ed25519_dalek::Signer::sign(&other_key, head_payload.as_bytes());
    let forged = format!(
        "{head_payload}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged_sig.to_bytes())
    );
    expect_err(
        get_caller(&h, Some(&forged)).await,
        Code::Unauthenticated,
        "BAD_SIGNATURE",
    );

    // A payload edited after signing (a different subject) fails too.
    let mut parts: Vec<String> = ada.split('.').map(String::from).collect();
    let mut payload: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&parts[1])
            .unwrap(),
    )
    .unwrap();
    payload["sub"] = serde_json::Value::String("servicePrincipals/migration".into());
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&payload).unwrap());
    expect_err(
        get_caller(&h, Some(&parts.join("."))).await,
        Code::Unauthenticated,
        "BAD_SIGNATURE",
    );

    // Still fine with the real one.
    assert_eq!(
        get_caller(&h, Some(&ada))
            .await
            .unwrap()
            .user
            .unwrap()
            .email,
        "ada.admin@contoso.com"
    );
}

#[tokio::test]
async fn key_rotation_publishes_first_and_reaches_remote_verifiers_that_fetched_before() {
    let clock = ManualClock::new();
    let h = Harness::start_with(|c| c.clock = clock.clone()).await;
    let oli = h.token("oli.operator@platform.example").await;
    let before = h.token("ada.admin@contoso.com").await;

    // A verifier of another service, fetching keys over gRPC, knows the first key; it may not
    // fetch again for 30 s.
    let remote = TokenVerifier::with(Arc::new(RemoteKeys::new(h.channel())), None, clock.clone());
    remote
        .verify(&before)
        .await
        .expect("remote verifier accepts the first key's token");

    let rotated = h
        .tokens()
        .rotate_signing_key(authed(&oli, pb::RotateSigningKeyRequest {}))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert!(!rotated.active, "published, not signing yet");
    let lead = rotated.activate_time.unwrap().seconds - clock.now().timestamp();
    assert!(
        (35..=36).contains(&lead),
        "signs 35 s after publication, not {lead}"
    );
    let keys = h
        .tokens()
        .list_signing_keys(pb::ListSigningKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 2, "old and new keys are both published");
    assert!(keys.iter().any(|k| k.kid == rotated.kid && !k.active));
    let old = keys.iter().find(|k| k.kid != rotated.kid).unwrap();
    assert!(old.active, "the old key signs until the new one does");
    assert!(
        old.expire_time.is_some(),
        "a retiring key says when it stops verifying"
    );
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    assert_eq!(kid(&h.token("ada.admin@contoso.com").await), old.kid);

    // 35 s later the new key signs; old and new tokens both work, here and at the remote
    // verifier, which may fetch again by then.
    clock.advance(chrono::Duration::seconds(35));
    let after = h.token("ada.admin@contoso.com").await;
    assert_eq!(kid(&after), rotated.kid);
    get_caller(&h, Some(&before))
        .await
        .expect("old token still valid");
    get_caller(&h, Some(&after)).await.expect("new token valid");
    remote.verify(&before).await.expect("remote: old token");
    remote
        .verify(&after)
        .await
        .expect("remote: new token after rotation");
    let keys = h
        .tokens()
        .list_signing_keys(pb::ListSigningKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert!(keys.iter().any(|k| k.kid == rotated.kid && k.active));
    assert!(keys.iter().any(|k| k.kid != rotated.kid && !k.active));

    // Only operators rotate.
    expect_err(
        h.tokens()
            .rotate_signing_key(authed(&before, pb::RotateSigningKeyRequest {}))
            .await,
        Code::PermissionDenied,
        "MISSING_ROLE",
    );
}

#[tokio::test]
async fn a_forged_key_id_is_refused_at_once() {
    let clock = ManualClock::new();
    let h = Harness::start_with(|c| c.clock = clock.clone()).await;
    let good = h.token("ada.admin@contoso.com").await;
    let remote = TokenVerifier::with(Arc::new(RemoteKeys::new(h.channel())), None, clock.clone());
    remote.verify(&good).await.expect("first fetch");
    let forged = |kid: &str| {
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#));
        let (_, rest) = good.split_once('.').unwrap();
        format!("{header}.{rest}")
    };
    let started = std::time::Instant::now();
    for i in 0..200 {
        let e = remote
            .verify(&forged(&format!("forged-{i}")))
            .await
            .unwrap_err();
        assert_eq!(e.reason, "UNKNOWN_SIGNING_KEY");
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "refused at once, not after a wait for a fetch slot"
    );
    remote
        .verify(&good)
        .await
        .expect("the real key still works");
}

#[tokio::test]
async fn dev_sign_in_is_refused_unless_switched_on() {
    let h = Harness::start_with(|c| c.dev_auth = false).await;
    let s = expect_err(
        h.tokens()
            .sign_in_with_email(pb::SignInWithEmailRequest {
                email: "ada.admin@contoso.com".into(),
                organization: String::new(),
            })
            .await,
        Code::FailedPrecondition,
        "DEV_AUTH_DISABLED",
    );
    assert!(s.message().contains("--dev-auth"));
    // Service tokens still work.
    h.service_token("migration", MIGRATION_SECRET).await;
}

#[tokio::test]
async fn sign_in_errors_name_the_problem() {
    let h = Harness::start().await;
    let sign_in = |email: &str| {
        let mut t = h.tokens();
        let req = pb::SignInWithEmailRequest {
            email: email.into(),
            organization: String::new(),
        };
        async move { t.sign_in_with_email(req).await }
    };
    expect_err(
        sign_in("nobody@contoso.com").await,
        Code::NotFound,
        "NOT_FOUND",
    );
    expect_err(
        sign_in("nobody").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let ok = sign_in("Ada.Admin@Contoso.com").await.unwrap().into_inner();
    assert!(ok.user.starts_with("organizations/"));
    let exp = ok.expire_time.unwrap().seconds - chrono::Utc::now().timestamp();
    assert!(
        (3500..=3600).contains(&exp),
        "token lives an hour, got {exp}s"
    );
}

#[tokio::test]
async fn service_principals_authenticate_with_their_secret() {
    let h = Harness::start().await;
    expect_err(
        h.tokens()
            .issue_service_token(pb::IssueServiceTokenRequest {
                service: "migration".into(),
                client_secret: "wrong".into(),
            })
            .await,
        Code::Unauthenticated,
        "BAD_CLIENT_SECRET",
    );
    expect_err(
        h.tokens()
            .issue_service_token(pb::IssueServiceTokenRequest {
                service: "nobody".into(),
                client_secret: MIGRATION_SECRET.into(),
            })
            .await,
        Code::Unauthenticated,
        "BAD_CLIENT_SECRET",
    );
    let svc = h.service_token("migration", MIGRATION_SECRET).await;
    let me = get_caller(&h, Some(&svc)).await.unwrap();
    assert_eq!(me.principal, "servicePrincipals/migration");
    assert!(me.user.is_none());

    // A service checks a user's access; a user cannot check someone else's.
    let ada = h.token("ada.admin@contoso.com").await;
    let contoso = h.org("contoso.com").await;
    let uma = h.user(&ada, &contoso, "uma.user@contoso.com").await;
    let check = |token: String, mpn: &str| {
        let mut a = h.access();
        let req = authed(
            &token,
            pb::CheckAccessRequest {
                principal: uma.clone(),
                organization: contoso.clone(),
                any_of_roles: vec![
                    pb::Role::ReferralsUser as i32,
                    pb::Role::ReferralsAdmin as i32,
                ],
                mpn_id: mpn.into(),
            },
        );
        async move { a.check_access(req).await }
    };
    let seattle = check(svc.clone(), "4000002").await.unwrap().into_inner();
    assert!(seattle.allowed);
    assert!(seattle.cache_ttl_ms > 0 && seattle.cache_ttl_ms <= 5000);
    assert!(
        !check(svc.clone(), "4000003")
            .await
            .unwrap()
            .into_inner()
            .allowed,
        "Uma is scoped to Seattle"
    );
    assert!(
        !check(svc.clone(), "").await.unwrap().into_inner().allowed,
        "not org-wide"
    );
    expect_err(
        check(ada.clone(), "").await,
        Code::PermissionDenied,
        "SERVICE_ONLY",
    );
    // Uma may ask about herself.
    let uma_token = h.token("uma.user@contoso.com").await;
    assert!(
        check(uma_token, "4000002")
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
}
