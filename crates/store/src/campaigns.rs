//! Matching's tables: brands (tenants, with hashed API keys), their campaigns,
//! the offers and holdout issued for a campaign, and the eligible set last
//! evaluated (for churn across model versions).
//!
//! Every campaign read is scoped by brand in the query itself, so one brand
//! can never read another's rows even through a bug in a caller's check.
//! Specs, portfolios and churn are stored as JSON text written and read by
//! matching: the store keeps them opaque so the campaign rules live in one place.

use lift_domain::offer::OfferState;
use lift_domain::{AccountId, Micros};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionSession, TransactionTrait,
};

use crate::Error;

/// A brand (tenant). Its API keys are ordinary keys bound to it (`api_keys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brand {
    pub id: String,
    pub name: String,
    pub created_at: Micros,
}

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignState {
    Draft = 1,
    Offered = 2,
}

impl CampaignState {
    fn from_db(v: i16) -> Result<Self, Error> {
        match v {
            1 => Ok(Self::Draft),
            2 => Ok(Self::Offered),
            other => Err(Error::Conflict(format!("unknown campaign state {other} in the database"))),
        }
    }
}

/// A stored campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: String,
    pub brand_id: String,
    pub name: String,
    pub state: CampaignState,
    /// JSON of `lift_domain::campaign::CampaignSpec`.
    pub spec: String,
    pub created_at: Micros,
    /// Scoring model version eligibility was last evaluated under (empty: never).
    pub model_version: String,
    /// JSON of matching's recorded portfolio, once selected.
    pub portfolio: Option<String>,
    /// The holdout seed, once offers are issued.
    pub holdout_seed: Option<u64>,
    /// Ledger head when the offers were issued.
    pub offers_offset: Option<u64>,
    /// JSON list of eligibility churn records.
    pub churn: String,
}

/// One creator's offer or holdout assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub account: AccountId,
    pub handle: String,
    /// Empty for a held-out creator.
    pub link: String,
    pub code: String,
    pub holdout: bool,
    /// Whether the portfolio had picked this creator (held-out members are the lift controls).
    pub in_portfolio: bool,
    pub cost: i64,
    /// Where the offer is in its life (`Offered` for a held-out creator too,
    /// who is never offered anything: read `holdout` first).
    pub state: OfferState,
    /// Ledger offset of the transition into `state` (0 while offered).
    pub state_offset: u64,
}

