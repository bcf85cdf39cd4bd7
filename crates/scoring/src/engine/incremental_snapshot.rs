//! A whole snapshot from an incremental run: activity, reach, action and
//! authenticity (with their percentiles) come from [`IncrementalScores`],
//! which recomputes only the accounts whose inputs changed; *network* is
//! PageRank on the graph of the window, kept in `IncrementalScores::network`
//! and updated locally by residual push (`pagerank_push`) while its stated
//! L1 error bound stays within the drift tolerance, in full (warm-started)
//! otherwise; topics and seed probabilities are formed as `compute` forms
//! them. The result equals `compute`'s on the same state within the
//! incremental run's stated tolerance (activity within one grid step; reach,
//! action and authenticity exactly; PageRank within the update's reported bound
//! plus the from-scratch run's own convergence tolerance).

use std::time::Instant;

use lift_domain::Dimension;

use super::authenticity::{self, Authenticity};
use super::compute::{AsOf, ComputeStats, Laps, Phases, Snapshot, chosen_topics, influence_graph, topic_scores};
use super::graph::{Csr, PageRank, PageRankGraph};
use super::incremental::IncrementalScores;
use super::network;
use super::params::ModelParams;
use super::state::{Node, State};

/// Brings `inc` up to date with `state` and forms the snapshot as of the
/// state's own position (`AsOf::of(state)`), warm-starting PageRank from
/// `warm_start` (the previous run's vector) when given.
pub fn compute_incremental(
    state: &State,
    p: &ModelParams,
    warm_start: Option<&[f64]>,
    inc: &mut IncrementalScores,
) -> Snapshot {
    let started = Instant::now();
    let n = state.len();
    let as_of = AsOf::of(state);
    let now = as_of.time;
    let window_start = now.saturating_sub(p.window_micros());
    let in_window = |at| at > window_start && at <= now;
    let hl = p.half_life_micros();
    let decay = |at: i64| if hl > 0.0 { 0.5f64.powf((now - at).max(0) as f64 / hl) } else { 1.0 };

    let mut laps = Laps::start();
    let mut phases = Phases::default();
    let auth = authenticity::assess(state, p, now, window_start);
    let weight: Vec<f64> = (0..n as Node).map(|i| Authenticity::weight(&auth.values, i, p)).collect();
    phases.authenticity = laps.lap();
    inc.update(state, p, &auth);
    phases.dimensions = laps.lap();

    let mut edges: Vec<(u32, u32, f32)> = Vec::with_capacity(state.engagements.len() + state.follows.len());
    network::window_engagements(state, p, &in_window, &decay, &network::edge_decay(p, now), &mut edges, |_, _, _| {});
    let influence = influence_graph(&Csr::from_edges(n, &edges), &weight);
    let follows = network::current_follows(state);
    let graph = network::network_graph(n, edges, &follows, p);
    drop(follows);
    let edge_count = graph.edges();
    let ranked = inc.network.update(graph, &weight, p, now, warm_start);
    let topics_needed = !chosen_topics(state, p, &in_window).is_empty();
    // Topic PageRank runs on the prepared graph, which a local update does not build.
    let prg = match ranked.prg {
        Some(g) => g,
        None if topics_needed => PageRankGraph::with_retention(inc.network.graph(), Some(&weight)),
        None => PageRankGraph::default(),
    };
    let graph_bytes = inc.network.bytes() + prg.bytes();
    let pr = PageRank { scores: ranked.scores, iterations: ranked.iterations, delta: 0.0 };
    phases.network = laps.lap();

    let mut values = inc.values.clone();
    let mut raw = inc.raw.clone();
    let mut net = Vec::with_capacity(n);
    for (u, r) in raw.iter_mut().enumerate() {
        let x = pr.scores[u] * n as f64;
        r.pagerank = pr.scores[u] as f32;
        r.relative_pagerank = x as f32;
        net.push(network::network_value(x, p));
    }
    values[Dimension::Network.index()] = net;
    let flags_by_account = network::flags_index(&auth.flags);
    phases.dimensions += laps.lap();
    let topics = topic_scores(state, p, &prg, &weight, &in_window, &decay);
    phases.topics = laps.lap();

    let mut known: [Option<Vec<f64>>; 5] = Default::default();
    for d in Dimension::ALL {
        if d != Dimension::Network {
            known[d.index()] = Some(inc.percentiles[d.index()].clone());
        }
    }
    let cols = network::columns(&values, &inc.action, known);
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
        action: inc.action.clone(),
        action_prior: inc.action_prior,
        raw,
        flags: auth.flags,
        flags_by_account,
        topics,
        stats: ComputeStats {
            edges: edge_count,
            pagerank_iterations: pr.iterations,
            graph_bytes,
            millis: started.elapsed().as_millis() as u64,
            phases,
        },
        pagerank: pr.scores,
        influence,
    }
}
