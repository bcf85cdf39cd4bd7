//! Incremental runs: activity, reach and action recomputed only for the
//! accounts whose inputs changed since the previous run.
//!
//! `IncrementalScores` keeps, beside the `State` it follows, per-account
//! indexes of the events that feed each account (engagements by actor and by
//! target, posts by author, outcomes by owner, current followers) and each
//! account's sufficient statistics. A run (`update`) reads only the entries the
//! state gained since the last run, marks the accounts they touch *dirty*,
//! recomputes those accounts' statistics from their own event lists, and then
//! maps statistics to values for the population.
//!
//! An account is dirty for
//! - **activity** when it posted or engaged, was engaged, one of its posts or
//!   engagements left the window, its authenticity weight changed, or the
//!   weight of an account that engaged with it changed;
//! - **reach** when it was engaged or followed/unfollowed, its reported
//!   followers changed, an engagement with it left the window, the weight of
//!   one of its engagers changed, or — through two-hop reach — the engagers or
//!   followers of an account that reposted it changed;
//! - **action** when an outcome attributed to it arrived or left the window.
//!
//! **Time.** The window and the decay depend on the as-of time, which moves
//! with every run. Window exits come from a heap of in-window events keyed by
//! time, so an event leaving the window dirties its accounts like a new one.
//! Decay is factored as a global multiplier: each decayed sum is kept as
//! `Σ w·2^((at − base)/half_life)` and multiplied by `2^((base − now)/half_life)`
//! when values are formed, so a clean account's decayed inputs follow the
//! clock without touching its events; the activity formula (cheap, O(1)) is
//! then evaluated for every account each run. `base` is `now` rounded down to
//! a multiple of 64 half-lives, so factors stay within f64 range; when it
//! moves, every account's activity statistics are recomputed. The network
//! graph's edges decay separately, from `ModelParams::network_decay_reference`
//! (the as-of time rounded up to `network_decay_step_secs`), built by
//! `network::window_engagements` for both this path and `compute`, so an
//! edge's weight changes only at a step boundary and `PushRank` ranks in full
//! there.
//!
//! **Percentiles** move for everyone when any value moves, so each run
//! recomputes them all, by counting over the 102,401 grid points instead of
//! sorting (`stats::grid_percentiles`, exactly the sorted rule's result).
//!
//! **Exactness.** Each statistic is a full sum over the account's own event
//! list in ledger order — never a running sum with subtractions — so it is a
//! pure function of the ledger prefix: a fresh `IncrementalScores` built from
//! the same state (a restart) gives bit-identical results. Against `compute`,
//! reach, action and authenticity (and their percentiles) are identical;
//! activity differs only by the rounding of the factored decay (relative
//! ~1e-15), which can move a value by at most one grid step (1/1024) when it
//! sits on a rounding boundary, and a percentile only as far as such moves
//! reorder values. Tests pin both.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use lift_domain::event::EngagementKind;
use lift_domain::{Dimension, Micros};

use super::authenticity::{self, Authenticity};
use super::compute::{ActionEstimate, RawMetrics, action_from_counts, action_percentiles, kind_weight};
use super::pagerank_push::PushRank;
use super::params::ModelParams;
use super::state::{NONE, Node, OutcomeKind, State};
use super::stats::{grid_percentiles, percentiles, quantize, saturate};

const ACT: u8 = 1;
const REACH: u8 = 2;
const ACTION: u8 = 4;
const ALL: u8 = ACT | REACH | ACTION;
/// The accounts this one reposted were already marked in this run.
const EXPANDED: u8 = 8;

const TAG_POST: u8 = 0;
const TAG_ENGAGEMENT: u8 = 1;
const TAG_OUTCOME: u8 = 2;

/// The decay base moves in steps of this many half-lives.
pub const DECAY_BASE_STEP_HALF_LIVES: f64 = 64.0;

