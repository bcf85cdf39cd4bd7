//! The `lift` command: everything `main` dispatches to, as a library so the
//! end-to-end tests drive exactly what an operator runs.
//!
//! - [`stack`]: starts the three services on bound listeners, wired over gRPC.
//! - [`demo`]: the whole story on embedded SQLite, printed for a person.
//! - [`dataset`]: the generated network and simulated outcomes.
//! - [`soak`]: `lift bench soak`, a bounded soak with count checks.
//! - [`links`]: webhook secrets and `lift bench links` (the collector under wrk).
//! - [`matchbench`]: `lift bench match`, MatchCampaign latency with and without the score cache.

pub mod dataset;
pub mod demo;
pub mod latency;
pub mod links;
pub mod matchbench;
pub mod soak;
pub mod stack;
pub mod validate;
