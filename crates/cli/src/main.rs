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
    /// The link redirector under wrk (installed from Debian if missing) beside a static 302
    /// from the same axum stack, same run: req/s and p99; then waits for the clicks to
    /// reach the ledger.
    Links {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 64)]
        connections: u32,
        #[arg(long, default_value_t = 2)]
        threads: u32,
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
        /// ingest:write, ingest:read, links:write, scores:read, campaigns:write (repeat for several).
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// The brand the key acts for (required with campaigns:write).
        #[arg(long)]
        brand: Option<String>,
        /// What the key is for, e.g. "collector eu-1".
        #[arg(long, default_value = "api key")]
        name: String,
        #[arg(long, env = "LIFT_AUTH_DATABASE_URL")]
        auth_database_url: Option<String>,
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://lift.db?mode=rwc")]
        database_url: String,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Ingest,
    Scoring,
    Matching,
    /// The link redirector, landing-page beacon and order webhooks (HTTP; docs/collect.md).
    Links,
    /// The three gRPC services and the link collector.
    All,
}

#[derive(Debug, Args)]
struct ServeArgs {
    which: Which,
    #[arg(long, env = "LIFT_INGEST_ADDR", default_value = "127.0.0.1:50051")]
    ingest_addr: SocketAddr,
    #[arg(long, env = "LIFT_SCORING_ADDR", default_value = "127.0.0.1:50052")]
    scoring_addr: SocketAddr,
    #[arg(long, env = "LIFT_MATCHING_ADDR", default_value = "127.0.0.1:50053")]
    matching_addr: SocketAddr,
    /// HTTP address of the link redirector, beacon and order webhooks.
    #[arg(long, env = "LIFT_LINKS_ADDR", default_value = "127.0.0.1:8080")]
    links_addr: SocketAddr,
    #[command(flatten)]
    links: LinksArgs,
    /// Database of the service (or of all three with `all`).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://lift.db?mode=rwc")]
    database_url: String,
    /// Where scoring and matching reach ingestion.
    #[arg(long, env = "LIFT_INGEST_URL", default_value = "http://127.0.0.1:50051")]
    ingest_url: String,
    /// Where matching reaches scoring.
    #[arg(long, env = "LIFT_SCORING_URL", default_value = "http://127.0.0.1:50052")]
    scoring_url: String,
    /// How long scoring waits after new events before recomputing, in milliseconds.
    #[arg(long, env = "LIFT_RESCORE_DEBOUNCE_MS", default_value_t = 500)]
    rescore_debounce_ms: u64,
    /// API-key authentication on every service except health and reflection.
    /// `off` is for local development only: anyone reaching the port may do anything.
    #[arg(long, env = "LIFT_AUTH", value_enum, default_value_t = OnOff::On)]
    auth: OnOff,
    /// Where API keys live (default: DATABASE_URL). Services with separate
    /// databases point this at one shared database.
    #[arg(long, env = "LIFT_AUTH_DATABASE_URL")]
    auth_database_url: Option<String>,
    /// The key this service presents to its peers (scoring: ingest:read; matching:
    /// scores:read, ingest:read, links:write). `serve all` mints its own when unset.
    #[arg(long, env = "LIFT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Requests per second per key (token bucket); 0 disables the limit.
    #[arg(long, env = "LIFT_RATE_LIMIT", default_value_t = 1000.0)]
    rate_limit: f64,
    /// Burst above the steady rate per key.
    #[arg(long, env = "LIFT_RATE_BURST", default_value_t = 2000.0)]
    rate_burst: f64,
    /// Longest a call may run on the server (a client's shorter deadline wins), in seconds.
    #[arg(long, env = "LIFT_REQUEST_TIMEOUT_SECS", default_value_t = 120)]
    request_timeout_secs: u64,
    /// How long a call waits for a database connection before answering UNAVAILABLE, in seconds.
    #[arg(long, env = "LIFT_DB_ACQUIRE_TIMEOUT_SECS", default_value_t = 5)]
    db_acquire_timeout_secs: u64,
    #[command(flatten)]
    tls: TlsArgs,
}

