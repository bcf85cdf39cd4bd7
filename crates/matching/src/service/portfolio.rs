//! Portfolio: `SelectPortfolio` picks, within the campaign's budget, the
//! eligible creators scoring's seed selection reaches most with (or the best
//! ranked ones when scoring cannot select), and records the pick for
//! `CreateOffers`. Each creator is priced from the brand's rate card (in the
//! campaign's currency) when it has a rate, else at the campaign's unit_cost.

use lift_proto::convert::prelude::*;
use std::collections::HashMap;

use lift_domain::AccountId;
use lift_domain::campaign::{CampaignSpec, Expected, Objective};
use lift_proto::matching::v1 as pb;
use lift_proto::scoring::v1 as spb;
use lift_runtime::client::retry_idempotent;
use lift_store::campaigns::{self as repo, CampaignState};
use serde::{Deserialize, Serialize};

use super::campaigns::StoredCampaign;
use super::eligibility::Purpose;
use super::ranking::Judged;
use super::{Matching, digest, to_json};
use crate::Error;
use crate::auth::BrandId;
use crate::convert::ExpectedProto;

/// What `SelectPortfolio` recorded, read back by `CreateOffers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredPortfolio {
    pub(super) members: Vec<StoredMember>,
    /// `None` when unknown (JSON has no NaN).
    estimated_spread: Option<f64>,
    pub(super) total_cost: i64,
    guarantee: String,
    audience_overlap: Option<f64>,
    expected: Expected,
    model_version: String,
    /// Eligible creators priced from the rate card and at the unit cost
    /// (absent in portfolios recorded before rate cards: all at unit cost).
    #[serde(default)]
    priced_by_rate_card: u64,
    #[serde(default)]
    priced_by_unit_cost: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredMember {
    pub(super) account: AccountId,
    pub(super) handle: String,
    pub(super) cost: i64,
    marginal_gain: Option<f64>,
    /// Whether `cost` is the creator's rate on the brand's card.
    #[serde(default)]
    rate_card: bool,
}

impl StoredCampaign {
    /// The portfolio `SelectPortfolio` recorded, if any.
    pub(super) fn portfolio(&self) -> Result<Option<StoredPortfolio>, Error> {
        self.row
            .portfolio
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| Error::Corrupt { id: self.row.id.clone(), reason: format!("portfolio: {e}") })
    }
}

impl Matching {
    pub async fn select_portfolio(
        &self,
        brand: &BrandId,
        req: &pb::SelectPortfolioRequest,
    ) -> Result<pb::SelectPortfolioResponse, Error> {
        let eps = req.epsilon;
        if !eps.is_finite() || !(0.0..1.0).contains(&eps) {
            return Err(Error::invalid("epsilon", format!("is {eps}; it must be in [0, 1) (0 = scoring's default)")));
        }
        let mut c = self.load(brand, &req.campaign_id).await?;
        if c.row.state != CampaignState::Draft {
            return Err(Error::FailedPrecondition(format!(
                "campaign {} has issued its offers; its portfolio is fixed",
                c.row.id
            )));
        }
        let p = self.choose_portfolio(&mut c, eps).await?;
        if !repo::set_portfolio(&self.inner.db, &brand.0, &c.row.id, &to_json(&p)).await? {
            return Err(Error::FailedPrecondition(format!("campaign {} issued its offers meanwhile", c.row.id)));
        }
        Ok(portfolio_to_proto(&p))
    }

