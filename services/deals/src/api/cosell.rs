//! `cosell.deals.v1.CoSellService`: the platform sellers' side: the queue of co-sell requests
//! (`ListInvitations`), the answers to them (`AcceptInvitation`: [`rules::seller_accept`],
//! `DeclineInvitation`: [`rules::seller_decline`], through [`Deals::mutate`]), and inbound
//! referrals for partners (`CreateInboundReferral`: [`create::inbound`], D5, once the partner is
//! cut over: [`create::ensure_cut_over`], 5.5).

use std::sync::Arc;

use cosell_platform::{ApiError, Violations, page};
use cosell_proto::deals::{self as pb, co_sell_service_server::CoSellService};
use tonic::{Request, Response, Status};

use super::convert::{self, referral_pb};
use super::referrals::create::{CustomerFrom, draft};
use super::referrals::request_id;
use super::{Actor, DOMAIN, Deals, rule_error};
use crate::domain::{Contact, DealType, Direction, Party, Referral, create, rules};
use crate::store::ReferralFilter;

pub struct CoSellApi(pub Arc<Deals>);

/// The calling seller's email, or `PERMISSION_DENIED`.
fn seller(actor: &Actor) -> Result<String, ApiError> {
    match actor {
        Actor::Platform(u) if u.is_seller() => Ok(u.email.clone()),
        _ => Err(ApiError::permission_denied(
            "MISSING_ROLE",
            "this needs ROLE_PLATFORM_SELLER",
        )),
    }
}

/// The seller's contact as given, with the caller's own email: first name, last name and phone
/// are required, so that the partner can reach the seller (D4).
fn seller_contact(
    v: &mut Violations,
    field: &str,
    c: Option<&pb::Contact>,
    email: &str,
) -> Contact {
    let mut contact = c.map(convert::contact).unwrap_or_default();
    contact.email = email.to_owned();
    for (part, value) in [
        ("first_name", &contact.first_name),
        ("last_name", &contact.last_name),
        ("phone", &contact.phone),
    ] {
        if value.is_empty() {
            v.add(
                format!("{field}.{part}"),
                "is required: the partner sees it",
            );
        }
    }
    for (part, problem) in contact.check() {
        v.add(format!("{field}.{part}"), problem);
    }
    contact
}

impl Deals {
    async fn list_invitations(
        &self,
        req: Request<pb::ListInvitationsRequest>,
    ) -> Result<pb::ListInvitationsResponse, ApiError> {
        let actor = self.actor(&req).await?;
        seller(&actor)?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let size = v.take("page_size", page::page_size(r.page_size));
        let status = match pb::Status::try_from(r.status) {
            Ok(pb::Status::Unspecified) | Ok(pb::Status::New) => "NEW",
            Ok(pb::Status::Active) => "ACTIVE",
            Ok(pb::Status::Closed) => "CLOSED",
            Err(_) => {
                v.add("status", "is not a Status");
                "NEW"
            }
        };
        let mut filter = ReferralFilter::new(Party::Platform);
        filter.direction = Some(Direction::Inbound);
        filter.status = Some(status);
        let query = format!("invitations|{status}");
        let after = v.take("page_token", page::decode(&r.page_token, &query));
        v.finish()?;
        let size = size.unwrap_or(page::DEFAULT_PAGE_SIZE).min(500);
        let after = match after.flatten() {
            None => None,
            Some(key) => Some(super::referrals::list::parse_key(&key)?),
        };
        let rows = self.store.list(&filter, after, size + 1).await?;
        let (rows, next_page_token) = page::cut(rows, size, &query, |r: &Referral| {
            format!("{}|{}", r.create_time.to_rfc3339(), r.id)
        });
        Ok(pb::ListInvitationsResponse {
            referrals: rows.iter().map(|r| referral_pb(r, false)).collect(),
            next_page_token,
        })
    }

    async fn answer_invitation(
        &self,
        actor: &Actor,
        name: &str,
        etag: &str,
        answer: impl Fn(&mut Referral, Option<&mut Referral>) -> Result<(), rules::RuleError>,
    ) -> Result<pb::Referral, ApiError> {
        let mut v = Violations::new();
        let id = v.take("name", convert::parse_referral_name(name));
        v.finish()?;
        let id = id.expect("checked");
        let updated = self
            .mutate(actor, id, etag, |next, peer| {
                if next.party != Party::Platform {
                    return Err(ApiError::failed_precondition(
                        "NOT_AN_OPEN_INVITATION",
                        "this is the partner's referral; answer the platform's referral of the engagement",
                    ));
                }
                answer(next, peer.as_mut()).map_err(|e| rule_error(e, ""))
            })
            .await?;
        Ok(referral_pb(&updated, false))
    }

