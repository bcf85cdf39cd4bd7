//! Building a run's columns: [`Builder`] collects scoring's `AccountScores`
//! messages as rows and lays them out as a [`RunScores`].

use std::collections::HashMap;

use lift_domain::campaign as rules;
use lift_domain::{AccountId, Dimension};
use lift_proto::convert::prelude::*;
use lift_proto::scoring::v1 as spb;

use super::{NO_DATA_SHIFT, OBJECTIVES, Run, RunScores, SUFFICIENT_SHIFT, Strings, TopicColumn, objective_index};
use crate::Error;

/// One overall score of one account while loading.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Overall {
    pub(super) value: f64,
    pub(super) percentile: f64,
    pub(super) lower: f64,
    pub(super) upper: f64,
    pub(super) present: bool,
    pub(super) sufficient: bool,
    pub(super) no_data: bool,
    pub(super) count: f64,
}

/// One account as received, before it is laid out in columns.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) account: AccountId,
    pub(super) handle: String,
    pub(super) overall: [Overall; 5],
    /// (topic column, value, percentile); a later entry for the same column wins.
    pub(super) topics: Vec<(u32, f64, f64)>,
}

fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// Collects scoring's pages into a [`RunScores`].
#[derive(Debug, Default)]
pub(crate) struct Builder {
    pub(super) rows: Vec<Row>,
    pub(super) topic_ids: HashMap<(Dimension, String), u32>,
    pub(super) topic_keys: Vec<(Dimension, String)>,
}

impl Row {
    /// The row's presence and evidence bits, as every snapshot row stores them
    /// (full loads and delta patches alike).
    pub(super) fn flags(&self) -> u16 {
        let mut flags = 0u16;
        for d in Dimension::ALL {
            let o = &self.overall[d.index()];
            flags |= u16::from(o.present) << d.index();
            flags |= u16::from(o.present && o.sufficient) << (SUFFICIENT_SHIFT as usize + d.index());
            flags |= u16::from(o.present && o.no_data) << (NO_DATA_SHIFT as usize + d.index());
        }
        flags
    }
}

impl Builder {
    /// Adds one account as `ScoreCard::from_proto` reads it: skipped without an
    /// id; unknown dimensions ignored; topics lower-cased; a repeated
    /// (dimension, topic) keeps the last entry.
    pub(crate) fn add(&mut self, a: &spb::AccountScores) {
        let Some(r) = a.account.as_ref().filter(|r| !r.network.is_empty() && !r.id.is_empty()) else { return };
        let mut row = Row {
            account: AccountId::new(r.network.clone(), r.id.clone()),
            handle: a.handle.clone(),
            overall: [Overall::default(); 5],
            topics: Vec::new(),
        };
        for s in &a.scores {
            let Some(d) = Dimension::from_proto(s.dimension) else { continue };
            let (value, percentile) = (finite_or_zero(s.value), finite_or_zero(s.percentile));
            if s.topic.is_empty() {
                let count = OBJECTIVES
                    .into_iter()
                    .find(|o| o.primary_dimension() == d)
                    .and_then(|o| rules::outcome_raw_keys(o).iter().find_map(|k| s.raw.get(*k).copied()))
                    .unwrap_or(f64::NAN);
                row.overall[d.index()] = Overall {
                    value,
                    percentile,
                    lower: finite_or_zero(s.lower),
                    upper: finite_or_zero(s.upper),
                    present: true,
                    sufficient: s.evidence != spb::Evidence::Insufficient as i32
                        && s.evidence != spb::Evidence::NoData as i32,
                    no_data: s.evidence == spb::Evidence::NoData as i32,
                    count,
                };
            } else {
                let key = (d, s.topic.to_lowercase());
                let next = self.topic_keys.len() as u32;
                let id = *self.topic_ids.entry(key.clone()).or_insert_with(|| {
                    self.topic_keys.push(key);
                    next
                });
                row.topics.push((id, value, percentile));
            }
        }
        self.rows.push(row);
    }

