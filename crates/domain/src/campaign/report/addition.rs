//! Members added to a report that is already following the ledger: a standing
//! program's new perks and control places.
//!
//! [`ReportBuilder::addition`] starts an [`Addition`] for the members the
//! builder does not know; fed the ledger from the start up to the offset the
//! builder has read (`through`), it rebuilds exactly what a builder knowing
//! them from the start would hold about them — their audiences (social
//! activity up to each one's start), their posts, their audiences' orders after
//! their starts — without touching what the builder holds about anyone else.
//! [`ReportBuilder::apply`] merges it.
//!
//! The outcomes credited to a new member were counted already while the
//! builder followed the ledger (it counts credited outcomes of owners it does
//! not know after its earliest start). An addition is exact when nothing read
//! up to `through` would have been counted differently with the new members
//! known, and the addition checks that as it reads: an outcome credited to a
//! new member at or before its start, or an outcome that names a new member's
//! link or code without ingestion crediting an owner (an event that reached the
//! ledger before the link was registered), or a new member starting before the
//! builder's earliest start. Any of these makes [`ReportBuilder::apply`] refuse
//! with the reason, and the caller builds the report again from the start —
//! never a report that counts something twice or leaves it out.

use std::collections::{HashMap, HashSet};

use super::{IssuedOffer, ReportBuilder};
use crate::account::AccountId;
use crate::event::{AttributionStatus, EventBody, LedgerEntry};

/// Which side of the comparison a member is on.
#[derive(Debug, Clone, PartialEq)]
pub enum Arm {
    /// Offered the perk.
    Offered(IssuedOffer),
    /// Held out as a control: never offered.
    HeldOut(AccountId),
}

/// An offer or control with its start: the ledger offset its place in the
/// campaign was decided at (its audience is read up to it, its outcomes after).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub arm: Arm,
    pub start: u64,
}

impl Member {
    pub fn account(&self) -> &AccountId {
        match &self.arm {
            Arm::Offered(o) => &o.account,
            Arm::HeldOut(a) => a,
        }
    }
}

/// New members being read into a report (see the module's documentation).
#[derive(Debug)]
pub struct Addition {
    campaign_id: String,
    members: Vec<Member>,
    starts: HashMap<AccountId, u64>,
    /// The new members' links and codes.
    links: HashSet<String>,
    /// The builder's earliest start (outcomes are read after it).
    first_start: u64,
    /// The latest new start (social activity is read up to it).
    last_start: u64,
    through: u64,
    post_author: HashMap<String, AccountId>,
    audience: HashMap<AccountId, HashSet<AccountId>>,
    audience_of: HashMap<AccountId, Vec<AccountId>>,
    audience_orders: HashMap<AccountId, HashSet<String>>,
    /// Orders reported after the earliest start, as the builder saw them.
    orders: HashSet<String>,
    head: u64,
    /// Why the addition cannot be merged, once found.
    conflict: Option<String>,
}

impl ReportBuilder {
    /// Starts adding the `members` this builder does not know yet; the
    /// builder has read the ledger up to `through` (inclusive). Feed the
    /// addition every event the report reads ([`ReportBuilder::KINDS`]) from
    /// the start up to `through`, in offset order, then [`Self::apply`] it.
    pub fn addition(&self, members: &[Member], through: u64) -> Addition {
        let mut new: Vec<Member> = Vec::new();
        let mut starts = HashMap::new();
        for m in members {
            if self.starts.contains_key(m.account()) || starts.contains_key(m.account()) {
                continue;
            }
            starts.insert(m.account().clone(), m.start);
            new.push(m.clone());
        }
        let links = new
            .iter()
            .filter_map(|m| match &m.arm {
                Arm::Offered(o) => Some([o.link.clone(), o.code.clone()]),
                Arm::HeldOut(_) => None,
            })
            .flatten()
            .filter(|l| !l.is_empty())
            .collect();
        let conflict = new.iter().find(|m| m.start < self.first_start).map(|m| {
            format!(
                "{} starts at offset {}, before the report's earliest start {}",
                m.account(),
                m.start,
                self.first_start
            )
        });
        Addition {
            campaign_id: self.campaign_id.clone(),
            last_start: new.iter().map(|m| m.start).max().unwrap_or(0),
            audience: starts.keys().map(|a| (a.clone(), HashSet::new())).collect(),
            members: new,
            starts,
            links,
            first_start: self.first_start,
            through,
            post_author: HashMap::new(),
            audience_of: HashMap::new(),
            audience_orders: HashMap::new(),
            orders: HashSet::new(),
            head: 0,
            conflict,
        }
    }

