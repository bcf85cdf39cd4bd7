//! What an operator can tune about matching.

use std::time::Duration;

use lift_runtime::args;

/// Matching settings; `Default` suits a service, and `lift serve` takes each
/// as a flag or environment variable (`--matching-link-base`, `LIFT_MATCHING_LINK_BASE`).
#[derive(Debug, Clone, clap::Args)]
pub struct MatchingConfig {
    /// Host (and path prefix) of issued tracking links, e.g. `lift.to` → `lift.to/3f9a…`.
    #[arg(long = "matching-link-base", env = "LIFT_MATCHING_LINK_BASE", default_value = "lift.to")]
    pub link_base: String,
    /// Page size of `MatchCampaign`/`ListCampaigns` when the request gives none.
    #[arg(long = "matching-default-page-size", env = "LIFT_MATCHING_DEFAULT_PAGE_SIZE", default_value_t = 50)]
    pub default_page_size: u32,
    /// Largest page a request may ask for.
    #[arg(long = "matching-max-page-size", env = "LIFT_MATCHING_MAX_PAGE_SIZE", default_value_t = 1_000)]
    pub max_page_size: u32,
    /// Accounts per `QueryAccounts` page while scanning scoring's answer, and per
    /// `ExportScores` chunk while loading the score cache.
    #[arg(long = "matching-query-page-size", env = "LIFT_MATCHING_QUERY_PAGE_SIZE", default_value_t = 1_000)]
    pub query_page_size: u32,
    /// Most eligible plus near-miss accounts one scan may hold in memory.
    #[arg(long = "matching-max-candidates", env = "LIFT_MATCHING_MAX_CANDIDATES", default_value_t = 2_000_000)]
    pub max_candidates: usize,
    /// Confidence of the lift interval in reports.
    #[arg(long = "matching-lift-confidence", env = "LIFT_MATCHING_LIFT_CONFIDENCE", default_value_t = 0.9)]
    pub lift_confidence: f64,
    /// Scans (and score cache loads) restarted when scoring publishes a new run
    /// mid-way, before giving up.
    #[arg(long = "matching-scan-attempts", env = "LIFT_MATCHING_SCAN_ATTEMPTS", default_value_t = 3)]
    pub scan_attempts: u32,
    /// Judge campaigns over an in-memory copy of scoring's latest run, loaded
    /// once per run (see `snapshot`), instead of paging through scoring's
    /// `QueryAccounts` on every call. `max_candidates` applies to the scan only.
    #[arg(
        long = "matching-score-cache",
        env = "LIFT_MATCHING_SCORE_CACHE",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub score_cache: bool,
    /// How long a call waits for the score cache to load a newer scoring run
    /// before answering from the previous run's copy, marked `stale`.
    #[arg(
        long = "matching-score-cache-patience",
        env = "LIFT_MATCHING_SCORE_CACHE_PATIENCE",
        default_value = "2s",
        value_parser = args::duration
    )]
    pub score_cache_patience: Duration,
}

impl Default for MatchingConfig {
    fn default() -> Self {
        Self {
            link_base: "lift.to".to_owned(),
            default_page_size: 50,
            max_page_size: 1_000,
            query_page_size: 1_000,
            max_candidates: 2_000_000,
            lift_confidence: 0.9,
            scan_attempts: 3,
            score_cache: true,
            score_cache_patience: Duration::from_secs(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        cfg: MatchingConfig,
    }

    /// Pins that the command line's defaults are `Default`'s, and that flags reach their fields.
    #[test]
    fn flags_default_to_default() {
        let parsed = Cli::try_parse_from(["lift"]).expect("defaults").cfg;
        assert_eq!(format!("{parsed:?}"), format!("{:?}", MatchingConfig::default()));
        let parsed = Cli::try_parse_from(["lift", "--matching-score-cache", "false", "--matching-link-base", "x.io"])
            .expect("flags")
            .cfg;
        assert_eq!((parsed.score_cache, parsed.link_base.as_str()), (false, "x.io"));
    }
}
