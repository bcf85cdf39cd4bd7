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

fn pods_and_rings(state: &State, p: &ModelParams, in_window: &impl Fn(Micros) -> bool, flags: &mut Vec<Flag>) {
    let quick = (p.pod_quick_secs * 1e6) as Micros;
    // Per (engager, author): quick engagements of the author's posts, and all of them.
    let mut pairs: HashMap<(Node, Node), (u32, u32)> = HashMap::new();
    for e in &state.engagements {
        if e.post == NONE || !in_window(e.at) {
            continue;
        }
        let Some(post) = state.posts.get(e.post as usize) else { continue };
        if post.author == NONE || post.author == e.actor {
            continue;
        }
        let dt = e.at - post.at;
        let slot = pairs.entry((e.actor, post.author)).or_default();
        slot.1 += 1;
        if (0..=quick).contains(&dt) {
            slot.0 += 1;
        }
    }
    // A tie: quick engagement both ways, enough of it, and most of the pair's engagement of
    // each other's posts quick (friends answer each other too, but over hours, not on cue).
    let each = p.pod_min_quick.max(1);
    let mut adj: HashMap<Node, Vec<Node>> = HashMap::new();
    for (&(a, b), &(qa, na)) in &pairs {
        let (qb, nb) = pairs.get(&(b, a)).copied().unwrap_or((0, 0));
        if a < b
            && qa >= each
            && qb >= each
            && qa + qb >= p.pod_min_quick_pair
            && f64::from(qa + qb) >= p.pod_min_quick_share * f64::from(na + nb)
        {
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
    let min_size = p.pod_min_size.max(3) as usize;
    let mut groups: Vec<(FlagKind, Vec<Node>)> = Vec::new();
    for comp in components(&adj, None) {
        if comp.len() == 2 {
            groups.push((FlagKind::ReciprocityRing, comp));
            continue;
        }
        // Peel to the k-core so a dense pod inside a loose cluster is still found.
        for core in components(&adj, Some(&k_core(&adj, &comp, min_size - 1))) {
            if core.len() < min_size {
                continue;
            }
            // Pods that share a few members form one sparse component: split it into its
            // dense communities, each judged on its own.
            if density(&adj, &core) >= p.pod_min_density {
                groups.push((FlagKind::EngagementPod, core));
                continue;
            }
            groups.extend(split_overlapping(&adj, &core, min_size).into_iter().map(|g| (FlagKind::EngagementPod, g)));
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
        // From the group, or from a partner of a reciprocal quick tie left outside its core.
        if group_of.get(&e.actor) == Some(&gt) || adj.get(&t).is_some_and(|n| n.binary_search(&e.actor).is_ok()) {
            slot.0 += 1;
        }
    }
    for (gi, (kind, members)) in groups.into_iter().enumerate() {
        let s = members.len();
        let density = density(&adj, &members);
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

/// The members of `group` left after repeatedly removing those with fewer than `k` ties inside.
fn k_core(adj: &HashMap<Node, Vec<Node>>, group: &[Node], k: usize) -> HashSet<Node> {
    let mut alive: HashSet<Node> = group.iter().copied().collect();
    loop {
        let drop: Vec<Node> =
            alive.iter().copied().filter(|v| adj[v].iter().filter(|u| alive.contains(u)).count() < k).collect();
        if drop.is_empty() {
            return alive;
        }
        for v in drop {
            alive.remove(&v);
        }
    }
}

/// Share of the possible ties inside `members` (sorted) that exist.
fn density(adj: &HashMap<Node, Vec<Node>>, members: &[Node]) -> f64 {
    let s = members.len();
    if s < 2 {
        return 0.0;
    }
    let ties: usize =
        members.iter().map(|m| adj[m].iter().filter(|u| members.binary_search(u).is_ok()).count()).sum::<usize>() / 2;
    ties as f64 / (s * (s - 1) / 2) as f64
}

/// Splits `members` (sorted) where pods sharing a few members meet: keeps only ties whose
/// two ends share most of their ties inside (closed neighbourhoods, Jaccard above ½), so a
/// member of two pods stays with the one it shares more with, and returns the dense
/// groups left (k-cores of the components, at least `min_size` members each).
fn split_overlapping(adj: &HashMap<Node, Vec<Node>>, members: &[Node], min_size: usize) -> Vec<Vec<Node>> {
    let inside = |v: Node| -> Vec<Node> {
        let mut n: Vec<Node> = adj[&v].iter().copied().filter(|u| members.binary_search(u).is_ok()).collect();
        n.push(v);
        n.sort_unstable();
        n
    };
    let hoods: HashMap<Node, Vec<Node>> = members.iter().map(|&v| (v, inside(v))).collect();
    let mut kept: HashMap<Node, Vec<Node>> = HashMap::new();
    for &v in members {
        for &u in &hoods[&v] {
            if u == v {
                continue;
            }
            let (a, b) = (&hoods[&v], &hoods[&u]);
            let common = a.iter().filter(|x| b.binary_search(x).is_ok()).count();
            if 2 * common > a.len() + b.len() - common {
                kept.entry(v).or_default().push(u);
            }
        }
    }
    let mut out = Vec::new();
    for comp in components(&kept, None) {
        let alive = k_core(&kept, &comp, min_size - 1);
        out.extend(components(&kept, Some(&alive)).into_iter().filter(|g| g.len() >= min_size));
    }
    out
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

fn bursts(state: &State, p: &ModelParams, as_of: Micros, in_window: &impl Fn(Micros) -> bool, flags: &mut Vec<Flag>) {
    // Only *new* accounts count towards a burst: created less than `young_account_days`
    // before, or never active before that. Bought followers and engagement come from
    // such accounts; a genuinely viral post draws established ones, so it does not burst.
    let young = (p.young_account_days * DAY as f64) as Micros;
    let mut first_seen = vec![Micros::MAX; state.len()];
    // Accounts that posted or engaged anything in the window: a bought follower does neither.
    let mut active = vec![false; state.len()];
    for e in &state.engagements {
        first_seen[e.actor as usize] = first_seen[e.actor as usize].min(e.at);
        active[e.actor as usize] |= in_window(e.at);
        // Being engaged is evidence the account existed then, too (a quiet reader who
        // received messages months ago is not a new account when it first answers).
        let t = state.target_of(e);
        if t != NONE {
            first_seen[t as usize] = first_seen[t as usize].min(e.at);
        }
    }
    for post in &state.posts {
        if post.author != NONE {
            first_seen[post.author as usize] = first_seen[post.author as usize].min(post.at);
            active[post.author as usize] |= in_window(post.at);
        }
    }
    for f in &state.follows {
        first_seen[f.follower as usize] = first_seen[f.follower as usize].min(f.at);
        first_seen[f.followee as usize] = first_seen[f.followee as usize].min(f.at);
    }
    // Within `young` of the ledger's first event nobody's age is known from activity: at
    // the start of the record everyone is "first seen".
    let ledger_start = first_seen.iter().copied().min().unwrap_or(Micros::MAX);
    let is_new = |who: Node, at: Micros| {
        let seen = first_seen[who as usize];
        (seen > at.saturating_sub(young) && seen.saturating_sub(ledger_start) >= young)
            || state.accounts[who as usize].created_at.is_some_and(|c| at.saturating_sub(c) < young)
    };
    // (target, time, offset, source, inactive) for follows and engagements received from new accounts.
    let mut follows: Vec<BurstRow> = state
        .follows
        .iter()
        .filter(|f| !f.unfollow && in_window(f.at) && is_new(f.follower, f.at))
        .map(|f| (f.followee, f.at, f.offset, f.follower, !active[f.follower as usize]))
        .collect();
    let mut engagements: Vec<BurstRow> = state
        .engagements
        .iter()
        .filter(|e| in_window(e.at) && is_new(e.actor, e.at))
        .filter_map(|e| {
            let t = state.target_of(e);
            (t != NONE && t != e.actor).then_some((t, e.at, e.offset, e.actor, false))
        })
        .collect();
    // A conversation is many engagements from few accounts; bought engagement is many *new*
    // engagers at once. Count each engager once, when it first engaged.
    engagements.sort_unstable_by_key(|r| (r.0, r.3, r.1, r.2));
    engagements.dedup_by_key(|r| (r.0, r.3));
    for (rows, kind, cap, what, min, min_inactive) in [
        (
            &mut follows,
            FlagKind::FollowerBurst,
            0.5,
            "followers that are new accounts",
            p.follower_burst_min_per_day,
            p.follower_burst_min_inactive,
        ),
        (
            &mut engagements,
            FlagKind::EngagementBurst,
            0.3,
            "first-time engagers that are new accounts",
            p.burst_min_per_day,
            0,
        ),
    ] {
        rows.sort_unstable_by_key(|r| (r.0, r.1, r.2));
        let min = min.max(1) as usize;
        let min_inactive = if min_inactive == 0 { usize::MAX } else { min_inactive as usize };
        let mut i = 0;
        while i < rows.len() {
            let who = rows[i].0;
            let mut j = i;
            while j < rows.len() && rows[j].0 == who {
                j += 1;
            }
            let acct = &rows[i..j];
            i = j;
            // The busiest 24-hour windows, and the account's rate outside them since its first such event.
            let windows = busiest_windows(acct, min.min(min_inactive), MAX_BURSTS);
            if windows.is_empty() {
                continue;
            }
            let in_bursts: usize = windows.iter().map(|w| w.1 - w.0).sum();
            let days = (as_of - acct[0].1) as f64 / DAY as f64 + 1.0;
            let baseline = (acct.len() - in_bursts) as f64 / (days - windows.len() as f64).max(1.0);
            let expected = p.burst_factor * (baseline + p.burst_baseline_smoothing);
            let bursts: Vec<&[BurstRow]> = windows
                .iter()
                .map(|&(a, b)| &acct[a..b])
                .filter(|w| {
                    let inactive = w.iter().filter(|r| r.4).count();
                    (w.len() >= min || inactive >= min_inactive) && w.len() as f64 >= expected
                })
                .collect();
            let Some(best) = bursts.iter().map(|w| w.len()).max() else { continue };
            let best_f = best as f64;
            let evidence: Vec<&BurstRow> = bursts.iter().flat_map(|w| w.iter()).collect();
            let mut accounts = vec![who];
            for r in &evidence {
                if accounts.len() >= MAX_ACCOUNTS {
                    break;
                }
                if !accounts.contains(&r.3) {
                    accounts.push(r.3);
                }
            }
            let more = if bursts.len() > 1 {
                format!(" ({} such days, {} in all)", bursts.len(), evidence.len())
            } else {
                String::new()
            };
            flags.push(Flag {
                kind,
                severity: cap * (1.0 - expected / best_f).clamp(0.0, 1.0).max(0.1),
                description: format!("{best} {what} within 24 hours{more} against a baseline of {baseline:.1} per day"),
                subjects: vec![who],
                accounts,
                event_offsets: evidence.iter().take(MAX_OFFSETS).map(|r| r.2).collect(),
                window_start: evidence.iter().map(|r| r.1).min().unwrap_or(as_of),
                window_end: evidence.iter().map(|r| r.1).max().unwrap_or(as_of),
            });
        }
    }
}

/// (target, time, offset, source, source inactive) of one follow or engagement from a new account.
type BurstRow = (Node, Micros, u64, Node, bool);

/// Most 24-hour bursts reported per account and kind.
const MAX_BURSTS: usize = 8;

/// Up to `max` disjoint 24-hour windows of `rows` (sorted by time) holding at least `min`
/// rows each, busiest first, as index ranges.
fn busiest_windows(rows: &[BurstRow], min: usize, max: usize) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    while out.len() < max {
        let mut best: Option<(usize, usize)> = None;
        // Runs of rows not yet taken, each searched with two pointers.
        let mut taken: Vec<(usize, usize)> = out.clone();
        taken.sort_unstable();
        let mut start = 0;
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for &(a, b) in &taken {
            runs.push((start, a));
            start = b;
        }
        runs.push((start, rows.len()));
        for (a, b) in runs {
            let mut hi = a;
            for lo in a..b {
                hi = hi.max(lo);
                while hi < b && rows[hi].1 - rows[lo].1 < DAY {
                    hi += 1;
                }
                if best.is_none_or(|(x, y)| hi - lo > y - x) {
                    best = Some((lo, hi));
                }
            }
        }
        match best {
            Some((a, b)) if b - a >= min.max(1) => out.push((a, b)),
            _ => break,
        }
    }
    out
}
