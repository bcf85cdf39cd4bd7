//! A click on a registered link, kept so a later conversion by the same visitor
//! can find it: the ledger offset of the click, and until when it may be credited.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "link_clicks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub click_offset: i64,
    pub visitor_id: String,
    pub link: String,
    pub occurred_at: i64,
    pub attributable_until: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
