//! Compact CSR graphs and weighted PageRank.
//!
//! An edge costs 8 bytes per direction (out-CSR: u32 neighbour + f32 weight;
//! PageRank's in-edge layout: u16 source offset + u16 quantised weight + f32
//! exact weight), so the two together stay near 16 bytes per edge (plus 2
//! bytes per target and source segment, and ~40 bytes per node) — far inside
//! the 64 bytes/edge budget, which is what lets one machine hold a large
//! engagement graph.
//!
//! PageRank is pull-based: each node sums over its in-edges, so threads write
//! disjoint slices with no atomics, and every node's sum is taken in the same
//! order on every run — the result does not depend on the thread count. The
//! in-edges are cut by source segment (cache blocking) so the gathered
//! contributions come from L2 rather than from the shared L3 or memory.
//! Where the CPU has AVX-512, the sums run eight abreast in vector registers
//! (`simd`), in the same order as the portable loops, bit for bit.
//!
//! This file is longer than the workspace's ~600-line guide on purpose: the
//! in-edge layout, the blocked sums and the iteration are one kernel whose
//! parts share private invariants (segment size, lane count, the summation
//! order that keeps results bit-identical across threads and vector widths).
//! Split across files, those invariants would have to become crate-visible and
//! a reader would lose the order they are checked in. The CSR graph itself
//! (`graph/csr.rs`), the vector loops (`graph/simd.rs`, the one module allowed
//! `unsafe`) and the tests live apart.

use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

mod csr;
mod simd;

pub use csr::Csr;

/// Whether PageRank may use [`simd`]'s vector loops where the CPU has them
/// (on by default; off forces the portable loops, for comparing the two).
static VECTOR_LOOPS: AtomicBool = AtomicBool::new(true);

/// Allows or forbids the vector loops; results are bit-identical either way.
pub fn set_vector_loops(enabled: bool) {
    VECTOR_LOOPS.store(enabled, Ordering::Relaxed);
}

fn vector_loops_enabled() -> bool {
    VECTOR_LOOPS.load(Ordering::Relaxed)
}

/// Whether PageRank runs the vector loops here: allowed, and this CPU has them.
pub fn vector_loops_active() -> bool {
    vector_loops_enabled() && simd::available()
}

/// Sources per segment: a segment's f32 contributions (256 KiB) stay in a
/// core's L2 while its in-edges are summed, and a source is stored as a u16
/// offset into its segment. Fixed, so every node's sum is cut into the same
/// pieces on every machine.
const SEGMENT: usize = 1 << 16;

/// Target ranges the in-edges are split into (by edge count); each is one
/// parallel task that owns its slice of the output.
const RANGES: usize = 8;

/// Most targets in one range, so that a target is stored as a u16 offset
/// (and the range's slice of the output, 512 KiB, stays in L2 beside the
/// segment's contributions).
const TARGETS_PER_RANGE: usize = 1 << 16;

/// Longest sub-row summed side by side with others of its length, one per
/// lane; longer ones are summed one at a time, [`LANES`] edges abreast
/// ([`row_sum`]).
const FIXED: usize = 8;

/// Sums taken abreast: the f64 lanes of one 512-bit vector.
const LANES: usize = 8;

/// Iterations gather f32 contributions along 16-bit quantised weights while
/// the L1 change is at least this, then f64 ones along the exact weights. The
/// quantised graph is a PageRank problem of its own (its columns are
/// normalised by the sum of their quantised weights, so no mass leaks) whose
/// fixed point lies within ~1e-5 of the exact one; the f32 phase only shortens
/// the road, and the stopping test and the final vector always come from f64
/// iterations over the exact weights. Switching at 3e-5 rather than nearer
/// that offset lets the exact iterations absorb it while they still have far
/// to go: 16 iterations to an L1 change of 1e-6 on the 1M-node benchmark
/// graph, as many as a plain f64 power iteration, where 1e-5 took 17.
const F32_UNTIL: f64 = 3e-5;

/// Quantised weights run up to this (the largest weight of each source).
const QMAX: f32 = 65535.0;

