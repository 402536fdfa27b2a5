//! The migration tests' server: identity, the directory, deals and migration on one server (or
//! migration in a process of its own), over fresh databases, with Contoso and Fabrikam, the
//! test's directory entries and a seeded catalog; sign-in and PSC imports as the tests' users.

use std::sync::Arc;

use cosell_platform::auth::{RemoteKeys, ServiceToken, TokenVerifier};
use cosell_proto::identity as ipb;
use cosell_proto::migration as pb;
use cosell_testkit::{TestDb, TestServer, authed};
use tonic::transport::{Channel, Endpoint};

pub(crate) const MIGRATION_SECRET: &str = "migration-secret-for-tests-0001";
pub(crate) const DEALS_SECRET: &str = "deals-secret-for-tests-00000001";
pub(crate) const DIRECTORY_SECRET: &str = "directory-secret-for-tests-0001";

/// Directory entries of the tests: one Northwind in Oslo, and Tailspin twice in Bergen (so
/// that no match is confident).
const CUSTOMERS: &str = "LEI,Entity.LegalName,Entity.LegalAddress.City,Entity.LegalAddress.Country\n\
    5493001KJTIIGC8Y1R12,NORTHWIND TRADERS AS,Oslo,NO\n\
    5493001KJTIIGC8Y1R13,TAILSPIN TOYS AS,Bergen,NO\n\
    5493001KJTIIGC8Y1R14,TAILSPIN TOYS AS,Bergen,NO\n";

pub(crate) struct Harness {
    pub(crate) server: TestServer,
    pub(crate) contoso: String,
    /// The deals service, to count what reached it.
    pub(crate) deals: Arc<cosell_deals::Deals>,
    /// The migration service, when it runs on the server (to shut it down).
    pub(crate) migration: Option<Arc<cosell_migration::Migration>>,
    /// Between the migration service and the directory, when it runs
    /// [`MigrationIn::TheServerBehindAProxy`]: a test cuts it to see a run with the directory
    /// down.
    pub(crate) directory_link: Option<cosell_testkit::proxy::TcpProxy>,
    /// Between the migration service and identity, likewise (the others reach identity
    /// directly, and people sign in as ever).
    pub(crate) identity_link: Option<cosell_testkit::proxy::TcpProxy>,
    _dbs: (TestDb, TestDb, TestDb, TestDb),
}

/// Where the migration service of a [`Harness`] runs.
pub(crate) enum MigrationIn {
    /// On the harness's server, beside the others.
    TheServer,
    /// On the harness's server, reaching the directory and identity through proxies
    /// ([`Harness::directory_link`], [`Harness::identity_link`]).
    TheServerBehindAProxy,
    /// Elsewhere (a process of its own, which the test starts): the server has the others.
    AnotherProcess,
}

/// The migration service's secret at identity.
pub(crate) const SERVICE_SECRET: &str = MIGRATION_SECRET;

impl Harness {
    pub(crate) async fn start() -> Self {
        Self::start_with(MigrationIn::TheServer).await
    }

    pub(crate) async fn start_with(migration_in: MigrationIn) -> Self {
        Self::start_configured(migration_in, cosell_migration::Options::default()).await
    }

