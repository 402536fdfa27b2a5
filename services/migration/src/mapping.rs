//! What a PSC deal becomes in the new system: the referral sent to the deals service's import,
//! and what the report says of it (what did not carry over). A pure function of the deal and of
//! what was looked up for it (its MPN location, the catalog's products, the directory's match
//! of its customer, identity's word on its assigned seller), so that every rule of it is tested here.

use std::collections::HashMap;

use cosell_proto::deals as dpb;

use crate::customers::CustomerMatch;
use crate::psc::files::Source;
use crate::sellers::Seller;
use crate::store::SnapshotDeal;

/// What a migrated deal becomes, before the deals service has it.
pub(crate) struct Mapped {
    pub(crate) referral: dpb::ImportedReferral,
    pub(crate) deal_type: &'static str,
    pub(crate) direction: &'static str,
    pub(crate) notes: String,
}

/// Longest notes a referral takes.
const MAX_NOTES_CHARS: usize = 10_000;

/// A phone the deals service takes: digits and ` +-().`.
fn usable_phone(phone: &str) -> bool {
    let phone = phone.trim();
    phone.is_empty()
        || (phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
            && phone.chars().any(|c| c.is_ascii_digit()))
}

/// A PSC contact as it carries over. A referral's contacts need an email; PSC's may lack one or
/// carry odd phones: what cannot carry over is left out and said in `notes` (for the report),
/// rather than failing the deal. `None` when nothing of it is given or its email is not usable.
fn contact(
    who: String,
    [first, last, email, phone]: [&str; 4],
    notes: &mut Vec<String>,
) -> Option<dpb::Contact> {
    let given = [first, last, email, phone]
        .iter()
        .any(|s| !s.trim().is_empty());
    if !given {
        return None;
    }
    if !cosell_platform::email::is_address(email.trim()) {
        notes.push(format!("{who} left out: no usable email"));
        return None;
    }
    let phone = if usable_phone(phone) {
        phone.trim().to_owned()
    } else {
        notes.push(format!("{who}: phone `{phone}` left out"));
        String::new()
    };
    Some(dpb::Contact {
        first_name: first.trim().to_owned(),
        last_name: last.trim().to_owned(),
        email: email.trim().to_owned(),
        phone,
    })
}

/// The deal's customer contact as it carries over (see [`contact`]).
pub(crate) fn customer_contact(
    deal: &crate::psc::files::Deal,
    notes: &mut Vec<String>,
) -> Option<dpb::Contact> {
    contact(
        "customer contact".into(),
        [
            &deal.contact_first_name,
            &deal.contact_last_name,
            &deal.contact_email,
            &deal.contact_phone,
        ],
        notes,
    )
}

/// The deal's team as it carries over (see [`contact`]).
pub(crate) fn team(d: &SnapshotDeal, notes: &mut Vec<String>) -> Vec<dpb::Contact> {
    d.team
        .iter()
        .filter_map(|t| {
            contact(
                format!("team member {} {}", t.first_name, t.last_name),
                [&t.first_name, &t.last_name, &t.email, &t.phone],
                notes,
            )
        })
        .collect()
}

/// The contact of the deal's assigned seller, passed on only when `seller` (what identity says
/// of the email) is an enabled platform seller: the deals service accepts the platform's
/// referral of an Outbound co-sell deal in that seller's name. Otherwise the platform's
/// referral waits in the sellers' queue (an Inbound one, which a platform seller created, stays
/// accepted), and `notes` say why.
fn seller_contact(
    deal: &crate::psc::files::Deal,
    seller: Option<&Seller>,
    notes: &mut Vec<String>,
) -> Option<dpb::Contact> {
    let named = deal.assigned_seller_email.trim();
    if named.is_empty() {
        return None;
    }
    let why = match seller {
        Some(Seller::Enabled) => {
            return Some(dpb::Contact {
                email: named.to_owned(),
                ..Default::default()
            });
        }
        Some(Seller::Not(why)) => why.as_str(),
        None => "could not be checked",
    };
    if deal.co_sell && deal.source != Source::Microsoft {
        notes.push(format!(
            "the platform's referral waits in the sellers' queue (RECEIVED), not accepted: the \
             assigned seller `{named}` {why}; no seller contact passed on"
        ));
    } else {
        notes.push(format!("seller contact `{named}` left out: it {why}"));
    }
    None
}

