use std::collections::HashMap;

use super::*;
use crate::event::{
    Attribution, AttributionStatus, Conversion, Event, EventBody, Follow, LedgerEntry, LinkClick, PageSession,
};

fn acct(id: &str) -> AccountId {
    AccountId::new("x", id)
}

fn criterion(dimension: Dimension, topic: &str, p: f64) -> Criterion {
    Criterion {
        dimension,
        topic: (!topic.is_empty()).then(|| topic.to_owned()),
        threshold: Threshold::MinPercentile(p),
    }
}

/// A valid spec as `lift_proto::convert` produces it from the wire (normalised:
/// upper-case currency, lower-case topics, the default attribution window).
fn valid() -> CampaignSpec {
    CampaignSpec {
        name: "Spring launch".into(),
        objective: Objective::Conversions,
        perk: "free sample box".into(),
        unit_cost: 2_500,
        budget: 100_000,
        currency: "EUR".into(),
        topics: vec!["coffee".into()],
        criteria: vec![criterion(Dimension::Reach, "", 80.0), criterion(Dimension::Activity, "coffee", 50.0)],
        min_authenticity: 60.0,
        excluded: [acct("banned")].into_iter().collect(),
        holdout_share: 0.2,
        attribution_window_secs: DEFAULT_ATTRIBUTION_WINDOW_SECS,
        allow_insufficient_evidence: false,
        landing_url: String::new(),
    }
}

/// Pins the budget arithmetic and that a spec survives serde (how matching stores it).
#[test]
fn spec_affords_offers_and_serialises() {
    let spec = valid();
    assert_eq!(spec.offers_affordable(), 40);
    let json = serde_json::to_string(&spec).expect("serialises");
    assert_eq!(serde_json::from_str::<CampaignSpec>(&json).expect("parses"), spec);
}

fn card(id: &str, scores: &[(Dimension, &str, f64, f64)]) -> ScoreCard {
    ScoreCard {
        account: acct(id),
        handle: id.into(),
        scores: scores
            .iter()
            .map(|&(d, t, value, percentile)| {
                ((d, t.to_owned()), ScoreEntry { value, percentile, lower: value, upper: value, ..Default::default() })
            })
            .collect(),
    }
}

/// Pins margins: observed minus threshold in the threshold's own units, a
/// missing score observed at 0, and min authenticity judged on the value.
#[test]
fn criteria_report_pass_fail_and_margin() {
    let spec = valid();
    let rules = spec.rules();
    assert_eq!(rules.len(), 3);
    let c = card("anna", &[(Dimension::Reach, "", 40.0, 85.0), (Dimension::Authenticity, "", 58.5, 10.0)]);
    let e = evaluate(&spec, &rules, &c);
    let got: Vec<(bool, f64, f64)> = e.results.iter().map(|r| (r.passed, r.margin, r.observed)).collect();
    assert_eq!(got, vec![(true, 5.0, 85.0), (false, -50.0, 0.0), (false, -1.5, 58.5)]);
    assert!(!e.eligible());
    assert_eq!(e.near_miss(100.0), None, "two failures are not a near miss");

    let c = card(
        "ben",
        &[
            (Dimension::Reach, "", 1.0, 78.0),
            (Dimension::Activity, "coffee", 1.0, 50.0),
            (Dimension::Authenticity, "", 90.0, 1.0),
        ],
    );
    let e = evaluate(&spec, &rules, &c);
    assert_eq!(e.results.iter().map(|r| r.passed).collect::<Vec<_>>(), vec![false, true, true]);
    assert_eq!(e.results[1].margin, 0.0, "the threshold itself passes");
    assert_eq!(e.near_miss(2.0), Some(2.0));
    assert_eq!(e.near_miss(1.9), None);

    let mut banned = c;
    banned.account = acct("banned");
    banned.scores.insert((Dimension::Reach, String::new()), ScoreEntry { percentile: 99.0, ..Default::default() });
    let e = evaluate(&spec, &rules, &banned);
    assert!(e.results.iter().all(|r| r.passed) && e.excluded && !e.eligible());
    assert_eq!(e.near_miss(50.0), None);
}

