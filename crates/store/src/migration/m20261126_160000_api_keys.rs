//! API keys with scopes, stored hashed; brands' existing keys become keys with the
//! `campaigns:write` scope bound to their brand.

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
            "CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                key_hash TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                scopes TEXT NOT NULL,
                brand_id TEXT,
                created_at BIGINT NOT NULL,
                revoked_at BIGINT
             );
             INSERT INTO api_keys (id, key_hash, name, scopes, brand_id, created_at)
                SELECT 'key_' || id, key_hash, name, 'campaigns:write', id, created_at FROM brands",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE api_keys").await
    }
}
