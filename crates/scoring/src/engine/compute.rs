//! `compute`: a `State` and a model become a `Snapshot` of every account's five
//! dimensions.
//!
//! What each value means (all are 0–100 on a grid of 1/1024, and all use the
//! events of the window `(as_of − window_days, as_of]`, each weighted by
//! `0.5^(age / half_life)` and, when it is engagement, by the authenticity
//! weight of the account that gave it — flagged engagement is down-weighted to
//! at least `min_authenticity_weight`, never dropped):
//!
//! - **activity** = `saturate(ln(1 + R/(P + post_prior)) + own·ln(1 + a·(P + G)), activity_scale)`
//!   where `R` is the kind-weighted responses received, `P` the posts, `G` the
//!   engagements given, `a` the account's own authenticity weight. Responses
//!   *per post* dominate: 100 reposts from 10 posts beat 100 from 1,000.
//! - **reach** = `saturate(f·ln(1 + followers) + e·ln(1 + E) + h·ln(1 + H), reach_scale)`
//!   with `followers` the larger of reported and observed followers (reported
//!   counts are unverified, hence the small weight), `E` the authenticity-weighted
//!   number of distinct engagers, and `H` the two-hop unique reach of reposts
//!   (distinct accounts that engage with or follow the account's reposters).
//! - **network** = `100·(1 − (1 + x)^(−1/network_scale))` where `x` is the
//!   account's weighted PageRank times the population size (1 = average) on the
//!   graph of engagement (actor → target, kind weight × decay) and follows; a
//!   low-authenticity account passes on only its weight's share of its rank
//!   (the rest teleports), so its votes count less.
//! - **action** = `(1 − w)·saturate(θ_c, action_rate_scale) + w·saturate(θ_e, action_engaged_scale)`
//!   where `θ_c` is the posterior mean conversion rate per attributed click and
//!   `θ_e` the posterior mean rate of engaged (non-bounce) sessions per click,
//!   each under its own Beta prior fitted to the population (empirical Bayes)
//!   and each with its own 90 % credible interval; `w = action_engaged_weight`
//!   when the population has any session tracking, else 0. `lower`/`upper` map
//!   the two intervals' ends the same way (the value is monotone in both rates,
//!   so the combined interval is conservative). Below `action_min_clicks`
//!   clicks the evidence is *insufficient*; with no attributed click, session
//!   or conversion at all there is *no evidence*: value, interval and
//!   percentile are 0 and the state says so — the prior is never shown as a score.
//! - **authenticity** = `100·Π(1 − severity)` over the account's gaming flags.
//!
//! Percentile = share (0–100) of the population with a value at or below the
//! account's (see `stats::percentiles`). For *action* the population is the
//! accounts with sufficient evidence: an account with insufficient evidence is
//! placed against them by its point estimate, one with no evidence is at 0.

use std::collections::HashMap;

use lift_domain::event::EngagementKind;
use lift_domain::{Dimension, Micros};
use rayon::prelude::*;

use super::authenticity::{self, Authenticity, Flag};
use super::graph::{Csr, PageRankGraph, PageRankOptions, pagerank};
use super::network;
use super::params::ModelParams;
use super::seeds::InfluenceGraph;
use super::state::{NONE, Node, OutcomeKind, State};
use super::stats::{beta_summary, grid_order_desc, grid_percentiles, percentile_in, percentiles, quantize, saturate};

/// The ledger position a snapshot is computed as of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AsOf {
    pub offset: u64,
    pub time: Micros,
}

impl AsOf {
    /// The as-of of a state: its last offset and latest occurrence time, so the
    /// result depends on the ledger prefix only, never on the wall clock.
    pub fn of(state: &State) -> Self {
        Self { offset: state.offset, time: state.max_time }
    }
}

/// Inputs that let a caller hold parts of the computation fixed.
#[derive(Debug, Clone, Copy, Default)]
pub struct ComputeOptions<'a> {
    /// Previous PageRank vector (ids are stable across a growing state).
    pub warm_start: Option<&'a [f64]>,
    /// Authenticity values (0–100 per node) to use instead of assessing them;
    /// nodes beyond the slice count as 100. Explanations use this to separate
    /// reclassification from new events.
    pub authenticity: Option<&'a [f64]>,
}

