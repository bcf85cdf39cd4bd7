//! The matching service's logic: each public method is one RPC for one brand,
//! with I/O (store, scoring, ingestion) around the pure rules in
//! `lift_domain::campaign`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use lift_domain::campaign::{
    self as rules, CampaignSpec, Criterion, Evaluation, Expected, IssuedOffer, Objective, ReportBuilder, ScoreCard,
    Threshold,
};
use lift_domain::{AccountId, LedgerEntry, time};
use lift_proto::ingest::v1 as ipb;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::matching::v1 as pb;
use lift_proto::scoring::v1 as spb;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::auth::{KeyStore, Principal};
use lift_runtime::client::{Channel, RetryPolicy, retry_idempotent};
use lift_store::DatabaseConnection;
use lift_store::campaigns::{self as repo, CampaignState};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::{BrandId, KeyHash};
use crate::snapshot::{self, ScoreCache, ScoreCacheStats, ScoreSnapshot};
use crate::{Error, MatchingConfig};

/// The matching service. Cheap to clone: every clone shares one state.
#[derive(Debug, Clone)]
pub struct Matching {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: DatabaseConnection,
    scoring: ScoringServiceClient<Channel>,
    ingest: IngestServiceClient<Channel>,
    cfg: MatchingConfig,
    /// Key lookups when the server runs without the authentication layer (its
    /// principal is used otherwise); TTL-cached, so revocation takes effect.
    keys: KeyStore,
    /// Calls to scoring and ingestion that are safe to repeat.
    retry: RetryPolicy,
    /// Every scored account of scoring's latest run (when `cfg.score_cache`).
    scores: Arc<ScoreCache>,
}

/// A scored account judged against a campaign.
#[derive(Debug, Clone)]
struct Judged {
    card: ScoreCard,
    eval: Evaluation,
    key: (f64, f64),
    expected: Expected,
    /// How far a near miss is from eligibility.
    miss: f64,
}

impl Judged {
    fn to_proto(&self, rank: usize) -> pb::Candidate {
        pb::Candidate {
            account: Some(self.card.account.to_proto()),
            handle: self.card.handle.clone(),
            rank: u32::try_from(rank).unwrap_or(u32::MAX),
            eligible: self.eval.eligible(),
            criteria: self.eval.results.iter().map(rules::CriterionResult::to_proto).collect(),
            expected: Some(self.expected.to_proto()),
            objective_score: self.key.0,
            topics_matched: self.eval.topics_matched.clone(),
        }
    }
}

/// Accounts in rank order: judged while scanning scoring's answer, or rows of
/// the score cache, judged again when a response needs them.
#[derive(Debug)]
enum Ranked {
    Scanned(Vec<Judged>),
    Cached { scores: Arc<ScoreSnapshot>, rows: Vec<u32> },
}

/// What an evaluation is for: how fresh its scores must be and whether it
/// records the eligible set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Listing candidates: may answer from the previous run's scores, marked stale.
    Browse,
    /// Choosing a portfolio: waits for the current run.
    Choose,
    /// Issuing offers: waits for the current run and records its eligible set.
    Offer,
}

/// Every eligible account (ranked) and near miss (closest first) under one scoring run.
#[derive(Debug)]
struct Snapshot {
    eligible: Ranked,
    near: Ranked,
    model_version: String,
    as_of: u64,
    /// The criteria the accounts were judged by (thresholds translated, if they were).
    spec: CampaignSpec,
    relax: f64,
    /// Judged over an older run's scores while a newer one loads.
    stale: bool,
}

impl Snapshot {
    fn len(list: &Ranked) -> usize {
        match list {
            Ranked::Scanned(v) => v.len(),
            Ranked::Cached { rows, .. } => rows.len(),
        }
    }

    /// The `i`-th account of `list`, judged.
    fn judged(&self, list: &Ranked, i: usize) -> Option<Judged> {
        match list {
            Ranked::Scanned(v) => v.get(i).cloned(),
            Ranked::Cached { scores, rows } => {
                let row = *rows.get(i)? as usize;
                let card = scores.card(row, &self.spec.criteria);
                let eval = rules::evaluate(&self.spec, &self.spec.rules(), &card);
                let miss = if eval.eligible() { 0.0 } else { eval.near_miss(self.relax).unwrap_or(f64::INFINITY) };
                Some(Judged {
                    key: rules::objective_score(self.spec.objective, &card),
                    expected: rules::expected_outcome(self.spec.objective, &card),
                    card,
                    eval,
                    miss,
                })
            }
        }
    }

    /// Position of the first eligible account ranked after (key, account).
    fn eligible_after(&self, key: (f64, f64), account: &AccountId) -> usize {
        match &self.eligible {
            Ranked::Scanned(v) => {
                v.partition_point(|j| rules::rank_order(&(j.key, &j.card.account), &(key, account)).is_le())
            }
            Ranked::Cached { scores, rows } => {
                rows.partition_point(|&r| scores.rank_cmp(self.spec.objective, r as usize, key, account).is_le())
            }
        }
    }

    /// The ranking key and account of the `i`-th eligible account.
    fn eligible_key(&self, i: usize) -> Option<((f64, f64), AccountId)> {
        match &self.eligible {
            Ranked::Scanned(v) => v.get(i).map(|j| (j.key, j.card.account.clone())),
            Ranked::Cached { scores, rows } => {
                let r = *rows.get(i)? as usize;
                Some((scores.key(self.spec.objective, r), scores.account(r)))
            }
        }
    }

