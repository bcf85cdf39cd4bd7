//! The ingest wire's `Event`, `LedgerEvent` and `Attribution` ↔ the domain's
//! [`Event`], [`LedgerEntry`] and [`Attribution`].
//!
//! `Event::from_proto` is the single place a wire event becomes trusted.
//! It reports every violation with its field path, so a client can fix a
//! whole batch at once. `LedgerEntry::from_proto` is how every reader of the
//! ledger (ingest's subscribers, scoring's consumer, matching's report) turns
//! stored bytes back into an entry.

use lift_domain::AccountId;
use lift_domain::event::{
    AccountUpsert, Attribution, AttributionStatus, Conversion, Engagement, EngagementKind, Erasure, Event, EventBody,
    EventKind, Follow, LedgerEntry, LinkClick, MAX_EVENT_ID_LEN, MAX_LINK_LEN, MAX_POST_ID_LEN, MAX_SOURCE_LEN,
    OfferTransition, PageSession, Post,
};
use lift_domain::validation::{
    FieldViolation, ValidationPolicy, Violations, check_list, check_opt_token, check_text, check_token,
    is_known_currency,
};

use super::time;
use super::{AccountIdProto, OfferTransitionProto};
use crate::ingest::v1 as pb;

/// Wire conversions of [`EventKind`] (the wire numbers equal [`EventKind::code`]).
pub trait EventKindProto: Sized {
    fn from_proto(v: i32) -> Option<Self>;
    fn to_proto(self) -> pb::EventKind;
}

impl EventKindProto for EventKind {
    fn from_proto(v: i32) -> Option<Self> {
        Self::from_code(v)
    }

    fn to_proto(self) -> pb::EventKind {
        pb::EventKind::try_from(self as i32).unwrap_or(pb::EventKind::Unspecified)
    }
}

/// Wire conversion of [`EngagementKind`].
pub trait EngagementKindProto: Sized {
    fn to_proto(self) -> pb::EngagementKind;
}

impl EngagementKindProto for EngagementKind {
    fn to_proto(self) -> pb::EngagementKind {
        match self {
            EngagementKind::Repost => pb::EngagementKind::Repost,
            EngagementKind::Quote => pb::EngagementKind::Quote,
            EngagementKind::Reply => pb::EngagementKind::Reply,
            EngagementKind::Like => pb::EngagementKind::Like,
            EngagementKind::Mention => pb::EngagementKind::Mention,
        }
    }
}

