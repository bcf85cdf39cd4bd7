//! PageRank kept between runs and updated locally by residual push, with a
//! stated error bound; a full power iteration only when that bound passes a
//! tolerance.
//!
//! # The problem in unnormalised form
//!
//! The network graph's PageRank (`graph::pagerank`: damping `d`, uniform
//! teleport, rank that a node does not pass on — all of a dangling node's,
//! `1 − retention` of a down-weighted one's — redistributed like teleports) is
//! `x = y / ‖y‖₁` where `y` solves
//!
//! ```text
//! y = 𝟙 + d·P·y,   P[v,u] = retention(u)·w(u→v) / Σ_z w(u→z)
//! ```
//!
//! (`P` is column-substochastic: column `u` sums to `retention(u)`, or 0 for a
//! dangling `u`). Indeed the PageRank `x` satisfies `x = d·P·x + c·𝟙` with
//! `c = (1 − d + d·leaked(x))/n`, so `x = c·y`. Teleport and leaked rank no
//! longer appear, so a change of the graph is a change of `P` alone and a new
//! node only a new `1` on the right.
//!
//! # Estimate, residual and the bound
//!
//! [`PushRank`] holds an estimate `p` and the residual `r = 𝟙 − (I − d·P)·p`
//! exactly (up to floating-point rounding). Then
//! `y − p = (I − d·P)⁻¹·r = Σₖ (d·P)ᵏ·r`, and since every column of `P` sums to
//! at most 1, `‖y − p‖₁ ≤ ‖r‖₁ / (1 − d)`, whatever the signs in `r`.
//!
//! - A *push* at `u` moves `r[u]` into `p[u]` and `d·P[·,u]·r[u]` into the
//!   residuals of `u`'s out-neighbours; the invariant holds and `‖r‖₁` drops by
//!   at least `(1 − d)·|r[u]|`.
//! - A *graph change* from `P` to `P'` keeps the invariant by
//!   `r += d·(P' − P)·p`, computed source by source for the sources whose row
//!   (targets, weights or retention) changed. A source's change whose L1 norm
//!   is below [`SKIP`] is not scattered; its norm is added to `U` instead,
//!   which the bound carries: `‖y − p‖₁ ≤ E = (‖r‖₁ + U)/(1 − d)`.
//! - The served vector is `x̂ = p⁺/‖p⁺‖₁` (`p⁺`: negative entries clipped,
//!   which only brings `p` nearer the non-negative `y`). With `S = ‖p⁺‖₁`:
//!
//!   ```text
//!   ‖x̂ − x‖₁ ≤ 2·E / (S − E)        (when S > E)
//!   ```
//!
//!   since `‖a/‖a‖ − b/‖b‖‖ ≤ 2·‖a − b‖/‖b‖` for non-negative `a`, `b` and
//!   `‖y‖₁ ≥ S − E`. This bound is what [`NetworkRun::bound`] reports; every
//!   account's PageRank is then within it too (L∞ ≤ L1), and its relative
//!   PageRank `x·n` within `n` times it.
//!
//! # When the run is full
//!
//! Each run pushes, largest residuals first (thresholds falling by 4× per
//! round), until the bound is at most half the tolerance. It runs a full power
//! iteration instead (warm-started from the current estimate) when there is no
//! estimate yet, the model changed, the node set shrank (the state was
//! rebuilt), the network decay reference moved to the next step
//! (`ModelParams::network_decay_step_secs`: every row that mixes decaying
//! engagement with follows changes then, so pushing would touch most of the
//! graph), the pushes would cost more than [`WORK_CAP`] sweeps of the edges,
//! or the bound cannot be brought under the tolerance.
//!
//! Between step boundaries an account's row changes only when one of its own
//! engagements or follows arrives or leaves the window, a late post author
//! resolves one of its engagements, or its authenticity weight moves; the
//! other rows are bit for bit the previous run's and cost one comparison. After a full run, `p`
//! is the power iteration's vector scaled to `y`'s norm and `r` is computed
//! from it exactly, so the bound then covers the power iteration's own
//! convergence error too, and `U` starts again from 0.

use std::time::Instant;

use lift_domain::Micros;
use rayon::prelude::*;

use super::graph::{Csr, PageRank, PageRankGraph, PageRankOptions, pagerank};
use super::params::ModelParams;

