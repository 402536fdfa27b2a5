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
/// What the proto's names of the outcomes start with.
const OUTCOME_PREFIX: &str = "CUSTOMER_MATCH_OUTCOME_";
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

    /// The outcome's name in the report: the enum value's name without its prefix
    /// (`MATCHED`, `AMBIGUOUS`, ...); empty for none.
    pub(crate) fn outcome_name(outcome: pb::CustomerMatchOutcome) -> &'static str {
        match outcome {
            pb::CustomerMatchOutcome::Unspecified => "",
            o => o.as_str_name().trim_start_matches(OUTCOME_PREFIX),
        }
    }

    /// The outcome of a stored name (the inverse of [`CustomerMatch::outcome_name`]).
    pub(crate) fn outcome_of(name: &str) -> pb::CustomerMatchOutcome {
        pb::CustomerMatchOutcome::from_str_name(&format!("{OUTCOME_PREFIX}{name}"))
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
        let mut out: HashMap<CustomerKey, CustomerMatch> = HashMap::with_capacity(keys.len());
        let mut asked: Vec<(CustomerKey, dirpb::CustomerName)> = Vec::with_capacity(keys.len());
        for key in keys {
            match asked_as(&key) {
                Some(name) => asked.push((key, name)),
                None => {
                    out.insert(key, CustomerMatch::not_looked_up());
                }
            }
        }
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
        asked: Vec<(CustomerKey, dirpb::CustomerName)>,
    ) -> Result<Vec<(CustomerKey, CustomerMatch)>, ApiError> {
        let (keys, customers): (Vec<CustomerKey>, Vec<dirpb::CustomerName>) =
            asked.into_iter().unzip();
        let req = self
            .token
            .request(dirpb::MatchEntitiesRequest { customers })
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

/// The customer as MatchEntities is asked about it, or `None` when the directory would refuse
/// it (so it is not asked): no name, a PSC country code that is no country (`UK`), a name over
/// the proto's documented limit. A city over its limit narrows nothing and is left out.
fn asked_as((name, country, city): &CustomerKey) -> Option<dirpb::CustomerName> {
    use cosell_proto::limits::{Bounded, Path};
    let country = country.trim().to_ascii_uppercase();
    if name.trim().is_empty() || !cosell_platform::countries::is_known(&country) {
        return None;
    }
    let mut customer = dirpb::CustomerName {
        name: name.trim().to_owned(),
        country_code: country,
        city: city.trim().to_owned(),
    };
    let over = |c: &dirpb::CustomerName| {
        let mut v = Vec::new();
        c.check(&Path::ROOT, &mut v);
        v
    };
    if over(&customer).iter().any(|v| v.field == "city") {
        customer.city.clear();
    }
    over(&customer).is_empty().then_some(customer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, country: &str, city: &str) -> CustomerKey {
        (name.into(), country.into(), city.into())
    }

    #[test]
    fn outcome_names_read_back() {
        use pb::CustomerMatchOutcome as O;
        for o in [O::Matched, O::Ambiguous, O::NotFound, O::NotLookedUp] {
            assert_eq!(CustomerMatch::outcome_of(CustomerMatch::outcome_name(o)), o);
        }
        assert_eq!(CustomerMatch::outcome_name(O::NotFound), "NOT_FOUND");
        assert_eq!(CustomerMatch::outcome_of(""), O::Unspecified);
    }

    #[test]
    fn what_the_directory_would_refuse_is_not_asked() {
        assert!(asked_as(&key(" ", "NO", "Oslo")).is_none());
        assert!(
            asked_as(&key("Northwind", "UK", "")).is_none(),
            "UK is no ISO code"
        );
        assert!(asked_as(&key(&"x".repeat(1001), "NO", "")).is_none());
        let long_city = asked_as(&key("Northwind", "NO", &"y".repeat(201))).unwrap();
        assert_eq!(long_city.city, "", "a city over its limit narrows nothing");
        let asked = asked_as(&key(" Northwind ", "no", " Oslo ")).unwrap();
        assert_eq!(
            (
                asked.name.as_str(),
                asked.country_code.as_str(),
                asked.city.as_str()
            ),
            ("Northwind", "NO", "Oslo")
        );
    }
}
