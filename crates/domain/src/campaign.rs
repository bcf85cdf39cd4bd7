//! Campaign rules: a validated campaign spec, eligibility criteria evaluated
//! with pass/fail and margin, ranking by objective, the seeded holdout draw,
//! report tallies over attributed ledger events, and the lift statistic.
//!
//! Everything here is a pure function of its inputs so that the matching
//! service stays a thin layer of I/O around it, and so that a recorded seed
//! or a recorded ledger prefix reproduces a result exactly.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use lift_proto::ingest::v1 as ipb;
use lift_proto::matching::v1 as pb;
use lift_proto::scoring::v1 as spb;
use serde::{Deserialize, Serialize};

use crate::account::{AccountId, check_token};
use crate::event::{AttributionStatus, EventBody, LedgerEntry};
use crate::score::Dimension;
use crate::validation::{FieldViolation, Violations, is_known_currency};

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
    pub fn from_proto(v: i32) -> Option<Self> {
        match pb::Objective::try_from(v).ok()? {
            pb::Objective::Reach => Some(Objective::Reach),
            pb::Objective::Engagement => Some(Objective::Engagement),
            pb::Objective::Conversions => Some(Objective::Conversions),
            pb::Objective::Unspecified => None,
        }
    }

    pub fn to_proto(self) -> pb::Objective {
        match self {
            Objective::Reach => pb::Objective::Reach,
            Objective::Engagement => pb::Objective::Engagement,
            Objective::Conversions => pb::Objective::Conversions,
        }
    }

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

impl Criterion {
    pub fn to_proto(&self) -> pb::Criterion {
        pb::Criterion {
            dimension: self.dimension.to_proto() as i32,
            topic: self.topic.clone().unwrap_or_default(),
            threshold: Some(match self.threshold {
                Threshold::MinPercentile(p) => pb::criterion::Threshold::MinPercentile(p),
                Threshold::MinValue(v) => pb::criterion::Threshold::MinValue(v),
            }),
        }
    }

    fn from_proto(c: &pb::Criterion, field: &str, v: &mut Violations) -> Option<Self> {
        let before = v.len();
        let dimension = Dimension::from_proto(c.dimension);
        if dimension.is_none() {
            v.push(FieldViolation::new(
                format!("{field}.dimension"),
                "must be one of activity, reach, network, action, authenticity",
            ));
        }
        let topic = (!c.topic.is_empty()).then(|| c.topic.to_lowercase());
        if let Some(t) = &topic {
            check_token(t, &format!("{field}.topic"), MAX_TOPIC_LEN, v);
        }
        let threshold = match c.threshold {
            None => {
                v.push(FieldViolation::new(format!("{field}.threshold"), "min_percentile or min_value is required"));
                None
            }
            Some(pb::criterion::Threshold::MinPercentile(p)) => {
                check_unit_range(p, 0.0, 100.0, &format!("{field}.min_percentile"), v);
                Some(Threshold::MinPercentile(p))
            }
            Some(pb::criterion::Threshold::MinValue(x)) => {
                check_unit_range(x, 0.0, 100.0, &format!("{field}.min_value"), v);
                Some(Threshold::MinValue(x))
            }
        };
        match (dimension, threshold) {
            (Some(dimension), Some(threshold)) if v.len() == before => Some(Self { dimension, topic, threshold }),
            _ => None,
        }
    }
}

fn check_unit_range(x: f64, lo: f64, hi: f64, field: &str, v: &mut Violations) {
    if !x.is_finite() || x < lo || x > hi {
        v.push(FieldViolation::new(field, format!("is {x}; it must be between {lo} and {hi}")));
    }
}

