//! The append-only event ledger.
//!
//! # Offsets and the outbox bug
//! A subscriber reads `offset > last_seen`. If offsets came from a sequence, two
//! concurrent appenders could take 7 and 8, the one with 8 commit first, the
//! subscriber read 8 and move past 7, and 7 commit a moment later: skipped forever.
//! Here every append transaction first updates the single `ledger_head` row (the
//! row lock on PostgreSQL, the write lock on SQLite) and holds it until commit.
//! An appender therefore only reads the head after the previous one committed and
//! became visible, so commit order equals offset order and offsets are dense
//! (`head` = number of events). The price is one writer at a time per database,
//! which the batched inserts below make cheap.
//!
//! # Writes
//! [`Appender`] is the two-step form the ingestion service uses so it can compute
//! attribution inside the same transaction, knowing each new event's offset:
//! [`Appender::plan`] (dedupe and assign offsets), then [`Appender::write`], then
//! [`Appender::commit`]. Fresh events are the common case, so
//! [`Appender::plan_new`] + [`Appender::write_new`] skip the dedupe lookup and
//! insert with `ON CONFLICT DO NOTHING` inside a savepoint; if any event turns out
//! to be stored already, the savepoint is rolled back and the caller plans properly. [`append`] does all three for callers that need no
//! enrichment. Rows go in with one `INSERT ... SELECT FROM UNNEST(...)` per batch
//! on PostgreSQL and prepared multi-row `INSERT`s on SQLite.
//!
//! # Bytes and columns
//! The ledger does not know the wire format. A row's body and attribution are
//! bytes encoded by the ledger's owner (ingestion, `lift_ingest::ledger::sql`,
//! which also decodes them for every reader); the store keeps them as given and
//! indexes the columns it needs itself: the dedupe key (source, event id), the
//! kind for filtered reads, the primary account and the times. [`NewEvent::new`]
//! derives those columns from the domain event, so they mean the same whoever
//! writes.

use std::collections::HashMap;

use lift_domain::{Event, EventKind, Micros};
use sea_orm::sea_query::{ArrayType, Value};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, QueryResult, Statement, TransactionTrait,
};

use crate::Error;

/// What happened to one event of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now at this offset.
    Accepted(u64),
    /// Already stored (earlier, or earlier in the same batch) at this offset.
    Duplicate(u64),
}

impl Outcome {
    pub fn offset(self) -> u64 {
        match self {
            Outcome::Accepted(o) | Outcome::Duplicate(o) => o,
        }
    }

    pub fn is_accepted(self) -> bool {
        matches!(self, Outcome::Accepted(_))
    }
}

/// One event to append: its encoded body and the columns the ledger indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub source: String,
    pub event_id: String,
    pub kind: EventKind,
    pub occurred_at: Micros,
    /// The account the event is primarily about, `network:id` (see
    /// [`Event::primary_account`]).
    pub account: Option<String>,
    /// The encoded event, stored as given.
    pub body: Vec<u8>,
}

impl NewEvent {
    /// `e`'s indexed columns with `body`, its encoding.
    pub fn new(e: &Event, body: Vec<u8>) -> Self {
        Self {
            source: e.source.clone(),
            event_id: e.event_id.clone(),
            kind: e.kind(),
            occurred_at: e.occurred_at,
            account: e.primary_account().map(ToString::to_string),
            body,
        }
    }
}

/// One live event read back: the bytes as they were written, and what the ledger
/// added (its offset and ingestion time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub offset: u64,
    pub ingested_at: Micros,
    /// The encoded attribution, when the event was written with one.
    pub attribution: Option<Vec<u8>>,
    /// The encoded event.
    pub body: Vec<u8>,
}

/// SQLite rows per multi-row `INSERT`: 9 parameters each stays well under
/// SQLite's 32766-variable limit, and a fixed size keeps the statement cached.
const SQLITE_INSERT_CHUNK: usize = 500;
/// (source, event_id) pairs per dedupe lookup on SQLite.
const SQLITE_LOOKUP_CHUNK: usize = 500;