/// The action estimate beyond its value.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ActionEstimate {
    /// The action value's credible interval (0–100).
    pub lower: f64,
    pub upper: f64,
    /// At least `action_min_clicks` attributed clicks in the window.
    pub sufficient: bool,
    /// Any attributed click, session or conversion in the window; without one
    /// the account has *no evidence* and value, interval and percentile are 0.
    pub observed: bool,
    /// Conversion rate per click (0–1): posterior mean and credible interval.
    pub conversion: RateEstimate,
    /// Engaged (non-bounce) sessions per click (0–1): posterior mean and credible interval.
    pub engaged: RateEstimate,
}

/// A rate's posterior mean and central credible interval, 0–1.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RateEstimate {
    pub mean: f64,
    pub lower: f64,
    pub upper: f64,
}

impl ActionEstimate {
    /// The key *action* is ranked by: the interval's lower bound, with every
    /// account that has sufficient evidence ahead of every account that has
    /// not, and accounts with no evidence last. A few lucky clicks never outrank
    /// a proven rate.
    pub fn rank_key(&self) -> f64 {
        match (self.sufficient, self.observed) {
            (true, _) => self.lower,
            (false, true) => self.lower - 1000.0,
            (false, false) => -2000.0,
        }
    }
}

/// The raw metrics behind an account's values.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RawMetrics {
    pub posts: f32,
    pub engagements_given: f32,
    pub responses: f32,
    pub responses_per_post: f32,
    pub reported_followers: f32,
    pub observed_followers: f32,
    pub distinct_engagers: f32,
    pub weighted_engagers: f32,
    pub two_hop_reach: f32,
    pub pagerank: f32,
    pub relative_pagerank: f32,
    pub clicks: f32,
    pub sessions: f32,
    pub non_bounced: f32,
    pub conversions: f32,
    pub code_conversions: f32,
    pub conversion_value_minor: f32,
    pub conversion_rate: f32,
    pub non_bounce_rate: f32,
    pub non_bounce_lower: f32,
    pub non_bounce_upper: f32,
    pub engaged_rate: f32,
    pub engaged_lower: f32,
    pub engaged_upper: f32,
    pub conversion_lower: f32,
    pub conversion_upper: f32,
    pub authenticity_weight: f32,
    pub suspicious_share: f32,
    pub flags: f32,
}

impl RawMetrics {
    /// The metrics that explain one dimension, by name.
    pub fn for_dimension(&self, d: Dimension) -> Vec<(&'static str, f64)> {
        let f = |x: f32| f64::from(x);
        match d {
            Dimension::Activity => vec![
                ("posts", f(self.posts)),
                ("engagements_given", f(self.engagements_given)),
                ("responses", f(self.responses)),
                ("responses_per_post", f(self.responses_per_post)),
            ],
            Dimension::Reach => vec![
                ("reported_followers", f(self.reported_followers)),
                ("observed_followers", f(self.observed_followers)),
                ("distinct_engagers", f(self.distinct_engagers)),
                ("weighted_engagers", f(self.weighted_engagers)),
                ("two_hop_reach", f(self.two_hop_reach)),
            ],
            Dimension::Network => {
                vec![("pagerank", f(self.pagerank)), ("relative_pagerank", f(self.relative_pagerank))]
            }
            Dimension::Action => vec![
                ("clicks", f(self.clicks)),
                ("sessions", f(self.sessions)),
                ("non_bounced", f(self.non_bounced)),
                ("conversions", f(self.conversions)),
                ("code_conversions_without_click", f(self.code_conversions)),
                ("conversion_value_minor", f(self.conversion_value_minor)),
                ("conversion_rate", f(self.conversion_rate)),
                ("conversion_rate_lower", f(self.conversion_lower)),
                ("conversion_rate_upper", f(self.conversion_upper)),
                ("engaged_rate", f(self.engaged_rate)),
                ("engaged_rate_lower", f(self.engaged_lower)),
                ("engaged_rate_upper", f(self.engaged_upper)),
                ("non_bounce_rate", f(self.non_bounce_rate)),
                ("non_bounce_lower", f(self.non_bounce_lower)),
                ("non_bounce_upper", f(self.non_bounce_upper)),
            ],
            Dimension::Authenticity => vec![
                ("flags", f(self.flags)),
                ("engagement_weight", f(self.authenticity_weight)),
                ("suspicious_engager_share", f(self.suspicious_share)),
            ],
        }
    }
}

