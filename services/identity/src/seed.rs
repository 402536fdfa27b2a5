//! Demo data for `cosell serve --demo`: Contoso (two MPN locations, one user per kind of role),
//! Fabrikam (a second tenant for isolation checks) and the platform's seller and operator.
//! Seeding again finds everything in place and changes nothing.

use uuid::Uuid;

use crate::api::Identity;
use crate::domain::{MpnLocation, NewOrganization, NewUser, Result, Role, UserKind};
use crate::store::UserFilter;

struct Person {
    email: &'static str,
    given: &'static str,
    family: &'static str,
    roles: &'static [(Role, Option<&'static str>)],
}

const CONTOSO: &[Person] = &[
    Person {
        email: "ada.admin@contoso.com",
        given: "Ada",
        family: "Admin",
        roles: &[(Role::AccountAdmin, None), (Role::GlobalAdmin, None)],
    },
    Person {
        email: "rita.referrals@contoso.com",
        given: "Rita",
        family: "Referrals",
        roles: &[(Role::ReferralsAdmin, None)],
    },
    Person {
        email: "leo.location@contoso.com",
        given: "Leo",
        family: "Location",
        roles: &[(Role::ReferralsAdmin, Some("4000003"))],
    },
    Person {
        email: "uma.user@contoso.com",
        given: "Uma",
        family: "User",
        roles: &[(Role::ReferralsUser, Some("4000002"))],
    },
    Person {
        email: "bea.profile@contoso.com",
        given: "Bea",
        family: "Profile",
        roles: &[(Role::BusinessProfileAdmin, None)],
    },
];

const FABRIKAM: &[Person] = &[Person {
    email: "fay.admin@fabrikam.com",
    given: "Fay",
    family: "Admin",
    roles: &[
        (Role::AccountAdmin, None),
        (Role::GlobalAdmin, None),
        (Role::ReferralsAdmin, None),
        (Role::ReferralsUser, None),
        (Role::BusinessProfileAdmin, None),
    ],
}];

const PLATFORM: &[Person] = &[
    Person {
        email: "sam.seller@platform.example",
        given: "Sam",
        family: "Seller",
        roles: &[(Role::PlatformSeller, None)],
    },
    Person {
        email: "oli.operator@platform.example",
        given: "Oli",
        family: "Operator",
        roles: &[(Role::PlatformOperator, None)],
    },
];

/// Seeds the demo data. `platform_domain` is the platform organization's domain; the platform
/// people are seeded only when it is the demo's `platform.example`.
pub async fn demo(identity: &Identity, platform_domain: &str) -> Result<()> {
    let contoso = ensure_org(
        identity,
        "Contoso",
        "contoso.com",
        "4000001",
        &[("4000002", "US", "Seattle"), ("4000003", "DE", "Berlin")],
        &CONTOSO[0],
    )
    .await?;
    ensure_people(identity, contoso, CONTOSO).await?;
    let fabrikam = ensure_org(
        identity,
        "Fabrikam",
        "fabrikam.com",
        "5000001",
        &[],
        &FABRIKAM[0],
    )
    .await?;
    ensure_people(identity, fabrikam, FABRIKAM).await?;
    if platform_domain == "platform.example" {
        ensure_people(identity, identity.platform_org, PLATFORM).await?;
    }
    Ok(())
}

async fn ensure_org(
    identity: &Identity,
    name: &str,
    domain: &str,
    vorg: &str,
    locations: &[(&str, &str, &str)],
    admin: &Person,
) -> Result<Uuid> {
    if let Some(org) = identity.store.organization_of_domain(domain).await? {
        return Ok(org);
    }
    let (org, _) = identity
        .store
        .create_organization(
            NewOrganization {
                display_name: name.into(),
                tenant_id: Uuid::new_v5(&Uuid::NAMESPACE_DNS, domain.as_bytes()).to_string(),
                verified_domains: vec![domain.into()],
                vorg_mpn_id: vorg.into(),
                locations: locations
                    .iter()
                    .map(|(m, c, city)| MpnLocation {
                        mpn_id: (*m).into(),
                        country_code: (*c).into(),
                        city: (*city).into(),
                    })
                    .collect(),
                isv_connect_enrolled: false,
            },
            new_user(admin),
        )
        .await?;
    Ok(org.id)
}

fn new_user(p: &Person) -> NewUser {
    NewUser {
        email: p.email.into(),
        given_name: p.given.into(),
        family_name: p.family.into(),
        kind: UserKind::Member,
    }
}

async fn ensure_people(identity: &Identity, org: Uuid, people: &[Person]) -> Result<()> {
    for p in people {
        let filter = UserFilter {
            email: Some(p.email.into()),
            ..UserFilter::default()
        };
        let user = match identity
            .store
            .list_users(org, &filter, None, 1)
            .await?
            .into_iter()
            .next()
        {
            Some(u) => u,
            None => identity.store.create_user(org, &new_user(p)).await?,
        };
        for (role, scope) in p.roles {
            identity
                .store
                .assign_role(org, user.id, *role, *scope)
                .await?;
        }
    }
    Ok(())
}
