//! A registered tracking link or code and who owns it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "links")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub link: String,
    pub owner_network: String,
    pub owner_id: String,
    /// Empty when the link belongs to no campaign.
    pub campaign_id: String,
    pub attribution_window_secs: i64,
    pub registered_at: i64,
    /// Where the link redirector sends visitors; empty = its default.
    pub landing_url: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
