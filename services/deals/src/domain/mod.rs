//! The deals domain: referrals and their lifecycle, deal types, the rules of SPEC 3 (D1-D10),
//! and catalog solutions. No proto types here except the plain code enums (assistance code,
//! customer size, solution kind, candidate reason), which are closed sets shared verbatim with
//! the contract.
//!
//! - [`values`]: money, dates, contacts and the other checked value types.
//! - [`change`]: a change to referrals as it is written (versions, the platform's copy).
//! - [`event`]: what a change did, as the change feed tells it (SPEC 3.6).
//! - [`notify`]: who is told of an event (notifications).
//! - [`create`]: new referrals: the rule of each way in (a partner's, a seller's, D5, D7).
//! - [`rules`]: what each status change needs (D1, D3, D4, D6, 3.2 upgrades and deal types).
//! - [`update`]: the fields a partner changes under a field mask.
//! - [`registration`]: registering a won deal and its review (3.8).
//! - [`insights`]: an organization's figures, folded from aggregate groups (3.7).
//!
//! Here: the types, and which catalog solutions a referral may carry ([`attach_solutions`]).

pub mod change;
pub mod create;
pub mod event;
pub mod insights;
pub mod notify;
pub mod registration;
pub mod rules;
#[cfg(test)]
mod testing;
pub mod update;
pub mod values;

use chrono::{DateTime, NaiveDate, Utc};
use cosell_proto::deals::{AssistanceCode, CandidateReason, CustomerSize, SolutionKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use values::{Contact, Money};

/// How much the partner shares with platform sellers (SPEC 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DealType {
    Private,
    PartnerLed,
    CoSell,
}

impl DealType {
    /// Upgrades go one way: PRIVATE -> PARTNER_LED -> CO_SELL (PRIVATE -> CO_SELL directly too).
    pub fn can_upgrade_to(self, to: DealType) -> bool {
        matches!(
            (self, to),
            (DealType::Private, DealType::PartnerLed)
                | (DealType::Private, DealType::CoSell)
                | (DealType::PartnerLed, DealType::CoSell)
        )
    }

    /// Whether platform sellers may see it.
    pub fn shared(self) -> bool {
        self != DealType::Private
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DealType::Private => "PRIVATE",
            DealType::PartnerLed => "PARTNER_LED",
            DealType::CoSell => "CO_SELL",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PRIVATE" => DealType::Private,
            "PARTNER_LED" => DealType::PartnerLed,
            "CO_SELL" => DealType::CoSell,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "INBOUND",
            Direction::Outbound => "OUTBOUND",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "INBOUND" => Some(Direction::Inbound),
            "OUTBOUND" => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// Whose referral it is within an engagement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Partner,
    Platform,
}

impl Party {
    pub fn as_str(self) -> &'static str {
        match self {
            Party::Partner => "PARTNER",
            Party::Platform => "PLATFORM",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PARTNER" => Some(Party::Partner),
            "PLATFORM" => Some(Party::Platform),
            _ => None,
        }
    }
}

/// Why a NEW referral waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// The partner's co-sell request, waiting for a platform seller.
    Pending,
    /// Received, waiting for its owner to accept or decline.
    Received,
}

/// How a referral ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Won,
    Lost,
    Declined,
    Expired,
}

/// The lifecycle (SPEC 3.3): status and substatus together, so that no impossible pair (an
/// ACTIVE referral that is WON) can be represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    New(Waiting),
    Active,
    Closed(Outcome),
}

impl Stage {
    pub fn is_closed(self) -> bool {
        matches!(self, Stage::Closed(_))
    }

    /// `(status, substatus)` as stored and as named in the contract.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Stage::New(Waiting::Pending) => ("NEW", "PENDING"),
            Stage::New(Waiting::Received) => ("NEW", "RECEIVED"),
            Stage::Active => ("ACTIVE", "ACCEPTED"),
            Stage::Closed(Outcome::Won) => ("CLOSED", "WON"),
            Stage::Closed(Outcome::Lost) => ("CLOSED", "LOST"),
            Stage::Closed(Outcome::Declined) => ("CLOSED", "DECLINED"),
            Stage::Closed(Outcome::Expired) => ("CLOSED", "EXPIRED"),
        }
    }

    pub fn parse(status: &str, substatus: &str) -> Option<Self> {
        [
            Stage::New(Waiting::Pending),
            Stage::New(Waiting::Received),
            Stage::Active,
            Stage::Closed(Outcome::Won),
            Stage::Closed(Outcome::Lost),
            Stage::Closed(Outcome::Declined),
            Stage::Closed(Outcome::Expired),
        ]
        .into_iter()
        .find(|s| s.names() == (status, substatus))
    }
}

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub lines: Vec<String>,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    pub country_code: String,
}

