//! Service principals' secrets and the token signing keys.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::entities::{service_principal, signing_key};
use super::*;
use crate::domain::Result;
use crate::domain::keys::NewKey;

impl Store {
    /// Registers a service principal or replaces its secret.
    pub async fn upsert_service_principal(&self, name: &str, secret_sha256: &str) -> Result<()> {
        service_principal::Entity::insert(service_principal::ActiveModel {
            name: Set(name.to_owned()),
            secret_sha256: Set(secret_sha256.to_owned()),
            create_time: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::column(service_principal::Column::Name)
                .update_column(service_principal::Column::SecretSha256)
                .to_owned(),
        )
        .exec(&self.db)
        .await?;
        Ok(())
    }

    pub async fn service_secret_hash(&self, name: &str) -> Result<Option<String>> {
        Ok(service_principal::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?
            .map(|s| s.secret_sha256))
    }

    pub async fn signing_keys(&self) -> Result<Vec<signing_key::Model>, DbErr> {
        signing_key::Entity::find()
            .order_by_desc(signing_key::Column::CreateTime)
            .all(&self.db)
            .await
    }

    /// Stores a new signing key that starts signing at `activate`; keys still signing then
    /// stop at `activate` and stop verifying at `expire`. The first key of a new database
    /// signs at once and retires nothing.
    pub async fn insert_signing_key(
        &self,
        key: NewKey,
        now: DateTime<Utc>,
        rollover: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<()> {
        let txn = cosell_platform::db::begin(&self.db).await?;
        if let Some((activate, expire)) = rollover {
            signing_key::Entity::update_many()
                .col_expr(signing_key::Column::RetireTime, Expr::value(Some(activate)))
                .col_expr(signing_key::Column::ExpireTime, Expr::value(Some(expire)))
                .filter(signing_key::Column::RetireTime.is_null())
                .exec(&txn)
                .await?;
        }
        signing_key::Entity::insert(signing_key::ActiveModel {
            kid: Set(key.kid),
            private_pkcs8: Set(key.private_pkcs8),
            public_x: Set(key.public_x),
            create_time: Set(now),
            activate_time: Set(rollover.map(|(activate, _)| activate)),
            retire_time: Set(None),
            expire_time: Set(None),
        })
        .exec(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }
}
