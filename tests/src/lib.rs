//! The end-to-end scenario shared by the SQLite and PostgreSQL tests: a small
//! scripted network whose right answers are known by construction, pushed
//! through ingestion, scored, and matched — every hop over real gRPC.

pub mod browser;
pub mod campaign;
/// The minimal HTTP client the collector's tests speak with (lives in lift-collect).
pub use lift_collect::client as http;

use lift_proto::convert::prelude::*;
use std::time::Duration;

use anyhow::{Context, ensure};
use lift_cli::{
    demo::{stream_events, wait_scored, with_key},
    stack::{Databases, Stack},
};
use lift_domain::Dimension;
use lift_proto::{
    Timestamp,
    ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient},
    matching::v1::{self as mpb, matching_service_client::MatchingServiceClient},
    scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient},
};

const NET: &str = "t";
const T0: i64 = 1_767_225_600;

fn acct(id: &str) -> Option<ipb::AccountRef> {
    Some(ipb::AccountRef { network: NET.into(), id: id.into() })
}

fn ev(id: impl Into<String>, at: i64, kind: ipb::event::Kind) -> ipb::Event {
    ipb::Event {
        event_id: id.into(),
        source: "e2e".into(),
        occurred_at: Some(Timestamp { seconds: at, nanos: 0 }),
        kind: Some(kind),
    }
}

fn engage(id: String, at: i64, actor: &str, post: &str, author: &str, kind: ipb::EngagementKind) -> ipb::Event {
    ev(
        id,
        at,
        ipb::event::Kind::Engagement(ipb::Engagement {
            kind: kind as i32,
            actor: acct(actor),
            post_id: post.into(),
            target: acct(author),
        }),
    )
}

fn post(id: &str, at: i64, author: &str) -> ipb::Event {
    ev(
        format!("post-{id}"),
        at,
        ipb::event::Kind::Post(ipb::Post {
            author: acct(author),
            post_id: id.into(),
            topics: vec!["coffee".into()],
            ..Default::default()
        }),
    )
}

/// The scripted world: `hub` draws reposts and replies from everyone; `busy`
/// posts a lot and draws almost nothing; `celeb` reports many followers; 40
/// ordinary accounts `f0..f39` post a little and engage the hub.
pub fn scripted_events() -> Vec<ipb::Event> {
    let mut out = Vec::new();
    let mut accounts: Vec<(String, u64)> = vec![("hub".into(), 300), ("busy".into(), 50), ("celeb".into(), 90_000)];
    accounts.extend((0..40).map(|i| (format!("f{i}"), 20 + i as u64)));
    for (id, followers) in &accounts {
        out.push(ev(
            format!("acct-{id}"),
            T0,
            ipb::event::Kind::Account(ipb::AccountUpsert {
                account: acct(id),
                handle: format!("@{id}"),
                reported_followers: *followers,
                created_at: Some(Timestamp { seconds: T0 - 400 * 86_400, nanos: 0 }),
                ..Default::default()
            }),
        ));
    }
    for p in 0..5 {
        let pid = format!("hub-{p}");
        out.push(post(&pid, T0 + p * 3600, "hub"));
        for i in 0..40 {
            let kind = if i % 2 == 0 { ipb::EngagementKind::Repost } else { ipb::EngagementKind::Reply };
            out.push(engage(format!("e-{pid}-{i}"), T0 + p * 3600 + 600 + i, &format!("f{i}"), &pid, "hub", kind));
        }
    }
    for p in 0..100 {
        out.push(post(&format!("busy-{p}"), T0 + p * 60, "busy"));
    }
    out.push(engage("e-busy-like".into(), T0 + 7200, "f1", "busy-0", "busy", ipb::EngagementKind::Like));
    out.push(post("celeb-0", T0 + 100, "celeb"));
    out.push(engage("e-celeb-1".into(), T0 + 200, "f2", "celeb-0", "celeb", ipb::EngagementKind::Like));
    for i in 0..40 {
        let pid = format!("f{i}-p");
        out.push(post(&pid, T0 + 50_000 + i, &format!("f{i}")));
        out.push(ev(
            format!("follow-f{i}-hub"),
            T0 + 10,
            ipb::event::Kind::Follow(ipb::Follow {
                follower: acct(&format!("f{i}")),
                followee: acct("hub"),
                unfollow: false,
            }),
        ));
    }
    out
}

