//! Steps 2–6 of the demo: the social graph, simulated outcomes on creators'
//! links, scores, the top accounts per dimension, and a brand's campaign with
//! its shortlist and near misses.

use lift_proto::convert::prelude::*;
use std::time::{Duration, Instant};

use anyhow::Context;
use lift_domain::Dimension;
use lift_proto::{
    ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient},
    matching::v1::{self as mpb, matching_service_client::MatchingServiceClient},
    scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient},
};

use super::campaign::{Shop, campaign_life};
use super::rpc::{
    SIMULATED_WINDOW_SECS, import_summary, register_simulated_links, scoring_snapshot_accounts, stream_events,
    wait_scored, with_key,
};
use super::standing::{Clients, standing_program};
use super::{DemoOptions, DemoSummary, Outlet, step};
use crate::dataset::{self, NetworkSpec};
use crate::stack::Stack;

pub(super) async fn story(
    stack: &Stack,
    opts: &DemoOptions,
    started: Instant,
    outlet: &Outlet,
) -> anyhow::Result<DemoSummary> {
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
                let name = criterion_name(r);
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
                    let name = criterion_name(r);
                    format!("{name} short by {:.2}", -r.margin)
                })
                .collect();
            println!("       {id:<22} {}", failed.join(", "));
        }
    }

    let shop = Shop { outlet, brand_id: &brand.0, secret: &secret };
    let report = campaign_life(&mut ingest, &mut matching, &key, &campaign.id, end, &shop).await?;
    let clients = Clients { ingest: &mut ingest, scoring: &mut scoring, matching: &mut matching };
    let standing_campaign_id = standing_program(clients, &key, &network, end).await?;

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
        standing_campaign_id,
        console: None,
    })
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

fn criterion(d: Dimension, p: f64) -> mpb::Criterion {
    mpb::Criterion {
        dimension: d.to_proto() as i32,
        topic: String::new(),
        threshold: Some(mpb::criterion::Threshold::MinPercentile(p)),
    }
}

/// The dimension a criterion result is about, by name (a criterion without one reads as
/// authenticity, as the demo has always printed it).
fn criterion_name(r: &lift_proto::matching::v1::CriterionResult) -> &'static str {
    r.criterion.as_ref().and_then(|c| Dimension::from_proto(c.dimension)).map_or("authenticity", |d| d.name())
}
