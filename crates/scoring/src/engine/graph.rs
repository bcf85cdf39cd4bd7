//! Compact CSR graphs and weighted PageRank.
//!
//! An edge costs 8 bytes per direction (u32 neighbour + f32 weight), so the
//! out- and in-CSR together stay at 16 bytes per edge plus 8 bytes per node —
//! far inside the 64 bytes/edge budget, which is what lets one machine hold
//! a large engagement graph.
//!
//! PageRank is pull-based: each node sums over its in-edges, so threads write
//! disjoint slices with no atomics, and every node's sum is taken in the same
//! order on every run — the result does not depend on the thread count.

use rayon::prelude::*;

/// Rows of `(neighbour, weight)` in compressed sparse row form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Csr {
    /// `offsets[v]..offsets[v + 1]` indexes row `v`; length `n + 1`.
    pub offsets: Vec<u64>,
    pub targets: Vec<u32>,
    pub weights: Vec<f32>,
}

impl Csr {
    /// Builds rows from `(src, dst, weight)` edges over `n` nodes, summing the
    /// weights of parallel edges and sorting each row by neighbour. Edges with
    /// an endpoint ≥ `n`, a self-loop, or a non-positive weight are skipped.
    pub fn from_edges(n: usize, edges: &[(u32, u32, f32)]) -> Self {
        let mut counts = vec![0u64; n + 1];
        for &(s, d, w) in edges {
            if keep(n, s, d, w) {
                counts[s as usize + 1] += 1;
            }
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let m = counts[n] as usize;
        let mut fill = counts.clone();
        let mut tmp: Vec<(u32, f32)> = vec![(0, 0.0); m];
        for &(s, d, w) in edges {
            if keep(n, s, d, w) {
                let at = &mut fill[s as usize];
                tmp[*at as usize] = (d, w);
                *at += 1;
            }
        }
        // Sort and merge each row; rows are independent, so do them in parallel.
        let rows: Vec<Vec<(u32, f32)>> = (0..n)
            .into_par_iter()
            .map(|v| {
                let row = &tmp[counts[v] as usize..counts[v + 1] as usize];
                let mut row = row.to_vec();
                row.sort_unstable_by_key(|e| e.0);
                let mut merged: Vec<(u32, f32)> = Vec::with_capacity(row.len());
                for (d, w) in row {
                    match merged.last_mut() {
                        Some(last) if last.0 == d => last.1 += w,
                        _ => merged.push((d, w)),
                    }
                }
                merged
            })
            .collect();
        drop(tmp);
        let total: usize = rows.iter().map(Vec::len).sum();
        let mut csr = Csr {
            offsets: Vec::with_capacity(n + 1),
            targets: Vec::with_capacity(total),
            weights: Vec::with_capacity(total),
        };
        csr.offsets.push(0);
        for row in rows {
            for (d, w) in row {
                csr.targets.push(d);
                csr.weights.push(w);
            }
            csr.offsets.push(csr.targets.len() as u64);
        }
        csr
    }

    pub fn nodes(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn edges(&self) -> usize {
        self.targets.len()
    }

    pub fn row(&self, v: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.offsets[v] as usize, self.offsets[v + 1] as usize);
        (&self.targets[a..b], &self.weights[a..b])
    }

    pub fn degree(&self, v: usize) -> usize {
        (self.offsets[v + 1] - self.offsets[v]) as usize
    }

    /// Sum of each row's weights.
    pub fn row_sums(&self) -> Vec<f64> {
        (0..self.nodes()).map(|v| self.row(v).1.iter().map(|w| f64::from(*w)).sum()).collect()
    }

    /// The reversed graph (rows become columns), rows sorted by neighbour.
    pub fn transpose(&self) -> Csr {
        let n = self.nodes();
        let mut counts = vec![0u64; n + 1];
        for &d in &self.targets {
            counts[d as usize + 1] += 1;
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let m = self.targets.len();
        let mut fill = counts.clone();
        let mut targets = vec![0u32; m];
        let mut weights = vec![0f32; m];
        // Visiting sources in increasing order leaves every transposed row sorted.
        for s in 0..n {
            let (ts, ws) = self.row(s);
            for (&d, &w) in ts.iter().zip(ws) {
                let at = &mut fill[d as usize];
                targets[*at as usize] = s as u32;
                weights[*at as usize] = w;
                *at += 1;
            }
        }
        Csr { offsets: counts, targets, weights }
    }

    /// Bytes held, for the per-edge memory budget.
    pub fn bytes(&self) -> usize {
        self.offsets.len() * 8 + self.targets.len() * 4 + self.weights.len() * 4
    }
}

fn keep(n: usize, s: u32, d: u32, w: f32) -> bool {
    (s as usize) < n && (d as usize) < n && s != d && w > 0.0 && w.is_finite()
}

/// A graph prepared for pull-based PageRank: in-edges with their raw weights,
/// and per source the share of its rank it passes on along one unit of
/// out-weight. Dividing by the f64 out-weight at pull time (instead of storing
/// f32 probabilities) keeps each column stochastic to f64 precision, so no
/// rank mass leaks however many iterations run.
#[derive(Debug, Clone, Default)]
pub struct PageRankGraph {
    pub incoming: Csr,
    /// `retention(u) / out(u)`, 0 for dangling nodes.
    pub inv_out: Vec<f64>,
    /// `(u, share)`: the share of `u`'s rank that goes where teleports go —
    /// all of it for dangling nodes, `1 − retention` for down-weighted ones.
    pub leak: Vec<(u32, f64)>,
    /// Internal id → caller's node id (everything above is in internal ids).
    pub old_of: Vec<u32>,
}

/// The transpose of `out` with node `v` renamed `new_of[v]`; rows sorted by source.
fn relabelled_transpose(out: &Csr, old_of: &[u32], new_of: &[u32]) -> Csr {
    let n = out.nodes();
    let mut counts = vec![0u64; n + 1];
    for &d in &out.targets {
        counts[new_of[d as usize] as usize + 1] += 1;
    }
    for i in 0..n {
        counts[i + 1] += counts[i];
    }
    let m = out.targets.len();
    let mut fill = counts.clone();
    let mut targets = vec![0u32; m];
    let mut weights = vec![0f32; m];
    // Visiting sources in increasing internal id leaves every row sorted.
    for (new_s, &old_s) in old_of.iter().enumerate() {
        let (ts, ws) = out.row(old_s as usize);
        for (&d, &w) in ts.iter().zip(ws) {
            let at = &mut fill[new_of[d as usize] as usize];
            targets[*at as usize] = new_s as u32;
            weights[*at as usize] = w;
            *at += 1;
        }
    }
    Csr { offsets: counts, targets, weights }
}

impl PageRankGraph {
    /// Every node passes on all of its rank.
    pub fn new(out: &Csr) -> Self {
        Self::with_retention(out, None)
    }

    /// Node `u` passes on only `retention[u]` (0–1) of its rank along its edges;
    /// the rest is redistributed like a dangling node's. Scaling a node's edge
    /// weights alone would be undone by normalisation, so this is how a vote
    /// from a low-authenticity account is made to count less.
    pub fn with_retention(out: &Csr, retention: Option<&[f64]>) -> Self {
        let n = out.nodes();
        let sums = out.row_sums();
        // Relabel by out-degree, descending: the sources read most often (hubs)
        // share a few cache lines instead of being scattered over the id space.
        let mut old_of: Vec<u32> = (0..n as u32).collect();
        old_of.par_sort_unstable_by_key(|&v| (std::cmp::Reverse(out.degree(v as usize)), v));
        let mut new_of = vec![0u32; n];
        for (new, &old) in old_of.iter().enumerate() {
            new_of[old as usize] = new as u32;
        }
        let incoming = relabelled_transpose(out, &old_of, &new_of);
        let keep = |u: usize| retention.and_then(|r| r.get(u)).copied().unwrap_or(1.0).clamp(0.0, 1.0);
        let inv_out = old_of
            .iter()
            .map(|&u| {
                let u = u as usize;
                if sums[u] > 0.0 { keep(u) / sums[u] } else { 0.0 }
            })
            .collect();
        let leak = old_of
            .iter()
            .enumerate()
            .filter_map(|(new, &u)| {
                let u = u as usize;
                let share = if sums[u] > 0.0 { 1.0 - keep(u) } else { 1.0 };
                (share > 0.0).then_some((new as u32, share))
            })
            .collect();
        Self { incoming, inv_out, leak, old_of }
    }

    pub fn nodes(&self) -> usize {
        self.incoming.nodes()
    }
}

/// Outcome of a PageRank computation.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRank {
    /// Sums to 1.
    pub scores: Vec<f64>,
    pub iterations: u32,
    /// L1 change of the last iteration.
    pub delta: f64,
}

/// Options for [`pagerank`].
#[derive(Debug, Clone, Copy)]
pub struct PageRankOptions<'a> {
    pub damping: f64,
    /// Stop when the L1 change of an iteration falls below this.
    pub tolerance: f64,
    pub max_iterations: u32,
    /// Teleport (and dangling redistribution) distribution; uniform when `None`.
    /// Need not be normalised; all-zero falls back to uniform.
    pub personalization: Option<&'a [f64]>,
    /// Starting vector (e.g. the previous run's, extended for new nodes).
    pub warm_start: Option<&'a [f64]>,
}

