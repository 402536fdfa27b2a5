//! Confident matching (`MatchEntities`, SPEC 5.4): a customer named in free text links to an
//! entity only when no person could hesitate. Within the customer's country, the entities
//! whose name has the customer's [`NameKey`] (whole when the customer wrote a legal form, the
//! base alone when not) are the candidates; the city, when given, leaves out those whose real
//! (not generated) address is in another city. One candidate: matched. Several: ambiguous.
//! None: not found, and the nearest names are offered instead.

use crate::domain::Entity;
use crate::domain::name_key::NameKey;
use crate::index::{KeyPart, SearchIndex, SearchQuery, city_key};

/// Candidates offered for an unmatched customer.
pub const CANDIDATES: usize = 3;
/// Entities with one key read at most: enough to tell one from several and to offer some.
const SAME_KEY_LIMIT: usize = 20;

/// A customer as named in free text.
#[derive(Debug, Clone, Default)]
pub struct Customer {
    pub name: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    /// Empty: not given.
    pub city: String,
}

/// Why an entity is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Another entity of the country has the same key.
    SameName,
    /// The customer's name with another legal form.
    OtherLegalForm,
    /// The same key, at a real address in another city.
    OtherCity,
    /// A search hit for the customer's name.
    SimilarName,
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub entity: Entity,
    pub reason: Reason,
}

/// How a customer came out.
#[derive(Debug, Clone)]
pub enum Match {
    Matched(Entity),
    Ambiguous(Vec<Candidate>),
    NotFound(Vec<Candidate>),
}

impl Match {
    pub fn entity(&self) -> Option<&Entity> {
        match self {
            Match::Matched(e) => Some(e),
            _ => None,
        }
    }
}

/// Matches one customer; `Err` only for index failures.
pub fn match_customer(index: &SearchIndex, c: &Customer) -> tantivy::Result<Match> {
    let key = NameKey::of(&c.name, &c.country);
    if key.base.is_empty() || c.country.is_empty() {
        return Ok(Match::NotFound(Vec::new()));
    }
    let mut offered: Vec<Candidate> = Vec::new();
    let same = if key.has_forms() {
        let whole = index.with_key(KeyPart::Whole, &key, &c.country, SAME_KEY_LIMIT)?;
        if whole.is_empty() {
            // The customer wrote a form its entity's name lacks (`Acme Ltd` for `ACME`): the
            // entities with the same base and no form at all are as good; those with another
            // form are only offered.
            let base = index.with_key(KeyPart::Base, &key, &c.country, SAME_KEY_LIMIT)?;
            let (formless, other_form): (Vec<Entity>, Vec<Entity>) = base
                .into_iter()
                .partition(|e| has_formless_name(e, &key.base));
            offered.extend(other_form.into_iter().map(|entity| Candidate {
                entity,
                reason: Reason::OtherLegalForm,
            }));
            formless
        } else {
            whole
        }
    } else {
        index.with_key(KeyPart::Base, &key, &c.country, SAME_KEY_LIMIT)?
    };
    let wanted_city = city_key(&c.city);
    let (here, elsewhere): (Vec<Entity>, Vec<Entity>) = same.into_iter().partition(|e| {
        wanted_city.is_empty()
            || e.address_generated
            || e.city.is_empty()
            || city_key(&e.city) == wanted_city
    });
    match here.len() {
        1 => return Ok(Match::Matched(here.into_iter().next().expect("one"))),
        0 => {}
        _ => {
            return Ok(Match::Ambiguous(
                here.into_iter()
                    .take(CANDIDATES)
                    .map(|entity| Candidate {
                        entity,
                        reason: Reason::SameName,
                    })
                    .collect(),
            ));
        }
    }
    let mut candidates: Vec<Candidate> = elsewhere
        .into_iter()
        .map(|entity| Candidate {
            entity,
            reason: Reason::OtherCity,
        })
        .chain(offered)
        .take(CANDIDATES)
        .collect();
    if candidates.len() < CANDIDATES {
        let similar = index.search(&SearchQuery {
            text: format!("{} ", c.name.trim()),
            country: Some(c.country.clone()),
            limit: CANDIDATES * 2,
            ..Default::default()
        })?;
        for (entity, _) in similar {
            if candidates.len() == CANDIDATES {
                break;
            }
            if !candidates.iter().any(|o| o.entity.id == entity.id) {
                candidates.push(Candidate {
                    entity,
                    reason: Reason::SimilarName,
                });
            }
        }
    }
    Ok(Match::NotFound(candidates))
}

/// Whether one of `e`'s names has base `base` and no legal form.
fn has_formless_name(e: &Entity, base: &str) -> bool {
    std::iter::once(&e.legal_name)
        .chain(&e.other_names)
        .map(|n| NameKey::of(n, &e.country))
        .any(|k| k.base == base && !k.has_forms())
}
