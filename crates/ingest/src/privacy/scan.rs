//! What the ledger and the link registry hold about one subject (an account or
//! a visitor id), and erasing it from the SQL ledger. The store
//! (`lift_store::privacy`) offers the storage primitives; the rules live here,
//! beside the encoding (`crate::ledger::sql`). The same rules ([`Matcher`], read
//! through a [`Source`]) find a subject's events on a JetStream ledger, which
//! `super::jetstream` erases its own way.
//!
//! # What involves a subject
//! For an account `A`: its profile events; posts by `A` and replies to or quotes
//! of its posts; engagements where `A` is the actor or the target, or whose post
//! is one of `A`'s; follows where `A` follows or is followed; clicks, sessions and
//! orders credited to `A` (attribution owner) or through `A`'s links and codes;
//! orders where `A` is the shop's customer, and every click, session and order of
//! the visitor ids those orders name. For a visitor id: its clicks, sessions and
//! orders. Finding them reads the whole ledger (bodies are encoded, only the
//! primary account is indexed): two passes, the first collecting `A`'s post ids
//! and visitor ids.
//!
//! # Erasure
//! Each such row is rewritten in place as a tombstone (`lift_store::privacy::erase_rows`):
//! offset, kind, source and times stay, the event id becomes
//! `erased-<sha256(source, event id)>`, the account column and the attribution
//! are cleared, the body keeps only source, time and that id, and readers skip
//! it. A producer replaying the original event is answered as a duplicate of the
//! tombstone (`lift_store::privacy::erased_duplicates`), so a replay cannot bring
//! it back. The subject's links and its click-index rows are deleted, an erasure
//! marker event carrying only the subject hash is appended, and the audit row is
//! written — all in the append transaction, holding the ledger lock, so no event
//! slips between the scan and the rewrite.

use std::collections::HashSet;

use lift_domain::event::Erasure;
use lift_domain::{AccountId, Event, EventBody, Micros};
use lift_proto::ingest::v1 as pb;
use lift_proto::ingest::v1::event::Kind;
use lift_store::links::Link;
use lift_store::privacy::{self as store, Actor, Subject, Tombstone, tombstone_id};
use lift_store::{ConnectionTrait, DatabaseConnection, ledger};
use prost::Message;

use crate::ledger::{NatsLedger, sql};
use crate::{Error, Ledger};

/// Ledger events read per page while scanning.
const PAGE: u32 = 5_000;
/// The source of erasure marker events.
pub(super) const MARKER_SOURCE: &str = "lift-privacy";

/// What ingestion holds about a subject.
#[derive(Debug, Clone, Default)]
pub(crate) struct Found {
    /// Its ledger events, in offset order.
    pub(crate) events: Vec<pb::LedgerEvent>,
    /// Links and codes registered to it.
    pub(crate) links: Vec<Link>,
    /// The ledger head the scan read through.
    pub(crate) through: u64,
}

/// What an erasure did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    pub subject_hash: String,
    pub events_erased: u64,
    pub links_deleted: u64,
    pub clicks_deleted: u64,
    pub marker_offset: u64,
}

/// Where a scan reads the ledger: the SQL table (through the pool or inside the
/// append transaction) or a JetStream stream. Either way only live events are
/// read: erased ones are gaps.
pub(super) enum Source<'a, C> {
    Sql(&'a C),
    Nats(&'a NatsLedger),
}

impl<C: ConnectionTrait> Source<'_, C> {
    async fn page(&self, after: u64) -> Result<Vec<pb::LedgerEvent>, Error> {
        match self {
            Source::Sql(db) => Ok(sql::read_after_wire(*db, after, &[], PAGE).await?),
            Source::Nats(n) => n.read_after_wire(after, &[], PAGE).await,
        }
    }
}

/// The subject's matching rules, grown by the first pass.
#[derive(Debug)]
pub(super) struct Matcher {
    account: Option<AccountId>,
    posts: HashSet<String>,
    visitors: HashSet<String>,
    links: HashSet<String>,
}

fn is(r: Option<&pb::AccountRef>, a: Option<&AccountId>) -> bool {
    matches!((r, a), (Some(r), Some(a)) if r.network == a.network && r.id == a.id)
}

impl Matcher {
    pub(super) fn new(subject: &Subject, links: &[Link]) -> Self {
        let (account, visitors) = match subject {
            Subject::Account(a) => (Some(a.clone()), HashSet::new()),
            Subject::Visitor(v) => (None, HashSet::from([v.clone()])),
        };
        Self { account, posts: HashSet::new(), visitors, links: links.iter().map(|l| l.link.clone()).collect() }
    }

    /// First pass: the account's post ids and the visitor ids of its orders.
    fn learn(&mut self, e: &pb::LedgerEvent) {
        let a = self.account.as_ref();
        match e.event.as_ref().and_then(|e| e.kind.as_ref()) {
            Some(Kind::Post(p)) if is(p.author.as_ref(), a) => {
                self.posts.insert(p.post_id.clone());
            }
            Some(Kind::Conversion(c)) if is(c.customer.as_ref(), a) && !c.visitor_id.is_empty() => {
                self.visitors.insert(c.visitor_id.clone());
            }
            _ => {}
        }
    }