fn score(a: &spb::AccountScores, d: Dimension) -> anyhow::Result<&spb::Score> {
    a.scores
        .iter()
        .find(|s| s.dimension == d.to_proto() as i32 && s.topic.is_empty())
        .with_context(|| format!("no {d} score for {:?}", a.account))
}

async fn scores_of(
    scoring: &mut ScoringServiceClient<lift_runtime::client::Channel>,
    ids: &[&str],
) -> anyhow::Result<Vec<spb::AccountScores>> {
    let r = scoring
        .get_scores(spb::GetScoresRequest { accounts: ids.iter().filter_map(|i| acct(i)).collect() })
        .await?
        .into_inner();
    ensure!(r.unknown.is_empty(), "unscored accounts: {:?}", r.unknown);
    ensure!(r.accounts.len() == ids.len(), "asked {} accounts, got {}", ids.len(), r.accounts.len());
    Ok(r.accounts)
}

/// Runs the scenario against a stack on the given databases.
pub async fn scenario(dbs: Databases) -> anyhow::Result<()> {
    let cfg = lift_scoring::ScoringConfig { debounce: Duration::from_millis(50), ..Default::default() };
    let stack = Stack::start_loopback(&dbs, cfg).await?;
    let result = run(&stack).await;
    stack.stop().await?;
    result
}