/// Decayed activity inputs of one account, in units of the decay base.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct ActivityStats {
    posts: f64,
    own: f64,
    responses: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct ReachStats {
    distinct_engagers: u32,
    weighted_engagers: f64,
    two_hop: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct OutcomeCounts {
    clicks: u64,
    conv: u64,
    engaged: u64,
    sessions: f32,
    non_bounced: f32,
    conversions: f32,
    code_conversions: f32,
    value_minor: f32,
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IncrementalRun {
    pub accounts: usize,
    /// Entries the state gained since the previous run.
    pub new_entries: u64,
    pub dirty_activity: usize,
    pub dirty_reach: usize,
    pub dirty_action: usize,
    /// Accounts whose activity, reach, action or authenticity value moved.
    pub changed: usize,
    /// Every account was recomputed (first run, model change, decay base moved).
    pub full: bool,
    /// Wall time of the run, and of its phases: reading new entries and
    /// marking (with window exits and weight changes), recomputing dirty
    /// accounts, action estimates (the fitted priors move with every outcome,
    /// so every account with evidence is re-estimated), values and percentiles.
    pub millis: f64,
    pub index_ms: f64,
    pub recompute_ms: f64,
    pub action_ms: f64,
    pub values_ms: f64,
}

/// Activity, reach, action and authenticity of every account, kept up to date
/// run by run (see the module docs for what is recomputed when).
#[derive(Debug, Clone, Default)]
pub struct IncrementalScores {
    model: String,
    base: Micros,
    now: Micros,
    offset: u64,
    events: u64,
    seen_posts: usize,
    seen_engagements: usize,
    seen_follows: usize,
    seen_outcomes: usize,
    /// Posts referenced before their own event (no author yet).
    pending_posts: Vec<u32>,
    /// Engagements waiting for their post's author, by post.
    unresolved: HashMap<u32, Vec<u32>>,
    by_target: Vec<Vec<u32>>,
    by_actor: Vec<Vec<u32>>,
    /// Distinct in-window engagers (engagement of positive kind weight), sorted.
    engagers: Vec<Vec<Node>>,
    posts_by_author: Vec<Vec<u32>>,
    outcomes_by_owner: Vec<Vec<u32>>,
    follow_state: HashMap<(Node, Node), bool>,
    /// Current followers, sorted, without self-follows.
    followers: Vec<Vec<Node>>,
    /// In-window events by time, for window exits: (at, tag, index).
    expiry: BinaryHeap<Reverse<(Micros, u8, u32)>>,
    reported: Vec<u64>,
    weights: Vec<f64>,
    activity: Vec<ActivityStats>,
    reach: Vec<ReachStats>,
    counts: Vec<OutcomeCounts>,
    dirty: Vec<u8>,
    dirty_list: Vec<Node>,
    /// Per dimension (`Dimension::index`); the network column stays empty.
    pub values: [Vec<f64>; 5],
    pub percentiles: [Vec<f64>; 5],
    pub raw: Vec<RawMetrics>,
    pub action: Vec<ActionEstimate>,
    pub action_prior: (f64, f64),
    /// Accounts whose value in any of the four columns moved in the last run, ascending.
    pub changed: Vec<Node>,
    pub last: IncrementalRun,
    /// PageRank kept between runs and updated locally (`compute_incremental`).
    pub network: PushRank,
}

fn is_repost(k: EngagementKind) -> bool {
    matches!(k, EngagementKind::Repost | EngagementKind::Quote)
}

fn insert_sorted(v: &mut Vec<u32>, x: u32) {
    match v.last() {
        Some(&l) if l >= x => {
            let pos = v.partition_point(|&y| y < x);
            if v.get(pos) != Some(&x) {
                v.insert(pos, x);
            }
        }
        _ => v.push(x),
    }
}

impl IncrementalScores {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of accounts scored by the last run.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// A run with authenticity assessed the way `compute` does.
    pub fn run(&mut self, state: &State, p: &ModelParams) -> IncrementalRun {
        let now = state.max_time;
        let auth = authenticity::assess(state, p, now, now.saturating_sub(p.window_micros()));
        self.update(state, p, &auth)
    }

    /// Brings every account up to date with `state` as of its latest time,
    /// given the population's authenticity.
    pub fn update(&mut self, state: &State, p: &ModelParams, auth: &Authenticity) -> IncrementalRun {
        let started = std::time::Instant::now();
        let version = p.version();
        let mut full = false;
        if version != self.model || state.offset < self.offset || state.events < self.events {
            // A new model or a state that is not an extension of the one followed: start over.
            let mut network = std::mem::take(&mut self.network);
            network.invalidate();
            *self = Self { model: version, network, ..Self::default() };
            full = true;
        }
        let new_entries = state.events - self.events;
        let n = state.len();
        let now = state.max_time;
        let window_start = now.saturating_sub(p.window_micros());
        let hl = p.half_life_micros();
        let step = ((DECAY_BASE_STEP_HALF_LIVES * hl) as i64).max(1);
        let base = if hl > 0.0 { now.div_euclid(step) * step } else { 0 };
        self.grow(n);
        if base != self.base {
            self.base = base;
            for u in 0..n as Node {
                self.mark(u, ACT);
            }
            full = true;
        }
        self.now = now;
        let in_window = |at: Micros| at > window_start && at <= now;

        self.index_new(state, p, window_start, now);
        // Window exits.
        while let Some(Reverse((at, tag, i))) = self.expiry.peek().copied() {
            if at > window_start {
                break;
            }
            self.expiry.pop();
            self.touch(state, p, tag, i, window_start, now);
        }
        // Profile changes.
        for (u, a) in state.accounts.iter().enumerate() {
            if self.reported[u] != a.reported_followers {
                self.reported[u] = a.reported_followers;
                self.mark(u as Node, REACH);
            }
        }
        // Authenticity weights: an account's own activity, and what its engagement gives.
        for u in 0..n {
            let w = Authenticity::weight(&auth.values, u as Node, p);
            if w.to_bits() != self.weights[u].to_bits() {
                self.weights[u] = w;
                self.mark(u as Node, ACT);
                for k in 0..self.by_actor[u].len() {
                    let e = state.engagements[self.by_actor[u][k] as usize];
                    if in_window(e.at) {
                        self.mark(state.target_of(&e), ACT | REACH);
                    }
                }
            }
        }

        let dirty = std::mem::take(&mut self.dirty_list);
        let counts = |bit: u8| dirty.iter().filter(|&&u| self.dirty[u as usize] & bit != 0).count();
        let (dirty_activity, dirty_reach, dirty_action) = (counts(ACT), counts(REACH), counts(ACTION));
        let marked = started.elapsed().as_secs_f64() * 1e3;
        self.recompute(state, p, &dirty, window_start, now);
        let recomputed = started.elapsed().as_secs_f64() * 1e3;
        for &u in &dirty {
            self.dirty[u as usize] = 0;
        }
        let action_ms = self.form_values(state, p, auth, hl);
        let millis = started.elapsed().as_secs_f64() * 1e3;
        self.offset = state.offset;
        self.events = state.events;
        self.last = IncrementalRun {
            accounts: n,
            new_entries,
            dirty_activity,
            dirty_reach,
            dirty_action,
            changed: self.changed.len(),
            full,
            millis,
            index_ms: marked,
            recompute_ms: recomputed - marked,
            action_ms,
            values_ms: millis - recomputed - action_ms,
        };
        self.last
    }

    fn grow(&mut self, n: usize) {
        let old = self.weights.len();
        if n <= old {
            return;
        }
        self.by_target.resize_with(n, Vec::new);
        self.by_actor.resize_with(n, Vec::new);
        self.engagers.resize_with(n, Vec::new);
        self.posts_by_author.resize_with(n, Vec::new);
        self.outcomes_by_owner.resize_with(n, Vec::new);
        self.followers.resize_with(n, Vec::new);
        self.reported.resize(n, 0);
        // NaN never equals a weight, so a new account's weight always counts as changed.
        self.weights.resize(n, f64::NAN);
        self.activity.resize(n, ActivityStats::default());
        self.reach.resize(n, ReachStats::default());
        self.counts.resize(n, OutcomeCounts::default());
        self.raw.resize(n, RawMetrics::default());
        self.dirty.resize(n, 0);
        for d in [Dimension::Activity, Dimension::Reach, Dimension::Action, Dimension::Authenticity] {
            self.values[d.index()].resize(n, 0.0);
        }
        for u in old..n {
            self.mark(u as Node, ALL);
        }
    }

    fn mark(&mut self, u: Node, bits: u8) {
        let Some(d) = self.dirty.get_mut(u as usize) else { return };
        if *d == 0 {
            self.dirty_list.push(u);
        }
        *d |= bits;
    }

    /// Marks what an event entering or leaving the window changes.
    fn touch(&mut self, state: &State, p: &ModelParams, tag: u8, i: u32, window_start: Micros, now: Micros) {
        match tag {
            TAG_POST => {
                if let Some(post) = state.posts.get(i as usize) {
                    self.mark(post.author, ACT);
                }
            }
            TAG_ENGAGEMENT => {
                let e = state.engagements[i as usize];
                let t = state.target_of(&e);
                self.mark(e.actor, ACT);
                self.mark(t, ACT | REACH);
                // `t`'s engagers changed: so did the two-hop reach of everyone `t` reposted.
                if kind_weight(p, e.kind) > 0.0 {
                    self.mark_reposted_by(state, t, window_start, now);
                }
            }
            _ => {
                if let Some(o) = state.outcomes.get(i as usize) {
                    self.mark(o.owner, ACTION);
                }
            }
        }
    }

    fn mark_reposted_by(&mut self, state: &State, x: Node, window_start: Micros, now: Micros) {
        // Once per account and run: the set only grows by reposts that mark their own target.
        if self.dirty.get(x as usize).is_none_or(|d| d & EXPANDED != 0) {
            return;
        }
        self.mark(x, EXPANDED);
        let Some(list) = self.by_actor.get(x as usize) else { return };
        let targets: Vec<Node> = list
            .iter()
            .map(|&k| state.engagements[k as usize])
            .filter(|e| is_repost(e.kind) && e.at > window_start && e.at <= now)
            .map(|e| state.target_of(&e))
            .collect();
        for u in targets {
            self.mark(u, REACH);
        }
    }

    /// Indexes the entries the state gained since the last run.
    fn index_new(&mut self, state: &State, p: &ModelParams, window_start: Micros, now: Micros) {
        let in_window = |at: Micros| at > window_start && at <= now;
        // Posts whose author arrived: their own post and the engagements that waited for it.
        let mut resolved: Vec<u32> = Vec::new();
        self.pending_posts.retain(|&pi| {
            if state.posts[pi as usize].author != NONE {
                resolved.push(pi);
                false
            } else {
                true
            }
        });
        for pi in self.seen_posts..state.posts.len() {
            if state.posts[pi].author == NONE {
                self.pending_posts.push(pi as u32);
            } else {
                resolved.push(pi as u32);
            }
        }
        self.seen_posts = state.posts.len();
        resolved.sort_unstable();
        let mut late: Vec<u32> = Vec::new();
        for pi in resolved {
            let post = &state.posts[pi as usize];
            insert_sorted(&mut self.posts_by_author[post.author as usize], pi);
            if in_window(post.at) {
                self.expiry.push(Reverse((post.at, TAG_POST, pi)));
            }
            self.mark(post.author, ACT);
            if let Some(waiting) = self.unresolved.remove(&pi) {
                late.extend(waiting);
            }
        }
        let fresh = (self.seen_engagements as u32)..(state.engagements.len() as u32);
        self.seen_engagements = state.engagements.len();
        for i in late.into_iter().chain(fresh) {
            let e = state.engagements[i as usize];
            let t = state.target_of(&e);
            if t == NONE {
                if e.post != NONE {
                    self.unresolved.entry(e.post).or_default().push(i);
                }
                continue;
            }
            if t == e.actor {
                continue;
            }
            insert_sorted(&mut self.by_actor[e.actor as usize], i);
            insert_sorted(&mut self.by_target[t as usize], i);
            if in_window(e.at) {
                self.expiry.push(Reverse((e.at, TAG_ENGAGEMENT, i)));
            }
            self.touch(state, p, TAG_ENGAGEMENT, i, window_start, now);
        }
        for f in &state.follows[self.seen_follows..] {
            let on = !f.unfollow;
            let was = self.follow_state.insert((f.follower, f.followee), on).unwrap_or(false);
            if was == on || f.follower == f.followee {
                continue;
            }
            let list = &mut self.followers[f.followee as usize];
            let pos = list.partition_point(|&y| y < f.follower);
            if on {
                list.insert(pos, f.follower);
            } else if list.get(pos) == Some(&f.follower) {
                list.remove(pos);
            }
            self.mark(f.followee, REACH);
            self.mark_reposted_by(state, f.followee, window_start, now);
        }
        self.seen_follows = state.follows.len();
        for i in self.seen_outcomes..state.outcomes.len() {
            let o = state.outcomes[i];
            self.outcomes_by_owner[o.owner as usize].push(i as u32);
            if in_window(o.at) {
                self.expiry.push(Reverse((o.at, TAG_OUTCOME, i as u32)));
            }
            self.mark(o.owner, ACTION);
        }
        self.seen_outcomes = state.outcomes.len();
    }
}

#[path = "incremental_values.rs"]
mod values;

#[cfg(test)]
#[path = "incremental_tests.rs"]
mod tests;
