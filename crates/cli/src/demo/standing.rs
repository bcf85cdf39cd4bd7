//! Step 11 of the demo: a standing perk program. The brand offers a perk to
//! every creator at or above a reach percentile, once; matching evaluates the
//! program by itself on every scoring run. The demo then makes scores change
//! — new followers for the creators just below the bar — and shows, run by
//! run, who got the perk and why, who was held out as a control, and what is
//! left of the budget.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lift_domain::Dimension;
use lift_proto::convert::prelude::*;
use lift_proto::{
    ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient},
    matching::v1::{self as mpb, matching_service_client::MatchingServiceClient},
    scoring::v1::scoring_service_client::ScoringServiceClient,
};
use lift_runtime::client::Channel;

use super::rpc::{stream_events, wait_scored, with_key};
use super::step;

/// The bar: reach at or above this percentile.
const BAR: f64 = 97.0;
/// New followers given to each creator just below the bar, per round.
const NEW_FOLLOWERS: usize = 40;
/// Creators just below the bar boosted per round.
const BOOSTED: usize = 3;

/// The clients step 11 uses.
pub(super) struct Clients<'a> {
    pub(super) ingest: &'a mut IngestServiceClient<Channel>,
    pub(super) scoring: &'a mut ScoringServiceClient<Channel>,
    pub(super) matching: &'a mut MatchingServiceClient<Channel>,
}

fn name(a: Option<&ipb::AccountRef>) -> String {
    a.map(|r| format!("{}:{}", r.network, r.id)).unwrap_or_default()
}

