//! The directory database: the entities (the source of truth; the search index is derived from
//! it) and a generation counter that each load bumps, so that a stale index is noticed at start.

pub mod migration;

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, DatabaseConnection, QueryOrder, QuerySelect, TransactionTrait};

use crate::domain::Entity as DomainEntity;

pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "entities")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub legal_name: String,
        /// JSON array of strings.
        pub other_names: String,
        /// JSON array of strings.
        pub address_lines: String,
        pub city: String,
        pub region: String,
        pub postal_code: String,
        pub country: String,
        pub address_generated: bool,
        pub update_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod state {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "directory_state")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub value: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const GENERATION: &str = "generation";

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

fn to_domain(m: entity::Model) -> DomainEntity {
    DomainEntity {
        id: m.id,
        legal_name: m.legal_name,
        other_names: serde_json::from_str(&m.other_names).unwrap_or_default(),
        address_lines: serde_json::from_str(&m.address_lines).unwrap_or_default(),
        city: m.city,
        region: m.region,
        postal_code: m.postal_code,
        country: m.country,
        address_generated: m.address_generated,
    }
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Inserts or replaces entities by id, and bumps the generation, in one transaction.
    /// Returns the new generation.
    pub async fn upsert(&self, entities: &[DomainEntity]) -> Result<i64, DbErr> {
        let now = Utc::now();
        let txn = self.db.begin().await?;
        // PostgreSQL allows 65,535 bind parameters per statement; 10 per row.
        for chunk in entities.chunks(2000) {
            let rows = chunk.iter().map(|e| entity::ActiveModel {
                id: Set(e.id.clone()),
                legal_name: Set(e.legal_name.clone()),
                other_names: Set(
                    serde_json::to_string(&e.other_names).unwrap_or_else(|_| "[]".into())
                ),
                address_lines: Set(
                    serde_json::to_string(&e.address_lines).unwrap_or_else(|_| "[]".into())
                ),
                city: Set(e.city.clone()),
                region: Set(e.region.clone()),
                postal_code: Set(e.postal_code.clone()),
                country: Set(e.country.clone()),
                address_generated: Set(e.address_generated),
                update_time: Set(now),
            });
            entity::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::column(entity::Column::Id)
                        .update_columns([
                            entity::Column::LegalName,
                            entity::Column::OtherNames,
                            entity::Column::AddressLines,
                            entity::Column::City,
                            entity::Column::Region,
                            entity::Column::PostalCode,
                            entity::Column::Country,
                            entity::Column::AddressGenerated,
                            entity::Column::UpdateTime,
                        ])
                        .to_owned(),
                )
                .exec(&txn)
                .await?;
        }
        let generation = bump_generation(&txn).await?;
        txn.commit().await?;
        Ok(generation)
    }

    pub async fn generation(&self) -> Result<i64, DbErr> {
        Ok(state::Entity::find_by_id(GENERATION.to_owned())
            .one(&self.db)
            .await?
            .map(|s| s.value)
            .unwrap_or(0))
    }

    pub async fn count(&self) -> Result<u64, DbErr> {
        entity::Entity::find().count(&self.db).await
    }

    pub async fn get(&self, id: &str) -> Result<Option<DomainEntity>, DbErr> {
        Ok(entity::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .map(to_domain))
    }

    /// The entities with these ids that exist, in no particular order.
    pub async fn get_many(&self, ids: &[String]) -> Result<Vec<DomainEntity>, DbErr> {
        Ok(entity::Entity::find()
            .filter(entity::Column::Id.is_in(ids.iter().cloned()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_domain)
            .collect())
    }

    /// One page of entities by id, after `after`: for rebuilding the index in bounded memory.
    pub async fn page_after(
        &self,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<DomainEntity>, DbErr> {
        let mut q = entity::Entity::find()
            .order_by_asc(entity::Column::Id)
            .limit(limit);
        if let Some(a) = after {
            q = q.filter(entity::Column::Id.gt(a));
        }
        Ok(q.all(&self.db).await?.into_iter().map(to_domain).collect())
    }
}

async fn bump_generation<C: ConnectionTrait>(c: &C) -> Result<i64, DbErr> {
    state::Entity::insert(state::ActiveModel {
        key: Set(GENERATION.to_owned()),
        value: Set(1),
    })
    .on_conflict(
        OnConflict::column(state::Column::Key)
            .value(
                state::Column::Value,
                Expr::col((state::Entity, state::Column::Value)).add(1),
            )
            .to_owned(),
    )
    .exec(c)
    .await?;
    Ok(state::Entity::find_by_id(GENERATION.to_owned())
        .one(c)
        .await?
        .map(|s| s.value)
        .unwrap_or(1))
}
