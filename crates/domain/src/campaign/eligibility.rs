//! Eligibility and ranking: a candidate's scores as scoring reported them,
//! each rule's verdict with its margin, the objective's ranking key and the
//! expected outcome with its interval.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{CampaignSpec, Criterion, Objective, Threshold};
use crate::account::AccountId;
use crate::score::Dimension;

/// One score of one account as scoring reported it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScoreEntry {
    pub value: f64,
    pub percentile: f64,
    pub lower: f64,
    pub upper: f64,
    /// False only where scoring said the evidence is insufficient or absent.
    pub sufficient: bool,
    /// Scoring said there is no evidence at all (e.g. no attributed click).
    pub no_data: bool,
    pub raw: BTreeMap<String, f64>,
}

/// An account's scores keyed by (dimension, topic); the overall score has an empty topic.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreCard {
    pub account: AccountId,
    pub handle: String,
    pub scores: HashMap<(Dimension, String), ScoreEntry>,
}

impl ScoreCard {
    pub fn get(&self, d: Dimension, topic: Option<&str>) -> Option<&ScoreEntry> {
        self.scores.get(&(d, topic.unwrap_or_default().to_owned()))
    }

    /// The campaign topics the account has a topic score in, in the campaign's order.
    pub fn topics_matched(&self, topics: &[String]) -> Vec<String> {
        topics.iter().filter(|t| self.scores.keys().any(|(_, k)| k == *t)).cloned().collect()
    }

    fn value(&self, d: Dimension) -> f64 {
        self.get(d, None).map_or(0.0, |s| s.value)
    }
}

/// One criterion's verdict on one account.
#[derive(Debug, Clone, PartialEq)]
pub struct CriterionResult {
    pub criterion: Criterion,
    pub passed: bool,
    /// Observed minus threshold, in the threshold's units.
    pub margin: f64,
    pub observed: f64,
    /// Why the rule failed when the threshold alone does not say; empty otherwise.
    pub reason: String,
}

/// Judges one rule. An account with no score for the rule's dimension/topic
/// is observed at 0: it has shown nothing there, which is the bottom of both scales.
///
/// A rule on a dimension with an evidence state (action) fails an account
/// without sufficient evidence whatever its value, with margin −∞ (never a near
/// miss) and the reason stated — unless `allow_insufficient` is set, which lets
/// insufficient evidence be judged by its point estimate; no evidence always fails.
pub fn evaluate_criterion(c: &Criterion, card: &ScoreCard, allow_insufficient: bool) -> CriterionResult {
    let entry = card.get(c.dimension, c.topic.as_deref());
    let observed = match c.threshold {
        Threshold::MinPercentile(_) => entry.map_or(0.0, |e| e.percentile),
        Threshold::MinValue(_) => entry.map_or(0.0, |e| e.value),
    };
    let evidence_failure = match entry.filter(|_| c.dimension == Dimension::Action) {
        Some(e) if e.no_data => Some("no action evidence (no attributed clicks)".to_owned()),
        // No click count here: clicks come from every brand's links, and one
        // brand must not read another's outcomes as counts (only as the score).
        Some(e) if !e.sufficient && !allow_insufficient => {
            Some("insufficient action evidence (the action score's interval is too wide to judge)".to_owned())
        }
        _ => None,
    };
    if let Some(reason) = evidence_failure {
        return CriterionResult { criterion: c.clone(), passed: false, margin: f64::NEG_INFINITY, observed, reason };
    }
    let margin = observed - c.threshold.bound();
    CriterionResult { criterion: c.clone(), passed: margin >= 0.0, margin, observed, reason: String::new() }
}

/// Every rule's verdict on one account, and whether the brand excluded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub results: Vec<CriterionResult>,
    pub excluded: bool,
    /// The campaign names topics and the account is scored in none of them.
    pub off_topic: bool,
    /// The campaign topics the account is scored in.
    pub topics_matched: Vec<String>,
}

impl Evaluation {
    pub fn eligible(&self) -> bool {
        !self.excluded && !self.off_topic && self.results.iter().all(|r| r.passed)
    }

    /// How far the account is from eligibility when it fails exactly one rule
    /// by at most `max_margin`; `None` otherwise (eligible, excluded, or further off).
    pub fn near_miss(&self, max_margin: f64) -> Option<f64> {
        if self.excluded || self.off_topic || !max_margin.is_finite() || max_margin <= 0.0 {
            return None;
        }
        let mut failed = self.results.iter().filter(|r| !r.passed);
        let first = failed.next()?;
        (failed.next().is_none() && -first.margin <= max_margin).then_some(-first.margin)
    }
}

