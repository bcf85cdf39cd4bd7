//! Exact decomposition of a score change between two runs.
//!
//! A value is `V(events, as_of_time, authenticity, model)`. Going from the
//! "from" run to the "to" run changes one argument at a time, in a fixed order:
//!
//! ```text
//! v0 = V(E_from, t_from, A_from, M_from)             the from value
//! v1 = V(E_from, t_to,   A_from, M_from)   aged out  = v1 − v0
//! v2 = V(E_to,   t_to,   A_from, M_from)   new events = v2 − v1
//! v3 = V(E_to,   t_to,   A_to',  M_from)   authenticity reclassification = v3 − v2
//! v4 = V(E_to,   t_to,   A_to,   M_to)     recalibration = v4 − v3 (the to value)
//! ```
//!
//! where `A_from` is the authenticity assessed on the from run and held fixed
//! while events change, and `A_to'` is the authenticity the new events earn
//! under the old model. The sum telescopes to `v4 − v0`, and because values lie
//! on a 1/1024 grid the differences and their sum are exact in `f64` — not
//! approximately, bit for bit.
//!
//! Population effects (the empirical-Bayes action prior, PageRank relative to
//! the population) move with the events that cause them, so they fall under
//! "new events" or "aged out"; "recalibration" is the model change alone.
//!
//! Both prefixes are read from the ledger as it is now. When data was removed
//! from it after a run was computed (an erasure at a person's request, or a
//! retention run: see `docs/privacy.md`), the run's recorded score differs from
//! what its prefix gives now; [`across_removals`] rebases the explanation on the
//! recorded scores and shows that difference as its own part, [`Cause::Erasure`]:
//!
//! ```text
//! r0 = recorded by the from run        erasure = (v0 − r0) + (r4 − v4)
//! r4 = recorded by the to run (v4 unless the removal came after it too)
//! ```
//!
//! so the parts still telescope, now from `r0` to `r4`, exactly.

use lift_domain::{Dimension, Micros};

use super::compute::{AsOf, ComputeOptions, Snapshot, compute_with};
use super::params::ModelParams;
use super::state::{Node, State};
use super::stats::{percentile_in, quantize};

/// Why a contribution happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    AgedOut,
    NewEvents,
    Authenticity,
    Recalibration,
    /// Data removed from the ledger after a run was computed (an erasure of
    /// another person's data, or a retention run): see [`across_removals`].
    Erasure,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    pub cause: Cause,
    pub delta: f64,
    pub description: String,
    /// Offsets of the events responsible, truncated to `MAX_OFFSETS`.
    pub event_offsets: Vec<u64>,
    /// How many events are responsible in all.
    pub event_count: u64,
}

/// Why a percentile moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PercentileCause {
    /// The account's own value moved (its new events, its older ones weighing
    /// less), measured against the population of the earlier run.
    OwnValue,
    /// The other accounts moved around the account's new value.
    Population,
    /// Authenticity reclassification (of the account and of the population).
    Authenticity,
    /// The model changed.
    Recalibration,
    /// Data removed from the ledger after a run was computed: see [`across_removals`].
    Erasure,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PercentileContribution {
    pub cause: PercentileCause,
    /// Percentile points, on the 1/1024 grid.
    pub delta: f64,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub from_value: f64,
    pub to_value: f64,
    /// In the order (erasure,) aged out, new events, authenticity,
    /// recalibration; their deltas sum exactly to `to_value − from_value`.
    pub contributions: Vec<Contribution>,
    pub from_model: String,
    pub to_model: String,
    /// The runs' percentiles, rounded to the 1/1024 grid (so that the parts
    /// below are exact differences): within 0.0005 points of what the runs serve.
    pub from_percentile: f64,
    pub to_percentile: f64,
    /// In the order (erasure,) own value, population, authenticity,
    /// recalibration; their deltas sum exactly to `to_percentile − from_percentile`.
    pub percentile_contributions: Vec<PercentileContribution>,
}

/// One side of the comparison.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The state built from the ledger prefix up to `as_of.offset`.
    pub state: &'a State,
    pub params: &'a ModelParams,
    pub as_of: AsOf,
}

const MAX_OFFSETS: usize = 100;

