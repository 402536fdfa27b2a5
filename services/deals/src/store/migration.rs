//! Schema migrations of the deals database, run at start.

use sea_orm_migration::prelude::*;

pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Initial)]
    }
}

/// Referrals (with the idempotency keys of their creates), favorites and the solutions catalog.
struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

fn id(name: &str) -> Alias {
    Alias::new(name)
}

fn time(name: &str) -> ColumnDef {
    ColumnDef::new(id(name))
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn optional_time(name: &str) -> ColumnDef {
    ColumnDef::new(id(name))
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

fn text(name: &str) -> ColumnDef {
    ColumnDef::new(id(name)).text().not_null().to_owned()
}

fn optional_text(name: &str) -> ColumnDef {
    ColumnDef::new(id(name)).text().null().to_owned()
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(id("referrals"))
                .col(ColumnDef::new(id("id")).string().not_null().primary_key())
                .col(text("organization"))
                .col(optional_text("mpn_location"))
                .col(text("party"))
                .col(text("engagement"))
                .col(text("direction"))
                .col(text("deal_type"))
                .col(text("status"))
                .col(text("substatus"))
                .col(text("status_reason"))
                .col(text("display_name"))
                .col(optional_text("customer_entity"))
                .col(text("customer_name"))
                // Lower-cased in Rust (full Unicode), for the customer-name filter: SQLite's
                // lower() folds ASCII only.
                .col(text("customer_search"))
                .col(text("customer_json"))
                .col(ColumnDef::new(id("consent_to_share")).boolean().not_null())
                .col(optional_text("assistance_json"))
                .col(text("solutions_json"))
                .col(text("team_json"))
                .col(text("team_emails"))
                .col(ColumnDef::new(id("deal_value_cents")).big_integer().null())
                .col(text("currency"))
                .col(optional_text("estimated_close_date"))
                .col(text("notes"))
                .col(optional_text("seller_contact_json"))
                .col(time("create_time"))
                .col(time("update_time"))
                .col(optional_time("accept_time"))
                .col(optional_time("close_time"))
                .col(optional_time("expire_time"))
                .col(ColumnDef::new(id("version")).big_integer().not_null())
                .col(text("external_reference_id"))
                .col(optional_text("psc_deal_id"))
                .col(optional_text("request_key"))
                .to_owned(),
        )
        .await?;
        // The lists: one organization's (or the platform's) referrals, newest first.
        m.create_index(
            Index::create()
                .name("referrals_by_owner_created")
                .table(id("referrals"))
                .col(id("organization"))
                .col(id("party"))
                .col(id("create_time"))
                .col(id("id"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("referrals_by_party_created")
                .table(id("referrals"))
                .col(id("party"))
                .col(id("status"))
                .col(id("create_time"))
                .col(id("id"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("referrals_by_engagement")
                .table(id("referrals"))
                .col(id("engagement"))
                .to_owned(),
        )
        .await?;
        // A migrated PSC deal exists once per organization (the import's idempotency).
        m.create_index(
            Index::create()
                .name("referrals_psc_deal")
                .table(id("referrals"))
                .col(id("organization"))
                .col(id("psc_deal_id"))
                .unique()
                .to_owned(),
        )
        .await?;
        // A create's idempotency key (D10): a retry finds the referral it made.
        m.create_index(
            Index::create()
                .name("referrals_request_key")
                .table(id("referrals"))
                .col(id("request_key"))
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(id("favorites"))
                .col(text("principal"))
                .col(text("referral_id"))
                .col(time("create_time"))
                .primary_key(Index::create().col(id("principal")).col(id("referral_id")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(id("solutions"))
                .col(ColumnDef::new(id("id")).string().not_null().primary_key())
                .col(text("display_name"))
                .col(text("sort_name"))
                .col(text("search_words"))
                .col(optional_text("publisher"))
                .col(text("kind"))
                .col(ColumnDef::new(id("cosell_ready")).boolean().not_null())
                .col(
                    ColumnDef::new(id("incentive_eligible"))
                        .boolean()
                        .not_null(),
                )
                .col(optional_text("mpn_id"))
                .col(text("legacy_product_ids"))
                .col(time("create_time"))
                .col(time("update_time"))
                .col(ColumnDef::new(id("version")).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("solutions_by_publisher")
                .table(id("solutions"))
                .col(id("publisher"))
                .col(id("cosell_ready"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
