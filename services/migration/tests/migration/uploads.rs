//! An upload's life on the server: one import at a time per organization, the lock let go on
//! every way out (done, refused, cancelled by the client, idle, shut down), and nothing of an
//! upload that did not finish imported.

use std::time::Duration;

use cosell_proto::identity as ipb;
use cosell_proto::migration as pb;
use cosell_testkit::authed;
use cosell_testkit::upload::OpenUpload;
use tonic::Status;
use tonic_types::StatusExt;

use crate::harness::{Harness, MigrationIn};

const ACCOUNTS: &str = "PartnerAccountId,PartnerAccountName,MpnId\nA1,Seattle,4000002\n";
const DEALS: &str = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source\n\
    D1,Lakehouse,A1,Open,2021-01-05T10:00:00Z,no,Partner\n";

fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

fn first(organization: &str) -> pb::ImportPscExportRequest {
    pb::ImportPscExportRequest {
        organization: organization.to_owned(),
        file_name: "accounts.csv".into(),
        chunk: ACCOUNTS.as_bytes().to_vec(),
    }
}

fn last() -> pb::ImportPscExportRequest {
    pb::ImportPscExportRequest {
        file_name: "deals.csv".into(),
        chunk: DEALS.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// An upload of `organization` by `email`, its first message sent, held open.
async fn open_upload(h: &Harness, email: &str, organization: &str) -> OpenUpload {
    let token = h.token(email).await;
    OpenUpload::start(h.server.channel.clone(), &token, first(organization)).await
}

/// Two uploads of `organization` at once: one goes on (its stream open), the other is refused
/// at once; (the refusal, the upload going on).
async fn two_at_once(h: &Harness, organization: &str) -> (Status, OpenUpload) {
    let (answer, going_on) = OpenUpload::first_answer(
        open_upload(h, "ada.admin@contoso.com", organization).await,
        open_upload(h, "rita.referrals@contoso.com", organization).await,
    )
    .await;
    (answer.expect_err("one of the two is refused"), going_on)
}

async fn organization_of(h: &Harness, email: &str) -> String {
    let token = h.token(email).await;
    ipb::access_service_client::AccessServiceClient::new(h.server.channel.clone())
        .get_caller(authed(&token, ipb::GetCallerRequest {}))
        .await
        .unwrap()
        .into_inner()
        .organization
}

pub(crate) async fn imports(h: &Harness, organization: &str) -> usize {
    let token = h.token("ada.admin@contoso.com").await;
    pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone())
        .list_psc_imports(authed(
            &token,
            pb::ListPscImportsRequest {
                parent: organization.to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .imports
        .len()
}

fn bundle() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("accounts.csv", ACCOUNTS.as_bytes().to_vec()),
        ("deals.csv", DEALS.as_bytes().to_vec()),
    ]
}

#[tokio::test]
async fn one_import_at_a_time_per_organization_and_the_lock_goes_on_every_way_out() {
    let h = Harness::start_with(MigrationIn::TheServer).await;
    let contoso = h.contoso.clone();
    // Two uploads of Contoso at once: one goes on, the other is refused at once.
    let (refused, going_on) = two_at_once(&h, &contoso).await;
    assert_eq!(refused.code(), tonic::Code::Aborted, "{refused:?}");
    assert_eq!(reason(&refused), "IMPORT_IN_PROGRESS");
    // Another organization's import goes on meanwhile.
    let fabrikam = organization_of(&h, "fay.admin@fabrikam.com").await;
    let fabrikam_accounts = "PartnerAccountId,PartnerAccountName,MpnId\nF1,Fabrikam,5000001\n";
    h.import(
        "fay.admin@fabrikam.com",
        &fabrikam,
        &[
            ("accounts.csv", fabrikam_accounts.as_bytes().to_vec()),
            ("deals.csv", DEALS.replace(",A1,", ",F1,").into_bytes()),
        ],
    )
    .await
    .expect("another organization imports meanwhile");
    // Done, the lock goes: the next import goes on.
    assert_eq!(going_on.finish(last()).await.unwrap().deals_added, 1);
    h.import("ada.admin@contoso.com", &contoso, &bundle())
        .await
        .expect("the lock went with the finished import");

    // Refused (a bundle without deals.csv), the lock goes too.
    let refused = h
        .import(
            "ada.admin@contoso.com",
            &contoso,
            &[("accounts.csv", ACCOUNTS.as_bytes().to_vec())],
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    h.import("ada.admin@contoso.com", &contoso, &bundle())
        .await
        .expect("the lock went with the refused import");
    assert_eq!(imports(&h, &contoso).await, 3);

    // Cancelled by its client (the call dropped mid-upload), it goes as the server drops the
    // call; nothing of the upload is imported.
    let (refused, open) = two_at_once(&h, &contoso).await;
    assert_eq!(
        reason(&refused),
        "IMPORT_IN_PROGRESS",
        "the open upload holds it"
    );
    open.call.abort();
    drop(open.messages);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match h.import("ada.admin@contoso.com", &contoso, &bundle()).await {
            Ok(_) => break,
            Err(s) if reason(&s) == "IMPORT_IN_PROGRESS" => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the cancelled upload's lock was never let go"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => panic!("{s:?}"),
        }
    }
    assert_eq!(
        imports(&h, &contoso).await,
        4,
        "the cancelled upload imported nothing"
    );
}

#[tokio::test]
async fn an_upload_that_sends_nothing_is_cancelled_and_imports_nothing() {
    let h = Harness::start_configured(
        MigrationIn::TheServer,
        cosell_migration::Options {
            upload_idle: Duration::from_millis(300),
        },
    )
    .await;
    let contoso = h.contoso.clone();
    let idle = open_upload(&h, "ada.admin@contoso.com", &contoso).await;
    // The client sends nothing more (and keeps the stream open).
    let cancelled = tokio::time::timeout(Duration::from_secs(20), &mut { idle.call })
        .await
        .expect("the server cancels the idle upload")
        .unwrap()
        .unwrap_err();
    assert_eq!(cancelled.code(), tonic::Code::DeadlineExceeded);
    assert_eq!(reason(&cancelled), "UPLOAD_IDLE");
    assert!(cancelled.message().contains("nothing of it is imported"));
    assert_eq!(imports(&h, &contoso).await, 0);
    // Its lock went with it.
    h.import("ada.admin@contoso.com", &contoso, &bundle())
        .await
        .unwrap();
    drop(idle.messages);
}

#[tokio::test]
async fn an_upload_in_flight_when_the_server_shuts_down_ends_unavailable_and_imports_nothing() {
    let h = Harness::start_with(MigrationIn::TheServer).await;
    let contoso = h.contoso.clone();
    let migration = h.migration.clone().unwrap();
    // An upload in flight (it holds the lock: another is refused); then the shutdown.
    let (refused, open) = two_at_once(&h, &contoso).await;
    assert_eq!(reason(&refused), "IMPORT_IN_PROGRESS");
    migration.end_streams();
    let ended = open.finish(last()).await.unwrap_err();
    assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended:?}");
    assert_eq!(reason(&ended), "SHUTTING_DOWN");
    // A new upload meanwhile is refused the same way.
    let late = h
        .import("ada.admin@contoso.com", &contoso, &bundle())
        .await
        .unwrap_err();
    assert_eq!(reason(&late), "SHUTTING_DOWN");
    migration.release().await;
    assert_eq!(imports(&h, &contoso).await, 0, "the snapshot is unchanged");
}

#[tokio::test]
async fn an_upload_naming_no_organization_imports_into_the_callers_own() {
    let h = Harness::start_with(MigrationIn::TheServer).await;
    let before = imports(&h, &h.contoso).await;
    let done = h
        .import("ada.admin@contoso.com", "", &bundle())
        .await
        .expect("Ada's own organization");
    assert!(
        done.name.starts_with(&format!("{}/pscImports/", h.contoso)),
        "{}",
        done.name
    );
    assert_eq!(imports(&h, &h.contoso).await, before + 1);
}
