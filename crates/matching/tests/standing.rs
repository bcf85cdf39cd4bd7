//! Standing perk programs over real gRPC with real ingestion and scoring
//! in-process: perks given once per account as scoring runs come (several
//! runs, with the standing consumer and explicit evaluations racing), budget
//! and cap under concurrent evaluations by two replicas on one database, and
//! a model change that translates the threshold and reports the churn.
//!
//! The scripted world (`common::social_world`): creator `i` followed by
//! `i + 2` fans who also like its post, so reach rises with `i`; sending the
//! world for more creators adds new, better-reached creators.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use common::{Client, acct, ingest_all, quick_scoring, serve_matching, social_world, start_ingest, start_scoring};
use lift_matching::{Matching, MatchingConfig, create_brand};
use lift_proto::ingest::v1 as ipb;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::matching::v1 as pb;
use lift_proto::scoring::v1 as spb;
use lift_runtime::Shutdown;
use lift_scoring::{Scoring, ScoringConfig};
use lift_store::DatabaseConnection;
use tonic::Code;

const AGES: [i64; 4] = [3_600, 3_500, 3_400, 3_300];

fn cfg() -> MatchingConfig {
    MatchingConfig { standing_poll: Duration::from_millis(50), ..MatchingConfig::default() }
}

struct Stack {
    ingest: IngestServiceClient<common::Rt>,
    ingest_addr: SocketAddr,
    scoring_db: DatabaseConnection,
    scoring: Scoring,
    scoring_addr: SocketAddr,
    scoring_stop: Shutdown,
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

async fn start(db: DatabaseConnection) -> Stack {
    let stop = Shutdown::new();
    let ingest_addr = start_ingest(&stop).await;
    let scoring_db = lift_store::connect("sqlite::memory:").await.expect("db");
    let scoring_stop = Shutdown::new();
    let (scoring, scoring_addr) =
        start_scoring(scoring_db.clone(), ingest_addr, quick_scoring(30), &scoring_stop).await;
    let matching = common::matching(db, scoring_addr, ingest_addr, cfg());
    let addr = serve_matching(&matching, &stop).await;
    let ingest = IngestServiceClient::new(common::rt(ingest_addr));
    Stack { ingest, ingest_addr, scoring_db, scoring, scoring_addr, scoring_stop, matching, addr, stop }
}

/// Sends the world for `creators` creators and waits until scoring has scored it.
async fn world(s: &Stack, creators: usize) {
    let head = ingest_all(&s.ingest, social_world(creators, AGES, true)).await;
    common::scored(&s.scoring, head).await;
}

fn reach(threshold: pb::criterion::Threshold) -> pb::Criterion {
    pb::Criterion { dimension: spb::Dimension::Reach as i32, topic: String::new(), threshold: Some(threshold) }
}

fn spec(name: &str, criterion: pb::Criterion, budget: i64, holdout_share: f64) -> pb::CampaignSpec {
    pb::CampaignSpec {
        name: name.into(),
        objective: pb::Objective::Reach as i32,
        perk: "a free marker".into(),
        unit_cost: 1_000,
        budget,
        currency: "EUR".into(),
        criteria: vec![criterion],
        holdout_share,
        ..Default::default()
    }
}

/// Creates a campaign and makes it standing with `max_offers`.
async fn standing(c: &mut Client, spec: pb::CampaignSpec, max_offers: u64) -> String {
    let campaign = c
        .create_campaign(pb::CreateCampaignRequest { spec: Some(spec) })
        .await
        .expect("create")
        .into_inner()
        .campaign
        .expect("campaign");
    let rules = pb::StandingRules { max_offers, ..Default::default() };
    let r = c
        .start_standing_program(pb::StartStandingProgramRequest {
            campaign_id: campaign.id.clone(),
            rules: Some(rules),
        })
        .await
        .expect("start")
        .into_inner();
    assert_eq!(r.program.expect("program").status, "open");
    campaign.id
}

/// The accounts the campaign's criteria select now (its absolute thresholds as translated).
async fn eligible(c: &mut Client, id: &str) -> (BTreeSet<String>, String, u64) {
    let req = pb::MatchCampaignRequest { campaign_id: id.into(), page_size: 1_000, ..Default::default() };
    let r = c.match_campaign(req).await.expect("match").into_inner();
    assert!(r.next_page_token.is_empty() && !r.stale);
    let set = r.eligible.iter().filter_map(|c| c.account.as_ref()).map(|a| a.id.clone()).collect();
    (set, r.model_version, r.as_of_offset)
}

async fn program(c: &mut Client, id: &str) -> pb::GetStandingProgramResponse {
    let req = pb::GetStandingProgramRequest { campaign_id: id.into(), page_size: 1_000, ..Default::default() };
    c.get_standing_program(req).await.expect("get standing").into_inner()
}

async fn offers(c: &mut Client, id: &str) -> Vec<pb::Offer> {
    let req = pb::ListOffersRequest { campaign_id: id.into(), page_size: 1_000, ..Default::default() };
    c.list_offers(req).await.expect("offers").into_inner().offers
}

/// Waits (up to 30 s) until the standing consumer alone has evaluated the program on run `as_of`.
async fn consumer_reaches(c: &mut Client, id: &str, as_of: u64) -> pb::GetStandingProgramResponse {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let p = program(c, id).await;
        if p.program.as_ref().is_some_and(|s| s.last_as_of_offset == as_of) {
            return p;
        }
        assert!(tokio::time::Instant::now() < deadline, "the standing consumer never evaluated run {as_of}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pins "once per account as it crosses": over three scoring runs, each
/// account that meets the criteria gets exactly one perk (offer or control),
/// recorded with the first run it qualified in, whether the consumer or an
/// explicit evaluation (racing it) got there first; a held-out account stays
/// held out; accounts that fall below later keep their one perk; the offers
/// are ordinary offers (ListOffers, TransitionOffer onto the ledger).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_program_offers_once_per_account_as_runs_arrive() {
    let s = start(lift_store::connect("sqlite::memory:").await.expect("db")).await;
    let mut b = common::brand(&s.matching, s.addr, "Sharpie").await;
    world(&s, 8).await;
    let id =
        standing(&mut b, spec("markers", reach(pb::criterion::Threshold::MinPercentile(80.0)), 10_000_000, 0.5), 0)
            .await;

    let mut first_run: HashMap<String, u64> = HashMap::new();
    let mut union = BTreeSet::new();
    for creators in [8, 16, 24] {
        world(&s, creators).await;
        let (now, _, as_of) = eligible(&mut b, &id).await;
        assert!(!now.is_empty());
        let entered: Vec<&String> = now.difference(&union).collect();
        assert!(!entered.is_empty(), "run with {creators} creators brings new accounts over the threshold");
        for a in &entered {
            first_run.insert((*a).clone(), as_of);
        }
        union.extend(now.iter().cloned());
        // The consumer evaluates this run by itself; explicit evaluations race it.
        let (x, y) = tokio::join!(s.matching.evaluate_standing(), s.matching.evaluate_standing());
        x.expect("evaluate");
        y.expect("evaluate");
        let p = consumer_reaches(&mut b, &id, as_of).await;
        let perks: BTreeSet<String> = p.perks.iter().filter_map(|k| k.account.as_ref()).map(|a| a.id.clone()).collect();
        assert_eq!(perks.len(), p.perks.len(), "no account twice");
        assert_eq!(perks, union, "every account that ever qualified, and only those, has its perk");
        for k in &p.perks {
            let a = k.account.as_ref().map(|a| a.id.clone()).unwrap_or_default();
            assert_eq!(k.as_of_offset, first_run[&a], "{a} got its perk on the run it first qualified in");
            assert!(k.criteria.iter().all(|r| r.passed) && !k.criteria.is_empty(), "the reasons are recorded");
            assert_eq!(k.holdout, k.link.is_empty());
        }
        let status = p.program.expect("status");
        let controls = p.perks.iter().filter(|k| k.holdout).count() as u64;
        assert_eq!((status.offers + status.controls, status.controls), (union.len() as u64, controls));
        assert_eq!(status.spent, 1_000 * status.offers as i64);
        let listed = offers(&mut b, &id).await;
        assert_eq!(listed.len(), union.len(), "one offer or control row per account");
        for o in &listed {
            let k = p.perks.iter().find(|k| k.account == o.account).expect("perk of the offer");
            assert_eq!(o.holdout, k.holdout, "a held-out account is never offered later");
        }
    }
    let p = program(&mut b, &id).await;
    let status = p.program.expect("status");
    assert!(status.controls > 0 && status.offers > 0, "half are held out: {status:?}");
    assert!(status.runs_evaluated >= 3);

    // A standing offer is an ordinary offer: it moves along its life onto the ledger.
    let offered = p.perks.iter().find(|k| !k.holdout).and_then(|k| k.account.clone()).expect("an offer");
    let t = b
        .transition_offer(pb::TransitionOfferRequest {
            campaign_id: id.clone(),
            account: Some(offered),
            to_state: ipb::OfferState::Accepted as i32,
            ..Default::default()
        })
        .await
        .expect("accept")
        .into_inner();
    assert!(t.changed && t.ledger_offset > 0);
    let held = p.perks.iter().find(|k| k.holdout).and_then(|k| k.account.clone()).expect("a control");
    let refused = b
        .transition_offer(pb::TransitionOfferRequest {
            campaign_id: id.clone(),
            account: Some(held),
            to_state: ipb::OfferState::Accepted as i32,
            ..Default::default()
        })
        .await
        .expect_err("a control has no offer");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let again = b.create_offers(pb::CreateOffersRequest { campaign_id: id.clone(), holdout_seed: 0 }).await;
    assert_eq!(again.expect_err("standing issues its own").code(), Code::FailedPrecondition);
    let twice = b
        .start_standing_program(pb::StartStandingProgramRequest { campaign_id: id.clone(), rules: None })
        .await
        .expect_err("standing once");
    assert_eq!(twice.code(), Code::AlreadyExists);
}

/// Pins budget and cap under concurrent evaluations: two matching replicas
/// on one SQLite file, each running two evaluations at once (besides their
/// consumers), never spend over the budget, never pass the cap and never offer
/// an account twice — with unequal prices from the brand's rate card.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budget_and_cap_hold_under_concurrent_evaluations() {
    let file = lift_store::testing::TempSqlite::new("standing-budget");
    budget_and_cap(&file.url()).await;
}

/// The same on PostgreSQL, where the replicas' grants run side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budget_and_cap_hold_under_concurrent_evaluations_on_postgres() {
    let (_pg, url) = lift_store::testing::postgres().await.expect("PostgreSQL test container");
    budget_and_cap(&url).await;
}

