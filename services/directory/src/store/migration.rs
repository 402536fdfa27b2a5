//! Schema migrations of the directory database, run at start.

use sea_orm_migration::prelude::*;

pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Initial)]
    }
}

/// Entities and the index generation counter.
struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

fn id(name: &str) -> Alias {
    Alias::new(name)
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(id("entities"))
                .col(ColumnDef::new(id("id")).string().not_null().primary_key())
                .col(ColumnDef::new(id("legal_name")).text().not_null())
                .col(ColumnDef::new(id("other_names")).text().not_null())
                .col(ColumnDef::new(id("address_lines")).text().not_null())
                .col(ColumnDef::new(id("city")).string().not_null())
                .col(ColumnDef::new(id("region")).string().not_null())
                .col(ColumnDef::new(id("postal_code")).string().not_null())
                .col(ColumnDef::new(id("country")).string().not_null())
                .col(ColumnDef::new(id("address_generated")).boolean().not_null())
                .col(
                    ColumnDef::new(id("update_time"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(id("directory_state"))
                .col(ColumnDef::new(id("key")).string().not_null().primary_key())
                .col(ColumnDef::new(id("value")).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
