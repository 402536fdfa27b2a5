//! Who sees the user migration wizard (SPEC 5.3: any referrals admin may view it).

use cosell_proto::migration as pb;
use cosell_testkit::authed;

use crate::api::{Harness, MigrationIn};

const ACCOUNTS: &str = "PartnerAccountId,PartnerAccountName,MpnId\n\
    A1,Contoso Seattle,4000002\nA3,Contoso Portland,4000003\nA9,Contoso global,4000001\n";
const USERS: &str = "UserEmail,FirstName,LastName,PartnerAccountId,Role\n\
    seattle.seller@contoso.com,Sea,Seller,A1,Seller\n\
    portland.seller@contoso.com,Port,Seller,A3,Seller\n\
    global.manager@contoso.com,Glo,Manager,A9,Deal Manager\n";
const DEALS: &str = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source\n\
    D1,Lakehouse,A1,Open,2021-01-05T10:00:00Z,yes,Partner\n";

#[tokio::test]
async fn a_location_scoped_referrals_admin_views_the_rows_of_its_locations() {
    let h = Harness::start_with(MigrationIn::TheServer).await;
    h.import(
        "ada.admin@contoso.com",
        &h.contoso,
        &[
            ("accounts.csv", ACCOUNTS.as_bytes().to_vec()),
            ("users.csv", USERS.as_bytes().to_vec()),
            ("deals.csv", DEALS.as_bytes().to_vec()),
        ],
    )
    .await
    .unwrap();
    let list = |email: &'static str| {
        let h = &h;
        async move {
            let token = h.token(email).await;
            pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone())
                .list_user_migration(authed(
                    &token,
                    pb::ListUserMigrationRequest {
                        parent: h.contoso.clone(),
                    },
                ))
                .await
                .map(|r| {
                    let mut emails: Vec<String> =
                        r.into_inner().rows.into_iter().map(|r| r.email).collect();
                    emails.sort();
                    emails
                })
        }
    };
    // The account admin and an org-wide referrals admin: every row.
    for email in ["ada.admin@contoso.com", "rita.referrals@contoso.com"] {
        assert_eq!(list(email).await.unwrap().len(), 3, "{email}");
    }
    // Leo administers the referrals of 4000003 only: the row whose role would cover it.
    assert_eq!(
        list("leo.location@contoso.com").await.unwrap(),
        ["portland.seller@contoso.com"]
    );
    // A referrals user (not an admin) may not look, nor another organization's admin.
    let uma = list("uma.user@contoso.com").await.unwrap_err();
    assert_eq!(uma.code(), tonic::Code::PermissionDenied);
    let fay = list("fay.admin@fabrikam.com").await.unwrap_err();
    assert_eq!(fay.code(), tonic::Code::NotFound);
}
