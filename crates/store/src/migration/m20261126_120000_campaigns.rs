//! Matching's tables: brands, campaigns, offers/holdout, recorded eligibility.

use sea_orm_migration::prelude::*;

use super::run;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// The trait's signature (via async_trait) elides SchemaManager's lifetime; naming it
// here would not match the trait.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            "CREATE TABLE brands (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                key_hash TEXT NOT NULL UNIQUE,
                created_at BIGINT NOT NULL
             );
             CREATE TABLE campaigns (
                id TEXT PRIMARY KEY,
                brand_id TEXT NOT NULL,
                name TEXT NOT NULL,
                state SMALLINT NOT NULL,
                spec TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                model_version TEXT NOT NULL,
                portfolio TEXT,
                holdout_seed BIGINT,
                offers_offset BIGINT,
                churn TEXT NOT NULL
             );
             CREATE INDEX campaigns_brand ON campaigns (brand_id, created_at, id);
             CREATE TABLE campaign_offers (
                campaign_id TEXT NOT NULL,
                network TEXT NOT NULL,
                account_id TEXT NOT NULL,
                handle TEXT NOT NULL,
                link TEXT NOT NULL,
                code TEXT NOT NULL,
                holdout BOOLEAN NOT NULL,
                in_portfolio BOOLEAN NOT NULL,
                cost BIGINT NOT NULL,
                PRIMARY KEY (campaign_id, network, account_id)
             );
             CREATE TABLE campaign_eligibility (
                campaign_id TEXT NOT NULL,
                network TEXT NOT NULL,
                account_id TEXT NOT NULL,
                PRIMARY KEY (campaign_id, network, account_id)
             )",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            "DROP TABLE campaign_eligibility; DROP TABLE campaign_offers; DROP TABLE campaigns; DROP TABLE brands",
        )
        .await
    }
}
