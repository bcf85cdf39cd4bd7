//! The score cache: one columnar copy of every scored account per scoring run.
//!
//! Judging a campaign needs every account's scores under one scoring run.
//! Paging them out of scoring's `QueryAccounts` on every `MatchCampaign` costs
//! a thousand round trips at a million accounts; instead matching loads the
//! whole population once per run (model version + as-of offset), keeps it as
//! columns, and judges each campaign over those columns in memory. A cheap
//! probe per call tells whether scoring has published a newer run since.
//!
//! Layout: accounts sorted by id, so a row number orders like its `AccountId`
//! (the ranking's last tie-break) and an id is found by binary search. Per
//! row: the five overall dimensions' value and percentile, the lower/upper
//! bounds and outcome count of the three objective dimensions, presence and
//! evidence bits, the id and handle (in two shared buffers), and its position
//! in each objective's ranking. Topic scores are sparse columns (members,
//! value, percentile). Missing scores are stored as 0: the rules observe an
//! account with no score at 0 (see `lift_domain::campaign::evaluate_criterion`).
//!
//! The rules themselves stay in `lift_domain::campaign`: rows that a response
//! returns are turned back into a `ScoreCard` and judged by the same functions
//! as the scanning path, so the two cannot disagree on what a candidate shows.
//!
//! - this file: [`RunScores`] (the columns and the judging over them);
//! - `build`: the [`Builder`] that turns scoring's messages into them;
//! - `delta`: a copy of the cached run patched with a newer run's changes;
//! - `load`: the probe of scoring's current run and the `ExportScores` load;
//! - `cache`: [`ScoreCache`], one current run, one background load at a time,
//!   stale answers past the caller's patience.

use std::collections::{BTreeMap, HashMap};

use lift_domain::campaign::{self as rules, CampaignSpec, Criterion, Objective, ScoreCard, ScoreEntry, Threshold};
use lift_domain::{AccountId, Dimension};

use crate::Error;

mod build;
mod cache;
mod delta;
mod load;

pub(crate) use build::Builder;

pub(crate) use cache::ScoreCache;
pub use cache::ScoreCacheStats;
pub(crate) use load::{load, probe};

/// A scoring run: (model version, as-of ledger offset).
pub(crate) type Run = (String, u64);

const OBJECTIVES: [Objective; 3] = [Objective::Reach, Objective::Engagement, Objective::Conversions];

fn objective_index(o: Objective) -> usize {
    match o {
        Objective::Reach => 0,
        Objective::Engagement => 1,
        Objective::Conversions => 2,
    }
}

/// Flag bits per row: bit `d` = dimension `d` has an overall score; bit `5 + d` = its evidence is
/// sufficient; bit `10 + d` = scoring reported no evidence at all.
const SUFFICIENT_SHIFT: u16 = 5;
const NO_DATA_SHIFT: u16 = 10;

/// Many strings in one buffer.
#[derive(Debug, Default)]
struct Strings {
    /// `ends[i]` is the end of string `i` in `bytes`.
    ends: Vec<u32>,
    bytes: String,
}

impl Strings {
    fn push(&mut self, s: &str) -> Result<(), Error> {
        self.bytes.push_str(s);
        let end = u32::try_from(self.bytes.len()).map_err(|_| {
            Error::scoring(tonic::Status::resource_exhausted(
                "account ids and handles exceed 4 GiB; too large to cache",
            ))
        })?;
        self.ends.push(end);
        Ok(())
    }

    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    fn bytes(&self) -> usize {
        self.ends.capacity() * 4 + self.bytes.capacity()
    }
}

/// One topic variant's scores: rows that have it, with their value and percentile.
#[derive(Debug)]
struct TopicColumn {
    dimension: Dimension,
    topic: String,
    /// Sorted rows.
    members: Vec<u32>,
    value: Vec<f64>,
    percentile: Vec<f64>,
}

/// Every scored account of one scoring run, in columns.
#[derive(Debug)]
pub(crate) struct RunScores {
    pub(crate) model_version: String,
    pub(crate) as_of: u64,
    /// Scoring's id of the run (0 from a scoring that does not send it): what a
    /// delta export is asked relative to.
    pub(crate) run_id: u64,
    /// Accounts the load that built this received, and whether they were a delta.
    received: u64,
    from_delta: bool,
    n: usize,
    networks: Vec<String>,
    network: Vec<u32>,
    ids: Strings,
    handles: Strings,
    /// Per dimension (`Dimension::index`), per row.
    value: [Vec<f64>; 5],
    percentile: [Vec<f64>; 5],
    /// Per objective (its primary dimension), per row: the only bounds the rules read.
    lower: [Vec<f64>; 3],
    upper: [Vec<f64>; 3],
    /// Per objective: the outcome count `expected_outcome` would read (NaN = none).
    count: [Vec<f64>; 3],
    flags: Vec<u16>,
    topics: Vec<TopicColumn>,
    /// Per objective: rows best first (`rules::rank_order`).
    order: [Vec<u32>; 3],
}

