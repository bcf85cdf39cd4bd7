//! The incremental state: everything scoring needs from a ledger prefix, in
//! compact columns keyed by dense `u32` ids.
//!
//! `apply` is the only way in, and it is idempotent on offsets (an entry at or
//! below the applied offset is ignored), so replaying a ledger prefix after a
//! restart reproduces the same state exactly. Ids are assigned in order of
//! first appearance, so a state built from a longer prefix extends the ids of a
//! shorter one — explanations rely on that to compare two states.

use std::collections::HashMap;

use lift_domain::event::{AttributionStatus, EngagementKind};
use lift_domain::{AccountId, EventBody, LedgerEntry, Micros};

/// Dense account id inside a `State`.
pub type Node = u32;
/// Marks an absent node or post.
pub const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq)]
pub struct AccountInfo {
    pub id: AccountId,
    pub handle: String,
    pub reported_followers: u64,
    pub created_at: Option<Micros>,
}

/// One engagement: 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngagementRec {
    pub offset: u64,
    pub at: Micros,
    pub actor: Node,
    /// The engaged account as sent; `NONE` means "the author of `post`".
    pub target: Node,
    pub post: u32,
    pub kind: EngagementKind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PostInfo {
    /// `NONE` until the post event itself is seen (an engagement may come first).
    pub author: Node,
    pub at: Micros,
    pub offset: u64,
    pub topics: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FollowRec {
    pub offset: u64,
    pub at: Micros,
    pub follower: Node,
    pub followee: Node,
    pub unfollow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Click,
    Session {
        bounced: bool,
    },
    /// A conversion attributed through a click.
    Conversion,
    /// A conversion carrying the account's code without a click (coupon leak).
    CodeConversion,
}

/// An outcome attributed to the account that owns the link or code.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutcomeRec {
    pub offset: u64,
    pub at: Micros,
    pub owner: Node,
    pub kind: OutcomeKind,
    pub value_minor: i64,
}

/// Everything scoring keeps from a ledger prefix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub accounts: Vec<AccountInfo>,
    index: HashMap<AccountId, Node>,
    pub posts: Vec<PostInfo>,
    post_index: HashMap<String, u32>,
    pub topics: Vec<String>,
    topic_index: HashMap<String, u16>,
    pub engagements: Vec<EngagementRec>,
    pub follows: Vec<FollowRec>,
    pub outcomes: Vec<OutcomeRec>,
    /// Outcomes without an owner: counted, not scored.
    pub unattributed_outcomes: u64,
    /// Highest offset applied.
    pub offset: u64,
    /// Latest occurrence time seen: the as-of time of the prefix.
    pub max_time: Micros,
    pub events: u64,
}

impl State {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    pub fn node(&self, id: &AccountId) -> Option<Node> {
        self.index.get(id).copied()
    }

    pub fn account(&self, n: Node) -> Option<&AccountInfo> {
        self.accounts.get(n as usize)
    }

    fn intern(&mut self, id: &AccountId) -> Node {
        if let Some(n) = self.index.get(id) {
            return *n;
        }
        let n = self.accounts.len() as Node;
        self.accounts.push(AccountInfo {
            id: id.clone(),
            handle: String::new(),
            reported_followers: 0,
            created_at: None,
        });
        self.index.insert(id.clone(), n);
        n
    }

    fn intern_post(&mut self, post_id: &str) -> u32 {
        if let Some(p) = self.post_index.get(post_id) {
            return *p;
        }
        let p = self.posts.len() as u32;
        self.posts.push(PostInfo { author: NONE, at: 0, offset: 0, topics: Vec::new() });
        self.post_index.insert(post_id.to_owned(), p);
        p
    }

    fn intern_topic(&mut self, t: &str) -> u16 {
        if let Some(i) = self.topic_index.get(t) {
            return *i;
        }
        // Topic ids are u16; beyond that, topics share the last id rather than fail.
        let i = self.topics.len().min(u16::MAX as usize) as u16;
        if self.topics.len() < u16::MAX as usize {
            self.topics.push(t.to_owned());
            self.topic_index.insert(t.to_owned(), i);
        }
        i
    }

