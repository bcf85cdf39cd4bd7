//! The matching wire's campaign spec and criteria, and scoring's account scores,
//! ↔ the domain's campaign rules. Matching validates specs with these; the CLI's
//! report benchmark and the fuzz targets build and check the same specs.

use std::collections::BTreeSet;

use lift_domain::AccountId;
use lift_domain::Dimension;
use lift_domain::campaign::{
    CampaignSpec, Criterion, DEFAULT_ATTRIBUTION_WINDOW_SECS, MAX_ATTRIBUTION_WINDOW_SECS, MAX_BUDGET, MAX_CRITERIA,
    MAX_EXCLUDED, MAX_HOLDOUT_SHARE, MAX_NAME_LEN, MAX_PERK_LEN, MAX_TOPIC_LEN, MAX_TOPICS, Objective, ScoreCard,
    ScoreEntry, Threshold, landing_url_problem,
};
use lift_domain::validation::{
    FieldViolation, Violations, check_text, check_token, check_unit_range, is_known_currency,
};

use super::{AccountIdProto, DimensionProto};
use crate::matching::v1 as pb;
use crate::scoring::v1 as spb;

/// Wire conversions of [`Objective`].
pub trait ObjectiveProto: Sized {
    fn from_proto(v: i32) -> Option<Self>;
    fn to_proto(self) -> pb::Objective;
}

impl ObjectiveProto for Objective {
    fn from_proto(v: i32) -> Option<Self> {
        match pb::Objective::try_from(v).ok()? {
            pb::Objective::Reach => Some(Objective::Reach),
            pb::Objective::Engagement => Some(Objective::Engagement),
            pb::Objective::Conversions => Some(Objective::Conversions),
            pb::Objective::Unspecified => None,
        }
    }

    fn to_proto(self) -> pb::Objective {
        match self {
            Objective::Reach => pb::Objective::Reach,
            Objective::Engagement => pb::Objective::Engagement,
            Objective::Conversions => pb::Objective::Conversions,
        }
    }
}

/// Wire conversions of [`Criterion`].
pub trait CriterionProto: Sized {
    fn to_proto(&self) -> pb::Criterion;
    /// Validates one wire criterion, recording violations under `field` (e.g. `criteria[2]`).
    fn from_proto(c: &pb::Criterion, field: &str, v: &mut Violations) -> Option<Self>;
}

impl CriterionProto for Criterion {
    fn to_proto(&self) -> pb::Criterion {
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

/// Wire conversions of [`CampaignSpec`].
pub trait CampaignSpecProto: Sized {
    /// Validates a wire spec, reporting every problem at once. Field paths are
    /// relative to the spec (`name`, `criteria[2].min_percentile`, ...).
    fn from_proto(s: &pb::CampaignSpec) -> Result<Self, Vec<FieldViolation>>;
    fn to_proto(&self) -> pb::CampaignSpec;
}

impl CampaignSpecProto for CampaignSpec {
    fn from_proto(s: &pb::CampaignSpec) -> Result<Self, Vec<FieldViolation>> {
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

    fn to_proto(&self) -> pb::CampaignSpec {
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
}

/// Reading scoring's answer into a [`ScoreCard`].
pub trait ScoreCardProto: Sized {
    /// `None` when scoring sent an account without an id, which cannot be offered anything.
    fn from_proto(a: &spb::AccountScores) -> Option<Self>;
}

impl ScoreCardProto for ScoreCard {
    fn from_proto(a: &spb::AccountScores) -> Option<Self> {
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
}

fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

#[cfg(test)]
mod tests;
