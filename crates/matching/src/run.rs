//! Starting matching as a server: everything it needs is passed in.

use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::client::Channel;
use lift_runtime::{ServeOptions, Shutdown};
use lift_store::DatabaseConnection;
use tokio::net::TcpListener;

use crate::{Matching, MatchingConfig};

/// What the matching server needs from outside.
#[derive(Debug, Clone)]
pub struct MatchingDeps {
    /// Its migrated database (`lift_store::connect`): brands, campaigns, offers;
    /// brands' keys are looked up here too.
    pub db: DatabaseConnection,
    /// Scoring and ingestion; matching's calls are unary, so bound each.
    pub scoring: ScoringServiceClient<Channel>,
    pub ingest: IngestServiceClient<Channel>,
    /// How it serves: authentication, rate limit, limits, TLS.
    pub serve: ServeOptions,
}

/// Serves matching (`MatchingService` and `MatchingPrivacyService`) on `listener`
/// until `shutdown` fires, then drains.
pub async fn run(
    listener: TcpListener,
    config: MatchingConfig,
    deps: MatchingDeps,
    shutdown: Shutdown,
) -> Result<(), lift_runtime::Error> {
    let matching = Matching::new(deps.db, deps.scoring, deps.ingest, config);
    lift_runtime::serve_pair(listener, matching.grpc(), matching.privacy(), shutdown, deps.serve).await
}
