//! `lift serve`: one service, or all three in one process, with every
//! setting a flag or an environment variable.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Args, ValueEnum};
use lift_cli::stack::{self, Databases, ServiceOptions, StackOptions};
use lift_runtime::auth::{Auth, KeyStore, RateLimit};
use lift_runtime::client::{ClientOptions, Credentials};
use lift_runtime::tls::{ClientTls, TlsFiles};
use lift_runtime::{Limits, ServeOptions, Shutdown};
use tokio::{net::TcpListener, task::JoinSet};

use crate::OnOff;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Which {
    Ingest,
    Scoring,
    Matching,
    All,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
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
    #[command(flatten, next_help_heading = "Ingestion")]
    ingest: lift_ingest::IngestConfig,
    #[command(flatten, next_help_heading = "Scoring")]
    scoring: lift_scoring::ScoringConfig,
    #[command(flatten, next_help_heading = "Matching")]
    matching: lift_matching::MatchingConfig,
}

/// TLS (rustls) by PEM files. With a server certificate, peers' URLs must be https.
#[derive(Debug, Args)]
pub(crate) struct TlsArgs {
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

pub(crate) async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    shutdown.on_os_signals();
    let mut tasks = JoinSet::new();
    let scoring_cfg = a.scoring.clone();
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
        ingest: a.ingest.clone(),
        matching: a.matching.clone(),
    };
    if a.api_key.is_none() && auth_on && matches!(a.which, Which::Scoring | Which::Matching) {
        tracing::warn!("no LIFT_API_KEY: calls to peers carry no key and fail if the peers require one");
    }
    match a.which {
        Which::Ingest => {
            let db = stack::connect_db(&a.database_url, &opts).await?;
            stack::spawn_ingest_on(&mut tasks, bind(a.ingest_addr).await?, db, &opts, &shutdown)
        }
        Which::Scoring => {
            let db = stack::connect_db(&a.database_url, &opts).await?;
            stack::spawn_scoring_on(
                &mut tasks,
                bind(a.scoring_addr).await?,
                db,
                &a.ingest_url,
                scoring_cfg,
                &opts,
                &shutdown,
            )
            .await?
        }
        Which::Matching => {
            let db = stack::connect_db(&a.database_url, &opts).await?;
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
        Which::All => {
            let listeners = [bind(a.ingest_addr).await?, bind(a.scoring_addr).await?, bind(a.matching_addr).await?];
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
                ingest: opts.ingest,
                matching: opts.matching,
            };
            let s = stack::Stack::start_with(listeners, &Databases::shared(&a.database_url), scoring_cfg, opts).await?;
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
