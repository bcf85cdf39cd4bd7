//! The ledger consumer.
//!
//! On start it reads the latest committed run, replays the ledger from the
//! beginning up to that run's offset (scores are a pure function of the ledger
//! prefix and the model, so this reproduces them), publishes them, and then
//! tails the ledger. Whenever it is caught up and new events arrived, it waits
//! `debounce` for more, recomputes, and commits the run together with the
//! offset in one transaction — a crash before the commit replays the events,
//! a crash after it skips them, never both.

use std::time::Duration;

use lift_domain::{AccountId, Dimension, LedgerEntry};
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::ingest::v1::{SubscribeRequest, SubscribeResponse};
use lift_runtime::Shutdown;
use lift_runtime::client::Channel;
use lift_store::scoring::{self as store, NewRun, ScoreRow};
use tokio::time::Instant;

use super::{Published, Scoring};
use crate::Error;
use crate::engine::{AsOf, ComputeOptions, Snapshot, State, compute_with};

/// Where the consumer stands against the committed run.
struct Restore {
    /// Offset of the committed run still to be reproduced; `None` once done.
    pending: Option<store::Run>,
}

/// Quantile levels stored with each run (every 0.5 %), for history percentiles
/// and recalibration mappings.
pub(crate) fn stored_levels() -> Vec<f64> {
    (0..=200).map(|i| f64::from(i) / 200.0).collect()
}

