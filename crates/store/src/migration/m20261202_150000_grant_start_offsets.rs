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

#[cfg(test)]
mod tests {
    use sea_orm::ConnectionTrait;
    use sea_orm_migration::MigratorTrait;

    use crate::migration::Migrator;

    /// Pins the backfill: a grant recorded before this migration starts at the
    /// later of its scoring run's offset and its campaign's offers offset.
    #[tokio::test]
    async fn older_grants_get_the_closest_start_kept() {
        let db = crate::connect("sqlite::memory:").await.expect("db");
        let names: Vec<String> = Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
        let at = names.iter().position(|n| n.contains("grant_start_offsets")).expect("this migration");
        Migrator::down(&db, Some((names.len() - at) as u32)).await.expect("down");
        db.execute_unprepared(
            "INSERT INTO campaigns (id, brand_id, name, state, spec, created_at, model_version, offers_offset, churn)
             VALUES ('cmp_a', 'brd_a', 'a', 2, '{}', 1, '', 50, '[]');
             INSERT INTO standing_grants (campaign_id, network, account_id, handle, holdout, cost, model_version,
               as_of, granted_at, why, registered)
             VALUES ('cmp_a', 'x', 'first', 'h', FALSE, 100, 'm1', 40, 1, '[]', TRUE),
                    ('cmp_a', 'x', 'later', 'h', TRUE, 0, 'm1', 70, 2, '[]', TRUE)",
        )
        .await
        .expect("older rows");
        crate::migrate(&db).await.expect("up");
        let mut starts = crate::standing::starts(&db, "cmp_a").await.expect("starts");
        starts.sort();
        let want = [("first", 50), ("later", 70)].map(|(a, s)| (lift_domain::AccountId::new("x", a), s));
        assert_eq!(starts, want);
    }
}