    /// The engaged account, resolving "the post's author" when it was not sent.
    pub fn target_of(&self, e: &EngagementRec) -> Node {
        if e.target != NONE {
            return e.target;
        }
        self.posts.get(e.post as usize).map_or(NONE, |p| p.author)
    }

    /// Applies one ledger entry. Returns false (and changes nothing) for an
    /// offset at or below the last applied one.
    pub fn apply(&mut self, entry: &LedgerEntry) -> bool {
        if entry.offset <= self.offset && self.events > 0 {
            return false;
        }
        self.offset = entry.offset;
        self.events += 1;
        let at = entry.event.occurred_at;
        // An erasure marker is stamped with when the request was carried out,
        // not with anything that happened in the world the ledger records: it
        // must not move the clock the scores are aged to (on an imported
        // archive it would age every account to the day of the erasure).
        if !matches!(entry.event.body, EventBody::Erasure(_)) {
            self.max_time = self.max_time.max(at);
        }
        let owner = entry.attribution.as_ref().and_then(|a| a.owner.as_ref());
        let offset = entry.offset;
        match &entry.event.body {
            EventBody::Account(a) => {
                let n = self.intern(&a.account);
                let info = &mut self.accounts[n as usize];
                info.handle.clone_from(&a.handle);
                info.reported_followers = a.reported_followers;
                info.created_at = a.created_at.or(info.created_at);
            }
            EventBody::Post(p) => {
                let author = self.intern(&p.author);
                let topics: Vec<u16> = p.topics.iter().map(|t| self.intern_topic(t)).collect();
                let pi = self.intern_post(&p.post_id);
                let post = &mut self.posts[pi as usize];
                // The first post event with an id is canonical; a later one with the same id is ignored.
                if post.author == NONE {
                    *post = PostInfo { author, at, offset, topics };
                }
            }
            EventBody::Engagement(g) => {
                let actor = self.intern(&g.actor);
                let target = g.target.as_ref().map_or(NONE, |t| self.intern(t));
                let post = g.post_id.as_deref().map_or(NONE, |p| self.intern_post(p));
                self.engagements.push(EngagementRec { offset, at, actor, target, post, kind: g.kind });
            }
            EventBody::Follow(f) => {
                let follower = self.intern(&f.follower);
                let followee = self.intern(&f.followee);
                self.follows.push(FollowRec { offset, at, follower, followee, unfollow: f.unfollow });
            }
            EventBody::LinkClick(c) if !c.counted() => {}
            EventBody::LinkClick(_) => self.outcome(owner, offset, at, OutcomeKind::Click, 0),
            EventBody::PageSession(s) => {
                self.outcome(owner, offset, at, OutcomeKind::Session { bounced: s.bounced }, 0);
            }
            EventBody::Conversion(c) => {
                let kind = match entry.attribution.as_ref().map(|a| a.status) {
                    Some(AttributionStatus::CodeWithoutClick) => OutcomeKind::CodeConversion,
                    _ => OutcomeKind::Conversion,
                };
                self.outcome(owner, offset, at, kind, c.value_minor);
            }
            // An offer's life is the brand's record, not evidence about the creator.
            EventBody::OfferTransition(_) => {}
            // The consumer acts on an erasure (it rebuilds from the redacted ledger);
            // the state itself holds nothing to change at this offset.
            EventBody::Erasure(_) => {}
        }
        true
    }

    /// Advances past an entry that cannot be applied (it does not decode), so
    /// the offset still moves and a replay skips it the same way.
    pub fn skip(&mut self, offset: u64) -> bool {
        if offset <= self.offset && self.events > 0 {
            return false;
        }
        self.offset = offset;
        self.events += 1;
        true
    }

    fn outcome(&mut self, owner: Option<&AccountId>, offset: u64, at: Micros, kind: OutcomeKind, value_minor: i64) {
        match owner {
            Some(o) => {
                let owner = self.intern(o);
                self.outcomes.push(OutcomeRec { offset, at, owner, kind, value_minor });
            }
            None => self.unattributed_outcomes += 1,
        }
    }

