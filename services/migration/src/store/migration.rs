//! Schema migrations of the migration service's database, run at start.

use sea_orm_migration::prelude::*;

pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Snapshot),
            Box::new(M0002StreamedSnapshot),
            Box::new(M0003RunCounts),
            Box::new(M0004ImportLocks),
            Box::new(M0005RunStarters),
            Box::new(M0006RunTraces),
            Box::new(M0007CustomerMatch),
            Box::new(M0008PendingWork),
        ]
    }
}

/// The imported PSC snapshot and the import history.
struct M0001Snapshot;

impl MigrationName for M0001Snapshot {
    fn name(&self) -> &str {
        "m0001_snapshot"
    }
}

fn id(name: &str) -> Alias {
    Alias::new(name)
}

fn text(name: &str) -> ColumnDef {
    ColumnDef::new(id(name)).text().not_null().to_owned()
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0001Snapshot {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(id("psc_accounts"))
                .col(text("organization"))
                .col(text("account_id"))
                .col(text("name"))
                .col(text("mpn_id"))
                // An admin's correction of the MPN association (SPEC 5.2); imports keep it.
                .col(ColumnDef::new(id("corrected_mpn_id")).text().null())
                .primary_key(
                    Index::create()
                        .col(id("organization"))
                        .col(id("account_id")),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(id("psc_users"))
                .col(text("organization"))
                .col(text("email"))
                .col(text("account_id"))
                .col(text("record_json"))
                .primary_key(
                    Index::create()
                        .col(id("organization"))
                        .col(id("email"))
                        .col(id("account_id")),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(id("psc_deals"))
                .col(text("organization"))
                .col(text("deal_id"))
                .col(text("account_id"))
                .col(text("status"))
                .col(
                    ColumnDef::new(id("created"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                // The deal with its products and team, as read from the export.
                .col(text("record_json"))
                .primary_key(Index::create().col(id("organization")).col(id("deal_id")))
                .to_owned(),
        )
        .await?;
        // The user migration wizard's outcome per PSC user and account (SPEC 5.3).
        m.create_table(
            Table::create()
                .table(id("user_migration"))
                .col(text("organization"))
                .col(text("email"))
                .col(text("account_id"))
                .col(text("status"))
                .col(text("error"))
                .col(text("error_message"))
                .col(text("pc_user"))
                // The role assignment the migration made, so that a later row of the same user
                // is not mistaken for a role the user held before.
                .col(text("pc_assignment"))
                .primary_key(
                    Index::create()
                        .col(id("organization"))
                        .col(id("email"))
                        .col(id("account_id")),
                )
                .to_owned(),
        )
        .await?;
        // Deal migration runs and each deal's result (SPEC 5.4). A PENDING result is work: a
        // worker leases it (owner and expiry), so that several replicas share a run and a dead
        // worker's deals go to another once the lease expires.
        m.create_table(
            Table::create()
                .table(id("deal_runs"))
                .col(ColumnDef::new(id("id")).string().not_null().primary_key())
                .col(text("organization"))
                .col(
                    ColumnDef::new(id("create_time"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(id("finish_time"))
                        .timestamp_with_time_zone()
                        .null(),
                )
                // `ACTIVE` while unfinished, NULL after: the unique index below lets one run at a
                // time be unfinished per organization, whoever starts them concurrently.
                .col(ColumnDef::new(id("active")).text().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("deal_runs_one_active")
                .table(id("deal_runs"))
                .col(id("organization"))
                .col(id("active"))
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(id("deal_results"))
                .col(text("organization"))
                .col(text("deal_id"))
                .col(text("run_id"))
                .col(text("state"))
                .col(text("lease_owner"))
                .col(
                    ColumnDef::new(id("lease_until"))
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(text("deal_name"))
                .col(text("engagement"))
                .col(text("referral"))
                .col(text("deal_type"))
                .col(text("direction"))
                .col(text("error"))
                .col(text("notes"))
                .primary_key(Index::create().col(id("organization")).col(id("deal_id")))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("deal_results_work")
                .table(id("deal_results"))
                .col(id("state"))
                .col(id("lease_until"))
                .to_owned(),
        )
        .await?;
        // The cut-over switch per organization (SPEC 5.5). No longer read: the switch moved to
        // the deals service (its m0003_cutovers), which routes by it.
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
                .col(
                    ColumnDef::new(id("switch_time"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(text("switched_by"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(id("psc_imports"))
                .col(ColumnDef::new(id("id")).string().not_null().primary_key())
                .col(text("organization"))
                .col(
                    ColumnDef::new(id("create_time"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(text("summary_json"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// The snapshot as a streamed import writes it: a deal's products and team in rows of their
/// own (a deal row no longer waits for the files after it), the columns eligibility is counted
/// on, and the import that last wrote each deal. Rows written by m0001's import are moved over.
struct M0002StreamedSnapshot;

impl MigrationName for M0002StreamedSnapshot {
    fn name(&self) -> &str {
        "m0002_streamed_snapshot"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0002StreamedSnapshot {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for (column, default) in [
            ("name", ""),
            ("registration", "None"),
            ("program", "Standard"),
            ("import_id", ""),
        ] {
            m.alter_table(
                Table::alter()
                    .table(id("psc_deals"))
                    .add_column(
                        ColumnDef::new(id(column))
                            .text()
                            .not_null()
                            .default(default)
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table(id("psc_deal_parts"))
                .col(text("organization"))
                .col(text("deal_id"))
                .col(text("kind"))
                .col(ColumnDef::new(id("line")).big_integer().not_null())
                .col(text("record_json"))
                .primary_key(
                    Index::create()
                        .col(id("organization"))
                        .col(id("deal_id"))
                        .col(id("kind"))
                        .col(id("line")),
                )
                .to_owned(),
        )
        .await?;
        // The status banner counts deals by these, and a run's start reads them in id order.
        m.create_index(
            Index::create()
                .name("deal_results_run")
                .table(id("deal_results"))
                .col(id("run_id"))
                .col(id("state"))
                .to_owned(),
        )
        .await?;
        move_m0001_records(m).await
    }
}

/// A run's counts in its own row (total, migrated, failed), kept as outcomes are recorded, so
/// that following a run of 100,000 deals does not count them at every look. Runs before it are
/// counted once from their results.
struct M0003RunCounts;

impl MigrationName for M0003RunCounts {
    fn name(&self) -> &str {
        "m0003_run_counts"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0003RunCounts {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use sea_orm_migration::sea_orm::ConnectionTrait;
        for column in ["total", "migrated", "failed"] {
            m.alter_table(
                Table::alter()
                    .table(id("deal_runs"))
                    .add_column(
                        ColumnDef::new(id(column))
                            .big_integer()
                            .not_null()
                            .default(0)
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        }
        m.get_connection()
            .execute_unprepared(
                "UPDATE deal_runs SET \
                 total = (SELECT COUNT(*) FROM deal_results r WHERE r.run_id = deal_runs.id), \
                 migrated = (SELECT COUNT(*) FROM deal_results r \
                    WHERE r.run_id = deal_runs.id AND r.state = 'MIGRATED'), \
                 failed = (SELECT COUNT(*) FROM deal_results r \
                    WHERE r.run_id = deal_runs.id AND r.state = 'FAILED')",
            )
            .await?;
        Ok(())
    }
}

/// One import at a time per organization, whichever replica takes it: a row per organization
/// importing, held by one import (`holder`) of one replica until `lease_until`, renewed while
/// the import runs, deleted when it ends; a replica that dies leaves a row that expires.
struct M0004ImportLocks;

impl MigrationName for M0004ImportLocks {
    fn name(&self) -> &str {
        "m0004_import_locks"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0004ImportLocks {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(id("import_locks"))
                .col(
                    ColumnDef::new(id("organization"))
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(text("holder"))
                .col(text("replica"))
                .col(
                    ColumnDef::new(id("lease_until"))
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await
    }
}

/// Who started each run, and when the deals service took the notification that it finished:
/// a finished run with a starter and no `told_time` is still to tell (`store::runs`).
struct M0005RunStarters;

impl MigrationName for M0005RunStarters {
    fn name(&self) -> &str {
        "m0005_run_starters"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0005RunStarters {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ColumnDef::new(id("started_by")).string().null().to_owned(),
            ColumnDef::new(id("told_time"))
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ] {
            m.alter_table(
                Table::alter()
                    .table(id("deal_runs"))
                    .add_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

/// The trace context of the call that started each run (`deal_runs.start_traceparent`): the
/// worker links each batch's span to it.
struct M0006RunTraces;

impl MigrationName for M0006RunTraces {
    fn name(&self) -> &str {
        "m0006_run_traces"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0006RunTraces {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(id("deal_runs"))
                .add_column(ColumnDef::new(id("start_traceparent")).string().null())
                .to_owned(),
        )
        .await
    }
}

/// How each migrated deal's customer came out (`deal_results.customer_match`), for the report.
struct M0007CustomerMatch;

impl MigrationName for M0007CustomerMatch {
    fn name(&self) -> &str {
        "m0007_customer_match"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0007CustomerMatch {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(id("deal_results"))
                .add_column(
                    ColumnDef::new(id("customer_match"))
                        .string()
                        .not_null()
                        .default(""),
                )
                .to_owned(),
        )
        .await
    }
}

/// The workers' leases read PENDING rows in key order from where the replica's last lease
/// ended (`Store::lease`), on an index of the PENDING rows alone; the index on `(state,
/// lease_until)` it replaces was not used (a lease scanned the table, every finished deal
/// again each time). Leasing now changes no indexed column, so on PostgreSQL the lease's update
/// stays on its page (a HOT update, no new index entries) when the page has room: the table's
/// pages are filled half, the other half for the versions a run writes.
struct M0008PendingWork;

impl MigrationName for M0008PendingWork {
    fn name(&self) -> &str {
        "m0008_pending_work"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0008PendingWork {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};
        let db = m.get_connection();
        db.execute_unprepared(
            "CREATE INDEX deal_results_pending ON deal_results (organization, deal_id) \
             WHERE state = 'PENDING'",
        )
        .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS deal_results_work")
            .await?;
        if m.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared("ALTER TABLE deal_results SET (fillfactor = 50)")
                .await?;
        }
        Ok(())
    }
}

/// m0001 kept `{deal, products, team}` in each deal's record: split it.
async fn move_m0001_records(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    use sea_orm_migration::sea_orm::{ConnectionTrait, Value as V};
    let db = m.get_connection();
    let rows = db
        .query_all(
            Query::select()
                .columns([id("organization"), id("deal_id"), id("record_json")])
                .from(id("psc_deals")),
        )
        .await?;
    for row in rows {
        let org: String = row.try_get("", "organization")?;
        let deal_id: String = row.try_get("", "deal_id")?;
        let record: String = row.try_get("", "record_json")?;
        let Ok(old) = serde_json::from_str::<serde_json::Value>(&record) else {
            continue;
        };
        let Some(deal) = old.get("deal") else {
            continue;
        };
        let field = |k: &str| deal.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        m.exec_stmt(
            Query::update()
                .table(id("psc_deals"))
                .values([
                    (id("name"), field("name").into()),
                    (id("registration"), field("registration").into()),
                    (id("program"), field("program").into()),
                    (id("record_json"), deal.to_string().into()),
                ])
                .and_where(Expr::col(id("organization")).eq(org.as_str()))
                .and_where(Expr::col(id("deal_id")).eq(deal_id.as_str()))
                .to_owned(),
        )
        .await?;
        for (kind, key) in [("product", "products"), ("team", "team")] {
            let parts = old.get(key).and_then(|v| v.as_array()).cloned();
            for (line, part) in parts.unwrap_or_default().iter().enumerate() {
                m.exec_stmt(
                    Query::insert()
                        .into_table(id("psc_deal_parts"))
                        .columns([
                            id("organization"),
                            id("deal_id"),
                            id("kind"),
                            id("line"),
                            id("record_json"),
                        ])
                        .values_panic([
                            org.as_str().into(),
                            deal_id.as_str().into(),
                            kind.into(),
                            V::BigInt(Some(line as i64)).into(),
                            part.to_string().into(),
                        ])
                        .to_owned(),
                )
                .await?;
            }
        }
    }
    Ok(())
}
