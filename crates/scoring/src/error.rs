//! The one error type of the scoring crate, and its mapping to gRPC status.

use lift_domain::FieldViolation;
use lift_runtime::status;

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
    /// The server could not start or stopped on a transport error.
    #[error("serving: {0}")]
    Serve(#[from] lift_runtime::Error),
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldViolation::new(field, description)])
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(violations) => status::bad_request(&violations),
            Error::NotFound(what) => status::not_found(what),
            e @ Error::Unimplemented(_) => tonic::Status::unimplemented(e.to_string()),
            Error::Unavailable(msg) => tonic::Status::unavailable(msg),
            Error::Store(e) => status::store(&e),
            other => status::internal(&other),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    /// Pins that an unreachable store is UNAVAILABLE (retry), not INTERNAL, and
    /// that violations and stored text are mapped as in every service.
    #[test]
    fn maps_errors_to_statuses() {
        let down = lift_store::Error::from(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::Internal("refused".into())));
        assert_eq!(tonic::Status::from(Error::Store(down)).code(), Code::Unavailable);
        let s = tonic::Status::from(Error::CorruptRun { run_id: 3, reason: "secret".into() });
        assert_eq!((s.code(), s.message()), (Code::Internal, "internal error"));
        let s = tonic::Status::from(Error::invalid("page_size", "is too large"));
        assert_eq!(s.code(), Code::InvalidArgument);
        let br = tonic_types::StatusExt::get_details_bad_request(&s).expect("details");
        assert_eq!(br.field_violations[0].field, "page_size");
        assert_eq!(tonic::Status::from(Error::NotFound("account x".into())).message(), "account x not found");
    }
}
