//! Lift's gRPC contracts, generated from `proto/` at build time.
//!
//! Wire types stop at the service edge: handlers convert them into
//! `lift-domain` types (that is where validation happens) and back. The
//! conversions more than one crate needs live in [`convert`]; those only one
//! service needs live in that service's own `convert` module.

/// `lift.ingest.v1`: the event ledger and link registry.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod ingest {
    pub mod v1 {
        tonic::include_proto!("lift.ingest.v1");
    }
}

/// `lift.scoring.v1`: scores, explanations, models and seed selection.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod scoring {
    pub mod v1 {
        tonic::include_proto!("lift.scoring.v1");
    }
}

/// `lift.matching.v1`: campaigns, offers and reports.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod matching {
    pub mod v1 {
        tonic::include_proto!("lift.matching.v1");
    }
}

/// `lift.privacy.v1`: export, erasure and the privacy audit log (served by ingestion).
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod privacy {
    pub mod v1 {
        tonic::include_proto!("lift.privacy.v1");
    }
}

pub mod convert;

/// Encoded `FileDescriptorSet` of every Lift proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/lift_descriptor.bin"));

pub use prost_types::Timestamp;
