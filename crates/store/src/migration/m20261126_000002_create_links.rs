//! The link registry and the click index that conversion attribution reads.

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
            "CREATE TABLE links (
                link TEXT PRIMARY KEY,
                owner_network TEXT NOT NULL,
                owner_id TEXT NOT NULL,
                campaign_id TEXT NOT NULL,
                attribution_window_secs BIGINT NOT NULL,
                registered_at BIGINT NOT NULL
             );
             CREATE INDEX links_campaign ON links (campaign_id);
             CREATE TABLE link_clicks (
                click_offset BIGINT PRIMARY KEY,
                visitor_id TEXT NOT NULL,
                link TEXT NOT NULL,
                occurred_at BIGINT NOT NULL,
                attributable_until BIGINT NOT NULL
             );
             CREATE INDEX link_clicks_visitor ON link_clicks (visitor_id, occurred_at)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE link_clicks; DROP TABLE links").await
    }
}
