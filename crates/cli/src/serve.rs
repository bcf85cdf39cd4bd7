//! `lift serve`: one service, all three, or the web console. Settings come
//! from one place, `lift_cli::config` (defaults < lift.toml < environment <
//! flags); each flag here is a shorthand for one setting's path. Every
//! service's database is connected the same way (`stack::connect_db`) and its
//! config and dependencies passed to its `run`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Args, ValueEnum};
use lift_cli::stack::{self, Databases, ServiceOptions, StackOptions};
use lift_runtime::auth::{Auth, KeyStore, RateLimit};
use lift_runtime::client::{ClientOptions, Credentials};
use lift_runtime::tls::{ClientTls, TlsFiles};
use lift_runtime::{Limits, ServeOptions, Shutdown};
use tokio::{net::TcpListener, task::JoinSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Which {
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
pub(crate) struct ConfigArgs {
    /// Configuration file (TOML); default `./lift.toml` when present. Layers:
    /// defaults < file < environment < flags (see `lift config show`).
    #[arg(long = "config", env = "LIFT_CONFIG")]
    pub(crate) config_file: Option<PathBuf>,
    /// Override any setting by its path, e.g. `--set scoring.model.damping=0.8` (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE", value_parser = parse_set)]
    pub(crate) set: Vec<(String, String)>,
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected PATH=VALUE, got {s:?}"))
}

/// Each flag is a shorthand for one setting (its path in brackets); environment
/// variables are read in the environment layer (`lift config show` lists them all).
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
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
    /// [database.auth_url] Where API keys live (default: the database URL; env LIFT_AUTH_DATABASE_URL).
    #[arg(long)]
    auth_database_url: Option<String>,
    /// [web.addr] Where the web console listens (env LIFT_WEB_ADDR; default 127.0.0.1:8080).
    #[arg(long)]
    web_addr: Option<SocketAddr>,
    /// [web.matching_url] Where the web console reaches matching (env LIFT_MATCHING_URL).
    #[arg(long)]
    matching_url: Option<String>,
    /// [web.secure_cookie] Mark the console's key cookie Secure (serve it behind https;
    /// env LIFT_WEB_SECURE_COOKIE).
    #[arg(long)]
    web_secure_cookie: bool,
    /// [collect.addr] HTTP address of the link redirector, beacon and order webhooks
    /// (env LIFT_LINKS_ADDR; default 127.0.0.1:8081).
    #[arg(long)]
    links_addr: Option<SocketAddr>,
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
    /// `service.name` of this process's traces.
    pub(crate) fn service_name(&self) -> &'static str {
        match self.which {
            Which::Ingest => "lift-ingest",
            Which::Scoring => "lift-scoring",
            Which::Matching => "lift-matching",
            Which::Web => "lift-web",
            Which::Links => "lift-links",
            Which::All => "lift",
        }
    }

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
        put("web.addr", self.web_addr.map(|a| a.to_string()));
        put("web.matching_url", self.matching_url.clone());
        put("web.secure_cookie", self.web_secure_cookie.then(|| "true".to_owned()));
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

pub(crate) async fn serve(a: ServeArgs) -> anyhow::Result<()> {
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
    if matches!(a.which, Which::Ingest | Which::All) {
        c.check_retention()?;
    }
    match a.which {
        Which::Ingest => {
            let db = stack::connect_db(&database_url, &opts).await?;
            stack::spawn_ingest_on(&mut tasks, bind(ingest_addr).await?, db, c.ingest.to_config(), &opts, &shutdown)
        }
        Which::Scoring => {
            let db = stack::connect_db(&database_url, &opts).await?;
            stack::spawn_scoring_on(
                &mut tasks,
                bind(scoring_addr).await?,
                db,
                &c.server.ingest_url,
                scoring_cfg,
                &opts,
                &shutdown,
            )
            .await?
        }
        Which::Matching => {
            let db = stack::connect_db(&database_url, &opts).await?;
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
                matching_url: c.web.matching_url.clone(),
                tls: opts.client.tls.clone(),
                secure_cookie: c.web.secure_cookie,
            };
            stack::spawn_web(&mut tasks, bind(addr("web.addr", &c.web.addr)?).await?, cfg, &shutdown);
        }
        Which::Links => {
            let links_addr = addr("collect.addr", &c.collect.addr)?;
            let db = stack::connect_db(&database_url, &opts).await?;
            let cfg = c.collect.to_config(&c.matching.link_base);
            stack::spawn_collect(&mut tasks, bind(links_addr).await?, db, &c.server.ingest_url, cfg, &opts, &shutdown)
                .await?;
            tracing::info!("link collector on http://{links_addr}/");
        }
        Which::All => {
            let listeners = [bind(ingest_addr).await?, bind(scoring_addr).await?, bind(matching_addr).await?];
            let web = bind(addr("web.addr", &c.web.addr)?).await?;
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
