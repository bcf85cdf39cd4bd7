//! Model parameters: every number the scores depend on, versioned by a hash.
//!
//! A score is a pure function of (ledger prefix, `ModelParams`), so the version
//! string must change whenever any parameter does: it is the model name plus the
//! first 8 bytes of SHA-256 over the canonical JSON of the parameters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Weights of the engagement kinds, as endorsements of the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindWeights {
    pub repost: f64,
    pub quote: f64,
    pub reply: f64,
    pub like: f64,
    pub mention: f64,
    /// A current follow, as an edge of the network graph.
    pub follow: f64,
}

/// Every parameter of the scoring model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelParams {
    /// Human name of the model family; the version adds a hash of all parameters.
    pub name: String,

    // --- time ---
    /// Events older than this (relative to the as-of time) are outside the window.
    pub window_days: f64,
    /// Half-life of the exponential recency decay of events inside the window.
    pub half_life_days: f64,

    pub kind_weights: KindWeights,

    // --- activity ---
    /// Pseudo-posts added to the denominator of responses per post, so one post
    /// with one like does not look like a star.
    pub activity_post_prior: f64,
    /// Weight of the account's own posting and engaging next to the responses it draws.
    pub activity_own_weight: f64,
    /// Raw activity at which the value reaches 63.2 (1 − 1/e of 100).
    pub activity_scale: f64,

    // --- reach ---
    pub reach_followers_weight: f64,
    pub reach_engagers_weight: f64,
    pub reach_two_hop_weight: f64,
    pub reach_scale: f64,

    // --- network ---
    pub damping: f64,
    /// L1 convergence tolerance of PageRank.
    pub pagerank_tolerance: f64,
    pub pagerank_max_iterations: u32,
    /// Value = 100·(1 − (1 + x)^(−1/scale)) where x is PageRank relative to the mean.
    pub network_scale: f64,
    /// The network graph's engagement edges decay from a reference time that
    /// moves in steps of this many seconds: the as-of time rounded up to a
    /// multiple of it (counted from the Unix epoch). Between step boundaries an
    /// account's out-edges, and so its transition probabilities, change only
    /// when its own events arrive, leave the window or are re-weighted by
    /// authenticity, which is what lets PageRank be updated locally; engagement
    /// against follows (which do not decay) is then weighed up to one step
    /// late. 0: from the as-of time itself (every run moves every row that
    /// mixes follows and engagement). Parameters stored before it existed read
    /// as 0: the decay was continuous then.
    #[serde(default)]
    pub network_decay_step_secs: f64,

    // --- action ---
    /// Attributed clicks below which the action estimate is "insufficient evidence".
    pub action_min_clicks: u64,
    /// Conversion rate at which the value reaches 63.2.
    pub action_rate_scale: f64,
    /// Prior used when the population has too little data for empirical Bayes.
    pub action_prior_mean: f64,
    pub action_prior_strength: f64,
    /// Bounds on the empirical-Bayes prior strength (pseudo-clicks).
    pub action_prior_strength_min: f64,
    pub action_prior_strength_max: f64,
    /// Credible mass of the reported interval.
    pub credible_mass: f64,
    /// Share of the action value that engaged (non-bounce) sessions per click
    /// carry, next to conversions per click (0 when nothing reports sessions).
    /// Parameters stored before it existed read as 0: sessions did not count then.
    #[serde(default)]
    pub action_engaged_weight: f64,
    /// Engaged-session rate per click at which its part reaches 63.2.
    #[serde(default = "half")]
    pub action_engaged_scale: f64,
    /// Prior mean of the engaged-session rate when the population is too small to fit one.
    #[serde(default = "half")]
    pub action_engaged_prior_mean: f64,
    /// Kernels of the mixture prior's dictionary (Beta kernels with means evenly
    /// spaced on the logit scale; see `compute::rate_prior`); below 2, every
    /// rate's prior is the one Beta. Parameters stored before it existed read
    /// as 0: the prior was always one Beta then.
    #[serde(default)]
    pub action_prior_components: u32,
    /// Accounts with `action_min_clicks` clicks needed before a mixture prior is tried.
    #[serde(default)]
    pub action_prior_mixture_min_accounts: u64,
    /// Marginal log-likelihood (nats) per √(accounts fitted) that the mixture
    /// must gain over the one Beta to replace it.
    #[serde(default)]
    pub action_prior_mixture_min_gain: f64,
    /// Bound on the EM iterations fitting the mixture's weights.
    #[serde(default)]
    pub action_prior_em_max_iterations: u32,
    /// EM stops when an iteration gains less than this many nats per account.
    #[serde(default)]
    pub action_prior_em_tolerance: f64,

    // --- authenticity ---
    /// Engagement within this many seconds of the engaged post is "quick".
    pub pod_quick_secs: f64,
    /// Quick engagements each way that make a reciprocal tie.
    pub pod_min_quick: u32,
    /// Quick engagements both ways together that make a reciprocal tie.
    /// Parameters stored before it existed read as 0: each way's minimum was the only one.
    #[serde(default)]
    pub pod_min_quick_pair: u32,
    /// Minimum share of a pair's engagements of each other's posts that are quick: friends
    /// answer each other too, but over hours. Stored parameters without it read as 0 (no minimum).
    #[serde(default)]
    pub pod_min_quick_share: f64,
    pub pod_min_size: u32,
    /// Minimum density of reciprocal ties inside a candidate group.
    pub pod_min_density: f64,
    /// Minimum share of a member's received engagement that comes from the group.
    pub pod_min_concentration: f64,
    /// First-time engagers from new accounts within 24 hours that can count as a burst
    /// (`burst_factor` is the factor over the baseline).
    pub burst_min_per_day: u32,
    /// Follows from new accounts within 24 hours that can count as a follower burst.
    #[serde(default = "fifty")]
    pub follower_burst_min_per_day: u32,
    /// Follows within 24 hours from new accounts that never posted or engaged that can
    /// count as a follower burst (bought followers do nothing else). Stored parameters
    /// without it read as 0: not used.
    #[serde(default)]
    pub follower_burst_min_inactive: u32,
    pub burst_factor: f64,
    /// Per-day count added to an account's baseline before `burst_factor` applies, so a
    /// quiet account's first few arrivals are not a burst. Stored parameters without it read as 1.
    #[serde(default = "one")]
    pub burst_baseline_smoothing: f64,
    /// A follow undone within this many days counts as churn.
    pub churn_window_days: f64,
    pub churn_min: u32,
    pub churn_min_share: f64,
    /// An account younger than this at the time it engages is "young".
    pub young_account_days: f64,
    pub young_min_engagements: u32,
    pub young_min_share: f64,
    /// Floor of the weight given to engagement from low-authenticity accounts:
    /// such engagement is down-weighted, never dropped.
    pub min_authenticity_weight: f64,

    // --- topics ---
    pub max_topics: u32,
    pub topic_min_posts: u32,
}

