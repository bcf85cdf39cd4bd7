//! One configuration for every service, layered: built-in defaults < `lift.toml` <
//! environment < command-line flags.
//!
//! Every setting has a dotted path (`scoring.model.damping`), a place in the TOML
//! file (`[scoring.model]` / `damping = 0.8`), a generic environment variable
//! (`LIFT_SCORING__MODEL__DAMPING`: `LIFT_`, the path upper-cased, `.` → `__`), and
//! a flag (`--set scoring.model.damping=0.8`); the common ones also keep their short
//! environment names (`DATABASE_URL`, `LIFT_INGEST_ADDR`, … see [`ENV_ALIASES`]) and
//! flags. Unknown paths are errors, so a typo never silently keeps a default.
//!
//! The model's parameters are part of it: a changed parameter gives a new model
//! version, which scoring recalibrates to (old → new mapping) when it restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

/// Everything the `lift serve` services can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiftConfig {
    pub server: ServerSection,
    pub database: DatabaseSection,
    pub credentials: CredentialsSection,
    pub tls: TlsSection,
    pub ingest: IngestSection,
    pub scoring: ScoringSection,
    pub matching: MatchingSection,
    pub collect: CollectSection,
    pub web: WebSection,
}

/// The web console (`serve web`, part of `serve all`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSection {
    /// `host:port` of the console.
    pub addr: String,
    /// Where the console reaches matching (scoring: `server.scoring_url`).
    pub matching_url: String,
    /// Mark the console's key cookie `Secure` (serve it behind https).
    pub secure_cookie: bool,
}

impl Default for WebSection {
    fn default() -> Self {
        Self { addr: "127.0.0.1:8080".into(), matching_url: "http://127.0.0.1:50053".into(), secure_cookie: false }
    }
}

/// Addresses, authentication, limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    pub ingest_addr: String,
    pub scoring_addr: String,
    pub matching_addr: String,
    /// Where scoring and matching reach ingestion, and matching reaches scoring.
    pub ingest_url: String,
    pub scoring_url: String,
    /// `host:port` for Prometheus `/metrics`; empty = off.
    pub metrics_addr: String,
    /// `on` or `off` (local development only).
    pub auth: String,
    /// Requests per second per key; 0 disables the limit.
    pub rate_limit: f64,
    pub rate_burst: f64,
    pub request_timeout_secs: u64,
    pub db_acquire_timeout_secs: u64,
}

/// Database URLs (secret: their passwords are redacted when shown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    pub url: String,
    /// Where API keys live; empty = `url`.
    pub auth_url: String,
}

/// The key a service presents to its peers (secret).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CredentialsSection {
    pub api_key: String,
}

/// PEM file paths; empty = unset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    pub cert: String,
    pub key: String,
    pub client_ca: String,
    pub ca: String,
    pub client_cert: String,
    pub client_key: String,
}

/// [`lift_ingest::IngestConfig`] in configuration units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSection {
    /// Earliest accepted occurrence time, Unix seconds (default 1990-01-01).
    pub earliest_event_unix_secs: i64,
    pub max_future_secs: u64,
    pub default_attribution_window_secs: u64,
    pub max_batch: usize,
    pub max_links: usize,
    pub subscribe_page: u32,
    pub subscribe_buffer: usize,
    pub poll_interval_ms: u64,
    pub max_stream_rejections: usize,
    /// Where the ledger lives: empty for the database's own table, or
    /// `nats://host:port[?replicas=N&stream=NAME]` for NATS JetStream.
    pub ledger: String,
}

