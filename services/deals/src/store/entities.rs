//! sea-orm entities and their conversion to and from the domain. Lists (contacts, solutions,
//! team, customer candidates) are stored as JSON text: they are read and written with their
//! referral, never queried inside, except team emails, kept beside as `,a@x.com,b@y.com,` for
//! the team-member filter.

use super::StoreError;

fn corrupt(id: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(id.to_owned(), what.to_string())
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn parse_json<T: serde::de::DeserializeOwned>(id: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(id, e))
}

fn parse_uuid(id: &str, text: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(text).map_err(|e| corrupt(id, e))
}

pub mod referral {
    use chrono::NaiveDate;
    use sea_orm::ActiveValue::{NotSet, Set};
    use sea_orm::entity::prelude::*;
    use sea_orm::sqlx::{ColumnIndex, Decode, Row, Type};
    use sea_orm::{FromQueryResult, Iterable};

    use super::{corrupt, json, parse_json, parse_uuid};
    use crate::domain::registration::{Registration, RegistrationStatus};
    use crate::domain::{Customer, DealType, Direction, Money, Party, Referral, Stage};
    use crate::store::StoreError;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "referrals")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub organization: String,
        pub mpn_location: Option<String>,
        pub party: String,
        pub engagement: String,
        pub direction: String,
        pub deal_type: String,
        pub status: String,
        pub substatus: String,
        pub status_reason: String,
        pub display_name: String,
        pub customer_entity: Option<String>,
        /// The customer's legal name.
        pub customer_name: String,
        /// The legal name lower-cased, for the customer-name filter.
        pub customer_search: String,
        pub customer_json: String,
        pub consent_to_share: bool,
        pub assistance_json: Option<String>,
        pub solutions_json: String,
        pub team_json: String,
        pub team_emails: String,
        pub deal_value_cents: Option<i64>,
        pub currency: String,
        pub estimated_close_date: Option<String>,
        pub notes: String,
        pub seller_contact_json: Option<String>,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub accept_time: Option<DateTimeUtc>,
        pub close_time: Option<DateTimeUtc>,
        pub expire_time: Option<DateTimeUtc>,
        pub version: i64,
        pub external_reference_id: String,
        pub psc_deal_id: Option<String>,
        /// `{principal} {request_id}` of the create that made it (unique), for retries (D10).
        pub request_key: Option<String>,
        /// The won deal's registration (3.8; m0004): its status (`None`: not registered),
        /// when it was registered, and the review.
        pub registration_status: Option<String>,
        pub registration_time: Option<DateTimeUtc>,
        pub review_time: Option<DateTimeUtc>,
        pub reviewed_by: Option<String>,
        pub review_reason: Option<String>,
        /// JSON array of the directory entries offered for an unmatched migrated customer
        /// (D8; m0012); `None`: none, as for every matched customer.
        pub customer_candidates_json: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    /// Every column but `request_key`, which only an insert sets (and updates never touch).
    pub fn to_active(r: &Referral) -> ActiveModel {
        let (status, substatus) = r.stage.names();
        let g = r.registration.as_ref();
        let team_emails = if r.team.is_empty() {
            String::new()
        } else {
            let emails: Vec<String> = r.team.iter().map(|c| c.email.to_lowercase()).collect();
            format!(",{},", emails.join(","))
        };
        ActiveModel {
            id: Set(r.id.to_string()),
            organization: Set(r.organization.to_string()),
            mpn_location: Set(r.mpn_location.clone()),
            party: Set(r.party.as_str().to_owned()),
            engagement: Set(r.engagement.to_string()),
            direction: Set(r.direction.as_str().to_owned()),
            deal_type: Set(r.deal_type.as_str().to_owned()),
            status: Set(status.to_owned()),
            substatus: Set(substatus.to_owned()),
            status_reason: Set(r.status_reason.clone()),
            display_name: Set(r.display_name.clone()),
            customer_entity: Set(r.customer.entity.clone()),
            customer_name: Set(r.customer.legal_name.clone()),
            customer_search: Set(r.customer.legal_name.to_lowercase()),
            customer_json: Set(json(&r.customer)),
            consent_to_share: Set(r.consent_to_share),
            assistance_json: Set(r.assistance.as_ref().map(json)),
            solutions_json: Set(json(&r.solutions)),
            team_json: Set(json(&r.team)),
            team_emails: Set(team_emails),
            deal_value_cents: Set(r.deal_value.as_ref().map(|m| m.cents)),
            currency: Set(r
                .deal_value
                .as_ref()
                .map(|m| m.currency.clone())
                .unwrap_or_default()),
            estimated_close_date: Set(r.estimated_close_date.map(|d| d.to_string())),
            notes: Set(r.notes.clone()),
            seller_contact_json: Set(r.seller_contact.as_ref().map(json)),
            create_time: Set(r.create_time),
            update_time: Set(r.update_time),
            accept_time: Set(r.accept_time),
            close_time: Set(r.close_time),
            expire_time: Set(r.expire_time),
            version: Set(r.version),
            external_reference_id: Set(r.external_reference_id.clone()),
            psc_deal_id: Set(r.psc_deal_id.clone()),
            request_key: NotSet,
            registration_status: Set(g.map(|g| g.status.as_str().to_owned())),
            registration_time: Set(g.map(|g| g.register_time)),
            review_time: Set(g.and_then(|g| g.review_time)),
            reviewed_by: Set(g.map(|g| g.reviewed_by.clone())),
            review_reason: Set(g.map(|g| g.review_reason.clone())),
            customer_candidates_json: Set(candidates_json(&r.customer)),
        }
    }

    /// Only an unmatched customer keeps candidates: a link (D8) writes the column empty.
    fn candidates_json(c: &Customer) -> Option<String> {
        (!c.matched() && !c.candidates.is_empty()).then(|| json(&c.candidates))
    }

    /// The columns a referral is made of, borrowed from a [`Model`] or straight from a row.
    struct Columns<'a> {
        id: &'a str,
        organization: &'a str,
        mpn_location: Option<&'a str>,
        party: &'a str,
        engagement: &'a str,
        direction: &'a str,
        deal_type: &'a str,
        status: &'a str,
        substatus: &'a str,
        status_reason: &'a str,
        display_name: &'a str,
        customer_json: &'a str,
        consent_to_share: bool,
        assistance_json: Option<&'a str>,
        solutions_json: &'a str,
        team_json: &'a str,
        deal_value_cents: Option<i64>,
        currency: &'a str,
        estimated_close_date: Option<&'a str>,
        notes: &'a str,
        seller_contact_json: Option<&'a str>,
        create_time: DateTimeUtc,
        update_time: DateTimeUtc,
        accept_time: Option<DateTimeUtc>,
        close_time: Option<DateTimeUtc>,
        expire_time: Option<DateTimeUtc>,
        version: i64,
        external_reference_id: &'a str,
        psc_deal_id: Option<&'a str>,
        registration_status: Option<&'a str>,
        registration_time: Option<DateTimeUtc>,
        review_time: Option<DateTimeUtc>,
        reviewed_by: Option<&'a str>,
        review_reason: Option<&'a str>,
        customer_candidates_json: Option<&'a str>,
    }

    pub fn to_domain(m: &Model) -> Result<Referral, StoreError> {
        referral_of(Columns {
            id: &m.id,
            organization: &m.organization,
            mpn_location: m.mpn_location.as_deref(),
            party: &m.party,
            engagement: &m.engagement,
            direction: &m.direction,
            deal_type: &m.deal_type,
            status: &m.status,
            substatus: &m.substatus,
            status_reason: &m.status_reason,
            display_name: &m.display_name,
            customer_json: &m.customer_json,
            consent_to_share: m.consent_to_share,
            assistance_json: m.assistance_json.as_deref(),
            solutions_json: &m.solutions_json,
            team_json: &m.team_json,
            deal_value_cents: m.deal_value_cents,
            currency: &m.currency,
            estimated_close_date: m.estimated_close_date.as_deref(),
            notes: &m.notes,
            seller_contact_json: m.seller_contact_json.as_deref(),
            create_time: m.create_time,
            update_time: m.update_time,
            accept_time: m.accept_time,
            close_time: m.close_time,
            expire_time: m.expire_time,
            version: m.version,
            external_reference_id: &m.external_reference_id,
            psc_deal_id: m.psc_deal_id.as_deref(),
            registration_status: m.registration_status.as_deref(),
            registration_time: m.registration_time,
            review_time: m.review_time,
            reviewed_by: m.reviewed_by.as_deref(),
            review_reason: m.review_reason.as_deref(),
            customer_candidates_json: m.customer_candidates_json.as_deref(),
        })
    }

    /// The referral of a row that `Entity::find()` selected, with the position after its last
    /// column (where a select's own extra columns start). For the API's gets and lists (a page
    /// reads 51 rows): each column is read where it lies, text is parsed where the row holds
    /// it instead of being copied into a [`Model`] first, and the columns only filters use are
    /// not read at all. Through sea-orm's reader, row handling was a third of the process's
    /// CPU in the benchmark's lists.
    pub fn read(row: &QueryResult) -> Result<(Referral, usize), StoreError> {
        let columns = if let Some(pg) = row.try_as_pg_row() {
            columns_of(pg)
        } else if let Some(sqlite) = row.try_as_sqlite_row() {
            columns_of(sqlite)
        } else {
            // Another kind of row (sea-orm's mock or proxy): through the model.
            let model = Model::from_query_result(row, "")?;
            return Ok((to_domain(&model)?, Column::iter().count()));
        };
        let columns = columns.map_err(cosell_platform::db::query_error)?;
        Ok((referral_of(columns)?, Column::iter().count()))
    }

    /// The columns of [`read`] from either database's rows. A column's position is its place
    /// in `Column`, which is the select list's order.
    fn columns_of<'r, R>(row: &'r R) -> Result<Columns<'r>, sea_orm::sqlx::Error>
    where
        R: Row,
        usize: ColumnIndex<R>,
        &'r str: Decode<'r, R::Database> + Type<R::Database>,
        bool: Decode<'r, R::Database> + Type<R::Database>,
        i64: Decode<'r, R::Database> + Type<R::Database>,
        DateTimeUtc: Decode<'r, R::Database> + Type<R::Database>,
    {
        use Column as C;
        Ok(Columns {
            id: row.try_get(C::Id as usize)?,
            organization: row.try_get(C::Organization as usize)?,
            mpn_location: row.try_get(C::MpnLocation as usize)?,
            party: row.try_get(C::Party as usize)?,
            engagement: row.try_get(C::Engagement as usize)?,
            direction: row.try_get(C::Direction as usize)?,
            deal_type: row.try_get(C::DealType as usize)?,
            status: row.try_get(C::Status as usize)?,
            substatus: row.try_get(C::Substatus as usize)?,
            status_reason: row.try_get(C::StatusReason as usize)?,
            display_name: row.try_get(C::DisplayName as usize)?,
            customer_json: row.try_get(C::CustomerJson as usize)?,
            consent_to_share: row.try_get(C::ConsentToShare as usize)?,
            assistance_json: row.try_get(C::AssistanceJson as usize)?,
            solutions_json: row.try_get(C::SolutionsJson as usize)?,
            team_json: row.try_get(C::TeamJson as usize)?,
            deal_value_cents: row.try_get(C::DealValueCents as usize)?,
            currency: row.try_get(C::Currency as usize)?,
            estimated_close_date: row.try_get(C::EstimatedCloseDate as usize)?,
            notes: row.try_get(C::Notes as usize)?,
            seller_contact_json: row.try_get(C::SellerContactJson as usize)?,
            create_time: row.try_get(C::CreateTime as usize)?,
            update_time: row.try_get(C::UpdateTime as usize)?,
            accept_time: row.try_get(C::AcceptTime as usize)?,
            close_time: row.try_get(C::CloseTime as usize)?,
            expire_time: row.try_get(C::ExpireTime as usize)?,
            version: row.try_get(C::Version as usize)?,
            external_reference_id: row.try_get(C::ExternalReferenceId as usize)?,
            psc_deal_id: row.try_get(C::PscDealId as usize)?,
            registration_status: row.try_get(C::RegistrationStatus as usize)?,
            registration_time: row.try_get(C::RegistrationTime as usize)?,
            review_time: row.try_get(C::ReviewTime as usize)?,
            reviewed_by: row.try_get(C::ReviewedBy as usize)?,
            review_reason: row.try_get(C::ReviewReason as usize)?,
            customer_candidates_json: row.try_get(C::CustomerCandidatesJson as usize)?,
        })
    }

    fn referral_of(c: Columns<'_>) -> Result<Referral, StoreError> {
        let id = c.id;
        let owned = |s: Option<&str>| s.map(str::to_owned);
        Ok(Referral {
            id: parse_uuid(id, id)?,
            organization: parse_uuid(id, c.organization)?,
            mpn_location: owned(c.mpn_location),
            party: Party::parse(c.party).ok_or_else(|| corrupt(id, "party"))?,
            engagement: parse_uuid(id, c.engagement)?,
            direction: Direction::parse(c.direction).ok_or_else(|| corrupt(id, "direction"))?,
            deal_type: DealType::parse(c.deal_type).ok_or_else(|| corrupt(id, "deal type"))?,
            stage: Stage::parse(c.status, c.substatus).ok_or_else(|| corrupt(id, "status"))?,
            status_reason: c.status_reason.to_owned(),
            display_name: c.display_name.to_owned(),
            customer: Customer {
                candidates: c
                    .customer_candidates_json
                    .map(|j| parse_json(id, j))
                    .transpose()?
                    .unwrap_or_default(),
                ..parse_json(id, c.customer_json)?
            },
            consent_to_share: c.consent_to_share,
            assistance: c.assistance_json.map(|j| parse_json(id, j)).transpose()?,
            solutions: parse_json(id, c.solutions_json)?,
            team: parse_json(id, c.team_json)?,
            deal_value: c.deal_value_cents.map(|cents| Money {
                currency: c.currency.to_owned(),
                cents,
            }),
            estimated_close_date: c
                .estimated_close_date
                .map(|d| d.parse::<NaiveDate>().map_err(|e| corrupt(id, e)))
                .transpose()?,
            notes: c.notes.to_owned(),
            seller_contact: c
                .seller_contact_json
                .map(|j| parse_json(id, j))
                .transpose()?,
            create_time: c.create_time,
            update_time: c.update_time,
            accept_time: c.accept_time,
            close_time: c.close_time,
            expire_time: c.expire_time,
            version: c.version,
            external_reference_id: c.external_reference_id.to_owned(),
            psc_deal_id: owned(c.psc_deal_id),
            registration: match (c.registration_status, c.registration_time) {
                (Some(status), Some(register_time)) => Some(Registration {
                    status: RegistrationStatus::parse(status)
                        .ok_or_else(|| corrupt(id, "registration status"))?,
                    register_time,
                    review_time: c.review_time,
                    reviewed_by: c.reviewed_by.unwrap_or_default().to_owned(),
                    review_reason: c.review_reason.unwrap_or_default().to_owned(),
                }),
                _ => None,
            },
        })
    }
}