/// Explains `node`'s change in dimension `d` from `from` to `to`. `to.state`
/// must extend `from.state` (a longer prefix of the same ledger), so node ids agree.
/// Returns `None` when the account has no score in the from state.
pub fn explain(from: Side<'_>, to: Side<'_>, node: Node, d: Dimension) -> Option<Explanation> {
    if node as usize >= from.state.len() || node as usize >= to.state.len() {
        return None;
    }
    let i = node as usize;
    let value = |s: &Snapshot| s.values[d.index()][i];
    let s0 = compute_with(from.state, from.params, from.as_of, ComputeOptions::default());
    let auth_from = s0.values[Dimension::Authenticity.index()].clone();
    let held = ComputeOptions { warm_start: Some(&s0.pagerank), authenticity: Some(&auth_from) };
    let aged_as_of = AsOf { offset: from.as_of.offset, time: to.as_of.time };
    let s1 = compute_with(from.state, from.params, aged_as_of, held);
    let s2 = compute_with(to.state, from.params, to.as_of, held);
    let s3 = compute_with(
        to.state,
        from.params,
        to.as_of,
        ComputeOptions { warm_start: Some(&s2.pagerank), authenticity: None },
    );
    // The endpoints start PageRank cold, as a restarted consumer does.
    let s4 = compute_with(to.state, to.params, to.as_of, ComputeOptions::default());
    let v = [value(&s0), value(&s1), value(&s2), value(&s3), value(&s4)];

    let window = from.params.window_micros();
    let aged = events_of(from.state, node, |off, at| {
        off <= from.as_of.offset && at > from.as_of.time - window && at <= to.as_of.time - window
    });
    let new = events_of(to.state, node, |off, _| off > from.as_of.offset && off <= to.as_of.offset);
    let (auth_desc, auth_offsets, auth_count) = reclassified(&s0, &s3, node);

    let contributions = vec![
        Contribution {
            cause: Cause::AgedOut,
            delta: v[1] - v[0],
            description: format!(
                "from {} to {} older events weighed less (their weight halves every {} days){}",
                fmt_time(from.as_of.time),
                fmt_time(to.as_of.time),
                from.params.half_life_days,
                match aged.1 {
                    0 => String::new(),
                    1 => format!(" and 1 event involving the account left the {}-day window", from.params.window_days),
                    k =>
                        format!(" and {k} events involving the account left the {}-day window", from.params.window_days),
                }
            ),
            event_offsets: aged.0,
            event_count: aged.1,
        },
        Contribution {
            cause: Cause::NewEvents,
            delta: v[2] - v[1],
            description: format!(
                "{} new events, {} of them involving the account; the others changed the population it is measured against",
                to.as_of.offset.saturating_sub(from.as_of.offset),
                new.1
            ),
            event_offsets: new.0,
            event_count: new.1,
        },
        Contribution {
            cause: Cause::Authenticity,
            delta: v[3] - v[2],
            description: auth_desc,
            event_offsets: auth_offsets,
            event_count: auth_count,
        },
        Contribution {
            cause: Cause::Recalibration,
            delta: v[4] - v[3],
            description: if from.params.version() == to.params.version() {
                format!("model unchanged ({})", to.params.version())
            } else {
                format!("model recalibrated from {} to {}", from.params.version(), to.params.version())
            },
            event_offsets: Vec::new(),
            event_count: 0,
        },
    ];
    let pct = |s: &Snapshot| quantize(s.percentiles[d.index()][i]);
    let p = [pct(&s0), pct(&s2), pct(&s3), pct(&s4)];
    // The account's new value (events and time, authenticity held) among the earlier run's accounts.
    let observed = d != Dimension::Action || s2.action[i].observed;
    let moved = if observed { quantize(percentile_against(&s0, d, v[2])) } else { 0.0 };
    let population = (s0.n, s2.n);
    let percentile_contributions = vec![
        PercentileContribution {
            cause: PercentileCause::OwnValue,
            delta: moved - p[0],
            description: format!(
                "the account's value moved from {} to {} (its new events and older events weighing less); among the {} accounts of the earlier run that is p{:.1} instead of p{:.1}",
                v[0], v[2], population.0, moved, p[0]
            ),
        },
        PercentileContribution {
            cause: PercentileCause::Population,
            delta: p[1] - moved,
            description: format!(
                "the other accounts moved: {} accounts were scored then and {} now, and at its new value the account sits at p{:.1} among them",
                population.0, population.1, p[1]
            ),
        },
        PercentileContribution {
            cause: PercentileCause::Authenticity,
            delta: p[2] - p[1],
            description: "authenticity reclassification of the account and the population (engagement is weighted by authenticity)".to_owned(),
        },
        PercentileContribution {
            cause: PercentileCause::Recalibration,
            delta: p[3] - p[2],
            description: if from.params.version() == to.params.version() {
                format!("model unchanged ({})", to.params.version())
            } else {
                format!("model recalibrated from {} to {}", from.params.version(), to.params.version())
            },
        },
    ];
    Some(Explanation {
        from_value: v[0],
        to_value: v[4],
        contributions,
        from_model: from.params.version(),
        to_model: to.params.version(),
        from_percentile: p[0],
        to_percentile: p[3],
        percentile_contributions,
    })
}