    fn involves(&self, e: &pb::LedgerEvent) -> bool {
        let a = self.account.as_ref();
        let owner = e.attribution.as_ref().is_some_and(|at| is(at.owner.as_ref(), a));
        let post = |id: &str| !id.is_empty() && self.posts.contains(id);
        let link = |l: &str| !l.is_empty() && self.links.contains(l);
        let visitor = |v: &str| !v.is_empty() && self.visitors.contains(v);
        match e.event.as_ref().and_then(|e| e.kind.as_ref()) {
            Some(Kind::Account(x)) => is(x.account.as_ref(), a),
            Some(Kind::Post(p)) => is(p.author.as_ref(), a) || post(&p.reply_to_post_id) || post(&p.quote_of_post_id),
            Some(Kind::Engagement(g)) => is(g.actor.as_ref(), a) || is(g.target.as_ref(), a) || post(&g.post_id),
            Some(Kind::Follow(f)) => is(f.follower.as_ref(), a) || is(f.followee.as_ref(), a),
            Some(Kind::LinkClick(c)) => owner || link(&c.link) || visitor(&c.visitor_id),
            Some(Kind::PageSession(s)) => owner || link(&s.link) || visitor(&s.visitor_id),
            Some(Kind::Conversion(c)) => owner || is(c.customer.as_ref(), a) || link(&c.code) || visitor(&c.visitor_id),
            // An offer's steps name the creator it was made to.
            Some(Kind::Offer(o)) => is(o.creator.as_ref(), a),
            Some(Kind::Erasure(_)) | None => false,
        }
    }
}

/// Calls `f` for every live ledger event in `(after, through]`, in offset order.
pub(super) async fn scan<C: ConnectionTrait>(
    source: &Source<'_, C>,
    mut after: u64,
    through: u64,
    mut f: impl FnMut(&pb::LedgerEvent),
) -> Result<(), Error> {
    while after < through {
        let page = source.page(after).await?;
        let Some(last) = page.last().map(|e| e.offset) else { break };
        for e in page.iter().filter(|e| e.offset <= through) {
            f(e);
        }
        after = last;
    }
    Ok(())
}

/// Both passes over `(after, through]`: learn, then collect what matches.
pub(super) async fn collect<C: ConnectionTrait>(
    source: &Source<'_, C>,
    m: &mut Matcher,
    after: u64,
    through: u64,
    out: &mut Vec<pb::LedgerEvent>,
) -> Result<(), Error> {
    if m.account.is_some() {
        scan(source, after, through, |e| m.learn(e)).await?;
    }
    scan(source, after, through, |e| {
        if m.involves(e) {
            out.push(e.clone());
        }
    })
    .await
}

/// Everything `ledger` and the link registry in `db` hold about `subject`.
pub(crate) async fn find(db: &DatabaseConnection, ledger: &Ledger, subject: &Subject) -> Result<Found, Error> {
    let found = match ledger {
        Ledger::Sql => find_through(db, &Source::Sql(db), subject, ledger::head(db).await?).await?,
        Ledger::Nats(n) => find_through(db, &Source::<DatabaseConnection>::Nats(n), subject, n.head().await?).await?,
    };
    Ok(found.0)
}

/// What the ledger up to `through` (read from `source`) and the link registry in
/// `db` hold about `subject`, and the matcher that found it (to carry on past
/// `through`).
pub(super) async fn find_through<C: ConnectionTrait>(
    db: &impl ConnectionTrait,
    source: &Source<'_, C>,
    subject: &Subject,
    through: u64,
) -> Result<(Found, Matcher), Error> {
    let links = store::owned_links(db, subject).await?;
    let mut m = Matcher::new(subject, &links);
    let mut events = Vec::new();
    collect(source, &mut m, 0, through, &mut events).await?;
    Ok((Found { events, links, through }, m))
}

/// The erasure marker of `subject_hash`, appended by ingestion at `now`.
pub(super) fn marker(subject_hash: &str, events_erased: u64, now: Micros) -> Event {
    Event {
        event_id: format!("erasure-{}-{now}", &subject_hash[..16.min(subject_hash.len())]),
        source: MARKER_SOURCE.to_owned(),
        occurred_at: now,
        body: EventBody::Erasure(Erasure {
            subject_hash: subject_hash.to_owned(),
            events_erased,
            retention_before: None,
        }),
    }
}

/// The tombstone of a found event: its body keeps only source, time and the
/// tombstone's id.
fn tombstone(e: &pb::LedgerEvent) -> Option<Tombstone> {
    let ev = e.event.as_ref()?;
    let id = tombstone_id(&ev.source, &ev.event_id);
    let body = pb::Event { event_id: id.clone(), source: ev.source.clone(), occurred_at: ev.occurred_at, kind: None };
    Some(Tombstone { offset: e.offset, event_id: id, body: body.encode_to_vec() })
}

/// Erases `subject` (see the module docs) and records it in the audit log.
pub(crate) async fn erase(
    db: &DatabaseConnection,
    subject: &Subject,
    actor: &Actor,
    now: Micros,
) -> Result<Erased, Error> {
    // The long scan runs without the lock; the lock then covers what came after it.
    let (first, mut m) = find_through(db, &Source::Sql(db), subject, ledger::head(db).await?).await?;
    let mut events = first.events;
    let mut appender = ledger::Appender::begin(db).await?;
    let head = appender.head_before();
    collect(&Source::Sql(appender.txn()), &mut m, first.through, head, &mut events).await?;
    let links = store::owned_links(appender.txn(), subject).await?;
    let tombstones: Vec<Tombstone> = events.iter().filter_map(tombstone).collect();
    let removed = store::erase_rows(appender.txn(), &tombstones, &links, now).await?;
    let subject_hash = subject.hash();
    let events_erased = events.len() as u64;
    let marker = [sql::encode(&marker(&subject_hash, events_erased, now))];
    let plan = appender.plan(&marker).await?;
    appender.write(&marker, &plan, &[]).await?;
    store::audit(appender.txn(), actor, "erase", &subject_hash, events_erased, now).await?;
    appender.commit().await?;
    Ok(Erased {
        subject_hash,
        events_erased,
        links_deleted: removed.links_deleted,
        clicks_deleted: removed.clicks_deleted,
        marker_offset: plan.first().map_or(0, |o| o.offset()),
    })
}
