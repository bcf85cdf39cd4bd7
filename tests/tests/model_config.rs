//! A model parameter changed in the configuration (no rebuild) gives, after a
//! restart of scoring, a new model version with its old → new mapping.

use std::time::Duration;

use anyhow::Context;
use lift_cli::config::{Layers, resolve};
use lift_cli::stack::{Databases, Stack};
use lift_proto::Timestamp;
use lift_proto::ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient};
use lift_proto::scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient};

fn scoring_cfg(flags: &[(&str, &str)]) -> anyhow::Result<lift_scoring::ScoringConfig> {
    let mut flags: Vec<(String, String)> = flags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    flags.push(("scoring.rescore_debounce_ms".into(), "20".into()));
    Ok(resolve(&Layers { flags, ..Layers::default() })?.config.scoring.to_config())
}

fn follow(i: u32) -> ipb::Event {
    let a = |n: u32| Some(ipb::AccountRef { network: "c".into(), id: format!("a{}", n % 12) });
    ipb::Event {
        event_id: format!("c-{i}"),
        source: "config-test".into(),
        occurred_at: Some(Timestamp { seconds: 1_767_225_600 + i64::from(i), nanos: 0 }),
        kind: Some(ipb::event::Kind::Follow(ipb::Follow { follower: a(i), followee: a(i * 7 + 1), unfollow: false })),
    }
}

async fn model_at_least(
    scoring: &mut ScoringServiceClient<lift_runtime::client::Channel>,
    version: &str,
    offset: u64,
) -> anyhow::Result<spb::GetModelResponse> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(m) = scoring.get_model(spb::GetModelRequest {}).await {
            let m = m.into_inner();
            if m.model_version == version && m.as_of_offset >= offset {
                return Ok(m);
            }
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no run of {version} within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pins "recalibrate without a rebuild": `--set scoring.model.damping=0.7` (any layer
/// would do) changes the version, and scoring, restarted over the same database,
/// publishes a run of the new version with a mapping from the old one per dimension.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_parameter_publishes_a_new_model_version() -> anyhow::Result<()> {
    let before = scoring_cfg(&[])?;
    let mut stack = Stack::start_loopback(&Databases::in_memory(), before.clone()).await?;
    let r = async {
        let mut ingest = IngestServiceClient::new(stack.channel(&stack.ingest_url())?);
        let events: Vec<_> = (0..40).filter(|i| i % 12 != (i * 7 + 1) % 12).map(follow).collect();
        let n = events.len() as u64;
        let out = ingest.ingest_batch(ipb::IngestBatchRequest { events }).await?.into_inner();
        assert_eq!(u64::from(out.accepted), n);
        let mut scoring = ScoringServiceClient::new(stack.channel(&stack.scoring_url())?);
        let old = model_at_least(&mut scoring, &before.model.version(), n).await?;

        let after = scoring_cfg(&[("scoring.model.damping", "0.7")])?;
        assert_eq!(after.model.damping, 0.7);
        assert_ne!(after.model.version(), old.model_version, "a parameter change is a new version");
        stack.restart_scoring(after.clone()).await?;
        let new = model_at_least(&mut scoring, &after.model.version(), n).await?;
        assert_eq!(new.parameters.get("damping").copied(), Some(0.7));
        let mapping = new
            .recalibrations
            .iter()
            .find(|m| m.from_version == old.model_version && m.to_version == new.model_version)
            .context("no old → new recalibration mapping")?;
        assert!(!mapping.old_quantiles.is_empty() && mapping.old_quantiles.len() == mapping.new_quantiles.len());
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    r
}