fn check_text(s: &str, field: &str, max: usize, v: &mut Violations) {
    if s.len() > max {
        v.push(FieldViolation::new(field, format!("is {} bytes long; the limit is {max}", s.len())));
    } else if s.chars().any(char::is_control) {
        v.push(FieldViolation::new(field, "must not contain control characters"));
    }
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
    /// Validates a wire spec, reporting every problem at once. Field paths are
    /// relative to the spec (`name`, `criteria[2].min_percentile`, ...).
    pub fn from_proto(s: &pb::CampaignSpec) -> Result<Self, Vec<FieldViolation>> {
        let mut v = Violations::new();
        let name = s.name.trim().to_owned();
        if name.is_empty() {
            v.push(FieldViolation::new("name", "is required"));
        } else {
            check_text(&name, "name", MAX_NAME_LEN, &mut v);
        }
        let objective = Objective::from_proto(s.objective);
        if objective.is_none() {
            v.push(FieldViolation::new("objective", "must be one of reach, engagement, conversions"));
        }
        check_text(&s.perk, "perk", MAX_PERK_LEN, &mut v);
        if s.unit_cost <= 0 {
            v.push(FieldViolation::new("unit_cost", format!("is {}; it must be greater than 0", s.unit_cost)));
        }
        if s.budget > MAX_BUDGET {
            v.push(FieldViolation::new("budget", format!("is {}; the limit is {MAX_BUDGET}", s.budget)));
        } else if s.unit_cost > 0 && s.budget < s.unit_cost {
            v.push(FieldViolation::new(
                "budget",
                format!("is {}; it must cover at least one unit cost ({})", s.budget, s.unit_cost),
            ));
        } else if s.budget <= 0 {
            v.push(FieldViolation::new("budget", format!("is {}; it must be greater than 0", s.budget)));
        }
        let currency = s.currency.to_ascii_uppercase();
        if !is_known_currency(&currency) {
            v.push(FieldViolation::new("currency", format!("{:?} is not a known ISO 4217 code", s.currency)));
        }
        let mut topics = Vec::new();
        if s.topics.len() > MAX_TOPICS {
            v.push(FieldViolation::new("topics", format!("has {} items; the limit is {MAX_TOPICS}", s.topics.len())));
        } else {
            for (i, t) in s.topics.iter().enumerate() {
                let t = t.to_lowercase();
                let before = v.len();
                check_token(&t, &format!("topics[{i}]"), MAX_TOPIC_LEN, &mut v);
                if v.len() == before && !topics.contains(&t) {
                    topics.push(t);
                }
            }
        }
        let mut criteria: Vec<Criterion> = Vec::new();
        if s.criteria.len() > MAX_CRITERIA {
            v.push(FieldViolation::new(
                "criteria",
                format!("has {} items; the limit is {MAX_CRITERIA}", s.criteria.len()),
            ));
        } else {
            for (i, c) in s.criteria.iter().enumerate() {
                let field = format!("criteria[{i}]");
                if let Some(c) = Criterion::from_proto(c, &field, &mut v) {
                    if criteria.iter().any(|o| o.dimension == c.dimension && o.topic == c.topic) {
                        v.push(FieldViolation::new(
                            field,
                            format!(
                                "repeats the {} criterion{}; give each dimension and topic one threshold",
                                c.dimension,
                                c.topic.as_deref().map(|t| format!(" for topic {t:?}")).unwrap_or_default()
                            ),
                        ));
                    } else {
                        criteria.push(c);
                    }
                }
            }
        }
        check_unit_range(s.min_authenticity, 0.0, 100.0, "min_authenticity", &mut v);
        let mut excluded = BTreeSet::new();
        if s.excluded.len() > MAX_EXCLUDED {
            v.push(FieldViolation::new(
                "excluded",
                format!("has {} items; the limit is {MAX_EXCLUDED}", s.excluded.len()),
            ));
        } else {
            for (i, a) in s.excluded.iter().enumerate() {
                if let Some(a) = AccountId::from_proto(Some(a), &format!("excluded[{i}]"), &mut v) {
                    excluded.insert(a);
                }
            }
        }
        check_unit_range(s.holdout_share, 0.0, MAX_HOLDOUT_SHARE, "holdout_share", &mut v);
        let attribution_window_secs = match s.attribution_window_secs {
            0 => DEFAULT_ATTRIBUTION_WINDOW_SECS,
            w if w > MAX_ATTRIBUTION_WINDOW_SECS => {
                v.push(FieldViolation::new(
                    "attribution_window_secs",
                    format!("is {w}; the limit is {MAX_ATTRIBUTION_WINDOW_SECS} (90 days)"),
                ));
                w
            }
            w => w,
        };
        let landing_url = s.landing_url.trim().to_owned();
        if !landing_url.is_empty()
            && let Some(problem) = landing_url_problem(&landing_url)
        {
            v.push(FieldViolation::new("landing_url", problem));
        }
        match objective {
            Some(objective) if v.is_empty() => Ok(Self {
                name,
                objective,
                perk: s.perk.clone(),
                unit_cost: s.unit_cost,
                budget: s.budget,
                currency,
                topics,
                criteria,
                min_authenticity: s.min_authenticity,
                excluded,
                holdout_share: s.holdout_share,
                attribution_window_secs,
                allow_insufficient_evidence: s.allow_insufficient_evidence,
                landing_url,
            }),
            _ => Err(v),
        }
    }

    pub fn to_proto(&self) -> pb::CampaignSpec {
        pb::CampaignSpec {
            name: self.name.clone(),
            objective: self.objective.to_proto() as i32,
            perk: self.perk.clone(),
            unit_cost: self.unit_cost,
            budget: self.budget,
            currency: self.currency.clone(),
            topics: self.topics.clone(),
            criteria: self.criteria.iter().map(Criterion::to_proto).collect(),
            min_authenticity: self.min_authenticity,
            excluded: self.excluded.iter().map(AccountId::to_proto).collect(),
            holdout_share: self.holdout_share,
            attribution_window_secs: self.attribution_window_secs,
            allow_insufficient_evidence: self.allow_insufficient_evidence,
            landing_url: self.landing_url.clone(),
        }
    }

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
    pub fn percentile_filters(&self, relax: f64) -> Vec<spb::PercentileFilter> {
        let relax = if relax.is_finite() { relax.max(0.0) } else { 0.0 };
        self.criteria
            .iter()
            .filter(|c| !(self.allow_insufficient_evidence && c.dimension == Dimension::Action))
            .filter_map(|c| match c.threshold {
                Threshold::MinPercentile(p) if p - relax > 0.0 => Some(spb::PercentileFilter {
                    dimension: c.dimension.to_proto() as i32,
                    topic: c.topic.clone().unwrap_or_default(),
                    min_percentile: p - relax,
                }),
                _ => None,
            })
            .collect()
    }

    /// How many offers the budget pays for at the unit cost.
    pub fn offers_affordable(&self) -> u64 {
        if self.unit_cost <= 0 { 0 } else { (self.budget / self.unit_cost) as u64 }
    }
}

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
    /// `None` when scoring sent an account without an id, which cannot be offered anything.
    pub fn from_proto(a: &spb::AccountScores) -> Option<Self> {
        let r = a.account.as_ref().filter(|r| !r.network.is_empty() && !r.id.is_empty())?;
        let scores = a
            .scores
            .iter()
            .filter_map(|s| {
                let d = Dimension::from_proto(s.dimension)?;
                let entry = ScoreEntry {
                    value: finite_or_zero(s.value),
                    percentile: finite_or_zero(s.percentile),
                    lower: finite_or_zero(s.lower),
                    upper: finite_or_zero(s.upper),
                    sufficient: s.evidence != spb::Evidence::Insufficient as i32
                        && s.evidence != spb::Evidence::NoData as i32,
                    no_data: s.evidence == spb::Evidence::NoData as i32,
                    raw: s.raw.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                };
                Some(((d, s.topic.to_lowercase()), entry))
            })
            .collect();
        Some(Self { account: AccountId::new(r.network.clone(), r.id.clone()), handle: a.handle.clone(), scores })
    }

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

fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
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

impl CriterionResult {
    pub fn to_proto(&self) -> pb::CriterionResult {
        pb::CriterionResult {
            criterion: Some(self.criterion.to_proto()),
            passed: self.passed,
            margin: self.margin,
            observed: self.observed,
            reason: self.reason.clone(),
        }
    }
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
    pub fn to_proto(&self) -> pb::ExpectedOutcome {
        pb::ExpectedOutcome { expected: self.expected, lower: self.lower, upper: self.upper, unit: self.unit.clone() }
    }

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

/// SplitMix64 (Steele, Lea, Flood 2014), written out here rather than taken
/// from a crate: a recorded holdout seed must reproduce the same draw for as
/// long as the campaign's report is read, whatever library versions come later.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` without modulo bias (Lemire 2019). `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// How many of `n` creators a share holds out. A positive share over at least
/// two creators holds out at least one, else lift could never be measured.
pub fn holdout_size(n: usize, share: f64) -> usize {
    if n == 0 || !share.is_finite() || share <= 0.0 {
        return 0;
    }
    let k = (share.min(1.0) * n as f64).round() as usize;
    if n >= 2 { k.clamp(1, n - 1) } else { k.min(n) }
}

/// Draws the holdout: `holdout_size` of the portfolio and, separately, of the
/// other eligible creators, each a uniform sample fixed by `seed`.
///
/// Stratifying on portfolio membership is what makes lift honest: the held-out
/// portfolio members are exactly the creators who *would* have been offered,
/// so comparing them with the treated members compares like with like, where a
/// random slice of all eligible creators would be systematically weaker than
/// the creators the portfolio picked.
pub fn draw_holdout(eligible: &[AccountId], portfolio: &BTreeSet<AccountId>, share: f64, seed: u64) -> Holdout {
    let members: Vec<AccountId> = portfolio.iter().cloned().collect();
    let rest: Vec<AccountId> =
        eligible.iter().filter(|a| !portfolio.contains(*a)).cloned().collect::<BTreeSet<_>>().into_iter().collect();
    let mut rng = SplitMix64::new(seed);
    let from_portfolio = sample(members, holdout_size(portfolio.len(), share), &mut rng);
    let from_rest = sample(rest, holdout_size(eligible.len().saturating_sub(portfolio.len()), share), &mut rng);
    Holdout { from_portfolio, from_rest, seed }
}

fn sample(mut items: Vec<AccountId>, k: usize, rng: &mut SplitMix64) -> BTreeSet<AccountId> {
    let k = k.min(items.len());
    for i in 0..k {
        let j = i + rng.below((items.len() - i) as u64) as usize;
        items.swap(i, j);
    }
    items.truncate(k);
    items.into_iter().collect()
}

/// The result of a holdout draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Holdout {
    /// Portfolio members held out: the control group for lift.
    pub from_portfolio: BTreeSet<AccountId>,
    /// Eligible creators outside the portfolio held out too, so the holdout is
    /// a share of all eligible creators as the campaign specified.
    pub from_rest: BTreeSet<AccountId>,
    pub seed: u64,
}

