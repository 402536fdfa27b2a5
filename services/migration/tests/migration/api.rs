//! `MigrationService/ImportPscExport` through gRPC, with identity deciding who may call it.

use std::io::Write;
use std::sync::Arc;

use cosell_platform::auth::{RemoteKeys, ServiceToken, TokenVerifier};
use cosell_proto::identity as ipb;
use cosell_proto::migration as pb;
use cosell_testkit::{TestDb, TestServer, authed};
use tonic::transport::{Channel, Endpoint};

const MIGRATION_SECRET: &str = "migration-secret-for-tests-0001";
const DEALS_SECRET: &str = "deals-secret-for-tests-00000001";
const DIRECTORY_SECRET: &str = "directory-secret-for-tests-0001";

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
    _dbs: (TestDb, TestDb, TestDb, TestDb),
}

/// Where the migration service of a [`Harness`] runs.
pub(crate) enum MigrationIn {
    /// On the harness's server, beside the others.
    TheServer,
    /// Elsewhere (a process of its own, which the test starts): the server has the others.
    AnotherProcess,
}

/// The migration service's secret at identity.
pub(crate) const SERVICE_SECRET: &str = MIGRATION_SECRET;

impl Harness {
    async fn start() -> Self {
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
        // Started only when it runs here: its worker would otherwise compete with the process.
        let migration = match migration_in {
            MigrationIn::TheServer => Some(
                cosell_migration::start_with(
                    &cosell_migration::Config::new(migration_db.url.clone()),
                    &options,
                    cosell_migration::Links {
                        identity: loopback(),
                        deals: loopback(),
                        directory: loopback(),
                        token: Arc::new(ServiceToken::new(
                            loopback(),
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
        let (migration, migration_handle) = migration.unzip();
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
            _dbs: (identity_db, migration_db, deals_db, directory_db),
        };
        let oli = h.token("oli.operator@platform.example").await;
        let mut load =
            cosell_proto::directory::directory_service_client::DirectoryServiceClient::new(
                h.server.channel.clone(),
            )
            .load_entities(authed(
                &oli,
                tokio_stream::iter(vec![cosell_proto::directory::LoadEntitiesRequest {
                    chunk: CUSTOMERS.as_bytes().to_vec(),
                    file_name: "customers.csv".into(),
                }]),
            ))
            .await
            .unwrap()
            .into_inner();
        while load.message().await.unwrap().is_some() {}
        let ada = h.token("ada.admin@contoso.com").await;
        h.contoso = ipb::access_service_client::AccessServiceClient::new(h.server.channel.clone())
            .get_caller(authed(&ada, ipb::GetCallerRequest {}))
            .await
            .unwrap()
            .into_inner()
            .organization;
        h
    }

    /// A token of `email`. Sign-in is rate limited per principal: a test that signs in on
    /// every call of a loop waits as told, as any client does.
    pub(crate) async fn token(&self, email: &str) -> String {
        let mut tokens =
            ipb::token_service_client::TokenServiceClient::new(self.server.channel.clone());
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

    /// Starts a deal migration of Contoso as Rita, waits for it to finish, and returns its
    /// report.
    pub(crate) async fn migrate_deals(&self) -> Vec<pb::DealMigrationResult> {
        let rita = self.token("rita.referrals@contoso.com").await;
        let mut client =
            pb::migration_service_client::MigrationServiceClient::new(self.server.channel.clone());
        let parent = self.contoso.clone();
        client
            .start_deal_migration(authed(
                &rita,
                pb::StartDealMigrationRequest {
                    parent: parent.clone(),
                },
            ))
            .await
            .unwrap();
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

const ACCOUNTS: &str = "PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso US,4000002\n";
const DEALS: &str = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source\nD1,Lakehouse,A1,Open,2021-01-05T10:00:00Z,yes,Partner\nD2,Orphan,A7,Open,2021-01-05T10:00:00Z,no,Partner\n";

fn zip(files: &[(&str, &str)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in files {
        w.start_file(
            format!("export/{name}"),
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated),
        )
        .unwrap();
        w.write_all(text.as_bytes()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[tokio::test]
async fn account_admins_and_org_wide_referrals_admins_import_exports() {
    let h = Harness::start().await;
    let files = [
        ("accounts.csv", ACCOUNTS.as_bytes().to_vec()),
        ("deals.csv", DEALS.as_bytes().to_vec()),
        ("notes.txt", b"hello".to_vec()),
    ];
    let first = h
        .import("ada.admin@contoso.com", &h.contoso, &files)
        .await
        .unwrap();
    assert_eq!((first.accounts, first.deals_added), (1, 1));
    assert_eq!(first.errors.len(), 1);
    let e = &first.errors[0];
    assert_eq!(
        (e.file.as_str(), e.line, e.column.as_str(), e.id.as_str()),
        ("deals.csv", 3, "PartnerAccountId", "D2")
    );
    assert!(first.warnings.iter().any(|w| w.file == "notes.txt"));

    // The same export as a zip, by an org-wide referrals admin: nothing changes.
    let zipped = zip(&[("accounts.csv", ACCOUNTS), ("deals.csv", DEALS)]);
    let again = h
        .import(
            "rita.referrals@contoso.com",
            &h.contoso,
            &[("export.zip", zipped)],
        )
        .await
        .unwrap();
    assert_eq!((again.deals_added, again.deals_unchanged), (0, 1));

    // Nobody else.
    let refused = h
        .import("uma.user@contoso.com", &h.contoso, &files)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let other = h
        .import("fay.admin@fabrikam.com", &h.contoso, &files)
        .await
        .unwrap_err();
    assert_eq!(other.code(), tonic::Code::NotFound);

    // A bundle without deals.csv is refused whole, naming the file.
    let missing = h
        .import("ada.admin@contoso.com", &h.contoso, &files[..1])
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::InvalidArgument);
    use tonic_types::StatusExt;
    let fields: Vec<String> = missing
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["deals.csv"]);

    // The history.
    let ada = h.token("ada.admin@contoso.com").await;
    let history =
        pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone())
            .list_psc_imports(authed(
                &ada,
                pb::ListPscImportsRequest {
                    parent: h.contoso.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .imports;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].name, again.name, "newest first");
}

#[tokio::test]
async fn the_mpn_check_and_its_correction() {
    let h = Harness::start().await;
    let accounts = "PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso Seattle,4000002\nA2,Wrong org,5000001\nA3,Typo,999999\n";
    let files = [
        ("accounts.csv", accounts.as_bytes().to_vec()),
        ("deals.csv", DEALS.as_bytes().to_vec()),
    ];
    h.import("ada.admin@contoso.com", &h.contoso, &files)
        .await
        .unwrap();
    let client =
        || pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone());
    let check = |token: String| {
        let parent = h.contoso.clone();
        async move {
            client()
                .get_mpn_check(authed(&token, pb::GetMpnCheckRequest { parent }))
                .await
                .map(|r| r.into_inner())
        }
    };
    let rita = h.token("rita.referrals@contoso.com").await;
    let before = check(rita.clone()).await.unwrap();
    let states: Vec<(String, pb::MpnAssociation)> = before
        .accounts
        .iter()
        .map(|a| (a.account_id.clone(), a.association()))
        .collect();
    assert_eq!(
        states,
        [
            ("A1".to_string(), pb::MpnAssociation::Location),
            ("A2".into(), pb::MpnAssociation::Invalid),
            ("A3".into(), pb::MpnAssociation::Invalid),
        ]
    );
    assert_eq!(before.invalid, 2);
    assert!(before.accounts[1].reason.contains("another organization"));
    assert!(before.accounts[2].reason.contains("not known"));

    let correct = |email: &'static str, account: &'static str, mpn: &'static str| {
        let parent = h.contoso.clone();
        let h = &h;
        async move {
            let token = h.token(email).await;
            client()
                .correct_mpn_association(authed(
                    &token,
                    pb::CorrectMpnAssociationRequest {
                        parent,
                        account_id: account.into(),
                        mpn_id: mpn.into(),
                    },
                ))
                .await
                .map(|r| r.into_inner().account.unwrap())
        }
    };
    // Only account admins correct; only to one of the organization's own MPN IDs.
    let refused = correct("rita.referrals@contoso.com", "A3", "4000001")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let wrong = correct("ada.admin@contoso.com", "A2", "5000001")
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::InvalidArgument);
    let unknown = correct("ada.admin@contoso.com", "A9", "4000001")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let fixed = correct("ada.admin@contoso.com", "A3", "4000001")
        .await
        .unwrap();
    assert_eq!(fixed.association(), pb::MpnAssociation::Vorg);
    assert_eq!(fixed.exported_mpn_id, "999999");
    assert_eq!(fixed.mpn_id, "4000001");

    // A re-import keeps the correction.
    h.import("ada.admin@contoso.com", &h.contoso, &files)
        .await
        .unwrap();
    let after = check(rita).await.unwrap();
    assert_eq!(after.invalid, 1);
    assert_eq!(after.accounts[2].corrected_mpn_id, "4000001");
}

#[tokio::test]
async fn deal_eligibility_by_reason_and_readiness() {
    let h = Harness::start().await;
    // The catalog maps PSC product P-1 to a Contoso solution.
    let oli = h.token("oli.operator@platform.example").await;
    cosell_proto::deals::catalog_service_client::CatalogServiceClient::new(
        h.server.channel.clone(),
    )
    .create_solution(authed(
        &oli,
        cosell_proto::deals::CreateSolutionRequest {
            solution: Some(cosell_proto::deals::Solution {
                display_name: "Contoso Cloud Analytics".into(),
                kind: cosell_proto::deals::SolutionKind::PartnerSolution as i32,
                mpn_id: "4000001".into(),
                cosell_ready: true,
                legacy_product_ids: vec!["P-1".into()],
                ..Default::default()
            }),
            publisher: h.contoso.clone(),
        },
    ))
    .await
    .unwrap();
    let accounts = "PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso Seattle,4000002\nA2,Wrong org,5000001\n";
    let deals = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,Program,DealRegistrationStatus,CustomerName,CustomerCity,CustomerCountry,ContactEmail,DealValue,Currency,EstimatedCloseDate,PartnerNotes\n\
        E1,Ready,A1,Open,2020-01-01T00:00:00Z,no,Partner,,,Northwind,Oslo,NO,,100,USD,2027-01-01,notes\n\
        E2,Bare co-sell,A1,Open,2021-05-01T00:00:00Z,yes,Partner,,,,,,,,,,\n\
        X1,Old,A1,Open,2019-12-31T23:59:59Z,no,Partner,,,,,,,,,,\n\
        X2,Offset,A1,Open,2020-01-01T00:30:00+01:00,no,Partner,,,,,,,,,,\n\
        X3,Won,A1,Won,2021-01-01T00:00:00Z,no,Partner,,,,,,,,,,\n\
        X4,Lost,A1,Lost,2021-01-01T00:00:00Z,no,Partner,,,,,,,,,,\n\
        X5,Other org,A2,Open,2021-01-01T00:00:00Z,no,Partner,,,,,,,,,,\n\
        X6,Registered,A1,Open,2021-01-01T00:00:00Z,no,Partner,,Registered,,,,,,,,\n\
        X7,Assessment,A1,Open,2021-01-01T00:00:00Z,no,Partner,Solution Assessment,,,,,,,,,\n\
        X8,OEM,A1,Open,2021-01-01T00:00:00Z,no,Partner,OemLicensing,,,,,,,,,\n";
    let products = "DealId,ProductId\nE1,P-1\nE2,P-404\n";
    let team = "DealId,FirstName,LastName,Email,Phone\nE1,Rita,Referrals,rita@contoso.com,+1 425 555 0101\n";
    h.import(
        "ada.admin@contoso.com",
        &h.contoso,
        &[
            ("accounts.csv", accounts.as_bytes().to_vec()),
            ("deals.csv", deals.as_bytes().to_vec()),
            ("deal_products.csv", products.as_bytes().to_vec()),
            ("deal_team.csv", team.as_bytes().to_vec()),
        ],
    )
    .await
    .unwrap();
    let rita = h.token("rita.referrals@contoso.com").await;
    let client =
        pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone());
    let status = client
        .clone()
        .get_deal_migration_status(authed(
            &rita,
            pb::GetDealMigrationStatusRequest {
                parent: h.contoso.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.state(), pb::DealMigrationState::NotStarted);
    assert!(status.start_enabled);
    assert_eq!(status.percent_done, 0);
    assert_eq!((status.total, status.eligible), (10, 2));
    let by_reason: Vec<(pb::IneligibleReason, i64)> = status
        .ineligible
        .iter()
        .map(|c| (c.reason(), c.deals))
        .collect();
    use pb::IneligibleReason as R;
    assert_eq!(
        by_reason,
        [
            (R::Won, 1),
            (R::NotOpen, 1),
            (R::CreatedBefore2020, 2),
            (R::InvalidMpnAssociation, 1),
            (R::InDealRegistration, 1),
            (R::SolutionAssessment, 1),
            (R::OemLicensing, 1),
        ]
    );
    // Readiness: E1 lacks nothing (its product maps to a solution); E2 lacks everything.
    let ready = client
        .clone()
        .list_deal_readiness(authed(
            &rita,
            pb::ListDealReadinessRequest {
                parent: h.contoso.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ready.deals.len(), 1);
    assert_eq!(ready.deals[0].psc_deal_id, "E2");
    assert_eq!(
        ready.deals[0].missing_fields,
        [
            "customer.legal_name",
            "customer.address",
            "customer.contacts",
            "solutions",
            "team",
            "deal_value",
            "estimated_close_date",
            "notes"
        ]
    );
    // Nothing to migrate elsewhere.
    let fay = h.token("fay.admin@fabrikam.com").await;
    let fabrikam = cosell_proto::identity::access_service_client::AccessServiceClient::new(
        h.server.channel.clone(),
    )
    .get_caller(authed(&fay, cosell_proto::identity::GetCallerRequest {}))
    .await
    .unwrap()
    .into_inner()
    .organization;
    let empty = client
        .clone()
        .get_deal_migration_status(authed(
            &fay,
            pb::GetDealMigrationStatusRequest { parent: fabrikam },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(empty.state(), pb::DealMigrationState::NothingToMigrate);
    assert!(!empty.start_enabled);
}

#[tokio::test]
async fn the_user_migration_wizard() {
    let h = Harness::start().await;
    let accounts = "PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso Seattle,4000002\nA2,Wrong org,5000001\nA3,Contoso global,4000001\n";
    let users = "UserEmail,FirstName,LastName,PartnerAccountId,Role\n\
        ada.admin@contoso.com,Ada,Admin,A1,Admin\n\
        new.person@contoso.com,New,Person,A1,Seller\n\
        new.person@contoso.com,New,Person,A3,Deal Manager\n\
        rita.referrals@contoso.com,Rita,Referrals,A1,Admin\n\
        bob@gmail.com,Bob,Personal,A1,Seller\n\
        pat@agency.example,Pat,Agency,A1,Seller\n\
        wes@contoso.com,Wes,Wrong,A2,Seller\n\
        john doe@contoso.com,John,Doe,A1,Seller\n";
    h.import(
        "ada.admin@contoso.com",
        &h.contoso,
        &[
            ("accounts.csv", accounts.as_bytes().to_vec()),
            ("users.csv", users.as_bytes().to_vec()),
            ("deals.csv", DEALS.as_bytes().to_vec()),
        ],
    )
    .await
    .unwrap();
    let client =
        || pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone());
    let run = |email: &'static str| {
        let parent = h.contoso.clone();
        let h = &h;
        async move {
            let token = h.token(email).await;
            client()
                .run_user_migration(authed(&token, pb::RunUserMigrationRequest { parent }))
                .await
                .map(|r| r.into_inner())
        }
    };
    // Only account admins run it; referrals admins may look.
    let refused = run("rita.referrals@contoso.com").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let rita = h.token("rita.referrals@contoso.com").await;
    let listed = client()
        .list_user_migration(authed(
            &rita,
            pb::ListUserMigrationRequest {
                parent: h.contoso.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .rows;
    assert_eq!(listed.len(), 8);
    assert!(
        listed
            .iter()
            .all(|r| r.status() == pb::UserMigrationStatus::NotMigrated)
    );

    let first = run("ada.admin@contoso.com").await.unwrap();
    let outcome = |rows: &[pb::UserMigrationRow], email: &str, account: &str| {
        rows.iter()
            .find(|r| r.email == email && r.psc_account_id == account)
            .map(|r| {
                (
                    r.status(),
                    r.error(),
                    r.pc_role.clone(),
                    r.pc_mpn_location.clone(),
                )
            })
            .unwrap()
    };
    use pb::UserMigrationError as E;
    use pb::UserMigrationStatus as S;
    let rows = &first.rows;
    assert_eq!(
        outcome(rows, "ada.admin@contoso.com", "A1"),
        (
            S::Migrated,
            E::Unspecified,
            "ROLE_REFERRALS_ADMIN".into(),
            "4000002".into()
        )
    );
    assert_eq!(
        outcome(rows, "new.person@contoso.com", "A1"),
        (
            S::Migrated,
            E::Unspecified,
            "ROLE_REFERRALS_USER".into(),
            "4000002".into()
        )
    );
    assert_eq!(
        outcome(rows, "new.person@contoso.com", "A3"),
        (
            S::Migrated,
            E::Unspecified,
            "ROLE_REFERRALS_ADMIN".into(),
            "Entire organization".into()
        ),
        "the same person in a second account gets that account's role too"
    );
    assert_eq!(
        outcome(rows, "rita.referrals@contoso.com", "A1").1,
        E::AlreadyHasRole
    );
    assert_eq!(outcome(rows, "bob@gmail.com", "A1").1, E::ConsumerAccount);
    assert_eq!(
        outcome(rows, "pat@agency.example", "A1").1,
        E::NotInOrganization
    );
    assert_eq!(
        outcome(rows, "wes@contoso.com", "A2").1,
        E::InvalidMpnAssociation
    );
    assert_eq!(
        outcome(rows, "john doe@contoso.com", "A1").1,
        E::Refused,
        "a user identity refuses is an error of its row; the run goes on"
    );
    assert_eq!((first.migrated, first.errors), (3, 5));
    let pat = rows
        .iter()
        .find(|r| r.email == "pat@agency.example")
        .unwrap();
    assert!(
        pat.error_message.contains("invite"),
        "{}",
        pat.error_message
    );

    // Identity has the new member with the mapped roles.
    let ada = h.token("ada.admin@contoso.com").await;
    let new_person = rows
        .iter()
        .find(|r| r.email == "new.person@contoso.com")
        .unwrap()
        .user
        .clone();
    let grants = cosell_proto::identity::role_service_client::RoleServiceClient::new(
        h.server.channel.clone(),
    )
    .list_role_assignments(authed(
        &ada,
        cosell_proto::identity::ListRoleAssignmentsRequest {
            parent: h.contoso.clone(),
            user: new_person,
            ..Default::default()
        },
    ))
    .await
    .unwrap()
    .into_inner()
    .role_assignments;
    assert_eq!(grants.len(), 2);

    // A global admin invites Pat as a guest; the next run migrates Pat and leaves the others.
    cosell_proto::identity::user_service_client::UserServiceClient::new(h.server.channel.clone())
        .invite_guest_user(authed(
            &ada,
            cosell_proto::identity::InviteGuestUserRequest {
                parent: h.contoso.clone(),
                email: "pat@agency.example".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let second = run("ada.admin@contoso.com").await.unwrap();
    assert_eq!((second.migrated, second.errors), (1, 4));
    assert_eq!(
        outcome(&second.rows, "pat@agency.example", "A1").0,
        S::Migrated
    );
    assert_eq!(
        second
            .rows
            .iter()
            .find(|r| r.email == "ada.admin@contoso.com")
            .unwrap()
            .user,
        rows.iter()
            .find(|r| r.email == "ada.admin@contoso.com")
            .unwrap()
            .user,
        "migrated rows are not touched"
    );
}

#[tokio::test]
async fn deal_migration_runs_migrate_each_eligible_deal_once() {
    let h = Harness::start().await;
    let oli = h.token("oli.operator@platform.example").await;
    cosell_proto::deals::catalog_service_client::CatalogServiceClient::new(
        h.server.channel.clone(),
    )
    .create_solution(authed(
        &oli,
        cosell_proto::deals::CreateSolutionRequest {
            solution: Some(cosell_proto::deals::Solution {
                display_name: "Contoso Cloud Analytics".into(),
                kind: cosell_proto::deals::SolutionKind::PartnerSolution as i32,
                mpn_id: "4000001".into(),
                cosell_ready: true,
                legacy_product_ids: vec!["P-1".into()],
                ..Default::default()
            }),
            publisher: h.contoso.clone(),
        },
    ))
    .await
    .unwrap();
    let accounts = "PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso Seattle,4000002\n";
    let header = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,AssignedSellerEmail,CustomerName,CustomerCity,CustomerCountry,ContactEmail,DealValue,Currency,PartnerNotes,CustomerOutcome,DealRole\n";
    let first = format!(
        "{header}\
        E1,Co-sell with a seller,A1,Open,2021-01-05T10:00:00Z,yes,Partner,sam.seller@platform.example,Northwind Traders AS,Oslo,NO,cy@northwind.example,1200.50,USD,pilot first,won the pilot,Influencer\n\
        E2,From a seller,A1,Open,2021-02-01T10:00:00Z,no,Microsoft,,Tailspin Toys AS,Bergen,NO,,,,,,\n\
        E3,Bad currency,A1,Open,2021-03-01T10:00:00Z,yes,Partner,,Somebody,Oslo,NO,not-an-email,100,ABC,,,\n\
        X1,Too old,A1,Open,2019-06-01T10:00:00Z,no,Partner,,,,,,,,,,\n"
    );
    let products = "DealId,ProductId\nE1,P-1\nE1,P-404\n";
    let import = |deals: String| {
        let h = &h;
        async move {
            h.import(
                "ada.admin@contoso.com",
                &h.contoso,
                &[
                    ("accounts.csv", accounts.as_bytes().to_vec()),
                    ("deals.csv", deals.into_bytes()),
                    ("deal_products.csv", products.as_bytes().to_vec()),
                ],
            )
            .await
            .unwrap()
        }
    };
    import(first.clone()).await;
    let client =
        || pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone());
    let start = |email: &'static str| {
        let parent = h.contoso.clone();
        let h = &h;
        async move {
            let token = h.token(email).await;
            client()
                .start_deal_migration(authed(&token, pb::StartDealMigrationRequest { parent }))
                .await
                .map(|r| r.into_inner().run.unwrap())
        }
    };
    let rita = h.token("rita.referrals@contoso.com").await;
    let status = || {
        let rita = rita.clone();
        let parent = h.contoso.clone();
        async move {
            client()
                .get_deal_migration_status(authed(
                    &rita,
                    pb::GetDealMigrationStatusRequest { parent },
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let wait = || async {
        for _ in 0..200 {
            let s = status().await;
            if s.state() != pb::DealMigrationState::InProgress {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the run did not finish");
    };
    let report = || h.report();

    // Only org-wide referrals admins start it.
    let refused = start("ada.admin@contoso.com").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let run = start("rita.referrals@contoso.com").await.unwrap();
    assert_eq!(run.total, 3, "E1, E2, E3; X1 is too old");
    let done = wait().await;
    // One deal failed: completed, with start enabled again for it.
    assert_eq!(done.state(), pb::DealMigrationState::Completed);
    assert!(done.start_enabled);
    assert_eq!((done.eligible, done.percent_done), (1, 100));
    let run = done.run.unwrap();
    assert_eq!((run.migrated, run.failed, run.pending), (2, 1, 0));
    assert!(run.finish_time.is_some());

    let rows = report().await;
    let row = |id: &str| rows.iter().find(|r| r.psc_deal_id == id).unwrap().clone();
    let e1 = row("E1");
    assert_eq!(
        (
            e1.state.as_str(),
            e1.deal_type.as_str(),
            e1.direction.as_str()
        ),
        ("MIGRATED", "CO_SELL", "OUTBOUND")
    );
    assert!(e1.referral.starts_with("referrals/") && e1.engagement.starts_with("engagements/"));
    assert!(
        e1.notes.contains("P-404") && e1.notes.contains("Influencer"),
        "{}",
        e1.notes
    );
    let e2 = row("E2");
    assert_eq!(
        (
            e2.state.as_str(),
            e2.deal_type.as_str(),
            e2.direction.as_str()
        ),
        ("MIGRATED", "PARTNER_LED", "INBOUND")
    );
    let e3 = row("E3");
    assert_eq!(e3.state, "FAILED");
    assert!(e3.error.contains("currency_code"), "{}", e3.error);
    assert!(
        e3.notes.contains("customer contact left out"),
        "a contact without a usable email does not fail the deal: {}",
        e3.notes
    );

    // In the deals service, as the partner sees them.
    let referrals = cosell_proto::deals::referral_service_client::ReferralServiceClient::new(
        h.server.channel.clone(),
    );
    let get = |name: String| {
        let rita = rita.clone();
        let referrals = referrals.clone();
        async move {
            referrals
                .clone()
                .get_referral(authed(
                    &rita,
                    cosell_proto::deals::GetReferralRequest { name },
                ))
                .await
                .unwrap()
                .into_inner()
                .referral
                .unwrap()
        }
    };
    let r1 = get(e1.referral.clone()).await;
    use cosell_proto::deals as dpb;
    assert_eq!(r1.deal_type(), dpb::DealType::CoSell);
    assert_eq!(r1.status(), dpb::Status::Active);
    assert_eq!(r1.mpn_location, "4000002");
    assert_eq!(r1.tracking.as_ref().unwrap().psc_deal_id, "E1");
    let customer = r1.customer.clone().unwrap();
    assert_eq!(
        customer.r#match(),
        dpb::CustomerMatch::Matched,
        "one Northwind in Oslo"
    );
    assert_eq!(customer.legal_name, "NORTHWIND TRADERS AS");
    assert_eq!(r1.solutions.len(), 1);
    assert_eq!(r1.deal_value.as_ref().unwrap().amount, "1200.50");
    assert!(r1.notes.contains("pilot first") && r1.notes.contains("won the pilot"));
    assert_eq!(
        r1.seller_contact.as_ref().unwrap().email,
        "sam.seller@platform.example"
    );
    let r2 = get(e2.referral.clone()).await;
    assert_eq!(r2.direction(), dpb::Direction::Inbound);
    assert_eq!(
        r2.status(),
        dpb::Status::Active,
        "inbound migrated deals arrive accepted"
    );
    assert_eq!(
        r2.customer.unwrap().r#match(),
        dpb::CustomerMatch::Unmatched,
        "two Tailspins in Bergen: no confident match"
    );

    // Migrated deals are never sent again: a second run takes only the failed one, and a later
    // export's new deal migrates on the next run.
    let again = start("rita.referrals@contoso.com").await.unwrap();
    assert_eq!(again.total, 1);
    wait().await;
    let later = format!("{first}E4,New in PSC,A1,Open,2022-01-05T10:00:00Z,no,Partner,,,,,,,,,,\n");
    import(later).await;
    let third = start("rita.referrals@contoso.com").await.unwrap();
    assert_eq!(third.total, 2, "E3 (failed before) and E4");
    // Followed as a stream until it is done.
    let mut watch = client()
        .watch_deal_migration(authed(
            &rita,
            pb::WatchDealMigrationRequest {
                parent: h.contoso.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut updates = Vec::new();
    while let Some(m) = watch.message().await.unwrap() {
        updates.push(m.status.unwrap());
    }
    let last = updates.last().expect("at least one update").clone();
    assert_ne!(last.state(), pb::DealMigrationState::InProgress);
    let last_run = last.run.clone().unwrap();
    assert_eq!(last_run.name, third.name);
    assert!(last_run.finish_time.is_some());
    assert_eq!((last_run.migrated, last_run.failed), (1, 1));
    assert_eq!(last.migrated, 3);
    let rows = report().await;
    assert_eq!(
        rows.iter()
            .find(|r| r.psc_deal_id == "E1")
            .unwrap()
            .referral,
        e1.referral
    );
    let listed = referrals
        .clone()
        .list_referrals(authed(&rita, dpb::ListReferralsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .referrals;
    assert_eq!(listed.len(), 3, "E1, E2, E4: each once");
}

/// The whole story across the four services: a PSC export is imported, users and deals migrate,
/// the referrals are in the right tabs with the right types, and a user completes a migrated
/// deal's missing fields and wins it.
#[tokio::test]
async fn the_migration_story_across_the_four_services() {
    use cosell_proto::deals as dpb;
    let h = Harness::start().await;
    // The partner's catalog: a co-sell-ready solution replacing PSC product P-1.
    let oli = h.token("oli.operator@platform.example").await;
    let solution = cosell_proto::deals::catalog_service_client::CatalogServiceClient::new(
        h.server.channel.clone(),
    )
    .create_solution(authed(
        &oli,
        dpb::CreateSolutionRequest {
            solution: Some(dpb::Solution {
                display_name: "Contoso Cloud Analytics".into(),
                kind: dpb::SolutionKind::PartnerSolution as i32,
                mpn_id: "4000001".into(),
                cosell_ready: true,
                legacy_product_ids: vec!["P-1".into()],
                ..Default::default()
            }),
            publisher: h.contoso.clone(),
        },
    ))
    .await
    .unwrap()
    .into_inner()
    .solution
    .unwrap();
    let accounts = "PartnerAccountId,PartnerAccountName,MpnId\nSEA,Contoso Seattle,4000002\n";
    let users = "UserEmail,FirstName,LastName,PartnerAccountId,Role\nnia.new@contoso.com,Nia,New,SEA,Seller\n";
    let deals = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,AssignedSellerEmail,CustomerName,CustomerCity,CustomerCountry,ContactEmail\n\
        S1,Co-sell deal,SEA,Open,2021-01-05T10:00:00Z,yes,Partner,sam.seller@platform.example,Northwind Traders AS,Oslo,NO,cy@northwind.example\n\
        S2,Sent by a seller,SEA,Open,2021-02-05T10:00:00Z,no,Microsoft,,Tailspin Toys AS,Bergen,NO,\n\
        S3,Own deal to finish,SEA,Open,2021-03-05T10:00:00Z,no,Partner,,Northwind Traders AS,Oslo,NO,\n";
    let products = "DealId,ProductId\nS1,P-1\n";
    h.import(
        "ada.admin@contoso.com",
        &h.contoso,
        &[
            ("accounts.csv", accounts.as_bytes().to_vec()),
            ("users.csv", users.as_bytes().to_vec()),
            ("deals.csv", deals.as_bytes().to_vec()),
            ("deal_products.csv", products.as_bytes().to_vec()),
        ],
    )
    .await
    .unwrap();
    let client =
        || pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone());

    // Users: Nia becomes a member with ROLE_REFERRALS_USER at the Seattle location.
    let ada = h.token("ada.admin@contoso.com").await;
    let run = client()
        .run_user_migration(authed(
            &ada,
            pb::RunUserMigrationRequest {
                parent: h.contoso.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run.migrated, 1);

    // Deals: Rita starts the migration and follows it to the end.
    let rita = h.token("rita.referrals@contoso.com").await;
    client()
        .start_deal_migration(authed(
            &rita,
            pb::StartDealMigrationRequest {
                parent: h.contoso.clone(),
            },
        ))
        .await
        .unwrap();
    let mut watch = client()
        .watch_deal_migration(authed(
            &rita,
            pb::WatchDealMigrationRequest {
                parent: h.contoso.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(m) = watch.message().await.unwrap() {
        last = m.status;
    }
    let run = last.unwrap().run.unwrap();
    assert_eq!((run.migrated, run.failed), (3, 0));

    // Nia, a migrated user, sees the migrated referrals of her location in the right tabs.
    let nia = h.token("nia.new@contoso.com").await;
    let referrals =
        dpb::referral_service_client::ReferralServiceClient::new(h.server.channel.clone());
    let tab = |direction: dpb::Direction| {
        let referrals = referrals.clone();
        let nia = nia.clone();
        async move {
            referrals
                .clone()
                .list_referrals(authed(
                    &nia,
                    dpb::ListReferralsRequest {
                        direction: direction as i32,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .referrals
        }
    };
    let outbound = tab(dpb::Direction::Outbound).await;
    let inbound = tab(dpb::Direction::Inbound).await;
    let by_psc = |list: &[dpb::Referral], id: &str| {
        list.iter()
            .find(|r| r.tracking.as_ref().is_some_and(|t| t.psc_deal_id == id))
            .cloned()
    };
    let s1 = by_psc(&outbound, "S1").expect("S1 in the Outbound tab");
    assert_eq!(s1.deal_type(), dpb::DealType::CoSell);
    assert_eq!(
        s1.seller_contact.as_ref().unwrap().email,
        "sam.seller@platform.example"
    );
    assert_eq!(s1.solutions[0].solution, solution.name);
    let s2 = by_psc(&inbound, "S2").expect("S2 in the Inbound tab");
    assert_eq!(s2.deal_type(), dpb::DealType::PartnerLed);
    assert_eq!(s2.status(), dpb::Status::Active);
    let s3 = by_psc(&outbound, "S3").expect("S3 in the Outbound tab");
    assert_eq!(s3.deal_type(), dpb::DealType::PartnerLed);
    assert_eq!(outbound.len() + inbound.len(), 3);

    // Nia completes S3's missing fields and wins it.
    let won = referrals
        .clone()
        .mark_referral_won(authed(
            &nia,
            dpb::MarkReferralWonRequest {
                name: s3.name.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        won.code(),
        tonic::Code::FailedPrecondition,
        "fields are missing first"
    );
    let updated = referrals
        .clone()
        .update_referral(authed(
            &nia,
            dpb::UpdateReferralRequest {
                referral: Some(dpb::Referral {
                    name: s3.name.clone(),
                    etag: s3.etag.clone(),
                    solutions: vec![dpb::ReferralSolution {
                        solution: solution.name.clone(),
                        ..Default::default()
                    }],
                    team: vec![dpb::Contact {
                        first_name: "Nia".into(),
                        last_name: "New".into(),
                        email: "nia.new@contoso.com".into(),
                        phone: "+1 425 555 0103".into(),
                    }],
                    deal_value: Some(dpb::Money {
                        currency_code: "NOK".into(),
                        amount: "500000".into(),
                    }),
                    estimated_close_date: "2027-02-28".into(),
                    notes: "Completed after the migration.".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: [
                        "solutions",
                        "team",
                        "deal_value",
                        "estimated_close_date",
                        "notes",
                    ]
                    .map(String::from)
                    .to_vec(),
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let won = referrals
        .clone()
        .mark_referral_won(authed(
            &nia,
            dpb::MarkReferralWonRequest {
                name: updated.name.clone(),
                etag: updated.etag.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(won.status(), dpb::Status::Closed);
    assert_eq!(won.substatus(), dpb::Substatus::Won);
}

#[tokio::test]
async fn the_cutover_switch() {
    let h = Harness::start().await;
    let client =
        || pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone());
    let get = |email: &'static str, parent: String| {
        let h = &h;
        async move {
            let token = h.token(email).await;
            client()
                .get_cutover(authed(&token, pb::GetCutoverRequest { parent }))
                .await
                .map(|r| r.into_inner().cutover.unwrap())
        }
    };
    let update = |email: &'static str, parent: String, on: bool| {
        let h = &h;
        async move {
            let token = h.token(email).await;
            client()
                .update_cutover(authed(
                    &token,
                    pb::UpdateCutoverRequest {
                        parent,
                        routed_to_new_system: on,
                    },
                ))
                .await
                .map(|r| r.into_inner().cutover.unwrap())
        }
    };
    let before = get("rita.referrals@contoso.com", h.contoso.clone())
        .await
        .unwrap();
    assert!(!before.routed_to_new_system);
    assert!(before.switch_time.is_none());
    assert_eq!(
        (
            before.psc_read_only_from.as_str(),
            before.psc_access_ends.as_str()
        ),
        ("2021-04-01", "2021-04-30")
    );
    assert_eq!(
        get("fay.admin@fabrikam.com", h.contoso.clone())
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );
    // Only platform operators make the switch, and only for a partner organization.
    assert_eq!(
        update("rita.referrals@contoso.com", h.contoso.clone(), true)
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );
    assert_eq!(
        update(
            "oli.operator@platform.example",
            format!("organizations/{}", uuid::Uuid::new_v4()),
            true
        )
        .await
        .unwrap_err()
        .code(),
        tonic::Code::NotFound
    );
    let on = update("oli.operator@platform.example", h.contoso.clone(), true)
        .await
        .unwrap();
    assert!(on.routed_to_new_system);
    assert_eq!(on.switched_by, "oli.operator@platform.example");
    // Sellers' tooling reads it; the migration status shows it.
    assert!(
        get("sam.seller@platform.example", h.contoso.clone())
            .await
            .unwrap()
            .routed_to_new_system
    );
    let rita = h.token("rita.referrals@contoso.com").await;
    let status = client()
        .get_deal_migration_status(authed(
            &rita,
            pb::GetDealMigrationStatusRequest {
                parent: h.contoso.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(status.cutover.unwrap().routed_to_new_system);
}
