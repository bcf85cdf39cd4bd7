//! PageRank benchmark on a generated power-law graph, optionally side by side
//! with networkit on the very same edges (same run, same machine).
//!
//! ```text
//! cargo run --release -p lift-scoring --example pagerank_bench -- 1000000 10000000 [--networkit]
//! ```
//! `--networkit` needs `pip install networkit numpy` for the interpreter named
//! by `$LIFT_PYTHON` (default `python3`), e.g. a virtualenv's `bin/python`.

use std::process::Command;

use lift_scoring::engine::bench::{power_law_graph, time_pagerank, write_edges};
use lift_scoring::engine::graph::{set_vector_loops, vector_loops_active};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nums: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let n = nums.first().copied().unwrap_or(1_000_000);
    let m = nums.get(1).copied().unwrap_or(10 * n);
    let tolerance = 1e-6;
    eprintln!("generating a power-law graph: {n} nodes, {m} edges ...");
    let t = std::time::Instant::now();
    let g = power_law_graph(n, m, 42);
    eprintln!("generated in {:.1} s ({} distinct edges)", t.elapsed().as_secs_f64(), g.edges());
    println!(
        "| implementation | threads | nodes | edges | iterations | per iteration (ms) | total (ms) | prepare (ms) | CPU per iteration (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // Twice with the vector loops where the CPU has them, then once with the
    // portable loops every machine runs, for the side-by-side.
    let runs: &[bool] = if vector_loops_active() { &[true, true, false] } else { &[false, false] };
    for &vector in runs {
        set_vector_loops(vector);
        let loops = if vector { "AVX-512 loops" } else { "portable loops" };
        let r = time_pagerank(&g, tolerance);
        println!(
            "| lift-scoring, {loops} | {} | {} | {} | {} | {:.2} | {:.1} | {:.1} | {:.2} |",
            r.threads,
            r.nodes,
            r.edges,
            r.iterations,
            r.per_iteration_ms,
            r.total_ms,
            r.prepare_ms,
            r.cpu_per_iteration_ms
        );
        eprintln!("out-CSR + in-edge layout: {:.1} bytes per edge", r.bytes_per_edge);
    }
    if args.iter().any(|a| a == "--networkit") {
        let path = std::env::temp_dir().join(format!("lift-pagerank-{n}-{m}.bin"));
        write_edges(&g, &path)?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/networkit_pagerank.py");
        let python = std::env::var("LIFT_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let out = Command::new(python).arg(script).arg(&path).arg(n.to_string()).arg(tolerance.to_string()).output()?;
        std::fs::remove_file(&path).ok();
        if !out.status.success() {
            eprintln!("networkit failed: {}", String::from_utf8_lossy(&out.stderr));
        } else {
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }
    Ok(())
}