fn engagement_kind(v: i32) -> Option<EngagementKind> {
    match pb::EngagementKind::try_from(v).ok()? {
        pb::EngagementKind::Repost => Some(EngagementKind::Repost),
        pb::EngagementKind::Quote => Some(EngagementKind::Quote),
        pb::EngagementKind::Reply => Some(EngagementKind::Reply),
        pb::EngagementKind::Like => Some(EngagementKind::Like),
        pb::EngagementKind::Mention => Some(EngagementKind::Mention),
        pb::EngagementKind::Unspecified => None,
    }
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Wire conversions of [`Event`].
pub trait EventProto: Sized {
    /// Validates a wire event. Field paths are relative to the event.
    fn from_proto(e: &pb::Event, policy: &ValidationPolicy) -> Result<Self, Vec<FieldViolation>>;
    fn to_proto(&self) -> pb::Event;
}

impl EventProto for Event {
    fn from_proto(e: &pb::Event, policy: &ValidationPolicy) -> Result<Self, Vec<FieldViolation>> {
        let mut v = Violations::new();
        check_token(&e.event_id, "event_id", MAX_EVENT_ID_LEN, &mut v);
        check_token(&e.source, "source", MAX_SOURCE_LEN, &mut v);
        let occurred_at = match &e.occurred_at {
            None => {
                v.push(FieldViolation::new("occurred_at", "is required"));
                None
            }
            Some(ts) => match time::from_timestamp(ts) {
                None => {
                    v.push(FieldViolation::new("occurred_at", "is not a valid timestamp"));
                    None
                }
                Some(t) if t < policy.min_time => {
                    v.push(FieldViolation::new(
                        "occurred_at",
                        format!(
                            "is before the earliest accepted time ({} s since the epoch)",
                            policy.min_time / 1_000_000
                        ),
                    ));
                    None
                }
                Some(t) if t > policy.now.saturating_add(policy.max_future) => {
                    v.push(FieldViolation::new(
                        "occurred_at",
                        format!(
                            "is {} s in the future; the limit is {} s",
                            (t - policy.now) / 1_000_000,
                            policy.max_future / 1_000_000
                        ),
                    ));
                    None
                }
                Some(t) => Some(t),
            },
        };
        let body = match &e.kind {
            None => {
                v.push(FieldViolation::new(
                    "kind",
                    "one of account, post, engagement, follow, link_click, page_session, conversion, offer is required",
                ));
                None
            }
            Some(k) => body_from_proto(k, policy, &mut v),
        };
        match (v.is_empty(), occurred_at, body) {
            (true, Some(occurred_at), Some(body)) => {
                Ok(Event { event_id: e.event_id.clone(), source: e.source.clone(), occurred_at, body })
            }
            _ => Err(v),
        }
    }

    fn to_proto(&self) -> pb::Event {
        pb::Event {
            event_id: self.event_id.clone(),
            source: self.source.clone(),
            occurred_at: Some(time::to_timestamp(self.occurred_at)),
            kind: Some(body_to_proto(&self.body)),
        }
    }
}

fn body_from_proto(k: &pb::event::Kind, policy: &ValidationPolicy, v: &mut Violations) -> Option<EventBody> {
    use pb::event::Kind;
    let before = v.len();
    let body = match k {
        Kind::Account(a) => {
            let account = AccountId::from_proto(a.account.as_ref(), "account.account", v);
            check_text(&a.handle, "account.handle", policy.max_text_len, v);
            check_text(&a.display_name, "account.display_name", policy.max_text_len, v);
            check_opt_token(&a.language, "account.language", 35, v);
            check_opt_token(&a.region, "account.region", 8, v);
            let created_at = match &a.created_at {
                None => None,
                Some(ts) => match time::from_timestamp(ts) {
                    Some(t) if t <= policy.now.saturating_add(policy.max_future) => Some(t),
                    _ => {
                        v.push(FieldViolation::new("account.created_at", "is not a valid past timestamp"));
                        None
                    }
                },
            };
            account.map(|account| {
                EventBody::Account(AccountUpsert {
                    account,
                    handle: a.handle.clone(),
                    display_name: a.display_name.clone(),
                    reported_followers: a.reported_followers,
                    language: a.language.clone(),
                    region: a.region.clone(),
                    created_at,
                })
            })
        }
        Kind::Post(p) => {
            let author = AccountId::from_proto(p.author.as_ref(), "post.author", v);
            check_token(&p.post_id, "post.post_id", MAX_POST_ID_LEN, v);
            check_list(&p.topics, "post.topics", policy.max_topics, 64, v);
            check_list(&p.links, "post.links", policy.max_links, MAX_LINK_LEN, v);
            check_opt_token(&p.reply_to_post_id, "post.reply_to_post_id", MAX_POST_ID_LEN, v);
            check_opt_token(&p.quote_of_post_id, "post.quote_of_post_id", MAX_POST_ID_LEN, v);
            author.map(|author| {
                EventBody::Post(Post {
                    author,
                    post_id: p.post_id.clone(),
                    topics: p.topics.iter().map(|t| t.to_lowercase()).collect(),
                    links: p.links.clone(),
                    reply_to_post_id: opt(&p.reply_to_post_id),
                    quote_of_post_id: opt(&p.quote_of_post_id),
                })
            })
        }
        Kind::Engagement(g) => {
            let kind = engagement_kind(g.kind);
            if kind.is_none() {
                v.push(FieldViolation::new("engagement.kind", "must be one of repost, quote, reply, like, mention"));
            }
            let actor = AccountId::from_proto(g.actor.as_ref(), "engagement.actor", v);
            let target = g.target.as_ref().and_then(|t| AccountId::from_proto(Some(t), "engagement.target", v));
            check_opt_token(&g.post_id, "engagement.post_id", MAX_POST_ID_LEN, v);
            if g.post_id.is_empty() && g.target.is_none() {
                v.push(FieldViolation::new("engagement.target", "a target account or a post_id is required"));
            }
            if let (Some(a), Some(t)) = (&actor, &target)
                && a == t
            {
                v.push(FieldViolation::new("engagement.target", "must differ from the actor"));
            }
            match (kind, actor) {
                (Some(kind), Some(actor)) => {
                    Some(EventBody::Engagement(Engagement { kind, actor, post_id: opt(&g.post_id), target }))
                }
                _ => None,
            }
        }
        Kind::Follow(f) => {
            let follower = AccountId::from_proto(f.follower.as_ref(), "follow.follower", v);
            let followee = AccountId::from_proto(f.followee.as_ref(), "follow.followee", v);
            if let (Some(a), Some(b)) = (&follower, &followee)
                && a == b
            {
                v.push(FieldViolation::new("follow.followee", "an account cannot follow itself"));
            }
            match (follower, followee) {
                (Some(follower), Some(followee)) => {
                    Some(EventBody::Follow(Follow { follower, followee, unfollow: f.unfollow }))
                }
                _ => None,
            }
        }
        Kind::LinkClick(c) => {
            check_token(&c.link, "link_click.link", MAX_LINK_LEN, v);
            check_token(&c.visitor_id, "link_click.visitor_id", MAX_EVENT_ID_LEN, v);
            check_text(&c.landing, "link_click.landing", 2048, v);
            check_text(&c.agent_class, "link_click.agent_class", 32, v);
            check_text(&c.not_counted, "link_click.not_counted", 200, v);
            Some(EventBody::LinkClick(LinkClick {
                link: c.link.clone(),
                visitor_id: c.visitor_id.clone(),
                landing: c.landing.clone(),
                agent_class: c.agent_class.clone(),
                not_counted: opt(&c.not_counted),
            }))
        }
        Kind::PageSession(s) => {
            check_token(&s.visitor_id, "page_session.visitor_id", MAX_EVENT_ID_LEN, v);
            check_opt_token(&s.link, "page_session.link", MAX_LINK_LEN, v);
            if s.dwell_ms > 86_400_000 {
                v.push(FieldViolation::new(
                    "page_session.dwell_ms",
                    format!("is {} ms; the limit is one day", s.dwell_ms),
                ));
            }
            Some(EventBody::PageSession(PageSession {
                visitor_id: s.visitor_id.clone(),
                link: opt(&s.link),
                dwell_ms: s.dwell_ms,
                bounced: s.bounced,
            }))
        }
        Kind::Conversion(c) => {
            if c.visitor_id.is_empty() && c.code.is_empty() {
                v.push(FieldViolation::new("conversion.visitor_id", "a visitor_id or a code is required"));
            }
            check_opt_token(&c.visitor_id, "conversion.visitor_id", MAX_EVENT_ID_LEN, v);
            check_opt_token(&c.code, "conversion.code", MAX_LINK_LEN, v);
            check_token(&c.order_id, "conversion.order_id", MAX_EVENT_ID_LEN, v);
            if c.value_minor < 0 {
                v.push(FieldViolation::new(
                    "conversion.value_minor",
                    format!("is {}; it must not be negative", c.value_minor),
                ));
            } else if c.value_minor > policy.max_value_minor {
                v.push(FieldViolation::new(
                    "conversion.value_minor",
                    format!("is {}; the limit is {}", c.value_minor, policy.max_value_minor),
                ));
            }
            if !is_known_currency(&c.currency) {
                v.push(FieldViolation::new(
                    "conversion.currency",
                    format!("{:?} is not a known ISO 4217 code", c.currency),
                ));
            }
            let customer = c.customer.as_ref().and_then(|a| AccountId::from_proto(Some(a), "conversion.customer", v));
            Some(EventBody::Conversion(Conversion {
                visitor_id: opt(&c.visitor_id),
                code: opt(&c.code),
                order_id: c.order_id.clone(),
                value_minor: c.value_minor,
                currency: c.currency.clone(),
                customer,
            }))
        }
        Kind::Offer(o) => OfferTransition::from_proto(o, v).map(EventBody::OfferTransition),
        Kind::Erasure(x) => {
            if x.subject_hash.len() != 64
                || !x.subject_hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                v.push(FieldViolation::new("erasure.subject_hash", "must be 64 lowercase hex digits"));
            }
            let retention_before = match &x.retention_before {
                None => None,
                Some(ts) => {
                    let t = time::from_timestamp(ts);
                    if t.is_none() {
                        v.push(FieldViolation::new("erasure.retention_before", "is not a valid timestamp"));
                    }
                    t
                }
            };
            Some(EventBody::Erasure(Erasure {
                subject_hash: x.subject_hash.clone(),
                events_erased: x.events_erased,
                retention_before,
            }))
        }
    };
    if v.len() == before { body } else { None }
}

