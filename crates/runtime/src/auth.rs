//! API keys and scopes: who may call what.
//!
//! A key is 192 random bits shown once (`lift_<48 hex>`); the store keeps only its
//! SHA-256 (a slow password hash protects guessable secrets; these are not
//! guessable). Each key has scopes, and optionally the brand it acts for.
//! [`access`] maps every gRPC method to the one scope it needs; health and
//! reflection are public. [`KeyStore`] looks keys up with a short TTL cache, so
//! a new or revoked key takes effect within the TTL without a restart.
//! [`Guard`] is the one check every request passes (see `layer`).

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use lift_store::api_keys::ApiKey;
use tonic::Status;

use crate::Error;

mod key_store;
mod keys;
mod rate_limit;

pub use key_store::{DEFAULT_KEY_TTL, KeyError, KeyStore};
pub use keys::{create_bound_key, create_key, hash_key, insert_key, new_secret, revoke_key};
pub use rate_limit::{RateLimit, RateLimiter};

/// The metadata (HTTP/2 header) carrying the key.
pub const API_KEY_HEADER: &str = "x-api-key";
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
    /// (all of `PrivacyService`, served by ingestion, and of `MatchingPrivacyService`,
    /// served by matching): an operator's scope.
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
            // A privacy officer exports any account's (docs/privacy.md).
            "GetScores" | "GetScoreHistory" | "ExplainScoreChange" => {
                Access::RequiresAny(&[Scope::ScoresRead, Scope::CreatorRead, Scope::PrivacyAdmin])
            }
            // Population-level only: what percentiles are measured against, for
            // creators and brands alike.
            "GetModel" => Access::RequiresAny(&[Scope::ScoresRead, Scope::CreatorRead, Scope::CampaignsWrite]),
            _ => Access::Requires(Scope::ScoresRead),
        },
        "lift.matching.v1.MatchingService" => Access::Requires(Scope::CampaignsWrite),
        // Matching's side of an access request: any account's rows, across brands.
        "lift.privacy.v1.PrivacyService" | "lift.matching.v1.MatchingPrivacyService" => {
            Access::Requires(Scope::PrivacyAdmin)
        }
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
    /// `scores:read` or `privacy:admin` (an access request), only its own accounts
    /// with `creator:read` alone.
    pub fn may_read_account(&self, network: &str, id: &str) -> bool {
        self.has(Scope::ScoresRead)
            || self.has(Scope::PrivacyAdmin)
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
mod tests;
