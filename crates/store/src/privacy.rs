//! Privacy: the storage side of a subject's export and erasure (an account or a
//! visitor id), and the append-only audit log of both.
//!
//! Which ledger events involve a subject, and what a tombstone's body holds, are
//! decided where the events are decoded: ingestion (`lift_ingest`'s privacy
//! module), which finds them by reading the ledger ([`crate::ledger::read_after`])
//! and erases them inside one [`crate::ledger::Appender`] transaction, holding the
//! ledger lock so no event slips between the scan and the rewrite. This module
//! offers what that needs:
//! - [`Subject::hash`] and [`tombstone_id`]: the subject hash the audit log and
//!   erasure markers carry, and the event id a tombstone keeps;
//! - [`owned_links`]: the links and codes registered to a subject;
//! - [`erase_rows`]: rewrites rows in place as tombstones and deletes the
//!   subject's links and click-index rows. A tombstone keeps offset, kind,
//!   source and times (offsets stay dense, the head stays the event count), its
//!   event id becomes [`tombstone_id`], the account column and the attribution
//!   are cleared, the body is replaced, and `erased_at` is set, which makes
//!   readers ([`crate::ledger::read_after`]) skip it;
//! - [`forget`]: the part of that outside the ledger (links and click-index
//!   rows), alone, for a ledger that lives outside the database (JetStream);
//! - [`erased_duplicates`]: a producer replaying an erased event is answered as a
//!   duplicate of the tombstone, so a replay cannot bring it back;
//! - [`audit`] and [`list_audit`]: the audit log.

use lift_domain::{AccountId, Micros};
use sea_orm::sea_query::Value;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::ledger::{to_db, to_offset};
use crate::links::Link;

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

/// The hash a retention run's marker and audit row carry in place of a
/// subject's: it names the cutoff (µs since the epoch), not a person.
pub fn retention_hash(cutoff: Micros) -> String {
    digest(&["lift-privacy-v1", "retention", &cutoff.to_string()])
}

/// A live ledger row that occurred before a retention cutoff: what its
/// tombstone needs (the body is rebuilt from these, not decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub offset: u64,
    pub source: String,
    pub event_id: String,
    pub occurred_at: Micros,
}

/// Every live (not yet erased) ledger row that occurred before `cutoff`, except
/// privacy markers (`kind` 9: they name no person, and a consumer catching up
/// must still see that an erasure happened), in offset order. There is no index
/// on the occurrence time (it would cost every append a B-tree insert), so this
/// reads the table once — run it in the append transaction
/// ([`crate::ledger::Appender::txn`]) that rewrites the rows.
pub async fn expired(db: &impl ConnectionTrait, cutoff: Micros) -> Result<Vec<Expired>, Error> {
    let backend = db.get_database_backend();
    let p = if backend == DbBackend::Postgres { "$1" } else { "?" };
    let marker = lift_domain::event::EventKind::Erasure as i16;
    let sql = format!(
        "SELECT ledger_offset, source, event_id, occurred_at FROM ledger_events \
         WHERE occurred_at < {p} AND erased_at IS NULL AND kind <> {marker} ORDER BY ledger_offset"
    );
    let rows = db.query_all_raw(Statement::from_sql_and_values(backend, sql, [Value::BigInt(Some(cutoff))])).await?;
    rows.iter()
        .map(|r| {
            Ok(Expired {
                offset: to_offset(r.try_get_by_index::<i64>(0)?)?,
                source: r.try_get_by_index(1)?,
                event_id: r.try_get_by_index(2)?,
                occurred_at: r.try_get_by_index(3)?,
            })
        })
        .collect()
}

/// The event id a tombstone keeps in place of `(source, event_id)`.
pub fn tombstone_id(source: &str, event_id: &str) -> String {
    format!("erased-{}", digest(&[source, event_id]))
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
    /// `export`, `erase` or `retention`.
    pub action: String,
    pub subject_hash: String,
    pub events: u64,
}

/// Links and codes registered to the subject (only accounts own links), by link.
pub async fn owned_links(db: &impl ConnectionTrait, subject: &Subject) -> Result<Vec<Link>, Error> {
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

/// One ledger row to rewrite as a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub offset: u64,
    /// The event id it keeps: [`tombstone_id`] of the original's source and id.
    pub event_id: String,
    /// The encoded body it keeps in place of the event's.
    pub body: Vec<u8>,
}

/// What [`erase_rows`] deleted besides rewriting the rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub links_deleted: u64,
    pub clicks_deleted: u64,
}

/// Rewrites each of `tombstones` in place (see the module docs) as erased at
/// `now`, deletes the click-index rows of their offsets, and deletes `links`.
/// Run it in the append transaction ([`crate::ledger::Appender::txn`]) that found
/// the rows.
pub async fn erase_rows(
    txn: &DatabaseTransaction,
    tombstones: &[Tombstone],
    links: &[Link],
    now: Micros,
) -> Result<Removed, Error> {
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
    for t in tombstones {
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            update.clone(),
            [
                Value::from(t.event_id.clone()),
                Value::Bytes(Some(t.body.clone())),
                Value::BigInt(Some(now)),
                Value::BigInt(Some(to_db(t.offset))),
            ],
        ))
        .await?;
    }
    let offsets: Vec<u64> = tombstones.iter().map(|t| t.offset).collect();
    forget(txn, &offsets, links).await
}

/// Deletes the click-index rows of the erased events at `offsets` and the
/// subject's `links`: what [`erase_rows`] does besides rewriting the ledger
/// rows, and all there is to do in the SQL database when the ledger lives
/// elsewhere (a JetStream ledger erases its messages itself).
pub async fn forget(db: &impl ConnectionTrait, offsets: &[u64], links: &[Link]) -> Result<Removed, Error> {
    let backend = db.get_database_backend();
    let p = |i: usize| if backend == DbBackend::Postgres { format!("${i}") } else { "?".to_owned() };
    let mut clicks_deleted = 0;
    for chunk in offsets.chunks(500) {
        let list: Vec<String> = chunk.iter().map(|o| to_db(*o).to_string()).collect();
        // Offsets are our own integers, never client text.
        let sql = format!("DELETE FROM link_clicks WHERE click_offset IN ({})", list.join(", "));
        clicks_deleted += db.execute_raw(Statement::from_string(backend, sql)).await?.rows_affected();
    }
    let mut links_deleted = 0;
    for l in links {
        links_deleted += db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                format!("DELETE FROM links WHERE link = {}", p(1)),
                [Value::from(l.link.clone())],
            ))
            .await?
            .rows_affected();
    }
    Ok(Removed { links_deleted, clicks_deleted })
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

/// Whether any event was ever erased or removed by retention (cheap: the audit
/// log is small).
pub async fn any_erased(db: &impl ConnectionTrait) -> Result<bool, Error> {
    let sql = "SELECT 1 FROM privacy_audit WHERE action IN ('erase', 'retention') LIMIT 1";
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
