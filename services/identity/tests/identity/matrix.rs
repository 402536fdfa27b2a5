//! The authorization matrix: every identity RPC called by every kind of caller (no token, each
//! Contoso role, another organization's admin, a platform seller, a platform operator, two
//! services), each against Contoso, with the outcome a user would expect.

use std::sync::atomic::{AtomicU32, Ordering};

use cosell_proto::identity::{self as pb, Role};
use cosell_testkit::authed;
use tonic::{Code, Status};

use crate::harness::{DEALS_SECRET, Harness, MIGRATION_SECRET, reason};

/// The callers, in the column order of [`MATRIX`].
const CALLERS: &[&str] = &[
    "none",
    "ada.admin@contoso.com",
    "rita.referrals@contoso.com",
    "leo.location@contoso.com",
    "uma.user@contoso.com",
    "bea.profile@contoso.com",
    "fay.admin@fabrikam.com",
    "sam.seller@platform.example",
    "oli.operator@platform.example",
    "service:migration",
    "service:deals",
];

/// One row per RPC: O = allowed, D = PERMISSION_DENIED, N = NOT_FOUND, U = UNAUTHENTICATED.
/// Columns: none ada rita leo uma bea fay sam oli migration deals.
const MATRIX: &[(&str, &str)] = &[
    ("CreateOrganization", "UDDDDDDDODD"),
    ("GetOrganization", "UOOOOONOOOO"),
    ("ListOrganizations", "UDDDDDDOOOO"),
    ("AddVerifiedDomain", "UODDDDNNODD"),
    ("AddMpnLocation", "UODDDDNNODD"),
    ("LookupMpnId", "UOOOOOOOOOO"),
    ("CreateUser", "UODDDDNNOOD"),
    ("InviteGuestUser", "UODDDDNNNDD"),
    ("GetUser", "UOOOOONOOOO"),
    ("ListUsers", "UODDDDNNOOO"),
    ("ListAdmins", "UOOOOONOOOO"),
    ("SetUserState", "UODDDDNNODD"),
    ("AssignRole", "UODDDDNNOOD"),
    ("RevokeRole", "UODDDDNNOOD"),
    ("ListRoleAssignments", "UODDDDNNOOO"),
    ("CheckAccess", "UDDDODDDDOO"),
    ("GetCaller", "UOOOOOOOOOO"),
    ("RotateSigningKey", "UDDDDDDDODD"),
    ("ListSigningKeys", "OOOOOOOOOOO"),
];

struct Ctx<'a> {
    h: &'a Harness,
    contoso: String,
    uma: String,
    bea: String,
    ada_token: String,
    n: AtomicU32,
}

