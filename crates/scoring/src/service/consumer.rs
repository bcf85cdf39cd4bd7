//! The ledger consumer.
//!
//! On start it reads the latest committed run, loads the newest checkpoint at
//! or below that run's offset (falling back to the start of the ledger, logged,
//! when there is none or it is unreadable or written under another model),
//! replays the ledger from there up to the run's offset (scores are a pure
//! function of the ledger prefix and the model, so this reproduces them),
//! publishes them, and then tails the ledger. After a run, once
//! `checkpoint_every_events` events were applied since the last checkpoint,
//! the state is encoded with the run and written in the background. Whenever
//! it is caught up and new events arrived, it waits `debounce` for more,
//! recomputes, and commits the run together with the offset in one
//! transaction — a crash before the commit replays the events, a crash after
//! it skips them, never both.
//!
//! With a writer lease configured, commits present the lease's fence and the
//! lease is renewed while writing; `replica` decides when this replica writes.

use lift_proto::convert::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lift_domain::LedgerEntry;
use lift_proto::ingest::v1::event::Kind;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::ingest::v1::{SubscribeRequest, SubscribeResponse};
use lift_runtime::Shutdown;
use lift_runtime::client::Channel;
use lift_store::checkpoints::{self, NewCheckpoint};
use lift_store::scoring::{self as store, NewRun};
use tokio::time::Instant;

use super::distribution::distributions_json;
use super::history::Recorded;
use super::{Published, Scoring};
use crate::Error;
use crate::engine::checkpoint::{self as codec, FORMAT_VERSION};
use crate::engine::{AsOf, ComputeOptions, IncrementalScores, State, compute_incremental, compute_with};

/// The consumer's checkpoint bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct CheckpointState {
    /// `State::events` at the newest checkpoint loaded or written.
    events_at_last: AtomicU64,
    /// A checkpoint write is in flight (at most one at a time).
    busy: Arc<AtomicBool>,
}

/// Where the consumer stands against the committed run.
pub(super) struct Restore {
    /// Offset of the committed run still to be reproduced; `None` once done.
    pub(super) pending: Option<store::Run>,
}

/// Why the writer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exit {
    Shutdown,
    /// Another replica holds the writer lease now.
    LostLease,
}

impl Scoring {
    /// Consumes ingestion's ledger until `shutdown`: see the module docs.
    /// Returns an error only for failures retrying cannot fix (the database).
    pub async fn run_consumer(&self, ingest: IngestServiceClient<Channel>, shutdown: Shutdown) -> Result<(), Error> {
        match self.cfg().writer_lease.clone() {
            None => self.write(&ingest, &shutdown, None).await.map(|_| ()),
            Some(lease) => self.take_turns(&ingest, &shutdown, &lease).await,
        }
    }

