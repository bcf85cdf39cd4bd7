//! What an operator can tune about ingestion.

use std::time::Duration;

use lift_domain::{Micros, ValidationPolicy};

/// Ingestion settings; `Default` suits a service.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Earliest accepted occurrence time (µs since the epoch); `None` keeps the
    /// domain default (1990), which admits archives such as CollegeMsg (2004).
    pub min_time: Option<Micros>,
    /// How far in the future an occurrence time may be (clock skew).
    pub max_future: Duration,
    /// Attribution window of links registered without one.
    pub default_attribution_window: Duration,
    /// Most events in one batch (one unary call or one stream message).
    pub max_batch: usize,
    /// Most links in one `RegisterLinks` call.
    pub max_links: usize,
    /// Events per `Subscribe` message while catching up.
    pub subscribe_page: u32,
    /// Messages buffered per subscriber before the reader waits for the client.
    pub subscribe_buffer: usize,
    /// How often a tailing subscriber re-reads the ledger even without a local
    /// commit, to see events appended by other processes sharing the database.
    pub poll_interval: Duration,
    /// Most rejections listed in an `IngestStream` response (the counts stay exact).
    pub max_stream_rejections: usize,
    /// Where the ledger lives: empty for the database's own table (the default),
    /// or `nats://host:port[?replicas=N&stream=NAME]` for NATS JetStream (see
    /// [`crate::ledger`]).
    pub ledger: String,
    /// The retention horizon and how often it is enforced; `None` (the default)
    /// keeps events until they are erased. See [`Retention`].
    pub retention: Option<Retention>,
}

/// Events that occurred longer ago than `horizon` are removed (rewritten as
/// tombstones, as an erasure does) every `every`, and refused at ingest. The
/// horizon must be longer than the scoring model's window
/// ([`Retention::check_window`]), so no event a score still weighs is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub horizon: Duration,
    pub every: Duration,
}

impl Retention {
    /// The horizon in µs.
    pub fn horizon_micros(&self) -> Micros {
        i64::try_from(self.horizon.as_micros()).unwrap_or(i64::MAX)
    }

    /// The occurrence time before which events are removed, at time `now`.
    pub fn cutoff(&self, now: Micros) -> Micros {
        now.saturating_sub(self.horizon_micros())
    }

    /// Refuses a horizon not longer than the scoring model's `window`: retention
    /// would remove events that scores still weigh.
    pub fn check_window(&self, window: Duration) -> Result<(), String> {
        if self.horizon <= window {
            return Err(format!(
                "the retention horizon ({:.1} days) must be longer than the scoring model's window ({:.1} days): \
                 a shorter one would remove events that scores still use",
                self.horizon.as_secs_f64() / 86_400.0,
                window.as_secs_f64() / 86_400.0
            ));
        }
        if self.every.is_zero() {
            return Err("the retention interval must be above zero".to_owned());
        }
        Ok(())
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            min_time: None,
            max_future: Duration::from_secs(86_400),
            default_attribution_window: Duration::from_secs(7 * 86_400),
            max_batch: 10_000,
            max_links: 10_000,
            subscribe_page: 1_000,
            subscribe_buffer: 4,
            poll_interval: Duration::from_millis(250),
            max_stream_rejections: 1_000,
            ledger: String::new(),
            retention: None,
        }
    }
}

impl IngestConfig {
    /// The validation policy at time `now`.
    pub fn policy(&self, now: Micros) -> ValidationPolicy {
        let mut p = ValidationPolicy::at(now);
        if let Some(t) = self.min_time {
            p.min_time = t;
        }
        p.max_future = i64::try_from(self.max_future.as_micros()).unwrap_or(i64::MAX);
        // An event past the retention horizon would be removed at the next run.
        if let Some(r) = &self.retention {
            p.min_time = p.min_time.max(r.cutoff(now));
        }
        p
    }
}