impl Ctx<'_> {
    fn next(&self) -> u32 {
        self.n.fetch_add(1, Ordering::SeqCst)
    }

    fn req<T>(&self, token: &Option<String>, msg: T) -> tonic::Request<T> {
        match token {
            Some(t) => authed(t, msg),
            None => tonic::Request::new(msg),
        }
    }

    async fn call(&self, rpc: &str, token: &Option<String>) -> Result<(), Status> {
        let h = self.h;
        let n = self.next();
        let c = self.contoso.clone();
        match rpc {
            "CreateOrganization" => h
                .orgs()
                .create_organization(self.req(
                    token,
                    pb::CreateOrganizationRequest {
                        display_name: format!("Org {n}"),
                        verified_domains: vec![format!("org{n}.example")],
                        vorg_mpn_id: format!("{}", 800_000 + n),
                        account_admin_email: format!("admin@org{n}.example"),
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            "GetOrganization" => h
                .orgs()
                .get_organization(self.req(token, pb::GetOrganizationRequest { name: c }))
                .await
                .map(|_| ()),
            "ListOrganizations" => h
                .orgs()
                .list_organizations(self.req(token, pb::ListOrganizationsRequest::default()))
                .await
                .map(|_| ()),
            "AddVerifiedDomain" => h
                .orgs()
                .add_verified_domain(self.req(
                    token,
                    pb::AddVerifiedDomainRequest {
                        organization: c,
                        domain: format!("contoso{n}.example"),
                    },
                ))
                .await
                .map(|_| ()),
            "AddMpnLocation" => h
                .orgs()
                .add_mpn_location(self.req(
                    token,
                    pb::AddMpnLocationRequest {
                        organization: c,
                        location: Some(pb::MpnLocation {
                            mpn_id: format!("{}", 900_000 + n),
                            country_code: "FR".into(),
                            city: "Paris".into(),
                        }),
                    },
                ))
                .await
                .map(|_| ()),
            "LookupMpnId" => h
                .orgs()
                .lookup_mpn_id(self.req(
                    token,
                    pb::LookupMpnIdRequest {
                        mpn_id: "4000001".into(),
                    },
                ))
                .await
                .map(|_| ()),
            "CreateUser" => h
                .users()
                .create_user(self.req(
                    token,
                    pb::CreateUserRequest {
                        parent: c,
                        email: format!("new{n}@contoso.com"),
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            "InviteGuestUser" => h
                .users()
                .invite_guest_user(self.req(
                    token,
                    pb::InviteGuestUserRequest {
                        parent: c,
                        email: format!("guest{n}@elsewhere.example"),
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            "GetUser" => h
                .users()
                .get_user(self.req(
                    token,
                    pb::GetUserRequest {
                        name: self.uma.clone(),
                    },
                ))
                .await
                .map(|_| ()),
            "ListUsers" => h
                .users()
                .list_users(self.req(
                    token,
                    pb::ListUsersRequest {
                        parent: c,
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            "ListAdmins" => h
                .users()
                .list_admins(self.req(token, pb::ListAdminsRequest { parent: c }))
                .await
                .map(|_| ()),
            "SetUserState" => h
                .users()
                .set_user_state(self.req(
                    token,
                    pb::SetUserStateRequest {
                        name: self.uma.clone(),
                        state: pb::UserState::Active as i32,
                    },
                ))
                .await
                .map(|_| ()),
            "AssignRole" => h
                .roles()
                .assign_role(self.req(
                    token,
                    pb::AssignRoleRequest {
                        user: self.bea.clone(),
                        role: Role::ReferralsUser as i32,
                        mpn_id: "4000002".into(),
                    },
                ))
                .await
                .map(|_| ()),
            "RevokeRole" => {
                // A fresh assignment to revoke, made by the account admin.
                let a = h
                    .roles()
                    .assign_role(authed(
                        &self.ada_token,
                        pb::AssignRoleRequest {
                            user: self.bea.clone(),
                            role: Role::ReferralsAdmin as i32,
                            mpn_id: "4000003".into(),
                        },
                    ))
                    .await?
                    .into_inner()
                    .role_assignment
                    .unwrap();
                h.roles()
                    .revoke_role(self.req(token, pb::RevokeRoleRequest { name: a.name }))
                    .await
                    .map(|_| ())
            }
            "ListRoleAssignments" => h
                .roles()
                .list_role_assignments(self.req(
                    token,
                    pb::ListRoleAssignmentsRequest {
                        parent: c,
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            "CheckAccess" => h
                .access()
                .check_access(self.req(
                    token,
                    pb::CheckAccessRequest {
                        principal: self.uma.clone(),
                        organization: c,
                        any_of_roles: vec![Role::ReferralsUser as i32],
                        mpn_id: String::new(),
                    },
                ))
                .await
                .map(|_| ()),
            "GetCaller" => h
                .access()
                .get_caller(self.req(token, pb::GetCallerRequest {}))
                .await
                .map(|_| ()),
            "RotateSigningKey" => h
                .tokens()
                .rotate_signing_key(self.req(token, pb::RotateSigningKeyRequest {}))
                .await
                .map(|_| ()),
            "ListSigningKeys" => h
                .tokens()
                .list_signing_keys(self.req(token, pb::ListSigningKeysRequest {}))
                .await
                .map(|_| ()),
            other => panic!("no call for {other}"),
        }
    }
}

#[tokio::test]
async fn every_rpc_by_every_caller() {
    let h = Harness::start().await;
    let ada_token = h.token("ada.admin@contoso.com").await;
    let contoso = h.org("contoso.com").await;
    let ctx = Ctx {
        h: &h,
        uma: h.user(&ada_token, &contoso, "uma.user@contoso.com").await,
        bea: h
            .user(&ada_token, &contoso, "bea.profile@contoso.com")
            .await,
        contoso,
        ada_token,
        n: AtomicU32::new(0),
    };
    let mut tokens = Vec::new();
    for caller in CALLERS {
        tokens.push(match *caller {
            "none" => None,
            "service:migration" => Some(h.service_token("migration", MIGRATION_SECRET).await),
            "service:deals" => Some(h.service_token("deals", DEALS_SECRET).await),
            email => Some(h.token(email).await),
        });
    }
    let mut failures = Vec::new();
    for (rpc, row) in MATRIX {
        assert_eq!(row.len(), CALLERS.len(), "row of {rpc}");
        for ((caller, token), want) in CALLERS.iter().zip(&tokens).zip(row.chars()) {
            let got = ctx.call(rpc, token).await;
            let ok = match (want, &got) {
                ('O', Ok(())) => true,
                ('D', Err(s)) => s.code() == Code::PermissionDenied,
                ('N', Err(s)) => s.code() == Code::NotFound,
                ('U', Err(s)) => s.code() == Code::Unauthenticated,
                _ => false,
            };
            if !ok {
                let got = match &got {
                    Ok(()) => "OK".to_string(),
                    Err(s) => format!("{:?} {} ({})", s.code(), reason(s), s.message()),
                };
                failures.push(format!("{rpc} by {caller}: want {want}, got {got}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix mismatches:\n{}",
        failures.join("\n")
    );
}
