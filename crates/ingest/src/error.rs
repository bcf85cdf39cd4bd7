//! The one error type of ingestion, and its one mapping to a gRPC status.

use std::path::PathBuf;

use lift_domain::FieldViolation;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; every offending field is listed.
    #[error("invalid request: {}", join(.0))]
    Invalid(Vec<FieldViolation>),
    #[error("batch of {len} events exceeds the limit of {max}")]
    BatchTooLarge { len: usize, max: usize },
    #[error(transparent)]
    Store(#[from] lift_store::Error),
    /// Import: a line that does not parse.
    #[error("{}:{line}: {reason}", path.display())]
    Parse { path: PathBuf, line: u64, reason: String },
    #[error("reading {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// Import/bench: the server answered with an error.
    #[error("ingestion server: {}: {}", .0.code(), .0.message())]
    Rpc(#[from] Status),
    #[error("connecting to the ingestion server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}")]
    Bench(String),
}

fn join(v: &[FieldViolation]) -> String {
    v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(violations) => bad_request(&violations),
            Error::BatchTooLarge { len, max } => bad_request(&[FieldViolation::new(
                "events",
                format!("batch of {len} events exceeds the limit of {max}"),
            )]),
            Error::Store(lift_store::Error::Conflict(msg)) => Status::already_exists(msg),
            Error::Store(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unavailable");
                Status::unavailable("database unavailable; retry later")
            }
            Error::Rpc(s) => s,
            other => {
                tracing::error!(error = %other, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

pub(crate) use lift_runtime::status::bad_request;

#[cfg(test)]
mod tests {
    use tonic::Code;
    use tonic_types::StatusExt;

    use super::*;

    /// Pins the status mapping: field violations travel as BadRequest details, and
    /// database text never reaches the client.
    #[test]
    fn maps_errors_to_statuses() {
        let s = Status::from(Error::Invalid(vec![FieldViolation::new("events[2].source", "is required")]));
        assert_eq!(s.code(), Code::InvalidArgument);
        let br = s.get_details_bad_request().expect("bad request details");
        assert_eq!(br.field_violations[0].field, "events[2].source");
        let s = Status::from(Error::Store(lift_store::Error::Corrupt { offset: 3, reason: "secret".into() }));
        assert_eq!((s.code(), s.message()), (Code::Internal, "internal error"));
        let s = Status::from(Error::BatchTooLarge { len: 11, max: 10 });
        assert_eq!(s.code(), Code::InvalidArgument);
    }
}
