//! The one authentication layer every Lift server runs (added by `serve_with`):
//! each HTTP/2 request passes [`Guard::check`] before routing; refused ones are
//! answered with a gRPC status and never reach a handler. The caller's
//! [`Principal`](crate::auth::Principal) travels in the request extensions.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::body::Body;

use crate::auth::{API_KEY_HEADER, Guard};

/// Wraps a service in [`AuthService`].
#[derive(Debug, Clone)]
pub struct AuthLayer {
    guard: Arc<Guard>,
}

impl AuthLayer {
    pub fn new(guard: Arc<Guard>) -> Self {
        Self { guard }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService { inner, guard: self.guard.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    guard: Arc<Guard>,
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
        let guard = self.guard.clone();
        Box::pin(async move {
            let key = req.headers().get(API_KEY_HEADER).map(|v| v.as_bytes().to_vec());
            match guard.check(req.uri().path(), key.as_deref()).await {
                Ok(Some(principal)) => {
                    req.extensions_mut().insert(principal);
                    inner.call(req).await
                }
                Ok(None) => inner.call(req).await,
                Err(status) => {
                    tracing::debug!(path = req.uri().path(), code = ?status.code(), "request refused");
                    Ok(status.into_http())
                }
            }
        })
    }
}
