//! Campaign properties over the real services (ingestion, scoring, matching on
//! loopback gRPC), each on a fresh stack over the given databases:
//!
//! - [`tenant_isolation`]: one brand's campaign does not exist for another, both ways.
//! - [`criteria_margins`]: every verdict, margin, rank and near miss equals what
//!   scoring's own scores give by hand.
//! - [`holdout_random_and_recorded`]: the holdout is a seeded draw from the
//!   eligible creators, disjoint from the offered ones, recorded and reproducible.
//! - [`report_figures`]: a small scripted campaign's report, figure by figure.
//! - [`lift_on_simulated_campaign`]: a known true effect lies inside the reported interval.
//! - [`churn_after_model_change`]: scoring restarted with another model; the
//!   campaign records the churn and translates its absolute threshold.
//!
//! The worlds are built here: creators, each with an audience of accounts that
//! follow and engage only with them, so who is eligible, who reaches whom and
//! whose audience orders are all known by construction.

use lift_proto::convert::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use lift_cli::demo::{stream_events, wait_scored, with_key};
use lift_cli::stack::{Databases, Stack};
use lift_domain::Dimension;
use lift_domain::campaign::SplitMix64;
use lift_proto::{
    Timestamp,
    ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient},
    matching::v1::{self as mpb, matching_service_client::MatchingServiceClient},
    scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient},
};
use lift_runtime::client::Channel;
use tonic::Code;

const NET: &str = "c";
/// 2026-01-01: the social world happens in January.
const T0: i64 = 1_767_225_600;
/// Campaign outcomes happen from February on.
const T_OUT: i64 = T0 + 31 * 86_400;

fn acct(id: &str) -> ipb::AccountRef {
    ipb::AccountRef { network: NET.into(), id: id.into() }
}

fn id_of(a: Option<&ipb::AccountRef>) -> String {
    a.map(|a| a.id.clone()).unwrap_or_default()
}

fn ev(id: impl Into<String>, at: i64, kind: ipb::event::Kind) -> ipb::Event {
    ipb::Event {
        event_id: id.into(),
        source: "campaign-test".into(),
        occurred_at: Some(Timestamp { seconds: at, nanos: 0 }),
        kind: Some(kind),
    }
}

fn click(id: &str, at: i64, link: &str, visitor: &str) -> ipb::Event {
    ev(
        id,
        at,
        ipb::event::Kind::LinkClick(ipb::LinkClick {
            link: link.into(),
            visitor_id: visitor.into(),
            landing: "https://shop.example/".into(),
            ..Default::default()
        }),
    )
}

fn session(id: &str, at: i64, link: &str, visitor: &str, bounced: bool) -> ipb::Event {
    ev(
        id,
        at,
        ipb::event::Kind::PageSession(ipb::PageSession {
            visitor_id: visitor.into(),
            link: link.into(),
            dwell_ms: if bounced { 1_500 } else { 80_000 },
            bounced,
        }),
    )
}

struct Order<'a> {
    visitor: &'a str,
    code: &'a str,
    order: &'a str,
    value: i64,
    currency: &'a str,
    customer: Option<&'a str>,
}

fn order(id: &str, at: i64, o: Order<'_>) -> ipb::Event {
    ev(
        id,
        at,
        ipb::event::Kind::Conversion(ipb::Conversion {
            visitor_id: o.visitor.into(),
            code: o.code.into(),
            order_id: o.order.into(),
            value_minor: o.value,
            currency: o.currency.into(),
            customer: o.customer.map(acct),
        }),
    )
}

/// Creators `c00, c01, ...`; creator `i` has `sizes[i]` audience accounts
/// `cII-aJJ` that follow it and engage with one of its posts, and nobody else.
struct World {
    events: Vec<ipb::Event>,
    creators: Vec<String>,
    audience: BTreeMap<String, Vec<String>>,
}

impl World {
    fn new(sizes: &[usize], followers: impl Fn(usize) -> u64, posts: impl Fn(usize) -> usize) -> Self {
        let mut events = Vec::new();
        let mut creators = Vec::new();
        let mut audience = BTreeMap::new();
        let upsert = |id: &str, followers: u64| {
            ev(
                format!("acct-{id}"),
                T0,
                ipb::event::Kind::Account(ipb::AccountUpsert {
                    account: Some(acct(id)),
                    handle: format!("@{id}"),
                    reported_followers: followers,
                    created_at: Some(Timestamp { seconds: T0 - 400 * 86_400, nanos: 0 }),
                    ..Default::default()
                }),
            )
        };
        for (i, &size) in sizes.iter().enumerate() {
            let c = format!("c{i:02}");
            events.push(upsert(&c, followers(i)));
            let n_posts = posts(i).max(1);
            let post_at = |p: usize| T0 + 3_600 + (p as i64) * 86_400 + (i as i64) * 10;
            for p in 0..n_posts {
                events.push(ev(
                    format!("post-{c}-{p}"),
                    post_at(p),
                    ipb::event::Kind::Post(ipb::Post {
                        author: Some(acct(&c)),
                        post_id: format!("{c}-p{p}"),
                        topics: vec!["coffee".into()],
                        ..Default::default()
                    }),
                ));
            }
            let mut members = Vec::new();
            for j in 0..size {
                let m = format!("{c}-a{j:02}");
                events.push(upsert(&m, 0));
                events.push(ev(
                    format!("follow-{m}"),
                    T0 + 600 + (j as i64) * 7,
                    ipb::event::Kind::Follow(ipb::Follow {
                        follower: Some(acct(&m)),
                        followee: Some(acct(&c)),
                        unfollow: false,
                    }),
                ));
                let kind = [ipb::EngagementKind::Like, ipb::EngagementKind::Reply, ipb::EngagementKind::Repost][j % 3];
                let p = j % n_posts;
                events.push(ev(
                    format!("engage-{m}"),
                    post_at(p) + 900 + (j as i64) * 60,
                    ipb::event::Kind::Engagement(ipb::Engagement {
                        kind: kind as i32,
                        actor: Some(acct(&m)),
                        post_id: format!("{c}-p{p}"),
                        target: Some(acct(&c)),
                    }),
                ));
                members.push(m);
            }
            audience.insert(c.clone(), members);
            creators.push(c);
        }
        Self { events, creators, audience }
    }

    fn accounts(&self) -> Vec<String> {
        self.creators.iter().cloned().chain(self.audience.values().flatten().cloned()).collect()
    }
}

/// A world with a spread of creators: audiences of 2..=25, reported followers
/// falling as audiences grow, and 1..=4 posts each.
fn varied_world() -> World {
    World::new(&(2..=25).collect::<Vec<_>>(), |i| (24 - i as u64) * 150, |i| 1 + i % 4)
}

/// A running stack and clients for the stack's own key (ingest, scores).
struct Env {
    stack: Stack,
    ingest: IngestServiceClient<Channel>,
    scoring: ScoringServiceClient<Channel>,
    matching: MatchingServiceClient<Channel>,
}

fn scoring_config(model: lift_scoring::engine::ModelParams) -> lift_scoring::ScoringConfig {
    lift_scoring::ScoringConfig {
        model,
        debounce: Duration::from_millis(50),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..Default::default()
    }
}

