//! Each user's notifications: written by the deriver with its position in the feed
//! ([`Store::write_notifications`]) or, for a finished deal migration run, once per subject
//! ([`Store::write_notification_once`]); listed newest first ([`Store::notifications`]), marked
//! read ([`Store::mark_read`]); and who sent each Inbound referral (`inbound_senders`, recorded
//! by the deriver from the referral's creation), to tell the sender of its decline or expiry.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use super::feed::statement;
use super::{Result, Store, StoreError};
use crate::domain::notify::NotificationKind;

/// A notification to write.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub recipient: String,
    pub kind: NotificationKind,
    pub subject: String,
    pub summary: String,
    pub event_position: i64,
    pub time: DateTime<Utc>,
}

impl NewNotification {
    fn values(&self) -> [sea_orm::sea_query::SimpleExpr; 7] {
        [
            Uuid::now_v7().to_string().into(),
            self.recipient.clone().into(),
            self.kind.as_str().into(),
            self.subject.clone().into(),
            self.summary.clone().into(),
            self.event_position.into(),
            self.time.into(),
        ]
    }
}

/// The INSERT of `rows`, each skipped when its recipient has it already.
fn insert_once(rows: &[NewNotification]) -> sea_orm::sea_query::InsertStatement {
    use sea_orm::sea_query::{Alias, OnConflict, Query};
    let mut insert = Query::insert();
    insert
        .into_table(Alias::new("notifications"))
        .columns(COLUMNS.map(Alias::new))
        .on_conflict(
            OnConflict::columns(NOTIFIED_ONCE.map(Alias::new))
                .do_nothing()
                .to_owned(),
        );
    for n in rows {
        insert.values_panic(n.values());
    }
    insert
}

/// A stored notification.
#[derive(Debug, Clone)]
pub struct Notification {
    pub id: Uuid,
    pub kind: NotificationKind,
    pub subject: String,
    pub summary: String,
    pub create_time: DateTime<Utc>,
    pub read_time: Option<DateTime<Utc>>,
}

/// The deriver's position.
const NOTIFIED: &str = "notified_through";

/// What tells one notification from every other (the unique index `notifications_once`).
const NOTIFIED_ONCE: [&str; 3] = ["recipient", "subject", "event_position"];

/// The columns of a notification written.
const COLUMNS: [&str; 7] = [
    "id",
    "recipient",
    "kind",
    "subject",
    "summary",
    "event_position",
    "create_time",
];

