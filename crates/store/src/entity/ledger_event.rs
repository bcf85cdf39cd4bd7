//! One stored event; `body` and `attribution` are bytes as the ledger's writer
//! encoded them (ingestion: prost-encoded `lift.ingest.v1.Event` and
//! `lift.ingest.v1.Attribution`; see `lift_ingest::ledger::sql`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub ledger_offset: i64,
    pub source: String,
    pub event_id: String,
    pub kind: i16,
    pub occurred_at: i64,
    pub ingested_at: i64,
    pub account: Option<String>,
    pub attribution: Option<Vec<u8>>,
    pub body: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
