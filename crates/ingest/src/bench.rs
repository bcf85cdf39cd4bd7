//! `lift bench ingest`: events/s through the whole service against the database's
//! own bulk load of the same rows into a table with the same schema and indexes.
//!
//! The service side streams generated events over gRPC on loopback (`IngestStream`,
//! validation, dedupe, attribution, append, commit per batch). The baseline loads
//! identical rows — same encoded bodies, same columns — with PostgreSQL's `COPY` or,
//! on SQLite, a prepared single-row `INSERT` per event in one transaction. Event
//! generation and the baseline's row encoding are not timed.

use lift_proto::convert::prelude::*;
use std::fmt;
use std::time::{Duration, Instant};

use lift_domain::{Event, ValidationPolicy};
use lift_proto::ingest::v1 as pb;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_store::ledger::NewEvent;
use lift_store::{ConnectionTrait, DatabaseConnection, DbBackend};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::oneshot;

use crate::{Ingest, IngestConfig};

/// Why `lift bench ingest` could not finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Failed(String),
    /// A generated event the domain refuses (a bug in the generator).
    #[error("generated event is invalid: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<lift_domain::FieldViolation>),
    #[error(transparent)]
    Store(#[from] lift_store::Error),
    #[error("ingestion server: {}: {}", .0.code(), .0.message())]
    Rpc(#[from] tonic::Status),
    #[error("connecting to the ingestion server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub events: usize,
    /// Events per stream message (≤ the service's `max_batch`).
    pub batch_size: usize,
    /// Concurrent `IngestStream` calls sharing the events.
    pub streams: usize,
    pub seed: u64,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self { events: 200_000, batch_size: 5_000, streams: 2, seed: 7 }
    }
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub backend: &'static str,
    pub events: usize,
    pub service: Duration,
    pub baseline: Duration,
    pub baseline_method: &'static str,
}

impl BenchReport {
    pub fn service_eps(&self) -> f64 {
        self.events as f64 / self.service.as_secs_f64().max(1e-9)
    }
    pub fn baseline_eps(&self) -> f64 {
        self.events as f64 / self.baseline.as_secs_f64().max(1e-9)
    }
    /// Service throughput as a share of the baseline's.
    pub fn ratio(&self) -> f64 {
        self.service_eps() / self.baseline_eps().max(1e-9)
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<44} {:>10} {:>10} {:>12}",
            format!("ingest into {}", self.backend),
            "events",
            "seconds",
            "events/s"
        )?;
        writeln!(
            f,
            "{:<44} {:>10} {:>10.3} {:>12.0}",
            "lift IngestStream over gRPC (end to end)",
            self.events,
            self.service.as_secs_f64(),
            self.service_eps()
        )?;
        writeln!(
            f,
            "{:<44} {:>10} {:>10.3} {:>12.0}",
            self.baseline_method,
            self.events,
            self.baseline.as_secs_f64(),
            self.baseline_eps()
        )?;
        write!(f, "{:<44} {:>34.1} %", "service / baseline", self.ratio() * 100.0)
    }
}

/// Runs both loads against `db` (migrated; the service appends to its ledger, the
/// baseline fills a scratch copy of the ledger table that it drops afterwards).
pub async fn bench(db: DatabaseConnection, opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    let backend = db.get_database_backend();
    let run = lift_domain::time::now();
    let events = generate(opts.events, opts.seed, run);

    // The service, end to end over loopback gRPC.
    let ingest = Ingest::new(db.clone(), IngestConfig { max_batch: opts.batch_size.max(1), ..IngestConfig::default() });
    let service = stream_through(ingest, &events, opts).await?;

    // The baseline: the same rows, loaded the database's own fastest way.
    let rows = baseline_rows(&events, run)?;
    let (baseline, method, name) = match backend {
        DbBackend::Postgres => {
            (copy_postgres(&db, &rows).await?, "PostgreSQL COPY (text) into the same schema", "PostgreSQL")
        }
        _ => (insert_sqlite(&db, &rows).await?, "SQLite prepared INSERT, one transaction", "SQLite"),
    };
    Ok(BenchReport { backend: name, events: events.len(), service, baseline, baseline_method: method })
}