    /// Every eligible account, sorted by id.
    fn eligible_set(&self) -> BTreeSet<AccountId> {
        match &self.eligible {
            Ranked::Scanned(v) => v.iter().map(|j| j.card.account.clone()).collect(),
            Ranked::Cached { scores, rows } => rows.iter().map(|&r| scores.account(r as usize)).collect(),
        }
    }

    /// Every eligible account, judged, in rank order.
    fn into_eligible(self) -> Vec<Judged> {
        match self.eligible {
            Ranked::Scanned(v) => v,
            Ranked::Cached { .. } => {
                (0..Self::len(&self.eligible)).filter_map(|i| self.judged(&self.eligible, i)).collect()
            }
        }
    }
}

/// What `SelectPortfolio` recorded, read back by `CreateOffers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPortfolio {
    members: Vec<StoredMember>,
    /// `None` when unknown (JSON has no NaN).
    estimated_spread: Option<f64>,
    total_cost: i64,
    guarantee: String,
    audience_overlap: Option<f64>,
    expected: Expected,
    model_version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredMember {
    account: AccountId,
    handle: String,
    cost: i64,
    marginal_gain: Option<f64>,
}

/// One model change's effect on a campaign's eligible set.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChurnRecord {
    from_version: String,
    to_version: String,
    entered: u64,
    left: u64,
    stayed: u64,
    /// The campaign's absolute thresholds as evaluated under `to_version`.
    translated: Vec<Criterion>,
}

impl ChurnRecord {
    fn to_proto(&self) -> pb::EligibilityChurn {
        pb::EligibilityChurn {
            from_version: self.from_version.clone(),
            to_version: self.to_version.clone(),
            entered: self.entered,
            left: self.left,
            stayed: self.stayed,
            translated: self.translated.iter().map(Criterion::to_proto).collect(),
        }
    }
}

/// A stored campaign with its decoded JSON parts.
#[derive(Debug)]
struct Loaded {
    row: repo::Campaign,
    spec: CampaignSpec,
    churn: Vec<ChurnRecord>,
}

impl Loaded {
    fn decode(row: repo::Campaign) -> Result<Self, Error> {
        let corrupt =
            |what: &str, e: serde_json::Error| Error::Corrupt { id: row.id.clone(), reason: format!("{what}: {e}") };
        let spec = serde_json::from_str(&row.spec).map_err(|e| corrupt("spec", e))?;
        let churn = serde_json::from_str(&row.churn).map_err(|e| corrupt("churn", e))?;
        Ok(Self { row, spec, churn })
    }

