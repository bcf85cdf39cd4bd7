//! Applying one run's changed accounts to the previous run's snapshot.
//!
//! Scoring's delta export sends only the accounts whose scores changed since
//! the run the cache holds (see `ExportScoresRequest.since_run`), without
//! percentiles: every value change moves other accounts' percentiles. The new
//! snapshot is the old one with those rows replaced (or inserted, for new
//! accounts, keeping rows in account order), percentiles recomputed by
//! scoring's rule (`lift_domain::score::percentiles`: the share of the population
//! at or below each value, the population being every account for an overall dimension and a
//! topic's members for a topic — and each objective's ranking merged: the
//! unchanged rows keep their relative order, so only the changed rows are
//! sorted. Apart from the percentiles (one sort per dimension), the work is
//! copying columns, linear in the accounts, and sorting the changes.

use std::collections::HashMap;

use lift_domain::Dimension;

use super::build::push_row;
use super::{Builder, OBJECTIVES, Run, RunScores, Strings, TopicColumn, objective_index};
use crate::Error;

/// Where a row of the new snapshot comes from.
#[derive(Clone, Copy)]
enum Source {
    Old(usize),
    New(usize),
}

impl Builder {
    /// The snapshot of run `run` from `base` (the previous run's) and this
    /// builder's accounts, the ones changed since `base`'s run.
    pub(crate) fn apply_to(self, base: &RunScores, run: Run, run_id: u64) -> Result<RunScores, Error> {
        let mut rows = self.rows;
        rows.sort_by(|a, b| a.account.cmp(&b.account));
        rows.dedup_by(|later, first| later.account == first.account);
        let received = rows.len() as u64;

        // Merge the old rows and the changed ones by account.
        let mut sources = Vec::with_capacity(base.n + rows.len());
        let mut replaced = vec![false; base.n];
        let (mut i, mut k) = (0, 0);
        while i < base.n || k < rows.len() {
            let ord = match (i < base.n, k < rows.len()) {
                (true, true) => base.cmp_account(i, &rows[k].account),
                (true, false) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match ord {
                std::cmp::Ordering::Less => {
                    sources.push(Source::Old(i));
                    i += 1;
                }
                std::cmp::Ordering::Equal => {
                    replaced[i] = true;
                    sources.push(Source::New(k));
                    i += 1;
                    k += 1;
                }
                std::cmp::Ordering::Greater => {
                    sources.push(Source::New(k));
                    k += 1;
                }
            }
        }
        let n = sources.len();
        if u32::try_from(n).is_err() {
            return Err(Error::scoring(tonic::Status::resource_exhausted(
                "more than 2^32 accounts; too many to cache",
            )));
        }

        // The builder's topic ids → the new snapshot's columns (old ones first).
        let mut columns: Vec<(Dimension, String)> =
            base.topics.iter().map(|t| (t.dimension, t.topic.clone())).collect();
        let topic_of: Vec<u32> = self
            .topic_keys
            .iter()
            .map(|key| match columns.iter().position(|c| c == key) {
                Some(c) => c as u32,
                None => {
                    columns.push(key.clone());
                    (columns.len() - 1) as u32
                }
            })
            .collect();

        let mut snap = RunScores {
            model_version: run.0,
            as_of: run.1,
            run_id,
            received,
            from_delta: true,
            n,
            networks: base.networks.clone(),
            network: Vec::with_capacity(n),
            ids: Strings::default(),
            handles: Strings::default(),
            value: std::array::from_fn(|_| Vec::with_capacity(n)),
            percentile: std::array::from_fn(|_| vec![0.0; n]),
            lower: std::array::from_fn(|_| Vec::with_capacity(n)),
            upper: std::array::from_fn(|_| Vec::with_capacity(n)),
            count: std::array::from_fn(|_| Vec::with_capacity(n)),
            flags: Vec::with_capacity(n),
            topics: Vec::new(),
            order: Default::default(),
        };
        let mut network_ids: HashMap<String, u32> =
            base.networks.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect();
        let mut old_to_new = vec![u32::MAX; base.n];
        // Per column: (new row, value) of the changed rows.
        let mut fresh_topics: Vec<Vec<(u32, f64)>> = vec![Vec::new(); columns.len()];
        let mut changed_rows: Vec<u32> = Vec::with_capacity(rows.len());
        let mut latest: HashMap<u32, f64> = HashMap::new();
        for (j, src) in sources.iter().enumerate() {
            match *src {
                Source::Old(r) => {
                    old_to_new[r] = j as u32;
                    copy_row(&mut snap, base, r)?;
                }
                Source::New(k) => {
                    if let Some(r) = base.find(&rows[k].account).filter(|&r| replaced[r]) {
                        old_to_new[r] = j as u32;
                    }
                    changed_rows.push(j as u32);
                    push_row(&mut snap, &mut network_ids, &rows[k])?;
                    latest.clear();
                    for &(t, v, _) in &rows[k].topics {
                        latest.insert(topic_of[t as usize], v);
                    }
                    for (&c, &v) in &latest {
                        fresh_topics[c as usize].push((j as u32, v));
                    }
                }
            }
        }

        // Topic columns: the old entries of unchanged rows, renumbered, merged
        // with the changed rows' entries; then the members' percentiles.
        for (c, (dimension, topic)) in columns.into_iter().enumerate() {
            let mut kept: Vec<(u32, f64)> = Vec::new();
            if let Some(old) = base.topics.get(c) {
                kept.reserve(old.members.len());
                for (&m, &v) in old.members.iter().zip(&old.value) {
                    if !replaced[m as usize] {
                        kept.push((old_to_new[m as usize], v));
                    }
                }
            }
            let fresh = &mut fresh_topics[c];
            fresh.sort_unstable_by_key(|(m, _)| *m);
            let merged = merge_by(kept, std::mem::take(fresh), |a, b| a.0.cmp(&b.0));
            let (members, value): (Vec<u32>, Vec<f64>) = merged.into_iter().unzip();
            let percentile = percentiles_of(&value);
            snap.topics.push(TopicColumn { dimension, topic, members, value, percentile });
        }

        // Overall percentiles, over the rows that have the dimension.
        for d in Dimension::ALL {
            let has: Vec<bool> = snap.flags.iter().map(|f| f & (1 << d.index()) != 0).collect();
            let present: Vec<f64> =
                snap.value[d.index()].iter().zip(&has).filter(|(_, h)| **h).map(|(v, _)| *v).collect();
            let mut sorted = present;
            sorted.sort_unstable_by(f64::total_cmp);
            for ((p, &v), &h) in snap.percentile[d.index()].iter_mut().zip(&snap.value[d.index()]).zip(&has) {
                if h {
                    *p = lift_domain::score::percentile_in(&sorted, v);
                }
            }
        }

        // Rankings: the unchanged rows in their old order, renumbered, merged
        // with the changed rows sorted by the same rule.
        for o in OBJECTIVES {
            let k = objective_index(o);
            let key = |r: u32| snap.key(o, r as usize);
            let better = |a: &u32, b: &u32| {
                let (ka, kb) = (key(*a), key(*b));
                kb.0.total_cmp(&ka.0).then(kb.1.total_cmp(&ka.1)).then(a.cmp(b))
            };
            let kept: Vec<u32> =
                base.order[k].iter().filter(|&&r| !replaced[r as usize]).map(|&r| old_to_new[r as usize]).collect();
            let mut fresh = changed_rows.clone();
            fresh.sort_unstable_by(better);
            snap.order[k] = merge_by(kept, fresh, better);
        }
        Ok(snap)
    }
}

/// Copies row `r` of `base` onto the end of `snap` (percentiles are recomputed later).
fn copy_row(snap: &mut RunScores, base: &RunScores, r: usize) -> Result<(), Error> {
    snap.network.push(base.network[r]);
    snap.ids.push(base.ids.get(r))?;
    snap.handles.push(base.handles.get(r))?;
    for d in 0..5 {
        snap.value[d].push(base.value[d][r]);
    }
    for k in 0..3 {
        snap.lower[k].push(base.lower[k][r]);
        snap.upper[k].push(base.upper[k][r]);
        snap.count[k].push(base.count[k][r]);
    }
    snap.flags.push(base.flags[r]);
    Ok(())
}

/// Scoring's percentile rule over one population (one definition, in the domain).
pub(super) fn percentiles_of(values: &[f64]) -> Vec<f64> {
    lift_domain::score::percentiles(values)
}

/// A topic column as compared by `differences`: (dimension, topic, members,
/// value bits, percentile bits).
type TopicBits = (Dimension, String, Vec<u32>, Vec<u64>, Vec<u64>);

/// Merges two lists each sorted by `cmp`; on ties `a`'s element comes first.
fn merge_by<T: Copy>(a: Vec<T>, b: Vec<T>, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if cmp(&b[j], &a[i]) == std::cmp::Ordering::Less {
            out.push(b[j]);
            j += 1;
        } else {
            out.push(a[i]);
            i += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl RunScores {
    /// Accounts the load that built this snapshot received.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Whether this snapshot was built by applying a delta.
    pub(crate) fn is_delta(&self) -> bool {
        self.from_delta
    }

    /// Where two snapshots disagree in anything a judgement reads (at most a
    /// few lines; empty = the same). Topic columns compare by (dimension,
    /// topic), an empty column being the same as none.
    pub(crate) fn differences(&self, other: &RunScores) -> Vec<String> {
        const MAX: usize = 12;
        let mut out = Vec::new();
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits();
        if (self.model_version.as_str(), self.as_of, self.run_id, self.n)
            != (other.model_version.as_str(), other.as_of, other.run_id, other.n)
        {
            out.push(format!(
                "run {:?}/{}/{} with {} accounts vs {:?}/{}/{} with {}",
                self.model_version,
                self.as_of,
                self.run_id,
                self.n,
                other.model_version,
                other.as_of,
                other.run_id,
                other.n
            ));
            return out;
        }
        for r in 0..self.n {
            if out.len() >= MAX {
                return out;
            }
            let a = self.account(r);
            if a != other.account(r) || self.handles.get(r) != other.handles.get(r) {
                out.push(format!(
                    "row {r}: {a} {:?} vs {} {:?}",
                    self.handles.get(r),
                    other.account(r),
                    other.handles.get(r)
                ));
                continue;
            }
            if self.flags[r] != other.flags[r] {
                out.push(format!("{a}: flags {:#b} vs {:#b}", self.flags[r], other.flags[r]));
            }
            for d in Dimension::ALL {
                let i = d.index();
                if !same(self.value[i][r], other.value[i][r]) || !same(self.percentile[i][r], other.percentile[i][r]) {
                    out.push(format!(
                        "{a} {}: value {} pct {} vs value {} pct {}",
                        d.name(),
                        self.value[i][r],
                        self.percentile[i][r],
                        other.value[i][r],
                        other.percentile[i][r]
                    ));
                }
            }
            for k in 0..3 {
                if !same(self.lower[k][r], other.lower[k][r])
                    || !same(self.upper[k][r], other.upper[k][r])
                    || !same(self.count[k][r], other.count[k][r])
                {
                    out.push(format!("{a}: objective {k} bounds or count differ"));
                }
            }
        }
        if self.order != other.order {
            out.push("the objective rankings differ".to_owned());
        }
        let columns = |s: &RunScores| {
            let mut c: Vec<TopicBits> = s
                .topics
                .iter()
                .filter(|t| !t.members.is_empty())
                .map(|t| {
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
                    (t.dimension, t.topic.clone(), t.members.clone(), bits(&t.value), bits(&t.percentile))
                })
                .collect();
            c.sort_by(|a, b| (a.0.index(), &a.1).cmp(&(b.0.index(), &b.1)));
            c
        };
        let (mine, theirs) = (columns(self), columns(other));
        if mine != theirs {
            let names =
                |c: &[TopicBits]| c.iter().map(|t| format!("{}/{}:{}", t.0.name(), t.1, t.2.len())).collect::<Vec<_>>();
            out.push(format!("topic columns differ: {:?} vs {:?}", names(&mine), names(&theirs)));
        }
        out.truncate(MAX);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lift_proto::ingest::v1::AccountRef;
    use lift_proto::scoring::v1 as spb;

    /// An account as scoring would export it; percentiles are filled in by `full`.
    fn account(id: &str, v: [f64; 5], topic: Option<(&str, f64)>) -> spb::AccountScores {
        let mut scores: Vec<spb::Score> = (0..5)
            .map(|d| spb::Score {
                dimension: d as i32 + 1,
                value: v[d],
                lower: v[d] / 2.0,
                upper: v[d],
                evidence: spb::Evidence::Sufficient as i32,
                ..Default::default()
            })
            .collect();
        if let Some((t, x)) = topic {
            scores.push(spb::Score { dimension: 1, topic: t.into(), value: x, ..Default::default() });
        }
        spb::AccountScores {
            account: Some(AccountRef { network: "t".into(), id: id.into() }),
            handle: format!("{id}_h"),
            scores,
            ..Default::default()
        }
    }

    /// A full export: every account with percentiles by scoring's rule.
    fn full(accounts: &[spb::AccountScores], run: u64) -> RunScores {
        let mut accounts = accounts.to_vec();
        for d in 0..5 {
            let vals: Vec<f64> = accounts.iter().map(|a| a.scores[d].value).collect();
            for (a, p) in accounts.iter_mut().zip(percentiles_of(&vals)) {
                a.scores[d].percentile = p;
            }
        }
        let topic_vals: Vec<f64> = accounts.iter().filter_map(|a| a.scores.get(5).map(|s| s.value)).collect();
        let mut tp = percentiles_of(&topic_vals).into_iter();
        for a in &mut accounts {
            if let Some(s) = a.scores.get_mut(5) {
                s.percentile = tp.next().unwrap_or(0.0);
            }
        }
        let mut b = Builder::default();
        for a in &accounts {
            b.add(a);
        }
        b.finish_run(("m".into(), run * 10), run).unwrap()
    }

    /// Pins that applying a run's changed accounts (changed values, a topic
    /// joined and left, accounts inserted before, between and after the old
    /// ones) gives the same snapshot as loading the new run in full.
    #[test]
    fn applied_delta_equals_full_load() {
        let v1: Vec<spb::AccountScores> = (0..40)
            .map(|i| {
                let x = f64::from((i * 37) % 23);
                account(
                    &format!("a{i:02}"),
                    [x, 50.0 - x, x / 2.0, x * 1.5, 100.0],
                    (i % 3 == 0).then_some(("food", x)),
                )
            })
            .collect();
        let base = full(&v1, 1);
        // The new run: three accounts change, one leaves its topic, one joins, three are new.
        let mut changed = vec![
            account("a05", [22.0, 1.0, 3.0, 4.0, 90.0], Some(("food", 7.0))),
            account("a06", [0.0, 0.0, 0.0, 0.0, 100.0], None),
            account("a12", [9.0, 9.0, 9.0, 9.0, 100.0], None),
            account("a00-new", [5.0, 5.0, 5.0, 5.0, 100.0], Some(("music", 2.0))),
            account("a15x", [30.0, 2.0, 1.0, 0.5, 100.0], None),
            account("zz", [1.0, 1.0, 1.0, 1.0, 100.0], Some(("food", 1.0))),
        ];
        let mut v2 = v1;
        for c in &changed {
            match v2.iter_mut().find(|a| a.account == c.account) {
                Some(a) => *a = c.clone(),
                None => v2.push(c.clone()),
            }
        }
        v2.sort_by(|a, b| a.account.as_ref().map(|r| &r.id).cmp(&b.account.as_ref().map(|r| &r.id)));
        // "music" is its own topic population: compute percentiles per topic for the full load.
        let expected = {
            let mut b = Builder::default();
            let mut by_topic: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, a) in v2.iter().enumerate() {
                if let Some(s) = a.scores.get(5) {
                    by_topic.entry(s.topic.clone()).or_default().push(i);
                }
            }
            let mut v2p = v2.clone();
            for d in 0..5 {
                let vals: Vec<f64> = v2.iter().map(|a| a.scores[d].value).collect();
                for (a, p) in v2p.iter_mut().zip(percentiles_of(&vals)) {
                    a.scores[d].percentile = p;
                }
            }
            for rows in by_topic.values() {
                let vals: Vec<f64> = rows.iter().map(|&i| v2[i].scores[5].value).collect();
                for (&i, p) in rows.iter().zip(percentiles_of(&vals)) {
                    v2p[i].scores[5].percentile = p;
                }
            }
            for a in &v2p {
                b.add(a);
            }
            b.finish_run(("m".into(), 20), 2).unwrap()
        };
        let mut b = Builder::default();
        changed.reverse(); // order of arrival does not matter
        for c in &changed {
            b.add(c);
        }
        let patched = b.apply_to(&base, ("m".into(), 20), 2).unwrap();
        assert_eq!(patched.differences(&expected), Vec::<String>::new());
        assert!(patched.is_delta() && patched.received() == 6);
        // And an empty delta is the same run again.
        let same = Builder::default().apply_to(&expected, ("m".into(), 30), 3).unwrap();
        assert_eq!(same.len(), expected.len());
        assert_eq!(same.order, expected.order);
    }
}
