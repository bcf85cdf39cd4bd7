//! Distributed traces as an operator's collector receives them: one
//! `CreateOffers` call is one trace through matching and the scoring and
//! ingestion calls it makes, linked parent to child by `traceparent`.
//!
//! The tracing subscriber is process-wide, so this file holds one test.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::{Context, ensure};
use lift_cli::stack::Databases;
use lift_runtime::telemetry::{LogFormat, TraceExport};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// One span as the collector got it.
#[derive(Debug, Clone)]
struct Received {
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    /// `rpc.service` and `rpc.method` of a `grpc.server` span (empty otherwise).
    service: String,
    method: String,
    /// The resource's `service.name`.
    resource: String,
}

/// An OTLP/gRPC trace collector that keeps what it receives.
#[derive(Debug, Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

fn text(attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue], key: &str) -> String {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .unwrap_or_default()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut got = Vec::new();
        for rs in req.into_inner().resource_spans {
            let resource = rs.resource.as_ref().map(|r| text(&r.attributes, "service.name")).unwrap_or_default();
            for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                got.push(Received {
                    service: text(&s.attributes, "rpc.service"),
                    method: text(&s.attributes, "rpc.method"),
                    trace_id: s.trace_id,
                    span_id: s.span_id,
                    parent_span_id: s.parent_span_id,
                    resource: resource.clone(),
                });
            }
        }
        self.spans.lock().map_err(|_| Status::internal("poisoned"))?.extend(got);
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_offers_is_one_trace_through_the_three_services() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let collector = Collector::default();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let telemetry = lift_runtime::telemetry::init_with(
        LogFormat::Pretty,
        "warn",
        Some(TraceExport { endpoint, service_name: "lift-test".into() }),
    )?;
    ensure!(lift_runtime::trace::enabled(), "trace export did not switch on");

    let offered =
        lift_tests::campaign::offered_campaign(&Databases::in_memory(), "https://shop.example/landing").await?;
    offered.stack.stop().await?;
    // Flushing waits on the collector's answer: off the async workers.
    let telemetry = tokio::task::spawn_blocking(move || {
        telemetry.flush();
        telemetry
    })
    .await?;

    let spans = collector.spans.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let offers: Vec<&Received> = spans.iter().filter(|s| s.method == "CreateOffers").collect();
    ensure!(offers.len() == 1, "expected one CreateOffers span, got {} of {} spans", offers.len(), spans.len());
    let root = offers[0];
    ensure!(root.service == "lift.matching.v1.MatchingService", "{root:?}");
    ensure!(root.resource == "lift-test", "service.name {:?}", root.resource);
    let trace: Vec<&Received> = spans.iter().filter(|s| s.trace_id == root.trace_id).collect();
    let services: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).filter(|s| !s.is_empty()).collect();
    for want in ["lift.matching.v1.MatchingService", "lift.scoring.v1.ScoringService", "lift.ingest.v1.IngestService"] {
        ensure!(services.contains(want), "the CreateOffers trace has no {want} span: {services:?}");
    }
    // Every span of the trace but the call's own descends from it: the chain of
    // parents of each scoring and ingestion span reaches the CreateOffers span.
    let by_id: HashMap<&[u8], &Received> = trace.iter().map(|s| (s.span_id.as_slice(), *s)).collect();
    for s in trace.iter().filter(|s| !s.service.is_empty() && s.span_id != root.span_id) {
        let mut at = *s;
        let mut hops = 0;
        while at.span_id != root.span_id {
            at = by_id
                .get(at.parent_span_id.as_slice())
                .copied()
                .with_context(|| format!("{}/{} is not a descendant of CreateOffers", s.service, s.method))?;
            hops += 1;
            ensure!(hops < 64, "a parent cycle");
        }
    }
    // Other calls (the score cache's refreshes, the test's own setup) are traces of their own.
    let other_roots = spans.iter().filter(|s| s.parent_span_id.is_empty() && s.trace_id != root.trace_id).count();
    ensure!(other_roots > 0, "every span landed in one trace");
    drop(telemetry);
    Ok(())
}
