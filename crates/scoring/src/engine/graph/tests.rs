use super::*;

/// The graph of `REFERENCE`: 6 nodes, weighted, with a parallel edge, and node 5 dangling.
const EDGES: &[(u32, u32, f32)] = &[
    (0, 1, 1.0),
    (0, 2, 2.0),
    (1, 2, 1.0),
    (2, 0, 1.0),
    (2, 3, 0.5),
    (3, 4, 1.0),
    (4, 0, 1.0),
    (4, 3, 3.0),
    (4, 5, 1.0),
    (1, 2, 1.5),
    (3, 5, 0.25),
];

/// Produced by `scripts/pagerank_reference.py` (networkx 3.6.1, scipy backend):
/// `nx.pagerank(G, alpha=0.85, tol=1e-14, max_iter=10_000, weight="weight")` on a
/// `DiGraph` of `EDGES` with parallel edges summed (1→2 weighs 2.5).
const REFERENCE: [f64; 6] = [
    0.20209464567711252,
    0.0966021362108154,
    0.2359741015985248,
    0.1933033198954855,
    0.1707882441312187,
    0.10123755248684282,
];

/// Same graph with personalization [1, 0, 0, 0, 0, 1] (topic-sensitive form).
const REFERENCE_PERSONALIZED: [f64; 6] = [
    0.30476318686522075,
    0.08634956961181418,
    0.24609627339366813,
    0.10674720983088741,
    0.07258810268501305,
    0.18345565761339636,
];

fn graph() -> PageRankGraph {
    PageRankGraph::new(&Csr::from_edges(6, EDGES))
}

fn opts<'a>() -> PageRankOptions<'a> {
    PageRankOptions { damping: 0.85, tolerance: 1e-13, max_iterations: 10_000, personalization: None, warm_start: None }
}

