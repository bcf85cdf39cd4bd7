use lift_domain::campaign::{CampaignSpec, DEFAULT_ATTRIBUTION_WINDOW_SECS, MAX_ATTRIBUTION_WINDOW_SECS, MAX_BUDGET};
use lift_domain::{AccountId, Dimension};
use proptest::prelude::*;

use super::*;
use crate::ingest::v1 as ipb;

fn acct(id: &str) -> AccountId {
    AccountId::new("x", id)
}

fn criterion(d: spb::Dimension, topic: &str, p: f64) -> pb::Criterion {
    pb::Criterion {
        dimension: d as i32,
        topic: topic.into(),
        threshold: Some(pb::criterion::Threshold::MinPercentile(p)),
    }
}

fn valid() -> pb::CampaignSpec {
    pb::CampaignSpec {
        name: "Spring launch".into(),
        objective: pb::Objective::Conversions as i32,
        perk: "free sample box".into(),
        unit_cost: 2_500,
        budget: 100_000,
        currency: "eur".into(),
        topics: vec!["Coffee".into()],
        criteria: vec![criterion(spb::Dimension::Reach, "", 80.0), criterion(spb::Dimension::Activity, "coffee", 50.0)],
        min_authenticity: 60.0,
        excluded: vec![acct("banned").to_proto()],
        holdout_share: 0.2,
        attribution_window_secs: 0,
        allow_insufficient_evidence: false,
        landing_url: String::new(),
    }
}

fn fields(s: &pb::CampaignSpec) -> Vec<String> {
    CampaignSpec::from_proto(s).err().unwrap_or_default().into_iter().map(|v| v.field).collect()
}

/// Pins normalisation (currency, topics, default window) and the wire round trip.
#[test]
fn valid_spec_normalises_and_round_trips() {
    let spec = CampaignSpec::from_proto(&valid()).expect("valid");
    assert_eq!(spec.currency, "EUR");
    assert_eq!(spec.topics, vec!["coffee"]);
    assert_eq!(spec.attribution_window_secs, DEFAULT_ATTRIBUTION_WINDOW_SECS);
    assert_eq!(spec.offers_affordable(), 40);
    assert_eq!(CampaignSpec::from_proto(&spec.to_proto()), Ok(spec));
}

/// Pins that every invalid field is reported at once, under its own path.
#[test]
fn violations_name_every_field() {
    let mut s = valid();
    s.name = "  ".into();
    s.objective = 0;
    s.unit_cost = 0;
    s.currency = "XXX".into();
    s.criteria.push(pb::Criterion { dimension: 0, topic: String::new(), threshold: None });
    s.criteria.push(criterion(spb::Dimension::Network, "", 101.0));
    s.criteria.push(criterion(spb::Dimension::Reach, "", 10.0));
    s.min_authenticity = f64::NAN;
    s.excluded.push(ipb::AccountRef { network: "x".into(), id: String::new() });
    s.holdout_share = 0.6;
    s.attribution_window_secs = MAX_ATTRIBUTION_WINDOW_SECS + 1;
    assert_eq!(
        fields(&s),
        vec![
            "name",
            "objective",
            "unit_cost",
            "currency",
            "criteria[2].dimension",
            "criteria[2].threshold",
            "criteria[3].min_percentile",
            "criteria[4]",
            "min_authenticity",
            "excluded[1].id",
            "holdout_share",
            "attribution_window_secs",
        ]
    );
}

/// Pins the budget rules: it must cover one unit and not overflow.
#[test]
fn budget_must_cover_one_unit() {
    let mut s = valid();
    s.budget = s.unit_cost - 1;
    assert_eq!(fields(&s), vec!["budget"]);
    s.budget = MAX_BUDGET + 1;
    assert_eq!(fields(&s), vec!["budget"]);
    s.budget = s.unit_cost;
    assert!(fields(&s).is_empty());
}

/// Pins that an action rule and the evidence opt-in survive the wire.
#[test]
fn action_spec_round_trips() {
    let mut p = valid();
    p.criteria = vec![criterion(spb::Dimension::Action, "", 90.0)];
    p.allow_insufficient_evidence = true;
    let spec = CampaignSpec::from_proto(&p).expect("valid");
    assert!(spec.allow_insufficient_evidence);
    assert_eq!(spec.criteria[0].dimension, Dimension::Action);
    assert_eq!(CampaignSpec::from_proto(&spec.to_proto()).expect("round trip"), spec);
}

proptest! {
    /// Pins that validation is total: any spec is accepted or rejected, never a panic.
    #[test]
    fn validation_is_total(
        name in ".{0,40}", objective in -1i32..5, unit_cost in any::<i64>(), budget in any::<i64>(),
        share in any::<f64>(), p in any::<f64>(), auth in any::<f64>(), window in any::<u64>(),
    ) {
        let s = pb::CampaignSpec {
            name, objective, unit_cost, budget, holdout_share: share, min_authenticity: auth,
            attribution_window_secs: window, currency: "USD".into(),
            criteria: vec![criterion(spb::Dimension::Reach, "", p)], ..Default::default()
        };
        if let Ok(spec) = CampaignSpec::from_proto(&s) {
            prop_assert!(spec.unit_cost > 0 && spec.budget >= spec.unit_cost);
            prop_assert!((0.0..=0.5).contains(&spec.holdout_share));
        }
    }
}