pub mod brand {
    //! Entity of `brands`.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "brands")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod campaign {
    //! Entity of `campaigns`.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "campaigns")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub brand_id: String,
        pub name: String,
        pub state: i16,
        pub spec: String,
        pub created_at: i64,
        pub model_version: String,
        pub portfolio: Option<String>,
        pub holdout_seed: Option<i64>,
        pub offers_offset: Option<i64>,
        pub churn: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod offer {
    //! Entity of `campaign_offers`.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "campaign_offers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub network: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: String,
        pub handle: String,
        pub link: String,
        pub code: String,
        pub holdout: bool,
        pub in_portfolio: bool,
        pub cost: i64,
        pub state: i16,
        pub state_offset: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod eligibility {
    //! Entity of `campaign_eligibility`.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "campaign_eligibility")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub network: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// u64 values (seeds, offsets) are stored as their i64 bit pattern so every
/// backend can hold the full range.
fn u64_to_db(v: u64) -> i64 {
    v as i64
}

fn u64_from_db(v: i64) -> u64 {
    v as u64
}

/// Records a brand; its key is an ordinary API key bound to it (`api_keys`).
pub async fn insert_brand(db: &impl ConnectionTrait, brand: &Brand) -> Result<(), Error> {
    brand::Entity::insert(brand::ActiveModel {
        id: Set(brand.id.clone()),
        name: Set(brand.name.clone()),
        created_at: Set(brand.created_at),
    })
    .exec(db)
    .await?;
    Ok(())
}

pub async fn brand(db: &impl ConnectionTrait, id: &str) -> Result<Option<Brand>, Error> {
    Ok(brand::Entity::find_by_id(id).one(db).await?.map(|m| Brand { id: m.id, name: m.name, created_at: m.created_at }))
}

impl TryFrom<campaign::Model> for Campaign {
    type Error = Error;

    fn try_from(m: campaign::Model) -> Result<Self, Error> {
        Ok(Self {
            id: m.id,
            brand_id: m.brand_id,
            name: m.name,
            state: CampaignState::from_db(m.state)?,
            spec: m.spec,
            created_at: m.created_at,
            model_version: m.model_version,
            portfolio: m.portfolio,
            holdout_seed: m.holdout_seed.map(u64_from_db),
            offers_offset: m.offers_offset.map(u64_from_db),
            churn: m.churn,
        })
    }
}

pub async fn insert_campaign(db: &impl ConnectionTrait, c: &Campaign) -> Result<(), Error> {
    campaign::Entity::insert(campaign::ActiveModel {
        id: Set(c.id.clone()),
        brand_id: Set(c.brand_id.clone()),
        name: Set(c.name.clone()),
        state: Set(c.state as i16),
        spec: Set(c.spec.clone()),
        created_at: Set(c.created_at),
        model_version: Set(c.model_version.clone()),
        portfolio: Set(c.portfolio.clone()),
        holdout_seed: Set(c.holdout_seed.map(u64_to_db)),
        offers_offset: Set(c.offers_offset.map(u64_to_db)),
        churn: Set(c.churn.clone()),
    })
    .exec(db)
    .await?;
    Ok(())
}

/// The brand's campaign `id`; `None` when it does not exist *or* belongs to another brand.
pub async fn get_campaign(db: &impl ConnectionTrait, brand_id: &str, id: &str) -> Result<Option<Campaign>, Error> {
    campaign::Entity::find()
        .filter(campaign::Column::Id.eq(id))
        .filter(campaign::Column::BrandId.eq(brand_id))
        .one(db)
        .await?
        .map(Campaign::try_from)
        .transpose()
}

/// A page of the brand's campaigns, oldest first, strictly after the
/// `(created_at, id)` of the previous page's last row.
pub async fn list_campaigns(
    db: &impl ConnectionTrait,
    brand_id: &str,
    after: Option<(Micros, &str)>,
    limit: u64,
) -> Result<Vec<Campaign>, Error> {
    let mut q = campaign::Entity::find().filter(campaign::Column::BrandId.eq(brand_id));
    if let Some((at, id)) = after {
        q = q.filter(
            Condition::any()
                .add(campaign::Column::CreatedAt.gt(at))
                .add(Condition::all().add(campaign::Column::CreatedAt.eq(at)).add(campaign::Column::Id.gt(id))),
        );
    }
    q.order_by_asc(campaign::Column::CreatedAt)
        .order_by_asc(campaign::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(Campaign::try_from)
        .collect()
}

/// Records the selected portfolio while the campaign is still a draft.
/// Returns false when the campaign is missing, another brand's, or already offered.
pub async fn set_portfolio(
    db: &impl ConnectionTrait,
    brand_id: &str,
    id: &str,
    portfolio: &str,
) -> Result<bool, Error> {
    let r = campaign::Entity::update_many()
        .col_expr(campaign::Column::Portfolio, Expr::value(portfolio.to_owned()))
        .filter(campaign::Column::Id.eq(id))
        .filter(campaign::Column::BrandId.eq(brand_id))
        .filter(campaign::Column::State.eq(CampaignState::Draft as i16))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Records offers and holdout and moves the campaign to Offered, all or
/// nothing. Offers are issued once: a second call is a [`Error::Conflict`].
pub async fn record_offers<C>(
    db: &C,
    brand_id: &str,
    id: &str,
    offers: &[Offer],
    holdout_seed: u64,
    offers_offset: u64,
) -> Result<(), Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db.begin().await?;
    let r = campaign::Entity::update_many()
        .col_expr(campaign::Column::State, Expr::value(CampaignState::Offered as i16))
        .col_expr(campaign::Column::HoldoutSeed, Expr::value(u64_to_db(holdout_seed)))
        .col_expr(campaign::Column::OffersOffset, Expr::value(u64_to_db(offers_offset)))
        .filter(campaign::Column::Id.eq(id))
        .filter(campaign::Column::BrandId.eq(brand_id))
        .filter(campaign::Column::State.eq(CampaignState::Draft as i16))
        .exec(&txn)
        .await?;
    if r.rows_affected != 1 {
        return Err(Error::Conflict(format!("offers for campaign {id} have already been issued")));
    }
    for chunk in offers.chunks(200) {
        offer::Entity::insert_many(chunk.iter().map(|o| offer::ActiveModel {
            campaign_id: Set(id.to_owned()),
            network: Set(o.account.network.clone()),
            account_id: Set(o.account.id.clone()),
            handle: Set(o.handle.clone()),
            link: Set(o.link.clone()),
            code: Set(o.code.clone()),
            holdout: Set(o.holdout),
            in_portfolio: Set(o.in_portfolio),
            cost: Set(o.cost),
            state: Set(o.state.code()),
            state_offset: Set(u64_to_db(o.state_offset)),
        }))
        .exec(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

impl TryFrom<offer::Model> for Offer {
    type Error = Error;

    fn try_from(m: offer::Model) -> Result<Self, Error> {
        let state = OfferState::from_code(i32::from(m.state))
            .ok_or_else(|| Error::Conflict(format!("unknown offer state {} in the database", m.state)))?;
        Ok(Offer {
            account: AccountId::new(m.network, m.account_id),
            handle: m.handle,
            link: m.link,
            code: m.code,
            holdout: m.holdout,
            in_portfolio: m.in_portfolio,
            cost: m.cost,
            state,
            state_offset: u64_from_db(m.state_offset),
        })
    }
}

/// Offers and holdout assignments of a campaign, by account.
pub async fn offers(db: &impl ConnectionTrait, campaign_id: &str) -> Result<Vec<Offer>, Error> {
    offer::Entity::find()
        .filter(offer::Column::CampaignId.eq(campaign_id))
        .order_by_asc(offer::Column::Network)
        .order_by_asc(offer::Column::AccountId)
        .all(db)
        .await?
        .into_iter()
        .map(Offer::try_from)
        .collect()
}

/// A page of a campaign's offers and holdout assignments, by account, strictly after `after`.
pub async fn offers_page(
    db: &impl ConnectionTrait,
    campaign_id: &str,
    after: Option<&AccountId>,
    limit: u64,
) -> Result<Vec<Offer>, Error> {
    let mut q = offer::Entity::find().filter(offer::Column::CampaignId.eq(campaign_id));
    if let Some(a) = after {
        q = q.filter(
            Condition::any().add(offer::Column::Network.gt(a.network.as_str())).add(
                Condition::all()
                    .add(offer::Column::Network.eq(a.network.as_str()))
                    .add(offer::Column::AccountId.gt(a.id.as_str())),
            ),
        );
    }
    q.order_by_asc(offer::Column::Network)
        .order_by_asc(offer::Column::AccountId)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(Offer::try_from)
        .collect()
}

/// The campaign's offer (or holdout assignment) to `account`, if any.
pub async fn offer(db: &impl ConnectionTrait, campaign_id: &str, account: &AccountId) -> Result<Option<Offer>, Error> {
    offer::Entity::find_by_id((campaign_id.to_owned(), account.network.clone(), account.id.clone()))
        .one(db)
        .await?
        .map(Offer::try_from)
        .transpose()
}

/// Moves an issued (not held-out) offer from `from` to `to` if it is still in
/// `from`: a compare-and-set, so of two concurrent steps from one state only
/// one wins. Returns whether this call moved it.
pub async fn move_offer(
    db: &impl ConnectionTrait,
    campaign_id: &str,
    account: &AccountId,
    from: OfferState,
    to: OfferState,
) -> Result<bool, Error> {
    let r = offer::Entity::update_many()
        .col_expr(offer::Column::State, Expr::value(to.code()))
        .col_expr(offer::Column::StateOffset, Expr::value(0i64))
        .filter(offer::Column::CampaignId.eq(campaign_id))
        .filter(offer::Column::Network.eq(account.network.as_str()))
        .filter(offer::Column::AccountId.eq(account.id.as_str()))
        .filter(offer::Column::Holdout.eq(false))
        .filter(offer::Column::State.eq(from.code()))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Records the ledger offset of the transition into `state`, if the offer is
/// still in it (a later step's offset is not overwritten).
pub async fn set_offer_offset(
    db: &impl ConnectionTrait,
    campaign_id: &str,
    account: &AccountId,
    state: OfferState,
    offset: u64,
) -> Result<(), Error> {
    offer::Entity::update_many()
        .col_expr(offer::Column::StateOffset, Expr::value(u64_to_db(offset)))
        .filter(offer::Column::CampaignId.eq(campaign_id))
        .filter(offer::Column::Network.eq(account.network.as_str()))
        .filter(offer::Column::AccountId.eq(account.id.as_str()))
        .filter(offer::Column::State.eq(state.code()))
        .exec(db)
        .await?;
    Ok(())
}

/// The eligible set recorded for a campaign and the model version it was evaluated under.
pub async fn eligibility(db: &impl ConnectionTrait, campaign_id: &str) -> Result<Vec<AccountId>, Error> {
    Ok(eligibility::Entity::find()
        .filter(eligibility::Column::CampaignId.eq(campaign_id))
        .all(db)
        .await?
        .into_iter()
        .map(|m| AccountId::new(m.network, m.account_id))
        .collect())
}

/// Replaces the recorded eligible set, the model version and the churn log
/// together, so churn is counted exactly once per model change.
pub async fn replace_eligibility<C>(
    db: &C,
    campaign_id: &str,
    model_version: &str,
    eligible: &[AccountId],
    churn: &str,
) -> Result<(), Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db.begin().await?;
    // The campaign's row first: its lock makes concurrent replacements of one
    // campaign's set (two matching replicas) take turns, so the second one's
    // delete sees the first one's rows instead of colliding with them on insert.
    campaign::Entity::update_many()
        .col_expr(campaign::Column::ModelVersion, Expr::value(model_version.to_owned()))
        .col_expr(campaign::Column::Churn, Expr::value(churn.to_owned()))
        .filter(campaign::Column::Id.eq(campaign_id))
        .exec(&txn)
        .await?;
    eligibility::Entity::delete_many().filter(eligibility::Column::CampaignId.eq(campaign_id)).exec(&txn).await?;
    for chunk in eligible.chunks(300) {
        eligibility::Entity::insert_many(chunk.iter().map(|a| eligibility::ActiveModel {
            campaign_id: Set(campaign_id.to_owned()),
            network: Set(a.network.clone()),
            account_id: Set(a.id.clone()),
        }))
        .exec(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(id: &str, brand: &str, at: Micros) -> Campaign {
        Campaign {
            id: id.into(),
            brand_id: brand.into(),
            name: format!("campaign {id}"),
            state: CampaignState::Draft,
            spec: "{}".into(),
            created_at: at,
            model_version: String::new(),
            portfolio: None,
            holdout_seed: None,
            offers_offset: None,
            churn: "[]".into(),
        }
    }

    /// Pins tenant scoping in the queries, keyset pagination, and that offers are issued once.
    #[tokio::test]
    async fn campaigns_are_scoped_paged_and_offered_once() {
        let db = crate::connect("sqlite::memory:").await.expect("db");
        let b = Brand { id: "brd_a".into(), name: "A".into(), created_at: 1 };
        insert_brand(&db, &b).await.expect("brand");
        assert_eq!(brand(&db, "brd_a").await.expect("q"), Some(b));
        assert_eq!(brand(&db, "brd_b").await.expect("q"), None);

        for (i, at) in [5, 5, 7].into_iter().enumerate() {
            insert_campaign(&db, &campaign(&format!("c{i}"), "brd_a", at)).await.expect("insert");
        }
        insert_campaign(&db, &campaign("other", "brd_b", 1)).await.expect("insert");
        assert!(get_campaign(&db, "brd_a", "other").await.expect("q").is_none());
        assert!(get_campaign(&db, "brd_b", "other").await.expect("q").is_some());

        let p1 = list_campaigns(&db, "brd_a", None, 2).await.expect("page");
        assert_eq!(p1.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["c0", "c1"]);
        let last = &p1[1];
        let p2 = list_campaigns(&db, "brd_a", Some((last.created_at, &last.id)), 2).await.expect("page");
        assert_eq!(p2.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["c2"]);

        assert!(!set_portfolio(&db, "brd_b", "c0", "{}").await.expect("q"), "another brand cannot write");
        assert!(set_portfolio(&db, "brd_a", "c0", "{\"m\":1}").await.expect("q"));
        let offer = Offer {
            account: AccountId::new("x", "anna"),
            handle: "anna".into(),
            link: "l/1".into(),
            code: "ANNA1".into(),
            holdout: false,
            in_portfolio: true,
            cost: 10,
            state: OfferState::Offered,
            state_offset: 0,
        };
        record_offers(&db, "brd_a", "c0", std::slice::from_ref(&offer), u64::MAX, 42).await.expect("offers");
        assert!(matches!(record_offers(&db, "brd_a", "c0", &[], 1, 43).await, Err(Error::Conflict(_))));
        let c0 = get_campaign(&db, "brd_a", "c0").await.expect("q").expect("found");
        assert_eq!((c0.state, c0.holdout_seed, c0.offers_offset), (CampaignState::Offered, Some(u64::MAX), Some(42)));
        assert_eq!(offers(&db, "c0").await.expect("q"), vec![offer.clone()]);

        let anna = &offer.account;
        assert!(move_offer(&db, "c0", anna, OfferState::Offered, OfferState::Accepted).await.expect("move"));
        assert!(
            !move_offer(&db, "c0", anna, OfferState::Offered, OfferState::Declined).await.expect("move"),
            "a second step from the same state loses"
        );
        set_offer_offset(&db, "c0", anna, OfferState::Accepted, 77).await.expect("offset");
        let now = super::offer(&db, "c0", anna).await.expect("q").expect("found");
        assert_eq!((now.state, now.state_offset), (OfferState::Accepted, 77));
        assert!(super::offer(&db, "c0", &AccountId::new("x", "nobody")).await.expect("q").is_none());

        let set = vec![AccountId::new("x", "a"), AccountId::new("x", "b")];
        replace_eligibility(&db, "c0", "v2", &set, "[1]").await.expect("elig");
        replace_eligibility(&db, "c0", "v2", &set[..1], "[2]").await.expect("elig");
        assert_eq!(eligibility(&db, "c0").await.expect("q"), set[..1]);
        let c0 = get_campaign(&db, "brd_a", "c0").await.expect("q").expect("found");
        assert_eq!((c0.model_version.as_str(), c0.churn.as_str()), ("v2", "[2]"));
    }
}
