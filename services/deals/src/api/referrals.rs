//! `cosell.deals.v1.ReferralService`: partners' referrals (create, read, list, update, verbs),
//! favorites, engagements, and the import of migrated deals.

use std::sync::Arc;

use cosell_platform::{ApiError, Violations, page};
use cosell_proto::deals::{self as pb, referral_service_server::ReferralService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::convert::{self, SolutionLine, referral_pb};
use super::{Actor, Deals, REFERRAL_ROLES, ok, rule_error};
use crate::domain::rules::{self, platform_side};
use crate::domain::{
    Customer, DealType, Direction, Outcome, Party, Referral, ReferralSolution, Stage, Waiting, now,
};
use crate::store::{Inserted, Order, ReferralFilter};
use crate::upstream::MpnHolder;

/// At most this many migrated deals per import call.
pub const MAX_IMPORT_BATCH: usize = 500;
/// Largest list page.
const MAX_PAGE: u64 = 500;

pub struct ReferralApi(pub Arc<Deals>);

fn name_field(v: &mut Violations, field: &str, name: &str) -> Option<Uuid> {
    v.take(field, convert::parse_referral_name(name))
}

fn request_id(v: &mut Violations, text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    match Uuid::parse_str(text) {
        Ok(u) => Some(u.to_string()),
        Err(_) => {
            v.add("request_id", format!("`{text}` is not a UUID"));
            None
        }
    }
}

/// The fields of a new referral as requested, checked but not yet resolved against the
/// catalog, the directory and identity.
pub struct Draft {
    pub mpn_location: Option<String>,
    pub deal_type: DealType,
    pub display_name: String,
    pub entity: String,
    pub customer_size: pb::CustomerSize,
    pub contacts: Vec<crate::domain::Contact>,
    pub consent_to_share: bool,
    pub assistance: Option<crate::domain::Assistance>,
    pub solutions: Vec<SolutionLine>,
    pub team: Vec<crate::domain::Contact>,
    pub deal_value: Option<crate::domain::Money>,
    pub estimated_close_date: Option<chrono::NaiveDate>,
    pub notes: String,
    pub external_reference_id: String,
}

/// Checks a requested referral; `deal_type` is taken from the request unless `fixed`.
pub fn draft(v: &mut Violations, r: &pb::Referral, fixed: Option<DealType>) -> Option<Draft> {
    let p = "referral.";
    let deal_type = match fixed {
        Some(t) => Some(t),
        None => v.take("referral.deal_type", convert::deal_type(r.deal_type)),
    };
    let display_name = convert::display_name(v, "referral.display_name", &r.display_name);
    let customer = r.customer.clone().unwrap_or_default();
    if customer.entity.is_empty() {
        v.add(
            "referral.customer.entity",
            "is required: the directory entry (`entities/{id}`) of the customer; search the directory to find it",
        );
    }
    let customer_size = convert::size(v, "referral.customer.size", customer.size);
    let contacts = convert::contacts(v, "referral.customer.contacts", &customer.contacts);
    let assistance = convert::assistance(v, "referral.assistance", r.assistance.as_ref());
    let solutions = convert::solution_lines(v, "referral.solutions", &r.solutions);
    let team = convert::contacts(v, "referral.team", &r.team);
    let deal_value = convert::money(v, "referral.deal_value", r.deal_value.as_ref());
    let estimated_close_date =
        convert::close_date(v, "referral.estimated_close_date", &r.estimated_close_date);
    let notes = convert::notes(v, "referral.notes", &r.notes);
    let mpn_location = convert::mpn_location(v, "referral.mpn_location", &r.mpn_location);
    let external = r
        .tracking
        .as_ref()
        .map(|t| t.external_reference_id.trim().to_owned())
        .unwrap_or_default();
    if external.chars().count() > 200 {
        v.add(
            format!("{p}tracking.external_reference_id"),
            "is longer than 200 characters",
        );
    }
    Some(Draft {
        mpn_location,
        deal_type: deal_type?,
        display_name: display_name?,
        entity: customer.entity,
        customer_size,
        contacts,
        consent_to_share: r.consent_to_share,
        assistance,
        solutions,
        team,
        deal_value,
        estimated_close_date,
        notes: notes?,
        external_reference_id: external,
    })
}

impl Deals {
    /// The catalog entries of `lines`, each one checked: it exists, may be attached, and only a
    /// platform SKU carries a quantity or a unit price.
    pub async fn resolve_solutions(
        &self,
        field: &str,
        lines: &[SolutionLine],
    ) -> Result<Vec<ReferralSolution>, ApiError> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = lines.iter().map(|l| l.solution).collect();
        let found = self.store.get_solutions(&ids).await?;
        check_solutions(field, lines, &found)
    }

    /// The directory's entry for `entity` as the customer (rule D8).
    pub async fn resolve_customer(&self, field: &str, entity: &str) -> Result<Customer, ApiError> {
        self.upstream.customer(entity).await?.ok_or_else(|| {
            ApiError::invalid_field(
                field,
                format!("`{entity}` is not an entry of the directory"),
            )
        })
    }

    /// Checks that `mpn` is one of `organization`'s MPN locations.
    pub async fn check_location(
        &self,
        field: &str,
        organization: Uuid,
        mpn: &str,
    ) -> Result<(), ApiError> {
        match self.upstream.mpn(mpn).await? {
            MpnHolder::Location(org) if org == organization => Ok(()),
            _ => Err(ApiError::invalid_field(
                field,
                format!("`{mpn}` is not an MPN location of the organization"),
            )),
        }
    }

    /// A new partner referral from a resolved draft.
    pub fn new_referral(
        &self,
        organization: Uuid,
        direction: Direction,
        stage: Stage,
        d: Draft,
        mut customer: Customer,
        solutions: Vec<ReferralSolution>,
    ) -> Referral {
        let t = now();
        customer.size = d.customer_size;
        customer.contacts = d.contacts;
        Referral {
            id: Uuid::now_v7(),
            organization,
            mpn_location: d.mpn_location,
            party: Party::Partner,
            engagement: Uuid::now_v7(),
            direction,
            deal_type: d.deal_type,
            stage,
            status_reason: String::new(),
            display_name: d.display_name,
            customer,
            consent_to_share: d.consent_to_share,
            assistance: d.assistance,
            solutions,
            team: d.team,
            deal_value: d.deal_value,
            estimated_close_date: d.estimated_close_date,
            notes: d.notes,
            seller_contact: None,
            create_time: t,
            update_time: t,
            accept_time: None,
            close_time: None,
            expire_time: matches!(stage, Stage::New(_)).then(|| t + self.expiry),
            version: 1,
            external_reference_id: d.external_reference_id,
            psc_deal_id: None,
        }
    }

    /// Stores a new engagement's referrals under an optional idempotency key and returns the
    /// first referral (the one made before, on a retry).
    pub async fn create(
        &self,
        actor: &Actor,
        referrals: Vec<Referral>,
        request_id: Option<&str>,
    ) -> Result<Referral, ApiError> {
        let principal = actor.principal();
        let key = request_id.map(|r| (principal.as_str(), r));
        match self.store.insert(&referrals, key).await? {
            Inserted::Created => Ok(referrals.into_iter().next().expect("one referral")),
            Inserted::Replayed(id) => self.store.get(id).await?.ok_or_else(|| {
                ApiError::internal(format!("idempotency key points at missing referral {id}"))
            }),
        }
    }

    /// A referral created before under the caller's `request_id`, if any (rule D10).
    pub async fn replay(
        &self,
        actor: &Actor,
        request_id: Option<&str>,
    ) -> Result<Option<Referral>, ApiError> {
        let Some(request_id) = request_id else {
            return Ok(None);
        };
        let Some(id) = self.store.replayed(&actor.principal(), request_id).await? else {
            return Ok(None);
        };
        Ok(self.store.get(id).await?)
    }

    async fn respond(&self, actor: &Actor, r: &Referral) -> Result<pb::Referral, ApiError> {
        let favorite = self
            .store
            .favorites_among(&actor.principal(), &[r.id])
            .await?
            .contains(&r.id);
        Ok(referral_pb(r, favorite))
    }

    async fn create_referral(
        &self,
        req: Request<pb::CreateReferralRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let Actor::Partner {
            organization,
            grants,
            ..
        } = &actor
        else {
            return Err(ApiError::permission_denied(
                "PARTNER_ONLY",
                "referrals are created by partners' referrals admins and users (platform sellers use CoSellService.CreateInboundReferral)",
            ));
        };
        let r = req.get_ref();
        let mut v = Violations::new();
        let request_id = request_id(&mut v, &r.request_id);
        let d = draft(&mut v, &r.referral.clone().unwrap_or_default(), None);
        v.finish()?;
        let d = d.ok_or_else(|| ApiError::invalid_field("referral", "is required"))?;
        if !grants.allows(*organization, REFERRAL_ROLES, d.mpn_location.as_deref()) {
            return Err(match grants.locations_for(REFERRAL_ROLES) {
                Some(l) if !l.is_empty() => ApiError::permission_denied(
                    "LOCATION_SCOPE",
                    format!(
                        "your referral role covers only the MPN location(s) {}: set referral.mpn_location to one of them",
                        l.join(", ")
                    ),
                ),
                _ => ApiError::permission_denied(
                    "MISSING_ROLE",
                    "creating referrals needs ROLE_REFERRALS_ADMIN or ROLE_REFERRALS_USER",
                ),
            });
        }
        if let Some(earlier) = self.replay(&actor, request_id.as_deref()).await? {
            return self.respond(&actor, &earlier).await;
        }
        let ids: Vec<Uuid> = d.solutions.iter().map(|l| l.solution).collect();
        let (found, ready) = self.store.solutions_for(*organization, &ids).await?;
        if !ready {
            return Err(ApiError::failed_precondition(
                "NO_COSELL_READY_SOLUTION",
                "the organization has no co-sell-ready solution yet; publish one in the catalog and have it marked co-sell ready",
            ));
        }
        if let Some(m) = &d.mpn_location {
            self.check_location("referral.mpn_location", *organization, m)
                .await?;
        }
        let customer = self
            .resolve_customer("referral.customer.entity", &d.entity)
            .await?;
        let solutions = check_solutions("referral.solutions", &d.solutions, &found)?;
        let stage = if d.deal_type == DealType::CoSell {
            Stage::New(Waiting::Pending)
        } else {
            Stage::Active
        };
        let partner = self.new_referral(
            *organization,
            Direction::Outbound,
            stage,
            d,
            customer,
            solutions,
        );
        type_check(&partner)?;
        let mut referrals = vec![partner.clone()];
        if partner.deal_type == DealType::CoSell {
            referrals.push(self.platform_side(&partner));
        }
        let created = self
            .create(&actor, referrals, request_id.as_deref())
            .await?;
        if created.id == partner.id {
            // New: nobody can have marked it a favorite yet.
            return Ok(referral_pb(&created, false));
        }
        self.respond(&actor, &created).await
    }

    /// The platform's referral for the partner's co-sell request, expiring like any invitation.
    pub fn platform_side(&self, partner: &Referral) -> Referral {
        let t = now();
        let mut p = platform_side(partner, Uuid::now_v7(), t);
        p.expire_time = Some(t + self.expiry);
        p
    }

    async fn list_referrals(
        &self,
        req: Request<pb::ListReferralsRequest>,
    ) -> Result<pb::ListReferralsResponse, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let size = v.take("page_size", page::page_size(r.page_size));
        let direction = match pb::Direction::try_from(r.direction) {
            Ok(pb::Direction::Inbound) => Some(Direction::Inbound),
            Ok(pb::Direction::Outbound) => Some(Direction::Outbound),
            Ok(pb::Direction::Unspecified) => None,
            Err(_) => {
                v.add("direction", "is not a Direction");
                None
            }
        };
        let status = match pb::Status::try_from(r.status) {
            Ok(pb::Status::Unspecified) => None,
            Ok(s) => Some(stage_name(s.as_str_name(), "STATUS_")),
            Err(_) => {
                v.add("status", "is not a Status");
                None
            }
        };
        let substatus = match pb::Substatus::try_from(r.substatus) {
            Ok(pb::Substatus::Unspecified) => None,
            Ok(s) => Some(stage_name(s.as_str_name(), "SUBSTATUS_")),
            Err(_) => {
                v.add("substatus", "is not a Substatus");
                None
            }
        };
        let deal_type = if r.deal_type == 0 {
            None
        } else {
            v.take("deal_type", convert::deal_type(r.deal_type))
        };
        let order = match pb::ReferralOrder::try_from(r.order_by) {
            Ok(pb::ReferralOrder::UpdateTime) => Order::Updated,
            Ok(pb::ReferralOrder::Unspecified) => Order::Created,
            Err(_) => {
                v.add("order_by", "is not a ReferralOrder");
                Order::Created
            }
        };
        let engagement = if r.engagement.is_empty() {
            None
        } else {
            v.take(
                "engagement",
                cosell_platform::names::parse_one(&r.engagement, "engagements"),
            )
        };
        let mpn_location = convert::mpn_location(&mut v, "mpn_location", &r.mpn_location);
        let team_email = r.team_member_email.trim().to_lowercase();
        let customer_name = r.customer_name.trim().to_owned();
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let mut filter = ReferralFilter {
            party: Party::Partner,
            organization: None,
            direction,
            status,
            substatus,
            deal_type,
            customer_name: non_empty(&customer_name),
            team_email: non_empty(&team_email),
            engagement,
            favorites_of: r.favorites_only.then(|| actor.principal()),
            psc_deal_id: non_empty(r.psc_deal_id.trim()),
            mpn_location,
            locations: None,
            shared_only: false,
            order,
        };
        match &actor {
            Actor::Partner {
                organization,
                grants,
                ..
            } => {
                if !r.organization.is_empty()
                    && r.organization != cosell_platform::names::organization(*organization)
                {
                    v.add(
                        "organization",
                        "partners list their own organization's referrals; leave it empty",
                    );
                }
                filter.organization = Some(*organization);
                filter.locations = grants.locations_for(REFERRAL_ROLES);
                if filter.locations.as_ref().is_some_and(Vec::is_empty) {
                    v.finish()?;
                    return Err(ApiError::permission_denied(
                        "MISSING_ROLE",
                        "referrals need ROLE_REFERRALS_ADMIN or ROLE_REFERRALS_USER",
                    ));
                }
            }
            Actor::Platform { .. } => {
                filter.party = Party::Platform;
                if !r.organization.is_empty() {
                    filter.organization = v.take(
                        "organization",
                        cosell_platform::names::parse_one(&r.organization, "organizations"),
                    );
                }
            }
            Actor::Service(_) => {
                return Err(ApiError::permission_denied(
                    "USERS_ONLY",
                    "this method is for users",
                ));
            }
        }
        let query = format!("{filter:?}|{}", actor.principal());
        let after = v.take("page_token", page::decode(&r.page_token, &query));
        v.finish()?;
        let size = size.unwrap_or(page::DEFAULT_PAGE_SIZE).min(MAX_PAGE);
        let after = match after.flatten() {
            None => None,
            Some(key) => Some(parse_key(&key)?),
        };
        let rows = self
            .store
            .list_for(&filter, after, size + 1, &actor.principal())
            .await?;
        let (rows, next_page_token) = page::cut(rows, size, &query, |(r, _): &(Referral, bool)| {
            let t = match order {
                Order::Created => r.create_time,
                Order::Updated => r.update_time,
            };
            format!("{}|{}", t.to_rfc3339(), r.id)
        });
        Ok(pb::ListReferralsResponse {
            referrals: rows
                .iter()
                .map(|(r, favorite)| referral_pb(r, *favorite))
                .collect(),
            next_page_token,
        })
    }

    async fn update_referral(
        &self,
        req: Request<pb::UpdateReferralRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        let input = r.referral.clone().unwrap_or_default();
        let mut v = Violations::new();
        let id = name_field(&mut v, "referral.name", &input.name);
        let paths = r
            .update_mask
            .as_ref()
            .map(|m| m.paths.clone())
            .unwrap_or_default();
        if paths.is_empty() {
            v.add(
                "update_mask",
                "is required: name the fields to change (e.g. `notes`, `team`, `deal_value`)",
            );
        }
        let mut change = Change::default();
        for path in &paths {
            change.parse(&mut v, path, &input);
        }
        v.finish()?;
        let id = id.expect("checked");
        // Resolve what needs other services before the write, once.
        let customer = match &change.entity {
            Some(entity) => Some(
                self.resolve_customer("referral.customer.entity", entity)
                    .await?,
            ),
            None => None,
        };
        let solutions = match &change.solutions {
            Some(lines) => Some(self.resolve_solutions("referral.solutions", lines).await?),
            None => None,
        };
        let updated = self
            .mutate(&actor, id, &input.etag, |next, _peer| {
                self.writable(&actor, next)?;
                rules::ensure_open(next).map_err(|e| rule_error(e, "referral."))?;
                change.apply(next, customer.clone(), solutions.clone());
                type_check(next)
            })
            .await?;
        self.respond(&actor, &updated).await
    }

    /// Runs a partner verb through [`Deals::mutate`].
    async fn verb<F>(
        &self,
        actor: &Actor,
        name: &str,
        etag: &str,
        f: F,
    ) -> Result<pb::Referral, ApiError>
    where
        F: Fn(&mut Referral, &mut Option<Referral>) -> Result<(), rules::RuleError>,
    {
        let mut v = Violations::new();
        let id = name_field(&mut v, "name", name);
        v.finish()?;
        let id = id.expect("checked");
        let updated = self
            .mutate(actor, id, etag, |next, peer| {
                self.writable(actor, next)?;
                f(next, peer).map_err(|e| rule_error(e, ""))
            })
            .await?;
        self.respond(actor, &updated).await
    }

    async fn import(
        &self,
        req: Request<pb::ImportReferralsRequest>,
    ) -> Result<pb::ImportReferralsResponse, ApiError> {
        let actor = self.actor(&req).await?;
        if !matches!(&actor, Actor::Service(s) if s == "migration") {
            return Err(ApiError::permission_denied(
                "MIGRATION_ONLY",
                "only the migration service imports referrals",
            ));
        }
        let r = req.get_ref();
        let mut v = Violations::new();
        let org = v.take(
            "organization",
            cosell_platform::names::parse_one(&r.organization, "organizations"),
        );
        if r.referrals.len() > MAX_IMPORT_BATCH {
            v.add(
                "referrals",
                format!(
                    "has {} deals; send at most {MAX_IMPORT_BATCH} per call",
                    r.referrals.len()
                ),
            );
        }
        v.finish()?;
        let org = org.expect("checked");
        // The catalog entries the batch names, in one query.
        let mut wanted: Vec<Uuid> = r
            .referrals
            .iter()
            .flat_map(|i| i.referral.iter().flat_map(|r| &r.solutions))
            .filter_map(|s| convert::parse_solution_name(&s.solution).ok())
            .collect();
        wanted.sort();
        wanted.dedup();
        let mut seen = Seen {
            solutions: self.store.get_solutions(&wanted).await?,
            ..Default::default()
        };
        let mut outcomes = Vec::with_capacity(r.referrals.len());
        for item in &r.referrals {
            let outcome = match self.import_one(org, item, &mut seen).await {
                Ok(rows) => Imported::New(rows),
                // A deal refused now may have been imported before, when it was fine.
                Err(e) if e.code == tonic::Code::InvalidArgument => {
                    match self.store.find_by_psc(org, item.psc_deal_id.trim()).await? {
                        Some(id) => Imported::Existing(Box::new(self.existing(id).await?)),
                        None => Imported::Refused(describe(&e)),
                    }
                }
                // Anything else (a database or upstream failure) fails the call, so that the
                // caller retries the batch rather than records a deal as refused.
                Err(e) => return Err(e),
            };
            outcomes.push(outcome);
        }
        // The new deals in one transaction. Should one of them be there already (a retried
        // batch, or another import of the same deals winning the race for the PSC deal id
        // index), nothing is written, and each is written on its own, a deal that is there
        // answering with the referral it became.
        let new: Vec<&[Referral]> = outcomes
            .iter()
            .filter_map(|o| match o {
                Imported::New(rows) => Some(rows.as_slice()),
                _ => None,
            })
            .collect();
        let raced = match self.store.insert_migrated_batch(&new).await {
            Ok(()) => false,
            Err(e) if crate::store::lost_a_race(&e) => true,
            Err(e) => return Err(e.into()),
        };
        let mut results = Vec::with_capacity(outcomes.len());
        for (item, outcome) in r.referrals.iter().zip(outcomes) {
            let (referral, created, error) = match outcome {
                Imported::Refused(error) => (None, false, error),
                Imported::Existing(referral) => (Some(*referral), false, String::new()),
                Imported::New(rows) if !raced => (rows.into_iter().next(), true, String::new()),
                Imported::New(rows) => match self.store.insert_migrated(&rows).await? {
                    None => (rows.into_iter().next(), true, String::new()),
                    Some(first) => (Some(self.existing(first).await?), false, String::new()),
                },
            };
            results.push(pb::ImportResult {
                psc_deal_id: item.psc_deal_id.clone(),
                referral: referral.as_ref().map(|r| referral_pb(r, false)),
                created,
                error,
            });
        }
        Ok(pb::ImportReferralsResponse { results })
    }

    /// A referral an earlier import made.
    async fn existing(&self, id: Uuid) -> Result<Referral, ApiError> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| ApiError::internal("vanished"))
    }

    /// Checks one deal and makes its referrals (written by the caller): the partner's, then
    /// the platform's, if any.
    async fn import_one(
        &self,
        org: Uuid,
        item: &pb::ImportedReferral,
        seen: &mut Seen,
    ) -> Result<Vec<Referral>, ApiError> {
        let psc = item.psc_deal_id.trim();
        if psc.is_empty() || psc.chars().count() > 100 {
            return Err(ApiError::invalid_field(
                "psc_deal_id",
                "is required (at most 100 characters)",
            ));
        }
        let input = item.referral.clone().unwrap_or_default();
        let mut v = Violations::new();
        let deal_type = v.take("referral.deal_type", convert::deal_type(input.deal_type));
        let direction = match pb::Direction::try_from(input.direction) {
            Ok(pb::Direction::Inbound) => Some(Direction::Inbound),
            Ok(pb::Direction::Outbound) => Some(Direction::Outbound),
            _ => {
                v.add("referral.direction", "is required: INBOUND or OUTBOUND");
                None
            }
        };
        let stage = match (
            pb::Status::try_from(input.status),
            pb::Substatus::try_from(input.substatus),
        ) {
            (Ok(pb::Status::New), Ok(pb::Substatus::Received)) => {
                Some(Stage::New(Waiting::Received))
            }
            (Ok(pb::Status::New), Ok(pb::Substatus::Pending)) => Some(Stage::New(Waiting::Pending)),
            (Ok(pb::Status::Active), _) => Some(Stage::Active),
            _ => {
                v.add(
                    "referral.status",
                    "only open deals migrate: NEW/RECEIVED, NEW/PENDING or ACTIVE",
                );
                None
            }
        };
        let display_name =
            convert::display_name(&mut v, "referral.display_name", &input.display_name);
        let customer_in = input.customer.clone().unwrap_or_default();
        let size = convert::size(&mut v, "referral.customer.size", customer_in.size);
        let contacts =
            convert::contacts(&mut v, "referral.customer.contacts", &customer_in.contacts);
        let assistance =
            convert::assistance(&mut v, "referral.assistance", input.assistance.as_ref());
        let lines = convert::solution_lines(&mut v, "referral.solutions", &input.solutions);
        let team = convert::contacts(&mut v, "referral.team", &input.team);
        let deal_value = convert::money(&mut v, "referral.deal_value", input.deal_value.as_ref());
        let close_date = convert::close_date(
            &mut v,
            "referral.estimated_close_date",
            &input.estimated_close_date,
        );
        let notes = convert::notes(&mut v, "referral.notes", &input.notes);
        let mpn_location =
            convert::mpn_location(&mut v, "referral.mpn_location", &input.mpn_location);
        let seller = input.seller_contact.as_ref().map(convert::contact);
        if let Some(s) = &seller {
            for (part, problem) in s.check() {
                v.add(format!("referral.seller_contact.{part}"), problem);
            }
        }
        v.finish()?;
        let (deal_type, direction, stage) = (
            deal_type.expect("checked"),
            direction.expect("checked"),
            stage.expect("checked"),
        );
        let consistent = match (direction, stage) {
            (Direction::Inbound, Stage::New(Waiting::Pending)) => false,
            (Direction::Outbound, Stage::New(Waiting::Received)) => false,
            (Direction::Outbound, Stage::New(Waiting::Pending)) => deal_type == DealType::CoSell,
            _ => true,
        };
        if !consistent {
            return Err(ApiError::invalid_field(
                "referral.status",
                "NEW/RECEIVED is for Inbound deals; NEW/PENDING for Outbound CO_SELL requests",
            ));
        }
        if let Some(m) = &mpn_location
            && !seen.locations.contains(m)
        {
            self.check_location("referral.mpn_location", org, m).await?;
            seen.locations.insert(m.clone());
        }
        let mut customer = if customer_in.entity.is_empty() {
            // Unmatched: the PSC text, until a user picks the directory entry (D8).
            let a = customer_in.address.clone().unwrap_or_default();
            Customer {
                entity: None,
                legal_name: customer_in.legal_name.trim().to_owned(),
                address: crate::domain::Address {
                    lines: a.lines,
                    city: a.city,
                    region: a.region,
                    postal_code: a.postal_code,
                    country_code: a.country_code,
                },
                ..Default::default()
            }
        } else if let Some(c) = seen.customers.get(&customer_in.entity) {
            c.clone()
        } else {
            let c = self
                .resolve_customer("referral.customer.entity", &customer_in.entity)
                .await?;
            seen.customers.insert(customer_in.entity.clone(), c.clone());
            c
        };
        customer.size = size;
        customer.contacts = contacts;
        let solutions = check_solutions("referral.solutions", &lines, &seen.solutions)?;
        let t = now();
        let created = input
            .create_time
            .as_ref()
            .and_then(convert::from_timestamp)
            .unwrap_or(t);
        let partner = Referral {
            id: Uuid::now_v7(),
            organization: org,
            mpn_location,
            party: Party::Partner,
            engagement: Uuid::now_v7(),
            direction,
            deal_type,
            stage,
            status_reason: String::new(),
            display_name: display_name.expect("checked"),
            customer,
            consent_to_share: deal_type.shared(),
            assistance: if deal_type == DealType::CoSell {
                assistance
            } else {
                None
            },
            solutions,
            team,
            deal_value,
            estimated_close_date: close_date,
            notes: notes.expect("checked"),
            seller_contact: seller.clone().filter(|_| stage == Stage::Active),
            create_time: created,
            update_time: t,
            accept_time: (stage == Stage::Active).then_some(t),
            close_time: None,
            expire_time: matches!(stage, Stage::New(_)).then(|| t + self.expiry),
            version: 1,
            external_reference_id: input
                .tracking
                .as_ref()
                .map(|x| x.external_reference_id.clone())
                .unwrap_or_default(),
            psc_deal_id: Some(psc.to_owned()),
        };
        if deal_type != DealType::CoSell {
            return Ok(vec![partner]);
        }
        let mut platform = self.platform_side(&partner);
        if direction == Direction::Inbound {
            platform.direction = Direction::Outbound;
            platform.stage = Stage::Active;
            platform.seller_contact = seller;
        } else if partner.seller_contact.is_some() {
            platform.stage = Stage::Active;
            platform.seller_contact = partner.seller_contact.clone();
        }
        if platform.stage == Stage::Active {
            platform.expire_time = None;
            platform.accept_time = Some(t);
        }
        Ok(vec![partner, platform])
    }
}

