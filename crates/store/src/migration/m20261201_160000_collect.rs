//! The link redirector and order webhooks (lift-collect): `links.landing_url` (where a
//! followed link goes; empty = the redirector's default landing page) and
//! `collect_webhook_secrets` (each brand's HMAC secret for its shop's order webhooks).

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
            "ALTER TABLE links ADD COLUMN landing_url TEXT NOT NULL DEFAULT '';
             CREATE TABLE collect_webhook_secrets (
                 brand_id TEXT NOT NULL PRIMARY KEY,
                 secret TEXT NOT NULL,
                 created_at BIGINT NOT NULL
             )",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE collect_webhook_secrets; ALTER TABLE links DROP COLUMN landing_url").await
    }
}