/// An open append transaction holding the ledger's write lock.
#[derive(Debug)]
pub struct Appender {
    txn: DatabaseTransaction,
    head_before: u64,
    next: u64,
    backend: DbBackend,
}

impl Appender {
    /// Starts a transaction and takes the ledger lock; other appenders wait here
    /// until this one commits or rolls back.
    pub async fn begin(db: &DatabaseConnection) -> Result<Self, Error> {
        let backend = db.get_database_backend();
        let txn = db.begin().await?;
        // A write as the first statement: on SQLite it takes the write lock at once
        // (a read first would risk SQLITE_BUSY_SNAPSHOT when upgrading); on
        // PostgreSQL it locks the head row until commit.
        let row = txn
            .query_one_raw(Statement::from_string(
                backend,
                "UPDATE ledger_head SET head = head WHERE id = 1 RETURNING head",
            ))
            .await?
            .ok_or_else(|| Error::Corrupt { offset: 0, reason: "the ledger_head row is missing".into() })?;
        let head = to_offset(row.try_get_by_index::<i64>(0)?)?;
        Ok(Self { txn, head_before: head, next: head + 1, backend })
    }

    /// The transaction, for reads and writes that must commit with the events.
    pub fn txn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// The head when this transaction took the lock.
    pub fn head_before(&self) -> u64 {
        self.head_before
    }

