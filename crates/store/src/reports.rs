//! Campaign report aggregates, kept by matching's ledger consumer.
//!
//! One row per offered campaign holds its report state (opaque to the store:
//! the caller's serialised builder, with the format it was written in) and the
//! summary a report is answered from. `report_consumer` holds the one ledger
//! position every aggregate is current at. [`commit`] writes aggregates and the
//! new position in one transaction, and only if the position is still the one
//! the caller started from (compare-and-set): a crash before the commit makes
//! the consumer read the events again, a crash after it never reads them
//! twice, and of two consumers on one database only one can commit a step.

use sea_orm::sea_query::Value;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::Error;

/// One campaign's aggregate as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    pub campaign_id: String,
    /// Format of `state`, the caller's business; a reader that does not know it rebuilds.
    pub format_version: u32,
    pub state: String,
    pub summary: String,
}

/// What a report is answered from: the consumer's committed position and, if
/// the campaign has an aggregate yet, its summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub position: u64,
    pub summary: Option<String>,
}

fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn ph(backend: DbBackend, i: usize) -> String {
    if backend == DbBackend::Postgres { format!("${i}") } else { "?".to_owned() }
}

/// The consumer's committed position (0 before its first commit).
pub async fn position(db: &impl ConnectionTrait) -> Result<u64, Error> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(backend, "SELECT position FROM report_consumer WHERE id = 1".to_owned()))
        .await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.map_or(0, from_db))
}

/// The committed position and `campaign_id`'s summary, read in one statement
/// so that the two belong together.
pub async fn current(db: &impl ConnectionTrait, campaign_id: &str) -> Result<Current, Error> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT COALESCE((SELECT position FROM report_consumer WHERE id = 1), 0),
                (SELECT summary FROM report_aggregates WHERE campaign_id = {})",
        ph(backend, 1)
    );
    let row =
        db.query_one_raw(Statement::from_sql_and_values(backend, sql, [Value::from(campaign_id.to_owned())])).await?;
    let Some(r) = row else { return Ok(Current { position: 0, summary: None }) };
    Ok(Current { position: from_db(r.try_get_by_index(0)?), summary: r.try_get_by_index(1)? })
}

/// Every stored aggregate, with its state, ordered by campaign.
pub async fn load_all(db: &impl ConnectionTrait) -> Result<Vec<Aggregate>, Error> {
    let backend = db.get_database_backend();
    let sql = "SELECT campaign_id, format_version, state, summary FROM report_aggregates ORDER BY campaign_id";
    let rows = db.query_all_raw(Statement::from_string(backend, sql.to_owned())).await?;
    rows.iter()
        .map(|r| {
            Ok(Aggregate {
                campaign_id: r.try_get_by_index(0)?,
                format_version: u32::try_from(r.try_get_by_index::<i64>(1)?).unwrap_or(u32::MAX),
                state: r.try_get_by_index(2)?,
                summary: r.try_get_by_index(3)?,
            })
        })
        .collect()
}

/// A campaign with offers and no aggregate yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub campaign_id: String,
    pub brand_id: String,
}

/// Campaigns with offers but no aggregate yet, ordered by id.
pub async fn pending_campaigns(db: &impl ConnectionTrait) -> Result<Vec<Pending>, Error> {
    let backend = db.get_database_backend();
    let sql = "SELECT c.id, c.brand_id FROM campaigns c WHERE c.state = 2 AND c.offers_offset IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM report_aggregates a WHERE a.campaign_id = c.id) ORDER BY c.id";
    let rows = db.query_all_raw(Statement::from_string(backend, sql.to_owned())).await?;
    rows.iter().map(|r| Ok(Pending { campaign_id: r.try_get_by_index(0)?, brand_id: r.try_get_by_index(1)? })).collect()
}

/// Drops an aggregate (one its reader cannot decode), so that it is rebuilt.
pub async fn remove(db: &impl ConnectionTrait, campaign_id: &str) -> Result<(), Error> {
    let backend = db.get_database_backend();
    let sql = format!("DELETE FROM report_aggregates WHERE campaign_id = {}", ph(backend, 1));
    db.execute_raw(Statement::from_sql_and_values(backend, sql, [Value::from(campaign_id.to_owned())])).await?;
    Ok(())
}

