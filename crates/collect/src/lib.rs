//! lift-collect: where outcomes come from. An HTTP service (axum) with
//!
//! - the **link redirector**: `GET /{code}` answers a 302 to the link's landing page (with UTM
//!   parameters) and records a click: a pseudonymous visitor id from a first-party cookie, the
//!   link, the time and a coarse user-agent class; bots, previews, prefetches, `HEAD` and
//!   bursts are recorded but not counted ([`agent`]); unknown codes get a plain 404 page;
//! - the **beacon**: `GET /lift.js` for landing pages, posting to `POST /b`; engaged and
//!   bounced sessions become `PageSession` events ([`sessions`]);
//! - **order webhooks**: `POST /webhooks/{brand_id}/orders` (generic JSON) and
//!   `POST /webhooks/{brand_id}/shopify/orders-create`, HMAC-checked with the brand's secret
//!   ([`webhook`]); orders become conversions.
//!
//! Every event goes through a bounded file-backed [`spool`] before the answer, and [`deliver`]
//! takes it to ingestion at least once (idempotent event ids make that exactly once on the
//! ledger), so nothing is lost while ingestion is down. IP addresses are never stored.
//! See docs/collect.md.

pub mod agent;
pub mod client;
pub mod deliver;
mod http;
mod journal;
mod location;
pub mod resolve;
pub mod sessions;
pub mod spool;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

pub use http::{router, serve};
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_runtime::Shutdown;
use lift_runtime::client::Channel;
use lift_store::DatabaseConnection;

/// What an operator can tune about the collector.
#[derive(Debug, Clone)]
pub struct CollectConfig {
    /// Host (and path prefix) of tracking links as matching issues them (`lift.to`): the
    /// code in `GET /{code}` is looked up as `<link_base>/<code>`.
    pub link_base: String,
    /// Where links whose campaign set no landing URL go; `None` = such links answer
    /// 404 "no destination" (and record nothing).
    pub default_landing_url: Option<String>,
    /// The `source` of every event this collector records.
    pub source: String,
    /// The spool file (see [`spool`]).
    pub spool_path: PathBuf,
    /// Undelivered events kept at most.
    pub spool_capacity: usize,
    pub delivery: deliver::DeliveryConfig,
    /// Name and lifetime of the first-party visitor cookie.
    pub cookie_name: String,
    pub cookie_max_age: Duration,
    /// Mark the cookie `Secure` (set when the collector is served over https).
    pub cookie_secure: bool,
    /// Clicks per visitor (or, without a cookie, per address, in memory only) per window
    /// beyond which further clicks are a burst.
    pub burst_limit: u32,
    pub burst_window: Duration,
    /// How long resolved links are cached (and used past that while ingestion is down).
    pub link_ttl: Duration,
    pub unknown_link_ttl: Duration,
    /// Time on page after which a landing session counts as engaged.
    pub engaged_dwell: Duration,
    /// Quiet time after which an undecided session is a bounce.
    pub session_idle: Duration,
    /// Open sessions kept at most.
    pub max_open_sessions: usize,
    /// How long a brand's webhook secret is cached (rotation takes effect within it).
    pub secret_ttl: Duration,
    /// Added to the wall clock when stamping events, in seconds: 0 in service. A simulation
    /// replaying a past timeline through the collector (`lift demo`) sets it so the events
    /// land in that timeline rather than today.
    pub clock_shift_secs: i64,
}

impl Default for CollectConfig {
    fn default() -> Self {
        Self {
            link_base: "lift.to".to_owned(),
            default_landing_url: None,
            source: "lift-collect".to_owned(),
            spool_path: PathBuf::from("lift-collect.spool"),
            spool_capacity: 1_000_000,
            delivery: deliver::DeliveryConfig::default(),
            cookie_name: "lift_vid".to_owned(),
            cookie_max_age: Duration::from_secs(180 * 86_400),
            cookie_secure: false,
            burst_limit: 5,
            burst_window: Duration::from_secs(10),
            link_ttl: Duration::from_secs(60),
            unknown_link_ttl: Duration::from_secs(5),
            engaged_dwell: Duration::from_secs(10),
            session_idle: Duration::from_secs(30 * 60),
            max_open_sessions: 1_000_000,
            secret_ttl: Duration::from_secs(30),
            clock_shift_secs: 0,
        }
    }
}

/// Errors starting the collector.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("spool {path}: {source}")]
    Spool { path: PathBuf, source: std::io::Error },
    #[error("default landing URL {url:?} {problem}")]
    Landing { url: String, problem: String },
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
}

/// A running collector's shared state (cheap to clone).
#[derive(Debug, Clone)]
pub struct Collector {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cfg: CollectConfig,
    pub(crate) spool: Arc<spool::Spool>,
    pub(crate) resolver: resolve::Resolver,
    pub(crate) bursts: agent::BurstGuard,
    pub(crate) sessions: sessions::Sessions,
    pub(crate) secrets: http::SecretCache,
    pub(crate) script: String,
    /// `cfg.clock_shift_secs`, changeable while running ([`Collector::set_clock_shift`]).
    pub(crate) clock_shift: AtomicI64,
}

