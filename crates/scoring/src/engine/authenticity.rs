//! Authenticity: evidence of gaming, as flags that carry the accounts, events
//! and time window behind them.
//!
//! Each flag has a severity in 0–1; an account's authenticity is
//! `100 · Π(1 − severity)` over the flags naming it as a subject (100 = no
//! evidence). Signals, and why they are weighted as they are:
//!
//! - `engagement_pod` (up to 1.0): a group of ≥ `pod_min_size` accounts tied by
//!   *quick* reciprocal engagement (each way ≥ `pod_min_quick` engagements within
//!   `pod_quick_secs` of the post), dense (a k-core with tie density ≥
//!   `pod_min_density`), and getting most of its engagement from itself while it
//!   is active (concentration ≥ `pod_min_concentration`, counted between the
//!   group's first and last engagement of each other). Severity = density × concentration.
//! - `reciprocity_ring` (up to 0.8): the same for an isolated pair.
//! - `follow_churn` (up to 1.0): follows undone within `churn_window_days`, many
//!   and a large share of the account's follows (the follow-for-follow tactic).
//! - `follower_burst` (up to 0.5) / `engagement_burst` (up to 0.3): one day far
//!   above the account's baseline of new followers / first-time engagers, counting
//!   only *new accounts* (created, or first active, less than `young_account_days`
//!   before): bought followers and engagement come from such accounts, while a
//!   genuinely viral post draws established ones, and a busy conversation is many
//!   engagements from few accounts. Still capped low: a newcomer wave can be real.
//! - `young_engagers` (up to 0.5): a large share of received engagement from
//!   accounts younger than `young_account_days` or flagged above. The account
//!   may be a victim of bought engagement, so this is capped too.

use std::collections::{HashMap, HashSet};

