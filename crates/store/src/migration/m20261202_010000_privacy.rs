//! Privacy (issue #16): `ledger_events.erased_at` marks a row rewritten as a
//! tombstone by an erasure (subscribers skip it), and `privacy_audit` is the
//! append-only record of every export and erasure (subject by hash only).

use sea_orm_migration::prelude::*;

use super::run;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// The trait's signature (via async_trait) elides SchemaManager's lifetime.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let id = match manager.get_database_backend() {
            sea_orm::DbBackend::Postgres => "BIGSERIAL PRIMARY KEY",
            _ => "INTEGER PRIMARY KEY AUTOINCREMENT",
        };
        run(
            manager,
            &format!(
                "ALTER TABLE ledger_events ADD COLUMN erased_at BIGINT;
                 CREATE TABLE privacy_audit (
                     id {id},
                     at BIGINT NOT NULL,
                     key_id TEXT NOT NULL,
                     scope TEXT NOT NULL,
                     action TEXT NOT NULL,
                     subject_hash TEXT NOT NULL,
                     events BIGINT NOT NULL
                 )"
            ),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE privacy_audit; ALTER TABLE ledger_events DROP COLUMN erased_at").await
    }
}
