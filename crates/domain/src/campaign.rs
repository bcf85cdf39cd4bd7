//! Campaign rules: a validated campaign spec, eligibility criteria evaluated
//! with pass/fail and margin, ranking by objective, the seeded holdout draw,
//! report tallies over attributed ledger events, and the lift statistic.
//!
//! Everything here is a pure function of its inputs so that the matching
//! service stays a thin layer of I/O around it, and so that a recorded seed
//! or a recorded ledger prefix reproduces a result exactly.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::account::AccountId;
use crate::score::Dimension;

mod eligibility;
mod holdout;
mod report;

pub use eligibility::{
    CriterionResult, Evaluation, Expected, ScoreCard, ScoreEntry, evaluate, evaluate_criterion, expected_outcome,
    objective_score, outcome_raw_keys, rank_order,
};
pub use holdout::{Holdout, SplitMix64, draw_holdout, holdout_size};
pub use report::{Addition, Arm, Day, IssuedOffer, Member, ReportBuilder, Totals, date_of_day};

pub const MAX_NAME_LEN: usize = 200;
pub const MAX_PERK_LEN: usize = 500;
pub const MAX_TOPIC_LEN: usize = 64;
pub const MAX_TOPICS: usize = 32;
pub const MAX_CRITERIA: usize = 16;
pub const MAX_EXCLUDED: usize = 10_000;
pub const MAX_HOLDOUT_SHARE: f64 = 0.5;
/// Budgets above this could overflow sums of costs in minor units.
pub const MAX_BUDGET: i64 = 1_000_000_000_000_000;
pub const DEFAULT_ATTRIBUTION_WINDOW_SECS: u64 = 7 * 86_400;
pub const MAX_ATTRIBUTION_WINDOW_SECS: u64 = 90 * 86_400;

/// What a campaign is trying to buy; decides how candidates are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Objective {
    Reach,
    Engagement,
    Conversions,
}

impl Objective {
    pub fn name(self) -> &'static str {
        match self {
            Objective::Reach => "reach",
            Objective::Engagement => "engagement",
            Objective::Conversions => "conversions",
        }
    }

    /// What [`expected_outcome`] counts for this objective.
    fn outcome_unit(self) -> &'static str {
        match self {
            Objective::Reach => "accounts reached",
            Objective::Engagement => "engagements",
            Objective::Conversions => "conversions",
        }
    }

    /// The dimension scoring orders its answer by, so the best candidates arrive first.
    pub fn primary_dimension(self) -> Dimension {
        match self {
            Objective::Reach => Dimension::Reach,
            Objective::Engagement => Dimension::Activity,
            Objective::Conversions => Dimension::Action,
        }
    }
}

/// A minimum on one score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Threshold {
    /// Percentile 0–100: keeps its meaning when the model is recalibrated.
    MinPercentile(f64),
    /// Value 0–100: has to be translated through the old→new mapping on recalibration.
    MinValue(f64),
}

impl Threshold {
    pub fn bound(self) -> f64 {
        match self {
            Threshold::MinPercentile(p) | Threshold::MinValue(p) => p,
        }
    }
}

/// One eligibility rule: a dimension (optionally a topic variant) at or above a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    pub dimension: Dimension,
    pub topic: Option<String>,
    pub threshold: Threshold,
}

/// A campaign as the brand specified it, valid by construction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignSpec {
    pub name: String,
    pub objective: Objective,
    pub perk: String,
    pub unit_cost: i64,
    pub budget: i64,
    pub currency: String,
    pub topics: Vec<String>,
    pub criteria: Vec<Criterion>,
    pub min_authenticity: f64,
    pub excluded: BTreeSet<AccountId>,
    pub holdout_share: f64,
    pub attribution_window_secs: u64,
    /// Action rules may pass accounts with insufficient evidence (never with none).
    #[serde(default)]
    pub allow_insufficient_evidence: bool,
    /// Where tracking links redirect (http/https URL); empty = the redirector's default.
    #[serde(default)]
    pub landing_url: String,
}