/// Dimensions that have per-topic variants.
pub const TOPIC_DIMENSIONS: [Dimension; 2] = [Dimension::Activity, Dimension::Network];

/// Scores of one topic's population (accounts that posted in it or drew engagement on such posts).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TopicScores {
    pub name: String,
    /// Sorted node ids.
    pub members: Vec<Node>,
    /// Per `TOPIC_DIMENSIONS`, aligned with `members`.
    pub values: [Vec<f64>; 2],
    pub percentiles: [Vec<f64>; 2],
    /// Per `TOPIC_DIMENSIONS`: indexes into `members`, by value descending.
    pub order: [Vec<u32>; 2],
}

impl TopicScores {
    pub fn position(&self, n: Node) -> Option<usize> {
        self.members.binary_search(&n).ok()
    }

    pub fn dim_index(d: Dimension) -> Option<usize> {
        TOPIC_DIMENSIONS.iter().position(|x| *x == d)
    }
}

/// Work done by one computation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ComputeStats {
    pub edges: usize,
    pub pagerank_iterations: u32,
    pub graph_bytes: usize,
    pub millis: u64,
    /// Where the time went, in milliseconds.
    pub phases: Phases,
}

/// A computation's phases, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Phases {
    /// The gaming detectors over the population.
    pub authenticity: f64,
    /// Activity, reach and action (incremental or not), with their raw metrics.
    pub dimensions: f64,
    /// The network graph's build and PageRank.
    pub network: f64,
    /// Per-topic activity and topic-sensitive PageRank.
    pub topics: f64,
    /// Percentiles, orders and distributions of the five columns.
    pub columns: f64,
}

/// Milliseconds since the last lap.
pub(super) struct Laps(std::time::Instant);

impl Laps {
    pub(super) fn start() -> Self {
        Self(std::time::Instant::now())
    }

    pub(super) fn lap(&mut self) -> f64 {
        let now = std::time::Instant::now();
        let ms = (now - self.0).as_secs_f64() * 1e3;
        self.0 = now;
        ms
    }
}

/// Every account's scores as of one ledger position under one model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub model_version: String,
    pub as_of: AsOf,
    /// Accounts scored: node ids `0..n`.
    pub n: usize,
    /// Per dimension (`Dimension::index`), per node.
    pub values: [Vec<f64>; 5],
    pub percentiles: [Vec<f64>; 5],
    /// Per dimension: node ids by value descending, ties by id.
    pub order: [Vec<u32>; 5],
    /// Node ids by the action interval's lower bound descending, ties by id:
    /// the order `QueryAccounts` ranks *action* in, so an account whose few
    /// clicks leave it near the prior cannot outrank one the evidence supports.
    pub action_rank: Vec<u32>,
    /// Per dimension: published quantiles (level, value).
    pub distributions: [Vec<(f64, f64)>; 5],
    pub action: Vec<ActionEstimate>,
    /// Prior Beta(α, β) on the conversion rate, fitted to this population.
    pub action_prior: (f64, f64),
    pub raw: Vec<RawMetrics>,
    pub flags: Vec<Flag>,
    /// (node, index into `flags`), sorted.
    pub flags_by_account: Vec<(Node, u32)>,
    pub topics: Vec<TopicScores>,
    /// PageRank vector, kept for the next warm start.
    pub pagerank: Vec<f64>,
    /// Independent-cascade edge probabilities for seed selection.
    pub influence: InfluenceGraph,
    pub stats: ComputeStats,
}

impl Snapshot {
    pub fn value(&self, d: Dimension, n: Node) -> Option<f64> {
        self.values[d.index()].get(n as usize).copied()
    }

