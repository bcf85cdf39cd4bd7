//! The README's first command, run as a test on a small generated network.

use lift_cli::demo::{DemoOptions, run};

/// Pins that `lift demo` tells the whole story: every dimension has a leader,
/// a campaign shortlist comes back, and it runs on SQLite files it creates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_on_a_generated_network() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("lift-demo-test-{}", std::process::id()));
    let summary =
        run(DemoOptions { generated: true, accounts: 300, dir: Some(dir.clone()), ..Default::default() }).await;
    let _ = std::fs::remove_dir_all(&dir);
    let summary = summary?;
    assert!(summary.dataset.starts_with("generated network"), "{}", summary.dataset);
    assert_eq!(summary.scored_accounts, 300);
    assert_eq!(summary.top.len(), 5);
    for (d, accounts) in &summary.top {
        assert!(!accounts.is_empty(), "no leader for {d}");
    }
    assert!(!summary.shortlist.is_empty(), "empty shortlist");
    Ok(())
}
