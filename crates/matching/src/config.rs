//! What an operator can tune about matching.

/// Matching settings; `Default` suits a service.
#[derive(Debug, Clone)]
pub struct MatchingConfig {
    /// Host (and path prefix) of issued tracking links, e.g. `lift.to` → `lift.to/3f9a…`.
    pub link_base: String,
    /// Page size of `MatchCampaign`/`ListCampaigns` when the request gives none.
    pub default_page_size: u32,
    pub max_page_size: u32,
    /// Accounts per `QueryAccounts` page while scanning scoring's answer, and per
    /// `ExportScores` chunk while loading the score cache.
    pub query_page_size: u32,
    /// Most eligible plus near-miss accounts one scan may hold in memory.
    pub max_candidates: usize,
    /// Confidence of the lift interval in reports.
    pub lift_confidence: f64,
    /// Scans (and score cache loads) restarted when scoring publishes a new run
    /// mid-way, before giving up.
    pub scan_attempts: u32,
    /// Judge campaigns over an in-memory copy of scoring's latest run, loaded
    /// once per run (see `snapshot`), instead of paging through scoring's
    /// `QueryAccounts` on every call. `max_candidates` applies to the scan only.
    pub score_cache: bool,
    /// How long a call waits for the score cache to load a newer scoring run
    /// before answering from the previous run's copy, marked `stale`.
    pub score_cache_patience: std::time::Duration,
    /// How long `GetCampaignReport` waits for the report consumer to reach the
    /// ledger head seen at the call's start before answering UNAVAILABLE.
    pub report_patience: std::time::Duration,
    /// How often the standing consumer asks scoring whether it has published a
    /// new run (only while some standing program is open).
    pub standing_poll: std::time::Duration,
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
            score_cache_patience: std::time::Duration::from_secs(2),
            report_patience: std::time::Duration::from_secs(5),
            standing_poll: std::time::Duration::from_secs(1),
        }
    }
}
