//! The distribution each run stores beside its scores: every dimension's
//! quantiles at fixed levels. Runs write it (`distributions_json`); score
//! history and recalibration mappings read percentiles back from it.

use lift_domain::Dimension;
use lift_store::scoring as store;

use crate::Error;
use crate::engine::Snapshot;

/// Quantile levels stored with each run (every 0.5 %), for history percentiles
/// and recalibration mappings.
pub(crate) fn stored_levels() -> Vec<f64> {
    (0..=200).map(|i| f64::from(i) / 200.0).collect()
}

/// `{"levels": [...], "activity": [...], ...}` at [`stored_levels`].
pub(crate) fn distributions_json(snap: &Snapshot) -> String {
    let levels = stored_levels();
    let mut map = serde_json::Map::new();
    map.insert("levels".into(), serde_json::json!(levels));
    for d in Dimension::ALL {
        let v = &snap.values[d.index()];
        let asc: Vec<f64> = snap.order[d.index()].iter().rev().map(|&i| v[i as usize]).collect();
        let q: Vec<f64> = crate::engine::stats::quantiles(&asc, &levels).into_iter().map(|(_, x)| x).collect();
        map.insert(d.name().into(), serde_json::json!(q));
    }
    serde_json::Value::Object(map).to_string()
}

/// A run's stored distribution of one dimension: (levels, values).
pub(crate) fn parse_distribution(run: &store::Run, d: Dimension) -> Result<(Vec<f64>, Vec<f64>), Error> {
    let corrupt = |reason: String| Error::CorruptRun { run_id: run.run_id, reason };
    let v: serde_json::Value = serde_json::from_str(&run.distributions).map_err(|e| corrupt(e.to_string()))?;
    let list = |k: &str| -> Result<Vec<f64>, Error> {
        v.get(k)
            .and_then(|x| x.as_array())
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .ok_or_else(|| corrupt(format!("no {k:?} in distributions")))
    };
    Ok((list("levels")?, list(d.name())?))
}

/// Approximate percentile of `v` in a stored distribution, by the rule live
/// scores use (`lift_domain::score::percentile_in`: the share at or below, and
/// 0 for a value of 0): the highest level whose quantile is at or below `v`
/// (within half a percentile point).
pub(crate) fn percentile_from(levels: &[f64], values: &[f64], v: f64) -> f64 {
    if v <= 0.0 {
        return 0.0;
    }
    let k = values.partition_point(|x| *x <= v);
    if k == 0 { 0.0 } else { 100.0 * levels.get(k - 1).copied().unwrap_or(1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins that history percentiles follow the live rule: tied top values
    /// are at the top (not at the bottom of the tie), and 0 stays at 0.
    #[test]
    fn stored_percentiles_count_at_or_below() {
        let levels = stored_levels();
        // 10 % of accounts at 20, the rest tied at 100.
        let mut pop: Vec<f64> = (0..1000).map(|i| if i < 100 { 20.0 } else { 100.0 }).collect();
        pop.sort_unstable_by(f64::total_cmp);
        let q: Vec<f64> = crate::engine::stats::quantiles(&pop, &levels).into_iter().map(|(_, x)| x).collect();
        for v in [20.0, 100.0] {
            let live = lift_domain::score::percentile_in(&pop, v);
            let stored = percentile_from(&levels, &q, v);
            assert!((live - stored).abs() <= 0.5, "{v}: live {live}, stored {stored}");
        }
        assert_eq!(percentile_from(&levels, &q, 100.0), 100.0);
        assert_eq!(percentile_from(&levels, &q, 0.0), 0.0);
        assert_eq!(percentile_from(&levels, &q, 10.0), 0.0);
    }
}
