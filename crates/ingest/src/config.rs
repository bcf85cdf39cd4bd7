//! What an operator can tune about ingestion.

use std::time::Duration;

use lift_domain::{Micros, ValidationPolicy};
use lift_runtime::args;

/// Ingestion settings; `Default` suits a service, and `lift serve` takes each
/// as a flag or environment variable (`--ingest-max-batch`, `LIFT_INGEST_MAX_BATCH`).
#[derive(Debug, Clone, clap::Args)]
pub struct IngestConfig {
    /// Earliest accepted occurrence time (µs since the epoch); unset keeps the
    /// domain default (1990), which admits archives such as CollegeMsg (2004).
    #[arg(long = "ingest-min-time", env = "LIFT_INGEST_MIN_TIME")]
    pub min_time: Option<Micros>,
    /// How far in the future an occurrence time may be (clock skew).
    #[arg(long = "ingest-max-future", env = "LIFT_INGEST_MAX_FUTURE", default_value = "1d", value_parser = args::duration)]
    pub max_future: Duration,
    /// Attribution window of links registered without one.
    #[arg(
        long = "ingest-default-attribution-window",
        env = "LIFT_INGEST_DEFAULT_ATTRIBUTION_WINDOW",
        default_value = "7d",
        value_parser = args::duration
    )]
    pub default_attribution_window: Duration,
    /// Most events in one batch (one unary call or one stream message).
    #[arg(long = "ingest-max-batch", env = "LIFT_INGEST_MAX_BATCH", default_value_t = 10_000)]
    pub max_batch: usize,
    /// Most links in one `RegisterLinks` call.
    #[arg(long = "ingest-max-links", env = "LIFT_INGEST_MAX_LINKS", default_value_t = 10_000)]
    pub max_links: usize,
    /// Events per `Subscribe` message while catching up.
    #[arg(long = "ingest-subscribe-page", env = "LIFT_INGEST_SUBSCRIBE_PAGE", default_value_t = 1_000)]
    pub subscribe_page: u32,
    /// Messages buffered per subscriber before the reader waits for the client.
    #[arg(long = "ingest-subscribe-buffer", env = "LIFT_INGEST_SUBSCRIBE_BUFFER", default_value_t = 4)]
    pub subscribe_buffer: usize,
    /// How often a tailing subscriber re-reads the ledger even without a local
    /// commit, to see events appended by other processes sharing the database.
    #[arg(long = "ingest-poll-interval", env = "LIFT_INGEST_POLL_INTERVAL", default_value = "250ms", value_parser = args::duration)]
    pub poll_interval: Duration,
    /// Most rejections listed in an `IngestStream` response (the counts stay exact).
    #[arg(long = "ingest-max-stream-rejections", env = "LIFT_INGEST_MAX_STREAM_REJECTIONS", default_value_t = 1_000)]
    pub max_stream_rejections: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            min_time: None,
            max_future: Duration::from_secs(86_400),
            default_attribution_window: Duration::from_secs(7 * 86_400),
            max_batch: 10_000,
            max_links: 10_000,
            subscribe_page: 1_000,
            subscribe_buffer: 4,
            poll_interval: Duration::from_millis(250),
            max_stream_rejections: 1_000,
        }
    }
}

impl IngestConfig {
    /// The validation policy at time `now`.
    pub fn policy(&self, now: Micros) -> ValidationPolicy {
        let mut p = ValidationPolicy::at(now);
        if let Some(t) = self.min_time {
            p.min_time = t;
        }
        p.max_future = i64::try_from(self.max_future.as_micros()).unwrap_or(i64::MAX);
        p
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        cfg: IngestConfig,
    }

    /// Pins that the command line's defaults are `Default`'s, and that a flag reaches its field.
    #[test]
    fn flags_default_to_default() {
        let parsed = Cli::try_parse_from(["lift"]).expect("defaults").cfg;
        assert_eq!(format!("{parsed:?}"), format!("{:?}", IngestConfig::default()));
        let parsed = Cli::try_parse_from(["lift", "--ingest-max-batch", "7", "--ingest-poll-interval", "1s"])
            .expect("flags")
            .cfg;
        assert_eq!((parsed.max_batch, parsed.poll_interval), (7, Duration::from_secs(1)));
    }
}
