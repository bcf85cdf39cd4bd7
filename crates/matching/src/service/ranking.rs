//! Ranking: every scored account judged against a campaign under one scoring
//! run. [`ScoreSource`] is the one seam between "which accounts, with which
//! scores" and the rules: either it scans scoring's `QueryAccounts` on every
//! call, or it judges over the score cache (`crate::snapshot`), an in-memory
//! copy of scoring's latest run. Callers see a [`CampaignRanking`] either way.

use lift_proto::convert::prelude::*;

use crate::convert::{CriterionResultProto, ExpectedProto, percentile_filter_to_proto};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use lift_domain::AccountId;
use lift_domain::campaign::{self as rules, CampaignSpec, Evaluation, Expected, ScoreCard};
use lift_proto::matching::v1 as pb;
use lift_proto::scoring::v1 as spb;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::client::{Channel, RetryPolicy, retry_idempotent};

use crate::snapshot::{self, FunnelStep, RunScores, ScoreCache, ScoreCacheStats};
use crate::{Error, MatchingConfig};

/// A scored account judged against a campaign.
#[derive(Debug, Clone)]
pub(super) struct Judged {
    pub(super) card: ScoreCard,
    pub(super) eval: Evaluation,
    pub(super) key: (f64, f64),
    pub(super) expected: Expected,
    /// How far a near miss is from eligibility.
    miss: f64,
}

impl Judged {
    fn new(spec: &CampaignSpec, card: ScoreCard, eval: Evaluation, miss: f64) -> Self {
        Judged {
            key: rules::objective_score(spec.objective, &card),
            expected: rules::expected_outcome(spec.objective, &card),
            card,
            eval,
            miss,
        }
    }

