//! Loading a scoring run into the cache: a cheap probe of which run scoring
//! serves, and the `ExportScores` stream that fills a [`Builder`] (every
//! account) or patches the cached run (its changes, `delta`).

use std::sync::Arc;

use lift_proto::scoring::v1 as spb;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::client::{Channel, RetryPolicy, retry_idempotent};

use super::{Builder, Run, RunScores};
use crate::Error;

/// Asks scoring which run it serves: `ExportScores` with `run_only`, one small
/// message and no pass over the population.
pub(crate) async fn probe(scoring: &ScoringServiceClient<Channel>, retry: &RetryPolicy) -> Result<Run, Error> {
    let req = spb::ExportScoresRequest { chunk_size: 0, run_only: true, since_run: 0 };
    let first = retry_idempotent(retry, "ExportScores", || {
        let (mut c, r) = (scoring.clone(), req);
        async move {
            let mut stream = c.export_scores(r).await?.into_inner();
            stream.message().await
        }
    })
    .await
    .map_err(Error::scoring)?
    .ok_or_else(|| Error::Internal("ExportScores sent no message".to_owned()))?;
    Ok((first.model_version, first.as_of_offset))
}

/// Streams scoring's current run with `ExportScores`; every chunk comes from
/// one run, so the load never has to restart. With a `base` snapshot (the
/// cached one) only the accounts changed since its run are asked for and
/// applied to a copy of it, in time proportional to the change; scoring
/// answers with the whole population when it cannot tell what changed. A
/// stream that breaks off is retried from the start, up to `attempts` times.
pub(crate) async fn load(
    scoring: &ScoringServiceClient<Channel>,
    retry: &RetryPolicy,
    chunk_size: u32,
    attempts: u32,
    base: Option<Arc<RunScores>>,
) -> Result<RunScores, Error> {
    let mut last = None;
    for attempt in 1..=attempts.max(1) {
        match load_once(scoring, retry, chunk_size, base.as_deref()).await {
            Ok(loaded) => {
                let base = base.clone();
                // Sorting and column building is CPU work: keep it off the async workers.
                return tokio::task::spawn_blocking(move || match (loaded.delta, base) {
                    (true, Some(base)) => loaded.builder.apply_to(&base, loaded.run, loaded.run_id),
                    _ => loaded.builder.finish_run(loaded.run, loaded.run_id),
                })
                .await
                .map_err(|e| Error::Internal(format!("building the score cache failed: {e}")))?;
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, "loading the score cache failed; retrying");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::scoring(tonic::Status::unavailable("the score cache could not be loaded"))))
}

/// What one `ExportScores` stream brought.
struct Loaded {
    builder: Builder,
    run: Run,
    run_id: u64,
    /// The accounts are changes relative to the base snapshot's run.
    delta: bool,
}

async fn load_once(
    scoring: &ScoringServiceClient<Channel>,
    retry: &RetryPolicy,
    chunk_size: u32,
    base: Option<&RunScores>,
) -> Result<Loaded, Error> {
    let since_run = base.map_or(0, |b| b.run_id);
    let req = spb::ExportScoresRequest { chunk_size, run_only: false, since_run };
    let mut stream = retry_idempotent(retry, "ExportScores", || {
        let (mut c, r) = (scoring.clone(), req);
        async move { c.export_scores(r).await }
    })
    .await
    .map_err(Error::scoring)?
    .into_inner();
    let mut builder = Builder::default();
    let mut run: Option<(Run, u64, bool)> = None;
    let mut seen = 0u64;
    let mut total = 0u64;
    while let Some(msg) = stream.message().await.map_err(Error::scoring)? {
        let this = ((msg.model_version.clone(), msg.as_of_offset), msg.run_id, msg.delta);
        match &run {
            None => {
                if msg.delta
                    && (since_run == 0
                        || msg.since_run != since_run
                        || base.is_none_or(|b| b.model_version != msg.model_version))
                {
                    return Err(Error::Internal(format!(
                        "ExportScores sent changes since run {} when asked for those since run {since_run}",
                        msg.since_run
                    )));
                }
                run = Some(this);
            }
            Some(r) if *r != this => {
                return Err(Error::Internal("ExportScores mixed two scoring runs".to_owned()));
            }
            Some(_) => {}
        }
        total = msg.total;
        seen += msg.accounts.len() as u64;
        for a in &msg.accounts {
            builder.add(a);
        }
    }
    if seen != total {
        return Err(Error::scoring(tonic::Status::unavailable(format!(
            "ExportScores ended after {seen} of {total} accounts"
        ))));
    }
    let (run, run_id, delta) = run.unwrap_or_default();
    Ok(Loaded { builder, run, run_id, delta })
}
