//! Authenticity: evidence of gaming, as flags that carry the accounts, events
//! and time window behind them.
//!
//! Each flag has a severity in 0–1; an account's authenticity is
//! `100 · Π(1 − severity)` over the flags naming it as a subject (100 = no
//! evidence). Signals, and why they are weighted as they are:
//!
//! - `engagement_pod` (up to 1.0): a group of ≥ `pod_min_size` accounts tied by
//!   *quick* reciprocal engagement of each other's posts (a tie: ≥ `pod_min_quick`
//!   engagements within `pod_quick_secs` of the post each way, ≥ `pod_min_quick_pair`
//!   both ways together, and at least `pod_min_quick_share` of the pair's engagements
//!   of each other's posts quick — friends answer each other too, but over hours), dense
//!   (a k-core with tie density ≥ `pod_min_density`; pods sharing a few members are split
//!   where they meet, each member kept with the group it shares most ties with), and
//!   getting most of its engagement from itself while it is active (concentration ≥
//!   `pod_min_concentration`: engagement from the group or from tie partners, counted
//!   between the group's first and last engagement of each other). Severity = density ×
//!   concentration.
//! - `reciprocity_ring` (up to 0.8): the same for an isolated pair.
//! - `follow_churn` (up to 1.0): follows undone within `churn_window_days`, many
//!   and a large share of the account's follows (the follow-for-follow tactic).
//! - `follower_burst` (up to 0.5) / `engagement_burst` (up to 0.3): 24-hour windows far
//!   above the account's baseline of new followers / first-time engagers (the rate outside
//!   its busiest windows, plus `burst_baseline_smoothing` per day, times `burst_factor`),
//!   counting only *new accounts* (created, or first seen in the ledger, less than
//!   `young_account_days` before; nobody counts as first seen near the ledger's start):
//!   bought followers and engagement come from such accounts, while a genuinely viral post
//!   draws established ones, and a busy conversation is many engagements from few
//!   accounts. A follower burst needs `follower_burst_min_per_day` new followers, or
//!   `follower_burst_min_inactive` that never posted or engaged (bought followers do
//!   nothing else; friends joining together talk to each other). Up to 8 windows per
//!   account form one flag. Still capped low: a newcomer wave can be real.
//! - `young_engagers` (up to 0.5): a large share of received engagement from
//!   accounts younger than `young_account_days`, or from accounts flagged for follow
//!   churn while they churned (a pod's engagement of itself is the pod flag's evidence
//!   already). The account may be a victim of bought engagement, so this is capped too.

use std::collections::{HashMap, HashSet};

use lift_domain::Micros;

mod bursts;
mod churn;
mod pods;

use bursts::bursts;
use churn::churn;
use pods::pods_and_rings;

use super::params::ModelParams;
use super::state::{NONE, Node, State};
use super::stats::quantize;

const MAX_OFFSETS: usize = 100;
const MAX_ACCOUNTS: usize = 50;
const DAY: Micros = 86_400_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlagKind {
    ReciprocityRing,
    EngagementPod,
    FollowerBurst,
    EngagementBurst,
    FollowChurn,
    YoungEngagers,
}

impl FlagKind {
    pub fn name(self) -> &'static str {
        match self {
            FlagKind::ReciprocityRing => "reciprocity_ring",
            FlagKind::EngagementPod => "engagement_pod",
            FlagKind::FollowerBurst => "follower_burst",
            FlagKind::EngagementBurst => "engagement_burst",
            FlagKind::FollowChurn => "follow_churn",
            FlagKind::YoungEngagers => "young_engagers",
        }
    }
}

/// One piece of gaming evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub kind: FlagKind,
    /// 0–1.
    pub severity: f64,
    pub description: String,
    /// Accounts whose authenticity this flag lowers.
    pub subjects: Vec<Node>,
    /// Accounts involved (subjects first), possibly truncated.
    pub accounts: Vec<Node>,
    /// Offsets of the events that are the evidence, possibly truncated.
    pub event_offsets: Vec<u64>,
    pub window_start: Micros,
    pub window_end: Micros,
}

/// Authenticity of every account and the flags behind it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Authenticity {
    pub flags: Vec<Flag>,
    /// 0–100 per node, on the value grid.
    pub values: Vec<f64>,
    /// Share of received engagement from young or flagged accounts, per node.
    pub suspicious_share: Vec<f32>,
}

