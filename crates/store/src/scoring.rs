//! Scoring runs: what the scoring service committed, and each account's scores.
//!
//! [`commit_run`] writes a run and its changed score rows in one transaction;
//! the run's `as_of_offset` *is* the consumed ledger offset, so a crash either
//! keeps both or neither — a restart never double-counts or skips. Rows are
//! deltas: an account's scores at run `r` are its latest row with `run_id ≤ r`.

use sea_orm::sea_query::Value;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement};

use crate::Error;
use crate::lease::{Fence, take_run_id};

/// One committed scoring run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub run_id: u64,
    pub model_version: String,
    /// Ledger offset consumed up to (inclusive).
    pub as_of_offset: u64,
    /// Micros since the epoch: the latest occurrence time in the prefix.
    pub as_of_time: i64,
    pub created_at: i64,
    pub accounts: u64,
    /// Score rows written by this run.
    pub changed: u64,
    /// The model parameters, as JSON.
    pub parameters: String,
    /// Per-dimension value distributions, as JSON.
    pub distributions: String,
}

/// A run to commit; `run_id` and `changed` are assigned by [`commit_run`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub model_version: String,
    pub as_of_offset: u64,
    pub as_of_time: i64,
    pub created_at: i64,
    pub accounts: u64,
    pub parameters: String,
    pub distributions: String,
}

/// One account's scores in a run. `values` are activity, reach, network,
/// action, authenticity (0–100).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// `network:id`.
    pub account: String,
    pub values: [f64; 5],
    pub action_lower: f64,
    pub action_upper: f64,
    pub action_sufficient: bool,
}

/// A stored score row with the run it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub run_id: u64,
    pub row: ScoreRow,
}

const COLUMNS: usize = 10;
/// 10 parameters per row: 500 rows stay well under SQLite's variable limit.
const CHUNK: usize = 500;

fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn ph(backend: DbBackend, i: usize) -> String {
    if backend == DbBackend::Postgres { format!("${i}") } else { "?".to_owned() }
}

/// Commits a run and its score rows atomically; returns the new run id.
/// Refused ([`Error::Fenced`]) while a replica holds the writer lease: see
/// [`commit_run_fenced`].
pub async fn commit_run(db: &DatabaseConnection, run: &NewRun, rows: &[ScoreRow]) -> Result<u64, Error> {
    commit_run_fenced(db, None, run, rows).await
}

/// [`commit_run`] by the holder of the writer lease: the fence is checked inside
/// the transaction, so a replica that lost the lease commits nothing. Run ids
/// come from one counter row (see [`crate::lease`]), global across replicas.
pub async fn commit_run_fenced(
    db: &DatabaseConnection,
    fence: Option<&Fence>,
    run: &NewRun,
    rows: &[ScoreRow],
) -> Result<u64, Error> {
    // A write transaction from its BEGIN: on SQLite it waits for an import's
    // batch to commit instead of failing with "database is locked".
    let txn = crate::begin_write(db).await?;
    let backend = txn.get_database_backend();
    let next = to_db(take_run_id(&txn, fence).await?);
    let sql = format!(
        "INSERT INTO scoring_runs (run_id, model_version, as_of_offset, as_of_time, created_at, accounts, changed, parameters, distributions) VALUES ({})",
        (1..=9).map(|i| ph(backend, i)).collect::<Vec<_>>().join(", ")
    );
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [
            Value::BigInt(Some(next)),
            Value::from(run.model_version.clone()),
            Value::BigInt(Some(to_db(run.as_of_offset))),
            Value::BigInt(Some(run.as_of_time)),
            Value::BigInt(Some(run.created_at)),
            Value::BigInt(Some(to_db(run.accounts))),
            Value::BigInt(Some(to_db(rows.len() as u64))),
            Value::from(run.parameters.clone()),
            Value::from(run.distributions.clone()),
        ],
    ))
    .await?;
    // In account order, each new key lands beside the account's earlier runs
    // in the (account, run_id) index, so inserting walks the index once
    // instead of touching a random page per row.
    let mut sorted: Vec<&ScoreRow> = rows.iter().collect();
    sorted.sort_unstable_by(|a, b| a.account.cmp(&b.account));
    for chunk in sorted.chunks(CHUNK) {
        let mut sql = String::from(
            "INSERT INTO scoring_scores (account, run_id, activity, reach, network, action, authenticity, action_lower, action_upper, action_sufficient) VALUES ",
        );
        let mut params = Vec::with_capacity(chunk.len() * COLUMNS);
        for (i, r) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let ps: Vec<String> = (1..=COLUMNS).map(|k| ph(backend, i * COLUMNS + k)).collect();
            sql.push('(');
            sql.push_str(&ps.join(", "));
            sql.push(')');
            params.push(Value::from(r.account.clone()));
            params.push(Value::BigInt(Some(next)));
            params.extend(r.values.iter().map(|v| Value::Double(Some(*v))));
            params.push(Value::Double(Some(r.action_lower)));
            params.push(Value::Double(Some(r.action_upper)));
            params.push(Value::SmallInt(Some(i16::from(r.action_sufficient))));
        }
        txn.execute_raw(Statement::from_sql_and_values(backend, sql, params)).await?;
    }
    txn.commit().await?;
    Ok(from_db(next))
}

