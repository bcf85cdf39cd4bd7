//! API keys and scopes: who may call what.
//!
//! A key is 192 random bits shown once (`lift_<48 hex>`); the store keeps only its
//! SHA-256 (a slow password hash protects guessable secrets; these are not
//! guessable). Each key has scopes, and optionally the brand it acts for.
//! [`access`] maps every gRPC method to the one scope it needs; health and
//! reflection are public. [`KeyStore`] looks keys up with a short TTL cache, so
//! a new or revoked key takes effect within the TTL without a restart.
//! [`Guard`] is the one check every request passes (see `layer`).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lift_store::api_keys::{self, ApiKey};
use lift_store::{ConnectionTrait, DatabaseConnection};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tonic::Status;

use crate::Error;

/// The metadata (HTTP/2 header) carrying the key.
pub const API_KEY_HEADER: &str = "x-api-key";
const KEY_PREFIX: &str = "lift_";
const MAX_KEY_LEN: usize = 128;
const MAX_NAME_LEN: usize = 200;
/// Cached lookups kept at most; beyond it, expired entries go, then everything.
const MAX_CACHED: usize = 10_000;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Append events (`IngestBatch`, `IngestStream`) and resolve the links they record
    /// clicks on (`ResolveLinks`): collectors, pixels, importers.
    IngestWrite,
    /// Read the ledger (`Subscribe`, `GetLedgerInfo`): scoring, matching.
    IngestRead,
    /// Register tracking links (`RegisterLinks`): matching.
    LinksWrite,
    /// Read scores and explanations, select seeds (all of `ScoringService`).
    ScoresRead,
    /// Act for one brand in `MatchingService`; the key must be bound to a brand.
    CampaignsWrite,
    /// A creator reading their own scores, history and explanations (and the model's
    /// published distributions); the key is bound to the creator's accounts and
    /// scoring refuses any other account.
    CreatorRead,
    /// Answer a person's access and erasure requests and read the privacy audit log
    /// (all of `PrivacyService`, served by ingestion): an operator's scope.
    PrivacyAdmin,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::IngestWrite,
        Scope::IngestRead,
        Scope::LinksWrite,
        Scope::ScoresRead,
        Scope::CampaignsWrite,
        Scope::CreatorRead,
        Scope::PrivacyAdmin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scope::IngestWrite => "ingest:write",
            Scope::IngestRead => "ingest:read",
            Scope::LinksWrite => "links:write",
            Scope::ScoresRead => "scores:read",
            Scope::CampaignsWrite => "campaigns:write",
            Scope::CreatorRead => "creator:read",
            Scope::PrivacyAdmin => "privacy:admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Scope::ALL.into_iter().find(|x| x.name() == s).ok_or_else(|| Error::UnknownScope(s.to_owned()))
    }
}

/// What a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health checks and reflection: anyone.
    Public,
    Requires(Scope),
    /// Any one of these scopes.
    RequiresAny(&'static [Scope]),
    /// Not a Lift method: refused to authenticated callers too.
    Unknown,
}

/// The access rule of a gRPC path (`/package.Service/Method`).
pub fn access(path: &str) -> Access {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return Access::Unknown;
    };
    match service {
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => Access::Public,
        "lift.ingest.v1.IngestService" => match method {
            "IngestBatch" | "IngestStream" | "ResolveLinks" => Access::Requires(Scope::IngestWrite),
            "Subscribe" | "GetLedgerInfo" => Access::Requires(Scope::IngestRead),
            "RegisterLinks" => Access::Requires(Scope::LinksWrite),
            _ => Access::Unknown,
        },
        "lift.scoring.v1.ScoringService" => match method {
            // A creator's own scores; scoring checks the accounts against the key's.
            "GetScores" | "GetScoreHistory" | "ExplainScoreChange" => {
                Access::RequiresAny(&[Scope::ScoresRead, Scope::CreatorRead])
            }
            // Population-level only: what percentiles are measured against, for
            // creators and brands alike.
            "GetModel" => Access::RequiresAny(&[Scope::ScoresRead, Scope::CreatorRead, Scope::CampaignsWrite]),
            _ => Access::Requires(Scope::ScoresRead),
        },
        "lift.matching.v1.MatchingService" => Access::Requires(Scope::CampaignsWrite),
        "lift.privacy.v1.PrivacyService" => Access::Requires(Scope::PrivacyAdmin),
        _ => Access::Unknown,
    }
}