/// Pins the pushed-down filters: percentiles only, relaxed, and dropped at 0.
#[test]
fn percentile_filters_relax_for_near_misses() {
    let spec = valid();
    let f = spec.percentile_filters(5.0);
    assert_eq!(
        f.iter().map(|f| (f.dimension, f.topic.as_deref(), f.min_percentile)).collect::<Vec<_>>(),
        vec![(Dimension::Reach, None, 75.0), (Dimension::Activity, Some("coffee"), 45.0)]
    );
    assert_eq!(spec.percentile_filters(60.0).len(), 1);
    assert_eq!(spec.percentile_filters(f64::NAN).len(), 2);
}

/// Pins the ranking keys: conversions rank on the interval's lower end.
#[test]
fn conversions_rank_on_the_lower_bound() {
    let mut sure = card("sure", &[]);
    sure.scores.insert(
        (Dimension::Action, String::new()),
        ScoreEntry { value: 50.0, lower: 40.0, upper: 60.0, sufficient: true, ..Default::default() },
    );
    let mut lucky = card("lucky", &[]);
    lucky.scores.insert(
        (Dimension::Action, String::new()),
        ScoreEntry { value: 70.0, lower: 10.0, upper: 95.0, sufficient: true, ..Default::default() },
    );
    let a = objective_score(Objective::Conversions, &sure);
    let b = objective_score(Objective::Conversions, &lucky);
    assert_eq!(rank_order(&(a, &sure.account), &(b, &lucky.account)), std::cmp::Ordering::Less);
}

/// Pins that an expected outcome states its unit and never invents a count.
#[test]
fn expected_outcome_uses_counts_or_says_it_is_a_score() {
    let mut c = card("a", &[(Dimension::Reach, "", 30.0, 50.0)]);
    let e = expected_outcome(Objective::Reach, &c);
    assert_eq!((e.expected, e.unit.as_str()), (30.0, "reach score (0-100)"));
    if let Some(s) = c.scores.get_mut(&(Dimension::Reach, String::new())) {
        s.raw.insert("unique_engagers".into(), 100.0);
    }
    let e = expected_outcome(Objective::Reach, &c);
    assert_eq!(e.unit, "accounts reached");
    assert!((e.lower - 83.55).abs() < 1e-9 && (e.upper - 116.45).abs() < 1e-9);
    assert_eq!(expected_outcome(Objective::Engagement, &c).unit, "activity score (0-100), no score yet");
}

/// Pins tenant confidentiality in expected outcomes: a conversions campaign
/// sees the action score and its interval, never the conversion count that
/// every brand's outcomes add up to.
#[test]
fn expected_conversions_are_the_score_never_a_count() {
    let mut c = card("a", &[(Dimension::Action, "", 62.5, 80.0)]);
    if let Some(s) = c.scores.get_mut(&(Dimension::Action, String::new())) {
        (s.lower, s.upper) = (55.0, 70.0);
        s.raw.insert("conversions".into(), 7.0);
        s.raw.insert("clicks".into(), 41.0);
    }
    let e = expected_outcome(Objective::Conversions, &c);
    assert_eq!((e.expected, e.lower, e.upper), (62.5, 55.0, 70.0));
    assert!(e.unit.starts_with("action score"), "{}", e.unit);
}

fn ids(n: usize) -> Vec<AccountId> {
    (0..n).map(|i| acct(&format!("c{i:03}"))).collect()
}

/// Pins the holdout draw: reproducible from its seed, independent of input
/// order, stratified by portfolio membership, and sized by the share.
#[test]
fn holdout_is_recorded_and_stratified() {
    let eligible = ids(50);
    let portfolio: BTreeSet<AccountId> = eligible[..10].iter().cloned().collect();
    let h = draw_holdout(&eligible, &portfolio, 0.2, 42);
    let mut reversed = eligible.clone();
    reversed.reverse();
    assert_eq!(draw_holdout(&reversed, &portfolio, 0.2, 42), h);
    assert_eq!((h.from_portfolio.len(), h.from_rest.len()), (2, 8));
    assert!(h.from_portfolio.is_subset(&portfolio));
    assert!(h.from_rest.is_disjoint(&portfolio));
    assert_ne!(draw_holdout(&eligible, &portfolio, 0.2, 43), h);
    assert_eq!(holdout_size(3, 0.1), 1);
    assert_eq!(holdout_size(1, 0.5), 1);
    assert_eq!(holdout_size(1, 0.4), 0);
    assert_eq!(holdout_size(10, 0.0), 0);
}