    pub(crate) fn finish_run(self, run: Run, run_id: u64) -> Result<RunScores, Error> {
        let mut rows = self.rows;
        // Stable, so of an account sent twice the first copy is kept (as the scan does).
        rows.sort_by(|a, b| a.account.cmp(&b.account));
        rows.dedup_by(|later, first| later.account == first.account);
        let n = rows.len();
        if u32::try_from(n).is_err() {
            return Err(Error::scoring(tonic::Status::resource_exhausted(
                "more than 2^32 accounts; too many to cache",
            )));
        }
        let mut network_ids: HashMap<String, u32> = HashMap::new();
        let mut snap = RunScores {
            model_version: run.0,
            as_of: run.1,
            run_id,
            received: n as u64,
            from_delta: false,
            n,
            networks: Vec::new(),
            network: Vec::with_capacity(n),
            ids: Strings::default(),
            handles: Strings::default(),
            value: std::array::from_fn(|_| Vec::with_capacity(n)),
            percentile: std::array::from_fn(|_| Vec::with_capacity(n)),
            lower: std::array::from_fn(|_| Vec::with_capacity(n)),
            upper: std::array::from_fn(|_| Vec::with_capacity(n)),
            count: std::array::from_fn(|_| Vec::with_capacity(n)),
            flags: Vec::with_capacity(n),
            topics: self
                .topic_keys
                .into_iter()
                .map(|(dimension, topic)| TopicColumn {
                    dimension,
                    topic,
                    members: Vec::new(),
                    value: Vec::new(),
                    percentile: Vec::new(),
                })
                .collect(),
            order: Default::default(),
        };
        let mut latest: HashMap<u32, (f64, f64)> = HashMap::new();
        for (i, row) in rows.into_iter().enumerate() {
            push_row(&mut snap, &mut network_ids, &row)?;
            for d in Dimension::ALL {
                snap.percentile[d.index()].push(row.overall[d.index()].percentile);
            }
            latest.clear();
            for &(t, v, p) in &row.topics {
                latest.insert(t, (v, p));
            }
            let mut mine: Vec<_> = latest.iter().map(|(&t, &vp)| (t, vp)).collect();
            mine.sort_unstable_by_key(|(t, _)| *t);
            for (t, (v, p)) in mine {
                let col = &mut snap.topics[t as usize];
                col.members.push(i as u32);
                col.value.push(v);
                col.percentile.push(p);
            }
        }
        for o in OBJECTIVES {
            let mut order: Vec<u32> = (0..n as u32).collect();
            let keys: Vec<(f64, f64)> = (0..n).map(|r| snap.key(o, r)).collect();
            // Best key first; equal keys by account id, which is row order.
            order.sort_unstable_by(|&a, &b| {
                let (ka, kb) = (keys[a as usize], keys[b as usize]);
                kb.0.total_cmp(&ka.0).then(kb.1.total_cmp(&ka.1)).then(a.cmp(&b))
            });
            snap.order[objective_index(o)] = order;
        }
        for t in &mut snap.topics {
            t.members.shrink_to_fit();
            t.value.shrink_to_fit();
            t.percentile.shrink_to_fit();
        }
        Ok(snap)
    }
}

/// Appends a received row to `snap` (all but its percentiles, which a full
/// load takes as sent and a delta recomputes).
pub(super) fn push_row(snap: &mut RunScores, network_ids: &mut HashMap<String, u32>, row: &Row) -> Result<(), Error> {
    let net = match network_ids.get(&row.account.network) {
        Some(&k) => k,
        None => {
            let k = snap.networks.len() as u32;
            snap.networks.push(row.account.network.clone());
            network_ids.insert(row.account.network.clone(), k);
            k
        }
    };
    snap.network.push(net);
    snap.ids.push(&row.account.id)?;
    snap.handles.push(&row.handle)?;
    for d in Dimension::ALL {
        snap.value[d.index()].push(row.overall[d.index()].value);
    }
    snap.flags.push(row.flags());
    for o in OBJECTIVES {
        let (k, e) = (objective_index(o), &row.overall[o.primary_dimension().index()]);
        snap.lower[k].push(e.lower);
        snap.upper[k].push(e.upper);
        snap.count[k].push(if e.present { e.count } else { f64::NAN });
    }
    Ok(())
}
