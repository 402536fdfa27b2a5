//! Who is told of an event (the notifications of `cosell.deals.v1.NotificationService`): the
//! rule that turns one event of a partner's referral and the organization's referrals roles
//! into one notification per user. Never a user who cannot read the referral: every
//! recipient holds a referrals role of the organization, org-wide or of the referral's
//! location (GetReferral's rule).

use super::event::EventKind;

/// Why a user is told, as stored and as `cosell.deals.v1.NotificationKind` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    NewInboundReferral,
    InvitationAccepted,
    InvitationDeclined,
    ExpiringSoon,
    Expired,
    RegistrationChanged,
    ReferralDeclined,
    /// Not from the feed: the migration service tells it.
    MigrationFinished,
}

impl NotificationKind {
    const ALL: [NotificationKind; 8] = [
        NotificationKind::NewInboundReferral,
        NotificationKind::InvitationAccepted,
        NotificationKind::InvitationDeclined,
        NotificationKind::ExpiringSoon,
        NotificationKind::Expired,
        NotificationKind::RegistrationChanged,
        NotificationKind::ReferralDeclined,
        NotificationKind::MigrationFinished,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::NewInboundReferral => "NEW_INBOUND_REFERRAL",
            NotificationKind::InvitationAccepted => "INVITATION_ACCEPTED",
            NotificationKind::InvitationDeclined => "INVITATION_DECLINED",
            NotificationKind::ExpiringSoon => "EXPIRING_SOON",
            NotificationKind::Expired => "EXPIRED",
            NotificationKind::RegistrationChanged => "REGISTRATION_CHANGED",
            NotificationKind::ReferralDeclined => "REFERRAL_DECLINED",
            NotificationKind::MigrationFinished => "MIGRATION_FINISHED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// What happened, for a person: "<referral name>: <this>".
    pub fn says(self) -> &'static str {
        match self {
            NotificationKind::NewInboundReferral => "new Inbound referral waiting for an answer",
            NotificationKind::InvitationAccepted => {
                "a platform seller accepted the co-sell invitation"
            }
            NotificationKind::InvitationDeclined => {
                "a platform seller declined the co-sell invitation"
            }
            NotificationKind::ExpiringSoon => "expires soon",
            NotificationKind::Expired => "expired: nobody answered in time",
            NotificationKind::RegistrationChanged => "its deal registration changed",
            NotificationKind::ReferralDeclined => "the partner declined the referral you sent",
            NotificationKind::MigrationFinished => "your deal migration run finished",
        }
    }
}

/// A user holding a referrals role of the referral's organization.
#[derive(Debug, Clone)]
pub struct Holder<'a> {
    pub user: &'a str,
    /// Lower case.
    pub email: &'a str,
    pub admin: bool,
    /// `None`: the entire organization.
    pub location: Option<&'a str>,
}

/// What the rule needs of a partner's referral after the event.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub mpn_location: Option<&'a str>,
    /// The team's emails, lower case.
    pub team: Vec<String>,
    /// An Inbound referral waiting for its owner (NEW/RECEIVED).
    pub inbound_waiting: bool,
}

/// Why the organization's users are told of `kind` on `subject`; `None`: they are not.
pub fn why(kind: EventKind, subject: &Subject<'_>) -> Option<NotificationKind> {
    Some(match kind {
        EventKind::Created if subject.inbound_waiting => NotificationKind::NewInboundReferral,
        EventKind::InvitationAccepted => NotificationKind::InvitationAccepted,
        EventKind::InvitationDeclined => NotificationKind::InvitationDeclined,
        EventKind::ExpiringSoon => NotificationKind::ExpiringSoon,
        EventKind::Expired => NotificationKind::Expired,
        EventKind::RegistrationChanged => NotificationKind::RegistrationChanged,
        _ => return None,
    })
}

/// The users told of `kind` on `subject`, each once, with why.
pub fn recipients<'a>(
    kind: EventKind,
    subject: &Subject<'_>,
    holders: &[Holder<'a>],
) -> Vec<(NotificationKind, &'a str)> {
    let Some(why) = why(kind, subject) else {
        return Vec::new();
    };
    let readers = holders
        .iter()
        .filter(|h| h.location.is_none() || h.location == subject.mpn_location);
    let mut out: Vec<(NotificationKind, &'a str)> = Vec::new();
    for h in readers {
        let told = match why {
            // Everyone who may answer it.
            NotificationKind::NewInboundReferral => true,
            // The referral's team and the referrals admins.
            _ => h.admin || subject.team.iter().any(|e| e == h.email),
        };
        if told && !out.iter().any(|(_, u)| *u == h.user) {
            out.push((why, h.user));
        }
    }
    out
}

/// What the sender of an Inbound referral (the platform seller who sent it, D5) is told of
/// `kind` on the partner's referral: that the partner declined it, or that nobody answered in
/// time (D2). `declined`: the referral is CLOSED/DECLINED after the event.
pub fn told_sender(kind: EventKind, declined: bool) -> Option<NotificationKind> {
    match kind {
        EventKind::StatusChanged if declined => Some(NotificationKind::ReferralDeclined),
        EventKind::Expired => Some(NotificationKind::Expired),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holders() -> Vec<Holder<'static>> {
        vec![
            Holder {
                user: "admin",
                email: "a@x.com",
                admin: true,
                location: None,
            },
            Holder {
                user: "user",
                email: "u@x.com",
                admin: false,
                location: None,
            },
            Holder {
                user: "team",
                email: "t@x.com",
                admin: false,
                location: Some("4000003"),
            },
            Holder {
                user: "elsewhere",
                email: "e@x.com",
                admin: true,
                location: Some("4000002"),
            },
            // One person holding both roles is told once.
            Holder {
                user: "admin",
                email: "a@x.com",
                admin: false,
                location: None,
            },
        ]
    }

    fn users(r: Vec<(NotificationKind, &str)>) -> Vec<&str> {
        r.into_iter().map(|(_, u)| u).collect()
    }

    #[test]
    fn a_new_inbound_referral_tells_every_reader_of_its_scope() {
        let s = Subject {
            mpn_location: Some("4000003"),
            team: vec![],
            inbound_waiting: true,
        };
        assert_eq!(
            users(recipients(EventKind::Created, &s, &holders())),
            ["admin", "user", "team"]
        );
        let outbound = Subject {
            inbound_waiting: false,
            ..s
        };
        assert!(recipients(EventKind::Created, &outbound, &holders()).is_empty());
    }

    #[test]
    fn the_sender_is_told_of_a_decline_or_an_expiry_only() {
        assert_eq!(
            told_sender(EventKind::StatusChanged, true),
            Some(NotificationKind::ReferralDeclined)
        );
        assert_eq!(
            told_sender(EventKind::Expired, false),
            Some(NotificationKind::Expired)
        );
        assert_eq!(told_sender(EventKind::StatusChanged, false), None);
        assert_eq!(told_sender(EventKind::Updated, true), None);
    }

    #[test]
    fn an_answer_or_an_expiry_tells_the_team_and_the_admins_who_can_read_it() {
        let s = Subject {
            mpn_location: Some("4000003"),
            team: vec!["t@x.com".into(), "e@x.com".into()],
            inbound_waiting: false,
        };
        // "elsewhere" is on the team but holds a role of another location: never told.
        assert_eq!(
            users(recipients(EventKind::Expired, &s, &holders())),
            ["admin", "team"]
        );
        assert!(recipients(EventKind::Updated, &s, &holders()).is_empty());
    }
}
