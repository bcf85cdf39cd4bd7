//! The scoring service: a ledger consumer that commits scoring runs, and the
//! gRPC handlers that serve the latest run from memory.
//!
//! - `consumer` — subscribes to ingestion, applies events, recomputes when
//!   caught up (debounced), commits run + offset in one transaction, publishes.
//! - `grpc` — thin handlers over `Scoring`'s read functions.
//! - `query` — `QueryAccounts` over the pre-sorted per-dimension indexes.
//! - `run` — starts the consumer and the server with dependencies passed in.

mod changes;
mod consumer;
mod convert;
mod distribution;
mod explain;
mod grpc;
mod history;
mod query;
mod replica;
mod run;
mod seeds;

use lift_proto::convert::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use lift_domain::{AccountId, Dimension};
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_store::DatabaseConnection;
use tokio::sync::watch;

use crate::Error;
use crate::engine::{ModelParams, Node, Snapshot, State};

pub use grpc::{Handlers, MAX_ACCOUNTS_PER_REQUEST, ScoringServer};
pub use run::{ScoringDeps, run};

/// How the scoring service runs.
#[derive(Debug, Clone)]
pub struct ScoringConfig {
    /// The model every run is computed with.
    pub model: ModelParams,
    /// After catching up with new events, wait this long for more before recomputing.
    pub debounce: Duration,
    /// First and largest wait between reconnects to ingestion.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Most reverse-reachable sets one `SelectSeeds` call may sample (bounds its
    /// latency and memory; a response says when the cap weakened its guarantee).
    pub max_rr_sets: usize,
    /// Write a checkpoint of the engine state after a run once this many
    /// ledger events were applied since the last one (0: never). A restart
    /// then replays only the events after the newest checkpoint.
    pub checkpoint_every_events: u64,
    /// Checkpoints kept in the database (the newest ones; at least 1).
    pub checkpoints_kept: u64,
    /// Several replicas on one database: `Some` makes this one take turns at
    /// writing under the store's writer lease (see `lift_store::lease`), and
    /// follow the writer's committed runs while it does not hold it. `None`:
    /// the only instance on its database.
    pub writer_lease: Option<WriterLease>,
    /// A history row is written for an account when one of its values or
    /// percentiles (0–100 points) moved at least this much since its last row
    /// (0: on any change). See `service::history` for what history then means.
    pub history_resolution: f64,
    /// Runs recompute activity, reach and action only for the accounts whose
    /// inputs changed (see `engine::compute_incremental`) instead of from the
    /// whole state. Off by default: measured at 1M accounts / 10M events
    /// (`docs/benchmarks.md`), a whole run costs about the same either way —
    /// the network graph and the authenticity detectors, which both paths run
    /// in full, dominate — while the first run after a start pays for building
    /// the per-account indexes (about twice a full run) and they hold memory.
    pub incremental_runs: bool,
    /// With `incremental_runs`: between full runs PageRank is updated locally
    /// by residual push (`engine::pagerank_push`) while its stated L1 error
    /// bound on the PageRank vector stays within this; past it a run ranks
    /// the graph in full. The default is
    /// `engine::pagerank_push::DEFAULT_TOLERANCE` (1e-3 in L1 on the vector
    /// summing to 1): measured after 10,000-event runs (`docs/benchmarks.md`)
    /// a local update took a third of the full run's time at 1M accounts. 0 makes
    /// every run full: a local update's vector depends on the sequence of
    /// runs before it (their boundaries follow the debounce timing), so only
    /// full runs give a restart, or a replay of the whole ledger, the
    /// uninterrupted run's scores bit for bit; with a positive tolerance they
    /// agree within the stated bound.
    pub pagerank_drift_tolerance: f64,
}

/// This replica's part in the scoring writer lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterLease {
    /// This replica's name, unique among the replicas (a pod name, say).
    pub holder: String,
    /// How long the lease lasts unrenewed; the writer renews it every third of
    /// this, so a writer that died is replaced after at most this long.
    pub ttl: Duration,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        Self {
            model: ModelParams::default(),
            debounce: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_rr_sets: 2_000_000,
            checkpoint_every_events: 1_000_000,
            checkpoints_kept: 2,
            writer_lease: None,
            history_resolution: 0.5,
            incremental_runs: false,
            pagerank_drift_tolerance: crate::engine::pagerank_push::DEFAULT_TOLERANCE,
        }
    }
}

