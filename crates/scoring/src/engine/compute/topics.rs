//! Per-topic scores: activity within a topic and topic-sensitive PageRank,
//! over the topics with enough posts in the window.

use lift_domain::Micros;

use super::{TopicScores, kind_weight, order_desc};
use crate::engine::graph::{PageRankGraph, PageRankOptions, pagerank};
use crate::engine::network;
use crate::engine::params::ModelParams;
use crate::engine::state::{NONE, Node, State};
use crate::engine::stats::{grid_percentiles, percentiles, quantize, saturate};

/// Percentiles of a column: by counting on the value grid, sorting only if a value is off it
/// (same result either way).
fn column_percentiles(values: &[f64]) -> Vec<f64> {
    grid_percentiles(values, None, None).unwrap_or_else(|| percentiles(values))
}

/// The topics that get scores: those with at least `topic_min_posts` posts in the
/// window, most posts first (ties by name), at most `max_topics`.
pub(in crate::engine) fn chosen_topics(
    state: &State,
    p: &ModelParams,
    in_window: &impl Fn(Micros) -> bool,
) -> Vec<usize> {
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
}

/// Per-topic activity (topic posts and the responses they draw) and
/// topic-sensitive PageRank (teleporting to the topic's authors).
pub(in crate::engine) fn topic_scores(
    state: &State,
    p: &ModelParams,
    prg: &PageRankGraph,
    weight: &[f64],
    in_window: &impl Fn(Micros) -> bool,
    decay: &impl Fn(Micros) -> f64,
) -> Vec<TopicScores> {
    let n = state.len();
    chosen_topics(state, p, in_window)
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
