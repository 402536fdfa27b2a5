//! Which PSC deals migrate (SPEC 5.4), and which required fields (rule D6) a migrated deal will
//! lack. Pure rules over the snapshot; the caller supplies what needs other services (whether the
//! account's MPN association holds, how many of the deal's products map to catalog solutions).

use chrono::{DateTime, TimeZone, Utc};

use crate::psc::files::{Deal, DealStatus, Program, Registration};
use crate::store::SnapshotDeal;

/// Why a deal does not migrate; the first that applies, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ineligible {
    Won,
    NotOpen,
    CreatedBefore2020,
    InvalidMpnAssociation,
    InDealRegistration,
    SolutionAssessment,
    OemLicensing,
}

/// Deals created before this instant stay behind.
pub fn cutoff() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid instant")
}

/// What eligibility is decided on: the store keeps these as columns, so that the database
/// counts deals by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub status: DealStatus,
    /// Created before [`cutoff`].
    pub before_2020: bool,
    pub registration: Registration,
    pub program: Program,
}

impl Facts {
    pub fn of(deal: &Deal) -> Facts {
        Facts {
            status: deal.status,
            before_2020: deal.created < cutoff(),
            registration: deal.registration,
            program: deal.program,
        }
    }
}

/// `Ok` when the deal migrates. `association_holds`: its partner account's MPN association.
pub fn eligibility(deal: &Facts, association_holds: bool) -> Result<(), Ineligible> {
    match deal.status {
        DealStatus::Open => {}
        DealStatus::Won => return Err(Ineligible::Won),
        DealStatus::Lost | DealStatus::Closed => return Err(Ineligible::NotOpen),
    }
    if deal.before_2020 {
        return Err(Ineligible::CreatedBefore2020);
    }
    if !association_holds {
        return Err(Ineligible::InvalidMpnAssociation);
    }
    if deal.registration != Registration::None {
        return Err(Ineligible::InDealRegistration);
    }
    match deal.program {
        Program::Standard => Ok(()),
        Program::SolutionAssessment => Err(Ineligible::SolutionAssessment),
        Program::OemLicensing => Err(Ineligible::OemLicensing),
    }
}