const CHUNK: usize = 4096;

/// Weighted PageRank by power iteration with the same conventions as
/// networkx's `pagerank` (dangling rank goes where teleports go).
/// The sum over each node's in-edges runs in a fixed order, and per-chunk
/// deltas are added sequentially, so results do not depend on thread count.
pub fn pagerank(g: &PageRankGraph, opts: PageRankOptions<'_>) -> PageRank {
    let n = g.nodes();
    if n == 0 {
        return PageRank { scores: Vec::new(), iterations: 0, delta: 0.0 };
    }
    let inward = |v: Option<&[f64]>| -> Option<Vec<f64>> {
        v.map(|v| g.old_of.iter().map(|&o| v.get(o as usize).copied().unwrap_or(f64::NAN)).collect())
    };
    let personalization = inward(opts.personalization);
    let teleport = normalised(personalization.as_deref(), n);
    let warm = opts.warm_start.map(|w| {
        // Nodes beyond the previous vector are new: marked NaN, started at the uniform share below.
        let mut v = inward(Some(w)).unwrap_or_default();
        for (i, &o) in g.old_of.iter().enumerate() {
            if o as usize >= w.len() {
                v[i] = f64::INFINITY;
            }
        }
        v
    });
    let mut x = match warm.as_deref() {
        Some(w) => {
            // New nodes start at the uniform share, then everything is renormalised.
            let mut v: Vec<f64> = w
                .iter()
                .map(|x| {
                    if *x == f64::INFINITY {
                        1.0 / n as f64
                    } else if x.is_finite() && *x > 0.0 {
                        *x
                    } else {
                        0.0
                    }
                })
                .collect();
            let s: f64 = v.iter().sum();
            if s > 0.0 {
                v.iter_mut().for_each(|x| *x /= s)
            } else {
                v = vec![1.0 / n as f64; n]
            }
            v
        }
        None => vec![1.0 / n as f64; n],
    };
    let mut next = vec![0.0f64; n];
    let mut y = vec![0.0f64; n];
    let d = opts.damping;
    let inc = &g.incoming;
    let mut iterations = 0;
    let mut delta = f64::INFINITY;
    while iterations < opts.max_iterations {
        iterations += 1;
        let dangling_mass: f64 = g.leak.iter().map(|&(u, share)| x[u as usize] * share).sum();
        // Rank each source sends along one unit of out-weight.
        y.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
            let base = c * CHUNK;
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = x[base + i] * g.inv_out[base + i];
            }
        });
        let xr = &x;
        let yr = &y;
        let tp = &teleport;
        let diffs: Vec<f64> = next
            .par_chunks_mut(CHUNK)
            .enumerate()
            .map(|(c, out)| {
                let base = c * CHUNK;
                let mut diff = 0.0;
                for (i, slot) in out.iter_mut().enumerate() {
                    let v = base + i;
                    let (a, b) = (inc.offsets[v] as usize, inc.offsets[v + 1] as usize);
                    let s = row_sum(yr, &inc.targets[a..b], &inc.weights[a..b]);
                    let t = tp.get(v);
                    let val = d * (s + dangling_mass * t) + (1.0 - d) * t;
                    diff += (val - xr[v]).abs();
                    *slot = val;
                }
                diff
            })
            .collect();
        delta = diffs.iter().sum();
        std::mem::swap(&mut x, &mut next);
        if delta < opts.tolerance {
            break;
        }
    }
    let mut scores = vec![0.0; n];
    for (i, &o) in g.old_of.iter().enumerate() {
        scores[o as usize] = x[i];
    }
    PageRank { scores, iterations, delta }
}

