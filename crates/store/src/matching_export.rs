//! The storage side of matching's privacy export: every row of matching's
//! tables that names one account, across every brand (read-only). Which tables
//! those are is listed in [`crate::matching_erasure`]; JSON columns that name
//! accounts (portfolios, recalibration lists, report states) are read whole and
//! searched by matching, which owns their format.

use lift_domain::AccountId;
use sea_orm::sea_query::Value;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Statement};

use crate::Error;
use crate::campaigns::{Campaign, Offer, campaign, offer};
use crate::rate_cards::{Rate, entity as rc};
use crate::standing::{GRANT_COLUMNS, Grant, grant_of};

fn stmt(backend: DbBackend, sql: &str, a: &AccountId) -> Statement {
    let sql =
        if backend == DbBackend::Postgres { sql.replacen('?', "$1", 1).replacen('?', "$2", 1) } else { sql.into() };
    Statement::from_sql_and_values(backend, sql, [Value::from(a.network.clone()), Value::from(a.id.clone())])
}

/// Every campaign of every brand, by id (an export names each row's campaign).
pub async fn campaigns(db: &impl ConnectionTrait) -> Result<Vec<Campaign>, Error> {
    campaign::Entity::find()
        .order_by_asc(campaign::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(Campaign::try_from)
        .collect()
}

/// The campaigns whose recorded eligible set holds the account, by campaign id.
pub async fn eligibility(db: &impl ConnectionTrait, a: &AccountId) -> Result<Vec<String>, Error> {
    let sql = "SELECT campaign_id FROM campaign_eligibility WHERE network = ? AND account_id = ? ORDER BY campaign_id";
    let rows = db.query_all_raw(stmt(db.get_database_backend(), sql, a)).await?;
    rows.iter().map(|r| Ok(r.try_get_by_index::<String>(0)?)).collect()
}

/// The account's offers and holdout places, with their campaign ids, by campaign id.
pub async fn offers(db: &impl ConnectionTrait, a: &AccountId) -> Result<Vec<(String, Offer)>, Error> {
    offer::Entity::find()
        .filter(offer::Column::Network.eq(a.network.as_str()))
        .filter(offer::Column::AccountId.eq(a.id.as_str()))
        .order_by_asc(offer::Column::CampaignId)
        .all(db)
        .await?
        .into_iter()
        .map(|m| {
            let id = m.campaign_id.clone();
            Ok((id, Offer::try_from(m)?))
        })
        .collect()
}

/// Every brand's rate for the account: (brand id, rate), by brand then currency.
pub async fn rates(db: &impl ConnectionTrait, a: &AccountId) -> Result<Vec<(String, Rate)>, Error> {
    Ok(rc::Entity::find()
        .filter(rc::Column::Network.eq(a.network.as_str()))
        .filter(rc::Column::AccountId.eq(a.id.as_str()))
        .order_by_asc(rc::Column::BrandId)
        .order_by_asc(rc::Column::Currency)
        .all(db)
        .await?
        .into_iter()
        .map(|m| {
            let rate = Rate {
                account: AccountId::new(m.network, m.account_id),
                currency: m.currency,
                rate: m.rate,
                updated_at: m.updated_at,
            };
            (m.brand_id, rate)
        })
        .collect())
}

/// Standing programs' perks (and control places) of the account: (campaign id, grant).
pub async fn grants(db: &impl ConnectionTrait, a: &AccountId) -> Result<Vec<(String, Grant)>, Error> {
    let sql = format!(
        "SELECT {GRANT_COLUMNS}, campaign_id FROM standing_grants WHERE network = ? AND account_id = ? \
         ORDER BY campaign_id"
    );
    let rows = db.query_all_raw(stmt(db.get_database_backend(), &sql, a)).await?;
    rows.iter().map(|r| Ok((r.try_get_by_index::<String>(10)?, grant_of(r)?))).collect()
}

/// One standing program's recalibration record, with the JSON list of the
/// accounts that left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecalibrationList {
    pub campaign_id: String,
    pub from_version: String,
    pub to_version: String,
    pub recorded_at: lift_domain::Micros,
    pub left_accounts: String,
}

/// Every standing program's recalibration records, by campaign and time.
pub async fn recalibrations(db: &impl ConnectionTrait) -> Result<Vec<RecalibrationList>, Error> {
    let sql = "SELECT campaign_id, from_version, to_version, recorded_at, left_accounts FROM standing_recalibrations \
               ORDER BY campaign_id, recorded_at, to_version";
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
    rows.iter()
        .map(|r| {
            Ok(RecalibrationList {
                campaign_id: r.try_get_by_index(0)?,
                from_version: r.try_get_by_index(1)?,
                to_version: r.try_get_by_index(2)?,
                recorded_at: r.try_get_by_index(3)?,
                left_accounts: r.try_get_by_index(4)?,
            })
        })
        .collect()
}