    /// Consumes and commits runs until shutdown, or until the writer lease is
    /// lost (with a lease). `given` is a state already replayed by following
    /// the writer; without one, it starts from the newest checkpoint.
    pub(super) async fn write(
        &self,
        ingest: &IngestServiceClient<Channel>,
        shutdown: &Shutdown,
        given: Option<State>,
    ) -> Result<Exit, Error> {
        let latest = store::latest_run(self.db()).await?;
        let mut restore = Restore { pending: latest.filter(|r| r.as_of_offset > 0) };
        let mut state = match (given, &restore.pending) {
            (Some(s), _) => s,
            (None, Some(run)) => self.load_checkpoint(run.as_of_offset).await,
            (None, None) => State::new(),
        };
        // Following the writer already published this run from this very state.
        if restore
            .pending
            .as_ref()
            .is_some_and(|r| r.as_of_offset == state.offset && self.published().is_some_and(|p| p.run_id == r.run_id))
        {
            restore.pending = None;
        }
        if state.events > 0 && restore.pending.as_ref().is_some_and(|r| r.as_of_offset == state.offset) {
            state = self.restore(state, &mut restore).await?;
        }
        let mut dirty = false;
        // Erasure markers at or below this offset were acted on (or precede this start).
        let mut erased_through = 0u64;
        let mut backoff = self.cfg().initial_backoff;
        let mut lag = Lag::default();
        let lease = self.cfg().writer_lease.clone();
        let mut renewals = lease.as_ref().map(|l| {
            let mut t = tokio::time::interval(l.ttl / 3);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            if shutdown.is_triggered() {
                return Ok(Exit::Shutdown);
            }
            let mut client = ingest.clone();
            let req = SubscribeRequest { after_offset: state.offset, kinds: Vec::new(), stop_at_head: false };
            let mut stream = tokio::select! {
                () = shutdown.wait() => return Ok(Exit::Shutdown),
                r = client.subscribe(req) => match r {
                    Ok(s) => s.into_inner(),
                    Err(status) => {
                        tracing::warn!(code = ?status.code(), message = status.message(), retry_in = ?backoff, "cannot subscribe to ingestion");
                        if !self.pause(shutdown, &mut backoff).await {
                            return Ok(Exit::Shutdown);
                        }
                        continue;
                    }
                }
            };
            let mut deadline: Option<Instant> = None;
            loop {
                let sleep = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                let renewal = async {
                    match renewals.as_mut() {
                        Some(t) => {
                            t.tick().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = shutdown.wait() => return Ok(Exit::Shutdown),
                    () = renewal => {
                        if let Some(l) = &lease
                            && !self.renew_lease(l).await
                        {
                            return Ok(Exit::LostLease);
                        }
                    }
                    () = sleep => {
                        deadline = None;
                        match self.commit(state).await {
                            (s, Ok(())) => { state = s; dirty = false; }
                            (s, Err(e)) => {
                                state = s;
                                if lease.is_some() && matches!(&e, Error::Store(se) if se.is_fenced()) {
                                    tracing::warn!(error = %e, "another replica took the scoring writer lease: following it");
                                    return Ok(Exit::LostLease);
                                }
                                // Nothing was committed, so retrying is safe; a lost database
                                // must not cost the in-memory state (a full replay).
                                if let Error::Store(se) = &e {
                                    tracing::error!(error = %se, unavailable = se.is_unavailable(), "cannot commit the scoring run; will retry");
                                    deadline = Some(Instant::now() + self.cfg().max_backoff);
                                } else {
                                    return Err(e);
                                }
                            }
                        }
                    }
                    msg = stream.message() => match msg {
                        Ok(Some(resp)) => {
                            backoff = self.cfg().initial_backoff;
                            let caught_up = resp.caught_up || resp.head_offset <= last_offset(&resp, &state);
                            let head = resp.head_offset;
                            let (s, applied, erasure) = self.absorb(state, resp, &mut restore, erased_through).await?;
                            state = s;
                            if let Some((offset, hash)) = erasure {
                                // Everything derived from the subject goes; the redacted ledger
                                // (tombstones are not delivered) is replayed from the start.
                                self.purge_erased(&state, &hash).await?;
                                erased_through = offset;
                                state = State::new();
                                dirty = true;
                                break;
                            }
                            lag.observe(head, state.offset);
                            dirty |= applied;
                            if caught_up && restore.pending.is_some() {
                                // The ledger holds less than the committed run consumed: serve what we have.
                                tracing::warn!(ledger = state.offset, "ledger head is below the committed scoring offset");
                                state = self.restore(state, &mut restore).await?;
                            }
                            if caught_up && dirty && restore.pending.is_none() && deadline.is_none() {
                                deadline = Some(Instant::now() + self.cfg().debounce);
                            }
                        }
                        Ok(None) => {
                            tracing::info!("ingestion closed the ledger stream; resubscribing");
                            break;
                        }
                        Err(status) => {
                            tracing::warn!(code = ?status.code(), message = status.message(), "ledger stream failed; resubscribing");
                            if !self.pause(shutdown, &mut backoff).await {
                                return Ok(Exit::Shutdown);
                            }
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Waits out the backoff (doubling it up to the maximum); false on shutdown.
    async fn pause(&self, shutdown: &Shutdown, backoff: &mut Duration) -> bool {
        let wait = *backoff;
        *backoff = (*backoff * 2).min(self.cfg().max_backoff);
        tokio::select! {
            () = shutdown.wait() => false,
            () = tokio::time::sleep(wait) => true,
        }
    }

    /// Applies a message's events, reproducing the committed run when the
    /// replay reaches its offset. Returns whether new (post-restore) events were
    /// applied, and — stopping there — an erasure marker above `erased_through`
    /// met after the restore (its offset and subject hash).
    async fn absorb(
        &self,
        mut state: State,
        resp: SubscribeResponse,
        restore: &mut Restore,
        erased_through: u64,
    ) -> Result<(State, bool, Option<(u64, String)>), Error> {
        let mut applied = false;
        for ev in &resp.events {
            if restore.pending.is_none()
                && ev.offset > erased_through
                && let Some(Kind::Erasure(x)) = ev.event.as_ref().and_then(|e| e.kind.as_ref())
            {
                return Ok((state, applied, Some((ev.offset, x.subject_hash.clone()))));
            }
            if let Some(run) = &restore.pending
                && ev.offset > run.as_of_offset
            {
                state = self.restore(state, restore).await?;
            }
            if apply_event(&mut state, ev) && restore.pending.is_none() {
                applied = true;
            }
            if let Some(run) = &restore.pending
                && state.offset == run.as_of_offset
            {
                state = self.restore(state, restore).await?;
            }
        }
        Ok((state, applied, None))
    }

    /// Drops what scoring derived from an erased subject: its score rows (history),
    /// every checkpoint (they encode the state, which held it), the decoded state
    /// explanations keep, and the remembered history points. Waits for a checkpoint
    /// write in flight first, so none lands after the purge.
    async fn purge_erased(&self, state: &State, hash: &str) -> Result<(), Error> {
        let account = (0..state.len())
            .filter_map(|n| state.account(n as crate::engine::Node))
            .find(|a| lift_store::privacy::account_hash(&a.id) == hash)
            .map(|a| a.id.to_string());
        while self.inner.checkpoints.busy.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cps = checkpoints::delete_all(self.db()).await?;
        let rows = match &account {
            Some(a) => store::erase_account(self.db(), a).await?,
            None => 0,
        };
        self.inner.checkpoints.events_at_last.store(0, Ordering::Relaxed);
        if let Ok(mut g) = self.inner.explain_base.lock() {
            *g = None;
        }
        self.put_recorded(Recorded::default());
        // Its indexes follow the old state, which the redacted replay replaces.
        drop(self.take_incremental());
        self.mark_renumbered();
        metrics::counter!("lift_scoring_erasures_total").increment(1);
        tracing::info!(
            subject = hash,
            account_known = account.is_some(),
            score_rows = rows,
            checkpoints = cps,
            "erasure: purged derived data; replaying the redacted ledger"
        );
        Ok(())
    }

    /// Publishes the scores of the committed run, recomputed from the replayed prefix.
    /// Under a different model version this is a recalibration: the run is committed anew.
    pub(super) async fn restore(&self, state: State, restore: &mut Restore) -> Result<State, Error> {
        let Some(run) = restore.pending.take() else { return Ok(state) };
        if run.model_version != self.inner.model_version {
            tracing::info!(from = %run.model_version, to = %self.inner.model_version, "model changed: recalibrating");
            let (state, r) = self.commit(state).await;
            r?;
            return Ok(state);
        }
        let params = self.cfg().model.clone();
        let (state, snap) = tokio::task::spawn_blocking(move || {
            let snap = compute_with(&state, &params, AsOf::of(&state), ComputeOptions::default());
            (state, snap)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        tracing::info!(
            run_id = run.run_id,
            offset = snap.as_of.offset,
            accounts = snap.n,
            "restored scores of the committed run"
        );
        self.publish(Published { run_id: run.run_id, snap }, &state);
        Ok(state)
    }

    /// Recomputes, commits the run with its changed rows and offset, and publishes it.
    /// The state is handed back whatever happens.
    async fn commit(&self, state: State) -> (State, Result<(), Error>) {
        // After an erasure the published vector is in the old node numbering.
        let warm = if self.is_renumbered() { None } else { self.published() };
        let params = self.cfg().model.clone();
        let checkpoint_due = self.checkpoint_due(&state);
        let model_version = self.inner.model_version.clone();
        let resolution = self.cfg().history_resolution;
        let mut recorded = self.take_recorded();
        if recorded.is_unloaded() {
            match Recorded::load(self.db(), &state, &model_version).await {
                Ok(r) => recorded = r,
                Err(e) => return (state, Err(e)),
            }
        }
        let mut incremental = self.cfg().incremental_runs.then(|| {
            let mut inc = self.take_incremental().unwrap_or_default();
            inc.network.tolerance = self.cfg().pagerank_drift_tolerance;
            inc
        });
        let joined = tokio::task::spawn_blocking(move || {
            let warm_start = warm.as_ref().map(|p| p.snap.pagerank.as_slice());
            let snap = match incremental.as_deref_mut() {
                Some(inc) => compute_incremental(&state, &params, warm_start, inc),
                None => {
                    compute_with(&state, &params, AsOf::of(&state), ComputeOptions { warm_start, authenticity: None })
                }
            };
            let pending = recorded.rows_for(&state, &snap, resolution);
            let checkpoint =
                checkpoint_due.then(|| (state.offset, state.events, codec::encode(&state, &model_version)));
            (state, snap, pending, checkpoint, recorded, incremental)
        })
        .await;
        let (state, snap, pending, checkpoint, mut recorded, incremental) = match joined {
            Ok(x) => x,
            Err(e) => return (State::new(), Err(Error::Task(e.to_string()))),
        };
        if let Some(inc) = incremental {
            self.put_incremental(inc);
        }
        let rows = &pending.rows;
        let run = NewRun {
            model_version: snap.model_version.clone(),
            as_of_offset: snap.as_of.offset,
            as_of_time: snap.as_of.time,
            created_at: lift_domain::time::now(),
            accounts: snap.n as u64,
            parameters: serde_json::to_string(&self.cfg().model).unwrap_or_default(),
            distributions: distributions_json(&snap),
        };
        let started = std::time::Instant::now();
        let fence = self.inner.fence.lock().ok().and_then(|g| g.clone());
        let committed = store::commit_run_fenced(self.db(), fence.as_ref(), &run, rows).await;
        let changed = rows.len();
        if committed.is_ok() {
            recorded.committed(pending);
        }
        self.put_recorded(recorded);
        match committed {
            Ok(run_id) => {
                metrics::histogram!("lift_scoring_run_seconds").record(snap.stats.millis as f64 / 1000.0);
                metrics::histogram!("lift_scoring_commit_seconds").record(started.elapsed().as_secs_f64());
                metrics::counter!("lift_scoring_runs_total").increment(1);
                metrics::counter!("lift_scoring_accounts_changed_total").increment(changed as u64);
                metrics::gauge!("lift_scoring_run_accounts_changed").set(changed as f64);
                metrics::gauge!("lift_scoring_run_offset").set(snap.as_of.offset as f64);
                tracing::info!(
                    run_id,
                    offset = snap.as_of.offset,
                    accounts = snap.n,
                    changed,
                    millis = snap.stats.millis,
                    commit_millis = started.elapsed().as_millis() as u64,
                    pagerank_iterations = snap.stats.pagerank_iterations,
                    "scoring run committed"
                );
                self.publish(Published { run_id, snap }, &state);
                if let Some((offset, events, bytes)) = checkpoint {
                    self.spawn_checkpoint_write(offset, events, bytes);
                }
                (state, Ok(()))
            }
            Err(e) => (state, Err(e.into())),
        }
    }
}

/// Scoring's consumer lag behind the ledger head, as the gauges
/// `lift_consumer_lag_events{consumer="scoring"}` and `lift_consumer_lag_seconds`
/// (how long it has been behind; 0 at the head), updated on every ledger message.
#[derive(Debug, Default)]
pub(super) struct Lag {
    behind_since: Option<Instant>,
}

impl Lag {
    pub(super) fn observe(&mut self, head: u64, consumed: u64) {
        let behind = head.saturating_sub(consumed);
        let secs = if behind == 0 {
            self.behind_since = None;
            0.0
        } else {
            self.behind_since.get_or_insert_with(Instant::now).elapsed().as_secs_f64()
        };
        metrics::gauge!("lift_consumer_lag_events", "consumer" => "scoring").set(behind as f64);
        metrics::gauge!("lift_consumer_lag_seconds", "consumer" => "scoring").set(secs);
    }
}

impl Scoring {
    /// The newest usable checkpoint at or below `at_most`, or an empty state
    /// (a full replay) when there is none or it cannot be used — logged.
    pub(super) async fn load_checkpoint(&self, at_most: u64) -> State {
        let started = std::time::Instant::now();
        let (info, bytes) = match checkpoints::latest(self.db(), at_most).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                tracing::info!(committed_offset = at_most, "no checkpoint: replaying the ledger from the start");
                return State::new();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read checkpoints: replaying the ledger from the start");
                return State::new();
            }
        };
        let version = self.inner.model_version.clone();
        let decoded = tokio::task::spawn_blocking(move || codec::decode(&bytes, &version)).await;
        match decoded {
            Ok(Ok(state)) => {
                self.inner.checkpoints.events_at_last.store(state.events, Ordering::Relaxed);
                tracing::info!(
                    checkpoint_id = info.checkpoint_id,
                    offset = state.offset,
                    committed_offset = at_most,
                    accounts = state.len(),
                    bytes = info.size_bytes,
                    millis = started.elapsed().as_millis() as u64,
                    "loaded checkpoint: replaying only the ledger after it"
                );
                state
            }
            Ok(Err(e)) => {
                tracing::warn!(
                    checkpoint_id = info.checkpoint_id,
                    offset = info.as_of_offset,
                    model_version = %info.model_version,
                    format_version = info.format_version,
                    reason = %e,
                    "checkpoint unusable: replaying the ledger from the start"
                );
                State::new()
            }
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint decode task failed: replaying the ledger from the start");
                State::new()
            }
        }
    }

    fn take_recorded(&self) -> Recorded {
        std::mem::take(&mut *self.inner.recorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn put_recorded(&self, r: Recorded) {
        *self.inner.recorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = r;
    }

    fn take_incremental(&self) -> Option<Box<IncrementalScores>> {
        self.inner.incremental.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    fn put_incremental(&self, inc: Box<IncrementalScores>) {
        *self.inner.incremental.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(inc);
    }

    fn checkpoint_due(&self, state: &State) -> bool {
        let every = self.cfg().checkpoint_every_events;
        let c = &self.inner.checkpoints;
        every > 0
            && state.events >= c.events_at_last.load(Ordering::Relaxed).saturating_add(every)
            && !c.busy.load(Ordering::Acquire)
    }

    /// Writes an encoded checkpoint in the background; the consumer goes on.
    fn spawn_checkpoint_write(&self, offset: u64, events: u64, bytes: Vec<u8>) {
        let c = &self.inner.checkpoints;
        if c.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let cp = NewCheckpoint {
                model_version: &me.inner.model_version,
                format_version: FORMAT_VERSION,
                as_of_offset: offset,
                created_at: lift_domain::time::now(),
                bytes: &bytes,
            };
            match checkpoints::write(me.db(), &cp, me.cfg().checkpoints_kept).await {
                Ok(id) => {
                    me.inner.checkpoints.events_at_last.store(events, Ordering::Relaxed);
                    tracing::info!(
                        checkpoint_id = id,
                        offset,
                        bytes = bytes.len(),
                        millis = started.elapsed().as_millis() as u64,
                        "checkpoint written"
                    );
                }
                Err(e) => tracing::warn!(error = %e, offset, "cannot write checkpoint; will retry after a later run"),
            }
            me.inner.checkpoints.busy.store(false, Ordering::Release);
        });
    }
}

/// Applies one ledger event; one that no longer decodes is skipped — identically
/// on every replay, so scores stay a function of the prefix. Whether it counted.
pub(super) fn apply_event(state: &mut State, ev: &lift_proto::ingest::v1::LedgerEvent) -> bool {
    match LedgerEntry::from_proto(ev) {
        Ok(entry) => state.apply(&entry),
        Err(violations) => {
            tracing::error!(offset = ev.offset, ?violations, "ledger event does not decode; skipping it");
            state.skip(ev.offset)
        }
    }
}

fn last_offset(resp: &SubscribeResponse, state: &State) -> u64 {
    resp.events.last().map_or(state.offset, |e| e.offset.max(state.offset))
}
