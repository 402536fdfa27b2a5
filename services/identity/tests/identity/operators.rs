//! The first platform operators of a real deployment, named at start: they exist with
//! `ROLE_PLATFORM_OPERATOR`, can onboard a partner organization, and naming them again (or
//! naming others) changes nothing and removes no one.

use cosell_identity::domain::Role;
use cosell_identity::store::UserFilter;
use cosell_proto::identity as pb;
use cosell_testkit::authed;

use crate::harness::Harness;

const OPERATORS: [&str; 2] = ["root@platform.example", "alice@operators.example"];

async fn platform_user(h: &Harness, email: &str) -> Option<cosell_identity::domain::User> {
    h.identity
        .store
        .list_users(
            h.identity.platform_org,
            &UserFilter {
                email: Some(email.into()),
                ..UserFilter::default()
            },
            None,
            10,
        )
        .await
        .unwrap()
        .into_iter()
        .next()
}

async fn is_operator(h: &Harness, email: &str) -> bool {
    let Some(u) = platform_user(h, email).await else {
        return false;
    };
    let grants = h.identity.store.user_grants(u.id).await.unwrap().unwrap();
    grants.roles.contains(&(Role::PlatformOperator, None))
}

#[tokio::test]
async fn operators_named_at_start_onboard_a_partner_organization() {
    let h = Harness::start_with(|c| {
        c.demo = false;
        c.platform_operators = OPERATORS.iter().map(|s| s.to_string()).collect();
    })
    .await;
    for email in OPERATORS {
        assert!(is_operator(&h, email).await, "{email} is an operator");
    }
    let guest = platform_user(&h, "alice@operators.example").await.unwrap();
    assert_eq!(
        guest.kind,
        cosell_identity::domain::UserKind::Guest,
        "another domain than the platform's is a guest of the platform"
    );

    // The operator creates a partner organization with its first account admin, who can then
    // manage their own users.
    let root = h.token("root@platform.example").await;
    let created = h
        .orgs()
        .create_organization(authed(
            &root,
            pb::CreateOrganizationRequest {
                display_name: "Northwind".into(),
                tenant_id: "6f1a2b3c-0000-4000-8000-000000000001".into(),
                verified_domains: vec!["northwind.example".into()],
                vorg_mpn_id: "6100001".into(),
                account_admin_email: "nina.admin@northwind.example".into(),
                account_admin_given_name: "Nina".into(),
                account_admin_family_name: "Admin".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("an operator named at start creates an organization")
        .into_inner();
    let org = created.organization.unwrap().name;
    let nina = h.token("nina.admin@northwind.example").await;
    h.users()
        .list_users(authed(
            &nina,
            pb::ListUsersRequest {
                parent: org,
                ..Default::default()
            },
        ))
        .await
        .expect("the new organization's admin manages its users");
}

#[tokio::test]
async fn naming_operators_again_changes_nothing_and_removes_no_one() {
    let h = Harness::start_with(|c| {
        c.demo = false;
        c.platform_operators = vec![OPERATORS[0].to_string()];
    })
    .await;
    let first = platform_user(&h, OPERATORS[0]).await.unwrap();
    let domain = h.config.platform_domain.clone();
    let again = vec![OPERATORS[0].to_string(), OPERATORS[0].to_uppercase()];
    cosell_identity::operators::ensure(&h.identity, &domain, &again)
        .await
        .expect("idempotent");
    let users = h.identity.store.users_by_email(OPERATORS[0]).await.unwrap();
    assert_eq!(users.len(), 1, "no second user");
    assert_eq!(users[0].id, first.id);
    let grants = h
        .identity
        .store
        .user_grants(first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        grants.roles,
        vec![(Role::PlatformOperator, None)],
        "one grant"
    );

    // Naming someone else does not take the first one's role away.
    cosell_identity::operators::ensure(&h.identity, &domain, &[OPERATORS[1].to_string()])
        .await
        .unwrap();
    assert!(is_operator(&h, OPERATORS[0]).await);
    assert!(is_operator(&h, OPERATORS[1]).await);
}

#[tokio::test]
async fn a_personal_email_cannot_be_an_operator() {
    let db = cosell_testkit::TestDb::new().await.unwrap();
    let mut config = cosell_identity::Config::new(db.url.clone());
    config.platform_operators = vec!["someone@gmail.com".into()];
    let err = cosell_identity::start(&config)
        .await
        .err()
        .expect("refused at start");
    assert!(err.to_string().contains("gmail.com"), "{err}");
}
