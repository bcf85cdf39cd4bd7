//! Scoring checkpoints: opaque engine-state bytes at a ledger offset.
//!
//! [`write`] stores the bytes in chunks of [`CHUNK_BYTES`], each in its own
//! short statement, then inserts the header row that makes the checkpoint
//! visible, then drops all but the newest `keep` checkpoints (and any chunks an
//! interrupted write left behind). [`latest`] returns the newest complete
//! checkpoint at or below an offset — the caller passes the committed run's
//! offset, so a checkpoint is never ahead of the scores it must reproduce.
//! The bytes' meaning (format, model) is the scoring engine's business; the
//! header only records them so that operators and the loader can see them.

use sea_orm::sea_query::Value;
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};

use crate::Error;

/// Bytes per stored chunk: small enough for any backend's row limits and for
/// short write statements, large enough that a 1 GB state is a few hundred rows.
pub const CHUNK_BYTES: usize = 4 << 20;

/// A checkpoint's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    pub checkpoint_id: u64,
    pub model_version: String,
    pub format_version: u32,
    /// Ledger offset the state has applied up to (inclusive).
    pub as_of_offset: u64,
    /// Micros since the epoch.
    pub created_at: i64,
    pub size_bytes: u64,
    pub chunks: u64,
}

/// A checkpoint to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCheckpoint<'a> {
    pub model_version: &'a str,
    pub format_version: u32,
    pub as_of_offset: u64,
    pub created_at: i64,
    pub bytes: &'a [u8],
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

const COLUMNS: &str = "checkpoint_id, model_version, format_version, as_of_offset, created_at, size_bytes, chunks";

fn info_of(r: &QueryResult) -> Result<CheckpointInfo, Error> {
    Ok(CheckpointInfo {
        checkpoint_id: from_db(r.try_get_by_index(0)?),
        model_version: r.try_get_by_index(1)?,
        format_version: u32::try_from(r.try_get_by_index::<i64>(2)?).unwrap_or(u32::MAX),
        as_of_offset: from_db(r.try_get_by_index(3)?),
        created_at: r.try_get_by_index(4)?,
        size_bytes: from_db(r.try_get_by_index(5)?),
        chunks: from_db(r.try_get_by_index(6)?),
    })
}

async fn scalar(db: &impl ConnectionTrait, sql: &str) -> Result<i64, Error> {
    let backend = db.get_database_backend();
    Ok(db
        .query_one_raw(Statement::from_string(backend, sql.to_owned()))
        .await?
        .map(|r| r.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0))
}

/// Writes a checkpoint and keeps only the newest `keep` (at least 1); returns its id.
pub async fn write(db: &impl ConnectionTrait, cp: &NewCheckpoint<'_>, keep: u64) -> Result<u64, Error> {
    let backend = db.get_database_backend();
    // Above every id ever used, including chunks an interrupted write left behind.
    let id = scalar(
        db,
        "SELECT MAX(x) FROM (SELECT COALESCE(MAX(checkpoint_id), 0) AS x FROM scoring_checkpoints
         UNION ALL SELECT COALESCE(MAX(checkpoint_id), 0) AS x FROM scoring_checkpoint_chunks) AS ids",
    )
    .await?
        + 1;
    let chunk_sql = format!(
        "INSERT INTO scoring_checkpoint_chunks (checkpoint_id, seq, data) VALUES ({}, {}, {})",
        ph(backend, 1),
        ph(backend, 2),
        ph(backend, 3)
    );
    let mut chunks = 0u64;
    for (seq, data) in cp.bytes.chunks(CHUNK_BYTES).enumerate() {
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            chunk_sql.clone(),
            [Value::BigInt(Some(id)), Value::BigInt(Some(seq as i64)), Value::Bytes(Some(data.to_vec()))],
        ))
        .await?;
        chunks += 1;
    }
    let sql = format!(
        "INSERT INTO scoring_checkpoints ({COLUMNS}) VALUES ({})",
        (1..=7).map(|i| ph(backend, i)).collect::<Vec<_>>().join(", ")
    );
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [
            Value::BigInt(Some(id)),
            Value::from(cp.model_version.to_owned()),
            Value::BigInt(Some(i64::from(cp.format_version))),
            Value::BigInt(Some(to_db(cp.as_of_offset))),
            Value::BigInt(Some(cp.created_at)),
            Value::BigInt(Some(to_db(cp.bytes.len() as u64))),
            Value::BigInt(Some(to_db(chunks))),
        ],
    ))
    .await?;
    prune(db, keep.max(1)).await?;
    Ok(from_db(id))
}