/// The link collector's settings (`serve links`, `serve all`).
#[derive(Debug, Args)]
struct LinksArgs {
    /// Host (and path prefix) of tracking links as matching issues them: `GET /{code}`
    /// looks up `<link-base>/<code>`.
    #[arg(long, env = "LIFT_LINK_BASE", default_value = "lift.to")]
    link_base: String,
    /// Where links whose campaign set no landing_url go (http/https URL). Unset: such
    /// links answer 404 "no destination".
    #[arg(long, env = "LIFT_DEFAULT_LANDING_URL")]
    default_landing_url: Option<String>,
    /// The spool file: events wait here until ingestion has them.
    #[arg(long, env = "LIFT_SPOOL", default_value = "lift-collect.spool")]
    spool: PathBuf,
    /// Undelivered events the spool keeps at most; beyond, new ones are dropped and logged.
    #[arg(long, env = "LIFT_SPOOL_CAPACITY", default_value_t = 1_000_000)]
    spool_capacity: usize,
    /// Mark the visitor cookie Secure (when the collector is reached over https).
    #[arg(long, env = "LIFT_COOKIE_SECURE")]
    cookie_secure: bool,
}

impl LinksArgs {
    fn config(&self) -> lift_collect::CollectConfig {
        lift_collect::CollectConfig {
            link_base: self.link_base.clone(),
            default_landing_url: self.default_landing_url.clone(),
            spool_path: self.spool.clone(),
            spool_capacity: self.spool_capacity,
            cookie_secure: self.cookie_secure,
            ..Default::default()
        }
    }
}

/// TLS (rustls) by PEM files. With a server certificate, peers' URLs must be https.
#[derive(Debug, Args)]
struct TlsArgs {
    /// This server's certificate chain (PEM).
    #[arg(long, env = "LIFT_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// This server's private key (PEM).
    #[arg(long, env = "LIFT_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (mTLS).
    #[arg(long, env = "LIFT_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// CA that signed the peers' server certificates (for outgoing https calls).
    #[arg(long, env = "LIFT_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Certificate and key presented to peers that require mTLS (default: --tls-cert/--tls-key).
    #[arg(long, env = "LIFT_TLS_CLIENT_CERT")]
    tls_client_cert: Option<PathBuf>,
    #[arg(long, env = "LIFT_TLS_CLIENT_KEY")]
    tls_client_key: Option<PathBuf>,
}

