//! `lift bench report`: `GetCampaignReport` latency from the report consumer's
//! aggregates, beside the full rescan of the ledger it replaces, in the same
//! run over the same ledger — and whether the two reports are identical.
//!
//! The ledger is generated and appended straight to ingestion's database (as
//! ingestion would have stored it, attribution included): the first half is
//! social activity (follows and likes, many of them towards the campaign's
//! creators, so their pre-campaign audiences are large), then the campaign's
//! offers are recorded at that offset, then the second half is outcomes
//! (clicks, page sessions, attributed orders, audience orders, repeated order
//! ids) mixed with unrelated likes. Ingestion serves it over loopback gRPC; the
//! matching service is called in-process (both paths alike), with the scoring
//! service unused. The first aggregate call includes the consumer's one-time
//! build of the campaign's aggregate (printed apart from the timed calls).

use lift_proto::convert::prelude::*;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use lift_domain::event::{self, Attribution, AttributionStatus, EngagementKind, EventBody};
use lift_domain::{AccountId, Event};
use lift_matching::{Matching, MatchingConfig, create_brand};
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::matching::v1 as pb;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::Shutdown;
use lift_store::campaigns::{self as repo, CampaignState};
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;

use crate::stack::{channel, http_url};

/// What to measure.
#[derive(Debug, Clone)]
pub struct ReportBenchOptions {
    /// Events in the generated ledger.
    pub events: u64,
    /// Creators with offers (half treated, half held out).
    pub creators: usize,
    /// Timed calls answered from the aggregates.
    pub calls: usize,
    /// Timed calls answered by a full rescan (slow at scale).
    pub baseline_calls: usize,
    pub seed: u64,
}

impl Default for ReportBenchOptions {
    fn default() -> Self {
        Self { events: 1_000_000, creators: 200, calls: 200, baseline_calls: 3, seed: 12 }
    }
}

/// The figures, printed as a table.
#[derive(Debug, Clone)]
pub struct ReportBenchReport {
    pub events: u64,
    pub append: Duration,
    /// First aggregate call: includes adopting the campaign (one read of the ledger).
    pub first: Duration,
    pub aggregates: Vec<Duration>,
    pub rescans: Vec<Duration>,
    pub identical: bool,
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

impl std::fmt::Display for ReportBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "GetCampaignReport on a {}-event ledger (appended in {:.1} s; first aggregate call, building the \
             campaign's aggregate from the ledger once: {:.2} s)",
            self.events,
            self.append.as_secs_f64(),
            self.first.as_secs_f64()
        )?;
        writeln!(f, "{:<30} {:>6} {:>10} {:>10} {:>10}", "path", "calls", "p50 ms", "p99 ms", "max ms")?;
        let mut rows = Vec::new();
        for (name, d) in [("full rescan (baseline)", &self.rescans), ("aggregates", &self.aggregates)] {
            let mut s = d.clone();
            s.sort();
            writeln!(
                f,
                "{:<30} {:>6} {:>10.2} {:>10.2} {:>10.2}",
                name,
                s.len(),
                pct(&s, 0.5),
                pct(&s, 0.99),
                pct(&s, 1.0)
            )?;
            rows.push((pct(&s, 0.5), pct(&s, 0.99)));
        }
        if let [(b50, b99), (a50, a99)] = rows[..] {
            writeln!(f, "rescan / aggregates: p50 {:.0}x, p99 {:.0}x", b50 / a50.max(1e-6), b99 / a99.max(1e-6))?;
        }
        write!(f, "aggregate report identical to the rescan: {}", if self.identical { "yes" } else { "NO" })
    }
}

