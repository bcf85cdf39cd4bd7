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

use toml::{Table, Value};

mod sections;

pub use sections::{
    CollectSection, CredentialsSection, DatabaseSection, IngestSection, LiftConfig, MatchingSection, ScoringSection,
    ServerSection, TlsSection, WebSection,
};

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