/// What is wrong with a landing URL, if anything: it must be an absolute http(s) URL of at
/// most 2,048 bytes without spaces or control characters.
pub fn landing_url_problem(url: &str) -> Option<String> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if url.len() > 2_048 {
        Some(format!("is {} bytes long; the limit is 2048", url.len()))
    } else if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        Some("must be an absolute http:// or https:// URL".to_owned())
    } else if url.len() <= "https://".len() {
        Some("has no host".to_owned())
    } else if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain spaces or control characters".to_owned())
    } else {
        None
    }
}

impl CampaignSpec {
    /// Every rule a candidate is judged by, in the order reported: the brand's
    /// criteria, then minimum authenticity (when set) as a value threshold.
    pub fn rules(&self) -> Vec<Criterion> {
        let mut rules = self.criteria.clone();
        if self.min_authenticity > 0.0 {
            rules.push(Criterion {
                dimension: Dimension::Authenticity,
                topic: None,
                threshold: Threshold::MinValue(self.min_authenticity),
            });
        }
        rules
    }

    /// Percentile filters for scoring's `QueryAccounts`, each lowered by `relax`
    /// percentile points so near misses come back too. Value thresholds cannot
    /// be pushed down (scoring filters on percentiles only) and are checked locally;
    /// so are action rules of a campaign that admits insufficient evidence, since
    /// scoring's action filter passes only sufficient evidence.
    pub fn percentile_filters(&self, relax: f64) -> Vec<PercentileFilter> {
        let relax = if relax.is_finite() { relax.max(0.0) } else { 0.0 };
        self.criteria
            .iter()
            .filter(|c| !(self.allow_insufficient_evidence && c.dimension == Dimension::Action))
            .filter_map(|c| match c.threshold {
                Threshold::MinPercentile(p) if p - relax > 0.0 => {
                    Some(PercentileFilter { dimension: c.dimension, topic: c.topic.clone(), min_percentile: p - relax })
                }
                _ => None,
            })
            .collect()
    }

    /// How many offers the budget pays for at the unit cost.
    pub fn offers_affordable(&self) -> u64 {
        if self.unit_cost <= 0 { 0 } else { (self.budget / self.unit_cost) as u64 }
    }
}

/// A minimum percentile scoring can filter on itself (`QueryAccounts`): only
/// accounts at or above it in `dimension` (its `topic` variant when set) come back.
#[derive(Debug, Clone, PartialEq)]
pub struct PercentileFilter {
    pub dimension: Dimension,
    pub topic: Option<String>,
    pub min_percentile: f64,
}

/// A finished report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub totals: Totals,
    pub per_creator: BTreeMap<AccountId, Totals>,
    pub lift: LiftEstimate,
    /// Outcomes per UTC day (days since 1970-01-01), in date order; days without
    /// any outcome are absent.
    pub daily: Vec<(i64, Day)>,
    pub head: u64,
}

pub const LIFT_METRIC: &str = "orders by the creator's pre-campaign audience (followers and engagers) after the \
offers, per creator: treated portfolio members minus randomly held-out portfolio members";

/// Difference of two group means with a Welch t interval.
#[derive(Debug, Clone, PartialEq)]
pub struct LiftEstimate {
    pub difference: f64,
    pub lower: f64,
    pub upper: f64,
    /// 0 when no interval can be given (fewer than two creators in a group).
    pub confidence: f64,
    pub treated: u64,
    pub holdout: u64,
    /// Why no interval can be given, when it cannot; `None` when it can.
    pub unavailable: Option<String>,
}