impl Env {
    async fn start(dbs: &Databases) -> anyhow::Result<Self> {
        let stack = Stack::start_loopback(dbs, scoring_config(Default::default())).await?;
        Ok(Self {
            ingest: IngestServiceClient::new(stack.channel(&stack.ingest_url())?),
            scoring: ScoringServiceClient::new(stack.channel(&stack.scoring_url())?),
            matching: MatchingServiceClient::new(stack.channel(&stack.matching_url())?),
            stack,
        })
    }

    /// Ingests `events` (all must be new) and waits until scoring has consumed them.
    async fn ingest_scored(&mut self, events: Vec<ipb::Event>) -> anyhow::Result<spb::GetModelResponse> {
        self.ingest_all(events).await?;
        wait_scored(&mut self.ingest, &mut self.scoring, Duration::from_secs(60)).await
    }

    async fn ingest_all(&mut self, events: Vec<ipb::Event>) -> anyhow::Result<()> {
        let n = events.len() as u64;
        let (accepted, dups) = stream_events(&mut self.ingest, events, 1000).await?;
        ensure!(accepted == n && dups == 0, "accepted {accepted}, duplicates {dups} of {n} events");
        Ok(())
    }

    async fn brand(&self, name: &str) -> anyhow::Result<Brand> {
        let (id, key) = lift_matching::create_brand(&self.stack.matching_db, name).await?;
        Ok(Brand { id: id.0, key })
    }

    /// Every account's scores, by id.
    async fn scores(&mut self, ids: &[String]) -> anyhow::Result<HashMap<String, spb::AccountScores>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(200) {
            let r = self
                .scoring
                .get_scores(spb::GetScoresRequest { accounts: chunk.iter().map(|i| acct(i)).collect() })
                .await?
                .into_inner();
            ensure!(r.unknown.is_empty(), "unscored accounts: {:?}", r.unknown);
            for a in r.accounts {
                out.insert(id_of(a.account.as_ref()), a);
            }
        }
        ensure!(out.len() == ids.len(), "asked {} accounts' scores, got {}", ids.len(), out.len());
        Ok(out)
    }

    async fn create(&mut self, b: &Brand, spec: mpb::CampaignSpec) -> anyhow::Result<mpb::Campaign> {
        self.matching
            .create_campaign(with_key(mpb::CreateCampaignRequest { spec: Some(spec) }, &b.key)?)
            .await?
            .into_inner()
            .campaign
            .context("CreateCampaign returned no campaign")
    }

    async fn get(&mut self, b: &Brand, id: &str) -> anyhow::Result<mpb::Campaign> {
        self.matching
            .get_campaign(with_key(mpb::GetCampaignRequest { campaign_id: id.into() }, &b.key)?)
            .await?
            .into_inner()
            .campaign
            .context("GetCampaign returned no campaign")
    }

    /// The whole eligible list (one page) and the near misses within `margin`.
    async fn matched(&mut self, b: &Brand, id: &str, margin: f64) -> anyhow::Result<mpb::MatchCampaignResponse> {
        let r = self
            .matching
            .match_campaign(with_key(
                mpb::MatchCampaignRequest {
                    campaign_id: id.into(),
                    page_size: 1000,
                    near_miss_margin: margin,
                    ..Default::default()
                },
                &b.key,
            )?)
            .await?
            .into_inner();
        ensure!(r.next_page_token.is_empty(), "more than one page of eligible accounts");
        ensure!(
            r.total_eligible == r.eligible.len() as u64,
            "total {} vs {} listed",
            r.total_eligible,
            r.eligible.len()
        );
        ensure!(!r.stale, "MatchCampaign answered from a stale snapshot");
        Ok(r)
    }

    async fn portfolio(&mut self, b: &Brand, id: &str) -> anyhow::Result<mpb::SelectPortfolioResponse> {
        Ok(self
            .matching
            .select_portfolio(with_key(mpb::SelectPortfolioRequest { campaign_id: id.into(), epsilon: 0.0 }, &b.key)?)
            .await?
            .into_inner())
    }

    async fn offers(&mut self, b: &Brand, id: &str, seed: u64) -> anyhow::Result<mpb::CreateOffersResponse> {
        Ok(self
            .matching
            .create_offers(with_key(mpb::CreateOffersRequest { campaign_id: id.into(), holdout_seed: seed }, &b.key)?)
            .await?
            .into_inner())
    }

    async fn report(&mut self, b: &Brand, id: &str) -> anyhow::Result<mpb::GetCampaignReportResponse> {
        Ok(self
            .matching
            .get_campaign_report(with_key(mpb::GetCampaignReportRequest { campaign_id: id.into() }, &b.key)?)
            .await?
            .into_inner())
    }
}

struct Brand {
    id: String,
    key: String,
}

/// Starts a stack on `dbs`, runs `body` against it and stops the stack.
macro_rules! on_stack {
    ($dbs:expr, $body:ident) => {{
        let mut env = Env::start(&$dbs).await?;
        let result = $body(&mut env).await;
        let stopped = env.stack.stop().await;
        result.and(stopped)
    }};
}

fn pct(d: Dimension, p: f64) -> mpb::Criterion {
    mpb::Criterion {
        dimension: d.to_proto() as i32,
        topic: String::new(),
        threshold: Some(mpb::criterion::Threshold::MinPercentile(p)),
    }
}

fn min_value(d: Dimension, v: f64) -> mpb::Criterion {
    mpb::Criterion {
        dimension: d.to_proto() as i32,
        topic: String::new(),
        threshold: Some(mpb::criterion::Threshold::MinValue(v)),
    }
}

fn spec(name: &str, objective: mpb::Objective, criteria: Vec<mpb::Criterion>) -> mpb::CampaignSpec {
    mpb::CampaignSpec {
        name: name.into(),
        objective: objective as i32,
        perk: "a bag of beans".into(),
        unit_cost: 1_500,
        budget: 1_500,
        currency: "EUR".into(),
        criteria,
        attribution_window_secs: 3_600,
        ..Default::default()
    }
}

fn ids<'a>(accounts: impl IntoIterator<Item = &'a ipb::AccountRef>) -> BTreeSet<String> {
    accounts.into_iter().map(|a| a.id.clone()).collect()
}

fn eligible_ids(m: &mpb::MatchCampaignResponse) -> BTreeSet<String> {
    m.eligible.iter().map(|c| id_of(c.account.as_ref())).collect()
}

fn code_of<T>(r: Result<T, tonic::Status>) -> Option<Code> {
    r.err().map(|s| s.code())
}

// ---------------------------------------------------------------------------
// 1. Tenant isolation
// ---------------------------------------------------------------------------

/// Brand A's campaign is NOT_FOUND for brand B on every campaign RPC and absent
/// from B's list, and the other way round, whether the campaign is a draft or
/// has issued offers; a denied call changes nothing. Unknown or missing keys
/// are UNAUTHENTICATED on every RPC.
pub async fn tenant_isolation(dbs: Databases) -> anyhow::Result<()> {
    on_stack!(dbs, tenant_isolation_on)
}

