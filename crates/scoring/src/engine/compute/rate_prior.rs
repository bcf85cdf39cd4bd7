//! Empirical-Bayes priors on a per-click rate, and the posteriors they give.
//!
//! The prior is either one Beta fitted by the method of moments, or, when the
//! population's rates are not Beta-shaped (two groups of creators, say), a
//! mixture of Betas fitted by maximum marginal likelihood in the manner of
//! Efron's g-modelling: a fixed dictionary of narrow Beta kernels whose means
//! lie evenly on the logit scale, of which only the weights are fitted, by EM
//! on the histogram of (clicks, successes). Fitting weights alone is a concave
//! problem with one optimum, so EM from uniform weights is deterministic; it
//! stops after `action_prior_em_max_iterations` or when an iteration raises the
//! log-likelihood by less than `action_prior_em_tolerance` nats per account.
//! The mixture replaces the Beta only when it raises the marginal
//! log-likelihood by more than `action_prior_mixture_min_gain` nats per
//! √(accounts): on a Beta-shaped population the single Beta is kept, and the
//! model is today's rule exactly.
//!
//! Under a mixture prior an account's posterior is a mixture of Betas (each
//! kernel updated by the account's counts, reweighted by how well it predicts
//! them, its lightest components, together at most 10⁻⁶ of its weight, dropped);
//! its mean is the weighted mean, its interval's ends are quantiles of the
//! mixture found by safeguarded Newton on its CDF, and the moments of
//! `saturate(rate)` are weighted sums of each component's Kummer moments.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::engine::params::ModelParams;
use crate::engine::stats::{BetaSummary, beta_summary, ln_gamma, saturated_beta_moments};

/// Prior components whose weight falls below this are dropped (the rest renormalised).
pub(in crate::engine) const NEGLIGIBLE: f64 = 1e-7;
/// A posterior's lightest components, together at most this share of its
/// weight, are dropped (the rest renormalised): see `prune`.
const PRUNED_MASS: f64 = 1e-6;
/// Cells per EM work unit: large enough that a unit outweighs its scheduling
/// (about 20 kernels a cell), fixed so the sums never depend on the threads.
const EM_CHUNK: usize = 2048;
/// Kernel means lie on the logit scale between logit(RANGE) and logit(1 − RANGE).
const RANGE: f64 = 1e-3;
/// A kernel's standard deviation on the logit scale, in grid steps.
const KERNEL_WIDTH: f64 = 1.0;
/// In the fit, a kernel whose likelihood of a cell is below e^BAND times the
/// best kernel's is taken to have none (e^−30 ≈ 10⁻¹³).
const BAND: f64 = -30.0;
/// A quantile's search stops when the bracket is this narrow (rate units)…
const QUANTILE_TOLERANCE: f64 = 1e-10;
/// …or at an x whose CDF is within this of the level sought: x is then the
/// exact quantile of a level at most this far from it.
const LEVEL_TOLERANCE: f64 = 1e-9;

/// A prior on a per-click rate: Beta components (weight, α, β), weights summing to 1.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::engine) struct RatePrior {
    components: Vec<(f64, f64, f64)>,
}

/// A posterior on a per-click rate: Beta components (weight, α, β).
#[derive(Debug, Clone)]
pub(in crate::engine) struct RatePosterior {
    components: Vec<(f64, f64, f64)>,
}

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

impl RatePrior {
    fn single(a: f64, b: f64) -> Self {
        Self { components: vec![(1.0, a, b)] }
    }

    /// Components (weight, α, β).
    #[cfg(test)]
    pub(in crate::engine) fn components(&self) -> &[(f64, f64, f64)] {
        &self.components
    }

    /// How many components: 1 for the one Beta.
    pub(in crate::engine) fn component_count(&self) -> usize {
        self.components.len()
    }

    /// The prior summarised as one Beta with its mean and variance.
    pub(in crate::engine) fn as_beta(&self) -> (f64, f64) {
        if let [(_, a, b)] = self.components[..] {
            return (a, b);
        }
        let (mut m1, mut m2) = (0.0, 0.0);
        for &(w, a, b) in &self.components {
            let m = a / (a + b);
            m1 += w * m;
            m2 += w * (m * m + m * (1.0 - m) / (a + b + 1.0));
        }
        let var = m2 - m1 * m1;
        let strength = if var > 0.0 { m1 * (1.0 - m1) / var - 1.0 } else { f64::INFINITY };
        (m1 * strength, (1.0 - m1) * strength)
    }

