//! sea-orm entities of the store's tables. The ledger's hot paths use
//! backend-specific statements (see `ledger`); these serve everything else.

pub mod ledger_event;
pub mod link;
pub mod link_click;
