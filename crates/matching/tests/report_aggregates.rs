//! Campaign reports from the report consumer's aggregates equal the report
//! computed from scratch over the same ledger — while outcomes keep arriving,
//! across a restart of matching mid-stream (nothing counted twice or skipped),
//! and for a campaign offered after the consumer had already read the ledger.
//!
//! Real ingestion and scoring run in-process on loopback; matching's database
//! is SQLite, and PostgreSQL in a testcontainers container.

mod common;

use std::time::Duration;

use common::{Backend, acct, dead_addr, ev, fan, ingest_all, social_world, start_backend};
use lift_matching::{BrandId, Matching, MatchingConfig, create_brand};
use lift_proto::ingest::v1 as ipb;
use lift_proto::ingest::v1::event::Kind;
use lift_proto::matching::v1 as pb;
use lift_proto::scoring::v1 as spb;
use lift_scoring::ScoringConfig;
use lift_store::DatabaseConnection;

const CREATORS: usize = 24;

/// Ingestion and scoring following its ledger; matching is made per test on a
/// database it chooses.
struct World(Backend);

async fn world() -> World {
    let cfg = ScoringConfig { debounce: Duration::from_millis(30), ..ScoringConfig::default() };
    World(start_backend(cfg).await)
}

impl World {
    fn matching(&self, db: &DatabaseConnection) -> Matching {
        let cfg = MatchingConfig { report_patience: Duration::from_secs(30), ..MatchingConfig::default() };
        common::matching(db.clone(), self.0.scoring_addr, self.0.ingest_addr, cfg)
    }

    async fn ingest(&self, events: Vec<ipb::Event>) -> u64 {
        ingest_all(&self.0.ingest, events).await
    }
}

/// Creators `c00..`, creator `i` followed and liked by `i + 2` fans.
fn social() -> Vec<ipb::Event> {
    social_world(CREATORS, [90_000, 89_000, 88_000, 87_000], false)
}

/// Outcomes for round `round`: clicks, sessions, orders through links and
/// codes, audience orders, a repeated order id, a foreign currency, and noise
/// that belongs to no campaign — spread over two days.
fn outcomes(round: u32, offers: &[pb::Offer]) -> Vec<ipb::Event> {
    let mut out = Vec::new();
    let treated: Vec<&pb::Offer> = offers.iter().filter(|o| !o.holdout).collect();
    for (k, o) in treated.iter().enumerate() {
        let id = |what: &str| format!("r{round}-{what}-{k}");
        let ago = if k % 2 == 0 { 86_400 + 60 } else { 60 };
        let visitor = format!("v{round}-{}", k % 3);
        let click = ipb::LinkClick { link: o.link.clone(), visitor_id: visitor.clone(), ..Default::default() };
        out.push(ev(&id("click"), ago, Kind::LinkClick(click.clone())));
        out.push(ev(&id("click2"), ago, Kind::LinkClick(click)));
        let session =
            ipb::PageSession { visitor_id: visitor.clone(), link: String::new(), dwell_ms: 3_000, bounced: k % 2 == 0 };
        out.push(ev(&id("session"), ago, Kind::PageSession(session)));
        let order = |code: &str, order_id: String, currency: &str, customer: Option<String>| ipb::Conversion {
            visitor_id: visitor.clone(),
            code: code.into(),
            order_id,
            value_minor: 1_000 + k as i64,
            currency: currency.into(),
            customer: customer.map(|c| acct(&c)),
        };
        out.push(ev(&id("order"), ago, Kind::Conversion(order("", id("o"), "EUR", None))));
        // The same order again: counted once.
        out.push(ev(&id("order-again"), ago, Kind::Conversion(order("", id("o"), "EUR", None))));
        out.push(ev(&id("coupon"), ago, Kind::Conversion(order(&o.code, id("oc"), "USD", None))));
    }
    for (k, o) in offers.iter().enumerate() {
        let i: usize = o.account.as_ref().map_or(0, |a| a.id[1..].parse().unwrap_or(0));
        let n = (k + round as usize) % 4 + usize::from(!o.holdout);
        for j in 0..n.min(i + 2) {
            let order = ipb::Conversion {
                visitor_id: format!("va{round}-{k}-{j}"),
                order_id: format!("aud{round}-{k}-{j}"),
                value_minor: 100,
                currency: "EUR".into(),
                customer: Some(acct(&fan(i, j))),
                ..Default::default()
            };
            out.push(ev(&format!("aud{round}-{k}-{j}"), 30, Kind::Conversion(order)));
        }
    }
    let noise = ipb::LinkClick { link: "elsewhere".into(), visitor_id: format!("vn{round}"), ..Default::default() };
    out.push(ev(&format!("r{round}-noise"), 20, Kind::LinkClick(noise)));
    out
}

fn spec(name: &str) -> pb::CampaignSpec {
    pb::CampaignSpec {
        name: name.into(),
        objective: pb::Objective::Reach as i32,
        perk: "tasting box".into(),
        unit_cost: 1_000,
        budget: 12_000,
        currency: "EUR".into(),
        criteria: vec![pb::Criterion {
            dimension: spb::Dimension::Reach as i32,
            topic: String::new(),
            threshold: Some(pb::criterion::Threshold::MinPercentile(40.0)),
        }],
        holdout_share: 0.5,
        ..Default::default()
    }
}

