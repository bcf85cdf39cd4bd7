//! The matching service's logic, one module per use case; each public method
//! of [`Matching`] is one RPC for one brand, with I/O (store, scoring,
//! ingestion) around the pure rules in `lift_domain::campaign`.
//!
//! - `campaigns`: create, read and list campaigns ([`campaigns::StoredCampaign`]
//!   is a row with its JSON parts decoded).
//! - `ranking`: every scored account judged against a campaign under one
//!   scoring run ([`ranking::CampaignRanking`]), from a [`ranking::ScoreSource`]
//!   that hides whether scores were scanned from scoring or read from the
//!   in-memory copy of its latest run (`crate::snapshot::RunScores`).
//! - `eligibility`: `MatchCampaign`, and the eligible set recorded per model
//!   version with its churn; `thresholds` moves absolute thresholds across a
//!   model change.
//! - `portfolio`, `offers`, `report`: `SelectPortfolio`, `CreateOffers`,
//!   `GetCampaignReport`.
//! - `lifecycle`: `TransitionOffer`, `ListOffers`, `WatchOffers` — issued
//!   offers' states, each step an `OfferTransition` event on the ledger.
//! - `rates`: `SetRateCard`, `GetRateCard` — the brand's per-creator prices,
//!   which `portfolio` prices creators with.
//! - `standing`: `StartStandingProgram`, `GetStandingProgram` and the
//!   evaluation of standing perk programs on every scoring run (driven by
//!   `crate::standing_feed`).
//! - `export`: `ExportAccount` (matching's privacy service) — every row naming
//!   an account, across brands.
//! - `tokens`: the page tokens of `MatchCampaign` and `ListCampaigns`.

mod campaigns;
mod eligibility;
mod export;
mod lifecycle;
mod offers;
mod portfolio;
mod ranking;
mod rates;
mod report;
mod standing;
mod thresholds;
mod tokens;

pub(crate) use report::{feed_ledger, read_ledger_to, report_builder, report_members};

use std::sync::Arc;

use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::auth::{Auth, Guard, KeyStore, Principal};
use lift_runtime::client::{Channel, RetryPolicy};
use lift_store::DatabaseConnection;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use self::lifecycle::WatchOffersStream;
use self::ranking::ScoreSource;
pub use self::standing::StandingRun;
use crate::auth::BrandId;
use crate::reports::{self, ReportFeed};
use crate::snapshot::ScoreCacheStats;
use crate::{Error, MatchingConfig};

/// The matching service. Cheap to clone: every clone shares one state.
#[derive(Debug, Clone)]
pub struct Matching {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    db: DatabaseConnection,
    scoring: ScoringServiceClient<Channel>,
    ingest: IngestServiceClient<Channel>,
    cfg: MatchingConfig,
    /// Resolves brands' keys (TTL-cached, so revocation takes effect) when the
    /// server runs without authentication; its own layer does otherwise.
    guard: Arc<Guard>,
    /// Calls to scoring and ingestion that are safe to repeat.
    retry: RetryPolicy,
    /// Where campaigns' accounts and scores come from.
    scores: ScoreSource,
    /// The report consumer keeping campaign reports up to date (`crate::reports`).
    reports: Arc<ReportFeed>,
    /// Asks the standing consumer (`crate::standing_feed`) to look now.
    standing_wake: Arc<tokio::sync::Notify>,
    /// Stops the standing consumer.
    standing_stop: lift_runtime::Shutdown,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reports.stop();
        self.standing_stop.trigger();
    }
}

impl Matching {
    /// Also spawns the report consumer (`crate::reports`) on the current tokio
    /// runtime; it stops when the last clone of this service is dropped.
    pub fn new(
        db: DatabaseConnection,
        scoring: ScoringServiceClient<Channel>,
        ingest: IngestServiceClient<Channel>,
        cfg: MatchingConfig,
    ) -> Self {
        let keys = KeyStore::new(db.clone(), lift_runtime::auth::DEFAULT_KEY_TTL);
        let guard = Arc::new(Guard::new(Auth::Keys(keys), None));
        let retry = RetryPolicy::default();
        let scores = ScoreSource::new(scoring.clone(), retry, &cfg);
        let reports = ReportFeed::new();
        let hooks = crate::erasure::Hooks { scoring: scoring.clone(), retry, cache: scores.cache() };
        reports::spawn(db.clone(), ingest.clone(), hooks, reports.clone());
        let (standing_wake, standing_stop) = (Arc::new(tokio::sync::Notify::new()), lift_runtime::Shutdown::new());
        let me = Self {
            inner: Arc::new(Inner {
                db,
                scoring,
                ingest,
                cfg,
                guard,
                retry,
                scores,
                reports,
                standing_wake,
                standing_stop,
            }),
        };
        crate::standing_feed::spawn(&me);
        me
    }

    /// A handle the standing consumer holds without keeping the service alive.
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<Self> {
        weak.upgrade().map(|inner| Self { inner })
    }

    pub(crate) fn standing_signals(&self) -> (Arc<tokio::sync::Notify>, lift_runtime::Shutdown) {
        (self.inner.standing_wake.clone(), self.inner.standing_stop.clone())
    }

    /// What the score cache holds and how often it loaded (all zero when
    /// matching scans scoring instead).
    pub fn score_cache_stats(&self) -> ScoreCacheStats {
        self.inner.scores.cache_stats()
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub fn config(&self) -> &MatchingConfig {
        &self.inner.cfg
    }

    pub(crate) fn guard(&self) -> Arc<Guard> {
        self.inner.guard.clone()
    }

    /// The brand the caller acts for, from the principal the authentication layer
    /// put into the request (`campaigns:write` keys are always bound to a brand).
    pub(crate) fn brand(ext: &tonic::Extensions) -> Result<BrandId, Error> {
        let principal = ext.get::<Principal>().ok_or(Error::Unauthenticated("missing x-api-key metadata"))?;
        principal.brand_id.clone().map(BrandId).ok_or(Error::Unauthenticated("this API key does not act for a brand"))
    }

    fn page_size(&self, asked: u32) -> u32 {
        let cfg = &self.inner.cfg;
        if asked == 0 { cfg.default_page_size } else { asked.min(cfg.max_page_size) }.max(1)
    }
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize().into()
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Serialising plain structs of strings and numbers cannot fail; an empty
    // object would only ever be written if serde_json changed that.
    serde_json::to_string(v).unwrap_or_else(|_| "{}".to_owned())
}
