//! `ImportReferrals`: the deals the migration service brings over from PSC, idempotent by PSC
//! deal id, each refused on its own with the reason. A deal is parsed by [`draft`] with its
//! PSC fields (a customer the migration could not link keeps PSC's text and the directory
//! entries offered for it, D8), made by [`create::migrated`], and a batch is stored in one
//! transaction (`Store::insert_migrated_batch`; one by one when another import raced it).
//! A process works on [`ImportTurns`] imports at once, whoever sends them.

use cosell_platform::error::FieldViolation;
use cosell_platform::{ApiError, Violations};

use super::create::new_changes;
use crate::domain::event::Cause;

/// Who made a migrated referral, in its event: the migration service (the only caller).
const MIGRATION_ACTOR: &str = "servicePrincipals/migration";
use cosell_proto::deals as pb;
use tonic::Request;
use uuid::Uuid;

use super::super::convert::{self, MAX_CANDIDATES, referral_pb};
use super::super::{Deals, rule_error};
use super::create::{CustomerFrom, draft};
use crate::domain::create::{self, Migrated};
use crate::domain::{Candidate, Customer, Direction, Referral, Stage, Waiting};

/// At most this many migrated deals per import call.
pub const MAX_IMPORT_BATCH: usize = 500;

/// The imports a process converts and writes at once: as many as its cores, at least 2 (one
/// converting while another waits for the database); the others wait their turn, in order,
/// within their deadline. A migration replica sends 8 batches at once, and replicas add up:
/// unbounded, their peak (about 3 MB a batch of 250 deals) stayed in the process's memory
/// after the migration, and the service's other calls queued behind them on its cores
/// (docs/benchmarks.md, "The deals service's growth").
pub struct ImportTurns(tokio::sync::Semaphore);

impl Default for ImportTurns {
    fn default() -> Self {
        Self::new(cosell_platform::cores().max(2))
    }
}

impl ImportTurns {
    fn new(at_once: usize) -> Self {
        Self(tokio::sync::Semaphore::new(at_once))
    }

    /// Waits for a turn, which lasts as long as the permit.
    async fn take(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.0
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }
}

impl Deals {
    pub(super) async fn import_referrals(
        &self,
        req: Request<pb::ImportReferralsRequest>,
    ) -> Result<pb::ImportReferralsResponse, ApiError> {
        let actor = self.actor(&req).await?;
        if !actor.is_service("migration") {
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
        too_many_candidates(&r.referrals)?;
        let org = org.expect("checked");
        let _turn = self.imports.take().await;
        // The catalog entries the batch names, in one query.
        let mut wanted: Vec<Uuid> = r
            .referrals
            .iter()
            .flat_map(|i| i.referral.iter().flat_map(|r| &r.solutions))
            .filter_map(|s| convert::parse_solution_name(&s.solution).ok())
            .collect();
        wanted.sort();
        wanted.dedup();
        // And the directory entries of its matched customers, in one call.
        let entities: Vec<String> = r
            .referrals
            .iter()
            .filter_map(|i| i.referral.as_ref()?.customer.as_ref())
            .filter(|c| !c.entity.is_empty())
            .map(|c| c.entity.clone())
            .collect();
        let mut seen = Seen {
            solutions: self.store.get_solutions(&wanted).await?,
            customers: self.upstream.customers(&entities).await?,
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
        let rows: Vec<Referral> = new.iter().flat_map(|d| d.iter().cloned()).collect();
        let events = self.events(&new_changes(&rows), Cause::Migrated, MIGRATION_ACTOR);
        let raced = match self.store.insert_migrated_batch(&new, &events).await {
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
                Imported::New(rows) => match self
                    .store
                    .insert_migrated(
                        &rows,
                        &self.events(&new_changes(&rows), Cause::Migrated, MIGRATION_ACTOR),
                    )
                    .await?
                {
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

    /// Checks one deal and makes its referrals by [`create::migrated`] (written by the
    /// caller): the partner's, then the platform's, if any.
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
        let empty = pb::Referral::default();
        let input = item.referral.as_ref().unwrap_or(&empty);
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
        let d = draft(&mut v, input, deal_type, CustomerFrom::DirectoryOrPsc);
        // A matched customer's candidates are ignored: the link is the answer (D8).
        let candidates = match &input.customer {
            Some(c) if c.entity.is_empty() => {
                convert::candidates(&mut v, "referral.customer.candidates", &c.candidates)
            }
            _ => Vec::new(),
        };
        let seller = input.seller_contact.as_ref().map(convert::contact);
        if let Some(s) = &seller {
            for (part, problem) in s.check() {
                v.add(format!("referral.seller_contact.{part}"), problem);
            }
        }
        v.finish()?;
        let (d, direction, stage) = (
            d.expect("checked"),
            direction.expect("checked"),
            stage.expect("checked"),
        );
        create::check_migrated_stage(d.deal_type, direction, stage)
            .map_err(|e| rule_error(e, "referral."))?;
        if let Some(m) = &d.mpn_location
            && !seen.locations.contains(m)
        {
            self.check_location("referral.mpn_location", org, m).await?;
            seen.locations.insert(m.clone());
        }
        let customer = if d.entity.is_empty() {
            unmatched(input.customer.as_ref(), candidates)
        } else if let Some(c) = seen.customers.get(&d.entity) {
            c.clone()
        } else {
            let c = self
                .resolve_customer("referral.customer.entity", &d.entity)
                .await?;
            seen.customers.insert(d.entity.clone(), c.clone());
            c
        };
        let deal = Migrated {
            psc_deal_id: psc.to_owned(),
            direction,
            stage,
            seller_contact: seller,
            create_time: input.create_time.as_ref().and_then(convert::from_timestamp),
        };
        create::migrated(org, d, deal, customer, &seen.solutions, self.timing())
            .map_err(|e| rule_error(e, "referral."))
    }
}

/// A customer the directory did not match: PSC's text and the entries offered for it, until a
/// user picks the directory entry (D8).
fn unmatched(c: Option<&pb::Customer>, candidates: Vec<Candidate>) -> Customer {
    Customer {
        entity: None,
        legal_name: c.map_or("", |c| c.legal_name.trim()).to_owned(),
        address: convert::address(c.and_then(|c| c.address.as_ref())),
        candidates,
        ..Default::default()
    }
}

/// More candidates than a customer may have refuses the whole call, as every limit of the
/// request does (the proto's rule for ImportReferrals), answered as the codec answers a limit.
fn too_many_candidates(items: &[pb::ImportedReferral]) -> Result<(), ApiError> {
    let over: Vec<FieldViolation> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let n = item.referral.as_ref()?.customer.as_ref()?.candidates.len();
            (n > MAX_CANDIDATES).then(|| FieldViolation {
                field: format!("referrals[{i}].referral.customer.candidates"),
                description: format!("has {n} items; at most {MAX_CANDIDATES} are accepted"),
            })
        })
        .collect();
    if over.is_empty() {
        return Ok(());
    }
    let mut e = ApiError::invalid_argument(over);
    e.reason = "TOO_MANY_ITEMS".into();
    Err(e)
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

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::ImportTurns;

    #[tokio::test]
    async fn an_import_past_the_bound_waits_for_one_to_end() {
        let turns = ImportTurns::new(2);
        let first = turns.take().await;
        let _second = turns.take().await;
        assert!(turns.take().now_or_never().is_none(), "a third ran at once");
        drop(first);
        assert!(
            turns.take().now_or_never().is_some(),
            "the third got the freed turn"
        );
    }
}