impl Store {
    /// The deriver's position in the feed.
    pub async fn notified_through(&self) -> Result<i64> {
        let backend = self.db.get_database_backend();
        self.db
            .execute_raw(statement(
                backend,
                "INSERT INTO feed_state (name, position) VALUES ($1, 0) \
                 ON CONFLICT (name) DO NOTHING",
                vec![NOTIFIED.into()],
            ))
            .await?;
        let row = self
            .db
            .query_one_raw(statement(
                backend,
                "SELECT position FROM feed_state WHERE name = $1",
                vec![NOTIFIED.into()],
            ))
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "position"))
            .transpose()?
            .unwrap_or(0))
    }

    /// Writes `rows` and moves the deriver's position from `from` to `through`, in one
    /// transaction, only if the position is still `from`: `false` when another replica's
    /// deriver took these events first (nothing written).
    pub async fn write_notifications(
        &self,
        rows: &[NewNotification],
        senders: &[(Uuid, String)],
        from: i64,
        through: i64,
    ) -> Result<bool> {
        use sea_orm::sea_query::{Alias, OnConflict, Query};
        let txn = cosell_platform::db::begin(&self.db).await?;
        let moved = txn
            .execute_raw(statement(
                self.db.get_database_backend(),
                "UPDATE feed_state SET position = $1 WHERE name = $2 AND position = $3",
                vec![through.into(), NOTIFIED.into(), from.into()],
            ))
            .await?
            .rows_affected();
        if moved != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        for chunk in rows.chunks(500) {
            txn.execute(&insert_once(chunk)).await?;
        }
        for chunk in senders.chunks(500) {
            let mut insert = Query::insert();
            insert
                .into_table(Alias::new("inbound_senders"))
                .columns([Alias::new("referral_id"), Alias::new("sender")])
                .on_conflict(
                    OnConflict::column(Alias::new("referral_id"))
                        .do_nothing()
                        .to_owned(),
                );
            for (referral, sender) in chunk {
                insert.values_panic([referral.to_string().into(), sender.clone().into()]);
            }
            txn.execute(&insert).await?;
        }
        txn.commit().await?;
        Ok(true)
    }

    /// Writes one notification that is not derived from the feed (its `event_position` 0),
    /// unless its recipient already has one of its subject: whether it was written.
    pub async fn write_notification_once(&self, n: &NewNotification) -> Result<bool> {
        let n = NewNotification {
            event_position: 0,
            ..n.clone()
        };
        Ok(self.db.execute(&insert_once(&[n])).await?.rows_affected() == 1)
    }

    /// Who sent each of these Inbound referrals (as the deriver recorded from their creation).
    pub async fn inbound_senders(&self, referrals: &[Uuid]) -> Result<HashMap<Uuid, String>> {
        if referrals.is_empty() {
            return Ok(HashMap::new());
        }
        let marks: Vec<String> = (1..=referrals.len()).map(|i| format!("${i}")).collect();
        let rows = self
            .db
            .query_all_raw(statement(
                self.db.get_database_backend(),
                &format!(
                    "SELECT referral_id, sender FROM inbound_senders WHERE referral_id IN ({})",
                    marks.join(", ")
                ),
                referrals.iter().map(|r| r.to_string().into()).collect(),
            ))
            .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("", "referral_id")?;
                let id = Uuid::parse_str(&id)
                    .map_err(|_| StoreError::Corrupt("inbound_senders".into(), id.clone()))?;
                Ok((id, row.try_get("", "sender")?))
            })
            .collect()
    }

    /// A page of `recipient`'s notifications before `before` (an id), newest first, and how
    /// many are unread in all.
    pub async fn notifications(
        &self,
        recipient: &str,
        unread_only: bool,
        before: Option<Uuid>,
        limit: u64,
    ) -> Result<(Vec<Notification>, i64)> {
        let backend = self.db.get_database_backend();
        let mut sql = String::from(
            "SELECT id, kind, subject, summary, create_time, read_time FROM notifications \
             WHERE recipient = $1",
        );
        let mut values: Vec<Value> = vec![recipient.into()];
        if unread_only {
            sql.push_str(" AND read_time IS NULL");
        }
        if let Some(b) = before {
            values.push(b.to_string().into());
            sql.push_str(&format!(" AND id < ${}", values.len()));
        }
        values.push((limit as i64).into());
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", values.len()));
        let rows = self
            .db
            .query_all_raw(statement(backend, &sql, values))
            .await?;
        let corrupt = |what: &str| StoreError::Corrupt("notifications".into(), what.to_owned());
        let list = rows
            .iter()
            .map(|r| {
                let id: String = r.try_get("", "id")?;
                let kind: String = r.try_get("", "kind")?;
                Ok(Notification {
                    id: Uuid::parse_str(&id).map_err(|_| corrupt(&id))?,
                    kind: NotificationKind::parse(&kind).ok_or_else(|| corrupt(&kind))?,
                    subject: r.try_get("", "subject")?,
                    summary: r.try_get("", "summary")?,
                    create_time: r.try_get("", "create_time")?,
                    read_time: r.try_get("", "read_time")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let unread = self
            .db
            .query_one_raw(statement(
                backend,
                "SELECT COUNT(*) AS n FROM notifications WHERE recipient = $1 AND read_time IS NULL",
                vec![recipient.into()],
            ))
            .await?
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        Ok((list, unread))
    }

    /// Marks `recipient`'s unread notifications read: those of `ids`, or all created up to
    /// `up_to`. Returns how many changed.
    pub async fn mark_read(
        &self,
        recipient: &str,
        ids: &[Uuid],
        up_to: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let backend = self.db.get_database_backend();
        let mut values: Vec<Value> = vec![now.into(), recipient.into()];
        let mut sql = String::from(
            "UPDATE notifications SET read_time = $1 WHERE recipient = $2 AND read_time IS NULL",
        );
        if let Some(t) = up_to {
            values.push(t.into());
            sql.push_str(&format!(" AND create_time <= ${}", values.len()));
        } else {
            if ids.is_empty() {
                return Ok(0);
            }
            let mut marks = Vec::new();
            for id in ids {
                values.push(id.to_string().into());
                marks.push(format!("${}", values.len()));
            }
            sql.push_str(&format!(" AND id IN ({})", marks.join(", ")));
        }
        Ok(self
            .db
            .execute_raw(statement(backend, &sql, values))
            .await?
            .rows_affected())
    }
}
