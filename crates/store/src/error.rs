//! The one error type of the store.

use sea_orm::{DbErr, RuntimeErr};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database cannot be reached (connect, pool acquire, broken connection).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] DbErr),
    #[error("database error: {0}")]
    Db(#[source] DbErr),
    #[error("unsupported database url {0:?}: expected sqlite:... or postgres://...")]
    UnsupportedUrl(String),
    /// A stored row that does not decode: the database was written by something else.
    #[error("corrupt ledger row at offset {offset}: {reason}")]
    Corrupt { offset: u64, reason: String },
    /// A write that contradicts what is stored (e.g. a link registered to someone else).
    #[error("{0}")]
    Conflict(String),
    /// A scoring commit from a replica that does not hold the writer lease.
    #[error("{0}")]
    Fenced(String),
    /// The test PostgreSQL container could not be started.
    #[error("{0}")]
    Container(String),
}

impl Error {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// Whether a scoring commit was refused because the lease is someone else's.
    pub fn is_fenced(&self) -> bool {
        matches!(self, Error::Fenced(_))
    }
}

impl From<DbErr> for Error {
    fn from(e: DbErr) -> Self {
        if is_connectivity(&e) { Error::Unavailable(e) } else { Error::Db(e) }
    }
}

/// Tells a lost or unreachable database from a failing statement, so callers can
/// answer "try again" instead of "bug".
fn is_connectivity(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    match e {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => {
            match &**s {
                Sqlx::Io(_) | Sqlx::Tls(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed => true,
                // PostgreSQL going away: connection exceptions (class 08) and operator
                // intervention such as shutdown or restart (57P01..57P03).
                Sqlx::Database(d) => d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
                _ => false,
            }
        }
        _ => false,
    }
}
