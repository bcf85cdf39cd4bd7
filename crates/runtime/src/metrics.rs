//! Prometheus metrics: one process-wide recorder, a `/metrics` endpoint per
//! service, and the tower layer that counts every gRPC call under the names
//! existing gRPC dashboards use.
//!
//! - `grpc_server_started_total{grpc_type,grpc_service,grpc_method}`
//! - `grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}`
//! - `grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}` (histogram,
//!   [`SECONDS_BUCKETS`])
//! - `grpc_server_msg_received_total` and `grpc_server_msg_sent_total`
//!   `{grpc_type,grpc_service,grpc_method}`: messages read from requests and written
//!   in responses (one each for a unary call; every message of a stream)
//!
//! Services record their own `lift_*` metrics through the `metrics` macros; every
//! name ending in `_seconds` gets the same buckets. The recorder is global to the
//! process (the `metrics` facade has one), so in a process running several services
//! every endpoint renders all of them; the labels tell them apart.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::{Code, Status};

use crate::Shutdown;

mod messages;
use messages::{Counted, Framing};

/// Histogram buckets (seconds) for call and run durations: 1 ms to 5 min.
pub const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's Prometheus recorder (once; later calls return the same
/// handle). `None` when another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the Prometheus recorder; metrics are off");
                    None
                }
            }
        })
        .clone()
}

/// The current metrics in Prometheus text format (empty when no recorder is installed).
pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}

/// Serves `GET /metrics` (Prometheus text) on `listener` until `shutdown` fires.
pub async fn serve_metrics(listener: TcpListener, shutdown: Shutdown) -> Result<(), crate::Error> {
    let handle = install();
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "serving Prometheus metrics on /metrics");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                let body = handle.as_ref().map(PrometheusHandle::render).unwrap_or_default();
                ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
        .map_err(|source| crate::Error::Io { path: "metrics listener".into(), source })
}

/// The go-grpc name of a status code, as `grpc_code` labels spell it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// `(grpc_type, grpc_service, grpc_method)` of a request path; paths that name no
/// method this server knows share `unknown` labels, so junk cannot grow the series.
pub fn call_labels(path: &str) -> (&'static str, String, String) {
    let known = path.strip_prefix('/').and_then(|p| p.split_once('/'));
    let Some((service, method)) = known else { return ("unknown", "unknown".into(), "unknown".into()) };
    let kind = match service {
        "grpc.health.v1.Health" => match method {
            "Check" => Some("unary"),
            "Watch" => Some("server_stream"),
            _ => None,
        },
        "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection" => {
            (method == "ServerReflectionInfo").then_some("bidi_stream")
        }
        _ => crate::bounds::method(service, method).map(|m| match (m.is_client_streaming(), m.is_server_streaming()) {
            (false, false) => "unary",
            (true, false) => "client_stream",
            (false, true) => "server_stream",
            (true, true) => "bidi_stream",
        }),
    };
    match kind {
        Some(k) => (k, service.to_owned(), method.to_owned()),
        None => ("unknown", "unknown".into(), "unknown".into()),
    }
}

/// Wraps a service in [`GrpcMetricsService`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;
    fn layer(&self, inner: S) -> GrpcMetricsService<S> {
        GrpcMetricsService { inner }
    }
}

/// Counts calls as they start and as they finish (with their status), and times them.
#[derive(Debug, Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
}

impl<S, B> tower_service::Service<http::Request<B>> for GrpcMetricsService<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Unpin + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (kind, service, method) = call_labels(req.uri().path());
        let call = Call { kind, service, method, started: Instant::now() };
        let labels = call.labels();
        metrics::counter!("grpc_server_started_total", &labels).increment(1);
        let received = metrics::counter!("grpc_server_msg_received_total", &labels);
        let req = req.map(|inner| Body::new(Counted { inner, framing: Framing::default(), counter: received }));
        Box::pin(async move {
            let resp = inner.call(req).await?;
            // A trailers-only answer (every refusal, and errors before the first message)
            // carries its status in the headers.
            if let Some(status) = Status::from_header_map(resp.headers()) {
                call.finish(status.code());
                return Ok(resp);
            }
            let (parts, body) = resp.into_parts();
            let sent = metrics::counter!("grpc_server_msg_sent_total", &labels);
            let observed = Observed { inner: body, call: Some(call), framing: Framing::default(), sent };
            Ok(http::Response::from_parts(parts, Body::new(observed)))
        })
    }
}

#[derive(Debug)]
struct Call {
    kind: &'static str,
    service: String,
    method: String,
    started: Instant,
}

impl Call {
    fn labels(&self) -> [(&'static str, String); 3] {
        [
            ("grpc_type", self.kind.to_owned()),
            ("grpc_service", self.service.clone()),
            ("grpc_method", self.method.clone()),
        ]
    }

    fn finish(self, code: Code) {
        let labels = self.labels();
        metrics::histogram!("grpc_server_handling_seconds", &labels).record(self.started.elapsed().as_secs_f64());
        let [a, b, c] = labels;
        metrics::counter!("grpc_server_handled_total", &[a, b, c, ("grpc_code", code_name(code).to_owned())])
            .increment(1);
    }
}

/// A response body that records the call when its trailers (with `grpc-status`) pass,
/// or as CANCELLED when the body is dropped first (the client went away).
#[derive(Debug)]
struct Observed {
    inner: Body,
    call: Option<Call>,
    framing: Framing,
    sent: metrics::Counter,
}

impl http_body::Body for Observed {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = self.framing.feed(data);
                    self.sent.increment(n);
                }
                if let Some(trailers) = frame.trailers_ref() {
                    let code = Status::from_header_map(trailers).map_or(Code::Ok, |s| s.code());
                    if let Some(call) = self.call.take() {
                        call.finish(code);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = self.call.take() {
                    call.finish(Code::Internal);
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = self.call.take() {
                    call.finish(Code::Unknown);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish(Code::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the labels: known methods by their type, junk paths folded into `unknown`.
    #[test]
    fn labels_of_paths() {
        assert_eq!(call_labels("/grpc.health.v1.Health/Check").0, "unary");
        assert_eq!(call_labels("/lift.ingest.v1.IngestService/IngestStream").0, "client_stream");
        assert_eq!(call_labels("/lift.ingest.v1.IngestService/Subscribe").0, "server_stream");
        let (k, s, m) = call_labels("/lift.matching.v1.MatchingService/CreateOffers");
        assert_eq!((k, s.as_str(), m.as_str()), ("unary", "lift.matching.v1.MatchingService", "CreateOffers"));
        assert_eq!(call_labels("/lift.matching.v1.MatchingService/Nope").1, "unknown");
        assert_eq!(call_labels("/x/y/z").1, "unknown");
        assert_eq!(code_name(Code::Cancelled), "Canceled");
    }
}
