//! The matching service over real gRPC on loopback, with the real ingestion and
//! scoring services in-process, each on its own in-memory SQLite database.
//!
//! The scripted world: 40 creators `c00..c39`, creator `i` followed by `i + 2`
//! fans who also like one of their posts, so reach rises with `i`; fans have
//! no followers and sit at the bottom of every percentile.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use common::{
    Client, Rt, acct, client, dead_addr, ev, fan, ingest_all, quick_scoring, serve_matching, social_world,
    start_ingest, start_scoring,
};
use lift_matching::{Matching, MatchingConfig, create_brand};
use lift_proto::ingest::v1 as ipb;
use lift_proto::ingest::v1::event::Kind;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::matching::v1 as pb;
use lift_proto::scoring::v1 as spb;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::Shutdown;
use lift_scoring::{Scoring, ScoringConfig};
use tonic::Code;
use tonic_types::StatusExt;

const CREATORS: usize = 40;

struct Stack {
    ingest: IngestServiceClient<Rt>,
    ingest_addr: SocketAddr,
    scoring_db: lift_store::DatabaseConnection,
    /// Stops scoring alone, so a test can replace its model.
    scoring_stop: Shutdown,
    scoring: Scoring,
    scoring_client: ScoringServiceClient<Rt>,
    matching: Matching,
    addr: SocketAddr,
    stop: Shutdown,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.trigger();
        self.scoring_stop.trigger();
    }
}

async fn start() -> Stack {
    let stop = Shutdown::new();
    let ingest_addr = start_ingest(&stop).await;
    let scoring_db = lift_store::connect("sqlite::memory:").await.expect("db");
    let scoring_stop = Shutdown::new();
    let (scoring, scoring_addr) =
        start_scoring(scoring_db.clone(), ingest_addr, quick_scoring(30), &scoring_stop).await;
    let db = lift_store::connect("sqlite::memory:").await.expect("db");
    let matching = common::matching(db, scoring_addr, ingest_addr, MatchingConfig::default());
    let addr = serve_matching(&matching, &stop).await;
    Stack {
        ingest: IngestServiceClient::new(common::rt(ingest_addr)),
        ingest_addr,
        scoring_db,
        scoring_stop,
        scoring,
        scoring_client: ScoringServiceClient::new(common::rt(scoring_addr)),
        matching,
        addr,
        stop,
    }
}

async fn brand(s: &Stack, name: &str) -> Client {
    common::brand(&s.matching, s.addr, name).await
}

/// Ingests `events`, returns the highest offset stored.
async fn ingest(s: &Stack, events: Vec<ipb::Event>) -> u64 {
    ingest_all(&s.ingest, events).await
}

async fn scored(s: &Stack, offset: u64) {
    common::scored(&s.scoring, offset).await;
}

/// The scripted world: 40 creators, see the file's documentation.
fn world() -> Vec<ipb::Event> {
    social_world(CREATORS, [3_600, 3_500, 3_400, 3_300], true)
}

async fn world_stack() -> Stack {
    let s = start().await;
    let head = ingest(&s, world()).await;
    scored(&s, head).await;
    s
}

fn reach_criterion(p: f64) -> pb::Criterion {
    pb::Criterion {
        dimension: spb::Dimension::Reach as i32,
        topic: String::new(),
        threshold: Some(pb::criterion::Threshold::MinPercentile(p)),
    }
}

fn spec(name: &str) -> pb::CampaignSpec {
    pb::CampaignSpec {
        name: name.into(),
        objective: pb::Objective::Reach as i32,
        perk: "tasting box".into(),
        unit_cost: 1_000,
        budget: 20_000,
        currency: "EUR".into(),
        criteria: vec![reach_criterion(50.0)],
        holdout_share: 0.5,
        ..Default::default()
    }
}

async fn create(c: &mut Client, spec: pb::CampaignSpec) -> pb::Campaign {
    c.create_campaign(pb::CreateCampaignRequest { spec: Some(spec) })
        .await
        .expect("create")
        .into_inner()
        .campaign
        .expect("campaign")
}

