use lift_domain::{Dimension, LedgerEntry};
use proptest::prelude::*;

use super::*;
use crate::engine::compute::{Snapshot, compute};
use crate::engine::incremental_snapshot::compute_incremental;
use crate::engine::pagerank_push::{DEFAULT_TOLERANCE, NetworkRunKind};
use crate::engine::stats::GRID;
use crate::engine::testutil::*;

/// A short window and half-life so that window exits and decay-base moves
/// happen inside a test stream (2,000 events span ~14 days).
fn fast_params() -> ModelParams {
    ModelParams { window_days: 3.0, half_life_days: 0.05, ..ModelParams::default() }
}

/// `random_stream` plus engagements that name only a post whose event comes later.
fn stream(seed: u64, accounts: usize, n: usize) -> Vec<LedgerEntry> {
    let base = random_stream(seed, accounts, n);
    let mut out = Vec::with_capacity(n + n / 50);
    for (i, e) in base.into_iter().enumerate() {
        if i % 50 == 7 {
            let future = format!("p{}", i + 40);
            out.push(engage_post_only(0, &format!("u{}", i % accounts), &future, e.event.occurred_at / SEC));
        }
        out.push(e);
    }
    for (i, e) in out.iter_mut().enumerate() {
        e.offset = i as u64 + 1;
    }
    out
}

const OWNED: [Dimension; 4] = [Dimension::Activity, Dimension::Reach, Dimension::Action, Dimension::Authenticity];

/// Percentile rule on an ascending population, written out so the bound below is explicit.
fn share_at_or_below(sorted: &[f64], v: f64) -> f64 {
    100.0 * sorted.partition_point(|x| *x <= v) as f64 / sorted.len() as f64
}

/// The stated tolerance against a from-scratch `compute`.
fn assert_within_tolerance(inc: &IncrementalScores, snap: &Snapshot, ctx: &str) {
    assert_eq!(inc.len(), snap.n, "{ctx}: accounts");
    for d in [Dimension::Reach, Dimension::Action, Dimension::Authenticity] {
        assert_eq!(inc.values[d.index()], snap.values[d.index()], "{ctx}: {d:?} values");
        assert_eq!(inc.percentiles[d.index()], snap.percentiles[d.index()], "{ctx}: {d:?} percentiles");
    }
    assert_eq!(inc.action, snap.action, "{ctx}: action estimates");
    assert_eq!(inc.action_prior, snap.action_prior, "{ctx}: action prior");
    // Activity: each value within one grid step; each percentile within what such moves allow.
    let a = Dimension::Activity.index();
    let step = 1.0 / GRID;
    let mut sorted = snap.values[a].clone();
    sorted.sort_unstable_by(f64::total_cmp);
    for u in 0..snap.n {
        let (vi, vs) = (inc.values[a][u], snap.values[a][u]);
        assert!((vi - vs).abs() <= step, "{ctx}: activity of {u}: {vi} vs {vs}");
        let pi = inc.percentiles[a][u];
        if vi > 0.0 {
            let lo = share_at_or_below(&sorted, vi - step * 1.5);
            let hi = share_at_or_below(&sorted, vi + step * 1.5);
            assert!(lo <= pi && pi <= hi, "{ctx}: activity percentile of {u}: {pi} not in [{lo}, {hi}]");
        } else {
            assert_eq!(pi, 0.0);
        }
    }
    for (u, (ri, rs)) in inc.raw.iter().zip(&snap.raw).enumerate() {
        let mut ri = *ri;
        // Network metrics are not part of the incremental columns.
        ri.pagerank = rs.pagerank;
        ri.relative_pagerank = rs.relative_pagerank;
        // Responses per post carries the factored decay's rounding.
        let (x, y) = (f64::from(ri.responses_per_post), f64::from(rs.responses_per_post));
        assert!((x - y).abs() <= 1e-6 * y.max(1.0), "{ctx}: responses per post of {u}: {x} vs {y}");
        ri.responses_per_post = rs.responses_per_post;
        assert_eq!(ri, *rs, "{ctx}: raw metrics of {u}");
    }
}

/// Bit-for-bit: what a restart (a fresh build from the same state) would serve.
fn assert_identical(a: &IncrementalScores, b: &IncrementalScores, ctx: &str) {
    for d in OWNED {
        let (x, y) = (&a.values[d.index()], &b.values[d.index()]);
        assert!(x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()) && x.len() == y.len(), "{ctx}: {d:?}");
        assert_eq!(a.percentiles[d.index()], b.percentiles[d.index()], "{ctx}: {d:?} percentiles");
    }
    assert_eq!(a.raw, b.raw, "{ctx}: raw");
    assert_eq!(a.action, b.action, "{ctx}: action");
}

