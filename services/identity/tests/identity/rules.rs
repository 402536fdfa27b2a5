//! Rules I1-I6 of SPEC section 2, and request validation.

use cosell_proto::identity::{self as pb, Role};
use cosell_testkit::authed;
use tonic::Code;

use crate::harness::{Harness, expect_err, violations};

fn new_user(parent: &str, email: &str) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        parent: parent.into(),
        email: email.into(),
        given_name: "New".into(),
        family_name: "Person".into(),
    }
}

#[tokio::test]
async fn i1_consumer_email_domains_are_never_users() {
    let h = Harness::start().await;
    let ada = h.token("ada.admin@contoso.com").await;
    let contoso = h.org("contoso.com").await;
    for email in [
        "someone@gmail.com",
        "someone@outlook.com",
        "someone@hotmail.co.uk",
        "someone@proton.me",
    ] {
        let s = expect_err(
            h.users()
                .create_user(authed(&ada, new_user(&contoso, email)))
                .await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        let v = violations(&s);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].0, "email");
        assert!(v[0].1.contains("consumer email provider"), "{}", v[0].1);

        let s = expect_err(
            h.users()
                .invite_guest_user(authed(
                    &ada,
                    pb::InviteGuestUserRequest {
                        parent: contoso.clone(),
                        email: email.into(),
                        ..Default::default()
                    },
                ))
                .await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert!(violations(&s)[0].1.contains("consumer"));
    }
    // Nor can a consumer domain become a verified domain.
    let oli = h.token("oli.operator@platform.example").await;
    let s = expect_err(
        h.orgs()
            .add_verified_domain(authed(
                &oli,
                pb::AddVerifiedDomainRequest {
                    organization: contoso.clone(),
                    domain: "gmail.com".into(),
                },
            ))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violations(&s)[0].0, "domain");
}

#[tokio::test]
async fn i2_members_need_a_verified_domain_and_only_global_admins_invite_guests() {
    let h = Harness::start().await;
    let ada = h.token("ada.admin@contoso.com").await; // account + global admin
    let rita = h.token("rita.referrals@contoso.com").await;
    let contoso = h.org("contoso.com").await;

    let member = h
        .users()
        .create_user(authed(&ada, new_user(&contoso, "Nina.New@Contoso.com")))
        .await
        .expect("member created")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(member.email, "nina.new@contoso.com");
    assert_eq!(member.kind, pb::UserKind::Member as i32);

    // Another domain cannot be a member...
    let s = expect_err(
        h.users()
            .create_user(authed(
                &ada,
                new_user(&contoso, "pdm@partner-manager.example"),
            ))
            .await,
        Code::FailedPrecondition,
        "DOMAIN_NOT_VERIFIED",
    );
    assert!(s.message().contains("guest"), "{}", s.message());

    // ...but a global admin can invite it as a guest; a referrals admin cannot.
    let invite = |token: String, email: &str| {
        let mut users = h.users();
        let req = authed(
            &token,
            pb::InviteGuestUserRequest {
                parent: contoso.clone(),
                email: email.into(),
                given_name: "Pat".into(),
                family_name: "Manager".into(),
            },
        );
        async move { users.invite_guest_user(req).await }
    };
    expect_err(
        invite(rita.clone(), "pdm@partner-manager.example").await,
        Code::PermissionDenied,
        "MISSING_ROLE",
    );
    let guest = invite(ada.clone(), "pdm@partner-manager.example")
        .await
        .expect("guest invited")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(guest.kind, pb::UserKind::Guest as i32);
    // A verified domain's person is a member, not a guest.
    expect_err(
        invite(ada.clone(), "someone@contoso.com").await,
        Code::FailedPrecondition,
        "MEMBER_DOMAIN",
    );
    // The same email twice in one organization is refused.
    expect_err(
        h.users()
            .create_user(authed(&ada, new_user(&contoso, "nina.new@contoso.com")))
            .await,
        Code::AlreadyExists,
        "USER_EXISTS",
    );

    // A global admin without the account admin role can invite too.
    let gina = h.user(&ada, &contoso, "nina.new@contoso.com").await;
    h.roles()
        .assign_role(authed(
            &ada,
            pb::AssignRoleRequest {
                user: gina.clone(),
                role: Role::GlobalAdmin as i32,
                mpn_id: String::new(),
            },
        ))
        .await
        .unwrap();
    let nina = h.token("nina.new@contoso.com").await;
    invite(nina, "other@partner-manager.example")
        .await
        .expect("global admin invites");
}