    /// The posterior after `s` successes in `k` trials.
    pub(in crate::engine) fn posterior(&self, s: u64, k: u64) -> RatePosterior {
        let (s, f) = (s as f64, k.saturating_sub(s) as f64);
        if let [(_, a, b)] = self.components[..] {
            return RatePosterior { components: vec![(1.0, a + s, b + f)] };
        }
        let logs: Vec<f64> =
            self.components.iter().map(|&(w, a, b)| w.ln() + ln_beta(a + s, b + f) - ln_beta(a, b)).collect();
        let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut components: Vec<(f64, f64, f64)> =
            self.components.iter().zip(&logs).map(|(&(_, a, b), &l)| ((l - top).exp(), a + s, b + f)).collect();
        prune(&mut components);
        RatePosterior { components }
    }
}

/// Drops the lightest components of a mixture (weight, α, β) while their weights
/// together stay within `PRUNED_MASS` of the total, and renormalises the rest
/// (kept in their order). The mixture's CDF moves by at most `PRUNED_MASS` at
/// any point (F − F′ = ε·(F_dropped − F′) with ε ≤ `PRUNED_MASS`), so a q
/// quantile becomes one between the old q ∓ `PRUNED_MASS` quantiles, and the
/// mean of any function with values in [0, 1] (the rate, or a saturated value
/// over 100) moves by at most `PRUNED_MASS`.
fn prune(components: &mut Vec<(f64, f64, f64)>) {
    let total: f64 = components.iter().map(|c| c.0).sum();
    let mut order: Vec<usize> = (0..components.len()).collect();
    order.sort_by(|&i, &j| components[i].0.total_cmp(&components[j].0).then(i.cmp(&j)));
    let mut keep = vec![true; components.len()];
    let mut dropped = 0.0;
    // Never all: the heaviest component alone holds at least 1/len of the total.
    for &i in &order[..components.len().saturating_sub(1)] {
        dropped += components[i].0;
        if dropped > PRUNED_MASS * total {
            break;
        }
        keep[i] = false;
    }
    let mut at = 0;
    components.retain(|_| {
        at += 1;
        keep[at - 1]
    });
    let kept: f64 = components.iter().map(|c| c.0).sum();
    for c in components.iter_mut() {
        c.0 /= kept;
    }
}

impl RatePosterior {
    /// Mean and central interval of mass `mass`.
    pub(in crate::engine) fn summary(&self, mass: f64) -> BetaSummary {
        mixture_summary(&self.components, mass)
    }

    /// Per component: its weight and the mean and variance of `saturate(rate,
    /// scale)` under it (`saturated_beta_moments`).
    pub(in crate::engine) fn saturated_components(&self, scale: f64) -> Option<Vec<(f64, f64, f64)>> {
        self.components.iter().map(|&(w, a, b)| saturated_beta_moments(a, b, scale).map(|(m, v)| (w, m, v))).collect()
    }
}

/// Mean and central interval of mass `mass` of a mixture of Betas (weight, α, β):
/// `beta_summary` for one component, otherwise quantiles by safeguarded Newton
/// on the mixture's CDF to `QUANTILE_TOLERANCE`, started from the quantiles of
/// the Beta with the mixture's mean and variance.
pub(in crate::engine) fn mixture_summary(components: &[(f64, f64, f64)], mass: f64) -> BetaSummary {
    if let [(_, a, b)] = components[..] {
        return beta_summary(a, b, mass);
    }
    let mean = components.iter().map(|&(w, a, b)| w * a / (a + b)).sum();
    let tail = (1.0 - mass.clamp(0.0, 1.0)) / 2.0;
    if tail <= 0.0 {
        return BetaSummary { mean, lower: 0.0, upper: 1.0 };
    }
    // Newton starts from the quantiles of the Beta with the mixture's mean and
    // variance, which are close whenever the mixture is near unimodal.
    let second: f64 = components.iter().map(|&(w, a, b)| w * a * (a + 1.0) / ((a + b) * (a + b + 1.0))).sum();
    let var = second - mean * mean;
    let strength = mean * (1.0 - mean) / var - 1.0;
    let start = if var > 0.0 && strength.is_finite() && strength > 0.0 {
        beta_summary(mean * strength, (1.0 - mean) * strength, mass)
    } else {
        BetaSummary { mean, lower: mean, upper: mean }
    };
    let quantile = |q: f64, x: f64| mixture_quantile(components, q, x);
    BetaSummary { mean, lower: quantile(tail, start.lower), upper: quantile(1.0 - tail, start.upper) }
}

