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
//!   graph of engagement (actor → target, kind weight × decay, the decay
//!   measured from the as-of time rounded up to `network_decay_step_secs`) and follows; a
//!   low-authenticity account passes on only its weight's share of its rank
//!   (the rest teleports), so its votes count less.
//! - **action** = `(1 − w)·saturate(θ_c, action_rate_scale) + w·saturate(θ_e, action_engaged_scale)`
//!   where `θ_c` is the posterior mean conversion rate per attributed click and
//!   `θ_e` the posterior mean rate of engaged (non-bounce) sessions per click,
//!   each under its own prior fitted to the population (empirical Bayes: one
//!   Beta, or a mixture of Betas when the population's rates are not
//!   Beta-shaped, see `rate_prior`) and each with its own 90 % credible interval; `w = action_engaged_weight`
//!   when the population has any session tracking, else 0. `lower`/`upper` is a
//!   central credible interval of that blend (one rate's interval through
//!   `saturate` when `w` is 0; see `action` for the blend's). Below `action_min_clicks`
//!   clicks the evidence is *insufficient*; with no attributed click, session
//!   or conversion at all there is *no evidence*: value, interval and
//!   percentile are 0 and the state says so — the prior is never shown as a score.
//! - **authenticity** = `100·Π(1 − severity)` over the account's gaming flags.
//!
//! Percentile = share (0–100) of the population with a value at or below the
//! account's (see `stats::percentiles`). For *action* the population is the
//! accounts with sufficient evidence: an account with insufficient evidence is
//! placed against them by its point estimate, one with no evidence is at 0.

mod action;
mod rate_prior;
mod snapshot;
mod topics;

use lift_domain::event::EngagementKind;
use lift_domain::{Dimension, Micros};
use rayon::prelude::*;

use action::action_estimates;
pub(super) use action::{action_from_counts, action_percentiles};
pub(super) use rate_prior::fit_rate_prior;
pub use snapshot::{
    ActionEstimate, ComputeStats, Phases, RateEstimate, RawMetrics, Snapshot, TOPIC_DIMENSIONS, TopicScores,
};
pub(super) use topics::{chosen_topics, topic_scores};

use super::authenticity::{self, Authenticity};
use super::graph::Csr;
use super::network;
use super::params::ModelParams;
use super::seeds::InfluenceGraph;
use super::state::{NONE, Node, State};
use super::stats::{grid_order_desc, quantize, saturate};

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
    let edge_decay = network::edge_decay(p, now);
    network::window_engagements(state, p, &in_window, &decay, &edge_decay, &mut edges, |e, t, w| {
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

/// Node ids by value descending, ties by id ascending.
pub(super) fn order_desc(v: &[f64]) -> Vec<u32> {
    if let Some(o) = grid_order_desc(v) {
        return o;
    }
    let mut o: Vec<u32> = (0..v.len() as u32).collect();
    o.par_sort_unstable_by(|&a, &b| v[b as usize].total_cmp(&v[a as usize]).then(a.cmp(&b)));
    o
}