#[tokio::test]
async fn i3_only_admins_assign_roles_and_the_last_account_admin_stays() {
    let h = Harness::start().await;
    let ada = h.token("ada.admin@contoso.com").await;
    let rita = h.token("rita.referrals@contoso.com").await;
    let contoso = h.org("contoso.com").await;
    let uma = h.user(&ada, &contoso, "uma.user@contoso.com").await;
    let assign = |token: String, user: String, role: Role, mpn: &str| {
        let mut roles = h.roles();
        let req = authed(
            &token,
            pb::AssignRoleRequest {
                user,
                role: role as i32,
                mpn_id: mpn.into(),
            },
        );
        async move { roles.assign_role(req).await }
    };

    expect_err(
        assign(rita.clone(), uma.clone(), Role::ReferralsAdmin, "").await,
        Code::PermissionDenied,
        "MISSING_ROLE",
    );
    let a = assign(ada.clone(), uma.clone(), Role::ReferralsAdmin, "4000002")
        .await
        .unwrap()
        .into_inner()
        .role_assignment
        .unwrap();
    assert_eq!(a.mpn_id, "4000002");
    assert_eq!(a.user_email, "uma.user@contoso.com");
    // Assigning again returns the same assignment.
    let again = assign(ada.clone(), uma.clone(), Role::ReferralsAdmin, "4000002")
        .await
        .unwrap()
        .into_inner()
        .role_assignment
        .unwrap();
    assert_eq!(again.name, a.name);
    // Scope rules: only referrals roles are location-scoped; the location must be the org's.
    let s = expect_err(
        assign(ada.clone(), uma.clone(), Role::AccountAdmin, "4000002").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violations(&s)[0].0, "mpn_id");
    let s = expect_err(
        assign(ada.clone(), uma.clone(), Role::ReferralsUser, "5000001").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert!(violations(&s)[0].1.contains("not an MPN location"));
    // Platform roles are not for partner users.
    let oli = h.token("oli.operator@platform.example").await;
    expect_err(
        assign(oli.clone(), uma.clone(), Role::PlatformSeller, "").await,
        Code::FailedPrecondition,
        "ROLE_NOT_FOR_ORGANIZATION",
    );

    // The last account admin cannot be removed, neither by revoking nor by disabling.
    let ada_name = h.user(&ada, &contoso, "ada.admin@contoso.com").await;
    let ada_admin = h
        .roles()
        .list_role_assignments(authed(
            &ada,
            pb::ListRoleAssignmentsRequest {
                parent: contoso.clone(),
                user: ada_name.clone(),
                role: Role::AccountAdmin as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .role_assignments
        .remove(0);
    let revoke = |token: String, name: String| {
        let mut roles = h.roles();
        let req = authed(&token, pb::RevokeRoleRequest { name });
        async move { roles.revoke_role(req).await }
    };
    let s = expect_err(
        revoke(ada.clone(), ada_admin.name.clone()).await,
        Code::FailedPrecondition,
        "LAST_ACCOUNT_ADMIN",
    );
    assert!(!s.get_error_details_precondition_is_empty());

    // With a second account admin, the first can go.
    assign(ada.clone(), uma.clone(), Role::AccountAdmin, "")
        .await
        .unwrap();
    let uma_token = h.token("uma.user@contoso.com").await;
    revoke(uma_token.clone(), ada_admin.name.clone())
        .await
        .expect("revoked with another admin left");
    let admins = h
        .users()
        .list_admins(authed(
            &uma_token,
            pb::ListAdminsRequest {
                parent: contoso.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let emails: Vec<_> = admins
        .account_admins
        .iter()
        .map(|u| u.email.as_str())
        .collect();
    assert_eq!(emails, vec!["uma.user@contoso.com"]);
    // Uma is now the last one: she cannot be disabled by a global admin either.
    let s = expect_err(
        h.users()
            .set_user_state(authed(
                &ada,
                pb::SetUserStateRequest {
                    name: uma.clone(),
                    state: pb::UserState::Disabled as i32,
                },
            ))
            .await,
        Code::FailedPrecondition,
        "LAST_ACCOUNT_ADMIN",
    );
    let _ = s;
}

trait PreconditionExt {
    fn get_error_details_precondition_is_empty(&self) -> bool;
}

impl PreconditionExt for tonic::Status {
    fn get_error_details_precondition_is_empty(&self) -> bool {
        use tonic_types::StatusExt;
        self.get_error_details()
            .precondition_failure()
            .is_none_or(|p| p.violations.is_empty())
    }
}

#[tokio::test]
async fn i3_concurrent_revocations_never_remove_every_account_admin() {
    let h = Harness::start().await;
    let ada = h.token("ada.admin@contoso.com").await;
    let contoso = h.org("contoso.com").await;
    // Three account admins; revoke all three at once: exactly one must remain.
    for email in ["rita.referrals@contoso.com", "bea.profile@contoso.com"] {
        let user = h.user(&ada, &contoso, email).await;
        h.roles()
            .assign_role(authed(
                &ada,
                pb::AssignRoleRequest {
                    user,
                    role: Role::AccountAdmin as i32,
                    mpn_id: String::new(),
                },
            ))
            .await
            .unwrap();
    }
    let admins = h
        .roles()
        .list_role_assignments(authed(
            &ada,
            pb::ListRoleAssignmentsRequest {
                parent: contoso.clone(),
                role: Role::AccountAdmin as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .role_assignments;
    assert_eq!(admins.len(), 3);
    let calls = admins.iter().map(|a| {
        let mut roles = h.roles();
        let req = authed(
            &ada,
            pb::RevokeRoleRequest {
                name: a.name.clone(),
            },
        );
        async move { roles.revoke_role(req).await }
    });
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(s) if crate::harness::reason(s) == "LAST_ACCOUNT_ADMIN"))
        .count();
    assert_eq!((ok, refused), (2, 1), "{results:?}");
}

#[tokio::test]
async fn i4_any_user_finds_the_admins_and_users_filter_by_role() {
    let h = Harness::start().await;
    let contoso = h.org("contoso.com").await;
    // Uma holds only a location-scoped referrals role, yet can see who to ask.
    let uma = h.token("uma.user@contoso.com").await;
    let admins = h
        .users()
        .list_admins(authed(
            &uma,
            pb::ListAdminsRequest {
                parent: contoso.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let emails = |users: &[pb::User]| users.iter().map(|u| u.email.clone()).collect::<Vec<_>>();
    assert_eq!(
        emails(&admins.account_admins),
        vec!["ada.admin@contoso.com"]
    );
    assert_eq!(emails(&admins.global_admins), vec!["ada.admin@contoso.com"]);
    // A user with no role at all can too.
    let ada = h.token("ada.admin@contoso.com").await;
    h.users()
        .create_user(authed(&ada, new_user(&contoso, "norole@contoso.com")))
        .await
        .unwrap();
    let norole = h.token("norole@contoso.com").await;
    h.users()
        .list_admins(authed(
            &norole,
            pb::ListAdminsRequest {
                parent: contoso.clone(),
            },
        ))
        .await
        .expect("no-role user lists admins");

    // Filtering by role is a first-class query, ordered by email.
    let list = |role: Role| {
        let mut users = h.users();
        let req = authed(
            &ada,
            pb::ListUsersRequest {
                parent: contoso.clone(),
                role: role as i32,
                ..Default::default()
            },
        );
        async move { users.list_users(req).await.unwrap().into_inner().users }
    };
    assert_eq!(
        emails(&list(Role::ReferralsAdmin).await),
        vec!["leo.location@contoso.com", "rita.referrals@contoso.com"]
    );
    assert_eq!(
        emails(&list(Role::BusinessProfileAdmin).await),
        vec!["bea.profile@contoso.com"]
    );
    assert_eq!(list(Role::Unspecified).await.len(), 6);

    // Another organization's user learns nothing about Contoso.
    let fay = h.token("fay.admin@fabrikam.com").await;
    expect_err(
        h.users()
            .list_admins(authed(
                &fay,
                pb::ListAdminsRequest {
                    parent: contoso.clone(),
                },
            ))
            .await,
        Code::NotFound,
        "NOT_FOUND",
    );
}

#[tokio::test]
async fn list_users_pages_neither_skip_nor_repeat() {
    let h = Harness::start().await;
    let ada = h.token("ada.admin@contoso.com").await;
    let contoso = h.org("contoso.com").await;
    for n in 0..12 {
        h.users()
            .create_user(authed(
                &ada,
                new_user(&contoso, &format!("p{n:02}@contoso.com")),
            ))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = h
            .users()
            .list_users(authed(
                &ada,
                pb::ListUsersRequest {
                    parent: contoso.clone(),
                    page_size: 5,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.users.len() <= 5);
        seen.extend(page.users.into_iter().map(|u| u.email));
        // A user created mid-listing, sorting after the cursor, still appears once.
        if seen.len() == 5 {
            h.users()
                .create_user(authed(&ada, new_user(&contoso, "zz.late@contoso.com")))
                .await
                .unwrap();
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "ordered, without repeats");
    assert_eq!(seen.len(), 5 + 12 + 1);
    // A token used with other filters is refused, naming the field.
    let s = expect_err(
        h.users()
            .list_users(authed(
                &ada,
                pb::ListUsersRequest {
                    parent: contoso.clone(),
                    role: Role::AccountAdmin as i32,
                    page_token: token,
                    ..Default::default()
                },
            ))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violations(&s)[0].0, "page_token");
}

#[tokio::test]
async fn i5_a_role_change_applies_on_the_next_call_without_signing_in_again() {
    let h = Harness::start().await;
    let ada = h.token("ada.admin@contoso.com").await;
    let contoso = h.org("contoso.com").await;
    let uma_token = h.token("uma.user@contoso.com").await;
    let uma = h.user(&ada, &contoso, "uma.user@contoso.com").await;
    assert_eq!(
        h.grants(&uma_token).await,
        vec![(Role::ReferralsUser, "4000002".to_string())]
    );

    // Uma cannot list users yet...
    let list = || {
        let mut users = h.users();
        let req = authed(
            &uma_token,
            pb::ListUsersRequest {
                parent: contoso.clone(),
                ..Default::default()
            },
        );
        async move { users.list_users(req).await }
    };
    expect_err(list().await, Code::PermissionDenied, "MISSING_ROLE");
    // ...an admin makes her account admin, and her very next call with the same token works.
    let granted = h
        .roles()
        .assign_role(authed(
            &ada,
            pb::AssignRoleRequest {
                user: uma.clone(),
                role: Role::AccountAdmin as i32,
                mpn_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .role_assignment
        .unwrap();
    list().await.expect("effective at once on this replica");
    h.roles()
        .revoke_role(authed(&ada, pb::RevokeRoleRequest { name: granted.name }))
        .await
        .unwrap();
    expect_err(list().await, Code::PermissionDenied, "MISSING_ROLE");

    // Another service's cached view catches up within 5 seconds (the real-time promise of I5,
    // so this part measures real time).
    let deals_token = std::sync::Arc::new(cosell_platform::auth::ServiceToken::new(
        h.channel(),
        "deals",
        crate::harness::DEALS_SECRET,
    ));
    let remote = cosell_platform::auth::AccessClient::new(h.channel(), deals_token);
    let principal = cosell_platform::auth::Principal::parse(&uma).unwrap();
    let before = remote.grants(&principal).await.unwrap();
    assert!(!before.has(Role::AccountAdmin));
    h.roles()
        .assign_role(authed(
            &ada,
            pb::AssignRoleRequest {
                user: uma.clone(),
                role: Role::AccountAdmin as i32,
                mpn_id: String::new(),
            },
        ))
        .await
        .unwrap();
    let changed = std::time::Instant::now();
    loop {
        if remote
            .grants(&principal)
            .await
            .unwrap()
            .has(Role::AccountAdmin)
        {
            break;
        }
        assert!(
            changed.elapsed() < std::time::Duration::from_secs(5),
            "the change was not seen within 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn i6_lookup_mpn_id() {
    let h = Harness::start().await;
    let fay = h.token("fay.admin@fabrikam.com").await;
    let contoso = h.org("contoso.com").await;
    let lookup = |mpn: &str| {
        let mut orgs = h.orgs();
        let req = authed(&fay, pb::LookupMpnIdRequest { mpn_id: mpn.into() });
        async move { orgs.lookup_mpn_id(req).await }
    };
    let vorg = lookup("4000001").await.unwrap().into_inner();
    assert!(vorg.exists);
    assert_eq!(vorg.organization, contoso);
    assert_eq!(vorg.organization_display_name, "Contoso");
    assert_eq!(vorg.kind, pb::MpnIdKind::Vorg as i32);
    let loc = lookup("4000003").await.unwrap().into_inner();
    assert_eq!(loc.kind, pb::MpnIdKind::Location as i32);
    let l = loc.location.unwrap();
    assert_eq!((l.country_code.as_str(), l.city.as_str()), ("DE", "Berlin"));
    let none = lookup("9999999").await.unwrap().into_inner();
    assert!(!none.exists);
    assert!(none.organization.is_empty());
    let s = expect_err(
        lookup("12345").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violations(&s)[0].0, "mpn_id");
}

#[tokio::test]
async fn create_organization_reports_every_bad_field_and_checks_uniqueness() {
    let h = Harness::start().await;
    let oli = h.token("oli.operator@platform.example").await;
    let s = expect_err(
        h.orgs()
            .create_organization(authed(
                &oli,
                pb::CreateOrganizationRequest {
                    display_name: String::new(),
                    verified_domains: vec!["not a domain".into()],
                    vorg_mpn_id: "12".into(),
                    locations: vec![pb::MpnLocation {
                        mpn_id: "7000002".into(),
                        country_code: "Germany".into(),
                        city: "Berlin".into(),
                    }],
                    account_admin_email: "boss@gmail.com".into(),
                    ..Default::default()
                },
            ))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut fields: Vec<_> = violations(&s).into_iter().map(|(f, _)| f).collect();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "account_admin_email",
            "display_name",
            "locations[0].country_code",
            "verified_domains[0]",
            "vorg_mpn_id"
        ]
    );

    let good = pb::CreateOrganizationRequest {
        display_name: "Northwind".into(),
        verified_domains: vec!["northwind.example".into()],
        vorg_mpn_id: "7000001".into(),
        locations: vec![pb::MpnLocation {
            mpn_id: "7000002".into(),
            country_code: "fr".into(),
            city: "Paris".into(),
        }],
        account_admin_email: "boss@northwind.example".into(),
        ..Default::default()
    };
    let created = h
        .orgs()
        .create_organization(authed(&oli, good.clone()))
        .await
        .unwrap()
        .into_inner();
    let org = created.organization.unwrap();
    assert_eq!(org.locations[0].country_code, "FR");
    assert_eq!(
        created.account_admin.unwrap().email,
        "boss@northwind.example"
    );
    // The new admin can sign in and holds ACCOUNT_ADMIN.
    let boss = h.token("boss@northwind.example").await;
    assert_eq!(
        h.grants(&boss).await,
        vec![(Role::AccountAdmin, String::new())]
    );
    // An MPN ID or domain in use is refused, and nothing is half-written.
    let mut dup = good.clone();
    dup.verified_domains = vec!["other.example".into()];
    dup.account_admin_email = "x@other.example".into();
    expect_err(
        h.orgs().create_organization(authed(&oli, dup)).await,
        Code::AlreadyExists,
        "MPN_ID_TAKEN",
    );
    assert_eq!(
        h.identity
            .store
            .organization_of_domain("other.example")
            .await
            .unwrap(),
        None
    );
    let mut dup = good;
    dup.vorg_mpn_id = "7000009".into();
    dup.locations.clear();
    expect_err(
        h.orgs().create_organization(authed(&oli, dup)).await,
        Code::AlreadyExists,
        "DOMAIN_ALREADY_VERIFIED",
    );
}

#[tokio::test]
async fn page_size_and_enum_values_are_validated() {
    let h = Harness::start().await;
    let ada = h.token("ada.admin@contoso.com").await;
    let contoso = h.org("contoso.com").await;
    let s = expect_err(
        h.users()
            .list_users(authed(
                &ada,
                pb::ListUsersRequest {
                    parent: contoso.clone(),
                    page_size: -1,
                    role: 99,
                    ..Default::default()
                },
            ))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut fields: Vec<_> = violations(&s).into_iter().map(|(f, _)| f).collect();
    fields.sort();
    assert_eq!(fields, vec!["page_size", "role"]);
    let s = expect_err(
        h.users()
            .create_user(authed(&ada, new_user(&contoso, "not-an-email")))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violations(&s)[0].0, "email");
    let s = expect_err(
        h.users()
            .get_user(authed(
                &ada,
                pb::GetUserRequest {
                    name: "users/1".into(),
                },
            ))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violations(&s)[0].0, "name");
}