impl TlsArgs {
    fn client(&self) -> anyhow::Result<Option<ClientTls>> {
        let Some(ca) = &self.tls_ca else { return Ok(None) };
        let cert = self.tls_client_cert.as_ref().or(self.tls_cert.as_ref());
        let key = self.tls_client_key.as_ref().or(self.tls_key.as_ref());
        let identity = cert.zip(key).map(|(c, k)| (c.as_path(), k.as_path()));
        Ok(Some(ClientTls::from_files(ca, identity, None)?))
    }
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
            })
            .await?;
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
        Command::Brands { command: BrandsCommand::Create { name, database_url } } => {
            let db = lift_store::connect(&database_url).await?;
            let (id, key) = lift_matching::create_brand(&db, &name).await?;
            println!("brand {name} ({id})\napi key (shown once, stored hashed): {key}");
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
        Command::Bench { command: BenchCommand::Ingest { database_url, events, batch, streams } } => {
            let db = lift_store::connect(&database_url).await?;
            let opts = lift_ingest::bench::BenchOptions { events, batch_size: batch, streams, ..Default::default() };
            println!("{}", lift_ingest::bench::bench(db, &opts).await?);
        }
        Command::Bench { command: BenchCommand::Links { seconds, connections, threads } } => {
            let opts = lift_cli::links::LinksBenchOptions {
                seconds: seconds.max(1),
                connections: connections.max(1),
                threads: threads.max(1),
            };
            println!("{}", lift_cli::links::bench(opts).await?);
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
        KeysCommand::Create { scopes, brand, name, auth_database_url, database_url } => {
            let db = lift_store::connect(auth_database_url.as_deref().unwrap_or(&database_url)).await?;
            let (k, secret) = lift_runtime::auth::create_key(&db, &name, &scopes, brand.as_deref()).await?;
            println!("key {} ({}) scopes {}", k.id, k.name, k.scopes.join(" "));
            if let Some(b) = &k.brand_id {
                println!("acts for brand {b}");
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
        KeysCommand::List { auth_database_url, database_url } => {
            let db = lift_store::connect(auth_database_url.as_deref().unwrap_or(&database_url)).await?;
            for k in lift_store::api_keys::list(&db).await? {
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
    let shutdown = Shutdown::new();
    shutdown.on_os_signals();
    let mut tasks = JoinSet::new();
    let scoring_cfg =
        lift_scoring::ScoringConfig { debounce: Duration::from_millis(a.rescore_debounce_ms), ..Default::default() };
    let bind =
        |addr: SocketAddr| async move { TcpListener::bind(addr).await.with_context(|| format!("binding {addr}")) };
    let db = lift_store::ConnectConfig {
        acquire_timeout: Duration::from_secs(a.db_acquire_timeout_secs.max(1)),
        ..Default::default()
    };
    let rate_limit =
        (a.rate_limit > 0.0).then_some(RateLimit { per_second: a.rate_limit, burst: a.rate_burst.max(1.0) });
    let limits = Limits { request_timeout: Duration::from_secs(a.request_timeout_secs.max(1)), ..Limits::default() };
    let server_tls =
        TlsFiles { cert: a.tls.tls_cert.clone(), key: a.tls.tls_key.clone(), client_ca: a.tls.tls_client_ca.clone() }
            .server()?;
    let client_tls = a.tls.client()?;
    let auth = match a.auth {
        OnOff::On => {
            let url = a.auth_database_url.as_deref().unwrap_or(&a.database_url);
            Auth::Keys(KeyStore::new(lift_store::connect_with(url, &db).await?, lift_runtime::auth::DEFAULT_KEY_TTL))
        }
        OnOff::Off => Auth::Disabled,
    };
    let auth_on = matches!(auth, Auth::Keys(_));
    let opts = ServiceOptions {
        serve: ServeOptions { auth, rate_limit: rate_limit.filter(|_| auth_on), limits, tls: server_tls },
        client: ClientOptions {
            credentials: Credentials::from_option(a.api_key.as_deref())?,
            tls: client_tls,
            ..ClientOptions::default()
        },
        db,
    };
    if a.api_key.is_none() && auth_on && matches!(a.which, Which::Scoring | Which::Matching | Which::Links) {
        tracing::warn!("no LIFT_API_KEY: calls to peers carry no key and fail if the peers require one");
    }
    match a.which {
        Which::Ingest => {
            stack::spawn_ingest(&mut tasks, bind(a.ingest_addr).await?, &a.database_url, &opts, &shutdown).await?
        }
        Which::Scoring => {
            stack::spawn_scoring(
                &mut tasks,
                bind(a.scoring_addr).await?,
                &a.database_url,
                &a.ingest_url,
                scoring_cfg,
                &opts,
                &shutdown,
            )
            .await?
        }
        Which::Matching => {
            let db = lift_store::connect_with(&a.database_url, &opts.db).await?;
            stack::spawn_matching(
                &mut tasks,
                bind(a.matching_addr).await?,
                db,
                &a.scoring_url,
                &a.ingest_url,
                &opts,
                &shutdown,
            )
            .await?
        }
        Which::Links => {
            let db = lift_store::connect_with(&a.database_url, &opts.db).await?;
            stack::spawn_collect(
                &mut tasks,
                bind(a.links_addr).await?,
                db,
                &a.ingest_url,
                a.links.config(),
                &opts,
                &shutdown,
            )
            .await?;
            tracing::info!(addr = %a.links_addr, "link collector listening");
        }
        Which::All => {
            let listeners = [bind(a.ingest_addr).await?, bind(a.scoring_addr).await?, bind(a.matching_addr).await?];
            let links_listener = bind(a.links_addr).await?;
            let tls = match (opts.serve.tls, opts.client.tls) {
                (Some(s), Some(c)) => Some((s, c)),
                (None, None) => None,
                _ => anyhow::bail!(
                    "serve all with TLS needs --tls-cert, --tls-key and --tls-ca (its services call each other)"
                ),
            };
            let opts = StackOptions { auth: auth_on, rate_limit, limits, tls, db: opts.db };
            let mut s =
                stack::Stack::start_with(listeners, &Databases::shared(&a.database_url), scoring_cfg, opts).await?;
            s.start_collect(links_listener, a.links.config()).await?;
            tracing::info!(addr = %a.links_addr, "link collector listening");
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
            return s.finish().await;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}
