//! `SelectSeeds`: IMM over the latest run's influence graph (see `engine::seeds`).

use lift_domain::FieldViolation;
use lift_proto::convert::prelude::*;
use lift_proto::scoring::v1 as pb;

use super::Scoring;
use crate::Error;
use crate::engine::seeds::{SeedRequest, select_seeds};

const DEFAULT_EPSILON: f64 = 0.1;

impl Scoring {
    pub async fn select_seeds(&self, req: &pb::SelectSeedsRequest) -> Result<pb::SelectSeedsResponse, Error> {
        let p = self.published().ok_or_else(|| Error::Unavailable("no scoring run has been published yet".into()))?;
        let mut violations = Vec::new();
        let candidates: Vec<(u32, i64)> = if req.candidates.is_empty() {
            (0..p.snap.n as u32).map(|v| (v, 1)).collect()
        } else {
            let dir = self.directory();
            req.candidates
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let field = format!("candidates[{i}]");
                    if c.cost < 0 {
                        violations.push(FieldViolation::new(
                            format!("{field}.cost"),
                            format!("is {}; it must not be negative", c.cost),
                        ));
                    }
                    let id = lift_domain::AccountId::from_proto(
                        c.account.as_ref(),
                        &format!("{field}.account"),
                        &mut violations,
                    )?;
                    match dir.node(&id).filter(|n| (*n as usize) < p.snap.n) {
                        Some(n) => Some((n, c.cost.max(1))),
                        None => {
                            violations.push(FieldViolation::new(
                                format!("{field}.account"),
                                format!("{id} is not a scored account"),
                            ));
                            None
                        }
                    }
                })
                .collect()
        };
        if req.budget < 0 {
            violations.push(FieldViolation::new("budget", format!("is {}; it must not be negative", req.budget)));
        }
        if req.budget == 0 && req.k == 0 {
            violations.push(FieldViolation::new("k", "give a budget or a number of seeds k"));
        }
        let epsilon = if req.epsilon == 0.0 { DEFAULT_EPSILON } else { req.epsilon };
        if !(epsilon > 0.0 && epsilon <= 1.0) {
            violations.push(FieldViolation::new("epsilon", format!("is {}; it must be within (0, 1]", req.epsilon)));
        }
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        let sreq = SeedRequest {
            candidates,
            budget: (req.budget > 0).then_some(req.budget),
            k: req.k as usize,
            epsilon,
            ell: 1.0,
            random_seed: req.random_seed,
            max_rr_sets: self.cfg().max_rr_sets,
        };
        let snap = p.clone();
        let r = tokio::task::spawn_blocking(move || select_seeds(&snap.snap.influence, &sreq))
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
        let dir = self.directory();
        Ok(pb::SelectSeedsResponse {
            seeds: r
                .seeds
                .iter()
                .map(|s| pb::SelectedSeed {
                    account: dir.ids.get(s.node as usize).map(|a| a.to_proto()),
                    cost: s.cost,
                    marginal_gain: s.marginal_gain,
                })
                .collect(),
            estimated_spread: r.spread,
            guarantee: r.guarantee,
            audience_overlap: r.overlap,
            total_cost: r.total_cost,
            rr_sets: r.rr_sets,
        })
    }
}
