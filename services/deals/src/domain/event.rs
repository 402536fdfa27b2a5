//! What a change did, as the change feed tells it (SPEC 3.6): the [`EventKind`]s of a
//! [`Change`], derived from the referral before and after and from why it changed
//! ([`Cause`]), with the paths of the fields that changed. One event per referral written; the
//! store appends them in the transaction of the change.

use super::change::Change;
use super::{DealType, Outcome, Party, Referral, Stage, Waiting};

/// Why referrals are written: most changes say what they are by their before and after; the
/// rest are named by the code that makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A user's or a seller's command (create, update, the lifecycle verbs).
    Command,
    /// The sweeper expired it (D2).
    Expiry,
    /// Imported from PSC (SPEC 5.4).
    Migrated,
    /// Its deal registration changed (SPEC 3.8): the hook the registration verbs pass to
    /// `Deals::mutate_as`.
    Registration,
}

/// What happened to a referral, as stored and as `cosell.deals.v1.EventKind` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Updated,
    StatusChanged,
    InvitationAccepted,
    InvitationDeclined,
    ExpiringSoon,
    Expired,
    Migrated,
    RegistrationChanged,
}

impl EventKind {
    const ALL: [EventKind; 9] = [
        EventKind::Created,
        EventKind::Updated,
        EventKind::StatusChanged,
        EventKind::InvitationAccepted,
        EventKind::InvitationDeclined,
        EventKind::ExpiringSoon,
        EventKind::Expired,
        EventKind::Migrated,
        EventKind::RegistrationChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "CREATED",
            EventKind::Updated => "UPDATED",
            EventKind::StatusChanged => "STATUS_CHANGED",
            EventKind::InvitationAccepted => "INVITATION_ACCEPTED",
            EventKind::InvitationDeclined => "INVITATION_DECLINED",
            EventKind::ExpiringSoon => "EXPIRING_SOON",
            EventKind::Expired => "EXPIRED",
            EventKind::Migrated => "MIGRATED",
            EventKind::RegistrationChanged => "REGISTRATION_CHANGED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The event of one written referral: its kind and, for an update, the changed fields' paths
/// (as the contract names them).
pub fn derive(change: &Change, cause: Cause) -> (EventKind, Vec<String>) {
    let after = &change.after;
    let Some(before) = &change.before else {
        let kind = match cause {
            Cause::Migrated => EventKind::Migrated,
            _ => EventKind::Created,
        };
        return (kind, Vec::new());
    };
    let fields = changed_fields(before, after);
    let kind = match cause {
        Cause::Expiry => EventKind::Expired,
        Cause::Registration => EventKind::RegistrationChanged,
        Cause::Migrated => EventKind::Migrated,
        Cause::Command => command_kind(before, after),
    };
    (kind, fields)
}

/// A command's event: the seller's answer to a co-sell invitation on either side (D4), any
/// other status or deal-type move, else a field update.
fn command_kind(before: &Referral, after: &Referral) -> EventKind {
    let invitation = before.stage == Stage::New(Waiting::Received);
    match after.party {
        Party::Platform if invitation && after.stage == Stage::Active => {
            return EventKind::InvitationAccepted;
        }
        Party::Platform if invitation && after.stage == Stage::Closed(Outcome::Declined) => {
            return EventKind::InvitationDeclined;
        }
        Party::Partner if before.seller_contact.is_none() && after.seller_contact.is_some() => {
            return EventKind::InvitationAccepted;
        }
        Party::Partner
            if before.deal_type == DealType::CoSell && after.deal_type == DealType::PartnerLed =>
        {
            return EventKind::InvitationDeclined;
        }
        _ => {}
    }
    if before.stage != after.stage || before.deal_type != after.deal_type {
        EventKind::StatusChanged
    } else {
        EventKind::Updated
    }
}

/// The paths of the fields a partner or a seller edits that differ (the lifecycle's own
/// fields, times and version are the event's kind, not "changes").
pub fn changed_fields(before: &Referral, after: &Referral) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |same: bool, path: &str| {
        if !same {
            out.push(path.to_owned());
        }
    };
    check(before.display_name == after.display_name, "display_name");
    check(before.mpn_location == after.mpn_location, "mpn_location");
    check(before.customer == after.customer, "customer");
    check(
        before.consent_to_share == after.consent_to_share,
        "consent_to_share",
    );
    check(before.assistance == after.assistance, "assistance");
    check(before.solutions == after.solutions, "solutions");
    check(before.team == after.team, "team");
    check(before.deal_value == after.deal_value, "deal_value");
    check(
        before.estimated_close_date == after.estimated_close_date,
        "estimated_close_date",
    );
    check(before.notes == after.notes, "notes");
    check(
        before.external_reference_id == after.external_reference_id,
        "tracking.external_reference_id",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::rules;
    use crate::domain::testing::{at, complete, contact};

    fn change(before: &Referral, after: &Referral) -> Change {
        Change {
            before: Some(before.clone()),
            after: after.clone(),
        }
    }

    #[test]
    fn a_new_referral_is_created_or_migrated() {
        let r = complete(DealType::PartnerLed, Stage::Active);
        let new = Change {
            before: None,
            after: r,
        };
        assert_eq!(derive(&new, Cause::Command).0, EventKind::Created);
        assert_eq!(derive(&new, Cause::Migrated).0, EventKind::Migrated);
    }

    #[test]
    fn an_edit_names_its_fields() {
        let r = complete(DealType::PartnerLed, Stage::Active);
        let mut after = r.clone();
        after.notes = "more".into();
        after.display_name = "Renamed".into();
        assert_eq!(
            derive(&change(&r, &after), Cause::Command),
            (
                EventKind::Updated,
                vec!["display_name".to_owned(), "notes".to_owned()]
            )
        );
    }

    #[test]
    fn a_sellers_answer_is_an_invitation_event_on_both_sides() {
        let now = crate::domain::now();
        let partner = complete(DealType::CoSell, Stage::New(Waiting::Pending));
        let platform = rules::platform_side(&partner, at(now));
        let (mut p, mut mine) = (platform.clone(), partner.clone());
        rules::seller_accept(&mut p, Some(&mut mine), contact(), now).unwrap();
        assert_eq!(
            derive(&change(&platform, &p), Cause::Command).0,
            EventKind::InvitationAccepted
        );
        assert_eq!(
            derive(&change(&partner, &mine), Cause::Command).0,
            EventKind::InvitationAccepted
        );
        let (mut p, mut mine) = (platform.clone(), partner.clone());
        rules::seller_decline(&mut p, Some(&mut mine), "no capacity", now).unwrap();
        assert_eq!(
            derive(&change(&platform, &p), Cause::Command).0,
            EventKind::InvitationDeclined
        );
        assert_eq!(
            derive(&change(&partner, &mine), Cause::Command).0,
            EventKind::InvitationDeclined
        );
    }

    #[test]
    fn a_status_move_and_the_named_causes() {
        let r = complete(DealType::PartnerLed, Stage::Active);
        let mut won = r.clone();
        won.stage = Stage::Closed(Outcome::Won);
        assert_eq!(
            derive(&change(&r, &won), Cause::Command).0,
            EventKind::StatusChanged
        );
        assert_eq!(
            derive(&change(&r, &won), Cause::Expiry).0,
            EventKind::Expired
        );
        assert_eq!(
            derive(&change(&r, &won), Cause::Registration).0,
            EventKind::RegistrationChanged
        );
    }

    #[test]
    fn kinds_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
    }
}
