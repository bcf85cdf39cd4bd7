//! A standing program's campaign report over real ingestion and scoring
//! in-process: perks granted over several scoring runs, with orders, clicks
//! and coupon orders arriving before and between the grants. Each member's
//! outcomes count only after its own grant (its audience's orders, computed
//! here by hand from the ledger offsets), later grants' outcomes are in the
//! report, and the report kept by the consumer equals the rescan, survives a
//! restart of matching, and equals the report a fresh consumer builds from
//! the start — on SQLite and on PostgreSQL.
//!
//! The scripted world (`common::social_world`): creator `i` followed by
//! `i + 2` fans (`fan(i, j)`) who like its post and follow nobody else, so an
//! order by `fan(i, j)` is an outcome of creator `i` alone.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::{Backend, acct, ev, fan, ingest_all, quick_scoring, scored, social_world, start_backend};
use lift_domain::AccountId;
use lift_matching::{BrandId, Matching, MatchingConfig, create_brand};
use lift_proto::ingest::v1 as ipb;
use lift_proto::ingest::v1::event::Kind;
use lift_proto::matching::v1 as pb;
use lift_proto::scoring::v1 as spb;
use lift_store::{ConnectionTrait, DatabaseConnection};

const AGES: [i64; 4] = [3_600, 3_500, 3_400, 3_300];

fn matching(w: &Backend, db: &DatabaseConnection) -> Matching {
    // The standing consumer evaluates when the program starts; later runs are
    // evaluated by the test, so that orders land between grants on purpose.
    let cfg = MatchingConfig {
        standing_poll: Duration::from_secs(3_600),
        report_patience: Duration::from_secs(30),
        ..MatchingConfig::default()
    };
    common::matching(db.clone(), w.scoring_addr, w.ingest_addr, cfg)
}

/// What the test sent, with the offsets ingestion gave it.
#[derive(Default)]
struct Sent {
    /// Audience orders: the creator whose fan ordered, and the offset.
    audience: Vec<(usize, u64)>,
    /// Clicks and coupon orders per offered account.
    clicks: HashMap<String, u64>,
    coupons: HashMap<String, u64>,
    n: usize,
}

impl Sent {
    /// Ingests `events`; returns each one's offset.
    async fn ingest(w: &Backend, events: Vec<ipb::Event>) -> Vec<u64> {
        let r = w.ingest.clone().ingest_batch(ipb::IngestBatchRequest { events }).await.expect("ingest").into_inner();
        assert_eq!(r.rejected, 0);
        r.results.iter().map(|x| x.offset).collect()
    }

    /// One order by a fan (`j`) of each of the first `creators` creators.
    async fn audience_orders(&mut self, w: &Backend, creators: usize, j: usize) {
        let events: Vec<ipb::Event> = (0..creators)
            .map(|i| {
                self.n += 1;
                let order = ipb::Conversion {
                    visitor_id: format!("va{}", self.n),
                    order_id: format!("aud{}", self.n),
                    value_minor: 100,
                    currency: "EUR".into(),
                    customer: Some(acct(&fan(i, j))),
                    ..Default::default()
                };
                ev(&format!("aud{}", self.n), 30, Kind::Conversion(order))
            })
            .collect();
        for (i, at) in Sent::ingest(w, events).await.into_iter().enumerate() {
            self.audience.push((i, at));
        }
    }

    /// Two clicks on each offer's link and an order with its code.
    async fn outcomes(&mut self, w: &Backend, offers: &[pb::Offer]) {
        let mut events = Vec::new();
        for o in offers.iter().filter(|o| !o.holdout) {
            self.n += 1;
            let id = o.account.as_ref().map(|a| a.id.clone()).unwrap_or_default();
            let visitor = format!("v{}", self.n);
            for k in 0..2 {
                let click = ipb::LinkClick { link: o.link.clone(), visitor_id: visitor.clone(), ..Default::default() };
                events.push(ev(&format!("click{}-{k}", self.n), 60, Kind::LinkClick(click)));
            }
            let order = ipb::Conversion {
                code: o.code.clone(),
                order_id: format!("coupon{}", self.n),
                value_minor: 2_000,
                currency: "EUR".into(),
                ..Default::default()
            };
            events.push(ev(&format!("coupon{}", self.n), 30, Kind::Conversion(order)));
            *self.clicks.entry(id.clone()).or_default() += 2;
            *self.coupons.entry(id).or_default() += 1;
        }
        Sent::ingest(w, events).await;
    }
}

/// Creator index of `c07`.
fn index(a: &AccountId) -> usize {
    a.id[1..].parse().expect("a creator")
}