/// [`lift_scoring::ScoringConfig`] in configuration units, with the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringSection {
    pub rescore_debounce_ms: u64,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub max_rr_sets: usize,
    pub checkpoint_every_events: u64,
    pub checkpoints_kept: u64,
    /// This replica's name in the writer lease, for replicas sharing one
    /// database; empty: the only scoring instance on its database.
    pub writer_lease_holder: String,
    /// How long the writer lease lasts unrenewed (a dead writer's successor
    /// takes over within this).
    pub writer_lease_ttl_ms: u64,
    /// Points (0–100) a value or percentile must move before the score
    /// history records it again (0: every change).
    pub history_resolution: f64,
    /// Recompute only what changed each run (false: everything, every run).
    pub incremental_runs: bool,
    /// With incremental runs: L1 bound on the served PageRank vector's error
    /// past which a run ranks the network graph in full instead of locally
    /// (0: always in full).
    pub pagerank_drift_tolerance: f64,
    pub model: lift_scoring::engine::ModelParams,
}

/// [`lift_matching::MatchingConfig`] in configuration units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchingSection {
    pub link_base: String,
    pub default_page_size: u32,
    pub max_page_size: u32,
    pub query_page_size: u32,
    pub max_candidates: usize,
    pub lift_confidence: f64,
    pub scan_attempts: u32,
    pub score_cache: bool,
    pub score_cache_patience_ms: u64,
    /// How long a report waits for the report consumer to reach the ledger head.
    pub report_patience_ms: u64,
}

/// The link collector (`serve links`, part of `serve all`): its address and spool. Its
/// tracking links are `matching.link_base`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectSection {
    /// `host:port` of the redirector, beacon and order webhooks.
    pub addr: String,
    /// Where links of campaigns without a landing URL go; empty = such links answer 404.
    pub default_landing_url: String,
    /// The spool file: events wait here until ingestion has them.
    pub spool: String,
    /// Undelivered events the spool keeps at most; beyond, new ones are refused and counted.
    pub spool_capacity: usize,
    /// Mark the visitor cookie `Secure` (when the collector is reached over https).
    pub cookie_secure: bool,
    /// Seconds on the landing page after which a session is engaged.
    pub engaged_dwell_secs: u64,
    /// Quiet seconds after which an undecided landing session is a bounce.
    pub session_idle_secs: u64,
}

impl Default for CollectSection {
    fn default() -> Self {
        let d = lift_collect::CollectConfig::default();
        Self {
            addr: "127.0.0.1:8081".into(),
            default_landing_url: d.default_landing_url.unwrap_or_default(),
            spool: d.spool_path.display().to_string(),
            spool_capacity: d.spool_capacity,
            cookie_secure: d.cookie_secure,
            engaged_dwell_secs: d.engaged_dwell.as_secs(),
            session_idle_secs: d.session_idle.as_secs(),
        }
    }
}

impl CollectSection {
    /// The collector's configuration, for links under `link_base`.
    pub fn to_config(&self, link_base: &str) -> lift_collect::CollectConfig {
        lift_collect::CollectConfig {
            link_base: link_base.to_owned(),
            default_landing_url: (!self.default_landing_url.is_empty()).then(|| self.default_landing_url.clone()),
            spool_path: PathBuf::from(&self.spool),
            spool_capacity: self.spool_capacity.max(1),
            cookie_secure: self.cookie_secure,
            engaged_dwell: Duration::from_secs(self.engaged_dwell_secs.max(1)),
            session_idle: Duration::from_secs(self.session_idle_secs.max(1)),
            ..Default::default()
        }
    }
}

impl Default for LiftConfig {
    fn default() -> Self {
        Self {
            server: ServerSection::default(),
            database: DatabaseSection { url: "sqlite://lift.db?mode=rwc".into(), auth_url: String::new() },
            credentials: CredentialsSection::default(),
            tls: TlsSection::default(),
            ingest: IngestSection::from(&lift_ingest::IngestConfig::default()),
            scoring: ScoringSection::from(&lift_scoring::ScoringConfig {
                debounce: Duration::from_millis(500),
                ..Default::default()
            }),
            matching: MatchingSection::from(&lift_matching::MatchingConfig::default()),
            collect: CollectSection::default(),
            web: WebSection::default(),
        }
    }
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            ingest_addr: "127.0.0.1:50051".into(),
            scoring_addr: "127.0.0.1:50052".into(),
            matching_addr: "127.0.0.1:50053".into(),
            ingest_url: "http://127.0.0.1:50051".into(),
            scoring_url: "http://127.0.0.1:50052".into(),
            metrics_addr: String::new(),
            auth: "on".into(),
            rate_limit: 1000.0,
            rate_burst: 2000.0,
            request_timeout_secs: 120,
            db_acquire_timeout_secs: 5,
        }
    }
}

