//! What can be configured: [`LiftConfig`] and its sections, their defaults
//! (each service's own `Default`), and the conversions between a section in
//! configuration units (milliseconds, plain numbers) and the service's config.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything the `lift serve` services can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiftConfig {
    pub server: ServerSection,
    pub database: DatabaseSection,
    pub credentials: CredentialsSection,
    pub tls: TlsSection,
    pub ingest: IngestSection,
    pub scoring: ScoringSection,
    pub matching: MatchingSection,
    pub collect: CollectSection,
    pub web: WebSection,
}

/// The web console (`serve web`, part of `serve all`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSection {
    /// `host:port` of the console.
    pub addr: String,
    /// Where the console reaches matching (scoring: `server.scoring_url`).
    pub matching_url: String,
    /// Mark the console's key cookie `Secure` (serve it behind https).
    pub secure_cookie: bool,
}

impl Default for WebSection {
    fn default() -> Self {
        Self { addr: "127.0.0.1:8080".into(), matching_url: "http://127.0.0.1:50053".into(), secure_cookie: false }
    }
}

/// Addresses, authentication, limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    pub ingest_addr: String,
    pub scoring_addr: String,
    pub matching_addr: String,
    /// Where scoring and matching reach ingestion, and matching reaches scoring.
    pub ingest_url: String,
    pub scoring_url: String,
    /// `host:port` for Prometheus `/metrics`; empty = off.
    pub metrics_addr: String,
    /// `on` or `off` (local development only).
    pub auth: String,
    /// Requests per second per key; 0 disables the limit.
    pub rate_limit: f64,
    pub rate_burst: f64,
    pub request_timeout_secs: u64,
    pub db_acquire_timeout_secs: u64,
}

/// Database URLs (secret: their passwords are redacted when shown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    pub url: String,
    /// Where API keys live; empty = `url`.
    pub auth_url: String,
}

/// The key a service presents to its peers (secret).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CredentialsSection {
    pub api_key: String,
}

/// PEM file paths; empty = unset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    pub cert: String,
    pub key: String,
    pub client_ca: String,
    pub ca: String,
    pub client_cert: String,
    pub client_key: String,
}

/// [`lift_ingest::IngestConfig`] in configuration units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSection {
    /// Earliest accepted occurrence time, Unix seconds (default 1990-01-01).
    pub earliest_event_unix_secs: i64,
    pub max_future_secs: u64,
    pub default_attribution_window_secs: u64,
    pub max_batch: usize,
    pub max_links: usize,
    pub subscribe_page: u32,
    pub subscribe_buffer: usize,
    pub poll_interval_ms: u64,
    pub max_stream_rejections: usize,
    /// Where the ledger lives: empty for the database's own table, or
    /// `nats://host:port[?replicas=N&stream=NAME]` for NATS JetStream.
    pub ledger: String,
    /// Events that occurred more than this many days ago are removed (rewritten
    /// as tombstones, see docs/privacy.md) and refused at ingest; 0 (the default)
    /// keeps them until erased. Must be above `scoring.model.window_days`.
    pub retention_days: f64,
    /// How often the retention job runs, in seconds (the first run at start).
    pub retention_every_secs: u64,
}

/// [`lift_scoring::ScoringConfig`] in configuration units, with the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringSection {
    pub rescore_debounce_ms: u64,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub max_rr_sets: usize,
    pub checkpoint_every_events: u64,
    pub checkpoints_kept: u64,
    /// This replica's name in the writer lease, for replicas sharing one
    /// database; empty: the only scoring instance on its database.
    pub writer_lease_holder: String,
    /// How long the writer lease lasts unrenewed (a dead writer's successor
    /// takes over within this).
    pub writer_lease_ttl_ms: u64,
    /// Points (0–100) a value or percentile must move before the score
    /// history records it again (0: every change).
    pub history_resolution: f64,
    /// Recompute only what changed each run (false: everything, every run).
    pub incremental_runs: bool,
    /// With incremental runs: L1 bound on the served PageRank vector's error
    /// past which a run ranks the network graph in full instead of locally
    /// (0: always in full).
    pub pagerank_drift_tolerance: f64,
    pub model: lift_scoring::engine::ModelParams,
}

/// [`lift_matching::MatchingConfig`] in configuration units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchingSection {
    pub link_base: String,
    pub default_page_size: u32,
    pub max_page_size: u32,
    pub query_page_size: u32,
    pub max_candidates: usize,
    pub lift_confidence: f64,
    pub scan_attempts: u32,
    pub score_cache: bool,
    pub score_cache_patience_ms: u64,
    /// How long a report waits for the report consumer to reach the ledger head.
    pub report_patience_ms: u64,
    /// How often the standing consumer asks scoring for a new run (while a standing program is open).
    pub standing_poll_ms: u64,
}

