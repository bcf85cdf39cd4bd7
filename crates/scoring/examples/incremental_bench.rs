//! Incremental-run benchmark: after a ledger of `events` generated events over
//! `accounts` accounts (spread over 180 days), `runs` batches of `batch`
//! further events each, arriving live at `per_sec` events a second; per
//! batch, the from-scratch `compute` (graph build included, every dimension)
//! beside the incremental run (activity, reach, action and authenticity), in
//! the same process on the same state, with the largest difference between
//! the two printed.
//!
//! ```text
//! cargo run --release -p lift-scoring --example incremental_bench -- 1000000 10000000 [batch] [runs] [network_decay_step_secs] [per_sec] [tolerance]
//! ```
//!
//! `batch` defaults to 10,000 and `per_sec` to 10,000 (a run a second at the
//! issue's ingest rate), `network_decay_step_secs` to the model's (0: the
//! network graph's decay follows the as-of time continuously), `tolerance`
//! (the local PageRank update's L1 drift tolerance) to
//! `pagerank_push::DEFAULT_TOLERANCE`.

use std::time::Instant;

use lift_domain::Dimension;
use lift_scoring::engine::stats::{grid_percentiles, percentiles};
use lift_scoring::engine::synthetic::SyntheticLedger;
use lift_scoring::engine::{
    AsOf, ComputeOptions, IncrementalScores, ModelParams, State, compute, compute_incremental, compute_with,
};

