//! `cosell.identity.v1.OrganizationService`.

use std::sync::Arc;

use cosell_platform::auth::Actor;
use cosell_platform::{ApiError, Violations, names, page};
use cosell_proto::identity::{self as pb, organization_service_server::OrganizationService};
use tonic::{Request, Response, Status};

use super::errors::DOMAIN;
use super::{Identity, Rule, convert, field};
use crate::domain::{
    IdentityError, MpnLocation, NewOrganization, NewUser, Role, UserKind, validate,
};

pub struct Api(pub Arc<Identity>);

/// Parses a location, adding violations under `prefix`.
pub(crate) fn parse_location(
    v: &mut Violations,
    prefix: &str,
    l: &pb::MpnLocation,
) -> Option<MpnLocation> {
    let mpn = v.take(&format!("{prefix}.mpn_id"), validate::mpn_id(&l.mpn_id));
    let country = v.take(
        &format!("{prefix}.country_code"),
        validate::country_code(&l.country_code),
    );
    let city = v.take(
        &format!("{prefix}.city"),
        validate::text(&l.city, 100, true),
    );
    Some(MpnLocation {
        mpn_id: mpn?,
        country_code: country?,
        city: city?,
    })
}

impl Identity {
    async fn create_organization(
        &self,
        req: Request<pb::CreateOrganizationRequest>,
    ) -> Result<pb::CreateOrganizationResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        if !i.is_platform_operator(&actor) {
            return Err(IdentityError::denied(
                "MISSING_ROLE",
                "only platform operators create organizations",
            )
            .into());
        }
        let r = req.into_inner();
        let mut v = Violations::new();
        let display_name = v.take("display_name", validate::text(&r.display_name, 200, true));
        let tenant_id = v.take("tenant_id", validate::text(&r.tenant_id, 100, false));
        let mut domains = Vec::new();
        if r.verified_domains.is_empty() {
            v.add(
                "verified_domains",
                "at least one verified domain is required",
            );
        }
        for (n, d) in r.verified_domains.iter().enumerate() {
            let f = format!("verified_domains[{n}]");
            match validate::domain(d) {
                Ok(d) if validate::is_consumer_domain(&d) => {
                    v.add(f, format!("`{d}` is a consumer email provider and cannot be a verified domain (rule I1)"))
                }
                Ok(d) if domains.contains(&d) => v.add(f, format!("`{d}` is listed twice")),
                Ok(d) => domains.push(d),
                Err(e) => v.add(f, e),
            }
        }
        let vorg = v.take("vorg_mpn_id", validate::mpn_id(&r.vorg_mpn_id));
        let mut locations = Vec::new();
        for (n, l) in r.locations.iter().enumerate() {
            if let Some(l) = parse_location(&mut v, &format!("locations[{n}]"), l) {
                if Some(&l.mpn_id) == vorg.as_ref()
                    || locations.iter().any(|x: &MpnLocation| x.mpn_id == l.mpn_id)
                {
                    v.add(
                        format!("locations[{n}].mpn_id"),
                        format!("MPN ID {} is listed twice", l.mpn_id),
                    );
                } else {
                    locations.push(l);
                }
            }
        }
        let admin = v.take(
            "account_admin_email",
            validate::work_email(&r.account_admin_email),
        );
        if let Some((email, domain)) = &admin
            && !domains.is_empty()
            && !domains.contains(domain)
        {
            v.add(
                    "account_admin_email",
                    format!("{email} is not in a verified domain of the organization; the first account admin must be a member"),
                );
        }
        let given = v.take(
            "account_admin_given_name",
            validate::text(&r.account_admin_given_name, 100, false),
        );
        let family = v.take(
            "account_admin_family_name",
            validate::text(&r.account_admin_family_name, 100, false),
        );
        v.finish().map_err(IdentityError::from)?;
        let (
            Some(display_name),
            Some(tenant_id),
            Some(vorg),
            Some((email, _)),
            Some(given),
            Some(family),
        ) = (display_name, tenant_id, vorg, admin, given, family)
        else {
            return Err(ApiError::internal("validation passed with a missing field"));
        };
        let (org, admin) = i
            .store
            .create_organization(
                NewOrganization {
                    display_name,
                    tenant_id,
                    verified_domains: domains,
                    vorg_mpn_id: vorg,
                    locations,
                    isv_connect_enrolled: r.isv_connect_enrolled,
                },
                NewUser {
                    email,
                    given_name: given,
                    family_name: family,
                    kind: UserKind::Member,
                },
            )
            .await?;
        tracing::info!(organization = %org.id, "organization created");
        Ok(pb::CreateOrganizationResponse {
            organization: Some(convert::organization(&org)),
            account_admin: Some(convert::user(&admin)),
        })
    }

    async fn get_organization(
        &self,
        req: Request<pb::GetOrganizationRequest>,
    ) -> Result<pb::GetOrganizationResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let org = field(
            "name",
            names::parse_one(&req.get_ref().name, "organizations"),
        )?;
        let resource = names::organization(org);
        let rule = Rule::READ;
        i.check(&actor, org, rule, &resource)?;
        let o = i
            .store
            .get_organization(org)
            .await?
            .ok_or(IdentityError::NotFound(resource))?;
        Ok(pb::GetOrganizationResponse {
            organization: Some(convert::organization(&o)),
        })
    }

    async fn list_organizations(
        &self,
        req: Request<pb::ListOrganizationsRequest>,
    ) -> Result<pb::ListOrganizationsResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let allowed = matches!(actor, Actor::Service(_))
            || i.is_platform_operator(&actor)
            || actor
                .user()
                .is_some_and(|u| u.organization == i.platform_org);
        if !allowed {
            return Err(IdentityError::denied(
                "MISSING_ROLE",
                "only platform users and services list organizations",
            )
            .into());
        }
        let r = req.into_inner();
        let mut v = Violations::new();
        let size = v.take("page_size", page::page_size(r.page_size));
        let after = v.take("page_token", page::decode(&r.page_token, "organizations"));
        v.finish().map_err(IdentityError::from)?;
        let (Some(size), Some(after)) = (size, after) else {
            return Err(ApiError::internal("validation passed with a missing field"));
        };
        let after = match after {
            Some(k) => Some(field(
                "page_token",
                uuid::Uuid::parse_str(&k).map_err(|_| "is not valid".to_string()),
            )?),
            None => None,
        };
        let orgs = i.store.list_organizations(after, size + 1).await?;
        let (orgs, next_page_token) =
            page::cut(orgs, size, "organizations", |last| last.id.to_string());
        Ok(pb::ListOrganizationsResponse {
            organizations: orgs.iter().map(convert::organization).collect(),
            next_page_token,
        })
    }

    async fn add_verified_domain(
        &self,
        req: Request<pb::AddVerifiedDomainRequest>,
    ) -> Result<pb::AddVerifiedDomainResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let org = v.take(
            "organization",
            names::parse_one(&r.organization, "organizations"),
        );
        let domain = v.take("domain", validate::domain(&r.domain));
        if let Some(d) = &domain
            && validate::is_consumer_domain(d)
        {
            v.add(
                "domain",
                format!(
                    "`{d}` is a consumer email provider and cannot be a verified domain (rule I1)"
                ),
            );
        }
        v.finish().map_err(IdentityError::from)?;
        let (Some(org), Some(domain)) = (org, domain) else {
            return Err(ApiError::internal("validation passed with a missing field"));
        };
        let resource = names::organization(org);
        let rule = Rule {
            roles: &[Role::GlobalAdmin],
            platform_operator: true,
            ..Rule::default()
        };
        i.check(&actor, org, rule, &resource)?;
        if i.store.get_organization(org).await?.is_none() {
            return Err(IdentityError::NotFound(resource).into());
        }
        i.store.add_verified_domain(org, &domain).await?;
        let o = i
            .store
            .get_organization(org)
            .await?
            .ok_or(IdentityError::NotFound(resource))?;
        Ok(pb::AddVerifiedDomainResponse {
            organization: Some(convert::organization(&o)),
        })
    }

    async fn add_mpn_location(
        &self,
        req: Request<pb::AddMpnLocationRequest>,
    ) -> Result<pb::AddMpnLocationResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let org = v.take(
            "organization",
            names::parse_one(&r.organization, "organizations"),
        );
        let location = match &r.location {
            Some(l) => parse_location(&mut v, "location", l),
            None => {
                v.add("location", "is required");
                None
            }
        };
        v.finish().map_err(IdentityError::from)?;
        let (Some(org), Some(location)) = (org, location) else {
            return Err(ApiError::internal("validation passed with a missing field"));
        };
        let resource = names::organization(org);
        let rule = Rule {
            roles: &[Role::AccountAdmin],
            platform_operator: true,
            ..Rule::default()
        };
        i.check(&actor, org, rule, &resource)?;
        match i.store.get_organization(org).await? {
            None => return Err(IdentityError::NotFound(resource).into()),
            Some(o) if o.platform => {
                return Err(IdentityError::precondition(
                    "PLATFORM_ORGANIZATION",
                    resource,
                    "the platform organization has no MPN locations",
                )
                .into());
            }
            Some(_) => {}
        }
        i.store.add_location(org, &location).await?;
        let o = i
            .store
            .get_organization(org)
            .await?
            .ok_or(IdentityError::NotFound(resource))?;
        Ok(pb::AddMpnLocationResponse {
            organization: Some(convert::organization(&o)),
        })
    }

    async fn lookup_mpn_id(
        &self,
        req: Request<pb::LookupMpnIdRequest>,
    ) -> Result<pb::LookupMpnIdResponse, ApiError> {
        let i = self;
        // Users are limited (an MPN ID is a guessable number); the services that check MPN IDs
        // of every deal they import are not.
        if let Some(user) = i.actor(&req).await?.user() {
            i.limits
                .mpn_lookup
                .check(&user.id.to_string())
                .map_err(crate::domain::IdentityError::from)?;
        }
        let mpn = field("mpn_id", validate::mpn_id(&req.get_ref().mpn_id))?;
        let Some((m, display_name)) = i.store.lookup_mpn(&mpn).await? else {
            return Ok(pb::LookupMpnIdResponse::default());
        };
        let is_vorg = m.kind == "VORG";
        Ok(pb::LookupMpnIdResponse {
            exists: true,
            organization: names::organization(m.organization_id),
            organization_display_name: display_name,
            kind: if is_vorg {
                pb::MpnIdKind::Vorg
            } else {
                pb::MpnIdKind::Location
            } as i32,
            location: (!is_vorg).then_some(pb::MpnLocation {
                mpn_id: m.mpn_id,
                country_code: m.country_code,
                city: m.city,
            }),
        })
    }
}

