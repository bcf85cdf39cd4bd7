//! How a service's failure reaches a client: the one mapping every service's
//! `From<Error> for Status` delegates to, so the same failure reads the same
//! from ingestion, scoring and matching.
//!
//! - a request that fails validation → `INVALID_ARGUMENT` with
//!   `google.rpc.BadRequest` details, one violation per field ([`bad_request`]);
//! - something the caller named that does not exist → `NOT_FOUND` ([`not_found`]);
//! - a store failure ([`store`]): the database unreachable → `UNAVAILABLE`
//!   (retry later), a write contradicting what is stored → `ALREADY_EXISTS`,
//!   anything else → internal;
//! - internal ([`internal`]): logged with its cause, answered `INTERNAL` with
//!   the bare text "internal error", so no database or code detail reaches a client.

use std::fmt::Display;

use lift_domain::FieldViolation;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `INVALID_ARGUMENT` with `google.rpc.BadRequest` details, one violation per field;
/// the message names the first violation and counts the rest.
pub fn bad_request(violations: &[FieldViolation]) -> Status {
    let mut details = ErrorDetails::new();
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    let first = violations.first().map(ToString::to_string).unwrap_or_default();
    let msg = match violations.len() {
        0 | 1 => format!("invalid request: {first}"),
        n => format!("invalid request: {first} (and {} more)", n - 1),
    };
    Status::with_error_details(Code::InvalidArgument, msg, details)
}

/// `NOT_FOUND`, saying what was looked for.
pub fn not_found(what: impl Display) -> Status {
    Status::not_found(format!("{what} not found"))
}

/// A store failure as a client should see it.
pub fn store(e: &lift_store::Error) -> Status {
    match e {
        lift_store::Error::Conflict(msg) => Status::already_exists(msg.clone()),
        e if e.is_unavailable() => {
            tracing::warn!(error = %e, "database unavailable");
            Status::unavailable("database unavailable; retry later")
        }
        e => internal(e),
    }
}

/// Logs `e` and answers `INTERNAL` without its text.
pub fn internal(e: &dyn Display) -> Status {
    tracing::error!(error = %e, "internal error");
    Status::internal("internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the shared mapping: violations travel as BadRequest details, an
    /// unreachable database is UNAVAILABLE, and stored text never reaches a client.
    #[test]
    fn maps_failures() {
        let s = bad_request(&[FieldViolation::new("a", "is required"), FieldViolation::new("b", "is too long")]);
        assert_eq!((s.code(), s.message()), (Code::InvalidArgument, "invalid request: a: is required (and 1 more)"));
        let fields: Vec<_> =
            s.get_details_bad_request().expect("details").field_violations.into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["a", "b"]);

        let down = lift_store::Error::from(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::Internal("refused".into())));
        assert_eq!(store(&down).code(), Code::Unavailable);
        let s = store(&lift_store::Error::Corrupt { offset: 3, reason: "secret".into() });
        assert_eq!((s.code(), s.message()), (Code::Internal, "internal error"));
        assert_eq!(store(&lift_store::Error::Conflict("taken".into())).code(), Code::AlreadyExists);
        assert_eq!(not_found("campaign \"c1\"").message(), "campaign \"c1\" not found");
    }
}
