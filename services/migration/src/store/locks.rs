//! One import at a time per organization, across every replica on the database: a lease row
//! per organization importing (`import_locks`). Taking it inserts the row, or takes over one
//! whose lease has expired (its replica died); the import renews it while it runs and deletes
//! it when it ends (even when its call is dropped mid-way), and a replica shutting down
//! deletes its own.

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};
use tracing::Instrument;
use uuid::Uuid;

use super::entities::import_lock;
use super::{Result, Store};

impl Store {
    /// Takes `organization`'s import lock for `holder` (of `replica`) until `until`, unless
    /// another holder's lease runs at `now`; whether it was taken.
    pub async fn lock_import(
        &self,
        organization: Uuid,
        holder: &str,
        replica: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let taken = import_lock::Entity::insert(import_lock::ActiveModel {
            organization: Set(organization.to_string()),
            holder: Set(holder.to_owned()),
            replica: Set(replica.to_owned()),
            lease_until: Set(until),
        })
        .on_conflict(
            OnConflict::column(import_lock::Column::Organization)
                .update_columns([
                    import_lock::Column::Holder,
                    import_lock::Column::Replica,
                    import_lock::Column::LeaseUntil,
                ])
                // Only an expired lease is taken over; one that runs stays its holder's.
                .action_and_where(
                    Expr::col((import_lock::Entity, import_lock::Column::LeaseUntil)).lt(now),
                )
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(taken == 1)
    }

    /// Extends `holder`'s lease to `until`; false when it no longer holds the lock (its lease
    /// expired and another import took it).
    pub async fn renew_import_lock(
        &self,
        organization: Uuid,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let done = import_lock::Entity::update_many()
            .col_expr(import_lock::Column::LeaseUntil, Expr::value(until))
            .filter(import_lock::Column::Organization.eq(organization.to_string()))
            .filter(import_lock::Column::Holder.eq(holder))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Lets go of `holder`'s lock (if it still has it).
    ///
    /// The delete runs in a task of its own, to its end even when this future is dropped
    /// mid-way: a gRPC server drops the future of a call whose client cancelled it, often
    /// while the call is releasing its lock (the cancelled upload stream ends the import
    /// first). Cut short before the statement reached the database (waiting for a pooled
    /// connection, say), the release would leave the organization unable to import until the
    /// lease runs out, and the user who cancelled to start again would be told that an
    /// import is in progress.
    pub async fn unlock_import(&self, organization: Uuid, holder: &str) -> Result<()> {
        let (db, holder) = (self.db.clone(), holder.to_owned());
        let delete = async move {
            import_lock::Entity::delete_many()
                .filter(import_lock::Column::Organization.eq(organization.to_string()))
                .filter(import_lock::Column::Holder.eq(holder))
                .exec(&db)
                .await
        };
        tokio::spawn(delete.in_current_span())
            .await
            .map_err(|e| DbErr::Custom(format!("releasing the import lock stopped: {e}")))??;
        Ok(())
    }

    /// Lets go of every lock `replica` holds (it is shutting down); how many.
    pub async fn unlock_imports_of(&self, replica: &str) -> Result<u64> {
        let done = import_lock::Entity::delete_many()
            .filter(import_lock::Column::Replica.eq(replica))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected)
    }
}