/// Tolerance of a [`PushRank`] made with `default()`, and the service's
/// default (`ScoringConfig::pagerank_drift_tolerance`): the L1 distance,
/// bounded as above, between the served PageRank vector (summing to 1) and
/// the exact one. `1e-3` means the accounts' relative PageRanks (1 = the
/// average account) are off by at most 1e-3 on average, and the network
/// values (whose slope in relative PageRank is at most `100/network_scale`
/// points) by at most 0.05 points on average at the default scale of 2 — a
/// tenth of the default history resolution. Measured errors were about a
/// tenth of the bound (`docs/benchmarks.md`). At 1e-4 the pushes after a
/// 10,000-event run visit about three sweeps of the graph's edges and gain
/// little over a full run; at 1e-3 about one sweep.
pub const DEFAULT_TOLERANCE: f64 = 1e-3;

/// A source's change of L1 norm below this (in units of one account's
/// teleport) is carried in the bound instead of scattered.
const SKIP: f64 = 1e-9;

/// Pushes may visit at most this many times the graph's edges before a full
/// run is cheaper.
const WORK_CAP: usize = 40;

/// Why the last update was a full power iteration (or that it was not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NetworkRunKind {
    /// Residual push on the changed region only.
    #[default]
    Local,
    /// No estimate yet (the first run, or after a start).
    FullFirst,
    /// The model or the node set changed (the state was rebuilt).
    FullRebuilt,
    /// Pushing would have cost more than a full run.
    FullWork,
    /// The network decay reference moved to its next step.
    FullStep,
    /// The tolerance is 0: every run is full.
    FullAlways,
}

impl NetworkRunKind {
    pub fn is_full(self) -> bool {
        self != NetworkRunKind::Local
    }
}

/// What one update did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NetworkRun {
    pub kind: NetworkRunKind,
    /// Power iterations (0 for a local update).
    pub iterations: u32,
    /// Sources whose row changed / of them scattered into residuals.
    pub changed_sources: usize,
    pub scattered_sources: usize,
    /// Of the changed sources: those whose targets changed, and those with
    /// the same targets but other weights (the rest changed only their
    /// authenticity retention).
    pub retargeted_sources: usize,
    pub reweighted_sources: usize,
    /// Sources with at least one out-edge.
    pub sources: usize,
    /// Pushes, and edges they visited.
    pub pushes: usize,
    pub pushed_edges: usize,
    /// `‖r‖₁` right after applying the graph change (before pushing), and after.
    pub residual_before: f64,
    pub residual: f64,
    /// `U`: the L1 norm of changes carried in the bound since the last full run.
    pub carried: f64,
    /// L1 bound on the served vector's distance to the exact PageRank.
    pub bound: f64,
    /// Milliseconds: diffing the graph and applying the change / pushing / full run.
    pub diff_ms: f64,
    pub push_ms: f64,
    pub full_ms: f64,
    /// With [`PushRank::reference_runs`], after a local update: the
    /// milliseconds of the full run it replaced (prepared graph and power
    /// iteration warm-started from the previous served vector, as a full run
    /// would be), and the L1 distance between its vector and the served one.
    pub reference_ms: f64,
    pub reference_l1: f64,
}

/// Local and full updates since this state was created.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NetworkStats {
    pub local_runs: u64,
    pub full_runs: u64,
    /// Of the full runs: those because the decay reference moved a step.
    pub step_runs: u64,
    pub last: NetworkRun,
}

/// The previous run's graph, estimate and residuals.
#[derive(Debug, Clone)]
pub struct PushRank {
    /// L1 tolerance on the served vector; 0 makes every run full.
    pub tolerance: f64,
    /// Benchmarks only: after each local update, also run the full power
    /// iteration it replaced, to time it and measure the served vector's
    /// error in the same run (`NetworkRun::reference_ms`, `reference_l1`).
    pub reference_runs: bool,
    pub stats: NetworkStats,
    model: String,
    damping: f64,
    /// `ModelParams::network_decay_reference` of the last update.
    reference: Micros,
    graph: Csr,
    /// `retention(u)/Σ w(u→·)` (0 for dangling `u`): `P[v,u] = coef[u]·w(u→v)`.
    coef: Vec<f64>,
    p: Vec<f64>,
    r: Vec<f64>,
    carried: f64,
    valid: bool,
    /// Invalidated because the state was rebuilt.
    rebuilt: bool,
}

