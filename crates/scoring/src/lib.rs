//! Lift's scoring: the ledger becomes five separate, explained dimensions of
//! influence per account.
//!
//! - [`engine`] — pure and deterministic: the incremental state, the CSR
//!   engagement graph, PageRank, authenticity flags, and `compute`.
//! - [`service`] — the gRPC `ScoringService` and the ledger consumer that
//!   commits each scoring run together with the offset it consumed.
//!
//! Wiring: [`run`] starts the consumer and the server with everything passed in:
//!
//! ```text
//! let deps = ScoringDeps { db, ingest: ingest_client, serve: ServeOptions::default() };
//! lift_scoring::run(listener, ScoringConfig::default(), deps, shutdown).await?;
//! ```
//!
//! or, piece by piece (see `tests/service.rs`): `Scoring::with_ledger`, then
//! `run_consumer` in a task and `lift_runtime::serve(listener, scoring.grpc(), ..)`.
//!
//! Every RPC is real: scores, queries, history, exact explanations, the model
//! with its recalibration mapping, and IMM seed selection.

pub mod engine;
mod error;
pub mod service;

pub use error::Error;
pub use service::{Scoring, ScoringConfig, ScoringDeps, ScoringServer, WriterLease, run};
