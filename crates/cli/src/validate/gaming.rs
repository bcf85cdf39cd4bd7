//! The gaming benchmark: engagement pods, follower buying and decoys injected
//! into a real (or generated) network, and each detector scored against the
//! planted truth at account level.
//!
//! What is planted (all seeded, all inside the last four weeks of the base):
//! - **Pods**: groups of 4–30 real accounts that post and engage each other's
//!   posts on a schedule. Cadence varies by pod: fast (seconds to a minute),
//!   medium (1–5 minutes) and slow (3–15 minutes, partly beyond the quick
//!   window); participation 50–100 %; about a third share members with an
//!   earlier pod.
//! - **Follower buying**: a real account gains 15–400 followers that are brand
//!   new accounts (created days before) arriving within hours, in one to three
//!   batches; a third of the fakes also follow a random account as cover.
//! - **Decoys that must not be flagged**: tight friend groups of real accounts
//!   that post and answer each other for weeks without synchronised timing
//!   (answers after a median of 30 minutes); genuine viral posts engaged once
//!   each by 80–400 established accounts within a day; organic newcomers who
//!   sign up and follow and message a handful of accounts over weeks.
//!
//! Scores per account: a detector's score is the highest severity of its flags
//! naming the account (0 without one); authenticity's is `100 − authenticity`.
//! The shipped threshold is the detector's own: a flag raised (score > 0); for
//! authenticity as a whole, any flag at all (authenticity below 100). The fake
//! follower accounts are scored but left out of every population: they are
//! not people, and neither a detection nor a miss of them means anything here.

use std::collections::HashMap;

use lift_domain::event::EngagementKind;
use lift_scoring::engine::{FlagKind, ModelParams, Snapshot, compute};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::world::{DAY_SECS, Ledger, lognormal_secs};

/// What an account is in the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A real account nothing was injected for.
    Untouched,
    PodMember,
    /// Bought followers.
    Buyer,
    /// A bought follower (not a person; left out of every population).
    Fake,
    FriendDecoy,
    /// The author of a genuine viral post.
    ViralDecoy,
    /// A real account that engaged a viral post once.
    ViralEngager,
    Newcomer,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Untouched => "untouched real accounts",
            Role::PodMember => "pod members",
            Role::Buyer => "follower buyers",
            Role::Fake => "bought followers",
            Role::FriendDecoy => "decoy: tight friend groups",
            Role::ViralDecoy => "decoy: genuine viral posts",
            Role::ViralEngager => "real engagers of viral posts",
            Role::Newcomer => "decoy: organic newcomers",
        }
    }
}

/// How much to plant.
#[derive(Debug, Clone, Copy)]
pub struct GamingOptions {
    pub pods: usize,
    pub buyers: usize,
    pub friend_groups: usize,
    pub viral: usize,
    pub newcomers: usize,
    pub seed: u64,
}

impl GamingOptions {
    /// The full benchmark of the report.
    pub fn full(seed: u64) -> Self {
        Self { pods: 60, buyers: 40, friend_groups: 30, viral: 6, newcomers: 150, seed }
    }
}

/// How quickly a planted pod's members engage each other's posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cadence {
    /// 5–60 s after the post.
    Fast,
    /// 1–5 minutes.
    Medium,
    /// 3–15 minutes.
    Slow,
}

impl Cadence {
    pub fn name(self) -> &'static str {
        match self {
            Cadence::Fast => "fast (5–60 s)",
            Cadence::Medium => "medium (1–5 min)",
            Cadence::Slow => "slow (3–15 min)",
        }
    }
}

/// One planted pod, for the breakdown of what is caught and what is missed.
#[derive(Debug, Clone)]
pub struct PlantedPod {
    pub members: Vec<String>,
    pub cadence: Cadence,
    /// Chance that a member engages a given post of another.
    pub participation: f64,
    pub posts_per_day: f64,
    pub days: i64,
}

/// One planted follower purchase.
#[derive(Debug, Clone)]
pub struct PlantedBuyer {
    pub account: String,
    pub fakes: usize,
    pub batches: usize,
}