/// The `q` quantile of a mixture of Betas (weight, α, β), to `QUANTILE_TOLERANCE`
/// or `LEVEL_TOLERANCE`:
/// Newton's method on the CDF from `start`, kept inside a bracket that every
/// step narrows, bisecting whenever a Newton step would leave it.
fn mixture_quantile(components: &[(f64, f64, f64)], q: f64, start: f64) -> f64 {
    // ln B(α, β) once per component, not once per CDF evaluation: with ln x and
    // ln(1 − x) shared by all components, an evaluation costs no log-gamma.
    let prepared: Vec<(f64, f64, f64, f64)> = components.iter().map(|&(w, a, b)| (w, a, b, ln_beta(a, b))).collect();
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    let mut x = if start > 0.0 && start < 1.0 { start } else { 0.5 };
    for _ in 0..200 {
        let (lx, l1x) = (x.ln(), (-x).ln_1p());
        let f: f64 = prepared.iter().map(|&(w, a, b, n)| w * beta_reg(x, lx, l1x, a, b, n)).sum::<f64>() - q;
        if f.abs() <= LEVEL_TOLERANCE {
            return x;
        }
        if f < 0.0 {
            lo = x
        } else {
            hi = x
        }
        if hi - lo <= QUANTILE_TOLERANCE {
            break;
        }
        let d: f64 = prepared.iter().map(|&(w, a, b, n)| w * ((a - 1.0) * lx + (b - 1.0) * l1x - n).exp()).sum();
        let next = x - f / d;
        if !(next > lo && next < hi) {
            x = 0.5 * (lo + hi);
        } else if (next - x).abs() <= 0.25 * QUANTILE_TOLERANCE {
            return next;
        } else {
            x = next;
        }
    }
    x.clamp(lo, hi)
}

/// The regularised incomplete beta function I_x(a, b) for 0 < x < 1, given
/// ln x, ln(1 − x) and ln B(a, b): the continued fraction of DLMF 8.17.22,
/// evaluated by the modified Lentz method on whichever of I_x(a, b) and
/// 1 − I_{1−x}(b, a) converges faster (x below or above (a + 1)/(a + b + 2)).
fn beta_reg(x: f64, lx: f64, l1x: f64, a: f64, b: f64, ln_b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (a * lx + b * l1x - ln_b).exp();
    // Far in a tail the value is within 10⁻¹⁷ of 0 or 1 and the continued
    // fraction need not be summed: I_x(a, b) = front/a · Σₙ (a+b)ₙ/(a+1)ₙ · xⁿ
    // (DLMF 8.17.8), whose term ratio (a+b+n)x/(a+1+n) is at most r = (a+b)x/(a+1)
    // for b ≥ 1, so I_x(a, b) ≤ front/(a(1 − r)) when r < 1; likewise for
    // 1 − I_x(a, b) = I_{1−x}(b, a) with the roles of a and b swapped.
    const FAR: f64 = 1e-17;
    let r = (a + b) * x / (a + 1.0);
    if b >= 1.0 && r < 1.0 && front <= FAR * a * (1.0 - r) {
        return 0.0;
    }
    let r = (a + b) * (1.0 - x) / (b + 1.0);
    if a >= 1.0 && r < 1.0 && front <= FAR * b * (1.0 - r) {
        return 1.0;
    }
    if x < (a + 1.0) / (a + b + 2.0) {
        front * continued_fraction(x, a, b) / a
    } else {
        1.0 - front * continued_fraction(1.0 - x, b, a) / b
    }
}

/// The continued fraction 1/(1+ d₁/(1+ d₂/(1+ …))) of DLMF 8.17.22 with
/// d₂ₘ = m(b − m)x / ((a + 2m − 1)(a + 2m)) and
/// d₂ₘ₊₁ = −(a + m)(a + b + m)x / ((a + 2m)(a + 2m + 1)), by modified Lentz.
fn continued_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-15;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    // The first step (d₁ = −(a + b)x/(a + 1)), then pairs of steps.
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - (a + b) * x / (a + 1.0));
    let mut f = d;
    for m in 1..=1000 {
        let m = f64::from(m);
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 / guard(1.0 + even * d);
        c = guard(1.0 + even / c);
        f *= d * c;
        let odd = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        d = 1.0 / guard(1.0 + odd * d);
        c = guard(1.0 + odd / c);
        let step = d * c;
        f *= step;
        if (step - 1.0).abs() < EPS {
            break;
        }
    }
    f
}

