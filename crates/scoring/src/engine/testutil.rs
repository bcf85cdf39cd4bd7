//! Builders of ledger entries for tests (also used by benches and property tests).

use lift_domain::event::{
    AccountUpsert, Attribution, AttributionStatus, Conversion, Engagement, EngagementKind, Follow, LinkClick,
    PageSession, Post,
};
use lift_domain::{AccountId, Event, EventBody, LedgerEntry, Micros};

pub const SEC: Micros = 1_000_000;
pub const DAY: Micros = 86_400 * SEC;
/// 2024-01-01, so tests run on realistic timestamps.
pub const T0: Micros = 1_704_067_200 * SEC;

pub fn acc(id: &str) -> AccountId {
    AccountId::new("t", id)
}

pub fn entry(offset: u64, at_secs: i64, body: EventBody) -> LedgerEntry {
    LedgerEntry {
        offset,
        ingested_at: at_secs * SEC,
        event: Event { event_id: format!("e{offset}"), source: "test".into(), occurred_at: at_secs * SEC, body },
        attribution: None,
    }
}

pub fn account(offset: u64, id: &str, followers: u64, created_at: Option<Micros>, at_secs: i64) -> LedgerEntry {
    entry(
        offset,
        at_secs,
        EventBody::Account(AccountUpsert {
            account: acc(id),
            handle: format!("@{id}"),
            display_name: id.into(),
            reported_followers: followers,
            language: String::new(),
            region: String::new(),
            created_at,
        }),
    )
}

pub fn post(offset: u64, author: &str, post_id: &str, topics: &[&str], at_secs: i64) -> LedgerEntry {
    entry(
        offset,
        at_secs,
        EventBody::Post(Post {
            author: acc(author),
            post_id: post_id.into(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            links: vec![],
            reply_to_post_id: None,
            quote_of_post_id: None,
        }),
    )
}

pub fn engage(
    offset: u64,
    kind: EngagementKind,
    actor: &str,
    target: &str,
    post: Option<&str>,
    at: i64,
) -> LedgerEntry {
    entry(
        offset,
        at,
        EventBody::Engagement(Engagement {
            kind,
            actor: acc(actor),
            post_id: post.map(str::to_owned),
            target: Some(acc(target)),
        }),
    )
}

pub fn like(offset: u64, actor: &str, target: &str, post: &str, at_secs: i64) -> LedgerEntry {
    engage(offset, EngagementKind::Like, actor, target, Some(post), at_secs)
}

pub fn engage_post_only(offset: u64, actor: &str, post: &str, at_secs: i64) -> LedgerEntry {
    entry(
        offset,
        at_secs,
        EventBody::Engagement(Engagement {
            kind: EngagementKind::Repost,
            actor: acc(actor),
            post_id: Some(post.into()),
            target: None,
        }),
    )
}

pub fn follow(offset: u64, follower: &str, followee: &str, unfollow: bool, at_secs: i64) -> LedgerEntry {
    entry(offset, at_secs, EventBody::Follow(Follow { follower: acc(follower), followee: acc(followee), unfollow }))
}

fn attributed(mut e: LedgerEntry, owner: &str, status: AttributionStatus) -> LedgerEntry {
    e.attribution = Some(Attribution {
        status,
        link: format!("l/{owner}"),
        owner: Some(acc(owner)),
        campaign_id: String::new(),
        click_offset: 0,
    });
    e
}

pub fn click(offset: u64, owner: &str, visitor: &str, at_secs: i64) -> LedgerEntry {
    let body = EventBody::LinkClick(LinkClick {
        link: format!("l/{owner}"),
        visitor_id: visitor.into(),
        landing: String::new(),
        agent_class: String::new(),
        not_counted: None,
    });
    attributed(entry(offset, at_secs, body), owner, AttributionStatus::Click)
}

pub fn session(offset: u64, owner: &str, visitor: &str, bounced: bool, at_secs: i64) -> LedgerEntry {
    let body = EventBody::PageSession(PageSession {
        visitor_id: visitor.into(),
        link: Some(format!("l/{owner}")),
        dwell_ms: if bounced { 500 } else { 60_000 },
        bounced,
    });
    attributed(entry(offset, at_secs, body), owner, AttributionStatus::Click)
}

pub fn conversion(offset: u64, owner: &str, visitor: &str, value: i64, at_secs: i64) -> LedgerEntry {
    let body = EventBody::Conversion(Conversion {
        visitor_id: Some(visitor.into()),
        code: None,
        order_id: format!("o{offset}"),
        value_minor: value,
        currency: "EUR".into(),
        customer: None,
    });
    attributed(entry(offset, at_secs, body), owner, AttributionStatus::Click)
}

/// A deterministic random event stream over `accounts` accounts, with offsets 1..=n.
pub fn random_stream(seed: u64, accounts: usize, n: usize) -> Vec<LedgerEntry> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let accounts = accounts.max(2);
    let mut out = Vec::with_capacity(n);
    let mut posts: Vec<(String, String)> = Vec::new();
    let base = T0 / SEC;
    for i in 0..n {
        let offset = i as u64 + 1;
        let at = base + (i as i64) * 600 + rng.random_range(0..300);
        let a = format!("u{}", rng.random_range(0..accounts));
        let mut b = format!("u{}", rng.random_range(0..accounts));
        if a == b {
            b = format!("u{}", (rng.random_range(1..accounts) + a[1..].parse::<usize>().unwrap_or(0)) % accounts);
        }
        let e = match rng.random_range(0..100) {
            0..5 => account(offset, &a, rng.random_range(0..10_000), Some((base - 400 * 86_400) * SEC), at),
            5..25 => {
                let pid = format!("p{offset}");
                posts.push((pid.clone(), a.clone()));
                let topics: &[&str] = match rng.random_range(0..3) {
                    0 => &["rust"],
                    1 => &["food", "travel"],
                    _ => &[],
                };
                post(offset, &a, &pid, topics, at)
            }
            25..75 if !posts.is_empty() => {
                let (pid, author) = posts[rng.random_range(0..posts.len())].clone();
                let kind = [
                    EngagementKind::Repost,
                    EngagementKind::Quote,
                    EngagementKind::Reply,
                    EngagementKind::Like,
                    EngagementKind::Mention,
                ][rng.random_range(0..5)];
                if author == a {
                    engage(offset, kind, &a, &b, None, at)
                } else {
                    engage(offset, kind, &a, &author, Some(&pid), at)
                }
            }
            25..85 => follow(offset, &a, &b, rng.random_bool(0.2), at),
            85..93 => click(offset, &b, &a, at),
            93..97 => session(offset, &b, &a, rng.random_bool(0.4), at),
            _ => conversion(offset, &b, &a, 1000, at),
        };
        out.push(e);
    }
    out
}
