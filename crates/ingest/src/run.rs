//! Starting ingestion as a server: everything it needs is passed in.

use lift_runtime::{ServeOptions, Shutdown};
use lift_store::DatabaseConnection;
use tokio::net::TcpListener;

use crate::{Ingest, IngestConfig, Ledger};

/// What the ingestion server needs from outside.
#[derive(Debug, Clone)]
pub struct IngestDeps {
    /// Its migrated database (`lift_store::connect`): the ledger and the links.
    pub db: DatabaseConnection,
    /// How it serves: authentication, rate limit, limits, TLS.
    pub serve: ServeOptions,
}

/// Serves ingestion (and its privacy service) on `listener` until `shutdown` fires, then drains;
/// with a retention horizon configured, runs retention on its schedule meanwhile.
pub async fn run(
    listener: TcpListener,
    config: IngestConfig,
    deps: IngestDeps,
    shutdown: Shutdown,
) -> Result<(), lift_runtime::Error> {
    let ledger = Ledger::from_setting(&config.ledger).await.map_err(|e| lift_runtime::Error::Url {
        url: redact(&config.ledger),
        reason: format!("the ledger cannot be opened: {e}"),
    })?;
    tracing::info!(ledger = ledger.kind(), "ledger");
    let retention = config.retention;
    let ingest = Ingest::with_ledger(deps.db, ledger, config);
    let job = retention.map(|r| {
        tracing::info!(horizon_days = r.horizon.as_secs_f64() / 86_400.0, every = ?r.every, "retention horizon");
        let (ingest, stop) = (ingest.clone(), shutdown.clone());
        tokio::spawn(async move { ingest.run_retention(r, stop).await })
    });
    let served = lift_runtime::serve_pair(listener, ingest.grpc(), ingest.privacy(), shutdown, deps.serve).await;
    if let Some(job) = job {
        // A run cut short rolls back (its transaction is dropped).
        job.abort();
    }
    served
}

/// The ledger setting without credentials (`nats://user:pass@host` → `nats://host`).
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://…@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}
