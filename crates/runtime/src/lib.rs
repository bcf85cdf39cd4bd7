//! What every Lift server shares: telemetry initialised once, the shutdown
//! signal, and `serve`, which adds `grpc.health.v1` and server reflection
//! (v1 and v1alpha) beside a service, applies the limits, the one
//! authentication layer and TLS, and drains it on shutdown.
//!
//! - [`auth`]: scopes, keys (hashed, cached with a TTL), rate limits, the guard.
//! - `layer`: the tower layer that runs the guard on every request.
//! - [`client`]: outgoing channels with credentials, timeouts, bounded retries.
//! - [`tls`]: rustls server and client settings from PEM files.
//! - [`bounds`] and `surface`: length bounds on every request string, size limits
//!   answered RESOURCE_EXHAUSTED.
//! - [`metrics`]: the Prometheus recorder, `/metrics`, and the gRPC call metrics layer.
//! - [`trace`]: W3C `traceparent` in and out of every call when traces are exported.

pub mod auth;
pub mod bounds;
pub mod client;
mod error;
pub mod layer;
pub mod metrics;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod surface;
pub mod telemetry;
pub mod tls;
pub mod trace;

pub use error::{Error, ServeError};
pub use server::{Limits, ServeOptions, serve, serve_pair, serve_with};
pub use shutdown::Shutdown;
