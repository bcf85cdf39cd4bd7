//! `ExplainScoreChange`: rebuilds the states of both runs' ledger prefixes and
//! decomposes the change exactly (see `engine::explain`).
//!
//! A state is rebuilt from the newest stored checkpoint at or below the
//! earlier run's offset (decoded once and kept for the next request), plus the
//! ledger after it — not from the start of the ledger. Checkpoints are exact
//! encodings of the state at their offset, so this keeps explanations a pure
//! function of (ledger, model) rather than of whatever the consumer holds in
//! memory. Without a usable checkpoint it replays from the start.
//!
//! Both prefixes are read from the ledger as it is now. When an erasure or a
//! retention run removed data after the from run was computed (a marker after
//! its offset), the explanation is rebased on what the runs recorded, and the
//! difference is shown as the removal's own part (`engine::explain::across_removals`).

use lift_domain::{AccountId, Dimension};
use lift_proto::ingest::v1::event::Kind;
use lift_proto::ingest::v1::{EventKind, SubscribeRequest};
use lift_proto::scoring::v1 as pb;
use lift_store::checkpoints;
use lift_store::scoring as store;

use super::consumer::apply_event;
use super::distribution::{parse_distribution, percentile_from};
use super::{Scoring, account_ref, dimension};
use crate::Error;
use crate::engine::checkpoint::{self as codec, FORMAT_VERSION};
use crate::engine::explain::{Cause, PercentileCause, Recorded, Removal, Side, across_removals, explain};
use crate::engine::{AsOf, ModelParams, State};