/// One range of targets' in-edges, cut by source segment.
///
/// For each segment in turn, the range's targets with in-edges from that
/// segment each get a *sub-row* (their sources in the segment, ascending),
/// sorted by length, longest first, then by target. Equal lengths form runs;
/// summing segment by segment keeps the gathered contributions in cache.
///
/// A run of short sub-rows (at most [`FIXED`] edges) is cut into blocks of
/// [`LANES`] sub-rows (the last may be shorter) stored column by column: the
/// blocks' first edges, then their second edges, and so on, so that the
/// sub-rows of a block are summed side by side, one per vector lane, with
/// contiguous loads. Longer sub-rows are stored edge after edge.
///
/// Each edge is stored twice over: 4 bytes streamed by the f32 phase (u16
/// source offset, u16 weight quantised relative to its source's largest
/// weight) and the exact f32 weight read only by the final f64 iterations.
#[derive(Debug, Clone, Default)]
struct TargetRange {
    /// Targets in the range (ranges are consecutive, starting at 0).
    len: usize,
    /// `(sub-row length, sub-rows)`, segment after segment.
    runs: Vec<(u32, u32)>,
    /// Per segment, one past its last run in `runs`.
    segment_runs: Vec<u32>,
    /// Per sub-row, its target relative to the range's start.
    targets: Vec<u16>,
    /// Source minus the start of its segment.
    sources: Vec<u16>,
    /// Weight as a fraction of the source's largest, in units of 1/[`QMAX`].
    quantised: Vec<u16>,
    weights: Vec<f32>,
}

impl TargetRange {
    /// Cuts the rows `start..end` of `inc` (rows sorted by source) by segment;
    /// `max_w[u]` is the largest weight on an edge out of source `u`.
    fn new(inc: &Csr, start: usize, end: usize, max_w: &[f32]) -> Self {
        let segments = inc.nodes().div_ceil(SEGMENT);
        // (length, target relative to start, first edge in `inc`) per sub-row, by segment.
        let mut subs: Vec<Vec<(u32, u16, usize)>> = vec![Vec::new(); segments];
        for t in start..end {
            let (mut a, b) = (inc.offsets[t] as usize, inc.offsets[t + 1] as usize);
            while a < b {
                let k = inc.targets[a] as usize / SEGMENT;
                let len = inc.targets[a..b].partition_point(|&s| s as usize / SEGMENT <= k);
                subs[k].push((len as u32, (t - start) as u16, a));
                a += len;
            }
        }
        let pairs = subs.iter().map(Vec::len).sum();
        let edges = (inc.offsets[end] - inc.offsets[start]) as usize;
        let mut r = TargetRange {
            len: end - start,
            runs: Vec::new(),
            segment_runs: Vec::with_capacity(segments),
            targets: Vec::with_capacity(pairs),
            sources: Vec::with_capacity(edges),
            quantised: Vec::with_capacity(edges),
            weights: Vec::with_capacity(edges),
        };
        for mut seg in subs {
            seg.sort_unstable_by_key(|&(len, t, _)| (std::cmp::Reverse(len), t));
            // Runs never span segments.
            for run in seg.chunk_by(|a, b| a.0 == b.0) {
                let len = run[0].0 as usize;
                r.runs.push((len as u32, run.len() as u32));
                r.targets.extend(run.iter().map(|&(_, t, _)| t));
                if len <= FIXED {
                    for block in run.chunks(LANES) {
                        for j in 0..len {
                            for &(_, _, a) in block {
                                r.push_edge(inc, a + j, max_w);
                            }
                        }
                    }
                } else {
                    for &(_, _, a) in run {
                        (a..a + len).for_each(|e| r.push_edge(inc, e, max_w));
                    }
                }
            }
            r.segment_runs.push(r.runs.len() as u32);
        }
        r
    }

    fn push_edge(&mut self, inc: &Csr, e: usize, max_w: &[f32]) {
        let (s, w) = (inc.targets[e], inc.weights[e]);
        self.sources.push((s as usize % SEGMENT) as u16);
        self.quantised.push(quantise(w, max_w[s as usize]));
        self.weights.push(w);
    }