/// Pins tenancy both ways: no key and unknown keys are UNAUTHENTICATED, and a
/// brand sees neither another brand's campaigns nor their existence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated_both_ways() {
    let s = start().await;
    let (mut a, mut b) = (brand(&s, "Acme").await, brand(&s, "Bolt").await);
    let ca = create(&mut a, spec("acme spring")).await;
    let cb = create(&mut b, spec("bolt summer")).await;

    for mut anon in [client(s.addr, None), client(s.addr, Some("lift_not_a_key"))] {
        let e = anon.list_campaigns(pb::ListCampaignsRequest::default()).await.expect_err("refused");
        assert_eq!(e.code(), Code::Unauthenticated);
        let e = anon.get_campaign(pb::GetCampaignRequest { campaign_id: ca.id.clone() }).await.expect_err("refused");
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    for (me, mine, theirs) in [(&mut a, &ca, &cb), (&mut b, &cb, &ca)] {
        let got = me.get_campaign(pb::GetCampaignRequest { campaign_id: mine.id.clone() }).await.expect("own");
        assert_eq!(got.into_inner().campaign.as_ref(), Some(mine));
        let list = me.list_campaigns(pb::ListCampaignsRequest::default()).await.expect("list").into_inner();
        assert_eq!(list.campaigns.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [mine.id.as_str()]);
        let id = theirs.id.clone();
        let e = me.get_campaign(pb::GetCampaignRequest { campaign_id: id.clone() }).await.expect_err("hidden");
        assert_eq!(e.code(), Code::NotFound);
        let missing =
            me.get_campaign(pb::GetCampaignRequest { campaign_id: "cmp_nope".into() }).await.expect_err("404");
        assert_eq!(
            (missing.code(), e.message().replace(&id, "X")),
            (Code::NotFound, missing.message().replace("cmp_nope", "X"))
        );
        for e in [
            me.match_campaign(pb::MatchCampaignRequest { campaign_id: id.clone(), ..Default::default() }).await.err(),
            me.select_portfolio(pb::SelectPortfolioRequest { campaign_id: id.clone(), epsilon: 0.0 }).await.err(),
            me.create_offers(pb::CreateOffersRequest { campaign_id: id.clone(), holdout_seed: 1 }).await.err(),
            me.get_campaign_report(pb::GetCampaignReportRequest { campaign_id: id.clone() }).await.err(),
        ] {
            assert_eq!(e.map(|e| e.code()), Some(Code::NotFound));
        }
    }
}

/// Pins field-level validation over the wire: every bad field is a BadRequest violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_campaign_reports_every_bad_field() {
    let s = start().await;
    let mut a = brand(&s, "Acme").await;
    let mut bad = spec("");
    bad.unit_cost = 0;
    bad.currency = "ZZZ".into();
    bad.holdout_share = 0.9;
    bad.criteria.push(reach_criterion(140.0));
    let e = a.create_campaign(pb::CreateCampaignRequest { spec: Some(bad) }).await.expect_err("invalid");
    assert_eq!(e.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        e.get_details_bad_request().expect("details").field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(
        fields,
        ["spec.name", "spec.unit_cost", "spec.currency", "spec.criteria[1].min_percentile", "spec.holdout_share"]
    );
    let e = a.create_campaign(pb::CreateCampaignRequest { spec: None }).await.expect_err("invalid");
    assert_eq!(e.code(), Code::InvalidArgument);
}

fn percentiles(all: &[spb::AccountScores], d: spb::Dimension) -> HashMap<String, f64> {
    all.iter()
        .filter_map(|a| {
            let p = a.scores.iter().find(|s| s.dimension == d as i32 && s.topic.is_empty())?.percentile;
            Some((a.account.as_ref()?.id.clone(), p))
        })
        .collect()
}

async fn all_scores(s: &Stack) -> Vec<spb::AccountScores> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let r = s
            .scoring_client
            .clone()
            .query_accounts(spb::QueryAccountsRequest {
                order_by: spb::Dimension::Reach as i32,
                page_size: 1_000,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("query")
            .into_inner();
        out.extend(r.accounts);
        if r.next_page_token.is_empty() {
            return out;
        }
        token = r.next_page_token;
    }
}

