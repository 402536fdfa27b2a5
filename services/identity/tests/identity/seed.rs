//! The demo data, and that seeding twice changes nothing.

use cosell_proto::identity::{self as pb, Role};
use cosell_testkit::authed;

use crate::harness::Harness;

async fn snapshot(h: &Harness) -> Vec<String> {
    let oli = h.token("oli.operator@platform.example").await;
    let orgs = h
        .orgs()
        .list_organizations(authed(&oli, pb::ListOrganizationsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .organizations;
    let mut lines = Vec::new();
    for o in orgs {
        lines.push(format!(
            "{} {} {:?} {} {:?}",
            o.name, o.display_name, o.verified_domains, o.vorg_mpn_id, o.locations
        ));
        let assignments = h
            .roles()
            .list_role_assignments(authed(
                &oli,
                pb::ListRoleAssignmentsRequest {
                    parent: o.name.clone(),
                    page_size: 1000,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .role_assignments;
        for a in assignments {
            lines.push(format!(
                "  {} {} {:?} {}",
                a.name,
                a.user_email,
                Role::try_from(a.role).unwrap(),
                a.mpn_id
            ));
        }
    }
    lines
}

#[tokio::test]
async fn demo_data_is_as_documented_and_seeding_twice_changes_nothing() {
    let h = Harness::start().await;
    let first = snapshot(&h).await;
    // Three organizations: the platform, Contoso, Fabrikam.
    assert_eq!(
        first.iter().filter(|l| !l.starts_with("  ")).count(),
        3,
        "{first:#?}"
    );
    let contoso = first.iter().find(|l| l.contains("Contoso")).unwrap();
    assert!(
        contoso.contains("\"contoso.com\"") && contoso.contains("4000001"),
        "{contoso}"
    );
    assert!(
        contoso.contains("4000002") && contoso.contains("Seattle") && contoso.contains("Berlin"),
        "{contoso}"
    );
    for expected in [
        "ada.admin@contoso.com AccountAdmin ",
        "ada.admin@contoso.com GlobalAdmin ",
        "rita.referrals@contoso.com ReferralsAdmin ",
        "leo.location@contoso.com ReferralsAdmin 4000003",
        "uma.user@contoso.com ReferralsUser 4000002",
        "bea.profile@contoso.com BusinessProfileAdmin ",
        "fay.admin@fabrikam.com ReferralsUser ",
        "sam.seller@platform.example PlatformSeller ",
        "oli.operator@platform.example PlatformOperator ",
    ] {
        let found = first
            .iter()
            .any(|l| l.trim_end().ends_with(expected.trim_end()));
        assert!(found, "missing {expected:?} in {first:#?}");
    }

    cosell_identity::seed::demo(&h.identity, "platform.example")
        .await
        .expect("seeds again");
    // A restart over the same database seeds a third time.
    let again = cosell_identity::start(&h.config).await.expect("restarts");
    drop(again);
    assert_eq!(snapshot(&h).await, first);
}
