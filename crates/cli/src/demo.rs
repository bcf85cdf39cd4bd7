//! `lift demo`: all three services in one process on loopback, real gRPC,
//! embedded SQLite, a real (CollegeMsg) or generated social graph with
//! simulated outcomes, and a readable result.

use lift_proto::convert::prelude::*;
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use lift_domain::Dimension;
use lift_proto::{
    ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient},
    matching::v1::{self as mpb, matching_service_client::MatchingServiceClient},
    scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient},
};
use lift_runtime::client::Channel;
use tonic::Request;

use crate::{
    dataset::{self, NetworkSpec},
    stack::{Databases, Stack},
};

/// What the demo runs on.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// CollegeMsg file; when absent, a generated network is used.
    pub collegemsg: PathBuf,
    /// Directory for the SQLite files (a fresh temp dir by default).
    pub dir: Option<PathBuf>,
    /// Accounts in the generated network.
    pub accounts: usize,
    /// Force the generated network even when CollegeMsg is present.
    pub generated: bool,
    /// Database URLs; default: SQLite files in `dir`.
    pub databases: Option<Databases>,
    /// Where the web console listens (default: a free loopback port).
    pub web_addr: Option<std::net::SocketAddr>,
    /// Keep serving (console included) after the story, until Ctrl-C.
    pub serve: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            collegemsg: PathBuf::from("data/collegemsg.csv.gz"),
            dir: None,
            accounts: 1500,
            generated: false,
            databases: None,
            web_addr: None,
            serve: false,
        }
    }
}

/// What the demo found, for tests to check.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub dataset: String,
    pub events: u64,
    pub scored_accounts: u64,
    pub top: Vec<(Dimension, Vec<spb::AccountScores>)>,
    pub shortlist: Vec<mpb::Candidate>,
    pub near_misses: usize,
    pub report: Option<mpb::GetCampaignReportResponse>,
    /// The brand's key (`campaigns:write`) and its campaign, for the console.
    pub brand_key: String,
    pub campaign_id: String,
    /// A creator the console can show (`network:id`): the first on the shortlist.
    pub creator: Option<String>,
    /// Where the console listens, and a `creator:read` key for `creator`.
    pub console: Option<(std::net::SocketAddr, String)>,
}

fn step(n: u32, what: &str) {
    println!("\n[{n}] {what}");
}

/// One line about an import: rows, events, outcomes and rate.
pub fn import_summary(r: &lift_ingest::import::ImportReport) -> String {
    format!(
        "{} rows -> {} events for {} accounts ({} accepted, {} duplicates, {} rejected) in {:.1}s ({:.0} events/s)",
        r.rows,
        r.events,
        r.accounts,
        r.accepted,
        r.duplicates,
        r.rejected,
        r.elapsed.as_secs_f64(),
        r.events_per_sec()
    )
}

/// Adds the brand's API key to a request.
pub fn with_key<T>(msg: T, key: &str) -> anyhow::Result<Request<T>> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("x-api-key", key.parse().context("API key is not valid metadata")?);
    Ok(r)
}

/// Sends events over `IngestStream` in batches; returns (accepted, duplicates).
pub async fn stream_events(
    client: &mut IngestServiceClient<Channel>,
    events: Vec<ipb::Event>,
    batch: usize,
) -> anyhow::Result<(u64, u64)> {
    let batches: Vec<ipb::IngestStreamRequest> =
        events.chunks(batch.max(1)).map(|c| ipb::IngestStreamRequest { events: c.to_vec() }).collect();
    let resp = client.ingest_stream(tokio_stream::iter(batches)).await?.into_inner();
    if resp.rejected > 0 {
        let first = resp.rejections.first().map(|r| format!("{r:?}")).unwrap_or_default();
        bail!("{} events were rejected, first: {first}", resp.rejected);
    }
    Ok((resp.accepted, resp.duplicates))
}