/// What one campaign's judgement over a snapshot found: rows in rank order.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub(crate) eligible: Vec<u32>,
    /// Closest first, then by rank; at most the limit asked for.
    pub(crate) near: Vec<u32>,
    /// Accounts still in after each step: every row, each rule in turn, the
    /// campaign's topics, its exclusions.
    pub(crate) funnel: Vec<(FunnelStep, u64)>,
}

/// One step of the eligibility funnel.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FunnelStep {
    Scored,
    Rule(Criterion),
    Topics,
    NotExcluded,
}

impl RunScores {
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Heap bytes held (capacities, not lengths).
    pub(crate) fn bytes(&self) -> usize {
        let f = |v: &Vec<f64>| v.capacity() * 8;
        let u = |v: &Vec<u32>| v.capacity() * 4;
        self.networks.iter().map(|s| s.capacity() + 24).sum::<usize>()
            + u(&self.network)
            + self.ids.bytes()
            + self.handles.bytes()
            + self
                .value
                .iter()
                .chain(&self.percentile)
                .chain(&self.lower)
                .chain(&self.upper)
                .chain(&self.count)
                .map(f)
                .sum::<usize>()
            + self.flags.capacity() * 2
            + self
                .topics
                .iter()
                .map(|t| u(&t.members) + f(&t.value) + f(&t.percentile) + t.topic.capacity())
                .sum::<usize>()
            + self.order.iter().map(u).sum::<usize>()
    }

    fn network_of(&self, row: usize) -> &str {
        &self.networks[self.network[row] as usize]
    }

    pub(crate) fn account(&self, row: usize) -> AccountId {
        AccountId::new(self.network_of(row), self.ids.get(row))
    }

    /// Compares row `row`'s id with `a` the way `AccountId`'s `Ord` does.
    fn cmp_account(&self, row: usize, a: &AccountId) -> std::cmp::Ordering {
        self.network_of(row).cmp(a.network.as_str()).then_with(|| self.ids.get(row).cmp(a.id.as_str()))
    }

    /// The row of an account, if it was scored.
    pub(crate) fn find(&self, a: &AccountId) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.cmp_account(mid, a) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    fn has(&self, row: usize, d: Dimension) -> bool {
        self.flags[row] & (1 << d.index()) != 0
    }

    fn sufficient(&self, row: usize, d: Dimension) -> bool {
        self.flags[row] & (1 << (SUFFICIENT_SHIFT as usize + d.index())) != 0
    }

    fn no_data(&self, row: usize, d: Dimension) -> bool {
        self.flags[row] & (1 << (NO_DATA_SHIFT as usize + d.index())) != 0
    }

    /// Whether a row fails a rule for lack of evidence, as `rules::evaluate_criterion` decides.
    fn evidence_fails(&self, row: usize, d: Dimension, allow_insufficient: bool) -> bool {
        self.has(row, d) && (self.no_data(row, d) || (!allow_insufficient && !self.sufficient(row, d)))
    }

    /// `rules::objective_score` of a row, read from the columns.
    pub(crate) fn key(&self, objective: Objective, row: usize) -> (f64, f64) {
        let v = |d: Dimension| self.value[d.index()][row];
        match objective {
            Objective::Reach => (v(Dimension::Reach), v(Dimension::Network)),
            Objective::Engagement => (v(Dimension::Activity), v(Dimension::Reach)),
            Objective::Conversions => {
                let lower = if self.sufficient(row, Dimension::Action) {
                    self.lower[objective_index(Objective::Conversions)][row]
                } else {
                    0.0
                };
                (lower, v(Dimension::Action))
            }
        }
    }

    /// `rules::rank_order` between a row and a (key, account) pair.
    pub(crate) fn rank_cmp(
        &self,
        objective: Objective,
        row: usize,
        key: (f64, f64),
        a: &AccountId,
    ) -> std::cmp::Ordering {
        let k = self.key(objective, row);
        key.0.total_cmp(&k.0).then(key.1.total_cmp(&k.1)).then_with(|| self.cmp_account(row, a))
    }

    fn topic_column(&self, d: Dimension, topic: &str) -> Option<&TopicColumn> {
        self.topics.iter().find(|t| t.dimension == d && t.topic == topic)
    }