/// The prior of one rate, fitted to the accounts with at least `min` trials.
pub(in crate::engine) fn fit_rate_prior(
    successes: &[u64],
    trials: &[u64],
    min: u64,
    fallback_mean: f64,
    p: &ModelParams,
) -> RatePrior {
    let (a, b) = fit_beta_prior(successes, trials, min, fallback_mean, p);
    let kernels = p.action_prior_components as usize;
    // (trials, successes) → accounts, in a fixed order so every sum below is too.
    let mut hist: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for (&s, &k) in successes.iter().zip(trials) {
        if k >= min {
            *hist.entry((k, s.min(k))).or_insert(0) += 1;
        }
    }
    let accounts: u64 = hist.values().sum();
    if kernels < 2 || accounts < p.action_prior_mixture_min_accounts.max(5) {
        return RatePrior::single(a, b);
    }
    let cells: Vec<(f64, f64, f64)> = hist.iter().map(|(&(k, s), &n)| (s as f64, (k - s) as f64, n as f64)).collect();
    let beta_ll: f64 = cells.iter().map(|&(s, f, n)| n * (ln_beta(a + s, b + f) - ln_beta(a, b))).sum();
    let Some((mixture, mixture_ll)) = fit_mixture(&cells, kernels, p) else { return RatePrior::single(a, b) };
    if mixture_ll - beta_ll > p.action_prior_mixture_min_gain * (accounts as f64).sqrt() {
        mixture
    } else {
        RatePrior::single(a, b)
    }
}

/// The dictionary: `m` Beta kernels with means evenly spaced on the logit scale
/// and a logit-scale spread of `KERNEL_WIDTH` steps.
fn kernels(m: usize) -> Vec<(f64, f64)> {
    let (lo, hi) = ((RANGE / (1.0 - RANGE)).ln(), ((1.0 - RANGE) / RANGE).ln());
    let step = (hi - lo) / (m - 1) as f64;
    let sd = KERNEL_WIDTH * step;
    (0..m)
        .map(|j| {
            let mu = 1.0 / (1.0 + (-(lo + step * j as f64)).exp());
            // Var[logit X] ≈ 1/(ν·μ(1 − μ)) for X ~ Beta(μν, (1 − μ)ν).
            let nu = 1.0 / (sd * sd * mu * (1.0 - mu));
            (mu * nu, (1.0 - mu) * nu)
        })
        .collect()
}

