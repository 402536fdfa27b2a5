//! A change to referrals: what one command did to a referral and to the other party's referral
//! of its engagement, settled ([`settle`]) into the [`Change`]s the store writes in one
//! transaction (`Store::save`), each only if the stored version is still the one read (D9).
//! Every change of an existing referral goes through here, so that what follows from a change
//! (its version, the platform's copy of the partner's deal, and whatever else must be written
//! in the same transaction) is derived in one place, from the referral before and after.

use chrono::{DateTime, Utc};

use super::{Party, Referral};

/// One referral written by a command: as read and as left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// As read; `None`: made by this command (the co-sell request of an upgrade).
    pub before: Option<Referral>,
    /// As written: the next version, updated now.
    pub after: Referral,
}

impl Change {
    /// The stored version the write replaces; 0 for a new referral.
    pub fn replaces(&self) -> i64 {
        self.before.as_ref().map_or(0, |b| b.version)
    }
}

/// Settles what a command did to a referral (read as `before`, left as `after`) and to the
/// other party's referral of the engagement (read as `peer_before`, left as `peer_after`) into
/// the changes to write; none when nothing changed. A changed referral gets the next version
/// and `now` as its update time (`after` too, as the caller answers with it). The platform's
/// open side shows the partner's deal as the partner left it; a closed one keeps what it showed
/// when it closed (D1).
pub fn settle(
    before: Referral,
    after: &mut Referral,
    peer_before: Option<Referral>,
    peer_after: Option<Referral>,
    now: DateTime<Utc>,
) -> Vec<Change> {
    let mut changes = Vec::new();
    if *after != before {
        after.version = before.version + 1;
        after.update_time = now;
        changes.push(Change {
            before: Some(before),
            after: after.clone(),
        });
    }
    if let Some(mut peer) = peer_after {
        if after.party == Party::Partner && !peer.stage.is_closed() {
            after.mirror_into(&mut peer);
        }
        match peer_before.filter(|b| b.id == peer.id) {
            // A new referral of the engagement.
            None => changes.push(Change {
                before: None,
                after: peer,
            }),
            Some(b) if peer != b => {
                peer.version = b.version + 1;
                peer.update_time = now;
                changes.push(Change {
                    before: Some(b),
                    after: peer,
                });
            }
            Some(_) => {}
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::{at, complete};
    use crate::domain::{DealType, Outcome, Stage, Waiting, rules};

    #[test]
    fn nothing_changed_writes_nothing() {
        let partner = complete(DealType::Private, Stage::Active);
        let mut after = partner.clone();
        let changes = settle(partner, &mut after, None, None, crate::domain::now());
        assert!(changes.is_empty());
        assert_eq!(after.version, 1);
    }

    #[test]
    fn a_change_bumps_the_version_and_the_platforms_open_side_follows() {
        let now = crate::domain::now();
        let partner = complete(DealType::CoSell, Stage::New(Waiting::Pending));
        let platform = rules::platform_side(&partner, at(now));
        let mut after = partner.clone();
        after.display_name = "Renamed".into();
        let later = now + chrono::Duration::seconds(1);
        let changes = settle(
            partner,
            &mut after,
            Some(platform.clone()),
            Some(platform.clone()),
            later,
        );
        assert_eq!((after.version, after.update_time), (2, later));
        let [mine, theirs] = &changes[..] else {
            panic!("{changes:?}")
        };
        assert_eq!(mine.after, after);
        assert_eq!(mine.replaces(), 1);
        assert_eq!(theirs.after.display_name, "Renamed");
        assert_eq!((theirs.after.version, theirs.replaces()), (2, 1));
        assert_eq!(theirs.before.as_ref(), Some(&platform));
    }

    #[test]
    fn a_closed_platform_side_keeps_what_it_showed() {
        let now = crate::domain::now();
        let partner = complete(DealType::PartnerLed, Stage::Active);
        let mut platform = rules::platform_side(&partner, at(now));
        platform.stage = Stage::Closed(Outcome::Declined);
        let mut after = partner.clone();
        after.notes = "new notes".into();
        after.display_name = "Renamed".into();
        let changes = settle(
            partner,
            &mut after,
            Some(platform.clone()),
            Some(platform),
            now,
        );
        assert_eq!(changes.len(), 1, "only the partner's referral is written");
    }

    #[test]
    fn a_new_platform_side_is_inserted() {
        let now = crate::domain::now();
        let partner = complete(DealType::PartnerLed, Stage::Active);
        let mut declined = rules::platform_side(&partner, at(now));
        declined.stage = Stage::Closed(Outcome::Declined);
        // Upgraded to CO_SELL after a seller had declined: a new request replaces the old one.
        let mut after = partner.clone();
        after.deal_type = DealType::CoSell;
        let fresh = rules::platform_side(&after, at(now));
        let changes = settle(
            partner,
            &mut after,
            Some(declined),
            Some(fresh.clone()),
            now,
        );
        let new = changes.last().unwrap();
        assert_eq!((new.before.as_ref(), new.replaces()), (None, 0));
        assert_eq!(new.after.id, fresh.id);
    }
}
