//! Brands' rate cards: what each creator asks one brand for one perk, per
//! currency. Every read and write is scoped by brand in the query itself.

use std::collections::HashMap;

use lift_domain::{AccountId, Micros};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    TransactionSession, TransactionTrait,
};

use crate::Error;

pub mod entity {
    //! Entity of `rate_cards`.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rate_cards")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub brand_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub currency: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub network: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: String,
        pub rate: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use entity as rc;

/// One creator's rate on a brand's card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    pub account: AccountId,
    pub currency: String,
    /// Minor units of `currency`.
    pub rate: i64,
    pub updated_at: Micros,
}

/// Stores `rates` (in `currency`) on the brand's card, replacing a creator's
/// earlier rate (a creator listed twice keeps the later one); with `replace`, the brand's other rates in that currency are
/// dropped first. All or nothing. Returns how many rates the brand now holds
/// in the currency.
pub async fn set_rates<C>(
    db: &C,
    brand_id: &str,
    currency: &str,
    rates: &[(AccountId, i64)],
    replace: bool,
    now: Micros,
) -> Result<u64, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db.begin().await?;
    if replace {
        rc::Entity::delete_many()
            .filter(rc::Column::BrandId.eq(brand_id))
            .filter(rc::Column::Currency.eq(currency))
            .exec(&txn)
            .await?;
    }
    // A creator listed twice keeps its last rate (PostgreSQL refuses to update
    // one row twice in one statement).
    let last: HashMap<&AccountId, i64> = rates.iter().map(|(a, r)| (a, *r)).collect();
    let mut rates: Vec<(&AccountId, i64)> = last.into_iter().collect();
    rates.sort();
    for chunk in rates.chunks(500) {
        rc::Entity::insert_many(chunk.iter().map(|&(a, rate)| rc::ActiveModel {
            brand_id: Set(brand_id.to_owned()),
            currency: Set(currency.to_owned()),
            network: Set(a.network.clone()),
            account_id: Set(a.id.clone()),
            rate: Set(rate),
            updated_at: Set(now),
        }))
        .on_conflict(
            OnConflict::columns([
                rc::Column::BrandId,
                rc::Column::Currency,
                rc::Column::Network,
                rc::Column::AccountId,
            ])
            .update_columns([rc::Column::Rate, rc::Column::UpdatedAt])
            .to_owned(),
        )
        .exec(&txn)
        .await?;
    }
    let total = rc::Entity::find()
        .filter(rc::Column::BrandId.eq(brand_id))
        .filter(rc::Column::Currency.eq(currency))
        .count(&txn)
        .await?;
    txn.commit().await?;
    Ok(total)
}

/// The brand's rates, in `currency` or in every currency, by currency then account.
pub async fn rates(db: &impl ConnectionTrait, brand_id: &str, currency: Option<&str>) -> Result<Vec<Rate>, Error> {
    let mut q = rc::Entity::find().filter(rc::Column::BrandId.eq(brand_id));
    if let Some(c) = currency {
        q = q.filter(rc::Column::Currency.eq(c));
    }
    Ok(q.order_by_asc(rc::Column::Currency)
        .order_by_asc(rc::Column::Network)
        .order_by_asc(rc::Column::AccountId)
        .all(db)
        .await?
        .into_iter()
        .map(|m| Rate {
            account: AccountId::new(m.network, m.account_id),
            currency: m.currency,
            rate: m.rate,
            updated_at: m.updated_at,
        })
        .collect())
}

/// The brand's card in one currency, by account.
pub async fn card(db: &impl ConnectionTrait, brand_id: &str, currency: &str) -> Result<HashMap<AccountId, i64>, Error> {
    Ok(rates(db, brand_id, Some(currency)).await?.into_iter().map(|r| (r.account, r.rate)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins upsert, replace, the brand scope and the currency split.
    #[tokio::test]
    async fn rates_are_upserted_replaced_and_scoped() {
        let db = crate::connect("sqlite::memory:").await.expect("db");
        let (a, b) = (AccountId::new("x", "anna"), AccountId::new("x", "bo"));
        assert_eq!(
            set_rates(&db, "brd_a", "EUR", &[(a.clone(), 100), (b.clone(), 50)], false, 1).await.expect("set"),
            2
        );
        assert_eq!(set_rates(&db, "brd_a", "EUR", &[(a.clone(), 120)], false, 2).await.expect("set"), 2);
        set_rates(&db, "brd_a", "USD", &[(a.clone(), 7)], false, 2).await.expect("set");
        set_rates(&db, "brd_b", "EUR", &[(b.clone(), 9)], false, 2).await.expect("set");
        let card_a = card(&db, "brd_a", "EUR").await.expect("card");
        assert_eq!((card_a[&a], card_a[&b]), (120, 50));
        assert_eq!(rates(&db, "brd_a", None).await.expect("all").len(), 3);
        assert_eq!(set_rates(&db, "brd_a", "EUR", &[(b.clone(), 60)], true, 3).await.expect("replace"), 1);
        assert_eq!(card(&db, "brd_a", "EUR").await.expect("card"), HashMap::from([(b.clone(), 60)]));
        assert_eq!(card(&db, "brd_b", "EUR").await.expect("card"), HashMap::from([(b, 9)]), "another brand untouched");
        assert_eq!(card(&db, "brd_a", "USD").await.expect("card"), HashMap::from([(a, 7)]));
    }
}
