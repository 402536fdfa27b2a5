//! The cut-over switch of each partner organization (SPEC 5.5): one row per organization whose
//! switch was ever changed; no row means not cut over (every organization starts on PSC).

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::EntityTrait;
use sea_orm::sea_query::OnConflict;
use uuid::Uuid;

use super::{Result, Store};

/// An organization's switch as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutover {
    pub routed: bool,
    pub switch_time: DateTime<Utc>,
    /// The platform operator's email.
    pub switched_by: String,
}

pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "cutovers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub organization: String,
        pub routed: bool,
        pub switch_time: DateTimeUtc,
        pub switched_by: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

impl Store {
    /// The organization's switch; `None`: never changed (not cut over).
    pub async fn cutover(&self, organization: Uuid) -> Result<Option<Cutover>> {
        Ok(entity::Entity::find_by_id(organization.to_string())
            .one(&self.db)
            .await?
            .map(|m| Cutover {
                routed: m.routed,
                switch_time: m.switch_time,
                switched_by: m.switched_by,
            }))
    }

    /// Sets the organization's switch (one upsert: the last writer's position holds).
    pub async fn set_cutover(&self, organization: Uuid, c: &Cutover) -> Result<()> {
        use entity::Column as C;
        entity::Entity::insert(entity::ActiveModel {
            organization: Set(organization.to_string()),
            routed: Set(c.routed),
            switch_time: Set(c.switch_time),
            switched_by: Set(c.switched_by.clone()),
        })
        .on_conflict(
            OnConflict::column(C::Organization)
                .update_columns([C::Routed, C::SwitchTime, C::SwitchedBy])
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }
}