impl Default for PushRank {
    fn default() -> Self {
        Self {
            tolerance: DEFAULT_TOLERANCE,
            reference_runs: false,
            stats: NetworkStats::default(),
            model: String::new(),
            damping: 0.0,
            reference: 0,
            graph: Csr::default(),
            coef: Vec::new(),
            p: Vec::new(),
            r: Vec::new(),
            carried: 0.0,
            valid: false,
            rebuilt: false,
        }
    }
}

/// A ranked network graph.
pub(super) struct Ranked {
    /// PageRank, summing to 1, by node.
    pub(super) scores: Vec<f64>,
    /// Power iterations this run (0 when local).
    pub(super) iterations: u32,
    /// The prepared graph of the full run, when there was one.
    pub(super) prg: Option<PageRankGraph>,
}

/// One chunk of sources' change.
#[derive(Default)]
struct ChunkChange {
    changed: usize,
    scattered: usize,
    retargeted: usize,
    reweighted: usize,
    /// The L1 norm carried instead of scattered.
    carried: f64,
    /// `(target, residual change)` pairs scattered.
    out: Vec<(u32, f64)>,
}

fn coefficients(g: &Csr, retention: &[f64]) -> Vec<f64> {
    (0..g.nodes())
        .into_par_iter()
        .map(|u| {
            let s: f64 = g.row(u).1.iter().map(|w| f64::from(*w)).sum();
            let keep = retention.get(u).copied().unwrap_or(1.0).clamp(0.0, 1.0);
            if s > 0.0 { keep / s } else { 0.0 }
        })
        .collect()
}

impl PushRank {
    /// Brings the ranking up to the graph `graph` (out-rows, as
    /// `network::network_graph` builds them as of `now`) with `retention` per
    /// node, and returns the served vector. `warm_start` seeds a full run
    /// when there is no estimate of our own.
    pub(super) fn update(
        &mut self,
        graph: Csr,
        retention: &[f64],
        params: &ModelParams,
        now: Micros,
        warm_start: Option<&[f64]>,
    ) -> Ranked {
        let n = graph.nodes();
        let coef = coefficients(&graph, retention);
        let version = params.version();
        let reference = params.network_decay_reference(now);
        let stepped = params.network_decay_step_micros() > 0 && reference != self.reference;
        let kind = if self.tolerance <= 0.0 {
            Some(NetworkRunKind::FullAlways)
        } else if !self.valid {
            Some(if self.rebuilt { NetworkRunKind::FullRebuilt } else { NetworkRunKind::FullFirst })
        } else if version != self.model || n < self.p.len() || self.damping != params.damping {
            Some(NetworkRunKind::FullRebuilt)
        } else if stepped {
            Some(NetworkRunKind::FullStep)
        } else {
            None
        };
        self.reference = reference;
        self.damping = params.damping;
        self.model = version;
        let mut run = NetworkRun::default();
        let previous = (kind.is_none() && self.reference_runs).then(|| self.served());
        let local_ok = if kind.is_none() {
            let t = Instant::now();
            self.apply_change(&graph, &coef, &mut run);
            self.graph = graph;
            self.coef = coef;
            run.diff_ms = ms(t);
            let t = Instant::now();
            let ok = self.push_to_tolerance(&mut run);
            run.push_ms = ms(t);
            ok
        } else {
            self.graph = graph;
            self.coef = coef;
            false
        };
        let mut prg = None;
        if local_ok {
            self.stats.local_runs += 1;
            if let Some(previous) = previous {
                let t = Instant::now();
                let (pr, _) = self.full_run(params, retention, Some(&previous));
                run.reference_ms = ms(t);
                run.reference_l1 = pr.scores.iter().zip(self.served()).map(|(a, b)| (a - b).abs()).sum();
            }
        } else {
            run.kind = kind.unwrap_or(NetworkRunKind::FullWork);
            if run.kind == NetworkRunKind::FullStep {
                self.stats.step_runs += 1;
            }
            let t = Instant::now();
            let warm = if self.valid { Some(self.served()) } else { warm_start.map(<[f64]>::to_vec) };
            let (pr, g) = self.full_run(params, retention, warm.as_deref());
            run.iterations = pr.iterations;
            self.stats.full_runs += 1;
            if run.kind == NetworkRunKind::FullAlways {
                // Nothing is kept: the power iteration's vector is served as it is.
                self.valid = false;
                run.full_ms = ms(t);
                self.stats.last = run;
                return Ranked { scores: pr.scores, iterations: pr.iterations, prg: Some(g) };
            }
            self.restart_from(&pr.scores);
            run.residual_before = self.r.iter().map(|x| x.abs()).sum();
            self.valid = true;
            self.rebuilt = false;
            // Rounding aside, this only tidies what the power iteration left.
            let attempted = std::mem::take(&mut run.pushed_edges);
            let ok = self.push_to_tolerance(&mut run);
            run.pushed_edges += attempted;
            run.full_ms = ms(t);
            prg = Some(g);
            if !ok {
                // A tolerance below what the iteration reached: its vector is served as it is.
                run.bound = self.bound();
                self.stats.last = run;
                return Ranked { scores: pr.scores, iterations: pr.iterations, prg };
            }
        }
        run.bound = self.bound();
        run.carried = self.carried;
        self.stats.last = run;
        Ranked { scores: self.served(), iterations: run.iterations, prg }
    }