/// The scoring service. Cheap to clone: every clone shares the same state.
#[derive(Debug, Clone)]
pub struct Scoring {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: DatabaseConnection,
    cfg: ScoringConfig,
    model_version: String,
    /// The latest committed run, served to every reader.
    published: RwLock<Option<Arc<Published>>>,
    /// Account ids and handles by node; append-only, shared with every published run.
    directory: RwLock<Directory>,
    /// (run id, as-of offset) of the latest published run: lets callers wait on progress.
    progress: watch::Sender<(u64, u64)>,
    /// Which accounts recent runs changed, for `ExportScores` deltas.
    changes: RwLock<changes::ChangeLog>,
    /// Ingestion, for replays on demand (`ExplainScoreChange`); `None` when
    /// built by [`Scoring::new`], without one.
    ingest: Option<IngestServiceClient<lift_runtime::client::Channel>>,
    /// Checkpoint bookkeeping of the consumer.
    checkpoints: consumer::CheckpointState,
    /// The writer lease while this replica holds it: every commit presents it.
    fence: std::sync::Mutex<Option<lift_store::lease::Fence>>,
    /// What the score history last recorded per account.
    recorded: std::sync::Mutex<history::Recorded>,
    /// The incremental engine following the consumer's state between runs;
    /// taken by a run and put back when it ends, rebuilt from the state when
    /// missing (after a start, or a run that failed).
    incremental: std::sync::Mutex<Option<Box<crate::engine::IncrementalScores>>>,
    /// The checkpoint explanations start from: (checkpoint id, its state).
    explain_base: std::sync::Mutex<Option<(u64, Arc<State>)>>,
    /// An erasure reset the state, so nodes are numbered anew: the next run starts
    /// PageRank cold (the published vector is in the old numbering) and its publication
    /// rebuilds the directory and forgets the change log.
    renumbered: std::sync::atomic::AtomicBool,
}

/// One committed run, as served.
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) run_id: u64,
    pub(crate) snap: Snapshot,
}

/// Node ↔ account, append-only.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    pub(crate) ids: Vec<AccountId>,
    pub(crate) handles: Vec<String>,
    index: HashMap<AccountId, Node>,
}

impl Directory {
    pub(crate) fn node(&self, id: &AccountId) -> Option<Node> {
        self.index.get(id).copied()
    }

    /// Catches up with the state's accounts and their latest handles; returns
    /// the known nodes whose handle changed.
    fn sync(&mut self, state: &State) -> Vec<Node> {
        let mut renamed = Vec::new();
        for (i, a) in state.accounts.iter().enumerate() {
            if i < self.ids.len() {
                if self.handles[i] != a.handle {
                    self.handles[i].clone_from(&a.handle);
                    renamed.push(i as Node);
                }
            } else {
                self.index.insert(a.id.clone(), i as Node);
                self.ids.push(a.id.clone());
                self.handles.push(a.handle.clone());
            }
        }
        renamed
    }
}

impl Scoring {
    /// Builds the service over a migrated database (see `lift_store::connect`),
    /// checking that the scoring tables answer, with `ingest` for replays
    /// (`ExplainScoreChange` works from the start, before the consumer has).
    /// Scores are loaded by [`Scoring::run_consumer`].
    pub async fn with_ledger(
        db: DatabaseConnection,
        cfg: ScoringConfig,
        ingest: IngestServiceClient<lift_runtime::client::Channel>,
    ) -> Result<Self, Error> {
        Self::build(db, cfg, Some(ingest)).await
    }

    /// [`Scoring::with_ledger`] without a client of its own for replays:
    /// `ExplainScoreChange` answers UNAVAILABLE. For embedding scoring where
    /// only scores are served (benchmarks, tests).
    pub async fn new(db: DatabaseConnection, cfg: ScoringConfig) -> Result<Self, Error> {
        Self::build(db, cfg, None).await
    }

