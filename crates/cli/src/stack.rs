//! Starting Lift's services: one, or all three in one process. Each service
//! owns its database; scoring and matching reach the others only over gRPC,
//! even when they share a process, presenting their own API keys.

use std::net::SocketAddr;
use std::time::Duration;

use lift_proto::{
    ingest::v1::ingest_service_client::IngestServiceClient, scoring::v1::scoring_service_client::ScoringServiceClient,
};
use lift_runtime::auth::{self, Auth, KeyStore, RateLimit, Scope};
use lift_runtime::client::{self, Channel, ClientOptions, Credentials};
use lift_runtime::tls::{ClientTls, ServerTls};
use lift_runtime::{Limits, ServeOptions, Shutdown};
use tokio::{net::TcpListener, task::JoinSet};

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

    /// A fresh in-memory SQLite database per service, gone when the stack stops.
    pub fn in_memory() -> Self {
        Self::shared("sqlite::memory:")
    }

    /// SQLite files `ingest.db`, `scoring.db` and `matching.db` in `dir` (created on first use).
    pub fn sqlite_files(dir: &std::path::Path) -> Self {
        Self {
            ingest: sqlite_file(dir, "ingest.db"),
            scoring: sqlite_file(dir, "scoring.db"),
            matching: sqlite_file(dir, "matching.db"),
        }
    }
}

/// The URL of SQLite file `name` in `dir`, created if missing.
pub fn sqlite_file(dir: &std::path::Path, name: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.join(name).display())
}

/// How a service serves and how it calls its peers.
#[derive(Debug, Clone, Default)]
pub struct ServiceOptions {
    pub serve: ServeOptions,
    /// Credentials and TLS for outgoing calls (scoring → ingestion, matching → both).
    pub client: ClientOptions,
    /// Database pool settings (how long a call waits for a connection bounds how
    /// long a client waits while the database is down).
    pub db: lift_store::ConnectConfig,
}

/// How an in-process stack runs. `Default`: authentication on, with keys the
/// stack mints at start (see [`Stack::client_key`]) and revokes at stop.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub auth: bool,
    pub rate_limit: Option<RateLimit>,
    pub limits: Limits,
    /// Server TLS for all three, and what their clients trust (URLs become https).
    pub tls: Option<(ServerTls, ClientTls)>,
    pub db: lift_store::ConnectConfig,
    pub ingest: lift_ingest::IngestConfig,
    pub matching: lift_matching::MatchingConfig,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            auth: true,
            rate_limit: Some(DEFAULT_RATE_LIMIT),
            limits: Limits::default(),
            tls: None,
            db: lift_store::ConnectConfig::default(),
            ingest: lift_ingest::IngestConfig::default(),
            matching: lift_matching::MatchingConfig::default(),
        }
    }
}

/// Bound on each call matching makes to scoring or ingestion.
pub const MATCHING_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Requests per second per key (and burst) unless configured otherwise.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit { per_second: 1_000.0, burst: 2_000.0 };

/// A running stack: addresses, and the tasks to await after shutdown.
#[derive(Debug)]
pub struct Stack {
    pub ingest_addr: SocketAddr,
    pub scoring_addr: SocketAddr,
    pub matching_addr: SocketAddr,
    pub shutdown: Shutdown,
    pub matching_db: sea_orm::DatabaseConnection,
    /// A key with `ingest:write`, `ingest:read`, `links:write` and `scores:read` for
    /// the stack's own clients (demo, tests); `None` with authentication off. Brands get theirs
    /// from `lift_matching::create_brand`.
    pub client_key: Option<String>,
    scheme: &'static str,
    client_tls: Option<ClientTls>,
    /// Keys minted for this stack, revoked at stop.
    minted: Vec<String>,
    tasks: JoinSet<anyhow::Result<()>>,
    /// Scoring runs under its own shutdown (fired with the stack's) so that
    /// [`Stack::restart_scoring`] can stop and start it alone.
    scoring: ScoringNode,
}

#[derive(Debug)]
struct ScoringNode {
    db: sea_orm::DatabaseConnection,
    opts: ServiceOptions,
    stop: Shutdown,
    tasks: JoinSet<anyhow::Result<()>>,
}

