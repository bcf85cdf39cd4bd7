//! Which runs write a history row for an account.
//!
//! Network standing is PageRank, so every run moves every account a little;
//! writing a row whenever anything changed kept a row per account per run and
//! a bounded history covered minutes. Instead a run writes an account's row
//! when, since the row last written for it, some dimension's value or
//! percentile moved by at least `ScoringConfig::history_resolution` points, or
//! its action interval's bounds moved that much or its evidence changed; a new
//! account and a new model version always get a row. So a history point means:
//! from this run on, until the next point, every value and percentile stayed
//! within the resolution of what the point shows. Live reads (`GetScores`,
//! `ExportScores`) are served from the published run and are exact.
//!
//! What was last written is kept in memory by node. After a restart it is read
//! back from the store (each account's newest row, its percentiles from that
//! row's run), so the bound holds across restarts instead of drifting.

use std::collections::HashMap;

use lift_domain::{AccountId, Dimension};
use lift_store::scoring::{self as store, HistoryRow, ScoreRow};

use super::distribution::{parse_distribution, percentile_from};
use crate::Error;
use crate::engine::{Snapshot, State};

/// One written history point, as compared against later runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    values: [f64; 5],
    percentiles: [f64; 5],
    action: (f64, f64, bool),
}

impl Point {
    fn of(snap: &Snapshot, i: usize) -> Self {
        let a = snap.action[i];
        Self {
            values: Dimension::ALL.map(|d| snap.values[d.index()][i]),
            percentiles: Dimension::ALL.map(|d| snap.percentiles[d.index()][i]),
            action: (a.lower, a.upper, a.sufficient),
        }
    }

    /// Whether `self` is far enough from `last` to be worth a row.
    fn moved_from(&self, last: &Point, resolution: f64) -> bool {
        let far = |a: f64, b: f64| if resolution > 0.0 { (a - b).abs() >= resolution } else { a != b };
        (0..5).any(|d| far(self.values[d], last.values[d]) || far(self.percentiles[d], last.percentiles[d]))
            || far(self.action.0, last.action.0)
            || far(self.action.1, last.action.1)
            || self.action.2 != last.action.2
    }
}

/// The last written point per node, under one model version.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    model_version: Option<String>,
    points: Vec<Option<Point>>,
}

/// Rows a run writes, with the points to remember once they are committed.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) rows: Vec<ScoreRow>,
    points: Vec<(usize, Point)>,
    model_version: String,
}

impl Recorded {
    /// Whether it still has to be read back from the store (after a start).
    pub(crate) fn is_unloaded(&self) -> bool {
        self.model_version.is_none()
    }

    /// The rows `snap` must write, compared with what was last written.
    pub(crate) fn rows_for(&self, state: &State, snap: &Snapshot, resolution: f64) -> Pending {
        let same_model = self.model_version.as_deref() == Some(snap.model_version.as_str());
        let mut out = Pending { model_version: snap.model_version.clone(), ..Pending::default() };
        for i in 0..snap.n {
            let p = Point::of(snap, i);
            let last = if same_model { self.points.get(i).copied().flatten() } else { None };
            if last.is_none_or(|l| p.moved_from(&l, resolution)) {
                out.rows.push(row_of(&state.accounts[i].id, snap, i));
                out.points.push((i, p));
            }
        }
        out
    }

    /// Remembers what a committed run wrote.
    pub(crate) fn committed(&mut self, p: Pending) {
        if self.model_version.as_deref() != Some(p.model_version.as_str()) {
            self.points.clear();
            self.model_version = Some(p.model_version);
        }
        for (i, point) in p.points {
            if self.points.len() <= i {
                self.points.resize(i + 1, None);
            }
            self.points[i] = Some(point);
        }
    }

