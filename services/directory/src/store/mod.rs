//! The directory database: the entities (the source of truth; the search index is derived from
//! it) and a generation counter that each write bumps. Each entity row carries the generation
//! that last wrote it, so that a replica's index catches up with exactly the rows written after
//! the generation it has (`crate::follow`).

pub mod migration;

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbBackend, QueryOrder, QuerySelect};

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
        /// The generation of the write that last changed the row (m0002).
        pub generation: i64,
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

    /// Inserts or replaces entities by id, in one transaction with the bump of the generation
    /// the rows are marked with. Returns that generation. The bump comes first: it locks the
    /// counter until the commit, so generations commit in their order, and a reader that sees
    /// generation `g` committed sees every row of every generation up to `g`.
    pub async fn upsert(&self, entities: &[DomainEntity]) -> Result<i64, DbErr> {
        if self.db.get_database_backend() == DbBackend::Postgres {
            return self.upsert_postgres(entities).await;
        }
        let now = Utc::now();
        let txn = cosell_platform::db::begin(&self.db).await?;
        let generation = bump_generation(&txn).await?;
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
                generation: Set(generation),
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
                            entity::Column::Generation,
                        ])
                        .to_owned(),
                )
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(generation)
    }

    /// PostgreSQL's fast path: one `INSERT ... SELECT FROM UNNEST(arrays)` per batch instead of
    /// a statement with ten bind parameters per row (bulk loads are several times faster).
    async fn upsert_postgres(&self, entities: &[DomainEntity]) -> Result<i64, DbErr> {
        use sea_orm::sqlx;
        let err = |e: sqlx::Error| DbErr::Custom(format!("bulk upsert: {e}"));
        let n = entities.len();
        let mut columns: [Vec<String>; 8] = Default::default();
        for c in columns.iter_mut() {
            c.reserve(n);
        }
        let mut generated = Vec::with_capacity(n);
        for e in entities {
            columns[0].push(e.id.clone());
            columns[1].push(e.legal_name.clone());
            columns[2].push(serde_json::to_string(&e.other_names).unwrap_or_else(|_| "[]".into()));
            columns[3]
                .push(serde_json::to_string(&e.address_lines).unwrap_or_else(|_| "[]".into()));
            columns[4].push(e.city.clone());
            columns[5].push(e.region.clone());
            columns[6].push(e.postal_code.clone());
            columns[7].push(e.country.clone());
            generated.push(e.address_generated);
        }
        let [
            ids,
            names,
            others,
            lines,
            cities,
            regions,
            postals,
            countries,
        ] = columns;
        let mut tx = cosell_platform::db::begin_postgres(self.db.get_postgres_connection_pool())
            .await
            .map_err(err)?;
        let generation: i64 = sqlx::query_scalar(
            "INSERT INTO directory_state (key, value) VALUES ('generation', 1) \
             ON CONFLICT (key) DO UPDATE SET value = directory_state.value + 1 RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        sqlx::query(
            "INSERT INTO entities (id, legal_name, other_names, address_lines, city, region, \
             postal_code, country, address_generated, update_time, generation) \
             SELECT u.*, now(), $10 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
             $5::text[], $6::text[], $7::text[], $8::text[], $9::bool[]) AS u \
             ON CONFLICT (id) DO UPDATE SET legal_name = EXCLUDED.legal_name, \
             other_names = EXCLUDED.other_names, address_lines = EXCLUDED.address_lines, \
             city = EXCLUDED.city, region = EXCLUDED.region, postal_code = EXCLUDED.postal_code, \
             country = EXCLUDED.country, address_generated = EXCLUDED.address_generated, \
             update_time = EXCLUDED.update_time, generation = EXCLUDED.generation",
        )
        .bind(ids)
        .bind(names)
        .bind(others)
        .bind(lines)
        .bind(cities)
        .bind(regions)
        .bind(postals)
        .bind(countries)
        .bind(generated)
        .bind(generation)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
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

    /// One page, by id after `after_id`, of the entities last written by a generation in
    /// `(since, upto]` other than those of `except` (the ones the caller indexed itself).
    pub async fn changed(
        &self,
        since: i64,
        upto: i64,
        except: &[i64],
        after_id: Option<&str>,
        limit: u64,
    ) -> Result<Vec<DomainEntity>, DbErr> {
        let mut q = entity::Entity::find()
            .filter(entity::Column::Generation.gt(since))
            .filter(entity::Column::Generation.lte(upto))
            .order_by_asc(entity::Column::Id)
            .limit(limit);
        if !except.is_empty() {
            q = q.filter(entity::Column::Generation.is_not_in(except.iter().copied()));
        }
        if let Some(a) = after_id {
            q = q.filter(entity::Column::Id.gt(a));
        }
        Ok(q.all(&self.db).await?.into_iter().map(to_domain).collect())
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
