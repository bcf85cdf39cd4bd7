//! The layer that keeps the wire surface honest, inside authentication:
//!
//! - a request whose strings exceed their bounds ([`crate::bounds`]) answers
//!   INVALID_ARGUMENT with a `BadRequest` violation per field before any handler runs;
//! - a request message above a service's decoding limit answers RESOURCE_EXHAUSTED
//!   (what gRPC clients expect for size limits) where tonic would say OUT_OF_RANGE.

use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use futures::StreamExt;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use tonic::body::Body;
use tonic::{Code, Status};

use crate::bounds;

/// Prefix of tonic's message for a request above the decoding limit.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

/// Wraps a service in [`SurfaceService`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SurfaceLayer;

impl<S> tower::Layer<S> for SurfaceLayer {
    type Service = SurfaceService<S>;
    fn layer(&self, inner: S) -> SurfaceService<S> {
        SurfaceService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct SurfaceService<S> {
    inner: S,
}

impl<S> tower_service::Service<http::Request<Body>> for SurfaceService<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let req = match bounds::checked_method(req.uri().path()) {
                Some(method) => {
                    let (parts, body) = req.into_parts();
                    match check(&method, body).await {
                        Ok(body) => http::Request::from_parts(parts, body),
                        Err(status) => return Ok(status.into_http()),
                    }
                }
                None => req,
            };
            let resp = inner.call(req).await?;
            Ok(size_limit_as_resource_exhausted(resp))
        })
    }
}

/// Reads the request's first message (when uncompressed and at most
/// [`bounds::MAX_CHECKED_BYTES`]), checks its strings, and hands back a body that
/// replays what was read followed by the rest.
async fn check(method: &prost_reflect::MethodDescriptor, mut body: Body) -> Result<Body, Status> {
    let mut buf = BytesMut::new();
    let mut ended = false;
    let mut want = 5;
    while buf.len() < want {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(status)) => return Err(status),
            None => {
                ended = true;
                break;
            }
        }
        if want == 5 && buf.len() >= 5 {
            let compressed = buf[0] != 0;
            let len = (&buf[1..5]).get_u32() as usize;
            if compressed || len > bounds::MAX_CHECKED_BYTES {
                break; // tonic decompresses and applies its own limit
            }
            want = 5 + len;
        }
    }
    if want > 5
        && buf.len() >= want
        && let Some(msg) = bounds::decode(method, &buf[5..want])
    {
        let v = bounds::violations(&msg);
        if !v.is_empty() {
            tracing::debug!(method = method.full_name(), violations = v.len(), "request past its length bounds");
            return Err(crate::status::bad_request(&v));
        }
    }
    let read = buf.freeze();
    if ended {
        return Ok(Body::new(http_body_util::Full::new(read)));
    }
    let head = futures::stream::once(async move { Ok::<_, Status>(http_body::Frame::data(read)) });
    Ok(Body::new(StreamBody::new(head.chain(BodyStream::new(body)))))
}

/// tonic answers a request above the decoding limit with OUT_OF_RANGE; gRPC clients
/// and the gRPC status-code guide expect RESOURCE_EXHAUSTED for size limits.
fn size_limit_as_resource_exhausted(resp: http::Response<Body>) -> http::Response<Body> {
    let Some(status) = Status::from_header_map(resp.headers()) else {
        return resp;
    };
    if status.code() == Code::OutOfRange && status.message().starts_with(TONIC_TOO_LARGE) {
        let detail = status.message().trim_start_matches(TONIC_TOO_LARGE).trim_start_matches(':').trim();
        return Status::resource_exhausted(format!("request message too large: {detail}")).into_http();
    }
    resp
}
