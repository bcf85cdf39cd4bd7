//! Lift's scoring: the ledger becomes five separate, explained dimensions of
//! influence per account.
//!
//! - [`engine`] — pure and deterministic: the incremental state, the CSR
//!   engagement graph, PageRank, authenticity flags, and `compute`.
//! - [`service`] — the gRPC `ScoringService` and the ledger consumer that
//!   commits each scoring run together with the offset it consumed.

pub mod engine;
mod error;
pub mod service;

pub use error::Error;
pub use service::{Scoring, ScoringConfig, ScoringServer};
