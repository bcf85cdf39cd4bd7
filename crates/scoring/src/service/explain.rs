//! `ExplainScoreChange`: replays the ledger up to both runs and decomposes the
//! change exactly (see `engine::explain`).
//!
//! The replay costs one pass over the ledger prefix per request; explanations
//! are rare next to reads, and a replay keeps them a pure function of
//! (ledger, model) rather than of whatever the consumer holds in memory.

use lift_domain::LedgerEntry;
use lift_proto::ingest::v1::SubscribeRequest;
use lift_proto::scoring::v1 as pb;
use lift_store::scoring as store;

use super::{Scoring, account_ref, dimension};
use crate::Error;
use crate::engine::explain::{Cause, Side, explain};
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
                    } as i32,
                    delta: c.delta,
                    description: c.description,
                    event_offsets: c.event_offsets,
                    event_count: c.event_count,
                })
                .collect(),
            from_model_version: e.from_model,
            to_model_version: e.to_model,
        })
    }

    /// States of the ledger prefixes up to `from` and up to `to` (`from ≤ to`).
    async fn replay(&self, from: u64, to: u64) -> Result<(State, State), Error> {
        let mut client = self.inner.ingest.clone().ok_or_else(|| {
            Error::Unavailable("this scoring server was built without a ledger client; explanations need one".into())
        })?;
        let mut stream = client
            .subscribe(SubscribeRequest { after_offset: 0, kinds: Vec::new(), stop_at_head: true })
            .await?
            .into_inner();
        let mut a = State::new();
        let mut b: Option<State> = None;
        'read: while let Some(msg) = stream.message().await? {
            for ev in &msg.events {
                if ev.offset > to {
                    break 'read;
                }
                let target = if ev.offset <= from { &mut a } else { b.get_or_insert_with(|| a.clone()) };
                match LedgerEntry::from_proto(ev) {
                    Ok(entry) => {
                        target.apply(&entry);
                    }
                    Err(_) => {
                        target.skip(ev.offset);
                    }
                }
            }
            if msg.caught_up {
                break;
            }
        }
        let b = b.unwrap_or_else(|| a.clone());
        Ok((a, b))
    }
}