/// A lazily-connecting channel to a peer service, without credentials: the peer may start after us.
pub fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(client::connect_lazy(url, &ClientOptions::default())?)
}

/// A lazily-connecting channel that presents `key` (if any).
pub fn channel_with_key(url: &str, key: Option<&str>) -> anyhow::Result<Channel> {
    let opts = ClientOptions { credentials: Credentials::from_option(key)?, ..ClientOptions::default() };
    Ok(client::connect_lazy(url, &opts)?)
}

pub fn http_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Serves ingestion on `listener` until shutdown, with the default settings.
pub async fn spawn_ingest(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    listener: TcpListener,
    db_url: &str,
    opts: &ServiceOptions,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    spawn_ingest_with(tasks, listener, db_url, lift_ingest::IngestConfig::default(), opts, shutdown).await
}

/// Connects to (and migrates) a service's database with the pool settings of
/// `opts`: every service's database is opened this way, then passed in.
pub async fn connect_db(url: &str, opts: &ServiceOptions) -> anyhow::Result<sea_orm::DatabaseConnection> {
    Ok(lift_store::connect_with(url, &opts.db).await?)
}

/// Serves ingestion on `listener` until shutdown, over the database at `db_url`.
pub async fn spawn_ingest_with(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    listener: TcpListener,
    db_url: &str,
    cfg: lift_ingest::IngestConfig,
    opts: &ServiceOptions,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let db = connect_db(db_url, opts).await?;
    spawn_ingest_on(tasks, listener, db, cfg, opts, shutdown);
    Ok(())
}

/// Serves the link redirector, beacon and order webhooks (lift-collect) on `listener`,
/// delivering to ingestion at `ingest_url` with `opts.client`'s key (`ingest:write`);
/// `db` holds the brands' webhook secrets.
pub async fn spawn_collect(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    listener: TcpListener,
    db: sea_orm::DatabaseConnection,
    ingest_url: &str,
    cfg: lift_collect::CollectConfig,
    opts: &ServiceOptions,
    shutdown: &Shutdown,
) -> anyhow::Result<lift_collect::Collector> {
    let ingest = client::connect_lazy(ingest_url, &opts.client)?;
    let (collector, delivery) = lift_collect::Collector::start(cfg, ingest, db, shutdown)?;
    let (c, sd) = (collector.clone(), shutdown.clone());
    tasks.spawn(async move {
        lift_collect::serve(listener, c, sd).await?;
        // The delivery task flushes (bounded) after shutdown; wait for it.
        delivery.await?;
        Ok(())
    });
    Ok(collector)
}

/// Serves ingestion on `listener` until shutdown, over an open database connection.
pub fn spawn_ingest_on(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    listener: TcpListener,
    db: sea_orm::DatabaseConnection,
    cfg: lift_ingest::IngestConfig,
    opts: &ServiceOptions,
    shutdown: &Shutdown,
) {
    let deps = lift_ingest::IngestDeps { db, serve: opts.serve.clone() };
    let sd = shutdown.clone();
    tasks.spawn(async move { Ok(lift_ingest::run(listener, cfg, deps, sd).await?) });
}

/// Serves scoring on `listener` and consumes the ledger from `ingest_url`.
pub async fn spawn_scoring(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    listener: TcpListener,
    db_url: &str,
    ingest_url: &str,
    cfg: lift_scoring::ScoringConfig,
    opts: &ServiceOptions,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let db = connect_db(db_url, opts).await?;
    spawn_scoring_on(tasks, listener, db, ingest_url, cfg, opts, shutdown).await
}

/// Serves scoring on `listener` over an open database connection.
pub async fn spawn_scoring_on(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    listener: TcpListener,
    db: sea_orm::DatabaseConnection,
    ingest_url: &str,
    cfg: lift_scoring::ScoringConfig,
    opts: &ServiceOptions,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    // A subscription lives as long as the process: no per-call timeout on it.
    let consumer_opts = ClientOptions { timeout: None, ..opts.client.clone() };
    let ingest = IngestServiceClient::new(client::connect_lazy(ingest_url, &consumer_opts)?);
    let deps = lift_scoring::ScoringDeps { db, ingest, serve: opts.serve.clone() };
    let sd = shutdown.clone();
    tasks.spawn(async move { Ok(lift_scoring::run(listener, cfg, deps, sd).await?) });
    Ok(())
}

