//! The assigned seller a PSC export names is trusted only when identity knows them as an
//! enabled platform seller: only then is a migrated co-sell deal's platform referral accepted
//! in their name.

use cosell_proto::deals as dpb;
use cosell_proto::identity as ipb;
use cosell_testkit::authed;

use crate::harness::{Harness, MigrationIn};

const ACCOUNTS: &str = "PartnerAccountId,PartnerAccountName,MpnId\nA1,Seattle,4000002\n";

#[tokio::test]
async fn only_an_enabled_platform_seller_named_in_the_export_accepts_the_platform_referral() {
    let h = Harness::start_with(MigrationIn::TheServer).await;
    let channel = || h.server.channel.clone();
    let oli = h.token("oli.operator@platform.example").await;
    let sam = h.token("sam.seller@platform.example").await;
    let platform = ipb::access_service_client::AccessServiceClient::new(channel())
        .get_caller(authed(&sam, ipb::GetCallerRequest {}))
        .await
        .unwrap()
        .into_inner()
        .organization;
    // Dan was a platform seller; an operator disabled him.
    let mut users = ipb::user_service_client::UserServiceClient::new(channel());
    let dan = users
        .create_user(authed(
            &oli,
            ipb::CreateUserRequest {
                parent: platform.clone(),
                email: "dan.disabled@platform.example".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    ipb::role_service_client::RoleServiceClient::new(channel())
        .assign_role(authed(
            &oli,
            ipb::AssignRoleRequest {
                user: dan.name.clone(),
                role: ipb::Role::PlatformSeller as i32,
                mpn_id: String::new(),
            },
        ))
        .await
        .unwrap();
    users
        .set_user_state(authed(
            &oli,
            ipb::SetUserStateRequest {
                name: dan.name,
                state: ipb::UserState::Disabled as i32,
            },
        ))
        .await
        .unwrap();

    let deals = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,AssignedSellerEmail\n\
        S1,A real seller,A1,Open,2021-01-05T10:00:00Z,yes,Partner,Sam.Seller@platform.example\n\
        S2,Nobody,A1,Open,2021-01-05T10:00:00Z,yes,Partner,nobody@platform.example\n\
        S3,A disabled seller,A1,Open,2021-01-05T10:00:00Z,yes,Partner,dan.disabled@platform.example\n\
        S4,A partner user,A1,Open,2021-01-05T10:00:00Z,yes,Partner,ada.admin@contoso.com\n\
        S5,From a platform seller,A1,Open,2021-01-05T10:00:00Z,yes,Microsoft,nobody@platform.example\n";
    h.import_into_contoso(&[("accounts.csv", ACCOUNTS), ("deals.csv", deals)])
        .await;
    let report = h.migrate_deals().await;
    let rita = h.token("rita.referrals@contoso.com").await;

    let referrals = dpb::referral_service_client::ReferralServiceClient::new(channel());
    // Each deal's two sides: the platform's (as a platform seller lists it) and the partner's.
    let sides = |id: &'static str| {
        let row = report.iter().find(|r| r.psc_deal_id == id).unwrap().clone();
        let (sam, rita, mut referrals) = (sam.clone(), rita.clone(), referrals.clone());
        async move {
            assert_eq!(row.state, "MIGRATED", "{row:?}");
            let platform = referrals
                .list_referrals(authed(
                    &sam,
                    dpb::ListReferralsRequest {
                        engagement: row.engagement.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .referrals;
            assert_eq!(platform.len(), 1, "{id}: the platform's side");
            let partner = referrals
                .get_referral(authed(
                    &rita,
                    dpb::GetReferralRequest {
                        name: row.referral.clone(),
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .referral
                .unwrap();
            (platform[0].clone(), partner, row.notes)
        }
    };
    let contact = |r: &dpb::Referral| r.seller_contact.as_ref().map(|c| c.email.clone());

    let (platform, partner, notes) = sides("S1").await;
    assert_eq!(
        (platform.status(), platform.substatus()),
        (dpb::Status::Active, dpb::Substatus::Accepted),
        "a real seller accepts"
    );
    assert_eq!(
        contact(&partner).as_deref(),
        Some("Sam.Seller@platform.example")
    );
    assert_eq!(notes, "");

    for (id, why) in [
        ("S2", "is not a platform seller"),
        ("S3", "is a disabled platform seller"),
        ("S4", "is not a platform seller"),
    ] {
        let (platform, partner, notes) = sides(id).await;
        assert_eq!(
            (platform.status(), platform.substatus()),
            (dpb::Status::New, dpb::Substatus::Received),
            "{id}: in the sellers' queue"
        );
        assert_eq!(
            (contact(&platform), contact(&partner)),
            (None, None),
            "{id}"
        );
        assert!(
            notes.contains("waits in the sellers' queue") && notes.contains(why),
            "{id}: {notes}"
        );
    }
    // Created by a platform seller in PSC: the platform's side stays accepted, without the
    // contact nobody vouches for.
    let (platform, partner, notes) = sides("S5").await;
    assert_eq!(platform.status(), dpb::Status::Active);
    assert_eq!(partner.direction(), dpb::Direction::Inbound);
    assert_eq!((contact(&platform), contact(&partner)), (None, None));
    assert!(
        notes.contains("seller contact `nobody@platform.example` left out"),
        "{notes}"
    );
}

/// A deal with a field longer than the deals service accepts (PSC took names of any length)
/// fails alone, saying which field; the deals sent with it migrate. (The deals service refuses
/// a whole batch holding such a deal, so sending it would stall the run.)
#[tokio::test]
async fn a_deal_over_a_documented_limit_fails_alone_and_the_run_completes() {
    let h = Harness::start_with(MigrationIn::TheServer).await;
    let long_name = "N".repeat(250);
    let deals = format!(
        "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source\n\
         L1,{long_name},A1,Open,2021-01-05T10:00:00Z,no,Partner\n\
         L2,A fine name,A1,Open,2021-01-05T10:00:00Z,no,Partner\n"
    );
    h.import(
        "ada.admin@contoso.com",
        &h.contoso,
        &[
            ("accounts.csv", ACCOUNTS.as_bytes().to_vec()),
            ("deals.csv", deals.into_bytes()),
        ],
    )
    .await
    .unwrap();
    let report = h.migrate_deals().await;
    let row = |id: &str| report.iter().find(|r| r.psc_deal_id == id).unwrap().clone();
    let long = row("L1");
    assert_eq!(long.state, "FAILED", "{long:?}");
    assert!(
        long.error.contains("referral.display_name") && long.error.contains("at most 200"),
        "{long:?}"
    );
    assert_eq!(row("L2").state, "MIGRATED");
}
