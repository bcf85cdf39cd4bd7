//! PageRank benchmark on a generated power-law graph, optionally side by side
//! with networkit on the very same edges (same run, same machine).
//!
//! ```text
//! cargo run --release -p lift-scoring --example pagerank_bench -- 1000000 10000000 [--networkit] [--runs 5]
//! ```
//! `--networkit` needs `pip install networkit numpy` for the interpreter named
//! by `$LIFT_PYTHON` (default `python3`), e.g. a virtualenv's `bin/python`.
//!
//! Runs alternate — Lift, networkit, Lift, networkit, … — so that a burst of
//! load from elsewhere on a shared machine hits both sides alike; the summary
//! compares medians and bests, and the median of the paired ratios.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use lift_scoring::engine::bench::{power_law_graph, time_pagerank, write_edges};
use lift_scoring::engine::graph::{set_vector_loops, vector_loops_active};

/// One row of the table: `(per iteration ms, total ms)` are what the summary compares.
struct Row {
    per_iteration_ms: f64,
    total_ms: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = args.iter().position(|a| a == "--runs").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(5usize);
    let nums: Vec<usize> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || args[i - 1] != "--runs")
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let n = nums.first().copied().unwrap_or(1_000_000);
    let m = nums.get(1).copied().unwrap_or(10 * n);
    let tolerance = 1e-6;
    eprintln!("generating a power-law graph: {n} nodes, {m} edges ...");
    let t = std::time::Instant::now();
    let g = power_law_graph(n, m, 42);
    eprintln!("generated in {:.1} s ({} distinct edges)", t.elapsed().as_secs_f64(), g.edges());

    let mut networkit = if args.iter().any(|a| a == "--networkit") {
        let path = std::env::temp_dir().join(format!("lift-pagerank-{n}-{m}.bin"));
        write_edges(&g, &path)?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/networkit_pagerank.py");
        let python = std::env::var("LIFT_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let mut child = Command::new(python)
            .arg(script)
            .arg(&path)
            .arg(n.to_string())
            .arg(tolerance.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("networkit: no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("networkit: no stdout")?);
        // The script prints "ready" once it has loaded the graph.
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        std::fs::remove_file(&path).ok();
        if line.trim() != "ready" {
            return Err(format!("networkit did not start: {line:?} (is networkit installed for $LIFT_PYTHON?)").into());
        }
        Some((child, stdin, stdout))
    } else {
        None
    };

    println!(
        "| implementation | threads | nodes | edges | iterations | per iteration (ms) | total (ms) | prepare (ms) | CPU per iteration (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let lift_row = |vector: bool| -> Row {
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
        Row { per_iteration_ms: r.per_iteration_ms, total_ms: r.total_ms }
    };
    let vector = vector_loops_active();
    let (mut lift, mut nk) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        lift.push(lift_row(vector));
        if let Some((_, stdin, stdout)) = networkit.as_mut() {
            writeln!(stdin, "run")?;
            stdin.flush()?;
            let mut line = String::new();
            stdout.read_line(&mut line)?;
            print!("{line}");
            // | networkit V | threads | nodes | edges | iterations | per iteration | total | ...
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let num = |i: usize| cells.get(i).and_then(|c| c.parse::<f64>().ok()).unwrap_or(f64::NAN);
            nk.push(Row { per_iteration_ms: num(6), total_ms: num(7) });
        }
    }
    // The portable loops every machine runs, for the side-by-side.
    let portable = if vector { Some(lift_row(false)) } else { None };
    if let Some((mut child, stdin, _)) = networkit {
        drop(stdin);
        child.wait()?;
    }

    println!();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let col = |rows: &[Row], f: fn(&Row) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let (mut lp, mut lt) = (col(&lift, |r| r.per_iteration_ms), col(&lift, |r| r.total_ms));
    println!(
        "lift-scoring ({} runs): per iteration median {:.2} ms, best {:.2} ms; total median {:.1} ms",
        runs,
        median(&mut lp),
        lp[0],
        median(&mut lt)
    );
    if let Some(p) = portable {
        println!("portable loops: per iteration {:.2} ms, total {:.1} ms", p.per_iteration_ms, p.total_ms);
    }
    if !nk.is_empty() {
        let (mut np, mut nt) = (col(&nk, |r| r.per_iteration_ms), col(&nk, |r| r.total_ms));
        let mut pair_iter: Vec<f64> =
            nk.iter().zip(&lift).map(|(a, b)| a.per_iteration_ms / b.per_iteration_ms).collect();
        let mut pair_total: Vec<f64> = nk.iter().zip(&lift).map(|(a, b)| a.total_ms / b.total_ms).collect();
        println!(
            "networkit ({} runs): per iteration median {:.2} ms, best {:.2} ms; total median {:.1} ms",
            nk.len(),
            median(&mut np),
            np[0],
            median(&mut nt)
        );
        println!(
            "networkit / lift: per iteration {:.1}x (medians), {:.1}x (bests), {:.1}x (median of paired runs); whole computation {:.1}x (median of paired runs)",
            np[np.len() / 2] / lp[lp.len() / 2],
            np[0] / lp[0],
            median(&mut pair_iter),
            median(&mut pair_total)
        );
    }
    Ok(())
}
