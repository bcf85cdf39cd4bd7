//! Moves spooled events to ingestion: batches of the oldest undelivered events over
//! `IngestBatch`, acknowledged in the spool only after ingestion answered. While ingestion
//! is unreachable it retries with capped exponential backoff; nothing is dropped.

use std::sync::Arc;
use std::time::Duration;

use lift_proto::ingest::v1::{self as pb, ingest_service_client::IngestServiceClient};
use lift_runtime::Shutdown;
use lift_runtime::client::Channel;

use crate::spool::Spool;

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Events per `IngestBatch` call.
    pub batch: usize,
    /// Bound on one call.
    pub call_timeout: Duration,
    /// First and longest wait between failed attempts.
    pub backoff: (Duration, Duration),
    /// How long the last flush at shutdown may take.
    pub drain: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            batch: 500,
            call_timeout: Duration::from_secs(10),
            backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            drain: Duration::from_secs(5),
        }
    }
}

/// Delivers until `shutdown`, then flushes what it can within `cfg.drain`.
pub async fn run(spool: Arc<Spool>, ingest: IngestServiceClient<Channel>, cfg: DeliveryConfig, shutdown: Shutdown) {
    let mut backoff = cfg.backoff.0;
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        if shutdown.is_triggered() {
            break;
        }
        let batch = spool.peek(cfg.batch);
        if batch.is_empty() {
            tokio::select! {
                () = spool.pushed.notified() => {}
                () = shutdown.wait() => break,
                // A push racing the emptiness check is picked up here at the latest.
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            continue;
        }
        match send(&ingest, &batch, cfg.call_timeout).await {
            Ok(()) => {
                if let Some(since) = failing_since.take() {
                    tracing::info!(after = ?since.elapsed(), pending = spool.len(), "ingestion reachable again; delivering the spool");
                }
                backoff = cfg.backoff.0;
                if let Err(e) = spool.ack(batch.len()) {
                    tracing::error!(error = %e, "spool: recording a delivered batch failed; it will be sent again (ingestion dedups)");
                }
            }
            Err(e) => {
                if failing_since.is_none() {
                    failing_since = Some(tokio::time::Instant::now());
                    tracing::warn!(error = %e, pending = spool.len(), "ingestion unreachable; events stay in the spool and are retried");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.wait() => break,
                }
                backoff = (backoff * 2).min(cfg.backoff.1);
            }
        }
    }
    // Last flush, bounded: what remains stays in the spool file for the next start.
    let drain = async {
        loop {
            let batch = spool.peek(cfg.batch);
            if batch.is_empty() || send(&ingest, &batch, cfg.call_timeout).await.is_err() {
                break;
            }
            if spool.ack(batch.len()).is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(cfg.drain, drain).await;
    if !spool.is_empty() {
        tracing::info!(
            pending = spool.len(),
            "stopping with undelivered events in the spool; they go out on the next start"
        );
    }
}

/// One `IngestBatch`. Rejected events (invalid: retrying cannot help) are logged and
/// counted as delivered; accepted and duplicate ones are on the ledger.
async fn send(
    ingest: &IngestServiceClient<Channel>,
    batch: &[Arc<pb::Event>],
    timeout: Duration,
) -> Result<(), String> {
    let mut client = ingest.clone();
    let req = pb::IngestBatchRequest { events: batch.iter().map(|e| pb::Event::clone(e)).collect() };
    let resp = match tokio::time::timeout(timeout, client.ingest_batch(req)).await {
        Err(_) => return Err(format!("no answer within {timeout:?}")),
        Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => {
            // Every event of the batch is invalid (the server says which): nothing to retry.
            tracing::error!(status = %status.message(), events = batch.len(), "ingestion rejected a whole spooled batch");
            metrics::counter!("lift_collect_events_rejected_total").increment(batch.len() as u64);
            return Ok(());
        }
        Ok(Err(status)) => return Err(format!("{}: {}", status.code(), status.message())),
        Ok(Ok(r)) => r.into_inner(),
    };
    for r in resp.results.iter().filter(|r| r.outcome == pb::EventOutcome::Rejected as i32) {
        let id = batch.get(r.index as usize).map_or("?", |e| e.event_id.as_str());
        tracing::error!(event_id = id, violations = ?r.violations, "ingestion rejected a spooled event");
    }
    metrics::counter!("lift_collect_events_delivered_total").increment(u64::from(resp.accepted));
    metrics::counter!("lift_collect_events_duplicate_total").increment(u64::from(resp.duplicates));
    metrics::counter!("lift_collect_events_rejected_total").increment(u64::from(resp.rejected));
    Ok(())
}
