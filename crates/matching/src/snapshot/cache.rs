//! The cache itself: the current [`RunScores`] behind an `Arc`, one
//! background load at a time, and stale-while-revalidate for callers whose
//! patience runs out while a newer run loads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{Run, RunScores};
use crate::Error;

/// What the score cache holds and has done, for operators and benchmarks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreCacheStats {
    /// Completed loads since start.
    pub loads: u64,
    /// Accounts in the current snapshot (0 before the first load).
    pub accounts: usize,
    /// Heap bytes of the current snapshot.
    pub bytes: usize,
    /// How long the last load took (paging scoring and building the columns).
    pub last_load: Duration,
    /// Of the completed loads, those that applied only a run's changes.
    pub delta_loads: u64,
    /// Accounts the last load received (all of them, or the changed ones).
    pub last_received: u64,
    pub model_version: String,
    pub as_of_offset: u64,
}

/// The current snapshot behind a lock held only to clone or swap an `Arc`, and
/// one background load at a time: concurrent callers that find the snapshot
/// outdated share it, and a load that outlasts a caller's patience leaves that
/// caller with the previous run's snapshot, marked stale, instead of a wait.
#[derive(Debug)]
pub(crate) struct ScoreCache {
    current: RwLock<Option<Arc<RunScores>>>,
    loading: AtomicBool,
    /// Bumped after every load attempt, successful or not.
    attempts: tokio::sync::watch::Sender<u64>,
    last_error: RwLock<Option<String>>,
    loads: AtomicU64,
    last_load_micros: AtomicU64,
    delta_loads: AtomicU64,
    last_received: AtomicU64,
}

impl Default for ScoreCache {
    fn default() -> Self {
        Self {
            current: RwLock::default(),
            loading: AtomicBool::new(false),
            attempts: tokio::sync::watch::Sender::new(0),
            last_error: RwLock::default(),
            loads: AtomicU64::new(0),
            last_load_micros: AtomicU64::new(0),
            delta_loads: AtomicU64::new(0),
            last_received: AtomicU64::new(0),
        }
    }
}

impl ScoreCache {
    fn get(&self) -> Option<Arc<RunScores>> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the value is whole.
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Drops the current snapshot (an erasure: it may hold the erased account),
    /// so the next caller waits for a load instead of falling back on it.
    pub(crate) fn forget(&self) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    fn serves(s: &RunScores, run: &Run) -> bool {
        s.model_version == run.0 && s.as_of == run.1
    }

    /// Starts a background load unless one is running.
    fn start_load<F, Fut>(self: &Arc<Self>, load: F)
    where
        F: FnOnce(Option<Arc<RunScores>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<RunScores, Error>> + Send + 'static,
    {
        if self.loading.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = Arc::clone(self);
        let base = self.get();
        tokio::spawn(async move {
            let started = Instant::now();
            match load(base).await {
                Ok(snap) => {
                    let took = started.elapsed();
                    tracing::info!(
                        accounts = snap.len(),
                        received = snap.received,
                        delta = snap.from_delta,
                        bytes = snap.bytes(),
                        model_version = %snap.model_version,
                        as_of = snap.as_of,
                        secs = took.as_secs_f64(),
                        "score cache loaded"
                    );
                    metrics::histogram!("lift_matching_score_cache_load_seconds").record(took.as_secs_f64());
                    metrics::gauge!("lift_matching_score_cache_as_of_offset").set(snap.as_of as f64);
                    let loaded_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                    metrics::gauge!("lift_matching_score_cache_loaded_timestamp_seconds")
                        .set(loaded_at.map_or(0.0, |d| d.as_secs_f64()));
                    me.last_received.store(snap.received, Ordering::Release);
                    if snap.from_delta {
                        me.delta_loads.fetch_add(1, Ordering::AcqRel);
                    }
                    *me.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(snap));
                    *me.last_error.write().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                    me.last_load_micros.store(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Release);
                    me.loads.fetch_add(1, Ordering::AcqRel);
                }
                Err(e) => {
                    metrics::counter!("lift_matching_score_cache_load_failures_total").increment(1);
                    tracing::warn!(error = %e, "loading the score cache failed");
                    *me.last_error.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
                }
            }
            me.loading.store(false, Ordering::Release);
            me.attempts.send_modify(|n| *n += 1);
        });
    }