    /// Adds `Σ y[src]·w` over each target's in-edges to `out` (this range's
    /// slice), segment by segment — the same order on every run. `y` is
    /// padded to a whole number of segments; `ws` is `quantised` or `weights`.
    ///
    /// Portable loops; [`simd::accumulate`] takes every sum in the same order
    /// with vector instructions, so both give bit-identical results.
    fn accumulate<T: Contribution, W: Weight>(&self, y: &[T], ws: &[W], out: &mut [f64]) {
        self.for_each_run(y, ws, |ys, len, targets, srcs, ws| {
            if len <= FIXED {
                let blocks = targets.chunks_exact(LANES);
                let tail = blocks.remainder();
                let (sb, wb) = (srcs.chunks_exact(LANES * len), ws.chunks_exact(LANES * len));
                let (st, wt) = (sb.remainder(), wb.remainder());
                for ((t, s), w) in blocks.zip(sb).zip(wb) {
                    match len {
                        1 => full_block::<T, W, 1>(ys, out, t, s, w),
                        2 => full_block::<T, W, 2>(ys, out, t, s, w),
                        3 => full_block::<T, W, 3>(ys, out, t, s, w),
                        4 => full_block::<T, W, 4>(ys, out, t, s, w),
                        5 => full_block::<T, W, 5>(ys, out, t, s, w),
                        6 => full_block::<T, W, 6>(ys, out, t, s, w),
                        7 => full_block::<T, W, 7>(ys, out, t, s, w),
                        _ => full_block::<T, W, FIXED>(ys, out, t, s, w),
                    }
                }
                block_sums(ys, out, tail, st, wt);
            } else {
                for ((t, s), w) in targets.iter().zip(srcs.chunks_exact(len)).zip(ws.chunks_exact(len)) {
                    out[usize::from(*t)] += row_sum(ys, s, w);
                }
            }
        });
    }

    /// Walks the runs segment by segment, handing each to `f` with its
    /// segment's contributions, its sub-row length, its targets, and its
    /// sources and weights (`ws` is `quantised` or `weights`). Both the
    /// portable and the vector loops sum through this one walk.
    #[inline(always)]
    fn for_each_run<T, W>(&self, y: &[T], ws: &[W], mut f: impl FnMut(&[T; SEGMENT], usize, &[u16], &[u16], &[W])) {
        let (mut row, mut edge, mut first) = (0usize, 0usize, 0usize);
        for (ys, &last) in y.chunks_exact(SEGMENT).zip(&self.segment_runs) {
            let Ok(ys) = <&[T; SEGMENT]>::try_from(ys) else { continue };
            for &(len, count) in &self.runs[first..last as usize] {
                let (len, count) = (len as usize, count as usize);
                let edges = edge..edge + len * count;
                f(ys, len, &self.targets[row..row + count], &self.sources[edges.clone()], &ws[edges]);
                row += count;
                edge += len * count;
            }
            first = last as usize;
        }
    }

    fn bytes(&self) -> usize {
        self.runs.len() * 8
            + self.segment_runs.len() * 4
            + self.targets.len() * 2
            + self.sources.len() * 2
            + self.quantised.len() * 2
            + self.weights.len() * 4
    }
}

/// `w` as a fraction of `max` (its source's largest weight) in units of
/// 1/[`QMAX`], at least 1 so that no edge vanishes from the f32 phase.
fn quantise(w: f32, max: f32) -> u16 {
    if max > 0.0 { (w / max * QMAX).round().clamp(1.0, QMAX) as u16 } else { 1 }
}

/// [`block_sums`] for a whole block of sub-rows of `L` edges: the same sums
/// in the same order, with the loop bounds known, so the [`LANES`] sums
/// proceed side by side.
#[inline]
fn full_block<T: Contribution, W: Weight, const L: usize>(
    y: &[T; SEGMENT],
    out: &mut [f64],
    targets: &[u16],
    srcs: &[u16],
    ws: &[W],
) {
    let mut acc = [0.0f64; LANES];
    for (s, w) in srcs.chunks_exact(LANES).zip(ws.chunks_exact(LANES)).take(L) {
        for i in 0..LANES {
            acc[i] += y[usize::from(s[i])].get() * w[i].get();
        }
    }
    for (t, a) in targets.iter().zip(acc) {
        out[usize::from(*t)] += a;
    }
}