async fn tenant_isolation_on(env: &mut Env) -> anyhow::Result<()> {
    let w = varied_world();
    env.ingest_scored(w.events.clone()).await?;
    let a = env.brand("Brand A").await?;
    let b = env.brand("Brand B").await?;
    let mk = |n: &str| mpb::CampaignSpec {
        budget: 3_000,
        ..spec(n, mpb::Objective::Reach, vec![pct(Dimension::Reach, 80.0)])
    };
    let ca = env.create(&a, mk("A's campaign")).await?;
    let cb = env.create(&b, mk("B's campaign")).await?;
    // A's campaign has issued offers; B's is a draft: both states are probed.
    env.offers(&a, &ca.id, 5).await?;

    for (owner, other, c, state) in
        [(&a, &b, &ca, mpb::CampaignState::Offered), (&b, &a, &cb, mpb::CampaignState::Draft)]
    {
        let id = c.id.clone();
        let k = &other.key;
        let m = &mut env.matching;
        let calls = [
            (
                "GetCampaign",
                code_of(m.get_campaign(with_key(mpb::GetCampaignRequest { campaign_id: id.clone() }, k)?).await),
            ),
            (
                "MatchCampaign",
                code_of(
                    m.match_campaign(with_key(
                        mpb::MatchCampaignRequest { campaign_id: id.clone(), ..Default::default() },
                        k,
                    )?)
                    .await,
                ),
            ),
            (
                "SelectPortfolio",
                code_of(
                    m.select_portfolio(with_key(
                        mpb::SelectPortfolioRequest { campaign_id: id.clone(), epsilon: 0.0 },
                        k,
                    )?)
                    .await,
                ),
            ),
            (
                "CreateOffers",
                code_of(
                    m.create_offers(with_key(
                        mpb::CreateOffersRequest { campaign_id: id.clone(), holdout_seed: 1 },
                        k,
                    )?)
                    .await,
                ),
            ),
            (
                "GetCampaignReport",
                code_of(
                    m.get_campaign_report(with_key(mpb::GetCampaignReportRequest { campaign_id: id.clone() }, k)?)
                        .await,
                ),
            ),
        ];
        for (rpc, code) in calls {
            ensure!(code == Some(Code::NotFound), "{rpc} of {id} with another brand's key: {code:?}, want NOT_FOUND");
        }
        let listed = m.list_campaigns(with_key(mpb::ListCampaignsRequest::default(), k)?).await?.into_inner();
        let listed: Vec<String> = listed.campaigns.into_iter().map(|c| c.id).collect();
        ensure!(!listed.contains(&id), "{id} is in the other brand's list {listed:?}");
        ensure!(listed.len() == 1, "the other brand lists {listed:?}, want only its own campaign");
        // The owner still sees it, unchanged by the denied calls.
        let mine = env.get(owner, &id).await?;
        ensure!(mine.state == state as i32, "{id} is in state {} after denied calls, want {state:?}", mine.state);
        let own_list = env.matching.list_campaigns(with_key(mpb::ListCampaignsRequest::default(), &owner.key)?).await?;
        ensure!(own_list.into_inner().campaigns.iter().any(|c| c.id == id), "{id} missing from its owner's list");
    }
    // The owner's report works where the other brand's was NOT_FOUND.
    env.report(&a, &ca.id).await?;

    // Unknown and missing keys, on every RPC.
    let unknown = lift_runtime::auth::new_secret();
    for key in [Some(unknown.as_str()), Some("not-a-key"), None] {
        let mut m = MatchingServiceClient::new(env.stack.channel_as(&env.stack.matching_url(), key)?);
        let id = ca.id.clone();
        let codes = [
            ("CreateCampaign", code_of(m.create_campaign(mpb::CreateCampaignRequest { spec: Some(mk("x")) }).await)),
            ("GetCampaign", code_of(m.get_campaign(mpb::GetCampaignRequest { campaign_id: id.clone() }).await)),
            ("ListCampaigns", code_of(m.list_campaigns(mpb::ListCampaignsRequest::default()).await)),
            (
                "MatchCampaign",
                code_of(
                    m.match_campaign(mpb::MatchCampaignRequest { campaign_id: id.clone(), ..Default::default() }).await,
                ),
            ),
            (
                "SelectPortfolio",
                code_of(
                    m.select_portfolio(mpb::SelectPortfolioRequest { campaign_id: id.clone(), epsilon: 0.0 }).await,
                ),
            ),
            (
                "CreateOffers",
                code_of(m.create_offers(mpb::CreateOffersRequest { campaign_id: id.clone(), holdout_seed: 1 }).await),
            ),
            (
                "GetCampaignReport",
                code_of(m.get_campaign_report(mpb::GetCampaignReportRequest { campaign_id: id }).await),
            ),
        ];
        for (rpc, code) in codes {
            ensure!(code == Some(Code::Unauthenticated), "{rpc} with key {key:?}: {code:?}, want UNAUTHENTICATED");
        }
    }
    let listed = env.matching.list_campaigns(with_key(mpb::ListCampaignsRequest::default(), &a.key)?).await?;
    ensure!(listed.into_inner().campaigns.len() == 1, "a refused CreateCampaign created a campaign");
    Ok(())
}

// ---------------------------------------------------------------------------
// 2. Criteria margins
// ---------------------------------------------------------------------------

/// One rule as the campaign states it.
#[derive(Debug, Clone, Copy)]
struct Rule {
    dimension: Dimension,
    threshold: f64,
    percentile: bool,
}

impl Rule {
    fn from_proto(c: &mpb::Criterion) -> anyhow::Result<Self> {
        let dimension = Dimension::from_proto(c.dimension).context("criterion dimension")?;
        Ok(match c.threshold {
            Some(mpb::criterion::Threshold::MinPercentile(p)) => Rule { dimension, threshold: p, percentile: true },
            Some(mpb::criterion::Threshold::MinValue(v)) => Rule { dimension, threshold: v, percentile: false },
            None => bail!("criterion without a threshold"),
        })
    }

    /// (observed, margin) for an account, from its GetScores answer.
    fn judge(&self, a: &spb::AccountScores) -> (f64, f64) {
        let s = a.scores.iter().find(|s| s.dimension == self.dimension.to_proto() as i32 && s.topic.is_empty());
        let observed = s.map_or(0.0, |s| if self.percentile { s.percentile } else { s.value });
        (observed, observed - self.threshold)
    }
}

/// What the campaign's rules say about every account, worked out from GetScores.
struct Verdicts {
    eligible: BTreeSet<String>,
    /// Accounts failing exactly one rule by at most the margin, with how far they miss.
    near: BTreeMap<String, f64>,
}

fn verdicts(
    rules: &[Rule],
    scores: &HashMap<String, spb::AccountScores>,
    excluded: &BTreeSet<String>,
    margin: f64,
) -> Verdicts {
    let mut v = Verdicts { eligible: BTreeSet::new(), near: BTreeMap::new() };
    for (id, a) in scores {
        if excluded.contains(id) {
            continue;
        }
        let failed: Vec<f64> = rules.iter().map(|r| r.judge(a).1).filter(|m| *m < 0.0).collect();
        match failed.as_slice() {
            [] => {
                v.eligible.insert(id.clone());
            }
            [m] if -m <= margin => {
                v.near.insert(id.clone(), -m);
            }
            _ => {}
        }
    }
    v
}

fn value_of(a: &spb::AccountScores, d: Dimension) -> f64 {
    a.scores.iter().find(|s| s.dimension == d.to_proto() as i32 && s.topic.is_empty()).map_or(0.0, |s| s.value)
}

