//! The storage side of matching acting on an erasure marker: which accounts
//! matching's tables name (so a subject hash can be matched against them), and
//! deleting or redacting every row that names one.
//!
//! Matching's tables that name an account: `campaign_offers` (offers, with the
//! holdout controls), `campaign_eligibility` (recorded eligible sets),
//! `rate_cards` (a brand's price for a creator), `standing_grants` (perks a
//! standing program gave), `campaigns.portfolio` (JSON of the selected
//! members), `standing_recalibrations.left_accounts` (JSON list of the accounts
//! a recalibration dropped), and `report_aggregates` (report builder states
//! that name creators, their audiences and customers). The rules of what to do
//! with each are matching's (`lift_matching`'s erasure module); these are the
//! statements.

use lift_domain::AccountId;
use sea_orm::sea_query::Value;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::Error;

fn ph(backend: DbBackend, i: usize) -> String {
    if backend == DbBackend::Postgres { format!("${i}") } else { "?".to_owned() }
}

/// Every account that an offer, a recorded eligibility or a rate card names.
pub async fn named_accounts(db: &impl ConnectionTrait) -> Result<Vec<AccountId>, Error> {
    let sql = "SELECT network, account_id FROM campaign_offers \
               UNION SELECT network, account_id FROM campaign_eligibility \
               UNION SELECT network, account_id FROM rate_cards \
               UNION SELECT network, account_id FROM standing_grants";
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
    rows.iter()
        .map(|r| Ok(AccountId::new(r.try_get_by_index::<String>(0)?, r.try_get_by_index::<String>(1)?)))
        .collect()
}

/// Rows [`delete_account`] removed, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeletedRows {
    pub offers: u64,
    pub eligibility: u64,
    pub rate_cards: u64,
    pub standing_grants: u64,
}

/// Deletes the account's offers, recorded eligibility, rate-card entries and
/// standing-program grants. A program's totals (spent, offers, controls) keep
/// counting the grant: the money was spent; only who received it goes.
pub async fn delete_account(db: &impl ConnectionTrait, a: &AccountId) -> Result<DeletedRows, Error> {
    let backend = db.get_database_backend();
    let mut n = [0u64; 4];
    for (i, table) in ["campaign_offers", "campaign_eligibility", "rate_cards", "standing_grants"].iter().enumerate() {
        // Table names are our own constants, never client text.
        let sql = format!("DELETE FROM {table} WHERE network = {} AND account_id = {}", ph(backend, 1), ph(backend, 2));
        n[i] = db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [Value::from(a.network.clone()), Value::from(a.id.clone())],
            ))
            .await?
            .rows_affected();
    }
    Ok(DeletedRows { offers: n[0], eligibility: n[1], rate_cards: n[2], standing_grants: n[3] })
}

/// Standing programs' recalibration records: (campaign id, from version, to
/// version, JSON list of the accounts that left).
pub async fn recalibration_lists(db: &impl ConnectionTrait) -> Result<Vec<(String, String, String, String)>, Error> {
    let sql = "SELECT campaign_id, from_version, to_version, left_accounts FROM standing_recalibrations \
               ORDER BY campaign_id, from_version, to_version";
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
    rows.iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?, r.try_get_by_index(2)?, r.try_get_by_index(3)?)))
        .collect()
}

/// Replaces one recalibration record's list of accounts that left.
pub async fn set_recalibration_list(
    db: &impl ConnectionTrait,
    (campaign_id, from, to): (&str, &str, &str),
    left_accounts: &str,
) -> Result<(), Error> {
    let backend = db.get_database_backend();
    let sql = format!(
        "UPDATE standing_recalibrations SET left_accounts = {} WHERE campaign_id = {} AND from_version = {} \
         AND to_version = {}",
        ph(backend, 1),
        ph(backend, 2),
        ph(backend, 3),
        ph(backend, 4)
    );
    let values = [left_accounts, campaign_id, from, to].map(|v| Value::from(v.to_owned()));
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
    Ok(())
}

/// Campaigns with a recorded portfolio: (campaign id, portfolio JSON).
pub async fn portfolios(db: &impl ConnectionTrait) -> Result<Vec<(String, String)>, Error> {
    let sql = "SELECT id, portfolio FROM campaigns WHERE portfolio IS NOT NULL ORDER BY id";
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
    rows.iter().map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?))).collect()
}

/// Replaces a campaign's portfolio JSON.
pub async fn set_portfolio(db: &impl ConnectionTrait, campaign_id: &str, portfolio: &str) -> Result<(), Error> {
    let backend = db.get_database_backend();
    let sql = format!("UPDATE campaigns SET portfolio = {} WHERE id = {}", ph(backend, 1), ph(backend, 2));
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [Value::from(portfolio.to_owned()), Value::from(campaign_id.to_owned())],
    ))
    .await?;
    Ok(())
}

/// Deletes every report aggregate (each is rebuilt from the ledger by the report
/// consumer); returns how many.
pub async fn delete_report_aggregates(db: &impl ConnectionTrait) -> Result<u64, Error> {
    let sql = "DELETE FROM report_aggregates";
    Ok(db.execute_raw(Statement::from_string(db.get_database_backend(), sql)).await?.rows_affected())
}