/// Serves matching on `listener`, calling scoring and ingestion by URL, with the default settings.
pub async fn spawn_matching(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    listener: TcpListener,
    db: sea_orm::DatabaseConnection,
    scoring_url: &str,
    ingest_url: &str,
    opts: &ServiceOptions,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let cfg = lift_matching::MatchingConfig::default();
    spawn_matching_with(tasks, listener, db, scoring_url, ingest_url, cfg, opts, shutdown).await
}

/// Serves matching on `listener`, calling scoring and ingestion by URL.
#[allow(clippy::too_many_arguments)]
pub async fn spawn_matching_with(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    listener: TcpListener,
    db: sea_orm::DatabaseConnection,
    scoring_url: &str,
    ingest_url: &str,
    cfg: lift_matching::MatchingConfig,
    opts: &ServiceOptions,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    // Matching's calls are all unary: each is bounded.
    let unary = ClientOptions { timeout: Some(MATCHING_CALL_TIMEOUT), ..opts.client.clone() };
    let deps = lift_matching::MatchingDeps {
        db,
        scoring: ScoringServiceClient::new(client::connect_lazy(scoring_url, &unary)?),
        ingest: IngestServiceClient::new(client::connect_lazy(ingest_url, &unary)?),
        serve: opts.serve.clone(),
    };
    let sd = shutdown.clone();
    tasks.spawn(async move { Ok(lift_matching::run(listener, cfg, deps, sd).await?) });
    Ok(())
}

/// Serves the web console on `listener`, calling scoring and matching by URL with
/// each visitor's own key, until shutdown.
pub fn spawn_web(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    listener: TcpListener,
    cfg: lift_web::WebConfig,
    shutdown: &Shutdown,
) {
    let sd = shutdown.clone();
    tasks.spawn(async move { Ok(lift_web::serve(listener, cfg, sd).await?) });
}

impl Stack {
    /// Starts the web console on `listener` against this stack's services; it stops
    /// with the stack. Returns the console's address.
    pub fn start_web(&mut self, listener: TcpListener) -> anyhow::Result<SocketAddr> {
        let addr = listener.local_addr()?;
        let cfg = lift_web::WebConfig {
            scoring_url: self.scoring_url(),
            matching_url: self.matching_url(),
            tls: self.client_tls.clone(),
            secure_cookie: false,
        };
        spawn_web(&mut self.tasks, listener, cfg, &self.shutdown);
        Ok(addr)
    }

    /// Starts all three services on the given listeners with default options
    /// (authentication on, keys minted for the stack).
    pub async fn start(
        listeners: [TcpListener; 3],
        dbs: &Databases,
        scoring_cfg: lift_scoring::ScoringConfig,
    ) -> anyhow::Result<Self> {
        Self::start_with(listeners, dbs, scoring_cfg, StackOptions::default()).await
    }