impl Authenticity {
    /// Weight given to engagement *from* account `n` in the other dimensions.
    pub fn weight(values: &[f64], n: Node, params: &ModelParams) -> f64 {
        let v = values.get(n as usize).copied().unwrap_or(100.0) / 100.0;
        v.max(params.min_authenticity_weight).min(1.0)
    }
}

/// Detects gaming in the events of the window `(window_start, as_of]`.
pub fn assess(state: &State, p: &ModelParams, as_of: Micros, window_start: Micros) -> Authenticity {
    let n = state.len();
    let in_window = |at: Micros| at > window_start && at <= as_of;
    let mut flags = Vec::new();

    pods_and_rings(state, p, &in_window, &mut flags);
    churn(state, p, &in_window, &mut flags);
    bursts(state, p, as_of, &in_window, &mut flags);

    // Engagement from young or already-flagged accounts.
    // A churning account's engagement counts while it churns (inside its flag's time window),
    // not the real messages it sent before or after. Pods are left out: their engagement of
    // each other is the pod flag's own evidence, and a member's messages to people outside
    // the pod are not pod behaviour.
    let mut flagged: HashMap<Node, Vec<(Micros, Micros)>> = HashMap::new();
    for f in flags.iter().filter(|f| f.kind == FlagKind::FollowChurn) {
        for &s in &f.subjects {
            flagged.entry(s).or_default().push((f.window_start, f.window_end));
        }
    }
    let young_days = (p.young_account_days * DAY as f64) as Micros;
    let is_suspicious = |actor: Node, at: Micros| {
        flagged.get(&actor).is_some_and(|w| w.iter().any(|&(a, b)| (a..=b).contains(&at)))
            || state.accounts[actor as usize].created_at.is_some_and(|c| at.saturating_sub(c) < young_days)
    };
    let mut total = vec![0u32; n];
    let mut bad = vec![0u32; n];
    for e in &state.engagements {
        let t = state.target_of(e);
        if t == NONE || t == e.actor || !in_window(e.at) {
            continue;
        }
        total[t as usize] += 1;
        if is_suspicious(e.actor, e.at) {
            bad[t as usize] += 1;
        }
    }
    let suspicious_share: Vec<f32> =
        (0..n).map(|i| if total[i] == 0 { 0.0 } else { bad[i] as f32 / total[i] as f32 }).collect();
    let targets: HashSet<Node> = (0..n as Node)
        .filter(|&i| {
            total[i as usize] >= p.young_min_engagements && f64::from(suspicious_share[i as usize]) >= p.young_min_share
        })
        .collect();
    if !targets.is_empty() {
        let mut ev: HashMap<Node, (Vec<u64>, Vec<Node>, Micros, Micros)> = HashMap::new();
        for e in &state.engagements {
            let t = state.target_of(e);
            if !targets.contains(&t) || !in_window(e.at) || !is_suspicious(e.actor, e.at) {
                continue;
            }
            let slot = ev.entry(t).or_insert_with(|| (Vec::new(), vec![t], e.at, e.at));
            if slot.0.len() < MAX_OFFSETS {
                slot.0.push(e.offset);
            }
            if slot.1.len() < MAX_ACCOUNTS && !slot.1.contains(&e.actor) {
                slot.1.push(e.actor);
            }
            slot.2 = slot.2.min(e.at);
            slot.3 = slot.3.max(e.at);
        }
        let mut ev: Vec<_> = ev.into_iter().collect();
        ev.sort_unstable_by_key(|e| e.0);
        for (t, (offsets, accounts, a, b)) in ev {
            let share = f64::from(suspicious_share[t as usize]);
            flags.push(Flag {
                kind: FlagKind::YoungEngagers,
                severity: 0.5 * share,
                description: format!(
                    "{:.0} % of {} engagements received came from accounts younger than {} days or flagged for gaming",
                    100.0 * share,
                    total[t as usize],
                    p.young_account_days
                ),
                subjects: vec![t],
                accounts,
                event_offsets: offsets,
                window_start: a,
                window_end: b,
            });
        }
    }

    let mut keep = vec![1.0f64; n];
    for f in &flags {
        for &s in &f.subjects {
            keep[s as usize] *= 1.0 - f.severity.clamp(0.0, 1.0);
        }
    }
    let values = keep.into_iter().map(|k| quantize(100.0 * k)).collect();
    Authenticity { flags, values, suspicious_share }
}
