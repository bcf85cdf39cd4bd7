//! `rate_cards`: what each creator asks a brand for one perk, per currency,
//! as the brand uploaded it (matching's `SetRateCard`).

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
            "CREATE TABLE rate_cards (
                 brand_id TEXT NOT NULL,
                 currency TEXT NOT NULL,
                 network TEXT NOT NULL,
                 account_id TEXT NOT NULL,
                 rate BIGINT NOT NULL,
                 updated_at BIGINT NOT NULL,
                 PRIMARY KEY (brand_id, currency, network, account_id)
             )",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE rate_cards").await
    }
}
