//! Insights (SPEC 3.7): the figures of an organization's referrals, folded from the counters
//! of its groups (`Store::insight_groups`: one row per status, substatus, deal type, direction
//! and currency, kept with each change), never from the referrals themselves.

use std::collections::BTreeMap;

use super::{DealType, Direction, Outcome, Stage};

/// One group of referrals with the same stage, deal type, direction and currency, as the
/// aggregate query counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub stage: Stage,
    pub deal_type: DealType,
    pub direction: Direction,
    /// ISO 4217 code; empty for the referrals without a deal value.
    pub currency: String,
    pub count: i64,
    /// The summed deal values in cents (0 when none has one); wide enough for 100,000 of the
    /// largest values.
    pub cents: i128,
    /// How many were accepted (an accept time is recorded).
    pub accepted: i64,
    /// Of those, the ones accepted here (not migrated from PSC, whose accept time is the
    /// import's): how many, and their seconds from creation to acceptance, summed.
    pub timed: i64,
    pub seconds_to_accept: f64,
}

/// How many referrals, and their deal values summed per currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: i64,
    /// Currency -> cents, only currencies with a value.
    pub value: BTreeMap<String, i128>,
}

impl Tally {
    fn add(&mut self, g: &Group) {
        self.count += g.count;
        if !g.currency.is_empty() {
            *self.value.entry(g.currency.clone()).or_default() += g.cents;
        }
    }
}

/// The figures of GetInsights.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Insights {
    pub total: Tally,
    /// In lifecycle order; only stages with referrals.
    pub by_stage: Vec<(Stage, Tally)>,
    /// PRIVATE, PARTNER_LED, CO_SELL; only deal types with referrals.
    pub by_deal_type: Vec<(DealType, Tally)>,
    /// WON / (WON + LOST); 0 when neither.
    pub win_rate: f64,
    /// Inbound accepted / (accepted + declined + expired); 0 when none was answered.
    pub inbound_acceptance_rate: f64,
    /// Mean seconds from an Inbound referral's creation to its acceptance; 0 when none.
    pub average_seconds_to_accept: f64,
    pub expiring_within_7_days: i64,
}

/// The order stages are shown in.
const STAGES: [Stage; 7] = [
    Stage::New(super::Waiting::Pending),
    Stage::New(super::Waiting::Received),
    Stage::Active,
    Stage::Closed(Outcome::Won),
    Stage::Closed(Outcome::Lost),
    Stage::Closed(Outcome::Declined),
    Stage::Closed(Outcome::Expired),
];

const DEAL_TYPES: [DealType; 3] = [DealType::Private, DealType::PartnerLed, DealType::CoSell];

fn ratio(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Folds the groups into the figures (SPEC 3.7), with the number of NEW referrals whose expiry
/// falls within the next 7 days (counted apart: it depends on "now").
pub fn fold(groups: &[Group], expiring: i64) -> Insights {
    let mut out = Insights::default();
    let mut stages: BTreeMap<usize, Tally> = BTreeMap::new();
    let mut types: BTreeMap<usize, Tally> = BTreeMap::new();
    let (mut won, mut lost) = (0, 0);
    let (mut accepted, mut refused) = (0, 0);
    let (mut timed, mut seconds) = (0, 0.0);
    for g in groups {
        out.total.add(g);
        if let Some(i) = STAGES.iter().position(|s| *s == g.stage) {
            stages.entry(i).or_default().add(g);
        }
        if let Some(i) = DEAL_TYPES.iter().position(|t| *t == g.deal_type) {
            types.entry(i).or_default().add(g);
        }
        match g.stage {
            Stage::Closed(Outcome::Won) => won += g.count,
            Stage::Closed(Outcome::Lost) => lost += g.count,
            _ => {}
        }
        if g.direction == Direction::Inbound {
            accepted += g.accepted;
            if matches!(
                g.stage,
                Stage::Closed(Outcome::Declined) | Stage::Closed(Outcome::Expired)
            ) {
                refused += g.count - g.accepted;
            }
            timed += g.timed;
            seconds += g.seconds_to_accept;
        }
    }
    out.expiring_within_7_days = expiring;
    out.by_stage = stages.into_iter().map(|(i, t)| (STAGES[i], t)).collect();
    out.by_deal_type = types.into_iter().map(|(i, t)| (DEAL_TYPES[i], t)).collect();
    out.win_rate = ratio(won, won + lost);
    out.inbound_acceptance_rate = ratio(accepted, accepted + refused);
    out.average_seconds_to_accept = if timed == 0 {
        0.0
    } else {
        seconds / timed as f64
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Waiting;

    fn group(stage: Stage, deal_type: DealType, direction: Direction, currency: &str) -> Group {
        Group {
            stage,
            deal_type,
            direction,
            currency: currency.into(),
            count: 1,
            cents: if currency.is_empty() { 0 } else { 100 },
            accepted: 0,
            timed: 0,
            seconds_to_accept: 0.0,
        }
    }

    #[test]
    fn nothing_gives_zeros_not_nan() {
        let i = fold(&[], 0);
        assert_eq!(i, Insights::default());
    }

    #[test]
    fn rates_and_tallies() {
        let mut accepted_inbound = group(
            Stage::Closed(Outcome::Won),
            DealType::CoSell,
            Direction::Inbound,
            "EUR",
        );
        accepted_inbound.accepted = 1;
        accepted_inbound.timed = 1;
        accepted_inbound.seconds_to_accept = 3600.0;
        let waiting = group(
            Stage::New(Waiting::Received),
            DealType::CoSell,
            Direction::Inbound,
            "",
        );
        let groups = [
            accepted_inbound,
            group(
                Stage::Closed(Outcome::Declined),
                DealType::CoSell,
                Direction::Inbound,
                "USD",
            ),
            group(
                Stage::Closed(Outcome::Lost),
                DealType::Private,
                Direction::Outbound,
                "USD",
            ),
            group(
                Stage::Closed(Outcome::Lost),
                DealType::Private,
                Direction::Outbound,
                "USD",
            ),
            waiting,
        ];
        let i = fold(&groups, 1);
        assert_eq!(i.total.count, 5);
        assert_eq!(i.total.value.get("USD"), Some(&300));
        assert_eq!(i.total.value.get("EUR"), Some(&100));
        assert!(!i.total.value.contains_key(""));
        assert!((i.win_rate - 1.0 / 3.0).abs() < 1e-9);
        assert!((i.inbound_acceptance_rate - 0.5).abs() < 1e-9);
        assert!((i.average_seconds_to_accept - 3600.0).abs() < 1e-9);
        assert_eq!(i.expiring_within_7_days, 1);
        let stages: Vec<Stage> = i.by_stage.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            stages,
            [
                Stage::New(Waiting::Received),
                Stage::Closed(Outcome::Won),
                Stage::Closed(Outcome::Lost),
                Stage::Closed(Outcome::Declined)
            ]
        );
        assert_eq!(
            i.by_deal_type[0],
            (
                DealType::Private,
                Tally {
                    count: 2,
                    value: [("USD".to_owned(), 200)].into()
                }
            )
        );
    }
}