/// Client-streaming methods: their answer comes only when the client has sent
/// everything, so a server-side time bound would cut long imports short.
pub fn is_client_stream(path: &str) -> bool {
    path == "/lift.ingest.v1.IngestService/IngestStream"
}

/// The authenticated caller, put into each request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub brand_id: Option<String>,
    /// The accounts a `creator:read` key is bound to (network, id).
    pub accounts: Vec<(String, String)>,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Whether this caller may read account `network:id`'s scores: any account with
    /// `scores:read`, only its own accounts with `creator:read` alone.
    pub fn may_read_account(&self, network: &str, id: &str) -> bool {
        self.has(Scope::ScoresRead)
            || (self.has(Scope::CreatorRead) && self.accounts.iter().any(|(n, i)| n == network && i == id))
    }

    fn from_key(k: ApiKey) -> Self {
        let scopes = k
            .scopes
            .iter()
            .filter_map(|s| match s.parse() {
                Ok(s) => Some(s),
                Err(_) => {
                    tracing::warn!(key = %k.id, scope = %s, "stored key has a scope this version does not know; ignoring it");
                    None
                }
            })
            .collect();
        let accounts = k.accounts.iter().filter_map(|a| parse_account(a).ok()).collect();
        Principal { key_id: k.id, name: k.name, scopes, brand_id: k.brand_id, accounts }
    }
}

/// `network:id` → (network, id); the network is everything before the first `:`.
pub fn parse_account(s: &str) -> Result<(String, String), Error> {
    match s.trim().split_once(':') {
        Some((n, i)) if !n.is_empty() && !i.is_empty() && !s.contains(['\n', '\r']) => Ok((n.to_owned(), i.to_owned())),
        _ => Err(Error::InvalidKey(format!("account {s:?} is not network:id"))),
    }
}

/// SHA-256 of a key, hex: what the store keeps.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Creates a key with `scopes` (bound to `brand_id` if given) and returns it with its
/// secret, which is shown once: only the hash is stored.
pub async fn create_key(
    db: &impl ConnectionTrait,
    name: &str,
    scopes: &[Scope],
    brand_id: Option<&str>,
) -> Result<(ApiKey, String), Error> {
    create_bound_key(db, name, scopes, brand_id, &[]).await
}

/// Like [`create_key`], also binding the key to creator `accounts` (`network:id`),
/// which `creator:read` requires.
pub async fn create_bound_key(
    db: &impl ConnectionTrait,
    name: &str,
    scopes: &[Scope],
    brand_id: Option<&str>,
    accounts: &[String],
) -> Result<(ApiKey, String), Error> {
    let secret = new_secret();
    let key = insert_bound_key(db, name, scopes, brand_id, accounts, &secret).await?;
    Ok((key, secret))
}

/// A fresh key secret: `lift_` and 192 random bits in hex.
pub fn new_secret() -> String {
    format!("{KEY_PREFIX}{}", random_hex(24))
}

/// Stores `secret` (hashed) as a key with `scopes`, e.g. inside the transaction
/// that creates the brand it acts for.
pub async fn insert_key(
    db: &impl ConnectionTrait,
    name: &str,
    scopes: &[Scope],
    brand_id: Option<&str>,
    secret: &str,
) -> Result<ApiKey, Error> {
    insert_bound_key(db, name, scopes, brand_id, &[], secret).await
}