/// The referral a PSC deal becomes.
pub(crate) fn map_deal(
    d: &SnapshotDeal,
    location: Option<&str>,
    products: &HashMap<String, String>,
    customer: Option<&CustomerMatch>,
    seller: Option<&Seller>,
) -> Mapped {
    let entity = customer.and_then(|c| c.entity.clone());
    // Candidates only for a customer left unmatched: a link needs none.
    let candidates = customer
        .filter(|c| c.entity.is_none())
        .map(|c| c.candidates.clone())
        .unwrap_or_default();
    let deal = &d.deal;
    let co_sell = deal.co_sell;
    let inbound = deal.source == Source::Microsoft;
    let mut notes = Vec::new();
    let mut solutions: Vec<dpb::ReferralSolution> = Vec::new();
    for p in &d.products {
        match products.get(&p.product_id) {
            Some(solution) if !solutions.iter().any(|s| s.solution == *solution) => {
                solutions.push(dpb::ReferralSolution {
                    solution: solution.clone(),
                    ..Default::default()
                })
            }
            Some(_) => {}
            None => notes.push(format!("product {} has no catalog solution", p.product_id)),
        }
    }
    for (what, value) in [
        ("deal role", &deal.deal_role),
        ("licensing program", &deal.licensing_program),
    ] {
        if !value.trim().is_empty() {
            notes.push(format!("{what}: {value}"));
        }
    }
    if let Some(t) = deal.last_modified {
        notes.push(format!("last modified in PSC: {}", t.to_rfc3339()));
    }
    let mut deal_notes = deal.notes.clone();
    if !deal.customer_outcome.trim().is_empty() {
        if !deal_notes.is_empty() {
            deal_notes.push_str("\n\n");
        }
        deal_notes.push_str("Customer outcome (from PSC): ");
        deal_notes.push_str(&deal.customer_outcome);
    }
    let customer_contact = customer_contact(deal, &mut notes);
    let team = team(d, &mut notes);
    let seller_contact = seller_contact(deal, seller, &mut notes);
    if deal_notes.chars().count() > MAX_NOTES_CHARS {
        deal_notes = deal_notes.chars().take(MAX_NOTES_CHARS).collect();
        notes.push(format!("notes cut to {MAX_NOTES_CHARS} characters"));
    }
    let referral = dpb::Referral {
        display_name: deal.name.clone(),
        mpn_location: location.unwrap_or_default().to_owned(),
        deal_type: if co_sell {
            dpb::DealType::CoSell
        } else {
            dpb::DealType::PartnerLed
        } as i32,
        direction: if inbound {
            dpb::Direction::Inbound
        } else {
            dpb::Direction::Outbound
        } as i32,
        // They were being worked in PSC.
        status: dpb::Status::Active as i32,
        substatus: dpb::Substatus::Accepted as i32,
        customer: Some(dpb::Customer {
            entity: entity.unwrap_or_default(),
            legal_name: deal.customer_name.clone(),
            address: Some(dpb::Address {
                lines: [deal.customer_address_line1.clone()]
                    .into_iter()
                    .filter(|l| !l.is_empty())
                    .collect(),
                city: deal.customer_city.clone(),
                region: deal.customer_region.clone(),
                postal_code: deal.customer_postal_code.clone(),
                country_code: deal.customer_country.clone(),
            }),
            contacts: customer_contact.into_iter().collect(),
            candidates,
            ..Default::default()
        }),
        solutions,
        team,
        deal_value: deal.value.as_ref().map(|(cents, currency)| dpb::Money {
            currency_code: currency.clone(),
            amount: cosell_platform::money::format_cents(*cents),
        }),
        estimated_close_date: deal
            .estimated_close_date
            .map(|d| d.to_string())
            .unwrap_or_default(),
        notes: deal_notes,
        seller_contact,
        create_time: Some(prost_types::Timestamp {
            seconds: deal.created.timestamp(),
            nanos: 0,
        }),
        ..Default::default()
    };
    Mapped {
        referral: dpb::ImportedReferral {
            psc_deal_id: deal.id.clone(),
            referral: Some(referral),
        },
        deal_type: if co_sell { "CO_SELL" } else { "PARTNER_LED" },
        direction: if inbound { "INBOUND" } else { "OUTBOUND" },
        notes: notes.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(source: Source, seller_email: &str, seller: Option<Seller>) -> Mapped {
        let mut d = crate::eligibility::tests::deal("2021-01-05T10:00:00Z");
        d.deal.source = source;
        d.deal.assigned_seller_email = seller_email.into();
        map_deal(&d, None, &HashMap::new(), None, seller.as_ref())
    }

    fn seller_email(m: &Mapped) -> Option<String> {
        let referral = m.referral.referral.as_ref().unwrap();
        referral.seller_contact.as_ref().map(|c| c.email.clone())
    }

    #[test]
    fn an_enabled_platform_seller_is_passed_on() {
        let m = mapped(
            Source::Partner,
            " sam@platform.example ",
            Some(Seller::Enabled),
        );
        assert_eq!(seller_email(&m).as_deref(), Some("sam@platform.example"));
        assert_eq!(m.notes, "");
    }

    #[test]
    fn any_other_named_seller_is_not_and_the_report_says_why() {
        let m = mapped(
            Source::Partner,
            "eve@contoso.com",
            Some(Seller::Not("is not a platform seller".into())),
        );
        assert_eq!(seller_email(&m), None);
        assert_eq!(
            m.notes,
            "the platform's referral waits in the sellers' queue (RECEIVED), not accepted: the \
             assigned seller `eve@contoso.com` is not a platform seller; no seller contact passed on"
        );
        // A deal a platform seller created (Inbound): no contact either, said so.
        let m = mapped(
            Source::Microsoft,
            "dan@platform.example",
            Some(Seller::Not("is a disabled platform seller".into())),
        );
        assert_eq!(seller_email(&m), None);
        assert_eq!(m.direction, "INBOUND");
        assert_eq!(
            m.notes,
            "seller contact `dan@platform.example` left out: it is a disabled platform seller"
        );
        // Not looked up (it should have been): not trusted.
        assert_eq!(
            seller_email(&mapped(Source::Partner, "x@y.example", None)),
            None
        );
    }

    #[test]
    fn no_seller_named_no_contact_and_nothing_to_say() {
        let m = mapped(Source::Partner, "  ", None);
        assert_eq!(seller_email(&m), None);
        assert_eq!(m.notes, "");
    }
}
