//! The distribution functions Lift's models use, in one place, on `statrs`:
//! normal and Student t quantiles (campaign lift intervals), the Beta CDF and
//! quantiles (the action model's credible intervals) and `ln Γ` (seed
//! selection's binomial terms).
//!
//! Each function answers every input without panicking: `statrs` asserts on
//! arguments outside a distribution's domain, so those are answered here
//! (infinities at probability 0 and 1, NaN for shapes that are not positive).

use statrs::distribution::{Beta, ContinuousCDF, Normal, StudentsT};
use statrs::function::{beta, gamma};

/// Probabilities closer than this to 0 or 1 are moved to it before a Beta
/// quantile is solved: `statrs`'s inverse incomplete beta does not terminate
/// for some far lower tails, and no credible interval Lift publishes needs a
/// tail that small. (It also returns about 1e-16 for roots below about 1e-17,
/// as the bisection it replaces returned about 1e-18: either is 0 on a 0–100
/// scale, and intervals are not read that finely.)
const BETA_TAIL_FLOOR: f64 = 1e-15;

/// Standard normal quantile; −∞ at `p ≤ 0`, +∞ at `p ≥ 1`.
pub fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    Normal::standard().inverse_cdf(p)
}

/// Above this many degrees of freedom the t quantile is taken as the normal one:
/// they differ by less than 2.4e-5 at the 97.5 % point, while `statrs`'s t
/// quantile loses accuracy past it (1.2e-4 off at 10⁶).
const T_AS_NORMAL_DF: f64 = 1e5;

/// Student t quantile for real-valued degrees of freedom; the normal quantile
/// when `df` is infinite, above 10⁵, not positive or NaN.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if p.is_nan() || p <= 0.0 || p >= 1.0 || !df.is_finite() || df <= 0.0 || df > T_AS_NORMAL_DF {
        return normal_quantile(p);
    }
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(p),
        Err(_) => normal_quantile(p),
    }
}

/// `ln Γ(x)` for x > 0.
pub fn ln_gamma(x: f64) -> f64 {
    gamma::ln_gamma(x)
}

/// Regularised incomplete beta `I_x(a, b)`, the CDF of Beta(a, b) at `x`:
/// 0 at or below 0, 1 at or above 1, NaN when a shape is not positive.
pub fn beta_cdf(x: f64, a: f64, b: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    beta::checked_beta_reg(a, b, x).unwrap_or(f64::NAN)
}

/// Quantile `p` of Beta(a, b): 0 at `p ≤ 0`, 1 at `p ≥ 1`, NaN when a shape is
/// not positive and finite.
pub fn beta_quantile(p: f64, a: f64, b: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    match Beta::new(a, b) {
        Ok(d) if a.is_finite() && b.is_finite() => {
            d.inverse_cdf(p.clamp(BETA_TAIL_FLOOR, 1.0 - BETA_TAIL_FLOOR)).clamp(0.0, 1.0)
        }
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the Beta CDF and quantiles against closed forms and SciPy.
    #[test]
    fn beta_matches_closed_forms_and_reference() {
        // Beta(1,1) is uniform; Beta(2,1) has CDF x².
        assert!((beta_cdf(0.3, 1.0, 1.0) - 0.3).abs() < 1e-12);
        assert!((beta_cdf(0.5, 2.0, 1.0) - 0.25).abs() < 1e-12);
        assert!((beta_quantile(0.25, 2.0, 1.0) - 0.5).abs() < 1e-9);
        // Symmetric: the median of Beta(7,7) is 0.5.
        assert!((beta_quantile(0.5, 7.0, 7.0) - 0.5).abs() < 1e-9);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        // scipy.stats.beta.ppf([0.05, 0.95], 3, 97) = [0.00830942, 0.0622281]
        assert!((beta_quantile(0.05, 3.0, 97.0) - 0.008_309_42).abs() < 1e-6);
        assert!((beta_quantile(0.95, 3.0, 97.0) - 0.062_228_1).abs() < 1e-6);
        // Quantile and CDF invert each other across the shapes the action model meets,
        // from a fallback prior with no clicks to a creator with a million.
        for (a, b) in [(0.3, 7.0), (2.0, 48.0), (40.0, 960.0), (1e3, 2e4)] {
            for p in [0.025, 0.05, 0.25, 0.5, 0.75, 0.95, 0.975] {
                let x = beta_quantile(p, a, b);
                assert!((beta_cdf(x, a, b) - p).abs() < 1e-9 + 1e-6 * p, "Beta({a}, {b}) at {p}: {x}");
            }
        }
        // Large shapes (a creator with a million clicks), against the symmetric median and a
        // Cornish–Fisher expansion (mean + sd·(z + (z² − 1)·skew/6), exact to ~1e-7 here).
        assert!((beta_quantile(0.5, 5e5, 5e5) - 0.5).abs() < 1e-5);
        assert!((beta_quantile(0.05, 4e4, 1e6) - 0.0381519).abs() < 5e-6, "{}", beta_quantile(0.05, 4e4, 1e6));
    }

    /// Pins the edges: no panic, infinities and NaN where the answer is one.
    #[test]
    fn edges_answer_without_panicking() {
        assert_eq!(beta_quantile(0.0, 2.0, 3.0), 0.0);
        assert_eq!(beta_quantile(1.0, 2.0, 3.0), 1.0);
        assert!(beta_quantile(0.5, 0.0, 3.0).is_nan());
        assert!(beta_quantile(0.5, f64::INFINITY, 3.0).is_nan());
        assert!(beta_quantile(f64::NAN, 1.0, 1.0).is_nan());
        assert_eq!(beta_cdf(-1.0, 2.0, 3.0), 0.0);
        assert_eq!(beta_cdf(2.0, 2.0, 3.0), 1.0);
        assert!(beta_cdf(0.5, -1.0, 3.0).is_nan());
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
        assert!((normal_quantile(0.975) - 1.959_963_985).abs() < 1e-8);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert_eq!(student_t_quantile(1.0, 5.0), f64::INFINITY);
        assert!((student_t_quantile(0.975, f64::INFINITY) - 1.959_963_985).abs() < 1e-8);
        assert!((student_t_quantile(0.975, -2.0) - 1.959_963_985).abs() < 1e-8);
        // Tabulated: t(0.975, 1000) = 1.9623391; at 10⁶ (z + (z³ + z) / 4ν = 1.9599664) the
        // normal quantile stands in, 2.4e-6 off.
        assert!((student_t_quantile(0.975, 1e3) - 1.962_339_1).abs() < 1e-7);
        assert!((student_t_quantile(0.975, 1e6) - 1.959_966_357).abs() < 5e-6);
    }
}