/// Judges an account against every rule, the exclusions and the campaign's topics.
pub fn evaluate(spec: &CampaignSpec, rules: &[Criterion], card: &ScoreCard) -> Evaluation {
    let topics_matched = card.topics_matched(&spec.topics);
    Evaluation {
        results: rules.iter().map(|c| evaluate_criterion(c, card, spec.allow_insufficient_evidence)).collect(),
        excluded: spec.excluded.contains(&card.account),
        off_topic: !spec.topics.is_empty() && topics_matched.is_empty(),
        topics_matched,
    }
}

/// The ranking key of an objective: reach ranks by the reach score with
/// network standing as the tie-break; engagement by activity; conversions by
/// the *lower* end of the action interval, so a creator with little evidence
/// does not outrank one with proven conversions on a lucky estimate.
pub fn objective_score(objective: Objective, card: &ScoreCard) -> (f64, f64) {
    match objective {
        Objective::Reach => (card.value(Dimension::Reach), card.value(Dimension::Network)),
        Objective::Engagement => (card.value(Dimension::Activity), card.value(Dimension::Reach)),
        Objective::Conversions => {
            let a = card.get(Dimension::Action, None);
            (a.map_or(0.0, |a| if a.sufficient { a.lower } else { 0.0 }), a.map_or(0.0, |a| a.value))
        }
    }
}

/// Orders candidates best first: objective key, tie-break, then account id so
/// the order (and therefore pagination) is total and stable.
pub fn rank_order(a: &((f64, f64), &AccountId), b: &((f64, f64), &AccountId)) -> std::cmp::Ordering {
    b.0.0.total_cmp(&a.0.0).then(b.0.1.total_cmp(&a.0.1)).then(a.1.cmp(b.1))
}

/// An outcome estimate with its interval, in a stated unit.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Expected {
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    pub unit: String,
}

impl Expected {
    /// Sum of independent per-creator outcomes; the interval adds the ends,
    /// which is conservative (wider than the independent-sum interval).
    pub fn sum<'a>(items: impl IntoIterator<Item = &'a Expected>, unit: &str) -> Expected {
        let mut e = Expected { unit: unit.to_owned(), ..Expected::default() };
        for i in items {
            e.expected += i.expected;
            e.lower += i.lower;
            e.upper += i.upper;
        }
        e
    }
}

/// Raw metrics, in order of preference, that count an objective's outcome per creator.
const REACH_RAW: &[&str] = &["unique_engagers", "distinct_engagers", "audience", "followers"];
const ENGAGEMENT_RAW: &[&str] = &["engagements_received", "engagements", "responses"];
const CONVERSION_RAW: &[&str] = &["conversions"];

/// The raw metrics [`expected_outcome`] reads for an objective, in order of
/// preference: the first one present in the objective dimension's raw map counts.
pub fn outcome_raw_keys(objective: Objective) -> &'static [&'static str] {
    match objective {
        Objective::Reach => REACH_RAW,
        Objective::Engagement => ENGAGEMENT_RAW,
        Objective::Conversions => CONVERSION_RAW,
    }
}

/// What one offer to this creator is expected to bring, in the objective's unit.
///
/// Reach and engagement are counted from the creator's observed raw metrics
/// (public activity) with a Poisson 90 % interval (±1.645·√n). Conversions
/// are every brand's outcomes: a campaign sees them only as the action score
/// and its interval, never as counts, so no brand learns another's sales
/// through a shared creator (its own outcomes are in its campaign reports).
/// When scoring reports no count the score itself is returned and the unit
/// says so, rather than inventing one.
pub fn expected_outcome(objective: Objective, card: &ScoreCard) -> Expected {
    let (dim, keys, unit) = (objective.primary_dimension(), outcome_raw_keys(objective), objective.outcome_unit());
    let Some(entry) = card.get(dim, None) else {
        return Expected { unit: format!("{} score (0-100), no score yet", dim.name()), ..Expected::default() };
    };
    if objective == Objective::Conversions {
        return Expected {
            expected: entry.value,
            lower: entry.lower.min(entry.value),
            upper: entry.upper.max(entry.value),
            unit: format!("{} score (0-100; outcomes of every brand, never their counts)", dim.name()),
        };
    }
    let count = keys.iter().find_map(|k| entry.raw.get(*k).copied()).filter(|x| x.is_finite() && *x >= 0.0);
    match count {
        Some(n) => {
            let half = 1.645 * n.sqrt();
            Expected { expected: n, lower: (n - half).max(0.0), upper: n + half, unit: unit.to_owned() }
        }
        None => Expected {
            expected: entry.value,
            lower: entry.lower.min(entry.value),
            upper: entry.upper.max(entry.value),
            unit: format!("{} score (0-100)", dim.name()),
        },
    }
}