/// Everything `inject` planted.
#[derive(Debug, Clone, Default)]
pub struct Planted {
    pub roles: HashMap<String, Role>,
    pub pods: Vec<PlantedPod>,
    pub buyers: Vec<PlantedBuyer>,
}

/// Plants everything into `l` and returns each touched account's role and what was planted.
pub fn inject(l: &mut Ledger, o: &GamingOptions) -> Planted {
    let mut planted = Planted::default();
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let mut pool = l.accounts.clone();
    pool.shuffle(&mut rng);
    let mut roles: HashMap<String, Role> = HashMap::new();
    let from = l.end - 28 * DAY_SECS;
    let mut take = |n: usize, role: Role, roles: &mut HashMap<String, Role>| -> Vec<String> {
        let got: Vec<String> = pool.drain(..n.min(pool.len())).collect();
        for a in &got {
            roles.insert(a.clone(), role);
        }
        got
    };

    // Pods.
    let mut earlier: Vec<String> = Vec::new();
    for p in 0..o.pods {
        let size = if rng.random_bool(0.6) { rng.random_range(4..=10) } else { rng.random_range(11..=30) };
        let mut members: Vec<String> = Vec::new();
        if !earlier.is_empty() && rng.random_bool(0.35) {
            let k = rng.random_range(1..=3usize).min(size - 3);
            members.extend(earlier.choose_multiple(&mut rng, k).cloned());
        }
        let fresh = take(size - members.len(), Role::PodMember, &mut roles);
        members.extend(fresh);
        earlier.extend(members.iter().cloned());
        let (cadence, lo, hi) = match p % 3 {
            0 => (Cadence::Fast, 5, 60),
            1 => (Cadence::Medium, 60, 300),
            _ => (Cadence::Slow, 180, 900),
        };
        let participation = rng.random_range(0.5..=1.0);
        let posts_per_day = [0.5, 1.0, 1.0, 2.0][rng.random_range(0..4)];
        let days = rng.random_range(7..=27);
        planted.pods.push(PlantedPod { members: members.clone(), cadence, participation, posts_per_day, days });
        let start = from + rng.random_range(0..(28 - days)) * DAY_SECS;
        for d in 0..days {
            for (i, author) in members.iter().enumerate() {
                let posts =
                    if posts_per_day >= 1.0 { posts_per_day as usize } else { usize::from(rng.random_bool(0.5)) };
                for k in 0..posts {
                    let at = start + d * DAY_SECS + rng.random_range(8 * 3600..22 * 3600);
                    let pid = format!("pod{p}-{d}-{i}-{k}");
                    l.post(author, &pid, at);
                    for other in members.iter().filter(|m| *m != author) {
                        if rng.random_bool(participation) {
                            let kind = if rng.random_bool(0.8) { EngagementKind::Like } else { EngagementKind::Reply };
                            l.engage(kind, other, author, Some(&pid), at + rng.random_range(lo..=hi));
                        }
                    }
                }
            }
        }
    }

    // Follower buying.
    let buyers = take(o.buyers, Role::Buyer, &mut roles);
    let mut fake_id = 0usize;
    for b in &buyers {
        let total = (15.0 * (400.0f64 / 15.0).powf(rng.random::<f64>())).round() as usize;
        let batches = rng.random_range(1..=3usize);
        planted.buyers.push(PlantedBuyer { account: b.clone(), fakes: total, batches });
        for batch in 0..batches {
            let at = from + rng.random_range(0..27) * DAY_SECS + rng.random_range(0..DAY_SECS / 2);
            let spread = rng.random_range(3600..12 * 3600);
            for _ in 0..total / batches + usize::from(batch == 0) * (total % batches) {
                fake_id += 1;
                let f = format!("fake{fake_id}");
                roles.insert(f.clone(), Role::Fake);
                let created = at - rng.random_range(3600..5 * DAY_SECS);
                l.account(&f, created, created);
                l.follow(&f, b, at + rng.random_range(0..spread));
                if rng.random_bool(0.33)
                    && let Some(cover) = l.accounts.choose(&mut rng).cloned()
                {
                    l.follow(&f, &cover, at + rng.random_range(0..spread));
                }
            }
        }
    }

    // Decoy friend groups: post and answer each other for weeks, unsynchronised.
    for g in 0..o.friend_groups {
        let members = take(rng.random_range(4..=8), Role::FriendDecoy, &mut roles);
        for d in 0..28 {
            for (i, author) in members.iter().enumerate() {
                if !rng.random_bool(0.7) {
                    continue;
                }
                let at = from + d * DAY_SECS + rng.random_range(8 * 3600..23 * 3600);
                let pid = format!("friends{g}-{d}-{i}");
                l.post(author, &pid, at);
                for other in members.iter().filter(|m| *m != author) {
                    if rng.random_bool(0.5) {
                        let kind = if rng.random_bool(0.5) { EngagementKind::Like } else { EngagementKind::Reply };
                        l.engage(kind, other, author, Some(&pid), at + lognormal_secs(&mut rng, 1800.0, 1.2));
                    }
                }
            }
        }
    }

    // Genuine viral posts: established accounts each engage once within a day.
    for v in 0..o.viral {
        let author = take(1, Role::ViralDecoy, &mut roles);
        let Some(author) = author.first() else { break };
        let at = from + rng.random_range(0..26) * DAY_SECS + rng.random_range(8 * 3600..20 * 3600);
        let pid = format!("viral{v}");
        l.post(author, &pid, at);
        let n = rng.random_range(80..=400usize);
        let engagers: Vec<String> = l.accounts.choose_multiple(&mut rng, n).filter(|a| *a != author).cloned().collect();
        for e in engagers {
            roles.entry(e.clone()).or_insert(Role::ViralEngager);
            let kind = if rng.random_bool(0.7) { EngagementKind::Like } else { EngagementKind::Repost };
            l.engage(kind, &e, author, Some(&pid), at + lognormal_secs(&mut rng, 3.0 * 3600.0, 1.0).min(DAY_SECS));
        }
    }

    // Organic newcomers: sign up, then follow and message a few accounts over weeks.
    for k in 0..o.newcomers {
        let id = format!("new{k}");
        roles.insert(id.clone(), Role::Newcomer);
        let joined = from + rng.random_range(0..25 * DAY_SECS);
        l.account(&id, joined, joined);
        for _ in 0..rng.random_range(2..=12) {
            let Some(t) = l.accounts.choose(&mut rng).cloned() else { break };
            let at = joined + rng.random_range(0..(l.end - joined).max(1));
            l.follow(&id, &t, at);
            for m in 0..rng.random_range(0..4) {
                l.engage(EngagementKind::Mention, &id, &t, None, at + m * rng.random_range(600..DAY_SECS));
            }
        }
    }
    planted.roles = roles;
    planted
}