    /// Assigns each event its outcome: a duplicate of a stored event, or of an
    /// earlier event in `events`, gets the original's offset; the rest get the next
    /// offsets in order. Call [`Appender::write`] with the result before planning again.
    pub async fn plan(&mut self, events: &[NewEvent]) -> Result<Vec<Outcome>, Error> {
        let stored = self.lookup(events).await?;
        let mut seen: HashMap<(&str, &str), u64> = HashMap::with_capacity(events.len());
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let key = (e.source.as_str(), e.event_id.as_str());
            if let Some(&o) = stored.get(&(e.source.clone(), e.event_id.clone())) {
                out.push(Outcome::Duplicate(o));
            } else if let Some(&o) = seen.get(&key) {
                out.push(Outcome::Duplicate(o));
            } else {
                let o = self.next;
                self.next += 1;
                seen.insert(key, o);
                out.push(Outcome::Accepted(o));
            }
        }
        Ok(out)
    }

    /// Like [`Appender::plan`] but assumes no event is stored yet (repeats within
    /// `events` are still duplicates). Write it with [`Appender::write_new`], which
    /// checks the assumption.
    pub fn plan_new(&mut self, events: &[NewEvent]) -> Vec<Outcome> {
        let mut seen: HashMap<(&str, &str), u64> = HashMap::with_capacity(events.len());
        events
            .iter()
            .map(|e| match seen.get(&(e.source.as_str(), e.event_id.as_str())) {
                Some(&o) => Outcome::Duplicate(o),
                None => {
                    let o = self.next;
                    self.next += 1;
                    seen.insert((e.source.as_str(), e.event_id.as_str()), o);
                    Outcome::Accepted(o)
                }
            })
            .collect()
    }

    /// Writes a [`Appender::plan_new`] plan. Returns `None`, having written nothing
    /// and released the plan's offsets, when some event was already stored: then
    /// [`Appender::plan`] and [`Appender::write`] must be used instead.
    pub async fn write_new(
        &mut self,
        events: &[NewEvent],
        plan: &[Outcome],
        attributions: &[Option<Vec<u8>>],
    ) -> Result<Option<usize>, Error> {
        let rows = rows(events, plan, attributions);
        let n = rows.len();
        let first = rows.first().map(|r| r.offset);
        if n == 0 {
            return Ok(Some(0));
        }
        let savepoint = self.txn.begin().await?;
        let inserted = match self.backend {
            DbBackend::Postgres => insert_unnest(&savepoint, rows, true).await?,
            _ => insert_multi_row(&savepoint, self.backend, rows, true).await?,
        };
        if inserted == n as u64 {
            savepoint.commit().await?;
            Ok(Some(n))
        } else {
            savepoint.rollback().await?;
            self.next = first.and_then(|o| u64::try_from(o).ok()).unwrap_or(self.next);
            Ok(None)
        }
    }

    /// Writes the accepted events of `plan` with their encoded attribution
    /// (`attributions[i]` belongs to `events[i]`; missing entries mean none).
    pub async fn write(
        &mut self,
        events: &[NewEvent],
        plan: &[Outcome],
        attributions: &[Option<Vec<u8>>],
    ) -> Result<usize, Error> {
        let rows = rows(events, plan, attributions);
        let n = rows.len();
        if n == 0 {
            return Ok(0);
        }
        match self.backend {
            DbBackend::Postgres => insert_unnest(&self.txn, rows, false).await?,
            _ => insert_multi_row(&self.txn, self.backend, rows, false).await?,
        };
        Ok(n)
    }

    /// Publishes the new head and commits. Returns the head after the commit.
    pub async fn commit(self) -> Result<u64, Error> {
        let head = self.next - 1;
        if head != self.head_before {
            self.txn
                .execute_raw(Statement::from_sql_and_values(
                    self.backend,
                    match self.backend {
                        DbBackend::Postgres => "UPDATE ledger_head SET head = $1 WHERE id = 1",
                        _ => "UPDATE ledger_head SET head = ? WHERE id = 1",
                    },
                    [Value::BigInt(Some(to_db(head)))],
                ))
                .await?;
        }
        self.txn.commit().await?;
        Ok(head)
    }

    /// Stored offsets of those events that are already in the ledger.
    async fn lookup(&self, events: &[NewEvent]) -> Result<HashMap<(String, String), u64>, Error> {
        let mut found = HashMap::new();
        if events.is_empty() {
            return Ok(found);
        }
        let rows = match self.backend {
            DbBackend::Postgres => {
                let sources: Vec<String> = events.iter().map(|e| e.source.clone()).collect();
                let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
                self.txn
                    .query_all_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT l.source, l.event_id, l.ledger_offset \
                         FROM UNNEST($1::text[], $2::text[]) AS k(source, event_id) \
                         JOIN ledger_events l ON l.source = k.source AND l.event_id = k.event_id",
                        [Value::from(sources), Value::from(ids)],
                    ))
                    .await?
            }
            backend => {
                let mut all = Vec::new();
                for chunk in events.chunks(SQLITE_LOOKUP_CHUNK) {
                    let values = vec!["(?, ?)"; chunk.len()].join(", ");
                    let sql = format!(
                        "SELECT l.source, l.event_id, l.ledger_offset FROM (VALUES {values}) AS k \
                         JOIN ledger_events l ON l.source = k.column1 AND l.event_id = k.column2"
                    );
                    let params: Vec<Value> = chunk
                        .iter()
                        .flat_map(|e| [Value::from(e.source.clone()), Value::from(e.event_id.clone())])
                        .collect();
                    all.extend(self.txn.query_all_raw(Statement::from_sql_and_values(backend, sql, params)).await?);
                }
                all
            }
        };
        for r in rows {
            let source: String = r.try_get_by_index(0)?;
            let event_id: String = r.try_get_by_index(1)?;
            let offset = to_offset(r.try_get_by_index::<i64>(2)?)?;
            found.insert((source, event_id), offset);
        }
        Ok(found)
    }
}

/// Appends `events` without attribution; see [`Appender`] for the guarantees.
pub async fn append(db: &DatabaseConnection, events: &[NewEvent]) -> Result<Vec<Outcome>, Error> {
    let mut a = Appender::begin(db).await?;
    let plan = a.plan(events).await?;
    a.write(events, &plan, &[]).await?;
    a.commit().await?;
    Ok(plan)
}