fn body_to_proto(b: &EventBody) -> pb::event::Kind {
    use pb::event::Kind;
    match b {
        EventBody::Account(a) => Kind::Account(pb::AccountUpsert {
            account: Some(a.account.to_proto()),
            handle: a.handle.clone(),
            display_name: a.display_name.clone(),
            reported_followers: a.reported_followers,
            language: a.language.clone(),
            region: a.region.clone(),
            created_at: a.created_at.map(time::to_timestamp),
        }),
        EventBody::Post(p) => Kind::Post(pb::Post {
            author: Some(p.author.to_proto()),
            post_id: p.post_id.clone(),
            topics: p.topics.clone(),
            links: p.links.clone(),
            reply_to_post_id: p.reply_to_post_id.clone().unwrap_or_default(),
            quote_of_post_id: p.quote_of_post_id.clone().unwrap_or_default(),
        }),
        EventBody::Engagement(g) => Kind::Engagement(pb::Engagement {
            kind: g.kind.to_proto() as i32,
            actor: Some(g.actor.to_proto()),
            post_id: g.post_id.clone().unwrap_or_default(),
            target: g.target.as_ref().map(AccountId::to_proto),
        }),
        EventBody::Follow(f) => Kind::Follow(pb::Follow {
            follower: Some(f.follower.to_proto()),
            followee: Some(f.followee.to_proto()),
            unfollow: f.unfollow,
        }),
        EventBody::LinkClick(c) => Kind::LinkClick(pb::LinkClick {
            link: c.link.clone(),
            visitor_id: c.visitor_id.clone(),
            landing: c.landing.clone(),
            agent_class: c.agent_class.clone(),
            not_counted: c.not_counted.clone().unwrap_or_default(),
        }),
        EventBody::PageSession(s) => Kind::PageSession(pb::PageSession {
            visitor_id: s.visitor_id.clone(),
            link: s.link.clone().unwrap_or_default(),
            dwell_ms: s.dwell_ms,
            bounced: s.bounced,
        }),
        EventBody::Conversion(c) => Kind::Conversion(pb::Conversion {
            visitor_id: c.visitor_id.clone().unwrap_or_default(),
            code: c.code.clone().unwrap_or_default(),
            order_id: c.order_id.clone(),
            value_minor: c.value_minor,
            currency: c.currency.clone(),
            customer: c.customer.as_ref().map(AccountId::to_proto),
        }),
        EventBody::OfferTransition(o) => Kind::Offer(o.to_proto()),
        EventBody::Erasure(x) => Kind::Erasure(pb::Erasure {
            subject_hash: x.subject_hash.clone(),
            events_erased: x.events_erased,
            retention_before: x.retention_before.map(time::to_timestamp),
        }),
    }
}

