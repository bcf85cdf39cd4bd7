//! Conversions between the wire types and `lift-domain` types that more than
//! one crate needs: events and ledger entries (ingestion writes them, scoring,
//! matching and the privacy service read them back), accounts, dimensions,
//! timestamps, offers, and campaign specs (matching, the CLI and the fuzz
//! targets). Conversions one service alone needs live in its own `convert`
//! module.
//!
//! Converting *from* the wire validates: a domain value is valid by
//! construction, and every problem is reported with its field path. Each domain
//! type's conversions are an extension trait named after it (`EventProto` for
//! `Event`, ...), so a call reads `Event::from_proto(&wire, &policy)` or
//! `event.to_proto()` with the trait in scope.

mod account;
mod campaign;
mod event;
mod offer;
mod score;
pub mod time;

pub use account::AccountIdProto;
pub use campaign::{CampaignSpecProto, CriterionProto, ObjectiveProto, ScoreCardProto};
pub use event::{AttributionProto, EngagementKindProto, EventKindProto, EventProto, LedgerEntryProto};
pub use offer::{OfferStateProto, OfferTransitionProto};
pub use score::DimensionProto;
pub use time::{from_timestamp, to_timestamp};

/// Every conversion trait, imported anonymously: `use lift_proto::convert::prelude::*;`
/// makes `from_proto`/`to_proto` available on every domain type without naming the traits.
pub mod prelude {
    pub use super::{
        AccountIdProto as _, AttributionProto as _, CampaignSpecProto as _, CriterionProto as _, DimensionProto as _,
        EngagementKindProto as _, EventKindProto as _, EventProto as _, LedgerEntryProto as _, ObjectiveProto as _,
        OfferStateProto as _, OfferTransitionProto as _, ScoreCardProto as _,
    };
}