/// The referral fields (rule D6) the migrated deal will lack. `mapped_solutions`: how many of
/// its products map to catalog solutions.
pub fn missing_fields(d: &SnapshotDeal, mapped_solutions: usize) -> Vec<&'static str> {
    let deal = &d.deal;
    let given = |s: &str| !s.trim().is_empty();
    let mut missing = Vec::new();
    if !given(&deal.customer_name) {
        missing.push("customer.legal_name");
    }
    if !given(&deal.customer_city) || !given(&deal.customer_country) {
        missing.push("customer.address");
    }
    // Contacts and team members count as the mapping carries them over: one without a usable
    // email is left out, an unusable phone is emptied.
    let mut dropped = Vec::new();
    if deal.co_sell && crate::mapping::customer_contact(deal, &mut dropped).is_none() {
        missing.push("customer.contacts");
    }
    if mapped_solutions == 0 {
        missing.push("solutions");
    }
    let complete = |t: &cosell_proto::deals::Contact| {
        [&t.first_name, &t.last_name, &t.email, &t.phone]
            .iter()
            .all(|s| given(s))
    };
    if !crate::mapping::team(d, &mut dropped).iter().any(complete) {
        missing.push("team");
    }
    if deal.value.is_none() {
        missing.push("deal_value");
    }
    if deal.estimated_close_date.is_none() {
        missing.push("estimated_close_date");
    }
    // The customer outcome, which PC has no field for, is appended to the notes.
    if !given(&deal.notes) && !given(&deal.customer_outcome) {
        missing.push("notes");
    }
    missing
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::psc::files::{Deal, Source, TeamMember};

    /// An open co-sell deal of a partner, created at `created`, with a customer, a contact and
    /// a team member (other modules' tests start from it too).
    pub(crate) fn deal(created: &str) -> SnapshotDeal {
        SnapshotDeal {
            deal: Deal {
                id: "D".into(),
                name: "n".into(),
                account_id: "A".into(),
                status: DealStatus::Open,
                created: crate::psc::values::timestamp(created).unwrap(),
                last_modified: None,
                co_sell: true,
                source: Source::Partner,
                program: Program::Standard,
                registration: Registration::None,
                assigned_seller_email: String::new(),
                customer_name: "Northwind".into(),
                customer_address_line1: String::new(),
                customer_city: "Oslo".into(),
                customer_region: String::new(),
                customer_postal_code: String::new(),
                customer_country: "NO".into(),
                contact_first_name: "Cy".into(),
                contact_last_name: "Contact".into(),
                contact_email: "cy@northwind.example".into(),
                contact_phone: String::new(),
                value: Some((100, "USD".into())),
                estimated_close_date: chrono::NaiveDate::from_ymd_opt(2027, 1, 1),
                notes: String::new(),
                customer_outcome: "a pilot".into(),
                deal_role: String::new(),
                licensing_program: String::new(),
            },
            products: Vec::new(),
            team: vec![TeamMember {
                deal_id: "D".into(),
                first_name: "Rita".into(),
                last_name: "R".into(),
                email: "rita@contoso.com".into(),
                phone: "1".into(),
            }],
        }
    }

    fn facts(created: &str) -> Facts {
        Facts::of(&deal(created).deal)
    }

    #[test]
    fn the_2020_boundary_to_the_second() {
        assert_eq!(
            eligibility(&facts("2019-12-31T23:59:59Z"), true),
            Err(Ineligible::CreatedBefore2020)
        );
        assert_eq!(eligibility(&facts("2020-01-01T00:00:00Z"), true), Ok(()));
        // An offset that crosses the boundary: local New Year's morning is still 2019 in UTC.
        assert_eq!(
            eligibility(&facts("2020-01-01T00:30:00+01:00"), true),
            Err(Ineligible::CreatedBefore2020)
        );
        assert_eq!(
            eligibility(&facts("2019-12-31T23:30:00-05:00"), true),
            Ok(())
        );
    }

    #[test]
    fn reasons_in_order() {
        let mut d = facts("2021-01-01T00:00:00Z");
        assert_eq!(
            eligibility(&d, false),
            Err(Ineligible::InvalidMpnAssociation)
        );
        d.registration = Registration::InProgress;
        assert_eq!(eligibility(&d, true), Err(Ineligible::InDealRegistration));
        d.registration = Registration::None;
        d.program = Program::OemLicensing;
        assert_eq!(eligibility(&d, true), Err(Ineligible::OemLicensing));
        d.status = DealStatus::Won;
        assert_eq!(eligibility(&d, true), Err(Ineligible::Won));
        d.status = DealStatus::Lost;
        assert_eq!(eligibility(&d, false), Err(Ineligible::NotOpen));
    }

    #[test]
    fn readiness_names_each_missing_field() {
        let mut d = deal("2021-01-01T00:00:00Z");
        assert_eq!(missing_fields(&d, 1), Vec::<&str>::new());
        assert_eq!(missing_fields(&d, 0), ["solutions"]);
        d.deal.customer_name.clear();
        d.deal.customer_country.clear();
        d.deal.contact_first_name.clear();
        d.deal.contact_last_name.clear();
        d.deal.contact_email.clear();
        d.team[0].phone.clear();
        d.deal.value = None;
        d.deal.estimated_close_date = None;
        d.deal.customer_outcome.clear();
        assert_eq!(
            missing_fields(&d, 1),
            [
                "customer.legal_name",
                "customer.address",
                "customer.contacts",
                "team",
                "deal_value",
                "estimated_close_date",
                "notes"
            ]
        );
        // A partner-led deal needs no customer contact.
        d.deal.co_sell = false;
        assert!(!missing_fields(&d, 1).contains(&"customer.contacts"));
    }

    /// What the migration will drop counts as missing: a contact or team member without a
    /// usable email, a team member whose phone the deals service would refuse.
    #[test]
    fn readiness_counts_what_the_migration_carries_over() {
        let mut d = deal("2021-01-01T00:00:00Z");
        d.deal.contact_email = "not an email".into();
        assert_eq!(missing_fields(&d, 1), ["customer.contacts"]);
        let mut d = deal("2021-01-01T00:00:00Z");
        d.team[0].phone = "call me".into();
        assert_eq!(missing_fields(&d, 1), ["team"]);
        d.team[0].phone = "+47 (0) 22-33".into();
        assert_eq!(missing_fields(&d, 1), Vec::<&str>::new());
        d.team[0].email = "rita at contoso".into();
        assert_eq!(missing_fields(&d, 1), ["team"]);
        // One complete member is enough, whatever the others lack.
        let mut other = d.team[0].clone();
        other.email = "rita@contoso.com".into();
        d.team.push(other);
        assert_eq!(missing_fields(&d, 1), Vec::<&str>::new());
    }
}
