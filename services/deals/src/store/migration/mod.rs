//! Schema migrations of the deals database, run at start: part 1's tables here (referrals,
//! favorites, solutions, cut-overs, registration, m0001-m0005), the lifecycle's (the change
//! feed, notifications, the insights' counters, the inbound referrals' senders, notifications'
//! subjects, m0006-m0011) in [`lifecycle`], and later columns of referrals here (the customer
//! candidates, m0012).

mod lifecycle;

use lifecycle::{
    M0006Events, M0007Notifications, M0008InsightCounters, M0009EventQueue, M0010InboundSenders,
    M0011NotificationSubjects,
};

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Initial),
            Box::new(M0002SolutionWords),
            Box::new(M0003Cutovers),
            Box::new(M0004Registration),
            Box::new(M0005Insights),
            Box::new(M0006Events),
            Box::new(M0007Notifications),
            Box::new(M0008InsightCounters),
            Box::new(M0009EventQueue),
            Box::new(M0010InboundSenders),
            Box::new(M0011NotificationSubjects),
            Box::new(M0012CustomerCandidates),
        ]
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

/// The catalog's search index: `solution_words` (word, solution), a B-tree whose prefix ranges
/// answer the picker's words, filled from the names already there. Until now each word of a
/// query was a `LIKE '% word%'` over every solution's name.
struct M0002SolutionWords;

impl MigrationName for M0002SolutionWords {
    fn name(&self) -> &str {
        "m0002_solution_words"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0002SolutionWords {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Byte order, whatever the database's collation: a prefix is then one range, `word >=
        // w AND word < w || U+10FFFF`. SQLite compares text byte by byte (BINARY) already.
        let word = match m.get_database_backend() {
            DbBackend::Postgres => ColumnDef::new(id("word"))
                .text()
                .not_null()
                .extra("COLLATE \"C\"")
                .to_owned(),
            _ => text("word"),
        };
        m.create_table(
            Table::create()
                .table(id("solution_words"))
                .col(word)
                .col(ColumnDef::new(id("solution_id")).string().not_null())
                .primary_key(Index::create().col(id("word")).col(id("solution_id")))
                .to_owned(),
        )
        .await?;
        // A solution's rows: replaced when its name changes, and the lookup of a word of one
        // solution when the planner walks the names in order (below).
        m.create_index(
            Index::create()
                .name("solution_words_by_solution")
                .table(id("solution_words"))
                .col(id("solution_id"))
                .col(id("word"))
                .to_owned(),
        )
        .await?;
        // The list's order. A search for a word many names have (the first letter typed) then
        // walks the names in order and stops at the page's end, instead of sorting every match.
        m.create_index(
            Index::create()
                .name("solutions_by_name")
                .table(id("solutions"))
                .col(id("sort_name"))
                .col(id("id"))
                .to_owned(),
        )
        .await?;

        let db = m.get_connection();
        let solutions = db
            .query_all(
                Query::select()
                    .columns([id("id"), id("search_words")])
                    .from(id("solutions")),
            )
            .await?;
        let mut rows: Vec<(String, String)> = Vec::new();
        for s in &solutions {
            let solution: String = s.try_get("", "id")?;
            let words: String = s.try_get("", "search_words")?;
            let mut words: Vec<&str> = words.split(' ').filter(|w| !w.is_empty()).collect();
            words.sort_unstable();
            words.dedup();
            rows.extend(words.into_iter().map(|w| (w.to_owned(), solution.clone())));
        }
        // 500 rows, 1,000 bound values, per statement.
        for chunk in rows.chunks(500) {
            let mut insert = Query::insert();
            insert
                .into_table(id("solution_words"))
                .columns([id("word"), id("solution_id")]);
            for (word, solution) in chunk {
                insert.values_panic([word.as_str().into(), solution.as_str().into()]);
            }
            db.execute(&insert).await?;
        }
        Ok(())
    }
}

/// Each partner organization's cut-over switch (SPEC 5.5), which the deals service routes the
/// platform sellers' new referrals by. It used to live in the migration service, which the deals
/// service must not call (migration calls deals).
struct M0003Cutovers;

impl MigrationName for M0003Cutovers {
    fn name(&self) -> &str {
        "m0003_cutovers"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0003Cutovers {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(id("cutovers"))
                .col(
                    ColumnDef::new(id("organization"))
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(id("routed")).boolean().not_null())
                .col(time("switch_time"))
                .col(text("switched_by"))
                .to_owned(),
        )
        .await
    }
}

/// Deal registration (SPEC 3.8): the registration of a won deal on its partner referral, and
/// the platform operators' review queue (`ListRegistrations`: one status, oldest registration
/// first, paged by key).
struct M0004Registration;

impl MigrationName for M0004Registration {
    fn name(&self) -> &str {
        "m0004_registration"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0004Registration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [
            optional_text("registration_status"),
            optional_time("registration_time"),
            optional_time("review_time"),
            optional_text("reviewed_by"),
            optional_text("review_reason"),
        ] {
            m.alter_table(
                Table::alter()
                    .table(id("referrals"))
                    .add_column(column)
                    .to_owned(),
            )
            .await?;
        }
        m.create_index(
            Index::create()
                .name("referrals_by_registration")
                .table(id("referrals"))
                .col(id("registration_status"))
                .col(id("registration_time"))
                .col(id("id"))
                .to_owned(),
        )
        .await
    }
}

/// GetInsights (SPEC 3.7) grouped an organization's partner referrals when asked, on this
/// covering index; m0008 replaced both by counters kept with each change and drops it.
struct M0005Insights;

impl MigrationName for M0005Insights {
    fn name(&self) -> &str {
        "m0005_insights"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0005Insights {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let keys =
            "organization, party, mpn_location, status, substatus, deal_type, direction, currency";
        let payload = "deal_value_cents, create_time, accept_time, expire_time, psc_deal_id";
        let sql = match m.get_database_backend() {
            DbBackend::Postgres => {
                format!("CREATE INDEX referrals_insights ON referrals ({keys}) INCLUDE ({payload})")
            }
            _ => format!("CREATE INDEX referrals_insights ON referrals ({keys}, {payload})"),
        };
        m.get_connection().execute_unprepared(&sql).await?;
        Ok(())
    }
}

/// The directory entries the migration offers for a customer it could not link (D8), as JSON
/// beside the customer: read and written with their referral, never queried inside. Nullable,
/// so that existing rows (and every matched customer) hold none without a rewrite.
struct M0012CustomerCandidates;

impl MigrationName for M0012CustomerCandidates {
    fn name(&self) -> &str {
        "m0012_customer_candidates"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0012CustomerCandidates {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(id("referrals"))
                .add_column(optional_text("customer_candidates_json"))
                .to_owned(),
        )
        .await
    }
}