    pub fn flags_of(&self, n: Node) -> impl Iterator<Item = &Flag> {
        let start = self.flags_by_account.partition_point(|(a, _)| *a < n);
        self.flags_by_account[start..]
            .iter()
            .take_while(move |(a, _)| *a == n)
            .filter_map(|(_, i)| self.flags.get(*i as usize))
    }

    pub fn topic(&self, name: &str) -> Option<&TopicScores> {
        self.topics.iter().find(|t| t.name == name)
    }
}

pub(super) fn kind_weight(p: &ModelParams, k: EngagementKind) -> f64 {
    let w = &p.kind_weights;
    match k {
        EngagementKind::Repost => w.repost,
        EngagementKind::Quote => w.quote,
        EngagementKind::Reply => w.reply,
        EngagementKind::Like => w.like,
        EngagementKind::Mention => w.mention,
    }
}

/// Computes every account's scores with the state's own as-of position.
pub fn compute(state: &State, params: &ModelParams) -> Snapshot {
    compute_with(state, params, AsOf::of(state), ComputeOptions::default())
}

/// Computes every account's scores as of `as_of` (its time drives the window and decay).
pub fn compute_with(state: &State, p: &ModelParams, as_of: AsOf, opts: ComputeOptions<'_>) -> Snapshot {
    let started = std::time::Instant::now();
    let n = state.len();
    let now = as_of.time;
    let window_start = now.saturating_sub(p.window_micros());
    let in_window = |at: Micros| at > window_start && at <= now;
    let hl = p.half_life_micros();
    let decay = |at: Micros| if hl > 0.0 { 0.5f64.powf((now - at).max(0) as f64 / hl) } else { 1.0 };

    let mut laps = Laps::start();
    let mut phases = Phases::default();
    // Authenticity first: its weights enter every other dimension.
    let auth = match opts.authenticity {
        Some(vals) => Authenticity {
            flags: Vec::new(),
            values: (0..n).map(|i| vals.get(i).copied().unwrap_or(100.0)).collect(),
            suspicious_share: vec![0.0; n],
        },
        None => authenticity::assess(state, p, now, window_start),
    };
    let weight: Vec<f64> = (0..n as Node).map(|i| Authenticity::weight(&auth.values, i, p)).collect();
    phases.authenticity = laps.lap();

    let mut raw = vec![RawMetrics::default(); n];
    let mut own = vec![0.0f64; n];
    let mut responses = vec![0.0f64; n];
    let mut posts = vec![0.0f64; n];
    for post in &state.posts {
        if post.author != NONE && in_window(post.at) {
            posts[post.author as usize] += decay(post.at);
            raw[post.author as usize].posts += 1.0;
        }
    }

    // Engagement edges: network graph, distinct engagers, reposters.
    let mut edges: Vec<(u32, u32, f32)> = Vec::with_capacity(state.engagements.len() + state.follows.len());
    let mut repost_edges: Vec<(u32, u32, f32)> = Vec::new();
    network::window_engagements(state, p, &in_window, &decay, &mut edges, |e, t, w| {
        own[e.actor as usize] += w;
        raw[e.actor as usize].engagements_given += 1.0;
        responses[t as usize] += w * weight[e.actor as usize];
        raw[t as usize].responses += 1.0;
        if matches!(e.kind, EngagementKind::Repost | EngagementKind::Quote) {
            repost_edges.push((t, e.actor, 1.0));
        }
    });
    let engagement = Csr::from_edges(n, &edges);
    let engagers = engagement.transpose();
    let influence = influence_graph(&engagement, &weight);
    let reposters = Csr::from_edges(n, &repost_edges);
    drop(repost_edges);

    let follow_edges = network::current_follows(state);
    let followers = Csr::from_edges(n, &follow_edges);
    phases.dimensions = laps.lap();
    let network::Ranked { prg, pr, graph_bytes } = network::rank(n, edges, &follow_edges, p, &weight, opts.warm_start);
    phases.network = laps.lap();
    drop(follow_edges);

    // Two-hop reach of reposts: distinct accounts in the audiences of the reposters.
    let two_hop: Vec<u32> = (0..n)
        .into_par_iter()
        .map_init(
            || vec![NONE; n],
            |stamp, u| {
                let mut count = 0u32;
                stamp[u] = u as u32;
                for &x in reposters.row(u).0 {
                    for &y in engagers.row(x as usize).0.iter().chain(followers.row(x as usize).0) {
                        if stamp[y as usize] != u as u32 {
                            stamp[y as usize] = u as u32;
                            count += 1;
                        }
                    }
                }
                count
            },
        )
        .collect();

    let action = action_estimates(state, p, &in_window, &mut raw);

    let mut values: [Vec<f64>; 5] = Default::default();
    for d in &mut values {
        d.reserve(n);
    }
    for u in 0..n {
        let r = &mut raw[u];
        let info = &state.accounts[u];
        // Activity.
        let rate = responses[u] / (posts[u] + p.activity_post_prior);
        let a_raw = (1.0 + rate).ln() + p.activity_own_weight * (1.0 + weight[u] * (posts[u] + own[u])).ln();
        r.responses_per_post = rate as f32;
        values[Dimension::Activity.index()].push(quantize(saturate(a_raw, p.activity_scale)));
        // Reach.
        let (eng_rows, _) = engagers.row(u);
        let weighted_engagers: f64 = eng_rows.iter().map(|&x| weight[x as usize]).sum();
        let observed = followers.degree(u) as f64;
        let fol = (info.reported_followers as f64).max(observed);
        r.reported_followers = info.reported_followers as f32;
        r.observed_followers = observed as f32;
        r.distinct_engagers = eng_rows.len() as f32;
        r.weighted_engagers = weighted_engagers as f32;
        r.two_hop_reach = two_hop[u] as f32;
        let r_raw = p.reach_followers_weight * fol.ln_1p()
            + p.reach_engagers_weight * weighted_engagers.ln_1p()
            + p.reach_two_hop_weight * f64::from(two_hop[u]).ln_1p();
        values[Dimension::Reach.index()].push(quantize(saturate(r_raw, p.reach_scale)));
        // Network.
        let x = pr.scores[u] * n as f64;
        r.pagerank = pr.scores[u] as f32;
        r.relative_pagerank = x as f32;
        values[Dimension::Network.index()].push(network::network_value(x, p));
        // Action (value computed with the estimate) and authenticity.
        values[Dimension::Action.index()].push(action.values[u]);
        values[Dimension::Authenticity.index()].push(auth.values[u]);
        r.authenticity_weight = weight[u] as f32;
        r.suspicious_share = auth.suspicious_share[u];
    }

    let flags_by_account = network::flags_index(&auth.flags);
    for &(s, _) in &flags_by_account {
        raw[s as usize].flags += 1.0;
    }

    phases.dimensions += laps.lap();
    let topics = topic_scores(state, p, &prg, &weight, &in_window, &decay);
    phases.topics = laps.lap();
    let cols = network::columns(&values, &action.estimates, Default::default());
    phases.columns = laps.lap();
    Snapshot {
        model_version: p.version(),
        as_of,
        n,
        values,
        percentiles: cols.percentiles,
        order: cols.order,
        action_rank: cols.action_rank,
        distributions: cols.distributions,
        action: action.estimates,
        action_prior: action.prior,
        raw,
        flags: auth.flags,
        flags_by_account,
        topics,
        stats: ComputeStats {
            edges: prg.edges(),
            pagerank_iterations: pr.iterations,
            graph_bytes,
            millis: started.elapsed().as_millis() as u64,
            phases,
        },
        pagerank: pr.scores,
        influence,
    }
}

