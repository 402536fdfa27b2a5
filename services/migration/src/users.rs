//! The user migration wizard (SPEC 5.3): one row per PSC user and account, what it maps to, and
//! the run that creates members and assigns roles through identity (as the migration service).

use std::collections::HashMap;

use cosell_platform::ApiError;
use cosell_proto::identity::{self as ipb, Role};
use cosell_proto::migration as pb;
use uuid::Uuid;

use crate::api::{Migration, upstream};
use crate::psc::files::{PscRole, User};
use crate::store::entities::user_migration;

/// The referrals roles: holding one before the migration is reported, not changed.
const REFERRAL_ROLES: &[Role] = &[Role::ReferralsAdmin, Role::ReferralsUser];

/// A row whose run gives the role next (recorded before identity is asked); shown as
/// NOT_MIGRATED.
const ASSIGNING: &str = "ASSIGNING";
/// A row whose user held the mapped role before the migration.
const ALREADY_HAS_ROLE: &str = "ALREADY_HAS_ROLE";
/// Rows a run leaves as they are.
const DONE: [&str; 2] = ["MIGRATED", ALREADY_HAS_ROLE];

/// PSC role -> platform role: PC has a single co-sell management role.
pub fn mapped_role(role: PscRole) -> Role {
    match role {
        PscRole::Admin | PscRole::DealManager => Role::ReferralsAdmin,
        PscRole::Seller => Role::ReferralsUser,
    }
}

fn psc_role_name(role: PscRole) -> &'static str {
    match role {
        PscRole::Admin => "Admin",
        PscRole::DealManager => "DealManager",
        PscRole::Seller => "Seller",
    }
}

/// What a PSC account's MPN association makes of a row's scope.
#[derive(Clone)]
enum Scope {
    Organization,
    Location(String),
    Invalid(String),
}

/// An identity call's outcome: `Err` (the run stops) when identity did not answer, `Ok(Err)`
/// with the reason when it refused this user (the row is in error; the run goes on).
fn refused<T>(
    r: Result<tonic::Response<T>, tonic::Status>,
) -> Result<Result<tonic::Response<T>, String>, ApiError> {
    use tonic::Code;
    match r {
        Ok(r) => Ok(Ok(r)),
        Err(s)
            if matches!(
                s.code(),
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::Unknown
                    | Code::Internal
                    | Code::Cancelled
                    | Code::ResourceExhausted
                    | Code::Unauthenticated
            ) =>
        {
            Err(upstream("identity", &s))
        }
        Err(s) => Ok(Err(format!(
            "the identity service refused the user: {}; correct the user in PSC (or the export) and import again",
            s.message()
        ))),
    }
}

impl Migration {
    /// Every account's scope, by account id.
    async fn scopes(&self, org: Uuid) -> Result<HashMap<String, (String, Scope)>, ApiError> {
        let mut out = HashMap::new();
        for (account, corrected) in self.store.accounts(org).await? {
            let (id, name) = (account.id.clone(), account.name.clone());
            let a = self.psc_account(org, account, corrected).await?;
            let scope = match pb::MpnAssociation::try_from(a.association) {
                Ok(pb::MpnAssociation::Vorg) => Scope::Organization,
                Ok(pb::MpnAssociation::Location) => Scope::Location(a.mpn_id),
                _ => Scope::Invalid(a.reason),
            };
            out.insert(id, (name, scope));
        }
        Ok(out)
    }

    async fn organization(&self, org: Uuid) -> Result<ipb::Organization, ApiError> {
        let req = self
            .token
            .request(ipb::GetOrganizationRequest {
                name: cosell_platform::names::organization(org),
            })
            .await?;
        self.organizations
            .clone()
            .get_organization(req)
            .await
            .map_err(|s| upstream("identity", &s))?
            .into_inner()
            .organization
            .ok_or_else(|| ApiError::internal("identity returned no organization"))
    }