/// Streams `events` through `ingest` served on loopback gRPC (`opts.streams`
/// concurrent `IngestStream` calls); returns the time until every call answered.
pub(crate) async fn stream_through(
    ingest: Ingest,
    events: &[pb::Event],
    opts: &BenchOptions,
) -> Result<Duration, BenchError> {
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| BenchError::Failed(format!("bind: {e}")))?;
    let addr = listener.local_addr().map_err(|e| BenchError::Failed(format!("local addr: {e}")))?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server =
        tokio::spawn(tonic::transport::Server::builder().add_service(ingest.grpc()).serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = stop_rx.await;
            },
        ));
    let client = IngestServiceClient::connect(format!("http://{addr}")).await?;
    let streams = opts.streams.max(1);
    let per_stream = events.len().div_ceil(streams).max(1);
    let started = Instant::now();
    let mut calls = Vec::new();
    for part in events.chunks(per_stream) {
        let mut client = client.clone();
        let batches: Vec<pb::IngestStreamRequest> =
            part.chunks(opts.batch_size.max(1)).map(|c| pb::IngestStreamRequest { events: c.to_vec() }).collect();
        calls.push(tokio::spawn(async move { client.ingest_stream(futures::stream::iter(batches)).await }));
    }
    let mut accepted = 0;
    for c in calls {
        let resp = c.await.map_err(|e| BenchError::Failed(format!("stream task: {e}")))??.into_inner();
        accepted += resp.accepted;
    }
    let elapsed = started.elapsed();
    let _ = stop_tx.send(());
    let _ = server.await;
    if accepted != events.len() as u64 {
        return Err(BenchError::Failed(format!("the service accepted {accepted} of {} events", events.len())));
    }
    Ok(elapsed)
}

/// Deterministic social traffic: engagements, follows, posts and profile upserts
/// among 20,000 accounts, all within the last day.
pub fn generate(n: usize, seed: u64, run: i64) -> Vec<pb::Event> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let acct = |i: u32| Some(pb::AccountRef { network: "bench".into(), id: format!("u{i}") });
    let base = run - 86_400 * 1_000_000;
    (0..n)
        .map(|i| {
            let a = rng.random_range(0..20_000u32);
            let mut b = rng.random_range(0..20_000u32);
            if b == a {
                b = (a + 1) % 20_000;
            }
            let kind = match rng.random_range(0..100u32) {
                0..=69 => pb::event::Kind::Engagement(pb::Engagement {
                    kind: rng.random_range(1..=5),
                    actor: acct(a),
                    post_id: format!("p{}", rng.random_range(0..100_000u32)),
                    target: acct(b),
                }),
                70..=84 => {
                    pb::event::Kind::Follow(pb::Follow { follower: acct(a), followee: acct(b), unfollow: false })
                }
                85..=94 => pb::event::Kind::Post(pb::Post {
                    author: acct(a),
                    post_id: format!("p{i}"),
                    topics: vec!["food".into()],
                    ..Default::default()
                }),
                _ => pb::event::Kind::Account(pb::AccountUpsert {
                    account: acct(a),
                    handle: format!("@u{a}"),
                    reported_followers: u64::from(rng.random_range(0..100_000u32)),
                    ..Default::default()
                }),
            };
            pb::Event {
                event_id: format!("b{run}-{i}"),
                source: "bench".into(),
                occurred_at: Some(lift_proto::convert::to_timestamp(base + i as i64)),
                kind: Some(kind),
            }
        })
        .collect()
}

/// The baseline's rows: what the ledger would store, encoded by the same code.
fn baseline_rows(events: &[pb::Event], now: i64) -> Result<Vec<NewEvent>, BenchError> {
    let policy = ValidationPolicy::at(now);
    events
        .iter()
        .map(|e| Ok(crate::ledger::sql::encode(&Event::from_proto(e, &policy).map_err(BenchError::Invalid)?)))
        .collect()
}

const BASELINE_TABLE: &str = "bench_ledger_baseline";
const COLUMNS: &str = "ledger_offset, source, event_id, kind, occurred_at, ingested_at, account, attribution, body";

