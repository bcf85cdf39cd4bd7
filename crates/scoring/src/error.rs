//! The one error type of the scoring crate, and its mapping to gRPC status.

use lift_domain::FieldViolation;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request that fails validation; every violation is reported.
    #[error("invalid request: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldViolation>),
    #[error("{0} not found")]
    NotFound(String),
    /// An RPC whose implementation has not landed: never answered with invented data.
    #[error("{0} is not implemented yet")]
    Unimplemented(&'static str),
    /// Scores are not available yet (the consumer has not finished its first run).
    #[error("{0}")]
    Unavailable(String),
    #[error("store: {0}")]
    Store(#[from] lift_store::Error),
    #[error("ingestion: {0}")]
    Ingest(#[from] tonic::Status),
    #[error("stored run {run_id} does not decode: {reason}")]
    CorruptRun { run_id: u64, reason: String },
    #[error("compute task failed: {0}")]
    Task(String),
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldViolation::new(field, description)])
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(violations) => {
                let mut details = tonic_types::ErrorDetails::new();
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                let msg = Error::Invalid(violations).to_string();
                <tonic::Status as tonic_types::StatusExt>::with_error_details(
                    tonic::Code::InvalidArgument,
                    msg,
                    details,
                )
            }
            Error::NotFound(what) => tonic::Status::not_found(format!("{what} not found")),
            e @ Error::Unimplemented(_) => tonic::Status::unimplemented(e.to_string()),
            Error::Unavailable(msg) => tonic::Status::unavailable(msg),
            other => {
                tracing::error!(error = %other, "scoring request failed");
                tonic::Status::internal("internal error")
            }
        }
    }
}