impl Collector {
    /// Opens the spool and starts delivery (to ingestion on `channel`) and the session sweeper, both
    /// stopping with `shutdown`. `db` holds the brands' webhook secrets.
    pub fn start(
        cfg: CollectConfig,
        channel: Channel,
        db: DatabaseConnection,
        shutdown: &Shutdown,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), Error> {
        let ingest = IngestServiceClient::new(channel.clone());
        if let Some(url) = &cfg.default_landing_url
            && let Some(problem) = lift_domain::campaign::landing_url_problem(url)
        {
            return Err(Error::Landing { url: url.clone(), problem });
        }
        let spool = spool::Spool::open(&cfg.spool_path, cfg.spool_capacity)
            .map_err(|source| Error::Spool { path: cfg.spool_path.clone(), source })?;
        let spool = Arc::new(spool);
        let journal = journal::Journal::path_for(&cfg.spool_path);
        let sessions = sessions::Sessions::open(&journal, cfg.engaged_dwell, cfg.session_idle, cfg.max_open_sessions)
            .map_err(|source| Error::Spool { path: journal.clone(), source })?;
        let script = sessions::SCRIPT.replace("__ENGAGED_MS__", &cfg.engaged_dwell.as_millis().to_string());
        let inner = Arc::new(Inner {
            resolver: resolve::Resolver::new(ingest, cfg.link_ttl, cfg.unknown_link_ttl),
            bursts: agent::BurstGuard::new(cfg.burst_limit, cfg.burst_window),
            sessions,
            secrets: http::SecretCache::new(db, cfg.secret_ttl),
            spool: spool.clone(),
            script,
            clock_shift: AtomicI64::new(cfg.clock_shift_secs),
            cfg,
        });
        let delivery = tokio::spawn(deliver::run(spool, channel, inner.cfg.delivery.clone(), shutdown.clone()));
        let sweeper = {
            let (inner, shutdown) = (inner.clone(), shutdown.clone());
            async move {
                let period = (inner.cfg.session_idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(period) => {}
                        () = shutdown.wait() => break,
                    }
                    inner.sessions.sweep(std::time::Instant::now(), |s| {
                        http::spool_event(&inner, &s.to_event(&inner.cfg.source, inner.now_ts()));
                    });
                }
            }
        };
        let handle = tokio::spawn(async move {
            tokio::spawn(sweeper);
            let _ = delivery.await;
        });
        Ok((Self { inner }, handle))
    }

    /// Undelivered events in the spool.
    pub fn pending(&self) -> usize {
        self.inner.spool.len()
    }

    /// Events refused since start because the spool was full.
    pub fn dropped(&self) -> u64 {
        self.inner.spool.dropped()
    }

    /// Sets [`CollectConfig::clock_shift_secs`] for events recorded from now on.
    pub fn set_clock_shift(&self, secs: i64) {
        self.inner.clock_shift.store(secs, Ordering::Relaxed);
    }
}

impl Inner {
    /// The time events are stamped with (the wall clock, shifted by `clock_shift_secs`).
    pub(crate) fn now_ts(&self) -> lift_proto::Timestamp {
        let shift = self.clock_shift.load(Ordering::Relaxed).saturating_mul(1_000_000);
        lift_proto::convert::to_timestamp(lift_domain::time::now().saturating_add(shift))
    }
}

/// `s` is `min..=max` ASCII letters, digits, `-` or `_`.
pub(crate) fn is_token(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new id: the wall clock in microseconds (14 hex digits) and then `random_bytes`
/// random bytes in hex. Ids made later sort later, so the ledger's unique index on
/// event ids and the click index on visitor ids take new entries at their right-hand
/// edge — a few pages per delivered batch rather than one page per event scattered
/// over the whole index (measured: random ids made SQLite's writes and page reads
/// about a quarter of the collector's process time at full load). The random part
/// alone keeps ids unguessable and unique.
pub(crate) fn ordered_id(random_bytes: usize) -> String {
    let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
    let micros = u64::try_from(micros).unwrap_or(u64::MAX) & 0xff_ffff_ffff_ffff;
    let mut b = [0u8; 32];
    let b = &mut b[..random_bytes.min(32)];
    rand::fill(b);
    let mut id = String::with_capacity(14 + 2 * b.len());
    id.push_str(&hex::encode(&micros.to_be_bytes()[1..]));
    id.push_str(&hex::encode(b));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins what the indexes rely on: later ids sort after earlier ones, every id is new,
    /// and ids pass the collector's own token check (a visitor id comes back as a cookie).
    #[test]
    fn ordered_ids_sort_by_creation_and_do_not_repeat() {
        let ids: Vec<String> = (0..2_000)
            .map(|i| {
                if i % 500 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                ordered_id(12)
            })
            .collect();
        for w in ids.windows(2) {
            assert!(w[0][..14] <= w[1][..14], "{} then {}", w[0], w[1]);
        }
        assert!(ids[0][..14] < ids[1_999][..14], "the clock moved between the first and last id");
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        assert!(ids.iter().all(|id| id.len() == 38 && is_token(id, 16, 64)));
        assert_eq!(ordered_id(8).len(), 30);
    }
}
