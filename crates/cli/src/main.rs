//! `lift`: run the demo, serve a service (or all three), import data,
//! migrate a database, manage brands.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use lift_cli::{
    demo::{self, DemoOptions},
    stack::{self, Databases},
};
use lift_runtime::{Shutdown, telemetry::LogFormat};
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
    Serve(ServeArgs),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Ingest,
    Scoring,
    Matching,
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
}

#[derive(Debug, Args)]
struct ImportArgs {
    file: PathBuf,
    #[arg(long, env = "LIFT_INGEST_URL", default_value = "http://127.0.0.1:50051")]
    ingest_url: String,
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let quiet_default = matches!(cli.command, Command::Demo(_) | Command::Import(_) | Command::Health { .. });
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
        Command::Serve(a) => serve(a).await?,
        Command::Migrate { database_url } => {
            lift_store::connect(&database_url).await.context("migrating")?;
            println!("schema is up to date");
        }
        Command::Import(a) => {
            let mut client =
                lift_proto::ingest::v1::ingest_service_client::IngestServiceClient::new(stack::channel(&a.ingest_url)?);
            let report = lift_ingest::import::import_file(
                &mut client,
                &a.file,
                &lift_ingest::import::ImportOptions { network: a.network, progress: !a.quiet, ..Default::default() },
            )
            .await?;
            println!(
                "{}: {} rows -> {} events ({} accounts): {} accepted, {} duplicates, {} rejected in {:.1}s ({:.0} events/s)",
                a.file.display(),
                report.rows,
                report.events,
                report.accounts,
                report.accepted,
                report.duplicates,
                report.rejected,
                report.elapsed.as_secs_f64(),
                report.events_per_sec()
            );
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
    match a.which {
        Which::Ingest => {
            stack::spawn_ingest(&mut tasks, bind(a.ingest_addr).await?, &a.database_url, &shutdown).await?
        }
        Which::Scoring => {
            stack::spawn_scoring(
                &mut tasks,
                bind(a.scoring_addr).await?,
                &a.database_url,
                &a.ingest_url,
                scoring_cfg,
                &shutdown,
            )
            .await?
        }
        Which::Matching => {
            let db = lift_store::connect(&a.database_url).await?;
            stack::spawn_matching(
                &mut tasks,
                bind(a.matching_addr).await?,
                db,
                &a.scoring_url,
                &a.ingest_url,
                &shutdown,
            )
            .await?
        }
        Which::All => {
            let listeners = [bind(a.ingest_addr).await?, bind(a.scoring_addr).await?, bind(a.matching_addr).await?];
            let mut s = stack::Stack::start(listeners, &Databases::shared(&a.database_url), scoring_cfg).await?;
            let sd = s.shutdown.clone();
            tokio::spawn({
                let outer = shutdown.clone();
                async move {
                    outer.wait().await;
                    sd.trigger();
                }
            });
            return s.join().await;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}