/// A column that may differ by one grid step per value (factored decay, or
/// PageRank's convergence tolerance landing on the other side of a rounding
/// boundary), and each percentile only as far as such moves reorder values.
fn assert_column_within_step(x: &[f64], px: &[f64], y: &[f64], ctx: &str) {
    let step = 1.0 / GRID;
    let mut sorted = y.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    for u in 0..y.len() {
        assert!((x[u] - y[u]).abs() <= step, "{ctx}: value of {u}: {} vs {}", x[u], y[u]);
        if x[u] > 0.0 {
            let lo = share_at_or_below(&sorted, x[u] - step * 1.5);
            let hi = share_at_or_below(&sorted, x[u] + step * 1.5);
            assert!(lo <= px[u] && px[u] <= hi, "{ctx}: percentile of {u}: {} not in [{lo}, {hi}]", px[u]);
        }
    }
}

/// A column whose values may differ by up to `slack` each, and whose
/// percentiles (the share of the population at or below a value) are then
/// bracketed by the other column's: whatever lies `slack` below a value in
/// one column lies at or below it in the other, and nothing above `slack`
/// over it does.
fn assert_column_within(x: &[f64], px: &[f64], y: &[f64], slack: f64, ctx: &str) {
    let mut sorted = y.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let slack = slack + 1e-9;
    for u in 0..y.len() {
        assert!((x[u] - y[u]).abs() <= slack, "{ctx}: value of {u}: {} vs {} (slack {slack})", x[u], y[u]);
        if x[u] > 0.0 {
            let lo = share_at_or_below(&sorted, x[u] - slack);
            let hi = share_at_or_below(&sorted, x[u] + slack);
            assert!(lo <= px[u] && px[u] <= hi, "{ctx}: percentile of {u}: {} not in [{lo}, {hi}]", px[u]);
        }
    }
}

/// A whole incremental snapshot against `compute`'s: reach, action and
/// authenticity exactly; activity within one grid step; PageRank within
/// `tolerance` in L1 and each network value within what that allows (the
/// value's slope in relative PageRank is at most `100/network_scale`, and a
/// value may land on the other side of a grid rounding); flags, topics and
/// seed probabilities exactly.
fn assert_snapshot_within_tolerance(a: &Snapshot, b: &Snapshot, tolerance: f64, p: &ModelParams, ctx: &str) {
    assert_eq!((a.n, a.as_of, &a.model_version), (b.n, b.as_of, &b.model_version), "{ctx}");
    for d in [Dimension::Reach, Dimension::Action, Dimension::Authenticity] {
        assert_eq!(a.values[d.index()], b.values[d.index()], "{ctx}: {d:?} values");
        assert_eq!(a.percentiles[d.index()], b.percentiles[d.index()], "{ctx}: {d:?} percentiles");
    }
    let i = Dimension::Activity.index();
    assert_column_within_step(&a.values[i], &a.percentiles[i], &b.values[i], &format!("{ctx}: activity"));
    let l1: f64 = a.pagerank.iter().zip(&b.pagerank).map(|(x, y)| (x - y).abs()).sum();
    assert!(l1 <= tolerance, "{ctx}: PageRank L1 difference {l1} over the bound {tolerance}");
    let slack = 100.0 / p.network_scale * a.n as f64 * tolerance + 1.0 / GRID;
    let i = Dimension::Network.index();
    assert_column_within(&a.values[i], &a.percentiles[i], &b.values[i], slack, &format!("{ctx}: network"));
    assert_eq!((&a.action, a.action_prior), (&b.action, b.action_prior), "{ctx}: action");
    assert_eq!((&a.flags, &a.flags_by_account), (&b.flags, &b.flags_by_account), "{ctx}: flags");
    assert_eq!(a.topics, b.topics, "{ctx}: topics");
    assert_eq!(a.influence, b.influence, "{ctx}: seed probabilities");
}