/// `Σ y[src]·w` over one row. Four independent accumulators let the random
/// loads of `y` overlap instead of waiting on one chain of additions; the
/// order is fixed, so the result is the same on every run.
#[inline]
fn row_sum(y: &[f64], srcs: &[u32], ws: &[f32]) -> f64 {
    let mut acc = [0.0f64; 4];
    let mut sc = srcs.chunks_exact(4);
    let mut wc = ws.chunks_exact(4);
    for (s, w) in (&mut sc).zip(&mut wc) {
        for j in 0..4 {
            acc[j] += y[s[j] as usize] * f64::from(w[j]);
        }
    }
    let mut tail = 0.0;
    for (s, w) in sc.remainder().iter().zip(wc.remainder()) {
        tail += y[*s as usize] * f64::from(*w);
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Teleport weights: uniform without storing `n` copies of `1/n`.
enum Teleport {
    Uniform(f64),
    Dense(Vec<f64>),
}

impl Teleport {
    #[inline]
    fn get(&self, v: usize) -> f64 {
        match self {
            Teleport::Uniform(p) => *p,
            Teleport::Dense(p) => p[v],
        }
    }
}

fn normalised(p: Option<&[f64]>, n: usize) -> Teleport {
    if let Some(p) = p {
        let s: f64 = p.iter().take(n).filter(|x| x.is_finite() && **x > 0.0).sum();
        if s > 0.0 {
            return Teleport::Dense(
                (0..n).map(|i| p.get(i).copied().filter(|x| x.is_finite() && *x > 0.0).unwrap_or(0.0) / s).collect(),
            );
        }
    }
    Teleport::Uniform(1.0 / n as f64)
}

#[cfg(test)]
mod tests {
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
        PageRankOptions {
            damping: 0.85,
            tolerance: 1e-13,
            max_iterations: 10_000,
            personalization: None,
            warm_start: None,
        }
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
}