const RUN_COLUMNS: &str =
    "run_id, model_version, as_of_offset, as_of_time, created_at, accounts, changed, parameters, distributions";

fn run_of(r: &QueryResult) -> Result<Run, Error> {
    Ok(Run {
        run_id: from_db(r.try_get_by_index(0)?),
        model_version: r.try_get_by_index(1)?,
        as_of_offset: from_db(r.try_get_by_index(2)?),
        as_of_time: r.try_get_by_index(3)?,
        created_at: r.try_get_by_index(4)?,
        accounts: from_db(r.try_get_by_index(5)?),
        changed: from_db(r.try_get_by_index(6)?),
        parameters: r.try_get_by_index(7)?,
        distributions: r.try_get_by_index(8)?,
    })
}

/// The latest committed run, if any.
pub async fn latest_run(db: &impl ConnectionTrait) -> Result<Option<Run>, Error> {
    let backend = db.get_database_backend();
    let sql = format!("SELECT {RUN_COLUMNS} FROM scoring_runs ORDER BY run_id DESC LIMIT 1");
    db.query_one_raw(Statement::from_string(backend, sql)).await?.as_ref().map(run_of).transpose()
}

/// One run by id.
pub async fn get_run(db: &impl ConnectionTrait, run_id: u64) -> Result<Option<Run>, Error> {
    let backend = db.get_database_backend();
    let sql = format!("SELECT {RUN_COLUMNS} FROM scoring_runs WHERE run_id = {}", ph(backend, 1));
    db.query_one_raw(Statement::from_sql_and_values(backend, sql, [Value::BigInt(Some(to_db(run_id)))]))
        .await?
        .as_ref()
        .map(run_of)
        .transpose()
}

/// The latest run computed under a model version other than `version`: the
/// baseline of the recalibration mapping.
pub async fn latest_run_of_other_model(db: &impl ConnectionTrait, version: &str) -> Result<Option<Run>, Error> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM scoring_runs WHERE model_version <> {} ORDER BY run_id DESC LIMIT 1",
        ph(backend, 1)
    );
    db.query_one_raw(Statement::from_sql_and_values(backend, sql, [Value::from(version.to_owned())]))
        .await?
        .as_ref()
        .map(run_of)
        .transpose()
}

/// Ledger offset consumed by the latest run (0 before the first).
pub async fn committed_offset(db: &impl ConnectionTrait) -> Result<u64, Error> {
    Ok(latest_run(db).await?.map_or(0, |r| r.as_of_offset))
}

fn row_of(r: &QueryResult, account: &str) -> Result<HistoryRow, Error> {
    let v = |i: usize| r.try_get_by_index::<f64>(i);
    Ok(HistoryRow {
        run_id: from_db(r.try_get_by_index(0)?),
        row: ScoreRow {
            account: account.to_owned(),
            values: [v(1)?, v(2)?, v(3)?, v(4)?, v(5)?],
            action_lower: v(6)?,
            action_upper: v(7)?,
            action_sufficient: r.try_get_by_index::<i16>(8)? != 0,
        },
    })
}

const SCORE_COLUMNS: &str =
    "run_id, activity, reach, network, action, authenticity, action_lower, action_upper, action_sufficient";

/// The account's stored rows, newest first: one per run that changed its scores.
pub async fn history(db: &impl ConnectionTrait, account: &str, limit: u64) -> Result<Vec<HistoryRow>, Error> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT {SCORE_COLUMNS} FROM scoring_scores WHERE account = {} ORDER BY run_id DESC LIMIT {}",
        ph(backend, 1),
        ph(backend, 2)
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [Value::from(account.to_owned()), Value::BigInt(Some(to_db(limit)))],
        ))
        .await?;
    rows.iter().map(|r| row_of(r, account)).collect()
}