/// One detector's account scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    /// `engagement_pod` and `reciprocity_ring`.
    Pods,
    /// `follower_burst`.
    FollowerBuying,
    /// 100 − authenticity.
    Authenticity,
}

impl Detector {
    pub const ALL: [Detector; 3] = [Detector::Pods, Detector::FollowerBuying, Detector::Authenticity];

    pub fn name(self) -> &'static str {
        match self {
            Detector::Pods => "engagement pods (engagement_pod, reciprocity_ring)",
            Detector::FollowerBuying => "follower buying (follower_burst)",
            Detector::Authenticity => "authenticity as a whole (any flag)",
        }
    }

    fn positive(self, r: Role) -> bool {
        match self {
            Detector::Pods => r == Role::PodMember,
            Detector::FollowerBuying => r == Role::Buyer,
            Detector::Authenticity => matches!(r, Role::PodMember | Role::Buyer),
        }
    }

    fn score(self, snap: &Snapshot, n: u32) -> f64 {
        let max = |kinds: &[FlagKind]| {
            snap.flags_of(n).filter(|f| kinds.contains(&f.kind)).map(|f| f.severity).fold(0.0, f64::max)
        };
        match self {
            Detector::Pods => max(&[FlagKind::EngagementPod, FlagKind::ReciprocityRing]),
            Detector::FollowerBuying => max(&[FlagKind::FollowerBurst]),
            Detector::Authenticity => 100.0 - snap.values[lift_domain::Dimension::Authenticity.index()][n as usize],
        }
    }
}