    /// The wizard's rows, with their recorded outcomes; `run` tries every row not done
    /// (MIGRATED or ALREADY_HAS_ROLE).
    pub async fn user_rows(
        &self,
        org: Uuid,
        run: bool,
    ) -> Result<Vec<pb::UserMigrationRow>, ApiError> {
        let organization = self.organization(org).await?;
        let scopes = self.scopes(org).await?;
        let mut outcomes = self.store.user_outcomes(org).await?;
        let mut rows = Vec::new();
        for u in self.store.users(org).await? {
            let key = (u.email.clone(), u.account_id.clone());
            let (account_name, scope) = scopes
                .get(&u.account_id)
                .cloned()
                .unwrap_or((String::new(), Scope::Invalid("unknown account".into())));
            let mut outcome = outcomes.remove(&key).unwrap_or(user_migration::Model {
                organization: org.to_string(),
                email: u.email.clone(),
                account_id: u.account_id.clone(),
                status: "NOT_MIGRATED".into(),
                error: String::new(),
                error_message: String::new(),
                pc_user: String::new(),
                pc_assignment: String::new(),
            });
            if run && !DONE.contains(&outcome.status.as_str()) {
                outcome = self
                    .migrate_user(org, &organization, &u, &scope, outcome)
                    .await?;
                self.store.save_user_outcome(outcome.clone()).await?;
            }
            rows.push(row(&u, &account_name, &scope, &organization, &outcome));
        }
        Ok(rows)
    }

    /// Tries one row.
    async fn migrate_user(
        &self,
        org: Uuid,
        organization: &ipb::Organization,
        u: &User,
        scope: &Scope,
        mut outcome: user_migration::Model,
    ) -> Result<user_migration::Model, ApiError> {
        let tried = outcome.clone();
        let fail = |error: pb::UserMigrationError,
                    message: String|
         -> Result<user_migration::Model, ApiError> {
            let mut failed = tried.clone();
            failed.status = "ERROR".into();
            failed.error = error.as_str_name().into();
            failed.error_message = message;
            Ok(failed)
        };
        let mpn = match scope {
            Scope::Invalid(reason) => {
                return fail(
                    pb::UserMigrationError::InvalidMpnAssociation,
                    reason.clone(),
                );
            }
            Scope::Organization => String::new(),
            Scope::Location(m) => m.clone(),
        };
        let email = u.email.trim().to_lowercase();
        let domain = email
            .rsplit_once('@')
            .map(|(_, d)| d.to_owned())
            .unwrap_or_default();
        if cosell_platform::email::is_consumer_domain(&domain) {
            return fail(
                pb::UserMigrationError::ConsumerAccount,
                format!(
                    "{email} is a personal account, which can never be a user; have the person sign in with a work account (and, for another domain, a global admin invite it as a guest), then run again"
                ),
            );
        }
        let parent = cosell_platform::names::organization(org);
        let found = self
            .identity_users()
            .list_users(
                self.token
                    .request(ipb::ListUsersRequest {
                        parent: parent.clone(),
                        email: email.clone(),
                        page_size: 1,
                        ..Default::default()
                    })
                    .await?,
            )
            .await;
        let found = match refused(found)? {
            Ok(r) => r.into_inner().users.into_iter().next(),
            Err(why) => return fail(pb::UserMigrationError::Refused, why),
        };
        let user = match found {
            Some(user) => user,
            None if organization.verified_domains.contains(&domain) => {
                let created = self
                    .identity_users()
                    .create_user(
                        self.token
                            .request(ipb::CreateUserRequest {
                                parent: parent.clone(),
                                email: email.clone(),
                                given_name: u.first_name.clone(),
                                family_name: u.last_name.clone(),
                            })
                            .await?,
                    )
                    .await;
                match refused(created)? {
                    Ok(r) => r.into_inner().user.unwrap_or_default(),
                    Err(why) => return fail(pb::UserMigrationError::Refused, why),
                }
            }
            None => {
                return fail(
                    pb::UserMigrationError::NotInOrganization,
                    format!(
                        "{domain} is not a verified domain of the organization and no guest user has {email}; ask a global admin to invite {email} as a guest, then run again"
                    ),
                );
            }
        };
        // A referrals role the user held before (not one this migration gave) is reported.
        let ours: Vec<String> = self
            .store
            .user_outcomes(org)
            .await?
            .into_values()
            .filter(|o| o.status == "MIGRATED")
            .map(|o| o.pc_assignment)
            .collect();
        let held = self
            .identity_roles()
            .list_role_assignments(
                self.token
                    .request(ipb::ListRoleAssignmentsRequest {
                        parent: parent.clone(),
                        user: user.name.clone(),
                        ..Default::default()
                    })
                    .await?,
            )
            .await;
        let held = match refused(held)? {
            Ok(r) => r.into_inner().role_assignments,
            Err(why) => return fail(pb::UserMigrationError::Refused, why),
        };
        let role = mapped_role(u.role);
        // The mapped role at the mapped scope already there, not given by another row: this
        // row's own run that stopped between assigning it and recording it (the row says
        // ASSIGNING), or the user held it before the migration.
        if let Some(a) = held
            .iter()
            .find(|a| a.role == role as i32 && a.mpn_id == mpn && !ours.contains(&a.name))
        {
            outcome.status = if outcome.status == ASSIGNING {
                "MIGRATED"
            } else {
                ALREADY_HAS_ROLE
            }
            .into();
            outcome.error = String::new();
            outcome.error_message = String::new();
            outcome.pc_user = user.name.clone();
            outcome.pc_assignment = a.name.clone();
            return Ok(outcome);
        }
        if let Some(a) = held.iter().find(|a| {
            Role::try_from(a.role).is_ok_and(|r| REFERRAL_ROLES.contains(&r))
                && !ours.contains(&a.name)
        }) {
            let role = Role::try_from(a.role)
                .map(|r| r.as_str_name())
                .unwrap_or("?");
            return fail(
                pb::UserMigrationError::AlreadyHasRole,
                format!(
                    "{email} already holds {role}{}; left as it is (an account admin changes roles in the user management)",
                    if a.mpn_id.is_empty() {
                        String::new()
                    } else {
                        format!(" at {}", a.mpn_id)
                    }
                ),
            );
        }
        // Recorded before the role is given, so that a later run tells a role it gave apart from
        // one the user held before.
        outcome.status = ASSIGNING.into();
        self.store.save_user_outcome(outcome.clone()).await?;
        let assigned = self
            .identity_roles()
            .assign_role(
                self.token
                    .request(ipb::AssignRoleRequest {
                        user: user.name.clone(),
                        role: role as i32,
                        mpn_id: mpn,
                    })
                    .await?,
            )
            .await;
        let assignment = match refused(assigned)? {
            Ok(r) => r.into_inner().role_assignment.unwrap_or_default(),
            Err(why) => return fail(pb::UserMigrationError::Refused, why),
        };
        outcome.status = "MIGRATED".into();
        outcome.error = String::new();
        outcome.error_message = String::new();
        outcome.pc_user = user.name;
        outcome.pc_assignment = assignment.name;
        Ok(outcome)
    }
}