async fn insert_bound_key(
    db: &impl ConnectionTrait,
    name: &str,
    scopes: &[Scope],
    brand_id: Option<&str>,
    accounts: &[String],
    secret: &str,
) -> Result<ApiKey, Error> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(Error::InvalidKey(format!(
            "a key's name must be 1 to {MAX_NAME_LEN} bytes without control characters"
        )));
    }
    if scopes.is_empty() {
        return Err(Error::InvalidKey("a key needs at least one scope".into()));
    }
    if scopes.contains(&Scope::CampaignsWrite) && brand_id.is_none() {
        return Err(Error::InvalidKey("campaigns:write acts for one brand: give the brand".into()));
    }
    if scopes.contains(&Scope::CreatorRead) && accounts.is_empty() {
        return Err(Error::InvalidKey("creator:read reads one creator's accounts: give them (network:id)".into()));
    }
    if !scopes.contains(&Scope::CreatorRead) && !accounts.is_empty() {
        return Err(Error::InvalidKey("only creator:read keys are bound to accounts".into()));
    }
    let mut bound = Vec::with_capacity(accounts.len());
    for a in accounts {
        let (n, i) = parse_account(a)?;
        bound.push(format!("{n}:{i}"));
    }
    bound.sort();
    bound.dedup();
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    let key = ApiKey {
        id: format!("key_{}", random_hex(8)),
        name: name.to_owned(),
        scopes: scopes.iter().map(|s| s.name().to_owned()).collect(),
        brand_id: brand_id.map(str::to_owned),
        accounts: bound,
        created_at: lift_domain::time::now(),
        revoked_at: None,
    };
    api_keys::insert(db, &key, &hash_key(secret)).await?;
    tracing::info!(key = %key.id, scopes = ?key.scopes, brand = ?key.brand_id, accounts = ?key.accounts, "API key created");
    Ok(key)
}

/// Revokes key `id`; false when there is no such unrevoked key. Servers stop
/// accepting it within their cache TTL.
pub async fn revoke_key(db: &impl ConnectionTrait, id: &str) -> Result<bool, Error> {
    let done = api_keys::revoke(db, id, lift_domain::time::now()).await?;
    if done {
        tracing::info!(key = %id, "API key revoked");
    }
    Ok(done)
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    Missing,
    Malformed,
    /// No such key, or revoked: the two look the same to a caller.
    Unknown,
    /// The key store cannot be read.
    Unavailable,
}

/// Key lookups against the store, cached for `ttl` (negative answers too, so a
/// wrong key cannot make every request hit the database).
#[derive(Debug, Clone)]
pub struct KeyStore {
    db: DatabaseConnection,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

/// When a key was looked up, and who holds it (`None`: nobody, or revoked).
type Cached = (Instant, Option<Principal>);

/// How long a looked-up key is trusted before it is read again.
pub const DEFAULT_KEY_TTL: Duration = Duration::from_secs(5);

impl KeyStore {
    pub fn new(db: DatabaseConnection, ttl: Duration) -> Self {
        Self { db, ttl, cache: Arc::new(Mutex::new(HashMap::new())) }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The principal holding `key` (the raw header value).
    pub async fn authenticate(&self, key: Option<&[u8]>) -> Result<Principal, KeyError> {
        let key = key.ok_or(KeyError::Missing)?;
        let key = std::str::from_utf8(key).map_err(|_| KeyError::Malformed)?.trim();
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(KeyError::Malformed);
        }
        self.by_hash(&hash_key(key)).await
    }

    /// The principal whose key hashes to `hash`.
    pub async fn by_hash(&self, hash: &str) -> Result<Principal, KeyError> {
        let now = Instant::now();
        if let Ok(cache) = self.cache.lock()
            && let Some((at, p)) = cache.get(hash)
            && now.duration_since(*at) < self.ttl
        {
            return p.clone().ok_or(KeyError::Unknown);
        }
        let found = match api_keys::by_hash(&self.db, hash).await {
            Ok(k) => k.filter(|k| k.revoked_at.is_none()).map(Principal::from_key),
            Err(e) => {
                tracing::warn!(error = %e, "key store unavailable");
                return Err(KeyError::Unavailable);
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED {
                cache.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
            }
            cache.insert(hash.to_owned(), (now, found.clone()));
        }
        found.ok_or(KeyError::Unknown)
    }
}

/// Requests per second allowed per key, with a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

/// Token buckets, one per key.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self { limit, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `key` at `now`; when empty, how long until one is free.
    pub fn try_take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let RateLimit { per_second, burst } = self.limit;
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        if buckets.len() >= MAX_CACHED && !buckets.contains_key(key) {
            // Buckets idle long enough to be full again carry no state worth keeping.
            let full_after = Duration::from_secs_f64(burst / per_second.max(f64::MIN_POSITIVE));
            buckets.retain(|_, (_, at)| now.duration_since(*at) < full_after);
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / per_second.max(f64::MIN_POSITIVE)))
        }
    }
}