impl Default for DatabaseSection {
    fn default() -> Self {
        LiftConfig::default().database
    }
}
impl Default for IngestSection {
    fn default() -> Self {
        Self::from(&lift_ingest::IngestConfig::default())
    }
}
impl Default for ScoringSection {
    fn default() -> Self {
        LiftConfig::default().scoring
    }
}
impl Default for MatchingSection {
    fn default() -> Self {
        Self::from(&lift_matching::MatchingConfig::default())
    }
}

/// 1990-01-01T00:00:00Z, the domain's earliest accepted event time.
const EARLIEST_DEFAULT: i64 = 631_152_000;

impl From<&lift_ingest::IngestConfig> for IngestSection {
    fn from(c: &lift_ingest::IngestConfig) -> Self {
        Self {
            earliest_event_unix_secs: c.min_time.map_or(EARLIEST_DEFAULT, |t| t / 1_000_000),
            max_future_secs: c.max_future.as_secs(),
            default_attribution_window_secs: c.default_attribution_window.as_secs(),
            max_batch: c.max_batch,
            max_links: c.max_links,
            subscribe_page: c.subscribe_page,
            subscribe_buffer: c.subscribe_buffer,
            poll_interval_ms: millis(c.poll_interval),
            max_stream_rejections: c.max_stream_rejections,
            ledger: c.ledger.clone(),
        }
    }
}

impl From<&lift_scoring::ScoringConfig> for ScoringSection {
    fn from(c: &lift_scoring::ScoringConfig) -> Self {
        Self {
            rescore_debounce_ms: millis(c.debounce),
            initial_backoff_ms: millis(c.initial_backoff),
            max_backoff_ms: millis(c.max_backoff),
            max_rr_sets: c.max_rr_sets,
            checkpoint_every_events: c.checkpoint_every_events,
            checkpoints_kept: c.checkpoints_kept,
            writer_lease_holder: c.writer_lease.as_ref().map(|l| l.holder.clone()).unwrap_or_default(),
            writer_lease_ttl_ms: c.writer_lease.as_ref().map_or(10_000, |l| millis(l.ttl)),
            history_resolution: c.history_resolution,
            incremental_runs: c.incremental_runs,
            pagerank_drift_tolerance: c.pagerank_drift_tolerance,
            model: c.model.clone(),
        }
    }
}