/// One block of short sub-rows, stored column by column (`s[j·b + i]` is the
/// `j`-th source of the `i`-th of the block's `b` sub-rows): each target gets
/// `Σ_j y·w` summed from 0 in edge order.
#[inline]
fn block_sums<T: Contribution, W: Weight>(y: &[T; SEGMENT], out: &mut [f64], targets: &[u16], srcs: &[u16], ws: &[W]) {
    let b = targets.len();
    for (i, t) in targets.iter().enumerate() {
        let mut acc = 0.0;
        for (s, w) in srcs[i..].iter().step_by(b).zip(ws[i..].iter().step_by(b)) {
            acc += y[usize::from(*s)].get() * w.get();
        }
        out[usize::from(*t)] += acc;
    }
}

/// An edge weight as stored for one phase: quantised u16 or exact f32.
trait Weight: Copy + Send + Sync {
    fn get(self) -> f64;
}

impl Weight for u16 {
    #[inline]
    fn get(self) -> f64 {
        f64::from(self)
    }
}

impl Weight for f32 {
    #[inline]
    fn get(self) -> f64 {
        f64::from(self)
    }
}

/// A per-source contribution as gathered by the PageRank loop: f32 (half the
/// cache footprint) or f64. Sums are always taken in f64.
trait Contribution: Copy + Send + Sync + simd::Wide {
    fn of(x: f64) -> Self;
    fn get(self) -> f64;
    /// Per source, the share of its rank per unit of the weights this phase reads.
    fn inv_out(g: &PageRankGraph) -> &[f64];
    /// [`TargetRange::accumulate`] along the weights this phase reads.
    fn accumulate(r: &TargetRange, y: &[Self], out: &mut [f64]);
}

impl Contribution for f32 {
    #[inline]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn get(self) -> f64 {
        f64::from(self)
    }
    fn inv_out(g: &PageRankGraph) -> &[f64] {
        &g.inv_quantised
    }
    fn accumulate(r: &TargetRange, y: &[Self], out: &mut [f64]) {
        if !simd::accumulate(r, y, &r.quantised, out) {
            r.accumulate(y, &r.quantised, out)
        }
    }
}

impl Contribution for f64 {
    #[inline]
    fn of(x: f64) -> Self {
        x
    }
    #[inline]
    fn get(self) -> f64 {
        self
    }
    fn inv_out(g: &PageRankGraph) -> &[f64] {
        &g.inv_out
    }
    fn accumulate(r: &TargetRange, y: &[Self], out: &mut [f64]) {
        if !simd::accumulate(r, y, &r.weights, out) {
            r.accumulate(y, &r.weights, out)
        }
    }
}