/// Per engager `v`: `p(u→v) = a(v) · w(v→u) / Σ_x w(v→x)` (see `seeds`), from
/// the engagement graph (engager → engaged, weight `w`) and the authenticity
/// weights `a`. Public so benchmarks derive probabilities exactly as a run does.
pub fn influence_graph(engagement: &Csr, weight: &[f64]) -> InfluenceGraph {
    let mut g = engagement.clone();
    let sums = g.row_sums();
    for v in 0..g.nodes() {
        let (a, b) = (g.offsets[v] as usize, g.offsets[v + 1] as usize);
        let f = if sums[v] > 0.0 { weight[v] / sums[v] } else { 0.0 };
        for w in &mut g.weights[a..b] {
            *w = (f64::from(*w) * f) as f32;
        }
    }
    g
}

/// Action percentiles: against the accounts with sufficient evidence (an
/// account with insufficient evidence is placed among them by its point
/// estimate); 0 for accounts with no evidence at all.
pub(super) fn action_percentiles(values: &[f64], est: &[ActionEstimate]) -> Vec<f64> {
    let sufficient: Vec<bool> = est.iter().map(|a| a.sufficient).collect();
    let observed: Vec<bool> = est.iter().map(|a| a.observed).collect();
    if let Some(p) = grid_percentiles(values, Some(&sufficient), Some(&observed)) {
        return p;
    }
    let mut sorted: Vec<f64> = values.iter().zip(est).filter(|(_, a)| a.sufficient).map(|(v, _)| *v).collect();
    sorted.sort_unstable_by(f64::total_cmp);
    values.iter().zip(est).map(|(v, a)| if a.observed { percentile_in(&sorted, *v) } else { 0.0 }).collect()
}