impl Scoring {
    /// Consumes ingestion's ledger until `shutdown`: see the module docs.
    /// Returns an error only for failures retrying cannot fix (the database).
    pub async fn run_consumer(&self, ingest: IngestServiceClient<Channel>, shutdown: Shutdown) -> Result<(), Error> {
        let latest = store::latest_run(self.db()).await?;
        let mut restore = Restore { pending: latest.filter(|r| r.as_of_offset > 0) };
        let mut state = State::new();
        let mut dirty = false;
        let mut backoff = self.cfg().initial_backoff;
        loop {
            if shutdown.is_triggered() {
                return Ok(());
            }
            let mut client = ingest.clone();
            let req = SubscribeRequest { after_offset: state.offset, kinds: Vec::new(), stop_at_head: false };
            let mut stream = tokio::select! {
                () = shutdown.wait() => return Ok(()),
                r = client.subscribe(req) => match r {
                    Ok(s) => s.into_inner(),
                    Err(status) => {
                        tracing::warn!(code = ?status.code(), message = status.message(), retry_in = ?backoff, "cannot subscribe to ingestion");
                        if !self.pause(&shutdown, &mut backoff).await {
                            return Ok(());
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
                tokio::select! {
                    () = shutdown.wait() => return Ok(()),
                    () = sleep => {
                        deadline = None;
                        match self.commit(state).await {
                            (s, Ok(())) => { state = s; dirty = false; }
                            (s, Err(e)) => {
                                state = s;
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
                            let (s, applied) = self.absorb(state, resp, &mut restore).await?;
                            state = s;
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
                            if !self.pause(&shutdown, &mut backoff).await {
                                return Ok(());
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
    /// replay reaches its offset. Returns whether new (post-restore) events were applied.
    async fn absorb(
        &self,
        mut state: State,
        resp: SubscribeResponse,
        restore: &mut Restore,
    ) -> Result<(State, bool), Error> {
        let mut applied = false;
        for ev in &resp.events {
            if let Some(run) = &restore.pending
                && ev.offset > run.as_of_offset
            {
                state = self.restore(state, restore).await?;
            }
            match LedgerEntry::from_proto(ev) {
                Ok(entry) => {
                    if state.apply(&entry) && restore.pending.is_none() {
                        applied = true;
                    }
                }
                Err(violations) => {
                    // Skipped identically on every replay, so scores stay a function of the prefix.
                    tracing::error!(offset = ev.offset, ?violations, "ledger event does not decode; skipping it");
                    if state.skip(ev.offset) && restore.pending.is_none() {
                        applied = true;
                    }
                }
            }
            if let Some(run) = &restore.pending
                && state.offset == run.as_of_offset
            {
                state = self.restore(state, restore).await?;
            }
        }
        Ok((state, applied))
    }

    /// Publishes the scores of the committed run, recomputed from the replayed prefix.
    /// Under a different model version this is a recalibration: the run is committed anew.
    async fn restore(&self, state: State, restore: &mut Restore) -> Result<State, Error> {
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
        let prev = self.published();
        let params = self.cfg().model.clone();
        let warm = prev.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let opts =
                ComputeOptions { warm_start: warm.as_ref().map(|p| p.snap.pagerank.as_slice()), authenticity: None };
            let snap = compute_with(&state, &params, AsOf::of(&state), opts);
            let rows = changed_rows(&state, prev.as_ref().map(|p| &p.snap), &snap);
            (state, snap, rows)
        })
        .await;
        let (state, snap, rows) = match joined {
            Ok(x) => x,
            Err(e) => return (State::new(), Err(Error::Task(e.to_string()))),
        };
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
        match store::commit_run(self.db(), &run, &rows).await {
            Ok(run_id) => {
                tracing::info!(
                    run_id,
                    offset = snap.as_of.offset,
                    accounts = snap.n,
                    changed = rows.len(),
                    millis = snap.stats.millis,
                    commit_millis = started.elapsed().as_millis() as u64,
                    pagerank_iterations = snap.stats.pagerank_iterations,
                    "scoring run committed"
                );
                self.publish(Published { run_id, snap }, &state);
                (state, Ok(()))
            }
            Err(e) => (state, Err(e.into())),
        }
    }
}

fn last_offset(resp: &SubscribeResponse, state: &State) -> u64 {
    resp.events.last().map_or(state.offset, |e| e.offset.max(state.offset))
}

/// Rows for the accounts whose stored scores differ from the previous run's
/// (all of them when the model changed or there is no previous run).
fn changed_rows(state: &State, prev: Option<&Snapshot>, snap: &Snapshot) -> Vec<ScoreRow> {
    let same_model = prev.is_some_and(|p| p.model_version == snap.model_version);
    (0..snap.n)
        .filter(|&i| {
            let Some(p) = prev.filter(|_| same_model).filter(|p| i < p.n) else { return true };
            Dimension::ALL.iter().any(|d| p.values[d.index()][i] != snap.values[d.index()][i])
                || p.action[i] != snap.action[i]
        })
        .map(|i| row_of(&state.accounts[i].id, snap, i))
        .collect()
}

fn row_of(id: &AccountId, snap: &Snapshot, i: usize) -> ScoreRow {
    let a = snap.action[i];
    ScoreRow {
        account: id.to_string(),
        values: Dimension::ALL.map(|d| snap.values[d.index()][i]),
        action_lower: a.lower,
        action_upper: a.upper,
        action_sufficient: a.sufficient,
    }
}

/// `{"levels": [...], "activity": [...], ...}` at [`stored_levels`].
pub(crate) fn distributions_json(snap: &Snapshot) -> String {
    let levels = stored_levels();
    let mut map = serde_json::Map::new();
    map.insert("levels".into(), serde_json::json!(levels));
    for d in Dimension::ALL {
        let v = &snap.values[d.index()];
        let asc: Vec<f64> = snap.order[d.index()].iter().rev().map(|&i| v[i as usize]).collect();
        let q: Vec<f64> = crate::engine::stats::quantiles(&asc, &levels).into_iter().map(|(_, x)| x).collect();
        map.insert(d.name().into(), serde_json::json!(q));
    }
    serde_json::Value::Object(map).to_string()
}

/// A run's stored distribution of one dimension: (levels, values).
pub(crate) fn parse_distribution(run: &store::Run, d: Dimension) -> Result<(Vec<f64>, Vec<f64>), Error> {
    let corrupt = |reason: String| Error::CorruptRun { run_id: run.run_id, reason };
    let v: serde_json::Value = serde_json::from_str(&run.distributions).map_err(|e| corrupt(e.to_string()))?;
    let list = |k: &str| -> Result<Vec<f64>, Error> {
        v.get(k)
            .and_then(|x| x.as_array())
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .ok_or_else(|| corrupt(format!("no {k:?} in distributions")))
    };
    Ok((list("levels")?, list(d.name())?))
}

/// Approximate percentile of `v` in a stored distribution: the highest level
/// whose quantile is strictly below `v` (within half a percentile point).
pub(crate) fn percentile_from(levels: &[f64], values: &[f64], v: f64) -> f64 {
    let k = values.partition_point(|x| *x < v);
    if k == 0 { 0.0 } else { 100.0 * levels.get(k - 1).copied().unwrap_or(1.0) }
}
