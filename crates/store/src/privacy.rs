//! Privacy: what ingestion's tables hold about one subject (an account or a
//! visitor id), erasing it, and the append-only audit log of both.
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
//! Each such row is rewritten in place as a tombstone: offset, kind, source and
//! times stay (offsets stay dense, the head stays the event count), the event id
//! becomes `erased-<sha256(source, event id)>`, the account column and the
//! attribution are cleared, the body keeps only source, time and that id, and
//! `erased_at` is set, which makes readers ([`crate::ledger::read_after_wire`])
//! skip it. A producer replaying the original event is answered as a duplicate of
//! the tombstone ([`erased_duplicates`]), so a replay cannot bring it back. The
//! subject's links and its click-index rows are deleted, an erasure marker event
//! carrying only the subject hash is appended, and the audit row is written — all
//! in the append transaction, holding the ledger lock, so no event slips between
//! the scan and the rewrite.

use std::collections::HashSet;

use lift_domain::event::Erasure;
use lift_domain::{AccountId, Event, EventBody, Micros};
use lift_proto::ingest::v1 as pb;
use lift_proto::ingest::v1::event::Kind;
use prost::Message;
use sea_orm::sea_query::Value;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::ledger::{self, Appender, to_db, to_offset};
use crate::links::Link;

/// Ledger events read per page while scanning.
const PAGE: u32 = 5_000;
/// The source of erasure marker events.
pub const MARKER_SOURCE: &str = "lift-privacy";

/// Whose data a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Account(AccountId),
    Visitor(String),
}

impl Subject {
    /// Hex SHA-256 of the subject, domain-separated: what the audit log and erasure
    /// markers carry instead of the subject. It is pseudonymous, not anonymous:
    /// whoever already knows an id can recompute its hash (which is how scoring
    /// finds what it derived from an erased account).
    pub fn hash(&self) -> String {
        match self {
            Subject::Account(a) => account_hash(a),
            Subject::Visitor(v) => digest(&["lift-privacy-v1", "visitor", v]),
        }
    }
}

/// [`Subject::hash`] of an account.
pub fn account_hash(a: &AccountId) -> String {
    digest(&["lift-privacy-v1", "account", &a.network, &a.id])
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The event id a tombstone keeps in place of `(source, event_id)`.
pub fn tombstone_id(source: &str, event_id: &str) -> String {
    format!("erased-{}", digest(&[source, event_id]))
}

/// What ingestion holds about a subject.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Its ledger events, in offset order.
    pub events: Vec<pb::LedgerEvent>,
    /// Links and codes registered to it.
    pub links: Vec<Link>,
    /// The ledger head the scan read through.
    pub through: u64,
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

/// Who asked, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub key_id: String,
    pub scope: String,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: u64,
    pub at: Micros,
    pub key_id: String,
    pub scope: String,
    /// `export` or `erase`.
    pub action: String,
    pub subject_hash: String,
    pub events: u64,
}

/// The subject's matching rules, grown by the first pass.
#[derive(Debug)]
struct Matcher {
    account: Option<AccountId>,
    posts: HashSet<String>,
    visitors: HashSet<String>,
    links: HashSet<String>,
}

fn is(r: Option<&pb::AccountRef>, a: Option<&AccountId>) -> bool {
    matches!((r, a), (Some(r), Some(a)) if r.network == a.network && r.id == a.id)
}

