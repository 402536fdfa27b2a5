//! Every RPC refuses a string over its documented maximum length (the codec of
//! `cosell_proto::limits`) with INVALID_ARGUMENT and a violation of that field, naming the
//! limit, before it does anything else.

use cosell_proto::migration as pb;
use cosell_testkit::authed;
use tonic::Status;
use tonic_types::StatusExt;

use crate::harness::{Harness, MigrationIn};

/// The field violations of `status`, as (field, description).
fn violations(status: &Status) -> Vec<(String, String)> {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| {
                    // The limit the description names (`... at most 100 are accepted`).
                    let limit = v
                        .description
                        .find("at most ")
                        .map(|i| v.description[i..].split(" are").next().unwrap_or_default())
                        .unwrap_or(&v.description);
                    (v.field.clone(), limit.to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn every_rpc_refuses_a_value_over_its_maximum() {
    let h = Harness::start_with(MigrationIn::TheServer).await;
    let token = h.token("ada.admin@contoso.com").await;
    let client =
        || pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone());
    // Long enough to pass every maximum, and still a well-formed organization name.
    let long = format!("organizations/{}", "0".repeat(200));
    let parent_too_long = vec![("parent".to_string(), "at most 100".to_string())];
    macro_rules! refused {
        ($rpc:ident, $request:expr) => {{
            let status = client()
                .$rpc(authed(&token, $request))
                .await
                .map(|_| ())
                .unwrap_err();
            violations(&status)
        }};
    }
    let parent = || long.clone();
    assert_eq!(
        refused!(
            list_psc_imports,
            pb::ListPscImportsRequest { parent: parent() }
        ),
        parent_too_long
    );
    assert_eq!(
        refused!(get_mpn_check, pb::GetMpnCheckRequest { parent: parent() }),
        parent_too_long
    );
    assert_eq!(
        refused!(
            get_deal_migration_status,
            pb::GetDealMigrationStatusRequest { parent: parent() }
        ),
        parent_too_long
    );
    assert_eq!(
        refused!(
            list_user_migration,
            pb::ListUserMigrationRequest { parent: parent() }
        ),
        parent_too_long
    );
    assert_eq!(
        refused!(
            run_user_migration,
            pb::RunUserMigrationRequest { parent: parent() }
        ),
        parent_too_long
    );
    assert_eq!(
        refused!(
            start_deal_migration,
            pb::StartDealMigrationRequest { parent: parent() }
        ),
        parent_too_long
    );
    assert_eq!(
        refused!(
            watch_deal_migration,
            pb::WatchDealMigrationRequest { parent: parent() }
        ),
        parent_too_long
    );
    assert_eq!(
        refused!(
            download_deal_migration_report,
            pb::DownloadDealMigrationReportRequest { parent: parent() }
        ),
        parent_too_long
    );
    assert_eq!(
        refused!(get_cutover, pb::GetCutoverRequest { parent: parent() }),
        parent_too_long
    );
    assert_eq!(
        refused!(
            update_cutover,
            pb::UpdateCutoverRequest {
                parent: parent(),
                routed_to_new_system: true
            }
        ),
        parent_too_long
    );
    // Every field at once is named.
    let token_too_long = "t".repeat(1001);
    let both = vec![
        parent_too_long[0].clone(),
        ("page_token".to_string(), "at most 1,000".to_string()),
    ];
    assert_eq!(
        refused!(
            list_deal_readiness,
            pb::ListDealReadinessRequest {
                parent: parent(),
                page_token: token_too_long.clone(),
                page_size: 0
            }
        ),
        both
    );
    assert_eq!(
        refused!(
            list_deal_migration_report,
            pb::ListDealMigrationReportRequest {
                parent: parent(),
                page_token: token_too_long,
                page_size: 0
            }
        ),
        both
    );
    let fields = |v: Vec<(String, String)>| v.into_iter().map(|(f, _)| f).collect::<Vec<_>>();
    assert_eq!(
        fields(refused!(
            correct_mpn_association,
            pb::CorrectMpnAssociationRequest {
                parent: h.contoso.clone(),
                account_id: "a".repeat(101),
                mpn_id: "4".repeat(21),
            }
        )),
        ["account_id", "mpn_id"]
    );

    // An upload: its first message before anything is authorized or locked, and any later one.
    let message = |organization: &str, file_name: &str| pb::ImportPscExportRequest {
        organization: organization.to_owned(),
        file_name: file_name.to_owned(),
        chunk: b"PartnerAccountId,PartnerAccountName,MpnId\n".to_vec(),
    };
    let upload = |messages: Vec<pb::ImportPscExportRequest>| {
        let token = token.clone();
        async move {
            client()
                .import_psc_export(authed(&token, tokio_stream::iter(messages)))
                .await
                .map(|_| ())
                .unwrap_err()
        }
    };
    let first = upload(vec![message(&long, "accounts.csv")]).await;
    assert_eq!(
        violations(&first),
        [("organization".to_string(), "at most 100".to_string())]
    );
    let later = upload(vec![
        message(&h.contoso, "accounts.csv"),
        message("", &"f".repeat(256)),
    ])
    .await;
    assert_eq!(fields(violations(&later)), ["file_name"], "{later:?}");
    assert_eq!(
        crate::uploads::imports(&h, &h.contoso).await,
        0,
        "nothing of a refused upload is imported"
    );
}
