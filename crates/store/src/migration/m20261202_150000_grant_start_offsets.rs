//! `standing_grants.start_offset`: the ledger head when the perk (or control
//! place) was decided — where that member's campaign report starts. Grants
//! recorded before it get the later of their scoring run's offset and the
//! campaign's offers offset (its first grant's head), the closest bound kept.

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
            "ALTER TABLE standing_grants ADD COLUMN start_offset BIGINT NOT NULL DEFAULT 0;
             UPDATE standing_grants SET start_offset = COALESCE((
                 SELECT CASE WHEN c.offers_offset IS NULL OR standing_grants.as_of > c.offers_offset
                             THEN standing_grants.as_of ELSE c.offers_offset END
                 FROM campaigns c WHERE c.id = standing_grants.campaign_id), standing_grants.as_of)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "ALTER TABLE standing_grants DROP COLUMN start_offset").await
    }
}
