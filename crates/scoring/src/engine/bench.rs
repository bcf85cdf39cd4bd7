//! Benchmark workloads, shared by `examples/pagerank_bench.rs`,
//! `examples/seeds_bench.rs`, the criterion bench and `lift bench scoring`: a
//! generated power-law graph, timed PageRank runs on it, and Monte Carlo
//! spread of seed sets under the independent-cascade model.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::graph::{Csr, PageRankGraph, PageRankOptions, pagerank};
use super::seeds::InfluenceGraph;

/// A directed graph of `n` nodes and about `m` edges whose in-degrees follow a
/// power law (Chung–Lu style: target rank `r` is drawn with probability
/// ∝ `r^−0.75`) while sources are drawn uniformly (out-degrees ~Poisson(m/n)),
/// with node ids shuffled so hubs are scattered in memory as they are in a
/// real id space. Weights are uniform in (0, 1].
pub fn power_law_graph(n: usize, m: usize, seed: u64) -> Csr {
    let n = n.max(2);
    // Inverse-CDF sampling of the rank: P(rank ≤ r) ∝ r^(1−0.75).
    let draw = |rng: &mut rand_chacha::ChaCha8Rng| -> usize {
        let u: f64 = rng.random();
        ((u.powf(1.0 / 0.25) * n as f64) as usize).min(n - 1)
    };
    let mut perm: Vec<u32> = (0..n as u32).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        perm.swap(i, j);
    }
    let chunks = 64usize;
    let per = m.div_ceil(chunks);
    let edges: Vec<(u32, u32, f32)> = (0..chunks)
        .into_par_iter()
        .flat_map_iter(|c| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9));
            let perm = &perm;
            (0..per)
                .map(move |_| {
                    // Sources uniform, targets strongly skewed: a few accounts draw most engagement.
                    let s = perm[rng.random_range(0..n)];
                    let d = perm[draw(&mut rng)];
                    (s, d, rng.random_range(0.001f32..=1.0))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    Csr::from_edges(n, &edges)
}

/// One timed PageRank run.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRankTiming {
    pub nodes: usize,
    pub edges: usize,
    pub prepare_ms: f64,
    pub iterations: u32,
    pub total_ms: f64,
    pub per_iteration_ms: f64,
    /// CPU time of all threads per iteration (NaN where `/proc` is unavailable):
    /// unlike wall time, it excludes time slices lost to other processes.
    pub cpu_per_iteration_ms: f64,
    pub final_delta: f64,
    /// Bytes of the out-CSR plus PageRank's in-edge layout, per edge.
    pub bytes_per_edge: f64,
    pub threads: usize,
}

/// Prepares the in-edge graph and runs PageRank to an L1 change below `tolerance`.
pub fn time_pagerank(out: &Csr, tolerance: f64) -> PageRankTiming {
    let t = Instant::now();
    let g = PageRankGraph::new(out);
    let prepare_ms = t.elapsed().as_secs_f64() * 1e3;
    let cpu = process_cpu_ns();
    let t = Instant::now();
    let pr = pagerank(
        &g,
        PageRankOptions { damping: 0.85, tolerance, max_iterations: 1000, personalization: None, warm_start: None },
    );
    let total_ms = t.elapsed().as_secs_f64() * 1e3;
    let cpu_ms = match (cpu, process_cpu_ns()) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e6,
        _ => f64::NAN,
    };
    PageRankTiming {
        cpu_per_iteration_ms: cpu_ms / f64::from(pr.iterations.max(1)),
        nodes: out.nodes(),
        edges: out.edges(),
        prepare_ms,
        iterations: pr.iterations,
        total_ms,
        per_iteration_ms: total_ms / f64::from(pr.iterations.max(1)),
        final_delta: pr.delta,
        bytes_per_edge: (out.bytes() + g.bytes()) as f64 / out.edges().max(1) as f64,
        threads: rayon::current_num_threads(),
    }
}

/// CPU time run so far by this process's threads, from each thread's
/// `/proc/self/task/*/schedstat` (first field, nanoseconds on the CPU).
fn process_cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Writes `out` as little-endian `u32 src, u32 dst, f32 weight` records, for
/// comparing with other libraries on the very same graph.
pub fn write_edges(out: &Csr, path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for s in 0..out.nodes() {
        let (ts, ws) = out.row(s);
        for (d, x) in ts.iter().zip(ws) {
            w.write_all(&(s as u32).to_le_bytes())?;
            w.write_all(&d.to_le_bytes())?;
            w.write_all(&x.to_le_bytes())?;
        }
    }
    w.flush()
}

