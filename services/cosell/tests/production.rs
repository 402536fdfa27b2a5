//! `cosell serve` set up as a real deployment (README "Running it for real"): people sign in
//! through an OpenID Connect issuer (one made by the test: discovery and JWKS on 127.0.0.1),
//! the first operator is named at start, development sign-in is off, the listener serves TLS;
//! and neither tokens of unknown keys nor one tenant's flood of calls can starve other callers.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cosell_proto::{deals as dpb, directory as rpb, identity as ipb, migration as mpb};
use cosell_testkit::authed;
use cosell_testkit::oidc::{SigningKey, TestIssuer};
use support::Server;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt;

const AUDIENCE: &str = "cosell-production-test";

fn reason(s: &Status) -> String {
    s.get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

async fn channel(addr: &str) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// `token` with its header's key id replaced: a token of a key nobody publishes.
fn with_kid(token: &str, alg: &str, kid: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#));
    let (_, rest) = token.split_once('.').unwrap();
    format!("{header}.{rest}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_deployment_signs_people_in_through_its_issuer_and_onboards_a_partner() {
    let issuer = TestIssuer::start(AUDIENCE).await;
    let server = Server::start_with(&[
        "--oidc-issuer",
        &issuer.issuer,
        "--oidc-audience",
        AUDIENCE,
        "--platform-operator",
        "root@platform.example",
        "--no-sample",
    ])
    .await;
    let logged = server.logged();
    assert!(
        logged.contains(&format!(
            "cosell sign-in: OpenID Connect ({})",
            issuer.issuer
        )) && !logged.contains("development sign-in"),
        "says once which sign-in methods are on: {logged}"
    );
    let ch = channel(&server.addr).await;
    let tokens = ipb::token_service_client::TokenServiceClient::new(ch.clone());

    // Development sign-in is off, and says nothing about whether an email is a user.
    let mut answers = Vec::new();
    for email in ["root@platform.example", "nobody@platform.example"] {
        let s = tokens
            .clone()
            .sign_in_with_email(ipb::SignInWithEmailRequest {
                email: email.into(),
                organization: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
        assert_eq!(reason(&s), "DEV_AUTH_DISABLED");
        answers.push(s.message().to_owned());
    }
    assert_eq!(
        answers[0], answers[1],
        "the same answer for a user and a stranger"
    );

    // The operator named at start onboards Northwind and its first admin.
    let root = issuer.token("root@platform.example");
    let org = ipb::organization_service_client::OrganizationServiceClient::new(ch.clone())
        .create_organization(authed(
            &root,
            ipb::CreateOrganizationRequest {
                display_name: "Northwind".into(),
                tenant_id: "6f1a2b3c-0000-4000-8000-000000000002".into(),
                verified_domains: vec!["northwind.example".into()],
                vorg_mpn_id: "6100002".into(),
                account_admin_email: "nina.admin@northwind.example".into(),
                account_admin_given_name: "Nina".into(),
                account_admin_family_name: "Admin".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("the first operator creates an organization")
        .into_inner();
    let nina_user = org.account_admin.unwrap().name;
    let org = org.organization.unwrap().name;

    // Nina signs in with the issuer's token (ES256 this time) and gives herself the referrals
    // role; every service accepts the token as hers.
    let nina = issuer
        .ec
        .sign(&issuer.claims("nina.admin@northwind.example"));
    ipb::role_service_client::RoleServiceClient::new(ch.clone())
        .assign_role(authed(
            &nina,
            ipb::AssignRoleRequest {
                user: nina_user,
                role: ipb::Role::ReferralsAdmin as i32,
                mpn_id: String::new(),
            },
        ))
        .await
        .expect("identity accepts the issuer's token");
    dpb::referral_service_client::ReferralServiceClient::new(ch.clone())
        .list_referrals(authed(&nina, dpb::ListReferralsRequest::default()))
        .await
        .expect("deals accepts the issuer's token");
    rpb::directory_service_client::DirectoryServiceClient::new(ch.clone())
        .search_entities(authed(
            &nina,
            rpb::SearchEntitiesRequest {
                query: "contoso".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("the directory accepts the issuer's token");
    mpb::migration_service_client::MigrationServiceClient::new(ch.clone())
        .get_deal_migration_status(authed(
            &nina,
            mpb::GetDealMigrationStatusRequest {
                parent: org.clone(),
            },
        ))
        .await
        .expect("migration accepts the issuer's token");
    let whoami = server.cosell(&["whoami"], Some(&nina));
    assert!(
        whoami.contains("nina.admin@northwind.example") && whoami.contains("ROLE_REFERRALS_ADMIN"),
        "the CLI works with the issuer's token: {whoami}"
    );

    // Exchanged for one of ours, it works everywhere too.
    let ours = tokens
        .clone()
        .exchange_token(ipb::ExchangeTokenRequest {
            subject_token: nina.clone(),
            organization: String::new(),
        })
        .await
        .expect("exchanged")
        .into_inner()
        .access_token;
    dpb::referral_service_client::ReferralServiceClient::new(ch.clone())
        .list_referrals(authed(&ours, dpb::ListReferralsRequest::default()))
        .await
        .expect("deals accepts the exchanged token");

    // Every service refuses bad tokens with identity's reason.
    let claims = issuer.claims("nina.admin@northwind.example");
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = "someone-else".into();
    let mut expired = claims.clone();
    expired["exp"] = (chrono::Utc::now().timestamp() - 3600).into();
    let bad = [
        (issuer.rsa.sign(&wrong_aud), "WRONG_AUDIENCE"),
        (issuer.rsa.sign(&expired), "TOKEN_EXPIRED"),
        (
            SigningKey::p256(&issuer.ec.kid).sign(&claims),
            "BAD_SIGNATURE",
        ),
        (TestIssuer::unsigned(&claims), "BAD_TOKEN_ALGORITHM"),
        (issuer.hmac_with_public_key(&claims), "BAD_TOKEN_ALGORITHM"),
        (issuer.token("stranger@northwind.example"), "USER_UNKNOWN"),
    ];
    for (token, why) in bad {
        let s = rpb::directory_service_client::DirectoryServiceClient::new(ch.clone())
            .search_entities(authed(&token, rpb::SearchEntitiesRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(
            (s.code(), reason(&s).as_str()),
            (Code::Unauthenticated, why),
            "{s:?}"
        );
        let s = mpb::migration_service_client::MigrationServiceClient::new(ch.clone())
            .get_deal_migration_status(authed(
                &token,
                mpb::GetDealMigrationStatusRequest {
                    parent: org.clone(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(
            (s.code(), reason(&s).as_str()),
            (Code::Unauthenticated, why),
            "{s:?}"
        );
    }
    assert_eq!(server.stop().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_of_unknown_keys_cannot_starve_valid_callers() {
    let issuer = TestIssuer::start(AUDIENCE).await;
    // Few slots, so that a flood holding them would be seen at once.
    let server = Server::start_with(&[
        "--demo",
        "--concurrency-limit",
        "8",
        "--oidc-issuer",
        &issuer.issuer,
        "--oidc-audience",
        AUDIENCE,
    ])
    .await;
    let ch = channel(&server.addr).await;
    let rita = issuer.token("rita.referrals@contoso.com");
    let referrals = dpb::referral_service_client::ReferralServiceClient::new(ch.clone());
    referrals
        .clone()
        .list_referrals(authed(&rita, dpb::ListReferralsRequest::default()))
        .await
        .expect("a valid caller");
    let fetched = issuer.jwks_fetches();
    let ours = server.cosell(&["dev-token", "--email", "uma.user@contoso.com"], None);

    // 2,000 calls: half with identity's issuer and unknown key ids, half with the external
    // issuer's, 100 at a time, on connections of their own.
    let flood_channel = channel(&server.addr).await;
    let flood = tokio::spawn(async move {
        let mut refused = 0;
        for wave in 0..20 {
            let calls = (0..100).map(|i| {
                let n = wave * 100 + i;
                let token = if n % 2 == 0 {
                    with_kid(ours.trim(), "EdDSA", &format!("forged-{n}"))
                } else {
                    with_kid(
                        &issuer.token("rita.referrals@contoso.com"),
                        "RS256",
                        &format!("forged-{n}"),
                    )
                };
                let mut client =
                    dpb::referral_service_client::ReferralServiceClient::new(flood_channel.clone());
                async move {
                    client
                        .list_referrals(authed(&token, dpb::ListReferralsRequest::default()))
                        .await
                }
            });
            for r in futures::future::join_all(calls).await {
                let s = r.expect_err("a forged key is refused");
                assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
                assert_eq!(reason(&s), "UNKNOWN_SIGNING_KEY");
                refused += 1;
            }
        }
        (refused, issuer)
    });
    let started = Instant::now();
    let mut valid = 0;
    while !flood.is_finished() || valid < 20 {
        let mut req = authed(&rita, dpb::ListReferralsRequest::default());
        req.set_timeout(Duration::from_secs(5));
        referrals
            .clone()
            .list_referrals(req)
            .await
            .expect("every valid call succeeds within its deadline during the flood");
        valid += 1;
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the flood ends"
        );
    }
    let (refused, issuer) = flood.await.unwrap();
    assert_eq!(refused, 2000);
    assert!(valid >= 20);
    assert_eq!(
        issuer.jwks_fetches(),
        fetched,
        "no JWKS fetch for the flood (the keys were fetched under 30 s ago)"
    );
}

/// One tenant's flood of valid calls does not stop another's: when the server's slots are all
/// taken, waiting calls get them in turn by organization, and a tenant waits with at most as
/// many calls as there are slots (the rest refused with a retry delay).
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_flooding_the_server_waits_behind_its_own_calls() {
    let server = Server::start_with(&["--demo", "--concurrency-limit", "8"]).await;
    let token = |email: &str| {
        server
            .cosell(&["dev-token", "--email", email], None)
            .trim()
            .to_owned()
    };
    let (rita, fay) = (
        token("rita.referrals@contoso.com"),
        token("fay.admin@fabrikam.com"),
    );
    // Contoso's flood: 800 calls at a time on 4 connections of their own, wave after wave.
    let mut flood_channels = Vec::new();
    for _ in 0..4 {
        flood_channels.push(channel(&server.addr).await);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut answered, mut refused) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let calls = (0..800).map(|i| {
                    let mut client = dpb::referral_service_client::ReferralServiceClient::new(
                        flood_channels[i % 4].clone(),
                    );
                    let req = authed(&rita, dpb::ListReferralsRequest::default());
                    async move { client.list_referrals(req).await }
                });
                for r in futures::future::join_all(calls).await {
                    match r {
                        Ok(_) => answered += 1,
                        Err(s) => {
                            assert_eq!(
                                (s.code(), reason(&s).as_str()),
                                (Code::ResourceExhausted, "TOO_MANY_CALLS"),
                                "{s:?}"
                            );
                            assert!(s.get_error_details().retry_info().is_some(), "{s:?}");
                            refused += 1;
                        }
                    }
                }
            }
            (answered, refused)
        })
    };
    // Fabrikam meanwhile: every call answered, each well within its deadline.
    let mut referrals =
        dpb::referral_service_client::ReferralServiceClient::new(channel(&server.addr).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        let mut req = authed(&fay, dpb::ListReferralsRequest::default());
        req.set_timeout(Duration::from_secs(5));
        let t = Instant::now();
        referrals
            .list_referrals(req)
            .await
            .expect("another tenant's calls are answered during the flood");
        slowest = slowest.max(t.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, refused) = flood.await.unwrap();
    println!("flood: {answered} answered, {refused} refused; Fabrikam's slowest call {slowest:?}");
    assert!(answered > 0 && refused > 0, "{answered} / {refused}");
    assert!(
        slowest < Duration::from_secs(1),
        "Fabrikam's slowest call took {slowest:?}"
    );
    assert_eq!(server.stop().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_listener_serves_clients_that_trust_its_certificate() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    // The demo is seeded through the services' own TLS links.
    let server = Server::start_with(&[
        "--demo",
        "--tls-cert",
        cert_file.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
    ])
    .await;
    assert!(server.logged().contains("(TLS;"), "{}", server.logged());
    let port = server.addr.rsplit(':').next().unwrap().to_owned();
    let https = format!("https://localhost:{port}");
    let cosell = |server_url: &str, ca: bool, args: &[&str], token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosell"));
        cmd.args(args)
            .arg("--server")
            .arg(server_url)
            .env_remove("COSELL_TOKEN");
        if ca {
            cmd.arg("--ca-cert").arg(&cert_file);
        }
        if let Some(t) = token {
            cmd.env("COSELL_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let out = cosell(
        &https,
        true,
        &["dev-token", "--email", "rita.referrals@contoso.com"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = cosell(&https, true, &["whoami"], Some(&token));
    let whoami = String::from_utf8_lossy(&out.stdout);
    assert!(whoami.contains("rita.referrals@contoso.com"), "{whoami}");

    // HTTP/JSON over TLS, from curl offering only HTTP/1.1 in ALPN (as some CRMs' HTTP
    // clients do) and from curl offering h2.
    for (version, negotiated) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let out = Command::new("curl")
            .args(["-sS", "-X", "POST", version, "-w", "\n%{http_version}"])
            .arg("--cacert")
            .arg(&cert_file)
            .args(["-H", "content-type: application/json"])
            .args(["-H", &format!("authorization: Bearer {token}")])
            .args(["-d", "{}"])
            .arg(format!(
                "{https}/cosell.identity.v1.AccessService/GetCaller"
            ))
            .output()
            .unwrap();
        let answer = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && answer.contains("rita.referrals@contoso.com"),
            "{version}: {answer} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(answer.lines().last(), Some(negotiated), "{version}");
    }

    // A plaintext client, and a client that does not trust the certificate, get nowhere.
    let out = cosell(&server.url(), false, &["whoami"], Some(&token));
    assert!(!out.status.success(), "plaintext refused");
    let out = cosell(&https, false, &["whoami"], Some(&token));
    assert!(!out.status.success(), "an unknown certificate refused");
    assert_eq!(server.stop().code(), Some(0));
}

/// `--database-pool-size` bounds what each service's pool opens: 48 calls at once that each read
/// identity's database (ListUsers) leave at most that many connections on it, where the default
/// pool (32) opens more than that for the same burst. PostgreSQL only: SQLite has one
/// connection whatever the flag says.
#[tokio::test(flavor = "multi_thread")]
async fn the_pool_size_flag_bounds_the_connections_each_service_opens() {
    async fn burst_then_connections(args: &[&str]) -> Option<i64> {
        let server = Server::start_with(args).await;
        let channel = channel(&server.addr).await;
        let token = ipb::token_service_client::TokenServiceClient::new(channel.clone())
            .sign_in_with_email(ipb::SignInWithEmailRequest {
                email: "ada.admin@contoso.com".into(),
                organization: String::new(),
            })
            .await
            .expect("sign-in")
            .into_inner()
            .access_token;
        let organization = ipb::access_service_client::AccessServiceClient::new(channel.clone())
            .get_caller(authed(&token, ipb::GetCallerRequest {}))
            .await
            .expect("caller")
            .into_inner()
            .organization;
        let calls = (0..48).map(|_| {
            let mut users = ipb::user_service_client::UserServiceClient::new(channel.clone());
            let request = authed(
                &token,
                ipb::ListUsersRequest {
                    parent: organization.clone(),
                    ..Default::default()
                },
            );
            async move { users.list_users(request).await.expect("users") }
        });
        futures::future::join_all(calls).await;
        server.dbs.0.connections().await.unwrap()
    }

    let Some(bounded) = burst_then_connections(&["--demo", "--database-pool-size", "2"]).await
    else {
        eprintln!("skipped: needs COSELL_TEST_DATABASE_URL (PostgreSQL)");
        return;
    };
    assert!(
        (1..=2).contains(&bounded),
        "{bounded} connections to identity's database with --database-pool-size 2"
    );
    let default = burst_then_connections(&["--demo"]).await.unwrap();
    assert!(
        default > 2,
        "the same burst with the default pool opened only {default} connection(s): it proves nothing"
    );
}
