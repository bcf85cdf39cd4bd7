//! Scoring replicas that share one database.
//!
//! With a [`WriterLease`] configured, a replica takes turns: it tries to take
//! the store's writer lease (`lift_store::lease`); while someone else holds it,
//! the replica *follows* — it reads the latest committed run, replays the
//! ledger up to exactly that run's offset, and publishes the same run (same id,
//! same prefix, same model, so the same scores) for its readers. Reads never
//! depend on the writer being alive.
//!
//! When the writer dies its lease expires; a follower takes it (with a new
//! fencing token) and goes on writing from the run it already follows, so no
//! run is lost or committed twice: the dead writer's late commits are refused by
//! the fence, and run ids come from the store's one counter. A writer that loses
//! its lease (a renewal or commit finds the token changed) drops its uncommitted
//! state and follows from the newest checkpoint, since its state may be ahead of
//! the run the new writer committed.

use lift_proto::ingest::v1::SubscribeRequest;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_runtime::Shutdown;
use lift_runtime::client::Channel;
use lift_store::lease;
use lift_store::scoring as store;

use super::consumer::{Exit, Lag, Restore, apply_event};
use super::{Scoring, WriterLease};
use crate::Error;
use crate::engine::State;

/// What following ended with.
enum Follow {
    Shutdown,
    /// This replica took the lease; the state it followed with, if any.
    Lead(Option<Box<State>>),
}

impl Scoring {
    /// Follows and writes in turns until shutdown; see the module docs.
    pub(super) async fn take_turns(
        &self,
        ingest: &IngestServiceClient<Channel>,
        shutdown: &Shutdown,
        lease: &WriterLease,
    ) -> Result<(), Error> {
        let mut state = None;
        loop {
            let given = match self.follow(state.take(), ingest, shutdown, lease).await {
                Follow::Shutdown => return Ok(()),
                Follow::Lead(s) => s.map(|s| *s),
            };
            let outcome = self.write(ingest, shutdown, given).await;
            let fence = self.inner.fence.lock().ok().and_then(|mut g| g.take());
            metrics::gauge!("lift_scoring_writer").set(0.0);
            match outcome {
                Ok(Exit::LostLease) => {
                    metrics::counter!("lift_scoring_lease_lost_total").increment(1);
                    tracing::warn!(holder = %lease.holder, "lost the scoring writer lease: following the new writer");
                }
                other => {
                    // Hand over at once instead of making the others wait out the lease.
                    if let Some(f) = fence
                        && let Err(e) = lease::release(self.db(), &f).await
                    {
                        tracing::warn!(error = %e, "cannot release the scoring writer lease; it expires by itself");
                    }
                    return other.map(|_| ());
                }
            }
        }
    }

    /// Extends the lease; false once it is lost. A failed renewal (database
    /// unreachable) is retried at the next tick: the lease may still be ours,
    /// and if it is not, the fence refuses our next commit anyway.
    pub(super) async fn renew_lease(&self, l: &WriterLease) -> bool {
        let Some(fence) = self.inner.fence.lock().ok().and_then(|g| g.clone()) else { return false };
        match lease::renew(self.db(), &fence, l.ttl).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the scoring writer lease; retrying");
                true
            }
        }
    }

    /// Publishes the writer's runs until this replica takes the lease.
    async fn follow(
        &self,
        mut state: Option<State>,
        ingest: &IngestServiceClient<Channel>,
        shutdown: &Shutdown,
        l: &WriterLease,
    ) -> Follow {
        let mut tick = tokio::time::interval(l.ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut other_model_logged = false;
        loop {
            tokio::select! {
                () = shutdown.wait() => return Follow::Shutdown,
                _ = tick.tick() => {}
            }
            match lease::acquire(self.db(), &l.holder, l.ttl).await {
                Ok(Some(fence)) => {
                    tracing::info!(holder = %fence.holder, token = fence.token, "took the scoring writer lease");
                    if let Ok(mut g) = self.inner.fence.lock() {
                        *g = Some(fence);
                    }
                    metrics::gauge!("lift_scoring_writer").set(1.0);
                    return Follow::Lead(state.map(Box::new));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the scoring writer lease; retrying");
                    continue;
                }
            }
            let run = match store::latest_run(self.db()).await {
                Ok(Some(run)) => run,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the latest scoring run; retrying");
                    continue;
                }
            };
            if self.published().is_some_and(|p| p.run_id >= run.run_id) {
                continue;
            }
            if run.model_version != self.inner.model_version {
                if !other_model_logged {
                    tracing::warn!(
                        writer_model = %run.model_version,
                        ours = %self.inner.model_version,
                        "the writer scores with another model; serving our last run until this replica writes"
                    );
                    other_model_logged = true;
                }
                continue;
            }
            other_model_logged = false;
            let s = match state.take() {
                Some(s) if s.offset <= run.as_of_offset => s,
                _ => self.load_checkpoint(run.as_of_offset).await,
            };
            let s = self.replay_to(s, ingest, run.as_of_offset, shutdown).await;
            if s.offset != run.as_of_offset {
                state = Some(s);
                continue;
            }
            let (run_id, offset) = (run.run_id, run.as_of_offset);
            match self.restore(s, &mut Restore { pending: Some(run) }).await {
                Ok(s) => {
                    tracing::debug!(run_id, offset, "following: published the writer's run");
                    state = Some(s);
                }
                Err(e) => tracing::warn!(error = %e, run_id, "cannot publish the writer's run; retrying"),
            }
        }
    }

    /// Applies the ledger after `state` up to `target` (inclusive) and no
    /// further; stops early, keeping what it applied, when the stream fails.
    async fn replay_to(
        &self,
        mut state: State,
        ingest: &IngestServiceClient<Channel>,
        target: u64,
        shutdown: &Shutdown,
    ) -> State {
        if state.offset >= target {
            return state;
        }
        let req = SubscribeRequest { after_offset: state.offset, kinds: Vec::new(), stop_at_head: true };
        let mut stream = match ingest.clone().subscribe(req).await {
            Ok(s) => s.into_inner(),
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "cannot subscribe to ingestion");
                return state;
            }
        };
        let mut lag = Lag::default();
        while state.offset < target {
            let msg = tokio::select! {
                () = shutdown.wait() => return state,
                m = stream.message() => m,
            };
            match msg {
                Ok(Some(resp)) => {
                    for ev in resp.events.iter().take_while(|e| e.offset <= target) {
                        apply_event(&mut state, ev);
                    }
                    lag.observe(resp.head_offset, state.offset);
                    if resp.caught_up && resp.head_offset < target {
                        tracing::warn!(ledger = resp.head_offset, target, "ledger head is below the committed run");
                        return state;
                    }
                }
                Ok(None) => return state,
                Err(status) => {
                    tracing::warn!(code = ?status.code(), message = status.message(), "ledger stream failed");
                    return state;
                }
            }
        }
        state
    }
}
