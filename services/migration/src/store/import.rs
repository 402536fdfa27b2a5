//! Writing a streamed PSC export into an organization's snapshot, in one transaction, a batch
//! at a time: memory holds one batch (at most 500 rows and about 8 MiB), whatever the size of
//! the export, and the first 1,000 errors of each file.
//!
//! The checks that need every deal id of the export are made here, against the rows this
//! import wrote (each deal row names the import that last wrote it): a second row of a deal id
//! is a duplicate, and a product or team member of a deal the export does not have is refused.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QuerySelect,
};
use uuid::Uuid;

use super::entities::{account, deal, import, part, user};
use super::{ImportSummary, Result, Store, json, label};
use crate::psc::files::{Account, DEAL_PRODUCTS, DEAL_TEAM, DEALS, Deal, User};
use crate::psc::{ErrorList, Issue, Record};

/// Rows written per statement, at most...
const BATCH: usize = 500;
/// ...and at most about this many bytes of them (a deal can be 1 MiB).
const BATCH_BYTES: usize = 8 << 20;

/// Records of one kind waiting to be written.
enum Pending {
    None,
    Accounts(Vec<Account>),
    Users(Vec<User>),
    Deals(Vec<(u64, Box<Deal>)>),
    /// (kind, line, deal id, record), products and team members alike.
    Parts(Vec<(&'static str, u64, String, String)>),
}

impl Pending {
    fn len(&self) -> usize {
        match self {
            Pending::None => 0,
            Pending::Accounts(v) => v.len(),
            Pending::Users(v) => v.len(),
            Pending::Deals(v) => v.len(),
            Pending::Parts(v) => v.len(),
        }
    }
}

struct Import {
    txn: DatabaseTransaction,
    org: String,
    summary: ImportSummary,
    errors: ErrorList,
    pending: Pending,
    /// About how many bytes `pending` holds.
    pending_bytes: usize,
    /// Whether the snapshot's statistics were refreshed inside this import (see `deals`).
    analyzed: bool,
}

impl Store {
    /// Imports the records of a bundle (as [`crate::psc::stream`] hands them over) into
    /// `organization`'s snapshot, in one transaction; `warnings` are the upload's own.
    pub async fn import(
        &self,
        organization: Uuid,
        mut records: tokio::sync::mpsc::Receiver<Vec<Record>>,
        warnings: Vec<Issue>,
    ) -> Result<ImportSummary> {
        let mut import = Import {
            txn: cosell_platform::db::begin(&self.db).await?,
            org: organization.to_string(),
            summary: ImportSummary {
                id: Uuid::now_v7().to_string(),
                warnings: warnings.into_iter().map(Issue::bounded).collect(),
                ..Default::default()
            },
            errors: ErrorList::default(),
            pending: Pending::None,
            pending_bytes: 0,
            analyzed: false,
        };
        while let Some(batch) = records.recv().await {
            for record in batch {
                import.take(record).await?;
            }
        }
        import.flush().await?;
        let Import {
            txn,
            org,
            mut summary,
            errors,
            ..
        } = import;
        (summary.errors, summary.unlisted_errors) = errors.into_parts();
        summary
            .warnings
            .extend(ErrorList::unlisted_warnings(&summary.unlisted_errors));
        import::Entity::insert(import::ActiveModel {
            id: Set(summary.id.clone()),
            organization: Set(org),
            create_time: Set(Utc::now()),
            summary_json: Set(json(&summary)),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        // The import is in whatever happens here.
        if let Err(e) =
            cosell_platform::db::analyze(&self.db, &["psc_deals", "psc_deal_parts"]).await
        {
            tracing::warn!(error = %e, "refreshing statistics after an import failed");
        }
        Ok(summary)
    }
}

impl Import {
    async fn take(&mut self, record: Record) -> Result<()> {
        // Records come file by file: a record of another kind means the batch is complete.
        macro_rules! push {
            ($variant:ident, $value:expr) => {{
                if !matches!(self.pending, Pending::$variant(_)) {
                    self.flush().await?;
                    self.pending = Pending::$variant(Vec::with_capacity(BATCH));
                }
                if let Pending::$variant(v) = &mut self.pending {
                    v.push($value);
                }
            }};
        }
        // Errors and warnings are kept apart (bounded there); rows wait for their batch.
        let row_bytes = match &record {
            Record::Error(_) | Record::Warning(_) => 0,
            row => row.size(),
        };
        match record {
            Record::Error(i) => self.errors.push(i),
            Record::Warning(i) => self.summary.warnings.push(i.bounded()),
            Record::Account(a) => push!(Accounts, a),
            Record::User(u) => push!(Users, u),
            Record::Deal(line, d) => push!(Deals, (line, d)),
            Record::Product(line, p) => {
                push!(Parts, ("product", line, p.deal_id.clone(), json(&p)))
            }
            Record::Team(line, t) => push!(Parts, ("team", line, t.deal_id.clone(), json(&t))),
        }
        self.pending_bytes += row_bytes;
        if self.pending.len() >= BATCH || self.pending_bytes >= BATCH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        self.pending_bytes = 0;
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::None => Ok(()),
            Pending::Accounts(rows) => self.accounts(rows).await,
            Pending::Users(rows) => self.users(rows).await,
            Pending::Deals(rows) => self.deals(rows).await,
            Pending::Parts(rows) => self.parts(rows).await,
        }
    }

    async fn accounts(&mut self, rows: Vec<Account>) -> Result<()> {
        self.summary.accounts += rows.len() as u64;
        let org = &self.org;
        account::Entity::insert_many(rows.into_iter().map(|a| account::ActiveModel {
            organization: Set(org.clone()),
            account_id: Set(a.id),
            name: Set(a.name),
            mpn_id: Set(a.mpn_id),
            // An admin's correction survives re-imports.
            corrected_mpn_id: sea_orm::ActiveValue::NotSet,
        }))
        .on_conflict(
            OnConflict::columns([account::Column::Organization, account::Column::AccountId])
                .update_columns([account::Column::Name, account::Column::MpnId])
                .to_owned(),
        )
        .exec_without_returning(&self.txn)
        .await?;
        Ok(())
    }

    async fn users(&mut self, rows: Vec<User>) -> Result<()> {
        self.summary.users += rows.len() as u64;
        let org = &self.org;
        user::Entity::insert_many(rows.iter().map(|u| user::ActiveModel {
            organization: Set(org.clone()),
            email: Set(u.email.clone()),
            account_id: Set(u.account_id.clone()),
            record_json: Set(json(u)),
        }))
        .on_conflict(
            OnConflict::columns([
                user::Column::Organization,
                user::Column::Email,
                user::Column::AccountId,
            ])
            .update_columns([user::Column::RecordJson])
            .to_owned(),
        )
        .exec_without_returning(&self.txn)
        .await?;
        Ok(())
    }

    async fn deals(&mut self, rows: Vec<(u64, Box<Deal>)>) -> Result<()> {
        // Each batch looks up its deal ids in the snapshot. Planned without statistics, the
        // lookup reads every deal of the organization (the planner cannot know that all rows
        // are one organization's), so a first-time import of 100,000 deals took minutes; once
        // the first batch is written, the statistics are refreshed inside the transaction,
        // which sees its own rows. That holds the statistics' lock until the import commits;
        // another import meanwhile skips its own refresh and goes on (see `analyze`).
        if !self.analyzed && self.summary.deals_added > 0 {
            self.analyzed = true;
            cosell_platform::db::analyze(&self.txn, &["psc_deals", "psc_deal_parts"]).await?;
        }
        let this = self.summary.id.clone();
        let existing: HashMap<String, (String, String)> = deal::Entity::find()
            .filter(deal::Column::Organization.eq(self.org.as_str()))
            .filter(deal::Column::DealId.is_in(rows.iter().map(|(_, d)| d.id.as_str())))
            .all(&self.txn)
            .await?
            .into_iter()
            .map(|m| (m.deal_id, (m.import_id, m.record_json)))
            .collect();
        let mut seen = HashSet::new();
        let mut write = Vec::with_capacity(rows.len());
        for (line, d) in rows {
            let record_json = json(&d);
            let duplicate = !seen.insert(d.id.clone())
                || existing.get(&d.id).is_some_and(|(by, _)| *by == this);
            if duplicate {
                self.errors.push(Issue {
                    file: DEALS.file.into(),
                    line,
                    column: "DealId".into(),
                    id: d.id.clone(),
                    reason: "duplicate deal id; the first row is kept".into(),
                });
                continue;
            }
            match existing.get(&d.id) {
                Some((_, old)) if *old == record_json => self.summary.deals_unchanged += 1,
                Some(_) => self.summary.deals_updated += 1,
                None => self.summary.deals_added += 1,
            }
            // Unchanged rows are written too: the row must name this import.
            write.push(DealRow::new(*d, record_json));
        }
        if write.is_empty() {
            return Ok(());
        }
        // The export's products and team replace what an earlier export said of these deals.
        // A deal the snapshot did not have has none (deal rows are never deleted), so a first
        // import deletes nothing and spares the statement.
        let earlier: Vec<&str> = write
            .iter()
            .map(|r| r.deal_id.as_str())
            .filter(|id| existing.contains_key(*id))
            .collect();
        if !earlier.is_empty() {
            part::Entity::delete_many()
                .filter(part::Column::Organization.eq(self.org.as_str()))
                .filter(part::Column::DealId.is_in(earlier))
                .exec(&self.txn)
                .await?;
        }
        if self.txn.get_database_backend() == DbBackend::Postgres {
            let statement = bulk::upsert_deals(&self.org, &this, write);
            self.txn.execute_raw(statement).await?;
            return Ok(());
        }
        let org = &self.org;
        let models = write.into_iter().map(|r| deal::ActiveModel {
            organization: Set(org.clone()),
            deal_id: Set(r.deal_id),
            account_id: Set(r.account_id),
            name: Set(r.name),
            status: Set(r.status),
            created: Set(r.created),
            registration: Set(r.registration),
            program: Set(r.program),
            import_id: Set(this.clone()),
            record_json: Set(r.record_json),
        });
        deal::Entity::insert_many(models)
            .on_conflict(
                OnConflict::columns([deal::Column::Organization, deal::Column::DealId])
                    .update_columns([
                        deal::Column::AccountId,
                        deal::Column::Name,
                        deal::Column::Status,
                        deal::Column::Created,
                        deal::Column::Registration,
                        deal::Column::Program,
                        deal::Column::ImportId,
                        deal::Column::RecordJson,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.txn)
            .await?;
        Ok(())
    }

    async fn parts(&mut self, mut rows: Vec<(&'static str, u64, String, String)>) -> Result<()> {
        // The rows whose deal this import wrote are written; the others are refused.
        let written: HashSet<(&'static str, u64)> =
            if self.txn.get_database_backend() == DbBackend::Postgres {
                // One statement that writes them and names them.
                let statement = bulk::insert_known_parts(&self.org, &self.summary.id, &mut rows);
                self.txn
                    .query_all_raw(statement)
                    .await?
                    .iter()
                    .map(|row| {
                        let kind: String = row.try_get("", "kind")?;
                        let line: i64 = row.try_get("", "line")?;
                        let kind = if kind == "product" { "product" } else { "team" };
                        Ok((kind, line as u64))
                    })
                    .collect::<std::result::Result<_, sea_orm::DbErr>>()?
            } else {
                self.insert_known_parts(&mut rows).await?
            };
        for (kind, line, deal_id, _) in rows {
            if written.contains(&(kind, line)) {
                if kind == "product" {
                    self.summary.products += 1;
                } else {
                    self.summary.team_members += 1;
                }
                continue;
            }
            let file = if kind == "product" {
                DEAL_PRODUCTS.file
            } else {
                DEAL_TEAM.file
            };
            self.errors.push(Issue {
                file: file.into(),
                line,
                column: "DealId".into(),
                reason: format!("unknown deal `{deal_id}`"),
                id: deal_id,
            });
        }
        Ok(())
    }

    /// The portable way of [`Import::parts`]: the deals this import wrote are looked up first,
    /// then their rows written (their records taken); the (kind, line) of each row written.
    async fn insert_known_parts(
        &self,
        rows: &mut [(&'static str, u64, String, String)],
    ) -> Result<HashSet<(&'static str, u64)>> {
        let ids: HashSet<&str> = rows.iter().map(|(_, _, id, _)| id.as_str()).collect();
        let known: HashSet<String> = deal::Entity::find()
            .select_only()
            .column(deal::Column::DealId)
            .filter(deal::Column::Organization.eq(self.org.as_str()))
            .filter(deal::Column::ImportId.eq(self.summary.id.as_str()))
            .filter(deal::Column::DealId.is_in(ids))
            .into_tuple::<String>()
            .all(&self.txn)
            .await?
            .into_iter()
            .collect();
        let write: Vec<_> = rows
            .iter_mut()
            .filter(|(_, _, deal_id, _)| known.contains(deal_id))
            .collect();
        if write.is_empty() {
            return Ok(HashSet::new());
        }
        let written = write
            .iter()
            .map(|(kind, line, ..)| (*kind, *line))
            .collect();
        part::Entity::insert_many(write.into_iter().map(|(kind, line, deal_id, record_json)| {
            part::ActiveModel {
                organization: Set(self.org.clone()),
                deal_id: Set(deal_id.clone()),
                kind: Set((*kind).into()),
                line: Set(*line as i64),
                record_json: Set(std::mem::take(record_json)),
            }
        }))
        .exec_without_returning(&self.txn)
        .await?;
        Ok(written)
    }
}

/// A deal row as the snapshot keeps it, less the organization and the import.
struct DealRow {
    deal_id: String,
    account_id: String,
    name: String,
    status: String,
    created: chrono::DateTime<Utc>,
    registration: String,
    program: String,
    record_json: String,
}

impl DealRow {
    fn new(d: Deal, record_json: String) -> Self {
        DealRow {
            status: label(&d.status),
            registration: label(&d.registration),
            program: label(&d.program),
            deal_id: d.id,
            account_id: d.account_id,
            name: d.name,
            created: d.created,
            record_json,
        }
    }
}

/// PostgreSQL's fast path: a batch as one `INSERT ... SELECT FROM UNNEST(arrays)`, a column per
/// bound array, instead of a statement with a bound value per row and column. Its text is the
/// same for every batch, so it is parsed and planned once per connection, and binding eight
/// arrays costs far less than binding 5,000 values (the 100,000-deal import: see
/// docs/benchmarks.md, "The PSC import in arrays").
mod bulk {
    use sea_orm::{DbBackend, Statement, Value};

    use super::DealRow;

    const UPSERT_DEALS: &str = "INSERT INTO psc_deals (organization, deal_id, account_id, name, \
        status, created, registration, program, import_id, record_json) \
        SELECT $1, u.deal_id, u.account_id, u.name, u.status, u.created, u.registration, \
        u.program, $2, u.record_json \
        FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], \
        $8::text[], $9::text[], $10::text[]) \
        AS u(deal_id, account_id, name, status, created, registration, program, record_json) \
        ON CONFLICT (organization, deal_id) DO UPDATE SET account_id = EXCLUDED.account_id, \
        name = EXCLUDED.name, status = EXCLUDED.status, created = EXCLUDED.created, \
        registration = EXCLUDED.registration, program = EXCLUDED.program, \
        import_id = EXCLUDED.import_id, record_json = EXCLUDED.record_json";

    /// Rows whose deal the import has not written (it is not in the export, or not yet) find
    /// no match and are not written; the rows written come back by kind and line.
    const INSERT_KNOWN_PARTS: &str = "INSERT INTO psc_deal_parts (organization, deal_id, kind, \
        line, record_json) \
        SELECT $1, u.deal_id, u.kind, u.line, u.record_json \
        FROM UNNEST($3::text[], $4::text[], $5::int8[], $6::text[]) \
        AS u(deal_id, kind, line, record_json) \
        WHERE EXISTS (SELECT 1 FROM psc_deals d \
        WHERE d.organization = $1 AND d.deal_id = u.deal_id AND d.import_id = $2) \
        RETURNING kind, line";

    pub(super) fn upsert_deals(org: &str, import: &str, rows: Vec<DealRow>) -> Statement {
        let n = rows.len();
        let (mut ids, mut accounts, mut names, mut statuses) =
            (column(n), column(n), column(n), column(n));
        let (mut created, mut registrations, mut programs, mut records) =
            (column(n), column(n), column(n), column(n));
        for r in rows {
            ids.push(r.deal_id);
            accounts.push(r.account_id);
            names.push(r.name);
            statuses.push(r.status);
            created.push(r.created);
            registrations.push(r.registration);
            programs.push(r.program);
            records.push(r.record_json);
        }
        let values: Vec<Value> = vec![
            org.into(),
            import.into(),
            ids.into(),
            accounts.into(),
            names.into(),
            statuses.into(),
            created.into(),
            registrations.into(),
            programs.into(),
            records.into(),
        ];
        Statement::from_sql_and_values(DbBackend::Postgres, UPSERT_DEALS, values)
    }

    pub(super) fn insert_known_parts(
        org: &str,
        import: &str,
        rows: &mut [(&'static str, u64, String, String)],
    ) -> Statement {
        let n = rows.len();
        let (mut ids, mut kinds, mut lines, mut records) =
            (column(n), column(n), column(n), column(n));
        for (kind, line, deal_id, record_json) in rows {
            ids.push(deal_id.clone());
            kinds.push((*kind).to_owned());
            lines.push(*line as i64);
            records.push(std::mem::take(record_json));
        }
        let values: Vec<Value> = vec![
            org.into(),
            import.into(),
            ids.into(),
            kinds.into(),
            lines.into(),
            records.into(),
        ];
        Statement::from_sql_and_values(DbBackend::Postgres, INSERT_KNOWN_PARTS, values)
    }

    /// A column's array, for `n` rows.
    fn column<T>(n: usize) -> Vec<T> {
        Vec::with_capacity(n)
    }
}
