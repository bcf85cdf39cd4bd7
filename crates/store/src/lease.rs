//! The scoring writer lease: which replica may commit scoring runs, with a
//! fencing token, and the run-id counter beside it (table `scoring_writer`).
//!
//! Replicas sharing one database take turns: one [`acquire`]s the lease for a
//! time-to-live and keeps [`renew`]ing it; the others try to acquire it and
//! only succeed once it expired (its holder died) or was [`release`]d. Every
//! acquisition bumps the token. A commit presents its [`Fence`] and
//! [`take_run_id`] checks it *inside the commit's transaction*, on the same
//! row a take-over updates — so a replica that lost its lease (paused past its
//! expiry, partitioned away) can never commit, however late its commit runs:
//! on PostgreSQL the row lock orders the commit and the take-over, and the
//! commit's re-checked `WHERE` sees the new token; on SQLite there is one
//! writer at a time anyway.
//!
//! Without a fence (a lone instance, the embedded default) a commit succeeds
//! only while nobody holds the lease, so a stray single-instance process
//! cannot write behind a leased writer's back either.
//!
//! Expiry uses the database's clock, so replicas' clocks may disagree.

use std::time::Duration;

use sea_orm::sea_query::Value;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::Error;

/// Proof of holding the lease: who, and which acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub holder: String,
    pub token: u64,
}

/// The lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    pub holder: Option<String>,
    pub token: u64,
    /// Micros since the epoch, by the database's clock.
    pub expires_at: i64,
    /// Micros since the epoch now, by the database's clock.
    pub now: i64,
}

impl LeaseState {
    /// Whether someone holds an unexpired lease.
    pub fn is_held(&self) -> bool {
        self.holder.is_some() && self.expires_at > self.now
    }
}

/// The database's clock in micros since the epoch, as an SQL expression.
fn now_sql(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)",
        _ => "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)",
    }
}

fn ph(backend: DbBackend, i: usize) -> String {
    if backend == DbBackend::Postgres { format!("${i}") } else { "?".to_owned() }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn token_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Takes the lease for `holder` if nobody holds an unexpired one (or `holder`
/// itself does, which re-acquires with a new token). `None` = someone else holds it.
pub async fn acquire(db: &impl ConnectionTrait, holder: &str, ttl: Duration) -> Result<Option<Fence>, Error> {
    let b = db.get_database_backend();
    let now = now_sql(b);
    let sql = format!(
        "UPDATE scoring_writer SET holder = {h}, token = token + 1, expires_at = {now} + {t} \
         WHERE id = 1 AND (holder IS NULL OR holder = {h2} OR expires_at <= {now}) RETURNING token",
        h = ph(b, 1),
        t = ph(b, 2),
        h2 = ph(b, 3),
    );
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            b,
            sql,
            [Value::from(holder.to_owned()), Value::BigInt(Some(micros(ttl))), Value::from(holder.to_owned())],
        ))
        .await?;
    Ok(match row {
        Some(r) => Some(Fence { holder: holder.to_owned(), token: token_of(r.try_get_by_index::<i64>(0)?) }),
        None => None,
    })
}

/// Extends the lease by `ttl` from now; false if it was lost (taken over).
pub async fn renew(db: &impl ConnectionTrait, fence: &Fence, ttl: Duration) -> Result<bool, Error> {
    let b = db.get_database_backend();
    let sql = format!(
        "UPDATE scoring_writer SET expires_at = {} + {} WHERE id = 1 AND holder = {} AND token = {}",
        now_sql(b),
        ph(b, 1),
        ph(b, 2),
        ph(b, 3)
    );
    let r = db
        .execute_raw(Statement::from_sql_and_values(
            b,
            sql,
            [
                Value::BigInt(Some(micros(ttl))),
                Value::from(fence.holder.clone()),
                Value::BigInt(Some(to_db(fence.token))),
            ],
        ))
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Gives the lease up (on shutdown), so another replica takes over at once.
pub async fn release(db: &impl ConnectionTrait, fence: &Fence) -> Result<(), Error> {
    let b = db.get_database_backend();
    let sql = format!(
        "UPDATE scoring_writer SET holder = NULL, expires_at = 0 WHERE id = 1 AND holder = {} AND token = {}",
        ph(b, 1),
        ph(b, 2)
    );
    db.execute_raw(Statement::from_sql_and_values(
        b,
        sql,
        [Value::from(fence.holder.clone()), Value::BigInt(Some(to_db(fence.token)))],
    ))
    .await?;
    Ok(())
}

/// The lease as stored now.
pub async fn state(db: &impl ConnectionTrait) -> Result<LeaseState, Error> {
    let b = db.get_database_backend();
    let sql = format!("SELECT holder, token, expires_at, {} FROM scoring_writer WHERE id = 1", now_sql(b));
    let r = db
        .query_one_raw(Statement::from_string(b, sql))
        .await?
        .ok_or_else(|| Error::Conflict("the scoring_writer row is missing".into()))?;
    Ok(LeaseState {
        holder: r.try_get_by_index(0)?,
        token: token_of(r.try_get_by_index(1)?),
        expires_at: r.try_get_by_index(2)?,
        now: r.try_get_by_index(3)?,
    })
}

/// Takes the next run id, checking the fence; must be the first statement of
/// the commit's transaction (a write first: on SQLite it never upgrades a read
/// snapshot, on PostgreSQL it locks the row until the commit ends).
/// [`Error::Fenced`] if `fence` no longer holds the lease, or if there is no
/// fence while someone holds it.
pub async fn take_run_id(txn: &impl ConnectionTrait, fence: Option<&Fence>) -> Result<u64, Error> {
    let b = txn.get_database_backend();
    let (cond, values) = match fence {
        Some(f) => (
            format!("holder = {} AND token = {}", ph(b, 1), ph(b, 2)),
            vec![Value::from(f.holder.clone()), Value::BigInt(Some(to_db(f.token)))],
        ),
        None => (format!("(holder IS NULL OR expires_at <= {})", now_sql(b)), Vec::new()),
    };
    let sql = format!(
        "UPDATE scoring_writer SET next_run_id = next_run_id + 1 WHERE id = 1 AND {cond} RETURNING next_run_id - 1"
    );
    match txn.query_one_raw(Statement::from_sql_and_values(b, sql, values)).await? {
        Some(r) => Ok(token_of(r.try_get_by_index::<i64>(0)?)),
        None => Err(Error::Fenced(match fence {
            Some(f) => format!("{} no longer holds the scoring writer lease (token {})", f.holder, f.token),
            None => "another replica holds the scoring writer lease".to_owned(),
        })),
    }
}

fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