/// Checks every criterion result of `cands` against GetScores: observed is the
/// account's percentile (or value, for absolute thresholds), margin is observed
/// minus threshold, passed is margin ≥ 0, and the rules are the campaign's.
fn check_results(
    cands: &[mpb::Candidate],
    rules: &[Rule],
    scores: &HashMap<String, spb::AccountScores>,
) -> anyhow::Result<()> {
    for c in cands {
        let id = id_of(c.account.as_ref());
        let a = scores.get(&id).with_context(|| format!("{id} has no scores"))?;
        ensure!(c.criteria.len() == rules.len(), "{id}: {} verdicts for {} rules", c.criteria.len(), rules.len());
        for (r, rule) in c.criteria.iter().zip(rules) {
            let got = Rule::from_proto(r.criterion.as_ref().context("verdict without its criterion")?)?;
            ensure!(
                got.dimension == rule.dimension
                    && got.percentile == rule.percentile
                    && (got.threshold - rule.threshold).abs() < 1e-9,
                "{id}: verdict for {got:?}, want {rule:?}"
            );
            let (observed, margin) = rule.judge(a);
            ensure!(
                (r.observed - observed).abs() < 1e-9 && (r.margin - margin).abs() < 1e-9 && r.passed == (margin >= 0.0),
                "{id} {rule:?}: reported observed {} margin {} passed {}, GetScores gives observed {observed} margin {margin}",
                r.observed,
                r.margin,
                r.passed
            );
        }
    }
    Ok(())
}

/// Each criterion's observed value and margin equal the account's percentile
/// (or value, for absolute thresholds) from GetScores; the eligible list is
/// exactly the accounts passing every rule, ranked by the objective; near
/// misses are exactly those failing one rule by at most the margin, closest first.
pub async fn criteria_margins(dbs: Databases) -> anyhow::Result<()> {
    on_stack!(dbs, criteria_margins_on)
}