/// Percentiles of a column: by counting on the value grid, sorting only if a value is off it
/// (same result either way).
fn column_percentiles(values: &[f64]) -> Vec<f64> {
    grid_percentiles(values, None, None).unwrap_or_else(|| percentiles(values))
}

/// Node ids by value descending, ties by id ascending.
pub(super) fn order_desc(v: &[f64]) -> Vec<u32> {
    if let Some(o) = grid_order_desc(v) {
        return o;
    }
    let mut o: Vec<u32> = (0..v.len() as u32).collect();
    o.par_sort_unstable_by(|&a, &b| v[b as usize].total_cmp(&v[a as usize]).then(a.cmp(&b)));
    o
}

pub(super) struct ActionOut {
    pub(super) values: Vec<f64>,
    pub(super) estimates: Vec<ActionEstimate>,
    pub(super) prior: (f64, f64),
}

/// Beta–Binomial estimates of the conversion rate and the engaged-session
/// rate per attributed click, each with an empirical-Bayes prior fitted by the
/// method of moments to the accounts with enough clicks (falling back to the
/// model's prior when too few have).
fn action_estimates(
    state: &State,
    p: &ModelParams,
    in_window: &impl Fn(Micros) -> bool,
    raw: &mut [RawMetrics],
) -> ActionOut {
    let n = state.len();
    let mut clicks = vec![0u64; n];
    let mut conv = vec![0u64; n];
    let mut engaged = vec![0u64; n];
    let mut any_sessions = false;
    for o in &state.outcomes {
        if !in_window(o.at) {
            continue;
        }
        let i = o.owner as usize;
        let r = &mut raw[i];
        match o.kind {
            OutcomeKind::Click => {
                clicks[i] += 1;
                r.clicks += 1.0;
            }
            OutcomeKind::Session { bounced } => {
                any_sessions = true;
                r.sessions += 1.0;
                if !bounced {
                    engaged[i] += 1;
                    r.non_bounced += 1.0;
                }
            }
            OutcomeKind::Conversion => {
                conv[i] += 1;
                r.conversions += 1.0;
                r.conversion_value_minor += o.value_minor as f32;
            }
            OutcomeKind::CodeConversion => {
                r.code_conversions += 1.0;
                r.conversion_value_minor += o.value_minor as f32;
            }
        }
    }
    action_from_counts(p, &clicks, &conv, &engaged, any_sessions, raw)
}