    pub(super) async fn choose_portfolio(&self, c: &mut StoredCampaign, eps: f64) -> Result<StoredPortfolio, Error> {
        let ranking = self.evaluate(c, 0.0, 0, Purpose::Choose).await?;
        let model_version = ranking.model_version.clone();
        let eligible = ranking.into_eligible();
        if eligible.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "no account is eligible for campaign {} under model {}",
                c.row.id, model_version
            )));
        }
        let spec = &c.spec;
        let card = lift_store::rate_cards::card(&self.inner.db, &c.row.brand_id, &spec.currency).await?;
        let cost_of = |a: &AccountId| card.get(a).copied().unwrap_or(spec.unit_cost);
        let priced_by_rate_card = eligible.iter().filter(|j| card.contains_key(&j.card.account)).count() as u64;
        let by_account: HashMap<&AccountId, &Judged> = eligible.iter().map(|j| (&j.card.account, j)).collect();
        // The sampler's seed comes from the campaign, so re-selecting reproduces the portfolio.
        let d = digest(&[&c.row.id, &model_version]);
        let random_seed = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        let req = spb::SelectSeedsRequest {
            candidates: eligible
                .iter()
                .map(|j| spb::SeedCandidate {
                    account: Some(j.card.account.to_proto()),
                    cost: cost_of(&j.card.account),
                })
                .collect(),
            budget: spec.budget,
            k: 0,
            epsilon: eps,
            random_seed,
        };
        // Seeded, so a repeat computes the same answer.
        let answer = retry_idempotent(&self.inner.retry, "SelectSeeds", || {
            let (mut c, r) = (self.inner.scoring.clone(), req.clone());
            async move { c.select_seeds(r).await }
        })
        .await;
        let resp = match answer {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == tonic::Code::Unimplemented => greedy_by_objective(&eligible, spec, cost_of),
            Err(s) => return Err(Error::scoring(s)),
        };
        let mut members = Vec::with_capacity(resp.seeds.len());
        for s in &resp.seeds {
            let account = s.account.as_ref().map(|a| AccountId::new(a.network.clone(), a.id.clone()));
            let Some(j) = account.as_ref().and_then(|a| by_account.get(a)) else {
                return Err(Error::Internal("SelectSeeds returned an account it was not offered".to_owned()));
            };
            members.push(StoredMember {
                account: j.card.account.clone(),
                handle: j.card.handle.clone(),
                cost: cost_of(&j.card.account),
                marginal_gain: s.marginal_gain.is_finite().then_some(s.marginal_gain),
                rate_card: card.contains_key(&j.card.account),
            });
        }
        let total_cost: i64 = members.iter().map(|m| m.cost).sum();
        if total_cost > spec.budget {
            return Err(Error::Internal("SelectSeeds exceeded the budget".to_owned()));
        }
        let expected = match spec.objective {
            Objective::Reach if resp.estimated_spread.is_finite() => {
                // IMM's estimate is within a (1 ± ε) factor of the true spread with high probability.
                let e = if eps > 0.0 { eps } else { 0.1 };
                Expected {
                    expected: resp.estimated_spread,
                    lower: resp.estimated_spread * (1.0 - e),
                    upper: resp.estimated_spread * (1.0 + e),
                    unit: "accounts reached (independent cascade)".to_owned(),
                }
            }
            Objective::Reach | Objective::Engagement | Objective::Conversions => {
                let unit = by_account.values().next().map(|j| j.expected.unit.clone()).unwrap_or_default();
                Expected::sum(members.iter().filter_map(|m| by_account.get(&m.account)).map(|j| &j.expected), &unit)
            }
        };
        Ok(StoredPortfolio {
            members,
            estimated_spread: resp.estimated_spread.is_finite().then_some(resp.estimated_spread),
            total_cost,
            guarantee: resp.guarantee,
            audience_overlap: resp.audience_overlap.is_finite().then_some(resp.audience_overlap),
            expected,
            model_version,
            priced_by_rate_card,
            priced_by_unit_cost: Some(eligible.len() as u64 - priced_by_rate_card),
        })
    }
}

/// The portfolio when scoring cannot run influence maximisation: the best
/// candidates by the objective, in rank order, each taken if its cost still
/// fits the budget. Spread and overlap are unknown without the cascade model,
/// so they are NaN and the guarantee says so, rather than numbers that look
/// measured.
fn greedy_by_objective(
    ranked: &[Judged],
    spec: &CampaignSpec,
    cost_of: impl Fn(&AccountId) -> i64,
) -> spb::SelectSeedsResponse {
    let mut left = spec.budget;
    let mut seeds = Vec::new();
    for j in ranked {
        let cost = cost_of(&j.card.account);
        if cost <= 0 || cost > left {
            continue;
        }
        left -= cost;
        seeds.push(spb::SelectedSeed { account: Some(j.card.account.to_proto()), cost, marginal_gain: f64::NAN });
    }
    spb::SelectSeedsResponse {
        total_cost: spec.budget - left,
        seeds,
        estimated_spread: f64::NAN,
        guarantee: "none: scoring's SelectSeeds is not available, so the best-ranked eligible creators were taken \
                    until the budget ran out; audience overlap was not considered"
            .to_owned(),
        audience_overlap: f64::NAN,
        rr_sets: 0,
    }
}

pub(super) fn member_to_proto(m: &StoredMember) -> pb::PortfolioMember {
    pb::PortfolioMember {
        account: Some(m.account.to_proto()),
        handle: m.handle.clone(),
        cost: m.cost,
        marginal_gain: m.marginal_gain.unwrap_or(f64::NAN),
        cost_source: if m.rate_card { pb::CostSource::RateCard } else { pb::CostSource::UnitCost } as i32,
    }
}

fn portfolio_to_proto(p: &StoredPortfolio) -> pb::SelectPortfolioResponse {
    pb::SelectPortfolioResponse {
        members: p.members.iter().map(member_to_proto).collect(),
        expected_reach: p.estimated_spread.unwrap_or(f64::NAN),
        total_cost: p.total_cost,
        guarantee: p.guarantee.clone(),
        audience_overlap: p.audience_overlap.unwrap_or(f64::NAN),
        expected: Some(p.expected.to_proto()),
        priced_by_rate_card: p.priced_by_rate_card,
        // Portfolios recorded before rate cards priced every member at the unit cost.
        priced_by_unit_cost: p.priced_by_unit_cost.unwrap_or(p.members.len() as u64),
    }
}