impl From<&lift_matching::MatchingConfig> for MatchingSection {
    fn from(c: &lift_matching::MatchingConfig) -> Self {
        Self {
            link_base: c.link_base.clone(),
            default_page_size: c.default_page_size,
            max_page_size: c.max_page_size,
            query_page_size: c.query_page_size,
            max_candidates: c.max_candidates,
            lift_confidence: c.lift_confidence,
            scan_attempts: c.scan_attempts,
            score_cache: c.score_cache,
            score_cache_patience_ms: millis(c.score_cache_patience),
            report_patience_ms: millis(c.report_patience),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl IngestSection {
    pub fn to_config(&self) -> lift_ingest::IngestConfig {
        lift_ingest::IngestConfig {
            min_time: Some(self.earliest_event_unix_secs.saturating_mul(1_000_000)),
            max_future: Duration::from_secs(self.max_future_secs),
            default_attribution_window: Duration::from_secs(self.default_attribution_window_secs),
            max_batch: self.max_batch.max(1),
            max_links: self.max_links.max(1),
            subscribe_page: self.subscribe_page.max(1),
            subscribe_buffer: self.subscribe_buffer.max(1),
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(1)),
            max_stream_rejections: self.max_stream_rejections,
            ledger: self.ledger.clone(),
        }
    }
}

impl ScoringSection {
    pub fn to_config(&self) -> lift_scoring::ScoringConfig {
        lift_scoring::ScoringConfig {
            model: self.model.clone(),
            debounce: Duration::from_millis(self.rescore_debounce_ms),
            initial_backoff: Duration::from_millis(self.initial_backoff_ms.max(1)),
            max_backoff: Duration::from_millis(self.max_backoff_ms.max(1)),
            max_rr_sets: self.max_rr_sets.max(1),
            checkpoint_every_events: self.checkpoint_every_events,
            checkpoints_kept: self.checkpoints_kept.max(1),
            writer_lease: (!self.writer_lease_holder.trim().is_empty()).then(|| lift_scoring::WriterLease {
                holder: self.writer_lease_holder.trim().to_owned(),
                ttl: Duration::from_millis(self.writer_lease_ttl_ms),
            }),
            history_resolution: self.history_resolution,
            incremental_runs: self.incremental_runs,
            pagerank_drift_tolerance: if self.pagerank_drift_tolerance.is_finite() {
                self.pagerank_drift_tolerance.max(0.0)
            } else {
                0.0
            },
        }
    }
}

impl MatchingSection {
    pub fn to_config(&self) -> lift_matching::MatchingConfig {
        lift_matching::MatchingConfig {
            link_base: self.link_base.clone(),
            default_page_size: self.default_page_size.max(1),
            max_page_size: self.max_page_size.max(1),
            query_page_size: self.query_page_size.max(1),
            max_candidates: self.max_candidates.max(1),
            lift_confidence: self.lift_confidence,
            scan_attempts: self.scan_attempts.max(1),
            score_cache: self.score_cache,
            score_cache_patience: Duration::from_millis(self.score_cache_patience_ms),
            report_patience: Duration::from_millis(self.report_patience_ms),
        }
    }
}

/// Short environment names kept for the common settings (the manifests and Compose
/// file use them); each is read in the environment layer like its generic name.
pub const ENV_ALIASES: &[(&str, &str)] = &[
    ("DATABASE_URL", "database.url"),
    ("LIFT_AUTH_DATABASE_URL", "database.auth_url"),
    ("LIFT_API_KEY", "credentials.api_key"),
    ("LIFT_INGEST_ADDR", "server.ingest_addr"),
    ("LIFT_LEDGER", "ingest.ledger"),
    ("LIFT_SCORING_ADDR", "server.scoring_addr"),
    ("LIFT_MATCHING_ADDR", "server.matching_addr"),
    ("LIFT_INGEST_URL", "server.ingest_url"),
    ("LIFT_SCORING_URL", "server.scoring_url"),
    ("LIFT_METRICS_ADDR", "server.metrics_addr"),
    ("LIFT_AUTH", "server.auth"),
    ("LIFT_RATE_LIMIT", "server.rate_limit"),
    ("LIFT_RATE_BURST", "server.rate_burst"),
    ("LIFT_REQUEST_TIMEOUT_SECS", "server.request_timeout_secs"),
    ("LIFT_DB_ACQUIRE_TIMEOUT_SECS", "server.db_acquire_timeout_secs"),
    ("LIFT_RESCORE_DEBOUNCE_MS", "scoring.rescore_debounce_ms"),
    ("LIFT_SCORING_REPLICA", "scoring.writer_lease_holder"),
    ("LIFT_LINKS_ADDR", "collect.addr"),
    ("LIFT_SPOOL", "collect.spool"),
    ("LIFT_DEFAULT_LANDING_URL", "collect.default_landing_url"),
    ("LIFT_WEB_ADDR", "web.addr"),
    ("LIFT_MATCHING_URL", "web.matching_url"),
    ("LIFT_WEB_SECURE_COOKIE", "web.secure_cookie"),
    ("LIFT_TLS_CERT", "tls.cert"),
    ("LIFT_TLS_KEY", "tls.key"),
    ("LIFT_TLS_CLIENT_CA", "tls.client_ca"),
    ("LIFT_TLS_CA", "tls.ca"),
    ("LIFT_TLS_CLIENT_CERT", "tls.client_cert"),
    ("LIFT_TLS_CLIENT_KEY", "tls.client_key"),
];

/// Settings whose values are secrets: shown redacted.
const SECRETS: &[&str] = &["database.url", "database.auth_url", "credentials.api_key", "ingest.ledger"];

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(n) => write!(f, "env {n}"),
            Source::Flag => write!(f, "flag"),
        }
    }
}