/// Weights of the kernel dictionary maximising the marginal likelihood of
/// `cells` (successes, failures, accounts), by EM; the prior and its
/// log-likelihood (without the binomial coefficients, as the Beta's).
fn fit_mixture(cells: &[(f64, f64, f64)], m: usize, p: &ModelParams) -> Option<(RatePrior, f64)> {
    let dict = kernels(m);
    let dict_norm: Vec<f64> = dict.iter().map(|&(a, b)| ln_beta(a, b)).collect();
    let total: f64 = cells.iter().map(|c| c.2).sum();
    // Per cell, the band of kernels whose likelihood is within e^BAND of the
    // cell's best (the likelihood is unimodal along the grid), relative to the
    // best; outside it the likelihood is taken as 0. `base` sums the bests' logs.
    let mut bands: Vec<(usize, usize, usize)> = Vec::with_capacity(cells.len());
    let mut like: Vec<f64> = Vec::new();
    let mut base = 0.0;
    // The bands, computed per cell in parallel (each a pure function of its
    // cell), gathered in the cells' order, so the sums below keep theirs.
    let rows: Vec<Option<(f64, usize, Vec<f64>)>> =
        cells.par_iter().map(|&(s, f, _)| band(&dict, &dict_norm, s, f)).collect();
    for (&(_, _, n), row) in cells.iter().zip(rows) {
        let (t, first, row) = row?;
        bands.push((like.len(), first, row.len()));
        like.extend(row);
        base += n * t;
    }
    let mut w = vec![1.0 / m as f64; m];
    let mut ll = f64::NEG_INFINITY;
    // One EM step over a fixed chunk of cells: its share of the next weights
    // (unnormalised) and of the log-likelihood of the current ones.
    let step = |chunk: usize, w: &[f64]| -> (Vec<f64>, f64) {
        let mut next = vec![0.0f64; m];
        let mut part = 0.0;
        let at = chunk * EM_CHUNK;
        for (cell, &(from, first, len)) in cells[at..].iter().zip(&bands[at..]).take(EM_CHUNK) {
            let l = &like[from..from + len];
            let wj = &w[first..first + len];
            let d: f64 = l.iter().zip(wj).map(|(l, w)| l * w).sum();
            part += cell.2 * d.ln();
            let r = cell.2 / d;
            for ((x, l), w) in next[first..first + len].iter_mut().zip(l).zip(wj) {
                *x += r * l * w;
            }
        }
        (next, part)
    };
    let chunks = cells.len().div_ceil(EM_CHUNK);
    for _ in 0..p.action_prior_em_max_iterations.max(1) {
        // Chunks run in parallel and are summed in their order: the same sums
        // whatever the number of threads.
        let parts: Vec<(Vec<f64>, f64)> = (0..chunks).into_par_iter().map(|c| step(c, &w)).collect();
        let mut next = vec![0.0f64; m];
        let mut new_ll = base;
        for (part, l) in &parts {
            next.iter_mut().zip(part).for_each(|(x, y)| *x += y);
            new_ll += l;
        }
        // `new_ll` is the likelihood of the weights this iteration started from.
        let gain = new_ll - ll;
        ll = new_ll;
        w.iter_mut().zip(&next).for_each(|(w, x)| *w = x / total);
        if gain < p.action_prior_em_tolerance * total {
            break;
        }
    }
    if !ll.is_finite() {
        return None;
    }
    let kept: f64 = w.iter().filter(|&&x| x >= NEGLIGIBLE).sum();
    let components =
        w.iter().zip(&dict).filter(|(w, _)| **w >= NEGLIGIBLE).map(|(w, &(a, b))| (w / kept, a, b)).collect();
    Some((RatePrior { components }, ll))
}

/// One cell's band: the best kernel's log-likelihood t of `s` successes and
/// `f` failures, and the likelihoods relative to it, e^(ℓⱼ − t), of the
/// contiguous kernels j = first, first + 1, … whose ℓⱼ − t ≥ `BAND`.
///
/// The log-likelihood is unimodal along the grid (pinned over the counts a
/// cell takes by `band_walk_equals_the_full_scan`), so the best kernel is found
/// by climbing from the kernel nearest the cell's observed rate and the band by
/// walking out from it: a cell costs the kernels near its rate, not all of them.
/// `None` when a likelihood is not finite.
fn band(dict: &[(f64, f64)], norm: &[f64], s: f64, f: f64) -> Option<(f64, usize, Vec<f64>)> {
    let m = dict.len();
    let ll = |j: usize| {
        let (a, b) = dict[j];
        ln_gamma(a + s) + ln_gamma(b + f) - ln_gamma(a + b + s + f) - norm[j]
    };
    let rate = (s + 0.5) / (s + f + 1.0);
    let mut best = (0..m)
        .min_by(|&i, &j| {
            let d = |j: usize| (dict[j].0 / (dict[j].0 + dict[j].1) - rate).abs();
            d(i).total_cmp(&d(j))
        })
        .unwrap_or(0);
    let mut t = ll(best);
    loop {
        let up = (best + 1 < m).then(|| ll(best + 1)).filter(|&x| x > t);
        let down = (best > 0).then(|| ll(best - 1)).filter(|&x| x > t);
        match (up, down) {
            (Some(x), _) => (best, t) = (best + 1, x),
            (None, Some(x)) => (best, t) = (best - 1, x),
            (None, None) => break,
        }
    }
    if !t.is_finite() {
        return None;
    }
    let mut left = vec![];
    let mut first = best;
    while first > 0 {
        let x = ll(first - 1) - t;
        if x < BAND {
            break;
        }
        left.push(x.exp());
        first -= 1;
    }
    left.reverse();
    left.push(1.0);
    let mut j = best + 1;
    while j < m {
        let x = ll(j) - t;
        if x < BAND {
            break;
        }
        left.push(x.exp());
        j += 1;
    }
    Some((t, first, left))
}