/// Waits until scoring has scored the whole ledger, or fails after `timeout`.
pub async fn wait_scored(
    ingest: &mut IngestServiceClient<Channel>,
    scoring: &mut ScoringServiceClient<Channel>,
    timeout: Duration,
) -> anyhow::Result<spb::GetModelResponse> {
    let head = ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?.into_inner().head_offset;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(m) = scoring.get_model(spb::GetModelRequest {}).await {
            let m = m.into_inner();
            if m.as_of_offset >= head && m.latest_run_id > 0 {
                return Ok(m);
            }
        }
        if Instant::now() > deadline {
            bail!("scoring did not reach ledger offset {head} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn score_of(a: &spb::AccountScores, d: Dimension) -> Option<&spb::Score> {
    a.scores.iter().find(|s| s.dimension == d.to_proto() as i32 && s.topic.is_empty())
}

fn account_name(a: &spb::AccountScores) -> String {
    let id = a.account.as_ref().map(|r| format!("{}:{}", r.network, r.id)).unwrap_or_default();
    if a.handle.is_empty() { id } else { format!("{id} ({})", a.handle) }
}

fn raw_summary(s: &spb::Score) -> String {
    let mut keys: Vec<_> = s.raw.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    keys.into_iter().take(3).map(|(k, v)| format!("{k}={}", fmt_num(*v))).collect::<Vec<_>>().join(" ")
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 { format!("{v:.0}") } else { format!("{v:.3}") }
}

/// Runs the demo and prints its story; with `serve`, keeps serving until Ctrl-C.
pub async fn run(opts: DemoOptions) -> anyhow::Result<DemoSummary> {
    let (stack, result) = start(&opts).await?;
    if opts.serve && result.is_ok() {
        println!("\nServing until Ctrl-C (the services and the console).");
        let sd = stack.shutdown.clone();
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            () = sd.wait() => {}
        }
    }
    stack.stop().await?;
    result
}

/// Runs the demo's story and leaves its stack (console included) running, for
/// the caller to use and stop: the browser tests load the console's pages.
pub async fn start(opts: &DemoOptions) -> anyhow::Result<(Stack, anyhow::Result<DemoSummary>)> {
    let started = Instant::now();
    let tmp;
    let dir: &Path = match &opts.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d
        }
        None => {
            tmp = std::env::temp_dir().join(format!("lift-demo-{}", std::process::id()));
            std::fs::create_dir_all(&tmp)?;
            &tmp
        }
    };
    let dbs = opts.databases.clone().unwrap_or_else(|| Databases::sqlite_files(dir));

    step(1, "Starting ingestion, scoring and matching on loopback (real gRPC, embedded SQLite)");
    let mut stack = Stack::start_loopback(&dbs, lift_scoring::ScoringConfig::default()).await?;
    let web_addr = opts.web_addr.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let web = match tokio::net::TcpListener::bind(web_addr).await {
        Ok(l) => l,
        Err(e) => {
            println!("    cannot listen on {web_addr} ({e}); the console takes a free port instead");
            tokio::net::TcpListener::bind("127.0.0.1:0").await?
        }
    };
    let web = stack.start_web(web)?;
    // The link collector: the campaign's audience arrives through it over HTTP (step 9).
    let links = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let links_addr = links.local_addr()?;
    let collect_cfg = lift_collect::CollectConfig {
        spool_path: dir.join("collect.spool"),
        // Simulated visitors leave at once: decide their bounces after 1 s, not 30 min.
        session_idle: Duration::from_secs(1),
        ..Default::default()
    };
    let collector = stack.start_collect(links, collect_cfg).await?;
    println!(
        "    ingestion {}  scoring {}  matching {}  web console {web}",
        stack.ingest_addr, stack.scoring_addr, stack.matching_addr
    );
    println!("    link collector http://{links_addr} (redirects, beacon, order webhooks)");
    println!("    databases in {}", dir.display());
    let outlet = Outlet { addr: links_addr, collector };
    let mut result = story(&stack, opts, started, &outlet).await;
    if let Ok(s) = &mut result
        && let Some(creator) = s.creator.clone()
    {
        match crate::console::creator_key(&stack.matching_db, &creator).await {
            Ok(key) => {
                crate::console::print_console(web, &s.brand_key, &s.campaign_id, &creator, &key);
                s.console = Some((web, key));
            }
            Err(e) => result = Err(e),
        }
    }
    Ok((stack, result))
}

/// The running collector the simulated audience goes through.
struct Outlet {
    addr: std::net::SocketAddr,
    collector: lift_collect::Collector,
}

