//! Linking each migrated deal's customer to the directory (SPEC 5.4): the directory's
//! `MatchEntities` decides (one entity with the customer's name key in its country and city:
//! matched; several or none: unmatched, with up to 3 candidates for a person to pick), asked
//! for each distinct customer of a batch in as few calls as it takes. The deal migration and
//! the readiness report ask the same way, so that readiness says what the run will do.

use std::collections::HashMap;

use cosell_platform::ApiError;
use cosell_proto::deals as dpb;
use cosell_proto::directory as dirpb;
use cosell_proto::migration as pb;

use crate::api::{Migration, upstream};
use crate::store::SnapshotDeal;

/// Customers per MatchEntities call (the directory takes up to 1,000).
const MATCH_BATCH: usize = 500;
/// The longest name and city MatchEntities takes.
const MAX_NAME_CHARS: usize = 1000;
const MAX_CITY_CHARS: usize = 200;
/// MatchEntities calls in flight per batch of deals.
const MATCH_CONCURRENCY: usize = 2;

/// A customer as PSC names it: name, country, city.
pub(crate) type CustomerKey = (String, String, String);

pub(crate) fn customer_key(d: &SnapshotDeal) -> CustomerKey {
    (
        d.deal.customer_name.clone(),
        d.deal.customer_country.clone(),
        d.deal.customer_city.clone(),
    )
}

/// How one customer came out.
#[derive(Debug, Clone)]
pub(crate) struct CustomerMatch {
    pub(crate) outcome: pb::CustomerMatchOutcome,
    /// `entities/{id}` when matched.
    pub(crate) entity: Option<String>,
    /// For an unmatched customer: what a person may pick from.
    pub(crate) candidates: Vec<dpb::CustomerCandidate>,
}

impl CustomerMatch {
    fn not_looked_up() -> Self {
        Self {
            outcome: pb::CustomerMatchOutcome::NotLookedUp,
            entity: None,
            candidates: Vec::new(),
        }
    }

    /// The outcome's name in the report (`MATCHED`, `AMBIGUOUS`, ...).
    pub(crate) fn outcome_name(outcome: pb::CustomerMatchOutcome) -> &'static str {
        match outcome {
            pb::CustomerMatchOutcome::Unspecified => "",
            pb::CustomerMatchOutcome::Matched => "MATCHED",
            pb::CustomerMatchOutcome::Ambiguous => "AMBIGUOUS",
            pb::CustomerMatchOutcome::NotFound => "NOT_FOUND",
            pb::CustomerMatchOutcome::NotLookedUp => "NOT_LOOKED_UP",
        }
    }

    /// The outcome of a stored name (the inverse of [`CustomerMatch::outcome_name`]).
    pub(crate) fn outcome_of(name: &str) -> pb::CustomerMatchOutcome {
        [
            pb::CustomerMatchOutcome::Matched,
            pb::CustomerMatchOutcome::Ambiguous,
            pb::CustomerMatchOutcome::NotFound,
            pb::CustomerMatchOutcome::NotLookedUp,
        ]
        .into_iter()
        .find(|o| Self::outcome_name(*o) == name)
        .unwrap_or(pb::CustomerMatchOutcome::Unspecified)
    }

    fn of(m: dirpb::EntityMatch) -> Self {
        let outcome = match dirpb::MatchOutcome::try_from(m.outcome) {
            Ok(dirpb::MatchOutcome::Matched) => pb::CustomerMatchOutcome::Matched,
            Ok(dirpb::MatchOutcome::Ambiguous) => pb::CustomerMatchOutcome::Ambiguous,
            _ => pb::CustomerMatchOutcome::NotFound,
        };
        let entity = m
            .entity
            .filter(|_| outcome == pb::CustomerMatchOutcome::Matched)
            .map(|e| e.name);
        let candidates = m
            .candidates
            .into_iter()
            .filter_map(|c| {
                let reason = match dirpb::CandidateReason::try_from(c.reason) {
                    Ok(dirpb::CandidateReason::SameName) => dpb::CandidateReason::SameName,
                    Ok(dirpb::CandidateReason::OtherLegalForm) => {
                        dpb::CandidateReason::OtherLegalForm
                    }
                    Ok(dirpb::CandidateReason::OtherCity) => dpb::CandidateReason::OtherCity,
                    _ => dpb::CandidateReason::SimilarName,
                };
                let e = c.entity?;
                let a = e.address.unwrap_or_default();
                Some(dpb::CustomerCandidate {
                    entity: e.name,
                    legal_name: e.legal_name,
                    address: Some(dpb::Address {
                        lines: a.lines,
                        city: a.city,
                        region: a.region,
                        postal_code: a.postal_code,
                        country_code: a.country_code,
                    }),
                    address_generated: e.address_generated,
                    reason: reason as i32,
                })
            })
            .collect();
        Self {
            outcome,
            entity,
            candidates,
        }
    }
}