/// Drops all but the newest `keep` checkpoints, and chunks without a header
/// that are older than the newest header (an interrupted write).
async fn prune(db: &impl ConnectionTrait, keep: u64) -> Result<(), Error> {
    let backend = db.get_database_backend();
    let ids = db
        .query_all_raw(Statement::from_string(
            backend,
            format!("SELECT checkpoint_id FROM scoring_checkpoints ORDER BY checkpoint_id DESC LIMIT {}", to_db(keep)),
        ))
        .await?;
    let Some(oldest_kept) = ids.iter().map(|r| r.try_get_by_index::<i64>(0)).collect::<Result<Vec<_>, _>>()?.pop()
    else {
        return Ok(());
    };
    let newest = scalar(db, "SELECT COALESCE(MAX(checkpoint_id), 0) FROM scoring_checkpoints").await?;
    for sql in [
        format!("DELETE FROM scoring_checkpoints WHERE checkpoint_id < {}", ph(backend, 1)),
        format!("DELETE FROM scoring_checkpoint_chunks WHERE checkpoint_id < {}", ph(backend, 1)),
    ] {
        db.execute_raw(Statement::from_sql_and_values(backend, sql, [Value::BigInt(Some(oldest_kept))])).await?;
    }
    let orphans = format!(
        "DELETE FROM scoring_checkpoint_chunks WHERE checkpoint_id < {} AND checkpoint_id NOT IN (SELECT checkpoint_id FROM scoring_checkpoints)",
        ph(backend, 1)
    );
    db.execute_raw(Statement::from_sql_and_values(backend, orphans, [Value::BigInt(Some(newest))])).await?;
    Ok(())
}

/// Deletes every checkpoint (headers first, so none is ever half visible): after an
/// erasure they hold the erased subject. Returns how many there were.
pub async fn delete_all(db: &impl ConnectionTrait) -> Result<u64, Error> {
    let backend = db.get_database_backend();
    let n = db.execute_raw(Statement::from_string(backend, "DELETE FROM scoring_checkpoints")).await?.rows_affected();
    db.execute_raw(Statement::from_string(backend, "DELETE FROM scoring_checkpoint_chunks")).await?;
    Ok(n)
}

/// Headers of the stored checkpoints, newest first.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<CheckpointInfo>, Error> {
    let backend = db.get_database_backend();
    let sql = format!("SELECT {COLUMNS} FROM scoring_checkpoints ORDER BY checkpoint_id DESC");
    db.query_all_raw(Statement::from_string(backend, sql)).await?.iter().map(info_of).collect()
}

/// The newest complete checkpoint with `as_of_offset ≤ at_most`, with its bytes.
/// The bytes are returned as stored, even if chunks are missing: the caller's
/// decoder (with its checksum) decides whether they can be trusted.
pub async fn latest(db: &impl ConnectionTrait, at_most: u64) -> Result<Option<(CheckpointInfo, Vec<u8>)>, Error> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT {COLUMNS} FROM scoring_checkpoints WHERE as_of_offset <= {} ORDER BY checkpoint_id DESC LIMIT 1",
        ph(backend, 1)
    );
    let Some(info) = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [Value::BigInt(Some(to_db(at_most)))]))
        .await?
        .as_ref()
        .map(info_of)
        .transpose()?
    else {
        return Ok(None);
    };
    let sql =
        format!("SELECT data FROM scoring_checkpoint_chunks WHERE checkpoint_id = {} ORDER BY seq", ph(backend, 1));
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, [Value::BigInt(Some(to_db(info.checkpoint_id)))]))
        .await?;
    let mut bytes = Vec::with_capacity(usize::try_from(info.size_bytes).unwrap_or(0).min(1 << 34));
    for r in &rows {
        let chunk: Vec<u8> = r.try_get_by_index(0)?;
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some((info, bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db() -> sea_orm::DatabaseConnection {
        crate::connect("sqlite::memory:").await.expect("connect")
    }

    /// Pins chunked round trips, the offset bound, and pruning to `keep`.
    #[tokio::test]
    async fn writes_reads_and_prunes() {
        let db = db().await;
        assert!(latest(&db, u64::MAX).await.unwrap().is_none());
        let big: Vec<u8> = (0..CHUNK_BYTES * 2 + 17).map(|i| (i % 251) as u8).collect();
        for (off, bytes) in [(10u64, &b"first"[..]), (20, &big[..]), (30, &b"third"[..])] {
            let cp = NewCheckpoint { model_version: "m", format_version: 1, as_of_offset: off, created_at: 5, bytes };
            write(&db, &cp, 2).await.unwrap();
        }
        let (info, bytes) = latest(&db, u64::MAX).await.unwrap().unwrap();
        assert_eq!((info.as_of_offset, bytes.as_slice()), (30, &b"third"[..]));
        let (info, bytes) = latest(&db, 29).await.unwrap().unwrap();
        assert_eq!((info.as_of_offset, info.chunks, info.size_bytes), (20, 3, big.len() as u64));
        assert_eq!(bytes, big);
        // Only two kept: nothing at or below offset 10 any more.
        assert!(latest(&db, 19).await.unwrap().is_none());
        assert_eq!(list(&db).await.unwrap().len(), 2);
    }
}