/// Wire conversions of [`Attribution`].
pub trait AttributionProto {
    fn to_proto(&self) -> pb::Attribution;
    fn from_proto(a: &pb::Attribution) -> Self;
}

impl AttributionProto for Attribution {
    fn to_proto(&self) -> pb::Attribution {
        pb::Attribution {
            status: match self.status {
                AttributionStatus::Click => pb::AttributionStatus::Click,
                AttributionStatus::CodeWithoutClick => pb::AttributionStatus::CodeWithoutClick,
                AttributionStatus::Unattributed => pb::AttributionStatus::Unattributed,
            } as i32,
            link: self.link.clone(),
            owner: self.owner.as_ref().map(AccountId::to_proto),
            campaign_id: self.campaign_id.clone(),
            click_offset: self.click_offset,
        }
    }

    fn from_proto(a: &pb::Attribution) -> Self {
        Self {
            status: match pb::AttributionStatus::try_from(a.status) {
                Ok(pb::AttributionStatus::Click) => AttributionStatus::Click,
                Ok(pb::AttributionStatus::CodeWithoutClick) => AttributionStatus::CodeWithoutClick,
                _ => AttributionStatus::Unattributed,
            },
            link: a.link.clone(),
            owner: a
                .owner
                .as_ref()
                .filter(|o| !o.network.is_empty() && !o.id.is_empty())
                .map(|o| AccountId::new(o.network.clone(), o.id.clone())),
            campaign_id: a.campaign_id.clone(),
            click_offset: a.click_offset,
        }
    }
}

/// Wire conversions of [`LedgerEntry`].
pub trait LedgerEntryProto: Sized {
    fn to_proto(&self) -> pb::LedgerEvent;
    /// Trusts a ledger event from ingestion: it was validated when it was stored.
    /// The policy used here is permissive in time so old archives replay.
    fn from_proto(e: &pb::LedgerEvent) -> Result<Self, Vec<FieldViolation>>;
}

impl LedgerEntryProto for LedgerEntry {
    fn to_proto(&self) -> pb::LedgerEvent {
        pb::LedgerEvent {
            offset: self.offset,
            event: Some(self.event.to_proto()),
            ingested_at: Some(time::to_timestamp(self.ingested_at)),
            attribution: self.attribution.as_ref().map(Attribution::to_proto),
        }
    }

    fn from_proto(e: &pb::LedgerEvent) -> Result<Self, Vec<FieldViolation>> {
        let ev = e.event.as_ref().ok_or_else(|| vec![FieldViolation::new("event", "is required")])?;
        let mut policy = ValidationPolicy::at(i64::MAX / 2);
        policy.min_time = i64::MIN / 2;
        let event = Event::from_proto(ev, &policy)?;
        Ok(Self {
            offset: e.offset,
            ingested_at: e.ingested_at.as_ref().and_then(time::from_timestamp).unwrap_or(0),
            event,
            attribution: e.attribution.as_ref().map(Attribution::from_proto),
        })
    }
}

#[cfg(test)]
mod tests;
