//! The one authentication layer every Lift server runs (added by `serve_with`):
//! each HTTP/2 request passes [`Guard::check`] before routing; refused ones are
//! answered with a gRPC status and never reach a handler. The caller's
//! [`Principal`](crate::auth::Principal) travels in the request extensions.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tonic::body::Body;

use tonic::Status;

use crate::auth::{API_KEY_HEADER, Guard, Principal, is_client_stream};

/// Wraps a service in [`AuthService`].
#[derive(Debug, Clone)]
pub struct AuthLayer {
    guard: Arc<Guard>,
    timeout: Option<Duration>,
}

impl AuthLayer {
    /// `timeout` bounds every call except client streams (see [`crate::auth::is_client_stream`]),
    /// whose answer only comes when the client is done.
    pub fn new(guard: Arc<Guard>, timeout: Duration) -> Self {
        Self { guard, timeout: Some(timeout) }
    }

    /// The guard alone, around one service whose handlers need to know the caller
    /// whether or not the server authenticates (matching: every call acts for a
    /// brand). A request the server's own layer already authenticated passes on
    /// with that principal; the server's layer bounds the time.
    pub fn tenant(guard: Arc<Guard>) -> Self {
        Self { guard, timeout: None }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService { inner, guard: self.guard.clone(), timeout: self.timeout }
    }
}

#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    guard: Arc<Guard>,
    timeout: Option<Duration>,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for AuthService<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower_service::Service<http::Request<B>> for AuthService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (guard, timeout) = (self.guard.clone(), self.timeout);
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            // Extensions are set by the server only: a principal there passed an outer guard.
            if req.extensions().get::<Principal>().is_none() {
                let key = req.headers().get(API_KEY_HEADER).map(|v| v.as_bytes().to_vec());
                match guard.check(&path, key.as_deref()).await {
                    Ok(Some(principal)) => {
                        req.extensions_mut().insert(principal);
                    }
                    Ok(None) => {}
                    Err(status) => {
                        tracing::debug!(path = %path, code = ?status.code(), "request refused");
                        return Ok(status.into_http());
                    }
                }
            }
            let Some(timeout) = timeout.filter(|_| !is_client_stream(&path)) else {
                return inner.call(req).await;
            };
            match tokio::time::timeout(timeout, inner.call(req)).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(path = %path, ?timeout, "call exceeded the server's request timeout");
                    let msg = format!("the server's request timeout of {} s expired", timeout.as_secs_f64());
                    Ok(Status::deadline_exceeded(msg).into_http())
                }
            }
        })
    }
}