fn main() {
    let args: Vec<f64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let arg = |i: usize| args.get(i).copied().filter(|x| x.is_finite() && *x >= 0.0);
    let accounts = arg(0).map_or(200_000, |x| x as usize).max(2);
    let events = arg(1).map_or(10 * accounts, |x| x as usize);
    let batch = arg(2).map_or(10_000, |x| x as usize).max(1);
    let runs = arg(3).map_or(3, |x| x as usize).max(1);
    let mut p = ModelParams::default();
    if let Some(step) = arg(4) {
        p.network_decay_step_secs = step;
    }
    let per_sec = arg(5).unwrap_or(10_000.0).max(1e-3);
    // The ledger holds the prefix plus every batch.
    let mut ledger = SyntheticLedger::new(accounts, events + batch * runs, 5).with_live_tail(events, per_sec);
    let mut state = State::new();
    let apply_s = ledger.apply_to(&mut state, events);
    let mut inc = IncrementalScores::new();
    let t = Instant::now();
    inc.run(&state, &p);
    let build_s = t.elapsed().as_secs_f64();
    // The service's path: whole snapshots, PageRank warm-started from the previous run.
    let mut served = IncrementalScores::new();
    if let Some(tolerance) = arg(6) {
        served.network.tolerance = tolerance;
    }
    // After each local update, the full power iteration it replaced, on the same graph.
    served.network.reference_runs = true;
    let mut warm = compute_incremental(&state, &p, None, &mut served).pagerank;
    let mut whole: Vec<String> = Vec::new();
    let mut network_rows: Vec<String> = Vec::new();
    // Per run: from-scratch network ms, incremental network ms, changed share of sources, local?, L1 / bound.
    let mut net_runs: Vec<(f64, f64, f64, bool, f64, f64)> = Vec::new();
    println!(
        "prefix: {} accounts, {} events (apply {:.1} s); first incremental run (builds its indexes, as after a restart): {:.2} s",
        state.len(),
        state.events,
        apply_s,
        build_s
    );
    println!(
        "batches arrive at {per_sec} events/s; network_decay_step_secs = {} (model {})",
        p.network_decay_step_secs,
        p.version()
    );
    println!();
    println!(
        "| run | events | new events | full compute (s) | incremental run (ms) | of which: authenticity / indexing / dirty recompute / action estimates / values and percentiles (ms) | percentiles of 4 columns: grid / sort (ms) | dirty activity / reach / action | max abs. activity diff | reach, action, authenticity equal |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in 1..=runs {
        ledger.apply_to(&mut state, batch);
        let t = Instant::now();
        let snap = compute(&state, &p);
        let full_s = t.elapsed().as_secs_f64();
        // Authenticity is assessed in full inside every run, before the incremental update.
        let t = Instant::now();
        let run = inc.run(&state, &p);
        let run_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let opts = ComputeOptions { warm_start: Some(&warm), authenticity: None };
        let scratch = compute_with(&state, &p, AsOf::of(&state), opts);
        let scratch_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let whole_snap = compute_incremental(&state, &p, Some(&warm), &mut served);
        let snap_s = t.elapsed().as_secs_f64();
        let net = Dimension::Network.index();
        let net_diff =
            whole_snap.values[net].iter().zip(&scratch.values[net]).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        let l1: f64 = whole_snap.pagerank.iter().zip(&scratch.pagerank).map(|(x, y)| (x - y).abs()).sum();
        let nr = served.network.stats.last;
        // The reference full run is not part of the incremental path: take it out of its laps.
        let inc_network = whole_snap.stats.phases.network - nr.reference_ms;
        let snap_s = snap_s - nr.reference_ms / 1e3;
        let share = nr.changed_sources as f64 / nr.sources.max(1) as f64;
        let local = !nr.kind.is_full();
        let update_ms = if local { nr.diff_ms + nr.push_ms } else { nr.full_ms };
        net_runs.push((nr.reference_ms, update_ms, share, local, nr.reference_l1, nr.bound));
        network_rows.push(format!(
            "| {r} | {} | {} | {:.0} ({:.0} + {:.0}) | {} | {:.0} / {:.0} | {} of {} ({:.2} %): {} / {} / {}; {} | {} / {} | {:.3e} / {:.3e} | {:.2e} | {} | {:.2e} | {:.4} |",
            if local { "local".into() } else { format!("full ({:?}, {} iterations)", nr.kind, nr.iterations) },
            if local { format!("{:.0}", nr.reference_ms) } else { "-".into() },
            update_ms,
            if local { nr.diff_ms } else { 0.0 },
            if local { nr.push_ms } else { nr.full_ms },
            if local { format!("{:.1}x", nr.reference_ms / update_ms.max(1e-9)) } else { "-".into() },
            scratch.stats.phases.network,
            inc_network,
            nr.changed_sources,
            nr.sources,
            100.0 * share,
            nr.retargeted_sources,
            nr.reweighted_sources,
            nr.changed_sources - nr.retargeted_sources - nr.reweighted_sources,
            nr.scattered_sources,
            nr.pushes,
            nr.pushed_edges,
            nr.residual_before,
            nr.residual,
            nr.bound,
            if local { format!("{:.2e}", nr.reference_l1) } else { "-".into() },
            l1,
            net_diff,
        ));
        let ph = |s: &lift_scoring::engine::Snapshot, reference_ms: f64| {
            let p = s.stats.phases;
            format!(
                "{:.0} / {:.0} / {:.0} / {:.0} / {:.0}",
                p.authenticity,
                p.dimensions,
                p.network - reference_ms,
                p.topics,
                p.columns
            )
        };
        whole.push(format!(
            "| {r} | {:.2} ({} iterations) | {:.2} ({} iterations) | {:.2} | {} | {} | {:.6} |",
            scratch_s,
            scratch.stats.pagerank_iterations,
            snap_s,
            whole_snap.stats.pagerank_iterations,
            scratch_s / snap_s.max(1e-9),
            ph(&scratch, 0.0),
            ph(&whole_snap, nr.reference_ms),
            net_diff
        ));
        warm = whole_snap.pagerank;
        let auth_ms = run_ms - run.millis;
        // Percentiles of the four columns: by counting on the grid (what the run does) and by sorting.
        let cols = [Dimension::Activity, Dimension::Reach, Dimension::Action, Dimension::Authenticity];
        let t = Instant::now();
        for d in cols {
            let _ = grid_percentiles(&inc.values[d.index()], None, None);
        }
        let grid_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        for d in cols {
            let _ = percentiles(&inc.values[d.index()]);
        }
        let sort_ms = t.elapsed().as_secs_f64() * 1e3;
        let a = Dimension::Activity.index();
        let max_diff = inc.values[a].iter().zip(&snap.values[a]).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        let equal = [Dimension::Reach, Dimension::Action, Dimension::Authenticity].iter().all(|d| {
            inc.values[d.index()] == snap.values[d.index()] && inc.percentiles[d.index()] == snap.percentiles[d.index()]
        });
        println!(
            "| {r} | {} | {} | {:.2} | {:.0} | {:.0} / {:.0} / {:.0} / {:.0} / {:.0} | {:.0} / {:.0} | {} / {} / {} | {:.6} | {} |",
            state.events,
            run.new_entries,
            full_s,
            run_ms,
            auth_ms,
            run.index_ms,
            run.recompute_ms,
            run.action_ms,
            run.values_ms,
            grid_ms,
            sort_ms,
            run.dirty_activity,
            run.dirty_reach,
            run.dirty_action,
            max_diff,
            if equal { "yes" } else { "NO" }
        );
    }
    println!();
    println!(
        "Whole snapshots as a run of the service forms them, both with PageRank warm-started from the previous run:"
    );
    println!();
    println!(
        "| run | from scratch, compute_with (s) | incremental, compute_incremental (s) | ratio | from scratch: authenticity / dimensions / network / topics / columns (ms) | incremental: the same (ms) | max abs. network diff |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in whole {
        println!("{row}");
    }
    println!();
    println!(
        "PageRank in those runs: the incremental path's update (a local residual-push update of the kept PageRank, or a full run when there is no estimate, the decay step moved, or the bound would pass the tolerance {:e}) beside the full power iteration it replaced, run on the same graph in the same run (prepared graph, warm-started from the previous served vector); then the whole network laps (from scratch: graph build and power iteration; incremental: window edges, seed probabilities, follows, graph build and update):",
        served.network.tolerance
    );
    println!();
    println!(
        "| run | update | full run on the same graph (ms) | update: diff + push, or full (ms) | speed-up | network lap from scratch / incremental (ms) | changed sources of sources with out-edges: new targets / same targets, new weights / retention only; scattered | pushes / edges visited | residual L1 before / after push | stated L1 bound | measured L1 vs that full run | measured L1 vs compute_with | max abs. network value diff |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in network_rows {
        println!("{row}");
    }
    let st = served.network.stats;
    println!();
    println!(
        "network updates in this process: {} local, {} full (the first builds the estimate; {} at a decay step)",
        st.local_runs, st.full_runs, st.step_runs
    );
    let median = |mut v: Vec<f64>| -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_unstable_by(f64::total_cmp);
        let m = v.len() / 2;
        if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
    };
    let local: Vec<_> = net_runs.iter().filter(|r| r.3).copied().collect();
    println!(
        "changed sources: median {:.2} % over {} runs",
        100.0 * median(net_runs.iter().map(|r| r.2).collect()),
        net_runs.len()
    );
    if !local.is_empty() {
        let worst = local.iter().map(|r| r.4 / r.5.max(f64::MIN_POSITIVE)).fold(0.0, f64::max);
        let (full, upd) = (median(local.iter().map(|r| r.0).collect()), median(local.iter().map(|r| r.1).collect()));
        println!(
            "medians over the {} local runs: full run on the same graph {:.0} ms, local update {:.0} ms ({:.1}x); changed sources {:.3} %; measured L1 vs that full run at most {:.2} of the stated bound",
            local.len(),
            full,
            upd,
            full / upd.max(1e-9),
            100.0 * median(local.iter().map(|r| r.2).collect()),
            worst
        );
    }
}
