//! `lift`: run the demo, serve a service (or all three), import data,
//! migrate a database, manage brands.

mod serve;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use lift_cli::{
    demo::{self, DemoOptions},
    stack::{self, Databases},
};
use lift_runtime::auth::Scope;
use lift_runtime::telemetry::LogFormat;
use serve::{ConfigArgs, ServeArgs};

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
    /// A person's access and erasure requests, and their audit log (docs/privacy.md).
    Privacy(PrivacyArgs),
}

#[derive(Debug, Args)]
struct PrivacyArgs {
    #[arg(long, env = "LIFT_INGEST_URL", default_value = "http://127.0.0.1:50051", global = true)]
    ingest_url: String,
    /// A key with privacy:admin (when the server runs with authentication).
    #[arg(long, env = "LIFT_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
    #[command(subcommand)]
    command: PrivacyCommand,
}

#[derive(Debug, Subcommand)]
enum PrivacyCommand {
    /// Print everything ingestion holds about an account (network:id) or a visitor id, as NDJSON.
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
enum AuditOutput {
    Text,
    Json,
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
            | Command::Privacy(_)
    );
    let service_name = match &cli.command {
        Command::Serve(a) => a.service_name(),
        _ => "lift",
    };
    // Traces go out only when OTEL_EXPORTER_OTLP_ENDPOINT is set; the guard flushes them at exit.
    let _telemetry = lift_runtime::telemetry::init_with(
        cli.log_format,
        if quiet_default { "warn" } else { "info,sqlx=warn" },
        lift_runtime::telemetry::TraceExport::from_env(service_name),
    )?;
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
        Command::Serve(a) => serve::serve(*a).await?,
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
        Command::Privacy(a) => privacy(a).await?,
        Command::Config { command: ConfigCommand::Show { config } } => {
            let mut layers = lift_cli::config::Layers::from_process(config.config_file.as_deref())?;
            layers.flags = config.set;
            print!("{}", lift_cli::config::show(&lift_cli::config::resolve(&layers)?)?);
        }
        Command::Bench { command: BenchCommand::Ingest { database_url, events, batch, streams, ledger } } => {
            let db = lift_store::connect(&database_url).await?;
            let opts = lift_ingest::bench::BenchOptions { events, batch_size: batch, streams, ..Default::default() };
            match ledger {
                Some(url) => println!("{}", lift_ingest::ledger::bench::bench(db, &url, &opts).await?),
                None => println!("{}", lift_ingest::bench::bench(db, &opts).await?),
            }
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
        Command::Bench { command: BenchCommand::Report { events, creators, calls, baseline_calls } } => {
            let opts = lift_cli::reportbench::ReportBenchOptions {
                events,
                creators,
                calls,
                baseline_calls,
                ..Default::default()
            };
            println!("{}", lift_cli::reportbench::run(opts).await?);
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
        Command::Bench {
            command: BenchCommand::Latency { rates, seconds, batch, writers, accounts, debounce_ms, incremental_only },
        } => {
            let mut reports = Vec::new();
            let mut last = lift_cli::latency::LatencyOptions::default();
            for rate in rates {
                // Incremental runs first, then the from-scratch baseline at the same rate.
                for incremental in [true, false].into_iter().filter(|i| *i || !incremental_only) {
                    let opts = lift_cli::latency::LatencyOptions {
                        rate: rate.max(1),
                        duration: Duration::from_secs(seconds),
                        batch: batch.max(1),
                        writers: writers.max(1),
                        accounts: accounts.max(2),
                        debounce: Duration::from_millis(debounce_ms),
                        incremental,
                        ..Default::default()
                    };
                    let runs = if incremental { "incremental" } else { "from-scratch" };
                    eprintln!("latency: {rate} events/s for {seconds}s, {runs} runs ...");
                    reports.push(lift_cli::latency::run(&opts).await?);
                    last = opts;
                }
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

async fn privacy(a: PrivacyArgs) -> anyhow::Result<()> {
    use lift_cli::privacy as p;
    let mut client = lift_proto::privacy::v1::privacy_service_client::PrivacyServiceClient::new(
        stack::channel_with_key(&a.ingest_url, a.api_key.as_deref())?,
    );
    match a.command {
        PrivacyCommand::Export { account, visitor } => {
            let subject = p::subject(account.as_deref(), visitor.as_deref())?;
            let mut out = std::io::stdout().lock();
            let s = p::export(&mut client, subject, &mut out).await?;
            eprintln!(
                "exported {} events and {} links (ledger read through offset {}); not covered: {}",
                s.events,
                s.links,
                s.through_offset,
                s.not_covered.join("; ")
            );
        }
        PrivacyCommand::Erase { account, visitor, yes } => {
            let subject = p::subject(account.as_deref(), visitor.as_deref())?;
            if !yes {
                anyhow::bail!("an erasure cannot be undone: run again with --yes to erase");
            }
            let e = p::erase(&mut client, subject).await?;
            println!(
                "erased {} events, {} links, {} click-index rows; erasure marker at ledger offset {}; subject hash {}",
                e.events_erased, e.links_deleted, e.clicks_deleted, e.marker_offset, e.subject_hash
            );
        }
        PrivacyCommand::Audit { output } => {
            let entries = p::audit(&mut client).await?;
            match output {
                AuditOutput::Text => print!("{}", p::audit_table(&entries)),
                AuditOutput::Json => {
                    for e in entries {
                        let at = e.at.map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000);
                        let line = serde_json::json!({
                            "id": e.id, "at_unix_micros": at, "key_id": e.key_id, "scope": e.scope,
                            "action": p::action_name(e.action),
                            "subject_hash": e.subject_hash, "events": e.events,
                        });
                        println!("{line}");
                    }
                }
            }
        }
    }
    Ok(())
}