/// The estimation half of `action_estimates`, from per-account outcome counts
/// in the window (and `raw`'s session, conversion and click columns), so the
/// incremental path reaches the same estimates from counts it keeps itself.
pub(super) fn action_from_counts(
    p: &ModelParams,
    clicks: &[u64],
    conv: &[u64],
    engaged: &[u64],
    any_sessions: bool,
    raw: &mut [RawMetrics],
) -> ActionOut {
    let n = clicks.len();
    // A conversion or engaged session without its click in the window cannot be
    // a success of a trial we did not see.
    let conv: Vec<u64> = (0..n).map(|i| conv[i].min(clicks[i])).collect();
    let engaged: Vec<u64> = (0..n).map(|i| engaged[i].min(clicks[i])).collect();
    let min = p.action_min_clicks.max(1);
    let conv_prior = fit_beta_prior(&conv, clicks, min, p.action_prior_mean, p);
    let eng_prior = fit_beta_prior(&engaged, clicks, min, p.action_engaged_prior_mean, p);
    let w = if any_sessions { p.action_engaged_weight.clamp(0.0, 1.0) } else { 0.0 };
    let combine = |c: f64, e: f64| {
        quantize((1.0 - w) * saturate(c, p.action_rate_scale) + w * saturate(e, p.action_engaged_scale))
    };
    let mut conv_cache: HashMap<(u64, u64), RateEstimate> = HashMap::new();
    let mut eng_cache: HashMap<(u64, u64), RateEstimate> = HashMap::new();
    let rate = |cache: &mut HashMap<(u64, u64), RateEstimate>, prior: (f64, f64), s: u64, k: u64| {
        *cache.entry((s, k)).or_insert_with(|| {
            let b = beta_summary(prior.0 + s as f64, prior.1 + (k - s) as f64, p.credible_mass);
            RateEstimate { mean: b.mean, lower: b.lower, upper: b.upper }
        })
    };
    let mut values = Vec::with_capacity(n);
    let mut estimates = Vec::with_capacity(n);
    for i in 0..n {
        let k = clicks[i];
        let r = &mut raw[i];
        let observed = k > 0 || r.sessions > 0.0 || r.conversions > 0.0 || r.code_conversions > 0.0;
        if !observed {
            values.push(0.0);
            estimates.push(ActionEstimate::default());
            continue;
        }
        let c = rate(&mut conv_cache, conv_prior, conv[i], k);
        let e = rate(&mut eng_cache, eng_prior, engaged[i], k);
        let est = ActionEstimate {
            lower: combine(c.lower, e.lower),
            upper: combine(c.upper, e.upper),
            sufficient: k >= min,
            observed,
            conversion: c,
            engaged: e,
        };
        values.push(combine(c.mean, e.mean));
        estimates.push(est);
        r.conversion_rate = c.mean as f32;
        r.conversion_lower = c.lower as f32;
        r.conversion_upper = c.upper as f32;
        if any_sessions {
            r.engaged_rate = e.mean as f32;
            r.engaged_lower = e.lower as f32;
            r.engaged_upper = e.upper as f32;
        }
        if r.sessions > 0.0 {
            let s = beta_summary(
                1.0 + f64::from(r.non_bounced),
                1.0 + f64::from(r.sessions - r.non_bounced),
                p.credible_mass,
            );
            r.non_bounce_rate = s.mean as f32;
            r.non_bounce_lower = s.lower as f32;
            r.non_bounce_upper = s.upper as f32;
        }
    }
    ActionOut { values, estimates, prior: conv_prior }
}