/// Runs the incremental paths over `stream(seed, accounts, n)` cut into
/// `chunks`, checking every run against a from-scratch `compute`; the
/// service's path updates PageRank locally within `drift` (see
/// `pagerank_push`). Returns the service path's local and full network runs,
/// and of the full runs those at a decay step.
fn run_sequence(
    seed: u64,
    accounts: usize,
    n: usize,
    chunks: &[usize],
    p: &ModelParams,
    drift: f64,
) -> (u64, u64, u64) {
    let entries = stream(seed, accounts, n);
    let mut state = State::new();
    let mut inc = IncrementalScores::new();
    // The service's path: a whole snapshot per run, PageRank warm-started from the last.
    let mut served = IncrementalScores::new();
    served.network.tolerance = drift;
    let mut warm: Option<Vec<f64>> = None;
    let mut at = 0;
    let mut k = 0;
    while at < entries.len() {
        let size = chunks[k % chunks.len()].max(1);
        k += 1;
        for e in &entries[at..(at + size).min(entries.len())] {
            state.apply(e);
        }
        at += size;
        let before: Vec<Vec<f64>> = OWNED.iter().map(|d| inc.values[d.index()].clone()).collect();
        let run = inc.run(&state, p);
        assert!(run.dirty_activity <= state.len());
        // `changed` lists exactly the accounts new since the last run or with a moved value.
        let moved: Vec<Node> = (0..state.len())
            .filter(|&u| {
                u >= before[0].len() || OWNED.iter().zip(&before).any(|(d, b)| b[u] != inc.values[d.index()][u])
            })
            .map(|u| u as Node)
            .collect();
        assert_eq!(inc.changed, moved);
        let ctx = format!("seed {seed}, after {} entries", state.events);
        let scratch = compute(&state, p);
        assert_within_tolerance(&inc, &scratch, &ctx);
        let snap = compute_incremental(&state, p, warm.as_deref(), &mut served);
        // The served vector is within the update's stated bound of the exact
        // PageRank (a full run's bound covers its own convergence); the
        // from-scratch run stops within `pagerank_tolerance` of the fixed point
        // (L1 change of an iteration; the error is at most that over 1 − damping).
        let net = served.network.stats.last;
        let full_run = 2.0 * p.pagerank_tolerance / (1.0 - p.damping);
        let bound = if net.kind == NetworkRunKind::FullAlways { 2.0 * full_run } else { net.bound + full_run };
        assert!(drift <= 0.0 || net.bound <= drift, "{ctx}: bound {} over the tolerance {drift}", net.bound);
        assert_snapshot_within_tolerance(&snap, &scratch, bound, p, &ctx);
        assert_eq!(snap.stats.pagerank_iterations, net.iterations, "{ctx}");
        warm = Some(snap.pagerank);
        let mut fresh = IncrementalScores::new();
        fresh.run(&state, p);
        assert_identical(&inc, &fresh, &ctx);
    }
    let st = served.network.stats;
    (st.local_runs, st.full_runs, st.step_runs)
}

/// Pins that runs after small batches recompute only the touched accounts.
#[test]
fn small_batches_touch_few_accounts() {
    let p = ModelParams::default();
    let entries = stream(11, 400, 3000);
    let mut state = State::new();
    let mut inc = IncrementalScores::new();
    let cut = entries.len() - 10;
    for e in &entries[..cut] {
        state.apply(e);
    }
    assert!(inc.run(&state, &p).full);
    for e in &entries[cut..] {
        state.apply(e);
    }
    let run = inc.run(&state, &p);
    assert!(!run.full);
    assert_eq!(run.new_entries, 10);
    assert!(run.dirty_activity < 60, "{run:?}");
    assert!(run.dirty_action <= 10, "{run:?}");
    assert_within_tolerance(&inc, &compute(&state, &p), "default params");
}

/// Pins window exits, decay-base moves and late post authors under the fast model.
#[test]
fn fast_window_sequence_matches() {
    run_sequence(3, 60, 2000, &[1, 37, 250, 5, 400], &fast_params(), DEFAULT_TOLERANCE);
}

/// The default model with the mixture prior tried on any population (every
/// account with a click fitted, no likelihood gain needed), so the test
/// streams' few clicks exercise it.
fn mixture_params(p: ModelParams) -> ModelParams {
    ModelParams { action_min_clicks: 1, action_prior_mixture_min_accounts: 1, action_prior_mixture_min_gain: -1e9, ..p }
}

/// Pins the incremental path against from-scratch runs under a mixture prior,
/// which the stream really reaches (the action estimates differ from the one Beta's).
#[test]
fn mixture_prior_sequence_matches() {
    let p = mixture_params(ModelParams::default());
    run_sequence(5, 40, 1500, &[1, 37, 250, 5, 400], &p, DEFAULT_TOLERANCE);
    let mut state = State::new();
    for e in &stream(5, 40, 1500) {
        state.apply(e);
    }
    let one_beta = ModelParams { action_prior_components: 0, ..p.clone() };
    assert_ne!(compute(&state, &p).action, compute(&state, &one_beta).action, "the mixture prior is in play");
}