/// Whether requests are authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Every request passes unauthenticated (local development only).
    Disabled,
    Keys(KeyStore),
}

/// The check every request passes: authentication, scope, rate limit.
#[derive(Debug)]
pub struct Guard {
    auth: Auth,
    rate: Option<RateLimiter>,
}

impl Guard {
    pub fn new(auth: Auth, rate: Option<RateLimit>) -> Self {
        Self { auth, rate: rate.map(RateLimiter::new) }
    }

    /// `Ok(Some(principal))` for an authenticated call, `Ok(None)` for a public one
    /// (or any call with auth disabled), or the status to answer with.
    pub async fn check(&self, path: &str, key: Option<&[u8]>) -> Result<Option<Principal>, Status> {
        let access = access(path);
        let store = match (&self.auth, access) {
            (_, Access::Public) | (Auth::Disabled, _) => return Ok(None),
            (Auth::Keys(store), _) => store,
        };
        let principal = store.authenticate(key).await.map_err(|e| {
            let reason = match e {
                KeyError::Missing => "missing",
                KeyError::Malformed => "malformed",
                KeyError::Unknown => "unknown",
                KeyError::Unavailable => "unavailable",
            };
            auth_failure(reason);
            match e {
                KeyError::Missing => Status::unauthenticated("missing x-api-key metadata"),
                KeyError::Malformed => Status::unauthenticated("malformed x-api-key"),
                KeyError::Unknown => Status::unauthenticated("unknown or revoked API key"),
                KeyError::Unavailable => Status::unavailable("the key store is unavailable; retry later"),
            }
        })?;
        match access {
            Access::Requires(scope) if principal.has(scope) => {}
            Access::RequiresAny(scopes) if scopes.iter().any(|s| principal.has(*s)) => {}
            Access::RequiresAny(scopes) => {
                let names: Vec<&str> = scopes.iter().map(|s| s.name()).collect();
                return Err(Status::permission_denied(format!(
                    "key {} lacks a scope that {path} accepts ({})",
                    principal.key_id,
                    names.join(" or ")
                )));
            }
            Access::Requires(scope) => {
                auth_failure("scope");
                return Err(Status::permission_denied(format!(
                    "key {} lacks the scope {scope} that {path} requires",
                    principal.key_id
                )));
            }
            Access::Public | Access::Unknown => {
                auth_failure("unknown_method");
                return Err(Status::permission_denied(format!("no scope grants {path}")));
            }
        }
        if let Some(rate) = &self.rate
            && let Err(wait) = rate.try_take(&principal.key_id, Instant::now())
        {
            auth_failure("rate_limited");
            return Err(Status::resource_exhausted(format!(
                "rate limit of {} requests/s (burst {}) for key {} exceeded; retry in {} ms",
                rate.limit.per_second,
                rate.limit.burst,
                principal.key_id,
                wait.as_millis().max(1)
            )));
        }
        Ok(Some(principal))
    }
}

