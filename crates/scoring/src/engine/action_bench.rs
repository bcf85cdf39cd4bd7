//! Benchmark workload for the action estimates (`examples/action_bench.rs`):
//! per-account click, conversion and engaged-session counts for a population
//! of accounts, estimated under the one-Beta prior (`lift-4`'s rule,
//! `action_prior_components` = 0) and under the model's mixture prior, timed
//! side by side in the same process.

use std::collections::BTreeSet;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::compute::{RawMetrics, action_from_counts, fit_rate_prior};
use super::params::ModelParams;

/// One population's timings.
#[derive(Debug, Clone)]
pub struct ActionBenchRow {
    pub population: &'static str,
    pub accounts: usize,
    pub with_clicks: usize,
    /// Distinct (clicks, conversions) pairs: the histogram the prior is fitted on.
    pub cells: usize,
    pub one_beta_ms: f64,
    pub mixture_ms: f64,
    /// Of `mixture_ms`: fitting the two rates' priors.
    pub fit_ms: f64,
    /// Components of the fitted conversion and engaged-session priors.
    pub components: (usize, usize),
}

/// Counts for `accounts` accounts, a `share` of them with 1–1,000 clicks
/// (log-uniform), rates drawn from Beta(2, 48) / Beta(6, 6) (`mixture` false)
/// or from two groups (conversion ¼ at 6–20 %, ¾ at 0–4 %; engaged ½ at 20–40 %,
/// ½ at 50–80 %), conversions and engaged sessions binomial.
fn counts(accounts: usize, share: f64, mixture: bool, seed: u64) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut clicks, mut conv, mut engaged) = (vec![0; accounts], vec![0; accounts], vec![0; accounts]);
    let beta = |rng: &mut ChaCha8Rng, a: u32, b: u32| {
        let mut g = |k: u32| (0..k).map(|_| -rng.random::<f64>().max(1e-300).ln()).sum::<f64>();
        let x = g(a);
        x / (x + g(b))
    };
    for i in 0..accounts {
        if !rng.random_bool(share) {
            continue;
        }
        let (tc, te) = if mixture {
            let tc = if rng.random_bool(0.25) { rng.random_range(0.06..0.20) } else { rng.random_range(0.0..0.04) };
            (tc, if rng.random_bool(0.5) { rng.random_range(0.2..0.4) } else { rng.random_range(0.5..0.8) })
        } else {
            (beta(&mut rng, 2, 48), beta(&mut rng, 6, 6))
        };
        let k = 1000f64.powf(rng.random::<f64>()).floor().max(1.0) as u64;
        clicks[i] = k;
        conv[i] = (0..k).filter(|_| rng.random_bool(tc)).count() as u64;
        engaged[i] = (0..k).filter(|_| rng.random_bool(te)).count() as u64;
    }
    (clicks, conv, engaged)
}

/// Times the action estimates for both populations.
pub fn action_bench(accounts: usize, share: f64, seed: u64) -> Vec<ActionBenchRow> {
    let lift5 = ModelParams::default();
    let one_beta = ModelParams { action_prior_components: 0, ..lift5.clone() };
    let mut rows = Vec::new();
    for (population, mixture) in [("Beta rates", false), ("two groups (mixture)", true)] {
        let (clicks, conv, engaged) = counts(accounts, share, mixture, seed);
        let raw = |clicks: &[u64]| -> Vec<RawMetrics> {
            clicks.iter().map(|&k| RawMetrics { clicks: k as f32, sessions: k as f32, ..Default::default() }).collect()
        };
        let time = |p: &ModelParams| {
            let mut r = raw(&clicks);
            let t = Instant::now();
            let out = action_from_counts(p, &clicks, &conv, &engaged, true, &mut r);
            std::hint::black_box(out.values.len());
            t.elapsed().as_secs_f64() * 1e3
        };
        let one_beta_ms = time(&one_beta);
        let mixture_ms = time(&lift5);
        let t = Instant::now();
        let min = lift5.action_min_clicks;
        let c = fit_rate_prior(&conv, &clicks, min, lift5.action_prior_mean, &lift5);
        let e = fit_rate_prior(&engaged, &clicks, min, lift5.action_engaged_prior_mean, &lift5);
        let fit_ms = t.elapsed().as_secs_f64() * 1e3;
        let cells: BTreeSet<(u64, u64)> =
            clicks.iter().zip(&conv).filter(|(k, _)| **k >= min).map(|(&k, &s)| (k, s)).collect();
        rows.push(ActionBenchRow {
            population,
            accounts,
            with_clicks: clicks.iter().filter(|&&k| k > 0).count(),
            cells: cells.len(),
            one_beta_ms,
            mixture_ms,
            fit_ms,
            components: (c.component_count(), e.component_count()),
        });
    }
    rows
}
