//! Small numerical pieces: Beta posterior summaries, percentiles, quantiles,
//! and the value grid.

/// Values are kept on a grid of 1/1024: dyadic numbers of that size add and
/// subtract exactly in `f64`, so explanation contributions (differences of
/// values) sum to the change *exactly*, and a stored value equals the served one.
pub const GRID: f64 = 1024.0;

/// Rounds a 0–100 value onto the grid.
pub fn quantize(v: f64) -> f64 {
    if !v.is_finite() {
        return 0.0;
    }
    (v.clamp(0.0, 100.0) * GRID).round() / GRID
}

/// `100·(1 − e^(−raw/scale))`: a saturating map of a non-negative raw metric
/// onto 0–100 that reaches 63.2 at `raw = scale`.
pub fn saturate(raw: f64, scale: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() || scale <= 0.0 {
        return if raw.is_infinite() && raw > 0.0 { 100.0 } else { 0.0 };
    }
    100.0 * (1.0 - (-raw / scale).exp())
}

// The percentile rule lives in the domain so that every reader (scoring's runs,
// matching's delta-refreshed cache) ranks with the same one.
pub use lift_domain::score::{percentile_in, percentiles};

/// Percentiles (the rule of `percentiles`) of `values` against the population
/// of those with `counted[i]` (all when `None`), for values on the grid: a
/// histogram over the 102,401 grid points and its prefix sums replace the sort,
/// O(n + 102,401). `None` when a value is off the grid or outside 0–100 (the
/// caller sorts instead). Accounts with `shown[i] == false` get 0.
pub fn grid_percentiles(values: &[f64], counted: Option<&[bool]>, shown: Option<&[bool]>) -> Option<Vec<f64>> {
    const CELLS: usize = 100 * GRID as usize + 1;
    let cell = |v: f64| -> Option<usize> {
        let k = v * GRID;
        (k >= 0.0 && k < CELLS as f64 && k.fract() == 0.0).then_some(k as usize)
    };
    let mut cum = vec![0u32; CELLS];
    let mut total = 0usize;
    for (i, &v) in values.iter().enumerate() {
        let c = cell(v)?;
        if counted.is_none_or(|m| m.get(i).copied().unwrap_or(false)) {
            cum[c] += 1;
            total += 1;
        }
    }
    for c in 1..CELLS {
        cum[c] += cum[c - 1];
    }
    Some(
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let show = shown.is_none_or(|m| m.get(i).copied().unwrap_or(false));
                // Same expression as `percentile_in`: at or below, 0 for a 0 value or an empty population.
                if !show || total == 0 || v <= 0.0 {
                    0.0
                } else {
                    cell(v).map_or(0.0, |c| 100.0 * cum[c] as f64 / total as f64)
                }
            })
            .collect(),
    )
}

/// Node ids by value descending, ties by id ascending, for values on the
/// grid: a counting sort over the 102,401 grid points, O(n + 102,401), with
/// the result of the comparison sort. `None` when a value is off the grid or
/// outside 0–100 (the caller sorts instead).
pub fn grid_order_desc(values: &[f64]) -> Option<Vec<u32>> {
    const CELLS: usize = 100 * GRID as usize + 1;
    let mut cells = Vec::with_capacity(values.len());
    let mut start = vec![0u32; CELLS + 1];
    for &v in values {
        let k = v * GRID;
        if !(k >= 0.0 && k < CELLS as f64 && k.fract() == 0.0) {
            return None;
        }
        // Descending: the highest value takes the first slot.
        let c = CELLS - 1 - k as usize;
        cells.push(c as u32);
        start[c + 1] += 1;
    }
    for c in 1..=CELLS {
        start[c] += start[c - 1];
    }
    let mut out = vec![0u32; values.len()];
    // Ids visited ascending, so ties keep ascending ids.
    for (id, &c) in cells.iter().enumerate() {
        let at = &mut start[c as usize];
        out[*at as usize] = id as u32;
        *at += 1;
    }
    Some(out)
}

/// Quantiles of an ascending population at `levels` (0–1), by the nearest-rank rule.
pub fn quantiles(sorted: &[f64], levels: &[f64]) -> Vec<(f64, f64)> {
    if sorted.is_empty() {
        return Vec::new();
    }
    levels
        .iter()
        .map(|&q| {
            let q = q.clamp(0.0, 1.0);
            let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            (q, sorted[i])
        })
        .collect()
}

/// The quantile levels published per dimension: every 5 %, plus 1 % and 99 %.
pub fn published_levels() -> Vec<f64> {
    let mut v: Vec<f64> = (0..=20).map(|i| f64::from(i) * 0.05).collect();
    v.insert(1, 0.01);
    v.insert(v.len() - 1, 0.99);
    v
}

// The distribution functions live in the domain's one statistics module (on `statrs`).
pub use lift_domain::stats::{beta_cdf, beta_quantile, ln_gamma};

/// A Beta posterior summarised for display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BetaSummary {
    pub mean: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Mean and central credible interval of Beta(a, b).
