//! Campaign report aggregates: each offered campaign's report state, kept by
//! matching's ledger consumer, and the consumer's position, committed together.
//! The large `state` column comes last: SQLite reads a row's columns in order,
//! so a report reading `summary` never walks through the state's overflow pages.

use sea_orm_migration::prelude::*;

use super::run;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// The trait's signature (via async_trait) elides SchemaManager's lifetime.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            "CREATE TABLE report_consumer (
                id BIGINT PRIMARY KEY,
                position BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
             );
             CREATE TABLE report_aggregates (
                campaign_id TEXT PRIMARY KEY,
                format_version BIGINT NOT NULL,
                summary TEXT NOT NULL,
                updated_at BIGINT NOT NULL,
                state TEXT NOT NULL
             )",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE report_aggregates; DROP TABLE report_consumer").await
    }
}