    /// The value a rule observes for every row (0 where the row has no such score).
    fn observed(&self, c: &Criterion) -> std::borrow::Cow<'_, [f64]> {
        let percentile = matches!(c.threshold, Threshold::MinPercentile(_));
        match &c.topic {
            None => {
                let col = if percentile { &self.percentile } else { &self.value };
                std::borrow::Cow::Borrowed(&col[c.dimension.index()])
            }
            Some(t) => {
                let mut dense = vec![0.0; self.n];
                if let Some(col) = self.topic_column(c.dimension, t) {
                    let src = if percentile { &col.percentile } else { &col.value };
                    for (&row, &x) in col.members.iter().zip(src) {
                        dense[row as usize] = x;
                    }
                }
                std::borrow::Cow::Owned(dense)
            }
        }
    }

    /// Judges every row against the campaign, as `rules::evaluate` and
    /// `Evaluation::near_miss(relax)` would: eligible rows in rank order, and
    /// up to `near_limit` near misses (failing exactly one rule by at most
    /// `relax`) closest first, ties in rank order.
    pub(crate) fn judge(&self, spec: &CampaignSpec, relax: f64, near_limit: usize) -> Verdict {
        let n = self.n;
        // Failed rules per row (saturating; u8::MAX also marks an excluded row) and
        // the miss of the first failed rule, which is the miss when only one failed.
        let mut fails = vec![0u8; n];
        let mut miss = vec![0.0f64; n];
        let mut funnel = vec![(FunnelStep::Scored, n as u64)];
        for c in spec.rules() {
            let bound = c.threshold.bound();
            let observed = self.observed(&c);
            let evidence_rule = c.topic.is_none() && c.dimension == Dimension::Action;
            for (row, ((f, m), &x)) in fails.iter_mut().zip(miss.iter_mut()).zip(observed.iter()).enumerate() {
                let margin = if evidence_rule && self.evidence_fails(row, c.dimension, spec.allow_insufficient_evidence)
                {
                    f64::NEG_INFINITY
                } else {
                    x - bound
                };
                // `passed` is `margin >= 0.0` in the rules: NaN fails too.
                if margin.is_nan() || margin < 0.0 {
                    if *f == 0 {
                        *m = -margin;
                    }
                    *f = f.saturating_add(1);
                }
            }
            let remaining = fails.iter().filter(|&&f| f == 0).count() as u64;
            funnel.push((FunnelStep::Rule(c), remaining));
        }
        // The campaign's topics: a row scored in none of them is off topic (never a near miss).
        if !spec.topics.is_empty() {
            let mut on_topic = vec![false; n];
            for col in self.topics.iter().filter(|t| spec.topics.contains(&t.topic)) {
                for &row in &col.members {
                    on_topic[row as usize] = true;
                }
            }
            for (f, on) in fails.iter_mut().zip(on_topic) {
                if !on {
                    *f = u8::MAX;
                }
            }
            funnel.push((FunnelStep::Topics, fails.iter().filter(|&&f| f == 0).count() as u64));
        }
        if !spec.excluded.is_empty() {
            for a in &spec.excluded {
                if let Some(row) = self.find(a) {
                    fails[row] = u8::MAX;
                }
            }
            funnel.push((FunnelStep::NotExcluded, fails.iter().filter(|&&f| f == 0).count() as u64));
        }
        let order = &self.order[objective_index(spec.objective)];
        let eligible: Vec<u32> = order.iter().copied().filter(|&r| fails[r as usize] == 0).collect();
        let mut near: Vec<(f64, u32, u32)> = Vec::new();
        if relax.is_finite() && relax > 0.0 && near_limit > 0 {
            for (pos, &r) in order.iter().enumerate() {
                let (f, m) = (fails[r as usize], miss[r as usize]);
                if f == 1 && m <= relax {
                    near.push((m, pos as u32, r));
                }
            }
            let by = |a: &(f64, u32, u32), b: &(f64, u32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
            if near.len() > near_limit {
                near.select_nth_unstable_by(near_limit - 1, by);
                near.truncate(near_limit);
            }
            near.sort_unstable_by(by);
        }
        Verdict { eligible, near: near.into_iter().map(|(_, _, r)| r).collect(), funnel }
    }

    /// A row as the `ScoreCard` scoring's answer would have produced, with every
    /// score the campaign's rules, topics and objective read (every topic score
    /// the row has, whichever rules are in force).
    pub(crate) fn card(&self, row: usize, _rules_in_force: &[Criterion]) -> ScoreCard {
        let mut scores = HashMap::new();
        for d in Dimension::ALL {
            if !self.has(row, d) {
                continue;
            }
            let value = self.value[d.index()][row];
            let mut entry = ScoreEntry {
                value,
                percentile: self.percentile[d.index()][row],
                lower: value,
                upper: value,
                sufficient: self.sufficient(row, d),
                no_data: self.no_data(row, d),
                raw: BTreeMap::new(),
            };
            if let Some(o) = OBJECTIVES.into_iter().find(|o| o.primary_dimension() == d) {
                let k = objective_index(o);
                entry.lower = self.lower[k][row];
                entry.upper = self.upper[k][row];
                let count = self.count[k][row];
                // The first preferred key stands for whichever one scoring sent first.
                if !count.is_nan()
                    && let Some(key) = rules::outcome_raw_keys(o).first()
                {
                    entry.raw.insert((*key).to_owned(), count);
                }
            }
            scores.insert((d, String::new()), entry);
        }
        // Every topic score of the row (a few columns), so the rules see the
        // topics the criteria name and the campaign's topics alike.
        for col in &self.topics {
            if let Ok(i) = col.members.binary_search(&(row as u32)) {
                let value = col.value[i];
                scores.insert(
                    (col.dimension, col.topic.clone()),
                    ScoreEntry {
                        value,
                        percentile: col.percentile[i],
                        lower: value,
                        upper: value,
                        sufficient: true,
                        no_data: false,
                        raw: BTreeMap::new(),
                    },
                );
            }
        }
        ScoreCard { account: self.account(row), handle: self.handles.get(row).to_owned(), scores }
    }
}