/// One detector measured.
#[derive(Debug, Clone)]
pub struct DetectorResult {
    pub detector: Detector,
    pub positives: usize,
    pub negatives: usize,
    pub auc: f64,
    pub precision: f64,
    pub recall: f64,
    /// Share of untouched real accounts the detector flags.
    pub fpr_untouched: f64,
    /// (false-positive rate, true-positive rate) over every threshold, from (0,0) to (1,1).
    pub roc: Vec<(f64, f64)>,
}

/// Flagged share per role (any flag), for the decoy table.
#[derive(Debug, Clone)]
pub struct RoleRow {
    pub role: Role,
    pub accounts: usize,
    pub flagged: usize,
    /// Flag kinds raised on this role's accounts, with counts.
    pub kinds: Vec<(&'static str, usize)>,
}

#[derive(Debug, Clone)]
pub struct GamingResult {
    pub base: String,
    pub events: usize,
    pub detectors: Vec<DetectorResult>,
    pub roles: Vec<RoleRow>,
    /// Planted positives caught by their own detector's flag, by how they were planted.
    pub breakdown: Vec<BreakdownRow>,
    pub model_version: String,
}

/// Planted positives of one kind caught by the flag, e.g. pod members of slow pods.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakdownRow {
    /// What is broken down, e.g. "pod cadence".
    pub by: &'static str,
    pub label: String,
    pub planted: usize,
    pub caught: usize,
}

/// Plants, scores and measures.
pub fn run(mut l: Ledger, o: &GamingOptions, p: &ModelParams) -> GamingResult {
    let planted = inject(&mut l, o);
    let roles = &planted.roles;
    let state = l.state();
    let snap = compute(&state, p);
    let role_of = |n: u32| -> Role {
        let id = &state.accounts[n as usize].id.id;
        roles.get(id).copied().unwrap_or(Role::Untouched)
    };
    let node_of: HashMap<&str, u32> =
        state.accounts.iter().enumerate().map(|(i, a)| (a.id.id.as_str(), i as u32)).collect();
    let nodes: Vec<(u32, Role)> =
        (0..snap.n as u32).map(|n| (n, role_of(n))).filter(|(_, r)| *r != Role::Fake).collect();
    let detectors = Detector::ALL
        .iter()
        .map(|&d| {
            let scored: Vec<(f64, bool)> = nodes.iter().map(|&(n, r)| (d.score(&snap, n), d.positive(r))).collect();
            let pos = scored.iter().filter(|s| s.1).count();
            let neg = scored.len() - pos;
            let tp = scored.iter().filter(|s| s.1 && s.0 > 0.0).count();
            let fp = scored.iter().filter(|s| !s.1 && s.0 > 0.0).count();
            let untouched: Vec<f64> =
                nodes.iter().filter(|(_, r)| *r == Role::Untouched).map(|&(n, _)| d.score(&snap, n)).collect();
            DetectorResult {
                detector: d,
                positives: pos,
                negatives: neg,
                auc: auc(&scored),
                precision: if tp + fp == 0 { f64::NAN } else { tp as f64 / (tp + fp) as f64 },
                recall: if pos == 0 { f64::NAN } else { tp as f64 / pos as f64 },
                fpr_untouched: untouched.iter().filter(|&&s| s > 0.0).count() as f64 / untouched.len().max(1) as f64,
                roc: roc(&scored),
            }
        })
        .collect();
    let mut by_role: std::collections::BTreeMap<Role, RoleRow> = std::collections::BTreeMap::new();
    for n in 0..snap.n as u32 {
        let r = role_of(n);
        let row = by_role.entry(r).or_insert(RoleRow { role: r, accounts: 0, flagged: 0, kinds: Vec::new() });
        row.accounts += 1;
        let mut any = false;
        for f in snap.flags_of(n) {
            any = true;
            match row.kinds.iter_mut().find(|(k, _)| *k == f.kind.name()) {
                Some(k) => k.1 += 1,
                None => row.kinds.push((f.kind.name(), 1)),
            }
        }
        row.flagged += usize::from(any);
    }
    GamingResult {
        base: l.name.clone(),
        events: l.entries.len(),
        detectors,
        roles: by_role.into_values().collect(),
        breakdown: breakdown(
            &planted,
            &|id| node_of.get(id).is_some_and(|&n| Detector::Pods.score(&snap, n) > 0.0),
            &|id| node_of.get(id).is_some_and(|&n| Detector::FollowerBuying.score(&snap, n) > 0.0),
        ),
        model_version: snap.model_version,
    }
}

