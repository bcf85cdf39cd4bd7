//! The *action* dimension: Beta–Binomial estimates of per-click rates under
//! priors fitted to the population (`rate_prior`), and action's percentiles
//! against the accounts with sufficient evidence.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use lift_domain::Micros;

use super::{ActionEstimate, RateEstimate, RawMetrics};
use crate::engine::params::ModelParams;
use crate::engine::state::{OutcomeKind, State};
use crate::engine::stats::{beta_summary, grid_percentiles, percentile_in, quantize};

use super::rate_prior::{NEGLIGIBLE, RatePrior, fit_rate_prior, mixture_summary};

/// Action percentiles: against the accounts with sufficient evidence (an
/// account with insufficient evidence is placed among them by its point
/// estimate); 0 for accounts with no evidence at all.
pub(in crate::engine) fn action_percentiles(values: &[f64], est: &[ActionEstimate]) -> Vec<f64> {
    let sufficient: Vec<bool> = est.iter().map(|a| a.sufficient).collect();
    let observed: Vec<bool> = est.iter().map(|a| a.observed).collect();
    if let Some(p) = grid_percentiles(values, Some(&sufficient), Some(&observed)) {
        return p;
    }
    let mut sorted: Vec<f64> = values.iter().zip(est).filter(|(_, a)| a.sufficient).map(|(v, _)| *v).collect();
    sorted.sort_unstable_by(f64::total_cmp);
    values.iter().zip(est).map(|(v, a)| if a.observed { percentile_in(&sorted, *v) } else { 0.0 }).collect()
}

pub(in crate::engine) struct ActionOut {
    pub(in crate::engine) values: Vec<f64>,
    pub(in crate::engine) estimates: Vec<ActionEstimate>,
    pub(in crate::engine) prior: (f64, f64),
}

/// Beta–Binomial estimates of the conversion rate and the engaged-session
/// rate per attributed click, each with an empirical-Bayes prior fitted to the
/// accounts with enough clicks (one Beta by the method of moments, or a
/// mixture of Betas, see `rate_prior`; the model's prior when too few have).
pub(super) fn action_estimates(
    state: &State,
    p: &ModelParams,
    in_window: &impl Fn(Micros) -> bool,
    raw: &mut [RawMetrics],
) -> ActionOut {
    let n = state.len();
    let mut clicks = vec![0u64; n];
    let mut conv = vec![0u64; n];
    let mut engaged = vec![0u64; n];
    let mut any_sessions = false;
    for o in &state.outcomes {
        if !in_window(o.at) {
            continue;
        }
        let i = o.owner as usize;
        let r = &mut raw[i];
        match o.kind {
            OutcomeKind::Click => {
                clicks[i] += 1;
                r.clicks += 1.0;
            }
            OutcomeKind::Session { bounced } => {
                any_sessions = true;
                r.sessions += 1.0;
                if !bounced {
                    engaged[i] += 1;
                    r.non_bounced += 1.0;
                }
            }
            OutcomeKind::Conversion => {
                conv[i] += 1;
                r.conversions += 1.0;
                r.conversion_value_minor += o.value_minor as f32;
            }
            OutcomeKind::CodeConversion => {
                r.code_conversions += 1.0;
                r.conversion_value_minor += o.value_minor as f32;
            }
        }
    }
    action_from_counts(p, &clicks, &conv, &engaged, any_sessions, raw)
}

