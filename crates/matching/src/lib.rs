//! Lift's matching service: brands (tenants) create campaigns whose eligibility
//! is percentile thresholds, see who qualifies and by how much, pick a
//! portfolio within budget, issue tracking links with a random holdout, and
//! read reports with incremental lift.
//!
//! - [`Matching`] — the service state and one method per RPC (`service`);
//!   [`Matching::grpc`] wraps it in the API-key interceptor.
//! - [`create_brand`] — creates a tenant and its key (`auth`).
//! - [`cache_refresh`] — the score cache's full and delta loads, for benchmarks.
//! - [`MatchingConfig`], [`Error`] — settings and the one error type.
//!
//! The rules themselves (validation, margins, holdout, lift) are pure and live
//! in `lift_domain::campaign`.

mod auth;
pub mod cache_refresh;
mod config;
mod error;
mod grpc;
mod service;
mod snapshot;

pub use auth::{API_KEY_HEADER, BrandId, api_key_interceptor, create_brand};
pub use config::MatchingConfig;
pub use error::Error;
pub use grpc::MatchingServer;
pub use service::Matching;
pub use snapshot::ScoreCacheStats;
