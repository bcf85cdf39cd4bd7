//! Drops `brands.key_hash`: a brand's key lives in `api_keys` (scope
//! `campaigns:write`, bound to the brand) like every other key, so its hash is
//! stored once and rotation or revocation there is the whole story.
//!
//! SQLite cannot drop a UNIQUE column, so both backends rebuild the table
//! (nothing references `brands` by foreign key). Down puts a hash back: the
//! brand's first `campaigns:write` key, or a placeholder no key hashes to.

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
            "CREATE TABLE brands_next (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                created_at BIGINT NOT NULL
             );
             INSERT INTO brands_next (id, name, created_at) SELECT id, name, created_at FROM brands;
             DROP TABLE brands;
             ALTER TABLE brands_next RENAME TO brands",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            "CREATE TABLE brands_prev (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                key_hash TEXT NOT NULL UNIQUE,
                created_at BIGINT NOT NULL
             );
             INSERT INTO brands_prev (id, name, key_hash, created_at)
                SELECT b.id, b.name,
                       COALESCE((SELECT MIN(k.key_hash) FROM api_keys k WHERE k.brand_id = b.id), 'none:' || b.id),
                       b.created_at
                FROM brands b;
             DROP TABLE brands;
             ALTER TABLE brands_prev RENAME TO brands",
        )
        .await
    }
}