pub mod favorite {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "favorites")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub principal: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub referral_id: String,
        pub create_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod solution {
    use cosell_proto::deals::SolutionKind;
    use sea_orm::ActiveValue::Set;
    use sea_orm::entity::prelude::*;

    use super::{corrupt, parse_uuid};
    use crate::domain::{Solution, search_words};

    use crate::store::StoreError;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "solutions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub display_name: String,
        /// Lower-case name: the list order.
        pub sort_name: String,
        /// ` word word ...`: the name's search words, each preceded by a space. Searches use
        /// [`super::solution_word`] instead; this column is what migration m0002 built it from.
        pub search_words: String,
        /// `None`: the platform.
        pub publisher: Option<String>,
        pub kind: String,
        pub cosell_ready: bool,
        pub incentive_eligible: bool,
        pub mpn_id: Option<String>,
        /// JSON array of the PSC product ids the solution replaces.
        pub legacy_product_ids: String,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    pub fn to_active(s: &Solution) -> ActiveModel {
        let words: String = search_words(&s.display_name)
            .iter()
            .map(|w| format!(" {w}"))
            .collect();
        ActiveModel {
            id: Set(s.id.to_string()),
            display_name: Set(s.display_name.clone()),
            sort_name: Set(s.display_name.to_lowercase()),
            search_words: Set(words),
            publisher: Set(s.publisher.map(|p| p.to_string())),
            kind: Set(s.kind.as_str_name().to_owned()),
            cosell_ready: Set(s.cosell_ready),
            incentive_eligible: Set(s.incentive_eligible),
            mpn_id: Set(s.mpn_id.clone()),
            legacy_product_ids: Set(super::json(&s.legacy_product_ids)),
            create_time: Set(s.create_time),
            update_time: Set(s.update_time),
            version: Set(s.version),
        }
    }

    pub fn to_domain(m: Model) -> Result<Solution, StoreError> {
        let id = m.id.as_str();
        Ok(Solution {
            id: parse_uuid(id, &m.id)?,
            display_name: m.display_name.clone(),
            publisher: m
                .publisher
                .as_deref()
                .map(|p| parse_uuid(id, p))
                .transpose()?,
            kind: SolutionKind::from_str_name(&m.kind).ok_or_else(|| corrupt(id, "kind"))?,
            cosell_ready: m.cosell_ready,
            incentive_eligible: m.incentive_eligible,
            mpn_id: m.mpn_id.clone(),
            legacy_product_ids: super::parse_json(id, &m.legacy_product_ids)?,
            create_time: m.create_time,
            update_time: m.update_time,
            version: m.version,
        })
    }
}

/// The catalog's search index: one row per distinct search word of a solution's name (lower
/// case, accents off: `domain::search_words`), so that a word typed in the picker is a prefix
/// range of the primary key (word, solution) instead of a scan of every name. Written with its
/// solution, in the same transaction.
pub mod solution_word {
    use sea_orm::ActiveValue::Set;
    use sea_orm::entity::prelude::*;

    use crate::domain::{Solution, search_words};

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "solution_words")]
    pub struct Model {
        /// Compared byte by byte (`COLLATE "C"` on PostgreSQL, SQLite's BINARY), so that a
        /// prefix is one range of the index whatever the database's collation.
        #[sea_orm(primary_key, auto_increment = false)]
        pub word: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub solution_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    /// The rows of a solution: each word of its name once.
    pub fn rows(s: &Solution) -> Vec<ActiveModel> {
        let mut words = search_words(&s.display_name);
        words.sort();
        words.dedup();
        words
            .into_iter()
            .map(|word| ActiveModel {
                word: Set(word),
                solution_id: Set(s.id.to_string()),
            })
            .collect()
    }
}