/// Bounds of a [`history_page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryRange {
    /// Only runs with an id below this (the previous page's last), if set.
    pub before_run: Option<u64>,
    /// Only runs as of this time (micros) or later, if set.
    pub since: Option<i64>,
    /// Only runs as of before this time (micros), if set.
    pub until: Option<i64>,
}

/// One page of the account's stored rows, newest first, each with its run.
pub async fn history_page(
    db: &impl ConnectionTrait,
    account: &str,
    range: HistoryRange,
    limit: u64,
) -> Result<Vec<(Run, HistoryRow)>, Error> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT r.run_id, r.model_version, r.as_of_offset, r.as_of_time, r.created_at, r.accounts, r.changed, \
         r.parameters, r.distributions, s.activity, s.reach, s.network, s.action, s.authenticity, \
         s.action_lower, s.action_upper, s.action_sufficient \
         FROM scoring_scores s JOIN scoring_runs r ON r.run_id = s.run_id \
         WHERE s.account = {} AND s.run_id < {} AND r.as_of_time >= {} AND r.as_of_time < {} \
         ORDER BY s.run_id DESC LIMIT {}",
        ph(backend, 1),
        ph(backend, 2),
        ph(backend, 3),
        ph(backend, 4),
        ph(backend, 5)
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                Value::from(account.to_owned()),
                Value::BigInt(Some(range.before_run.map_or(i64::MAX, to_db))),
                Value::BigInt(Some(range.since.unwrap_or(i64::MIN))),
                Value::BigInt(Some(range.until.unwrap_or(i64::MAX))),
                Value::BigInt(Some(to_db(limit))),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let run = run_of(r)?;
            let v = |i: usize| r.try_get_by_index::<f64>(i);
            let row = ScoreRow {
                account: account.to_owned(),
                values: [v(9)?, v(10)?, v(11)?, v(12)?, v(13)?],
                action_lower: v(14)?,
                action_upper: v(15)?,
                action_sufficient: r.try_get_by_index::<i16>(16)? != 0,
            };
            Ok((run.clone(), HistoryRow { run_id: run.run_id, row }))
        })
        .collect()
}

/// Every account's newest row among runs of `model_version`: what the
/// history last recorded for it under that model.
pub async fn newest_rows(db: &impl ConnectionTrait, model_version: &str) -> Result<Vec<HistoryRow>, Error> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT s.account, s.run_id, s.activity, s.reach, s.network, s.action, s.authenticity, \
         s.action_lower, s.action_upper, s.action_sufficient \
         FROM scoring_scores s JOIN ( \
           SELECT sc.account AS account, MAX(sc.run_id) AS run_id FROM scoring_scores sc \
           JOIN scoring_runs r ON r.run_id = sc.run_id WHERE r.model_version = {} GROUP BY sc.account \
         ) t ON t.account = s.account AND t.run_id = s.run_id",
        ph(backend, 1)
    );
    let rows =
        db.query_all_raw(Statement::from_sql_and_values(backend, sql, [Value::from(model_version.to_owned())])).await?;
    rows.iter()
        .map(|r| {
            let account: String = r.try_get_by_index(0)?;
            let v = |i: usize| r.try_get_by_index::<f64>(i);
            Ok(HistoryRow {
                run_id: from_db(r.try_get_by_index(1)?),
                row: ScoreRow {
                    values: [v(2)?, v(3)?, v(4)?, v(5)?, v(6)?],
                    action_lower: v(7)?,
                    action_upper: v(8)?,
                    action_sufficient: r.try_get_by_index::<i16>(9)? != 0,
                    account,
                },
            })
        })
        .collect()
}

/// The account's scores as of run `run_id`: its latest row at or before it.
pub async fn scores_at(db: &impl ConnectionTrait, account: &str, run_id: u64) -> Result<Option<HistoryRow>, Error> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT {SCORE_COLUMNS} FROM scoring_scores WHERE account = {} AND run_id <= {} ORDER BY run_id DESC LIMIT 1",
        ph(backend, 1),
        ph(backend, 2)
    );
    db.query_one_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [Value::from(account.to_owned()), Value::BigInt(Some(to_db(run_id)))],
    ))
    .await?
    .as_ref()
    .map(|r| row_of(r, account))
    .transpose()
}

/// Runs with the given ids (missing ids are skipped), by id.
pub async fn runs(db: &impl ConnectionTrait, ids: &[u64]) -> Result<Vec<Run>, Error> {
    let mut out = Vec::with_capacity(ids.len());
    // Histories are short (bounded by the request's limit), so one lookup per run is fine.
    for &id in ids {
        if let Some(r) = get_run(db, id).await? {
            out.push(r);
        }
    }
    out.sort_by_key(|r| r.run_id);
    Ok(out)
}