/// Welch's unequal-variance interval for mean(a) − mean(b). With fewer than
/// two observations in a group the variance is unknown, so the interval is
/// unbounded and the confidence 0: "not enough evidence" rather than a guess.
/// When both groups show no variation at all (typically: no orders anywhere),
/// there is no data to measure lift with, and the estimate says so instead of
/// giving a zero-width interval.
pub fn welch(a: &[f64], b: &[f64], confidence: f64) -> LiftEstimate {
    let (na, nb) = (a.len(), b.len());
    let mean = |x: &[f64]| if x.is_empty() { 0.0 } else { x.iter().sum::<f64>() / x.len() as f64 };
    let var = |x: &[f64], m: f64| x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() as f64 - 1.0);
    let (ma, mb) = (mean(a), mean(b));
    let difference = ma - mb;
    let unbounded = LiftEstimate {
        difference,
        lower: f64::NEG_INFINITY,
        upper: f64::INFINITY,
        confidence: 0.0,
        treated: na as u64,
        holdout: nb as u64,
        unavailable: None,
    };
    let unavailable = |why: String| LiftEstimate { unavailable: Some(why), ..unbounded.clone() };
    if !(0.0..1.0).contains(&confidence) || confidence <= 0.0 {
        return unavailable(format!("confidence {confidence} is not between 0 and 1"));
    }
    if na < 2 || nb < 2 {
        return unavailable(format!(
            "{na} treated and {nb} held-out creators: each group needs at least 2 to estimate its variance"
        ));
    }
    let (va, vb) = (var(a, ma) / na as f64, var(b, mb) / nb as f64);
    let se = (va + vb).sqrt();
    if se == 0.0 {
        return unavailable(if ma == 0.0 && mb == 0.0 {
            "no orders by any creator's pre-campaign audience in either group yet, so there is no data to \
             measure lift with"
                .to_owned()
        } else {
            format!(
                "every creator in each group has the same outcome ({ma} treated, {mb} held out): with no \
                 variation there is no interval"
            )
        });
    }
    let df = (va + vb).powi(2) / (va.powi(2) / (na as f64 - 1.0) + vb.powi(2) / (nb as f64 - 1.0));
    let t = student_t_quantile(0.5 + confidence / 2.0, df);
    LiftEstimate { lower: difference - t * se, upper: difference + t * se, confidence, ..unbounded }
}

/// Standard normal quantile (`crate::stats`, on `statrs`).
pub fn normal_quantile(p: f64) -> f64 {
    crate::stats::normal_quantile(p)
}

/// Student t quantile for real-valued degrees of freedom (`crate::stats`, on
/// `statrs`); the normal quantile when `df` is infinite or not positive.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    crate::stats::student_t_quantile(p, df)
}

/// Entered / left / stayed between two eligible sets.
pub fn churn(before: &BTreeSet<AccountId>, after: &BTreeSet<AccountId>) -> (u64, u64, u64) {
    let stayed = before.intersection(after).count() as u64;
    (after.len() as u64 - stayed, before.len() as u64 - stayed, stayed)
}

/// Moves an absolute value through a published recalibration: finds its
/// quantile under the old model and returns the new model's value at that
/// quantile, interpolating linearly between published points. Values outside
/// the published range clamp to its ends.
pub fn translate_value(x: f64, old: &[(f64, f64)], new: &[(f64, f64)]) -> Option<f64> {
    let q = interpolate(x, old.iter().map(|&(q, v)| (v, q)))?;
    interpolate(q, new.iter().copied())
}

/// Piecewise-linear y(x) through points sorted by x.
fn interpolate(x: f64, points: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    let mut pts: Vec<(f64, f64)> = points.filter(|(a, b)| a.is_finite() && b.is_finite()).collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (first, last) = (pts.first()?, pts.last()?);
    if x <= first.0 {
        return Some(first.1);
    }
    if x >= last.0 {
        return Some(last.1);
    }
    pts.windows(2).find(|w| x >= w[0].0 && x <= w[1].0).map(|w| {
        let (x0, y0, x1, y1) = (w[0].0, w[0].1, w[1].0, w[1].1);
        if x1 == x0 { y0.max(y1) } else { y0 + (y1 - y0) * (x - x0) / (x1 - x0) }
    })
}

#[cfg(test)]
mod tests;

pub use report::ReportSummary;