async fn budget_and_cap(url: &str) {
    let s = start(lift_store::connect(url).await.expect("db")).await;
    world(&s, 40).await;
    let replica = common::matching(lift_store::connect(url).await.expect("db"), s.scoring_addr, s.ingest_addr, cfg());
    let mut b = common::brand(&s.matching, s.addr, "Sharpie").await;
    // Unequal prices: the ten best-reached creators ask 2,500; everyone else costs the unit cost, 1,000.
    let rates = (30..40).map(|i| pb::CreatorRate { account: Some(acct(&common::creator(i))), rate: 2_500 }).collect();
    let card = pb::SetRateCardRequest { currency: "EUR".into(), rates, replace: false };
    b.set_rate_card(card).await.expect("rate card");
    let p50 = || reach(pb::criterion::Threshold::MinPercentile(50.0));
    const BUDGET: i64 = 12_000;
    let budget_id = standing(&mut b, spec("budget", p50(), BUDGET, 0.0), 0).await;
    let cap_id = standing(&mut b, spec("cap", p50(), 10_000_000, 0.0), 4).await;

    let (w, x, y, z) = tokio::join!(
        s.matching.evaluate_standing(),
        s.matching.evaluate_standing(),
        replica.evaluate_standing(),
        replica.evaluate_standing()
    );
    for r in [w, x, y, z] {
        r.expect("evaluate");
    }
    let (qualified, ..) = eligible(&mut b, &budget_id).await;
    assert!(qualified.len() >= 13, "more accounts qualify ({}) than the budget pays for", qualified.len());

    let p = program(&mut b, &budget_id).await;
    let status = p.program.expect("status");
    let ids: BTreeSet<_> = p.perks.iter().filter_map(|k| k.account.as_ref()).map(|a| a.id.clone()).collect();
    assert_eq!(ids.len(), p.perks.len(), "no account offered twice");
    assert!(ids.is_subset(&qualified));
    let spent: i64 = p.perks.iter().map(|k| k.cost).sum();
    assert!(status.spent <= BUDGET, "over-spent: {} of {BUDGET}", status.spent);
    assert_eq!(status.spent, spent, "the books agree with the perks");
    assert!(p.perks.iter().any(|k| k.cost == 2_500) && p.perks.iter().any(|k| k.cost == 1_000), "unequal prices");
    assert!(status.budget_left < 1_000, "the budget is used while a perk fits: {} left", status.budget_left);
    assert_eq!(status.budget_left, BUDGET - status.spent);
    assert_eq!(status.offers as usize, p.perks.len());
    assert_eq!(offers(&mut b, &budget_id).await.len(), p.perks.len(), "one offer row per perk");

    let p = program(&mut b, &cap_id).await;
    let status = p.program.expect("status");
    assert_eq!((status.offers, p.perks.len()), (4, 4), "max_offers holds under concurrent evaluations");
    assert_eq!(status.status, "cap reached");
    assert_eq!(offers(&mut b, &cap_id).await.len(), 4);
}