/// Pins MatchCampaign against scoring's own numbers: exactly the accounts at or
/// above the percentile are eligible, each criterion's margin is observed minus
/// threshold, pages tile the ranking, and near misses fail one rule narrowly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_reports_margins_pages_and_near_misses() {
    let s = world_stack().await;
    let mut a = brand(&s, "Acme").await;
    let mut sp = spec("margins");
    // Creators are the top ~4 % of accounts: p97.5 splits them.
    sp.criteria = vec![reach_criterion(97.5)];
    sp.min_authenticity = 10.0;
    let c = create(&mut a, sp).await;

    let scores = all_scores(&s).await;
    let reach = percentiles(&scores, spb::Dimension::Reach);
    let auth: HashMap<String, f64> = scores
        .iter()
        .map(|x| {
            let v = x.scores.iter().find(|s| s.dimension == spb::Dimension::Authenticity as i32 && s.topic.is_empty());
            (x.account.as_ref().map(|a| a.id.clone()).unwrap_or_default(), v.map_or(0.0, |v| v.value))
        })
        .collect();
    let expected: BTreeSet<String> =
        reach.iter().filter(|(id, p)| **p >= 97.5 && auth[*id] >= 10.0).map(|(id, _)| id.clone()).collect();
    assert!(expected.len() >= 10, "the world should make some creators eligible: {expected:?}");

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut near = Vec::new();
    loop {
        let r = a
            .match_campaign(pb::MatchCampaignRequest {
                campaign_id: c.id.clone(),
                page_size: 7,
                page_token: token.clone(),
                near_miss_margin: 30.0,
            })
            .await
            .expect("match")
            .into_inner();
        assert_eq!(r.total_eligible as usize, expected.len());
        assert!(!r.model_version.is_empty() && r.as_of_offset > 0 && !r.stale);
        if token.is_empty() {
            near = r.near_misses.clone();
            // The funnel: every scored account, then reach ≥ p97.5, then authenticity ≥ 10.
            let steps: Vec<(&str, u64)> = r.funnel.iter().map(|f| (f.step.as_str(), f.remaining)).collect();
            let past_reach = reach.values().filter(|p| **p >= 97.5).count() as u64;
            assert_eq!(
                steps,
                vec![("scored", scores.len() as u64), ("criterion", past_reach), ("criterion", expected.len() as u64)],
                "{:?}",
                r.funnel
            );
            assert_eq!(r.funnel[1].criterion.as_ref().map(|c| c.dimension), Some(spb::Dimension::Reach as i32));
        } else {
            assert!(r.near_misses.is_empty(), "near misses come with the first page only");
            assert!(r.funnel.is_empty(), "the funnel comes with the first page only");
        }
        seen.extend(r.eligible);
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    let ids: Vec<String> = seen.iter().map(|c| c.account.as_ref().map(|a| a.id.clone()).unwrap_or_default()).collect();
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(ids.len(), expected.len(), "no account on two pages");
    for (i, cand) in seen.iter().enumerate() {
        let id = &ids[i];
        assert_eq!(cand.rank as usize, i + 1);
        assert!(cand.eligible);
        assert!(i == 0 || seen[i - 1].objective_score >= cand.objective_score, "ranked by the objective");
        assert_eq!(cand.criteria.len(), 2, "the percentile rule and minimum authenticity");
        let r = &cand.criteria[0];
        assert!(r.passed && (r.observed - reach[id]).abs() < 1e-9 && (r.margin - (reach[id] - 97.5)).abs() < 1e-9);
        let r = &cand.criteria[1];
        assert!(r.passed && (r.margin - (auth[id] - 10.0)).abs() < 1e-9);
        let exp = cand.expected.as_ref().expect("expected outcome");
        assert!(exp.lower <= exp.expected && exp.expected <= exp.upper && !exp.unit.is_empty());
    }
    assert!(!near.is_empty(), "creators just under p97.5 are near misses");
    for n in &near {
        let failed: Vec<_> = n.criteria.iter().filter(|r| !r.passed).collect();
        assert!(!n.eligible && failed.len() == 1 && failed[0].margin >= -30.0 && failed[0].margin < 0.0, "{n:?}");
    }

    let e = a
        .match_campaign(pb::MatchCampaignRequest {
            campaign_id: c.id.clone(),
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad token");
    assert_eq!(e.code(), Code::InvalidArgument);
}

/// Pins that matching never answers from missing scores: scoring down is UNAVAILABLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoring_down_is_unavailable() {
    let s = start().await;
    let m = common::matching(s.matching.db().clone(), dead_addr().await, s.ingest_addr, MatchingConfig::default());
    let addr = serve_matching(&m, &s.stop).await;
    let (_, key) = create_brand(m.db(), "Acme").await.expect("brand");
    let mut a = client(addr, Some(&key));
    let c = create(&mut a, spec("offline")).await;
    let e = a
        .match_campaign(pb::MatchCampaignRequest { campaign_id: c.id, ..Default::default() })
        .await
        .expect_err("no scores");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
}

fn click(id: &str, secs_ago: i64, link: &str, visitor: &str) -> ipb::Event {
    ev(
        id,
        secs_ago,
        Kind::LinkClick(ipb::LinkClick {
            link: link.into(),
            visitor_id: visitor.into(),
            landing: String::new(),
            ..Default::default()
        }),
    )
}

fn session(id: &str, secs_ago: i64, link: &str, visitor: &str, bounced: bool) -> ipb::Event {
    ev(
        id,
        secs_ago,
        Kind::PageSession(ipb::PageSession { visitor_id: visitor.into(), link: link.into(), dwell_ms: 4_000, bounced }),
    )
}

fn order(id: &str, secs_ago: i64, visitor: &str, code: &str, value: i64, customer: Option<String>) -> ipb::Event {
    ev(
        id,
        secs_ago,
        Kind::Conversion(ipb::Conversion {
            visitor_id: visitor.into(),
            code: code.into(),
            order_id: format!("o-{id}"),
            value_minor: value,
            currency: "EUR".into(),
            customer: customer.map(|c| acct(&c)),
        }),
    )
}

/// Pins the campaign's life after matching: the holdout is random, stratified,
/// recorded and reproducible from its seed; offers are issued once; and the
/// report's figures equal a hand count, with the lift interval covering the
/// effect the script put in (3 extra orders per treated creator's audience).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_holdout_report_and_lift() {
    let s = world_stack().await;
    let mut a = brand(&s, "Acme").await;
    let c = create(&mut a, spec("life")).await;
    let id = c.id.clone();
    let m = a
        .match_campaign(pb::MatchCampaignRequest { campaign_id: id.clone(), page_size: 1_000, ..Default::default() })
        .await
        .expect("match")
        .into_inner();
    let eligible: BTreeSet<String> =
        m.eligible.iter().filter_map(|c| c.account.as_ref()).map(|a| a.id.clone()).collect();

    let p = a
        .select_portfolio(pb::SelectPortfolioRequest { campaign_id: id.clone(), epsilon: 0.0 })
        .await
        .expect("portfolio")
        .into_inner();
    assert!(!p.members.is_empty() && p.total_cost <= 20_000 && !p.guarantee.is_empty());
    let members: BTreeSet<String> = p.members.iter().filter_map(|m| m.account.as_ref()).map(|a| a.id.clone()).collect();
    assert!(members.is_subset(&eligible));

    let o = a
        .create_offers(pb::CreateOffersRequest { campaign_id: id.clone(), holdout_seed: 7 })
        .await
        .expect("offers")
        .into_inner();
    assert_eq!(o.holdout_seed, 7);
    let held: BTreeSet<String> = o.holdout.iter().map(|a| a.id.clone()).collect();
    let treated: BTreeMap<String, pb::Offer> = o
        .offers
        .iter()
        .filter(|x| !x.holdout)
        .map(|x| (x.account.as_ref().map(|a| a.id.clone()).unwrap_or_default(), x.clone()))
        .collect();
    let controls: BTreeSet<String> = members.iter().filter(|m| held.contains(*m)).cloned().collect();
    assert_eq!(treated.keys().cloned().chain(controls.iter().cloned()).collect::<BTreeSet<_>>(), members);
    assert!(held.is_subset(&eligible) && treated.keys().all(|t| !held.contains(t)));
    let share = |n: usize| if n >= 2 { ((n as f64 * 0.5).round() as usize).clamp(1, n - 1) } else { n / 2 };
    assert_eq!(controls.len(), share(members.len()), "half of the portfolio held out");
    assert_eq!(held.len() - controls.len(), share(eligible.len() - members.len()), "half of the rest held out");
    assert!(treated.values().all(|x| !x.link.is_empty() && !x.code.is_empty()));
    // The same seed over the same eligible set reproduces the draw.
    let expect = lift_domain::campaign::draw_holdout(
        &eligible.iter().map(|e| lift_domain::AccountId::new("t", e.clone())).collect::<Vec<_>>(),
        &members.iter().map(|e| lift_domain::AccountId::new("t", e.clone())).collect(),
        0.5,
        7,
    );
    assert_eq!(expect.all().into_iter().map(|a| a.id).collect::<BTreeSet<_>>(), held);

    let again = a.create_offers(pb::CreateOffersRequest { campaign_id: id.clone(), holdout_seed: 8 }).await;
    assert_eq!(again.expect_err("once").code(), Code::AlreadyExists);
    let got = a.get_campaign(pb::GetCampaignRequest { campaign_id: id.clone() }).await.expect("get").into_inner();
    assert_eq!(got.campaign.map(|c| c.state), Some(pb::CampaignState::Offered as i32));

    // Scripted outcomes. First treated creator: 3 clicks by 2 visitors, 2 sessions
    // (1 bounced), an order through the click (5 000) and a coupon-only order (3 000).
    let (first, offer) = treated.iter().next().expect("a treated creator");
    let mut events = vec![
        click("k1", 300, &offer.link, "v1"),
        click("k2", 290, &offer.link, "v1"),
        click("k3", 280, &offer.link, "v2"),
        session("s1", 270, &offer.link, "v1", false),
        session("s2", 260, &offer.link, "v2", true),
        order("x1", 250, "v1", "", 5_000, None),
        order("x2", 240, "v-none", &offer.code, 3_000, None),
        // An unrelated visitor and order: not the campaign's.
        click("k4", 230, "elsewhere", "v3"),
        order("x3", 220, "v3", "", 9_999, None),
    ];
    // Audience orders: a base of 0-4 per portfolio creator, plus 3 for treated ones.
    let mut rng = lift_domain::campaign::SplitMix64::new(99);
    let idx = |id: &str| id[1..].parse::<usize>().unwrap_or(0);
    for m in &members {
        let extra = if treated.contains_key(m) { 3 } else { 0 };
        let n = rng.below(5) as usize + extra;
        for j in 0..n.min(idx(m) + 2) {
            events.push(order(&format!("aud-{m}-{j}"), 200, &format!("va-{m}-{j}"), "", 100, Some(fan(idx(m), j))));
        }
    }
    ingest(&s, events).await;

    let r = a
        .get_campaign_report(pb::GetCampaignReportRequest { campaign_id: id.clone() })
        .await
        .expect("report")
        .into_inner();
    let per: HashMap<String, pb::OutcomeTotals> = r
        .creators
        .iter()
        .map(|c| (c.account.as_ref().map(|a| a.id.clone()).unwrap_or_default(), c.totals.unwrap_or_default()))
        .collect();
    assert_eq!(per.len(), treated.len());
    let f = &per[first];
    assert_eq!(
        (f.clicks, f.unique_visitors, f.sessions, f.bounce_rate, f.conversions, f.value_minor, f.code_without_click),
        (3, 2, 2, 0.5, 2, 8_000, 1)
    );
    assert_eq!(f.cost_per_conversion, 500);
    let t = r.totals.expect("totals");
    assert_eq!((t.clicks, t.conversions, t.value_minor, t.code_without_click), (3, 2, 8_000, 1));
    assert_eq!(t.cost_per_conversion, 1_000 * treated.len() as i64 / 2);

    let lift = r.lift.expect("lift");
    assert_eq!((lift.treated as usize, lift.holdout as usize), (treated.len(), controls.len()));
    assert!(lift.confidence > 0.0, "{lift:?}");
    assert!(lift.lower <= 3.0 && 3.0 <= lift.upper, "true effect 3 outside {lift:?}");
    assert!(lift.upper > lift.lower && !lift.metric.is_empty());
}