/// The link collector (`serve links`, part of `serve all`): its address and spool. Its
/// tracking links are `matching.link_base`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectSection {
    /// `host:port` of the redirector, beacon and order webhooks.
    pub addr: String,
    /// Where links of campaigns without a landing URL go; empty = such links answer 404.
    pub default_landing_url: String,
    /// The spool file: events wait here until ingestion has them.
    pub spool: String,
    /// Undelivered events the spool keeps at most; beyond, new ones are refused and counted.
    pub spool_capacity: usize,
    /// Mark the visitor cookie `Secure` (when the collector is reached over https).
    pub cookie_secure: bool,
    /// Seconds on the landing page after which a session is engaged.
    pub engaged_dwell_secs: u64,
    /// Quiet seconds after which an undecided landing session is a bounce.
    pub session_idle_secs: u64,
}

impl Default for CollectSection {
    fn default() -> Self {
        let d = lift_collect::CollectConfig::default();
        Self {
            addr: "127.0.0.1:8081".into(),
            default_landing_url: d.default_landing_url.unwrap_or_default(),
            spool: d.spool_path.display().to_string(),
            spool_capacity: d.spool_capacity,
            cookie_secure: d.cookie_secure,
            engaged_dwell_secs: d.engaged_dwell.as_secs(),
            session_idle_secs: d.session_idle.as_secs(),
        }
    }
}

impl CollectSection {
    /// The collector's configuration, for links under `link_base`.
    pub fn to_config(&self, link_base: &str) -> lift_collect::CollectConfig {
        lift_collect::CollectConfig {
            link_base: link_base.to_owned(),
            default_landing_url: (!self.default_landing_url.is_empty()).then(|| self.default_landing_url.clone()),
            spool_path: PathBuf::from(&self.spool),
            spool_capacity: self.spool_capacity.max(1),
            cookie_secure: self.cookie_secure,
            engaged_dwell: Duration::from_secs(self.engaged_dwell_secs.max(1)),
            session_idle: Duration::from_secs(self.session_idle_secs.max(1)),
            ..Default::default()
        }
    }
}

impl Default for LiftConfig {
    fn default() -> Self {
        Self {
            server: ServerSection::default(),
            database: DatabaseSection { url: "sqlite://lift.db?mode=rwc".into(), auth_url: String::new() },
            credentials: CredentialsSection::default(),
            tls: TlsSection::default(),
            ingest: IngestSection::from(&lift_ingest::IngestConfig::default()),
            scoring: ScoringSection::from(&lift_scoring::ScoringConfig {
                debounce: Duration::from_millis(500),
                ..Default::default()
            }),
            matching: MatchingSection::from(&lift_matching::MatchingConfig::default()),
            collect: CollectSection::default(),
            web: WebSection::default(),
        }
    }
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            ingest_addr: "127.0.0.1:50051".into(),
            scoring_addr: "127.0.0.1:50052".into(),
            matching_addr: "127.0.0.1:50053".into(),
            ingest_url: "http://127.0.0.1:50051".into(),
            scoring_url: "http://127.0.0.1:50052".into(),
            metrics_addr: String::new(),
            auth: "on".into(),
            rate_limit: 1000.0,
            rate_burst: 2000.0,
            request_timeout_secs: 120,
            db_acquire_timeout_secs: 5,
        }
    }
}

impl Default for DatabaseSection {
    fn default() -> Self {
        LiftConfig::default().database
    }
}
impl Default for IngestSection {
    fn default() -> Self {
        Self::from(&lift_ingest::IngestConfig::default())
    }
}
impl Default for ScoringSection {
    fn default() -> Self {
        LiftConfig::default().scoring
    }
}
impl Default for MatchingSection {
    fn default() -> Self {
        Self::from(&lift_matching::MatchingConfig::default())
    }
}

/// 1990-01-01T00:00:00Z, the domain's earliest accepted event time.
const EARLIEST_DEFAULT: i64 = 631_152_000;

impl From<&lift_ingest::IngestConfig> for IngestSection {
    fn from(c: &lift_ingest::IngestConfig) -> Self {
        Self {
            earliest_event_unix_secs: c.min_time.map_or(EARLIEST_DEFAULT, |t| t / 1_000_000),
            max_future_secs: c.max_future.as_secs(),
            default_attribution_window_secs: c.default_attribution_window.as_secs(),
            max_batch: c.max_batch,
            max_links: c.max_links,
            subscribe_page: c.subscribe_page,
            subscribe_buffer: c.subscribe_buffer,
            poll_interval_ms: millis(c.poll_interval),
            max_stream_rejections: c.max_stream_rejections,
            ledger: c.ledger.clone(),
            retention_days: c.retention.map_or(0.0, |r| r.horizon.as_secs_f64() / 86_400.0),
            retention_every_secs: c.retention.map_or(3_600, |r| r.every.as_secs()),
        }
    }
}

impl From<&lift_scoring::ScoringConfig> for ScoringSection {
    fn from(c: &lift_scoring::ScoringConfig) -> Self {
        Self {
            rescore_debounce_ms: millis(c.debounce),
            initial_backoff_ms: millis(c.initial_backoff),
            max_backoff_ms: millis(c.max_backoff),
            max_rr_sets: c.max_rr_sets,
            checkpoint_every_events: c.checkpoint_every_events,
            checkpoints_kept: c.checkpoints_kept,
            writer_lease_holder: c.writer_lease.as_ref().map(|l| l.holder.clone()).unwrap_or_default(),
            writer_lease_ttl_ms: c.writer_lease.as_ref().map_or(10_000, |l| millis(l.ttl)),
            history_resolution: c.history_resolution,
            incremental_runs: c.incremental_runs,
            pagerank_drift_tolerance: c.pagerank_drift_tolerance,
            model: c.model.clone(),
        }
    }
}

