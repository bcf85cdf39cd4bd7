//! Lift's ingestion service: the event ledger and link registry behind
//! `lift.ingest.v1.IngestService`, and the file importer that feeds it.
//!
//! - [`Ingest`] validates, deduplicates, attributes and appends events (see
//!   `lift_store::ledger` for why offsets are commit-ordered), tails the ledger to
//!   subscribers, and registers links; [`Ingest::grpc`] is its tonic service.
//! - `attribution` credits clicks and conversions to link owners inside the append
//!   transaction, so every consumer sees the same answer.
//! - [`ledger`] chooses where the ledger lives: the SQL database (default) or a
//!   NATS JetStream stream (`LIFT_LEDGER=nats://…`); [`ledger::sql`] encodes events
//!   into the SQL ledger's bytes and decodes them for every reader.
//! - `privacy` serves `lift.privacy.v1.PrivacyService` beside it: a subject's export,
//!   erasure (tombstones on SQL, erased messages on JetStream, then an erasure
//!   marker, on `lift_store::privacy`'s primitives) and the audit log; and the retention horizon ([`Retention`], [`Ingest::retain`],
//!   run on a schedule by [`run`] when configured).
//! - [`import`] reads NDJSON (proto JSON) and edge-list CSV (CollegeMsg) files and
//!   streams them to a server.
//! - [`bench`] measures ingestion against the database's own bulk load.
//! - [`run`] starts the server with its config and dependencies passed in.
//!
//! Errors: [`Error`] is the server's (mapped to gRPC status through
//! `lift_runtime::status`); the importer and the benchmark have their own,
//! `import::ImportError` and `bench::BenchError`.

mod attribution;
pub mod bench;
mod config;
mod error;
mod grpc;
pub mod import;
pub mod ledger;
mod privacy;
mod run;
mod service;

pub use config::{IngestConfig, Retention};
pub use error::Error;
pub use grpc::IngestServer;
pub use ledger::Ledger;
pub use privacy::{Erased, NOT_COVERED, Privacy, PrivacyServer, Retained};
pub use run::{IngestDeps, run};
pub use service::{BatchOutcome, Ingest};