/// The estimation half of `action_estimates`, from per-account outcome counts
/// in the window (and `raw`'s session, conversion and click columns), so the
/// incremental path reaches the same estimates from counts it keeps itself.
pub(in crate::engine) fn action_from_counts(
    p: &ModelParams,
    clicks: &[u64],
    conv: &[u64],
    engaged: &[u64],
    any_sessions: bool,
    raw: &mut [RawMetrics],
) -> ActionOut {
    let n = clicks.len();
    // A conversion or engaged session without its click in the window cannot be
    // a success of a trial we did not see.
    let conv: Vec<u64> = (0..n).map(|i| conv[i].min(clicks[i])).collect();
    let engaged: Vec<u64> = (0..n).map(|i| engaged[i].min(clicks[i])).collect();
    let min = p.action_min_clicks.max(1);
    let conv_prior = fit_rate_prior(&conv, clicks, min, p.action_prior_mean, p);
    let eng_prior = fit_rate_prior(&engaged, clicks, min, p.action_engaged_prior_mean, p);
    let w = if any_sessions { p.action_engaged_weight.clamp(0.0, 1.0) } else { 0.0 };
    let combine = |c: f64, e: f64| p.action_value(c, e, any_sessions);
    let rate = |prior: &RatePrior, s: u64, k: u64, scale: f64| {
        let post = prior.posterior(s, k);
        let sum = post.summary(p.credible_mass);
        Rate {
            est: RateEstimate { mean: sum.mean, lower: sum.lower, upper: sum.upper },
            saturated: if w > 0.0 && w < 1.0 { post.saturated_components(scale) } else { None },
        }
    };
    // The value's interval. With one rate (w = 0 or 1) it is that rate's interval
    // mapped through `saturate`, exact because the map is increasing. A blend of
    // two rates is not: both rates are rarely at their bounds together, so
    // blending the bounds over-covers (measured at 95.6 % for a 90 % interval).
    // Its interval is instead that of a Beta on 0–100 with the blend's exact mean
    // and variance (the two posteriors independent) — per component of the
    // conversion posterior when its prior is a mixture, weighted as a mixture.
    let interval = |c: &Rate, e: &Rate| -> (f64, f64) {
        let by_bounds = (combine(c.est.lower, e.est.lower), combine(c.est.upper, e.est.upper));
        if w <= 0.0 || w >= 1.0 {
            return by_bounds;
        }
        let (Some(cs), Some(es)) = (&c.saturated, &e.saturated) else { return by_bounds };
        // The engaged part (a quarter of the value, on a gentler scale) enters by
        // its mean and variance; the conversion posterior's components one by one.
        let (me, ve) = moments(es);
        let mut pairs = Vec::with_capacity(cs.len());
        for &(wc, mc, vc) in cs {
            let mean = ((1.0 - w) * mc + w * me) / 100.0;
            let var = ((1.0 - w).powi(2) * vc + w * w * ve) / 1e4;
            let strength = mean * (1.0 - mean) / var - 1.0;
            if !(mean > 0.0 && mean < 1.0 && var > 0.0 && strength.is_finite() && strength > 0.0) {
                return by_bounds;
            }
            if wc >= NEGLIGIBLE {
                pairs.push((wc, mean * strength, (1.0 - mean) * strength));
            }
        }
        let b = mixture_summary(&pairs, p.credible_mass);
        (quantize(100.0 * b.lower), quantize(100.0 * b.upper))
    };
    // Accounts share posteriors by their counts: each distinct (successes,
    // clicks) pair and (conversions, engaged, clicks) triple is summarised
    // once, the distinct ones in parallel (each a pure function of its counts
    // and the priors, so the result does not depend on the threads).
    let observed_at = |i: usize| {
        let r = &raw[i];
        clicks[i] > 0 || r.sessions > 0.0 || r.conversions > 0.0 || r.code_conversions > 0.0
    };
    let observed: Vec<bool> = (0..n).map(observed_at).collect();
    let distinct = |succ: &[u64]| -> Vec<(u64, u64)> {
        let set: HashSet<(u64, u64)> = (0..n).filter(|&i| observed[i]).map(|i| (succ[i], clicks[i])).collect();
        set.into_iter().collect()
    };
    let summarise = |prior: &RatePrior, keys: Vec<(u64, u64)>, scale: f64| -> HashMap<(u64, u64), Rate> {
        keys.into_par_iter().map(|(s, k)| ((s, k), rate(prior, s, k, scale))).collect()
    };
    let conv_cache = summarise(&conv_prior, distinct(&conv), p.action_rate_scale);
    let eng_cache = summarise(&eng_prior, distinct(&engaged), p.action_engaged_scale);
    let triples: HashSet<(u64, u64, u64)> =
        (0..n).filter(|&i| observed[i]).map(|i| (conv[i], engaged[i], clicks[i])).collect();
    let blend_cache: HashMap<(u64, u64, u64), (f64, f64)> = triples
        .into_par_iter()
        .map(|(c, e, k)| ((c, e, k), interval(&conv_cache[&(c, k)], &eng_cache[&(e, k)])))
        .collect();
    let mut values = Vec::with_capacity(n);
    let mut estimates = Vec::with_capacity(n);
    for i in 0..n {
        let k = clicks[i];
        let r = &mut raw[i];
        if !observed[i] {
            values.push(0.0);
            estimates.push(ActionEstimate::default());
            continue;
        }
        let (c, e) = (conv_cache[&(conv[i], k)].est, eng_cache[&(engaged[i], k)].est);
        let value = combine(c.mean, e.mean);
        // The value is the blend of the posterior means, which the matched Beta's
        // central interval can miss at low masses; the interval shown always holds it.
        let (lower, upper) = blend_cache[&(conv[i], engaged[i], k)];
        let (lower, upper) = (lower.min(value), upper.max(value));
        let est = ActionEstimate { lower, upper, sufficient: k >= min, observed: true, conversion: c, engaged: e };
        values.push(value);
        estimates.push(est);
        r.conversion_rate = c.mean as f32;
        r.conversion_lower = c.lower as f32;
        r.conversion_upper = c.upper as f32;
        if any_sessions {
            r.engaged_rate = e.mean as f32;
            r.engaged_lower = e.lower as f32;
            r.engaged_upper = e.upper as f32;
        }
        if r.sessions > 0.0 {
            let s = beta_summary(
                1.0 + f64::from(r.non_bounced),
                1.0 + f64::from(r.sessions - r.non_bounced),
                p.credible_mass,
            );
            r.non_bounce_rate = s.mean as f32;
            r.non_bounce_lower = s.lower as f32;
            r.non_bounce_upper = s.upper as f32;
        }
    }
    ActionOut { values, estimates, prior: conv_prior.as_beta() }
}