    /// Merges `a` (fed up to its `through`): the builder then holds what a
    /// builder knowing every member from the start would. `Err` with the
    /// reason, changing nothing, when that cannot be had from this builder
    /// (rebuild it from the start with every member instead).
    pub fn apply(&mut self, a: Addition) -> Result<(), String> {
        if let Some(why) = a.conflict {
            return Err(why);
        }
        for m in &a.members {
            self.enroll(m);
        }
        for (creator, members) in a.audience {
            self.audience.insert(creator, members);
        }
        self.post_author.extend(a.post_author);
        for (member, creators) in a.audience_of {
            self.audience_of.entry(member).or_default().extend(creators);
        }
        for (creator, orders) in a.audience_orders {
            self.audience_orders.entry(creator).or_default().extend(orders);
        }
        self.head = self.head.max(a.head);
        Ok(())
    }
}

impl Addition {
    /// No member to add: nothing to read.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members it adds.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    fn before_start(&self, creator: &AccountId, offset: u64) -> bool {
        self.starts.get(creator).is_some_and(|s| offset <= *s)
    }

    /// Reads `e` (events after `through` are ignored: the builder reads them).
    pub fn feed(&mut self, e: &LedgerEntry) {
        let at = e.offset;
        if at > self.through || self.is_empty() {
            return;
        }
        match &e.event.body {
            EventBody::Post(_) | EventBody::Engagement(_) | EventBody::Follow(_) if at <= self.last_start => {
                // The new members' starts make the builder read this event now.
                self.head = self.head.max(at);
            }
            _ => {}
        }
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
            EventBody::LinkClick(c) if !c.counted() => {}
            EventBody::LinkClick(c) => self.check(e, Some(&c.link)),
            EventBody::PageSession(s) => self.check(e, s.link.as_deref()),
            EventBody::Conversion(c) => {
                if at <= self.first_start || !self.orders.insert(c.order_id.clone()) {
                    return;
                }
                if let Some(customer) = &c.customer
                    && let Some(creators) = self.audience_of.get(customer)
                {
                    for cr in creators {
                        if self.starts.get(cr).is_some_and(|s| at > *s) {
                            self.audience_orders.entry(cr.clone()).or_default().insert(c.order_id.clone());
                        }
                    }
                }
                if e.attribution.as_ref().is_some_and(|a| a.campaign_id == self.campaign_id) {
                    self.check(e, c.code.as_deref());
                }
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

    /// Notes a conflict if the builder, not knowing the new members, counted
    /// outcome `e` (naming `link`) differently from a builder that knew them.
    fn check(&mut self, e: &LedgerEntry, link: Option<&str>) {
        if self.conflict.is_some() || e.offset <= self.first_start {
            return;
        }
        let credited = e
            .attribution
            .as_ref()
            .filter(|a| a.campaign_id == self.campaign_id && a.status != AttributionStatus::Unattributed);
        if let Some(owner) = credited.and_then(|a| a.owner.as_ref()) {
            if self.before_start(owner, e.offset) {
                self.conflict =
                    Some(format!("an outcome at offset {} is credited to {owner} before its start", e.offset));
            }
            return;
        }
        let named = credited.map(|a| a.link.as_str()).into_iter().chain(link);
        if let Some(l) = named.into_iter().find(|l| self.links.contains(*l)) {
            self.conflict = Some(format!(
                "an outcome at offset {} names the new link or code {l} without ingestion crediting its owner",
                e.offset
            ));
        }
    }
}