/// Pins recalibration: after scoring's model changes, the campaign records the
/// churn of its eligible set, and its absolute threshold is translated through
/// the published old→new mapping so it keeps selecting the same creators.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_change_records_churn_and_translates_thresholds() {
    let s = world_stack().await;
    let (_, key) = create_brand(s.matching.db(), "Acme").await.expect("brand");
    let mut a = client(s.addr, Some(&key));
    // An absolute threshold at the median creator's reach under the first model.
    let scores = all_scores(&s).await;
    let mut creator_reach: Vec<f64> = scores
        .iter()
        .filter(|x| x.account.as_ref().is_some_and(|a| a.id.starts_with('c')))
        .filter_map(|x| x.scores.iter().find(|s| s.dimension == spb::Dimension::Reach as i32 && s.topic.is_empty()))
        .map(|s| s.value)
        .collect();
    creator_reach.sort_by(f64::total_cmp);
    let threshold = creator_reach[creator_reach.len() / 2];
    let mut sp = spec("recalibrated");
    sp.criteria = vec![pb::Criterion {
        dimension: spb::Dimension::Reach as i32,
        topic: String::new(),
        threshold: Some(pb::criterion::Threshold::MinValue(threshold)),
    }];
    let c = create(&mut a, sp).await;
    let req = pb::MatchCampaignRequest { campaign_id: c.id.clone(), page_size: 1_000, ..Default::default() };
    let before = a.match_campaign(req.clone()).await.expect("match v1").into_inner();
    let v1 = before.model_version.clone();
    let before_set: BTreeSet<String> =
        before.eligible.iter().filter_map(|c| c.account.as_ref()).map(|a| a.id.clone()).collect();

    // A new model on the same scoring database: every reach value moves.
    s.scoring_stop.trigger();
    let mut model = ScoringConfig::default().model;
    model.reach_scale *= 2.0;
    let stop2 = Shutdown::new();
    let cfg = ScoringConfig { model, ..quick_scoring(30) };
    let (scoring2, addr2) = start_scoring(s.scoring_db.clone(), s.ingest_addr, cfg, &stop2).await;
    let head = s.ingest.clone().get_ledger_info(ipb::GetLedgerInfoRequest {}).await.expect("info").into_inner();
    tokio::time::timeout(Duration::from_secs(60), scoring2.wait_for_offset(head.head_offset))
        .await
        .expect("second model scored");
    let m2 = common::matching(s.matching.db().clone(), addr2, s.ingest_addr, MatchingConfig::default());
    let addr = serve_matching(&m2, &stop2).await;
    // Same brand and key, through a matching instance that talks to the new model.
    let mut a2 = client(addr, Some(&key));
    let after = a2.match_campaign(req).await.expect("match v2").into_inner();
    assert_ne!(after.model_version, v1);
    let after_set: BTreeSet<String> =
        after.eligible.iter().filter_map(|c| c.account.as_ref()).map(|a| a.id.clone()).collect();

    let got = a2.get_campaign(pb::GetCampaignRequest { campaign_id: c.id.clone() }).await.expect("get");
    let campaign = got.into_inner().campaign.expect("campaign");
    assert_eq!(campaign.model_version, after.model_version);
    assert_eq!(campaign.churn.len(), 1);
    let ch = &campaign.churn[0];
    assert_eq!((ch.from_version.as_str(), ch.to_version.as_str()), (v1.as_str(), after.model_version.as_str()));
    let entered = after_set.difference(&before_set).count() as u64;
    let left = before_set.difference(&after_set).count() as u64;
    assert_eq!((ch.entered, ch.left, ch.stayed), (entered, left, (before_set.len() as u64) - left));
    let translated = match ch.translated.first().and_then(|t| t.threshold) {
        Some(pb::criterion::Threshold::MinValue(v)) => v,
        other => panic!("no translated threshold: {other:?}"),
    };
    assert!(translated < threshold, "a doubled scale lowers reach values: {translated} vs {threshold}");
    // Quantile mapping keeps the selection up to the mapping's resolution (0.5 % steps).
    assert!(entered + left <= 10, "entered {entered}, left {left} of {}", before_set.len());
    stop2.trigger();
}