/// A graph prepared for pull-based PageRank: in-edges with their raw weights,
/// and per source the share of its rank it passes on along one unit of
/// out-weight. Dividing by the f64 out-weight once per iteration (instead of
/// storing f32 probabilities per edge) keeps each column stochastic to f64
/// precision in the f64 iterations, so no rank mass leaks however many of
/// them run; the f32 phase's drift (~1e-8) is removed when it ends.
///
/// Nodes are relabelled by in-degree, descending (then out-degree): rows of
/// equal length end up next to each other, which is what makes the runs of
/// [`TargetRange`] long.
#[derive(Debug, Clone, Default)]
pub struct PageRankGraph {
    /// In-edges by target range, covering `0..nodes` in order.
    ranges: Vec<TargetRange>,
    edges: usize,
    /// `retention(u) / out(u)`, 0 for dangling nodes.
    pub inv_out: Vec<f64>,
    /// The same over the quantised weights: `retention(u) / Σ quantised`.
    inv_quantised: Vec<f64>,
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
        let mut in_degree = vec![0u32; n];
        for &d in &out.targets {
            in_degree[d as usize] += 1;
        }
        let mut old_of: Vec<u32> = (0..n as u32).collect();
        old_of.par_sort_unstable_by_key(|&v| {
            (std::cmp::Reverse(in_degree[v as usize]), std::cmp::Reverse(out.degree(v as usize)), v)
        });
        drop(in_degree);
        let mut new_of = vec![0u32; n];
        for (new, &old) in old_of.iter().enumerate() {
            new_of[old as usize] = new as u32;
        }
        let incoming = relabelled_transpose(out, &old_of, &new_of);
        drop(new_of);
        let max_w: Vec<f32> =
            old_of.iter().map(|&u| out.row(u as usize).1.iter().fold(0.0f32, |a, &w| a.max(w))).collect();
        let m = incoming.edges();
        // Range boundaries at equal shares of the edges (hub rows make the first ranges short).
        let mut cuts: Vec<usize> = (0..=RANGES)
            .map(|i| if i == RANGES { n } else { incoming.offsets.partition_point(|&o| (o as usize) < i * m / RANGES) })
            .map(|c| c.min(n))
            .collect();
        cuts.dedup();
        // No range longer than a u16 target offset reaches.
        let cuts: Vec<usize> =
            cuts.windows(2).flat_map(|w| (w[0]..w[1]).step_by(TARGETS_PER_RANGE)).chain(std::iter::once(n)).collect();
        let ranges = cuts.par_windows(2).map(|w| TargetRange::new(&incoming, w[0], w[1], &max_w)).collect();
        drop(incoming);
        let keep = |u: usize| retention.and_then(|r| r.get(u)).copied().unwrap_or(1.0).clamp(0.0, 1.0);
        let inv_out = old_of
            .iter()
            .map(|&u| {
                let u = u as usize;
                if sums[u] > 0.0 { keep(u) / sums[u] } else { 0.0 }
            })
            .collect();
        let inv_quantised = old_of
            .iter()
            .zip(&max_w)
            .map(|(&u, &max)| {
                let q: f64 = out.row(u as usize).1.iter().map(|&w| f64::from(quantise(w, max))).sum();
                if q > 0.0 { keep(u as usize) / q } else { 0.0 }
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
        Self { ranges, edges: m, inv_out, inv_quantised, leak, old_of }
    }

    pub fn nodes(&self) -> usize {
        self.old_of.len()
    }

    /// Distinct edges (parallel edges merged, invalid ones dropped).
    pub fn edges(&self) -> usize {
        self.edges
    }

    /// Bytes held, for the per-edge memory budget: 8 per edge, 2 per
    /// (target, segment) pair with an edge, 28 per node.
    pub fn bytes(&self) -> usize {
        self.ranges.iter().map(TargetRange::bytes).sum::<usize>()
            + self.inv_out.len() * 8
            + self.inv_quantised.len() * 8
            + self.old_of.len() * 4
            + self.leak.len() * 16
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
/// Each node's in-edge sum is taken in a fixed order (segment by segment, see
/// [`TargetRange`]) and per-chunk deltas are added sequentially, so results do
/// not depend on the thread count.
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
    // Contributions of the current vector: f32 while the change is large, then f64.
    let mut y32: Vec<f32> = contributions(g, &x);
    let mut y64: Vec<f64> = Vec::new();
    let d = opts.damping;
    let mut iterations = 0;
    let mut delta = f64::INFINITY;
    while iterations < opts.max_iterations {
        iterations += 1;
        let dangling_mass: f64 = g.leak.iter().map(|&(u, share)| x[u as usize] * share).sum();
        let step = Step { g, teleport: &teleport, damping: d, dangling_mass };
        delta = if y64.is_empty() { step.run(&x, &mut y32, &mut next) } else { step.run(&x, &mut y64, &mut next) };
        std::mem::swap(&mut x, &mut next);
        if delta < opts.tolerance {
            break;
        }
        if y64.is_empty() && delta < F32_UNTIL {
            // f32 rounding leaves the total off 1 by ~1e-8, an error that
            // iterations only shrink by `damping` each: remove it once.
            renormalise(&mut x);
            y32 = Vec::new();
            y64 = contributions(g, &x);
        }
    }
    if y64.is_empty() {
        // Stopped (tolerance or iteration cap) while still in the f32 phase.
        renormalise(&mut x);
    }
    // `next` is free again: it takes the scores back to the caller's ids.
    let mut scores = next;
    for (i, &o) in g.old_of.iter().enumerate() {
        scores[o as usize] = x[i];
    }
    PageRank { scores, iterations, delta }
}

/// Scales `x` to sum 1, summing chunk by chunk in a fixed order.
fn renormalise(x: &mut [f64]) {
    let total: f64 = x.par_chunks(CHUNK).map(|c| c.iter().sum::<f64>()).collect::<Vec<_>>().iter().sum();
    if total > 0.0 {
        x.par_iter_mut().for_each(|v| *v /= total);
    }
}

/// Per-source contributions `x[u]·inv_out[u]`, rounded to `T`, padded with
/// zeros to a whole number of segments.
fn contributions<T: Contribution>(g: &PageRankGraph, x: &[f64]) -> Vec<T> {
    let mut y: Vec<T> = x.par_iter().zip(T::inv_out(g)).map(|(x, inv)| T::of(x * inv)).collect();
    y.resize(x.len().div_ceil(SEGMENT) * SEGMENT, T::of(0.0));
    y
}

/// One power iteration.
struct Step<'a> {
    g: &'a PageRankGraph,
    teleport: &'a Teleport,
    damping: f64,
    dangling_mass: f64,
}

impl Step<'_> {
    /// Writes the next vector into `next` and its contributions into `y`
    /// (which holds those of `x` on entry); returns the L1 change.
    fn run<T: Contribution>(&self, x: &[f64], y: &mut [T], next: &mut [f64]) -> f64 {
        // `next[v] = Σ y[u]·w(u→v)`; each range owns its slice of the output.
        let mut parts: Vec<(&TargetRange, &mut [f64])> = Vec::with_capacity(self.g.ranges.len());
        let mut rest = &mut next[..];
        for r in &self.g.ranges {
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut(r.len);
            parts.push((r, mine));
            rest = tail;
        }
        let yr: &[T] = y;
        parts.into_par_iter().for_each(|(r, out)| {
            out.fill(0.0);
            T::accumulate(r, yr, out);
        });
        // Teleport and damping, the change, and the next contributions in one pass.
        let (d, dm, tp, inv_out) = (self.damping, self.dangling_mass, self.teleport, T::inv_out(self.g));
        let diffs: Vec<f64> = next
            .par_chunks_mut(CHUNK)
            .zip(y.par_chunks_mut(CHUNK))
            .enumerate()
            .map(|(c, (out, y))| {
                let base = c * CHUNK;
                let mut diff = 0.0;
                for (i, (slot, y)) in out.iter_mut().zip(y).enumerate() {
                    let v = base + i;
                    let t = tp.get(v);
                    let val = d * (*slot + dm * t) + (1.0 - d) * t;
                    diff += (val - x[v]).abs();
                    *slot = val;
                    *y = T::of(val * inv_out[v]);
                }
                diff
            })
            .collect();
        diffs.iter().sum()
    }
}

