//! sea-orm entities and their conversion to and from the domain. Lists (contacts, solutions,
//! team) are stored as JSON text: they are read and written with their referral, never queried
//! inside, except team emails, kept beside as `,a@x.com,b@y.com,` for the team-member filter.

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

    use super::{corrupt, json, parse_json, parse_uuid};
    use crate::domain::{DealType, Direction, Money, Party, Referral, Stage};
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
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    /// Every column but `request_key`, which only an insert sets (and updates never touch).
    pub fn to_active(r: &Referral) -> ActiveModel {
        let (status, substatus) = r.stage.names();
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
        }
    }

    /// The columns of a row that `Entity::find()` selected, read by position: the derived
    /// reader formats and looks up every column's name (on PostgreSQL 2.7 us a row against
    /// 2.35 us by position, and a page of a list reads 50). The fields are read in the order
    /// they are declared, which is the order of `Column` and of the select list (a test
    /// compares this with the derived reader). Returns the position after the last column,
    /// where a select's own extra columns start.
    pub fn read_row(row: &QueryResult) -> Result<(Model, usize), DbErr> {
        let mut at = 0;
        let mut next = || {
            at += 1;
            at - 1
        };
        let model = Model {
            id: row.try_get_by_index(next())?,
            organization: row.try_get_by_index(next())?,
            mpn_location: row.try_get_by_index(next())?,
            party: row.try_get_by_index(next())?,
            engagement: row.try_get_by_index(next())?,
            direction: row.try_get_by_index(next())?,
            deal_type: row.try_get_by_index(next())?,
            status: row.try_get_by_index(next())?,
            substatus: row.try_get_by_index(next())?,
            status_reason: row.try_get_by_index(next())?,
            display_name: row.try_get_by_index(next())?,
            customer_entity: row.try_get_by_index(next())?,
            customer_name: row.try_get_by_index(next())?,
            customer_search: row.try_get_by_index(next())?,
            customer_json: row.try_get_by_index(next())?,
            consent_to_share: row.try_get_by_index(next())?,
            assistance_json: row.try_get_by_index(next())?,
            solutions_json: row.try_get_by_index(next())?,
            team_json: row.try_get_by_index(next())?,
            team_emails: row.try_get_by_index(next())?,
            deal_value_cents: row.try_get_by_index(next())?,
            currency: row.try_get_by_index(next())?,
            estimated_close_date: row.try_get_by_index(next())?,
            notes: row.try_get_by_index(next())?,
            seller_contact_json: row.try_get_by_index(next())?,
            create_time: row.try_get_by_index(next())?,
            update_time: row.try_get_by_index(next())?,
            accept_time: row.try_get_by_index(next())?,
            close_time: row.try_get_by_index(next())?,
            expire_time: row.try_get_by_index(next())?,
            version: row.try_get_by_index(next())?,
            external_reference_id: row.try_get_by_index(next())?,
            psc_deal_id: row.try_get_by_index(next())?,
            request_key: row.try_get_by_index(next())?,
        };
        Ok((model, next()))
    }

    pub fn to_domain(m: Model) -> Result<Referral, StoreError> {
        // Taken apart so that the strings move into the referral rather than being copied.
        let Model {
            id: raw_id,
            organization,
            mpn_location,
            party,
            engagement,
            direction,
            deal_type,
            status,
            substatus,
            status_reason,
            display_name,
            customer_entity: _,
            customer_name: _,
            customer_search: _,
            customer_json,
            consent_to_share,
            assistance_json,
            solutions_json,
            team_json,
            team_emails: _,
            deal_value_cents,
            currency,
            estimated_close_date,
            notes,
            seller_contact_json,
            create_time,
            update_time,
            accept_time,
            close_time,
            expire_time,
            version,
            external_reference_id,
            psc_deal_id,
            request_key: _,
        } = m;
        let id = raw_id.as_str();
        Ok(Referral {
            id: parse_uuid(id, id)?,
            organization: parse_uuid(id, &organization)?,
            mpn_location,
            party: Party::parse(&party).ok_or_else(|| corrupt(id, "party"))?,
            engagement: parse_uuid(id, &engagement)?,
            direction: Direction::parse(&direction).ok_or_else(|| corrupt(id, "direction"))?,
            deal_type: DealType::parse(&deal_type).ok_or_else(|| corrupt(id, "deal type"))?,
            stage: Stage::parse(&status, &substatus).ok_or_else(|| corrupt(id, "status"))?,
            status_reason,
            display_name,
            customer: parse_json(id, &customer_json)?,
            consent_to_share,
            assistance: assistance_json
                .as_deref()
                .map(|j| parse_json(id, j))
                .transpose()?,
            solutions: parse_json(id, &solutions_json)?,
            team: parse_json(id, &team_json)?,
            deal_value: deal_value_cents.map(|cents| Money { currency, cents }),
            estimated_close_date: estimated_close_date
                .as_deref()
                .map(|d| d.parse::<NaiveDate>().map_err(|e| corrupt(id, e)))
                .transpose()?,
            notes,
            seller_contact: seller_contact_json
                .as_deref()
                .map(|j| parse_json(id, j))
                .transpose()?,
            create_time,
            update_time,
            accept_time,
            close_time,
            expire_time,
            version,
            external_reference_id,
            psc_deal_id,
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
        /// ` word word ...`: each word preceded by a space, so that `LIKE '% da%'` finds word
        /// starts.
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
