//! Domain types to their proto messages (requests are parsed in each handler, where the field
//! names for violations are at hand).

use chrono::{DateTime, Utc};
use cosell_proto::identity as pb;

use crate::domain::{self, UserKind, UserState};

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn organization(o: &domain::Organization) -> pb::Organization {
    pb::Organization {
        name: format!("organizations/{}", o.id),
        display_name: o.display_name.clone(),
        tenant_id: o.tenant_id.clone(),
        verified_domains: o.verified_domains.clone(),
        vorg_mpn_id: o.vorg_mpn_id.clone().unwrap_or_default(),
        locations: o.locations.iter().map(location).collect(),
        isv_connect_enrolled: o.isv_connect_enrolled,
        platform: o.platform,
        create_time: Some(timestamp(o.create_time)),
        update_time: Some(timestamp(o.update_time)),
    }
}

pub fn location(l: &domain::MpnLocation) -> pb::MpnLocation {
    pb::MpnLocation {
        mpn_id: l.mpn_id.clone(),
        country_code: l.country_code.clone(),
        city: l.city.clone(),
    }
}

pub fn user_name(u: &domain::User) -> String {
    format!("organizations/{}/users/{}", u.organization, u.id)
}

pub fn user(u: &domain::User) -> pb::User {
    pb::User {
        name: user_name(u),
        email: u.email.clone(),
        given_name: u.given_name.clone(),
        family_name: u.family_name.clone(),
        kind: match u.kind {
            UserKind::Member => pb::UserKind::Member,
            UserKind::Guest => pb::UserKind::Guest,
        } as i32,
        state: match u.state {
            UserState::Active => pb::UserState::Active,
            UserState::Disabled => pb::UserState::Disabled,
        } as i32,
        create_time: Some(timestamp(u.create_time)),
        update_time: Some(timestamp(u.update_time)),
    }
}

pub fn assignment(a: &domain::RoleAssignment) -> pb::RoleAssignment {
    pb::RoleAssignment {
        name: format!("organizations/{}/roleAssignments/{}", a.organization, a.id),
        user: format!("organizations/{}/users/{}", a.organization, a.user),
        user_email: a.user_email.clone(),
        role: a.role as i32,
        mpn_id: a.scope.clone().unwrap_or_default(),
        create_time: Some(timestamp(a.create_time)),
    }
}