async fn criteria_margins_on(env: &mut Env) -> anyhow::Result<()> {
    let w = varied_world();
    env.ingest_scored(w.events.clone()).await?;
    let all = w.accounts();
    let scores = env.scores(&all).await?;
    // An absolute network threshold between the two middle creators' values, so
    // that it splits the creators and equals no account's value.
    let mut net: Vec<f64> = w.creators.iter().map(|c| value_of(&scores[c], Dimension::Network)).collect();
    net.sort_by(f64::total_cmp);
    net.dedup();
    ensure!(net.len() >= 4, "creators' network values do not spread: {net:?}");
    let mid = net.len() / 2;
    let net_min = (net[mid - 1] + net[mid]) / 2.0;
    let margin = 12.0;
    let b = env.brand("Margins").await?;
    let mut s = spec(
        "margins",
        mpb::Objective::Engagement,
        vec![pct(Dimension::Reach, 85.0), pct(Dimension::Activity, 50.0), min_value(Dimension::Network, net_min)],
    );
    s.min_authenticity = 10.0;
    // The best-reaching creator is excluded: it must appear in neither list.
    let best = w.creators.last().cloned().context("no creators")?;
    s.excluded = vec![acct(&best)];
    let c = env.create(&b, s).await?;
    let m = env.matched(&b, &c.id, margin).await?;

    let rules: Vec<Rule> = c
        .spec
        .as_ref()
        .context("campaign without spec")?
        .criteria
        .iter()
        .map(Rule::from_proto)
        .chain([Ok(Rule { dimension: Dimension::Authenticity, threshold: 10.0, percentile: false })])
        .collect::<anyhow::Result<_>>()?;
    check_results(&m.eligible, &rules, &scores)?;
    check_results(&m.near_misses, &rules, &scores)?;

    let want = verdicts(&rules, &scores, &BTreeSet::from([best.clone()]), margin);
    ensure!(eligible_ids(&m) == want.eligible, "eligible {:?}, by hand {:?}", eligible_ids(&m), want.eligible);
    ensure!(
        !want.eligible.is_empty() && !want.near.is_empty(),
        "the scenario must have eligible accounts and near misses"
    );
    ensure!(!eligible_ids(&m).contains(&best), "an excluded account is eligible");
    let near: BTreeMap<String, f64> = m
        .near_misses
        .iter()
        .map(|c| {
            let miss = c.criteria.iter().filter(|r| !r.passed).map(|r| -r.margin).sum::<f64>();
            (id_of(c.account.as_ref()), miss)
        })
        .collect();
    ensure!(
        near.keys().eq(want.near.keys()),
        "near misses {:?}, by hand {:?}",
        near.keys().collect::<Vec<_>>(),
        want.near.keys().collect::<Vec<_>>()
    );
    for c in &m.near_misses {
        let failed: Vec<&mpb::CriterionResult> = c.criteria.iter().filter(|r| !r.passed).collect();
        ensure!(
            !c.eligible && failed.len() == 1 && failed[0].margin < 0.0 && -failed[0].margin <= margin,
            "near miss {:?} must fail exactly one criterion by at most {margin}: {failed:?}",
            c.account
        );
    }
    // Near misses come closest first.
    let misses: Vec<f64> = m.near_misses.iter().map(|c| near[&id_of(c.account.as_ref())]).collect();
    ensure!(misses.windows(2).all(|w| w[0] <= w[1]), "near misses are not closest first: {misses:?}");

    // Ranks: engagement orders by activity value, then reach value, then account id.
    let mut order: Vec<&String> = want.eligible.iter().collect();
    let key = |id: &String| (value_of(&scores[id], Dimension::Activity), value_of(&scores[id], Dimension::Reach));
    order.sort_by(|x, y| {
        let (kx, ky) = (key(x), key(y));
        ky.0.total_cmp(&kx.0).then(ky.1.total_cmp(&kx.1)).then(x.cmp(y))
    });
    let got: Vec<String> = m.eligible.iter().map(|c| id_of(c.account.as_ref())).collect();
    ensure!(got.iter().eq(order.iter().copied()), "ranked {got:?}, by hand {order:?}");
    for (i, c) in m.eligible.iter().enumerate() {
        ensure!(c.rank as usize == i + 1 && c.eligible, "{:?} rank {} at position {}", c.account, c.rank, i + 1);
        ensure!(
            (c.objective_score - key(&got[i]).0).abs() < 1e-9,
            "{:?}: objective score {}",
            c.account,
            c.objective_score
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. Holdout: random and recorded
// ---------------------------------------------------------------------------

/// CreateOffers draws the holdout with the seed it returns and records both;
/// the holdout is drawn from the eligible creators (a share of the portfolio
/// and of the rest), gets no link, and is disjoint from the offered creators;
/// the same seed on a campaign with the same portfolio reproduces it, another
/// seed draws another one, and seed 0 has the server choose and record one.
pub async fn holdout_random_and_recorded(dbs: Databases) -> anyhow::Result<()> {
    on_stack!(dbs, holdout_on)
}

async fn holdout_on(env: &mut Env) -> anyhow::Result<()> {
    // Ten creators with audiences of 14, ten with audiences of 3: a budget for
    // ten offers buys the ten big ones whatever the sampler's seed.
    let sizes: Vec<usize> = (0..20).map(|i| if i < 10 { 14 } else { 3 }).collect();
    let w = World::new(&sizes, |_| 0, |_| 2);
    env.ingest_scored(w.events.clone()).await?;
    let big: BTreeSet<String> = w.creators[..10].iter().cloned().collect();
    let brand = env.brand("Holdouts").await?;
    let share = 0.3;
    let mk = || mpb::CampaignSpec {
        budget: 10 * 1_500,
        holdout_share: share,
        ..spec("holdout", mpb::Objective::Reach, vec![pct(Dimension::Reach, 80.0)])
    };

    struct Drawn {
        id: String,
        seed: u64,
        holdout: BTreeSet<String>,
    }
    let mut drawn = Vec::new();
    for seed in [20_261_126u64, 20_261_126, 7, 0] {
        let c = env.create(&brand, mk()).await?;
        let eligible = eligible_ids(&env.matched(&brand, &c.id, 0.0).await?);
        ensure!(eligible == w.creators.iter().cloned().collect(), "eligible {eligible:?}, want exactly the creators");
        let portfolio: BTreeSet<String> =
            env.portfolio(&brand, &c.id).await?.members.iter().map(|m| id_of(m.account.as_ref())).collect();
        ensure!(portfolio == big, "portfolio {portfolio:?}, want the ten big creators");
        let o = env.offers(&brand, &c.id, seed).await?;
        ensure!(
            o.holdout_seed != 0 && (seed == 0 || o.holdout_seed == seed),
            "asked seed {seed}, drawn with {}",
            o.holdout_seed
        );

        let holdout = ids(&o.holdout);
        let offered: BTreeSet<String> =
            o.offers.iter().filter(|x| !x.holdout).map(|x| id_of(x.account.as_ref())).collect();
        let held_members: BTreeSet<String> =
            o.offers.iter().filter(|x| x.holdout).map(|x| id_of(x.account.as_ref())).collect();
        ensure!(o.offers.len() == 10, "{} offers for a portfolio of 10", o.offers.len());
        ensure!(ids(o.offers.iter().filter_map(|x| x.account.as_ref())) == portfolio, "offers are not the portfolio");
        ensure!(holdout.is_subset(&eligible), "holdout {holdout:?} is not drawn from the eligible creators");
        ensure!(holdout.is_disjoint(&offered), "held-out creators were offered: {:?}", holdout.intersection(&offered));
        // round(0.3 × 10) = 3 of the portfolio and 3 of the ten other eligible creators.
        ensure!(held_members.len() == 3 && held_members.is_subset(&holdout), "held-out members {held_members:?}");
        ensure!(holdout.difference(&portfolio).count() == 3, "holdout outside the portfolio: {holdout:?}");
        for x in &o.offers {
            ensure!(
                x.holdout == (x.link.is_empty() && x.code.is_empty()),
                "offer {:?}: holdout {} with link {:?} code {:?}",
                x.account,
                x.holdout,
                x.link,
                x.code
            );
        }
        let links: BTreeSet<&str> =
            o.offers.iter().filter(|x| !x.holdout).flat_map(|x| [x.link.as_str(), x.code.as_str()]).collect();
        ensure!(links.len() == 14, "7 offers need 14 distinct links and codes, got {}", links.len());
        // The recorded seed reproduces the draw from the eligible set and the portfolio.
        let eligible_refs: Vec<lift_domain::AccountId> =
            eligible.iter().map(|i| lift_domain::AccountId::new(NET, i.clone())).collect();
        let members: BTreeSet<lift_domain::AccountId> =
            portfolio.iter().map(|i| lift_domain::AccountId::new(NET, i.clone())).collect();
        let again = lift_domain::campaign::draw_holdout(&eligible_refs, &members, share, o.holdout_seed).all();
        ensure!(
            again.iter().map(|a| a.id.clone()).collect::<BTreeSet<_>>() == holdout,
            "seed {} does not reproduce the holdout",
            o.holdout_seed
        );

        // Recorded: the campaign's row keeps the seed and every offer its holdout flag.
        let row = lift_store::campaigns::get_campaign(&env.stack.matching_db, &brand.id, &c.id)
            .await?
            .context("campaign row")?;
        ensure!(
            row.holdout_seed == Some(o.holdout_seed),
            "recorded seed {:?}, drawn {}",
            row.holdout_seed,
            o.holdout_seed
        );
        let rows = lift_store::campaigns::offers(&env.stack.matching_db, &c.id).await?;
        let recorded: BTreeSet<String> = rows.iter().filter(|r| r.holdout).map(|r| r.account.id.clone()).collect();
        ensure!(recorded == holdout, "recorded holdout {recorded:?}, answered {holdout:?}");
        // The campaign is offered; the draw cannot be repeated.
        let again = env
            .matching
            .create_offers(with_key(
                mpb::CreateOffersRequest { campaign_id: c.id.clone(), holdout_seed: 99 },
                &brand.key,
            )?)
            .await;
        ensure!(code_of(again) == Some(Code::AlreadyExists), "a second CreateOffers was not refused");
        ensure!(env.get(&brand, &c.id).await?.state == mpb::CampaignState::Offered as i32, "campaign is not OFFERED");
        // The report compares the treated portfolio members with the held-out ones.
        let r = env.report(&brand, &c.id).await?;
        let l = r.lift.context("report without lift")?;
        ensure!(l.treated == 7 && l.holdout == 3, "lift groups {} treated / {} held out", l.treated, l.holdout);
        ensure!(
            ids(r.creators.iter().filter_map(|c| c.account.as_ref())) == offered,
            "report creators are not the offered ones"
        );
        drawn.push(Drawn { id: c.id, seed: o.holdout_seed, holdout });
    }
    ensure!(drawn[0].id != drawn[1].id, "two campaigns share an id");
    ensure!(
        drawn[0].holdout == drawn[1].holdout,
        "the same seed drew {:?} and {:?}",
        drawn[0].holdout,
        drawn[1].holdout
    );
    ensure!(
        drawn[0].holdout != drawn[2].holdout,
        "seeds {} and {} drew the same holdout",
        drawn[0].seed,
        drawn[2].seed
    );
    ensure!(
        drawn[3].seed != drawn[0].seed && drawn[3].seed != drawn[2].seed,
        "the server chose a seed given elsewhere"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 4. Report figures
// ---------------------------------------------------------------------------

/// A small scripted campaign — three offered creators, clicks (one visitor
/// twice, one visitor on two creators' links), sessions with and without a
/// link, bounced or not, orders inside and outside the one-hour attribution
/// window, with and without codes, a repeated order id and an order in another
/// currency — and every figure of its report against numbers worked out by hand.
pub async fn report_figures(dbs: Databases) -> anyhow::Result<()> {
    on_stack!(dbs, report_figures_on)
}

async fn report_figures_on(env: &mut Env) -> anyhow::Result<()> {
    let w = World::new(&[5, 5, 5], |_| 0, |_| 1);
    env.ingest_scored(w.events.clone()).await?;
    let brand = env.brand("Reports").await?;
    let s = mpb::CampaignSpec {
        budget: 3 * 1_500,
        ..spec("report", mpb::Objective::Reach, vec![pct(Dimension::Reach, 50.0)])
    };
    let c = env.create(&brand, s).await?;
    let o = env.offers(&brand, &c.id, 1).await?;
    ensure!(o.holdout.is_empty(), "a campaign without holdout share held out {:?}", o.holdout);
    let by: HashMap<String, &mpb::Offer> = o.offers.iter().map(|x| (id_of(x.account.as_ref()), x)).collect();
    ensure!(by.len() == 3, "offers went to {:?}, want the three creators", by.keys());
    let (la, ka) = (by["c00"].link.as_str(), by["c00"].code.as_str());
    let (lb, kb) = (by["c01"].link.as_str(), by["c01"].code.as_str());
    let t = T_OUT;
    let eur = |visitor, code, id, value| Order { visitor, code, order: id, value, currency: "EUR", customer: None };
    let events = vec![
        // Creator A (c00): v1 clicks twice, v2 once.
        click("k1", t, la, "v1"),
        session("s1", t + 5, la, "v1", false),
        click("k2", t + 60, la, "v1"),
        session("s2", t + 70, "", "v1", true), // no link: credited through v1's click on A
        click("k3", t + 100, la, "v2"),
        session("s3", t + 105, la, "v2", true),
        click("k-unknown", t + 110, "lift.to/not-registered", "v9"), // not the campaign's
        order("o1", t + 600, eur("v1", "", "order-1", 5_000)),       // 540 s after v1's click: A
        order("o1-again", t + 650, eur("v1", "", "order-1", 5_000)), // same order id: once
        order("o5", t + 700, Order { currency: "USD", ..eur("v1", "", "order-5", 9_999) }), // counts, no EUR value
        order("o3", t + 800, eur("v3", ka, "order-3", 2_000)),       // A's code, no click: leak
        order("o4", t + 4_100, eur("v2", ka, "order-4", 1_000)),     // v2's click expired: code only, leak
        order("o2", t + 7_300, eur("v2", "", "order-2", 3_000)),     // outside the window, no code: nobody
        // Creator B (c01): v4, and v1 later.
        click("k4", t + 900, lb, "v4"),
        session("s4", t + 905, lb, "v4", true),
        order("o6", t + 1_000, eur("v4", "", "order-6", 4_000)),
        click("k5", t + 2_000, lb, "v1"),
        order("o7", t + 2_100, eur("v1", kb, "order-7", 2_500)), // v1's last click is B's
    ];
    env.ingest_all(events).await?;
    let r = env.report(&brand, &c.id).await?;

    // By hand (unit cost 1,500 per offer):
    // A: clicks 3 (v1, v1, v2), visitors {v1, v2}, sessions s1, s2, s3 of which 2 bounced;
    //    orders 1, 5, 3, 4 → 4 conversions, value 5,000 + 0 + 2,000 + 1,000, 2 by code
    //    only; cost per conversion 1,500 / 4 = 375.
    // B: clicks 2 (v4, v1), visitors {v4, v1}, session s4 bounced; orders 6, 7 → 2,
    //    value 6,500, no leak; 1,500 / 2 = 750.
    // C: nothing; cost per conversion 0.
    // Total: clicks 5, visitors {v1, v2, v4}, sessions 4 (3 bounced), 6 conversions,
    //    value 14,500, 2 leaks; 4,500 / 6 = 750.
    let totals = |clicks, visitors, sessions, bounce_rate, conversions, value, cpc, leaks| mpb::OutcomeTotals {
        clicks,
        unique_visitors: visitors,
        sessions,
        bounce_rate,
        conversions,
        value_minor: value,
        cost_per_conversion: cpc,
        code_without_click: leaks,
    };
    let want: BTreeMap<&str, mpb::OutcomeTotals> = BTreeMap::from([
        ("c00", totals(3, 2, 3, 2.0 / 3.0, 4, 8_000, 375, 2)),
        ("c01", totals(2, 2, 1, 1.0, 2, 6_500, 750, 0)),
        ("c02", totals(0, 0, 0, 0.0, 0, 0, 0, 0)),
    ]);
    let same = |a: &mpb::OutcomeTotals, b: &mpb::OutcomeTotals| {
        (a.bounce_rate - b.bounce_rate).abs() < 1e-12 && mpb::OutcomeTotals { bounce_rate: b.bounce_rate, ..*a } == *b
    };
    ensure!(r.creators.len() == 3, "{} creators in the report", r.creators.len());
    for cr in &r.creators {
        let id = id_of(cr.account.as_ref());
        let got = cr.totals.as_ref().context("creator without totals")?;
        let w = want.get(id.as_str()).with_context(|| format!("unexpected creator {id}"))?;
        ensure!(same(got, w), "{id}: reported {got:?}, by hand {w:?}");
        ensure!(
            cr.link == by[&id].link && cr.handle == format!("@{id}"),
            "{id}: link {:?} handle {:?}",
            cr.link,
            cr.handle
        );
    }
    let got = r.totals.as_ref().context("report without totals")?;
    let w = totals(5, 3, 4, 0.75, 6, 14_500, 750, 2);
    ensure!(same(got, &w), "totals {got:?}, by hand {w:?}");
    let l = r.lift.as_ref().context("report without lift")?;
    ensure!(
        l.treated == 3 && l.holdout == 0 && l.confidence == 0.0 && l.incremental_per_creator == 0.0,
        "without a holdout there is no interval: {l:?}"
    );
    let head = env.ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?.into_inner().head_offset;
    ensure!(r.as_of_offset == head, "report as of {} with the ledger at {head}", r.as_of_offset);
    Ok(())
}

// ---------------------------------------------------------------------------
// 5. Lift with a known true effect
// ---------------------------------------------------------------------------

/// Audience members of a treated creator order with this probability...
const P_TREATED: f64 = 0.35;
/// ...and those of a held-out creator with this one.
const P_HELD: f64 = 0.10;
const AUDIENCE: usize = 30;
const SIM_SEED: u64 = 0x5eed_11f7;

fn uniform(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Forty identical creators with audiences of 30, half held out at random.
/// Audience members of treated creators order with probability 0.35 (after a
/// click on the creator's link), those of held-out creators with 0.10 (on their
/// own), so the true effect is 30 × 0.25 = 7.5 orders per creator. The
/// reported estimate must equal the difference of means of the simulated
/// counts, its interval must contain 7.5 and exclude 0. Everything is seeded
/// (holdout and simulation), so the outcome is the same on every run; a 90 %
/// interval misses the truth for about one simulation in ten, so another
/// seed can legitimately fail the coverage check.
pub async fn lift_on_simulated_campaign(dbs: Databases) -> anyhow::Result<()> {
    on_stack!(dbs, lift_on)
}

async fn lift_on(env: &mut Env) -> anyhow::Result<()> {
    let w = World::new(&[AUDIENCE; 40], |_| 0, |_| 3);
    env.ingest_scored(w.events.clone()).await?;
    let brand = env.brand("Lift").await?;
    let s = mpb::CampaignSpec {
        budget: 40 * 1_500,
        holdout_share: 0.5,
        attribution_window_secs: 86_400,
        ..spec("lift", mpb::Objective::Reach, vec![pct(Dimension::Reach, 90.0)])
    };
    let c = env.create(&brand, s).await?;
    let p = env.portfolio(&brand, &c.id).await?;
    ensure!(p.members.len() == 40, "portfolio of {} creators, want all 40", p.members.len());
    let o = env.offers(&brand, &c.id, 20_261_126).await?;

    let mut events = Vec::new();
    let (mut treated, mut held) = (Vec::new(), Vec::new());
    let mut offers: Vec<&mpb::Offer> = o.offers.iter().collect();
    offers.sort_by_key(|x| id_of(x.account.as_ref()));
    let mut rng = SplitMix64::new(SIM_SEED);
    for (i, x) in offers.iter().enumerate() {
        let creator = id_of(x.account.as_ref());
        let members = w.audience.get(&creator).with_context(|| format!("{creator} is not a creator"))?;
        let prob = if x.holdout { P_HELD } else { P_TREATED };
        let mut orders = 0u32;
        for (j, m) in members.iter().enumerate() {
            if uniform(&mut rng) >= prob {
                continue;
            }
            orders += 1;
            let at = T_OUT + (i * 1_000 + j * 20) as i64;
            let visitor = format!("v-{m}");
            if !x.holdout {
                events.push(click(&format!("lk-{m}"), at, &x.link, &visitor));
            }
            let id = format!("lo-{m}");
            events.push(order(
                &id,
                at + 10,
                Order { visitor: &visitor, code: "", order: &id, value: 2_500, currency: "EUR", customer: Some(m) },
            ));
        }
        if x.holdout { held.push(f64::from(orders)) } else { treated.push(f64::from(orders)) }
    }
    ensure!(treated.len() == 20 && held.len() == 20, "{} treated, {} held out", treated.len(), held.len());
    env.ingest_all(events).await?;
    let r = env.report(&brand, &c.id).await?;
    let l = r.lift.context("report without lift")?;

    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let by_hand = mean(&treated) - mean(&held);
    let truth = AUDIENCE as f64 * (P_TREATED - P_HELD);
    eprintln!(
        "lift: estimate {:.3} [{:.3}, {:.3}] at {}; by hand {by_hand:.3}; true effect {truth}",
        l.incremental_per_creator, l.lower, l.upper, l.confidence
    );
    ensure!(l.treated == 20 && l.holdout == 20 && (l.confidence - 0.9).abs() < 1e-12, "lift groups: {l:?}");
    ensure!(
        (l.incremental_per_creator - by_hand).abs() < 1e-9,
        "estimate {}, by hand {by_hand}",
        l.incremental_per_creator
    );
    ensure!(l.lower <= truth && truth <= l.upper, "true effect {truth} outside [{}, {}]", l.lower, l.upper);
    ensure!(l.lower > 0.0, "the interval [{}, {}] does not detect a 7.5-order effect", l.lower, l.upper);
    ensure!(
        (l.incremental_per_creator - truth).abs() < 2.0,
        "estimate {} is far from {truth}",
        l.incremental_per_creator
    );
    // Every treated order came through a click on the campaign's link.
    let total: f64 = treated.iter().sum();
    let t = r.totals.context("report without totals")?;
    ensure!(t.conversions as f64 == total && t.clicks as f64 == total, "totals {t:?} for {total} treated orders");
    Ok(())
}

// ---------------------------------------------------------------------------
// 6. Churn after a model change
// ---------------------------------------------------------------------------

/// Linear interpolation through `(x, y)` points (sorted here by x), clamped at the
/// ends; where several points share an x, the first segment holding x answers.
fn through(points: &[(f64, f64)], x: f64) -> anyhow::Result<f64> {
    let mut pts = points.to_vec();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (first, last) = (pts.first().context("no points")?, pts.last().context("no points")?);
    if x <= first.0 {
        return Ok(first.1);
    }
    if x >= last.0 {
        return Ok(last.1);
    }
    let w = pts.windows(2).find(|w| w[0].0 <= x && x <= w[1].0).context("no segment holds x")?;
    let ((x0, y0), (x1, y1)) = (w[0], w[1]);
    Ok(if x1 == x0 { y0.max(y1) } else { y0 + (y1 - y0) * (x - x0) / (x1 - x0) })
}

/// Restarts scoring with `params` and waits until it has published a run of
/// their version over at least the ledger `prev` covered.
async fn restart_scoring(
    env: &mut Env,
    params: lift_scoring::engine::ModelParams,
    prev: &spb::GetModelResponse,
) -> anyhow::Result<spb::GetModelResponse> {
    let version = params.version();
    ensure!(version != prev.model_version, "the changed parameters kept the version");
    env.stack.restart_scoring(scoring_config(params)).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(m) = env.scoring.get_model(spb::GetModelRequest {}).await {
            let m = m.into_inner();
            if m.model_version == version && m.latest_run_id > prev.latest_run_id && m.as_of_offset >= prev.as_of_offset
            {
                return Ok(m);
            }
        }
        if Instant::now() > deadline {
            bail!("scoring did not publish a run of {version} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A campaign evaluated under one model; scoring restarts on the same database
/// with other parameters (a new model version) and rescores; the next
/// MatchCampaign records the churn from the old version to the new one with
/// entered/left/stayed counts equal to the differences of the eligible sets
/// before and after, and the absolute activity threshold moved through
/// GetModel's old→new mapping — and eligibility under the new model is what
/// GetScores gives with the translated threshold.
pub async fn churn_after_model_change(dbs: Databases) -> anyhow::Result<()> {
    on_stack!(dbs, churn_on)
}

async fn churn_on(env: &mut Env) -> anyhow::Result<()> {
    let w = varied_world();
    let old = env.ingest_scored(w.events.clone()).await?;
    let all = w.accounts();
    let scores = env.scores(&all).await?;
    // An absolute activity threshold strictly between two creators' values.
    let mut act: Vec<f64> = w.creators.iter().map(|c| value_of(&scores[c], Dimension::Activity)).collect();
    act.sort_by(f64::total_cmp);
    act.dedup();
    ensure!(act.len() >= 4, "creators' activity values do not spread: {act:?}");
    let act_min = (act[act.len() / 3] + act[act.len() / 3 + 1]) / 2.0;
    let brand = env.brand("Churn").await?;
    let s = spec(
        "churn",
        mpb::Objective::Reach,
        vec![pct(Dimension::Reach, 95.0), min_value(Dimension::Activity, act_min)],
    );
    let c = env.create(&brand, s).await?;
    let before = env.matched(&brand, &c.id, 0.0).await?;
    ensure!(
        before.model_version == old.model_version,
        "matched under {}, scoring runs {}",
        before.model_version,
        old.model_version
    );
    let rules_before = [
        Rule { dimension: Dimension::Reach, threshold: 95.0, percentile: true },
        Rule { dimension: Dimension::Activity, threshold: act_min, percentile: false },
    ];
    let before_set = eligible_ids(&before);
    ensure!(
        before_set == verdicts(&rules_before, &scores, &BTreeSet::new(), 0.0).eligible,
        "eligibility before the change"
    );
    ensure!(env.get(&brand, &c.id).await?.churn.is_empty(), "churn recorded before any model change");

    // A new model: followers count ten times more toward reach, activity saturates later.
    let params =
        lift_scoring::engine::ModelParams { reach_followers_weight: 3.0, activity_scale: 5.0, ..Default::default() };
    let new_version = params.version();
    let model = restart_scoring(env, params, &old).await?;
    let mapping = model
        .recalibrations
        .iter()
        .find(|m| m.dimension == Dimension::Activity.to_proto() as i32)
        .context("GetModel publishes no activity mapping")?;
    ensure!(
        mapping.from_version == old.model_version && mapping.to_version == new_version,
        "mapping {} → {}",
        mapping.from_version,
        mapping.to_version
    );
    // By hand: the old value's quantile under the old model, then the new model's value there.
    let q = through(&mapping.old_quantiles.iter().map(|p| (p.value, p.quantile)).collect::<Vec<_>>(), act_min)?;
    let translated = through(&mapping.new_quantiles.iter().map(|p| (p.quantile, p.value)).collect::<Vec<_>>(), q)?;
    ensure!((translated - act_min).abs() > 1e-6, "the new model left activity {act_min} where it was");

    let after = env.matched(&brand, &c.id, 0.0).await?;
    ensure!(after.model_version == new_version, "matched under {} after the change", after.model_version);
    let new_scores = env.scores(&all).await?;
    let rules_after = [rules_before[0], Rule { threshold: translated, ..rules_before[1] }];
    check_results(&after.eligible, &rules_after, &new_scores)?;
    let after_set = eligible_ids(&after);
    ensure!(
        after_set == verdicts(&rules_after, &new_scores, &BTreeSet::new(), 0.0).eligible,
        "eligibility after the change is not what GetScores gives with the translated threshold"
    );

    let got = env.get(&brand, &c.id).await?;
    ensure!(got.model_version == new_version, "campaign evaluated under {}", got.model_version);
    let [ch] = got.churn.as_slice() else { bail!("churn records: {:?}", got.churn) };
    let entered = after_set.difference(&before_set).count() as u64;
    let left = before_set.difference(&after_set).count() as u64;
    let stayed = before_set.intersection(&after_set).count() as u64;
    eprintln!("churn {} → {}: entered {entered}, left {left}, stayed {stayed}", ch.from_version, ch.to_version);
    ensure!(
        ch.from_version == old.model_version && ch.to_version == new_version,
        "churn {} → {}",
        ch.from_version,
        ch.to_version
    );
    ensure!(
        (ch.entered, ch.left, ch.stayed) == (entered, left, stayed),
        "churn entered/left/stayed {}/{}/{}, by the sets {entered}/{left}/{stayed}",
        ch.entered,
        ch.left,
        ch.stayed
    );
    ensure!(entered + left > 0, "the model change moved nobody: the scenario does not exercise churn");
    let [t] = ch.translated.as_slice() else { bail!("translated thresholds: {:?}", ch.translated) };
    let t = Rule::from_proto(t)?;
    ensure!(
        t.dimension == Dimension::Activity && !t.percentile && (t.threshold - translated).abs() < 1e-9,
        "translated {t:?}, by hand activity ≥ {translated}"
    );
    // The stated spec keeps the brand's own numbers.
    let stated = got.spec.context("campaign without spec")?;
    ensure!(Rule::from_proto(&stated.criteria[1])?.threshold == act_min, "the spec's threshold was overwritten");
    // Evaluating again under the same model records nothing new.
    env.matched(&brand, &c.id, 0.0).await?;
    ensure!(env.get(&brand, &c.id).await?.churn.len() == 1, "a second evaluation under the same model added churn");

    // Two more models while the campaign is not looked at: scoring publishes the
    // mapping from the third to the fourth only, so there is none from the
    // campaign's model (the second). The threshold in force stays where the
    // last translation put it, on every later evaluation.
    let third = lift_scoring::engine::ModelParams { activity_scale: 8.0, ..Default::default() };
    let third = restart_scoring(env, third, &model).await?;
    let fourth = lift_scoring::engine::ModelParams { activity_scale: 3.0, ..Default::default() };
    let fourth = restart_scoring(env, fourth, &third).await?;
    ensure!(
        !fourth.recalibrations.iter().any(|m| m.from_version == new_version),
        "scoring unexpectedly published a mapping from {new_version}"
    );
    let before_set = after_set;
    let rules_kept = [rules_before[0], Rule { threshold: translated, ..rules_before[1] }];
    let mut sets = Vec::new();
    for call in 0..2 {
        let m = env.matched(&brand, &c.id, 0.0).await?;
        ensure!(m.model_version == fourth.model_version, "matched under {}", m.model_version);
        let latest = env.scores(&all).await?;
        check_results(&m.eligible, &rules_kept, &latest)
            .with_context(|| format!("evaluation {call} under the fourth model"))?;
        let set = eligible_ids(&m);
        ensure!(!set.is_empty(), "evaluation {call} under the fourth model: nobody eligible");
        ensure!(
            set == verdicts(&rules_kept, &latest, &BTreeSet::new(), 0.0).eligible,
            "evaluation {call} under the fourth model: eligibility is not what the kept threshold gives"
        );
        sets.push(set);
    }
    let got = env.get(&brand, &c.id).await?;
    let [_, ch] = got.churn.as_slice() else { bail!("churn records: {:?}", got.churn) };
    ensure!(
        ch.from_version == new_version && ch.to_version == fourth.model_version && ch.translated.is_empty(),
        "second churn record {ch:?}"
    );
    let after_set = &sets[0];
    let counts = (
        after_set.difference(&before_set).count() as u64,
        before_set.difference(after_set).count() as u64,
        before_set.intersection(after_set).count() as u64,
    );
    ensure!((ch.entered, ch.left, ch.stayed) == counts, "second churn {ch:?}, by the sets {counts:?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// For the collector's tests: a campaign with offers issued, outcomes to come
// ---------------------------------------------------------------------------

/// A fresh stack with three scored creators (`c00`, `c01`, `c02`, audiences of five), a
/// brand and a campaign whose offers are issued with `landing_url`: tests drive the
/// outcomes through the collector and read the report.
#[derive(Debug)]
pub struct OfferedCampaign {
    pub stack: Stack,
    pub ingest: IngestServiceClient<Channel>,
    pub matching: MatchingServiceClient<Channel>,
    pub brand_id: String,
    pub brand_key: String,
    pub campaign_id: String,
    pub offers: Vec<mpb::Offer>,
}

pub async fn offered_campaign(dbs: &Databases, landing_url: &str) -> anyhow::Result<OfferedCampaign> {
    let mut env = Env::start(dbs).await?;
    let w = World::new(&[5, 5, 5], |_| 0, |_| 1);
    env.ingest_scored(w.events.clone()).await?;
    let brand = env.brand("Collected").await?;
    let s = mpb::CampaignSpec {
        budget: 3 * 1_500,
        landing_url: landing_url.into(),
        ..spec("collected", mpb::Objective::Reach, vec![pct(Dimension::Reach, 50.0)])
    };
    let c = env.create(&brand, s).await?;
    let o = env.offers(&brand, &c.id, 1).await?;
    ensure!(o.offers.len() == 3 && o.holdout.is_empty(), "offers {:?}, holdout {:?}", o.offers, o.holdout);
    Ok(OfferedCampaign {
        stack: env.stack,
        ingest: env.ingest,
        matching: env.matching,
        brand_id: brand.id,
        brand_key: brand.key,
        campaign_id: c.id,
        offers: o.offers,
    })
}

impl OfferedCampaign {
    /// The offer to creator `id`.
    pub fn offer(&self, id: &str) -> anyhow::Result<&mpb::Offer> {
        self.offers.iter().find(|o| id_of(o.account.as_ref()) == id).with_context(|| format!("no offer to {id}"))
    }

    pub async fn report(&mut self) -> anyhow::Result<mpb::GetCampaignReportResponse> {
        Ok(self
            .matching
            .get_campaign_report(with_key(
                mpb::GetCampaignReportRequest { campaign_id: self.campaign_id.clone() },
                &self.brand_key,
            )?)
            .await?
            .into_inner())
    }
}