/// The default model with a network decay step of 30 days: a test stream
/// (an event every ~10 minutes) then crosses at most one step boundary, so
/// runs between boundaries can be local.
fn long_step_params() -> ModelParams {
    ModelParams { network_decay_step_secs: 30.0 * 86_400.0, ..ModelParams::default() }
}

/// Pins that small batches update PageRank locally, that only the first run
/// (no estimate yet) and a run whose decay reference moved a step are full,
/// that a tolerance of 0 makes every run full, and that with the default
/// hourly step a stream whose runs each cross an hour ranks every run in full.
#[test]
fn small_batches_update_pagerank_locally() {
    let p = long_step_params();
    let (local, full, steps) = run_sequence(13, 300, 2500, &[400, 20, 35, 10], &p, DEFAULT_TOLERANCE);
    assert!(steps <= 1, "{steps} step runs");
    assert_eq!(full, 1 + steps, "{local} local runs");
    assert!(local >= 10, "{local} local runs");
    let (local, full, _) = run_sequence(13, 300, 1200, &[400, 50], &p, 0.0);
    assert_eq!(local, 0);
    assert!(full >= 5);
    let (local, full, steps) = run_sequence(13, 300, 1200, &[400, 50], &ModelParams::default(), DEFAULT_TOLERANCE);
    assert_eq!((local, full - 1), (0, steps));
}

/// Pins that a tight tolerance is met, locally or by a full run.
#[test]
fn tight_tolerance_is_met() {
    let (local, full, _) = run_sequence(17, 200, 1500, &[300, 30, 7], &long_step_params(), 1e-7);
    assert!(local + full > 0);
}

/// Pins why local updates can pay: between decay steps, only the rows of
/// accounts whose own edges changed differ from the previous run's graph,
/// where a decay measured from the as-of time itself moves nearly every row.
#[test]
fn rows_change_only_where_events_land() {
    let entries = stream(21, 300, 2000);
    let changed = |p: &ModelParams| {
        let mut state = State::new();
        let mut served = IncrementalScores::new();
        for e in &entries[..1900] {
            state.apply(e);
        }
        compute_incremental(&state, p, None, &mut served);
        for e in &entries[1900..1910] {
            state.apply(e);
        }
        compute_incremental(&state, p, None, &mut served);
        let net = served.network.stats.last;
        assert_eq!(net.kind, NetworkRunKind::Local, "{p:?}");
        net
    };
    let stepped = changed(&long_step_params());
    // Ten entries: each changes at most its own actor's row, and may resolve
    // one engagement that waited for its post (another row).
    assert!(stepped.retargeted_sources + stepped.reweighted_sources <= 20, "{stepped:?}");
    let continuous = changed(&ModelParams { network_decay_step_secs: 0.0, ..ModelParams::default() });
    assert!(continuous.sources > 200, "{continuous:?}");
    assert!(continuous.changed_sources > continuous.sources * 3 / 4, "{continuous:?}");
    assert!(stepped.changed_sources * 5 < continuous.changed_sources, "{stepped:?} vs {continuous:?}");
}

/// Pins that a model change starts over.
#[test]
fn model_change_recomputes_everything() {
    let entries = stream(5, 50, 500);
    let mut state = State::new();
    for e in &entries {
        state.apply(e);
    }
    let mut inc = IncrementalScores::new();
    inc.run(&state, &ModelParams::default());
    let p = fast_params();
    assert!(inc.run(&state, &p).full);
    assert_within_tolerance(&inc, &compute(&state, &p), "after model change");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Any sequence of incremental runs over a random stream equals a
    /// from-scratch `compute` within the stated tolerance (reach, action,
    /// authenticity exactly; activity within one grid step; PageRank within
    /// the local update's stated bound, itself within the drift tolerance,
    /// and network values and percentiles within what that bound allows),
    /// every percentile included, and the four incremental columns equal a
    /// fresh build bit for bit (restart identity).
    #[test]
    fn incremental_runs_match_from_scratch(
        seed in any::<u64>(),
        accounts in 5usize..80,
        n in 50usize..900,
        chunks in proptest::collection::vec(20usize..300, 1..6),
        fast in any::<bool>(),
        drift in prop_oneof![Just(DEFAULT_TOLERANCE), Just(1e-4), Just(1e-6), Just(0.0)],
        step in prop_oneof![Just(0.0), Just(3600.0), Just(30.0 * 86_400.0)],
        mixture in any::<bool>(),
    ) {
        let p = if fast { fast_params() } else { ModelParams::default() };
        let p = ModelParams { network_decay_step_secs: step, ..p };
        let p = if mixture { mixture_params(p) } else { p };
        run_sequence(seed, accounts, n, &chunks, &p, drift);
    }
}
