//! `lift.scoring.v1.ScoringService`: thin handlers over `Scoring`'s reads.

use lift_domain::{AccountId, Dimension};
use lift_proto::convert::prelude::*;
use lift_proto::scoring::v1 as pb;
use lift_proto::scoring::v1::scoring_service_server::{ScoringService, ScoringServiceServer};
use lift_runtime::auth::Principal;
use lift_store::scoring as store;
use tonic::{Request, Response, Status};

use super::distribution::{parse_distribution, percentile_from};
use super::query::{self, DEFAULT_PAGE, Filter, MAX_PAGE, Query};
use super::{Scoring, account_ref, convert, dimension};
use crate::Error;
use crate::engine::TopicScores;
use crate::engine::stats::published_levels;

/// The tonic service type `Scoring::grpc` returns.
pub type ScoringServer = ScoringServiceServer<Handlers>;

/// Most accounts per `GetScores` call.
pub const MAX_ACCOUNTS_PER_REQUEST: usize = 1000;
const DEFAULT_EXPORT_CHUNK: usize = 1000;
const MAX_EXPORT_CHUNK: usize = 5000;
/// Chunks an export may run ahead of a slow reader.
const EXPORT_BUFFER: usize = 4;

type ExportStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::ExportScoresResponse, Status>> + Send>>;
const DEFAULT_HISTORY: u64 = 100;
const MAX_HISTORY: u64 = 1000;

#[derive(Debug, Clone)]
pub struct Handlers {
    pub(super) scoring: Scoring,
}

#[tonic::async_trait]
impl ScoringService for Handlers {
    #[tracing::instrument(skip_all, fields(accounts = req.get_ref().accounts.len()))]
    async fn get_scores(&self, req: Request<pb::GetScoresRequest>) -> Result<Response<pb::GetScoresResponse>, Status> {
        own_accounts_only(&req, req.get_ref().accounts.iter())?;
        Ok(Response::new(self.scoring.get_scores(&req.into_inner())?))
    }

    #[tracing::instrument(skip_all, fields(order_by = req.get_ref().order_by, page_size = req.get_ref().page_size))]
    async fn query_accounts(
        &self,
        req: Request<pb::QueryAccountsRequest>,
    ) -> Result<Response<pb::QueryAccountsResponse>, Status> {
        Ok(Response::new(self.scoring.query_accounts(&req.into_inner())?))
    }

    type ExportScoresStream = ExportStream;

