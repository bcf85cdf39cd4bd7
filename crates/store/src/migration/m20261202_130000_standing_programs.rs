//! Standing perk programs (matching's `StartStandingProgram`): the program's
//! rules and running totals, one row per perk given (the primary key is what
//! makes "once per account" hold under concurrent evaluations), and the
//! recalibrations the program went through.

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
            "CREATE TABLE standing_programs (
                 campaign_id TEXT PRIMARY KEY,
                 brand_id TEXT NOT NULL,
                 budget BIGINT NOT NULL,
                 max_offers BIGINT NOT NULL,
                 starts_at BIGINT NOT NULL,
                 ends_at BIGINT,
                 spent BIGINT NOT NULL,
                 offers BIGINT NOT NULL,
                 controls BIGINT NOT NULL,
                 runs BIGINT NOT NULL,
                 last_model_version TEXT NOT NULL,
                 last_as_of BIGINT NOT NULL,
                 unaffordable BIGINT NOT NULL,
                 created_at BIGINT NOT NULL
             );
             CREATE TABLE standing_grants (
                 campaign_id TEXT NOT NULL,
                 network TEXT NOT NULL,
                 account_id TEXT NOT NULL,
                 handle TEXT NOT NULL,
                 holdout BOOLEAN NOT NULL,
                 cost BIGINT NOT NULL,
                 model_version TEXT NOT NULL,
                 as_of BIGINT NOT NULL,
                 granted_at BIGINT NOT NULL,
                 why TEXT NOT NULL,
                 registered BOOLEAN NOT NULL,
                 PRIMARY KEY (campaign_id, network, account_id)
             );
             CREATE TABLE standing_recalibrations (
                 campaign_id TEXT NOT NULL,
                 from_version TEXT NOT NULL,
                 to_version TEXT NOT NULL,
                 recorded_at BIGINT NOT NULL,
                 thresholds TEXT NOT NULL,
                 entered BIGINT NOT NULL,
                 left_count BIGINT NOT NULL,
                 stayed BIGINT NOT NULL,
                 left_accounts TEXT NOT NULL,
                 PRIMARY KEY (campaign_id, from_version, to_version)
             )",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE standing_recalibrations; DROP TABLE standing_grants; DROP TABLE standing_programs")
            .await
    }
}