impl Scoring {
    pub async fn explain_change(
        &self,
        req: &pb::ExplainScoreChangeRequest,
    ) -> Result<pb::ExplainScoreChangeResponse, Error> {
        let account = account_ref(req.account.as_ref(), "account")?;
        let d = dimension(req.dimension, "dimension")?;
        if req.from_run_id == 0 {
            return Err(Error::invalid("from_run_id", "is required"));
        }
        let to = match req.to_run_id {
            0 => store::latest_run(self.db()).await?,
            id => store::get_run(self.db(), id).await?,
        }
        .ok_or_else(|| Error::NotFound(format!("scoring run {}", req.to_run_id)))?;
        let from = store::get_run(self.db(), req.from_run_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("scoring run {}", req.from_run_id)))?;
        if from.run_id > to.run_id {
            return Err(Error::invalid(
                "from_run_id",
                format!("run {} is after to_run_id {}; explain forward in time", from.run_id, to.run_id),
            ));
        }
        let params = |r: &store::Run| -> Result<ModelParams, Error> {
            serde_json::from_str(&r.parameters)
                .map_err(|e| Error::CorruptRun { run_id: r.run_id, reason: e.to_string() })
        };
        let (pf, pt) = (params(&from)?, params(&to)?);
        let (a, b) = self.replay(from.as_of_offset, to.as_of_offset).await?;
        let node = b.node(&account).ok_or_else(|| Error::NotFound(format!("account {account}")))?;
        // Data removed after the from run was computed: what the runs recorded differs
        // from what their prefixes now give.
        let removals = self.removals_after(from.as_of_offset).await?;
        let (recorded_from, recorded_to) = if removals.is_empty() {
            (None, None)
        } else {
            let to_too = removals.iter().any(|r| r.offset > to.as_of_offset);
            (
                recorded(self, &from, &account, d).await?,
                if to_too { recorded(self, &to, &account, d).await? } else { None },
            )
        };
        let (af, at) = (
            AsOf { offset: from.as_of_offset, time: from.as_of_time },
            AsOf { offset: to.as_of_offset, time: to.as_of_time },
        );
        let e = tokio::task::spawn_blocking(move || {
            explain(Side { state: &a, params: &pf, as_of: af }, Side { state: &b, params: &pt, as_of: at }, node, d)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .ok_or_else(|| Error::NotFound(format!("scores of account {account} in run {}", from.run_id)))?;
        let e = match recorded_from {
            Some(r) => across_removals(e, r, recorded_to, &removals),
            // Nothing recorded for the account by the from run: nothing to rebase on.
            None => e,
        };
        Ok(pb::ExplainScoreChangeResponse {
            from_value: e.from_value,
            to_value: e.to_value,
            // A contribution of exactly 0 explains nothing; dropping it keeps the sum exact.
            contributions: e
                .contributions
                .into_iter()
                .filter(|c| c.delta != 0.0)
                .map(|c| pb::Contribution {
                    kind: match c.cause {
                        Cause::NewEvents => pb::ContributionKind::NewEvents,
                        Cause::AgedOut => pb::ContributionKind::AgedOut,
                        Cause::Authenticity => pb::ContributionKind::Authenticity,
                        Cause::Recalibration => pb::ContributionKind::Recalibration,
                        Cause::Erasure => pb::ContributionKind::Erasure,
                    } as i32,
                    delta: c.delta,
                    description: c.description,
                    event_offsets: c.event_offsets,
                    event_count: c.event_count,
                })
                .collect(),
            from_model_version: e.from_model,
            to_model_version: e.to_model,
            from_percentile: e.from_percentile,
            to_percentile: e.to_percentile,
            percentile_contributions: e
                .percentile_contributions
                .into_iter()
                .filter(|c| c.delta != 0.0)
                .map(|c| pb::PercentileContribution {
                    cause: match c.cause {
                        PercentileCause::OwnValue => pb::PercentileCause::OwnValue,
                        PercentileCause::Population => pb::PercentileCause::Population,
                        PercentileCause::Authenticity => pb::PercentileCause::Authenticity,
                        PercentileCause::Recalibration => pb::PercentileCause::Recalibration,
                        PercentileCause::Erasure => pb::PercentileCause::Erasure,
                    } as i32,
                    delta: c.delta,
                    description: c.description,
                })
                .collect(),
        })
    }

    /// The erasure and retention markers after `offset` (to the head), naming no one.
    async fn removals_after(&self, offset: u64) -> Result<Vec<Removal>, Error> {
        let mut client = self.inner.ingest.clone().ok_or_else(|| {
            Error::Unavailable("this scoring server was built without a ledger client; explanations need one".into())
        })?;
        let req = SubscribeRequest { after_offset: offset, kinds: vec![EventKind::Erasure as i32], stop_at_head: true };
        let mut stream = client.subscribe(req).await?.into_inner();
        let mut out = Vec::new();
        while let Some(msg) = stream.message().await? {
            for ev in &msg.events {
                if let Some(Kind::Erasure(x)) = ev.event.as_ref().and_then(|e| e.kind.as_ref())
                    && ev.offset > offset
                {
                    let retention_before = x.retention_before.as_ref().and_then(lift_proto::convert::from_timestamp);
                    out.push(Removal { offset: ev.offset, retention_before });
                }
            }
            if msg.caught_up {
                break;
            }
        }
        Ok(out)
    }

    /// The newest usable checkpoint's state at or below `at_most`, or an empty
    /// state. The decoded state is kept: explanations of recent runs share it.
    async fn explain_base(&self, at_most: u64) -> State {
        let newest = match checkpoints::list(self.db()).await {
            Ok(list) => list.into_iter().find(|c| {
                c.as_of_offset <= at_most
                    && c.model_version == self.inner.model_version
                    && c.format_version == FORMAT_VERSION
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list checkpoints: explaining from the start of the ledger");
                None
            }
        };
        let Some(info) = newest else { return State::new() };
        if let Some((id, state)) = self.inner.explain_base.lock().ok().and_then(|g| g.clone())
            && id == info.checkpoint_id
        {
            return (*state).clone();
        }
        let bytes = match checkpoints::latest(self.db(), at_most).await {
            Ok(Some((found, bytes))) if found.checkpoint_id == info.checkpoint_id => bytes,
            Ok(_) => return State::new(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a checkpoint: explaining from the start of the ledger");
                return State::new();
            }
        };
        let version = self.inner.model_version.clone();
        match tokio::task::spawn_blocking(move || codec::decode(&bytes, &version)).await {
            Ok(Ok(state)) => {
                let state = std::sync::Arc::new(state);
                if let Ok(mut g) = self.inner.explain_base.lock() {
                    *g = Some((info.checkpoint_id, state.clone()));
                }
                (*state).clone()
            }
            Ok(Err(e)) => {
                tracing::warn!(checkpoint_id = info.checkpoint_id, reason = %e, "checkpoint unusable for explanations");
                State::new()
            }
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint decode task failed");
                State::new()
            }
        }
    }

    /// States of the ledger prefixes up to `from` and up to `to` (`from ≤ to`).
    async fn replay(&self, from: u64, to: u64) -> Result<(State, State), Error> {
        let mut client = self.inner.ingest.clone().ok_or_else(|| {
            Error::Unavailable("this scoring server was built without a ledger client; explanations need one".into())
        })?;
        let mut a = self.explain_base(from).await;
        let mut b: Option<State> = None;
        let mut stream = client
            .subscribe(SubscribeRequest { after_offset: a.offset, kinds: Vec::new(), stop_at_head: true })
            .await?
            .into_inner();
        'read: while let Some(msg) = stream.message().await? {
            for ev in &msg.events {
                if ev.offset > to {
                    break 'read;
                }
                let target = if ev.offset <= from { &mut a } else { b.get_or_insert_with(|| a.clone()) };
                apply_event(target, ev);
            }
            if msg.caught_up {
                break;
            }
        }
        let b = b.unwrap_or_else(|| a.clone());
        Ok((a, b))
    }
}

/// What `run` recorded for `account` in `d`: its score row as of the run and the
/// percentile the run's stored distribution gives it (what its history shows);
/// `None` when no row of the account precedes the run.
async fn recorded(
    scoring: &Scoring,
    run: &store::Run,
    account: &AccountId,
    d: Dimension,
) -> Result<Option<Recorded>, Error> {
    let Some(row) = store::scores_at(scoring.db(), &account.to_string(), run.run_id).await? else { return Ok(None) };
    let value = row.row.values[d.index()];
    let (levels, values) = parse_distribution(run, d)?;
    Ok(Some(Recorded { value, percentile: percentile_from(&levels, &values, value) }))
}