    fn portfolio(&self) -> Result<Option<StoredPortfolio>, Error> {
        self.row
            .portfolio
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| Error::Corrupt { id: self.row.id.clone(), reason: format!("portfolio: {e}") })
    }

    /// The criteria in force: each absolute threshold as the latest model change
    /// that translated it left it. A change without a published mapping keeps
    /// the threshold as it was, so it must not fall back to the brand's number
    /// on the scale of a model two changes back.
    fn effective_spec(&self) -> CampaignSpec {
        let mut spec = self.spec.clone();
        for c in &mut spec.criteria {
            let latest = self
                .churn
                .iter()
                .rev()
                .find_map(|r| r.translated.iter().find(|t| t.dimension == c.dimension && t.topic == c.topic));
            if let Some(t) = latest {
                c.threshold = t.threshold;
            }
        }
        spec
    }

    fn to_proto(&self) -> pb::Campaign {
        pb::Campaign {
            id: self.row.id.clone(),
            spec: Some(self.spec.to_proto()),
            state: match self.row.state {
                CampaignState::Draft => pb::CampaignState::Draft,
                CampaignState::Offered => pb::CampaignState::Offered,
            } as i32,
            created_at: Some(time::to_timestamp(self.row.created_at)),
            model_version: self.row.model_version.clone(),
            churn: self.churn.iter().map(ChurnRecord::to_proto).collect(),
        }
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

impl Matching {
    pub fn new(
        db: DatabaseConnection,
        scoring: ScoringServiceClient<Channel>,
        ingest: IngestServiceClient<Channel>,
        cfg: MatchingConfig,
    ) -> Self {
        let keys = KeyStore::new(db.clone(), lift_runtime::auth::DEFAULT_KEY_TTL);
        Self {
            inner: Arc::new(Inner {
                db,
                scoring,
                ingest,
                cfg,
                keys,
                retry: RetryPolicy::default(),
                scores: Arc::new(ScoreCache::default()),
            }),
        }
    }

    /// What the score cache holds and how often it loaded.
    pub fn score_cache_stats(&self) -> ScoreCacheStats {
        self.inner.scores.stats()
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub fn config(&self) -> &MatchingConfig {
        &self.inner.cfg
    }

    /// The brand the caller acts for: from the authentication layer's principal, or
    /// (authentication disabled) from the key hash the interceptor put into the request.
    pub(crate) async fn authenticate(&self, ext: &tonic::Extensions) -> Result<BrandId, Error> {
        let principal = match ext.get::<Principal>() {
            Some(p) => p.clone(),
            None => {
                let KeyHash(hash) = ext.get::<KeyHash>().ok_or(Error::Unauthenticated("missing x-api-key metadata"))?;
                self.inner.keys.by_hash(hash).await.map_err(|e| match e {
                    lift_runtime::auth::KeyError::Unavailable => Error::KeysUnavailable,
                    _ => Error::Unauthenticated("unknown API key"),
                })?
            }
        };
        principal.brand_id.map(BrandId).ok_or(Error::Unauthenticated("this API key does not act for a brand"))
    }

    async fn load(&self, brand: &BrandId, id: &str) -> Result<Loaded, Error> {
        if id.is_empty() {
            return Err(Error::invalid("campaign_id", "is required"));
        }
        let row = repo::get_campaign(&self.inner.db, &brand.0, id)
            .await?
            .ok_or_else(|| Error::CampaignNotFound(id.into()))?;
        Loaded::decode(row)
    }

    pub async fn create_campaign(
        &self,
        brand: &BrandId,
        spec: Option<&pb::CampaignSpec>,
    ) -> Result<pb::Campaign, Error> {
        let spec = spec.ok_or_else(|| Error::invalid("spec", "is required"))?;
        let spec = CampaignSpec::from_proto(spec)
            .map_err(|v| Error::Invalid(v.into_iter().map(|v| v.prefixed("spec")).collect()))?;
        let row = repo::Campaign {
            id: format!("cmp_{}", random_hex(8)),
            brand_id: brand.0.clone(),
            name: spec.name.clone(),
            state: CampaignState::Draft,
            spec: to_json(&spec),
            created_at: time::now(),
            model_version: String::new(),
            portfolio: None,
            holdout_seed: None,
            offers_offset: None,
            churn: "[]".to_owned(),
        };
        repo::insert_campaign(&self.inner.db, &row).await?;
        tracing::info!(campaign = %row.id, brand = %brand, "campaign created");
        Ok(Loaded::decode(row)?.to_proto())
    }

    pub async fn get_campaign(&self, brand: &BrandId, id: &str) -> Result<pb::Campaign, Error> {
        Ok(self.load(brand, id).await?.to_proto())
    }

    pub async fn list_campaigns(
        &self,
        brand: &BrandId,
        req: &pb::ListCampaignsRequest,
    ) -> Result<pb::ListCampaignsResponse, Error> {
        let size = self.page_size(req.page_size);
        let after = if req.page_token.is_empty() { None } else { Some(decode_list_token(&req.page_token)?) };
        let rows = repo::list_campaigns(
            &self.inner.db,
            &brand.0,
            after.as_ref().map(|(at, id)| (*at, id.as_str())),
            u64::from(size) + 1,
        )
        .await?;
        let more = rows.len() > size as usize;
        let rows: Vec<_> = rows.into_iter().take(size as usize).collect();
        let next_page_token = match rows.last() {
            Some(last) if more => hex::encode(format!("{}.{}", last.created_at, last.id)),
            _ => String::new(),
        };
        let campaigns = rows.into_iter().map(|r| Loaded::decode(r).map(|l| l.to_proto())).collect::<Result<_, _>>()?;
        Ok(pb::ListCampaignsResponse { campaigns, next_page_token })
    }

    fn page_size(&self, asked: u32) -> u32 {
        let cfg = &self.inner.cfg;
        if asked == 0 { cfg.default_page_size } else { asked.min(cfg.max_page_size) }.max(1)
    }

    /// Judges every scored account against the campaign: over the score cache
    /// (loaded again when scoring has published a newer run), or, with the
    /// cache off, by scanning scoring's answer. `near_limit` bounds the near
    /// misses the cache path judges (the scan keeps every one).
    async fn rank(&self, spec: &CampaignSpec, relax: f64, near_limit: usize, fresh: bool) -> Result<Snapshot, Error> {
        if !self.inner.cfg.score_cache {
            return self.scan(spec, relax).await;
        }
        let (scores, stale) = self.scores(fresh).await?;
        let spec_owned = spec.clone();
        let judged = scores.clone();
        // A pass over every account: CPU work, kept off the async workers.
        let verdict =
            tokio::task::spawn_blocking(move || judged.judge(&spec_owned, relax, near_limit)).await.map_err(|e| {
                Error::scoring(tonic::Status::internal(format!("judging over the score cache failed: {e}")))
            })?;
        Ok(Snapshot {
            model_version: scores.model_version.clone(),
            as_of: scores.as_of,
            eligible: Ranked::Cached { scores: scores.clone(), rows: verdict.eligible },
            near: Ranked::Cached { scores, rows: verdict.near },
            spec: spec.clone(),
            relax,
            stale,
        })
    }

    /// The score cache at scoring's current run, or the previous run's copy
    /// (`true`: stale) when loading the current one outlasts the configured
    /// patience. `fresh` waits for the current run however long its load takes:
    /// portfolios and offers commit money and holdouts, so they never act on an
    /// older run than scoring serves.
    async fn scores(&self, fresh: bool) -> Result<(Arc<ScoreSnapshot>, bool), Error> {
        let inner = &self.inner;
        let run = snapshot::probe(&inner.scoring, &inner.retry).await?;
        let (scoring, retry) = (inner.scoring.clone(), inner.retry);
        let (chunk, attempts) = (inner.cfg.query_page_size, inner.cfg.scan_attempts);
        inner
            .scores
            .at_least(&run, (!fresh).then_some(inner.cfg.score_cache_patience), move |base| async move {
                snapshot::load(&scoring, &retry, chunk, attempts, base).await
            })
            .await
    }

    /// Judges every account scoring returns for the campaign's (relaxed)
    /// percentile filters, all under one scoring run: a scan that sees the run
    /// change restarts, so a page never mixes two models.
    async fn scan(&self, spec: &CampaignSpec, relax: f64) -> Result<Snapshot, Error> {
        let cfg = &self.inner.cfg;
        let criteria = spec.rules();
        let filters = spec.percentile_filters(relax);
        for attempt in 1..=cfg.scan_attempts.max(1) {
            let client = self.inner.scoring.clone();
            let (mut eligible, mut near) = (Vec::new(), Vec::new());
            let mut seen: HashSet<AccountId> = HashSet::new();
            let mut run: Option<(String, u64)> = None;
            let mut token = String::new();
            let consistent = loop {
                let req = spb::QueryAccountsRequest {
                    order_by: spec.objective.primary_dimension().to_proto() as i32,
                    topic: String::new(),
                    filters: filters.clone(),
                    page_size: cfg.query_page_size,
                    page_token: token.clone(),
                };
                let resp = retry_idempotent(&self.inner.retry, "QueryAccounts", || {
                    let (mut c, r) = (client.clone(), req.clone());
                    async move { c.query_accounts(r).await }
                })
                .await
                .map_err(Error::scoring)?
                .into_inner();
                let this = (resp.model_version.clone(), resp.as_of_offset);
                match &run {
                    None => run = Some(this),
                    Some(r) if *r != this => break false,
                    Some(_) => {}
                }
                for a in &resp.accounts {
                    let Some(card) = ScoreCard::from_proto(a) else { continue };
                    if !seen.insert(card.account.clone()) {
                        continue;
                    }
                    let eval = rules::evaluate(spec, &criteria, &card);
                    let eligible_now = eval.eligible();
                    let miss = if eligible_now { Some(0.0) } else { eval.near_miss(relax) };
                    let Some(miss) = miss else { continue };
                    let judged = Judged {
                        key: rules::objective_score(spec.objective, &card),
                        expected: rules::expected_outcome(spec.objective, &card),
                        card,
                        eval,
                        miss,
                    };
                    if eligible_now { eligible.push(judged) } else { near.push(judged) }
                }
                if eligible.len() + near.len() > cfg.max_candidates {
                    return Err(Error::FailedPrecondition(format!(
                        "more than {} accounts match this campaign's criteria; raise its thresholds",
                        cfg.max_candidates
                    )));
                }
                if resp.next_page_token.is_empty() {
                    break true;
                }
                if resp.next_page_token == token {
                    return Err(Error::scoring(tonic::Status::internal("QueryAccounts repeated its page token")));
                }
                token = resp.next_page_token;
            };
            if consistent {
                let (model_version, as_of) = run.unwrap_or_default();
                eligible.sort_by(|a, b| rules::rank_order(&(a.key, &a.card.account), &(b.key, &b.card.account)));
                near.sort_by(|a, b| {
                    a.miss
                        .total_cmp(&b.miss)
                        .then(rules::rank_order(&(a.key, &a.card.account), &(b.key, &b.card.account)))
                });
                return Ok(Snapshot {
                    eligible: Ranked::Scanned(eligible),
                    near: Ranked::Scanned(near),
                    model_version,
                    as_of,
                    spec: spec.clone(),
                    relax,
                    stale: false,
                });
            }
            tracing::debug!(attempt, "scoring published a new run during the scan; restarting");
        }
        Err(Error::scoring(tonic::Status::unavailable("scores changed during every scan attempt")))
    }

    /// Scans under the campaign's effective criteria and, when scoring's model
    /// version differs from the one last recorded, records the new eligible set
    /// with the churn (and translates absolute thresholds first, so they keep
    /// their meaning on the new scale).
    ///
    /// The recorded set is the baseline churn is measured against: taken at the
    /// first evaluation over a real scoring run, and again when offers go out
    /// (`Purpose::Offer`), the moment eligibility decides who is held out.
    async fn evaluate(
        &self,
        c: &mut Loaded,
        relax: f64,
        near_limit: usize,
        purpose: Purpose,
    ) -> Result<Snapshot, Error> {
        let (rebase, fresh) = (purpose == Purpose::Offer, purpose != Purpose::Browse);
        let mut spec = c.effective_spec();
        let mut snap = self.rank(&spec, relax, near_limit, fresh).await?;
        // Before scoring's first run there is nothing to record.
        if snap.as_of == 0 || snap.model_version.is_empty() {
            return Ok(snap);
        }
        if snap.model_version == c.row.model_version {
            if rebase {
                let list: Vec<AccountId> = snap.eligible_set().into_iter().collect();
                repo::replace_eligibility(&self.inner.db, &c.row.id, &snap.model_version, &list, &to_json(&c.churn))
                    .await?;
            }
            return Ok(snap);
        }
        let from = c.row.model_version.clone();
        let mut translated = Vec::new();
        if !from.is_empty() && spec.criteria.iter().any(|c| matches!(c.threshold, Threshold::MinValue(_))) {
            translated = self.translate(&spec.criteria, &from, &snap.model_version).await?;
            if !translated.is_empty() {
                for crit in &mut spec.criteria {
                    if let Some(t) = translated.iter().find(|t| t.dimension == crit.dimension && t.topic == crit.topic)
                    {
                        crit.threshold = t.threshold;
                    }
                }
                snap = self.rank(&spec, relax, near_limit, fresh).await?;
            }
        }
        let now: BTreeSet<AccountId> = snap.eligible_set();
        if !from.is_empty() {
            let before: BTreeSet<AccountId> = repo::eligibility(&self.inner.db, &c.row.id).await?.into_iter().collect();
            let (entered, left, stayed) = rules::churn(&before, &now);
            c.churn.push(ChurnRecord {
                from_version: from,
                to_version: snap.model_version.clone(),
                entered,
                left,
                stayed,
                translated,
            });
        }
        let list: Vec<AccountId> = now.into_iter().collect();
        repo::replace_eligibility(&self.inner.db, &c.row.id, &snap.model_version, &list, &to_json(&c.churn)).await?;
        c.row.model_version = snap.model_version.clone();
        Ok(snap)
    }

    /// The campaign's absolute thresholds moved through scoring's published old→new mapping.
    async fn translate(&self, criteria: &[Criterion], from: &str, to: &str) -> Result<Vec<Criterion>, Error> {
        let model = retry_idempotent(&self.inner.retry, "GetModel", || {
            let mut c = self.inner.scoring.clone();
            async move { c.get_model(spb::GetModelRequest {}).await }
        })
        .await
        .map_err(Error::scoring)?
        .into_inner();
        let mut out = Vec::new();
        for c in criteria {
            let Threshold::MinValue(v) = c.threshold else { continue };
            let mapping = model
                .recalibrations
                .iter()
                .find(|m| m.dimension == c.dimension.to_proto() as i32 && m.from_version == from && m.to_version == to);
            let Some(m) = mapping else {
                tracing::warn!(dimension = %c.dimension, from, to, "no published mapping; threshold kept as is");
                continue;
            };
            let pts = |q: &[spb::QuantilePoint]| q.iter().map(|p| (p.quantile, p.value)).collect::<Vec<_>>();
            if let Some(nv) = rules::translate_value(v, &pts(&m.old_quantiles), &pts(&m.new_quantiles)) {
                out.push(Criterion { threshold: Threshold::MinValue(nv.clamp(0.0, 100.0)), ..c.clone() });
            }
        }
        Ok(out)
    }

    pub async fn match_campaign(
        &self,
        brand: &BrandId,
        req: &pb::MatchCampaignRequest,
    ) -> Result<pb::MatchCampaignResponse, Error> {
        let relax = req.near_miss_margin;
        if !relax.is_finite() || !(0.0..=100.0).contains(&relax) {
            return Err(Error::invalid("near_miss_margin", format!("is {relax}; it must be between 0 and 100")));
        }
        let after = if req.page_token.is_empty() { None } else { Some(decode_match_token(&req.page_token)?) };
        let size = self.page_size(req.page_size) as usize;
        let mut c = self.load(brand, &req.campaign_id).await?;
        // Near misses belong to the campaign, not to a page: sent once, with the first page.
        let near_limit = if after.is_none() { size } else { 0 };
        let snap = self.evaluate(&mut c, relax, near_limit, Purpose::Browse).await?;
        let total = Snapshot::len(&snap.eligible);
        let start = match &after {
            None => 0,
            Some((key, account)) => snap.eligible_after(*key, account),
        };
        let page: Vec<pb::Candidate> = (start..total.min(start.saturating_add(size)))
            .filter_map(|i| snap.judged(&snap.eligible, i).map(|j| j.to_proto(i + 1)))
            .collect();
        let next_page_token = match snap.eligible_key(start + size - 1) {
            Some((key, account)) if start + size < total => encode_match_token(key, &account),
            _ => String::new(),
        };
        let near_misses = if after.is_none() {
            (0..Snapshot::len(&snap.near).min(size))
                .filter_map(|i| snap.judged(&snap.near, i).map(|j| j.to_proto(i + 1)))
                .collect()
        } else {
            Vec::new()
        };
        Ok(pb::MatchCampaignResponse {
            eligible: page,
            near_misses,
            next_page_token,
            total_eligible: total as u64,
            model_version: snap.model_version,
            as_of_offset: snap.as_of,
            stale: snap.stale,
        })
    }

    pub async fn select_portfolio(
        &self,
        brand: &BrandId,
        req: &pb::SelectPortfolioRequest,
    ) -> Result<pb::SelectPortfolioResponse, Error> {
        let eps = req.epsilon;
        if !eps.is_finite() || !(0.0..1.0).contains(&eps) {
            return Err(Error::invalid("epsilon", format!("is {eps}; it must be in [0, 1) (0 = scoring's default)")));
        }
        let mut c = self.load(brand, &req.campaign_id).await?;
        if c.row.state != CampaignState::Draft {
            return Err(Error::FailedPrecondition(format!(
                "campaign {} has issued its offers; its portfolio is fixed",
                c.row.id
            )));
        }
        let p = self.choose_portfolio(&mut c, eps).await?;
        if !repo::set_portfolio(&self.inner.db, &brand.0, &c.row.id, &to_json(&p)).await? {
            return Err(Error::FailedPrecondition(format!("campaign {} issued its offers meanwhile", c.row.id)));
        }
        Ok(portfolio_to_proto(&p))
    }

    async fn choose_portfolio(&self, c: &mut Loaded, eps: f64) -> Result<StoredPortfolio, Error> {
        let snap = self.evaluate(c, 0.0, 0, Purpose::Choose).await?;
        let model_version = snap.model_version.clone();
        let eligible = snap.into_eligible();
        if eligible.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "no account is eligible for campaign {} under model {}",
                c.row.id, model_version
            )));
        }
        let spec = &c.spec;
        let by_account: HashMap<&AccountId, &Judged> = eligible.iter().map(|j| (&j.card.account, j)).collect();
        // The sampler's seed comes from the campaign, so re-selecting reproduces the portfolio.
        let d = digest(&[&c.row.id, &model_version]);
        let random_seed = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        let req = spb::SelectSeedsRequest {
            candidates: eligible
                .iter()
                .map(|j| spb::SeedCandidate { account: Some(j.card.account.to_proto()), cost: spec.unit_cost })
                .collect(),
            budget: spec.budget,
            k: 0,
            epsilon: eps,
            random_seed,
        };
        // Seeded, so a repeat computes the same answer.
        let answer = retry_idempotent(&self.inner.retry, "SelectSeeds", || {
            let (mut c, r) = (self.inner.scoring.clone(), req.clone());
            async move { c.select_seeds(r).await }
        })
        .await;
        let resp = match answer {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == tonic::Code::Unimplemented => greedy_by_objective(&eligible, spec),
            Err(s) => return Err(Error::scoring(s)),
        };
        let mut members = Vec::with_capacity(resp.seeds.len());
        for s in &resp.seeds {
            let account = s.account.as_ref().map(|a| AccountId::new(a.network.clone(), a.id.clone()));
            let Some(j) = account.as_ref().and_then(|a| by_account.get(a)) else {
                return Err(Error::scoring(tonic::Status::internal(
                    "SelectSeeds returned an account it was not offered",
                )));
            };
            members.push(StoredMember {
                account: j.card.account.clone(),
                handle: j.card.handle.clone(),
                cost: spec.unit_cost,
                marginal_gain: s.marginal_gain.is_finite().then_some(s.marginal_gain),
            });
        }
        let total_cost: i64 = members.iter().map(|m| m.cost).sum();
        if total_cost > spec.budget {
            return Err(Error::scoring(tonic::Status::internal("SelectSeeds exceeded the budget")));
        }
        let expected = match spec.objective {
            Objective::Reach if resp.estimated_spread.is_finite() => {
                // IMM's estimate is within a (1 ± ε) factor of the true spread with high probability.
                let e = if eps > 0.0 { eps } else { 0.1 };
                Expected {
                    expected: resp.estimated_spread,
                    lower: resp.estimated_spread * (1.0 - e),
                    upper: resp.estimated_spread * (1.0 + e),
                    unit: "accounts reached (independent cascade)".to_owned(),
                }
            }
            Objective::Reach | Objective::Engagement | Objective::Conversions => {
                let unit = by_account.values().next().map(|j| j.expected.unit.clone()).unwrap_or_default();
                Expected::sum(members.iter().filter_map(|m| by_account.get(&m.account)).map(|j| &j.expected), &unit)
            }
        };
        Ok(StoredPortfolio {
            members,
            estimated_spread: resp.estimated_spread.is_finite().then_some(resp.estimated_spread),
            total_cost,
            guarantee: resp.guarantee,
            audience_overlap: resp.audience_overlap.is_finite().then_some(resp.audience_overlap),
            expected,
            model_version,
        })
    }

    pub async fn create_offers(
        &self,
        brand: &BrandId,
        req: &pb::CreateOffersRequest,
    ) -> Result<pb::CreateOffersResponse, Error> {
        let mut c = self.load(brand, &req.campaign_id).await?;
        if c.row.state != CampaignState::Draft {
            return Err(Error::AlreadyExists(format!("offers for campaign {} have already been issued", c.row.id)));
        }
        let portfolio = match c.portfolio()? {
            Some(p) => p,
            None => {
                let p = self.choose_portfolio(&mut c, 0.0).await?;
                repo::set_portfolio(&self.inner.db, &brand.0, &c.row.id, &to_json(&p)).await?;
                p
            }
        };
        let snap = self.evaluate(&mut c, 0.0, 0, Purpose::Offer).await?.into_eligible();
        let eligible: Vec<AccountId> = snap.iter().map(|j| j.card.account.clone()).collect();
        let members: BTreeSet<AccountId> = portfolio.members.iter().map(|m| m.account.clone()).collect();
        let seed = match req.holdout_seed {
            0 => loop {
                let s = rand::random::<u64>();
                if s != 0 {
                    break s;
                }
            },
            s => s,
        };
        let holdout = rules::draw_holdout(&eligible, &members, c.spec.holdout_share, seed);
        let handles: HashMap<&AccountId, &str> = snap
            .iter()
            .map(|j| (&j.card.account, j.card.handle.as_str()))
            .chain(portfolio.members.iter().map(|m| (&m.account, m.handle.as_str())))
            .collect();

        let mut rows = Vec::new();
        for m in &portfolio.members {
            let held = holdout.contains(&m.account);
            let (link, code) =
                if held { (String::new(), String::new()) } else { self.tracking(&c.row.id, &m.account, &m.handle) };
            rows.push(repo::Offer {
                account: m.account.clone(),
                handle: m.handle.clone(),
                link,
                code,
                holdout: held,
                in_portfolio: true,
                cost: if held { 0 } else { m.cost },
            });
        }
        for a in &holdout.from_rest {
            rows.push(repo::Offer {
                account: a.clone(),
                handle: handles.get(a).copied().unwrap_or_default().to_owned(),
                link: String::new(),
                code: String::new(),
                holdout: true,
                in_portfolio: false,
                cost: 0,
            });
        }

        // The head before the links exist bounds the pre-treatment audience: nothing
        // at or below it can have been caused by an offer.
        let ingest = self.inner.ingest.clone();
        let head = retry_idempotent(&self.inner.retry, "GetLedgerInfo", || {
            let mut c = ingest.clone();
            async move { c.get_ledger_info(ipb::GetLedgerInfoRequest {}).await }
        })
        .await
        .map_err(Error::ingest)?
        .into_inner()
        .head_offset;
        let links: Vec<ipb::Link> = rows
            .iter()
            .filter(|r| !r.holdout)
            .flat_map(|r| [r.link.clone(), r.code.clone()].map(|l| (l, r.account.to_proto())))
            .map(|(link, owner)| ipb::Link {
                link,
                owner: Some(owner),
                campaign_id: c.row.id.clone(),
                attribution_window_secs: c.spec.attribution_window_secs,
                landing_url: c.spec.landing_url.clone(),
            })
            .collect();
        for chunk in links.chunks(5_000) {
            // Registering the same link to the same owner again is a no-op ("unchanged").
            let req = ipb::RegisterLinksRequest { links: chunk.to_vec() };
            retry_idempotent(&self.inner.retry, "RegisterLinks", || {
                let (mut c, r) = (ingest.clone(), req.clone());
                async move { c.register_links(r).await }
            })
            .await
            .map_err(Error::ingest)?;
        }
        repo::record_offers(&self.inner.db, &brand.0, &c.row.id, &rows, seed, head).await.map_err(|e| match e {
            lift_store::Error::Conflict(m) => Error::AlreadyExists(m),
            e => Error::Store(e),
        })?;
        tracing::info!(campaign = %c.row.id, offers = rows.iter().filter(|r| !r.holdout).count(),
            holdout = rows.iter().filter(|r| r.holdout).count(), seed, "offers issued");
        Ok(pb::CreateOffersResponse {
            offers: rows.iter().filter(|r| r.in_portfolio).map(offer_to_proto).collect(),
            holdout: rows.iter().filter(|r| r.holdout).map(|r| r.account.to_proto()).collect(),
            holdout_seed: seed,
            control_group: rows.iter().filter(|r| r.holdout && r.in_portfolio).map(|r| r.account.to_proto()).collect(),
        })
    }

    /// A creator's tracking link and code: derived from campaign and account, so
    /// a retried `CreateOffers` registers the same ones (ingestion treats that as
    /// unchanged) instead of orphaning the first attempt's.
    fn tracking(&self, campaign: &str, account: &AccountId, handle: &str) -> (String, String) {
        let d = digest(&[campaign, &account.network, &account.id]);
        let link = format!("{}/{}", self.inner.cfg.link_base.trim_end_matches('/'), hex::encode(&d[..6]));
        let mut prefix: String =
            handle.chars().filter(char::is_ascii_alphanumeric).take(8).collect::<String>().to_ascii_uppercase();
        if prefix.is_empty() {
            prefix = "LIFT".to_owned();
        }
        let code = format!("{prefix}{}", hex::encode(&d[6..10]).to_ascii_uppercase());
        (link, code)
    }

    pub async fn campaign_report(
        &self,
        brand: &BrandId,
        req: &pb::GetCampaignReportRequest,
    ) -> Result<pb::GetCampaignReportResponse, Error> {
        let c = self.load(brand, &req.campaign_id).await?;
        let (Some(offers_offset), CampaignState::Offered) = (c.row.offers_offset, c.row.state) else {
            return Err(Error::FailedPrecondition(format!(
                "campaign {} has no offers yet; call CreateOffers first",
                c.row.id
            )));
        };
        let rows = repo::offers(&self.inner.db, &c.row.id).await?;
        let issued: Vec<IssuedOffer> = rows
            .iter()
            .filter(|r| !r.holdout)
            .map(|r| IssuedOffer {
                account: r.account.clone(),
                link: r.link.clone(),
                code: r.code.clone(),
                cost: r.cost,
            })
            .collect();
        let controls: BTreeSet<AccountId> =
            rows.iter().filter(|r| r.holdout && r.in_portfolio).map(|r| r.account.clone()).collect();
        let mut builder = ReportBuilder::new(&c.row.id, &c.spec.currency, &issued, &controls, offers_offset);
        let social = [ipb::EventKind::Post, ipb::EventKind::Engagement, ipb::EventKind::Follow];
        let outcomes = [ipb::EventKind::LinkClick, ipb::EventKind::PageSession, ipb::EventKind::Conversion];
        self.read_ledger(0, &social, Some(offers_offset), &mut builder).await?;
        let head = self.read_ledger(offers_offset, &outcomes, None, &mut builder).await?;
        let report = builder.finish(self.inner.cfg.lift_confidence);
        let creators = rows
            .iter()
            .filter(|r| !r.holdout)
            .map(|r| pb::CreatorReport {
                account: Some(r.account.to_proto()),
                handle: r.handle.clone(),
                link: r.link.clone(),
                totals: Some(report.per_creator.get(&r.account).cloned().unwrap_or_default().to_proto()),
            })
            .collect();
        let l = &report.lift;
        Ok(pb::GetCampaignReportResponse {
            campaign: Some(c.to_proto()),
            totals: Some(report.totals.to_proto()),
            creators,
            lift: Some(pb::Lift {
                incremental_per_creator: l.difference,
                lower: l.lower,
                upper: l.upper,
                confidence: l.confidence,
                treated: l.treated,
                holdout: l.holdout,
                metric: rules::LIFT_METRIC.to_owned(),
                unavailable_reason: l.unavailable.clone().unwrap_or_default(),
            }),
            as_of_offset: head.max(report.head),
        })
    }

    /// Feeds the ledger after `after` (only `kinds`, up to `until`) to the report;
    /// returns the head ingestion reported.
    async fn read_ledger(
        &self,
        after: u64,
        kinds: &[ipb::EventKind],
        until: Option<u64>,
        builder: &mut ReportBuilder,
    ) -> Result<u64, Error> {
        if until.is_some_and(|u| u <= after) {
            return Ok(after);
        }
        let mut stream = self
            .inner
            .ingest
            .clone()
            .subscribe(ipb::SubscribeRequest {
                after_offset: after,
                kinds: kinds.iter().map(|k| *k as i32).collect(),
                stop_at_head: true,
            })
            .await
            .map_err(Error::ingest)?
            .into_inner();
        let mut head = after;
        let mut skipped = 0u64;
        while let Some(msg) = stream.message().await.map_err(Error::ingest)? {
            head = head.max(msg.head_offset);
            for e in &msg.events {
                if until.is_some_and(|u| e.offset > u) {
                    return Ok(head);
                }
                match LedgerEntry::from_proto(e) {
                    Ok(entry) => builder.observe(&entry),
                    Err(_) => skipped += 1,
                }
            }
            if msg.caught_up {
                break;
            }
        }
        if skipped > 0 {
            tracing::warn!(skipped, "ledger events that no longer validate were left out of the report");
        }
        Ok(head)
    }
}