    /// Forgets the estimate (the state it followed was rebuilt), keeping the
    /// tolerance and the counts: the next update is a full run.
    pub fn invalidate(&mut self) {
        if self.valid {
            self.valid = false;
            self.rebuilt = true;
        }
    }

    /// The graph of the last update.
    pub(super) fn graph(&self) -> &Csr {
        &self.graph
    }

    /// Bytes held between runs.
    pub fn bytes(&self) -> usize {
        self.graph.bytes() + (self.coef.len() + self.p.len() + self.r.len()) * 8
    }

    /// The L1 bound `2E/(S − E)` on the served vector's error (∞ when `S ≤ E`).
    pub fn bound(&self) -> f64 {
        let residual: f64 = self.r.iter().map(|x| x.abs()).sum();
        let e = (residual + self.carried) / (1.0 - self.damping);
        let s: f64 = self.p.iter().map(|x| x.max(0.0)).sum();
        if e == 0.0 {
            0.0
        } else if s > e {
            2.0 * e / (s - e)
        } else {
            f64::INFINITY
        }
    }

    /// `p⁺/‖p⁺‖₁`.
    /// The full power iteration on the kept graph, from `warm` when given, and the
    /// prepared graph it ran on.
    fn full_run(&self, params: &ModelParams, retention: &[f64], warm: Option<&[f64]>) -> (PageRank, PageRankGraph) {
        let g = PageRankGraph::with_retention(&self.graph, Some(retention));
        let pr = pagerank(
            &g,
            PageRankOptions {
                damping: params.damping,
                tolerance: params.pagerank_tolerance,
                max_iterations: params.pagerank_max_iterations,
                personalization: None,
                warm_start: warm,
            },
        );
        (pr, g)
    }

    fn served(&self) -> Vec<f64> {
        let s: f64 = self.p.iter().map(|x| x.max(0.0)).sum();
        if s > 0.0 {
            self.p.iter().map(|x| x.max(0.0) / s).collect()
        } else {
            vec![1.0 / self.p.len().max(1) as f64; self.p.len()]
        }
    }

