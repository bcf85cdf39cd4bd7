//! `scoring_writer`: the one row that hands out run ids and names the replica
//! allowed to commit runs.
//!
//! - `next_run_id` is the next run id. A commit takes its id by incrementing it
//!   as the transaction's first statement, so ids are global and gap-free
//!   across replicas sharing one database (a `MAX(run_id) + 1` read raced).
//! - `holder`, `token`, `expires_at` are the writer lease: `token` is the
//!   fencing token, bumped on every acquisition; a commit checks it inside its
//!   own transaction. `holder` NULL = no lease (a lone instance commits freely).
//!   `expires_at` is in microseconds since the epoch, by the database's clock.

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
            "CREATE TABLE scoring_writer (
                id INTEGER PRIMARY KEY,
                next_run_id BIGINT NOT NULL,
                holder TEXT NULL,
                token BIGINT NOT NULL,
                expires_at BIGINT NOT NULL
             );
             INSERT INTO scoring_writer (id, next_run_id, holder, token, expires_at)
                SELECT 1, COALESCE(MAX(run_id), 0) + 1, NULL, 0, 0 FROM scoring_runs",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE scoring_writer").await
    }
}