    /// Reads back each account's newest row under `model_version`, so the
    /// first run after a start compares with what was really written.
    pub(crate) async fn load(
        db: &lift_store::DatabaseConnection,
        state: &State,
        model_version: &str,
    ) -> Result<Self, Error> {
        let rows = store::newest_rows(db, model_version).await?;
        // Each run's distributions, parsed once: (levels, quantiles) per dimension.
        type Distributions = Vec<(Vec<f64>, Vec<f64>)>;
        let mut runs: HashMap<u64, Option<Distributions>> = HashMap::new();
        let mut points = vec![None; state.len()];
        for HistoryRow { run_id, row } in rows {
            let Some(node) = AccountId::parse(&row.account).and_then(|id| state.node(&id)) else { continue };
            if let std::collections::hash_map::Entry::Vacant(slot) = runs.entry(run_id) {
                let parsed = match store::get_run(db, run_id).await? {
                    Some(run) => {
                        Some(Dimension::ALL.iter().map(|&d| parse_distribution(&run, d)).collect::<Result<_, _>>()?)
                    }
                    None => None,
                };
                slot.insert(parsed);
            }
            let Some(Some(dists)) = runs.get(&run_id) else { continue };
            let mut percentiles = [0.0; 5];
            for d in Dimension::ALL {
                let (levels, values) = &dists[d.index()];
                percentiles[d.index()] = percentile_from(levels, values, row.values[d.index()]);
            }
            if let Some(slot) = points.get_mut(node as usize) {
                *slot = Some(Point {
                    values: row.values,
                    percentiles,
                    action: (row.action_lower, row.action_upper, row.action_sufficient),
                });
            }
        }
        Ok(Self { model_version: Some(model_version.to_owned()), points })
    }
}

pub(crate) fn row_of(id: &AccountId, snap: &Snapshot, i: usize) -> ScoreRow {
    let a = snap.action[i];
    ScoreRow {
        account: id.to_string(),
        values: Dimension::ALL.map(|d| snap.values[d.index()][i]),
        action_lower: a.lower,
        action_upper: a.upper,
        action_sufficient: a.sufficient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(v: f64, p: f64) -> Point {
        Point { values: [v; 5], percentiles: [p; 5], action: (0.0, v, false) }
    }

    /// Pins what a history point promises over a stream of runs: after every
    /// run, each account's newest written row is within the resolution of its
    /// live values and percentiles; new accounts always get a row; and a
    /// resolution writes fewer rows than recording every change.
    #[test]
    fn written_rows_stay_within_the_resolution_of_live_scores() {
        use crate::engine::testutil::random_stream;
        use crate::engine::{ModelParams, compute};
        let stream = random_stream(11, 120, 3000);
        let params = ModelParams::default();
        let res = 0.5;
        let mut recorded = Recorded { model_version: Some(params.version()), points: Vec::new() };
        let mut every_change = Recorded { model_version: Some(params.version()), points: Vec::new() };
        let (mut rows, mut rows_every_change) = (0, 0);
        let mut state = State::new();
        let mut last_written: HashMap<String, ScoreRow> = HashMap::new();
        for (k, chunk) in stream.chunks(150).enumerate() {
            for e in chunk {
                state.apply(e);
            }
            let snap = compute(&state, &params);
            let pending = recorded.rows_for(&state, &snap, res);
            for r in &pending.rows {
                last_written.insert(r.account.clone(), r.clone());
            }
            rows += pending.rows.len();
            recorded.committed(pending);
            let all = every_change.rows_for(&state, &snap, 0.0);
            rows_every_change += all.rows.len();
            every_change.committed(all);
            for i in 0..snap.n {
                let id = state.accounts[i].id.to_string();
                let w = last_written.get(&id).unwrap_or_else(|| panic!("run {k}: {id} never written"));
                for d in Dimension::ALL {
                    let live = snap.values[d.index()][i];
                    assert!((live - w.values[d.index()]).abs() < res, "run {k}: {id} {d:?} {live} vs {:?}", w.values);
                }
                let p = recorded.points[i].expect("recorded");
                for d in 0..5 {
                    assert!((snap.percentiles[d][i] - p.percentiles[d]).abs() < res, "run {k}: {id} percentile");
                }
            }
        }
        assert!(rows < rows_every_change, "{rows} rows with a resolution, {rows_every_change} without");
    }

    /// Pins the resolution rule: below it no row, at it a row, and 0 means any change.
    #[test]
    fn a_row_when_a_value_or_percentile_moves_by_the_resolution() {
        let last = point(50.0, 60.0);
        assert!(!point(50.4, 60.0).moved_from(&last, 0.5));
        assert!(point(50.5, 60.0).moved_from(&last, 0.5));
        assert!(point(50.0, 59.5).moved_from(&last, 0.5));
        assert!(!point(50.0, 60.0).moved_from(&last, 0.0));
        assert!(point(50.0 + 1e-9, 60.0).moved_from(&last, 0.0));
        let mut sufficient = last;
        sufficient.action.2 = true;
        assert!(sufficient.moved_from(&last, 10.0));
    }
}
