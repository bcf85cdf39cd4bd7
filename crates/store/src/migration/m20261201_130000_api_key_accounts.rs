//! `api_keys.accounts`: the accounts a `creator:read` key may read, one
//! `network:id` per line (empty for every other key).

use sea_orm_migration::prelude::*;

use super::run;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// The trait's signature (via async_trait) elides SchemaManager's lifetime.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "ALTER TABLE api_keys ADD COLUMN accounts TEXT NOT NULL DEFAULT ''").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "ALTER TABLE api_keys DROP COLUMN accounts").await
    }
}
