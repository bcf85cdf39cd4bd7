//! `lift`: run the demo, serve a service (or all three), import data,
//! migrate a database, manage brands.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use lift_cli::{
    demo::{self, DemoOptions},
    stack::{self, Databases, ServiceOptions, StackOptions},
};
use lift_runtime::auth::{Auth, KeyStore, RateLimit, Scope};
use lift_runtime::client::{ClientOptions, Credentials};
use lift_runtime::tls::{ClientTls, TlsFiles};
use lift_runtime::{Limits, ServeOptions, Shutdown, telemetry::LogFormat};
use tokio::{net::TcpListener, task::JoinSet};

#[derive(Debug, Parser)]
#[command(
    name = "lift",
    version,
    about = "Lift: honest, multi-dimensional influence measurement and campaign matching"
)]
struct Cli {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration as TOML (secrets redacted), each value that is not
    /// a default annotated with the file, environment variable or flag it came from.
    Show {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// How key and brand commands print: sentences for people, one JSON document for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
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
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
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

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse().map_err(|e: lift_runtime::Error| e.to_string())
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// CollegeMsg edge list; used when present (see scripts/fetch-collegemsg.sh).
    #[arg(long, default_value = "data/collegemsg.csv.gz")]
    collegemsg: PathBuf,
    /// Use the generated network even when CollegeMsg is present.
    #[arg(long)]
    generated: bool,
    /// Accounts in the generated network.
    #[arg(long, default_value_t = 1500)]
    accounts: usize,
    /// Keep the SQLite databases in this directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where the web console listens (a free port if this one is taken).
    #[arg(long, env = "LIFT_WEB_ADDR", default_value = "127.0.0.1:8080")]
    web_addr: SocketAddr,
    /// Keep the services and the console running after the story, until Ctrl-C.
    #[arg(long)]
    serve: bool,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// CollegeMsg edge list; that half of the study is left out when absent.
    #[arg(long, default_value = "data/collegemsg.csv.gz")]
    collegemsg: PathBuf,
    /// Accounts in the generated network.
    #[arg(long, default_value_t = 3000)]
    accounts: usize,
    /// Creators per data set given tracking links with simulated outcomes.
    #[arg(long, default_value_t = 400)]
    creators: usize,
    #[arg(long, default_value_t = 2010)]
    seed: u64,
    /// Instead of the correlation study: the gaming benchmark, action-interval coverage and
    /// policy back-test of the current model, written to DIR/<model version>/ (tables and SVG plots).
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// With --report: seeds of the policy back-test.
    #[arg(long, default_value_t = 20)]
    seeds: usize,
    /// With --report: creators per population in the coverage study.
    #[arg(long, default_value_t = 4000)]
    coverage_creators: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Ingest,
    Scoring,
    Matching,
    /// The web console alone (calls scoring and matching by URL).
    Web,
    /// The link redirector, landing-page beacon and order webhooks (HTTP; docs/collect.md).
    Links,
    /// All three services, the link collector and the web console.
    All,
}

/// Where the configuration file is and what flags override in it.
#[derive(Debug, Args)]
struct ConfigArgs {
    /// Configuration file (TOML); default `./lift.toml` when present. Layers:
    /// defaults < file < environment < flags (see `lift config show`).
    #[arg(long = "config", env = "LIFT_CONFIG")]
    config_file: Option<PathBuf>,
    /// Override any setting by its path, e.g. `--set scoring.model.damping=0.8` (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE", value_parser = parse_set)]
    set: Vec<(String, String)>,
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected PATH=VALUE, got {s:?}"))
}

/// Each flag is a shorthand for one setting (its path in brackets); environment
/// variables are read in the environment layer (`lift config show` lists them all).
#[derive(Debug, Args)]
struct ServeArgs {
    which: Which,
    /// [server.ingest_addr] (env LIFT_INGEST_ADDR; default 127.0.0.1:50051)
    #[arg(long)]
    ingest_addr: Option<SocketAddr>,
    /// [server.scoring_addr] (env LIFT_SCORING_ADDR; default 127.0.0.1:50052)
    #[arg(long)]
    scoring_addr: Option<SocketAddr>,
    /// [server.matching_addr] (env LIFT_MATCHING_ADDR; default 127.0.0.1:50053)
    #[arg(long)]
    matching_addr: Option<SocketAddr>,
    /// [database.url] Database of the service, or of all three with `all` (env DATABASE_URL).
    #[arg(long)]
    database_url: Option<String>,
    /// [server.ingest_url] Where scoring and matching reach ingestion (env LIFT_INGEST_URL).
    #[arg(long)]
    ingest_url: Option<String>,
    /// [server.scoring_url] Where matching reaches scoring (env LIFT_SCORING_URL).
    #[arg(long)]
    scoring_url: Option<String>,
    /// [scoring.rescore_debounce_ms] How long scoring waits after new events before
    /// recomputing (env LIFT_RESCORE_DEBOUNCE_MS; default 500).
    #[arg(long)]
    rescore_debounce_ms: Option<u64>,
    /// [server.auth] API-key authentication on every service except health and reflection
    /// (env LIFT_AUTH; default on). `off` is for local development only.
    #[arg(long, value_enum)]
    auth: Option<OnOff>,
    /// Where the web console listens (env LIFT_WEB_ADDR).
    #[arg(long, env = "LIFT_WEB_ADDR", default_value = "127.0.0.1:8080")]
    web_addr: SocketAddr,
    /// Where the web console reaches matching (env LIFT_MATCHING_URL).
    #[arg(long, env = "LIFT_MATCHING_URL", default_value = "http://127.0.0.1:50053")]
    matching_url: String,
    /// Mark the console's key cookie Secure (serve it behind https; env LIFT_WEB_SECURE_COOKIE).
    #[arg(long, env = "LIFT_WEB_SECURE_COOKIE")]
    web_secure_cookie: bool,
    /// [collect.addr] HTTP address of the link redirector, beacon and order webhooks
    /// (env LIFT_LINKS_ADDR; default 127.0.0.1:8081).
    #[arg(long)]
    links_addr: Option<SocketAddr>,
    /// [database.auth_url] Where API keys live (default: the database URL; env LIFT_AUTH_DATABASE_URL).
    #[arg(long)]
    auth_database_url: Option<String>,
    /// [credentials.api_key] The key this service presents to its peers (env LIFT_API_KEY).
    /// `serve all` mints its own when unset.
    #[arg(long)]
    api_key: Option<String>,
    /// [server.rate_limit] Requests per second per key; 0 disables (env LIFT_RATE_LIMIT; default 1000).
    #[arg(long)]
    rate_limit: Option<f64>,
    /// [server.rate_burst] Burst above the steady rate per key (env LIFT_RATE_BURST; default 2000).
    #[arg(long)]
    rate_burst: Option<f64>,
    /// [server.request_timeout_secs] Longest a call may run on the server (default 120).
    #[arg(long)]
    request_timeout_secs: Option<u64>,
    /// [server.db_acquire_timeout_secs] How long a call waits for a database connection (default 5).
    #[arg(long)]
    db_acquire_timeout_secs: Option<u64>,
    /// [server.metrics_addr] Serve Prometheus metrics on http://ADDR/metrics (env
    /// LIFT_METRICS_ADDR; off when unset). With `all`, one endpoint for the three services.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// [tls.cert] This server's certificate chain (PEM; env LIFT_TLS_CERT).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// [tls.key] This server's private key (PEM; env LIFT_TLS_KEY).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// [tls.client_ca] Require client certificates signed by this CA (mTLS; env LIFT_TLS_CLIENT_CA).
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// [tls.ca] CA that signed the peers' certificates, for outgoing https calls (env LIFT_TLS_CA).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// [tls.client_cert] Certificate presented to peers that require mTLS (default: tls.cert).
    #[arg(long)]
    tls_client_cert: Option<PathBuf>,
    /// [tls.client_key] Key presented to peers that require mTLS (default: tls.key).
    #[arg(long)]
    tls_client_key: Option<PathBuf>,
    #[command(flatten)]
    config: ConfigArgs,
}

impl ServeArgs {
    /// The flags given, as `path=value` overrides (then `--set`), for the flag layer.
    fn flag_layer(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut put = |path: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push((path.to_owned(), v));
            }
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        put("server.ingest_addr", self.ingest_addr.map(|a| a.to_string()));
        put("server.scoring_addr", self.scoring_addr.map(|a| a.to_string()));
        put("server.matching_addr", self.matching_addr.map(|a| a.to_string()));
        put("database.url", self.database_url.clone());
        put("server.ingest_url", self.ingest_url.clone());
        put("server.scoring_url", self.scoring_url.clone());
        put("scoring.rescore_debounce_ms", self.rescore_debounce_ms.map(|v| v.to_string()));
        put("server.auth", self.auth.map(|a| if a == OnOff::On { "on".into() } else { "off".into() }));
        put("database.auth_url", self.auth_database_url.clone());
        put("credentials.api_key", self.api_key.clone());
        put("server.rate_limit", self.rate_limit.map(|v| v.to_string()));
        put("server.rate_burst", self.rate_burst.map(|v| v.to_string()));
        put("server.request_timeout_secs", self.request_timeout_secs.map(|v| v.to_string()));
        put("server.db_acquire_timeout_secs", self.db_acquire_timeout_secs.map(|v| v.to_string()));
        put("server.metrics_addr", self.metrics_addr.map(|a| a.to_string()));
        put("collect.addr", self.links_addr.map(|a| a.to_string()));
        put("tls.cert", path(&self.tls_cert));
        put("tls.key", path(&self.tls_key));
        put("tls.client_ca", path(&self.tls_client_ca));
        put("tls.ca", path(&self.tls_ca));
        put("tls.client_cert", path(&self.tls_client_cert));
        put("tls.client_key", path(&self.tls_client_key));
        out.extend(self.config.set.iter().cloned());
        out
    }
}