/// Checks the report against the outcomes sent: per-creator clicks and coupon
/// orders, and the lift — each member's outcome is the number of its fans'
/// orders after its own start. Returns how many audience orders came after
/// the program's first grant but before the grant of the member they belong to.
async fn check(m: &Matching, brand: &BrandId, id: &str, sent: &Sent) -> (pb::GetCampaignReportResponse, usize) {
    let req = pb::GetCampaignReportRequest { campaign_id: id.to_owned() };
    let fast = m.campaign_report(brand, &req).await.expect("report from aggregates");
    let slow = m.campaign_report_rescan(brand, &req).await.expect("report from a rescan");
    assert_eq!(fast, slow, "aggregates and rescan disagree");

    let starts: BTreeMap<AccountId, u64> =
        lift_store::standing::starts(m.db(), id).await.expect("starts").into_iter().collect();
    let first = starts.values().copied().min().expect("granted");
    let offers = list(m, brand, id).await;
    assert_eq!(offers.len(), starts.len(), "every grant is in the report's campaign");
    assert_eq!(fast.creators.len(), offers.iter().filter(|o| !o.holdout).count(), "every offer is in the report");
    for c in &fast.creators {
        let a = c.account.as_ref().map(|a| a.id.clone()).unwrap_or_default();
        let t = c.totals.as_ref().expect("totals");
        let want = (sent.clicks.get(&a).copied().unwrap_or(0), sent.coupons.get(&a).copied().unwrap_or(0));
        assert_eq!((t.clicks, t.conversions), want, "{a}: clicks and coupon orders after its grant");
    }

    let (mut treated, mut controls, mut between) = (Vec::new(), Vec::new(), 0);
    for o in &offers {
        let a = AccountId::new("t", o.account.as_ref().map(|a| a.id.clone()).unwrap_or_default());
        let start = starts[&a];
        let mine = sent.audience.iter().filter(|(i, _)| *i == index(&a));
        let outcome = mine.clone().filter(|(_, at)| *at > start).count() as f64;
        between += mine.filter(|(_, at)| *at > first && *at <= start).count();
        if o.holdout { controls.push(outcome) } else { treated.push(outcome) }
    }
    let lift = fast.lift.clone().expect("lift");
    assert_eq!((lift.treated as usize, lift.holdout as usize), (treated.len(), controls.len()));
    if lift.unavailable_reason.is_empty() {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let want = mean(&treated) - mean(&controls);
        assert!(
            (lift.incremental_per_creator - want).abs() < 1e-9,
            "lift {} but the members' own windows give {want} (treated {treated:?}, controls {controls:?})",
            lift.incremental_per_creator
        );
    }
    (fast, between)
}

async fn list(m: &Matching, brand: &BrandId, id: &str) -> Vec<pb::Offer> {
    let req = pb::ListOffersRequest { campaign_id: id.into(), page_size: 1_000, ..Default::default() };
    m.list_offers(brand, &req).await.expect("offers").offers
}

async fn scenario(db: DatabaseConnection) {
    let w = start_backend(quick_scoring(30)).await;
    let m = matching(&w, &db);
    let (brand, _) = create_brand(&db, "Sharpie").await.expect("brand");
    let spec = pb::CampaignSpec {
        name: "markers".into(),
        objective: pb::Objective::Reach as i32,
        perk: "a free marker".into(),
        unit_cost: 1_000,
        budget: 10_000_000,
        currency: "EUR".into(),
        criteria: vec![pb::Criterion {
            dimension: spb::Dimension::Reach as i32,
            topic: String::new(),
            threshold: Some(pb::criterion::Threshold::MinPercentile(80.0)),
        }],
        holdout_share: 0.5,
        ..Default::default()
    };
    let id = m.create_campaign(&brand, Some(&spec)).await.expect("create").id;

    let mut sent = Sent::default();
    let mut granted = 0;
    let mut between = 0;
    for (round, creators) in [8, 16, 24].into_iter().enumerate() {
        // New, better-reached creators arrive and are scored.
        let head = ingest_all(&w.ingest, social_world(creators, AGES, true)).await;
        scored(&w.scoring, head).await;
        // Orders by every creator's fans before this run's grants.
        sent.audience_orders(&w, creators, 1).await;
        if round == 0 {
            let req = pb::StartStandingProgramRequest { campaign_id: id.clone(), rules: None };
            m.start_standing_program(&brand, &req).await.expect("start");
        }
        m.evaluate_standing().await.expect("evaluate");
        let offers = list(&m, &brand, &id).await;
        assert!(offers.len() > granted, "run {round} grants new perks");
        granted = offers.len();
        check(&m, &brand, &id, &sent).await;
        // Outcomes after the grants: clicks and coupon orders, fans' orders.
        sent.outcomes(&w, &offers).await;
        sent.audience_orders(&w, creators, 0).await;
        let (r, b) = check(&m, &brand, &id, &sent).await;
        between = b;
        assert!(r.totals.expect("totals").clicks > 0);
    }
    assert!(between > 0, "some fans' orders came after the first grant but before their creator's");
    let offers = list(&m, &brand, &id).await;
    assert!(offers.iter().any(|o| o.holdout) && offers.iter().filter(|o| o.holdout).count() >= 2);

    // Matching stops; outcomes arrive while it is down; a new instance on the
    // same database resumes from the committed position.
    drop(m);
    sent.outcomes(&w, &offers).await;
    sent.audience_orders(&w, 24, 1).await;
    let m = matching(&w, &db);
    let (kept, _) = check(&m, &brand, &id, &sent).await;
    let lift = kept.lift.clone().expect("lift");
    assert!(lift.unavailable_reason.is_empty(), "{lift:?}");
    drop(m);

    // A fresh consumer: the aggregates and its position gone, it builds the
    // report from the start of the ledger with every member known at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    db.execute_unprepared("DELETE FROM report_aggregates").await.expect("wipe aggregates");
    db.execute_unprepared("DELETE FROM report_consumer").await.expect("wipe position");
    let m = matching(&w, &db);
    let (fresh, _) = check(&m, &brand, &id, &sent).await;
    assert_eq!(fresh, kept, "the report built from the start equals the one kept as grants came");
}

/// Pins the standing program's report on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_report_counts_each_member_from_its_grant_on_sqlite() {
    scenario(lift_store::connect("sqlite::memory:").await.expect("db")).await;
}

/// Pins the same on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_report_counts_each_member_from_its_grant_on_postgres() {
    let (_pg, url) = lift_store::testing::postgres().await.expect("postgres");
    scenario(lift_store::connect(&url).await.expect("db")).await;
}
