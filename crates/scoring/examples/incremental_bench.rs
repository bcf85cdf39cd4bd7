//! Incremental-run benchmark: after a ledger of `events` generated events over
//! `accounts` accounts, `runs` batches of `batch` further events each; per
//! batch, the from-scratch `compute` (graph build included, every dimension)
//! beside the incremental run (activity, reach, action and authenticity), in
//! the same process on the same state, with the largest difference between
//! the two printed.
//!
//! ```text
//! cargo run --release -p lift-scoring --example incremental_bench -- 1000000 10000000 [batch] [runs]
//! ```

use std::time::Instant;

use lift_domain::Dimension;
use lift_scoring::engine::stats::{grid_percentiles, percentiles};
use lift_scoring::engine::synthetic::SyntheticLedger;
use lift_scoring::engine::{
    AsOf, ComputeOptions, IncrementalScores, ModelParams, State, compute, compute_incremental, compute_with,
};

fn main() {
    let nums: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let accounts = nums.first().copied().unwrap_or(200_000).max(2);
    let events = nums.get(1).copied().unwrap_or(10 * accounts);
    let batch = nums.get(2).copied().unwrap_or(10_000).max(1);
    let runs = nums.get(3).copied().unwrap_or(3).max(1);
    let p = ModelParams::default();
    // The ledger holds the prefix plus every batch.
    let mut ledger = SyntheticLedger::new(accounts, events + batch * runs, 5);
    let mut state = State::new();
    let apply_s = ledger.apply_to(&mut state, events);
    let mut inc = IncrementalScores::new();
    let t = Instant::now();
    inc.run(&state, &p);
    let build_s = t.elapsed().as_secs_f64();
    // The service's path: whole snapshots, PageRank warm-started from the previous run.
    let mut served = IncrementalScores::new();
    let mut warm = compute_incremental(&state, &p, None, &mut served).pagerank;
    let mut whole: Vec<String> = Vec::new();
    let mut network_rows: Vec<String> = Vec::new();
    println!(
        "prefix: {} accounts, {} events (apply {:.1} s); first incremental run (builds its indexes, as after a restart): {:.2} s",
        state.len(),
        state.events,
        apply_s,
        build_s
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
        network_rows.push(format!(
            "| {r} | {:.0} | {:.0} | {} | {:.0} / {:.0} / {:.0} | {} / {} | {} / {} | {:.3e} / {:.3e} | {:.2e} | {:.2e} | {:.4} |",
            scratch.stats.phases.network,
            whole_snap.stats.phases.network,
            if nr.kind.is_full() { format!("full ({:?}, {} iterations)", nr.kind, nr.iterations) } else { "local".into() },
            nr.diff_ms,
            nr.push_ms,
            nr.full_ms,
            nr.changed_sources,
            nr.scattered_sources,
            nr.pushes,
            nr.pushed_edges,
            nr.residual_before,
            nr.residual,
            nr.bound,
            l1,
            net_diff,
        ));
        let ph = |s: &lift_scoring::engine::Snapshot| {
            let p = s.stats.phases;
            format!(
                "{:.0} / {:.0} / {:.0} / {:.0} / {:.0}",
                p.authenticity, p.dimensions, p.network, p.topics, p.columns
            )
        };
        whole.push(format!(
            "| {r} | {:.2} ({} iterations) | {:.2} ({} iterations) | {:.2} | {} | {} | {:.6} |",
            scratch_s,
            scratch.stats.pagerank_iterations,
            snap_s,
            whole_snap.stats.pagerank_iterations,
            scratch_s / snap_s.max(1e-9),
            ph(&scratch),
            ph(&whole_snap),
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
        "The network step of those runs: from scratch (graph build and power iteration) beside the incremental path's (graph build, then a local residual-push update of the kept PageRank, or a full run when its bound would pass the tolerance {:e}):",
        served.network.tolerance
    );
    println!();
    println!(
        "| run | from scratch: network (ms) | incremental: network (ms) | update | diff / push / full (ms) | changed / scattered sources | pushes / edges visited | residual L1 before / after push | stated L1 bound | measured L1 vs from scratch | max abs. network value diff |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in network_rows {
        println!("{row}");
    }
    let st = served.network.stats;
    println!();
    println!(
        "network updates in this process: {} local, {} full (the first builds the estimate)",
        st.local_runs, st.full_runs
    );
}
