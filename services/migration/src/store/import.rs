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
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
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
            write.push(deal::ActiveModel {
                organization: Set(self.org.clone()),
                deal_id: Set(d.id.clone()),
                account_id: Set(d.account_id.clone()),
                name: Set(d.name.clone()),
                status: Set(label(&d.status)),
                created: Set(d.created),
                registration: Set(label(&d.registration)),
                program: Set(label(&d.program)),
                import_id: Set(this.clone()),
                record_json: Set(record_json),
            });
        }
        if write.is_empty() {
            return Ok(());
        }
        // The export's products and team replace what an earlier export said of these deals.
        part::Entity::delete_many()
            .filter(part::Column::Organization.eq(self.org.as_str()))
            .filter(part::Column::DealId.is_in(seen.iter().map(String::as_str)))
            .exec(&self.txn)
            .await?;
        deal::Entity::insert_many(write)
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

    async fn parts(&mut self, rows: Vec<(&'static str, u64, String, String)>) -> Result<()> {
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
        let mut write = Vec::with_capacity(rows.len());
        for (kind, line, deal_id, record_json) in rows {
            if !known.contains(&deal_id) {
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
                continue;
            }
            if kind == "product" {
                self.summary.products += 1;
            } else {
                self.summary.team_members += 1;
            }
            write.push(part::ActiveModel {
                organization: Set(self.org.clone()),
                deal_id: Set(deal_id),
                kind: Set(kind.into()),
                line: Set(line as i64),
                record_json: Set(record_json),
            });
        }
        if write.is_empty() {
            return Ok(());
        }
        part::Entity::insert_many(write)
            .exec_without_returning(&self.txn)
            .await?;
        Ok(())
    }
}
