//! The retention horizon: events that occurred before a cutoff are removed by
//! the erasure machinery (`lift_store::privacy::erase_rows`), counted, audited,
//! and announced by one marker event.
//!
//! A run, in one append transaction holding the ledger lock: find every live row
//! that occurred before the cutoff (privacy markers excepted), rewrite each as a
//! tombstone exactly as an erasure does (event id hashed, account and attribution
//! cleared, body reduced to source, time and the hashed id; replays of the
//! original are answered as duplicates of the tombstone), delete their
//! click-index rows, append an erasure marker whose `retention_before` is the
//! cutoff (its subject hash is [`lift_store::privacy::retention_hash`], which
//! names no person), and write an audit row with action `retention`. A run that
//! finds nothing writes nothing. Ledger consumers treat the marker as they treat
//! an erasure: scoring purges its checkpoints and replays the retained ledger.
//!
//! On a JetStream ledger a run removes the same events (occurred before the
//! cutoff, markers excepted) by erasing their messages instead of rewriting rows
//! (`super::jetstream`), with the same marker, click-index deletions and audit row.

use std::time::Duration;

use lift_domain::event::Erasure;
use lift_domain::{Event, EventBody, Micros};
use lift_proto::convert::to_timestamp;
use lift_proto::ingest::v1 as pb;
use lift_runtime::Shutdown;
use lift_store::privacy::{self as store, Actor, Expired, Tombstone, tombstone_id};
use lift_store::{DatabaseConnection, Error, ledger};
use prost::Message;

use super::scan::MARKER_SOURCE;
use crate::ledger::sql;
use crate::{Ingest, Retention};

/// What one retention run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retained {
    /// Events that occurred before this time (µs since the epoch) were removed.
    pub cutoff: Micros,
    /// Ledger events rewritten as tombstones.
    pub events_removed: u64,
    /// Their click-index rows deleted.
    pub clicks_deleted: u64,
    /// The offsets of the removed events, ascending.
    pub offsets: Vec<u64>,
    /// The marker's offset; `None` when nothing was removed (nothing was written).
    pub marker_offset: Option<u64>,
}

/// Who the audit log names for a scheduled run.
pub(super) fn actor() -> Actor {
    Actor { key_id: "retention".to_owned(), scope: "schedule".to_owned() }
}

fn tombstone(e: &Expired) -> Tombstone {
    let id = tombstone_id(&e.source, &e.event_id);
    let body = pb::Event {
        event_id: id.clone(),
        source: e.source.clone(),
        occurred_at: Some(to_timestamp(e.occurred_at)),
        kind: None,
    };
    Tombstone { offset: e.offset, event_id: id, body: body.encode_to_vec() }
}

/// Removes every event that occurred before `cutoff` (see the module docs).
pub(crate) async fn retain(db: &DatabaseConnection, cutoff: Micros, now: Micros) -> Result<Retained, Error> {
    let mut appender = ledger::Appender::begin(db).await?;
    let expired = store::expired(appender.txn(), cutoff).await?;
    if expired.is_empty() {
        // Nothing written: dropping the transaction rolls it back.
        return Ok(Retained { cutoff, ..Retained::default() });
    }
    let tombstones: Vec<Tombstone> = expired.iter().map(tombstone).collect();
    let removed = store::erase_rows(appender.txn(), &tombstones, &[], now).await?;
    let hash = store::retention_hash(cutoff);
    let events_removed = expired.len() as u64;
    let marker = Event {
        event_id: format!("retention-{cutoff}-{now}"),
        source: MARKER_SOURCE.to_owned(),
        occurred_at: now,
        body: EventBody::Erasure(Erasure {
            subject_hash: hash.clone(),
            events_erased: events_removed,
            retention_before: Some(cutoff),
        }),
    };
    let marker = [sql::encode(&marker)];
    let plan = appender.plan(&marker).await?;
    appender.write(&marker, &plan, &[]).await?;
    store::audit(appender.txn(), &actor(), "retention", &hash, events_removed, now).await?;
    appender.commit().await?;
    Ok(Retained {
        cutoff,
        events_removed,
        clicks_deleted: removed.clicks_deleted,
        offsets: expired.iter().map(|e| e.offset).collect(),
        marker_offset: plan.first().map(|o| o.offset()),
    })
}

impl Ingest {
    /// Runs retention once with cutoff `now - horizon`, holding the append queue
    /// (like an erasure), and wakes subscribers for the marker. Counted in
    /// `lift_privacy_retention_events_removed_total` and
    /// `lift_privacy_retention_runs_total`, and logged.
    pub async fn retain(&self, horizon: Duration, now: Micros) -> Result<Retained, crate::Error> {
        let cutoff = Retention { horizon, every: Duration::from_secs(1) }.cutoff(now);
        let _queued = self.append_queue().lock().await;
        let r = match self.ledger() {
            crate::Ledger::Sql => retain(self.db(), cutoff, now).await?,
            crate::Ledger::Nats(n) => super::jetstream::retain(self.db(), n, cutoff, now).await?,
        };
        metrics::counter!("lift_privacy_retention_runs_total").increment(1);
        metrics::counter!("lift_privacy_retention_events_removed_total").increment(r.events_removed);
        if let Some(offset) = r.marker_offset {
            self.erased(offset);
        }
        tracing::info!(
            cutoff = r.cutoff,
            events_removed = r.events_removed,
            clicks_deleted = r.clicks_deleted,
            marker = r.marker_offset,
            "retention: removed events older than the horizon"
        );
        Ok(r)
    }

    /// Runs retention every `retention.every` (the first run at once) until
    /// `shutdown`. A failed run is logged and retried at the next tick.
    pub async fn run_retention(&self, retention: Retention, shutdown: Shutdown) {
        let mut ticks = tokio::time::interval(retention.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                _ = ticks.tick() => {}
            }
            if let Err(e) = self.retain(retention.horizon, lift_domain::time::now()).await {
                tracing::error!(error = %e, "retention run failed; retrying at the next interval");
            }
        }
    }
}
