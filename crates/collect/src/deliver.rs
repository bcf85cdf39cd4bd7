//! Moves spooled events to ingestion: batches of the oldest undelivered events over
//! `IngestBatch`, acknowledged in the spool only after ingestion answered. While ingestion
//! is unreachable it retries with capped exponential backoff; nothing is dropped.
//!
//! The request is written from the spool's encoded events as they are ([`EncodedBatch`]):
//! `IngestBatchRequest` is nothing but its events, each a length-delimited field 1, so the
//! bytes on the wire are exactly those `IngestServiceClient::ingest_batch` would send, without
//! decoding, copying and encoding every event again.

use std::sync::Arc;
use std::time::Duration;

use lift_proto::ingest::v1 as pb;
use lift_runtime::Shutdown;
use lift_runtime::client::Channel;
use prost::Message;
use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};

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
            batch: 2_000,
            call_timeout: Duration::from_secs(10),
            backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            drain: Duration::from_secs(5),
        }
    }
}

/// Delivers until `shutdown`, then flushes what it can within `cfg.drain`.
pub async fn run(spool: Arc<Spool>, ingest: Channel, cfg: DeliveryConfig, shutdown: Shutdown) {
    let ingest = tonic::client::Grpc::new(ingest);
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

/// `lift.ingest.v1.IngestBatchRequest` from events already encoded: `events` is field 1,
/// repeated, length-delimited. Only ever encoded (ingestion answers with its own type).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct EncodedBatch {
    pub(crate) events: Vec<Bytes>,
}

const EVENTS_FIELD: u32 = 1;

impl Message for EncodedBatch {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for e in &self.events {
            encoding::encode_key(EVENTS_FIELD, WireType::LengthDelimited, buf);
            encoding::encode_varint(e.len() as u64, buf);
            buf.put_slice(e);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        if tag == EVENTS_FIELD {
            encoding::bytes::merge_repeated(wire_type, &mut self.events, buf, ctx)
        } else {
            encoding::skip_field(wire_type, tag, buf, ctx)
        }
    }

    fn encoded_len(&self) -> usize {
        self.events
            .iter()
            .map(|e| encoding::key_len(EVENTS_FIELD) + encoding::encoded_len_varint(e.len() as u64) + e.len())
            .sum()
    }

    fn clear(&mut self) {
        self.events.clear();
    }
}

/// One `IngestBatch`. Rejected events (invalid: retrying cannot help) are logged and
/// counted as delivered; accepted and duplicate ones are on the ledger.
async fn send(ingest: &tonic::client::Grpc<Channel>, batch: &[Bytes], timeout: Duration) -> Result<(), String> {
    let mut client = ingest.clone();
    let call = async move {
        client.ready().await.map_err(|e| tonic::Status::unavailable(format!("ingestion not ready: {e}")))?;
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/lift.ingest.v1.IngestService/IngestBatch");
        let codec = tonic_prost::ProstCodec::<EncodedBatch, pb::IngestBatchResponse>::default();
        client.unary(tonic::Request::new(EncodedBatch { events: batch.to_vec() }), path, codec).await
    };
    let resp = match tokio::time::timeout(timeout, call).await {
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
        let id = batch.get(r.index as usize).and_then(|e| pb::Event::decode(e.clone()).ok()).map(|e| e.event_id);
        tracing::error!(event_id = id.as_deref().unwrap_or("?"), violations = ?r.violations, "ingestion rejected a spooled event");
    }
    metrics::counter!("lift_collect_events_delivered_total").increment(u64::from(resp.accepted));
    metrics::counter!("lift_collect_events_duplicate_total").increment(u64::from(resp.duplicates));
    metrics::counter!("lift_collect_events_rejected_total").increment(u64::from(resp.rejected));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click(i: u32) -> pb::Event {
        pb::Event {
            event_id: format!("clk-{i}"),
            source: "lift-collect".into(),
            occurred_at: Some(lift_proto::Timestamp { seconds: 1_700_000_000 + i64::from(i), nanos: 7 }),
            kind: Some(pb::event::Kind::LinkClick(pb::LinkClick {
                link: "lift.to/abc".into(),
                visitor_id: format!("v{i}"),
                landing: "https://shop.example/x?utm_source=lift".into(),
                agent_class: "desktop".into(),
                not_counted: if i.is_multiple_of(2) { String::new() } else { "burst from one visitor".into() },
            })),
        }
    }

    /// Pins the wire: a batch written from encoded events is byte for byte the
    /// `IngestBatchRequest` of those events (empty, one, many), and decodes back to it.
    #[test]
    fn encoded_batch_is_the_request_on_the_wire() {
        for n in [0, 1, 3, 300] {
            let events: Vec<pb::Event> = (0..n).map(click).collect();
            let request = pb::IngestBatchRequest { events: events.clone() };
            let batch = EncodedBatch { events: events.iter().map(|e| Bytes::from(e.encode_to_vec())).collect() };
            assert_eq!(batch.encoded_len(), request.encoded_len());
            assert_eq!(batch.encode_to_vec(), request.encode_to_vec());
            let back = pb::IngestBatchRequest::decode(batch.encode_to_vec().as_slice()).expect("decodes");
            assert_eq!(back, request);
            assert_eq!(EncodedBatch::decode(request.encode_to_vec().as_slice()).expect("decodes"), batch);
        }
    }
}
