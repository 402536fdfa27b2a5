//! Schema migrations of the identity database, run at start. Never edit a released migration:
//! add a new one.

use sea_orm_migration::prelude::*;

pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Initial), Box::new(M0002KeyActivation)]
    }
}

/// Organizations, domains, MPN IDs, users, role assignments, service principals, keys.
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
                .table(id("organizations"))
                .col(ColumnDef::new(id("id")).uuid().not_null().primary_key())
                .col(ColumnDef::new(id("display_name")).string().not_null())
                .col(ColumnDef::new(id("tenant_id")).string().not_null())
                .col(ColumnDef::new(id("is_platform")).boolean().not_null())
                .col(
                    ColumnDef::new(id("isv_connect_enrolled"))
                        .boolean()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(id("create_time"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
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
                .table(id("verified_domains"))
                .col(
                    ColumnDef::new(id("domain"))
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(id("organization_id")).uuid().not_null())
                .col(
                    ColumnDef::new(id("create_time"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(id("verified_domains"), id("organization_id"))
                        .to(id("organizations"), id("id")),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(id("mpn_ids"))
                .col(
                    ColumnDef::new(id("mpn_id"))
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(id("organization_id")).uuid().not_null())
                .col(ColumnDef::new(id("kind")).string().not_null())
                .col(ColumnDef::new(id("country_code")).string().not_null())
                .col(ColumnDef::new(id("city")).string().not_null())
                .col(
                    ColumnDef::new(id("create_time"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(id("mpn_ids"), id("organization_id"))
                        .to(id("organizations"), id("id")),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(id("users"))
                .col(ColumnDef::new(id("id")).uuid().not_null().primary_key())
                .col(ColumnDef::new(id("organization_id")).uuid().not_null())
                .col(ColumnDef::new(id("email")).string().not_null())
                .col(ColumnDef::new(id("given_name")).string().not_null())
                .col(ColumnDef::new(id("family_name")).string().not_null())
                .col(ColumnDef::new(id("kind")).string().not_null())
                .col(ColumnDef::new(id("state")).string().not_null())
                .col(
                    ColumnDef::new(id("create_time"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(id("update_time"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(id("users"), id("organization_id"))
                        .to(id("organizations"), id("id")),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("users_org_email")
                .table(id("users"))
                .col(id("organization_id"))
                .col(id("email"))
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("users_email")
                .table(id("users"))
                .col(id("email"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(id("role_assignments"))
                .col(ColumnDef::new(id("id")).uuid().not_null().primary_key())
                .col(ColumnDef::new(id("organization_id")).uuid().not_null())
                .col(ColumnDef::new(id("user_id")).uuid().not_null())
                .col(ColumnDef::new(id("role")).string().not_null())
                .col(ColumnDef::new(id("scope")).string().not_null())
                .col(
                    ColumnDef::new(id("create_time"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(id("role_assignments"), id("user_id"))
                        .to(id("users"), id("id")),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("role_assignments_user_role_scope")
                .table(id("role_assignments"))
                .col(id("user_id"))
                .col(id("role"))
                .col(id("scope"))
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("role_assignments_org_role")
                .table(id("role_assignments"))
                .col(id("organization_id"))
                .col(id("role"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(id("service_principals"))
                .col(ColumnDef::new(id("name")).string().not_null().primary_key())
                .col(ColumnDef::new(id("secret_sha256")).string().not_null())
                .col(
                    ColumnDef::new(id("create_time"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(id("signing_keys"))
                .col(ColumnDef::new(id("kid")).string().not_null().primary_key())
                .col(ColumnDef::new(id("private_pkcs8")).text().not_null())
                .col(ColumnDef::new(id("public_x")).string().not_null())
                .col(
                    ColumnDef::new(id("create_time"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(id("retire_time"))
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new(id("expire_time"))
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// A signing key's activation time: a rotation publishes the new key before it signs, so that
/// every verifier has fetched it by its first token. NULL: signing from its creation.
struct M0002KeyActivation;

impl MigrationName for M0002KeyActivation {
    fn name(&self) -> &str {
        "m0002_key_activation"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0002KeyActivation {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(id("signing_keys"))
                .add_column(
                    ColumnDef::new(id("activate_time"))
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await
    }
}
