//! The end-to-end scenario on PostgreSQL in a container (testcontainers).
//! Without a container engine this test fails and says why; it is never skipped.

use lift_cli::stack::Databases;

/// Pins the whole path — ingest → ledger → scoring → matching — over real gRPC on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_on_postgres() -> anyhow::Result<()> {
    let (_container, url) = lift_store::testing::postgres().await?;
    eprintln!("PostgreSQL container is up at {url}");
    lift_tests::scenario(Databases::shared(&url)).await
}