/// The effective configuration and where each setting came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub config: LiftConfig,
    pub sources: BTreeMap<String, Source>,
}

/// What the layers above the defaults hold.
#[derive(Debug, Default, Clone)]
pub struct Layers {
    /// `lift.toml` (or `--config`): its path, and its text (`None` when the default
    /// `./lift.toml` is absent).
    pub file: Option<(PathBuf, String)>,
    /// The process environment (or a test's).
    pub env: BTreeMap<String, String>,
    /// `path=value` pairs from flags, applied in order.
    pub flags: Vec<(String, String)>,
}

impl Layers {
    /// The file at `path` (required) or `./lift.toml` (if present), and the process environment.
    pub fn from_process(path: Option<&Path>) -> anyhow::Result<Self> {
        let file = match path {
            Some(p) => Some((p.to_owned(), read(p)?)),
            None => {
                let p = Path::new("lift.toml");
                if p.exists() { Some((p.to_owned(), read(p)?)) } else { None }
            }
        };
        Ok(Self { file, env: std::env::vars().collect(), flags: Vec::new() })
    }
}

fn read(p: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("reading the configuration file {}: {e}", p.display()))
}

/// Applies the layers over the defaults, in order.
pub fn resolve(layers: &Layers) -> anyhow::Result<Resolved> {
    let defaults = Table::try_from(LiftConfig::default())?;
    let mut leaves = BTreeMap::new();
    collect_leaves("", &defaults, &mut leaves);
    let mut tree = defaults.clone();
    let mut sources: BTreeMap<String, Source> = leaves.keys().map(|k| (k.clone(), Source::Default)).collect();

    if let Some((path, text)) = &layers.file {
        let file: Table =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("configuration file {}: {e}", path.display()))?;
        let mut set = BTreeMap::new();
        collect_leaves("", &file, &mut set);
        for (k, v) in set {
            let default = leaves.get(&k).ok_or_else(|| unknown(&k, &format!("in {}", path.display())))?;
            let v = coerce(&k, v, default)?;
            put(&mut tree, &k, v);
            sources.insert(k, Source::File(path.clone()));
        }
    }

    // Environment: aliases first, so a generic name set alongside wins.
    let mut env_pairs: Vec<(String, String, String)> = Vec::new();
    for (name, path) in ENV_ALIASES {
        if let Some(v) = layers.env.get(*name) {
            env_pairs.push(((*name).to_owned(), (*path).to_owned(), v.clone()));
        }
    }
    for (name, raw) in &layers.env {
        if let Some(rest) = name.strip_prefix("LIFT_")
            && rest.contains("__")
        {
            let path = rest.to_ascii_lowercase().replace("__", ".");
            if !leaves.contains_key(&path) {
                return Err(unknown(&path, &format!("(environment variable {name})")));
            }
            env_pairs.push((name.clone(), path, raw.clone()));
        }
    }
    for (name, path, raw) in env_pairs {
        let v = parse_as(&path, &raw, &leaves[&path])?;
        put(&mut tree, &path, v);
        sources.insert(path, Source::Env(name));
    }

    for (path, raw) in &layers.flags {
        let default = leaves.get(path).ok_or_else(|| unknown(path, "(flag)"))?;
        let v = parse_as(path, raw, default)?;
        put(&mut tree, path, v);
        sources.insert(path.clone(), Source::Flag);
    }

    let config: LiftConfig = tree.try_into()?;
    Ok(Resolved { config, sources })
}

fn unknown(path: &str, wherein: &str) -> anyhow::Error {
    anyhow::anyhow!("unknown setting {path:?} {wherein}; `lift config show` lists every setting")
}