impl Default for ModelParams {
    fn default() -> Self {
        Self {
            name: "lift-5".into(),
            window_days: 365.0,
            half_life_days: 30.0,
            kind_weights: KindWeights { repost: 3.0, quote: 3.0, reply: 2.0, like: 1.0, mention: 1.5, follow: 0.5 },
            activity_post_prior: 1.0,
            activity_own_weight: 0.2,
            activity_scale: 2.0,
            reach_followers_weight: 0.3,
            reach_engagers_weight: 1.0,
            reach_two_hop_weight: 0.5,
            reach_scale: 5.0,
            damping: 0.85,
            pagerank_tolerance: 1e-10,
            pagerank_max_iterations: 200,
            network_scale: 2.0,
            network_decay_step_secs: 3600.0,
            action_min_clicks: 20,
            action_rate_scale: 0.05,
            action_prior_mean: 0.02,
            action_prior_strength: 50.0,
            action_prior_strength_min: 2.0,
            action_prior_strength_max: 1000.0,
            credible_mass: 0.9,
            action_engaged_weight: 0.25,
            action_engaged_scale: 0.5,
            action_engaged_prior_mean: 0.5,
            action_prior_components: 64,
            action_prior_mixture_min_accounts: 100,
            action_prior_mixture_min_gain: 0.5,
            action_prior_em_max_iterations: 500,
            action_prior_em_tolerance: 1e-9,
            pod_quick_secs: 600.0,
            pod_min_quick: 3,
            pod_min_quick_pair: 3,
            pod_min_quick_share: 0.5,
            pod_min_size: 3,
            pod_min_density: 0.6,
            pod_min_concentration: 0.5,
            burst_min_per_day: 50,
            follower_burst_min_per_day: 15,
            follower_burst_min_inactive: 5,
            burst_factor: 10.0,
            burst_baseline_smoothing: 0.5,
            churn_window_days: 7.0,
            churn_min: 10,
            churn_min_share: 0.5,
            young_account_days: 30.0,
            young_min_engagements: 20,
            young_min_share: 0.5,
            min_authenticity_weight: 0.1,
            max_topics: 8,
            topic_min_posts: 3,
        }
    }
}