    /// Ledger post ids by dense post id (for checkpoints).
    pub(super) fn post_ids(&self) -> Vec<&str> {
        let mut ids = vec![""; self.posts.len()];
        for (id, &p) in &self.post_index {
            if let Some(slot) = ids.get_mut(p as usize) {
                *slot = id.as_str();
            }
        }
        ids
    }

    /// Installs decoded columns and rebuilds the lookup indexes from them; the
    /// error says why the columns do not form a state (a column too long, a
    /// duplicate id). The state knows nothing of how the columns were stored.
    pub(super) fn restore_columns(
        &mut self,
        accounts: Vec<AccountInfo>,
        posts: Vec<PostInfo>,
        post_ids: Vec<String>,
        topics: Vec<String>,
    ) -> Result<(), &'static str> {
        if accounts.len() >= NONE as usize || posts.len() >= NONE as usize || topics.len() > u16::MAX as usize {
            return Err("column too long");
        }
        self.index = HashMap::with_capacity(accounts.len());
        for (i, a) in accounts.iter().enumerate() {
            if self.index.insert(a.id.clone(), i as Node).is_some() {
                return Err("duplicate account");
            }
        }
        self.post_index = HashMap::with_capacity(post_ids.len());
        for (i, id) in post_ids.into_iter().enumerate() {
            if self.post_index.insert(id, i as u32).is_some() {
                return Err("duplicate post id");
            }
        }
        self.topic_index = HashMap::with_capacity(topics.len());
        for (i, t) in topics.iter().enumerate() {
            if self.topic_index.insert(t.clone(), i as u16).is_some() {
                return Err("duplicate topic");
            }
        }
        self.accounts = accounts;
        self.posts = posts;
        self.topics = topics;
        Ok(())
    }

    /// Bytes held by the event columns (not counting strings), for capacity planning.
    pub fn event_bytes(&self) -> usize {
        self.engagements.len() * std::mem::size_of::<EngagementRec>()
            + self.follows.len() * std::mem::size_of::<FollowRec>()
            + self.outcomes.len() * std::mem::size_of::<OutcomeRec>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::*;

    /// Pins that an engagement record stays within 32 bytes (the ≤ 64 bytes/edge budget).
    #[test]
    fn engagement_record_is_compact() {
        assert!(std::mem::size_of::<EngagementRec>() <= 32);
    }

    /// Pins idempotence on offsets and resolution of a post's author arriving after the engagement.
    #[test]
    fn apply_is_idempotent_and_resolves_late_posts() {
        let mut s = State::new();
        let e = like(1, "b", "a", "p1", 100);
        assert!(s.apply(&e));
        assert!(!s.apply(&e));
        assert_eq!(s.engagements.len(), 1);
        let g = s.engagements[0];
        assert_eq!(s.target_of(&g), s.node(&acc("a")).unwrap());
        let mut s2 = State::new();
        s2.apply(&engage_post_only(1, "b", "p1", 100));
        assert_eq!(s2.target_of(&s2.engagements[0]), NONE);
        s2.apply(&post(2, "a", "p1", &["rust"], 50));
        assert_eq!(s2.target_of(&s2.engagements[0]), s2.node(&acc("a")).unwrap());
        assert_eq!(s2.topics, vec!["rust".to_string()]);
        assert_eq!(s2.max_time, 100 * SEC);
    }

    /// Pins that an erasure marker, stamped when the request was carried out,
    /// does not move the clock scores are aged to.
    #[test]
    fn an_erasure_marker_does_not_move_the_clock() {
        let mut s = State::new();
        s.apply(&like(1, "b", "a", "p1", 100));
        let marker =
            lift_domain::event::Erasure { subject_hash: "00".into(), events_erased: 1, retention_before: None };
        assert!(s.apply(&entry(2, 1_000_000, EventBody::Erasure(marker))));
        assert_eq!((s.offset, s.max_time), (2, 100 * SEC));
    }
}