/// Pod memberships and buyers caught, by how they were planted.
fn breakdown(
    planted: &Planted,
    pod_caught: &dyn Fn(&str) -> bool,
    buyer_caught: &dyn Fn(&str) -> bool,
) -> Vec<BreakdownRow> {
    // Keyed by (table order, row order) so rows come out in reading order.
    let mut rows: std::collections::BTreeMap<(usize, usize), BreakdownRow> = std::collections::BTreeMap::new();
    let mut add = |by: (usize, &'static str), row: (usize, String), caught: bool| {
        let slot = rows.entry((by.0, row.0)).or_insert(BreakdownRow { by: by.1, label: row.1, planted: 0, caught: 0 });
        slot.planted += 1;
        slot.caught += usize::from(caught);
    };
    for pod in &planted.pods {
        let size = if pod.members.len() <= 10 { (0, "4–10") } else { (1, "11–30") };
        let part = if pod.participation < 0.75 { (0, "50–75 %") } else { (1, "75–100 %") };
        let days = match pod.days {
            ..=13 => (0, "7–13"),
            14..=20 => (1, "14–20"),
            _ => (2, "21–27"),
        };
        let rate = ((pod.posts_per_day * 2.0) as usize, format!("{}", pod.posts_per_day));
        for m in &pod.members {
            let c = pod_caught(m);
            add((0, "pod cadence"), (pod.cadence as usize, pod.cadence.name().into()), c);
            add((1, "pod size"), (size.0, size.1.into()), c);
            add((2, "pod participation"), (part.0, part.1.into()), c);
            add((3, "pod posts per member per day"), rate.clone(), c);
            add((4, "pod days active"), (days.0, days.1.into()), c);
        }
    }
    for b in &planted.buyers {
        let c = buyer_caught(&b.account);
        let per_batch = match b.fakes / b.batches {
            ..15 => (0, "5–14"),
            15..50 => (1, "15–49"),
            _ => (2, "50–400"),
        };
        add((5, "bought followers per batch"), (per_batch.0, per_batch.1.into()), c);
        add((6, "batches"), (b.batches, b.batches.to_string()), c);
    }
    rows.into_values().collect()
}