    /// `r += d·(P' − P)·p` for the new graph; new nodes get `p = 0`, `r = 1`.
    fn apply_change(&mut self, graph: &Csr, coef: &[f64], run: &mut NetworkRun) {
        let n = graph.nodes();
        let n0 = self.p.len();
        self.p.resize(n, 0.0);
        self.r.resize(n, 1.0);
        let d = self.damping;
        let (old, old_coef, p) = (&self.graph, &self.coef, &self.p);
        const CHUNK: usize = 4096;
        let parts: Vec<ChunkChange> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let mut ch = ChunkChange::default();
                for u in c * CHUNK..((c + 1) * CHUNK).min(n) {
                    if u >= n0 || p[u] == 0.0 {
                        continue;
                    }
                    let (t1, w1) = graph.row(u);
                    let (t0, w0) = old.row(u);
                    let (c0, c1) = (old_coef[u], coef[u]);
                    if c0 == c1 && t0 == t1 && w0 == w1 {
                        continue;
                    }
                    ch.changed += 1;
                    if t0 != t1 {
                        ch.retargeted += 1;
                    } else if w0 != w1 {
                        ch.reweighted += 1;
                    }
                    let f = d * p[u];
                    let out = &mut ch.out;
                    let start = out.len();
                    let mut l1 = 0.0;
                    let (mut i, mut j) = (0, 0);
                    while i < t0.len() || j < t1.len() {
                        let (v, delta) = match (t0.get(i), t1.get(j)) {
                            (Some(&a), Some(&b)) if a == b => {
                                i += 1;
                                j += 1;
                                (a, c1 * f64::from(w1[j - 1]) - c0 * f64::from(w0[i - 1]))
                            }
                            (Some(&a), Some(&b)) if a < b => {
                                i += 1;
                                (a, -c0 * f64::from(w0[i - 1]))
                            }
                            (Some(&a), None) => {
                                i += 1;
                                (a, -c0 * f64::from(w0[i - 1]))
                            }
                            (_, Some(&b)) => {
                                j += 1;
                                (b, c1 * f64::from(w1[j - 1]))
                            }
                            (None, None) => break,
                        };
                        let x = f * delta;
                        if x != 0.0 {
                            l1 += x.abs();
                            out.push((v, x));
                        }
                    }
                    if l1 < SKIP {
                        out.truncate(start);
                        ch.carried += l1;
                    } else {
                        ch.scattered += 1;
                    }
                }
                ch
            })
            .collect();
        run.sources = (0..n).filter(|&u| graph.degree(u) > 0).count();
        for ch in parts {
            run.changed_sources += ch.changed;
            run.scattered_sources += ch.scattered;
            run.retargeted_sources += ch.retargeted;
            run.reweighted_sources += ch.reweighted;
            self.carried += ch.carried;
            for (v, x) in ch.out {
                self.r[v as usize] += x;
            }
        }
        run.residual_before = self.r.iter().map(|x| x.abs()).sum();
    }

    /// Pushes until the bound is at most half the tolerance; false when that
    /// would take more than [`WORK_CAP`] sweeps of the edges.
    fn push_to_tolerance(&mut self, run: &mut NetworkRun) -> bool {
        let n = self.p.len();
        let cap = WORK_CAP * self.graph.edges().max(n).max(1);
        let target = self.tolerance / 2.0;
        let d = self.damping;
        let mut queued = vec![false; n];
        let mut queue: std::collections::VecDeque<u32> = std::collections::VecDeque::new();
        let mut threshold = self.r.iter().fold(0.0f64, |m, x| m.max(x.abs())) / 4.0;
        loop {
            if self.bound() <= target {
                run.residual = self.r.iter().map(|x| x.abs()).sum();
                return true;
            }
            if threshold <= 0.0 || !threshold.is_finite() || run.pushed_edges > cap {
                run.residual = self.r.iter().map(|x| x.abs()).sum();
                return false;
            }
            for (v, x) in self.r.iter().enumerate() {
                if x.abs() > threshold && !queued[v] {
                    queued[v] = true;
                    queue.push_back(v as u32);
                }
            }
            while let Some(u) = queue.pop_front() {
                let u = u as usize;
                queued[u] = false;
                let delta = self.r[u];
                if delta.abs() <= threshold {
                    continue;
                }
                self.p[u] += delta;
                self.r[u] = 0.0;
                run.pushes += 1;
                let f = d * self.coef[u] * delta;
                let (ts, ws) = self.graph.row(u);
                run.pushed_edges += ts.len();
                for (&v, &w) in ts.iter().zip(ws) {
                    let v = v as usize;
                    self.r[v] += f * f64::from(w);
                    if self.r[v].abs() > threshold && !queued[v] {
                        queued[v] = true;
                        queue.push_back(v as u32);
                    }
                }
                if run.pushed_edges > cap {
                    break;
                }
            }
            queue.clear();
            queued.iter_mut().for_each(|q| *q = false);
            threshold /= 4.0;
        }
    }

    /// `p = y`'s estimate from a PageRank vector `x` (summing to 1), and `r`
    /// computed from it: `r = 𝟙 − p + d·P·p`.
    fn restart_from(&mut self, x: &[f64]) {
        let n = x.len();
        let d = self.damping;
        let leaked: f64 = (0..n).map(|u| x[u] * (1.0 - self.coef[u] * self.row_sum(u))).sum();
        let scale = n as f64 / (1.0 - d + d * leaked);
        self.p = x.iter().map(|v| v * scale).collect();
        let mut r: Vec<f64> = self.p.iter().map(|v| 1.0 - v).collect();
        for (u, &pu) in self.p.iter().enumerate() {
            let f = d * self.coef[u] * pu;
            let (ts, ws) = self.graph.row(u);
            for (&v, &w) in ts.iter().zip(ws) {
                r[v as usize] += f * f64::from(w);
            }
        }
        self.r = r;
        self.carried = 0.0;
    }

    fn row_sum(&self, u: usize) -> f64 {
        self.graph.row(u).1.iter().map(|w| f64::from(*w)).sum()
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
