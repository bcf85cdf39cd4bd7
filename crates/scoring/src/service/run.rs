//! Starting scoring as a server: everything it needs is passed in.

use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_runtime::client::Channel;
use lift_runtime::{ServeOptions, Shutdown};
use lift_store::DatabaseConnection;
use tokio::net::TcpListener;

use super::{Scoring, ScoringConfig};
use crate::Error;

/// What the scoring server needs from outside.
#[derive(Debug, Clone)]
pub struct ScoringDeps {
    /// Its migrated database (`lift_store::connect`): runs and scores.
    pub db: DatabaseConnection,
    /// Ingestion: the ledger the consumer follows and explanations replay. A
    /// subscription lives as long as the process, so give it no per-call timeout.
    pub ingest: IngestServiceClient<Channel>,
    /// How it serves: authentication, rate limit, limits, TLS.
    pub serve: ServeOptions,
}

/// Runs scoring until `shutdown` fires: the ledger consumer, and the gRPC
/// server on `listener` (which drains). Returns the consumer's error, if it
/// stopped on one, after the server has stopped.
pub async fn run(
    listener: TcpListener,
    config: ScoringConfig,
    deps: ScoringDeps,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let scoring = Scoring::with_ledger(deps.db, config, deps.ingest.clone()).await?;
    let (consumed, served) = tokio::join!(
        scoring.run_consumer(deps.ingest, shutdown.clone()),
        lift_runtime::serve_with(listener, scoring.grpc(), shutdown.clone(), deps.serve)
    );
    served?;
    consumed
}
