//! What the scoring tests that run against real ingestion share: a scorer with
//! quick timings, started on a ledger served over loopback.
// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use lift_ingest::Ingest;
use lift_proto::ingest::v1 as ipb;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::client::{Credentials, with_credentials};
use lift_runtime::{ServeOptions, Shutdown};
use lift_scoring::engine::ModelParams;
use lift_scoring::{Scoring, ScoringConfig};
use lift_store::DatabaseConnection;
use tokio::net::TcpListener;

/// The default model with timings short enough for tests, a checkpoint every 100
/// events and a history row for every change.
pub(crate) fn config() -> ScoringConfig {
    ScoringConfig {
        model: ModelParams::default(),
        debounce: Duration::from_millis(50),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_rr_sets: 200_000,
        history_resolution: 0.0,
        checkpoint_every_events: 100,
        ..ScoringConfig::default()
    }
}

/// Serves `ingest` (ledger and privacy service) on loopback until `stop`; its URL.
pub(crate) async fn serve_ingest(ingest: &Ingest, stop: &Shutdown) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(lift_runtime::serve_pair(
        listener,
        ingest.grpc(),
        ingest.privacy(),
        stop.clone(),
        ServeOptions::default(),
    ));
    url
}

pub(crate) struct Scorer {
    pub(crate) scoring: Scoring,
    pub(crate) client: ScoringServiceClient<tonic::transport::Channel>,
    pub(crate) stop: Shutdown,
    pub(crate) consumer: tokio::task::JoinHandle<Result<(), lift_scoring::Error>>,
}

/// A scorer on `db` following the ledger at `ingest`, with its gRPC server.
pub(crate) async fn start(db: DatabaseConnection, ingest: &str) -> Scorer {
    let channel = tonic::transport::Endpoint::from_shared(ingest.to_owned()).unwrap().connect_lazy();
    let ledger = ipb::ingest_service_client::IngestServiceClient::new(with_credentials(channel, Credentials::none()));
    let scoring = Scoring::with_ledger(db, config(), ledger.clone()).await.unwrap();
    let stop = Shutdown::new();
    let consumer = {
        let (s, stop) = (scoring.clone(), stop.clone());
        tokio::spawn(async move { s.run_consumer(ledger, stop).await })
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(lift_runtime::serve(listener, scoring.grpc(), stop.clone()));
    let client = ScoringServiceClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_lazy(),
    );
    Scorer { scoring, client, stop, consumer }
}

/// Waits (at most a minute) for a published run as of `offset` or later.
pub(crate) async fn wait_offset(s: &Scoring, offset: u64) {
    tokio::time::timeout(Duration::from_secs(60), s.wait_for_offset(offset))
        .await
        .unwrap_or_else(|_| panic!("no run as of {offset}; at {}", s.as_of_offset()));
}
