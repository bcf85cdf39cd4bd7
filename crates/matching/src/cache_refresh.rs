//! The score cache's loads, for benchmarks and tests outside this crate: a
//! full load of scoring's current run, and a delta load that applies only the
//! accounts changed since a previously loaded run (see [`crate::snapshot`]).

use std::sync::Arc;

use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::client::{Channel, RetryPolicy};

use crate::Error;
use crate::snapshot::{self, RunScores};

/// One loaded copy of a scoring run.
#[derive(Debug, Clone)]
pub struct CachedRun(Arc<RunScores>);

impl CachedRun {
    /// Accounts held.
    pub fn accounts(&self) -> usize {
        self.0.len()
    }

    /// Scoring's run id.
    pub fn run_id(&self) -> u64 {
        self.0.run_id
    }

    pub fn as_of_offset(&self) -> u64 {
        self.0.as_of
    }

    /// Accounts the load received: all of them, or the changed ones.
    pub fn received(&self) -> u64 {
        self.0.received()
    }

    /// Whether the load applied changes to an earlier run instead of reading everything.
    pub fn is_delta(&self) -> bool {
        self.0.is_delta()
    }

    /// Where two copies disagree, as readable lines (empty = identical).
    pub fn differences(&self, other: &CachedRun) -> Vec<String> {
        self.0.differences(&other.0)
    }
}

/// Loads every account of scoring's current run.
pub async fn load_full(scoring: &ScoringServiceClient<Channel>, chunk_size: u32) -> Result<CachedRun, Error> {
    Ok(CachedRun(Arc::new(snapshot::load(scoring, &RetryPolicy::default(), chunk_size, 1, None).await?)))
}

/// Loads scoring's current run by applying its changes since `base`'s run
/// (a full load when scoring cannot say what changed).
pub async fn load_delta(
    scoring: &ScoringServiceClient<Channel>,
    chunk_size: u32,
    base: &CachedRun,
) -> Result<CachedRun, Error> {
    let snap = snapshot::load(scoring, &RetryPolicy::default(), chunk_size, 1, Some(base.0.clone())).await?;
    Ok(CachedRun(Arc::new(snap)))
}