impl Holdout {
    pub fn contains(&self, a: &AccountId) -> bool {
        self.from_portfolio.contains(a) || self.from_rest.contains(a)
    }

    pub fn all(&self) -> BTreeSet<AccountId> {
        self.from_portfolio.union(&self.from_rest).cloned().collect()
    }
}

/// Outcome counts for one creator or a whole campaign.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Totals {
    pub clicks: u64,
    pub unique_visitors: u64,
    pub sessions: u64,
    pub bounced: u64,
    pub conversions: u64,
    pub value_minor: i64,
    pub code_without_click: u64,
    pub cost: i64,
}

impl Totals {
    pub fn bounce_rate(&self) -> f64 {
        if self.sessions == 0 { 0.0 } else { self.bounced as f64 / self.sessions as f64 }
    }

    /// Rounded to the nearest minor unit; 0 when there are no conversions.
    pub fn cost_per_conversion(&self) -> i64 {
        if self.conversions == 0 { 0 } else { ((self.cost as f64) / (self.conversions as f64)).round() as i64 }
    }

    pub fn to_proto(&self) -> pb::OutcomeTotals {
        pb::OutcomeTotals {
            clicks: self.clicks,
            unique_visitors: self.unique_visitors,
            sessions: self.sessions,
            bounce_rate: self.bounce_rate(),
            conversions: self.conversions,
            value_minor: self.value_minor,
            cost_per_conversion: self.cost_per_conversion(),
            code_without_click: self.code_without_click,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally {
    totals: Totals,
    visitors: HashSet<String>,
}

impl Tally {
    fn totals(&self) -> Totals {
        Totals { unique_visitors: self.visitors.len() as u64, ..self.totals.clone() }
    }
}

/// One issued offer, as the report needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedOffer {
    pub account: AccountId,
    pub link: String,
    pub code: String,
    pub cost: i64,
}

/// A campaign report built by feeding it the ledger in offset order.
///
/// Outcomes: clicks, page sessions and conversions that ingestion attributed
/// to this campaign (or that carry one of its links, for sessions ingestion
/// leaves unattributed), per owning creator. A conversion counts once per
/// order id; `code_without_click` counts the conversions that came only
/// through a code (the coupon-leak signal) and is a subset of `conversions`;
/// value sums conversions in the campaign's currency only.
///
/// Lift: each treated or held-out portfolio creator's *audience* is the set of
/// accounts that followed or engaged with them before the offers went out (so
/// the offer cannot change who is counted); the per-creator outcome is the
/// number of orders placed after the offers by customers in that audience,
/// whatever link or code they used. Treated and held-out members were split at
/// random, so the difference of their means estimates the effect of an offer.
///
/// The builder serialises (serde) so that a consumer of the ledger can keep it
/// between events and across restarts (`saved`).
#[derive(Debug, Serialize, Deserialize)]
pub struct ReportBuilder {
    campaign_id: String,
    currency: String,
    offers_offset: u64,
    by_link: HashMap<String, AccountId>,
    treated: BTreeSet<AccountId>,
    controls: BTreeSet<AccountId>,
    #[serde(with = "saved::pairs")]
    per_creator: BTreeMap<AccountId, Tally>,
    total: Tally,
    orders: HashSet<String>,
    visitor_owner: HashMap<String, AccountId>,
    post_author: HashMap<String, AccountId>,
    #[serde(with = "saved::pairs")]
    audience_of: HashMap<AccountId, Vec<AccountId>>,
    #[serde(with = "saved::pairs")]
    audience: HashMap<AccountId, HashSet<AccountId>>,
    #[serde(with = "saved::pairs")]
    audience_orders: HashMap<AccountId, HashSet<String>>,
    /// Outcomes per UTC day of the event (days since 1970-01-01).
    daily: BTreeMap<i64, Day>,
    head: u64,
}

/// A campaign's outcomes on one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Day {
    pub clicks: u64,
    pub sessions: u64,
    pub bounced: u64,
    pub conversions: u64,
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (proleptic Gregorian calendar).
pub fn date_of_day(days: i64) -> String {
    let (y, m, d) = crate::time::civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

impl ReportBuilder {
    /// `offers_offset` is the ledger head when the offers were issued: it
    /// separates the pre-treatment audience from the outcomes.
    pub fn new(
        campaign_id: &str,
        currency: &str,
        offers: &[IssuedOffer],
        controls: &BTreeSet<AccountId>,
        offers_offset: u64,
    ) -> Self {
        let mut per_creator = BTreeMap::new();
        let mut total = Tally::default();
        let mut by_link = HashMap::new();
        for o in offers {
            let t: &mut Tally = per_creator.entry(o.account.clone()).or_default();
            t.totals.cost = t.totals.cost.saturating_add(o.cost);
            total.totals.cost = total.totals.cost.saturating_add(o.cost);
            for l in [&o.link, &o.code] {
                if !l.is_empty() {
                    by_link.insert(l.clone(), o.account.clone());
                }
            }
        }
        let treated: BTreeSet<AccountId> = offers.iter().map(|o| o.account.clone()).collect();
        let audience = treated.iter().chain(controls).map(|a| (a.clone(), HashSet::new())).collect();
        Self {
            campaign_id: campaign_id.to_owned(),
            currency: currency.to_owned(),
            offers_offset,
            by_link,
            treated,
            controls: controls.clone(),
            per_creator,
            total,
            orders: HashSet::new(),
            visitor_owner: HashMap::new(),
            post_author: HashMap::new(),
            audience_of: HashMap::new(),
            audience,
            audience_orders: HashMap::new(),
            daily: BTreeMap::new(),
            head: 0,
        }
    }

    /// The ledger kinds the report reads.
    pub const KINDS: [ipb::EventKind; 6] = [
        ipb::EventKind::Post,
        ipb::EventKind::Engagement,
        ipb::EventKind::Follow,
        ipb::EventKind::LinkClick,
        ipb::EventKind::PageSession,
        ipb::EventKind::Conversion,
    ];

    fn owner(&self, e: &LedgerEntry, link: Option<&str>) -> Option<AccountId> {
        if let Some(a) = &e.attribution
            && a.campaign_id == self.campaign_id
            && a.status != AttributionStatus::Unattributed
        {
            if let Some(o) = &a.owner {
                return Some(o.clone());
            }
            if let Some(o) = self.by_link.get(&a.link) {
                return Some(o.clone());
            }
        }
        link.and_then(|l| self.by_link.get(l)).cloned()
    }

    fn tally(&mut self, owner: &AccountId) -> [&mut Tally; 2] {
        let per = self.per_creator.entry(owner.clone()).or_default();
        [per, &mut self.total]
    }

    fn day(&mut self, e: &LedgerEntry) -> &mut Day {
        self.daily.entry(e.event.occurred_at.div_euclid(crate::time::MICROS_PER_DAY)).or_default()
    }

    pub fn observe(&mut self, e: &LedgerEntry) {
        self.head = self.head.max(e.offset);
        let pre = e.offset <= self.offers_offset;
        match &e.event.body {
            EventBody::Post(p) if pre && self.audience.contains_key(&p.author) => {
                self.post_author.insert(p.post_id.clone(), p.author.clone());
            }
            EventBody::Follow(f) if pre && !f.unfollow => self.add_audience(&f.followee, &f.follower),
            EventBody::Follow(f) if pre => {
                if let Some(s) = self.audience.get_mut(&f.followee) {
                    s.remove(&f.follower);
                }
            }
            EventBody::Engagement(g) if pre => {
                let target =
                    g.target.clone().or_else(|| g.post_id.as_ref().and_then(|p| self.post_author.get(p)).cloned());
                if let Some(t) = target {
                    self.add_audience(&t, &g.actor);
                }
            }
            // Bots, prefetches and bursts stay on the ledger but are not clicks.
            EventBody::LinkClick(c) if !c.counted() => {}
            EventBody::LinkClick(c) => {
                if let Some(owner) = self.owner(e, Some(&c.link)) {
                    self.visitor_owner.insert(c.visitor_id.clone(), owner.clone());
                    let visitor = c.visitor_id.clone();
                    for t in self.tally(&owner) {
                        t.totals.clicks += 1;
                        t.visitors.insert(visitor.clone());
                    }
                    self.day(e).clicks += 1;
                }
            }
            EventBody::PageSession(s) => {
                let owner = self.owner(e, s.link.as_deref()).or_else(|| self.visitor_owner.get(&s.visitor_id).cloned());
                if let Some(owner) = owner {
                    for t in self.tally(&owner) {
                        t.totals.sessions += 1;
                        t.totals.bounced += u64::from(s.bounced);
                    }
                    let bounced = u64::from(s.bounced);
                    let day = self.day(e);
                    day.sessions += 1;
                    day.bounced += bounced;
                }
            }
            EventBody::Conversion(c) => {
                if pre || !self.orders.insert(c.order_id.clone()) {
                    return;
                }
                if let Some(customer) = &c.customer
                    && let Some(creators) = self.audience_of.get(customer)
                {
                    for cr in creators {
                        self.audience_orders.entry(cr.clone()).or_default().insert(c.order_id.clone());
                    }
                }
                let Some(a) = e.attribution.as_ref().filter(|a| a.campaign_id == self.campaign_id) else {
                    return;
                };
                let leak = match a.status {
                    AttributionStatus::Click => false,
                    AttributionStatus::CodeWithoutClick => true,
                    AttributionStatus::Unattributed => return,
                };
                let Some(owner) = self.owner(e, c.code.as_deref()) else { return };
                let value = if c.currency.eq_ignore_ascii_case(&self.currency) { c.value_minor } else { 0 };
                for t in self.tally(&owner) {
                    t.totals.conversions += 1;
                    t.totals.value_minor = t.totals.value_minor.saturating_add(value);
                    t.totals.code_without_click += u64::from(leak);
                }
                self.day(e).conversions += 1;
            }
            _ => {}
        }
    }

    fn add_audience(&mut self, creator: &AccountId, member: &AccountId) {
        if let Some(s) = self.audience.get_mut(creator)
            && s.insert(member.clone())
        {
            self.audience_of.entry(member.clone()).or_default().push(creator.clone());
        }
    }

    /// The report as of the events observed so far; `finish` without giving
    /// up the builder, through the same [`ReportSummary`].
    pub fn summary(&self) -> ReportSummary {
        let outcome = |a: &AccountId| self.audience_orders.get(a).map_or(0.0, |o| o.len() as f64);
        ReportSummary {
            totals: self.total.totals(),
            per_creator: self.per_creator.iter().map(|(a, t)| (a.clone(), t.totals())).collect(),
            daily: self.daily.iter().map(|(d, v)| (*d, *v)).collect(),
            head: self.head,
            treated_outcomes: self.treated.iter().map(outcome).collect(),
            control_outcomes: self.controls.iter().map(outcome).collect(),
        }
    }

    pub fn finish(self, confidence: f64) -> Report {
        self.summary().report(confidence)
    }
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

mod saved;
#[cfg(test)]
mod tests;

pub use saved::ReportSummary;