fn collect_leaves(prefix: &str, t: &Table, out: &mut BTreeMap<String, Value>) {
    for (k, v) in t {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Table(inner) => collect_leaves(&path, inner, out),
            v => {
                out.insert(path, v.clone());
            }
        }
    }
}

fn put(tree: &mut Table, path: &str, v: Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut t = tree;
    for p in parts {
        let entry = t.entry(p.to_owned()).or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(inner) = entry else { return };
        t = inner;
    }
    t.insert(last.to_owned(), v);
}

/// A file's value, with integers accepted where a float is expected (`damping = 1`).
fn coerce(path: &str, v: Value, default: &Value) -> anyhow::Result<Value> {
    match (default, v) {
        (Value::Float(_), Value::Integer(i)) => Ok(Value::Float(i as f64)),
        (d, v) if d.type_str() == v.type_str() => Ok(v),
        (d, v) => anyhow::bail!("{path}: expected a {}, found a {}", d.type_str(), v.type_str()),
    }
}

/// An environment or flag value, read as the type of the setting's default.
fn parse_as(path: &str, raw: &str, default: &Value) -> anyhow::Result<Value> {
    let bad = |what: &str| anyhow::anyhow!("{path}: {raw:?} is not {what}");
    Ok(match default {
        Value::String(_) => Value::String(raw.to_owned()),
        Value::Integer(_) => Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?),
        Value::Float(_) => Value::Float(raw.trim().parse().map_err(|_| bad("a number"))?),
        Value::Boolean(_) => Value::Boolean(match raw.trim() {
            "true" | "1" | "on" | "yes" => true,
            "false" | "0" | "off" | "no" => false,
            _ => return Err(bad("true or false")),
        }),
        _ => {
            let t: Table = toml::from_str(&format!("v = {raw}")).map_err(|_| bad("a TOML value"))?;
            coerce(path, t.get("v").cloned().ok_or_else(|| bad("a TOML value"))?, default)?
        }
    })
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`; an API key → `***`.
pub fn redact(path: &str, value: &str) -> String {
    if !SECRETS.contains(&path) || value.is_empty() {
        return value.to_owned();
    }
    if path == "credentials.api_key" {
        return "<redacted>".into();
    }
    match value.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                let query_secret = host.contains("password=");
                let host = if query_secret { redact_query(host) } else { host.to_owned() };
                format!("{scheme}://{user}:<redacted>@{host}")
            }
            None if rest.contains("password=") => format!("{scheme}://{}", redact_query(rest)),
            None => value.to_owned(),
        },
        None => "<redacted>".into(),
    }
}

fn redact_query(s: &str) -> String {
    let Some((base, query)) = s.split_once('?') else { return s.to_owned() };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=<redacted>"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

/// The effective configuration as TOML, secrets redacted, each setting annotated
/// with where its value came from when that is not the default.
pub fn show(r: &Resolved) -> anyhow::Result<String> {
    let tree = Table::try_from(&r.config)?;
    let mut out = String::from("# Effective Lift configuration (defaults < lift.toml < environment < flags).\n");
    write_table(&mut out, "", &tree, &r.sources);
    Ok(out)
}

fn write_table(out: &mut String, prefix: &str, t: &Table, sources: &BTreeMap<String, Source>) {
    let (tables, leaves): (Vec<_>, Vec<_>) = t.iter().partition(|(_, v)| v.is_table());
    if !prefix.is_empty() {
        out.push_str(&format!("\n[{prefix}]\n"));
    }
    for (k, v) in leaves {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        let shown = match v {
            Value::String(s) => Value::String(redact(&path, s)),
            v => v.clone(),
        };
        let note = match sources.get(&path) {
            Some(Source::Default) | None => String::new(),
            Some(s) => format!("  # {s}"),
        };
        out.push_str(&format!("{k} = {shown}{note}\n"));
    }
    for (k, v) in tables {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        if let Value::Table(inner) = v {
            write_table(out, &path, inner, sources);
        }
    }
}
