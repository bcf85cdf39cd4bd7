//! Status helpers every service's one `From<Error> for Status` shares.

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