/// A generated population: `n` accounts with power-law follows and likes,
/// posts on a few topics, and attributed clicks, sessions and orders through
/// tracking links for some of them, so every dimension and topic varies.
async fn generated_world(s: &Stack, n: usize, seed: u64) -> u64 {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let g = |i: usize| format!("g{i:04}");
    let popular = |rng: &mut rand::rngs::StdRng| ((rng.random::<f64>().powi(3)) * n as f64) as usize % n;
    let topics = ["food", "travel", "fitness"];
    let mut out = Vec::new();
    for i in 0..n {
        out.push(ev(
            &format!("acct-{i}"),
            7_200,
            Kind::Account(ipb::AccountUpsert {
                account: Some(acct(&g(i))),
                handle: format!("{}_h", g(i)),
                reported_followers: rng.random_range(0..5_000),
                ..Default::default()
            }),
        ));
    }
    let mut posts: Vec<(usize, String)> = Vec::new();
    for k in 0..n {
        let author = popular(&mut rng);
        let pid = format!("gp{k}");
        let t: Vec<String> = topics.iter().filter(|_| rng.random_bool(0.4)).map(|t| (*t).to_owned()).collect();
        out.push(ev(
            &format!("post-{k}"),
            7_000,
            Kind::Post(ipb::Post {
                author: Some(acct(&g(author))),
                post_id: pid.clone(),
                topics: t,
                ..Default::default()
            }),
        ));
        posts.push((author, pid));
    }
    for k in 0..6 * n {
        let a = rng.random_range(0..n);
        let b = popular(&mut rng);
        if a == b {
            continue;
        }
        let kind = if k % 3 == 0 {
            Kind::Follow(ipb::Follow { follower: Some(acct(&g(a))), followee: Some(acct(&g(b))), unfollow: false })
        } else {
            let (author, pid) = &posts[rng.random_range(0..posts.len())];
            if *author == a {
                continue;
            }
            Kind::Engagement(ipb::Engagement {
                kind: [ipb::EngagementKind::Like, ipb::EngagementKind::Repost, ipb::EngagementKind::Reply]
                    [rng.random_range(0..3)] as i32,
                actor: Some(acct(&g(a))),
                post_id: pid.clone(),
                target: Some(acct(&g(*author))),
            })
        };
        out.push(ev(&format!("gx{k}"), 6_000 - (k as i64 % 5_000), kind));
    }
    // Tracking links for a quarter of the accounts, with clicks, sessions and orders.
    let linked: Vec<usize> = (0..n).filter(|i| i % 4 == 0).collect();
    let links: Vec<ipb::Link> = linked
        .iter()
        .map(|&i| ipb::Link {
            link: format!("lift.to/g{i}"),
            owner: Some(acct(&g(i))),
            campaign_id: String::new(),
            attribution_window_secs: 0,
            landing_url: String::new(),
        })
        .collect();
    s.ingest.clone().register_links(ipb::RegisterLinksRequest { links }).await.expect("links");
    for &i in &linked {
        for v in 0..rng.random_range(0..12) {
            let visitor = format!("v{i}_{v}");
            out.push(click(&format!("gc{i}_{v}"), 3_000, &format!("lift.to/g{i}"), &visitor));
            out.push(session(&format!("gs{i}_{v}"), 2_990, &format!("lift.to/g{i}"), &visitor, rng.random_bool(0.4)));
            if rng.random_bool(0.3) {
                out.push(order(&format!("go{i}_{v}"), 2_900, &visitor, "", 2_500, None));
            }
        }
    }
    ingest(s, out).await
}