    /// The snapshot of scoring's run `run`, and whether it is stale (an older
    /// run's). When the cached snapshot is not `run`'s, a load starts (or the one
    /// running is joined); the caller waits for it up to `patience` when there
    /// is an older snapshot to fall back on, and without limit when there is
    /// none or `patience` is `None`.
    pub(crate) async fn at_least<F, Fut>(
        self: &Arc<Self>,
        run: &Run,
        patience: Option<Duration>,
        load: F,
    ) -> Result<(Arc<RunScores>, bool), Error>
    where
        F: FnOnce(Option<Arc<RunScores>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<RunScores, Error>> + Send + 'static,
    {
        if let Some(s) = self.get().filter(|s| Self::serves(s, run)) {
            return Ok((s, false));
        }
        let mut rx = self.attempts.subscribe();
        let before = *rx.borrow_and_update();
        self.start_load(load);
        let deadline = patience.map(|p| tokio::time::Instant::now() + p);
        loop {
            let changed = match (self.get(), deadline) {
                (Some(_), Some(d)) => tokio::time::timeout_at(d, rx.changed()).await.ok(),
                _ => Some(rx.changed().await),
            };
            let current = self.get();
            match changed {
                // Patience ran out with an older snapshot at hand: serve it, marked stale.
                None => {
                    return current
                        .map(stale_answer)
                        .ok_or_else(|| Error::scoring(tonic::Status::unavailable("the score cache is loading")));
                }
                Some(Err(_)) => {
                    return Err(Error::Internal("the score cache's loader went away".to_owned()));
                }
                Some(Ok(())) => {}
            }
            if *rx.borrow_and_update() == before {
                continue;
            }
            if let Some(s) = current.as_ref().filter(|s| Self::serves(s, run)) {
                return Ok((s.clone(), false));
            }
            let failed = self.last_error.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            return match (current, failed) {
                // The load failed: an older snapshot is still an answer, marked stale.
                (Some(s), Some(_)) => Ok(stale_answer(s)),
                (None, Some(e)) => Err(Error::scoring(tonic::Status::unavailable(e))),
                // A load that began before this caller's probe finished: a newer
                // snapshot than before, though not necessarily `run`'s.
                (Some(s), None) => {
                    if !Self::serves(&s, run) && s.as_of < run.1 {
                        Ok(stale_answer(s))
                    } else {
                        Ok((s, false))
                    }
                }
                (None, None) => Err(Error::scoring(tonic::Status::unavailable("the score cache is empty"))),
            };
        }
    }

    pub(crate) fn stats(&self) -> ScoreCacheStats {
        let cur = self.get();
        ScoreCacheStats {
            loads: self.loads.load(Ordering::Acquire),
            accounts: cur.as_ref().map_or(0, |s| s.len()),
            bytes: cur.as_ref().map_or(0, |s| s.bytes()),
            last_load: Duration::from_micros(self.last_load_micros.load(Ordering::Acquire)),
            delta_loads: self.delta_loads.load(Ordering::Acquire),
            last_received: self.last_received.load(Ordering::Acquire),
            model_version: cur.as_ref().map(|s| s.model_version.clone()).unwrap_or_default(),
            as_of_offset: cur.as_ref().map_or(0, |s| s.as_of),
        }
    }
}

/// An answer from an older run's snapshot, counted in `lift_matching_stale_answers_total`.
fn stale_answer(s: Arc<RunScores>) -> (Arc<RunScores>, bool) {
    metrics::counter!("lift_matching_stale_answers_total").increment(1);
    (s, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Builder;

    fn empty(run: &Run) -> Result<RunScores, Error> {
        Builder::default().finish_run(run.clone(), 0)
    }

    /// Pins stale-while-revalidate: a load slower than the caller's patience
    /// leaves it with the previous run's copy, marked stale; once the load lands,
    /// the new run is served fresh without another load; concurrent callers share one load.
    #[tokio::test(start_paused = true)]
    async fn slow_loads_serve_the_previous_run_marked_stale() {
        let cache = Arc::new(ScoreCache::default());
        let (a, b) = (("m".to_owned(), 10), ("m".to_owned(), 20));
        let patience = Some(Duration::from_millis(100));

        // Nothing cached: the caller waits for the load, however long.
        let ra = a.clone();
        let (s, stale) = cache
            .at_least(&a, patience, move |_| async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                empty(&ra)
            })
            .await
            .unwrap();
        assert_eq!((s.as_of, stale), (10, false));

        // A newer run whose load takes longer than the patience: the old copy, stale.
        let rb = b.clone();
        let (s, stale) = cache
            .at_least(&b, patience, move |_| async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                empty(&rb)
            })
            .await
            .unwrap();
        assert_eq!((s.as_of, stale), (10, true));
        // A second caller meanwhile joins the running load instead of starting one.
        let (s, stale) = cache.at_least(&b, patience, |_| async { panic!("a second load started") }).await.unwrap();
        assert_eq!((s.as_of, stale), (10, true));

        tokio::time::sleep(Duration::from_secs(6)).await;
        let (s, stale) = cache.at_least(&b, patience, |_| async { panic!("reloaded a cached run") }).await.unwrap();
        assert_eq!((s.as_of, stale), (20, false));
        assert_eq!(cache.stats().loads, 2);

        // Without patience (portfolios, offers) the caller waits for the newer run.
        let c = ("m".to_owned(), 30);
        let rc = c.clone();
        let (s, stale) = cache
            .at_least(&c, None, move |_| async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                empty(&rc)
            })
            .await
            .unwrap();
        assert_eq!((s.as_of, stale), (30, false));
    }

    /// Pins that a failed load keeps serving the previous run (stale) and that
    /// with nothing cached the failure is the answer.
    #[tokio::test]
    async fn failed_loads_fall_back_or_fail() {
        let cache = Arc::new(ScoreCache::default());
        let fail =
            |_: Option<Arc<RunScores>>| async { Err(Error::scoring(tonic::Status::unavailable("scoring is down"))) };
        let run = ("m".to_owned(), 1);
        let err = cache.at_least(&run, Some(Duration::from_secs(1)), fail).await.unwrap_err();
        assert!(err.to_string().contains("scoring is down"), "{err}");
        let r = run.clone();
        cache.at_least(&run, Some(Duration::from_secs(1)), move |_| async move { empty(&r) }).await.unwrap();
        let (s, stale) = cache.at_least(&("m".to_owned(), 2), Some(Duration::from_secs(1)), fail).await.unwrap();
        assert_eq!((s.as_of, stale), (1, true));
    }
}