/// The reach value of every account, read through a campaign that lets
/// everyone in (`reach ≥ 0`) and reports each account's observed value.
async fn reach_values(b: &mut Client) -> HashMap<String, f64> {
    let sp = spec("probe", reach(pb::criterion::Threshold::MinValue(0.0)), 1_000, 0.0);
    let c = b.create_campaign(pb::CreateCampaignRequest { spec: Some(sp) }).await.expect("create").into_inner();
    let id = c.campaign.expect("campaign").id;
    let req = pb::MatchCampaignRequest { campaign_id: id, page_size: 1_000, ..Default::default() };
    let mut out = HashMap::new();
    let mut req = req;
    loop {
        let r = b.match_campaign(req.clone()).await.expect("match").into_inner();
        for c in &r.eligible {
            let (Some(a), Some(v)) = (c.account.as_ref(), c.criteria.first()) else { continue };
            out.insert(a.id.clone(), v.observed);
        }
        if r.next_page_token.is_empty() {
            return out;
        }
        req.page_token = r.next_page_token;
    }
}

/// Pins recalibration: after scoring's model changes, the program's absolute
/// threshold is translated with the old→new values recorded, the same
/// accounts still qualify (up to the mapping's resolution), the churn is
/// reported with the accounts that left, and nobody gets a second perk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_change_translates_the_threshold_and_reports_churn() {
    let s = start(lift_store::connect("sqlite::memory:").await.expect("db")).await;
    world(&s, 40).await;
    let (_, key) = create_brand(s.matching.db(), "Sharpie").await.expect("brand");
    let mut b = common::client(s.addr, Some(&key));
    let values = reach_values(&mut b).await;
    let mut creators: Vec<f64> = values.iter().filter(|(a, _)| a.starts_with('c')).map(|(_, v)| *v).collect();
    creators.sort_by(f64::total_cmp);
    let threshold = creators[creators.len() / 2];
    let id = standing(&mut b, spec("markers", reach(pb::criterion::Threshold::MinValue(threshold)), 1_000_000, 0.0), 0)
        .await;
    s.matching.evaluate_standing().await.expect("evaluate v1");
    let (before, v1, _) = eligible(&mut b, &id).await;
    let p1 = program(&mut b, &id).await;
    assert_eq!(p1.perks.len(), before.len());
    assert!(p1.recalibrations.is_empty());

    // A new model on the same scoring database: every reach value moves.
    s.scoring_stop.trigger();
    let mut model = ScoringConfig::default().model;
    model.reach_scale *= 2.0;
    let stop2 = Shutdown::new();
    let scoring_cfg = ScoringConfig { model, ..quick_scoring(30) };
    let (scoring2, addr2) = start_scoring(s.scoring_db.clone(), s.ingest_addr, scoring_cfg, &stop2).await;
    let head = s.ingest.clone().get_ledger_info(ipb::GetLedgerInfoRequest {}).await.expect("info").into_inner();
    common::scored(&scoring2, head.head_offset).await;
    let m2 = common::matching(s.matching.db().clone(), addr2, s.ingest_addr, cfg());
    let addr = serve_matching(&m2, &stop2).await;
    let mut b2 = common::client(addr, Some(&key));
    let runs = m2.evaluate_standing().await.expect("evaluate v2");
    let run = runs.iter().find(|r| r.campaign_id == id).expect("evaluated");
    assert_ne!(run.model_version, v1);
    let (after, v2, _) = eligible(&mut b2, &id).await;
    assert_eq!(v2, run.model_version);

    let p2 = program(&mut b2, &id).await;
    assert_eq!(p2.recalibrations.len(), 1, "{:?}", p2.recalibrations);
    let r = &p2.recalibrations[0];
    assert_eq!((r.from_version.as_str(), r.to_version.as_str()), (v1.as_str(), v2.as_str()));
    let moved = r.thresholds.first().expect("the threshold's mapping");
    assert_eq!(moved.dimension, spb::Dimension::Reach as i32);
    assert_eq!(moved.from_value, threshold);
    assert!(moved.to_value < threshold, "a doubled scale lowers reach values: {} vs {threshold}", moved.to_value);
    let left: BTreeSet<String> = before.difference(&after).cloned().collect();
    let listed: BTreeSet<String> = r.left_accounts.iter().map(|a| a.id.clone()).collect();
    assert_eq!((r.left, &listed), (left.len() as u64, &left), "the accounts that left are reported");
    let entered = after.difference(&before).count() as u64;
    assert_eq!((r.entered, r.stayed), (entered, (before.len() - left.len()) as u64));
    // Quantile mapping keeps the selection up to the mapping's resolution.
    assert!(entered + r.left <= 10, "entered {entered}, left {} of {}", r.left, before.len());
    assert!(r.stayed >= before.len() as u64 - 10);
    // Without the translation the old number would select far fewer accounts on the new scale.
    let untranslated = reach_values(&mut b2).await.values().filter(|v| **v >= threshold).count();
    assert!(untranslated + 5 < after.len(), "translation matters: {untranslated} vs {}", after.len());

    let perks: BTreeSet<String> = p2.perks.iter().filter_map(|k| k.account.as_ref()).map(|a| a.id.clone()).collect();
    assert_eq!(perks.len(), p2.perks.len(), "no account offered twice");
    assert_eq!(perks, before.union(&after).cloned().collect::<BTreeSet<_>>());
    for k in &p2.perks {
        let a = k.account.as_ref().map(|a| a.id.as_str()).unwrap_or_default();
        let want = if before.contains(a) { &v1 } else { &v2 };
        assert_eq!(&k.model_version, want, "{a} qualified first under {want}");
    }
    stop2.trigger();
}

