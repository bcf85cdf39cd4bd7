//! Schema migrations, portable across SQLite and PostgreSQL.
//!
//! To add one: create `mYYYYMMDD_HHMMSS_<what>.rs` with `up` and `down`, declare it
//! below and append it to [`Migrator::migrations`] (order is application order; never
//! reorder or edit an applied migration).

use sea_orm_migration::prelude::*;

mod m20261126_000001_create_ledger;
mod m20261126_000002_create_links;
mod m20261126_120000_campaigns;
mod m20261126_140000_scoring;
mod m20261126_160000_api_keys;
mod m20261126_180000_drop_scores_run_index;
mod m20261201_100000_scoring_checkpoints;
mod m20261201_120000_scoring_writer;
mod m20261201_130000_api_key_accounts;
mod m20261201_150000_brand_key_once;
mod m20261201_160000_collect;
mod m20261202_010000_privacy;
mod m20261202_110000_report_aggregates;
mod m20261202_120000_rate_cards;
mod m20261202_120100_offer_states;
mod m20261202_130000_standing_programs;
mod m20261202_150000_grant_start_offsets;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_ledger::Migration),
            Box::new(m20261126_000002_create_links::Migration),
            Box::new(m20261126_120000_campaigns::Migration),
            Box::new(m20261126_140000_scoring::Migration),
            Box::new(m20261126_160000_api_keys::Migration),
            Box::new(m20261126_180000_drop_scores_run_index::Migration),
            Box::new(m20261201_100000_scoring_checkpoints::Migration),
            Box::new(m20261201_120000_scoring_writer::Migration),
            Box::new(m20261201_130000_api_key_accounts::Migration),
            Box::new(m20261201_150000_brand_key_once::Migration),
            Box::new(m20261201_160000_collect::Migration),
            Box::new(m20261202_010000_privacy::Migration),
            Box::new(m20261202_110000_report_aggregates::Migration),
            Box::new(m20261202_120000_rate_cards::Migration),
            Box::new(m20261202_120100_offer_states::Migration),
            Box::new(m20261202_130000_standing_programs::Migration),
            Box::new(m20261202_150000_grant_start_offsets::Migration),
        ]
    }
}

/// Runs each statement of `sql` in order; `;` separates statements.
pub(crate) async fn run(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        db.execute_unprepared(stmt).await?;
    }
    Ok(())
}

/// The backend's name for a byte column.
pub(crate) fn bytes_type(manager: &SchemaManager<'_>) -> &'static str {
    match manager.get_database_backend() {
        sea_orm::DbBackend::Postgres => "BYTEA",
        _ => "BLOB",
    }
}
