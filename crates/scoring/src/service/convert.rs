//! Snapshot → wire types.

use lift_domain::Dimension;
use lift_proto::convert::prelude::*;
use lift_proto::scoring::v1 as pb;

use super::{Directory, Published};
use crate::engine::{ActionEstimate, Flag, Node, TopicScores, compute::TOPIC_DIMENSIONS};

fn evidence(a: &ActionEstimate) -> i32 {
    match (a.sufficient, a.observed) {
        (true, _) => pb::Evidence::Sufficient as i32,
        (false, true) => pb::Evidence::Insufficient as i32,
        (false, false) => pb::Evidence::NoData as i32,
    }
}

/// One dimension's overall score. Dimensions without an interval report
/// `lower = upper = value` and an unspecified evidence state.
pub(crate) fn score(p: &Published, n: Node, d: Dimension) -> pb::Score {
    let i = n as usize;
    let s = &p.snap;
    let value = s.values[d.index()][i];
    let (lower, upper, ev) = match d {
        Dimension::Action => {
            let a = s.action[i];
            (a.lower, a.upper, evidence(&a))
        }
        _ => (value, value, pb::Evidence::Unspecified as i32),
    };
    pb::Score {
        dimension: d.to_proto() as i32,
        topic: String::new(),
        value,
        percentile: s.percentiles[d.index()][i],
        lower,
        upper,
        evidence: ev,
        raw: s.raw[i].for_dimension(d).into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

fn topic_scores(t: &TopicScores, n: Node) -> impl Iterator<Item = pb::Score> + '_ {
    t.position(n).into_iter().flat_map(move |i| {
        TOPIC_DIMENSIONS.iter().enumerate().map(move |(k, d)| {
            let value = t.values[k][i];
            pb::Score {
                dimension: d.to_proto() as i32,
                topic: t.name.clone(),
                value,
                percentile: t.percentiles[k][i],
                lower: value,
                upper: value,
                evidence: pb::Evidence::Unspecified as i32,
                raw: Default::default(),
            }
        })
    })
}

pub(crate) fn flag(f: &Flag, dir: &Directory) -> pb::GamingFlag {
    pb::GamingFlag {
        kind: f.kind.name().to_owned(),
        severity: f.severity,
        description: f.description.clone(),
        accounts: f.accounts.iter().filter_map(|&a| dir.ids.get(a as usize)).map(|a| a.to_proto()).collect(),
        event_offsets: f.event_offsets.clone(),
        window_start: Some(lift_proto::convert::to_timestamp(f.window_start)),
        window_end: Some(lift_proto::convert::to_timestamp(f.window_end)),
    }
}

/// Everything known about one scored account.
pub(crate) fn account_scores(p: &Published, dir: &Directory, n: Node) -> pb::AccountScores {
    let s = &p.snap;
    let mut scores: Vec<pb::Score> = Dimension::ALL.iter().map(|&d| score(p, n, d)).collect();
    for t in &s.topics {
        scores.extend(topic_scores(t, n));
    }
    pb::AccountScores {
        account: dir.ids.get(n as usize).map(|a| a.to_proto()),
        handle: dir.handles.get(n as usize).cloned().unwrap_or_default(),
        scores,
        flags: s.flags_of(n).map(|f| flag(f, dir)).collect(),
        model_version: s.model_version.clone(),
        as_of_offset: s.as_of.offset,
        as_of_time: Some(lift_proto::convert::to_timestamp(s.as_of.time)),
        run_id: p.run_id,
    }
}
