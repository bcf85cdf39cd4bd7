//! `lift.ingest.v1.IngestService` over tonic: thin handlers around [`Ingest`].

use lift_proto::convert::prelude::*;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use lift_domain::{EventKind, FieldViolation};
use lift_proto::ingest::v1 as pb;
use lift_proto::ingest::v1::ingest_service_server::{IngestService, IngestServiceServer};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::{Error, Ingest};

/// The tonic service type [`Ingest::grpc`] returns.
pub type IngestServer = IngestServiceServer<Ingest>;

/// Largest message accepted: a full batch of large events.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

impl Ingest {
    /// This service as a tonic server, ready for `lift_runtime::serve`.
    pub fn grpc(&self) -> IngestServer {
        IngestServiceServer::new(self.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES)
    }
}

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for Ingest {
    /// Answers OK with one result per event, rejected ones included, whenever at least
    /// one event was valid; when every event of a non-empty batch is invalid there is
    /// nothing to acknowledge, so it answers INVALID_ARGUMENT with BadRequest details.
    #[tracing::instrument(skip_all, fields(events = req.get_ref().events.len()))]
    async fn ingest_batch(
        &self,
        req: Request<pb::IngestBatchRequest>,
    ) -> Result<Response<pb::IngestBatchResponse>, Status> {
        let events = req.into_inner().events;
        let out = self.ingest(&events).await?;
        if !events.is_empty() && out.rejected as usize == events.len() {
            return Err(Error::Invalid(out.violations()).into());
        }
        tracing::debug!(accepted = out.accepted, duplicates = out.duplicates, rejected = out.rejected, "batch");
        Ok(Response::new(out.to_proto()))
    }

    /// Each message is one batch, committed before the next is read; a failure ends
    /// the call with the batches before it stored (a retry is safe: idempotent).
    #[tracing::instrument(skip_all)]
    async fn ingest_stream(
        &self,
        req: Request<Streaming<pb::IngestStreamRequest>>,
    ) -> Result<Response<pb::IngestStreamResponse>, Status> {
        let mut stream = req.into_inner();
        let mut resp = pb::IngestStreamResponse::default();
        let mut base: u64 = 0;
        while let Some(batch) = stream.next().await {
            let events = batch?.events;
            let out = self.ingest(&events).await?;
            resp.accepted += u64::from(out.accepted);
            resp.duplicates += u64::from(out.duplicates);
            resp.rejected += u64::from(out.rejected);
            resp.batches += 1;
            let room = self.config().max_stream_rejections.saturating_sub(resp.rejections.len());
            resp.rejections.extend(
                out.results.into_iter().filter(|r| r.outcome == pb::EventOutcome::Rejected as i32).take(room).map(
                    |mut r| {
                        let global = base + u64::from(r.index);
                        r.index = u32::try_from(global).unwrap_or(u32::MAX);
                        let local = format!("events[{}]", global - base);
                        for v in &mut r.violations {
                            if let Some(rest) = v.field.strip_prefix(&local) {
                                v.field = format!("events[{global}]{rest}");
                            }
                        }
                        r
                    },
                ),
            );
            base += events.len() as u64;
        }
        tracing::info!(
            accepted = resp.accepted,
            duplicates = resp.duplicates,
            rejected = resp.rejected,
            batches = resp.batches,
            "stream"
        );
        Ok(Response::new(resp))
    }

    type SubscribeStream = SubscribeStream;

    #[tracing::instrument(skip_all, fields(after = req.get_ref().after_offset, kinds = req.get_ref().kinds.len()))]
    async fn subscribe(&self, req: Request<pb::SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        let req = req.into_inner();
        let mut kinds = Vec::with_capacity(req.kinds.len());
        let mut violations = Vec::new();
        for (i, k) in req.kinds.iter().enumerate() {
            match EventKind::from_proto(*k) {
                Some(k) => kinds.push(k),
                None => {
                    violations.push(FieldViolation::new(format!("kinds[{i}]"), format!("{k} is not an event kind")))
                }
            }
        }
        if !violations.is_empty() {
            return Err(Error::Invalid(violations).into());
        }
        let rx = self.tail(req.after_offset, kinds, req.stop_at_head);
        Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(|r| r.map_err(Status::from)))))
    }

    #[tracing::instrument(skip_all, fields(links = req.get_ref().links.len()))]
    async fn register_links(
        &self,
        req: Request<pb::RegisterLinksRequest>,
    ) -> Result<Response<pb::RegisterLinksResponse>, Status> {
        let r = Ingest::register_links(self, &req.into_inner().links).await?;
        Ok(Response::new(pb::RegisterLinksResponse { registered: r.registered, unchanged: r.unchanged }))
    }

    #[tracing::instrument(skip_all)]
    async fn resolve_links(
        &self,
        req: Request<pb::ResolveLinksRequest>,
    ) -> Result<Response<pb::ResolveLinksResponse>, Status> {
        let links = Ingest::resolve_links(self, &req.into_inner().links).await?;
        Ok(Response::new(pb::ResolveLinksResponse { links }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_ledger_info(
        &self,
        _req: Request<pb::GetLedgerInfoRequest>,
    ) -> Result<Response<pb::GetLedgerInfoResponse>, Status> {
        Ok(Response::new(self.ledger_info().await?))
    }
}
