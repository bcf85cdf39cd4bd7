//! The event ledger and its head counter.
//!
//! `ledger_head` is one row whose update serialises appenders until they commit,
//! which is what makes commit order equal offset order (see `ledger`).

use sea_orm_migration::prelude::*;

use super::{bytes_type, run};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// The trait's signature (via async_trait) elides SchemaManager's lifetime; naming it
// here would not match the trait.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // On SQLite only `INTEGER PRIMARY KEY` is the rowid itself; BIGINT would add a
        // second B-tree to every insert.
        let offset_type = match manager.get_database_backend() {
            sea_orm::DbBackend::Postgres => "BIGINT",
            _ => "INTEGER",
        };
        let bytes = bytes_type(manager);
        run(
            manager,
            &format!(
                "CREATE TABLE ledger_head (
                    id SMALLINT PRIMARY KEY,
                    head BIGINT NOT NULL
                 );
                 INSERT INTO ledger_head (id, head) VALUES (1, 0);
                 CREATE TABLE ledger_events (
                    ledger_offset {offset_type} PRIMARY KEY,
                    source TEXT NOT NULL,
                    event_id TEXT NOT NULL,
                    kind SMALLINT NOT NULL,
                    occurred_at BIGINT NOT NULL,
                    ingested_at BIGINT NOT NULL,
                    account TEXT,
                    attribution {bytes},
                    body {bytes} NOT NULL
                 );
                 CREATE UNIQUE INDEX ledger_events_source_event_id ON ledger_events (source, event_id);
                 CREATE INDEX ledger_events_kind_offset ON ledger_events (kind, ledger_offset);
                 CREATE INDEX ledger_events_account ON ledger_events (account)"
            ),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE ledger_events; DROP TABLE ledger_head").await
    }
}
