//! `campaign_offers.state` and `.state_offset`: where each issued offer is in
//! its life (`lift_domain::offer::OfferState`, 1 = offered) and the ledger
//! offset of the transition that put it there (0 while offered).

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
            "ALTER TABLE campaign_offers ADD COLUMN state SMALLINT NOT NULL DEFAULT 1;
             ALTER TABLE campaign_offers ADD COLUMN state_offset BIGINT NOT NULL DEFAULT 0",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            "ALTER TABLE campaign_offers DROP COLUMN state_offset; ALTER TABLE campaign_offers DROP COLUMN state",
        )
        .await
    }
}
