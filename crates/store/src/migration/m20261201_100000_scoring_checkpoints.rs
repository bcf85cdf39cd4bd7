//! Scoring checkpoints: the scoring engine's state at a ledger offset, so a
//! restart replays only the tail of the ledger.
//!
//! A checkpoint's bytes are split into chunks written one short statement at a
//! time (a large checkpoint never holds the embedded database's write lock for
//! long); the header row is inserted last, so a checkpoint without its header
//! is an unfinished write and is never read.

use sea_orm_migration::prelude::*;

use super::{bytes_type, run};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// The trait's signature (via async_trait) elides SchemaManager's lifetime.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let bytes = bytes_type(manager);
        run(
            manager,
            &format!(
                "CREATE TABLE scoring_checkpoints (
                    checkpoint_id BIGINT PRIMARY KEY,
                    model_version TEXT NOT NULL,
                    format_version BIGINT NOT NULL,
                    as_of_offset BIGINT NOT NULL,
                    created_at BIGINT NOT NULL,
                    size_bytes BIGINT NOT NULL,
                    chunks BIGINT NOT NULL
                 );
                 CREATE TABLE scoring_checkpoint_chunks (
                    checkpoint_id BIGINT NOT NULL,
                    seq BIGINT NOT NULL,
                    data {bytes} NOT NULL,
                    PRIMARY KEY (checkpoint_id, seq)
                 )"
            ),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE scoring_checkpoint_chunks; DROP TABLE scoring_checkpoints").await
    }
}