fn criterion(d: spb::Dimension, topic: &str, t: pb::criterion::Threshold) -> pb::Criterion {
    pb::Criterion { dimension: d as i32, topic: topic.into(), threshold: Some(t) }
}

/// Every page of one campaign's match, and the near misses of its first page.
async fn all_pages(c: &mut Client, id: &str, page_size: u32, margin: f64) -> Vec<pb::MatchCampaignResponse> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let r = c
            .match_campaign(pb::MatchCampaignRequest {
                campaign_id: id.into(),
                page_size,
                page_token: token.clone(),
                near_miss_margin: margin,
            })
            .await
            .expect("match")
            .into_inner();
        token = r.next_page_token.clone();
        out.push(r);
        if token.is_empty() || out.len() > 1_000 {
            break;
        }
    }
    out
}

/// Pins the score cache against the scan it replaces: on a generated
/// population, every campaign shape (percentile, value, topic, authenticity,
/// exclusions, each objective, loose and tight) returns the same pages —
/// candidates, ranks, margins, expected outcomes, near misses, tokens and
/// totals — through both; concurrent first calls load the cache once; and a
/// new scoring run invalidates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_cache_agrees_with_the_scan_and_follows_new_runs() {
    use pb::criterion::Threshold::{MinPercentile, MinValue};
    use spb::Dimension as D;
    let s = start().await;
    let head = generated_world(&s, 400, 11).await;
    scored(&s, head).await;

    let scan = Matching::new(
        s.matching.db().clone(),
        s.scoring_client.clone(),
        s.ingest.clone(),
        MatchingConfig { score_cache: false, ..MatchingConfig::default() },
    );
    let scan_addr = serve_matching(&scan, &s.stop).await;
    let (_, key) = create_brand(s.matching.db(), "Acme").await.expect("brand");
    let mut cached = client(s.addr, Some(&key));
    let mut scanned = client(scan_addr, Some(&key));

    let excluded = vec![acct("g0000"), acct("g0001"), acct("g0004"), acct("nobody")];
    // (name, objective, criteria, min authenticity, excluded, near-miss margin)
    type Shape = (&'static str, pb::Objective, Vec<pb::Criterion>, f64, Vec<ipb::AccountRef>, f64);
    let shapes: Vec<Shape> = vec![
        ("loose reach", pb::Objective::Reach, vec![criterion(D::Reach, "", MinPercentile(20.0))], 0.0, vec![], 15.0),
        ("no criteria", pb::Objective::Conversions, vec![], 0.0, excluded.clone(), 0.0),
        (
            "tight",
            pb::Objective::Reach,
            vec![criterion(D::Reach, "", MinPercentile(90.0)), criterion(D::Network, "", MinPercentile(85.0))],
            0.0,
            vec![],
            30.0,
        ),
        (
            "topics and values",
            pb::Objective::Engagement,
            vec![
                criterion(D::Activity, "food", MinPercentile(30.0)),
                criterion(D::Network, "travel", MinValue(1.0)),
                criterion(D::Reach, "", MinValue(5.0)),
            ],
            40.0,
            excluded.clone(),
            25.0,
        ),
        (
            "conversions",
            pb::Objective::Conversions,
            vec![criterion(D::Action, "", MinPercentile(50.0))],
            0.0,
            vec![],
            50.0,
        ),
        (
            "absent topic",
            pb::Objective::Reach,
            vec![criterion(D::Activity, "knitting", MinPercentile(10.0))],
            0.0,
            vec![],
            20.0,
        ),
    ];
    let mut ids = Vec::new();
    for (name, objective, criteria, min_authenticity, excluded, margin) in &shapes {
        let sp = pb::CampaignSpec {
            objective: *objective as i32,
            criteria: criteria.clone(),
            min_authenticity: *min_authenticity,
            excluded: excluded.clone(),
            ..spec(name)
        };
        ids.push((create(&mut cached, sp).await.id, *margin));
    }

    // Concurrent first calls: one load between them.
    assert_eq!(s.matching.score_cache_stats().loads, 0);
    let calls: Vec<_> = ids
        .iter()
        .map(|(id, _)| {
            let mut c = client(s.addr, Some(&key));
            let id = id.clone();
            tokio::spawn(async move {
                c.match_campaign(pb::MatchCampaignRequest { campaign_id: id, ..Default::default() }).await
            })
        })
        .collect();
    for c in calls {
        c.await.expect("join").expect("match");
    }
    let stats = s.matching.score_cache_stats();
    assert_eq!(stats.loads, 1, "{stats:?}");
    assert_eq!(stats.as_of_offset, head);
    assert!(stats.accounts >= 400, "{stats:?}");

    let compare = async |cached: &mut Client, scanned: &mut Client, what: &str| {
        let mut nonempty = 0;
        for (id, margin) in &ids {
            for size in [7, 1_000] {
                let mut a = all_pages(cached, id, size, *margin).await;
                let b = all_pages(scanned, id, size, *margin).await;
                // Only the cache sees every account, so only it can count the funnel.
                let funnel = std::mem::take(&mut a[0].funnel);
                assert_eq!(funnel.last().map(|f| f.remaining), Some(a[0].total_eligible), "{what}: {funnel:?}");
                assert!(b[0].funnel.is_empty(), "a pre-filtered scan cannot count a funnel");
                assert_eq!(a, b, "{what}: campaign {id}, page size {size}");
                nonempty += usize::from(a[0].total_eligible > 0);
            }
        }
        nonempty
    };
    let nonempty = compare(&mut cached, &mut scanned, "first run").await;
    assert!(nonempty >= 8, "most shapes select someone: {nonempty}");
    // The comparisons above exercised near misses too.
    let first = all_pages(&mut cached, &ids[0].0, 1_000, ids[0].1).await;
    assert!(!first[0].near_misses.is_empty() && first[0].total_eligible > 50, "{:?}", first[0].total_eligible);
    assert_eq!(s.matching.score_cache_stats().loads, 1, "no reload while scoring's run is unchanged");

    // A new run: a newcomer with a large audience; the cache follows it.
    let mut late = vec![ev(
        "acct-late",
        100,
        Kind::Account(ipb::AccountUpsert {
            account: Some(acct("late")),
            handle: "late_h".into(),
            ..Default::default()
        }),
    )];
    for i in 0..150 {
        late.push(ev(
            &format!("late-follow-{i}"),
            90,
            Kind::Follow(ipb::Follow {
                follower: Some(acct(&format!("g{i:04}"))),
                followee: Some(acct("late")),
                unfollow: false,
            }),
        ));
    }
    // "no criteria" selects every scored account but the excluded ones.
    let everyone = |pages: &[pb::MatchCampaignResponse]| -> BTreeSet<String> {
        pages.iter().flat_map(|p| &p.eligible).filter_map(|c| c.account.as_ref()).map(|a| a.id.clone()).collect()
    };
    let before = all_pages(&mut cached, &ids[1].0, 1_000, 0.0).await;
    assert!(!everyone(&before).contains("late"));
    let head2 = ingest(&s, late).await;
    scored(&s, head2).await;
    let after = all_pages(&mut cached, &ids[1].0, 1_000, 0.0).await;
    assert_eq!(after[0].as_of_offset, head2);
    assert_eq!(after[0].total_eligible, before[0].total_eligible + 1);
    assert!(everyone(&after).contains("late"), "the newcomer is matched after the new run");
    let stats = s.matching.score_cache_stats();
    assert_eq!((stats.loads, stats.as_of_offset), (2, head2), "{stats:?}");
    compare(&mut cached, &mut scanned, "second run").await;
    assert_eq!(s.matching.score_cache_stats().loads, 2);
}
