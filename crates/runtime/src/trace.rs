//! Distributed traces: W3C `traceparent` on every gRPC hop.
//!
//! When [`crate::telemetry`] exports traces, every server call runs inside a
//! `grpc.server` span whose parent is the caller's `traceparent` header, and
//! every outgoing call ([`crate::client::Credentials`]) carries the current
//! span's context in that header. So one `CreateOffers` is one trace through
//! matching and the scoring and ingestion calls it makes. Without export
//! nothing is added: no span per call, no header.

use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Set once traces are exported; read on every call.
static ENABLED: AtomicBool = AtomicBool::new(false);

pub(crate) fn enable() {
    ENABLED.store(true, Ordering::Release);
}

/// Whether calls are traced (an OTLP exporter is installed).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Adds the current span's context to an outgoing call's metadata as
/// `traceparent` (and `tracestate`). A caller that already set one keeps it.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    if !enabled() || metadata.contains_key("traceparent") {
        return;
    }
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut MetadataInjector(metadata));
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// `("lift.scoring.v1.ScoringService", "SelectSeeds")` from a gRPC path.
fn service_and_method(path: &str) -> (&str, &str) {
    path.trim_start_matches('/').split_once('/').unwrap_or((path, ""))
}

/// Runs each call in a `grpc.server` span continuing the caller's trace.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> tower::Layer<S> for TraceLayer {
    type Service = TraceService<S>;
    fn layer(&self, inner: S) -> TraceService<S> {
        TraceService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct TraceService<S> {
    inner: S,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for TraceService<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower_service::Service<http::Request<B>> for TraceService<S>
where
    S: tower_service::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::Either<tracing::instrument::Instrumented<S::Future>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if !enabled() {
            return futures::future::Either::Right(self.inner.call(req));
        }
        let (service, method) = service_and_method(req.uri().path());
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
        );
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(req.headers()));
        // A missing or malformed header starts a new trace; that is not an error.
        let _ = span.set_parent(parent);
        futures::future::Either::Left(self.inner.call(req).instrument(span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_grpc_paths() {
        assert_eq!(
            service_and_method("/lift.scoring.v1.ScoringService/SelectSeeds"),
            ("lift.scoring.v1.ScoringService", "SelectSeeds")
        );
        assert_eq!(service_and_method("/odd"), ("/odd", ""));
    }
}
