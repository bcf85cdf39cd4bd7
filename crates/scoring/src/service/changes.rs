//! Which accounts each published run changed, so `ExportScores` can send a
//! reader only what moved since the run it already holds.
//!
//! An account *changed* between two runs when anything `ExportScores` sends
//! for it differs — values, bounds, evidence, handle, raw counts, topic
//! scores, gaming flags — except two things that move for nearly everyone on
//! every run: percentiles (a reader recomputes them from the values) and the
//! raw PageRank figures. Accounts new in the later run changed.
//!
//! The log keeps the changes of recent runs, each relative to the run
//! published before it, up to a bound on the node ids held; a reader further
//! behind (or across a model change or a restart) gets a full export.

use std::collections::{BTreeSet, VecDeque};

use crate::engine::{Node, RawMetrics, Snapshot};

/// Most node ids the log holds over all its runs (4 bytes each).
const MAX_NODES: usize = 8 << 20;
/// Most runs the log holds.
const MAX_RUNS: usize = 1024;

#[derive(Debug)]
struct Entry {
    /// The run the changes are relative to.
    prev: u64,
    run: u64,
    nodes: Vec<Node>,
}

/// Recent runs' changed accounts, oldest first, each relative to the one before.
#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    entries: VecDeque<Entry>,
    held: usize,
}

impl ChangeLog {
    /// Records that `run` changed `nodes` relative to `prev`. A `prev` that is
    /// not the latest recorded run starts the log afresh.
    pub(crate) fn record(&mut self, prev: u64, run: u64, nodes: Vec<Node>) {
        if self.entries.back().is_some_and(|e| e.run != prev) {
            self.clear();
        }
        self.held += nodes.len();
        self.entries.push_back(Entry { prev, run, nodes });
        while self.entries.len() > MAX_RUNS || (self.held > MAX_NODES && self.entries.len() > 1) {
            if let Some(e) = self.entries.pop_front() {
                self.held -= e.nodes.len();
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.held = 0;
    }

    /// The nodes changed after run `since` up to run `until`, ascending; `None`
    /// when the log does not reach back to `since` or does not end at `until`.
    pub(crate) fn since(&self, since: u64, until: u64) -> Option<Vec<Node>> {
        if since == until {
            return Some(Vec::new());
        }
        if self.entries.back()?.run != until {
            return None;
        }
        let start = self.entries.iter().position(|e| e.prev == since)?;
        let mut out: BTreeSet<Node> = BTreeSet::new();
        let mut nodes: Vec<Node> = Vec::new();
        let tail = self.entries.range(start..);
        if self.entries.len() - start == 1 {
            // The common case, a reader one run behind: already sorted.
            nodes.extend(tail.flat_map(|e| e.nodes.iter().copied()));
            return Some(nodes);
        }
        for e in tail {
            out.extend(e.nodes.iter().copied());
        }
        Some(out.into_iter().collect())
    }
}

fn without_pagerank(r: &RawMetrics) -> RawMetrics {
    RawMetrics { pagerank: 0.0, relative_pagerank: 0.0, ..*r }
}

/// The nodes of `next` whose exported scores differ from `prev`'s (see the
/// module docs), ascending. `handle_changed` lists nodes whose handle changed.
pub(crate) fn changed(prev: &Snapshot, next: &Snapshot, handle_changed: &[Node]) -> Vec<Node> {
    let n = next.n;
    let mut mark = vec![false; n];
    for (i, m) in mark.iter_mut().enumerate() {
        *m = i >= prev.n
            || next.values.iter().zip(&prev.values).any(|(a, b)| a[i].to_bits() != b[i].to_bits())
            || next.action[i] != prev.action[i]
            || without_pagerank(&next.raw[i]) != without_pagerank(&prev.raw[i]);
    }
    for &h in handle_changed {
        if let Some(m) = mark.get_mut(h as usize) {
            *m = true;
        }
    }
    // Topic scores: members whose value differs, joined or left.
    for t in &next.topics {
        let old = prev.topic(&t.name);
        for (k, &node) in t.members.iter().enumerate() {
            let same = old
                .and_then(|o| o.position(node).map(|j| (o, j)))
                .is_some_and(|(o, j)| (0..2).all(|d| o.values[d][j].to_bits() == t.values[d][k].to_bits()));
            if !same && let Some(m) = mark.get_mut(node as usize) {
                *m = true;
            }
        }
    }
    for o in &prev.topics {
        let new = next.topic(&o.name);
        for &node in &o.members {
            if new.and_then(|t| t.position(node)).is_none()
                && let Some(m) = mark.get_mut(node as usize)
            {
                *m = true;
            }
        }
    }
    // Gaming flags: few, so compare each flagged account's list.
    let flagged: BTreeSet<Node> =
        prev.flags_by_account.iter().chain(&next.flags_by_account).map(|(node, _)| *node).collect();
    for node in flagged {
        if !prev.flags_of(node).eq(next.flags_of(node))
            && let Some(m) = mark.get_mut(node as usize)
        {
            *m = true;
        }
    }
    mark.iter().enumerate().filter(|(_, m)| **m).map(|(i, _)| i as Node).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the log's chaining: unions across runs, a reader one run behind,
    /// and a full export (None) for runs it does not reach back to.
    #[test]
    fn log_chains_runs() {
        let mut log = ChangeLog::default();
        log.record(1, 2, vec![1, 5]);
        log.record(2, 3, vec![0, 5, 9]);
        assert_eq!(log.since(2, 3), Some(vec![0, 5, 9]));
        assert_eq!(log.since(1, 3), Some(vec![0, 1, 5, 9]));
        assert_eq!(log.since(3, 3), Some(vec![]));
        assert_eq!(log.since(0, 3), None);
        assert_eq!(log.since(1, 2), None, "the log ends at run 3");
        // A gap (a restart republished run 7 after 3) starts afresh.
        log.record(7, 8, vec![4]);
        assert_eq!(log.since(1, 8), None);
        assert_eq!(log.since(7, 8), Some(vec![4]));
    }
}