    #[tracing::instrument(skip_all, fields(chunk_size = req.get_ref().chunk_size, run_only = req.get_ref().run_only, since_run = req.get_ref().since_run))]
    async fn export_scores(
        &self,
        req: Request<pb::ExportScoresRequest>,
    ) -> Result<Response<Self::ExportScoresStream>, Status> {
        let req = req.into_inner();
        let chunk = match req.chunk_size as usize {
            0 => DEFAULT_EXPORT_CHUNK,
            n if n > MAX_EXPORT_CHUNK => {
                return Err(Error::invalid("chunk_size", format!("is {n}; the maximum is {MAX_EXPORT_CHUNK}")).into());
            }
            n => n,
        };
        let scoring = self.scoring.clone();
        let Some(p) = scoring.published() else {
            let only =
                pb::ExportScoresResponse { model_version: scoring.model_version().to_owned(), ..Default::default() };
            return Ok(Response::new(Box::pin(tokio_stream::iter([Ok(only)]))));
        };
        // A delta when the reader names a run whose changes up to this one are known.
        let delta = (req.since_run > 0 && !req.run_only)
            .then(|| scoring.changed_since(req.since_run, p.run_id))
            .flatten()
            .map(|nodes| (req.since_run, nodes));
        if req.run_only || p.snap.n == 0 || delta.as_ref().is_some_and(|(_, d)| d.is_empty()) {
            let only = export_chunk(&p, Vec::new(), delta.as_ref().map(|(s, d)| (*s, d.len())));
            return Ok(Response::new(Box::pin(tokio_stream::iter([Ok(only)]))));
        }
        // The task holds this run's snapshot for the whole export: every chunk is
        // from one run even if scoring publishes another meanwhile.
        let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_BUFFER);
        tokio::spawn(async move {
            let nodes: Vec<crate::engine::Node> = match &delta {
                Some((_, d)) => d.clone(),
                None => (0..p.snap.n as crate::engine::Node).collect(),
            };
            let meta = delta.as_ref().map(|(s, d)| (*s, d.len()));
            for part in nodes.chunks(chunk) {
                let accounts = {
                    let dir = scoring.directory();
                    part.iter().map(|&i| convert::account_scores(&p, &dir, i)).collect()
                };
                if tx.send(Ok(export_chunk(&p, accounts, meta))).await.is_err() {
                    return; // The reader went away.
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    #[tracing::instrument(skip_all)]
    async fn get_score_history(
        &self,
        req: Request<pb::GetScoreHistoryRequest>,
    ) -> Result<Response<pb::GetScoreHistoryResponse>, Status> {
        own_accounts_only(&req, req.get_ref().account.iter())?;
        Ok(Response::new(self.scoring.score_history(&req.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(dimension = req.get_ref().dimension))]
    async fn explain_score_change(
        &self,
        req: Request<pb::ExplainScoreChangeRequest>,
    ) -> Result<Response<pb::ExplainScoreChangeResponse>, Status> {
        own_accounts_only(&req, req.get_ref().account.iter())?;
        Ok(Response::new(self.scoring.explain_change(req.get_ref()).await?))
    }

    #[tracing::instrument(skip_all)]
    async fn get_model(&self, _req: Request<pb::GetModelRequest>) -> Result<Response<pb::GetModelResponse>, Status> {
        Ok(Response::new(self.scoring.model().await?))
    }

    #[tracing::instrument(skip_all, fields(candidates = req.get_ref().candidates.len(), k = req.get_ref().k))]
    async fn select_seeds(
        &self,
        req: Request<pb::SelectSeedsRequest>,
    ) -> Result<Response<pb::SelectSeedsResponse>, Status> {
        Ok(Response::new(self.scoring.select_seeds(req.get_ref()).await?))
    }
}

/// A `creator:read` caller may name only the accounts its key is bound to; a
/// `scores:read` caller (or any caller with authentication off) may name any.
fn own_accounts_only<'a, T>(
    req: &Request<T>,
    accounts: impl Iterator<Item = &'a lift_proto::ingest::v1::AccountRef>,
) -> Result<(), Status> {
    let Some(p) = req.extensions().get::<Principal>() else { return Ok(()) };
    for a in accounts {
        if !p.may_read_account(&a.network, &a.id) {
            return Err(Status::permission_denied(format!(
                "key {} may read only its own accounts, not {}:{}",
                p.key_id, a.network, a.id
            )));
        }
    }
    Ok(())
}

/// One export message; `delta` = (since run, accounts changed) for a delta export.
fn export_chunk(
    p: &super::Published,
    accounts: Vec<pb::AccountScores>,
    delta: Option<(u64, usize)>,
) -> pb::ExportScoresResponse {
    pb::ExportScoresResponse {
        accounts,
        model_version: p.snap.model_version.clone(),
        as_of_offset: p.snap.as_of.offset,
        total: delta.map_or(p.snap.n, |(_, k)| k) as u64,
        run_id: p.run_id,
        delta: delta.is_some(),
        since_run: delta.map_or(0, |(s, _)| s),
        run_accounts: p.snap.n as u64,
    }
}

impl Scoring {
    /// Scores of the requested accounts from the latest run; unknown ones are listed.
    pub fn get_scores(&self, req: &pb::GetScoresRequest) -> Result<pb::GetScoresResponse, Error> {
        if req.accounts.len() > MAX_ACCOUNTS_PER_REQUEST {
            return Err(Error::invalid(
                "accounts",
                format!("has {} accounts; the limit is {MAX_ACCOUNTS_PER_REQUEST}", req.accounts.len()),
            ));
        }
        let mut violations = Vec::new();
        let ids: Vec<Option<AccountId>> = req
            .accounts
            .iter()
            .enumerate()
            .map(|(i, a)| AccountId::from_proto(Some(a), &format!("accounts[{i}]"), &mut violations))
            .collect();
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        let published = self.published();
        let dir = self.directory();
        let mut out = pb::GetScoresResponse::default();
        for (id, r) in ids.into_iter().zip(&req.accounts) {
            let node = match (&published, id) {
                (Some(p), Some(id)) => dir.node(&id).filter(|n| (*n as usize) < p.snap.n),
                _ => None,
            };
            match (node, &published) {
                (Some(n), Some(p)) => out.accounts.push(convert::account_scores(p, &dir, n)),
                _ => out.unknown.push(r.clone()),
            }
        }
        Ok(out)
    }

    /// Accounts passing every percentile filter, ordered by one dimension, one page at a time.
    pub fn query_accounts(&self, req: &pb::QueryAccountsRequest) -> Result<pb::QueryAccountsResponse, Error> {
        let q = validate_query(req)?;
        let Some(p) = self.published() else {
            return Ok(pb::QueryAccountsResponse {
                model_version: self.model_version().to_owned(),
                ..Default::default()
            });
        };
        let page = query::run(&p.snap, &q);
        let dir = self.directory();
        Ok(pb::QueryAccountsResponse {
            accounts: page.nodes.iter().map(|&n| convert::account_scores(&p, &dir, n)).collect(),
            next_page_token: page.next.map(|c| query::encode_token(&q, c)).unwrap_or_default(),
            total_matching: page.total,
            model_version: p.snap.model_version.clone(),
            as_of_offset: p.snap.as_of.offset,
        })
    }

    /// The account's history points, newest first, a page at a time (see
    /// `service::history` for when a point is written). Percentiles come from
    /// each run's stored distribution (within half a point).
    pub async fn score_history(&self, req: &pb::GetScoreHistoryRequest) -> Result<pb::GetScoreHistoryResponse, Error> {
        let account = account_ref(req.account.as_ref(), "account")?;
        let mut dims = Vec::new();
        for (i, d) in req.dimensions.iter().enumerate() {
            dims.push(dimension(*d, &format!("dimensions[{i}]"))?);
        }
        if dims.is_empty() {
            dims = Dimension::ALL.to_vec();
        }
        let limit = match u64::from(req.limit) {
            0 => DEFAULT_HISTORY,
            l => l.min(MAX_HISTORY),
        };
        let micros = |t: Option<&lift_proto::Timestamp>, field: &str| -> Result<Option<i64>, Error> {
            t.map(|t| {
                lift_proto::convert::from_timestamp(t).ok_or_else(|| Error::invalid(field, "is not a valid timestamp"))
            })
            .transpose()
        };
        let (since, until) = (micros(req.since.as_ref(), "since")?, micros(req.until.as_ref(), "until")?);
        if let (Some(a), Some(b)) = (since, until)
            && a >= b
        {
            return Err(Error::invalid("until", "must be after since"));
        }
        let key = account.to_string();
        let before_run = history_token::decode(&req.page_token, &key, since, until)?;
        let range = store::HistoryRange { before_run, since, until };
        // One more than asked tells whether there is a next page.
        let mut rows = store::history_page(self.db(), &key, range, limit + 1).await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        if rows.is_empty() && before_run.is_none() && since.is_none() && until.is_none() {
            return Err(Error::NotFound(format!("scores of account {account}")));
        }
        let mut points = Vec::with_capacity(rows.len());
        for (run, h) in &rows {
            let mut scores = Vec::with_capacity(dims.len());
            for &d in &dims {
                let (levels, values) = parse_distribution(run, d)?;
                scores.push(history_score(d, &h.row, percentile_from(&levels, &values, h.row.values[d.index()])));
            }
            points.push(pb::HistoryPoint {
                run_id: run.run_id,
                model_version: run.model_version.clone(),
                as_of_offset: run.as_of_offset,
                as_of_time: Some(lift_proto::convert::to_timestamp(run.as_of_time)),
                scores,
            });
        }
        let next_page_token = match rows.last() {
            Some((run, _)) if more => history_token::encode(&key, since, until, run.run_id),
            _ => String::new(),
        };
        Ok(pb::GetScoreHistoryResponse { points, next_page_token })
    }

    /// The model in force, its published distributions, and the old→new mapping
    /// against the latest run of a different model version.
    pub async fn model(&self) -> Result<pb::GetModelResponse, Error> {
        let parameters = self.cfg().model.flat().into_iter().collect();
        let mut out = pb::GetModelResponse {
            model_version: self.model_version().to_owned(),
            parameters,
            history_resolution: self.cfg().history_resolution,
            ..Default::default()
        };
        let Some(p) = self.published() else { return Ok(out) };
        let s = &p.snap;
        out.as_of_offset = s.as_of.offset;
        out.latest_run_id = p.run_id;
        out.accounts = s.n as u64;
        out.distributions = Dimension::ALL
            .iter()
            .map(|&d| pb::Distribution {
                dimension: d.to_proto() as i32,
                accounts: s.n as u64,
                quantiles: s.distributions[d.index()]
                    .iter()
                    .map(|&(quantile, value)| pb::QuantilePoint { quantile, value })
                    .collect(),
            })
            .collect();
        if let Some(old) = store::latest_run_of_other_model(self.db(), &s.model_version).await? {
            let levels = published_levels();
            for d in Dimension::ALL {
                let (old_levels, old_values) = parse_distribution(&old, d)?;
                let at = |q: f64| {
                    let i = old_levels.partition_point(|l| *l < q - 1e-12).min(old_values.len().saturating_sub(1));
                    old_values.get(i).copied().unwrap_or(0.0)
                };
                out.recalibrations.push(pb::RecalibrationMapping {
                    dimension: d.to_proto() as i32,
                    from_version: old.model_version.clone(),
                    to_version: s.model_version.clone(),
                    old_quantiles: levels.iter().map(|&q| pb::QuantilePoint { quantile: q, value: at(q) }).collect(),
                    new_quantiles: s.distributions[d.index()]
                        .iter()
                        .map(|&(quantile, value)| pb::QuantilePoint { quantile, value })
                        .collect(),
                });
            }
        }
        Ok(out)
    }
}

fn validate_query(req: &pb::QueryAccountsRequest) -> Result<Query, Error> {
    let mut violations = Vec::new();
    let order_by = Dimension::from_proto(req.order_by);
    if order_by.is_none() {
        violations.push(lift_domain::FieldViolation::new("order_by", "is required: a dimension to order by"));
    }
    let topic = (!req.topic.is_empty()).then(|| req.topic.to_lowercase());
    if let (Some(d), Some(_)) = (order_by, &topic)
        && TopicScores::dim_index(d).is_none()
    {
        violations.push(lift_domain::FieldViolation::new(
            "topic",
            format!("{d} has no topic variants; topics apply to activity and network"),
        ));
    }
    let mut filters = Vec::with_capacity(req.filters.len());
    for (i, f) in req.filters.iter().enumerate() {
        let d = Dimension::from_proto(f.dimension);
        if d.is_none() {
            violations.push(lift_domain::FieldViolation::new(format!("filters[{i}].dimension"), "is required"));
        }
        if !(0.0..=100.0).contains(&f.min_percentile) {
            violations.push(lift_domain::FieldViolation::new(
                format!("filters[{i}].min_percentile"),
                format!("is {}; it must be within 0-100", f.min_percentile),
            ));
        }
        let topic = (!f.topic.is_empty()).then(|| f.topic.to_lowercase());
        if let (Some(d), Some(_)) = (d, &topic)
            && TopicScores::dim_index(d).is_none()
        {
            violations.push(lift_domain::FieldViolation::new(
                format!("filters[{i}].topic"),
                format!("{d} has no topic variants; topics apply to activity and network"),
            ));
        }
        if let Some(dimension) = d {
            filters.push(Filter { dimension, topic, min_percentile: f.min_percentile });
        }
    }
    let page_size = match req.page_size as usize {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    };
    let Some(order_by) = order_by.filter(|_| violations.is_empty()) else {
        return Err(Error::Invalid(violations));
    };
    let after = query::decode_token(&req.page_token, order_by, topic.as_deref())?;
    Ok(Query { order_by, topic, filters, page_size, after })
}

/// One dimension of a stored history row, as served.
fn history_score(d: Dimension, row: &store::ScoreRow, percentile: f64) -> pb::Score {
    let value = row.values[d.index()];
    let (lower, upper, evidence) = if d == Dimension::Action {
        // An observed account's interval always has width (the prior's), so an
        // insufficient row with upper 0 had no evidence at all.
        let ev = match (row.action_sufficient, row.action_upper > 0.0) {
            (true, _) => pb::Evidence::Sufficient,
            (false, true) => pb::Evidence::Insufficient,
            (false, false) => pb::Evidence::NoData,
        };
        (row.action_lower, row.action_upper, ev as i32)
    } else {
        (value, value, pb::Evidence::Unspecified as i32)
    };
    pb::Score {
        dimension: d.to_proto() as i32,
        topic: String::new(),
        value,
        percentile,
        lower,
        upper,
        evidence,
        raw: Default::default(),
    }
}

/// `GetScoreHistory` page tokens: bound to the account and range they came from.
mod history_token {
    use crate::Error;

    pub(super) fn encode(account: &str, since: Option<i64>, until: Option<i64>, last_run: u64) -> String {
        hex::encode(format!("h1|{account}|{}|{}|{last_run}", opt(since), opt(until)))
    }

    /// The run id to continue below; `None` for the first page.
    pub(super) fn decode(
        token: &str,
        account: &str,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Option<u64>, Error> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || Error::invalid("page_token", "is not a token from a previous page of this account and range");
        let raw = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
        let (head, last) = raw.rsplit_once('|').ok_or_else(bad)?;
        if head != format!("h1|{account}|{}|{}", opt(since), opt(until)) {
            return Err(bad());
        }
        last.parse().map(Some).map_err(|_| bad())
    }

    fn opt(t: Option<i64>) -> String {
        t.map(|t| t.to_string()).unwrap_or_default()
    }
}
