//! What every Lift server shares: telemetry initialised once, the shutdown
//! signal, and `serve`, which adds `grpc.health.v1` and server reflection
//! (v1 and v1alpha) beside a service and drains it on shutdown.

pub mod server;
pub mod shutdown;
pub mod telemetry;

pub use server::{ServeError, serve};
pub use shutdown::Shutdown;
