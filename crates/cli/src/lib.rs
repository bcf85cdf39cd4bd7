//! The `lift` command: everything `main` dispatches to, as a library so the
//! end-to-end tests drive exactly what an operator runs.
//!
//! - [`config`]: the one layered configuration (defaults < lift.toml < env < flags).
//! - [`stack`]: starts the three services on bound listeners, wired over gRPC.
//! - [`demo`]: the whole story on embedded SQLite, printed for a person.
//! - [`console`]: the demo's real data on first run, and the web console's keys.
//! - [`dataset`]: the generated network and simulated outcomes.
//! - [`soak`]: `lift bench soak`, a bounded soak with count checks.
//! - [`links`]: brands' webhook secrets; simulated outcomes sent through the collector over HTTP.
//! - [`linkbench`]: `lift bench links`, the redirector beside a static 302 from the same stack.
//! - [`matchbench`]: `lift bench match`, MatchCampaign latency with and without the score cache.
//! - [`privacy`]: `lift privacy export|erase|audit` against ingestion's privacy service.
//! - [`cachebench`]: `lift bench cache-refresh`, the score cache by delta beside a full reload.
//! - [`reportbench`]: `lift bench report`, GetCampaignReport from aggregates beside a full rescan.

pub mod cachebench;
pub mod config;
pub mod console;
pub mod dataset;
pub mod demo;
pub mod latency;
pub mod linkbench;
pub mod links;
pub mod matchbench;
pub mod privacy;
pub mod reportbench;
pub mod soak;
pub mod stack;
pub mod validate;