fn half() -> f64 {
    0.5
}

fn one() -> f64 {
    1.0
}

fn fifty() -> u32 {
    50
}

impl ModelParams {
    /// The action value (0–100, on the value grid) of a conversion rate and an
    /// engaged-session rate per click: each through `saturate`, blended by
    /// `action_engaged_weight` when engaged sessions are measured at all
    /// (`sessions`), otherwise conversion alone.
    pub fn action_value(&self, conversion: f64, engaged: f64, sessions: bool) -> f64 {
        use super::stats::{quantize, saturate};
        let w = if sessions { self.action_engaged_weight.clamp(0.0, 1.0) } else { 0.0 };
        quantize(
            (1.0 - w) * saturate(conversion, self.action_rate_scale) + w * saturate(engaged, self.action_engaged_scale),
        )
    }

    /// `name-hash`: changes whenever any parameter changes.
    pub fn version(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&json);
        format!("{}-{}", self.name, hex::encode(&digest[..8]))
    }

    /// Flat numeric view for `GetModel` (the name is in the version).
    pub fn flat(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(self) {
            flatten("", &map, &mut out);
        }
        out
    }

    pub fn half_life_micros(&self) -> f64 {
        self.half_life_days * 86_400e6
    }

    pub fn window_micros(&self) -> i64 {
        (self.window_days * 86_400e6) as i64
    }

    /// The network decay step in microseconds (0: continuous).
    pub fn network_decay_step_micros(&self) -> i64 {
        if self.network_decay_step_secs.is_finite() && self.network_decay_step_secs > 0.0 {
            ((self.network_decay_step_secs * 1e6) as i64).max(1)
        } else {
            0
        }
    }

    /// The time the network graph's engagement edges decay from, as of `now`:
    /// `now` rounded up to a multiple of the step (itself when the step is 0).
    pub fn network_decay_reference(&self, now: i64) -> i64 {
        let step = self.network_decay_step_micros();
        if step == 0 {
            return now;
        }
        let r = now.rem_euclid(step);
        if r == 0 { now } else { now.saturating_add(step - r) }
    }
}

fn flatten(prefix: &str, map: &serde_json::Map<String, serde_json::Value>, out: &mut BTreeMap<String, f64>) {
    for (k, v) in map {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            serde_json::Value::Number(n) => {
                if let Some(f) = n.as_f64() {
                    out.insert(key, f);
                }
            }
            serde_json::Value::Object(m) => flatten(&key, m, out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins that the version changes with any parameter and is stable otherwise.
    #[test]
    fn version_tracks_parameters() {
        let a = ModelParams::default();
        let mut b = a.clone();
        assert_eq!(a.version(), b.version());
        b.kind_weights.like = 1.5;
        assert_ne!(a.version(), b.version());
        assert!(a.version().starts_with("lift-5-"));
        assert_eq!(a.flat().get("kind_weights.like"), Some(&1.0));
        let back: ModelParams = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back.version(), a.version());
        let mut c = a.clone();
        c.network_decay_step_secs = 60.0;
        assert_ne!(a.version(), c.version());
    }

    /// Pins the network decay reference: the as-of time rounded up to the step.
    #[test]
    fn network_decay_reference_rounds_up_to_the_step() {
        let mut p = ModelParams { network_decay_step_secs: 3600.0, ..ModelParams::default() };
        let hour = 3_600_000_000i64;
        assert_eq!(p.network_decay_reference(5 * hour), 5 * hour);
        assert_eq!(p.network_decay_reference(5 * hour + 1), 6 * hour);
        assert_eq!(p.network_decay_reference(6 * hour - 1), 6 * hour);
        assert_eq!(p.network_decay_reference(-hour - 1), -hour);
        p.network_decay_step_secs = 0.0;
        assert_eq!(p.network_decay_reference(5 * hour + 1), 5 * hour + 1);
        p.network_decay_step_secs = f64::NAN;
        assert_eq!(p.network_decay_reference(7), 7);
    }
}