/// Pins that the draw is uniform: over many seeds every portfolio member is
/// held out about `share` of the time (a chi-square bound at 20 cells).
#[test]
fn holdout_is_uniform_across_seeds() {
    let eligible = ids(20);
    let portfolio: BTreeSet<AccountId> = eligible.iter().cloned().collect();
    let mut counts: HashMap<AccountId, f64> = HashMap::new();
    let trials = 4000;
    for seed in 0..trials {
        for a in draw_holdout(&eligible, &portfolio, 0.25, seed).from_portfolio {
            *counts.entry(a).or_default() += 1.0;
        }
    }
    let expected = trials as f64 * 5.0 / 20.0;
    let chi2: f64 =
        eligible.iter().map(|a| (counts.get(a).copied().unwrap_or(0.0) - expected).powi(2) / expected).sum();
    // 19 degrees of freedom: the 99.9th percentile is 43.8.
    assert!(chi2 < 43.8, "chi-square {chi2}");
}

/// Pins Lemire's bounded draw against its range.
#[test]
fn below_stays_in_range() {
    let mut r = SplitMix64::new(7);
    for n in [1u64, 2, 3, 10, u64::MAX] {
        for _ in 0..100 {
            assert!(r.below(n) < n);
        }
    }
}

/// Pins the t quantile against tabulated values.
#[test]
fn t_quantiles_match_tables() {
    for (p, df, want, tol) in [
        (0.975, 1.0, 12.706_2, 1e-3),
        (0.975, 2.0, 4.302_7, 1e-3),
        (0.975, 3.0, 3.182_4, 1.5e-2),
        (0.975, 10.0, 2.228_1, 2e-3),
        (0.975, 30.0, 2.042_3, 1e-4),
        (0.95, 100.0, 1.660_2, 1e-4),
        (0.975, f64::INFINITY, 1.960_0, 1e-4),
    ] {
        let got = student_t_quantile(p, df);
        assert!((got - want).abs() < tol, "t({p}, {df}) = {got}, want {want}");
    }
}

/// Pins Welch's interval against an independent computation (SciPy's
/// `ttest_ind(equal_var=False).confidence_interval(0.95)`: 0.0651 .. 3.9349).
#[test]
fn welch_matches_reference() {
    let l = welch(&[1.0, 2.0, 3.0, 4.0], &[0.0, 0.0, 1.0, 1.0], 0.95);
    assert_eq!(l.difference, 2.0);
    assert!((l.lower - 0.0651).abs() < 5e-3 && (l.upper - 3.9349).abs() < 5e-3, "{l:?}");
    let one = welch(&[1.0, 2.0], &[1.0], 0.95);
    assert_eq!((one.confidence, one.lower, one.upper), (0.0, f64::NEG_INFINITY, f64::INFINITY));
    assert!(one.unavailable.as_deref().is_some_and(|r| r.contains("at least 2")), "{one:?}");
    assert_eq!(l.unavailable, None);
}

/// Pins that a report without the data for lift says so and why, instead of a
/// [0, 0] interval with zero standard error.
#[test]
fn lift_without_data_says_so() {
    let none = welch(&[0.0; 8], &[0.0; 3], 0.9);
    assert_eq!(none.confidence, 0.0);
    assert!(none.lower.is_infinite() && none.upper.is_infinite(), "{none:?}");
    assert!(none.unavailable.as_deref().is_some_and(|r| r.contains("no orders")), "{none:?}");
    let flat = welch(&[2.0; 4], &[1.0; 4], 0.9);
    assert_eq!(flat.difference, 1.0);
    assert!(flat.unavailable.as_deref().is_some_and(|r| r.contains("no variation")), "{flat:?}");
}

fn action_card(id: &str, percentile: f64, sufficient: bool, no_data: bool) -> ScoreCard {
    let mut c = card(id, &[(Dimension::Activity, "coffee", 1.0, 50.0)]);
    let mut raw = BTreeMap::new();
    raw.insert("clicks".to_owned(), if sufficient { 200.0 } else { 3.0 });
    c.scores.insert(
        (Dimension::Action, String::new()),
        ScoreEntry { value: 60.0, percentile, lower: 20.0, upper: 90.0, sufficient, no_data, raw },
    );
    c
}

