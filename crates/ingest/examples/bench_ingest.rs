//! Runs the ingestion benchmark (what `lift bench ingest` prints):
//!
//! ```text
//! cargo run --release -p lift-ingest --example bench_ingest -- DATABASE_URL [EVENTS] [BATCH] [STREAMS]
//! ```
//!
//! `DATABASE_URL` is `sqlite:PATH`, `postgres://...`, or `testcontainers` for a
//! throwaway PostgreSQL (image from `LIFT_TEST_PG_IMAGE`).

use lift_ingest::bench::{BenchOptions, bench};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args.first().ok_or("usage: bench_ingest DATABASE_URL [EVENTS] [BATCH] [STREAMS]")?;
    let defaults = BenchOptions::default();
    let opts = BenchOptions {
        events: args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(defaults.events),
        batch_size: args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(defaults.batch_size),
        streams: args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(defaults.streams),
        seed: defaults.seed,
    };
    let (_container, url) = if url == "testcontainers" {
        let (c, u) = lift_store::testing::postgres().await?;
        (Some(c), u)
    } else {
        (None, url.clone())
    };
    let db = lift_store::connect(&url).await?;
    println!("{}", bench(db, &opts).await?);
    Ok(())
}
