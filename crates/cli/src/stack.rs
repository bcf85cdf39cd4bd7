//! Starting Lift's services: one, or all three in one process. Each service
//! owns its database; scoring and matching reach the others only over gRPC,
//! even when they share a process.

use std::net::SocketAddr;

use lift_proto::{
    ingest::v1::ingest_service_client::IngestServiceClient, scoring::v1::scoring_service_client::ScoringServiceClient,
};
use lift_runtime::Shutdown;
use tokio::{net::TcpListener, task::JoinSet};
use tonic::transport::{Channel, Endpoint};

/// Where each service keeps its data.
#[derive(Debug, Clone)]
pub struct Databases {
    pub ingest: String,
    pub scoring: String,
    pub matching: String,
}

impl Databases {
    /// The same database for all three (each service uses its own tables).
    pub fn shared(url: &str) -> Self {
        Self { ingest: url.into(), scoring: url.into(), matching: url.into() }
    }
}

/// A running stack: addresses, and the tasks to await after shutdown.
#[derive(Debug)]
pub struct Stack {
    pub ingest_addr: SocketAddr,
    pub scoring_addr: SocketAddr,
    pub matching_addr: SocketAddr,
    pub shutdown: Shutdown,
    pub matching_db: sea_orm::DatabaseConnection,
    tasks: JoinSet<anyhow::Result<()>>,
}

/// A lazily-connecting channel to a peer service: the peer may start after us.
pub fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect_lazy())
}

pub fn http_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Serves ingestion on `listener` until shutdown.
pub async fn spawn_ingest(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    listener: TcpListener,
    db_url: &str,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let db = lift_store::connect(db_url).await?;
    let ingest = lift_ingest::Ingest::new(db, lift_ingest::IngestConfig::default());
    let sd = shutdown.clone();
    tasks.spawn(async move { Ok(lift_runtime::serve(listener, ingest.grpc(), sd).await?) });
    Ok(())
}

/// Serves scoring on `listener` and consumes the ledger from `ingest_url`.
pub async fn spawn_scoring(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    listener: TcpListener,
    db_url: &str,
    ingest_url: &str,
    cfg: lift_scoring::ScoringConfig,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let db = lift_store::connect(db_url).await?;
    let scoring = lift_scoring::Scoring::new(db, cfg).await?;
    let ingest = IngestServiceClient::new(channel(ingest_url)?);
    let (sd1, sd2) = (shutdown.clone(), shutdown.clone());
    let consumer = scoring.clone();
    tasks.spawn(async move { Ok(consumer.run_consumer(ingest, sd1).await?) });
    tasks.spawn(async move { Ok(lift_runtime::serve(listener, scoring.grpc(), sd2).await?) });
    Ok(())
}

/// Serves matching on `listener`, calling scoring and ingestion by URL.
pub async fn spawn_matching(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    listener: TcpListener,
    db: sea_orm::DatabaseConnection,
    scoring_url: &str,
    ingest_url: &str,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let matching = lift_matching::Matching::new(
        db,
        ScoringServiceClient::new(channel(scoring_url)?),
        IngestServiceClient::new(channel(ingest_url)?),
        lift_matching::MatchingConfig::default(),
    );
    let sd = shutdown.clone();
    tasks.spawn(async move { Ok(lift_runtime::serve(listener, matching.grpc(), sd).await?) });
    Ok(())
}

impl Stack {
    /// Starts all three services on the given listeners.
    pub async fn start(
        listeners: [TcpListener; 3],
        dbs: &Databases,
        scoring_cfg: lift_scoring::ScoringConfig,
    ) -> anyhow::Result<Self> {
        let [li, ls, lm] = listeners;
        let (ingest_addr, scoring_addr, matching_addr) = (li.local_addr()?, ls.local_addr()?, lm.local_addr()?);
        let shutdown = Shutdown::new();
        let mut tasks = JoinSet::new();
        spawn_ingest(&mut tasks, li, &dbs.ingest, &shutdown).await?;
        spawn_scoring(&mut tasks, ls, &dbs.scoring, &http_url(ingest_addr), scoring_cfg, &shutdown).await?;
        let matching_db = lift_store::connect(&dbs.matching).await?;
        spawn_matching(&mut tasks, lm, matching_db.clone(), &http_url(scoring_addr), &http_url(ingest_addr), &shutdown)
            .await?;
        Ok(Self { ingest_addr, scoring_addr, matching_addr, shutdown, matching_db, tasks })
    }

    /// Starts all three on ephemeral loopback ports.
    pub async fn start_loopback(dbs: &Databases, scoring_cfg: lift_scoring::ScoringConfig) -> anyhow::Result<Self> {
        let l = [
            TcpListener::bind("127.0.0.1:0").await?,
            TcpListener::bind("127.0.0.1:0").await?,
            TcpListener::bind("127.0.0.1:0").await?,
        ];
        Self::start(l, dbs, scoring_cfg).await
    }

    pub fn ingest_url(&self) -> String {
        http_url(self.ingest_addr)
    }
    pub fn scoring_url(&self) -> String {
        http_url(self.scoring_addr)
    }
    pub fn matching_url(&self) -> String {
        http_url(self.matching_addr)
    }

    /// Signals shutdown and waits for every task, returning the first error.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        self.join().await
    }

    /// Waits for every task (after shutdown was signalled elsewhere).
    pub async fn join(&mut self) -> anyhow::Result<()> {
        let mut first = Ok(());
        while let Some(r) = self.tasks.join_next().await {
            let r = r.map_err(anyhow::Error::from).and_then(|r| r);
            if let (Err(e), true) = (r, first.is_ok()) {
                first = Err(e);
            }
        }
        first
    }
}