use lift_domain::Micros;

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
    bursts(state, p, as_of, window_start, &in_window, &mut flags);

    // Engagement from young or already-flagged accounts.
    let flagged: HashSet<Node> = flags
        .iter()
        .filter(|f| matches!(f.kind, FlagKind::EngagementPod | FlagKind::ReciprocityRing | FlagKind::FollowChurn))
        .flat_map(|f| f.subjects.iter().copied())
        .collect();
    let young_days = (p.young_account_days * DAY as f64) as Micros;
    let is_suspicious = |actor: Node, at: Micros| {
        flagged.contains(&actor)
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

fn pods_and_rings(state: &State, p: &ModelParams, in_window: &impl Fn(Micros) -> bool, flags: &mut Vec<Flag>) {
    let quick = (p.pod_quick_secs * 1e6) as Micros;
    let mut quick_pairs: HashMap<(Node, Node), u32> = HashMap::new();
    for e in &state.engagements {
        if e.post == NONE || !in_window(e.at) {
            continue;
        }
        let Some(post) = state.posts.get(e.post as usize) else { continue };
        if post.author == NONE || post.author == e.actor {
            continue;
        }
        let dt = e.at - post.at;
        if (0..=quick).contains(&dt) {
            *quick_pairs.entry((e.actor, post.author)).or_default() += 1;
        }
    }
    let min = p.pod_min_quick.max(1);
    let mut adj: HashMap<Node, Vec<Node>> = HashMap::new();
    for (&(a, b), &q) in &quick_pairs {
        if a < b && q >= min && quick_pairs.get(&(b, a)).copied().unwrap_or(0) >= min {
            adj.entry(a).or_default().push(b);
            adj.entry(b).or_default().push(a);
        }
    }
    if adj.is_empty() {
        return;
    }
    for v in adj.values_mut() {
        v.sort_unstable();
    }
    let mut groups: Vec<(FlagKind, Vec<Node>)> = Vec::new();
    for comp in components(&adj, None) {
        if comp.len() == 2 {
            groups.push((FlagKind::ReciprocityRing, comp));
            continue;
        }
        // Peel to the k-core so a dense pod inside a loose cluster is still found.
        let k = p.pod_min_size.max(3) as usize - 1;
        let mut alive: HashSet<Node> = comp.iter().copied().collect();
        loop {
            let drop: Vec<Node> =
                alive.iter().copied().filter(|v| adj[v].iter().filter(|u| alive.contains(u)).count() < k).collect();
            if drop.is_empty() {
                break;
            }
            for v in drop {
                alive.remove(&v);
            }
        }
        for core in components(&adj, Some(&alive)) {
            if core.len() >= p.pod_min_size.max(3) as usize {
                groups.push((FlagKind::EngagementPod, core));
            }
        }
    }
    if groups.is_empty() {
        return;
    }
    // Concentration: the share of each member's received engagement that comes from its group.
    let mut group_of: HashMap<Node, usize> = HashMap::new();
    for (gi, (_, members)) in groups.iter().enumerate() {
        for &m in members {
            group_of.insert(m, gi);
        }
    }
    // It is measured over the group's active period (first to last engagement inside the
    // group): a pod run for two weeks by accounts with a long real history is still a pod.
    let mut evidence: Vec<(Vec<u64>, Micros, Micros)> = vec![(Vec::new(), Micros::MAX, Micros::MIN); groups.len()];
    for e in &state.engagements {
        if !in_window(e.at) {
            continue;
        }
        let t = state.target_of(e);
        let Some(&gt) = group_of.get(&t) else { continue };
        if group_of.get(&e.actor) == Some(&gt) {
            let ev = &mut evidence[gt];
            if ev.0.len() < MAX_OFFSETS {
                ev.0.push(e.offset);
            }
            ev.1 = ev.1.min(e.at);
            ev.2 = ev.2.max(e.at);
        }
    }
    let mut received: HashMap<Node, (u32, u32)> = HashMap::new();
    for e in &state.engagements {
        let t = state.target_of(e);
        let Some(&gt) = group_of.get(&t) else { continue };
        if !in_window(e.at) || e.at < evidence[gt].1 || e.at > evidence[gt].2 {
            continue;
        }
        let slot = received.entry(t).or_default();
        slot.1 += 1;
        if group_of.get(&e.actor) == Some(&gt) {
            slot.0 += 1;
        }
    }
    for (gi, (kind, members)) in groups.into_iter().enumerate() {
        let s = members.len();
        let ties: usize =
            members.iter().map(|m| adj[m].iter().filter(|u| members.binary_search(u).is_ok()).count()).sum::<usize>()
                / 2;
        let density = ties as f64 / (s * (s - 1) / 2) as f64;
        let conc = members
            .iter()
            .map(|m| received.get(m).map_or(0.0, |(g, t)| f64::from(*g) / f64::from((*t).max(1))))
            .sum::<f64>()
            / s as f64;
        let (severity, ok) = match kind {
            FlagKind::EngagementPod => {
                (density * conc, density >= p.pod_min_density && conc >= p.pod_min_concentration)
            }
            _ => (0.8 * conc, conc >= p.pod_min_concentration),
        };
        if !ok {
            continue;
        }
        let (offsets, a, b) = std::mem::take(&mut evidence[gi]);
        let description = match kind {
            FlagKind::EngagementPod => format!(
                "{s} accounts engage each other's posts within {} s (tie density {density:.2}); {:.0} % of their received engagement comes from the group",
                p.pod_quick_secs,
                100.0 * conc
            ),
            _ => format!(
                "2 accounts repeatedly engage each other's posts within {} s; {:.0} % of their received engagement comes from each other",
                p.pod_quick_secs,
                100.0 * conc
            ),
        };
        flags.push(Flag {
            kind,
            severity,
            description,
            accounts: members.iter().copied().take(MAX_ACCOUNTS).collect(),
            subjects: members,
            event_offsets: offsets,
            window_start: a,
            window_end: b,
        });
    }
}

/// Connected components (sorted members, sorted by first member) of `adj`, restricted to `only`.
fn components(adj: &HashMap<Node, Vec<Node>>, only: Option<&HashSet<Node>>) -> Vec<Vec<Node>> {
    let mut keys: Vec<Node> = adj.keys().copied().filter(|k| only.is_none_or(|o| o.contains(k))).collect();
    keys.sort_unstable();
    let mut seen: HashSet<Node> = HashSet::new();
    let mut out = Vec::new();
    for k in keys {
        if !seen.insert(k) {
            continue;
        }
        let mut comp = vec![k];
        let mut i = 0;
        while i < comp.len() {
            for &u in &adj[&comp[i]] {
                if only.is_none_or(|o| o.contains(&u)) && seen.insert(u) {
                    comp.push(u);
                }
            }
            i += 1;
        }
        comp.sort_unstable();
        out.push(comp);
    }
    out
}

/// (count, offsets, accounts, first, last) gathered for one account.
type Evidence = (u32, Vec<u64>, Vec<Node>, Micros, Micros);

fn churn(state: &State, p: &ModelParams, in_window: &impl Fn(Micros) -> bool, flags: &mut Vec<Flag>) {
    let window = (p.churn_window_days * DAY as f64) as Micros;
    let mut open: HashMap<(Node, Node), Micros> = HashMap::new();
    let mut follows: HashMap<Node, u32> = HashMap::new();
    let mut churned: HashMap<Node, Evidence> = HashMap::new();
    for f in &state.follows {
        if !in_window(f.at) {
            continue;
        }
        let key = (f.follower, f.followee);
        if !f.unfollow {
            open.insert(key, f.at);
            *follows.entry(f.follower).or_default() += 1;
        } else if let Some(t) = open.remove(&key)
            && f.at - t <= window
        {
            let slot = churned.entry(f.follower).or_insert_with(|| (0, Vec::new(), vec![f.follower], f.at, f.at));
            slot.0 += 1;
            if slot.1.len() < MAX_OFFSETS {
                slot.1.push(f.offset);
            }
            if slot.2.len() < MAX_ACCOUNTS && !slot.2.contains(&f.followee) {
                slot.2.push(f.followee);
            }
            slot.3 = slot.3.min(t);
            slot.4 = slot.4.max(f.at);
        }
    }
    let mut churned: Vec<_> = churned.into_iter().collect();
    churned.sort_unstable_by_key(|c| c.0);
    for (who, (count, offsets, accounts, a, b)) in churned {
        let total = follows.get(&who).copied().unwrap_or(0).max(1);
        let share = f64::from(count) / f64::from(total);
        if count >= p.churn_min && share >= p.churn_min_share {
            flags.push(Flag {
                kind: FlagKind::FollowChurn,
                severity: share.min(1.0),
                description: format!("{count} of {total} follows were undone within {} days", p.churn_window_days),
                subjects: vec![who],
                accounts,
                event_offsets: offsets,
                window_start: a,
                window_end: b,
            });
        }
    }
}

fn bursts(
    state: &State,
    p: &ModelParams,
    as_of: Micros,
    window_start: Micros,
    in_window: &impl Fn(Micros) -> bool,
    flags: &mut Vec<Flag>,
) {
    let day = |at: Micros| ((at - window_start) / DAY) as u32;
    // Only *new* accounts count towards a burst: created less than `young_account_days`
    // before, or never active before that. Bought followers and engagement come from
    // such accounts; a genuinely viral post draws established ones, so it does not burst.
    let young = (p.young_account_days * DAY as f64) as Micros;
    let mut first_seen = vec![Micros::MAX; state.len()];
    for e in &state.engagements {
        first_seen[e.actor as usize] = first_seen[e.actor as usize].min(e.at);
    }
    for post in &state.posts {
        if post.author != NONE {
            first_seen[post.author as usize] = first_seen[post.author as usize].min(post.at);
        }
    }
    for f in &state.follows {
        first_seen[f.follower as usize] = first_seen[f.follower as usize].min(f.at);
    }
    let is_new = |who: Node, at: Micros| {
        first_seen[who as usize] > at.saturating_sub(young)
            || state.accounts[who as usize].created_at.is_some_and(|c| at.saturating_sub(c) < young)
    };
    // (target, day, offset, source, time) for follows and engagements received from new accounts.
    let mut follows: Vec<(Node, u32, u64, Node, Micros)> = state
        .follows
        .iter()
        .filter(|f| !f.unfollow && in_window(f.at) && is_new(f.follower, f.at))
        .map(|f| (f.followee, day(f.at), f.offset, f.follower, f.at))
        .collect();
    let mut engagements: Vec<(Node, u32, u64, Node, Micros)> = state
        .engagements
        .iter()
        .filter(|e| in_window(e.at) && is_new(e.actor, e.at))
        .filter_map(|e| {
            let t = state.target_of(e);
            (t != NONE && t != e.actor).then(|| (t, day(e.at), e.offset, e.actor, e.at))
        })
        .collect();
    // A conversation is many engagements from few accounts; bought engagement is many *new*
    // engagers at once. Count each engager once, on the day it first engaged.
    engagements.sort_unstable_by_key(|r| (r.0, r.3, r.4, r.2));
    engagements.dedup_by_key(|r| (r.0, r.3));
    let last_day = day(as_of);
    for (rows, kind, cap, what, min) in [
        (&mut follows, FlagKind::FollowerBurst, 0.5, "followers that are new accounts", p.follower_burst_min_per_day),
        (
            &mut engagements,
            FlagKind::EngagementBurst,
            0.3,
            "first-time engagers that are new accounts",
            p.burst_min_per_day,
        ),
    ] {
        rows.sort_unstable_by_key(|r| (r.0, r.1, r.2));
        let mut i = 0;
        while i < rows.len() {
            let who = rows[i].0;
            let mut j = i;
            while j < rows.len() && rows[j].0 == who {
                j += 1;
            }
            let acct = &rows[i..j];
            // The busiest day, and the mean of the other days since the account's first such event.
            let (mut best, mut best_start, mut k) = (0usize, 0usize, 0usize);
            while k < acct.len() {
                let mut m = k;
                while m < acct.len() && acct[m].1 == acct[k].1 {
                    m += 1;
                }
                if m - k > best {
                    best = m - k;
                    best_start = k;
                }
                k = m;
            }
            let span = f64::from(last_day.saturating_sub(acct[0].1) + 1);
            let baseline = (acct.len() - best) as f64 / (span - 1.0).max(1.0);
            let best_f = best as f64;
            if best_f >= f64::from(min) && best_f >= p.burst_factor * (baseline + 1.0) {
                let rows_of_day = &acct[best_start..best_start + best];
                let mut accounts = vec![who];
                for r in rows_of_day {
                    if accounts.len() >= MAX_ACCOUNTS {
                        break;
                    }
                    if !accounts.contains(&r.3) {
                        accounts.push(r.3);
                    }
                }
                flags.push(Flag {
                    kind,
                    severity: cap * (1.0 - p.burst_factor * (baseline + 1.0) / best_f).clamp(0.0, 1.0).max(0.1),
                    description: format!("{best} {what} in one day against a baseline of {baseline:.1} per day"),
                    subjects: vec![who],
                    accounts,
                    event_offsets: rows_of_day.iter().take(MAX_OFFSETS).map(|r| r.2).collect(),
                    window_start: rows_of_day.iter().map(|r| r.4).min().unwrap_or(as_of),
                    window_end: rows_of_day.iter().map(|r| r.4).max().unwrap_or(as_of),
                });
            }
            i = j;
        }
    }
}