/// Pins that action criteria never pass an account on insufficient evidence
/// unless the campaign opts in, never pass one with no evidence, and that an
/// evidence failure is not a near miss.
#[test]
fn action_criteria_need_sufficient_evidence() {
    let mut p = valid();
    p.criteria = vec![criterion(Dimension::Action, "", 90.0)];
    p.min_authenticity = 0.0;
    let spec = p.clone();
    let rules = spec.rules();
    let proven = action_card("proven", 95.0, true, false);
    let lucky = action_card("lucky", 99.9, false, false);
    let silent = action_card("silent", 0.0, false, true);
    assert!(evaluate(&spec, &rules, &proven).eligible());
    let e = evaluate(&spec, &rules, &lucky);
    assert!(!e.eligible());
    assert_eq!(e.results[0].margin, f64::NEG_INFINITY);
    assert!(e.results[0].reason.starts_with("insufficient action evidence"), "{:?}", e.results[0]);
    assert!(!e.results[0].reason.contains('3'), "no cross-brand click count: {:?}", e.results[0]);
    assert_eq!(e.near_miss(100.0), None);
    assert!(!evaluate(&spec, &rules, &silent).eligible());
    // Scoring's action filter passes sufficient evidence only; with the opt-in the rule is judged locally.
    assert_eq!(spec.percentile_filters(0.0).len(), 1);

    p.allow_insufficient_evidence = true;
    let spec = p;
    assert!(spec.percentile_filters(0.0).is_empty());
    assert!(evaluate(&spec, &rules, &lucky).eligible(), "opted in: judged by the point estimate");
    let e = evaluate(&spec, &rules, &silent);
    assert!(!e.eligible() && e.results[0].reason.contains("no action evidence"), "{e:?}");
}

/// Pins that the campaign's topics take part in eligibility: an account scored
/// in none of them is not eligible (and not a near miss), one scored in any is.
#[test]
fn campaign_topics_take_part_in_eligibility() {
    let mut p = valid();
    p.topics = vec!["coffee".into(), "tea".into()];
    p.criteria = vec![criterion(Dimension::Reach, "", 50.0)];
    p.min_authenticity = 0.0;
    let spec = p.clone();
    let rules = spec.rules();
    let tea = card("tea", &[(Dimension::Reach, "", 10.0, 60.0), (Dimension::Network, "tea", 5.0, 40.0)]);
    let off = card("off", &[(Dimension::Reach, "", 10.0, 60.0), (Dimension::Network, "cars", 5.0, 40.0)]);
    let e = evaluate(&spec, &rules, &tea);
    assert!(e.eligible() && !e.off_topic);
    assert_eq!(e.topics_matched, vec!["tea".to_owned()]);
    let e = evaluate(&spec, &rules, &off);
    assert!(e.off_topic && !e.eligible() && e.topics_matched.is_empty());
    assert!(e.results.iter().all(|r| r.passed));
    assert_eq!(e.near_miss(50.0), None);
    p.topics.clear();
    let spec = p.clone();
    assert!(evaluate(&spec, &rules, &off).eligible(), "no campaign topics: no topic condition");
}

/// Pins the estimator end to end on simulated campaigns with a known true
/// effect: the 90 % interval covers the truth in about 90 % of campaigns.
#[test]
fn lift_interval_covers_a_known_effect() {
    let true_effect = 3.0;
    let (mut covered, runs) = (0, 400);
    for run in 0..runs {
        let mut rng = SplitMix64::new(1000 + run);
        let creators = ids(60);
        let portfolio: BTreeSet<AccountId> = creators.iter().cloned().collect();
        let h = draw_holdout(&creators, &portfolio, 0.5, run);
        let (mut t, mut c) = (Vec::new(), Vec::new());
        for a in &creators {
            // Baseline orders from the audience vary a lot between creators.
            let base = (rng.below(20) + rng.below(20)) as f64;
            if h.contains(a) {
                c.push(base);
            } else {
                t.push(base + true_effect);
            }
        }
        let l = welch(&t, &c, 0.9);
        covered += usize::from(l.lower <= true_effect && true_effect <= l.upper);
    }
    let rate = covered as f64 / runs as f64;
    assert!((0.85..=0.95).contains(&rate), "coverage {rate}");
}

