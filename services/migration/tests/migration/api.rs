//! `MigrationService/ImportPscExport` through gRPC, with identity deciding who may call it; the
//! MPN check and the deal eligibility and readiness that an import leads to.

use std::io::Write;

use cosell_proto::migration as pb;
use cosell_testkit::authed;

use crate::harness::Harness;

const ACCOUNTS: &str = "PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso US,4000002\n";
pub(crate) const DEALS: &str = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source\nD1,Lakehouse,A1,Open,2021-01-05T10:00:00Z,yes,Partner\nD2,Orphan,A7,Open,2021-01-05T10:00:00Z,no,Partner\n";

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
        E1,Ready,A1,Open,2020-01-01T00:00:00Z,no,Partner,,,Northwind Traders,Oslo,NO,,100,USD,2027-01-01,notes\n\
        E2,Bare co-sell,A1,Open,2021-05-01T00:00:00Z,yes,Partner,,,,,,,,,,\n\
        E3,Two Tailspins,A1,Open,2021-05-01T00:00:00Z,no,Partner,,,Tailspin Toys,Bergen,NO,,,,,\n\
        E4,Nobody known,A1,Open,2021-05-01T00:00:00Z,no,Partner,,,Fourth Coffee,Oslo,NO,,,,,\n\
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
    h.import_into_contoso(&[
        ("accounts.csv", accounts),
        ("deals.csv", deals),
        ("deal_products.csv", products),
        ("deal_team.csv", team),
    ])
    .await;
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
    assert_eq!((status.total, status.eligible), (12, 4));
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
    // Readiness: E1 lacks nothing (its product maps to a solution) and its customer is the
    // one Northwind Traders in Oslo; E2 lacks everything and names no customer to look up;
    // E3's customer is two entities, E4's none.
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
    let outcomes: Vec<(&str, pb::CustomerMatchOutcome)> = ready
        .deals
        .iter()
        .map(|d| (d.psc_deal_id.as_str(), d.customer_match()))
        .collect();
    use pb::CustomerMatchOutcome as M;
    assert_eq!(
        outcomes,
        [
            ("E2", M::NotLookedUp),
            ("E3", M::Ambiguous),
            ("E4", M::NotFound)
        ]
    );
    assert_eq!(
        ready.customer_matches,
        Some(pb::CustomerMatchCounts {
            matched: 1,
            ambiguous: 1,
            not_found: 1,
            not_looked_up: 1,
        })
    );
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
    // Page by page: the counts come with the first page only.
    let page = |page_token: String| {
        let (client, rita, parent) = (client.clone(), rita.clone(), h.contoso.clone());
        async move {
            client
                .clone()
                .list_deal_readiness(authed(
                    &rita,
                    pb::ListDealReadinessRequest {
                        parent,
                        page_size: 2,
                        page_token,
                    },
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = page(String::new()).await;
    let ids = |p: &pb::ListDealReadinessResponse| -> Vec<String> {
        p.deals.iter().map(|d| d.psc_deal_id.clone()).collect()
    };
    assert_eq!(ids(&first), ["E2", "E3"]);
    assert_eq!(first.customer_matches, ready.customer_matches);
    let second = page(first.next_page_token.clone()).await;
    assert_eq!(ids(&second), ["E4"]);
    assert!(second.next_page_token.is_empty() && second.customer_matches.is_none());
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
