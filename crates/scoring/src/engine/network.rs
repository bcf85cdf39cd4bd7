//! The graph *network* is ranked on, and the parts of a snapshot that every
//! kind of run forms the same way: the full `compute` and the incremental run
//! (`compute_incremental`) both build the graph here, rank it with PageRank
//! and derive percentiles, orders and distributions here, so the two cannot
//! drift apart.

use std::collections::HashMap;

use lift_domain::{Dimension, Micros};

use super::authenticity::Flag;
use super::compute::{ActionEstimate, action_percentiles, kind_weight, order_desc};
use super::graph::{Csr, PageRank, PageRankGraph, PageRankOptions, pagerank};
use super::params::ModelParams;
use super::state::{EngagementRec, NONE, Node, State};
use super::stats::{grid_percentiles, percentiles, published_levels, quantiles, quantize};

/// Decay of the network graph's engagement edges as of `now`, measured from
/// `ModelParams::network_decay_reference(now)`: it moves only when the as-of
/// time crosses a step boundary, so between boundaries an edge's weight is
/// the same run after run.
pub(super) fn edge_decay(p: &ModelParams, now: Micros) -> impl Fn(Micros) -> f64 + use<> {
    let reference = p.network_decay_reference(now);
    let hl = p.half_life_micros();
    move |at: Micros| if hl > 0.0 { 0.5f64.powf((reference - at).max(0) as f64 / hl) } else { 1.0 }
}

/// Visits every engagement of the window that counts for the graph (a known
/// target other than the actor) with its target and weight (kind weight ×
/// `decay`), after pushing its edge (actor → target, kind weight ×
/// `edge_decay`) onto `edges`.
pub(super) fn window_engagements(
    state: &State,
    p: &ModelParams,
    in_window: &impl Fn(Micros) -> bool,
    decay: &impl Fn(Micros) -> f64,
    edge_decay: &impl Fn(Micros) -> f64,
    edges: &mut Vec<(u32, u32, f32)>,
    mut visit: impl FnMut(&EngagementRec, Node, f64),
) {
    for e in &state.engagements {
        let t = state.target_of(e);
        if t == NONE || t == e.actor || !in_window(e.at) {
            continue;
        }
        let k = kind_weight(p, e.kind);
        // An edge of positive kind weight stays an edge however far it decayed
        // (f32 would round a weight below 2^-149 to 0, which drops it).
        let w = (k * edge_decay(e.at)) as f32;
        edges.push((e.actor, t, if k > 0.0 { w.max(f32::MIN_POSITIVE) } else { w }));
        visit(e, t, k * decay(e.at));
    }
}

/// Current follows as `(followee, follower, 1.0)`, sorted: replayed in ledger
/// order, so the latest follow or unfollow of a pair wins.
pub(super) fn current_follows(state: &State) -> Vec<(u32, u32, f32)> {
    let mut current: HashMap<(Node, Node), bool> = HashMap::new();
    for f in &state.follows {
        current.insert((f.follower, f.followee), !f.unfollow);
    }
    let mut out: Vec<(u32, u32, f32)> =
        current.into_iter().filter(|(_, on)| *on).map(|((a, b), _)| (b, a, 1.0)).collect();
    out.sort_unstable_by_key(|e| (e.0, e.1));
    out
}

/// The network graph's out-rows: the engagement edges plus follows (follower
/// → followee at the follow kind weight).
pub(super) fn network_graph(
    n: usize,
    mut edges: Vec<(u32, u32, f32)>,
    follows: &[(u32, u32, f32)],
    p: &ModelParams,
) -> Csr {
    edges.extend(follows.iter().map(|&(followee, follower, _)| (follower, followee, p.kind_weights.follow as f32)));
    Csr::from_edges(n, &edges)
}

/// The ranked network graph.
pub(super) struct Ranked {
    pub(super) prg: PageRankGraph,
    pub(super) pr: PageRank,
    pub(super) graph_bytes: usize,
}

/// Weighted PageRank on the engagement edges plus follows (follower →
/// followee at the follow kind weight). A low-authenticity account's votes
/// count less: it passes on only its weight's share of its rank.
pub(super) fn rank(
    n: usize,
    edges: Vec<(u32, u32, f32)>,
    follows: &[(u32, u32, f32)],
    p: &ModelParams,
    weight: &[f64],
    warm_start: Option<&[f64]>,
) -> Ranked {
    let graph = network_graph(n, edges, follows, p);
    let prg = PageRankGraph::with_retention(&graph, Some(weight));
    let graph_bytes = graph.bytes() + prg.bytes();
    drop(graph);
    let pr = pagerank(
        &prg,
        PageRankOptions {
            damping: p.damping,
            tolerance: p.pagerank_tolerance,
            max_iterations: p.pagerank_max_iterations,
            personalization: None,
            warm_start,
        },
    );
    Ranked { prg, pr, graph_bytes }
}

/// The network value of a relative PageRank (1 = the average account).
pub(super) fn network_value(relative: f64, p: &ModelParams) -> f64 {
    let scale = p.network_scale.max(1e-9);
    quantize(100.0 * (1.0 - (1.0 + relative).powf(-1.0 / scale)))
}

/// Percentiles, orders, published distributions and the action ranking of
/// the five value columns. `known` carries percentiles a caller already
/// holds (by dimension); the others are counted here.
pub(super) struct Columns {
    pub(super) percentiles: [Vec<f64>; 5],
    pub(super) order: [Vec<u32>; 5],
    pub(super) distributions: [Vec<(f64, f64)>; 5],
    pub(super) action_rank: Vec<u32>,
}

pub(super) fn columns(values: &[Vec<f64>; 5], action: &[ActionEstimate], mut known: [Option<Vec<f64>>; 5]) -> Columns {
    let levels = published_levels();
    let mut out = Columns {
        percentiles: Default::default(),
        order: Default::default(),
        distributions: Default::default(),
        action_rank: Vec::new(),
    };
    for d in Dimension::ALL {
        let v = &values[d.index()];
        out.percentiles[d.index()] = match known[d.index()].take() {
            Some(p) => p,
            None if d == Dimension::Action => action_percentiles(v, action),
            None => grid_percentiles(v, None, None).unwrap_or_else(|| percentiles(v)),
        };
        out.order[d.index()] = order_desc(v);
        let asc: Vec<f64> = out.order[d.index()].iter().rev().map(|&i| v[i as usize]).collect();
        out.distributions[d.index()] = quantiles(&asc, &levels);
    }
    let keys: Vec<f64> = action.iter().map(ActionEstimate::rank_key).collect();
    out.action_rank = order_desc(&keys);
    out
}

/// `(account, index into flags)` for every subject of every flag, sorted.
pub(super) fn flags_index(flags: &[Flag]) -> Vec<(Node, u32)> {
    let mut out: Vec<(Node, u32)> =
        flags.iter().enumerate().flat_map(|(i, f)| f.subjects.iter().map(move |&s| (s, i as u32))).collect();
    out.sort_unstable();
    out
}
