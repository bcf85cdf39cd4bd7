//! The one error type of the runtime.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Store(#[from] lift_store::Error),
    #[error(
        "unknown scope {0:?}: expected one of ingest:write, ingest:read, links:write, scores:read, campaigns:write"
    )]
    UnknownScope(String),
    #[error("{0}")]
    InvalidKey(String),
    #[error("invalid URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("reading {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
    #[error("telemetry: {0}")]
    Telemetry(String),
}

/// The name `serve` callers used before the runtime had one error type.
pub type ServeError = Error;