    /// `CreateInboundReferral`: parse, authorize (a platform seller), answer a retry with the
    /// first result (D10), refuse a partner still on PSC (5.5), look up what the rule needs,
    /// apply [`create::inbound`], store.
    async fn create_inbound(
        &self,
        req: Request<pb::CreateInboundReferralRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let email = seller(&actor)?;
        let r = req.get_ref();
        let empty = pb::Referral::default();
        let input = r.referral.as_ref().unwrap_or(&empty);
        let mut v = Violations::new();
        let request_id = request_id(&mut v, &r.request_id);
        let organization = v.take(
            "referral.organization",
            cosell_platform::names::parse_one(&input.organization, "organizations"),
        );
        let contact = seller_contact(&mut v, "seller_contact", r.seller_contact.as_ref(), &email);
        let d = draft(
            &mut v,
            input,
            Some(DealType::CoSell),
            CustomerFrom::Directory,
        );
        v.finish()?;
        let (organization, d) = (organization.expect("checked"), d.expect("checked"));
        if let Some(earlier) = self.replay(&actor, request_id.as_deref()).await? {
            return Ok(referral_pb(&earlier, false));
        }
        if !self.upstream.is_partner_organization(organization).await? {
            return Err(ApiError::invalid_field(
                "referral.organization",
                format!("`{}` is not a partner organization", input.organization),
            ));
        }
        let routed = self
            .store
            .cutover(organization)
            .await?
            .is_some_and(|c| c.routed);
        create::ensure_cut_over(routed).map_err(|e| rule_error(e, ""))?;
        let customer = self.resolve_draft(organization, &d).await?;
        let catalog = self.catalog(&d.solutions).await?;
        let referrals =
            create::inbound(organization, d, customer, &catalog, contact, self.timing())
                .map_err(|e| rule_error(e, "referral."))?;
        let created = self
            .insert(&actor, referrals, request_id.as_deref())
            .await?;
        Ok(referral_pb(&created, false))
    }

    async fn accept_invitation(
        &self,
        req: Request<pb::AcceptInvitationRequest>,
    ) -> Result<pb::AcceptInvitationResponse, ApiError> {
        let actor = self.actor(&req).await?;
        let email = seller(&actor)?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let contact = seller_contact(&mut v, "seller_contact", r.seller_contact.as_ref(), &email);
        v.finish()?;
        let referral = self
            .answer_invitation(&actor, &r.name, &r.etag, |next, peer| {
                rules::seller_accept(next, peer, contact.clone(), self.now())
            })
            .await?;
        Ok(pb::AcceptInvitationResponse {
            referral: Some(referral),
        })
    }

    async fn decline_invitation(
        &self,
        req: Request<pb::DeclineInvitationRequest>,
    ) -> Result<pb::DeclineInvitationResponse, ApiError> {
        let actor = self.actor(&req).await?;
        seller(&actor)?;
        let r = req.get_ref();
        let referral = self
            .answer_invitation(&actor, &r.name, &r.etag, |next, peer| {
                rules::seller_decline(next, peer, &r.reason, self.now())
            })
            .await?;
        Ok(pb::DeclineInvitationResponse {
            referral: Some(referral),
        })
    }
}

#[tonic::async_trait]
impl CoSellService for CoSellApi {
    async fn list_invitations(
        &self,
        req: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        DOMAIN.respond(self.0.list_invitations(req).await)
    }

    async fn accept_invitation(
        &self,
        req: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
        DOMAIN.respond(self.0.accept_invitation(req).await)
    }

    async fn decline_invitation(
        &self,
        req: Request<pb::DeclineInvitationRequest>,
    ) -> Result<Response<pb::DeclineInvitationResponse>, Status> {
        DOMAIN.respond(self.0.decline_invitation(req).await)
    }

    async fn create_inbound_referral(
        &self,
        req: Request<pb::CreateInboundReferralRequest>,
    ) -> Result<Response<pb::CreateInboundReferralResponse>, Status> {
        DOMAIN.respond(
            self.0
                .create_inbound(req)
                .await
                .map(|r| pb::CreateInboundReferralResponse { referral: Some(r) }),
        )
    }
}