/// Data removed from the ledger, as the marker that announces it says. It
/// names no person: an erasure's subject is not kept here at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    /// The marker's ledger offset.
    pub offset: u64,
    /// For a retention run, its cutoff (every event that occurred before it
    /// went); `None` for an erasure at a person's request.
    pub retention_before: Option<Micros>,
}

/// What a run recorded for the account in the explained dimension: its value,
/// and the percentile its stored distribution gives that value (what the
/// account's score history shows for the run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recorded {
    pub value: f64,
    pub percentile: f64,
}

/// Rebases `e` — computed from both runs' prefixes as the ledger now reads —
/// on what the runs recorded before `removals` took data out of those prefixes,
/// and adds the difference as one [`Cause::Erasure`] part (value and
/// percentile), first, so that the parts sum exactly to `recorded to − recorded from`.
///
/// `removals` are the markers after the from run's offset; `from` is what the
/// from run recorded, `to` what the to run recorded when a removal came after
/// it as well (`None`: the to run was computed on the redacted ledger, so its
/// recomputation is what it serves). Recorded numbers are put on the 1/1024
/// grid, so the arithmetic stays exact. Without removals `e` is returned as it is.
#[must_use]
pub fn across_removals(mut e: Explanation, from: Recorded, to: Option<Recorded>, removals: &[Removal]) -> Explanation {
    if removals.is_empty() {
        return e;
    }
    let (rf, pf) = (quantize(from.value), quantize(from.percentile));
    let (rt, pt) = to.map_or((e.to_value, e.to_percentile), |r| (quantize(r.value), quantize(r.percentile)));
    let what = removed(removals);
    let mut offsets: Vec<u64> = removals.iter().map(|r| r.offset).collect();
    offsets.sort_unstable();
    offsets.dedup();
    let count = offsets.len() as u64;
    offsets.truncate(MAX_OFFSETS);
    let later = |recorded: f64, now: f64, p: &str| {
        if to.is_some() && recorded != now {
            format!(
                "; the later run, computed before the removal too, recorded {p}{recorded} where its prefix now gives {p}{now}"
            )
        } else {
            String::new()
        }
    };
    let value_desc = format!(
        "{what} after the earlier run was computed: that run recorded {rf}, and its ledger prefix without the removed data gives {}{}",
        e.from_value,
        later(rt, e.to_value, "")
    );
    let pct_desc = format!(
        "{what} after the earlier run was computed: that run recorded p{pf:.1} (from its stored distribution, within half a point of what it served), and its ledger prefix without the removed data gives p{:.1}{}",
        e.from_percentile,
        later(pt, e.to_percentile, "p")
    );
    e.contributions.insert(
        0,
        Contribution {
            cause: Cause::Erasure,
            delta: (e.from_value - rf) + (rt - e.to_value),
            description: value_desc,
            event_offsets: offsets,
            event_count: count,
        },
    );
    e.percentile_contributions.insert(
        0,
        PercentileContribution {
            cause: PercentileCause::Erasure,
            delta: (e.from_percentile - pf) + (pt - e.to_percentile),
            description: pct_desc,
        },
    );
    (e.from_value, e.to_value, e.from_percentile, e.to_percentile) = (rf, rt, pf, pt);
    e
}

