//! `lift`: run the demo, serve a service (or all three), import data,
//! migrate a database, manage brands.

mod args;
mod commands;
mod serve;

use std::time::Duration;

use anyhow::Context;
use args::{BrandsCommand, Cli, Command, ConfigCommand, Output, ValidateArgs};
use clap::Parser;
use lift_cli::{
    demo::{self, DemoOptions},
    stack,
};

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
        Command::Keys { command } => commands::keys(command).await?,
        Command::Privacy(a) => commands::privacy(a).await?,
        Command::Config { command: ConfigCommand::Show { config } } => {
            let mut layers = lift_cli::config::Layers::from_process(config.config_file.as_deref())?;
            layers.flags = config.set;
            print!("{}", lift_cli::config::show(&lift_cli::config::resolve(&layers)?)?);
        }
        Command::Bench { command } => commands::bench(command).await?,
    }
    Ok(())
}
