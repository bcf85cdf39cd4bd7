//! `serve`: one gRPC service on a bound listener, with health and reflection.

use std::{convert::Infallible, time::Duration};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{body::Body, server::NamedService, transport::Server};

use crate::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// How long in-flight calls may take to finish after shutdown is signalled.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `svc` on `listener` until `shutdown` fires: health reports SERVING for the
/// service (and the server as a whole), flips to NOT_SERVING on shutdown, then
/// in-flight calls drain for at most [`DRAIN_TIMEOUT`].
pub async fn serve<S>(listener: TcpListener, svc: S, shutdown: Shutdown) -> Result<(), ServeError>
where
    S: tower_service::Service<http::Request<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_service_status(S::NAME, tonic_health::ServingStatus::Serving).await;
    health_reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(lift_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(lift_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let addr = listener.local_addr().ok();
    tracing::info!(service = S::NAME, ?addr, "serving");
    let drain = {
        let shutdown = shutdown.clone();
        let reporter = health_reporter.clone();
        async move {
            shutdown.wait().await;
            reporter.set_service_status(S::NAME, tonic_health::ServingStatus::NotServing).await;
            reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
            tracing::info!(service = S::NAME, "draining");
        }
    };
    let server = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(svc)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), drain);
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => r?,
        () = async { shutdown.wait().await; tokio::time::sleep(DRAIN_TIMEOUT).await } => {
            tracing::warn!(service = S::NAME, "drain timed out; closing remaining calls");
        }
    }
    Ok(())
}
