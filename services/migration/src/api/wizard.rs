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
        let org = self.authorize(&req, "parent", &parent).await?;
        let rows = self.user_rows(org, false).await?;
        Ok(pb::ListUserMigrationResponse { rows })
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