fn row(
    u: &User,
    account_name: &str,
    scope: &Scope,
    organization: &ipb::Organization,
    o: &user_migration::Model,
) -> pb::UserMigrationRow {
    let status = match o.status.as_str() {
        "MIGRATED" => pb::UserMigrationStatus::Migrated,
        "ERROR" => pb::UserMigrationStatus::Error,
        ALREADY_HAS_ROLE => pb::UserMigrationStatus::AlreadyHasRole,
        _ => pb::UserMigrationStatus::NotMigrated,
    };
    pb::UserMigrationRow {
        email: u.email.clone(),
        psc_account_id: u.account_id.clone(),
        psc_account_name: account_name.to_owned(),
        psc_role: psc_role_name(u.role).into(),
        pc_mpn_location: match scope {
            Scope::Organization => "Entire organization".into(),
            Scope::Location(m) => m.clone(),
            Scope::Invalid(_) => String::new(),
        },
        pc_role: mapped_role(u.role).as_str_name().into(),
        pc_tenant: organization.tenant_id.clone(),
        status: status as i32,
        error: pb::UserMigrationError::from_str_name(&o.error)
            .unwrap_or(pb::UserMigrationError::Unspecified) as i32,
        error_message: o.error_message.clone(),
        user: o.pc_user.clone(),
    }
}