    pub(crate) async fn start_configured(
        migration_in: MigrationIn,
        options: cosell_migration::Options,
    ) -> Self {
        let identity_db = TestDb::new().await.unwrap();
        let migration_db = TestDb::new().await.unwrap();
        let deals_db = TestDb::new().await.unwrap();
        let directory_db = TestDb::new().await.unwrap();
        let mut identity = cosell_identity::Config::new(identity_db.url.clone());
        identity.dev_auth = true;
        identity.demo = true;
        identity.service_principals = vec![
            ("migration".into(), MIGRATION_SECRET.into()),
            ("deals".into(), DEALS_SECRET.into()),
            ("directory".into(), DIRECTORY_SECRET.into()),
        ];
        let identity = cosell_identity::start(&identity).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let loopback = || -> Channel {
            Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect_lazy()
        };
        let link = || async {
            match migration_in {
                MigrationIn::TheServerBehindAProxy => {
                    Some(cosell_testkit::proxy::TcpProxy::start(addr).await.unwrap())
                }
                _ => None,
            }
        };
        let (directory_link, identity_link) = (link().await, link().await);
        let through = |link: &Option<cosell_testkit::proxy::TcpProxy>| match link {
            Some(p) => Endpoint::from_shared(format!("http://{}", p.addr))
                .unwrap()
                .connect_lazy(),
            None => loopback(),
        };
        let (directory_channel, identity_channel) =
            (through(&directory_link), through(&identity_link));
        // Started only when it runs here: its worker would otherwise compete with the process.
        let migration = match migration_in {
            MigrationIn::TheServer | MigrationIn::TheServerBehindAProxy => Some(
                cosell_migration::start_with(
                    &cosell_migration::Config::new(migration_db.url.clone()),
                    &options,
                    cosell_migration::Links {
                        identity: identity_channel.clone(),
                        deals: loopback(),
                        directory: directory_channel,
                        token: Arc::new(ServiceToken::new(
                            identity_channel,
                            "migration",
                            MIGRATION_SECRET,
                        )),
                    },
                )
                .await
                .unwrap(),
            ),
            MigrationIn::AnotherProcess => None,
        };
        let (migration, migration_handle) = migration.map(|m| (m.services, m.migration)).unzip();
        // The deals service, for its catalog (product -> solution mapping).
        let deals = cosell_deals::start(
            &cosell_deals::Config::new(deals_db.url.clone()),
            cosell_deals::Links {
                identity: loopback(),
                directory: loopback(),
                token: Arc::new(ServiceToken::new(loopback(), "deals", DEALS_SECRET)),
            },
        )
        .await
        .unwrap();
        // The directory, for customers.
        let directory = cosell_directory::start(
            &cosell_directory::Config::new(directory_db.url.clone()),
            Some(Arc::new(cosell_platform::auth::AccessClient::new(
                loopback(),
                Arc::new(ServiceToken::new(loopback(), "directory", DIRECTORY_SECRET)),
            ))),
        )
        .await
        .unwrap();
        let verifier = Arc::new(TokenVerifier::new(Arc::new(RemoteKeys::new(loopback()))));
        let mut services = identity
            .services
            .merge(deals.services)
            .merge(directory.services);
        if let Some(migration) = migration {
            services = services.merge(migration);
        }
        let server = TestServer::start_on(listener, services, verifier, Default::default())
            .await
            .unwrap();
        let mut h = Self {
            server,
            contoso: String::new(),
            deals: deals.deals,
            migration: migration_handle,
            directory_link,
            identity_link,
            _dbs: (identity_db, migration_db, deals_db, directory_db),
        };
        let oli = h.token("oli.operator@platform.example").await;
        load_customers(h.server.channel.clone(), &oli).await;
        let ada = h.token("ada.admin@contoso.com").await;
        h.contoso = ipb::access_service_client::AccessServiceClient::new(h.server.channel.clone())
            .get_caller(authed(&ada, ipb::GetCallerRequest {}))
            .await
            .unwrap()
            .into_inner()
            .organization;
        h
    }

    /// A token of `email` (see [`sign_in`]).
    pub(crate) async fn token(&self, email: &str) -> String {
        sign_in(self.server.channel.clone(), email).await
    }