async fn story(stack: &Stack, opts: &DemoOptions, started: Instant, outlet: &Outlet) -> anyhow::Result<DemoSummary> {
    // The demo's own clients use the key the stack minted (ingest:write, ingest:read,
    // scores:read); the brand below gets its own campaigns:write key.
    let mut ingest = IngestServiceClient::new(stack.channel(&stack.ingest_url())?);
    let mut scoring = ScoringServiceClient::new(stack.channel(&stack.scoring_url())?);
    let mut matching = MatchingServiceClient::new(stack.channel(&stack.matching_url())?);

    // 2. The social graph.
    let college =
        if opts.generated { Err("as asked".to_owned()) } else { crate::console::collegemsg(&opts.collegemsg) };
    let (dataset, network, start, end) = if let Ok(path) = &college {
        step(2, &format!("Importing the real SNAP CollegeMsg network from {}", path.display()));
        let report = lift_ingest::import::import_file(
            &mut ingest,
            path,
            &lift_ingest::import::ImportOptions { network: "collegemsg".into(), progress: true, ..Default::default() },
        )
        .await?;
        println!("    {}", import_summary(&report));
        // CollegeMsg spans 2004-04-15 to 2004-10-26; outcomes are simulated over its last month.
        (
            "SNAP CollegeMsg (real messages; 1,899 students)".to_string(),
            "collegemsg".to_string(),
            1_096_156_800,
            1_098_777_600,
        )
    } else {
        let why = match &college {
            Err(w) if opts.generated => w.clone(),
            Err(w) => format!("FALLBACK: the real CollegeMsg network is unavailable: {w}"),
            Ok(_) => String::new(),
        };
        step(2, &format!("Generating a deterministic social network ({why})"));
        let spec = NetworkSpec { accounts: opts.accounts, ..Default::default() };
        let g = dataset::generate(&spec);
        let n = g.events.len();
        let t = Instant::now();
        let (acc, dup) = stream_events(&mut ingest, g.events, 2000).await?;
        println!(
            "    {n} events ({acc} accepted, {dup} duplicates) over IngestStream in {:.1}s; engagement pod injected: {}",
            t.elapsed().as_secs_f64(),
            g.pod.join(", ")
        );
        (format!("generated network ({} accounts, seed {})", spec.accounts, spec.seed), g.network, spec.start, g.end)
    };

    // 3. Simulated outcomes through tracking links.
    step(3, "Simulating outcomes: tracking links, clicks, page sessions, conversions");
    let first = scoring_snapshot_accounts(&mut ingest, &mut scoring).await?;
    let owners: Vec<ipb::AccountRef> = dataset::sample(&first, 60, 11);
    let links = dataset::outcome_links(&owners, 11);
    let reg = register_simulated_links(&mut ingest, &links).await?;
    let outcomes = dataset::outcome_events(&links, start, end.max(start + SIMULATED_WINDOW_SECS), 11);
    let n_out = outcomes.len();
    let (acc, _) = stream_events(&mut ingest, outcomes, 2000).await?;
    println!("    {} links registered for {network} creators; {n_out} outcome events ({acc} accepted)", reg.registered);

    // 4. Scores.
    step(4, "Waiting for scoring to consume the ledger");
    let model = wait_scored(&mut ingest, &mut scoring, Duration::from_secs(300)).await?;
    println!(
        "    model {} scored {} accounts as of ledger offset {}",
        model.model_version, model.accounts, model.as_of_offset
    );
    let info = ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?.into_inner();

    step(5, "Top accounts per dimension (separate scores, never one number)");
    let mut top = Vec::new();
    for d in Dimension::ALL {
        let resp = scoring
            .query_accounts(spb::QueryAccountsRequest {
                order_by: d.to_proto() as i32,
                page_size: 5,
                ..Default::default()
            })
            .await?
            .into_inner();
        let how =
            if d == Dimension::Action { " (sufficient evidence first, by the 90% interval's lower bound)" } else { "" };
        println!("  {}{how}", d.name().to_uppercase());
        for (i, a) in resp.accounts.iter().enumerate() {
            if let Some(s) = score_of(a, d) {
                if s.evidence == spb::Evidence::NoData as i32 {
                    println!("    {}. {:<28} no evidence (no attributed clicks)", i + 1, account_name(a));
                    continue;
                }
                let interval =
                    if s.upper > s.lower { format!(" [{:.1}, {:.1}]", s.lower, s.upper) } else { String::new() };
                let evidence =
                    if s.evidence == spb::Evidence::Insufficient as i32 { " (insufficient evidence)" } else { "" };
                println!(
                    "    {}. {:<28} {:>5.1}{interval} p{:<5.1}{evidence} {}",
                    i + 1,
                    account_name(a),
                    s.value,
                    s.percentile,
                    raw_summary(s)
                );
            }
        }
        top.push((d, resp.accounts));
    }

    // 6. A campaign.
    step(6, "A brand creates a campaign with percentile eligibility and asks who qualifies");
    let (brand, key) = lift_matching::create_brand(&stack.matching_db, "Acme Coffee").await?;
    let secret = crate::links::create_webhook_secret(&stack.matching_db, &brand.0).await?;
    let spec = mpb::CampaignSpec {
        name: "Spring launch".into(),
        objective: mpb::Objective::Engagement as i32,
        perk: "Coffee subscription, 3 months".into(),
        unit_cost: 4_500,
        budget: 90_000,
        currency: "EUR".into(),
        topics: vec![],
        criteria: vec![
            criterion(Dimension::Activity, 60.0),
            criterion(Dimension::Reach, 50.0),
            criterion(Dimension::Network, 50.0),
        ],
        min_authenticity: 50.0,
        excluded: vec![],
        holdout_share: 0.2,
        attribution_window_secs: 7 * 86_400,
        allow_insufficient_evidence: false,
        landing_url: "https://shop.example/spring".into(),
    };
    let campaign = matching
        .create_campaign(with_key(mpb::CreateCampaignRequest { spec: Some(spec) }, &key)?)
        .await?
        .into_inner()
        .campaign
        .context("CreateCampaign returned no campaign")?;
    println!("    campaign {} created: activity ≥ p60, reach ≥ p50, network ≥ p50, authenticity ≥ 50", campaign.id);
    let m = matching
        .match_campaign(with_key(
            mpb::MatchCampaignRequest {
                campaign_id: campaign.id.clone(),
                page_size: 10,
                near_miss_margin: 5.0,
                ..Default::default()
            },
            &key,
        )?)
        .await?
        .into_inner();
    println!("    {} eligible accounts; the shortlist:", m.total_eligible);
    for c in &m.eligible {
        let id = c.account.as_ref().map(|r| format!("{}:{}", r.network, r.id)).unwrap_or_default();
        let reasons: Vec<String> = c
            .criteria
            .iter()
            .map(|r| {
                let name = r
                    .criterion
                    .as_ref()
                    .and_then(|c| Dimension::from_proto(c.dimension))
                    .map_or("authenticity", |d| d.name());
                format!("{name} {:.0} ({}{:.0})", r.observed, if r.margin >= 0.0 { "+" } else { "" }, r.margin)
            })
            .collect();
        println!("    #{:<2} {id:<22} {}", c.rank, reasons.join(", "));
    }
    if !m.near_misses.is_empty() {
        println!("    near misses (fail one criterion by ≤ 5 points): {}", m.near_misses.len());
        for c in m.near_misses.iter().take(3) {
            let id = c.account.as_ref().map(|r| format!("{}:{}", r.network, r.id)).unwrap_or_default();
            let failed: Vec<String> = c
                .criteria
                .iter()
                .filter(|r| !r.passed)
                .map(|r| {
                    let name = r
                        .criterion
                        .as_ref()
                        .and_then(|c| Dimension::from_proto(c.dimension))
                        .map_or("authenticity", |d| d.name());
                    format!("{name} short by {:.2}", -r.margin)
                })
                .collect();
            println!("       {id:<22} {}", failed.join(", "));
        }
    }

    let shop = Shop { outlet, brand_id: &brand.0, secret: &secret };
    let report = campaign_life(&mut ingest, &mut matching, &key, &campaign.id, end, &shop).await?;

    println!(
        "\nDone in {:.1}s: dataset {dataset}, {} ledger events, {} accounts scored.",
        started.elapsed().as_secs_f64(),
        info.head_offset,
        model.accounts
    );
    Ok(DemoSummary {
        dataset,
        events: info.head_offset,
        scored_accounts: model.accounts,
        top,
        near_misses: m.near_misses.len(),
        creator: m.eligible.first().and_then(|c| c.account.as_ref()).map(|a| format!("{}:{}", a.network, a.id)),
        shortlist: m.eligible,
        report: Some(report),
        brand_key: key,
        campaign_id: campaign.id,
        console: None,
    })
}

