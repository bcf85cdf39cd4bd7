//! Lift's scoring: the ledger becomes five separate, explained dimensions of
//! influence per account.
//!
//! - [`engine`] — pure and deterministic: the incremental state, the CSR
//!   engagement graph, PageRank, authenticity flags, and `compute`.
//! - [`service`] — the gRPC `ScoringService` and the ledger consumer that
//!   commits each scoring run together with the offset it consumed.
//!
//! Wiring (see `tests/service.rs`):
//!
//! ```text
//! let scoring = Scoring::new(db, ScoringConfig::default()).await?;   // db from lift_store::connect
//! tokio::spawn({ let s = scoring.clone(); async move { s.run_consumer(ingest_client, shutdown).await } });
//! lift_runtime::serve(listener, scoring.grpc(), shutdown).await?;
//! ```
//!
//! Every RPC is real: scores, queries, history, exact explanations, the model
//! with its recalibration mapping, and IMM seed selection.

pub mod engine;
mod error;
pub mod service;

pub use error::Error;
pub use service::{Scoring, ScoringConfig, ScoringServer, WriterLease};