/// What `removals` took out of the ledger, as a person reads it, naming no one:
/// "data of another person was erased at their request and events that
/// occurred before 2025-01-01 00:00 UTC were removed by a retention run".
fn removed(removals: &[Removal]) -> String {
    let erasures = removals.iter().filter(|r| r.retention_before.is_none()).count();
    let cutoffs: Vec<Micros> = removals.iter().filter_map(|r| r.retention_before).collect();
    let mut parts = Vec::new();
    match erasures {
        0 => {}
        1 => parts.push("data of another person was erased at their request".to_owned()),
        k => parts.push(format!("data of other people was erased at their request ({k} erasures)")),
    }
    if let Some(latest) = cutoffs.iter().max() {
        parts.push(format!(
            "events that occurred before {} were removed by {}",
            fmt_time(*latest),
            if cutoffs.len() == 1 { "a retention run".to_owned() } else { format!("{} retention runs", cutoffs.len()) }
        ));
    }
    parts.join(" and ")
}

/// The percentile `v` would have in snapshot `s`'s population (the rule of
/// `compute`: at or below; for *action*, against the accounts with sufficient evidence).
fn percentile_against(s: &Snapshot, d: Dimension, v: f64) -> f64 {
    let col = &s.values[d.index()];
    let mut pop: Vec<f64> = if d == Dimension::Action {
        col.iter().zip(&s.action).filter(|(_, a)| a.sufficient).map(|(x, _)| *x).collect()
    } else {
        col.clone()
    };
    pop.sort_unstable_by(f64::total_cmp);
    percentile_in(&pop, v)
}

/// A ledger time as a person reads it: `2026-11-01 10:05 UTC`.
fn fmt_time(t: Micros) -> String {
    let secs = t.div_euclid(1_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = lift_domain::time::civil(days);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// (first offsets, count) of the events involving `n` that satisfy `keep(offset, time)`.
fn events_of(s: &State, n: Node, keep: impl Fn(u64, Micros) -> bool) -> (Vec<u64>, u64) {
    let mut offsets = Vec::new();
    let mut count = 0u64;
    let mut push = |off: u64, at: Micros| {
        if keep(off, at) {
            count += 1;
            if offsets.len() < MAX_OFFSETS {
                offsets.push(off);
            }
        }
    };
    for p in &s.posts {
        if p.author == n {
            push(p.offset, p.at);
        }
    }
    for e in &s.engagements {
        if e.actor == n || s.target_of(e) == n {
            push(e.offset, e.at);
        }
    }
    for f in &s.follows {
        if f.follower == n || f.followee == n {
            push(f.offset, f.at);
        }
    }
    for o in &s.outcomes {
        if o.owner == n {
            push(o.offset, o.at);
        }
    }
    offsets.sort_unstable();
    (offsets, count)
}

/// What changed in the account's and its engagers' authenticity between two snapshots.
fn reclassified(before: &Snapshot, after: &Snapshot, n: Node) -> (String, Vec<u64>, u64) {
    let a = Dimension::Authenticity.index();
    let own_before = before.values[a].get(n as usize).copied().unwrap_or(100.0);
    let own_after = after.values[a][n as usize];
    let mut changed = 0usize;
    for i in 0..before.n.min(after.n) {
        if before.values[a][i] != after.values[a][i] {
            changed += 1;
        }
    }
    let new_flags: Vec<&super::Flag> = after
        .flags_of(n)
        .filter(|f| !before.flags_of(n).any(|g| g.kind == f.kind && g.subjects == f.subjects))
        .collect();
    let mut offsets: Vec<u64> = new_flags.iter().flat_map(|f| f.event_offsets.iter().copied()).collect();
    offsets.sort_unstable();
    offsets.dedup();
    let count = offsets.len() as u64;
    offsets.truncate(MAX_OFFSETS);
    let kinds: Vec<&str> = new_flags.iter().map(|f| f.kind.name()).collect();
    let desc = format!(
        "authenticity of the account {own_before} → {own_after}{}; {changed} accounts reclassified in all (their engagement is weighted by authenticity)",
        if kinds.is_empty() { String::new() } else { format!(" (new flags: {})", kinds.join(", ")) }
    );
    (desc, offsets, count)
}

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;