pub fn beta_summary(a: f64, b: f64, mass: f64) -> BetaSummary {
    let tail = (1.0 - mass.clamp(0.0, 1.0)) / 2.0;
    BetaSummary { mean: a / (a + b), lower: beta_quantile(tail, a, b), upper: beta_quantile(1.0 - tail, a, b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins that counting on the grid gives exactly what sorting gives, and that off-grid values are refused.
    #[test]
    fn grid_percentiles_equal_sorted_ones() {
        let values: Vec<f64> = (0..5000u32).map(|i| quantize(f64::from((i * 7919) % 1013) / 9.7)).collect();
        assert_eq!(grid_percentiles(&values, None, None), Some(percentiles(&values)));
        let counted: Vec<bool> = (0..values.len()).map(|i| i % 3 == 0).collect();
        let shown: Vec<bool> = (0..values.len()).map(|i| i % 5 != 0).collect();
        let mut sorted: Vec<f64> = values.iter().zip(&counted).filter(|(_, c)| **c).map(|(v, _)| *v).collect();
        sorted.sort_unstable_by(f64::total_cmp);
        let expected: Vec<f64> =
            values.iter().zip(&shown).map(|(v, s)| if *s { percentile_in(&sorted, *v) } else { 0.0 }).collect();
        assert_eq!(grid_percentiles(&values, Some(&counted), Some(&shown)), Some(expected));
        assert_eq!(grid_percentiles(&[1.0, 0.1], None, None), None);
        assert_eq!(grid_percentiles(&[], None, None), Some(Vec::new()));
    }

    /// Pins the percentile convention: share at or below, ties equal, the top at 100.
    #[test]
    fn percentiles_count_at_or_below() {
        assert_eq!(percentiles(&[1.0, 2.0, 2.0, 3.0]), vec![25.0, 75.0, 75.0, 100.0]);
        assert_eq!(percentiles(&[5.0]), vec![100.0]);
        assert_eq!(percentile_in(&[1.0, 2.0, 3.0, 4.0], 3.5), 75.0);
        assert_eq!(percentile_in(&[1.0, 2.0, 3.0, 4.0], 0.5), 0.0);
        // Nothing observed is at the bottom, however many accounts share it.
        assert_eq!(percentiles(&[0.0, 0.0, 0.0, 5.0]), vec![0.0, 0.0, 0.0, 100.0]);
        assert_eq!(percentiles(&[0.0, 0.0, 2.0, 5.0]), vec![0.0, 0.0, 75.0, 100.0]);
    }

    /// Pins the case that motivated the convention: when most accounts tie at the
    /// best value, they sit at the top of the scale, not at the bottom, so a
    /// percentile rule admits them.
    #[test]
    fn ties_at_the_top_share_the_top_percentile() {
        let mut v = vec![100.0; 995];
        v.extend([10.0, 20.0, 30.0, 40.0, 50.0]);
        let p = percentiles(&v);
        assert!(p[..995].iter().all(|&x| x == 100.0), "{}", p[0]);
        assert_eq!(p[995], 0.1);
        assert!((p[999] - 0.5).abs() < 1e-12);
        // A rule "at least p90" admits every tied account and none of the five below.
        assert_eq!(p.iter().filter(|&&x| x >= 90.0).count(), 995);
    }

    /// Pins the posterior summary: mean and central interval (the distribution
    /// functions themselves are pinned in `lift_domain::stats`).
    #[test]
    fn beta_summary_is_mean_and_central_interval() {
        let s = beta_summary(3.0, 97.0, 0.9);
        assert!(s.lower < s.mean && s.mean < s.upper);
        assert!((s.mean - 0.03).abs() < 1e-15);
        // Reference: scipy.stats.beta.ppf([0.05, 0.95], 3, 97) = [0.00830942, 0.0622281]
        assert!((s.lower - 0.008_309_42).abs() < 1e-6, "{}", s.lower);
        assert!((s.upper - 0.062_228_1).abs() < 1e-6, "{}", s.upper);
        let all = beta_summary(3.0, 97.0, 1.0);
        assert_eq!((all.lower, all.upper), (0.0, 1.0));
    }

    /// Pins the grid: quantised values are exact dyadic numbers whose differences telescope exactly.
    #[test]
    fn grid_differences_telescope_exactly() {
        let vs: Vec<f64> = [12.3456, 99.999, 0.0001, 47.5, 63.21].into_iter().map(quantize).collect();
        let sum: f64 = vs.windows(2).map(|w| w[1] - w[0]).sum();
        assert_eq!(sum, vs[vs.len() - 1] - vs[0]);
        assert_eq!(quantize(150.0), 100.0);
        assert_eq!(quantize(f64::NAN), 0.0);
    }

    /// Pins that the counting sort gives the comparison sort's order (value
    /// descending, ties by id) and refuses values off the grid.
    #[test]
    fn grid_order_equals_sorting() {
        let mut x: u64 = 7;
        let values: Vec<f64> = (0..5000)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                // Few distinct values, so ties are common; 0 and 100 included.
                quantize(((x >> 33) % 41) as f64 * 2.5)
            })
            .collect();
        let mut sorted: Vec<u32> = (0..values.len() as u32).collect();
        sorted.sort_by(|&a, &b| values[b as usize].total_cmp(&values[a as usize]).then(a.cmp(&b)));
        assert_eq!(grid_order_desc(&values), Some(sorted));
        assert_eq!(grid_order_desc(&[1.0, 0.3]), None);
        assert_eq!(grid_order_desc(&[-1.0]), None);
        assert_eq!(grid_order_desc(&[]), Some(Vec::new()));
    }
}