/// The portfolio when scoring cannot run influence maximisation: the best
/// candidates by the objective until the budget is spent. Spread and overlap
/// are unknown without the cascade model, so they are NaN and the guarantee
/// says so, rather than numbers that look measured.
fn greedy_by_objective(ranked: &[Judged], spec: &CampaignSpec) -> spb::SelectSeedsResponse {
    let n = usize::try_from(spec.offers_affordable()).unwrap_or(usize::MAX);
    let seeds: Vec<spb::SelectedSeed> = ranked
        .iter()
        .take(n)
        .map(|j| spb::SelectedSeed {
            account: Some(j.card.account.to_proto()),
            cost: spec.unit_cost,
            marginal_gain: f64::NAN,
        })
        .collect();
    spb::SelectSeedsResponse {
        total_cost: spec.unit_cost.saturating_mul(seeds.len() as i64),
        seeds,
        estimated_spread: f64::NAN,
        guarantee: "none: scoring's SelectSeeds is not available, so the best-ranked eligible creators were taken \
                    until the budget ran out; audience overlap was not considered"
            .to_owned(),
        audience_overlap: f64::NAN,
        rr_sets: 0,
    }
}

fn offer_to_proto(r: &repo::Offer) -> pb::Offer {
    pb::Offer { account: Some(r.account.to_proto()), link: r.link.clone(), code: r.code.clone(), holdout: r.holdout }
}

