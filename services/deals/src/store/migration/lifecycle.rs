//! The lifecycle's tables (SPEC 3.6-3.8): the change feed, notifications, the insights'
//! counters.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use super::{id, optional_text, optional_time, text, time};

/// The change feed (SPEC 3.6): `events`, appended in the transaction of each change with no
/// position, numbered once committed by one sequencer at a time (`store::feed`), so that a
/// reader never sees a position before a smaller one commits; `feed_state` (how far the
/// feed was pruned); `expiry_notices` (the referrals announced as expiring soon, once each).
pub(super) struct M0006Events;

impl MigrationName for M0006Events {
    fn name(&self) -> &str {
        "m0006_events"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0006Events {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(id("events"))
                .col(ColumnDef::new(id("id")).string().not_null().primary_key())
                .col(ColumnDef::new(id("position")).big_integer().null())
                .col(text("kind"))
                .col(text("referral_id"))
                .col(text("organization"))
                .col(optional_text("mpn_location"))
                .col(text("party"))
                // Whether platform users may read it (not PRIVATE), as GetReferral decides.
                .col(ColumnDef::new(id("shared")).boolean().not_null())
                .col(text("actor"))
                .col(time("event_time"))
                .col(text("changed_fields"))
                // The referral after the change: an encoded cosell.deals.v1.Referral.
                .col(ColumnDef::new(id("snapshot")).blob().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("events_by_position")
                .table(id("events"))
                .col(id("position"))
                .unique()
                .to_owned(),
        )
        .await?;
        // An organization's feed, read by position.
        m.create_index(
            Index::create()
                .name("events_by_organization")
                .table(id("events"))
                .col(id("organization"))
                .col(id("position"))
                .to_owned(),
        )
        .await?;
        // What the sequencer numbers next: only the few committed rows still without one.
        m.get_connection()
            .execute_unprepared(
                "CREATE INDEX events_unsequenced ON events (id) WHERE position IS NULL",
            )
            .await?;
        m.create_table(
            Table::create()
                .table(id("feed_state"))
                .col(ColumnDef::new(id("name")).string().not_null().primary_key())
                .col(ColumnDef::new(id("position")).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(id("expiry_notices"))
                .col(
                    ColumnDef::new(id("referral_id"))
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(time("notice_time"))
                .to_owned(),
        )
        .await?;
        // The sweeper's queue: waiting referrals by expiry time.
        m.create_index(
            Index::create()
                .name("referrals_by_expiry")
                .table(id("referrals"))
                .col(id("expire_time"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// Each user's notifications, derived from the feed by one deriver at a time (its position in
/// `feed_state`, `notified_through`, moves in the transaction that writes them).
pub(super) struct M0007Notifications;

impl MigrationName for M0007Notifications {
    fn name(&self) -> &str {
        "m0007_notifications"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0007Notifications {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(id("notifications"))
                // Time-ordered (UUID v7): the list's order and its page key.
                .col(ColumnDef::new(id("id")).string().not_null().primary_key())
                // The user's principal, `organizations/{org}/users/{user}`.
                .col(text("recipient"))
                .col(text("kind"))
                .col(text("subject"))
                .col(text("summary"))
                .col(
                    ColumnDef::new(id("event_position"))
                        .big_integer()
                        .not_null(),
                )
                .col(time("create_time"))
                .col(optional_time("read_time"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("notifications_by_recipient")
                .table(id("notifications"))
                .col(id("recipient"))
                .col(id("id"))
                .to_owned(),
        )
        .await?;
        // One per user and event, whatever happens to the deriver.
        m.create_index(
            Index::create()
                .name("notifications_once")
                .table(id("notifications"))
                .col(id("recipient"))
                .col(id("event_position"))
                .unique()
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// The insights' counters (`store::insights`): `insight_deltas`, appended by each change;
/// `insight_totals`, what the folder added up, one row per organization, MPN location ('' for
/// none), status, substatus, deal type, direction and currency ('' for none), filled here from
/// the referrals already stored. `referrals_expiring` counts the NEW referrals expiring soon
/// without reading the rows; the covering index of m0005 is no longer read and goes.
pub(super) struct M0008InsightCounters;

impl MigrationName for M0008InsightCounters {
    fn name(&self) -> &str {
        "m0008_insight_counters"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0008InsightCounters {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let backend = m.get_database_backend();
        let key = [
            "organization",
            "mpn_location",
            "status",
            "substatus",
            "deal_type",
            "direction",
            "currency",
        ];
        for (table, cents) in [
            // One referral's value fits in 64 bits; a total of many may not.
            (
                "insight_deltas",
                ColumnDef::new(id("cents"))
                    .big_integer()
                    .not_null()
                    .to_owned(),
            ),
            (
                "insight_totals",
                match backend {
                    DbBackend::Postgres => {
                        ColumnDef::new(id("cents")).decimal().not_null().to_owned()
                    }
                    // SQLite has no exact decimal type (a "decimal" column stores floats).
                    _ => ColumnDef::new(id("cents"))
                        .big_integer()
                        .not_null()
                        .to_owned(),
                },
            ),
        ] {
            let mut t = Table::create();
            t.table(id(table));
            if table == "insight_deltas" {
                // Only for SQLite's sake (PostgreSQL needs no key to delete what it folds).
                t.col(
                    ColumnDef::new(id("id"))
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                );
            }
            for k in key {
                t.col(text(k));
            }
            t.col(ColumnDef::new(id("n")).big_integer().not_null())
                .col(cents)
                .col(ColumnDef::new(id("accepted")).big_integer().not_null())
                .col(ColumnDef::new(id("timed")).big_integer().not_null())
                .col(ColumnDef::new(id("seconds")).double().not_null());
            m.create_table(t.to_owned()).await?;
        }
        let mut totals = Index::create();
        totals
            .name("insight_totals_by_group")
            .table(id("insight_totals"))
            .unique();
        for k in key {
            totals.col(id(k));
        }
        m.create_index(totals.to_owned()).await?;
        m.create_index(
            Index::create()
                .name("insight_deltas_by_organization")
                .table(id("insight_deltas"))
                .col(id("organization"))
                .to_owned(),
        )
        .await?;
        let seconds = match backend {
            DbBackend::Postgres => "EXTRACT(EPOCH FROM (accept_time - create_time))",
            _ => "((julianday(accept_time) - julianday(create_time)) * 86400.0)",
        };
        let db = m.get_connection();
        db.execute_unprepared(&format!(
            "INSERT INTO insight_totals ({keys}, n, cents, accepted, timed, seconds)
             SELECT organization, COALESCE(mpn_location, ''), status, substatus, deal_type,
               direction, currency, COUNT(*), COALESCE(SUM(deal_value_cents), 0),
               SUM(CASE WHEN accept_time IS NULL THEN 0 ELSE 1 END),
               SUM(CASE WHEN accept_time IS NULL OR psc_deal_id IS NOT NULL THEN 0 ELSE 1 END),
               COALESCE(SUM(CASE WHEN accept_time IS NULL OR psc_deal_id IS NOT NULL THEN 0
                            ELSE {seconds} END), 0)
             FROM referrals WHERE party = 'PARTNER'
             GROUP BY organization, COALESCE(mpn_location, ''), status, substatus, deal_type,
               direction, currency",
            keys = key.join(", ")
        ))
        .await?;
        let expiring = "organization, status, expire_time";
        let payload = "party, mpn_location, deal_type";
        db.execute_unprepared(&match backend {
            DbBackend::Postgres => format!(
                "CREATE INDEX referrals_expiring ON referrals ({expiring}) INCLUDE ({payload})"
            ),
            _ => format!("CREATE INDEX referrals_expiring ON referrals ({expiring}, {payload})"),
        })
        .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS referrals_insights")
            .await?;
        Ok(())
    }
}

/// The events of commits not numbered yet wait in `event_queue`, and the sequencer moves them
/// into `events` with their positions (`store::feed`). Numbering them in place, an UPDATE of
/// each `events` row, left a dead copy of every event (its snapshot included) and an index
/// entry with a NULL position behind each one, which every later run read again until a vacuum:
/// 24 ms a run with 22,000 of them, and the runs took a core under load. `events` is now only
/// appended to; its `position` is never NULL (the column stays nullable: SQLite cannot alter it).
pub(super) struct M0009EventQueue;

impl MigrationName for M0009EventQueue {
    fn name(&self) -> &str {
        "m0009_event_queue"
    }
}

/// `events`' columns but its position, in the order both tables are written.
const QUEUED_COLUMNS: &str = "id, kind, referral_id, organization, mpn_location, party, \
     shared, actor, event_time, changed_fields, snapshot";

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0009EventQueue {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(id("event_queue"))
                // Time-ordered (UUID v7): the order the sequencer numbers in.
                .col(ColumnDef::new(id("id")).string().not_null().primary_key())
                .col(text("kind"))
                .col(text("referral_id"))
                .col(text("organization"))
                .col(optional_text("mpn_location"))
                .col(text("party"))
                .col(ColumnDef::new(id("shared")).boolean().not_null())
                .col(text("actor"))
                .col(time("event_time"))
                .col(text("changed_fields"))
                .col(ColumnDef::new(id("snapshot")).blob().not_null())
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        db.execute_unprepared(&format!(
            "INSERT INTO event_queue ({QUEUED_COLUMNS})
             SELECT {QUEUED_COLUMNS} FROM events WHERE position IS NULL"
        ))
        .await?;
        db.execute_unprepared("DELETE FROM events WHERE position IS NULL")
            .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS events_unsequenced")
            .await?;
        Ok(())
    }
}

/// Who sent each Inbound referral (the platform seller's principal), recorded by the
/// notifications' deriver from the referral's creation, so that the sender is told when the
/// partner declines it or it expires (D2, D5).
pub(super) struct M0010InboundSenders;

impl MigrationName for M0010InboundSenders {
    fn name(&self) -> &str {
        "m0010_inbound_senders"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0010InboundSenders {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(id("inbound_senders"))
                .col(
                    ColumnDef::new(id("referral_id"))
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(text("sender"))
                .to_owned(),
        )
        .await
    }
}

/// Notifications not derived from the feed (a finished deal migration run, told by the
/// migration service) have no event: their `event_position` is 0, and what makes each one once
/// is its subject. `notifications_once` becomes (recipient, subject, event_position), which
/// admits no row the old index refused from the deriver (one subject per event).
pub(super) struct M0011NotificationSubjects;

impl MigrationName for M0011NotificationSubjects {
    fn name(&self) -> &str {
        "m0011_notification_subjects"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0011NotificationSubjects {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("notifications_once")
                .table(id("notifications"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("notifications_once")
                .table(id("notifications"))
                .col(id("recipient"))
                .col(id("subject"))
                .col(id("event_position"))
                .unique()
                .to_owned(),
        )
        .await
    }
}