/// Deletes every score row of `account` (`network:id`), in every run: its score
/// history, after an erasure. Returns how many rows went.
pub async fn erase_account(db: &impl ConnectionTrait, account: &str) -> Result<u64, Error> {
    let backend = db.get_database_backend();
    let sql = if backend == sea_orm::DbBackend::Postgres {
        "DELETE FROM scoring_scores WHERE account = $1"
    } else {
        "DELETE FROM scoring_scores WHERE account = ?"
    };
    Ok(db
        .execute_raw(sea_orm::Statement::from_sql_and_values(backend, sql, [sea_orm::Value::from(account.to_owned())]))
        .await?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(account: &str, v: f64) -> ScoreRow {
        ScoreRow {
            account: account.into(),
            values: [v, v, v, v, 100.0],
            action_lower: 0.0,
            action_upper: v,
            action_sufficient: false,
        }
    }

    fn new_run(offset: u64, version: &str) -> NewRun {
        NewRun {
            model_version: version.into(),
            as_of_offset: offset,
            as_of_time: 1_000 + offset as i64,
            created_at: 5,
            accounts: 2,
            parameters: "{}".into(),
            distributions: "{}".into(),
        }
    }

    /// Pins the run/offset commit, delta rows and point-in-time reads on SQLite.
    #[tokio::test]
    async fn runs_commit_and_read_back() {
        let db = crate::connect("sqlite::memory:").await.unwrap();
        assert_eq!(committed_offset(&db).await.unwrap(), 0);
        let r1 = commit_run(&db, &new_run(10, "m-1"), &[row("x:a", 1.0), row("x:b", 2.0)]).await.unwrap();
        let r2 = commit_run(&db, &new_run(20, "m-1"), &[row("x:a", 3.0)]).await.unwrap();
        let r3 = commit_run(&db, &new_run(20, "m-2"), &[]).await.unwrap();
        assert_eq!((r1, r2, r3), (1, 2, 3));
        assert_eq!(committed_offset(&db).await.unwrap(), 20);
        let latest = latest_run(&db).await.unwrap().unwrap();
        assert_eq!((latest.run_id, latest.changed, latest.model_version.as_str()), (3, 0, "m-2"));
        assert_eq!(latest_run_of_other_model(&db, "m-2").await.unwrap().unwrap().run_id, 2);
        let h = history(&db, "x:a", 10).await.unwrap();
        assert_eq!(h.iter().map(|r| r.run_id).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(h[0].row, row("x:a", 3.0));
        assert_eq!(scores_at(&db, "x:b", 3).await.unwrap().unwrap().row.values[0], 2.0);
        assert_eq!(scores_at(&db, "x:a", 1).await.unwrap().unwrap().row.values[0], 1.0);
        assert!(scores_at(&db, "x:zz", 3).await.unwrap().is_none());
        assert_eq!(runs(&db, &[3, 1, 99]).await.unwrap().len(), 2);

        // Pages: newest first, continued below the last run, bounded in time.
        let page = history_page(&db, "x:a", HistoryRange::default(), 1).await.unwrap();
        assert_eq!(page.iter().map(|(r, h)| (r.run_id, h.run_id)).collect::<Vec<_>>(), vec![(2, 2)]);
        let next = HistoryRange { before_run: Some(2), ..HistoryRange::default() };
        assert_eq!(history_page(&db, "x:a", next, 10).await.unwrap()[0].1.row, row("x:a", 1.0));
        let late = HistoryRange { since: Some(1_015), ..HistoryRange::default() };
        assert_eq!(history_page(&db, "x:a", late, 10).await.unwrap().len(), 1);
        let early = HistoryRange { until: Some(1_015), ..HistoryRange::default() };
        assert_eq!(history_page(&db, "x:a", early, 10).await.unwrap()[0].0.run_id, 1);

        // The newest row per account under a model.
        let mut newest = newest_rows(&db, "m-1").await.unwrap();
        newest.sort_by(|a, b| a.row.account.cmp(&b.row.account));
        assert_eq!(
            newest.iter().map(|h| (h.row.account.as_str(), h.run_id)).collect::<Vec<_>>(),
            vec![("x:a", 2), ("x:b", 1)]
        );
        assert!(newest_rows(&db, "m-2").await.unwrap().is_empty());
    }
}