/// The customer of a deal (rule D8).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The directory entry's id; `None` for a migrated customer the directory did not know.
    pub entity: Option<String>,
    pub legal_name: String,
    pub address: Address,
    #[serde(with = "values::size_code")]
    pub size: CustomerSize,
    pub contacts: Vec<Contact>,
    /// Directory entries offered for an unmatched migrated customer, best first; empty once it
    /// is matched. Stored beside the customer (their own column), not in its JSON, so that a
    /// link writes the column empty.
    #[serde(skip)]
    pub candidates: Vec<Candidate>,
}

impl Customer {
    pub fn matched(&self) -> bool {
        self.entity.is_some()
    }
}

/// A directory entry the migration offers for a customer it could not link (D8): a guess for a
/// person to confirm, never a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// `entities/{id}`, as the directory names it.
    pub entity: String,
    pub legal_name: String,
    pub address: Address,
    /// The directory made the address up (its sample data): not the customer's real one.
    pub address_generated: bool,
    #[serde(with = "values::candidate_reason")]
    pub reason: CandidateReason,
}

/// Help requested from platform sellers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assistance {
    #[serde(with = "values::assistance_code")]
    pub code: AssistanceCode,
    pub notes: String,
}

/// A catalog solution attached to a referral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralSolution {
    pub solution: Uuid,
    pub display_name: String,
    #[serde(with = "values::solution_kind")]
    pub kind: SolutionKind,
    pub quantity: i32,
    /// Price of one in minor units (cents) of the deal currency.
    pub unit_price_cents: Option<i64>,
}

/// One party's record of a deal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    pub id: Uuid,
    /// The partner organization (for the platform's referral: the partner it co-sells with).
    pub organization: Uuid,
    pub mpn_location: Option<String>,
    pub party: Party,
    pub engagement: Uuid,
    pub direction: Direction,
    pub deal_type: DealType,
    pub stage: Stage,
    pub status_reason: String,
    pub display_name: String,
    pub customer: Customer,
    pub consent_to_share: bool,
    pub assistance: Option<Assistance>,
    pub solutions: Vec<ReferralSolution>,
    pub team: Vec<Contact>,
    pub deal_value: Option<Money>,
    pub estimated_close_date: Option<NaiveDate>,
    pub notes: String,
    /// The platform seller who accepted; never shown to the partner before that (D4).
    pub seller_contact: Option<Contact>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub accept_time: Option<DateTime<Utc>>,
    pub close_time: Option<DateTime<Utc>>,
    pub expire_time: Option<DateTime<Utc>>,
    /// Bumped by every write; the etag is derived from it (D9).
    pub version: i64,
    pub external_reference_id: String,
    pub psc_deal_id: Option<String>,
    /// The won deal's registration (3.8); the partner's referral only.
    pub registration: Option<registration::Registration>,
}

impl Referral {
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }

    /// Copies what the platform's referral shows of the partner's deal. Each side keeps its own
    /// status, notes and contacts.
    pub fn mirror_into(&self, platform: &mut Referral) {
        platform.display_name = self.display_name.clone();
        platform.customer = self.customer.clone();
        platform.deal_type = self.deal_type;
        platform.consent_to_share = self.consent_to_share;
        platform.assistance = self.assistance.clone();
        platform.solutions = self.solutions.clone();
        platform.team = self.team.clone();
        platform.deal_value = self.deal_value.clone();
        platform.estimated_close_date = self.estimated_close_date;
        platform.mpn_location = self.mpn_location.clone();
    }
}