/// The rows of the accepted events of `plan`.
fn rows(events: &[NewEvent], plan: &[Outcome], attributions: &[Option<Vec<u8>>]) -> Vec<Row> {
    let ingested_at = lift_domain::time::now();
    events
        .iter()
        .zip(plan)
        .enumerate()
        .filter_map(|(i, (e, o))| match o {
            Outcome::Accepted(offset) => {
                Some(Row::new(*offset, e, attributions.get(i).cloned().flatten(), ingested_at))
            }
            Outcome::Duplicate(_) => None,
        })
        .collect()
}

/// Appended to an insert that may meet stored events: they are skipped and the
/// affected-row count tells. Without it such an event is a unique violation.
const SKIP_STORED: &str = " ON CONFLICT (source, event_id) DO NOTHING";

/// One ledger row, ready for either insert path.
struct Row {
    offset: i64,
    source: String,
    event_id: String,
    kind: i16,
    occurred_at: i64,
    ingested_at: i64,
    account: Option<String>,
    attribution: Option<Vec<u8>>,
    body: Vec<u8>,
}

impl Row {
    fn new(offset: u64, e: &NewEvent, attribution: Option<Vec<u8>>, ingested_at: Micros) -> Self {
        Self {
            offset: to_db(offset),
            source: e.source.clone(),
            event_id: e.event_id.clone(),
            kind: e.kind.code(),
            occurred_at: e.occurred_at,
            ingested_at,
            account: e.account.clone(),
            attribution,
            body: e.body.clone(),
        }
    }
}

/// Returns the number of rows inserted.
async fn insert_unnest(txn: &DatabaseTransaction, rows: Vec<Row>, skip_stored: bool) -> Result<u64, Error> {
    let n = rows.len();
    let ingested_at = rows.first().map(|r| r.ingested_at).unwrap_or_default();
    let (mut offsets, mut sources, mut ids, mut kinds, mut times) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut accounts, mut attrs, mut bodies) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for r in rows {
        offsets.push(Value::BigInt(Some(r.offset)));
        sources.push(Value::String(Some(r.source)));
        ids.push(Value::String(Some(r.event_id)));
        kinds.push(Value::SmallInt(Some(r.kind)));
        times.push(Value::BigInt(Some(r.occurred_at)));
        // The array binding carries no NULL elements: empty stands for NULL and
        // NULLIF restores it (an account id or an encoded attribution is never empty).
        accounts.push(Value::String(Some(r.account.unwrap_or_default())));
        attrs.push(Value::Bytes(Some(r.attribution.unwrap_or_default())));
        bodies.push(Value::Bytes(Some(r.body)));
    }
    let arr = |t: ArrayType, v: Vec<Value>| Value::Array(t, Some(Box::new(v)));
    let sql = format!(
        "INSERT INTO ledger_events \
           (ledger_offset, source, event_id, kind, occurred_at, ingested_at, account, attribution, body) \
         SELECT o, s, e, k, t, $6, NULLIF(a, ''), NULLIF(at, '\\x'::bytea), b \
         FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], \
                     $7::text[], $8::bytea[], $9::bytea[]) AS u(o, s, e, k, t, a, at, b){}",
        if skip_stored { SKIP_STORED } else { "" }
    );
    let res = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [
                arr(ArrayType::BigInt, offsets),
                arr(ArrayType::String, sources),
                arr(ArrayType::String, ids),
                arr(ArrayType::SmallInt, kinds),
                arr(ArrayType::BigInt, times),
                Value::BigInt(Some(ingested_at)),
                arr(ArrayType::String, accounts),
                arr(ArrayType::Bytes, attrs),
                arr(ArrayType::Bytes, bodies),
            ],
        ))
        .await?;
    Ok(res.rows_affected())
}

