//! The pure scoring engine: no I/O, deterministic, heavily unit-tested.
//!
//! `State::apply` folds ledger entries in; `compute` turns a state and a
//! `ModelParams` into a `Snapshot` of every account's five dimensions.

pub mod action_bench;
pub mod authenticity;
pub mod bench;
pub mod checkpoint;
pub mod compute;
pub mod explain;
pub mod graph;
pub mod incremental;
mod incremental_snapshot;
mod network;
pub mod pagerank_push;
pub mod params;
pub mod seeds;
pub mod state;
pub mod stats;
pub mod synthetic;
#[doc(hidden)]
pub mod testutil;

pub use authenticity::{Flag, FlagKind};
pub use compute::{
    ActionEstimate, AsOf, ComputeOptions, Phases, RawMetrics, Snapshot, TopicScores, compute, compute_with,
};
pub use graph::{Csr, PageRank, PageRankGraph, PageRankOptions, pagerank};
pub use incremental::{IncrementalRun, IncrementalScores};
pub use incremental_snapshot::compute_incremental;
pub use params::ModelParams;
pub use state::{Node, State};

#[cfg(test)]
mod calibration_tests;
#[cfg(test)]
mod tests;