/// Pins churn counts and the translation of an absolute threshold.
#[test]
fn churn_and_translation() {
    let before: BTreeSet<_> = ids(5).into_iter().collect();
    let after: BTreeSet<_> = ids(8)[3..].iter().cloned().collect();
    assert_eq!(churn(&before, &after), (3, 3, 2));
    let old = [(0.0, 0.0), (0.5, 40.0), (1.0, 100.0)];
    let new = [(0.0, 0.0), (0.5, 60.0), (1.0, 100.0)];
    assert_eq!(translate_value(40.0, &old, &new), Some(60.0));
    assert_eq!(translate_value(20.0, &old, &new), Some(30.0));
    assert_eq!(translate_value(70.0, &old, &new), Some(80.0));
    assert_eq!(translate_value(1.0, &[], &new), None);
}

fn entry(offset: u64, body: EventBody, attribution: Option<Attribution>) -> LedgerEntry {
    LedgerEntry {
        offset,
        ingested_at: 0,
        event: Event { event_id: format!("e{offset}"), source: "t".into(), occurred_at: 0, body },
        attribution,
    }
}

fn attributed(status: AttributionStatus, link: &str, owner: &str, campaign: &str) -> Option<Attribution> {
    Some(Attribution {
        status,
        link: link.into(),
        owner: Some(acct(owner)),
        campaign_id: campaign.into(),
        click_offset: 0,
    })
}

fn follow(offset: u64, follower: &str, followee: &str) -> LedgerEntry {
    entry(
        offset,
        EventBody::Follow(Follow { follower: acct(follower), followee: acct(followee), unfollow: false }),
        None,
    )
}

fn click(offset: u64, link: &str, visitor: &str, owner: &str, campaign: &str) -> LedgerEntry {
    entry(
        offset,
        EventBody::LinkClick(LinkClick {
            link: link.into(),
            visitor_id: visitor.into(),
            landing: String::new(),
            agent_class: String::new(),
            not_counted: None,
        }),
        attributed(AttributionStatus::Click, link, owner, campaign),
    )
}

fn session(offset: u64, visitor: &str, link: Option<&str>, bounced: bool) -> LedgerEntry {
    entry(
        offset,
        EventBody::PageSession(PageSession {
            visitor_id: visitor.into(),
            link: link.map(str::to_owned),
            dwell_ms: 1000,
            bounced,
        }),
        None,
    )
}

fn order(offset: u64, id: &str, value: i64, customer: &str, attribution: Option<Attribution>) -> LedgerEntry {
    entry(
        offset,
        EventBody::Conversion(Conversion {
            visitor_id: Some("v".into()),
            code: None,
            order_id: id.into(),
            value_minor: value,
            currency: "EUR".into(),
            customer: Some(acct(customer)),
        }),
        attribution,
    )
}

