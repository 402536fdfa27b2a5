//! The user migration wizard's RPCs (SPEC 5.3): `ListUserMigration` and `RunUserMigration`.
//! The rows and the run itself are [`crate::users`].

use cosell_platform::ApiError;
use cosell_proto::identity::Role;
use cosell_proto::migration as pb;
use tonic::Request;

use super::Migration;

impl Migration {
    pub(super) async fn list_user_migration(
        &self,
        req: Request<pb::ListUserMigrationRequest>,
    ) -> Result<pb::ListUserMigrationResponse, ApiError> {
        let parent = req.get_ref().parent.clone();
        let (org, locations) = self.authorize_viewer(&req, &parent).await?;
        let mut rows = self.user_rows(org, false).await?;
        if let Some(locations) = locations {
            rows.retain(|r| locations.contains(&r.pc_mpn_location));
        }
        Ok(pb::ListUserMigrationResponse { rows })
    }

    /// Who may view the wizard (SPEC 5.3: any referrals admin): account admins and org-wide
    /// referrals admins see every row (`None`); a referrals admin of some MPN locations sees
    /// the rows whose role would cover one of them, as everywhere a location-scoped role reads.
    async fn authorize_viewer<T>(
        &self,
        req: &Request<T>,
        parent: &str,
    ) -> Result<(uuid::Uuid, Option<Vec<String>>), ApiError> {
        let org = cosell_platform::names::parse_one(parent, "organizations")
            .map_err(|e| ApiError::invalid_field("parent", e))?;
        let grants = self
            .access
            .grants(&cosell_platform::auth::caller(req)?.principal)
            .await?;
        if grants.organization != Some(org) {
            return Err(ApiError::not_found(parent));
        }
        if grants.allows(org, &[Role::AccountAdmin, Role::ReferralsAdmin], None) {
            return Ok((org, None));
        }
        match grants.locations_for(&[Role::ReferralsAdmin]) {
            Some(locations) if !locations.is_empty() => Ok((org, Some(locations))),
            _ => Err(ApiError::permission_denied(
                "MISSING_ROLE",
                "viewing the user migration needs ROLE_ACCOUNT_ADMIN or ROLE_REFERRALS_ADMIN",
            )),
        }
    }

    pub(super) async fn run_user_migration(
        &self,
        req: Request<pb::RunUserMigrationRequest>,
    ) -> Result<pb::RunUserMigrationResponse, ApiError> {
        let parent = req.get_ref().parent.clone();
        let org = self
            .authorize_roles(&req, "parent", &parent, &[Role::AccountAdmin])
            .await?;
        let before: std::collections::HashSet<(String, String)> = self
            .store
            .user_outcomes(org)
            .await?
            .into_values()
            .filter(|o| o.status == "MIGRATED")
            .map(|o| (o.email, o.account_id))
            .collect();
        let rows = self.user_rows(org, true).await?;
        let migrated = rows
            .iter()
            .filter(|r| {
                r.status == pb::UserMigrationStatus::Migrated as i32
                    && !before.contains(&(r.email.clone(), r.psc_account_id.clone()))
            })
            .count() as i64;
        let errors = rows
            .iter()
            .filter(|r| r.status == pb::UserMigrationStatus::Error as i32)
            .count() as i64;
        Ok(pb::RunUserMigrationResponse {
            rows,
            migrated,
            errors,
        })
    }
}
