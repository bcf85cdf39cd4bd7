//! The command line as clap reads it: every subcommand and its flags.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use lift_runtime::auth::Scope;
use lift_runtime::telemetry::LogFormat;

use crate::serve::{ConfigArgs, ServeArgs};

#[derive(Debug, Parser)]
#[command(
    name = "lift",
    version,
    about = "Lift: honest, multi-dimensional influence measurement and campaign matching"
)]
pub(crate) struct Cli {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run all three services in one process on loopback and tell the story.
    Demo(DemoArgs),
    /// Serve one service, or all three.
    Serve(Box<ServeArgs>),
    /// Create or upgrade a database's schema.
    Migrate {
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://lift.db?mode=rwc")]
        database_url: String,
    },
    /// Import events (NDJSON, or an edge-list CSV such as CollegeMsg) through ingestion.
    Import(ImportArgs),
    /// Check a server's grpc.health.v1 status; exits 0 only when SERVING.
    Health {
        /// e.g. http://127.0.0.1:50051
        #[arg(default_value = "http://127.0.0.1:50051")]
        url: String,
        /// Service name to check; empty = the server as a whole.
        #[arg(long, default_value = "")]
        service: String,
    },
    /// Manage brands (matching's tenants).
    Brands {
        #[command(subcommand)]
        command: BrandsCommand,
    },
    /// Validation study: Spearman correlations between followers and the scores,
    /// on CollegeMsg and a generated network with known outcome rates (docs/validation.md).
    Validate(ValidateArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Manage API keys (scoped, stored hashed; servers see changes within seconds).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The configuration `lift serve` would run with.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// A person's access and erasure requests, and their audit log (docs/privacy.md).
    Privacy(PrivacyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PrivacyArgs {
    #[arg(long, env = "LIFT_INGEST_URL", default_value = "http://127.0.0.1:50051", global = true)]
    pub(crate) ingest_url: String,
    /// Where `export` reads an account's scores and score history; `none` leaves
    /// scoring's part out.
    #[arg(long, env = "LIFT_SCORING_URL", default_value = "http://127.0.0.1:50052", global = true)]
    pub(crate) scoring_url: String,
    /// Where `export` reads the rows matching holds about an account (campaign
    /// eligibility, offers, rate cards, portfolio seats, standing perks, reports);
    /// `none` leaves matching's part out. Matching always needs a privacy:admin key.
    #[arg(long, env = "LIFT_MATCHING_URL", default_value = "http://127.0.0.1:50053", global = true)]
    pub(crate) matching_url: String,
    /// A key with privacy:admin (when the server runs with authentication).
    #[arg(long, env = "LIFT_API_KEY", hide_env_values = true, global = true)]
    pub(crate) api_key: Option<String>,
    #[command(subcommand)]
    pub(crate) command: PrivacyCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PrivacyCommand {
    /// Print everything Lift holds about an account (network:id) or a visitor id, as NDJSON:
    /// ingestion's events and links, scoring's scores, history and explanations, matching's rows.
    Export {
        /// The account, as network:id.
        account: Option<String>,
        /// A visitor id instead of an account.
        #[arg(long)]
        visitor: Option<String>,
    },
    /// Erase an account (network:id) or a visitor id from the ledger and the link registry.
    /// Cannot be undone.
    Erase {
        account: Option<String>,
        #[arg(long)]
        visitor: Option<String>,
        /// Confirm: the erasure cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// The audit log of exports and erasures (subjects by hash only).
    Audit {
        /// `json` prints one AuditEntry per line in proto JSON field names.
        #[arg(long, value_enum, default_value_t = AuditOutput::Text)]
        output: AuditOutput,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum AuditOutput {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the effective configuration as TOML (secrets redacted), each value that is not
    /// a default annotated with the file, environment variable or flag it came from.
    Show {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// How key and brand commands print: sentences for people, one JSON document for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Ingestion throughput: IngestStream over loopback gRPC vs the database's own bulk
    /// load (PostgreSQL COPY, SQLite prepared INSERT) of the same rows, side by side.
    Ingest {
        /// Database to measure (sqlite:PATH or postgres://...).
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite:lift-bench.db?mode=rwc")]
        database_url: String,
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        #[arg(long, default_value_t = 5_000)]
        batch: usize,
        #[arg(long, default_value_t = 2)]
        streams: usize,
        /// Also measure a JetStream ledger (`nats://host:port[?replicas=N]`): Lift into it
        /// vs a raw async-nats publisher of the same bodies, with DATABASE_URL's ledger beside.
        #[arg(long)]
        ledger: Option<String>,
    },
    /// Bounded soak on loopback: writers, subscribers, scoring and queries at once;
    /// fails unless acknowledged = stored = consumed.
    Soak {
        /// Stop writing after this many seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Stop writing after this many events.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 2)]
        writers: usize,
        #[arg(long, default_value_t = 2)]
        subscribers: usize,
        /// Events per stream message.
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
        /// One database for all three services (default: SQLite files in a temp dir).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Event-to-visible-score latency while ingesting at steady rates: one fresh stack
    /// per rate (the lower rates are the baseline), p50/p90/p99/max per rate.
    Latency {
        /// Target rates in events per second, measured in this order.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        rates: Vec<u64>,
        /// Seconds of writing per rate.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Events per IngestBatch call (each call is one probe).
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Concurrent paced writers sharing the rate.
        #[arg(long, default_value_t = 2)]
        writers: usize,
        /// Distinct accounts among the synthetic events.
        #[arg(long, default_value_t = 20_000)]
        accounts: u64,
        /// Scoring's debounce in milliseconds.
        #[arg(long, default_value_t = 1_000)]
        debounce_ms: u64,
        /// Measure incremental runs only, without the from-scratch runs beside them.
        #[arg(long)]
        incremental_only: bool,
    },
    /// Matching's score-cache refresh after a run that changed a share of the accounts:
    /// the delta (ExportScores since the cached run) beside the full reload, same run.
    CacheRefresh {
        /// Accounts in the generated population.
        #[arg(long, default_value_t = 1_000_000)]
        accounts: usize,
        /// Share of the accounts the new run changes (0-1).
        #[arg(long, default_value_t = 0.01)]
        changed: f64,
        /// Accounts per ExportScores message.
        #[arg(long, default_value_t = 1_000)]
        chunk: u32,
    },
    /// The link redirector on loopback beside a static 302 from the same HTTP stack, same run:
    /// saturated (wrk) and paced (a fixed rate) requests/s and latency; then counts the clicks
    /// that reached the ledger.
    Links {
        /// Seconds of each run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// wrk's connections.
        #[arg(long, default_value_t = 64)]
        connections: u32,
        /// wrk's threads.
        #[arg(long, default_value_t = 2)]
        threads: u32,
        /// The paced runs' rate, requests per second.
        #[arg(long, default_value_t = 5_000)]
        rate: u32,
        /// Run only ingestion beside the redirector (its one peer on the click path), as in a
        /// deployment where scoring and matching run elsewhere.
        #[arg(long)]
        ingest_only: bool,
        /// Saturated rounds, floor and redirector in turn; the ratio reported is the median
        /// of the rounds' ratios (the machine's background load moves between runs).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// MatchCampaign latency over a generated scored population on loopback: through
    /// the score cache, and through the QueryAccounts scan it replaces, side by side.
    Match {
        /// Accounts in the generated population.
        #[arg(long, default_value_t = 1_000_000)]
        accounts: usize,
        /// Timed calls through the score cache.
        #[arg(long, default_value_t = 500)]
        calls: usize,
        /// Timed calls through the scan (slow at scale).
        #[arg(long, default_value_t = 10)]
        baseline_calls: usize,
        #[arg(long, default_value_t = 50)]
        page_size: u32,
    },
    /// GetCampaignReport from the report consumer's aggregates beside the full ledger rescan it
    /// replaces, same run, over a generated ledger with one offered campaign.
    Report {
        /// Events in the generated ledger (the target is measured at 10,000,000).
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Creators with offers (half treated, half held out).
        #[arg(long, default_value_t = 200)]
        creators: usize,
        /// Timed calls answered from the aggregates.
        #[arg(long, default_value_t = 200)]
        calls: usize,
        /// Timed calls answered by a full rescan (slow at scale).
        #[arg(long, default_value_t = 3)]
        baseline_calls: usize,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key and print it (shown once; stored hashed).
    Create {
        /// ingest:write, ingest:read, links:write, scores:read, campaigns:write, creator:read (repeat for several).
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// The brand the key acts for (required with campaigns:write).
        #[arg(long)]
        brand: Option<String>,
        /// A creator account the key may read, as network:id (required with
        /// creator:read; repeat for a creator's several accounts).
        #[arg(long = "account")]
        accounts: Vec<String>,
        /// What the key is for, e.g. "collector eu-1".
        #[arg(long, default_value = "api key")]
        name: String,
        #[arg(long, env = "LIFT_AUTH_DATABASE_URL")]
        auth_database_url: Option<String>,
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://lift.db?mode=rwc")]
        database_url: String,
        /// `json` prints {"id", "name", "scopes", "brand_id", "api_key"}.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Revoke a key by its id (key_...); servers refuse it within their cache TTL.
    Revoke {
        id: String,
        #[arg(long, env = "LIFT_AUTH_DATABASE_URL")]
        auth_database_url: Option<String>,
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://lift.db?mode=rwc")]
        database_url: String,
    },
    /// List keys (ids, scopes, brands, revocation; never secrets).
    List {
        #[arg(long, env = "LIFT_AUTH_DATABASE_URL")]
        auth_database_url: Option<String>,
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://lift.db?mode=rwc")]
        database_url: String,
        /// `json` prints an array of {"id", "state", "scopes", "brand_id", "name", "created_at_unix_micros", "revoked_at_unix_micros"}.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

pub(crate) fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse().map_err(|e: lift_runtime::Error| e.to_string())
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// CollegeMsg edge list; used when present (see scripts/fetch-collegemsg.sh).
    #[arg(long, default_value = "data/collegemsg.csv.gz")]
    pub(crate) collegemsg: PathBuf,
    /// Use the generated network even when CollegeMsg is present.
    #[arg(long)]
    pub(crate) generated: bool,
    /// Accounts in the generated network.
    #[arg(long, default_value_t = 1500)]
    pub(crate) accounts: usize,
    /// Keep the SQLite databases in this directory.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Where the web console listens (a free port if this one is taken).
    #[arg(long, env = "LIFT_WEB_ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) web_addr: SocketAddr,
    /// Keep the services and the console running after the story, until Ctrl-C.
    #[arg(long)]
    pub(crate) serve: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// CollegeMsg edge list; that half of the study is left out when absent.
    #[arg(long, default_value = "data/collegemsg.csv.gz")]
    pub(crate) collegemsg: PathBuf,
    /// Accounts in the generated network.
    #[arg(long, default_value_t = 3000)]
    pub(crate) accounts: usize,
    /// Creators per data set given tracking links with simulated outcomes.
    #[arg(long, default_value_t = 400)]
    pub(crate) creators: usize,
    #[arg(long, default_value_t = 2010)]
    pub(crate) seed: u64,
    /// Instead of the correlation study: the gaming benchmark, action-interval coverage and
    /// policy back-test of the current model, written to DIR/<model version>/ (tables and SVG plots).
    #[arg(long, value_name = "DIR")]
    pub(crate) report: Option<PathBuf>,
    /// With --report: seeds of the policy back-test.
    #[arg(long, default_value_t = 20)]
    pub(crate) seeds: usize,
    /// With --report: creators per population and replicate in the coverage study.
    #[arg(long, default_value_t = 4000)]
    pub(crate) coverage_creators: usize,
    /// With --report: independent replicates of the coverage study (seeds seed, seed+1, …), pooled
    /// so that each click bin has enough creators to judge coverage to about a point.
    #[arg(long, default_value_t = 10)]
    pub(crate) coverage_replicates: usize,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    pub(crate) file: PathBuf,
    #[arg(long, env = "LIFT_INGEST_URL", default_value = "http://127.0.0.1:50051")]
    pub(crate) ingest_url: String,
    /// A key with ingest:write (when the server runs with authentication).
    #[arg(long, env = "LIFT_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// Network name for edge-list accounts.
    #[arg(long, default_value = "collegemsg")]
    pub(crate) network: String,
    /// Hide the progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BrandsCommand {
    /// Create a brand and print its API key (shown once; stored hashed).
    Create {
        name: String,
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://lift.db?mode=rwc")]
        database_url: String,
        /// `json` prints {"brand_id", "name", "api_key"}.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Create (or rotate) a brand's order-webhook secret and print it. The shop signs its
    /// webhooks with it (HMAC-SHA256); it is stored as is, since checking an HMAC needs it.
    WebhookSecret {
        /// The brand's id (brd_...).
        brand_id: String,
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://lift.db?mode=rwc")]
        database_url: String,
    },
}
