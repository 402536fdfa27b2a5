//! `ListDealReadiness` (SPEC 5.4): before a run, per eligible deal not migrated yet, the
//! required fields (rule D6) it will lack and how its customer will come out (the directory's
//! `MatchEntities`, asked now as the run will ask it), so that the partner can clean the data
//! in PSC first. The first page also counts the customer outcomes of every such deal: it scans
//! the whole snapshot; later pages scan from their token on.

use cosell_platform::{ApiError, Violations};
use cosell_proto::migration as pb;
use tonic::Request;

use super::Migration;
use super::deals::SCAN_PAGE;
use crate::customers::customer_key;
use crate::eligibility::{Facts, eligibility, missing_fields};

impl Migration {
    pub(super) async fn list_deal_readiness(
        &self,
        req: Request<pb::ListDealReadinessRequest>,
    ) -> Result<pb::ListDealReadinessResponse, ApiError> {
        let r = req.get_ref().clone();
        let org = self.authorize(&req, "parent", &r.parent).await?;
        let mut v = Violations::new();
        let size = v.take("page_size", cosell_platform::page::page_size(r.page_size));
        let query = format!("readiness|{}", r.parent);
        let after = v.take(
            "page_token",
            cosell_platform::page::decode(&r.page_token, &query),
        );
        v.finish()?;
        let size = size.unwrap_or(50).min(500) as usize;
        let associations = self.associations(org).await?;
        let products = self.product_map().await?;
        let mut after = after.flatten();
        let mut counts = after.is_none().then(pb::CustomerMatchCounts::default);
        let mut deals: Vec<pb::DealReadiness> = Vec::new();
        let mut next_page_token = String::new();
        loop {
            let page = self
                .store
                .deals(org, after.as_deref(), SCAN_PAGE, true)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.deal.id.clone());
            let eligible: Vec<_> = page
                .iter()
                .filter(|d| {
                    let holds = associations
                        .get(&d.deal.account_id)
                        .copied()
                        .unwrap_or(false);
                    eligibility(&Facts::of(&d.deal), holds).is_ok()
                })
                .collect();
            let matches = self.match_customers(eligible.iter().copied()).await?;
            for d in eligible {
                let outcome = matches
                    .get(&customer_key(d))
                    .map(|m| m.outcome)
                    .unwrap_or(pb::CustomerMatchOutcome::NotLookedUp);
                if let Some(counts) = counts.as_mut() {
                    count(counts, outcome);
                }
                let mapped = d
                    .products
                    .iter()
                    .filter(|p| products.contains_key(&p.product_id))
                    .count();
                let missing = missing_fields(d, mapped);
                if missing.is_empty() && outcome == pb::CustomerMatchOutcome::Matched {
                    continue;
                }
                if !next_page_token.is_empty() {
                    continue;
                }
                if deals.len() == size {
                    // One more exists: the next page starts after the last one returned.
                    next_page_token = cosell_platform::page::encode(
                        &deals
                            .last()
                            .map(|x| x.psc_deal_id.clone())
                            .unwrap_or_default(),
                        &query,
                    );
                    continue;
                }
                deals.push(pb::DealReadiness {
                    psc_deal_id: d.deal.id.clone(),
                    deal_name: d.deal.name.clone(),
                    missing_fields: missing.into_iter().map(String::from).collect(),
                    customer_match: outcome as i32,
                });
            }
            // Later pages stop once theirs is full; the first counts on to the end.
            if !next_page_token.is_empty() && counts.is_none() {
                break;
            }
        }
        Ok(pb::ListDealReadinessResponse {
            deals,
            next_page_token,
            customer_matches: counts,
        })
    }
}

fn count(counts: &mut pb::CustomerMatchCounts, outcome: pb::CustomerMatchOutcome) {
    let n = match outcome {
        pb::CustomerMatchOutcome::Matched => &mut counts.matched,
        pb::CustomerMatchOutcome::Ambiguous => &mut counts.ambiguous,
        pb::CustomerMatchOutcome::NotFound => &mut counts.not_found,
        pb::CustomerMatchOutcome::NotLookedUp | pb::CustomerMatchOutcome::Unspecified => {
            &mut counts.not_looked_up
        }
    };
    *n += 1;
}
