//! SelectSeeds (IMM, k seeds) on a generated power-law engagement graph,
//! optionally side by side with pynetim's IMM on the very same influence
//! probabilities (same run, same machine); both seed sets are then scored by
//! the same forward Monte Carlo simulation.
//!
//! ```text
//! cargo run --release -p lift-scoring --example seeds_bench -- 100000 1000000 [--pynetim] [--k 50] [--eps 0.1] [--sims 10000] [--auth 1.0]
//! ```
//! `--auth a` gives every account authenticity weight `a` (default 1: the
//! weighted-cascade probabilities, whose in-probabilities sum to 1 per account).
//! `--pynetim` runs `scripts/pynetim_imm.py` with `$LIFT_PYTHON` (default
//! `python3`), which needs `pip install pynetim numpy`.

use std::process::Command;
use std::time::Instant;

use lift_scoring::engine::bench::{mean_se, power_law_graph, simulate_spreads};
use lift_scoring::engine::compute::influence_graph;
use lift_scoring::engine::seeds::{InfluenceGraph, SeedRequest, select_seeds};

struct Row {
    name: String,
    threads: String,
    seconds: f64,
    rr_sets: u64,
    estimate: Option<f64>,
    seeds: Vec<u32>,
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Writes the influence edges as little-endian `u32 from, u32 to, f32 p`
/// records, `from` being the account whose posts can sway `to`.
fn write_influence(g: &InfluenceGraph, path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for v in 0..g.nodes() {
        let (us, ps) = g.row(v);
        for (u, p) in us.iter().zip(ps) {
            w.write_all(&u.to_le_bytes())?;
            w.write_all(&(v as u32).to_le_bytes())?;
            w.write_all(&p.to_le_bytes())?;
        }
    }
    w.flush()
}

fn run_lift(g: &InfluenceGraph, req: &SeedRequest, threads: Option<usize>) -> Result<Row, Box<dyn std::error::Error>> {
    let run = || {
        let t = Instant::now();
        let r = select_seeds(g, req);
        (t.elapsed().as_secs_f64(), r)
    };
    let (seconds, r, used) = match threads {
        Some(t) => {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build()?;
            let (s, r) = pool.install(run);
            (s, r, t)
        }
        None => {
            let (s, r) = run();
            (s, r, rayon::current_num_threads())
        }
    };
    Ok(Row {
        name: "lift-scoring".into(),
        threads: used.to_string(),
        seconds,
        rr_sets: r.rr_sets,
        estimate: Some(r.spread),
        seeds: r.seeds.iter().map(|s| s.node).collect(),
    })
}

fn run_pynetim(g: &InfluenceGraph, n: usize, k: usize, eps: f64, seed: u64) -> Result<Row, Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("lift-seeds-{n}-{}.bin", g.edges()));
    write_influence(g, &path)?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pynetim_imm.py");
    let python = std::env::var("LIFT_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .arg(script)
        .arg(&path)
        .arg(n.to_string())
        .arg(k.to_string())
        .arg(eps.to_string())
        .arg((seed % (1 << 31)).to_string())
        .output()?;
    std::fs::remove_file(&path).ok();
    if !out.status.success() {
        return Err(format!("pynetim failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let seeds: Vec<u32> = v["seeds"]
        .as_array()
        .ok_or("pynetim output has no seeds")?
        .iter()
        .filter_map(|x| x.as_u64().map(|x| x as u32))
        .collect();
    eprintln!(
        "pynetim {}: graph built in {:.1} s, {} nodes, {} edges",
        v["version"].as_str().unwrap_or("?"),
        v["load_seconds"].as_f64().unwrap_or(f64::NAN),
        v["nodes"],
        v["edges"]
    );
    Ok(Row {
        name: format!("pynetim {}", v["version"].as_str().unwrap_or("?")),
        threads: "1".into(),
        seconds: v["seconds"].as_f64().ok_or("pynetim output has no time")?,
        rr_sets: v["rr_sets"].as_u64().unwrap_or(0),
        estimate: None,
        seeds,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nums: Vec<usize> = args.iter().take_while(|a| !a.starts_with("--")).filter_map(|a| a.parse().ok()).collect();
    let n = nums.first().copied().unwrap_or(100_000);
    let m = nums.get(1).copied().unwrap_or(10 * n);
    let k: usize = flag(&args, "--k", 50);
    let eps: f64 = flag(&args, "--eps", 0.1);
    let sims: usize = flag(&args, "--sims", 10_000);
    let seed: u64 = flag(&args, "--seed", 1);
    // Authenticity weight of every account: it scales each engager's in-probabilities.
    let auth: f64 = flag(&args, "--auth", 1.0);

    eprintln!("generating a power-law engagement graph: {n} nodes, {m} edges ...");
    let engagement = power_law_graph(n, m, 42);
    // p(u→v) = a · w(v→u) / Σ_x w(v→x), with the same authenticity weight a for all.
    let g = influence_graph(&engagement, &vec![auth.clamp(0.0, 1.0); n]);
    let touched = (0..n).filter(|&v| g.degree(v) > 0).count();
    eprintln!("{} influence edges; {touched} of {n} accounts engage someone", g.edges());
    let req = SeedRequest {
        candidates: (0..n as u32).map(|v| (v, 1)).collect(),
        budget: None,
        k,
        epsilon: eps,
        ell: 1.0,
        random_seed: seed,
        // No cap: the full sample the guarantee needs, as pynetim draws.
        max_rr_sets: usize::MAX,
    };

    let mut rows = vec![run_lift(&g, &req, None)?];
    if rayon::current_num_threads() > 1 {
        rows.push(run_lift(&g, &req, Some(1))?);
    }
    if args.iter().any(|a| a == "--pynetim") {
        rows.push(run_pynetim(&g, n, k, eps, seed)?);
    }

    eprintln!("simulating {sims} independent cascades per seed set ...");
    let t = Instant::now();
    let sets: Vec<Vec<u32>> = rows.iter().map(|r| r.seeds.clone()).collect();
    let counts = simulate_spreads(&g, &sets, sims, 0xC0FF_EE00 ^ seed);
    eprintln!("simulated in {:.1} s", t.elapsed().as_secs_f64());
    let stats: Vec<(f64, f64)> =
        counts.iter().map(|c| mean_se(&c.iter().map(|&x| f64::from(x)).collect::<Vec<_>>())).collect();
    // The reference row for ratios: pynetim when it ran, else Lift on all threads.
    let base = rows.len() - 1;
    println!(
        "| implementation | threads | nodes | edges | k | ε | time (s) | RR sets | IMM estimate | spread (MC) ± se | time / {} | spread vs {} (paired) |",
        rows[base].name, rows[base].name
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, r) in rows.iter().enumerate() {
        let diffs: Vec<f64> = counts[i].iter().zip(&counts[base]).map(|(&a, &b)| f64::from(a) - f64::from(b)).collect();
        let (d, dse) = mean_se(&diffs);
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {:.1} ± {:.1} | {:.3} | {:+.3} % ± {:.3} |",
            r.name,
            r.threads,
            n,
            g.edges(),
            r.seeds.len(),
            eps,
            r.seconds,
            r.rr_sets,
            r.estimate.map_or("–".into(), |e| format!("{e:.1}")),
            stats[i].0,
            stats[i].1,
            r.seconds / rows[base].seconds,
            100.0 * d / stats[base].0,
            100.0 * dse / stats[base].0,
        );
    }
    Ok(())
}