    pub(super) fn to_proto(&self, rank: usize) -> pb::Candidate {
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
pub(super) enum Ranked {
    Scanned(Vec<Judged>),
    Cached { scores: Arc<RunScores>, rows: Vec<u32> },
}

impl Ranked {
    pub(super) fn len(&self) -> usize {
        match self {
            Ranked::Scanned(v) => v.len(),
            Ranked::Cached { rows, .. } => rows.len(),
        }
    }
}

/// One campaign judged under one scoring run: every eligible account (ranked)
/// and near miss (closest first).
#[derive(Debug)]
pub(super) struct CampaignRanking {
    pub(super) eligible: Ranked,
    pub(super) near: Ranked,
    pub(super) model_version: String,
    pub(super) as_of: u64,
    /// The criteria the accounts were judged by (thresholds translated, if they were).
    spec: CampaignSpec,
    relax: f64,
    /// Judged over an older run's scores while a newer one loads.
    pub(super) stale: bool,
    /// Accounts left after each eligibility step, over the whole population;
    /// empty when judged over a pre-filtered scan.
    pub(super) funnel: Vec<(FunnelStep, u64)>,
}

impl CampaignRanking {
    /// The `i`-th account of `list`, judged.
    pub(super) fn judged(&self, list: &Ranked, i: usize) -> Option<Judged> {
        match list {
            Ranked::Scanned(v) => v.get(i).cloned(),
            Ranked::Cached { scores, rows } => {
                let row = *rows.get(i)? as usize;
                let card = scores.card(row, &self.spec.criteria);
                let eval = rules::evaluate(&self.spec, &self.spec.rules(), &card);
                let miss = if eval.eligible() { 0.0 } else { eval.near_miss(self.relax).unwrap_or(f64::INFINITY) };
                Some(Judged::new(&self.spec, card, eval, miss))
            }
        }
    }

    /// Position of the first eligible account ranked after (key, account).
    pub(super) fn eligible_after(&self, key: (f64, f64), account: &AccountId) -> usize {
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
    pub(super) fn eligible_key(&self, i: usize) -> Option<((f64, f64), AccountId)> {
        match &self.eligible {
            Ranked::Scanned(v) => v.get(i).map(|j| (j.key, j.card.account.clone())),
            Ranked::Cached { scores, rows } => {
                let r = *rows.get(i)? as usize;
                Some((scores.key(self.spec.objective, r), scores.account(r)))
            }
        }
    }

    /// Every eligible account, sorted by id.
    pub(super) fn eligible_set(&self) -> BTreeSet<AccountId> {
        match &self.eligible {
            Ranked::Scanned(v) => v.iter().map(|j| j.card.account.clone()).collect(),
            Ranked::Cached { scores, rows } => rows.iter().map(|&r| scores.account(r as usize)).collect(),
        }
    }

    /// Every eligible account, judged, in rank order.
    pub(super) fn into_eligible(self) -> Vec<Judged> {
        match self.eligible {
            Ranked::Scanned(v) => v,
            Ranked::Cached { .. } => (0..self.eligible.len()).filter_map(|i| self.judged(&self.eligible, i)).collect(),
        }
    }
}

/// Where accounts and their scores come from (`MatchingConfig::score_cache`).
#[derive(Debug)]
pub(super) enum ScoreSource {
    /// Pages through scoring's `QueryAccounts` on every call.
    Scan(Scan),
    /// Judges over every scored account of scoring's latest run, loaded once per run.
    Cache(Cached),
}

#[derive(Debug)]
pub(super) struct Scan {
    scoring: ScoringServiceClient<Channel>,
    retry: RetryPolicy,
    page_size: u32,
    max_candidates: usize,
    attempts: u32,
}

#[derive(Debug)]
pub(super) struct Cached {
    cache: Arc<ScoreCache>,
    scoring: ScoringServiceClient<Channel>,
    retry: RetryPolicy,
    chunk: u32,
    attempts: u32,
    patience: Duration,
}

impl ScoreSource {
    pub(super) fn new(scoring: ScoringServiceClient<Channel>, retry: RetryPolicy, cfg: &MatchingConfig) -> Self {
        if cfg.score_cache {
            ScoreSource::Cache(Cached {
                cache: Arc::new(ScoreCache::default()),
                scoring,
                retry,
                chunk: cfg.query_page_size,
                attempts: cfg.scan_attempts,
                patience: cfg.score_cache_patience,
            })
        } else {
            ScoreSource::Scan(Scan {
                scoring,
                retry,
                page_size: cfg.query_page_size,
                max_candidates: cfg.max_candidates,
                attempts: cfg.scan_attempts,
            })
        }
    }

    /// The score cache, when this source keeps one.
    pub(super) fn cache(&self) -> Option<Arc<ScoreCache>> {
        match self {
            ScoreSource::Cache(c) => Some(c.cache.clone()),
            ScoreSource::Scan(_) => None,
        }
    }

    pub(super) fn cache_stats(&self) -> ScoreCacheStats {
        match self {
            ScoreSource::Cache(c) => c.cache.stats(),
            ScoreSource::Scan(_) => ScoreCacheStats::default(),
        }
    }

    /// Judges every scored account against the campaign: over the score cache
    /// (loaded again when scoring has published a newer run), or by scanning
    /// scoring's answer. `near_limit` bounds the near misses the cache path
    /// judges (the scan keeps every one). `fresh` waits for scoring's current
    /// run however long its load takes: portfolios and offers commit money and
    /// holdouts, so they never act on an older run than scoring serves.
    pub(super) async fn rank(
        &self,
        spec: &CampaignSpec,
        relax: f64,
        near_limit: usize,
        fresh: bool,
    ) -> Result<CampaignRanking, Error> {
        match self {
            ScoreSource::Scan(s) => s.rank(spec, relax).await,
            ScoreSource::Cache(c) => c.rank(spec, relax, near_limit, fresh).await,
        }
    }
}

impl Cached {
    /// The score cache at scoring's current run, or the previous run's copy
    /// (stale) when loading the current one outlasts the configured patience
    /// and `fresh` is false.
    async fn rank(
        &self,
        spec: &CampaignSpec,
        relax: f64,
        near_limit: usize,
        fresh: bool,
    ) -> Result<CampaignRanking, Error> {
        let run = snapshot::probe(&self.scoring, &self.retry).await?;
        let (loader, retry, chunk, attempts) = (self.scoring.clone(), self.retry, self.chunk, self.attempts);
        let (scores, stale) = self
            .cache
            .at_least(&run, (!fresh).then_some(self.patience), move |base| async move {
                snapshot::load(&loader, &retry, chunk, attempts, base).await
            })
            .await?;
        let spec_owned = spec.clone();
        let judged = scores.clone();
        // A pass over every account: CPU work, kept off the async workers.
        let verdict = tokio::task::spawn_blocking(move || judged.judge(&spec_owned, relax, near_limit))
            .await
            .map_err(|e| Error::Internal(format!("judging over the score cache failed: {e}")))?;
        Ok(CampaignRanking {
            model_version: scores.model_version.clone(),
            as_of: scores.as_of,
            eligible: Ranked::Cached { scores: scores.clone(), rows: verdict.eligible },
            near: Ranked::Cached { scores, rows: verdict.near },
            spec: spec.clone(),
            relax,
            stale,
            funnel: verdict.funnel,
        })
    }
}

impl Scan {
    /// Judges every account scoring returns for the campaign's (relaxed)
    /// percentile filters, all under one scoring run: a scan that sees the run
    /// change restarts, so a page never mixes two models.
    async fn rank(&self, spec: &CampaignSpec, relax: f64) -> Result<CampaignRanking, Error> {
        let Scan { scoring, retry, page_size, max_candidates, attempts } = self;
        let criteria = spec.rules();
        let filters: Vec<_> = spec.percentile_filters(relax).iter().map(percentile_filter_to_proto).collect();
        for attempt in 1..=(*attempts).max(1) {
            let (mut eligible, mut near) = (Vec::new(), Vec::new());
            let mut seen: HashSet<AccountId> = HashSet::new();
            let mut run: Option<(String, u64)> = None;
            let mut token = String::new();
            let consistent = loop {
                let req = spb::QueryAccountsRequest {
                    order_by: spec.objective.primary_dimension().to_proto() as i32,
                    topic: String::new(),
                    filters: filters.clone(),
                    page_size: *page_size,
                    page_token: token.clone(),
                };
                let resp = retry_idempotent(retry, "QueryAccounts", || {
                    let (mut c, r) = (scoring.clone(), req.clone());
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
                    let judged = Judged::new(spec, card, eval, miss);
                    if eligible_now { eligible.push(judged) } else { near.push(judged) }
                }
                if eligible.len() + near.len() > *max_candidates {
                    return Err(Error::FailedPrecondition(format!(
                        "more than {max_candidates} accounts match this campaign's criteria; raise its thresholds"
                    )));
                }
                if resp.next_page_token.is_empty() {
                    break true;
                }
                if resp.next_page_token == token {
                    return Err(Error::Internal("QueryAccounts repeated its page token".to_owned()));
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
                return Ok(CampaignRanking {
                    eligible: Ranked::Scanned(eligible),
                    near: Ranked::Scanned(near),
                    model_version,
                    as_of,
                    spec: spec.clone(),
                    relax,
                    stale: false,
                    // Scoring answered only the accounts past the percentile filters.
                    funnel: Vec::new(),
                });
            }
            tracing::debug!(attempt, "scoring published a new run during the scan; restarting");
        }
        Err(Error::scoring(tonic::Status::unavailable("scores changed during every scan attempt")))
    }
}
