//! sea-orm entities of the snapshot. The records keep what the export said as JSON; the columns
//! beside them are what queries select on.

pub mod account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "psc_accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub organization: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: String,
        pub name: String,
        pub mpn_id: String,
        pub corrected_mpn_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "psc_users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub organization: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub email: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: String,
        pub record_json: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod deal {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "psc_deals")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub organization: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub deal_id: String,
        pub account_id: String,
        pub name: String,
        pub status: String,
        pub created: DateTimeUtc,
        pub registration: String,
        pub program: String,
        /// The import that last wrote the row: finds duplicates within one export, and tells
        /// products and team members which deals the export has.
        pub import_id: String,
        /// The deal as read from the export (without its products and team: see `part`).
        pub record_json: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A deal's products and team members, one row each (`kind` `product` or `team`, in file
/// order by `line`).
pub mod part {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "psc_deal_parts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub organization: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub deal_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub line: i64,
        pub record_json: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod import {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "psc_imports")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub organization: String,
        pub create_time: DateTimeUtc,
        pub summary_json: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod user_migration {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_migration")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub organization: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub email: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: String,
        /// `NOT_MIGRATED`, `MIGRATED` or `ERROR`.
        pub status: String,
        /// The error's code name (empty unless `ERROR`).
        pub error: String,
        pub error_message: String,
        pub pc_user: String,
        pub pc_assignment: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod deal_run {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "deal_runs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub organization: String,
        pub create_time: DateTimeUtc,
        pub finish_time: Option<DateTimeUtc>,
        /// `ACTIVE` while unfinished (one per organization, by a unique index), else `None`.
        pub active: Option<String>,
        /// Deals the run took, and of them how many migrated and failed so far: kept in the
        /// transaction that records outcomes, so that reading a run's progress reads one row.
        pub total: i64,
        pub migrated: i64,
        pub failed: i64,
        /// The user who started it (`organizations/{org}/users/{id}`); `None` for runs before
        /// m0005, whose starter is not known.
        pub started_by: Option<String>,
        /// When the deals service took the starter's MIGRATION_FINISHED notification; `None`
        /// until then (a finished run still to tell).
        pub told_time: Option<DateTimeUtc>,
        /// The W3C `traceparent` of the StartDealMigration call that started it, so that the
        /// spans of its batches (worked by background tasks, in traces of their own) link to
        /// that call's trace; `None` when the call was not traced, and for runs before m0006.
        pub start_traceparent: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod deal_result {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "deal_results")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub organization: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub deal_id: String,
        pub run_id: String,
        /// `PENDING`, `MIGRATED` or `FAILED`.
        pub state: String,
        pub lease_owner: String,
        pub lease_until: Option<DateTimeUtc>,
        pub deal_name: String,
        pub engagement: String,
        pub referral: String,
        pub deal_type: String,
        pub direction: String,
        pub error: String,
        pub notes: String,
        /// How the customer came out (`MATCHED`, `AMBIGUOUS`, `NOT_FOUND`, `NOT_LOOKED_UP`;
        /// empty until the deal is tried; see m0007).
        pub customer_match: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An organization's import in progress (see m0004).
pub mod import_lock {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "import_locks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub organization: String,
        /// The import holding it (a UUID per import).
        pub holder: String,
        /// The replica running that import: its locks go when it shuts down.
        pub replica: String,
        pub lease_until: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
