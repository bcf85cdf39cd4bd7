//! A small `lift bench soak`, as a test: the count checks themselves are what is pinned.

use std::time::Duration;

use lift_cli::soak::{SoakOptions, run};

/// Pins that a soak with concurrent writers, subscribers, scoring and queries ends with
/// acknowledged = stored = consumed by every subscriber, and no failed query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_counts_agree() -> anyhow::Result<()> {
    let r = run(SoakOptions {
        duration: Duration::from_secs(60),
        events: 20_000,
        writers: 2,
        subscribers: 2,
        batch: 500,
        accounts: 500,
        drain: Duration::from_secs(120),
        ..Default::default()
    })
    .await?;
    assert_eq!((r.written, r.acknowledged, r.stored, r.head), (20_000, 20_000, 20_000, 20_000));
    assert_eq!(r.consumed, vec![20_000, 20_000]);
    assert!(r.queries > 0);
    Ok(())
}