/// Returns the number of rows inserted.
async fn insert_multi_row(
    txn: &DatabaseTransaction,
    backend: DbBackend,
    rows: Vec<Row>,
    skip_stored: bool,
) -> Result<u64, Error> {
    let mut inserted = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Row> = rows.by_ref().take(SQLITE_INSERT_CHUNK).collect();
        let sql = format!(
            "INSERT INTO ledger_events \
               (ledger_offset, source, event_id, kind, occurred_at, ingested_at, account, attribution, body) \
             VALUES {}{}",
            vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", "),
            if skip_stored { SKIP_STORED } else { "" }
        );
        let mut params = Vec::with_capacity(chunk.len() * 9);
        for r in chunk {
            params.extend([
                Value::BigInt(Some(r.offset)),
                Value::String(Some(r.source)),
                Value::String(Some(r.event_id)),
                Value::SmallInt(Some(r.kind)),
                Value::BigInt(Some(r.occurred_at)),
                Value::BigInt(Some(r.ingested_at)),
                Value::String(r.account),
                Value::Bytes(r.attribution),
                Value::Bytes(Some(r.body)),
            ]);
        }
        inserted += txn.execute_raw(Statement::from_sql_and_values(backend, sql, params)).await?.rows_affected();
    }
    Ok(inserted)
}

/// The offset of the last committed event (0 when the ledger is empty). Offsets are
/// dense, so this is also the number of stored events.
pub async fn head(db: &impl ConnectionTrait) -> Result<u64, Error> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT head FROM ledger_head WHERE id = 1"))
        .await?
        .ok_or_else(|| Error::Corrupt { offset: 0, reason: "the ledger_head row is missing".into() })?;
    to_offset(row.try_get_by_index::<i64>(0)?)
}

/// Up to `limit` events with offset greater than `after`, in offset order, only of
/// `kinds` (all kinds when empty), as stored. Tombstones of erased events
/// (`crate::privacy`) are left out: their offsets stay taken, so a reader sees a
/// gap there, as with a kind filter.
pub async fn read_after(
    db: &impl ConnectionTrait,
    after: u64,
    kinds: &[EventKind],
    limit: u32,
) -> Result<Vec<StoredEvent>, Error> {
    let backend = db.get_database_backend();
    let p = |i: usize| if backend == DbBackend::Postgres { format!("${i}") } else { "?".to_owned() };
    let mut sql = format!(
        "SELECT ledger_offset, ingested_at, attribution, body FROM ledger_events \
         WHERE ledger_offset > {} AND erased_at IS NULL",
        p(1)
    );
    let mut params = vec![Value::BigInt(Some(to_db(after)))];
    if !kinds.is_empty() && kinds.len() < EventKind::ALL.len() {
        let list: Vec<String> = kinds.iter().map(|k| k.code().to_string()).collect();
        // Kind codes are our own small integers, never client text.
        sql.push_str(&format!(" AND kind IN ({})", list.join(", ")));
    }
    sql.push_str(&format!(" ORDER BY ledger_offset LIMIT {}", p(2)));
    params.push(Value::BigInt(Some(i64::from(limit))));
    let rows = db.query_all_raw(Statement::from_sql_and_values(backend, sql, params)).await?;
    rows.iter().map(stored).collect()
}

fn stored(r: &QueryResult) -> Result<StoredEvent, Error> {
    Ok(StoredEvent {
        offset: to_offset(r.try_get_by_index::<i64>(0)?)?,
        ingested_at: r.try_get_by_index(1)?,
        attribution: r.try_get_by_index(2)?,
        body: r.try_get_by_index(3)?,
    })
}

pub(crate) fn to_offset(v: i64) -> Result<u64, Error> {
    u64::try_from(v).map_err(|_| Error::Corrupt { offset: 0, reason: format!("negative offset {v}") })
}

/// Offsets stay far below `i64::MAX`; saturating keeps the conversion total.
pub(crate) fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