impl Migration {
    /// How each distinct customer of `deals` comes out. A customer without a name or a
    /// country is not looked up. `Err` when the directory does not answer: the caller's deals
    /// wait (never marked unmatched for it).
    pub(crate) async fn match_customers<'a>(
        &self,
        deals: impl Iterator<Item = &'a SnapshotDeal>,
    ) -> Result<HashMap<CustomerKey, CustomerMatch>, ApiError> {
        use futures::{StreamExt, TryStreamExt};
        let mut keys: Vec<CustomerKey> = deals.map(customer_key).collect();
        keys.sort();
        keys.dedup();
        // What the directory would refuse as a request is not asked: a PSC country code that
        // is no country (`UK`), a name or city over its limits.
        let (asked, not_asked): (Vec<CustomerKey>, Vec<CustomerKey>) =
            keys.into_iter().partition(|(name, country, _)| {
                let name = name.trim();
                !name.is_empty()
                    && name.chars().count() <= MAX_NAME_CHARS
                    && cosell_platform::countries::is_known(&country.trim().to_ascii_uppercase())
            });
        let mut out: HashMap<CustomerKey, CustomerMatch> = not_asked
            .into_iter()
            .map(|k| (k, CustomerMatch::not_looked_up()))
            .collect();
        let answered: Vec<Vec<(CustomerKey, CustomerMatch)>> =
            futures::stream::iter(asked.chunks(MATCH_BATCH).map(<[_]>::to_vec))
                .map(|chunk| self.match_chunk(chunk))
                .buffer_unordered(MATCH_CONCURRENCY)
                .try_collect()
                .await?;
        out.extend(answered.into_iter().flatten());
        Ok(out)
    }

    async fn match_chunk(
        &self,
        keys: Vec<CustomerKey>,
    ) -> Result<Vec<(CustomerKey, CustomerMatch)>, ApiError> {
        let req = self
            .token
            .request(dirpb::MatchEntitiesRequest {
                customers: keys
                    .iter()
                    .map(|(name, country, city)| dirpb::CustomerName {
                        name: name.trim().to_owned(),
                        country_code: country.trim().to_owned(),
                        // A city over the directory's limit narrows nothing.
                        city: Some(city.trim())
                            .filter(|c| c.chars().count() <= MAX_CITY_CHARS)
                            .unwrap_or_default()
                            .to_owned(),
                    })
                    .collect(),
            })
            .await?;
        let matches = self
            .directory
            .clone()
            .match_entities(req)
            .await
            .map_err(|s| upstream("directory", &s))?
            .into_inner()
            .matches;
        if matches.len() != keys.len() {
            return Err(ApiError::internal(format!(
                "the directory answered {} matches for {} customers",
                matches.len(),
                keys.len()
            )));
        }
        Ok(keys
            .into_iter()
            .zip(matches.into_iter().map(CustomerMatch::of))
            .collect())
    }
}