/// `Σ y[src]·w` over one long sub-row: edge `j` goes to lane `j mod LANES`
/// (independent additions, so the loads of `y` overlap instead of waiting on
/// one chain), then the lanes are added pairwise by [`row_tail`].
#[inline]
fn row_sum<T: Contribution, W: Weight>(y: &[T; SEGMENT], srcs: &[u16], ws: &[W]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let mut sc = srcs.chunks_exact(LANES);
    let mut wc = ws.chunks_exact(LANES);
    for (s, w) in (&mut sc).zip(&mut wc) {
        for j in 0..LANES {
            lanes[j] += y[usize::from(s[j])].get() * w[j].get();
        }
    }
    row_tail(y, &mut lanes, sc.remainder(), wc.remainder())
}

/// Adds a long sub-row's last `< LANES` edges to the first lanes and returns
/// the lanes' total: lane `k` plus lane `k + 4`, then `k + 2`, then `k + 1` —
/// the order a vector's halves are folded in.
#[inline]
fn row_tail<T: Contribution, W: Weight>(y: &[T; SEGMENT], lanes: &mut [f64; LANES], srcs: &[u16], ws: &[W]) -> f64 {
    for ((lane, s), w) in lanes.iter_mut().zip(srcs).zip(ws) {
        *lane += y[usize::from(*s)].get() * w.get();
    }
    let l = *lanes;
    let a = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    let b = [a[0] + a[2], a[1] + a[3]];
    b[0] + b[1]
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
mod tests;
