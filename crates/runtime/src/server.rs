//! `serve`: one gRPC service on a bound listener, with health and reflection,
//! limits, authentication and TLS.

use std::{convert::Infallible, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{body::Body, server::NamedService, transport::Server};

use crate::auth::{Auth, Guard, RateLimit};
use crate::layer::AuthLayer;
use crate::metrics::GrpcMetricsLayer;
use crate::surface::SurfaceLayer;
use crate::tls::ServerTls;
use crate::{Error, Shutdown};

/// How long in-flight calls may take to finish after shutdown is signalled.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Transport limits every server applies (message sizes are per service: each
/// service's `grpc()` sets its decoding limit; tonic's default is 4 MiB).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a call (a server stream: until its response headers) may run, client
    /// streams (`IngestStream`) excepted; expiry answers DEADLINE_EXCEEDED. A client's
    /// shorter `grpc-timeout` wins (tonic answers CANCELLED "Timeout expired").
    pub request_timeout: Duration,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Bytes of request headers (metadata) per request.
    pub max_header_list_size: u32,
    /// Calls served at once per connection; more wait.
    pub concurrency_per_connection: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(120),
            max_concurrent_streams: 256,
            max_header_list_size: 16 * 1024,
            concurrency_per_connection: 256,
        }
    }
}

/// How a server runs. `Default` has authentication **disabled** (the crates'
/// own tests use it); the `lift` binary builds these from its flags.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub auth: Auth,
    /// Per-key token bucket (only with authentication on: it is keyed by key).
    pub rate_limit: Option<RateLimit>,
    pub limits: Limits,
    pub tls: Option<ServerTls>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { auth: Auth::Disabled, rate_limit: None, limits: Limits::default(), tls: None }
    }
}

/// [`serve_with`] with default options: no authentication, no TLS.
pub async fn serve<S>(listener: TcpListener, svc: S, shutdown: Shutdown) -> Result<(), Error>
where
    S: tower_service::Service<http::Request<Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    serve_with(listener, svc, shutdown, ServeOptions::default()).await
}

/// Serves `svc` on `listener` until `shutdown` fires: health reports SERVING for the
/// service (and the server as a whole), flips to NOT_SERVING on shutdown, then
/// in-flight calls drain for at most [`DRAIN_TIMEOUT`]. Every request passes the
/// authentication layer first (health and reflection are public), then the length
/// bounds ([`crate::bounds`]); every call is counted in the `grpc_server_*` metrics.
/// Reflection lists only `svc`, health and reflection.
pub async fn serve_with<S>(listener: TcpListener, svc: S, shutdown: Shutdown, opts: ServeOptions) -> Result<(), Error>
where
    S: tower_service::Service<http::Request<Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    serve_services(listener, svc, None::<S>, shutdown, opts).await
}

/// [`serve_with`] for a server that hosts a second service on the same port (ingestion
/// hosts `PrivacyService` beside `IngestService`): health reports both, reflection
/// lists both, and both pass the same authentication layer.
pub async fn serve_pair<S, P>(
    listener: TcpListener,
    svc: S,
    second: P,
    shutdown: Shutdown,
    opts: ServeOptions,
) -> Result<(), Error>
where
    S: tower_service::Service<http::Request<Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
    P: tower_service::Service<http::Request<Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
    P::Response: axum::response::IntoResponse,
    P::Future: Send + 'static,
{
    serve_services(listener, svc, Some(second), shutdown, opts).await
}

async fn serve_services<S, P>(
    listener: TcpListener,
    svc: S,
    second: Option<P>,
    shutdown: Shutdown,
    opts: ServeOptions,
) -> Result<(), Error>
where
    S: tower_service::Service<http::Request<Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
    P: tower_service::Service<http::Request<Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
    P::Response: axum::response::IntoResponse,
    P::Future: Send + 'static,
{
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let second_name = second.as_ref().map(|_| P::NAME);
    for name in std::iter::once(S::NAME).chain(second_name) {
        health_reporter.set_service_status(name, tonic_health::ServingStatus::Serving).await;
    }
    health_reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;

    let reflection_v1 = reflection_builder(S::NAME, second_name).build_v1()?;
    let reflection_v1alpha = reflection_builder(S::NAME, second_name).build_v1alpha()?;

    let addr = listener.local_addr().ok();
    let auth_on = matches!(opts.auth, Auth::Keys(_));
    tracing::info!(service = S::NAME, ?addr, auth = auth_on, tls = opts.tls.is_some(), "serving");
    if !auth_on {
        tracing::warn!(service = S::NAME, "authentication is disabled: every caller may call every method");
    }
    let drain = {
        let shutdown = shutdown.clone();
        let reporter = health_reporter.clone();
        async move {
            shutdown.wait().await;
            for name in std::iter::once(S::NAME).chain(second_name) {
                reporter.set_service_status(name, tonic_health::ServingStatus::NotServing).await;
            }
            reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
            tracing::info!(service = S::NAME, "draining");
        }
    };
    let limits = opts.limits;
    // The request timeout is applied in the layer (client streams excepted); tonic
    // still honours a client's grpc-timeout on every call.
    let mut builder = Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_header_list_size(limits.max_header_list_size)
        .concurrency_limit_per_connection(limits.concurrency_per_connection)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)));
    if let Some(tls) = &opts.tls {
        builder = builder.tls_config(tls.to_tonic())?;
    }
    let guard = Arc::new(Guard::new(opts.auth, opts.rate_limit));
    crate::metrics::install();
    // Outermost first: every call is traced (when traces are exported), counted (refusals included), then authenticated,
    // then checked against the length bounds.
    let server = builder
        .layer(crate::trace::TraceLayer)
        .layer(GrpcMetricsLayer)
        .layer(AuthLayer::new(guard, limits.request_timeout))
        .layer(SurfaceLayer)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(svc)
        .add_optional_service(second)
        // Without TCP_NODELAY a response written in several segments waits for the
        // peer's delayed ACK (about 40 ms on Linux loopback) before its last one goes out.
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), drain);
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => r?,
        () = async { shutdown.wait().await; tokio::time::sleep(DRAIN_TIMEOUT).await } => {
            tracing::warn!(service = S::NAME, "drain timed out; closing remaining calls");
        }
    }
    Ok(())
}

/// The services reflection lists on a port serving `service`: that one, health, and
/// reflection itself (v1 and v1alpha). The whole descriptor set stays registered so
/// every type resolves, but a client listing services sees only what this port answers.
pub const fn listed_services(service: &'static str) -> [&'static str; 4] {
    [
        service,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]
}

fn reflection_builder(
    service: &'static str,
    second: Option<&'static str>,
) -> tonic_reflection::server::Builder<'static> {
    let mut b = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(lift_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .include_reflection_service(false);
    for name in listed_services(service).into_iter().chain(second) {
        b = b.with_service_name(name);
    }
    b
}