/// True effect of an offer in the simulation: each audience member of a treated
/// creator orders with this extra probability (through the creator's link).
pub const TRUE_EFFECT: f64 = 0.08;
/// Baseline probability that an audience member orders anyway.
const BASELINE: f64 = 0.03;

/// The shop side of the demo: the collector and the brand's webhook secret.
struct Shop<'a> {
    outlet: &'a Outlet,
    brand_id: &'a str,
    secret: &'a str,
}

/// Portfolio → offers with a holdout → simulated outcomes ingested → report with lift.
async fn campaign_life(
    ingest: &mut IngestServiceClient<Channel>,
    matching: &mut MatchingServiceClient<Channel>,
    key: &str,
    campaign_id: &str,
    end: i64,
    shop: &Shop<'_>,
) -> anyhow::Result<mpb::GetCampaignReportResponse> {
    step(7, "Portfolio: the set of creators that maximises expected reach within the budget");
    let p = matching
        .select_portfolio(with_key(mpb::SelectPortfolioRequest { campaign_id: campaign_id.into(), epsilon: 0.2 }, key)?)
        .await?
        .into_inner();
    for m in &p.members {
        let id = m.account.as_ref().map(|r| format!("{}:{}", r.network, r.id)).unwrap_or_default();
        println!("    {id:<22} cost {:>6.2}  marginal reach {:>7.1}", m.cost as f64 / 100.0, m.marginal_gain);
    }
    println!(
        "    {} creators, cost {:.2} EUR, expected reach {:.1}, audience overlap {:.1}\n    guarantee: {}",
        p.members.len(),
        p.total_cost as f64 / 100.0,
        p.expected_reach,
        p.audience_overlap,
        p.guarantee
    );

    step(8, "Offers: a tracking link and code per creator, and a random holdout that gets nothing");
    let offers = matching
        .create_offers(with_key(mpb::CreateOffersRequest { campaign_id: campaign_id.into(), holdout_seed: 42 }, key)?)
        .await?
        .into_inner();
    let treated: Vec<&mpb::Offer> = offers.offers.iter().filter(|o| !o.holdout).collect();
    println!(
        "    {} offers issued; control group: {} portfolio creators held out (seed {}, recorded); e.g. {} / code {}",
        treated.len(),
        offers.control_group.len(),
        offers.holdout_seed,
        treated.first().map_or("", |o| o.link.as_str()),
        treated.first().map_or("", |o| o.code.as_str()),
    );

    step(9, "Simulating the campaign: audiences click, bounce or stay, and order");
    let audiences = audiences(ingest).await?;
    let events = campaign_outcomes(&offers.offers, &audiences, end);
    let head = ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?.into_inner().head_offset;
    // The collector stamps what it records with its clock; shifted so the campaign happens an
    // hour after the dataset ends, as the rest of the story's timeline does.
    let now_secs = lift_domain::time::now() / 1_000_000;
    shop.outlet.collector.set_clock_shift(end + 3_600 - now_secs);
    let sent = crate::links::replay_over_http(shop.outlet.addr, "lift.to", shop.brand_id, shop.secret, &events).await?;
    // Clicks, beacons and orders go through the collector's spool; bounces are decided after
    // the idle time. Wait until the ledger holds one event per request.
    let deadline = Instant::now() + Duration::from_secs(60);
    let acc = loop {
        let now = ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?.into_inner().head_offset - head;
        if now >= sent.events() && shop.outlet.collector.pending() == 0 {
            break now;
        }
        if Instant::now() > deadline {
            bail!("{now} of {} outcome events reached the ledger within 60 s", sent.events());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "    {} link clicks, {} beacon sessions and {} signed order webhooks sent to the collector over HTTP; {acc} events on the ledger\n    true effect: +{:.0}% order probability per audience member of a treated creator",
        sent.clicks,
        sent.sessions,
        sent.orders,
        TRUE_EFFECT * 100.0
    );

    step(10, "Campaign report from attributed outcomes on the ledger");
    let r = matching
        .get_campaign_report(with_key(mpb::GetCampaignReportRequest { campaign_id: campaign_id.into() }, key)?)
        .await?
        .into_inner();
    if let Some(t) = &r.totals {
        println!(
            "    clicks {}  unique visitors {}  bounce rate {:.1}%  conversions {}  value {:.2} EUR  cost/conversion {:.2} EUR  coupon leaks {}",
            t.clicks,
            t.unique_visitors,
            t.bounce_rate * 100.0,
            t.conversions,
            t.value_minor as f64 / 100.0,
            t.cost_per_conversion as f64 / 100.0,
            t.code_without_click
        );
    }
    let mut creators = r.creators.clone();
    creators.sort_by_key(|c| std::cmp::Reverse(c.totals.as_ref().map_or(0, |t| t.conversions)));
    for c in creators.iter().take(5) {
        let id = c.account.as_ref().map(|r| format!("{}:{}", r.network, r.id)).unwrap_or_default();
        if let Some(t) = &c.totals {
            println!(
                "      {id:<22} clicks {:>4}  bounce {:>5.1}%  conversions {:>3}  value {:>8.2}",
                t.clicks,
                t.bounce_rate * 100.0,
                t.conversions,
                t.value_minor as f64 / 100.0
            );
        }
    }
    if let Some(l) = r.lift.as_ref().filter(|l| !l.unavailable_reason.is_empty()) {
        println!(
            "    incremental lift per creator: not measurable yet — {} ({} treated vs {} in the control group)\n    metric: {}",
            l.unavailable_reason, l.treated, l.holdout, l.metric
        );
    } else if let Some(l) = &r.lift {
        println!(
            "    incremental lift per creator: {:+.2}, {:.0}% interval [{:.2}, {:.2}] ({} treated vs {} held out)\n    metric: {}",
            l.incremental_per_creator,
            l.confidence * 100.0,
            l.lower,
            l.upper,
            l.treated,
            l.holdout,
            l.metric,
        );
    }
    Ok(r)
}

type AccountKey = (String, String);

fn key_of(a: &ipb::AccountRef) -> AccountKey {
    (a.network.clone(), a.id.clone())
}

/// Each account's audience: who followed or engaged with it, read from the ledger.
async fn audiences(
    ingest: &mut IngestServiceClient<Channel>,
) -> anyhow::Result<std::collections::HashMap<AccountKey, Vec<ipb::AccountRef>>> {
    let mut out: std::collections::HashMap<AccountKey, std::collections::BTreeMap<AccountKey, ipb::AccountRef>> =
        Default::default();
    let mut stream = ingest
        .subscribe(ipb::SubscribeRequest {
            after_offset: 0,
            kinds: vec![ipb::EventKind::Engagement as i32, ipb::EventKind::Follow as i32],
            stop_at_head: true,
        })
        .await?
        .into_inner();
    while let Some(msg) = stream.message().await? {
        for e in msg.events {
            let (who, of) = match e.event.and_then(|e| e.kind) {
                Some(ipb::event::Kind::Engagement(g)) => (g.actor, g.target),
                Some(ipb::event::Kind::Follow(f)) if !f.unfollow => (f.follower, f.followee),
                _ => continue,
            };
            if let (Some(who), Some(of)) = (who, of) {
                out.entry(key_of(&of)).or_default().insert(key_of(&who), who);
            }
        }
    }
    Ok(out.into_iter().map(|(k, v)| (k, v.into_values().collect())).collect())
}

/// Outcomes for the offered and held-out creators' audiences: everyone may
/// order at the baseline rate; audiences of treated creators also click the
/// creator's link and order with the extra [`TRUE_EFFECT`]; a few orders carry
/// a code with no click (a leaked coupon).
fn campaign_outcomes(
    offers: &[mpb::Offer],
    audiences: &std::collections::HashMap<AccountKey, Vec<ipb::AccountRef>>,
    end: i64,
) -> Vec<ipb::Event> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let mut events = Vec::new();
    let at = |rng: &mut rand_chacha::ChaCha8Rng| end + rng.random_range(3600..5 * 86_400);
    let ev = |id: String, t: i64, kind: ipb::event::Kind| ipb::Event {
        event_id: id,
        source: "demo-campaign".into(),
        occurred_at: Some(lift_proto::Timestamp { seconds: t, nanos: 0 }),
        kind: Some(kind),
    };
    for (i, o) in offers.iter().enumerate() {
        let Some(owner) = &o.account else { continue };
        let audience = audiences.get(&key_of(owner)).cloned().unwrap_or_default();
        for (j, member) in audience.iter().enumerate() {
            // Long enough to pass as the collector's visitor cookie (16+ characters).
            let visitor = format!("cv-{i:06}-{j:08}");
            let tag = format!("{i}-{j}");
            let t = at(&mut rng);
            let mut ordered = false;
            if !o.holdout && rng.random::<f64>() < 0.4 {
                events.push(ev(
                    format!("c-click-{tag}"),
                    t,
                    ipb::event::Kind::LinkClick(ipb::LinkClick {
                        link: o.link.clone(),
                        visitor_id: visitor.clone(),
                        landing: "https://shop.example/spring".into(),
                        ..Default::default()
                    }),
                ));
                let bounced = rng.random::<f64>() < 0.45;
                events.push(ev(
                    format!("c-session-{tag}"),
                    t + 2,
                    ipb::event::Kind::PageSession(ipb::PageSession {
                        visitor_id: visitor.clone(),
                        link: o.link.clone(),
                        dwell_ms: if bounced { 2_000 } else { 95_000 },
                        bounced,
                    }),
                ));
                // The effect flows through the click: P(order | click, stayed) is scaled so
                // that the unconditional extra probability is TRUE_EFFECT.
                if !bounced && rng.random::<f64>() < (TRUE_EFFECT / (0.4 * 0.55)).min(1.0) {
                    ordered = true;
                    events.push(ev(
                        format!("c-order-{tag}"),
                        t + 600,
                        ipb::event::Kind::Conversion(ipb::Conversion {
                            visitor_id: visitor.clone(),
                            order_id: format!("spring-{tag}"),
                            value_minor: rng.random_range(2_000..9_000),
                            currency: "EUR".into(),
                            customer: Some(member.clone()),
                            ..Default::default()
                        }),
                    ));
                }
            }
            if !ordered && rng.random::<f64>() < BASELINE {
                // Ordered anyway: no link, sometimes a coupon code passed on by a friend.
                let code = if !o.holdout && rng.random::<f64>() < 0.2 { o.code.clone() } else { String::new() };
                events.push(ev(
                    format!("c-organic-{tag}"),
                    t + 900,
                    ipb::event::Kind::Conversion(ipb::Conversion {
                        visitor_id: format!("{visitor}-o"),
                        code,
                        order_id: format!("organic-{tag}"),
                        value_minor: rng.random_range(2_000..9_000),
                        currency: "EUR".into(),
                        customer: Some(member.clone()),
                    }),
                ));
            }
        }
    }
    events.sort_by_key(|e| e.occurred_at.as_ref().map_or(0, |t| t.seconds));
    events
}