/// A catalog solution (SPEC 3.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solution {
    pub id: Uuid,
    pub display_name: String,
    /// The publishing partner organization; `None`: the platform.
    pub publisher: Option<Uuid>,
    pub kind: SolutionKind,
    pub cosell_ready: bool,
    pub incentive_eligible: bool,
    pub mpn_id: Option<String>,
    /// PSC product ids it replaces (for the deal migration's product mapping).
    pub legacy_product_ids: Vec<String>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub version: i64,
}

impl Solution {
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }

    /// Whether a referral may carry it: platform SKUs always, anything else once co-sell ready.
    pub fn attachable(&self) -> bool {
        self.kind == SolutionKind::PlatformSku || self.cosell_ready
    }
}

/// A solution line as requested: which solution, quantity, unit price in cents.
#[derive(Debug, Clone)]
pub struct SolutionLine {
    pub solution: Uuid,
    pub quantity: i32,
    pub unit_price_cents: Option<i64>,
}

/// The requested solution lines against the catalog entries `catalog` (3.1, 3.9): each exists,
/// may be attached, and only a platform SKU carries a quantity or a unit price. Every refused
/// line is named (`solutions[i]`).
pub fn attach_solutions(
    lines: &[SolutionLine],
    catalog: &[Solution],
) -> Result<Vec<ReferralSolution>, rules::RuleError> {
    let mut refused = Vec::new();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let Some(s) = catalog.iter().find(|s| s.id == line.solution) else {
            refused.push((
                format!("solutions[{i}].solution"),
                format!("solutions/{} does not exist", line.solution),
            ));
            continue;
        };
        if !s.attachable() {
            refused.push((
                format!("solutions[{i}].solution"),
                format!("`{}` is not co-sell ready", s.display_name),
            ));
        }
        let sku = s.kind == SolutionKind::PlatformSku;
        if !sku && (line.quantity != 0 || line.unit_price_cents.is_some()) {
            refused.push((
                format!("solutions[{i}]"),
                "only platform SKUs carry a quantity and a unit price".to_owned(),
            ));
        }
        out.push(ReferralSolution {
            solution: s.id,
            display_name: s.display_name.clone(),
            kind: s.kind,
            quantity: line.quantity,
            unit_price_cents: line.unit_price_cents,
        });
    }
    if refused.is_empty() {
        Ok(out)
    } else {
        Err(rules::RuleError::Fields(refused))
    }
}

/// Lower-case, accent-free words of a name, for the catalog picker: `Ünïted-Data` ->
/// `["united", "data"]`.
pub fn search_words(text: &str) -> Vec<String> {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = text
        .nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// When a command runs and how long a NEW referral then waits for an answer (D2): what the
/// rules that start a referral stamp on it.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub now: DateTime<Utc>,
    pub expiry: chrono::Duration,
}

impl Timing {
    /// When a referral that starts waiting now expires.
    pub fn expire_time(self) -> DateTime<Utc> {
        self.now + self.expiry
    }
}

/// Times are kept to the microsecond: PostgreSQL stores no finer, and a page token must compare
/// equal to the stored value.
pub fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

/// A time as stored: to the microsecond (see [`now`]).
pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_go_one_way() {
        use DealType::*;
        assert!(Private.can_upgrade_to(PartnerLed));
        assert!(Private.can_upgrade_to(CoSell));
        assert!(PartnerLed.can_upgrade_to(CoSell));
        for (from, to) in [
            (CoSell, PartnerLed),
            (CoSell, Private),
            (PartnerLed, Private),
            (Private, Private),
        ] {
            assert!(!from.can_upgrade_to(to), "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn stages_round_trip_and_reject_impossible_pairs() {
        for s in [
            Stage::New(Waiting::Pending),
            Stage::Active,
            Stage::Closed(Outcome::Expired),
        ] {
            let (a, b) = s.names();
            assert_eq!(Stage::parse(a, b), Some(s));
        }
        assert_eq!(Stage::parse("ACTIVE", "WON"), None);
        assert_eq!(Stage::parse("CLOSED", "PENDING"), None);
    }

    #[test]
    fn search_words_fold_case_and_accents() {
        assert_eq!(
            search_words("Ünïted-Data  Cloud"),
            ["united", "data", "cloud"]
        );
        assert!(search_words(" -- ").is_empty());
    }
}
