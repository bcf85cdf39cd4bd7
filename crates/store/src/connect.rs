//! Opening a database: pool settings per backend, then migrations.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::Error;
use crate::migration::Migrator;

/// Pool settings; the defaults suit a service.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// Connections in the pool (ignored for in-memory SQLite, which needs exactly one).
    pub max_connections: u32,
    /// How long a SQLite writer waits for another writer's lock before failing.
    pub sqlite_busy_timeout: Duration,
    pub acquire_timeout: Duration,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        Self {
            max_connections: 8,
            sqlite_busy_timeout: Duration::from_secs(30),
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// Opens `url` (`sqlite:PATH`, `sqlite::memory:`, `postgres://...`) with default
/// settings and brings its schema up to date.
pub async fn connect(url: &str) -> Result<DatabaseConnection, Error> {
    connect_with(url, &ConnectConfig::default()).await
}

pub async fn connect_with(url: &str, cfg: &ConnectConfig) -> Result<DatabaseConnection, Error> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false).acquire_timeout(cfg.acquire_timeout).connect_timeout(cfg.acquire_timeout);
    if url.starts_with("sqlite:") {
        if is_sqlite_memory(url) {
            // Every SQLite connection to `:memory:` is its own empty database: the pool
            // must hold exactly one connection and never recycle it.
            opts.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None);
        } else {
            opts.max_connections(cfg.max_connections.max(1));
            let busy = cfg.sqlite_busy_timeout;
            opts.map_sqlx_sqlite_opts(move |o| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(busy)
                    .foreign_keys(true)
            });
        }
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        opts.max_connections(cfg.max_connections.max(2));
    } else {
        return Err(Error::UnsupportedUrl(redact(url)));
    }
    let db = Database::connect(opts).await.map_err(Error::from)?;
    migrate(&db).await?;
    Ok(db)
}

/// Applies pending migrations. Several processes may start at once, so they take turns:
/// on PostgreSQL under a transaction-scoped advisory lock, on SQLite under the write lock
/// (`BEGIN IMMEDIATE`). Both backends' DDL is transactional, so a failed migration leaves
/// nothing half-done.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), Error> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let txn = db.begin().await?;
            txn.execute_raw(Statement::from_string(DbBackend::Postgres, "SELECT pg_advisory_xact_lock(7361626201)"))
                .await?;
            Migrator::up(&txn, None).await?;
            txn.commit().await?;
        }
        DbBackend::Sqlite => {
            // Several pools or processes may open one file at once: they take turns under
            // SQLite's write lock (waiting out the busy timeout), so one applies what is pending
            // and the others find nothing left; a table rebuild is never run twice at once.
            let txn = begin_write(db).await?;
            Migrator::up(&txn, None).await?;
            txn.commit().await?;
        }
        _ => Migrator::up(db, None).await?,
    }
    Ok(())
}

/// Starts a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: the
/// write lock is taken up front, waiting up to the busy timeout for another
/// writer (an import's batch) to finish. A plain deferred `BEGIN` whose first
/// statement reads holds a read snapshot, and upgrading it to a writer while
/// another connection writes fails at once with "database is locked" — SQLite
/// cannot wait there, because the snapshot it would upgrade is already stale.
/// On PostgreSQL it is an ordinary `BEGIN`.
pub async fn begin_write<C: TransactionTrait>(db: &C) -> Result<C::Transaction, Error> {
    let opts = TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    Ok(db.begin_with_options(opts).await?)
}

pub fn is_postgres(db: &impl ConnectionTrait) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}

fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Keeps a password out of error messages and logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins that credentials never reach an error message.
    #[test]
    fn redacts_credentials() {
        assert_eq!(redact("mysql://u:secret@h/db"), "mysql://***@h/db");
        assert_eq!(redact("nonsense"), "nonsense");
    }

    /// Pins that an in-memory SQLite database keeps its schema and data across
    /// statements (one connection, never recycled).
    #[tokio::test]
    async fn sqlite_memory_keeps_its_schema() {
        let db = connect("sqlite::memory:").await.unwrap();
        for _ in 0..3 {
            let head = crate::ledger::head(&db).await.unwrap();
            assert_eq!(head, 0);
        }
    }
}
