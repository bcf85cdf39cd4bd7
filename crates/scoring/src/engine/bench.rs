//! Benchmark workloads, shared by `examples/pagerank_bench.rs`, the criterion
//! bench and `lift bench scoring`: a generated power-law graph and timed
//! PageRank runs on it.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::graph::{Csr, PageRankGraph, PageRankOptions, pagerank};

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
    pub final_delta: f64,
    pub threads: usize,
}

/// Prepares the in-edge graph and runs PageRank to an L1 change below `tolerance`.
pub fn time_pagerank(out: &Csr, tolerance: f64) -> PageRankTiming {
    let t = Instant::now();
    let g = PageRankGraph::new(out);
    let prepare_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let pr = pagerank(
        &g,
        PageRankOptions { damping: 0.85, tolerance, max_iterations: 1000, personalization: None, warm_start: None },
    );
    let total_ms = t.elapsed().as_secs_f64() * 1e3;
    PageRankTiming {
        nodes: out.nodes(),
        edges: out.edges(),
        prepare_ms,
        iterations: pr.iterations,
        total_ms,
        per_iteration_ms: total_ms / f64::from(pr.iterations.max(1)),
        final_delta: pr.delta,
        threads: rayon::current_num_threads(),
    }
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
}
