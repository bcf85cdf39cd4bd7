//! Lift's persistence: sea-orm entities, migrations and repositories, on SQLite
//! (embedded default) and PostgreSQL alike.
//!
//! - [`connect`] opens a pool tuned for the backend and runs [`migration::Migrator`].
//! - [`ledger`] is the append-only event ledger: idempotent batch appends with dense,
//!   commit-ordered offsets, and reads after an offset. It keeps encoded bodies plus
//!   indexed columns and does not know the wire format (ingestion encodes and decodes).
//! - [`api_keys`] holds API keys (hashed) with their scopes, brand and revocation.
//! - [`checkpoints`] stores the scoring engine's state at an offset, in chunks.
//! - [`lease`] is the scoring writer lease (fencing token) and the global run-id counter.
//! - [`links`] is the link registry and the click index attribution reads.
//! - [`matching_erasure`] finds and deletes matching's rows that name an erased account;
//!   [`matching_export`] reads every one of them for a privacy export.
//! - [`rate_cards`] holds each brand's per-creator rates (prices of a perk).
//! - [`privacy`] holds the storage side of erasure (subject hashes, rewriting rows as
//!   tombstones, deleting links and click-index rows) and the append-only privacy audit log.
//! - [`standing`] holds matching's standing perk programs: rules and totals, one row per
//!   perk given (at most one per campaign and account), and recalibrations.
//! - [`reports`] holds matching's campaign report aggregates and their consumer's position.
//! - [`webhook_secrets`] holds each brand's order-webhook secret (lift-collect).
//! - [`testing`] (feature `testing`) starts a PostgreSQL container for tests.
//!
//! Repositories take `&impl ConnectionTrait`, so they run on a pool or inside a
//! transaction alike.

pub mod api_keys;
pub mod campaigns;
pub mod checkpoints;
mod connect;
pub mod entity;
mod error;
pub mod lease;
pub mod ledger;
pub mod links;
pub mod matching_erasure;
pub mod matching_export;
pub mod migration;
pub mod privacy;
pub mod rate_cards;
pub mod reports;
pub mod scoring;
pub mod standing;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhook_secrets;

pub use connect::{ConnectConfig, begin_write, connect, connect_with, is_postgres, migrate};
pub use error::Error;
pub use sea_orm::sqlx;
pub use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement, TransactionTrait};
