//! Outgoing calls: channels that carry the caller's key (and TLS), with timeouts
//! and keepalive, and bounded retries with backoff for idempotent calls.

use std::future::Future;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{self, Endpoint};
use tonic::{Code, Request, Status};

use crate::Error;
use crate::auth::API_KEY_HEADER;
use crate::tls::ClientTls;

/// A channel to a Lift service that adds the caller's API key to every call.
pub type Channel = InterceptedService<transport::Channel, Credentials>;

/// The key a client presents (none when the server runs without auth).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    key: Option<MetadataValue<Ascii>>,
}

impl Credentials {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn api_key(key: &str) -> Result<Self, Error> {
        let v = key.trim().parse().map_err(|_| Error::InvalidKey("an API key must be printable ASCII".into()))?;
        Ok(Self { key: Some(v) })
    }

    /// From an optional key: `None` or empty means no credentials.
    pub fn from_option(key: Option<&str>) -> Result<Self, Error> {
        match key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(k) => Self::api_key(k),
            None => Ok(Self::none()),
        }
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        // A key set on the call itself (e.g. a brand's) wins over the channel's.
        if let Some(k) = &self.key
            && !req.metadata().contains_key(API_KEY_HEADER)
        {
            req.metadata_mut().insert(API_KEY_HEADER, k.clone());
        }
        crate::trace::inject(req.metadata_mut());
        Ok(req)
    }
}

/// How a client reaches a service.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub credentials: Credentials,
    pub tls: Option<ClientTls>,
    /// Per-call bound until the response headers: `None` for channels that carry
    /// client streams (an `IngestStream` answers only at its end).
    pub timeout: Option<Duration>,
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self { credentials: Credentials::none(), tls: None, timeout: None, connect_timeout: Duration::from_secs(5) }
    }
}

/// A lazily-connecting channel to `url` (the peer may start after us). HTTP/2
/// keepalive notices a dead peer on long streams.
pub fn connect_lazy(url: &str, opts: &ClientOptions) -> Result<Channel, Error> {
    Ok(with_credentials(endpoint(url, opts)?.connect_lazy(), opts.credentials.clone()))
}

/// The endpoint behind [`connect_lazy`], for callers that need a plain channel.
pub fn endpoint(url: &str, opts: &ClientOptions) -> Result<Endpoint, Error> {
    let mut e = Endpoint::from_shared(url.to_owned())
        .map_err(|e| Error::Url { url: url.to_owned(), reason: e.to_string() })?
        .connect_timeout(opts.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    if let Some(t) = opts.timeout {
        e = e.timeout(t);
    }
    if let Some(tls) = &opts.tls {
        e = e.tls_config(tls.to_tonic()).map_err(Error::Transport)?;
    }
    Ok(e)
}

/// Wraps a plain channel so every call carries `credentials`.
pub fn with_credentials(channel: transport::Channel, credentials: Credentials) -> Channel {
    InterceptedService::new(channel, credentials)
}

/// Bounded retries with exponential backoff (full jitter).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 3, initial_backoff: Duration::from_millis(50), max_backoff: Duration::from_secs(1) }
    }
}

/// Whether a failed call may be repeated: only when the peer could not be reached
/// or asked us to come back (never after a definite answer).
pub fn is_retryable(status: &Status) -> bool {
    status.code() == Code::Unavailable
}

/// Runs `call` (an idempotent RPC) up to `policy.attempts` times while it fails
/// with a retryable status, backing off between tries; returns the last answer.
pub async fn retry_idempotent<T, F, Fut>(policy: &RetryPolicy, what: &str, mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut backoff = policy.initial_backoff;
    let mut attempt = 1;
    loop {
        match call().await {
            Err(s) if is_retryable(&s) && attempt < policy.attempts => {
                let wait = backoff.mul_f64(rand::random_range(0.5..=1.0));
                tracing::debug!(call = what, attempt, code = ?s.code(), retry_in = ?wait, "retrying");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(policy.max_backoff);
                attempt += 1;
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Pins bounded retries: UNAVAILABLE is retried up to the limit (and the last
    /// answer returned), a definite answer is never repeated.
    #[tokio::test(start_paused = true)]
    async fn retries_only_unavailable_and_only_so_often() {
        let policy = RetryPolicy::default();
        let n = AtomicU32::new(0);
        let r: Result<(), Status> = retry_idempotent(&policy, "t", || async {
            n.fetch_add(1, Ordering::SeqCst);
            Err(Status::unavailable("down"))
        })
        .await;
        assert_eq!((r.err().map(|s| s.code()), n.load(Ordering::SeqCst)), (Some(Code::Unavailable), 3));
        n.store(0, Ordering::SeqCst);
        let r: Result<(), Status> = retry_idempotent(&policy, "t", || async {
            n.fetch_add(1, Ordering::SeqCst);
            Err(Status::invalid_argument("no"))
        })
        .await;
        assert_eq!((r.err().map(|s| s.code()), n.load(Ordering::SeqCst)), (Some(Code::InvalidArgument), 1));
        n.store(0, Ordering::SeqCst);
        let r = retry_idempotent(&policy, "t", || async {
            if n.fetch_add(1, Ordering::SeqCst) == 0 { Err(Status::unavailable("blip")) } else { Ok(7) }
        })
        .await;
        assert_eq!(r.ok(), Some(7));
    }

    /// Pins that credentials are added as `x-api-key`, that a key set on the call
    /// wins, and that no key adds nothing.
    #[test]
    fn credentials_add_the_key() {
        let mut c = Credentials::api_key("lift_abc").expect("ascii");
        let r = c.call(Request::new(())).expect("ok");
        assert_eq!(r.metadata().get(API_KEY_HEADER).and_then(|v| v.to_str().ok()), Some("lift_abc"));
        let mut own = Request::new(());
        own.metadata_mut().insert(API_KEY_HEADER, "lift_brand".parse().expect("ascii"));
        let r = c.call(own).expect("ok");
        assert_eq!(r.metadata().get(API_KEY_HEADER).and_then(|v| v.to_str().ok()), Some("lift_brand"));
        let r = Credentials::none().call(Request::new(())).expect("ok");
        assert!(r.metadata().get(API_KEY_HEADER).is_none());
        assert!(Credentials::api_key("bad\nkey").is_err());
        assert!(Credentials::from_option(Some("  ")).expect("empty").key.is_none());
    }
}
