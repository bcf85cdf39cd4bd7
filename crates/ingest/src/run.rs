//! Starting ingestion as a server: everything it needs is passed in.

use lift_runtime::{ServeOptions, Shutdown};
use lift_store::DatabaseConnection;
use tokio::net::TcpListener;

use crate::{Ingest, IngestConfig};

/// What the ingestion server needs from outside.
#[derive(Debug, Clone)]
pub struct IngestDeps {
    /// Its migrated database (`lift_store::connect`): the ledger and the links.
    pub db: DatabaseConnection,
    /// How it serves: authentication, rate limit, limits, TLS.
    pub serve: ServeOptions,
}

/// Serves ingestion (and its privacy service) on `listener` until `shutdown` fires, then drains.
pub async fn run(
    listener: TcpListener,
    config: IngestConfig,
    deps: IngestDeps,
    shutdown: Shutdown,
) -> Result<(), lift_runtime::Error> {
    let ingest = Ingest::new(deps.db, config);
    lift_runtime::serve_pair(listener, ingest.grpc(), ingest.privacy(), shutdown, deps.serve).await
}