/// Beta(α, β) prior on a per-click rate, fitted by the method of moments to the
/// accounts with at least `min` clicks: the pooled rate as the mean, and the
/// spread of their observed rates minus the binomial noise as the between-account
/// variance. Falls back to `fallback_mean` at the model's prior strength when
/// fewer than five accounts qualify or the pooled rate is 0 or 1.
fn fit_beta_prior(successes: &[u64], trials: &[u64], min: u64, fallback_mean: f64, p: &ModelParams) -> (f64, f64) {
    let eligible: Vec<usize> = (0..trials.len()).filter(|&i| trials[i] >= min).collect();
    let fallback = (fallback_mean * p.action_prior_strength, (1.0 - fallback_mean) * p.action_prior_strength);
    let (sc, sn): (u64, u64) = eligible.iter().fold((0, 0), |(c, k), &i| (c + successes[i], k + trials[i]));
    if eligible.len() < 5 || sc == 0 || sc == sn {
        return fallback;
    }
    let m = sc as f64 / sn as f64;
    let k = eligible.len() as f64;
    let obs = |i: usize| successes[i] as f64 / trials[i] as f64;
    let mean_r = eligible.iter().map(|&i| obs(i)).sum::<f64>() / k;
    let var = eligible.iter().map(|&i| (obs(i) - mean_r).powi(2)).sum::<f64>() / k;
    // Remove the binomial noise to get the spread of true rates between accounts.
    let noise = eligible.iter().map(|&i| m * (1.0 - m) / trials[i] as f64).sum::<f64>() / k;
    let between = var - noise;
    let strength = if between > 0.0 { m * (1.0 - m) / between - 1.0 } else { p.action_prior_strength_max };
    let strength = strength.clamp(p.action_prior_strength_min, p.action_prior_strength_max);
    (m * strength, (1.0 - m) * strength)
}

/// Per-topic activity (topic posts and the responses they draw) and
/// topic-sensitive PageRank (teleporting to the topic's authors).
pub(super) fn topic_scores(
    state: &State,
    p: &ModelParams,
    prg: &PageRankGraph,
    weight: &[f64],
    in_window: &impl Fn(Micros) -> bool,
    decay: &impl Fn(Micros) -> f64,
) -> Vec<TopicScores> {
    let n = state.len();
    let mut counts = vec![0u32; state.topics.len()];
    for post in &state.posts {
        if post.author != NONE && in_window(post.at) {
            for &t in &post.topics {
                counts[t as usize] += 1;
            }
        }
    }
    let mut chosen: Vec<usize> = (0..counts.len()).filter(|&t| counts[t] >= p.topic_min_posts.max(1)).collect();
    chosen.sort_unstable_by(|&a, &b| counts[b].cmp(&counts[a]).then(state.topics[a].cmp(&state.topics[b])));
    chosen.truncate(p.max_topics as usize);
    chosen
        .into_iter()
        .map(|t| {
            let tid = t as u16;
            let mut posts = vec![0.0f64; n];
            let mut own = vec![0.0f64; n];
            let mut resp = vec![0.0f64; n];
            for post in &state.posts {
                if post.author != NONE && in_window(post.at) && post.topics.contains(&tid) {
                    posts[post.author as usize] += decay(post.at);
                }
            }
            for e in &state.engagements {
                if e.post == NONE || !in_window(e.at) {
                    continue;
                }
                let Some(post) = state.posts.get(e.post as usize) else { continue };
                let target = state.target_of(e);
                if !post.topics.contains(&tid) || target == NONE || target == e.actor {
                    continue;
                }
                let w = kind_weight(p, e.kind) * decay(e.at);
                own[e.actor as usize] += w;
                resp[target as usize] += w * weight[e.actor as usize];
            }
            let members: Vec<Node> =
                (0..n as Node).filter(|&u| posts[u as usize] > 0.0 || resp[u as usize] > 0.0).collect();
            let pr = pagerank(
                prg,
                PageRankOptions {
                    damping: p.damping,
                    tolerance: p.pagerank_tolerance,
                    max_iterations: p.pagerank_max_iterations,
                    personalization: Some(&posts),
                    warm_start: None,
                },
            );
            let m = members.len() as f64;
            let act: Vec<f64> = members
                .iter()
                .map(|&u| {
                    let u = u as usize;
                    let rate = resp[u] / (posts[u] + p.activity_post_prior);
                    let raw = (1.0 + rate).ln() + p.activity_own_weight * (1.0 + weight[u] * (posts[u] + own[u])).ln();
                    quantize(saturate(raw, p.activity_scale))
                })
                .collect();
            let net: Vec<f64> = members.iter().map(|&u| network::network_value(pr.scores[u as usize] * m, p)).collect();
            TopicScores {
                name: state.topics[t].clone(),
                percentiles: [column_percentiles(&act), column_percentiles(&net)],
                order: [order_desc(&act), order_desc(&net)],
                values: [act, net],
                members,
            }
        })
        .collect()
}
