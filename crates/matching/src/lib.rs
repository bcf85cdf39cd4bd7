//! Lift's matching service: brands (tenants) create campaigns whose eligibility
//! is percentile thresholds, see who qualifies and by how much, pick a
//! portfolio within budget, issue tracking links with a random holdout, and
//! read reports with incremental lift.
//!
//! - [`Matching`] — the service state and one method per RPC (`service`, one
//!   module per use case: campaigns, ranking, eligibility and churn, threshold
//!   translation, portfolio, offers, report, page tokens);
//!   [`Matching::grpc`] wraps it in the runtime's authentication layer.
//! - `privacy` — `MatchingPrivacyService`: every row naming an account, for a
//!   person's access request (`privacy:admin` only; [`Matching::privacy`]).
//! - `snapshot` — the score cache: `RunScores`, every scored account of one
//!   scoring run in columns, which ranking judges campaigns over.
//! - `reports` — the report consumer: per-campaign report aggregates kept from
//!   the ledger with their own committed position, which `GetCampaignReport` reads;
//!   it also acts on erasure markers (`erasure`: matching's rows naming the
//!   erased account are deleted or redacted, reports rebuilt, the cache dropped).
//! - `standing_feed` — the standing consumer: evaluates standing perk programs
//!   once per scoring run (`Matching::evaluate_standing`).
//! - [`create_brand`] — creates a tenant and its key (`auth`).
//! - [`cache_refresh`] — the score cache's full and delta loads, for benchmarks.
//! - [`run`] — starts the server with its config and dependencies passed in.
//! - [`MatchingConfig`], [`Error`] — settings and the one error type.
//!
//! The rules themselves (validation, margins, holdout, lift) are pure and live
//! in `lift_domain::campaign`.

mod auth;
pub mod cache_refresh;
mod config;
mod convert;
mod erasure;
mod error;
mod grpc;
mod privacy;
mod reports;
mod run;
mod service;
mod snapshot;
mod standing_feed;

pub use auth::{API_KEY_HEADER, BrandId, create_brand};
pub use config::MatchingConfig;
pub use error::Error;
pub use grpc::MatchingServer;
pub use privacy::{ExportAccountStream, MatchingPrivacyServer};
pub use run::{MatchingDeps, run};
pub use service::{Matching, StandingRun, WatchOffersStream};
pub use snapshot::ScoreCacheStats;