/// Runs the benchmark in a temporary directory (removed afterwards).
pub async fn run(opts: ReportBenchOptions) -> anyhow::Result<ReportBenchReport> {
    let dir = std::env::temp_dir().join(format!("lift-reportbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = bench(&dir, &opts).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

const CAMPAIGN: &str = "cmp_reportbench";

fn creator(i: usize) -> AccountId {
    AccountId::new("bench", format!("c{i}"))
}

fn link(i: usize) -> String {
    format!("lift.to/rb{i}")
}

/// The `k`-th generated event (of `total`) with its attribution, if any.
fn event(k: u64, total: u64, opts: &ReportBenchOptions, now: i64, rng: &mut impl Rng) -> (Event, Option<Attribution>) {
    let fans = (total / 20).max(1_000);
    let fan = |rng: &mut dyn rand::RngCore| AccountId::new("bench", format!("f{}", rng.next_u64() % fans));
    // A like between two fans: never an account liking itself.
    let fans_like = |rng: &mut dyn rand::RngCore| {
        let a = rng.next_u64() % fans;
        let b = (a + 1 + rng.next_u64() % (fans - 1)) % fans;
        (AccountId::new("bench", format!("f{a}")), AccountId::new("bench", format!("f{b}")))
    };
    let treated = (opts.creators / 2).max(1);
    let pick = |rng: &mut dyn rand::RngCore| (rng.next_u64() % opts.creators.max(1) as u64) as usize;
    let pre = k < total / 2;
    let roll = rng.random_range(0..100u32);
    let mut attribution = None;
    let like = |actor, target| {
        EventBody::Engagement(event::Engagement {
            kind: EngagementKind::Like,
            actor,
            post_id: None,
            target: Some(target),
        })
    };
    let body = if pre {
        match roll {
            0..40 => {
                EventBody::Follow(event::Follow { follower: fan(rng), followee: creator(pick(rng)), unfollow: false })
            }
            40..80 => like(fan(rng), creator(pick(rng))),
            _ => {
                let (a, b) = fans_like(rng);
                like(a, b)
            }
        }
    } else {
        let c = (rng.next_u64() % treated as u64) as usize;
        let visitor = format!("v{}", rng.next_u64() % (total / 4).max(1));
        let attributed = |campaign: &str| Attribution {
            status: AttributionStatus::Click,
            link: link(c),
            owner: Some(creator(c)),
            campaign_id: campaign.to_owned(),
            click_offset: 0,
        };
        match roll {
            0..30 => {
                attribution = Some(attributed(CAMPAIGN));
                EventBody::LinkClick(event::LinkClick {
                    link: link(c),
                    visitor_id: visitor,
                    landing: String::new(),
                    agent_class: String::new(),
                    not_counted: None,
                })
            }
            30..50 => EventBody::PageSession(event::PageSession {
                visitor_id: visitor,
                link: Some(link(c)),
                dwell_ms: 4_000,
                bounced: roll % 3 == 0,
            }),
            50..60 => {
                attribution = Some(attributed(CAMPAIGN));
                EventBody::Conversion(event::Conversion {
                    visitor_id: Some(visitor),
                    code: None,
                    // Some order ids repeat: counted once.
                    order_id: format!("o{}", rng.next_u64() % total),
                    value_minor: 2_500,
                    currency: "EUR".into(),
                    customer: None,
                })
            }
            60..70 => EventBody::Conversion(event::Conversion {
                visitor_id: Some(format!("va{k}")),
                code: None,
                order_id: format!("a{k}"),
                value_minor: 1_000,
                currency: "EUR".into(),
                customer: Some(fan(rng)),
            }),
            _ => {
                let (a, b) = fans_like(rng);
                like(a, b)
            }
        }
    };
    let span = 30 * 86_400 * lift_domain::time::MICROS_PER_SEC;
    let occurred_at = now - span + (span as i128 * i128::from(k) / i128::from(total.max(1))) as i64;
    (Event { event_id: format!("rb{}-{k}", opts.seed), source: "reportbench".into(), occurred_at, body }, attribution)
}

/// Appends events `from..to` in chunks; returns the head.
async fn append(
    db: &lift_store::DatabaseConnection,
    range: std::ops::Range<u64>,
    total: u64,
    opts: &ReportBenchOptions,
    now: i64,
    rng: &mut rand::rngs::StdRng,
) -> anyhow::Result<u64> {
    let mut head = lift_store::ledger::head(db).await?;
    let mut k = range.start;
    while k < range.end {
        let end = (k + 20_000).min(range.end);
        let (evs, attrs): (Vec<Event>, Vec<Option<Attribution>>) =
            (k..end).map(|i| event(i, total, opts, now, rng)).unzip();
        let written = lift_ingest::ledger::sql::append_new(db, &evs, &attrs).await?;
        ensure!(written.map(|(n, _)| n) == Some(evs.len()), "the benchmark ledger was not empty");
        head = written.map_or(head, |(_, h)| h);
        k = end;
    }
    Ok(head)
}

async fn offer(
    db: &lift_store::DatabaseConnection,
    brand: &str,
    opts: &ReportBenchOptions,
    offset: u64,
) -> anyhow::Result<()> {
    let spec = pb::CampaignSpec {
        name: "report bench".into(),
        objective: pb::Objective::Reach as i32,
        perk: "a box".into(),
        unit_cost: 1_000,
        budget: 1_000 * opts.creators as i64,
        currency: "EUR".into(),
        holdout_share: 0.5,
        criteria: vec![pb::Criterion {
            dimension: lift_proto::scoring::v1::Dimension::Reach as i32,
            topic: String::new(),
            threshold: Some(pb::criterion::Threshold::MinPercentile(50.0)),
        }],
        ..Default::default()
    };
    let spec = lift_domain::campaign::CampaignSpec::from_proto(&spec)
        .map_err(|v| anyhow::anyhow!("benchmark campaign spec: {v:?}"))?;
    let c = repo::Campaign {
        id: CAMPAIGN.into(),
        brand_id: brand.to_owned(),
        name: spec.name.clone(),
        state: CampaignState::Draft,
        spec: serde_json::to_string(&spec)?,
        created_at: lift_domain::time::now(),
        model_version: String::new(),
        portfolio: None,
        holdout_seed: None,
        offers_offset: None,
        churn: "[]".into(),
    };
    repo::insert_campaign(db, &c).await?;
    let treated = (opts.creators / 2).max(1);
    let offers: Vec<repo::Offer> = (0..opts.creators.max(2))
        .map(|i| repo::Offer {
            account: creator(i),
            handle: format!("c{i}"),
            link: if i < treated { link(i) } else { String::new() },
            code: if i < treated { format!("RB{i}") } else { String::new() },
            holdout: i >= treated,
            in_portfolio: true,
            cost: 1_000,
            state: lift_domain::offer::OfferState::Offered,
            state_offset: 0,
        })
        .collect();
    repo::record_offers(db, brand, CAMPAIGN, &offers, opts.seed, offset).await?;
    Ok(())
}

async fn bench(dir: &std::path::Path, opts: &ReportBenchOptions) -> anyhow::Result<ReportBenchReport> {
    let url = |n: &str| crate::stack::sqlite_file(dir, n);
    let ingest_db = lift_store::connect(&url("ingest.db")).await?;
    let matching_db = lift_store::connect(&url("matching.db")).await?;
    let (brand, _) = create_brand(&matching_db, "bench brand").await?;
    let total = opts.events.max(2);
    let now = lift_domain::time::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let t = Instant::now();
    let offers_offset = append(&ingest_db, 0..total / 2, total, opts, now, &mut rng).await?;
    offer(&matching_db, &brand.0, opts, offers_offset).await?;
    append(&ingest_db, total / 2..total, total, opts, now, &mut rng).await?;
    let append_took = t.elapsed();
    println!("appended {total} events in {:.1} s; starting ingestion and matching", append_took.as_secs_f64());

    let stop = Shutdown::new();
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let ingest_url = http_url(l.local_addr()?);
    let ingest = lift_ingest::Ingest::new(ingest_db, lift_ingest::IngestConfig::default());
    tokio::spawn(lift_runtime::serve(l, ingest.grpc(), stop.clone()));
    let cfg = MatchingConfig { report_patience: Duration::from_secs(3_600), ..MatchingConfig::default() };
    // Scoring is never called by reports: a channel to nowhere stands in.
    let m = Matching::new(
        matching_db,
        ScoringServiceClient::new(channel("http://127.0.0.1:9")?),
        IngestServiceClient::new(channel(&ingest_url)?),
        cfg,
    );
    let req = pb::GetCampaignReportRequest { campaign_id: CAMPAIGN.into() };
    let t = Instant::now();
    let first = m.campaign_report(&brand, &req).await.context("first report from aggregates")?;
    let first_took = t.elapsed();
    println!("aggregate built in {:.2} s; timing {} calls from aggregates", first_took.as_secs_f64(), opts.calls);

    let mut aggregates = Vec::with_capacity(opts.calls);
    let mut last = first;
    for _ in 0..opts.calls {
        let t = Instant::now();
        last = m.campaign_report(&brand, &req).await.context("report from aggregates")?;
        aggregates.push(t.elapsed());
    }
    println!("timing {} full rescans", opts.baseline_calls);
    let mut rescans = Vec::with_capacity(opts.baseline_calls);
    let mut identical = true;
    for _ in 0..opts.baseline_calls.max(1) {
        let t = Instant::now();
        let r = m.campaign_report_rescan(&brand, &req).await.context("report from a rescan")?;
        rescans.push(t.elapsed());
        identical &= r == last;
    }
    stop.trigger();
    Ok(ReportBenchReport { events: total, append: append_took, first: first_took, aggregates, rescans, identical })
}
