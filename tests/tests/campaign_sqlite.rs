//! Campaign properties on embedded SQLite: each test runs its own stack, every
//! service on its own in-memory database. See `lift_tests::campaign`.

use lift_cli::stack::Databases;
use lift_tests::campaign;

/// Pins that no brand sees, changes or lists another brand's campaign, and that keys are required.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_isolation_on_sqlite() -> anyhow::Result<()> {
    campaign::tenant_isolation(Databases::in_memory()).await
}

/// Pins criteria verdicts, margins, ranks and near misses against scoring's own scores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn criteria_margins_on_sqlite() -> anyhow::Result<()> {
    campaign::criteria_margins(Databases::in_memory()).await
}

/// Pins the seeded, recorded, reproducible holdout drawn from the eligible creators.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holdout_random_and_recorded_on_sqlite() -> anyhow::Result<()> {
    campaign::holdout_random_and_recorded(Databases::in_memory()).await
}

/// Pins every report figure of a scripted campaign against hand-computed numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_figures_on_sqlite() -> anyhow::Result<()> {
    campaign::report_figures(Databases::in_memory()).await
}

/// Pins that the lift interval of a simulated campaign contains its known true effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lift_on_simulated_campaign_on_sqlite() -> anyhow::Result<()> {
    campaign::lift_on_simulated_campaign(Databases::in_memory()).await
}

/// Pins the churn record and threshold translation after scoring restarts with a new model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_after_model_change_on_sqlite() -> anyhow::Result<()> {
    campaign::churn_after_model_change(Databases::in_memory()).await
}