fn portfolio_to_proto(p: &StoredPortfolio) -> pb::SelectPortfolioResponse {
    pb::SelectPortfolioResponse {
        members: p
            .members
            .iter()
            .map(|m| pb::PortfolioMember {
                account: Some(m.account.to_proto()),
                handle: m.handle.clone(),
                cost: m.cost,
                marginal_gain: m.marginal_gain.unwrap_or(f64::NAN),
            })
            .collect(),
        expected_reach: p.estimated_spread.unwrap_or(f64::NAN),
        total_cost: p.total_cost,
        guarantee: p.guarantee.clone(),
        audience_overlap: p.audience_overlap.unwrap_or(f64::NAN),
        expected: Some(p.expected.to_proto()),
    }
}

/// Keyset token: the last row's ranking key and account, so pages stay
/// consistent when accounts enter or leave between calls.
fn encode_match_token(key: (f64, f64), a: &AccountId) -> String {
    format!(
        "{:016x}{:016x}{}.{}",
        key.0.to_bits(),
        key.1.to_bits(),
        hex::encode(a.network.as_bytes()),
        hex::encode(a.id.as_bytes())
    )
}

fn decode_match_token(t: &str) -> Result<((f64, f64), AccountId), Error> {
    let bad = || Error::invalid("page_token", "is not a token this service issued");
    let (k0, k1, rest) = (t.get(..16).ok_or_else(bad)?, t.get(16..32).ok_or_else(bad)?, t.get(32..).ok_or_else(bad)?);
    let k0 = u64::from_str_radix(k0, 16).map_err(|_| bad())?;
    let k1 = u64::from_str_radix(k1, 16).map_err(|_| bad())?;
    let (n, i) = rest.split_once('.').ok_or_else(bad)?;
    let s = |h: &str| hex::decode(h).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(bad);
    Ok(((f64::from_bits(k0), f64::from_bits(k1)), AccountId::new(s(n)?, s(i)?)))
}

fn decode_list_token(t: &str) -> Result<(i64, String), Error> {
    let bad = || Error::invalid("page_token", "is not a token this service issued");
    let s = hex::decode(t).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(bad)?;
    let (at, id) = s.split_once('.').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins that page tokens round-trip and that forged ones are refused, not panicked on.
    #[test]
    fn tokens_round_trip_and_refuse_garbage() {
        let a = AccountId::new("x:y", "a.b");
        let t = encode_match_token((12.5, -0.0), &a);
        assert_eq!(decode_match_token(&t).ok(), Some(((12.5, -0.0), a)));
        for bad in ["", "zz", "ñ", &"f".repeat(40), "0000000000000000000000000000000g78.79"] {
            assert!(decode_match_token(bad).is_err(), "{bad}");
            assert!(decode_list_token(bad).is_err(), "{bad}");
        }
        assert_eq!(decode_list_token(&hex::encode("17.cmp_1")).ok(), Some((17, "cmp_1".to_owned())));
    }
}