    /// Starts all three services. With authentication on, every service checks keys
    /// in the matching database (where brands' keys live too), and the stack mints a
    /// key per internal caller: scoring gets `ingest:read`; matching gets
    /// `scores:read`, `ingest:read`, `ingest:write` (offer transitions) and `links:write`.
    pub async fn start_with(
        listeners: [TcpListener; 3],
        dbs: &Databases,
        scoring_cfg: lift_scoring::ScoringConfig,
        opts: StackOptions,
    ) -> anyhow::Result<Self> {
        let [li, ls, lm] = listeners;
        let (ingest_addr, scoring_addr, matching_addr) = (li.local_addr()?, ls.local_addr()?, lm.local_addr()?);
        let matching_db = lift_store::connect_with(&dbs.matching, &opts.db).await?;
        let (scheme, client_tls, server_tls) = match &opts.tls {
            Some((s, c)) => ("https", Some(c.clone()), Some(s.clone())),
            None => ("http", None, None),
        };
        let mut minted = Vec::new();
        let (auth, keys) = if opts.auth {
            let mut mint = async |name: &str, scopes: &[Scope]| -> anyhow::Result<String> {
                let (k, secret) = auth::create_key(&matching_db, name, scopes, None).await?;
                minted.push(k.id);
                Ok(secret)
            };
            let scoring_key = mint("internal: scoring", &[Scope::IngestRead]).await?;
            let matching_key = mint(
                "internal: matching",
                &[Scope::ScoresRead, Scope::IngestRead, Scope::IngestWrite, Scope::LinksWrite],
            )
            .await?;
            let client_key =
                mint("stack client", &[Scope::IngestWrite, Scope::IngestRead, Scope::LinksWrite, Scope::ScoresRead])
                    .await?;
            let store = KeyStore::new(matching_db.clone(), auth::DEFAULT_KEY_TTL);
            (Auth::Keys(store), Some((scoring_key, matching_key, client_key)))
        } else {
            (Auth::Disabled, None)
        };
        let serve = ServeOptions {
            auth,
            rate_limit: if opts.auth { opts.rate_limit } else { None },
            limits: opts.limits,
            tls: server_tls,
        };
        let service = |key: Option<&String>| -> anyhow::Result<ServiceOptions> {
            Ok(ServiceOptions {
                serve: serve.clone(),
                client: ClientOptions {
                    credentials: Credentials::from_option(key.map(String::as_str))?,
                    tls: client_tls.clone(),
                    ..ClientOptions::default()
                },
                db: opts.db.clone(),
            })
        };
        let url = |a: SocketAddr| format!("{scheme}://{a}");
        let shutdown = Shutdown::new();
        let mut tasks = JoinSet::new();
        spawn_ingest_with(&mut tasks, li, &dbs.ingest, opts.ingest.clone(), &service(None)?, &shutdown).await?;
        let scoring_opts = service(keys.as_ref().map(|k| &k.0))?;
        let scoring_db = lift_store::connect_with(&dbs.scoring, &opts.db).await?;
        let scoring =
            ScoringNode::start(&mut tasks, &shutdown, ls, scoring_db, &url(ingest_addr), scoring_cfg, scoring_opts)
                .await?;
        let matching_opts = service(keys.as_ref().map(|k| &k.1))?;
        spawn_matching_with(
            &mut tasks,
            lm,
            matching_db.clone(),
            &url(scoring_addr),
            &url(ingest_addr),
            opts.matching.clone(),
            &matching_opts,
            &shutdown,
        )
        .await?;
        Ok(Self {
            ingest_addr,
            scoring_addr,
            matching_addr,
            shutdown,
            matching_db,
            client_key: keys.map(|k| k.2),
            scheme,
            client_tls,
            minted,
            tasks,
            scoring,
        })
    }

    /// Starts all three on ephemeral loopback ports.
    pub async fn start_loopback(dbs: &Databases, scoring_cfg: lift_scoring::ScoringConfig) -> anyhow::Result<Self> {
        Self::start_loopback_with(dbs, scoring_cfg, StackOptions::default()).await
    }

    pub async fn start_loopback_with(
        dbs: &Databases,
        scoring_cfg: lift_scoring::ScoringConfig,
        opts: StackOptions,
    ) -> anyhow::Result<Self> {
        let l = [
            TcpListener::bind("127.0.0.1:0").await?,
            TcpListener::bind("127.0.0.1:0").await?,
            TcpListener::bind("127.0.0.1:0").await?,
        ];
        Self::start_with(l, dbs, scoring_cfg, opts).await
    }

    pub fn ingest_url(&self) -> String {
        format!("{}://{}", self.scheme, self.ingest_addr)
    }
    pub fn scoring_url(&self) -> String {
        format!("{}://{}", self.scheme, self.scoring_addr)
    }
    pub fn matching_url(&self) -> String {
        format!("{}://{}", self.scheme, self.matching_addr)
    }

    /// A channel to `url` presenting `key` (with the stack's TLS trust).
    pub fn channel_as(&self, url: &str, key: Option<&str>) -> anyhow::Result<Channel> {
        let opts = ClientOptions {
            credentials: Credentials::from_option(key)?,
            tls: self.client_tls.clone(),
            ..ClientOptions::default()
        };
        Ok(client::connect_lazy(url, &opts)?)
    }

