//! `UpdateReferral`'s rule: a partner changes the fields named by a field mask, on an open
//! referral (D1), leaving it consistent with its deal type (3.2). The caller parses the mask
//! into an [`Edit`] and resolves the customer and solutions it names before [`apply`].

use cosell_proto::deals::CustomerSize;

use super::rules::{self, RuleError};
use super::{Assistance, Contact, Customer, Money, Referral, ReferralSolution, SolutionLine};

/// The fields an update changes, checked (`None`: left as is).
#[derive(Debug, Clone, Default)]
pub struct Edit {
    pub display_name: Option<String>,
    /// The customer's new directory entry (D8), resolved by the caller.
    pub entity: Option<String>,
    pub size: Option<CustomerSize>,
    pub contacts: Option<Vec<Contact>>,
    pub consent: Option<bool>,
    pub assistance: Option<Option<Assistance>>,
    /// The new solution lines, attached by the caller.
    pub solutions: Option<Vec<SolutionLine>>,
    pub team: Option<Vec<Contact>>,
    pub deal_value: Option<Option<Money>>,
    pub close_date: Option<Option<chrono::NaiveDate>>,
    pub notes: Option<String>,
    pub external_reference_id: Option<String>,
}

/// Applies `edit` to `r`, with `customer` and `solutions` the resolved [`Edit::entity`] and
/// [`Edit::solutions`]: refused on a closed referral, or when the result contradicts its deal
/// type (a PRIVATE referral given consent, a CO_SELL one losing its help or contact).
pub fn apply(
    r: &mut Referral,
    edit: &Edit,
    customer: Option<Customer>,
    solutions: Option<Vec<ReferralSolution>>,
) -> Result<(), RuleError> {
    rules::ensure_open(r)?;
    edit.write(r, customer, solutions);
    rules::check_deal_type(r)
}

impl Edit {
    /// Writes the changed fields into `r`. A new directory entry replaces the customer's name
    /// and address, and with them the candidates offered while it was unmatched (D8), but keeps
    /// its size and contacts, which the partner sets.
    fn write(
        &self,
        r: &mut Referral,
        customer: Option<Customer>,
        solutions: Option<Vec<ReferralSolution>>,
    ) {
        if let Some(n) = &self.display_name {
            r.display_name = n.clone();
        }
        if let Some(mut c) = customer {
            c.size = r.customer.size;
            c.contacts = r.customer.contacts.clone();
            r.customer = c;
        }
        if let Some(s) = self.size {
            r.customer.size = s;
        }
        if let Some(c) = &self.contacts {
            r.customer.contacts = c.clone();
        }
        if let Some(c) = self.consent {
            r.consent_to_share = c;
        }
        if let Some(a) = &self.assistance {
            r.assistance = a.clone();
        }
        if let Some(s) = solutions {
            r.solutions = s;
        }
        if let Some(t) = &self.team {
            r.team = t.clone();
        }
        if let Some(d) = &self.deal_value {
            r.deal_value = d.clone();
        }
        if let Some(d) = self.close_date {
            r.estimated_close_date = d;
        }
        if let Some(n) = &self.notes {
            r.notes = n.clone();
        }
        if let Some(x) = &self.external_reference_id {
            r.external_reference_id = x.clone();
        }
    }
}
