//! Ledger events: what happened, as a typed body.
//!
//! A value of these types is valid by construction: the wire `Event` becomes
//! one only through `lift_proto::convert::EventProto::from_proto`, which checks
//! every field against a [`crate::ValidationPolicy`] and the limits below.

use serde::{Deserialize, Serialize};

use crate::account::AccountId;
pub use crate::offer::OfferTransition;
use crate::time::Micros;

pub const MAX_EVENT_ID_LEN: usize = 128;
pub const MAX_SOURCE_LEN: usize = 64;
pub const MAX_POST_ID_LEN: usize = 128;
pub const MAX_LINK_LEN: usize = 256;

/// The kind of a ledger event, stored as a small integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    Account = 1,
    Post = 2,
    Engagement = 3,
    Follow = 4,
    LinkClick = 5,
    PageSession = 6,
    Conversion = 7,
    OfferTransition = 8,
    /// An erasure marker (appended by ingestion's privacy service only).
    Erasure = 9,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::Account,
        EventKind::Post,
        EventKind::Engagement,
        EventKind::Follow,
        EventKind::LinkClick,
        EventKind::PageSession,
        EventKind::Conversion,
        EventKind::OfferTransition,
        EventKind::Erasure,
    ];

    pub fn code(self) -> i16 {
        self as i16
    }

    pub fn from_code(c: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|k| *k as i32 == c)
    }

    pub fn name(self) -> &'static str {
        match self {
            EventKind::Account => "account",
            EventKind::Post => "post",
            EventKind::Engagement => "engagement",
            EventKind::Follow => "follow",
            EventKind::LinkClick => "link_click",
            EventKind::PageSession => "page_session",
            EventKind::Conversion => "conversion",
            EventKind::OfferTransition => "offer_transition",
            EventKind::Erasure => "erasure",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EngagementKind {
    Repost,
    Quote,
    Reply,
    Like,
    Mention,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountUpsert {
    pub account: AccountId,
    pub handle: String,
    pub display_name: String,
    pub reported_followers: u64,
    pub language: String,
    pub region: String,
    pub created_at: Option<Micros>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Post {
    pub author: AccountId,
    pub post_id: String,
    pub topics: Vec<String>,
    pub links: Vec<String>,
    pub reply_to_post_id: Option<String>,
    pub quote_of_post_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Engagement {
    pub kind: EngagementKind,
    pub actor: AccountId,
    pub post_id: Option<String>,
    pub target: Option<AccountId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Follow {
    pub follower: AccountId,
    pub followee: AccountId,
    pub unfollow: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkClick {
    pub link: String,
    pub visitor_id: String,
    pub landing: String,
    /// Coarse user-agent class ("desktop", "mobile", "tablet", "bot", "other"); may be empty.
    #[serde(default)]
    pub agent_class: String,
    /// Why this was not a person's click (bot, prefetch, HEAD, burst): kept, never counted.
    #[serde(default)]
    pub not_counted: Option<String>,
}

impl LinkClick {
    /// A person's click, as opposed to a bot, prefetch or burst recorded for the record.
    pub fn counted(&self) -> bool {
        self.not_counted.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageSession {
    pub visitor_id: String,
    pub link: Option<String>,
    pub dwell_ms: u64,
    pub bounced: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversion {
    pub visitor_id: Option<String>,
    pub code: Option<String>,
    pub order_id: String,
    pub value_minor: i64,
    pub currency: String,
    pub customer: Option<AccountId>,
}

/// Earlier events of one subject were erased in place (tombstones, which
/// subscribers no longer see); consumers purge and rebuild what they derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    /// Hex SHA-256 of the subject (`lift_store::privacy::subject_hash`).
    pub subject_hash: String,
    pub events_erased: u64,
    /// Set on a retention marker: every event that occurred before this time
    /// was removed; `subject_hash` then hashes the cutoff, not a person.
    #[serde(default)]
    pub retention_before: Option<Micros>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventBody {
    Account(AccountUpsert),
    Post(Post),
    Engagement(Engagement),
    Follow(Follow),
    LinkClick(LinkClick),
    PageSession(PageSession),
    Conversion(Conversion),
    /// A step in a campaign offer's life, recorded by matching.
    OfferTransition(OfferTransition),
    Erasure(Erasure),
}

/// A validated event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub source: String,
    pub occurred_at: Micros,
    pub body: EventBody,
}

/// Attribution added by ingestion to outcome events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    pub status: AttributionStatus,
    pub link: String,
    pub owner: Option<AccountId>,
    pub campaign_id: String,
    pub click_offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttributionStatus {
    Click,
    CodeWithoutClick,
    Unattributed,
}

/// An event as stored in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub offset: u64,
    pub ingested_at: Micros,
    pub event: Event,
    pub attribution: Option<Attribution>,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match &self.body {
            EventBody::Account(_) => EventKind::Account,
            EventBody::Post(_) => EventKind::Post,
            EventBody::Engagement(_) => EventKind::Engagement,
            EventBody::Follow(_) => EventKind::Follow,
            EventBody::LinkClick(_) => EventKind::LinkClick,
            EventBody::PageSession(_) => EventKind::PageSession,
            EventBody::Conversion(_) => EventKind::Conversion,
            EventBody::OfferTransition(_) => EventKind::OfferTransition,
            EventBody::Erasure(_) => EventKind::Erasure,
        }
    }

    /// The account the event is primarily about (author, actor, follower), if any.
    pub fn primary_account(&self) -> Option<&AccountId> {
        match &self.body {
            EventBody::Account(a) => Some(&a.account),
            EventBody::Post(p) => Some(&p.author),
            EventBody::Engagement(e) => Some(&e.actor),
            EventBody::Follow(f) => Some(&f.follower),
            EventBody::Conversion(c) => c.customer.as_ref(),
            EventBody::OfferTransition(o) => Some(&o.creator),
            EventBody::LinkClick(_) | EventBody::PageSession(_) | EventBody::Erasure(_) => None,
        }
    }
}
