//! Report tallies: outcomes attributed to a campaign's creators, fed from the
//! ledger in offset order, and the audiences the lift estimate compares.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::Report;
use crate::account::AccountId;
use crate::event::{AttributionStatus, EventBody, EventKind, LedgerEntry};

mod addition;
mod saved;
#[cfg(test)]
mod tests;

pub use addition::{Addition, Arm, Member};
pub use saved::ReportSummary;

/// Outcome counts for one creator or a whole campaign.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Totals {
    pub clicks: u64,
    pub unique_visitors: u64,
    pub sessions: u64,
    pub bounced: u64,
    pub conversions: u64,
    pub value_minor: i64,
    pub code_without_click: u64,
    pub cost: i64,
}

impl Totals {
    pub fn bounce_rate(&self) -> f64 {
        if self.sessions == 0 { 0.0 } else { self.bounced as f64 / self.sessions as f64 }
    }

    /// Rounded to the nearest minor unit; 0 when there are no conversions.
    pub fn cost_per_conversion(&self) -> i64 {
        if self.conversions == 0 { 0 } else { ((self.cost as f64) / (self.conversions as f64)).round() as i64 }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally {
    totals: Totals,
    visitors: HashSet<String>,
}

impl Tally {
    fn totals(&self) -> Totals {
        Totals { unique_visitors: self.visitors.len() as u64, ..self.totals.clone() }
    }
}

/// One issued offer, as the report needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedOffer {
    pub account: AccountId,
    pub link: String,
    pub code: String,
    pub cost: i64,
}

/// A campaign report built by feeding it the ledger in offset order.
///
/// Outcomes: clicks, page sessions and conversions that ingestion attributed
/// to this campaign (or that carry one of its links, for sessions ingestion
/// leaves unattributed), per owning creator. A conversion counts once per
/// order id; `code_without_click` counts the conversions that came only
/// through a code (the coupon-leak signal) and is a subset of `conversions`;
/// value sums conversions in the campaign's currency only.
///
/// Lift: each treated or held-out portfolio creator's *audience* is the set of
/// accounts that followed or engaged with them before the offers went out (so
/// the offer cannot change who is counted); the per-creator outcome is the
/// number of orders placed after the offers by customers in that audience,
/// whatever link or code they used. Treated and held-out members were split at
/// random, so the difference of their means estimates the effect of an offer.
///
/// Every member (offer or control) has its own *start*: the ledger offset its
/// treatment (or, for a control, its place in the control group) was decided
/// at. One-shot campaigns give every member the campaign's offers offset; a
/// standing program's members start at the ledger head of the evaluation
/// that granted them. A member's audience is read up to its own start and its
/// outcomes (clicks, sessions, conversions credited to it, and its audience's
/// orders) only after it. An order counts at its first report after the
/// campaign's earliest start (`first_start`), so an order placed before a
/// member's start and reported again after it is not that member's outcome.
/// Outcomes credited by ingestion to an owner the builder does not know yet
/// (a standing program's member granted since the builder last learned its
/// members) count after `first_start`; [`ReportBuilder::addition`] checks that
/// this agreed with the owner's own start when the member is added.
///
/// The builder serialises (serde) so that a consumer of the ledger can keep it
/// between events and across restarts (`saved`).
#[derive(Debug, Serialize, Deserialize)]
pub struct ReportBuilder {
    campaign_id: String,
    currency: String,
    /// The earliest and latest member start: the ledger before `last_start`
    /// holds social activity the report reads, the ledger after `first_start`
    /// outcomes.
    first_start: u64,
    last_start: u64,
    #[serde(with = "saved::pairs")]
    starts: HashMap<AccountId, u64>,
    by_link: HashMap<String, AccountId>,
    treated: BTreeSet<AccountId>,
    controls: BTreeSet<AccountId>,
    #[serde(with = "saved::pairs")]
    per_creator: BTreeMap<AccountId, Tally>,
    total: Tally,
    orders: HashSet<String>,
    visitor_owner: HashMap<String, AccountId>,
    post_author: HashMap<String, AccountId>,
    #[serde(with = "saved::pairs")]
    audience_of: HashMap<AccountId, Vec<AccountId>>,
    #[serde(with = "saved::pairs")]
    audience: HashMap<AccountId, HashSet<AccountId>>,
    #[serde(with = "saved::pairs")]
    audience_orders: HashMap<AccountId, HashSet<String>>,
    /// Outcomes per UTC day of the event (days since 1970-01-01).
    daily: BTreeMap<i64, Day>,
    head: u64,
}

/// A campaign's outcomes on one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Day {
    pub clicks: u64,
    pub sessions: u64,
    pub bounced: u64,
    pub conversions: u64,
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (proleptic Gregorian calendar).
pub fn date_of_day(days: i64) -> String {
    let (y, m, d) = crate::time::civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

impl ReportBuilder {
    /// A one-shot campaign's report: every offer and control starts at
    /// `offers_offset`, the ledger head when the offers were issued.
    pub fn new(
        campaign_id: &str,
        currency: &str,
        offers: &[IssuedOffer],
        controls: &BTreeSet<AccountId>,
        offers_offset: u64,
    ) -> Self {
        let members: Vec<Member> = offers
            .iter()
            .map(|o| Arm::Offered(o.clone()))
            .chain(controls.iter().map(|a| Arm::HeldOut(a.clone())))
            .map(|arm| Member { arm, start: offers_offset })
            .collect();
        Self::with_members(campaign_id, currency, &members, offers_offset)
    }

    /// A report whose members start at their own offsets. `offers_offset` is
    /// the campaign's (its first offer's); the earliest start is the smaller
    /// of it and every member's start. A member listed twice counts once (its
    /// first listing).
    pub fn with_members(campaign_id: &str, currency: &str, members: &[Member], offers_offset: u64) -> Self {
        let mut b = Self {
            campaign_id: campaign_id.to_owned(),
            currency: currency.to_owned(),
            first_start: offers_offset,
            last_start: offers_offset,
            starts: HashMap::new(),
            by_link: HashMap::new(),
            treated: BTreeSet::new(),
            controls: BTreeSet::new(),
            per_creator: BTreeMap::new(),
            total: Tally::default(),
            orders: HashSet::new(),
            visitor_owner: HashMap::new(),
            post_author: HashMap::new(),
            audience_of: HashMap::new(),
            audience: HashMap::new(),
            audience_orders: HashMap::new(),
            daily: BTreeMap::new(),
            head: 0,
        };
        for m in members {
            b.first_start = b.first_start.min(m.start);
            b.enroll(m);
        }
        b
    }

    /// Adds `m` (not known yet) to the members, with an empty audience.
    fn enroll(&mut self, m: &Member) {
        let account = m.account();
        if self.starts.contains_key(account) {
            return;
        }
        self.starts.insert(account.clone(), m.start);
        self.last_start = self.last_start.max(m.start);
        self.audience.insert(account.clone(), HashSet::new());
        match &m.arm {
            Arm::Offered(o) => {
                let t: &mut Tally = self.per_creator.entry(o.account.clone()).or_default();
                t.totals.cost = t.totals.cost.saturating_add(o.cost);
                self.total.totals.cost = self.total.totals.cost.saturating_add(o.cost);
                for l in [&o.link, &o.code] {
                    if !l.is_empty() {
                        self.by_link.insert(l.clone(), o.account.clone());
                    }
                }
                self.treated.insert(o.account.clone());
            }
            Arm::HeldOut(a) => {
                self.controls.insert(a.clone());
            }
        }
    }

    /// Whether `creator` is a member whose pre-treatment window holds `offset`.
    fn before_start(&self, creator: &AccountId, offset: u64) -> bool {
        self.starts.get(creator).is_some_and(|s| offset <= *s)
    }

    /// Where `owner`'s outcomes start: its own start, or the campaign's
    /// earliest for an owner the builder does not know.
    fn start_of(&self, owner: &AccountId) -> u64 {
        self.starts.get(owner).copied().unwrap_or(self.first_start)
    }

    /// How many offers and controls the report covers.
    pub fn members(&self) -> usize {
        self.starts.len()
    }

    /// The ledger kinds the report reads.
    pub const KINDS: [EventKind; 6] = [
        EventKind::Post,
        EventKind::Engagement,
        EventKind::Follow,
        EventKind::LinkClick,
        EventKind::PageSession,
        EventKind::Conversion,
    ];

    fn owner(&self, e: &LedgerEntry, link: Option<&str>) -> Option<AccountId> {
        if let Some(a) = &e.attribution
            && a.campaign_id == self.campaign_id
            && a.status != AttributionStatus::Unattributed
        {
            if let Some(o) = &a.owner {
                return Some(o.clone());
            }
            if let Some(o) = self.by_link.get(&a.link) {
                return Some(o.clone());
            }
        }
        link.and_then(|l| self.by_link.get(l)).cloned()
    }

    fn tally(&mut self, owner: &AccountId) -> [&mut Tally; 2] {
        let per = self.per_creator.entry(owner.clone()).or_default();
        [per, &mut self.total]
    }

    fn day(&mut self, e: &LedgerEntry) -> &mut Day {
        self.daily.entry(e.event.occurred_at.div_euclid(crate::time::MICROS_PER_DAY)).or_default()
    }

    /// Reads `e` into the report: social activity counts for the members
    /// whose start it precedes (or is), outcomes for the owner it follows.
    pub fn observe(&mut self, e: &LedgerEntry) {
        self.head = self.head.max(e.offset);
        let at = e.offset;
        match &e.event.body {
            EventBody::Post(p) if self.before_start(&p.author, at) => {
                self.post_author.insert(p.post_id.clone(), p.author.clone());
            }
            EventBody::Follow(f) if self.before_start(&f.followee, at) && !f.unfollow => {
                self.add_audience(&f.followee, &f.follower);
            }
            EventBody::Follow(f) if self.before_start(&f.followee, at) => {
                if let Some(s) = self.audience.get_mut(&f.followee) {
                    s.remove(&f.follower);
                }
            }
            EventBody::Engagement(g) => {
                let target =
                    g.target.clone().or_else(|| g.post_id.as_ref().and_then(|p| self.post_author.get(p)).cloned());
                if let Some(t) = target
                    && self.before_start(&t, at)
                {
                    self.add_audience(&t, &g.actor);
                }
            }
            // Bots, prefetches and bursts stay on the ledger but are not clicks.
            EventBody::LinkClick(c) if !c.counted() => {}
            EventBody::LinkClick(c) => {
                if let Some(owner) = self.owner(e, Some(&c.link))
                    && at > self.start_of(&owner)
                {
                    self.visitor_owner.insert(c.visitor_id.clone(), owner.clone());
                    let visitor = c.visitor_id.clone();
                    for t in self.tally(&owner) {
                        t.totals.clicks += 1;
                        t.visitors.insert(visitor.clone());
                    }
                    self.day(e).clicks += 1;
                }
            }
            EventBody::PageSession(s) => {
                let owner = self.owner(e, s.link.as_deref()).or_else(|| self.visitor_owner.get(&s.visitor_id).cloned());
                if let Some(owner) = owner
                    && at > self.start_of(&owner)
                {
                    for t in self.tally(&owner) {
                        t.totals.sessions += 1;
                        t.totals.bounced += u64::from(s.bounced);
                    }
                    let bounced = u64::from(s.bounced);
                    let day = self.day(e);
                    day.sessions += 1;
                    day.bounced += bounced;
                }
            }
            EventBody::Conversion(c) => {
                if at <= self.first_start || !self.orders.insert(c.order_id.clone()) {
                    return;
                }
                if let Some(customer) = &c.customer
                    && let Some(creators) = self.audience_of.get(customer)
                {
                    for cr in creators {
                        if at > self.start_of(cr) {
                            self.audience_orders.entry(cr.clone()).or_default().insert(c.order_id.clone());
                        }
                    }
                }
                let Some(a) = e.attribution.as_ref().filter(|a| a.campaign_id == self.campaign_id) else {
                    return;
                };
                let leak = match a.status {
                    AttributionStatus::Click => false,
                    AttributionStatus::CodeWithoutClick => true,
                    AttributionStatus::Unattributed => return,
                };
                let Some(owner) = self.owner(e, c.code.as_deref()) else { return };
                if at <= self.start_of(&owner) {
                    return;
                }
                let value = if c.currency.eq_ignore_ascii_case(&self.currency) { c.value_minor } else { 0 };
                for t in self.tally(&owner) {
                    t.totals.conversions += 1;
                    t.totals.value_minor = t.totals.value_minor.saturating_add(value);
                    t.totals.code_without_click += u64::from(leak);
                }
                self.day(e).conversions += 1;
            }
            _ => {}
        }
    }

    fn add_audience(&mut self, creator: &AccountId, member: &AccountId) {
        if let Some(s) = self.audience.get_mut(creator)
            && s.insert(member.clone())
        {
            self.audience_of.entry(member.clone()).or_default().push(creator.clone());
        }
    }

    /// The report as of the events observed so far; `finish` without giving
    /// up the builder, through the same [`ReportSummary`].
    pub fn summary(&self) -> ReportSummary {
        let outcome = |a: &AccountId| self.audience_orders.get(a).map_or(0.0, |o| o.len() as f64);
        ReportSummary {
            totals: self.total.totals(),
            per_creator: self.per_creator.iter().map(|(a, t)| (a.clone(), t.totals())).collect(),
            daily: self.daily.iter().map(|(d, v)| (*d, *v)).collect(),
            head: self.head,
            treated_outcomes: self.treated.iter().map(outcome).collect(),
            control_outcomes: self.controls.iter().map(outcome).collect(),
            members: self.starts.len() as u64,
        }
    }

    pub fn finish(self, confidence: f64) -> Report {
        self.summary().report(confidence)
    }
}