/// Beta(α, β) prior on a per-click rate, fitted by the method of moments to the
/// accounts with at least `min` clicks: the pooled rate as the mean, and the
/// spread of their observed rates minus the binomial noise as the between-account
/// variance. Falls back to `fallback_mean` at the model's prior strength when
/// fewer than five accounts qualify or the pooled rate is 0 or 1.
fn fit_beta_prior(successes: &[u64], trials: &[u64], min: u64, fallback_mean: f64, p: &ModelParams) -> (f64, f64) {
    let eligible: Vec<usize> = (0..trials.len()).filter(|&i| trials[i] >= min).collect();
    let fallback = (fallback_mean * p.action_prior_strength, (1.0 - fallback_mean) * p.action_prior_strength);
    let (sc, sn): (u64, u64) = eligible.iter().fold((0, 0), |(c, k), &i| (c + successes[i], k + trials[i]));
    if eligible.len() < 5 || sc == 0 || sc == sn {
        return fallback;
    }
    let m = sc as f64 / sn as f64;
    let k = eligible.len() as f64;
    let obs = |i: usize| successes[i] as f64 / trials[i] as f64;
    let mean_r = eligible.iter().map(|&i| obs(i)).sum::<f64>() / k;
    let var = eligible.iter().map(|&i| (obs(i) - mean_r).powi(2)).sum::<f64>() / k;
    // Remove the binomial noise to get the spread of true rates between accounts.
    let noise = eligible.iter().map(|&i| m * (1.0 - m) / trials[i] as f64).sum::<f64>() / k;
    let between = var - noise;
    let strength = if between > 0.0 { m * (1.0 - m) / between - 1.0 } else { p.action_prior_strength_max };
    let strength = strength.clamp(p.action_prior_strength_min, p.action_prior_strength_max);
    (m * strength, (1.0 - m) * strength)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::engine::stats::beta_cdf;

    /// Pins the mixture's quantiles against bisection on its CDF, and the one-component
    /// case against `beta_summary` exactly.
    #[test]
    fn mixture_quantiles_match_bisection() {
        let one = [(1.0, 3.0, 97.0)];
        assert_eq!(mixture_summary(&one, 0.9), beta_summary(3.0, 97.0, 0.9));
        let two = [(0.7, 4.0, 196.0), (0.3, 12.0, 88.0)];
        let s = mixture_summary(&two, 0.8);
        for (q, got) in [(0.1, s.lower), (0.9, s.upper)] {
            let (mut lo, mut hi) = (0.0f64, 1.0f64);
            for _ in 0..200 {
                let mid = 0.5 * (lo + hi);
                let f: f64 = two.iter().map(|&(w, a, b)| w * beta_cdf(mid, a, b)).sum();
                if f < q { lo = mid } else { hi = mid }
            }
            assert!((got - lo).abs() < 1e-9, "{q}: {got} vs {lo}");
        }
        assert!((s.mean - (0.7 * 0.02 + 0.3 * 0.12)).abs() < 1e-15);
    }

    /// Pins the incomplete beta function used by the quantiles against the
    /// library's (`beta_cdf`), over the shapes posteriors and matched Betas take.
    #[test]
    fn incomplete_beta_matches_the_library() {
        for &(a, b) in
            &[(0.5, 0.5), (2.0, 48.0), (3.0, 97.0), (40.0, 260.0), (900.0, 100.0), (5000.0, 20.0), (1.0, 1.0)]
        {
            for i in 1..1000 {
                let x = i as f64 / 1000.0;
                let got = beta_reg(x, x.ln(), (-x).ln_1p(), a, b, ln_beta(a, b));
                let want = beta_cdf(x, a, b);
                // Both round ln B(a, b) (about 10⁴ at the largest shapes) to 10⁻¹⁶ relative.
                assert!((got - want).abs() <= 1e-11, "I_{x}({a}, {b}): {got} vs {want}");
            }
        }
    }

    /// Pins `band`'s walk against the full scan it replaces (every kernel's
    /// log-likelihood, the maximum, the first and last within `BAND` of it) over
    /// the counts a cell takes, so the fitted prior is the same as by the scan.
    #[test]
    fn band_walk_equals_the_full_scan() {
        let dict = kernels(ModelParams::default().action_prior_components as usize);
        let norm: Vec<f64> = dict.iter().map(|&(a, b)| ln_beta(a, b)).collect();
        let counts = (1..=40u64).flat_map(|k| (0..=k).map(move |s| (s, k))).chain(
            (41..=3000u64).step_by(37).flat_map(|k| (0..=k).step_by((k / 60).max(1) as usize).map(move |s| (s, k))),
        );
        let mut checked = 0;
        for (s, k) in counts {
            let (s, f) = (s as f64, (k - s) as f64);
            let row: Vec<f64> = dict
                .iter()
                .zip(&norm)
                .map(|(&(a, b), n)| ln_gamma(a + s) + ln_gamma(b + f) - ln_gamma(a + b + s + f) - n)
                .collect();
            let t = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let first = row.iter().position(|&x| x - t >= BAND).unwrap();
            let last = row.iter().rposition(|&x| x - t >= BAND).unwrap();
            let want: Vec<f64> = row[first..=last].iter().map(|&x| (x - t).exp()).collect();
            assert_eq!(band(&dict, &norm, s, f), Some((t, first, want)), "{s} of {k}");
            checked += 1;
        }
        assert!(checked > 5000, "{checked}");
    }

    /// Pins the pruning bound: the dropped components hold at most `PRUNED_MASS`
    /// of the weight, the rest sum to 1, and the CDF moves by at most that anywhere.
    #[test]
    fn pruning_moves_the_cdf_by_at_most_the_pruned_mass() {
        let full: Vec<(f64, f64, f64)> =
            (0..20).map(|j| ((-0.5 * (j as f64 - 8.0).powi(2)).exp(), 2.0 + 3.0 * j as f64, 200.0)).collect();
        let total: f64 = full.iter().map(|c| c.0).sum();
        let mut pruned = full.clone();
        prune(&mut pruned);
        assert!(pruned.len() < full.len() && pruned.len() > 1, "{}", pruned.len());
        assert!((pruned.iter().map(|c| c.0).sum::<f64>() - 1.0).abs() < 1e-12);
        for i in 1..200 {
            let x = i as f64 / 1000.0;
            let f: f64 = full.iter().map(|&(w, a, b)| w / total * beta_cdf(x, a, b)).sum();
            let g: f64 = pruned.iter().map(|&(w, a, b)| w * beta_cdf(x, a, b)).sum();
            assert!((f - g).abs() <= PRUNED_MASS * (1.0 + 1e-9), "{x}: {f} vs {g}");
        }
    }

    /// Pins the fit: on two groups of creators (rates near 1 % and near 15 %) the
    /// mixture replaces the one Beta, puts about a quarter of its weight near
    /// 15 %, and is the same prior whatever order the accounts come in; on few
    /// accounts the one Beta is kept.
    #[test]
    fn mixture_prior_finds_two_groups_deterministically() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut s, mut k) = (Vec::new(), Vec::new());
        for _ in 0..3000 {
            let rate = if rng.random_bool(0.25) { 0.15 } else { 0.01 };
            let clicks = rng.random_range(20..400u64);
            k.push(clicks);
            s.push((0..clicks).filter(|_| rng.random_bool(rate)).count() as u64);
        }
        let p = ModelParams::default();
        let prior = fit_rate_prior(&s, &k, 20, 0.02, &p);
        assert!(prior.components().len() > 1);
        let high: f64 = prior.components().iter().filter(|c| c.1 / (c.1 + c.2) > 0.06).map(|c| c.0).sum();
        assert!((high - 0.25).abs() < 0.03, "{high}");
        let (mut rs, mut rk) = (s.clone(), k.clone());
        rs.reverse();
        rk.reverse();
        assert_eq!(fit_rate_prior(&rs, &rk, 20, 0.02, &p), prior);
        // An account with 2 of 30 could be in either group; with 40 of 300 it is in the high one.
        let low = prior.posterior(2, 30).summary(0.9);
        let top = prior.posterior(40, 300).summary(0.9);
        assert!(low.lower < 0.03 && low.upper > 0.03, "{low:?}");
        assert!(top.lower > 0.09 && top.upper < 0.2, "{top:?}");
        let few = fit_rate_prior(&s[..50], &k[..50], 20, 0.02, &p);
        assert_eq!(few.components().len(), 1, "50 accounts: below action_prior_mixture_min_accounts");
        let off = ModelParams { action_prior_components: 0, ..p };
        assert_eq!(fit_rate_prior(&s, &k, 20, 0.02, &off).components().len(), 1);
    }
}