    /// Starts a deal migration of Contoso as Rita (an org-wide referrals admin).
    pub(crate) async fn start_run(&self) -> pb::DealMigrationRun {
        let rita = self.token("rita.referrals@contoso.com").await;
        pb::migration_service_client::MigrationServiceClient::new(self.server.channel.clone())
            .start_deal_migration(authed(
                &rita,
                pb::StartDealMigrationRequest {
                    parent: self.contoso.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap()
    }

    /// Starts a deal migration of Contoso as Rita, waits for it to finish, and returns its
    /// report.
    pub(crate) async fn migrate_deals(&self) -> Vec<pb::DealMigrationResult> {
        let rita = self.token("rita.referrals@contoso.com").await;
        let mut client =
            pb::migration_service_client::MigrationServiceClient::new(self.server.channel.clone());
        let parent = self.contoso.clone();
        self.start_run().await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let status = client
                .get_deal_migration_status(authed(
                    &rita,
                    pb::GetDealMigrationStatusRequest {
                        parent: parent.clone(),
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            if status.state() != pb::DealMigrationState::InProgress {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the run did not finish"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.report().await
    }

    /// Contoso's deal migration report (its first page), as Rita reads it.
    pub(crate) async fn report(&self) -> Vec<pb::DealMigrationResult> {
        let rita = self.token("rita.referrals@contoso.com").await;
        pb::migration_service_client::MigrationServiceClient::new(self.server.channel.clone())
            .list_deal_migration_report(authed(
                &rita,
                pb::ListDealMigrationReportRequest {
                    parent: self.contoso.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .results
    }

    /// Imports `files` (name, CSV text) into Contoso as Ada, its account admin.
    pub(crate) async fn import_into_contoso(&self, files: &[(&str, &str)]) -> pb::PscImport {
        let files: Vec<(&str, Vec<u8>)> = files
            .iter()
            .map(|(name, text)| (*name, text.as_bytes().to_vec()))
            .collect();
        self.import("ada.admin@contoso.com", &self.contoso, &files)
            .await
            .unwrap()
    }

    /// Runs Contoso's user migration as `email`.
    pub(crate) async fn run_user_migration(
        &self,
        email: &str,
    ) -> Result<pb::RunUserMigrationResponse, tonic::Status> {
        let token = self.token(email).await;
        pb::migration_service_client::MigrationServiceClient::new(self.server.channel.clone())
            .run_user_migration(authed(
                &token,
                pb::RunUserMigrationRequest {
                    parent: self.contoso.clone(),
                },
            ))
            .await
            .map(|r| r.into_inner())
    }

    /// Uploads `files` (name, bytes) in small chunks as `email`.
    pub(crate) async fn import(
        &self,
        email: &str,
        organization: &str,
        files: &[(&str, Vec<u8>)],
    ) -> Result<pb::PscImport, tonic::Status> {
        let token = self.token(email).await;
        let messages = cosell_testkit::upload::messages(organization, files, 7);
        Ok(
            pb::migration_service_client::MigrationServiceClient::new(self.server.channel.clone())
                .import_psc_export(authed(&token, tokio_stream::iter(messages)))
                .await?
                .into_inner()
                .import
                .unwrap(),
        )
    }
}

/// A token of `email` from the development sign-in of the identity service on `identity`.
/// Sign-in is rate limited per principal: a test that signs in on every call of a loop waits as
/// told, as any client does.
pub(crate) async fn sign_in(identity: Channel, email: &str) -> String {
    let mut tokens = ipb::token_service_client::TokenServiceClient::new(identity);
    for _ in 0..100 {
        let signed = tokens
            .sign_in_with_email(ipb::SignInWithEmailRequest {
                email: email.into(),
                organization: String::new(),
            })
            .await;
        match signed {
            Ok(r) => return r.into_inner().access_token,
            Err(e) if e.code() == tonic::Code::ResourceExhausted => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("sign-in of {email}: {e:?}"),
        }
    }
    panic!("sign-in of {email} stayed rate limited for 5 s")
}

/// Loads [`CUSTOMERS`] into the directory on `directory`, as the operator of `token`.
pub(crate) async fn load_customers(directory: Channel, token: &str) {
    let mut load =
        cosell_proto::directory::directory_service_client::DirectoryServiceClient::new(directory)
            .load_entities(authed(
                token,
                tokio_stream::iter(vec![cosell_proto::directory::LoadEntitiesRequest {
                    chunk: CUSTOMERS.as_bytes().to_vec(),
                    file_name: "customers.csv".into(),
                }]),
            ))
            .await
            .unwrap()
            .into_inner();
    while load.message().await.unwrap().is_some() {}
}

/// Creates Contoso's co-sell ready solution that replaces PSC product P-1, in the catalog of
/// the deals service on `deals`, as the operator of `token`.
pub(crate) async fn create_contoso_solution(
    deals: Channel,
    token: &str,
    contoso: &str,
) -> cosell_proto::deals::Solution {
    use cosell_proto::deals as dpb;
    dpb::catalog_service_client::CatalogServiceClient::new(deals)
        .create_solution(authed(
            token,
            dpb::CreateSolutionRequest {
                solution: Some(dpb::Solution {
                    display_name: "Contoso Cloud Analytics".into(),
                    kind: dpb::SolutionKind::PartnerSolution as i32,
                    mpn_id: "4000001".into(),
                    cosell_ready: true,
                    legacy_product_ids: vec!["P-1".into()],
                    ..Default::default()
                }),
                publisher: contoso.to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .solution
        .unwrap()
}