/// What became of one deal of an import call.
enum Imported {
    /// Not importable: why (the caller's input, reported per deal).
    Refused(String),
    /// Imported by an earlier call.
    Existing(Box<Referral>),
    /// To be written: the partner's referral first, then the platform's, if any.
    New(Vec<Referral>),
}

/// What one import call found to hold, so that a batch of deals of the same customers and
/// locations asks identity and the directory once per distinct value.
#[derive(Default)]
struct Seen {
    /// The catalog entries the batch names.
    solutions: Vec<crate::domain::Solution>,
    /// MPN locations of the organization.
    locations: std::collections::HashSet<String>,
    /// Directory entries, by name.
    customers: std::collections::HashMap<String, Customer>,
}

/// Checks each solution line against the catalog entries `found`: it exists, may be attached,
/// and only a platform SKU carries a quantity or a unit price.
fn check_solutions(
    field: &str,
    lines: &[SolutionLine],
    found: &[crate::domain::Solution],
) -> Result<Vec<ReferralSolution>, ApiError> {
    let mut v = Violations::new();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let Some(s) = found.iter().find(|s| s.id == line.solution) else {
            v.add(
                format!("{field}[{i}].solution"),
                format!("solutions/{} does not exist", line.solution),
            );
            continue;
        };
        if !s.attachable() {
            v.add(
                format!("{field}[{i}].solution"),
                format!("`{}` is not co-sell ready", s.display_name),
            );
        }
        let sku = s.kind == pb::SolutionKind::PlatformSku;
        if !sku && (line.quantity != 0 || line.unit_price_cents.is_some()) {
            v.add(
                format!("{field}[{i}]"),
                "only platform SKUs carry a quantity and a unit price",
            );
        }
        out.push(ReferralSolution {
            solution: s.id,
            display_name: s.display_name.clone(),
            kind: s.kind,
            quantity: line.quantity,
            unit_price_cents: line.unit_price_cents,
        });
    }
    v.finish()?;
    Ok(out)
}