/// Moves the position from `from` to `to` and writes `aggregates` (inserted or
/// replaced), all in one transaction. Returns false, writing nothing, when the
/// committed position is no longer `from` (another consumer moved it).
pub async fn commit(
    db: &DatabaseConnection,
    from: u64,
    to: u64,
    aggregates: &[Aggregate],
    now: i64,
) -> Result<bool, Error> {
    let txn = crate::begin_write(db).await?;
    let backend = txn.get_database_backend();
    let init = format!(
        "INSERT INTO report_consumer (id, position, updated_at) VALUES (1, 0, {}) ON CONFLICT (id) DO NOTHING",
        ph(backend, 1)
    );
    txn.execute_raw(Statement::from_sql_and_values(backend, init, [Value::BigInt(Some(now))])).await?;
    let cas = format!(
        "UPDATE report_consumer SET position = {}, updated_at = {} WHERE id = 1 AND position = {}",
        ph(backend, 1),
        ph(backend, 2),
        ph(backend, 3)
    );
    let moved = txn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            cas,
            [Value::BigInt(Some(to_db(to))), Value::BigInt(Some(now)), Value::BigInt(Some(to_db(from)))],
        ))
        .await?;
    if moved.rows_affected() != 1 {
        txn.rollback().await?;
        return Ok(false);
    }
    let upsert = format!(
        "INSERT INTO report_aggregates (campaign_id, format_version, state, summary, updated_at)
         VALUES ({}, {}, {}, {}, {})
         ON CONFLICT (campaign_id) DO UPDATE SET format_version = excluded.format_version,
           state = excluded.state, summary = excluded.summary, updated_at = excluded.updated_at",
        ph(backend, 1),
        ph(backend, 2),
        ph(backend, 3),
        ph(backend, 4),
        ph(backend, 5)
    );
    for a in aggregates {
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            upsert.clone(),
            [
                Value::from(a.campaign_id.clone()),
                Value::BigInt(Some(i64::from(a.format_version))),
                Value::from(a.state.clone()),
                Value::from(a.summary.clone()),
                Value::BigInt(Some(now)),
            ],
        ))
        .await?;
    }
    txn.commit().await?;
    Ok(true)
}

/// The checks both backends run (see `tests/backends.rs` for PostgreSQL).
#[cfg(any(test, feature = "testing"))]
pub async fn exercise(db: &DatabaseConnection) -> Result<(), Error> {
    let agg = |id: &str, s: &str| Aggregate {
        campaign_id: id.to_owned(),
        format_version: 1,
        state: format!("state-{s}"),
        summary: format!("summary-{s}"),
    };
    assert_eq!(position(db).await?, 0);
    assert_eq!(current(db, "c1").await?, Current { position: 0, summary: None });
    assert!(commit(db, 0, 10, &[agg("c1", "a")], 1).await?);
    // A stale start position commits nothing.
    assert!(!commit(db, 0, 20, &[agg("c1", "stale")], 2).await?);
    assert_eq!(current(db, "c1").await?, Current { position: 10, summary: Some("summary-a".to_owned()) });
    assert!(commit(db, 10, 25, &[agg("c1", "b"), agg("c2", "x")], 3).await?);
    assert_eq!(position(db).await?, 25);
    let all = load_all(db).await?;
    assert_eq!(all, vec![agg("c1", "b"), agg("c2", "x")]);
    remove(db, "c2").await?;
    assert_eq!(current(db, "c2").await?, Current { position: 25, summary: None });
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Pins the compare-and-set commit, upserts, reads and removal on SQLite.
    #[tokio::test]
    async fn commits_only_from_the_committed_position() {
        let db = crate::connect("sqlite::memory:").await.expect("connect");
        super::exercise(&db).await.expect("exercise");
        assert!(super::pending_campaigns(&db).await.expect("pending").is_empty());
    }
}
