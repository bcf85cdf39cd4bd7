//! The one error type of matching, and its one mapping to a gRPC status.

use lift_domain::FieldViolation;
use lift_runtime::status;
use tonic::{Code, Status};
use tonic_types::StatusExt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No API key, a malformed one, or one no brand holds.
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// The request is malformed; every offending field is listed.
    #[error("invalid request: {}", join(.0))]
    Invalid(Vec<FieldViolation>),
    /// Missing, or another brand's: the two must look the same to a client.
    #[error("campaign {0:?} not found")]
    CampaignNotFound(String),
    /// The campaign is not in a state that allows the call.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The campaign has no offer (nor holdout assignment) for this creator.
    #[error("campaign {campaign:?} has no offer to {account}")]
    OfferNotFound { campaign: String, account: String },
    /// An offer step the lifecycle does not allow now: FAILED_PRECONDITION with
    /// a PreconditionFailure violation naming the offer (`subject`).
    #[error("{description}")]
    OfferStep { subject: String, description: String },
    /// Matching cannot answer yet (a report whose aggregate is behind the ledger); retrying can help.
    #[error("{0}")]
    Unavailable(String),
    /// A call to scoring or ingestion failed.
    #[error("{service} answered {}: {}", .status.code(), .status.message())]
    Upstream { service: &'static str, status: Status },
    #[error(transparent)]
    Store(#[from] lift_store::Error),
    /// A stored row matching wrote that no longer decodes.
    #[error("stored campaign {id} does not decode: {reason}")]
    Corrupt { id: String, reason: String },
    /// Matching's own failure (a worker task that died, an answer from scoring
    /// that breaks its contract): logged, and answered as INTERNAL without the text.
    #[error("{0}")]
    Internal(String),
}

fn join(v: &[FieldViolation]) -> String {
    v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl Error {
    pub(crate) fn scoring(status: Status) -> Self {
        Error::Upstream { service: "scoring", status }
    }

    pub(crate) fn ingest(status: Status) -> Self {
        Error::Upstream { service: "ingestion", status }
    }

    pub(crate) fn invalid(field: &str, description: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldViolation::new(field, description)])
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Unauthenticated(why) => Status::unauthenticated(why),
            Error::Invalid(violations) => status::bad_request(&violations),
            Error::CampaignNotFound(id) => status::not_found(format_args!("campaign {id:?}")),
            Error::FailedPrecondition(msg) => Status::failed_precondition(msg),
            Error::AlreadyExists(msg) => Status::already_exists(msg),
            Error::OfferNotFound { campaign, account } => {
                Status::not_found(format!("campaign {campaign:?} has no offer to {account}"))
            }
            Error::OfferStep { subject, description } => Status::with_error_details(
                Code::FailedPrecondition,
                description.clone(),
                tonic_types::ErrorDetails::with_precondition_failure_violation("OFFER_STATE", subject, description),
            ),
            Error::Unavailable(msg) => Status::unavailable(msg),
            Error::Upstream { service, status } => match status.code() {
                // Never an answer built on missing scores: the client retries instead.
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::Cancelled => {
                    tracing::warn!(service, status = %status, "dependency unavailable");
                    Status::unavailable(format!("{service} is unavailable; retry later"))
                }
                Code::Unimplemented => Status::unimplemented(format!("{service} does not implement this yet")),
                Code::FailedPrecondition => Status::failed_precondition(format!("{service}: {}", status.message())),
                _ => status::internal(&format_args!("{service} failed: {status}")),
            },
            Error::Store(e) => status::store(&e),
            other @ (Error::Corrupt { .. } | Error::Internal(_)) => status::internal(&other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the status mapping: violations travel as BadRequest details, dependency
    /// outages become UNAVAILABLE, and internal text never reaches the client.
    #[test]
    fn maps_errors_to_statuses() {
        let s = Status::from(Error::invalid("spec.unit_cost", "must be greater than 0"));
        assert_eq!(s.code(), Code::InvalidArgument);
        let br = s.get_details_bad_request().expect("details");
        assert_eq!(br.field_violations[0].field, "spec.unit_cost");

        let s = Status::from(Error::scoring(Status::unavailable("connection refused")));
        assert_eq!((s.code(), s.message()), (Code::Unavailable, "scoring is unavailable; retry later"));
        let s = Status::from(Error::ingest(Status::invalid_argument("secret detail")));
        assert_eq!((s.code(), s.message()), (Code::Internal, "internal error"));
        let s = Status::from(Error::Corrupt { id: "c".into(), reason: "db text".into() });
        assert_eq!(s.message(), "internal error");
        let s = Status::from(Error::Internal("a worker task died".into()));
        assert_eq!((s.code(), s.message()), (Code::Internal, "internal error"));
        let s =
            Status::from(Error::OfferStep { subject: "campaigns/c/offers/x:a".into(), description: "final".into() });
        assert_eq!((s.code(), s.message()), (Code::FailedPrecondition, "final"));
        let pf = s.get_details_precondition_failure().expect("details");
        assert_eq!(pf.violations[0].subject, "campaigns/c/offers/x:a");
        let s = Status::from(Error::CampaignNotFound("c1".into()));
        assert_eq!((s.code(), s.message()), (Code::NotFound, "campaign \"c1\" not found"));
    }
}
