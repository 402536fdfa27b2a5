//! Starting identity for a test, signing in, and reading errors back.

use std::sync::Arc;

use cosell_identity::{Config, Identity};
use cosell_proto::identity as pb;
use cosell_testkit::{TestDb, TestServer, authed};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

pub const MIGRATION_SECRET: &str = "migration-secret-for-tests-0001";
pub const DEALS_SECRET: &str = "deals-secret-for-tests-00000001";

pub struct Harness {
    pub server: TestServer,
    pub identity: Arc<Identity>,
    pub config: Config,
    // Dropped last: the database outlives the server.
    _db: TestDb,
}

impl Harness {
    /// Identity with the demo data, dev auth on, and the `migration` and `deals` principals.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new().await.expect("test database");
        let mut config = Config::new(db.url.clone());
        config.dev_auth = true;
        config.demo = true;
        config.service_principals = vec![
            ("migration".into(), MIGRATION_SECRET.into()),
            ("deals".into(), DEALS_SECRET.into()),
        ];
        adjust(&mut config);
        let started = cosell_identity::start(&config)
            .await
            .expect("identity starts");
        let server = TestServer::start(started.services, started.verifier)
            .await
            .expect("server starts");
        Self {
            server,
            identity: started.identity,
            config,
            _db: db,
        }
    }

    pub fn channel(&self) -> Channel {
        self.server.channel.clone()
    }

    pub fn orgs(&self) -> pb::organization_service_client::OrganizationServiceClient<Channel> {
        pb::organization_service_client::OrganizationServiceClient::new(self.channel())
    }

    pub fn users(&self) -> pb::user_service_client::UserServiceClient<Channel> {
        pb::user_service_client::UserServiceClient::new(self.channel())
    }

    pub fn roles(&self) -> pb::role_service_client::RoleServiceClient<Channel> {
        pb::role_service_client::RoleServiceClient::new(self.channel())
    }

    pub fn access(&self) -> pb::access_service_client::AccessServiceClient<Channel> {
        pb::access_service_client::AccessServiceClient::new(self.channel())
    }

    pub fn tokens(&self) -> pb::token_service_client::TokenServiceClient<Channel> {
        pb::token_service_client::TokenServiceClient::new(self.channel())
    }

    /// A token for a demo user, by dev sign-in.
    pub async fn token(&self, email: &str) -> String {
        self.tokens()
            .sign_in_with_email(pb::SignInWithEmailRequest {
                email: email.into(),
                organization: String::new(),
            })
            .await
            .unwrap_or_else(|s| panic!("sign in as {email}: {s:?}"))
            .into_inner()
            .access_token
    }

    pub async fn service_token(&self, service: &str, secret: &str) -> String {
        self.tokens()
            .issue_service_token(pb::IssueServiceTokenRequest {
                service: service.into(),
                client_secret: secret.into(),
            })
            .await
            .expect("service token")
            .into_inner()
            .access_token
    }

    /// `organizations/{id}` of the organization that verified `domain`.
    pub async fn org(&self, domain: &str) -> String {
        let id = self
            .identity
            .store
            .organization_of_domain(domain)
            .await
            .expect("store")
            .expect("organization exists");
        format!("organizations/{id}")
    }

    /// A user's resource name, found by email through the API as its admin.
    pub async fn user(&self, admin_token: &str, org: &str, email: &str) -> String {
        let users = self
            .users()
            .list_users(authed(
                admin_token,
                pb::ListUsersRequest {
                    parent: org.into(),
                    email: email.into(),
                    ..Default::default()
                },
            ))
            .await
            .expect("list users")
            .into_inner()
            .users;
        users
            .first()
            .unwrap_or_else(|| panic!("{email} exists"))
            .name
            .clone()
    }

    /// The caller's grants as identity reports them.
    pub async fn grants(&self, token: &str) -> Vec<(pb::Role, String)> {
        self.access()
            .get_caller(authed(token, pb::GetCallerRequest {}))
            .await
            .expect("get caller")
            .into_inner()
            .grants
            .into_iter()
            .map(|g| (pb::Role::try_from(g.role).unwrap(), g.mpn_id))
            .collect()
    }
}

/// The `ErrorInfo` reason of a status.
pub fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// The `BadRequest` violations of a status, as (field, description).
pub fn violations(status: &Status) -> Vec<(String, String)> {
    cosell_testkit::refusal(status).violations
}

/// Asserts a call failed with `code` and `reason`, and returns the status.
#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    reason_: &str,
) -> Status {
    match result {
        Ok(v) => panic!("expected {code:?} {reason_}, got Ok({v:?})"),
        Err(s) => {
            assert_eq!(s.code(), code, "code of {s:?}");
            assert_eq!(reason(&s), reason_, "reason of {s:?}");
            s
        }
    }
}