/// "1 perk", "3 perks".
fn count(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

fn eur(minor: i64) -> String {
    format!("{:.2} EUR", minor as f64 / 100.0)
}

/// Why a perk was given, e.g. "reach p98.3 (bar p97)".
fn why(p: &mpb::StandingPerk) -> String {
    p.criteria
        .iter()
        .map(|r| {
            let c = r.criterion.as_ref();
            let d = c.and_then(|c| Dimension::from_proto(c.dimension)).map_or("authenticity", |d| d.name());
            match c.and_then(|c| c.threshold) {
                Some(mpb::criterion::Threshold::MinPercentile(bar)) => {
                    format!("{d} p{:.1} (bar p{bar:.0})", r.observed)
                }
                Some(mpb::criterion::Threshold::MinValue(bar)) => format!("{d} {:.1} (bar {bar:.1})", r.observed),
                None => format!("{d} {:.1}", r.observed),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every perk of the program.
async fn perks(m: &mut MatchingServiceClient<Channel>, key: &str, id: &str) -> anyhow::Result<Vec<mpb::StandingPerk>> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let req = mpb::GetStandingProgramRequest { campaign_id: id.into(), page_size: 1_000, page_token: token };
        let r = m.get_standing_program(with_key(req, key)?).await?.into_inner();
        out.extend(r.perks);
        if r.next_page_token.is_empty() {
            return Ok(out);
        }
        token = r.next_page_token;
    }
}

/// Waits until matching's standing consumer has evaluated the program on the
/// scoring run at `as_of` (it does so by itself, about once a second).
async fn evaluated(
    m: &mut MatchingServiceClient<Channel>,
    key: &str,
    id: &str,
    as_of: u64,
) -> anyhow::Result<mpb::StandingProgramStatus> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let req = mpb::GetStandingProgramRequest { campaign_id: id.into(), page_size: 1, page_token: String::new() };
        let r = m.get_standing_program(with_key(req, key)?).await?.into_inner();
        if let Some(p) = r.program.filter(|p| p.last_as_of_offset >= as_of) {
            return Ok(p);
        }
        if Instant::now() > deadline {
            bail!("the standing program was not evaluated on the scoring run at ledger offset {as_of} within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Prints the perks given on scoring runs after ledger offset `after` (up to
/// the program's last run) and the program's books.
/// `boosted` creators were given new followers before this run.
fn print_run(run: usize, after: u64, all: &[mpb::StandingPerk], p: &mpb::StandingProgramStatus, boosted: usize) {
    let as_of = p.last_as_of_offset;
    let new: Vec<&mpb::StandingPerk> = all.iter().filter(|k| k.as_of_offset > after).collect();
    let before = all.len() - new.len();
    let (offers, held) = (new.iter().filter(|k| !k.holdout).count(), new.iter().filter(|k| k.holdout).count());
    println!(
        "    scoring run {run} (model {}, ledger offset {as_of}): {} newly at the bar -> {} sent, {} held out as {}",
        p.last_model_version,
        count(new.len(), "creator"),
        count(offers, "perk"),
        held,
        if held == 1 { "a control" } else { "controls" }
    );
    for k in new.iter().take(8) {
        let what = if k.holdout {
            "held out (control group: never offered)".to_owned()
        } else {
            format!("perk sent, cost {}, code {}", eur(k.cost), k.code)
        };
        println!("      {:<22} {}  ->  {what}", name(k.account.as_ref()), why(k));
    }
    if new.len() > 8 {
        println!("      ... and {} more", new.len() - 8);
    }
    if boosted > 0 && new.len() > boosted {
        println!(
            "      (percentiles are relative: the {} new follower accounts rank below everyone, which lifts\n       creators just under the bar over it too)",
            boosted * NEW_FOLLOWERS
        );
    }
    if before > 0 {
        let held_before = all.iter().filter(|k| k.as_of_offset <= after && k.holdout).count();
        println!(
            "      the {} decided on earlier runs ({} with the perk, {} held out) were not offered it again",
            count(before, "creator"),
            before - held_before,
            held_before
        );
    }
    println!(
        "    budget: spent {} of {}, {} left; {} sent and {} so far{}",
        eur(p.spent),
        eur(p.budget),
        eur(p.budget_left),
        count(p.offers as usize, "perk"),
        count(p.controls as usize, "control"),
        if p.unaffordable_last_run > 0 {
            format!("; {} qualifying cost more than is left", count(p.unaffordable_last_run as usize, "creator"))
        } else {
            String::new()
        }
    );
}

/// Step 11; `network` is the dataset's account network, `end` its last second.
/// Runs step 11; returns the program's campaign id.
pub(super) async fn standing_program(c: Clients<'_>, key: &str, network: &str, end: i64) -> anyhow::Result<String> {
    step(11, "A standing perk program: every creator who comes to meet the bar gets the perk once, as scores change");
    let spec = mpb::CampaignSpec {
        name: "Markers for well-connected creators".into(),
        objective: mpb::Objective::Reach as i32,
        perk: "A set of 12 markers".into(),
        unit_cost: 500,
        budget: 40_000,
        currency: "EUR".into(),
        criteria: vec![mpb::Criterion {
            dimension: Dimension::Reach.to_proto() as i32,
            topic: String::new(),
            threshold: Some(mpb::criterion::Threshold::MinPercentile(BAR)),
        }],
        holdout_share: 0.2,
        landing_url: "https://shop.example/markers".into(),
        ..Default::default()
    };
    let campaign = c
        .matching
        .create_campaign(with_key(mpb::CreateCampaignRequest { spec: Some(spec) }, key)?)
        .await?
        .into_inner()
        .campaign
        .context("CreateCampaign returned no campaign")?;
    let id = campaign.id;
    let start = mpb::StartStandingProgramRequest { campaign_id: id.clone(), rules: None };
    c.matching.start_standing_program(with_key(start, key)?).await?;
    println!(
        "    campaign {id}: reach ≥ p{BAR:.0}, 5.00 EUR per perk, budget 400.00 EUR, 20% held out as a control group;\n    standing: matching checks it on every scoring run by itself"
    );

    let model = wait_scored(c.ingest, c.scoring, Duration::from_secs(120)).await?;
    let status = evaluated(c.matching, key, &id, model.as_of_offset).await?;
    let all = perks(c.matching, key, &id).await?;
    print_run(1, 0, &all, &status, 0);
    let mut last = status.last_as_of_offset;

    for round in 0..2 {
        let req = mpb::MatchCampaignRequest {
            campaign_id: id.clone(),
            page_size: 1,
            near_miss_margin: 3.0,
            ..Default::default()
        };
        let m = c.matching.match_campaign(with_key(req, key)?).await?.into_inner();
        let have: BTreeSet<String> =
            perks(c.matching, key, &id).await?.iter().map(|k| name(k.account.as_ref())).collect();
        let boosted: Vec<ipb::AccountRef> = m
            .near_misses
            .iter()
            .filter_map(|n| n.account.clone())
            .filter(|a| !have.contains(&name(Some(a))))
            .take(BOOSTED)
            .collect();
        if boosted.is_empty() {
            println!("    no creator is within 3 percentile points of the bar; scores stay as they are");
            break;
        }
        let names: Vec<String> = boosted.iter().map(|a| name(Some(a))).collect();
        println!(
            "\n    scores change: {NEW_FOLLOWERS} new followers each for {} (just below the bar)",
            names.join(", ")
        );
        let mut events = Vec::new();
        for (i, a) in boosted.iter().enumerate() {
            for j in 0..NEW_FOLLOWERS {
                let fan = ipb::AccountRef { network: network.into(), id: format!("markers-fan-{round}-{i}-{j}") };
                let at = end + 3_600 + (round * 600) as i64 + j as i64;
                events.push(ipb::Event {
                    event_id: format!("markers-follow-{round}-{i}-{j}"),
                    source: "demo".into(),
                    occurred_at: Some(lift_proto::convert::to_timestamp(at * 1_000_000)),
                    kind: Some(ipb::event::Kind::Follow(ipb::Follow {
                        follower: Some(fan),
                        followee: Some(a.clone()),
                        unfollow: false,
                    })),
                });
            }
        }
        stream_events(c.ingest, events, 1_000).await?;
        let model = wait_scored(c.ingest, c.scoring, Duration::from_secs(120)).await?;
        let status = evaluated(c.matching, key, &id, model.as_of_offset).await?;
        let all = perks(c.matching, key, &id).await?;
        print_run(round + 2, last, &all, &status, boosted.len());
        last = status.last_as_of_offset;
    }
    Ok(id)
}