/// Counts a refused call by why (`lift_auth_failures_total{reason}`); never by key.
fn auth_failure(reason: &'static str) {
    metrics::counter!("lift_auth_failures_total", "reason" => reason).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    /// Pins the method → scope table: every Lift method needs exactly the scope the
    /// threat model gives it, health and reflection are public, anything else is unknown.
    #[test]
    fn every_method_has_its_scope() {
        let ingest = "/lift.ingest.v1.IngestService/";
        assert_eq!(access(&format!("{ingest}IngestBatch")), Access::Requires(Scope::IngestWrite));
        assert_eq!(access(&format!("{ingest}IngestStream")), Access::Requires(Scope::IngestWrite));
        assert_eq!(access(&format!("{ingest}Subscribe")), Access::Requires(Scope::IngestRead));
        assert_eq!(access(&format!("{ingest}GetLedgerInfo")), Access::Requires(Scope::IngestRead));
        assert_eq!(access(&format!("{ingest}RegisterLinks")), Access::Requires(Scope::LinksWrite));
        assert_eq!(access(&format!("{ingest}Nope")), Access::Unknown);
        let creator = Access::RequiresAny(&[Scope::ScoresRead, Scope::CreatorRead]);
        assert_eq!(access("/lift.scoring.v1.ScoringService/GetScores"), creator);
        assert_eq!(access("/lift.scoring.v1.ScoringService/ExplainScoreChange"), creator);
        assert_eq!(
            access("/lift.scoring.v1.ScoringService/GetModel"),
            Access::RequiresAny(&[Scope::ScoresRead, Scope::CreatorRead, Scope::CampaignsWrite])
        );
        assert_eq!(access("/lift.scoring.v1.ScoringService/QueryAccounts"), Access::Requires(Scope::ScoresRead));
        assert_eq!(access("/lift.scoring.v1.ScoringService/ExportScores"), Access::Requires(Scope::ScoresRead));
        assert_eq!(access("/lift.matching.v1.MatchingService/CreateCampaign"), Access::Requires(Scope::CampaignsWrite));
        assert_eq!(access("/lift.privacy.v1.PrivacyService/Erase"), Access::Requires(Scope::PrivacyAdmin));
        assert_eq!(access("/lift.privacy.v1.PrivacyService/ListAudit"), Access::Requires(Scope::PrivacyAdmin));
        assert_eq!(access("/grpc.health.v1.Health/Check"), Access::Public);
        assert_eq!(access("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"), Access::Public);
        assert_eq!(access("/grpc.health.v1.HealthX/Check"), Access::Unknown);
        assert_eq!(access("garbage"), Access::Unknown);
        for s in Scope::ALL {
            assert_eq!(s.name().parse::<Scope>().ok(), Some(s));
        }
        assert!("admin".parse::<Scope>().is_err());
    }

    /// Pins the token bucket: a burst passes, the next is refused with a wait, and
    /// tokens come back with time; keys do not share buckets.
    #[test]
    fn token_bucket_limits_each_key() {
        let r = RateLimiter::new(RateLimit { per_second: 10.0, burst: 3.0 });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.try_take("a", t0), Ok(()));
        }
        let wait = r.try_take("a", t0).expect_err("empty");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "{wait:?}");
        assert_eq!(r.try_take("b", t0), Ok(()));
        assert_eq!(r.try_take("a", t0 + Duration::from_millis(100)), Ok(()));
        assert!(r.try_take("a", t0 + Duration::from_millis(100)).is_err());
    }

    /// Pins the guard end to end on a real store: missing, unknown, wrong-scope and
    /// revoked keys are refused with the right codes, a right key passes with its
    /// principal, revocation takes effect after the TTL, and health stays public.
    #[tokio::test]
    async fn guard_checks_key_scope_and_revocation() {
        let db = lift_store::connect("sqlite::memory:").await.expect("db");
        let (reader, secret) = create_key(&db, "reader", &[Scope::ScoresRead], None).await.expect("key");
        let guard = Guard::new(Auth::Keys(KeyStore::new(db.clone(), Duration::from_millis(50))), None);
        let get = "/lift.scoring.v1.ScoringService/GetScores";
        let code = |r: Result<Option<Principal>, Status>| r.err().map(|s| s.code());
        assert_eq!(code(guard.check(get, None).await), Some(Code::Unauthenticated));
        assert_eq!(code(guard.check(get, Some(b"lift_nope")).await), Some(Code::Unauthenticated));
        assert_eq!(code(guard.check(get, Some(&[0xff, 0xfe])).await), Some(Code::Unauthenticated));
        let p = guard.check(get, Some(secret.as_bytes())).await.expect("allowed").expect("principal");
        assert_eq!((p.key_id.as_str(), p.brand_id), (reader.id.as_str(), None));
        let write = "/lift.ingest.v1.IngestService/IngestBatch";
        let denied = guard.check(write, Some(secret.as_bytes())).await.expect_err("scope");
        assert_eq!(denied.code(), Code::PermissionDenied);
        assert!(denied.message().contains("ingest:write"), "{}", denied.message());
        assert_eq!(code(guard.check("/x.Y/Z", Some(secret.as_bytes())).await), Some(Code::PermissionDenied));
        assert_eq!(guard.check("/grpc.health.v1.Health/Check", None).await.ok(), Some(None));

        assert!(revoke_key(&db, &reader.id).await.expect("revoke"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while guard.check(get, Some(secret.as_bytes())).await.is_ok() {
            assert!(Instant::now() < deadline, "revocation not seen within the TTL");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(code(guard.check(get, Some(secret.as_bytes())).await), Some(Code::Unauthenticated));
        assert!(create_key(&db, "b", &[Scope::CampaignsWrite], None).await.is_err(), "brand scope needs a brand");
        assert!(create_key(&db, "n", &[], None).await.is_err(), "no scopes");
    }

    /// Pins the creator scope: a `creator:read` key needs accounts, reaches only the
    /// per-account scoring methods, and its principal reads only its own accounts.
    #[tokio::test]
    async fn creator_keys_are_bound_to_their_accounts() {
        let db = lift_store::connect("sqlite::memory:").await.expect("db");
        assert!(create_key(&db, "c", &[Scope::CreatorRead], None).await.is_err(), "needs accounts");
        let accounts = ["ig:ana".to_owned(), "tt:ana".to_owned()];
        assert!(create_bound_key(&db, "x", &[Scope::ScoresRead], None, &accounts).await.is_err(), "only creators");
        assert!(create_bound_key(&db, "x", &[Scope::CreatorRead], None, &["nocolon".into()]).await.is_err());
        let (k, secret) = create_bound_key(&db, "ana", &[Scope::CreatorRead], None, &accounts).await.expect("key");
        assert_eq!(k.accounts, accounts.to_vec());
        let guard = Guard::new(Auth::Keys(KeyStore::new(db.clone(), DEFAULT_KEY_TTL)), None);
        let p = guard
            .check("/lift.scoring.v1.ScoringService/GetScores", Some(secret.as_bytes()))
            .await
            .expect("allowed")
            .expect("principal");
        assert!(p.may_read_account("ig", "ana") && p.may_read_account("tt", "ana"));
        assert!(!p.may_read_account("ig", "bob") && !p.may_read_account("tt", "ig:ana"));
        for refused in ["QueryAccounts", "ExportScores", "SelectSeeds"] {
            let e = guard
                .check(&format!("/lift.scoring.v1.ScoringService/{refused}"), Some(secret.as_bytes()))
                .await
                .expect_err(refused);
            assert_eq!(e.code(), Code::PermissionDenied, "{refused}");
        }
        let e = guard.check("/lift.matching.v1.MatchingService/ListCampaigns", Some(secret.as_bytes())).await;
        assert_eq!(e.err().map(|s| s.code()), Some(Code::PermissionDenied));
    }

    /// Pins the rate limit in the guard: RESOURCE_EXHAUSTED past the burst, per key.
    #[tokio::test]
    async fn guard_rate_limits_per_key() {
        let db = lift_store::connect("sqlite::memory:").await.expect("db");
        let (_, a) = create_key(&db, "a", &[Scope::ScoresRead], None).await.expect("key");
        let (_, b) = create_key(&db, "b", &[Scope::ScoresRead], None).await.expect("key");
        let guard = Guard::new(
            Auth::Keys(KeyStore::new(db, DEFAULT_KEY_TTL)),
            Some(RateLimit { per_second: 0.001, burst: 2.0 }),
        );
        let get = "/lift.scoring.v1.ScoringService/GetModel";
        assert!(guard.check(get, Some(a.as_bytes())).await.is_ok());
        assert!(guard.check(get, Some(a.as_bytes())).await.is_ok());
        let e = guard.check(get, Some(a.as_bytes())).await.expect_err("limited");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("rate limit"), "{}", e.message());
        assert!(guard.check(get, Some(b.as_bytes())).await.is_ok());
    }
}
