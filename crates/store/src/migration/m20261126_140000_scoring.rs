//! Scoring runs and the per-account scores they changed.
//!
//! A run stores a row only for the accounts whose stored scores changed since
//! the previous run (values sit on a 1/1024 grid, so "changed" is exact); an
//! account's scores at run `r` are its latest row at or before `r`. That keeps
//! frequent runs over a million accounts compact. The consumed ledger offset is
//! the `as_of_offset` of the latest run, written in the same transaction.

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
            "CREATE TABLE scoring_runs (
                run_id BIGINT PRIMARY KEY,
                model_version TEXT NOT NULL,
                as_of_offset BIGINT NOT NULL,
                as_of_time BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                accounts BIGINT NOT NULL,
                changed BIGINT NOT NULL,
                parameters TEXT NOT NULL,
                distributions TEXT NOT NULL
             );
             CREATE TABLE scoring_scores (
                account TEXT NOT NULL,
                run_id BIGINT NOT NULL,
                activity DOUBLE PRECISION NOT NULL,
                reach DOUBLE PRECISION NOT NULL,
                network DOUBLE PRECISION NOT NULL,
                action DOUBLE PRECISION NOT NULL,
                authenticity DOUBLE PRECISION NOT NULL,
                action_lower DOUBLE PRECISION NOT NULL,
                action_upper DOUBLE PRECISION NOT NULL,
                action_sufficient SMALLINT NOT NULL,
                PRIMARY KEY (account, run_id)
             );
             CREATE INDEX scoring_scores_run ON scoring_scores (run_id)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE scoring_scores; DROP TABLE scoring_runs").await
    }
}