fn criterion(d: Dimension, p: f64) -> mpb::Criterion {
    mpb::Criterion {
        dimension: d.to_proto() as i32,
        topic: String::new(),
        threshold: Some(mpb::criterion::Threshold::MinPercentile(p)),
    }
}

/// Every scored account once scoring has caught up, for choosing link owners.
async fn scoring_snapshot_accounts(
    ingest: &mut IngestServiceClient<Channel>,
    scoring: &mut ScoringServiceClient<Channel>,
) -> anyhow::Result<Vec<ipb::AccountRef>> {
    wait_scored(ingest, scoring, Duration::from_secs(300)).await?;
    let mut out: Vec<ipb::AccountRef> = all_scores(scoring).await?.into_iter().filter_map(|a| a.account).collect();
    out.sort_by(|a, b| (&a.network, &a.id).cmp(&(&b.network, &b.id)));
    Ok(out)
}

/// Attribution window of the simulated creators' links (a week).
pub const SIMULATED_WINDOW_SECS: i64 = 7 * 86_400;

/// Registers simulated creators' tracking links (no campaign) with ingestion.
pub async fn register_simulated_links(
    ingest: &mut IngestServiceClient<Channel>,
    links: &[dataset::SimulatedLink],
) -> anyhow::Result<ipb::RegisterLinksResponse> {
    let links = links
        .iter()
        .map(|l| ipb::Link {
            link: l.link.clone(),
            owner: Some(l.owner.clone()),
            campaign_id: String::new(),
            attribution_window_secs: SIMULATED_WINDOW_SECS.unsigned_abs(),
            landing_url: String::new(),
        })
        .collect();
    Ok(ingest.register_links(ipb::RegisterLinksRequest { links }).await?.into_inner())
}

/// Every scored account's scores in the current run, paged through `QueryAccounts`.
pub async fn all_scores(scoring: &mut ScoringServiceClient<Channel>) -> anyhow::Result<Vec<spb::AccountScores>> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let r = scoring
            .query_accounts(spb::QueryAccountsRequest {
                order_by: spb::Dimension::Activity as i32,
                page_size: 1000,
                page_token: token.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        out.extend(r.accounts);
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    Ok(out)
}
