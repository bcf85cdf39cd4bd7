//! The end-to-end scenario on embedded SQLite (each service its own in-memory database).

use lift_cli::stack::Databases;

/// Pins the whole path — ingest → ledger → scoring → matching — over real gRPC on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_on_sqlite() -> anyhow::Result<()> {
    let dbs = Databases::in_memory();
    lift_tests::scenario(dbs).await
}