/// Pins every report figure on a scripted campaign, computed by hand:
/// creator a (link la, code CA) and b (link lb) are offered at 2 500 each,
/// c is held out.
#[test]
fn report_matches_hand_computed_figures() {
    let offers = [
        IssuedOffer { account: acct("a"), link: "la".into(), code: "CA".into(), cost: 2_500 },
        IssuedOffer { account: acct("b"), link: "lb".into(), code: "CB".into(), cost: 2_500 },
    ];
    let controls: BTreeSet<_> = [acct("c")].into();
    let mut r = ReportBuilder::new("cmp1", "EUR", &offers, &controls, 10);
    let ledger = [
        follow(1, "x1", "a"),
        follow(2, "x2", "a"),
        follow(3, "x3", "b"),
        follow(4, "x4", "c"),
        // Before the offers: neither an outcome nor lift.
        order(5, "o0", 999, "x1", None),
        click(11, "la", "v1", "a", "cmp1"),
        click(12, "la", "v1", "a", "cmp1"),
        click(13, "la", "v2", "a", "cmp1"),
        click(14, "lb", "v3", "b", "cmp1"),
        // Another campaign's click is not ours.
        click(15, "zz", "v9", "a", "cmp2"),
        session(16, "v1", Some("la"), false),
        // No link on the session: attributed through the visitor's click.
        session(17, "v2", None, true),
        session(18, "v3", Some("lb"), true),
        session(19, "v8", None, true),
        order(20, "o1", 5_000, "x1", attributed(AttributionStatus::Click, "la", "a", "cmp1")),
        // The same order reported again counts once.
        order(21, "o1", 5_000, "x1", attributed(AttributionStatus::Click, "la", "a", "cmp1")),
        order(22, "o2", 3_000, "x4", attributed(AttributionStatus::CodeWithoutClick, "CA", "a", "cmp1")),
        order(23, "o3", 7_000, "x3", None),
    ];
    for e in &ledger {
        r.observe(e);
    }
    let rep = r.finish(0.9);
    let a = &rep.per_creator[&acct("a")];
    assert_eq!(
        (a.clicks, a.unique_visitors, a.sessions, a.bounced, a.conversions, a.value_minor, a.code_without_click),
        (3, 2, 2, 1, 2, 8_000, 1)
    );
    assert_eq!((a.bounce_rate(), a.cost_per_conversion()), (0.5, 1_250));
    let b = &rep.per_creator[&acct("b")];
    assert_eq!((b.clicks, b.unique_visitors, b.sessions, b.conversions, b.cost_per_conversion()), (1, 1, 1, 0, 0));
    let t = &rep.totals;
    assert_eq!(
        (t.clicks, t.unique_visitors, t.sessions, t.conversions, t.value_minor, t.code_without_click, t.cost),
        (4, 3, 3, 2, 8_000, 1, 5_000)
    );
    assert!((t.bounce_rate() - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(t.cost_per_conversion(), 2_500);
    // Audience orders: a ← x1 (o1), b ← x3 (o3), c ← x4 (o2); one control, so no interval.
    assert_eq!((rep.lift.difference, rep.lift.treated, rep.lift.holdout, rep.lift.confidence), (0.0, 2, 1, 0.0));
    assert_eq!(rep.head, 23);
    // Every outcome happened on 1970-01-01: one day, holding exactly the totals.
    assert_eq!(rep.daily, vec![(0, Day { clicks: 4, sessions: 3, bounced: 2, conversions: 2 })]);
}

/// Pins the calendar the report's days are named in, leap days and the epoch's edge included.
#[test]
fn days_are_named_by_their_utc_date() {
    for (days, date) in [
        (0, "1970-01-01"),
        (-1, "1969-12-31"),
        (11_016, "2000-02-29"),
        (19_723, "2024-01-01"),
        (20_788, "2026-12-01"),
        (47_541, "2100-03-01"),
    ] {
        assert_eq!(date_of_day(days), date, "day {days}");
    }
}

/// Pins that a report fed event by event, saved and restored (serde JSON)
/// after every event, equals the report read in one go — including a click
/// before the offers, which `feed` leaves out as the report's reads do.
#[test]
fn fed_and_restored_report_equals_one_pass() {
    let offers = [
        IssuedOffer { account: acct("a"), link: "la".into(), code: "CA".into(), cost: 2_500 },
        IssuedOffer { account: acct("b"), link: "lb".into(), code: "CB".into(), cost: 2_500 },
    ];
    let controls: BTreeSet<_> = [acct("c"), acct("d")].into();
    let ledger = [
        follow(1, "x1", "a"),
        follow(2, "x2", "b"),
        follow(3, "x3", "c"),
        follow(4, "x4", "d"),
        click(5, "la", "v0", "a", "cmp1"),
        click(11, "la", "v1", "a", "cmp1"),
        follow(12, "x5", "a"),
        session(13, "v1", None, true),
        order(14, "o1", 5_000, "x1", attributed(AttributionStatus::Click, "la", "a", "cmp1")),
        order(15, "o1", 5_000, "x1", attributed(AttributionStatus::Click, "la", "a", "cmp1")),
        order(16, "o2", 3_000, "x3", None),
        order(17, "o3", 3_000, "x2", attributed(AttributionStatus::CodeWithoutClick, "CB", "b", "cmp1")),
    ];
    let mut one = ReportBuilder::new("cmp1", "EUR", &offers, &controls, 10);
    // As the rescan reads: social activity up to the offers (offset 10), outcomes after.
    for e in &ledger {
        if matches!(e.event.body, EventBody::Follow(_)) == (e.offset <= 10) {
            one.observe(e);
        }
    }
    let mut fed = ReportBuilder::new("cmp1", "EUR", &offers, &controls, 10);
    for e in &ledger {
        fed.feed(e);
        fed = serde_json::from_str(&serde_json::to_string(&fed).expect("save")).expect("restore");
    }
    let summary = fed.summary();
    assert_eq!(summary.clone().report(0.9), one.finish(0.9));
    let restored: ReportSummary = serde_json::from_str(&serde_json::to_string(&summary).expect("save")).expect("load");
    assert_eq!(restored, summary);
    assert_eq!(fed.finish(0.9).totals.clicks, 1, "the click before the offers is not counted");
}
