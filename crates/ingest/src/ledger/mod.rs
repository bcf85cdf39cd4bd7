//! Where the ledger lives: the SQL database (SQLite or PostgreSQL, the default;
//! see `lift_store::ledger`, with its encoding in [`sql`]) or a NATS JetStream
//! stream ([`NatsLedger`]).
//!
//! The service keeps one code path for validation, per-event results,
//! attribution and `Subscribe`; only appending, the head and paged reads go
//! through [`Ledger`]. The link registry and the click index stay in the SQL
//! database with either backend (see [`nats`] for why attribution stays
//! consistent).

pub mod bench;
pub mod nats;
pub mod sql;

use std::sync::Arc;

use lift_domain::EventKind;
use lift_proto::ingest::v1 as pb;
use lift_store::DatabaseConnection;
use lift_store::ledger;

pub use nats::{NatsLedger, NatsSettings};

use crate::Error;

/// The ledger backend of one ingestion service.
#[derive(Debug, Clone, Default)]
pub enum Ledger {
    /// The `ledger_events` table of the service's database.
    #[default]
    Sql,
    /// A JetStream stream (`LIFT_LEDGER=nats://…`).
    Nats(Arc<NatsLedger>),
}

impl Ledger {
    /// The backend a `ledger` setting names: empty or `sql` → the database's own
    /// table; `nats://host:port[?replicas=N&stream=NAME]` → JetStream (connects,
    /// creating the stream and its index bucket if they do not exist).
    pub async fn from_setting(setting: &str) -> Result<Self, Error> {
        match setting.trim() {
            "" | "sql" => Ok(Ledger::Sql),
            url => Ok(Ledger::Nats(Arc::new(NatsLedger::connect(&NatsSettings::parse(url)?).await?))),
        }
    }

    /// A short name for logs and metrics: `sql` or `nats`.
    pub fn kind(&self) -> &'static str {
        match self {
            Ledger::Sql => "sql",
            Ledger::Nats(_) => "nats",
        }
    }

    /// The offset of the last stored event (0 when empty); offsets are dense, so
    /// this is also the number of events.
    pub(crate) async fn head(&self, db: &DatabaseConnection) -> Result<u64, Error> {
        match self {
            Ledger::Sql => Ok(ledger::head(db).await?),
            Ledger::Nats(n) => n.head().await,
        }
    }

    /// Up to `limit` events after `after`, in offset order, only of `kinds` (all
    /// when empty), as `Subscribe` sends them.
    pub(crate) async fn read_after_wire(
        &self,
        db: &DatabaseConnection,
        after: u64,
        kinds: &[EventKind],
        limit: u32,
    ) -> Result<Vec<pb::LedgerEvent>, Error> {
        match self {
            Ledger::Sql => Ok(sql::read_after_wire(db, after, kinds, limit).await?),
            Ledger::Nats(n) => n.read_after_wire(after, kinds, limit).await,
        }
    }
}