    /// A channel to `url` presenting the stack's [`client_key`](Self::client_key).
    pub fn channel(&self, url: &str) -> anyhow::Result<Channel> {
        self.channel_as(url, self.client_key.as_deref())
    }

    /// Starts the collector (lift-collect) on `listener` as part of this stack: it delivers
    /// to the stack's ingestion with the stack's client key and reads webhook secrets from
    /// matching's database; it stops with the stack.
    pub async fn start_collect(
        &mut self,
        listener: TcpListener,
        cfg: lift_collect::CollectConfig,
    ) -> anyhow::Result<lift_collect::Collector> {
        let opts = ServiceOptions {
            serve: ServeOptions::default(),
            client: ClientOptions {
                credentials: Credentials::from_option(self.client_key.as_deref())?,
                tls: self.client_tls.clone(),
                ..ClientOptions::default()
            },
            db: lift_store::ConnectConfig::default(),
        };
        let ingest_url = self.ingest_url();
        spawn_collect(&mut self.tasks, listener, self.matching_db.clone(), &ingest_url, cfg, &opts, &self.shutdown)
            .await
    }

    /// Stops the scoring service (its server closes its connections, as a stopped
    /// process's would) and starts it again on the same address with `cfg`, over
    /// the same database: a new model in `cfg` recalibrates, as after a deploy.
    /// The database connection is kept, so an in-memory SQLite database survives.
    pub async fn restart_scoring(&mut self, cfg: lift_scoring::ScoringConfig) -> anyhow::Result<()> {
        self.scoring.stop.trigger();
        let mut first = Ok(());
        while let Some(r) = self.scoring.tasks.join_next().await {
            let r = r.map_err(anyhow::Error::from).and_then(|r| r);
            if let (Err(e), true) = (r, first.is_ok()) {
                first = Err(e);
            }
        }
        first?;
        let listener = TcpListener::bind(self.scoring_addr).await?;
        let (db, opts) = (self.scoring.db.clone(), self.scoring.opts.clone());
        let ingest_url = self.ingest_url();
        self.scoring =
            ScoringNode::start(&mut self.tasks, &self.shutdown, listener, db, &ingest_url, cfg, opts).await?;
        Ok(())
    }

    /// Signals shutdown, waits for every task and revokes the keys minted for the
    /// stack, returning the first error.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        self.finish().await
    }

    /// Waits for every task (after shutdown was signalled elsewhere) and revokes the
    /// keys minted for the stack.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        let r = self.join().await;
        for id in std::mem::take(&mut self.minted) {
            if let Err(e) = auth::revoke_key(&self.matching_db, &id).await {
                tracing::warn!(key = %id, error = %e, "could not revoke the stack's key");
            }
        }
        r
    }

    /// Waits for every task (after shutdown was signalled elsewhere).
    pub async fn join(&mut self) -> anyhow::Result<()> {
        let mut first = Ok(());
        while let Some(r) = match self.tasks.join_next().await {
            Some(r) => Some(r),
            None => self.scoring.tasks.join_next().await,
        } {
            let r = r.map_err(anyhow::Error::from).and_then(|r| r);
            if let (Err(e), true) = (r, first.is_ok()) {
                first = Err(e);
            }
        }
        first
    }
}

impl ScoringNode {
    /// Spawns scoring under a shutdown of its own that the stack's `shutdown`
    /// also fires (through a task in the stack's `tasks`).
    async fn start(
        stack_tasks: &mut JoinSet<anyhow::Result<()>>,
        shutdown: &Shutdown,
        listener: TcpListener,
        db: sea_orm::DatabaseConnection,
        ingest_url: &str,
        cfg: lift_scoring::ScoringConfig,
        opts: ServiceOptions,
    ) -> anyhow::Result<Self> {
        let stop = Shutdown::new();
        let mut tasks = JoinSet::new();
        spawn_scoring_on(&mut tasks, listener, db.clone(), ingest_url, cfg, &opts, &stop).await?;
        let (outer, inner) = (shutdown.clone(), stop.clone());
        stack_tasks.spawn(async move {
            tokio::select! {
                () = outer.wait() => inner.trigger(),
                () = inner.wait() => {}
            }
            Ok(())
        });
        Ok(Self { db, opts, stop, tasks })
    }
}