/// Pins agreement with networkx within 1e-6 per node, uniform teleport with a dangling node.
#[test]
fn pagerank_matches_networkx() {
    let pr = pagerank(&graph(), opts());
    for (got, want) in pr.scores.iter().zip(REFERENCE) {
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
    assert!((pr.scores.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

/// Pins agreement with networkx's personalised PageRank (topic-sensitive variant).
#[test]
fn personalized_pagerank_matches_networkx() {
    let p = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
    let pr = pagerank(&graph(), PageRankOptions { personalization: Some(&p), ..opts() });
    for (got, want) in pr.scores.iter().zip(REFERENCE_PERSONALIZED) {
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
}

/// Pins that a warm start converges to the same vector in fewer iterations.
#[test]
fn warm_start_converges_faster_to_the_same_vector() {
    let g = graph();
    let cold = pagerank(&g, opts());
    let warm = pagerank(&g, PageRankOptions { warm_start: Some(&cold.scores), ..opts() });
    assert!(warm.iterations < cold.iterations);
    for (a, b) in warm.scores.iter().zip(&cold.scores) {
        assert!((a - b).abs() < 1e-12);
    }
}

/// Plain sequential push-based power iteration in f64, straight from the out-CSR.
fn reference_pagerank(out: &Csr, keep: &[f64], d: f64, tol: f64) -> Vec<f64> {
    let n = out.nodes();
    let sums = out.row_sums();
    let mut x = vec![1.0 / n as f64; n];
    loop {
        let mut next = vec![0.0; n];
        let mut dangling = 0.0;
        for u in 0..n {
            if sums[u] > 0.0 {
                dangling += x[u] * (1.0 - keep[u]);
                let (ts, ws) = out.row(u);
                for (&v, &w) in ts.iter().zip(ws) {
                    next[v as usize] += x[u] * keep[u] * f64::from(w) / sums[u];
                }
            } else {
                dangling += x[u];
            }
        }
        let t = 1.0 / n as f64;
        let mut delta = 0.0;
        for v in 0..n {
            let val = d * (next[v] + dangling * t) + (1.0 - d) * t;
            delta += (val - x[v]).abs();
            x[v] = val;
        }
        if delta < tol {
            return x;
        }
    }
}

/// A graph spanning several source segments and target ranges, with dangling nodes.
fn blocked_graph() -> (Csr, Vec<f64>) {
    let out = crate::engine::bench::power_law_graph(2 * SEGMENT + 5000, 400_000, 7);
    let keep = (0..out.nodes()).map(|u| (u % 5) as f64 / 4.0).collect();
    (out, keep)
}

/// Pins the blocked, f32-then-f64 pull against a plain f64 power iteration
/// on a graph with several segments, ranges, down-weighted and dangling nodes.
#[test]
fn blocked_pull_matches_plain_power_iteration() {
    let (out, keep) = blocked_graph();
    let g = PageRankGraph::with_retention(&out, Some(&keep));
    assert!(g.ranges.len() > 1 && g.nodes() > 2 * SEGMENT);
    assert!(g.leak.len() > g.nodes() / 2, "dangling and down-weighted nodes leak");
    assert!(out.bytes() + g.bytes() <= 64 * g.edges());
    let want = reference_pagerank(&out, &keep, 0.85, 1e-13);
    let got = pagerank(&g, PageRankOptions { tolerance: 1e-12, ..opts() });
    let err: f64 = got.scores.iter().zip(&want).map(|(a, b)| (a - b).abs()).sum();
    assert!(err < 1e-10, "L1 error {err}");
    // Rounding over 270k nodes moves the total by ~1e-11 in the plain iteration too.
    assert!((got.scores.iter().sum::<f64>() - 1.0).abs() < 1e-10);
}

/// Pins that the vector loops take every sum in the portable loops' order:
/// both phases, every range, bit for bit — on a graph with full and partial
/// blocks of every short length and long sub-rows with a remainder.
#[test]
fn vector_and_portable_loops_agree_bit_for_bit() {
    let (out, keep) = blocked_graph();
    let g = PageRankGraph::with_retention(&out, Some(&keep));
    let runs: Vec<(u32, u32)> = g.ranges.iter().flat_map(|r| r.runs.iter().copied()).collect();
    for len in 1..=FIXED as u32 {
        assert!(
            runs.iter().any(|&(l, c)| l == len && c as usize > LANES && !(c as usize).is_multiple_of(LANES)),
            "{len}"
        );
    }
    assert!(runs.iter().any(|&(l, _)| l as usize > FIXED && !(l as usize).is_multiple_of(LANES)));
    // Magnitudes spread over six decades, as ranks are.
    let x: Vec<f64> = (0..g.nodes()).map(|i| ((i * 7919) % 1_000_003 + 1) as f64 * 1e-12).collect();
    let (y32, y64): (Vec<f32>, Vec<f64>) = (contributions(&g, &x), contributions(&g, &x));
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (mut vector_ran, mut summed) = (false, 0);
    for r in &g.ranges {
        let (mut portable, mut vector) = (vec![0.0; r.len], vec![0.0; r.len]);
        r.accumulate(&y32, &r.quantised, &mut portable);
        if simd::accumulate(r, &y32, &r.quantised, &mut vector) {
            vector_ran = true;
            assert_eq!(bits(&portable), bits(&vector));
        }
        let (mut portable, mut vector) = (vec![0.0; r.len], vec![0.0; r.len]);
        r.accumulate(&y64, &r.weights, &mut portable);
        if simd::accumulate(r, &y64, &r.weights, &mut vector) {
            assert_eq!(bits(&portable), bits(&vector));
        }
        summed += portable.iter().filter(|&&v| v > 0.0).count();
    }
    assert!(summed > g.nodes() / 2);
    if !vector_ran {
        eprintln!("this CPU lacks AVX-512F/AVX2: only the portable loops were run");
    }
}

/// Pins that the scores are bit-identical whatever the number of threads.
#[test]
fn pagerank_does_not_depend_on_thread_count() {
    let (out, keep) = blocked_graph();
    let g = PageRankGraph::with_retention(&out, Some(&keep));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        pool.install(|| pagerank(&g, PageRankOptions { tolerance: 1e-10, ..opts() }))
    };
    let one = run(1);
    assert_eq!(one, run(3));
    assert!(one.iterations > 1);
}

/// Pins CSR construction: parallel edges merged, invalid edges dropped, transpose exact.
#[test]
fn csr_merges_and_transposes() {
    let csr = Csr::from_edges(3, &[(0, 1, 1.0), (0, 1, 2.0), (1, 1, 1.0), (2, 9, 1.0), (2, 0, 0.0), (1, 0, 1.0)]);
    assert_eq!(csr.row(0), (&[1u32][..], &[3.0f32][..]));
    assert_eq!(csr.edges(), 2);
    let t = csr.transpose();
    assert_eq!(t.row(1), (&[0u32][..], &[3.0f32][..]));
    assert_eq!(t.row(0), (&[1u32][..], &[1.0f32][..]));
    assert_eq!(t.transpose(), csr);
}