impl From<&lift_matching::MatchingConfig> for MatchingSection {
    fn from(c: &lift_matching::MatchingConfig) -> Self {
        Self {
            link_base: c.link_base.clone(),
            default_page_size: c.default_page_size,
            max_page_size: c.max_page_size,
            query_page_size: c.query_page_size,
            max_candidates: c.max_candidates,
            lift_confidence: c.lift_confidence,
            scan_attempts: c.scan_attempts,
            score_cache: c.score_cache,
            score_cache_patience_ms: millis(c.score_cache_patience),
            report_patience_ms: millis(c.report_patience),
            standing_poll_ms: millis(c.standing_poll),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl IngestSection {
    pub fn to_config(&self) -> lift_ingest::IngestConfig {
        lift_ingest::IngestConfig {
            min_time: Some(self.earliest_event_unix_secs.saturating_mul(1_000_000)),
            max_future: Duration::from_secs(self.max_future_secs),
            default_attribution_window: Duration::from_secs(self.default_attribution_window_secs),
            max_batch: self.max_batch.max(1),
            max_links: self.max_links.max(1),
            subscribe_page: self.subscribe_page.max(1),
            subscribe_buffer: self.subscribe_buffer.max(1),
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(1)),
            max_stream_rejections: self.max_stream_rejections,
            ledger: self.ledger.clone(),
            retention: self.retention(),
        }
    }

    /// The retention horizon, if on (`retention_days` above 0).
    pub fn retention(&self) -> Option<lift_ingest::Retention> {
        (self.retention_days.is_finite() && self.retention_days > 0.0).then(|| lift_ingest::Retention {
            horizon: Duration::try_from_secs_f64(self.retention_days * 86_400.0).unwrap_or(Duration::MAX),
            every: Duration::from_secs(self.retention_every_secs),
        })
    }
}

impl LiftConfig {
    /// Refuses a retention horizon that is not longer than the scoring model's
    /// window (retention would remove events the scores still use), or a zero
    /// interval. Checked before ingestion starts.
    pub fn check_retention(&self) -> anyhow::Result<()> {
        let days = self.ingest.retention_days;
        if !days.is_finite() || days < 0.0 {
            anyhow::bail!("ingest.retention_days = {days}: must be 0 (off) or a number of days");
        }
        let Some(r) = self.ingest.retention() else { return Ok(()) };
        let window = Duration::try_from_secs_f64(self.scoring.model.window_days * 86_400.0).unwrap_or(Duration::MAX);
        r.check_window(window).map_err(|e| {
            anyhow::anyhow!(
                "ingest.retention_days = {days}: {e}; set it above scoring.model.window_days = {}, or to 0 (off)",
                self.scoring.model.window_days
            )
        })
    }
}

impl ScoringSection {
    pub fn to_config(&self) -> lift_scoring::ScoringConfig {
        lift_scoring::ScoringConfig {
            model: self.model.clone(),
            debounce: Duration::from_millis(self.rescore_debounce_ms),
            initial_backoff: Duration::from_millis(self.initial_backoff_ms.max(1)),
            max_backoff: Duration::from_millis(self.max_backoff_ms.max(1)),
            max_rr_sets: self.max_rr_sets.max(1),
            checkpoint_every_events: self.checkpoint_every_events,
            checkpoints_kept: self.checkpoints_kept.max(1),
            writer_lease: (!self.writer_lease_holder.trim().is_empty()).then(|| lift_scoring::WriterLease {
                holder: self.writer_lease_holder.trim().to_owned(),
                ttl: Duration::from_millis(self.writer_lease_ttl_ms),
            }),
            history_resolution: self.history_resolution,
            incremental_runs: self.incremental_runs,
            pagerank_drift_tolerance: if self.pagerank_drift_tolerance.is_finite() {
                self.pagerank_drift_tolerance.max(0.0)
            } else {
                0.0
            },
        }
    }
}

impl MatchingSection {
    pub fn to_config(&self) -> lift_matching::MatchingConfig {
        lift_matching::MatchingConfig {
            link_base: self.link_base.clone(),
            default_page_size: self.default_page_size.max(1),
            max_page_size: self.max_page_size.max(1),
            query_page_size: self.query_page_size.max(1),
            max_candidates: self.max_candidates.max(1),
            lift_confidence: self.lift_confidence,
            scan_attempts: self.scan_attempts.max(1),
            score_cache: self.score_cache,
            score_cache_patience: Duration::from_millis(self.score_cache_patience_ms),
            report_patience: Duration::from_millis(self.report_patience_ms),
            standing_poll: Duration::from_millis(self.standing_poll_ms.max(10)),
        }
    }
}
