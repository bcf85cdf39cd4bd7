//! What a computation produces: the `Snapshot` of every account's five
//! dimensions and its parts (action estimates, raw metrics, topic scores, work
//! done).

use lift_domain::Dimension;

use super::AsOf;
use crate::engine::authenticity::Flag;
use crate::engine::seeds::InfluenceGraph;
use crate::engine::state::Node;

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
    /// Prior Beta(α, β) on the conversion rate, fitted to this population (a
    /// mixture prior summarised as the Beta with its mean and variance).
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
