//! `lift bench match`: `MatchCampaign` latency over a large scored population,
//! through the score cache and, side by side on the same data, through the
//! scan of scoring's `QueryAccounts` it replaces.
//!
//! Setup (not timed as part of the calls): generated events are appended to a
//! fresh SQLite ledger through `lift_ingest::ledger::sql::append_new` (the path ingestion
//! writes with; outcome events carry the attribution ingestion would give a
//! registered link). Then ingestion, scoring and two matching services (cache
//! on, cache off) start on loopback; scoring consumes the ledger over gRPC and
//! publishes one run; campaigns of several shapes are created and each is
//! called once (which records its eligible set) before measuring.

use lift_proto::convert::prelude::*;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use lift_domain::event::{Attribution, AttributionStatus};
use lift_domain::{Event, ValidationPolicy};
use lift_matching::{Matching, MatchingConfig, create_brand};
use lift_proto::ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient};
use lift_proto::matching::v1::{self as pb, matching_service_client::MatchingServiceClient};
use lift_proto::scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient};
use lift_runtime::Shutdown;
use lift_runtime::client::Channel;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;

use crate::stack::{channel, channel_with_key, http_url};

/// What the benchmark runs.
#[derive(Debug, Clone)]
pub struct MatchBenchOptions {
    /// Accounts in the generated population (every one ends up scored).
    pub accounts: usize,
    /// Timed calls through the score cache.
    pub calls: usize,
    /// Timed calls through the scan (it is slow at scale, so fewer).
    pub baseline_calls: usize,
    pub page_size: u32,
    pub seed: u64,
}

impl Default for MatchBenchOptions {
    fn default() -> Self {
        Self { accounts: 1_000_000, calls: 500, baseline_calls: 10, page_size: 50, seed: 7 }
    }
}