impl Matcher {
    fn new(subject: &Subject, links: &[Link]) -> Self {
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
async fn scan(
    db: &impl ConnectionTrait,
    mut after: u64,
    through: u64,
    mut f: impl FnMut(&pb::LedgerEvent),
) -> Result<(), Error> {
    while after < through {
        let page = ledger::read_after_wire(db, after, &[], PAGE).await?;
        let Some(last) = page.last().map(|e| e.offset) else { break };
        for e in page.iter().filter(|e| e.offset <= through) {
            f(e);
        }
        after = last;
    }
    Ok(())
}

/// Both passes over `(after, through]`: learn, then collect what matches.
async fn collect(
    db: &impl ConnectionTrait,
    m: &mut Matcher,
    after: u64,
    through: u64,
    out: &mut Vec<pb::LedgerEvent>,
) -> Result<(), Error> {
    if m.account.is_some() {
        scan(db, after, through, |e| m.learn(e)).await?;
    }
    scan(db, after, through, |e| {
        if m.involves(e) {
            out.push(e.clone());
        }
    })
    .await
}

/// Links and codes registered to the subject (only accounts own links).
async fn owned_links(db: &impl ConnectionTrait, subject: &Subject) -> Result<Vec<Link>, Error> {
    let Subject::Account(a) = subject else { return Ok(Vec::new()) };
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

    use crate::entity::link as entity;
    let rows = entity::Entity::find()
        .filter(entity::Column::OwnerNetwork.eq(a.network.as_str()))
        .filter(entity::Column::OwnerId.eq(a.id.as_str()))
        .order_by_asc(entity::Column::Link)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(Link::from).collect())
}

/// Everything the ledger and the link registry hold about `subject`.
pub async fn find(db: &impl ConnectionTrait, subject: &Subject) -> Result<Found, Error> {
    Ok(find_with(db, subject).await?.0)
}

async fn find_with(db: &impl ConnectionTrait, subject: &Subject) -> Result<(Found, Matcher), Error> {
    let through = ledger::head(db).await?;
    let links = owned_links(db, subject).await?;
    let mut m = Matcher::new(subject, &links);
    let mut events = Vec::new();
    collect(db, &mut m, 0, through, &mut events).await?;
    Ok((Found { events, links, through }, m))
}

/// Erases `subject` (see the module docs) and records it in the audit log.
pub async fn erase(db: &DatabaseConnection, subject: &Subject, actor: &Actor, now: Micros) -> Result<Erased, Error> {
    // The long scan runs without the lock; the lock then covers what came after it.
    let (first, mut m) = find_with(db, subject).await?;
    let mut events = first.events;
    let mut appender = Appender::begin(db).await?;
    let head = appender.head_before();
    collect(appender.txn(), &mut m, first.through, head, &mut events).await?;
    let links = owned_links(appender.txn(), subject).await?;
    let txn = appender.txn();
    let backend = txn.get_database_backend();
    let p = |i: usize| if backend == DbBackend::Postgres { format!("${i}") } else { "?".to_owned() };
    let update = format!(
        "UPDATE ledger_events SET event_id = {}, account = NULL, attribution = NULL, body = {}, erased_at = {} \
         WHERE ledger_offset = {}",
        p(1),
        p(2),
        p(3),
        p(4)
    );
    for e in &events {
        let Some(ev) = &e.event else { continue };
        let id = tombstone_id(&ev.source, &ev.event_id);
        let body =
            pb::Event { event_id: id.clone(), source: ev.source.clone(), occurred_at: ev.occurred_at, kind: None };
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            update.clone(),
            [
                Value::from(id),
                Value::Bytes(Some(body.encode_to_vec())),
                Value::BigInt(Some(now)),
                Value::BigInt(Some(to_db(e.offset))),
            ],
        ))
        .await?;
    }
    let mut clicks_deleted = 0;
    for chunk in events.chunks(500) {
        let list: Vec<String> = chunk.iter().map(|e| to_db(e.offset).to_string()).collect();
        // Offsets are our own integers, never client text.
        let sql = format!("DELETE FROM link_clicks WHERE click_offset IN ({})", list.join(", "));
        clicks_deleted += txn.execute_raw(Statement::from_string(backend, sql)).await?.rows_affected();
    }
    let mut links_deleted = 0;
    for l in &links {
        links_deleted += txn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                format!("DELETE FROM links WHERE link = {}", p(1)),
                [Value::from(l.link.clone())],
            ))
            .await?
            .rows_affected();
    }
    let subject_hash = subject.hash();
    let events_erased = events.len() as u64;
    let marker = Event {
        event_id: format!("erasure-{}-{now}", &subject_hash[..16]),
        source: MARKER_SOURCE.to_owned(),
        occurred_at: now,
        body: EventBody::Erasure(Erasure { subject_hash: subject_hash.clone(), events_erased }),
    };
    let plan = appender.plan(std::slice::from_ref(&marker)).await?;
    appender.write(std::slice::from_ref(&marker), &plan, &[]).await?;
    audit(appender.txn(), actor, "erase", &subject_hash, events_erased, now).await?;
    appender.commit().await?;
    Ok(Erased {
        subject_hash,
        events_erased,
        links_deleted,
        clicks_deleted,
        marker_offset: plan.first().map_or(0, |o| o.offset()),
    })
}