/// Forward independent-cascade simulations of several seed sets on the same
/// sampled worlds: `result[j][s]` is how many accounts seed set `j` reaches in
/// simulation `s`. An edge is live in simulation `s` when a hash of
/// `(seed, s, edge)` falls below its probability, so every seed set sees the
/// same live-edge graph and differences between sets have a small paired error.
/// `g` is an influence graph (per engager, `p(engaged → engager)`).
pub fn simulate_spreads(g: &InfluenceGraph, seed_sets: &[Vec<u32>], sims: usize, seed: u64) -> Vec<Vec<u32>> {
    let fwd = g.transpose();
    let n = fwd.nodes();
    let per_sim: Vec<Vec<u32>> = (0..sims)
        .into_par_iter()
        .map_init(
            || (vec![0u32; n], Vec::<u32>::new(), 0u32),
            |(stamp, queue, mark), s| {
                let world = splitmix(seed ^ (s as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
                seed_sets
                    .iter()
                    .map(|set| {
                        *mark = mark.wrapping_add(1);
                        if *mark == 0 {
                            stamp.fill(0);
                            *mark = 1;
                        }
                        queue.clear();
                        for &v in set {
                            if (v as usize) < n && stamp[v as usize] != *mark {
                                stamp[v as usize] = *mark;
                                queue.push(v);
                            }
                        }
                        let mut i = 0;
                        while i < queue.len() {
                            let u = queue[i] as usize;
                            i += 1;
                            let base = fwd.offsets[u];
                            let (vs, ps) = fwd.row(u);
                            for (j, (&v, &p)) in vs.iter().zip(ps).enumerate() {
                                if stamp[v as usize] != *mark && coin(world, base + j as u64) < p {
                                    stamp[v as usize] = *mark;
                                    queue.push(v);
                                }
                            }
                        }
                        queue.len() as u32
                    })
                    .collect()
            },
        )
        .collect();
    (0..seed_sets.len()).map(|j| per_sim.iter().map(|r| r[j]).collect()).collect()
}

/// Mean and standard error of the mean.
pub fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform draw in [0, 1) for one edge in one world.
fn coin(world: u64, edge: u64) -> f32 {
    (splitmix(world ^ edge.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the generator: deterministic, about the requested size, skewed in-degrees.
    #[test]
    fn power_law_graph_is_deterministic_and_skewed() {
        let a = power_law_graph(2000, 20_000, 3);
        assert_eq!(a, power_law_graph(2000, 20_000, 3));
        assert!(a.edges() > 15_000);
        let t = a.transpose();
        let max_in = (0..t.nodes()).map(|v| t.degree(v)).max().unwrap();
        assert!(max_in > 100, "max in-degree {max_in}");
        let timing = time_pagerank(&a, 1e-6);
        assert!(timing.final_delta < 1e-6);
    }

    /// Pins the simulator against exact spreads: a chain 0 → 1 → 2 with
    /// probabilities 0.5 and 0.4 reaches 1 + 0.5 + 0.2 accounts from {0}; the
    /// paired difference of two sets is exact where they share worlds.
    #[test]
    fn simulated_spread_matches_exact_chain() {
        // Influence rows are per engager: row 1 holds p(0 → 1), row 2 holds p(1 → 2).
        let g = Csr::from_edges(3, &[(1, 0, 0.5), (2, 1, 0.4)]);
        let r = simulate_spreads(&g, &[vec![0], vec![0, 2], vec![1]], 200_000, 9);
        let m: Vec<(f64, f64)> =
            r.iter().map(|c| mean_se(&c.iter().map(|&x| f64::from(x)).collect::<Vec<_>>())).collect();
        assert!((m[0].0 - 1.7).abs() < 4.0 * m[0].1 + 1e-3, "{:?}", m[0]);
        assert!((m[2].0 - 1.4).abs() < 4.0 * m[2].1 + 1e-3, "{:?}", m[2]);
        // {0, 2} reaches 2 + 0.5 accounts; per world it is {0}'s count plus 1 unless 2 was reached.
        assert!((m[1].0 - 2.5).abs() < 4.0 * m[1].1 + 1e-3, "{:?}", m[1]);
        for (s, (&a, &b)) in r[0].iter().zip(&r[1]).enumerate() {
            assert!(b == a + 1 || (a == 3 && b == 3), "world {s}: {a} vs {b}");
        }
        assert_eq!(r, simulate_spreads(&g, &[vec![0], vec![0, 2], vec![1]], 200_000, 9));
    }
}
