//! Campaign properties on PostgreSQL: one container for the file, one fresh
//! database in it per property (each on its own stack). Every property runs
//! and every failure is reported. Without a container engine this test fails
//! and says why; it is never skipped. See `lift_tests::campaign`.

use anyhow::Context;
use lift_cli::stack::Databases;
use lift_store::ConnectionTrait;
use lift_tests::campaign;

/// Pins tenant isolation, criteria margins, the holdout, report figures, lift
/// and churn after a model change on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_properties_on_postgres() -> anyhow::Result<()> {
    let (_container, url) = lift_store::testing::postgres().await?;
    eprintln!("PostgreSQL container is up at {url}");
    let admin = lift_store::connect(&url).await?;
    let base = url.rsplit_once('/').map_or(url.as_str(), |(a, _)| a).to_owned();
    let mut failures = Vec::new();
    for name in ["tenant_isolation", "criteria_margins", "holdout", "report_figures", "lift", "churn"] {
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.with_context(|| format!("create {name}"))?;
        let dbs = Databases::shared(&format!("{base}/{name}"));
        let result = match name {
            "tenant_isolation" => campaign::tenant_isolation(dbs).await,
            "criteria_margins" => campaign::criteria_margins(dbs).await,
            "holdout" => campaign::holdout_random_and_recorded(dbs).await,
            "report_figures" => campaign::report_figures(dbs).await,
            "lift" => campaign::lift_on_simulated_campaign(dbs).await,
            _ => campaign::churn_after_model_change(dbs).await,
        };
        match result {
            Ok(()) => eprintln!("{name}: ok"),
            Err(e) => {
                eprintln!("{name}: FAILED: {e:#}");
                failures.push(format!("{name}: {e:#}"));
            }
        }
    }
    anyhow::ensure!(failures.is_empty(), "{} of 6 properties failed:\n{}", failures.len(), failures.join("\n"));
    Ok(())
}