/// For each of `keys` (source, event id) whose event was erased, the tombstone's
/// offset: a replay of an erased event is a duplicate of its tombstone.
pub async fn erased_duplicates(db: &impl ConnectionTrait, keys: &[(&str, &str)]) -> Result<Vec<Option<u64>>, Error> {
    let backend = db.get_database_backend();
    let mut out = vec![None; keys.len()];
    for (c, chunk) in keys.chunks(500).enumerate() {
        let sources: Vec<String> = chunk.iter().map(|(s, _)| (*s).to_owned()).collect();
        let ids: Vec<String> = chunk.iter().map(|(s, e)| tombstone_id(s, e)).collect();
        let (sql, params): (String, Vec<Value>) = if backend == DbBackend::Postgres {
            (
                "SELECT l.source, l.event_id, l.ledger_offset \
                 FROM UNNEST($1::text[], $2::text[]) AS k(source, event_id) \
                 JOIN ledger_events l ON l.source = k.source AND l.event_id = k.event_id \
                 WHERE l.erased_at IS NOT NULL"
                    .to_owned(),
                vec![Value::from(sources), Value::from(ids.clone())],
            )
        } else {
            (
                format!(
                    "SELECT l.source, l.event_id, l.ledger_offset FROM (VALUES {}) AS k \
                     JOIN ledger_events l ON l.source = k.column1 AND l.event_id = k.column2 \
                     WHERE l.erased_at IS NOT NULL",
                    vec!["(?, ?)"; chunk.len()].join(", ")
                ),
                sources
                    .into_iter()
                    .zip(ids.iter().cloned())
                    .flat_map(|(s, i)| [Value::from(s), Value::from(i)])
                    .collect(),
            )
        };
        for r in db.query_all_raw(Statement::from_sql_and_values(backend, sql, params)).await? {
            let (source, id): (String, String) = (r.try_get_by_index(0)?, r.try_get_by_index(1)?);
            let offset = to_offset(r.try_get_by_index::<i64>(2)?)?;
            for (i, (s, _)) in chunk.iter().enumerate() {
                if ids[i] == id && *s == source {
                    out[c * 500 + i] = Some(offset);
                }
            }
        }
    }
    Ok(out)
}

/// Whether any event was ever erased (cheap: the audit log is small).
pub async fn any_erased(db: &impl ConnectionTrait) -> Result<bool, Error> {
    let sql = "SELECT 1 FROM privacy_audit WHERE action = 'erase' LIMIT 1";
    Ok(db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await?.is_some())
}

/// Appends an audit record. There is no function that changes or deletes one.
pub async fn audit(
    db: &impl ConnectionTrait,
    actor: &Actor,
    action: &str,
    subject_hash: &str,
    events: u64,
    now: Micros,
) -> Result<(), Error> {
    let backend = db.get_database_backend();
    let sql = if backend == DbBackend::Postgres {
        "INSERT INTO privacy_audit (at, key_id, scope, action, subject_hash, events) VALUES ($1, $2, $3, $4, $5, $6)"
    } else {
        "INSERT INTO privacy_audit (at, key_id, scope, action, subject_hash, events) VALUES (?, ?, ?, ?, ?, ?)"
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [
            Value::BigInt(Some(now)),
            Value::from(actor.key_id.clone()),
            Value::from(actor.scope.clone()),
            Value::from(action.to_owned()),
            Value::from(subject_hash.to_owned()),
            Value::BigInt(Some(to_db(events))),
        ],
    ))
    .await?;
    Ok(())
}

/// Up to `limit` audit records with id above `after_id`, oldest first.
pub async fn list_audit(db: &impl ConnectionTrait, after_id: u64, limit: u32) -> Result<Vec<AuditEntry>, Error> {
    let backend = db.get_database_backend();
    let sql = if backend == DbBackend::Postgres {
        "SELECT id, at, key_id, scope, action, subject_hash, events FROM privacy_audit WHERE id > $1 ORDER BY id LIMIT $2"
    } else {
        "SELECT id, at, key_id, scope, action, subject_hash, events FROM privacy_audit WHERE id > ? ORDER BY id LIMIT ?"
    };
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [Value::BigInt(Some(to_db(after_id))), Value::BigInt(Some(i64::from(limit)))],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                id: to_offset(r.try_get_by_index::<i64>(0)?)?,
                at: r.try_get_by_index(1)?,
                key_id: r.try_get_by_index(2)?,
                scope: r.try_get_by_index(3)?,
                action: r.try_get_by_index(4)?,
                subject_hash: r.try_get_by_index(5)?,
                events: to_offset(r.try_get_by_index::<i64>(6)?)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