/// Creates a campaign and issues its offers; returns its id and offers.
async fn offered(m: &Matching, brand: &BrandId, name: &str, seed: u64) -> (String, Vec<pb::Offer>) {
    let c = m.create_campaign(brand, Some(&spec(name))).await.expect("create");
    let req = pb::MatchCampaignRequest { campaign_id: c.id.clone(), page_size: 1_000, ..Default::default() };
    m.match_campaign(brand, &req).await.expect("match");
    let req = pb::SelectPortfolioRequest { campaign_id: c.id.clone(), epsilon: 0.0 };
    m.select_portfolio(brand, &req).await.expect("portfolio");
    let req = pb::CreateOffersRequest { campaign_id: c.id.clone(), holdout_seed: seed };
    let o = m.create_offers(brand, &req).await.expect("offers");
    (c.id, o.offers)
}

/// Asserts that the aggregate report equals the rescan, and returns it.
async fn agrees(m: &Matching, brand: &BrandId, id: &str) -> pb::GetCampaignReportResponse {
    let req = pb::GetCampaignReportRequest { campaign_id: id.to_owned() };
    let fast = m.campaign_report(brand, &req).await.expect("report from aggregates");
    let slow = m.campaign_report_rescan(brand, &req).await.expect("report from a rescan");
    assert_eq!(fast, slow, "aggregates and rescan disagree for {id}");
    fast
}

async fn scenario(db: DatabaseConnection) {
    let w = world().await;
    let head = w.ingest(social()).await;
    tokio::time::timeout(Duration::from_secs(60), w.0.scoring.wait_for_offset(head)).await.expect("scored");

    let m = w.matching(&db);
    let (brand, _) = create_brand(&db, "Acme").await.expect("brand");
    let (first, offers) = offered(&m, &brand, "first", 7).await;
    assert!(offers.iter().any(|o| !o.holdout) && offers.iter().any(|o| o.holdout), "{offers:?}");
    let empty = agrees(&m, &brand, &first).await;
    assert_eq!(empty.totals.map(|t| t.clicks), Some(0));

    w.ingest(outcomes(1, &offers)).await;
    let r1 = agrees(&m, &brand, &first).await;
    let t1 = r1.totals.expect("totals");
    assert!(t1.clicks > 0 && t1.conversions > 0 && !r1.daily.is_empty(), "{r1:?}");

    // Matching stops mid-stream; events arrive while it is down; a new
    // instance on the same database resumes from the committed position.
    let before = lift_store::reports::position(&db).await.expect("position");
    assert!(before >= r1.as_of_offset, "the first report was answered from a committed position");
    drop(m);
    w.ingest(outcomes(2, &offers)).await;
    let m = w.matching(&db);
    w.ingest(outcomes(3, &offers)).await;
    let r3 = agrees(&m, &brand, &first).await;
    let t3 = r3.totals.expect("totals");
    assert!(t3.clicks > t1.clicks && t3.conversions > t1.conversions, "{t1:?} → {t3:?}");

    // A campaign offered after the consumer read the ledger is built from the
    // ledger once, then followed with the others.
    let (second, offers2) = offered(&m, &brand, "second", 8).await;
    agrees(&m, &brand, &second).await;
    w.ingest(outcomes(4, &offers2)).await;
    w.ingest(outcomes(4, &offers)).await;
    agrees(&m, &brand, &second).await;
    let r4 = agrees(&m, &brand, &first).await;
    let lift = r4.lift.expect("lift");
    assert!(lift.treated > 0 && lift.holdout > 0, "{lift:?}");

    // A draft campaign has no report, aggregated or not.
    let draft = m.create_campaign(&brand, Some(&spec("draft"))).await.expect("create");
    let e = m.campaign_report(&brand, &pb::GetCampaignReportRequest { campaign_id: draft.id }).await;
    assert_eq!(tonic::Status::from(e.expect_err("no offers")).code(), tonic::Code::FailedPrecondition);
}

/// Pins aggregate reports = rescans, across a restart, on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_equal_rescans_on_sqlite() {
    scenario(lift_store::connect("sqlite::memory:").await.expect("db")).await;
}

/// Pins aggregate reports = rescans, across a restart, on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_equal_rescans_on_postgres() {
    let (_pg, url) = lift_store::testing::postgres().await.expect("postgres");
    scenario(lift_store::connect(&url).await.expect("db")).await;
}

/// Pins the bounded wait: with ingestion gone, a report cannot learn the
/// ledger head and says UNAVAILABLE instead of answering from a stale aggregate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_without_ingestion_is_unavailable() {
    let w = world().await;
    let head = w.ingest(social()).await;
    tokio::time::timeout(Duration::from_secs(60), w.0.scoring.wait_for_offset(head)).await.expect("scored");
    let db = lift_store::connect("sqlite::memory:").await.expect("db");
    let m = w.matching(&db);
    let (brand, _) = create_brand(&db, "Acme").await.expect("brand");
    let (id, _) = offered(&m, &brand, "first", 7).await;
    let cfg = MatchingConfig { report_patience: Duration::from_millis(200), ..MatchingConfig::default() };
    let cut = common::matching(db.clone(), w.0.scoring_addr, dead_addr().await, cfg);
    let e = cut.campaign_report(&brand, &pb::GetCampaignReportRequest { campaign_id: id }).await;
    assert_eq!(tonic::Status::from(e.expect_err("no ingestion")).code(), tonic::Code::Unavailable);
}