/// Latency summary of one path.
#[derive(Debug, Clone)]
pub struct Latency {
    pub path: &'static str,
    pub calls: usize,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Latency {
    fn of(path: &'static str, mut d: Vec<Duration>) -> Self {
        d.sort();
        let q = |p: f64| d.get(((d.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or_default();
        let mean = d.iter().sum::<Duration>().checked_div(d.len().max(1) as u32).unwrap_or_default();
        Self {
            path,
            calls: d.len(),
            p50: q(0.50),
            p95: q(0.95),
            p99: q(0.99),
            max: d.last().copied().unwrap_or_default(),
            mean,
        }
    }
}

/// One campaign shape and what its first call found.
#[derive(Debug, Clone)]
pub struct CampaignRow {
    pub name: &'static str,
    pub eligible: u64,
    /// The first call: loads nothing (the cache is warm) but records the eligible set.
    pub first_call: Duration,
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct MatchBenchReport {
    pub accounts_scored: u64,
    pub events: usize,
    pub append: Duration,
    pub scoring: Duration,
    pub cache: lift_matching::ScoreCacheStats,
    pub campaigns: Vec<CampaignRow>,
    pub cached: Latency,
    pub scan: Latency,
}

impl std::fmt::Display for MatchBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(
            f,
            "setup: {} events appended in {:.1} s; scoring published {} accounts {:.1} s later",
            self.events,
            self.append.as_secs_f64(),
            self.accounts_scored,
            self.scoring.as_secs_f64()
        )?;
        writeln!(
            f,
            "score cache: {} accounts, loaded in {:.2} s, {:.0} MB ({:.0} bytes per account)\n",
            self.cache.accounts,
            self.cache.last_load.as_secs_f64(),
            self.cache.bytes as f64 / 1e6,
            self.cache.bytes as f64 / self.cache.accounts.max(1) as f64
        )?;
        writeln!(f, "| campaign | eligible | first call (records eligibility), s |\n|---|---:|---:|")?;
        for c in &self.campaigns {
            writeln!(f, "| {} | {} | {:.2} |", c.name, c.eligible, c.first_call.as_secs_f64())?;
        }
        writeln!(
            f,
            "\n| path | calls | p50 ms | p95 ms | p99 ms | max ms | mean ms |\n|---|---:|---:|---:|---:|---:|---:|"
        )?;
        for l in [&self.cached, &self.scan] {
            writeln!(
                f,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                l.path,
                l.calls,
                ms(l.p50),
                ms(l.p95),
                ms(l.p99),
                ms(l.max),
                ms(l.mean)
            )?;
        }
        write!(
            f,
            "\nscan / cache: p50 {:.0}x, p99 {:.0}x",
            self.scan.p50.as_secs_f64() / self.cached.p50.as_secs_f64().max(1e-9),
            self.scan.p99.as_secs_f64() / self.cached.p99.as_secs_f64().max(1e-9)
        )
    }
}

const TOPICS: [&str; 8] = ["food", "travel", "fitness", "gaming", "music", "beauty", "tech", "pets"];

/// A generated population: every account follows someone (so every account is
/// scored); follows, posts and engagements favour popular accounts; a few
/// popular accounts have attributed clicks, sessions and orders.
fn generate(n: usize, seed: u64, now: i64) -> anyhow::Result<Vec<(Event, Option<Attribution>)>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let acct = |i: usize| Some(ipb::AccountRef { network: "bench".into(), id: format!("m{i}") });
    let popular = |rng: &mut rand_chacha::ChaCha8Rng| ((rng.random::<f64>().powi(3)) * n as f64) as usize % n;
    let mut kinds: Vec<(ipb::event::Kind, Option<usize>)> = Vec::new();
    for i in 0..n / 10 {
        kinds.push((
            ipb::event::Kind::Account(ipb::AccountUpsert {
                account: acct(i),
                handle: format!("@m{i}"),
                reported_followers: rng.random_range(0..1_000_000),
                ..Default::default()
            }),
            None,
        ));
    }
    let posts = n / 5;
    let mut authors = Vec::with_capacity(posts);
    for p in 0..posts {
        let author = popular(&mut rng);
        authors.push(author);
        let mut topics = vec![TOPICS[rng.random_range(0..TOPICS.len())].to_owned()];
        if rng.random_bool(0.3) {
            topics.push(TOPICS[rng.random_range(0..TOPICS.len())].to_owned());
        }
        topics.dedup();
        kinds.push((
            ipb::event::Kind::Post(ipb::Post {
                author: acct(author),
                post_id: format!("q{p}"),
                topics,
                ..Default::default()
            }),
            None,
        ));
    }
    for i in 0..n {
        let mut b = popular(&mut rng);
        if b == i {
            b = (b + 1) % n;
        }
        kinds.push((
            ipb::event::Kind::Follow(ipb::Follow { follower: acct(i), followee: acct(b), unfollow: false }),
            None,
        ));
        let p = rng.random_range(0..posts.max(1));
        let author = authors.get(p).copied().unwrap_or(0);
        let actor = rng.random_range(0..n);
        if actor != author {
            kinds.push((
                ipb::event::Kind::Engagement(ipb::Engagement {
                    kind: rng.random_range(1..=3),
                    actor: acct(actor),
                    post_id: format!("q{p}"),
                    target: acct(author),
                }),
                None,
            ));
        }
    }
    for k in 0..n / 50 {
        let owner = popular(&mut rng);
        let link = format!("lift.to/m{owner}");
        for v in 0..rng.random_range(1..6) {
            let visitor = format!("w{k}_{v}");
            kinds.push((
                ipb::event::Kind::LinkClick(ipb::LinkClick {
                    link: link.clone(),
                    visitor_id: visitor.clone(),
                    landing: String::new(),
                    ..Default::default()
                }),
                Some(owner),
            ));
            kinds.push((
                ipb::event::Kind::PageSession(ipb::PageSession {
                    visitor_id: visitor.clone(),
                    link: link.clone(),
                    dwell_ms: 5_000,
                    bounced: rng.random_bool(0.4),
                }),
                Some(owner),
            ));
            if rng.random_bool(0.3) {
                kinds.push((
                    ipb::event::Kind::Conversion(ipb::Conversion {
                        visitor_id: visitor,
                        code: String::new(),
                        order_id: format!("o{k}_{v}"),
                        value_minor: 2_500,
                        currency: "EUR".into(),
                        customer: None,
                    }),
                    Some(owner),
                ));
            }
        }
    }
    // Spread over the last 20 days, in order.
    let span = 20 * 86_400 * lift_domain::time::MICROS_PER_SEC;
    let total = kinds.len().max(1) as i64;
    let policy = ValidationPolicy::at(now);
    kinds
        .into_iter()
        .enumerate()
        .map(|(k, (kind, owner))| {
            let wire = ipb::Event {
                event_id: format!("mb{seed}-{k}"),
                source: "matchbench".into(),
                occurred_at: Some(lift_proto::convert::to_timestamp(now - span + span * k as i64 / total)),
                kind: Some(kind),
            };
            let e = Event::from_proto(&wire, &policy)
                .map_err(|v| anyhow::anyhow!("generated event {k} does not validate: {v:?}"))?;
            let attribution = owner.map(|o| Attribution {
                status: AttributionStatus::Click,
                link: format!("lift.to/m{o}"),
                owner: Some(lift_domain::AccountId::new("bench", format!("m{o}"))),
                campaign_id: String::new(),
                click_offset: 0,
            });
            Ok((e, attribution))
        })
        .collect()
}

async fn append(db: &lift_store::DatabaseConnection, events: Vec<(Event, Option<Attribution>)>) -> anyhow::Result<u64> {
    let mut head = 0;
    for chunk in events.chunks(20_000) {
        let (evs, attrs): (Vec<Event>, Vec<Option<Attribution>>) = chunk.iter().cloned().unzip();
        let written = lift_ingest::ledger::sql::append_new(db, &evs, &attrs).await?;
        ensure!(written.map(|(n, _)| n) == Some(evs.len()), "the benchmark ledger was not empty");
        head = written.map_or(head, |(_, h)| h);
    }
    Ok(head)
}

async fn bind() -> anyhow::Result<(TcpListener, String)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let url = http_url(l.local_addr()?);
    Ok((l, url))
}

fn criterion(d: spb::Dimension, topic: &str, t: pb::criterion::Threshold) -> pb::Criterion {
    pb::Criterion { dimension: d as i32, topic: topic.into(), threshold: Some(t) }
}

/// The campaign shapes measured: loose and tight, each objective, topics, values, exclusions.
fn shapes() -> Vec<(&'static str, pb::CampaignSpec, f64)> {
    use pb::criterion::Threshold::{MinPercentile, MinValue};
    use spb::Dimension as D;
    let base = |name: &str, objective: pb::Objective| pb::CampaignSpec {
        name: name.into(),
        objective: objective as i32,
        perk: "sample".into(),
        unit_cost: 1_000,
        budget: 100_000,
        currency: "EUR".into(),
        holdout_share: 0.2,
        ..Default::default()
    };
    vec![
        (
            "loose: reach >= p10 (reach)",
            pb::CampaignSpec {
                criteria: vec![criterion(D::Reach, "", MinPercentile(10.0))],
                ..base("loose", pb::Objective::Reach)
            },
            5.0,
        ),
        (
            "everyone but 1,000 excluded (reach)",
            pb::CampaignSpec {
                excluded: (0..1_000)
                    .map(|i| ipb::AccountRef { network: "bench".into(), id: format!("m{i}") })
                    .collect(),
                ..base("everyone", pb::Objective::Reach)
            },
            0.0,
        ),
        (
            "tight: reach >= p99, network >= p95 (reach)",
            pb::CampaignSpec {
                criteria: vec![
                    criterion(D::Reach, "", MinPercentile(99.0)),
                    criterion(D::Network, "", MinPercentile(95.0)),
                ],
                ..base("tight", pb::Objective::Reach)
            },
            10.0,
        ),
        (
            "topic: food activity >= p50, authenticity >= 50 (engagement)",
            pb::CampaignSpec {
                criteria: vec![criterion(D::Activity, "food", MinPercentile(50.0))],
                min_authenticity: 50.0,
                ..base("topic", pb::Objective::Engagement)
            },
            10.0,
        ),
        (
            "action >= p90, activity value >= 1 (conversions)",
            pb::CampaignSpec {
                criteria: vec![
                    criterion(D::Action, "", MinPercentile(90.0)),
                    criterion(D::Activity, "", MinValue(1.0)),
                ],
                ..base("conversions", pb::Objective::Conversions)
            },
            10.0,
        ),
    ]
}

type Client = MatchingServiceClient<Channel>;

/// Issues `calls` calls round the campaigns: even calls ask a campaign's first
/// page (with near misses), odd calls its next page after the last one returned.
async fn timed(
    client: &mut Client,
    campaigns: &[(String, f64)],
    calls: usize,
    page_size: u32,
) -> anyhow::Result<Vec<Duration>> {
    let mut tokens = vec![String::new(); campaigns.len()];
    let mut out = Vec::with_capacity(calls);
    for i in 0..calls {
        let k = (i / 2) % campaigns.len();
        let (id, margin) = &campaigns[k];
        let token = if i % 2 == 0 { String::new() } else { tokens[k].clone() };
        let req = pb::MatchCampaignRequest {
            campaign_id: id.clone(),
            page_size,
            page_token: token,
            near_miss_margin: *margin,
        };
        let t = Instant::now();
        let r = client.match_campaign(req).await.with_context(|| format!("MatchCampaign {id}"))?.into_inner();
        out.push(t.elapsed());
        tokens[k] = r.next_page_token;
    }
    Ok(out)
}

/// Runs the benchmark in a temporary directory (removed afterwards).
pub async fn run(opts: MatchBenchOptions) -> anyhow::Result<MatchBenchReport> {
    let dir = std::env::temp_dir().join(format!("lift-matchbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = bench(&dir, &opts).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn bench(dir: &std::path::Path, opts: &MatchBenchOptions) -> anyhow::Result<MatchBenchReport> {
    let url = |n: &str| crate::stack::sqlite_file(dir, n);
    let ingest_db = lift_store::connect(&url("ingest.db")).await?;
    let events = generate(opts.accounts.max(2), opts.seed, lift_domain::time::now())?;
    let n_events = events.len();
    let t = Instant::now();
    let head = append(&ingest_db, events).await?;
    let append_took = t.elapsed();
    println!("appended {n_events} events in {:.1} s; starting the services", append_took.as_secs_f64());

    let stop = Shutdown::new();
    let (l, ingest_url) = bind().await?;
    let ingest = lift_ingest::Ingest::new(ingest_db, lift_ingest::IngestConfig::default());
    tokio::spawn(lift_runtime::serve(l, ingest.grpc(), stop.clone()));

    let t = Instant::now();
    let scoring_cfg = lift_scoring::ScoringConfig { debounce: Duration::from_millis(200), ..Default::default() };
    let scoring = lift_scoring::Scoring::new(lift_store::connect(&url("scoring.db")).await?, scoring_cfg).await?;
    {
        let (s, sd) = (scoring.clone(), stop.clone());
        let client = IngestServiceClient::new(channel(&ingest_url)?);
        tokio::spawn(async move { s.run_consumer(client, sd).await });
    }
    let (l, scoring_url) = bind().await?;
    tokio::spawn(lift_runtime::serve(l, scoring.grpc(), stop.clone()));
    scoring.wait_for_offset(head).await;
    let scoring_took = t.elapsed();
    let model =
        ScoringServiceClient::new(channel(&scoring_url)?).get_model(spb::GetModelRequest {}).await?.into_inner();
    println!("scoring published {} accounts in {:.1} s; warming up", model.accounts, scoring_took.as_secs_f64());

    let matching_db = lift_store::connect(&url("matching.db")).await?;
    let start_matching = async |cfg: MatchingConfig| -> anyhow::Result<(Matching, String)> {
        let m = Matching::new(
            matching_db.clone(),
            ScoringServiceClient::new(channel(&scoring_url)?),
            IngestServiceClient::new(channel(&ingest_url)?),
            cfg,
        );
        let (l, u) = bind().await?;
        tokio::spawn(lift_runtime::serve(l, m.grpc(), stop.clone()));
        Ok((m, u))
    };
    let (cached_svc, cached_url) = start_matching(MatchingConfig::default()).await?;
    let (_scan_svc, scan_url) =
        start_matching(MatchingConfig { score_cache: false, ..MatchingConfig::default() }).await?;
    let (_, key) = create_brand(&matching_db, "bench brand").await?;
    let mut cached = MatchingServiceClient::new(channel_with_key(&cached_url, Some(&key))?);
    let mut scan = MatchingServiceClient::new(channel_with_key(&scan_url, Some(&key))?);

    let mut campaigns = Vec::new();
    let mut rows = Vec::new();
    for (name, spec, margin) in shapes() {
        let c = cached
            .create_campaign(pb::CreateCampaignRequest { spec: Some(spec) })
            .await?
            .into_inner()
            .campaign
            .context("no campaign")?;
        let t = Instant::now();
        let r = cached
            .match_campaign(pb::MatchCampaignRequest {
                campaign_id: c.id.clone(),
                page_size: opts.page_size,
                near_miss_margin: margin,
                ..Default::default()
            })
            .await?
            .into_inner();
        rows.push(CampaignRow { name, eligible: r.total_eligible, first_call: t.elapsed() });
        println!("  {name}: {} eligible, first call {:.2} s", r.total_eligible, t.elapsed().as_secs_f64());
        campaigns.push((c.id, margin));
    }
    let cache = cached_svc.score_cache_stats();
    ensure!(
        cache.loads == 1,
        "the score cache loaded {} times during warm-up; scoring published a new run",
        cache.loads
    );

    let cached_lat = timed(&mut cached, &campaigns, opts.calls, opts.page_size).await?;
    println!("measured {} calls through the cache; now the scan", cached_lat.len());
    let scan_lat = timed(&mut scan, &campaigns, opts.baseline_calls, opts.page_size).await?;
    ensure!(cached_svc.score_cache_stats().loads == 1, "scoring published a new run while measuring");
    stop.trigger();
    Ok(MatchBenchReport {
        accounts_scored: model.accounts,
        events: n_events,
        append: append_took,
        scoring: scoring_took,
        cache,
        campaigns: rows,
        cached: Latency::of("score cache (this change)", cached_lat),
        scan: Latency::of("scan of QueryAccounts (before)", scan_lat),
    })
}