/// Mean and variance of a mixture given per component (weight, mean, variance).
fn moments(components: &[(f64, f64, f64)]) -> (f64, f64) {
    let (mut m1, mut m2) = (0.0, 0.0);
    for &(w, m, v) in components {
        m1 += w * m;
        m2 += w * (v + m * m);
    }
    (m1, (m2 - m1 * m1).max(0.0))
}

/// One rate's posterior: its summary, and the mean and variance of its
/// saturated value (0–100), for the blend's interval.
#[derive(Debug, Clone)]
struct Rate {
    est: RateEstimate,
    /// Per posterior component: weight, and the saturated value's mean and variance.
    saturated: Option<Vec<(f64, f64, f64)>>,
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Pins that the estimates under a mixture prior, computed in parallel, are
    /// the same bits on one thread and on three.
    #[test]
    fn mixture_estimates_do_not_depend_on_threads() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 4000;
        let (mut clicks, mut conv, mut engaged) = (vec![0u64; n], vec![0u64; n], vec![0u64; n]);
        for i in 0..n {
            let k = rng.random_range(0..300u64);
            let rate = if rng.random_bool(0.25) { 0.15 } else { 0.01 };
            clicks[i] = k;
            conv[i] = (0..k).filter(|_| rng.random_bool(rate)).count() as u64;
            engaged[i] = (0..k).filter(|_| rng.random_bool(0.4)).count() as u64;
        }
        let p = ModelParams::default();
        assert!(fit_rate_prior(&conv, &clicks, p.action_min_clicks, p.action_prior_mean, &p).component_count() > 1);
        let run = |threads: usize| {
            let mut raw: Vec<RawMetrics> = clicks
                .iter()
                .map(|&k| RawMetrics { clicks: k as f32, sessions: k as f32, ..Default::default() })
                .collect();
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
            let out = pool.install(|| action_from_counts(&p, &clicks, &conv, &engaged, true, &mut raw));
            let bits: Vec<[u64; 5]> = out
                .values
                .iter()
                .zip(&out.estimates)
                .map(|(v, e)| {
                    [
                        v.to_bits(),
                        e.lower.to_bits(),
                        e.upper.to_bits(),
                        e.conversion.lower.to_bits(),
                        e.engaged.upper.to_bits(),
                    ]
                })
                .collect();
            bits
        };
        assert_eq!(run(1), run(3));
    }
}