async fn copy_postgres(db: &DatabaseConnection, rows: &[NewEvent]) -> Result<Duration, BenchError> {
    use lift_store::sqlx::postgres::PgPoolCopyExt;
    let pool = db.get_postgres_connection_pool();
    let sql_err = |e: lift_store::sqlx::Error| BenchError::Failed(format!("baseline: {e}"));
    db.execute_unprepared(&format!("DROP TABLE IF EXISTS {BASELINE_TABLE}")).await.map_err(lift_store::Error::from)?;
    db.execute_unprepared(&format!("CREATE TABLE {BASELINE_TABLE} (LIKE ledger_events INCLUDING ALL)"))
        .await
        .map_err(lift_store::Error::from)?;
    let ingested_at = lift_domain::time::now();
    let mut chunks = Vec::new();
    for (i, part) in rows.chunks(10_000).enumerate() {
        let mut buf = String::with_capacity(part.len() * 200);
        for (j, r) in part.iter().enumerate() {
            use std::fmt::Write;
            let _ = writeln!(
                buf,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t\\N\t\\\\x{}",
                i * 10_000 + j + 1,
                copy_text(&r.source),
                copy_text(&r.event_id),
                r.kind.code(),
                r.occurred_at,
                ingested_at,
                r.account.as_deref().map(copy_text).unwrap_or_else(|| "\\N".into()),
                hex::encode(&r.body)
            );
        }
        chunks.push(buf);
    }
    let started = Instant::now();
    let mut copy = pool.copy_in_raw(&format!("COPY {BASELINE_TABLE} ({COLUMNS}) FROM STDIN")).await.map_err(sql_err)?;
    for c in &chunks {
        copy.send(c.as_bytes()).await.map_err(sql_err)?;
    }
    let n = copy.finish().await.map_err(sql_err)?;
    let elapsed = started.elapsed();
    db.execute_unprepared(&format!("DROP TABLE {BASELINE_TABLE}")).await.map_err(lift_store::Error::from)?;
    if n != rows.len() as u64 {
        return Err(BenchError::Failed(format!("COPY loaded {n} of {} rows", rows.len())));
    }
    Ok(elapsed)
}

/// COPY text format: backslash, tab and newlines escaped.
fn copy_text(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n").replace('\r', "\\r")
}

async fn insert_sqlite(db: &DatabaseConnection, rows: &[NewEvent]) -> Result<Duration, BenchError> {
    use lift_store::sqlx::{self, Row};
    let pool = db.get_sqlite_connection_pool();
    let sql_err = |e: sqlx::Error| BenchError::Failed(format!("baseline: {e}"));
    let mut conn = pool.acquire().await.map_err(sql_err)?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {BASELINE_TABLE}")))
        .execute(&mut *conn)
        .await
        .map_err(sql_err)?;
    // The same DDL and indexes as the ledger table, renamed.
    let ddl = sqlx::query(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'ledger_events' AND sql IS NOT NULL ORDER BY type DESC",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(sql_err)?;
    for row in ddl {
        let sql: String = row.try_get(0).map_err(sql_err)?;
        let sql = sql.replace("ledger_events", BASELINE_TABLE);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await.map_err(sql_err)?;
    }
    let ingested_at = lift_domain::time::now();
    let insert = format!("INSERT INTO {BASELINE_TABLE} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)");
    let started = Instant::now();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(sql_err)?;
    for (i, r) in rows.iter().enumerate() {
        sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
            .bind(i as i64 + 1)
            .bind(r.source.as_str())
            .bind(r.event_id.as_str())
            .bind(r.kind.code())
            .bind(r.occurred_at)
            .bind(ingested_at)
            .bind(r.account.as_deref())
            .bind(r.body.as_slice())
            .execute(&mut *tx)
            .await
            .map_err(sql_err)?;
    }
    tx.commit().await.map_err(sql_err)?;
    let elapsed = started.elapsed();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {BASELINE_TABLE}")))
        .execute(&mut *conn)
        .await
        .map_err(sql_err)?;
    Ok(elapsed)
}