/// `STATUS_NEW` -> `NEW`.
fn stage_name(name: &'static str, prefix: &str) -> &'static str {
    name.strip_prefix(prefix).unwrap_or(name)
}

/// A page token's key: the sort time and id of the previous page's last referral.
pub(super) fn parse_key(key: &str) -> Result<(chrono::DateTime<chrono::Utc>, String), ApiError> {
    let bad = || ApiError::invalid_field("page_token", "is not a page token of this list");
    let (t, id) = key.split_once('|').ok_or_else(bad)?;
    let t = chrono::DateTime::parse_from_rfc3339(t).map_err(|_| bad())?;
    Ok((t.with_timezone(&chrono::Utc), id.to_owned()))
}

/// An import refusal as one line: `field: reason; field: reason`.
fn describe(e: &ApiError) -> String {
    if e.details.field_violations.is_empty() {
        return e.message.clone();
    }
    e.details
        .field_violations
        .iter()
        .map(|f| format!("{}: {}", f.field, f.description))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The deal type's consistency rules as `INVALID_ARGUMENT`.
fn type_check(r: &Referral) -> Result<(), ApiError> {
    let mut v = Violations::new();
    for (field, problem) in convert::type_violations(r) {
        v.add(format!("referral.{field}"), problem);
    }
    v.finish()
}

/// The parsed fields of an update, by mask path.
#[derive(Default)]
struct Change {
    display_name: Option<String>,
    entity: Option<String>,
    size: Option<pb::CustomerSize>,
    contacts: Option<Vec<crate::domain::Contact>>,
    consent: Option<bool>,
    assistance: Option<Option<crate::domain::Assistance>>,
    solutions: Option<Vec<SolutionLine>>,
    team: Option<Vec<crate::domain::Contact>>,
    deal_value: Option<Option<crate::domain::Money>>,
    close_date: Option<Option<chrono::NaiveDate>>,
    notes: Option<String>,
    external_reference_id: Option<String>,
}

impl Change {
    fn parse(&mut self, v: &mut Violations, path: &str, r: &pb::Referral) {
        let customer = r.customer.clone().unwrap_or_default();
        match path {
            "display_name" => {
                self.display_name = convert::display_name(v, "referral.display_name", &r.display_name)
            }
            "customer" | "customer.entity" | "customer.size" | "customer.contacts" => {
                if matches!(path, "customer" | "customer.entity") {
                    if customer.entity.is_empty() {
                        v.add("referral.customer.entity", "is required: the directory entry (`entities/{id}`)");
                    }
                    self.entity = Some(customer.entity.clone());
                }
                if matches!(path, "customer" | "customer.size") {
                    self.size = Some(convert::size(v, "referral.customer.size", customer.size));
                }
                if matches!(path, "customer" | "customer.contacts") {
                    self.contacts = Some(convert::contacts(
                        v,
                        "referral.customer.contacts",
                        &customer.contacts,
                    ));
                }
            }
            "consent_to_share" => self.consent = Some(r.consent_to_share),
            "assistance" => {
                self.assistance = Some(convert::assistance(
                    v,
                    "referral.assistance",
                    r.assistance.as_ref(),
                ))
            }
            "solutions" => {
                self.solutions = Some(convert::solution_lines(v, "referral.solutions", &r.solutions))
            }
            "team" => self.team = Some(convert::contacts(v, "referral.team", &r.team)),
            "deal_value" => {
                self.deal_value = Some(convert::money(v, "referral.deal_value", r.deal_value.as_ref()))
            }
            "estimated_close_date" => {
                self.close_date = Some(convert::close_date(
                    v,
                    "referral.estimated_close_date",
                    &r.estimated_close_date,
                ))
            }
            "notes" => self.notes = convert::notes(v, "referral.notes", &r.notes),
            "tracking" | "tracking.external_reference_id" => {
                let text = r
                    .tracking
                    .as_ref()
                    .map(|t| t.external_reference_id.trim().to_owned())
                    .unwrap_or_default();
                if text.chars().count() > 200 {
                    v.add("referral.tracking.external_reference_id", "is longer than 200 characters");
                }
                self.external_reference_id = Some(text);
            }
            other => v.add(
                "update_mask",
                format!(
                    "`{other}` cannot be updated; updatable: display_name, customer, customer.entity, customer.size, customer.contacts, consent_to_share, assistance, solutions, team, deal_value, estimated_close_date, notes, tracking.external_reference_id (status changes have their own methods)"
                ),
            ),
        }
    }

    fn apply(
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

#[tonic::async_trait]
impl ReferralService for ReferralApi {
    async fn create_referral(
        &self,
        req: Request<pb::CreateReferralRequest>,
    ) -> Result<Response<pb::CreateReferralResponse>, Status> {
        ok(self
            .0
            .create_referral(req)
            .await
            .map(|r| pb::CreateReferralResponse { referral: Some(r) }))
    }

    async fn get_referral(
        &self,
        req: Request<pb::GetReferralRequest>,
    ) -> Result<Response<pb::GetReferralResponse>, Status> {
        let d = &self.0;
        ok(async {
            let actor = d.actor(&req).await?;
            let mut v = Violations::new();
            let id = name_field(&mut v, "name", &req.get_ref().name);
            v.finish()?;
            let id = id.expect("checked");
            let (r, favorite) = d
                .store
                .get_for(id, &actor.principal())
                .await?
                .ok_or_else(|| super::not_found(id))?;
            d.readable(&actor, &r)?;
            Ok(pb::GetReferralResponse {
                referral: Some(referral_pb(&r, favorite)),
            })
        }
        .await)
    }

    async fn list_referrals(
        &self,
        req: Request<pb::ListReferralsRequest>,
    ) -> Result<Response<pb::ListReferralsResponse>, Status> {
        ok(self.0.list_referrals(req).await)
    }

    async fn update_referral(
        &self,
        req: Request<pb::UpdateReferralRequest>,
    ) -> Result<Response<pb::UpdateReferralResponse>, Status> {
        ok(self
            .0
            .update_referral(req)
            .await
            .map(|r| pb::UpdateReferralResponse { referral: Some(r) }))
    }

    async fn accept_referral(
        &self,
        req: Request<pb::AcceptReferralRequest>,
    ) -> Result<Response<pb::AcceptReferralResponse>, Status> {
        let d = &self.0;
        ok(async {
            let actor = d.actor(&req).await?;
            let r = req.get_ref();
            let referral = d
                .verb(&actor, &r.name, &r.etag, |next, _| {
                    rules::accept(next, now())
                })
                .await?;
            Ok(pb::AcceptReferralResponse {
                referral: Some(referral),
            })
        }
        .await)
    }

    async fn decline_referral(
        &self,
        req: Request<pb::DeclineReferralRequest>,
    ) -> Result<Response<pb::DeclineReferralResponse>, Status> {
        let d = &self.0;
        ok(async {
            let actor = d.actor(&req).await?;
            let r = req.get_ref();
            let referral = d
                .verb(&actor, &r.name, &r.etag, |next, peer| {
                    rules::decline(next, peer.as_mut(), &r.reason, now())
                })
                .await?;
            Ok(pb::DeclineReferralResponse {
                referral: Some(referral),
            })
        }
        .await)
    }

    async fn mark_referral_won(
        &self,
        req: Request<pb::MarkReferralWonRequest>,
    ) -> Result<Response<pb::MarkReferralWonResponse>, Status> {
        let d = &self.0;
        ok(async {
            let actor = d.actor(&req).await?;
            let r = req.get_ref();
            let referral = d
                .verb(&actor, &r.name, &r.etag, |next, peer| {
                    rules::finish(next, peer.as_mut(), Outcome::Won, "", now())
                })
                .await?;
            Ok(pb::MarkReferralWonResponse {
                referral: Some(referral),
            })
        }
        .await)
    }

    async fn mark_referral_lost(
        &self,
        req: Request<pb::MarkReferralLostRequest>,
    ) -> Result<Response<pb::MarkReferralLostResponse>, Status> {
        let d = &self.0;
        ok(async {
            let actor = d.actor(&req).await?;
            let r = req.get_ref();
            let referral = d
                .verb(&actor, &r.name, &r.etag, |next, peer| {
                    rules::finish(next, peer.as_mut(), Outcome::Lost, &r.reason, now())
                })
                .await?;
            Ok(pb::MarkReferralLostResponse {
                referral: Some(referral),
            })
        }
        .await)
    }

    async fn upgrade_deal_type(
        &self,
        req: Request<pb::UpgradeDealTypeRequest>,
    ) -> Result<Response<pb::UpgradeDealTypeResponse>, Status> {
        let d = &self.0;
        ok(async {
            let actor = d.actor(&req).await?;
            let r = req.get_ref();
            let mut v = Violations::new();
            let to = v.take("deal_type", convert::deal_type(r.deal_type));
            let assistance = convert::assistance(&mut v, "assistance", r.assistance.as_ref());
            v.finish()?;
            let to = to.expect("checked");
            let referral = d
                .verb(&actor, &r.name, &r.etag, |next, peer| {
                    rules::upgrade(next, to, assistance.clone())?;
                    // A co-sell request goes to the sellers' queue; a platform side that was
                    // declined before is replaced by a new one.
                    if to == DealType::CoSell && peer.as_ref().is_none_or(|p| p.stage.is_closed()) {
                        *peer = Some(d.platform_side(next));
                    }
                    Ok(())
                })
                .await?;
            Ok(pb::UpgradeDealTypeResponse {
                referral: Some(referral),
            })
        }
        .await)
    }

    async fn set_favorite(
        &self,
        req: Request<pb::SetFavoriteRequest>,
    ) -> Result<Response<pb::SetFavoriteResponse>, Status> {
        let d = &self.0;
        ok(async {
            let actor = d.actor(&req).await?;
            let r = req.get_ref();
            let mut v = Violations::new();
            let id = name_field(&mut v, "name", &r.name);
            v.finish()?;
            let referral = d.load(&actor, id.expect("checked")).await?;
            d.store
                .set_favorite(&actor.principal(), referral.id, r.favorite)
                .await?;
            Ok(pb::SetFavoriteResponse {
                referral: Some(referral_pb(&referral, r.favorite)),
            })
        }
        .await)
    }

    async fn get_engagement(
        &self,
        req: Request<pb::GetEngagementRequest>,
    ) -> Result<Response<pb::GetEngagementResponse>, Status> {
        let d = &self.0;
        ok(async {
            let actor = d.actor(&req).await?;
            let name = &req.get_ref().name;
            let mut v = Violations::new();
            let id = v.take(
                "name",
                cosell_platform::names::parse_one(name, "engagements"),
            );
            v.finish()?;
            let all = d.store.engagement(id.expect("checked")).await?;
            let create_time = all.first().map(|r| convert::timestamp(r.create_time));
            let visible: Vec<String> = all
                .iter()
                .filter(|r| d.readable(&actor, r).is_ok())
                .map(|r| convert::referral_name(r.id))
                .collect();
            if visible.is_empty() {
                return Err(ApiError::not_found(name.clone()));
            }
            Ok(pb::GetEngagementResponse {
                engagement: Some(pb::Engagement {
                    name: name.clone(),
                    referrals: visible,
                    create_time,
                }),
            })
        }
        .await)
    }

    async fn import_referrals(
        &self,
        req: Request<pb::ImportReferralsRequest>,
    ) -> Result<Response<pb::ImportReferralsResponse>, Status> {
        ok(self.0.import(req).await)
    }
}