/// Pins the program's dates and bad input: a program that has not started or
/// has ended gives nothing on a run, bad rules are INVALID_ARGUMENT naming
/// each field, and another brand's campaign looks missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_and_bad_input() {
    use lift_domain::time::{MICROS_PER_SEC, now};
    use lift_proto::convert::to_timestamp;
    use tonic_types::StatusExt;

    let s = start(lift_store::connect("sqlite::memory:").await.expect("db")).await;
    world(&s, 12).await;
    let mut b = common::brand(&s.matching, s.addr, "Sharpie").await;
    let mut other = common::brand(&s.matching, s.addr, "Other").await;
    let bar = || reach(pb::criterion::Threshold::MinPercentile(50.0));
    let create = |name: &str| pb::CreateCampaignRequest { spec: Some(spec(name, bar(), 100_000, 0.0)) };
    let hour = 3_600 * MICROS_PER_SEC;
    let mut ids = Vec::new();
    for (name, starts, ends) in [("later", now() + hour, None), ("over", now() - 2 * hour, Some(now() - hour))] {
        let c = b.create_campaign(create(name)).await.expect("create").into_inner().campaign.expect("campaign");
        let rules =
            pb::StandingRules { max_offers: 0, starts_at: Some(to_timestamp(starts)), ends_at: ends.map(to_timestamp) };
        let req = pb::StartStandingProgramRequest { campaign_id: c.id.clone(), rules: Some(rules) };
        let started = b.start_standing_program(req).await.expect("start").into_inner().program.expect("program");
        assert_eq!(started.status, if ends.is_some() { "ended" } else { "not started" });
        ids.push(c.id);
    }
    let runs = s.matching.evaluate_standing().await.expect("evaluate");
    assert!(runs.is_empty(), "closed programs are not evaluated: {runs:?}");
    for id in &ids {
        let p = program(&mut b, id).await;
        assert!(p.perks.is_empty() && p.program.expect("status").runs_evaluated == 0);
        assert!(offers(&mut b, id).await.is_empty());
    }

    let c = b.create_campaign(create("bad")).await.expect("create").into_inner().campaign.expect("campaign");
    let rules = pb::StandingRules {
        max_offers: u64::MAX,
        starts_at: Some(to_timestamp(now())),
        ends_at: Some(to_timestamp(now() - hour)),
    };
    let req = pb::StartStandingProgramRequest { campaign_id: c.id.clone(), rules: Some(rules) };
    let err = b.start_standing_program(req).await.expect_err("bad rules");
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        err.get_details_bad_request().expect("details").field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(fields, ["rules.ends_at", "rules.max_offers"]);
    let req = pb::StartStandingProgramRequest { campaign_id: c.id.clone(), rules: None };
    assert_eq!(other.start_standing_program(req).await.expect_err("not theirs").code(), Code::NotFound);
    let req = pb::GetStandingProgramRequest { campaign_id: c.id.clone(), ..Default::default() };
    assert_eq!(b.get_standing_program(req).await.expect_err("not standing").code(), Code::FailedPrecondition);
}
