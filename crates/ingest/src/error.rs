//! The one error type of the ingestion server, and its mapping to a gRPC
//! status (through `lift_runtime::status`, shared by every service). The
//! importer and the benchmark have their own: `import::ImportError`,
//! `bench::BenchError`.

use lift_domain::FieldViolation;
use lift_runtime::status;
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
    /// The JetStream ledger cannot be reached or did not answer; a retry is safe.
    #[error("ledger unavailable: {0}")]
    LedgerUnavailable(String),
    /// The ledger setting or the stream it names cannot be used.
    #[error("ledger configuration: {0}")]
    LedgerConfig(String),
}

fn join(v: &[FieldViolation]) -> String {
    v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(violations) => status::bad_request(&violations),
            Error::BatchTooLarge { len, max } => status::bad_request(&[FieldViolation::new(
                "events",
                format!("batch of {len} events exceeds the limit of {max}"),
            )]),
            Error::Store(e) => status::store(&e),
            Error::LedgerUnavailable(reason) => {
                tracing::warn!(%reason, "ledger unavailable");
                Status::unavailable("ledger unavailable; retry later")
            }
            e @ Error::LedgerConfig(_) => status::internal(&e),
        }
    }
}

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
        let s = Status::from(Error::LedgerUnavailable("nats://secret-host: timed out".into()));
        assert_eq!((s.code(), s.message()), (Code::Unavailable, "ledger unavailable; retry later"));
    }
}
