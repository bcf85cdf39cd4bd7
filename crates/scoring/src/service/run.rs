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
/// server on `listener` (which drains). The two stop together: a consumer
/// that stops on an error retrying cannot fix (the database) stops the server
/// too, rather than serving scores that no longer follow the ledger, and a
/// server that fails stops the consumer. Returns the first error.
pub async fn run(
    listener: TcpListener,
    config: ScoringConfig,
    deps: ScoringDeps,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let scoring = Scoring::with_ledger(deps.db, config, deps.ingest.clone()).await?;
    let (stop_consumer, stop_server) = (Shutdown::new(), Shutdown::new());
    let consuming = async {
        let r = scoring.run_consumer(deps.ingest, stop_consumer.clone()).await;
        stop_server.trigger();
        r
    };
    let serving = async {
        let r = lift_runtime::serve_with(listener, scoring.grpc(), stop_server.clone(), deps.serve).await;
        stop_consumer.trigger();
        r
    };
    let relay = async {
        tokio::select! {
            () = shutdown.wait() => {}
            () = stop_server.wait() => {}
        }
        stop_consumer.trigger();
        stop_server.trigger();
    };
    let (consumed, served, ()) = tokio::join!(consuming, serving, relay);
    consumed?;
    served?;
    Ok(())
}
