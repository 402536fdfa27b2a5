//! Schema migrations of the directory database, run at start.

use sea_orm_migration::prelude::*;

pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Initial), Box::new(M0002RowGenerations)]
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

/// Each row records the generation that last wrote it, so that replicas catch up with what
/// others loaded by reading only those rows. Rows already there get the current generation: an
/// index behind it reads them all once, as the rebuild it would have needed.
struct M0002RowGenerations;

impl MigrationName for M0002RowGenerations {
    fn name(&self) -> &str {
        "m0002_row_generations"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0002RowGenerations {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(id("entities"))
                .add_column(
                    ColumnDef::new(id("generation"))
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared(
                "UPDATE entities SET generation = COALESCE((SELECT value FROM directory_state \
                 WHERE key = 'generation'), 0)",
            )
            .await?;
        m.create_index(
            Index::create()
                .name("entities_generation")
                .table(id("entities"))
                .col(id("generation"))
                .col(id("id"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