/// ROC AUC by the Mann–Whitney statistic with average ranks for ties (a tie
/// between a positive and a negative counts one half). NaN without both classes.
pub fn auc(scored: &[(f64, bool)]) -> f64 {
    let pos = scored.iter().filter(|s| s.1).count() as f64;
    let neg = scored.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    let mut v: Vec<(f64, bool)> = scored.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0; // ranks i+1..=j
        rank_sum += avg * v[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// The ROC curve: one point per distinct score, highest first.
pub fn roc(scored: &[(f64, bool)]) -> Vec<(f64, f64)> {
    let pos = scored.iter().filter(|s| s.1).count().max(1) as f64;
    let neg = (scored.len() as f64 - scored.iter().filter(|s| s.1).count() as f64).max(1.0);
    let mut v: Vec<(f64, bool)> = scored.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = vec![(0.0, 0.0)];
    let (mut tp, mut fp, mut i) = (0.0, 0.0, 0);
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            if v[j].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            j += 1;
        }
        out.push((fp / neg, tp / pos));
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::world;
    use super::*;

    /// The quality gate on the model: a small seeded benchmark on a generated
    /// network (12 pods, 10 buyers, decoys of every kind). Fails when a
    /// detector's AUC falls below, or its false-positive rate among untouched
    /// accounts rises above, the bound stated here.
    #[test]
    fn gaming_benchmark_quality_gate() {
        let base = world::generated(1_500, 30_000, 120, 11);
        let o = GamingOptions { pods: 12, buyers: 10, friend_groups: 8, viral: 2, newcomers: 40, seed: 11 };
        let g = run(base, &o, &ModelParams::default());
        eprintln!("{}", super::super::report::gaming_table(&g));
        let get = |d: Detector| g.detectors.iter().find(|r| r.detector == d).expect("measured");
        let (pods, buying, auth) = (get(Detector::Pods), get(Detector::FollowerBuying), get(Detector::Authenticity));
        assert!(pods.positives >= 60 && buying.positives == 10, "{} {}", pods.positives, buying.positives);
        assert!(pods.auc >= POD_AUC_MIN, "pod AUC {:.3} < {POD_AUC_MIN}", pods.auc);
        assert!(buying.auc >= BUYING_AUC_MIN, "follower-buying AUC {:.3} < {BUYING_AUC_MIN}", buying.auc);
        assert!(auth.auc >= AUTH_AUC_MIN, "authenticity AUC {:.3} < {AUTH_AUC_MIN}", auth.auc);
        assert!(auth.fpr_untouched <= AUTH_FPR_MAX, "authenticity FPR {:.4} > {AUTH_FPR_MAX}", auth.fpr_untouched);
        for d in [pods, buying] {
            assert!(d.fpr_untouched <= FPR_MAX, "{}: FPR {:.4} > {FPR_MAX}", d.detector.name(), d.fpr_untouched);
        }
        // Decoys must not be flagged.
        for r in g.roles.iter().filter(|r| matches!(r.role, Role::FriendDecoy | Role::ViralDecoy | Role::Newcomer)) {
            assert!(r.flagged as f64 <= DECOY_FLAGGED_MAX * r.accounts as f64, "{}: {r:?}", r.role.name());
        }
    }

    // Bounds just below what the shipped model (lift-3, whose detectors lift-4 and lift-5 keep) measures here — pod AUC 0.952
    // (recall 90.4 %), follower buying 1.000, authenticity 0.956, no untouched account and
    // no decoy flagged — so a model change that loses detection or adds false flags fails.
    // The follower-buying bound allows one of the 10 buyers to be missed; the rates allow
    // two of the 819 untouched accounts (authenticity: four) and one account per decoy group.
    const POD_AUC_MIN: f64 = 0.93;
    const BUYING_AUC_MIN: f64 = 0.95;
    const AUTH_AUC_MIN: f64 = 0.93;
    const FPR_MAX: f64 = 0.0025;
    /// Any flag at all, `young_engagers` included (it marks possible victims too).
    const AUTH_FPR_MAX: f64 = 0.005;
    const DECOY_FLAGGED_MAX: f64 = 0.03;

    /// Pins the AUC against hand-computed cases, ties included.
    #[test]
    fn auc_counts_ties_as_half() {
        assert_eq!(auc(&[(0.9, true), (0.8, true), (0.1, false), (0.0, false)]), 1.0);
        assert_eq!(auc(&[(0.0, true), (0.0, false)]), 0.5);
        // One positive above both negatives, one tied with both at 0: (2 + 2·½) / 4.
        assert_eq!(auc(&[(0.7, true), (0.0, true), (0.0, false), (0.0, false)]), 0.75);
        assert!(auc(&[(1.0, true)]).is_nan());
        let r = roc(&[(0.7, true), (0.0, true), (0.0, false), (0.0, false)]);
        assert_eq!(r, vec![(0.0, 0.0), (0.0, 0.5), (1.0, 1.0)]);
    }
}