fn opt_path(s: &str) -> Option<PathBuf> {
    (!s.is_empty()).then(|| PathBuf::from(s))
}

fn client_tls(t: &lift_cli::config::TlsSection) -> anyhow::Result<Option<ClientTls>> {
    let Some(ca) = opt_path(&t.ca) else { return Ok(None) };
    let cert = opt_path(&t.client_cert).or_else(|| opt_path(&t.cert));
    let key = opt_path(&t.client_key).or_else(|| opt_path(&t.key));
    let identity = cert.as_ref().zip(key.as_ref()).map(|(c, k)| (c.as_path(), k.as_path()));
    Ok(Some(ClientTls::from_files(&ca, identity, None)?))
}

#[derive(Debug, Args)]
struct ImportArgs {
    file: PathBuf,
    #[arg(long, env = "LIFT_INGEST_URL", default_value = "http://127.0.0.1:50051")]
    ingest_url: String,
    /// A key with ingest:write (when the server runs with authentication).
    #[arg(long, env = "LIFT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Network name for edge-list accounts.
    #[arg(long, default_value = "collegemsg")]
    network: String,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum BrandsCommand {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let quiet_default = matches!(
        cli.command,
        Command::Demo(_)
            | Command::Validate(_)
            | Command::Import(_)
            | Command::Health { .. }
            | Command::Bench { .. }
            | Command::Keys { .. }
            | Command::Brands { .. }
            | Command::Config { .. }
    );
    lift_runtime::telemetry::init(cli.log_format, if quiet_default { "warn" } else { "info,sqlx=warn" });
    match cli.command {
        Command::Demo(a) => {
            demo::run(DemoOptions {
                collegemsg: a.collegemsg,
                generated: a.generated,
                accounts: a.accounts,
                dir: a.dir,
                databases: None,
                web_addr: Some(a.web_addr),
                serve: a.serve,
            })
            .await?;
        }
        Command::Validate(ValidateArgs { report: Some(dir), collegemsg, seed, seeds, coverage_creators, .. }) => {
            lift_cli::validate::report::run(&lift_cli::validate::report::ReportOptions {
                dir,
                collegemsg,
                seed,
                seeds,
                creators: coverage_creators,
            })?;
        }
        Command::Validate(a) => {
            lift_cli::validate::run(lift_cli::validate::ValidateOptions {
                collegemsg: a.collegemsg,
                accounts: a.accounts,
                creators: a.creators,
                seed: a.seed,
            })
            .await?;
        }
        Command::Serve(a) => serve(*a).await?,
        Command::Migrate { database_url } => {
            lift_store::connect(&database_url).await.context("migrating")?;
            println!("schema is up to date");
        }
        Command::Import(a) => {
            let mut client = lift_proto::ingest::v1::ingest_service_client::IngestServiceClient::new(
                stack::channel_with_key(&a.ingest_url, a.api_key.as_deref())?,
            );
            let report = lift_ingest::import::import_file(
                &mut client,
                &a.file,
                &lift_ingest::import::ImportOptions { network: a.network, progress: !a.quiet, ..Default::default() },
            )
            .await?;
            println!("{}: {}", a.file.display(), demo::import_summary(&report));
            for r in report.rejections.iter().take(20) {
                println!("  line {}: {}: {}", r.line, r.field, r.description);
            }
        }
        Command::Health { url, service } => {
            let mut client = tonic_health::pb::health_client::HealthClient::new(stack::channel(&url)?);
            let status = tokio::time::timeout(
                Duration::from_secs(5),
                client.check(tonic_health::pb::HealthCheckRequest { service: service.clone() }),
            )
            .await
            .context("health check timed out")??
            .into_inner()
            .status();
            println!("{url} {service}: {status:?}");
            if status != tonic_health::pb::health_check_response::ServingStatus::Serving {
                std::process::exit(1);
            }
        }
        Command::Brands { command: BrandsCommand::Create { name, database_url, output } } => {
            let db = lift_store::connect(&database_url).await?;
            let (id, key) = lift_matching::create_brand(&db, &name).await?;
            match output {
                Output::Text => println!("brand {name} ({id})\napi key (shown once, stored hashed): {key}"),
                Output::Json => {
                    println!("{}", serde_json::json!({ "brand_id": id.to_string(), "name": name, "api_key": key }));
                }
            }
        }
        Command::Brands { command: BrandsCommand::WebhookSecret { brand_id, database_url } } => {
            let db = lift_store::connect(&database_url).await?;
            let secret = lift_cli::links::create_webhook_secret(&db, &brand_id).await?;
            println!(
                "webhook secret for {brand_id} (stored as is; rotate by running this again):\n{secret}\n\
                 order webhooks: POST <collector>/webhooks/{brand_id}/orders (X-Lift-Signature: sha256=<hex HMAC>)\n\
                 Shopify orders/create: POST <collector>/webhooks/{brand_id}/shopify/orders-create"
            );
        }
        Command::Keys { command } => keys(command).await?,
        Command::Config { command: ConfigCommand::Show { config } } => {
            let mut layers = lift_cli::config::Layers::from_process(config.config_file.as_deref())?;
            layers.flags = config.set;
            print!("{}", lift_cli::config::show(&lift_cli::config::resolve(&layers)?)?);
        }
        Command::Bench { command: BenchCommand::Ingest { database_url, events, batch, streams } } => {
            let db = lift_store::connect(&database_url).await?;
            let opts = lift_ingest::bench::BenchOptions { events, batch_size: batch, streams, ..Default::default() };
            println!("{}", lift_ingest::bench::bench(db, &opts).await?);
        }
        Command::Bench { command: BenchCommand::CacheRefresh { accounts, changed, chunk } } => {
            let opts = lift_cli::cachebench::CacheBenchOptions { accounts, changed, chunk };
            println!("{}", lift_cli::cachebench::run(&opts).await?);
        }
        Command::Bench { command: BenchCommand::Links { seconds, connections, threads, rate } } => {
            let opts = lift_cli::linkbench::LinksBenchOptions {
                seconds: seconds.max(1),
                connections: connections.max(1),
                threads: threads.max(1),
                rate: rate.max(1),
                ..Default::default()
            };
            println!("{}", lift_cli::linkbench::bench(opts).await?);
        }
        Command::Bench { command: BenchCommand::Match { accounts, calls, baseline_calls, page_size } } => {
            let opts = lift_cli::matchbench::MatchBenchOptions {
                accounts,
                calls,
                baseline_calls,
                page_size,
                ..Default::default()
            };
            println!(
                "match bench: {accounts} accounts, {calls} calls through the cache, {baseline_calls} through the scan"
            );
            println!("{}", lift_cli::matchbench::run(opts).await?);
        }
        Command::Bench {
            command: BenchCommand::Soak { seconds, events, writers, subscribers, batch, database_url },
        } => {
            let opts = lift_cli::soak::SoakOptions {
                duration: Duration::from_secs(seconds),
                events,
                writers: writers.max(1),
                subscribers,
                batch: batch.max(1),
                databases: database_url.as_deref().map(Databases::shared),
                ..Default::default()
            };
            println!("soak: up to {events} events for up to {seconds}s, {writers} writers, {subscribers} subscribers");
            let r = lift_cli::soak::run(opts).await?;
            println!("| measure | value |\n|---|---|");
            println!("| events written / acknowledged | {} / {} |", r.written, r.acknowledged);
            println!("| stored (ledger events / head offset) | {} / {} |", r.stored, r.head);
            for (i, c) in r.consumed.iter().enumerate() {
                println!("| subscriber {i} consumed | {c} |");
            }
            println!("| write phase | {:.1} s ({:.0} events/s) |", r.write_secs, r.events_per_sec());
            println!("| subscribers reached the head after writing stopped | {:.1} s |", r.drain_secs);
            println!("| concurrent queries (failed) | {} ({}) |", r.queries, r.query_errors);
            println!("| scoring's committed offset at the end | {} |", r.scoring_offset);
            println!("counts agree: acknowledged = stored = consumed");
        }
        Command::Bench { command: BenchCommand::Latency { rates, seconds, batch, writers, accounts, debounce_ms } } => {
            let mut reports = Vec::new();
            let mut last = lift_cli::latency::LatencyOptions::default();
            for rate in rates {
                let opts = lift_cli::latency::LatencyOptions {
                    rate: rate.max(1),
                    duration: Duration::from_secs(seconds),
                    batch: batch.max(1),
                    writers: writers.max(1),
                    accounts: accounts.max(2),
                    debounce: Duration::from_millis(debounce_ms),
                    ..Default::default()
                };
                eprintln!("latency: {rate} events/s for {seconds}s ...");
                reports.push(lift_cli::latency::run(&opts).await?);
                last = opts;
            }
            lift_cli::latency::print_table(&reports, &last);
        }
    }
    Ok(())
}

async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { scopes, brand, accounts, name, auth_database_url, database_url, output } => {
            let db = lift_store::connect(auth_database_url.as_deref().unwrap_or(&database_url)).await?;
            let (k, secret) =
                lift_runtime::auth::create_bound_key(&db, &name, &scopes, brand.as_deref(), &accounts).await?;
            if output == Output::Json {
                let doc = serde_json::json!({
                    "id": k.id, "name": k.name, "scopes": k.scopes, "brand_id": k.brand_id,
                    "accounts": k.accounts, "api_key": secret,
                });
                println!("{doc}");
                return Ok(());
            }
            println!("key {} ({}) scopes {}", k.id, k.name, k.scopes.join(" "));
            if let Some(b) = &k.brand_id {
                println!("acts for brand {b}");
            }
            if !k.accounts.is_empty() {
                println!("reads only the accounts {}", k.accounts.join(", "));
            }
            println!("api key (shown once, stored hashed): {secret}");
        }
        KeysCommand::Revoke { id, auth_database_url, database_url } => {
            let db = lift_store::connect(auth_database_url.as_deref().unwrap_or(&database_url)).await?;
            if lift_runtime::auth::revoke_key(&db, &id).await? {
                println!("key {id} revoked; servers refuse it within {:?}", lift_runtime::auth::DEFAULT_KEY_TTL);
            } else {
                anyhow::bail!("no unrevoked key {id}");
            }
        }
        KeysCommand::List { auth_database_url, database_url, output } => {
            let db = lift_store::connect(auth_database_url.as_deref().unwrap_or(&database_url)).await?;
            let keys = lift_store::api_keys::list(&db).await?;
            if output == Output::Json {
                let doc: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "id": k.id,
                            "state": if k.revoked_at.is_some() { "revoked" } else { "active" },
                            "scopes": k.scopes,
                            "brand_id": k.brand_id,
                            "name": k.name,
                            "created_at_unix_micros": k.created_at,
                            "revoked_at_unix_micros": k.revoked_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(doc));
                return Ok(());
            }
            for k in keys {
                let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                println!(
                    "{}\t{state}\t{}\t{}\t{}",
                    k.id,
                    k.scopes.join(" "),
                    k.brand_id.as_deref().unwrap_or("-"),
                    k.name
                );
            }
        }
    }
    Ok(())
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let mut layers = lift_cli::config::Layers::from_process(a.config.config_file.as_deref())?;
    layers.flags = a.flag_layer();
    let c = lift_cli::config::resolve(&layers)?.config;
    let addr = |what: &str, s: &str| -> anyhow::Result<SocketAddr> {
        s.parse().with_context(|| format!("{what}: {s:?} is not host:port"))
    };
    let shutdown = Shutdown::new();
    shutdown.on_os_signals();
    let mut tasks = JoinSet::new();
    let scoring_cfg = c.scoring.to_config();
    let bind =
        |addr: SocketAddr| async move { TcpListener::bind(addr).await.with_context(|| format!("binding {addr}")) };
    let db = lift_store::ConnectConfig {
        acquire_timeout: Duration::from_secs(c.server.db_acquire_timeout_secs.max(1)),
        ..Default::default()
    };
    let rate_limit = (c.server.rate_limit > 0.0)
        .then_some(RateLimit { per_second: c.server.rate_limit, burst: c.server.rate_burst.max(1.0) });
    let limits =
        Limits { request_timeout: Duration::from_secs(c.server.request_timeout_secs.max(1)), ..Limits::default() };
    let t = &c.tls;
    let server_tls =
        TlsFiles { cert: opt_path(&t.cert), key: opt_path(&t.key), client_ca: opt_path(&t.client_ca) }.server()?;
    let client_tls = client_tls(t)?;
    let database_url = c.database.url.clone();
    let auth = match c.server.auth.as_str() {
        "on" => {
            let url = if c.database.auth_url.is_empty() { &database_url } else { &c.database.auth_url };
            Auth::Keys(KeyStore::new(lift_store::connect_with(url, &db).await?, lift_runtime::auth::DEFAULT_KEY_TTL))
        }
        "off" => Auth::Disabled,
        other => anyhow::bail!("server.auth: {other:?} is neither on nor off"),
    };
    let auth_on = matches!(auth, Auth::Keys(_));
    let api_key = (!c.credentials.api_key.is_empty()).then(|| c.credentials.api_key.clone());
    let opts = ServiceOptions {
        serve: ServeOptions { auth, rate_limit: rate_limit.filter(|_| auth_on), limits, tls: server_tls },
        client: ClientOptions {
            credentials: Credentials::from_option(api_key.as_deref())?,
            tls: client_tls,
            ..ClientOptions::default()
        },
        db,
    };
    if !c.server.metrics_addr.is_empty() {
        let listener = bind(addr("server.metrics_addr", &c.server.metrics_addr)?).await?;
        let sd = shutdown.clone();
        tasks.spawn(async move { Ok(lift_runtime::metrics::serve_metrics(listener, sd).await?) });
    }
    if api_key.is_none() && auth_on && matches!(a.which, Which::Scoring | Which::Matching | Which::Links) {
        tracing::warn!("no LIFT_API_KEY: calls to peers carry no key and fail if the peers require one");
    }
    let (ingest_addr, scoring_addr, matching_addr) = (
        addr("server.ingest_addr", &c.server.ingest_addr)?,
        addr("server.scoring_addr", &c.server.scoring_addr)?,
        addr("server.matching_addr", &c.server.matching_addr)?,
    );
    match a.which {
        Which::Ingest => {
            let listener = bind(ingest_addr).await?;
            stack::spawn_ingest_with(&mut tasks, listener, &database_url, c.ingest.to_config(), &opts, &shutdown)
                .await?
        }
        Which::Scoring => {
            stack::spawn_scoring(
                &mut tasks,
                bind(scoring_addr).await?,
                &database_url,
                &c.server.ingest_url,
                scoring_cfg,
                &opts,
                &shutdown,
            )
            .await?
        }
        Which::Matching => {
            let db = lift_store::connect_with(&database_url, &opts.db).await?;
            stack::spawn_matching_with(
                &mut tasks,
                bind(matching_addr).await?,
                db,
                &c.server.scoring_url,
                &c.server.ingest_url,
                c.matching.to_config(),
                &opts,
                &shutdown,
            )
            .await?
        }
        Which::Web => {
            let cfg = lift_web::WebConfig {
                scoring_url: c.server.scoring_url.clone(),
                matching_url: a.matching_url.clone(),
                tls: opts.client.tls.clone(),
                secure_cookie: a.web_secure_cookie,
            };
            stack::spawn_web(&mut tasks, bind(a.web_addr).await?, cfg, &shutdown);
        }
        Which::Links => {
            let links_addr = addr("collect.addr", &c.collect.addr)?;
            let db = lift_store::connect_with(&database_url, &opts.db).await?;
            let cfg = c.collect.to_config(&c.matching.link_base);
            stack::spawn_collect(&mut tasks, bind(links_addr).await?, db, &c.server.ingest_url, cfg, &opts, &shutdown)
                .await?;
            tracing::info!("link collector on http://{links_addr}/");
        }
        Which::All => {
            let listeners = [bind(ingest_addr).await?, bind(scoring_addr).await?, bind(matching_addr).await?];
            let web = bind(a.web_addr).await?;
            let links_addr = addr("collect.addr", &c.collect.addr)?;
            let links = bind(links_addr).await?;
            let tls = match (opts.serve.tls, opts.client.tls) {
                (Some(s), Some(c)) => Some((s, c)),
                (None, None) => None,
                _ => anyhow::bail!(
                    "serve all with TLS needs --tls-cert, --tls-key and --tls-ca (its services call each other)"
                ),
            };
            let opts = StackOptions {
                auth: auth_on,
                rate_limit,
                limits,
                tls,
                db: opts.db,
                ingest: c.ingest.to_config(),
                matching: c.matching.to_config(),
            };
            let mut s =
                stack::Stack::start_with(listeners, &Databases::shared(&database_url), scoring_cfg, opts).await?;
            let web = s.start_web(web)?;
            tracing::info!("web console on http://{web}/");
            s.start_collect(links, c.collect.to_config(&c.matching.link_base)).await?;
            tracing::info!("link collector on http://{links_addr}/");
            if auth_on {
                tracing::info!(
                    "authentication is on; create client keys with `lift keys create --scope ... --database-url <same db>`"
                );
            }
            let sd = s.shutdown.clone();
            tokio::spawn({
                let outer = shutdown.clone();
                async move {
                    outer.wait().await;
                    sd.trigger();
                }
            });
            let r = s.finish().await;
            shutdown.trigger();
            while let Some(t) = tasks.join_next().await {
                t??;
            }
            return r;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}