#[tonic::async_trait]
impl OrganizationService for Api {
    async fn create_organization(
        &self,
        req: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::CreateOrganizationResponse>, Status> {
        DOMAIN.respond(self.0.create_organization(req).await)
    }

    async fn get_organization(
        &self,
        req: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::GetOrganizationResponse>, Status> {
        DOMAIN.respond(self.0.get_organization(req).await)
    }

    async fn list_organizations(
        &self,
        req: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        DOMAIN.respond(self.0.list_organizations(req).await)
    }

    async fn add_verified_domain(
        &self,
        req: Request<pb::AddVerifiedDomainRequest>,
    ) -> Result<Response<pb::AddVerifiedDomainResponse>, Status> {
        DOMAIN.respond(self.0.add_verified_domain(req).await)
    }

    async fn add_mpn_location(
        &self,
        req: Request<pb::AddMpnLocationRequest>,
    ) -> Result<Response<pb::AddMpnLocationResponse>, Status> {
        DOMAIN.respond(self.0.add_mpn_location(req).await)
    }

    async fn lookup_mpn_id(
        &self,
        req: Request<pb::LookupMpnIdRequest>,
    ) -> Result<Response<pb::LookupMpnIdResponse>, Status> {
        DOMAIN.respond(self.0.lookup_mpn_id(req).await)
    }
}