async fn run(stack: &Stack) -> anyhow::Result<()> {
    let mut ingest = IngestServiceClient::new(stack.channel(&stack.ingest_url())?);
    let mut scoring = ScoringServiceClient::new(stack.channel(&stack.scoring_url())?);
    let mut matching = MatchingServiceClient::new(stack.channel(&stack.matching_url())?);

    // Ledger: every event stored once, with offsets; a replay adds nothing.
    let events = scripted_events();
    let n = events.len() as u64;
    let (accepted, dups) = stream_events(&mut ingest, events.clone(), 97).await?;
    ensure!(accepted == n && dups == 0, "accepted {accepted} dup {dups} of {n}");
    let (accepted, dups) = stream_events(&mut ingest, events, 500).await?;
    ensure!(accepted == 0 && dups == n, "replay: accepted {accepted} dup {dups} of {n}");
    let info = ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?.into_inner();
    ensure!(info.head_offset == n && info.events == n, "ledger {info:?} after {n} events");

    // Scores.
    let model = wait_scored(&mut ingest, &mut scoring, Duration::from_secs(60)).await?;
    ensure!(model.accounts == 43, "scored {} accounts, want 43", model.accounts);
    let s = scores_of(&mut scoring, &["hub", "busy", "celeb", "f5"]).await?;
    let (hub, busy, celeb, f5) = (&s[0], &s[1], &s[2], &s[3]);
    for a in &s {
        ensure!(a.as_of_offset == n, "as-of offset {} != {n}", a.as_of_offset);
        for sc in &a.scores {
            ensure!(
                (0.0..=100.0).contains(&sc.value) && (0.0..=100.0).contains(&sc.percentile),
                "out of range: {sc:?}"
            );
        }
    }
    let v = |a: &spb::AccountScores, d| score(a, d).map(|s| s.value);
    ensure!(v(hub, Dimension::Activity)? > v(busy, Dimension::Activity)?, "responses per post must beat volume");
    ensure!(v(hub, Dimension::Network)? > v(f5, Dimension::Network)?, "the hub must out-rank an engager on network");
    ensure!(v(celeb, Dimension::Reach)? > v(busy, Dimension::Reach)?, "reported followers count toward reach");
    let top = scoring
        .query_accounts(spb::QueryAccountsRequest {
            order_by: spb::Dimension::Network as i32,
            page_size: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let top_id = top.accounts.first().and_then(|a| a.account.as_ref()).map(|a| a.id.clone());
    ensure!(top_id.as_deref() == Some("hub"), "network leader is {top_id:?}, want hub");

    // New events move scores without a restart.
    let before = v(&scores_of(&mut scoring, &["f7"]).await?[0], Dimension::Network)?;
    let mut more = Vec::new();
    for i in 0..40 {
        if i != 7 {
            more.push(engage(
                format!("late-{i}"),
                T0 + 90_000 + i,
                &format!("f{i}"),
                "f7-p",
                "f7",
                ipb::EngagementKind::Repost,
            ));
        }
    }
    stream_events(&mut ingest, more, 100).await?;
    wait_scored(&mut ingest, &mut scoring, Duration::from_secs(60)).await?;
    let after = v(&scores_of(&mut scoring, &["f7"]).await?[0], Dimension::Network)?;
    ensure!(after > before, "f7's network score {before} did not rise ({after}) after 39 reposts");

    // A campaign with percentile thresholds.
    let (_b, key) = lift_matching::create_brand(&stack.matching_db, "Test Roasters").await?;
    let crit = |d: Dimension, p: f64| mpb::Criterion {
        dimension: d.to_proto() as i32,
        topic: String::new(),
        threshold: Some(mpb::criterion::Threshold::MinPercentile(p)),
    };
    let spec = mpb::CampaignSpec {
        name: "e2e".into(),
        objective: mpb::Objective::Engagement as i32,
        perk: "beans".into(),
        unit_cost: 1000,
        budget: 10_000,
        currency: "EUR".into(),
        criteria: vec![crit(Dimension::Activity, 50.0), crit(Dimension::Network, 40.0)],
        holdout_share: 0.0,
        attribution_window_secs: 86_400,
        ..Default::default()
    };
    let c = matching
        .create_campaign(with_key(mpb::CreateCampaignRequest { spec: Some(spec) }, &key)?)
        .await?
        .into_inner()
        .campaign
        .context("no campaign")?;
    let m = matching
        .match_campaign(with_key(
            mpb::MatchCampaignRequest { campaign_id: c.id.clone(), page_size: 100, ..Default::default() },
            &key,
        )?)
        .await?
        .into_inner();
    ensure!(!m.eligible.is_empty(), "nobody eligible");
    ensure!(m.eligible.iter().any(|c| c.account.as_ref().is_some_and(|a| a.id == "hub")), "hub must be eligible");
    for (i, cand) in m.eligible.iter().enumerate() {
        ensure!(cand.rank as usize == i + 1, "ranks must be 1..n in order");
        ensure!(cand.eligible && cand.criteria.iter().all(|r| r.passed && r.margin >= 0.0), "{cand:?}");
        let id = cand.account.as_ref().map(|a| a.id.clone()).unwrap_or_default();
        let sc = &scores_of(&mut scoring, &[id.as_str()]).await?[0];
        for r in cand.criteria.iter().filter(|r| r.criterion.is_some()) {
            let cr = r.criterion.as_ref().context("criterion")?;
            let Some(mpb::criterion::Threshold::MinPercentile(p)) = cr.threshold else { continue };
            let d = Dimension::from_proto(cr.dimension).context("dimension")?;
            let pct = score(sc, d)?.percentile;
            ensure!(
                (r.observed - pct).abs() < 1e-9 && (r.margin - (pct - p)).abs() < 1e-9,
                "{r:?} vs percentile {pct}"
            );
        }
    }
    // Another brand sees nothing of it.
    let (_b2, other) = lift_matching::create_brand(&stack.matching_db, "Other").await?;
    let denied = matching.get_campaign(with_key(mpb::GetCampaignRequest { campaign_id: c.id.clone() }, &other)?).await;
    ensure!(denied.as_ref().err().map(|s| s.code()) == Some(tonic::Code::NotFound), "{denied:?}");
    Ok(())
}

/// Polls `probe` every 25 ms until it returns true, failing after `within`
/// with `what` in the error.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut probe: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while !probe().await {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("{what}: not within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(())
}