    async fn build(
        db: DatabaseConnection,
        cfg: ScoringConfig,
        ingest: Option<IngestServiceClient<lift_runtime::client::Channel>>,
    ) -> Result<Self, Error> {
        if cfg.initial_backoff.is_zero() {
            return Err(Error::invalid(
                "initial_backoff",
                "must be positive, or a down ingestion is retried in a busy loop",
            ));
        }
        if !(cfg.history_resolution.is_finite() && cfg.history_resolution >= 0.0) {
            return Err(Error::invalid("history_resolution", "must be a number of points, 0 or more"));
        }
        if let Some(lease) = &cfg.writer_lease {
            if lease.holder.trim().is_empty() {
                return Err(Error::invalid(
                    "writer_lease.holder",
                    "must name this replica, uniquely among the replicas",
                ));
            }
            if lease.ttl < Duration::from_millis(300) {
                return Err(Error::invalid(
                    "writer_lease.ttl",
                    "must be at least 300 ms, or renewals cannot keep up and the lease changes hands needlessly",
                ));
            }
        }
        lift_store::scoring::latest_run(&db).await?;
        let model_version = cfg.model.version();
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                cfg,
                model_version,
                published: RwLock::new(None),
                directory: RwLock::new(Directory::default()),
                progress: watch::channel((0, 0)).0,
                changes: RwLock::new(changes::ChangeLog::default()),
                ingest,
                checkpoints: consumer::CheckpointState::default(),
                fence: std::sync::Mutex::new(None),
                recorded: std::sync::Mutex::new(history::Recorded::default()),
                incremental: std::sync::Mutex::new(None),
                explain_base: std::sync::Mutex::new(None),
                renumbered: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// The tonic service to pass to `lift_runtime::serve`.
    pub fn grpc(&self) -> ScoringServer {
        ScoringServer::new(grpc::Handlers { scoring: self.clone() })
    }

    pub fn model_version(&self) -> &str {
        &self.inner.model_version
    }

    /// Ledger offset of the latest published run (0 before the first).
    pub fn as_of_offset(&self) -> u64 {
        self.inner.progress.borrow().1
    }

    /// Resolves once a run as of at least `offset` is published.
    pub async fn wait_for_offset(&self, offset: u64) {
        let mut rx = self.inner.progress.subscribe();
        let _ = rx.wait_for(|(_, o)| *o >= offset).await;
    }

    pub(crate) fn published(&self) -> Option<Arc<Published>> {
        self.inner.published.read().ok().and_then(|g| g.clone())
    }

    fn publish(&self, p: Published, state: &State) {
        let renumbered = self.inner.renumbered.swap(false, std::sync::atomic::Ordering::AcqRel);
        let progress = (p.run_id, p.snap.as_of.offset);
        // A poisoned lock only means a panic elsewhere mid-sync; the data is still usable.
        let mut dir = self.inner.directory.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if renumbered {
            // After an erasure the nodes are numbered anew (and the erased account is gone):
            // the directory is rebuilt, and changes across the reset are not known.
            *dir = Directory::default();
            dir.sync(state);
            self.inner.changes.write().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        } else {
            let renamed = dir.sync(state);
            self.record_changes(&p, &renamed);
        }
        // Published while the directory is still locked, so the two change together.
        if let Ok(mut g) = self.inner.published.write() {
            *g = Some(Arc::new(p));
        }
        drop(dir);
        self.inner.progress.send_replace(progress);
    }

    /// Marks the state as renumbered by an erasure (see `Inner::renumbered`).
    pub(crate) fn mark_renumbered(&self) {
        self.inner.renumbered.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the next run must not warm-start from the published one.
    pub(crate) fn is_renumbered(&self) -> bool {
        self.inner.renumbered.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Logs which accounts `p` changed relative to the run published before it.
    fn record_changes(&self, p: &Published, renamed: &[Node]) {
        let prev = self.published();
        let mut log = self.inner.changes.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match prev {
            Some(prev) if prev.snap.model_version == p.snap.model_version && prev.run_id != p.run_id => {
                log.record(prev.run_id, p.run_id, changes::changed(&prev.snap, &p.snap, renamed));
            }
            Some(prev) if prev.run_id == p.run_id => {}
            _ => log.clear(),
        }
    }

    /// The nodes changed after run `since` up to run `until` (the published
    /// one), ascending; `None` when that is not known (a full export is needed).
    pub(crate) fn changed_since(&self, since: u64, until: u64) -> Option<Vec<Node>> {
        self.inner.changes.read().unwrap_or_else(std::sync::PoisonError::into_inner).since(since, until)
    }

    pub(crate) fn directory(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        // A poisoned lock only means a panic elsewhere mid-sync; the data is append-only and still usable.
        self.inner.directory.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub(crate) fn cfg(&self) -> &ScoringConfig {
        &self.inner.cfg
    }
}

/// Validates a wire dimension.
pub(crate) fn dimension(v: i32, field: &str) -> Result<Dimension, Error> {
    Dimension::from_proto(v).ok_or_else(|| {
        Error::invalid(
            field,
            format!("{v} is not a dimension; use one of activity, reach, network, action, authenticity"),
        )
    })
}

pub(crate) fn account_ref(r: Option<&lift_proto::ingest::v1::AccountRef>, field: &str) -> Result<AccountId, Error> {
    let mut v = Vec::new();
    AccountId::from_proto(r, field, &mut v).ok_or(Error::Invalid(v))
}
