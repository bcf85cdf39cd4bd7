//! A report kept up to date event by event: the builder fed in the report's
//! windows ([`ReportBuilder::feed`]), what a finished report needs without the
//! builder ([`ReportSummary`]), and the serde helper that stores maps keyed by
//! accounts as lists of pairs (JSON keys must be strings).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Day, ReportBuilder, Totals};
use crate::account::AccountId;
use crate::campaign::{Report, welch};
use crate::event::{EventKind, LedgerEntry};

impl ReportBuilder {
    /// Observes `e` if the report reads it: social activity (posts,
    /// engagements, follows) up to the latest member's start, outcomes
    /// (clicks, page sessions, conversions) after the earliest's. Feeding the
    /// whole ledger in offset order gives the same report as reading those two
    /// ranges one after the other ([`Self::reads`]).
    pub fn feed(&mut self, e: &LedgerEntry) {
        if self.reads(e.offset, e.event.kind()) {
            self.observe(e);
        }
    }

    /// Whether the report reads an event of `kind` at `offset`.
    pub fn reads(&self, offset: u64, kind: EventKind) -> bool {
        match kind {
            EventKind::Post | EventKind::Engagement | EventKind::Follow => offset <= self.last_start,
            EventKind::LinkClick | EventKind::PageSession | EventKind::Conversion => offset > self.first_start,
            _ => false,
        }
    }

    /// The earliest and latest member start (see [`ReportBuilder`]): social
    /// activity is read up to the latest, outcomes after the earliest.
    pub fn start_range(&self) -> (u64, u64) {
        (self.first_start, self.last_start)
    }

    pub fn campaign_id(&self) -> &str {
        &self.campaign_id
    }

    /// Highest offset observed so far (0 before any).
    pub fn head_offset(&self) -> u64 {
        self.head
    }
}

/// A report without its lift interval: everything [`Report`] holds, with the
/// per-creator lift outcomes instead of the estimate, so the interval is
/// computed at the confidence asked for when the report is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportSummary {
    pub totals: Totals,
    #[serde(with = "pairs")]
    pub per_creator: BTreeMap<AccountId, Totals>,
    pub daily: Vec<(i64, Day)>,
    /// Highest offset observed.
    pub head: u64,
    /// Orders by each treated (then held-out) creator's pre-campaign audience.
    pub treated_outcomes: Vec<f64>,
    pub control_outcomes: Vec<f64>,
    /// Offers and controls the report covers (0 in summaries written before
    /// it was recorded).
    #[serde(default)]
    pub members: u64,
}

impl ReportSummary {
    pub fn report(self, confidence: f64) -> Report {
        Report {
            lift: welch(&self.treated_outcomes, &self.control_outcomes, confidence),
            totals: self.totals,
            per_creator: self.per_creator,
            daily: self.daily,
            head: self.head,
        }
    }
}

/// Serde for maps as lists of `(key, value)` pairs.
pub(super) mod pairs {
    use serde::de::{Deserialize, Deserializer};
    use serde::ser::Serializer;

    pub(in crate::campaign) fn serialize<'a, S, M, K, V>(m: &'a M, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        &'a M: IntoIterator<Item = (&'a K, &'a V)>,
        K: serde::Serialize + 'a,
        V: serde::Serialize + 'a,
    {
        s.collect_seq(m)
    }

    pub(in crate::campaign) fn deserialize<'de, D, M, K, V>(d: D) -> Result<M, D::Error>
    where
        D: Deserializer<'de>,
        M: FromIterator<(K, V)>,
        K: Deserialize<'de>,
        V: Deserialize<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}
