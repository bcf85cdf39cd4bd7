//! Lift's pure domain: account ids, ledger events and their validation,
//! score dimensions, and campaign eligibility rules.
//!
//! Nothing here does I/O. Wire types (`lift-proto`) are converted into these
//! types at the service edge, and that conversion is where validation lives:
//! a value of a domain type is valid by construction.

pub mod account;
pub mod campaign;
pub mod event;
pub mod offer;
pub mod score;
pub mod stats;
pub mod time;
pub mod validation;

pub use account::AccountId;
pub use event::{Event, EventBody, EventKind, LedgerEntry};
pub use score::Dimension;
pub use time::Micros;
pub use validation::{FieldViolation, ValidationPolicy};
