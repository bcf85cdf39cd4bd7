//! Drops `scoring_scores_run`, the index of score rows by run.
//!
//! No query reads score rows by run (history and point-in-time reads go by
//! account, through the primary key), and every run inserts a row per changed
//! account — at scale, nearly all of them — so the index was pure write cost.
//! Retention by run, when it is built, can bring an index back with the query
//! that needs it.

use sea_orm_migration::prelude::*;

use super::run;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// The trait's signature (via async_trait) elides SchemaManager's lifetime.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP INDEX IF EXISTS scoring_scores_run").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "CREATE INDEX scoring_scores_run ON scoring_scores (run_id)").await
    }
}
