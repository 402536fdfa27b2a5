//! The user migration wizard (SPEC 5.3): who sees it (any referrals admin may view it), a run's
//! outcomes, and a run that stopped between giving a role and recording it.

use cosell_proto::migration as pb;
use cosell_testkit::authed;

use crate::api::DEALS as ONE_DEAL;
use crate::harness::{Harness, MigrationIn};

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
    h.import_into_contoso(&[
        ("accounts.csv", ACCOUNTS),
        ("users.csv", USERS),
        ("deals.csv", DEALS),
    ])
    .await;
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

#[tokio::test]
async fn the_user_migration_wizard() {
    let h = Harness::start().await;
    let accounts = "PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso Seattle,4000002\nA2,Wrong org,5000001\nA3,Contoso global,4000001\n";
    let users = "UserEmail,FirstName,LastName,PartnerAccountId,Role\n\
        ada.admin@contoso.com,Ada,Admin,A1,Admin\n\
        new.person@contoso.com,New,Person,A1,Seller\n\
        new.person@contoso.com,New,Person,A3,Deal Manager\n\
        rita.referrals@contoso.com,Rita,Referrals,A1,Admin\n\
        rita.referrals@contoso.com,Rita,Referrals,A3,Admin\n\
        bob@gmail.com,Bob,Personal,A1,Seller\n\
        pat@agency.example,Pat,Agency,A1,Seller\n\
        wes@contoso.com,Wes,Wrong,A2,Seller\n\
        john doe@contoso.com,John,Doe,A1,Seller\n";
    h.import_into_contoso(&[
        ("accounts.csv", accounts),
        ("users.csv", users),
        ("deals.csv", ONE_DEAL),
    ])
    .await;
    let client =
        || pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone());
    let run = |email: &'static str| h.run_user_migration(email);
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
    assert_eq!(listed.len(), 9);
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
        E::AlreadyHasRole,
        "another referrals role than the mapped one: reported, not changed"
    );
    assert_eq!(
        outcome(rows, "rita.referrals@contoso.com", "A3"),
        (
            S::AlreadyHasRole,
            E::Unspecified,
            "ROLE_REFERRALS_ADMIN".into(),
            "Entire organization".into()
        ),
        "the mapped role, held before: an outcome of its own, neither migrated nor an error"
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
        outcome(&second.rows, "rita.referrals@contoso.com", "A3").0,
        S::AlreadyHasRole
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

/// A run that stopped after identity gave the role and before the row recorded it: the next run
/// records the row MIGRATED with that assignment (the row said ASSIGNING), never twice, and
/// never as a role the user held before.
#[tokio::test]
async fn a_run_that_stopped_after_giving_the_role_is_recorded_migrated() {
    let h = Harness::start().await;
    let users = "UserEmail,FirstName,LastName,PartnerAccountId,Role\n\
        seattle.seller@contoso.com,Sea,Seller,A1,Seller\n";
    h.import_into_contoso(&[
        ("accounts.csv", ACCOUNTS),
        ("users.csv", users),
        ("deals.csv", DEALS),
    ])
    .await;
    let ada = h.token("ada.admin@contoso.com").await;
    let run = || async { h.run_user_migration("ada.admin@contoso.com").await.unwrap() };
    let first = run().await;
    assert_eq!(first.rows[0].status(), pb::UserMigrationStatus::Migrated);
    let store = &h.migration.as_ref().unwrap().store;
    let org: uuid::Uuid = h
        .contoso
        .trim_start_matches("organizations/")
        .parse()
        .unwrap();
    let recorded = store.user_outcomes(org).await.unwrap();
    let row = recorded.values().next().unwrap().clone();
    let assignment = row.pc_assignment.clone();
    let rewind = |status: &str| {
        let row = cosell_migration::store::entities::user_migration::Model {
            status: status.into(),
            pc_assignment: String::new(),
            ..row.clone()
        };
        async move { store.save_user_outcome(row).await.unwrap() }
    };

    // As the store looks when the process died right after identity answered.
    rewind("ASSIGNING").await;
    let listed = run().await;
    assert_eq!(listed.rows[0].status(), pb::UserMigrationStatus::Migrated);
    assert_eq!(listed.migrated, 1);
    let again = store.user_outcomes(org).await.unwrap();
    assert_eq!(again.values().next().unwrap().pc_assignment, assignment);

    // Without the ASSIGNING mark, the same role is one the user held before.
    rewind("NOT_MIGRATED").await;
    let held = run().await;
    assert_eq!(
        held.rows[0].status(),
        pb::UserMigrationStatus::AlreadyHasRole
    );
    assert_eq!((held.migrated, held.errors), (0, 0));

    // Identity holds one assignment of the role, not two.
    let grants = cosell_proto::identity::role_service_client::RoleServiceClient::new(
        h.server.channel.clone(),
    )
    .list_role_assignments(authed(
        &ada,
        cosell_proto::identity::ListRoleAssignmentsRequest {
            parent: h.contoso.clone(),
            user: held.rows[0].user.clone(),
            ..Default::default()
        },
    ))
    .await
    .unwrap()
    .into_inner()
    .role_assignments;
    assert_eq!(grants.len(), 1);
}
