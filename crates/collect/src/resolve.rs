//! Tracking code → registered link, through ingestion's `ResolveLinks`, cached.
//!
//! Known links are kept for `ttl` and, when ingestion cannot be reached, used past it, so a
//! link that was followed once keeps redirecting while ingestion is down. Unknown codes are
//! remembered for `negative_ttl` (a burst of bad codes costs one lookup).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use lift_proto::ingest::v1::{self as pb, ingest_service_client::IngestServiceClient};
use lift_runtime::client::Channel;

/// What the redirector needs of a registered link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLink {
    /// The registry key, e.g. `lift.to/3f9a0c1b2d4e`.
    pub link: String,
    pub campaign_id: String,
    /// Empty = the redirector's default landing page.
    pub landing_url: String,
    /// Where this link redirects, around the visitor id (built on first use: see
    /// `location::Location`).
    pub(crate) location: std::sync::OnceLock<crate::location::Location>,
}

impl ResolvedLink {
    pub fn new(link: String, campaign_id: String, landing_url: String) -> Self {
        Self { link, campaign_id, landing_url, location: std::sync::OnceLock::new() }
    }
}

/// The answer for one code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Arc<ResolvedLink>),
    NotFound,
    /// Ingestion could not be asked and nothing is cached.
    Unavailable,
}

#[derive(Debug)]
pub struct Resolver {
    ingest: IngestServiceClient<Channel>,
    ttl: Duration,
    negative_ttl: Duration,
    call_timeout: Duration,
    cache: RwLock<HashMap<String, Cached>>,
}

/// When a code was looked up, and what it was (`None`: unknown).
type Cached = (Instant, Option<Arc<ResolvedLink>>);

/// Cached codes kept at most; past it the cache starts afresh.
const MAX_CACHED: usize = 500_000;

impl Resolver {
    pub fn new(ingest: IngestServiceClient<Channel>, ttl: Duration, negative_ttl: Duration) -> Self {
        Self { ingest, ttl, negative_ttl, call_timeout: Duration::from_secs(2), cache: RwLock::new(HashMap::new()) }
    }

    /// Resolves the registry key `link`.
    pub async fn resolve(&self, link: &str) -> Lookup {
        let now = Instant::now();
        let cached = self.cache.read().unwrap_or_else(|e| e.into_inner()).get(link).cloned();
        if let Some((at, entry)) = &cached {
            let fresh = match entry {
                Some(_) => now.duration_since(*at) < self.ttl,
                None => now.duration_since(*at) < self.negative_ttl,
            };
            if fresh {
                return to_lookup(entry.clone());
            }
        }
        let mut client = self.ingest.clone();
        let req = pb::ResolveLinksRequest { links: vec![link.to_owned()] };
        match tokio::time::timeout(self.call_timeout, client.resolve_links(req)).await {
            Ok(Ok(resp)) => {
                let entry = resp
                    .into_inner()
                    .links
                    .into_iter()
                    .find(|l| l.link == link)
                    .map(|l| Arc::new(ResolvedLink::new(l.link, l.campaign_id, l.landing_url)));
                let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(link.to_owned(), (now, entry.clone()));
                to_lookup(entry)
            }
            failed => {
                let why = match failed {
                    Err(_) => "timed out".to_owned(),
                    Ok(Err(s)) => format!("{}: {}", s.code(), s.message()),
                    Ok(Ok(_)) => String::new(),
                };
                tracing::warn!(link, error = %why, "resolving a tracking link failed");
                match cached {
                    // Stale, but ingestion is down: a known link keeps working.
                    Some((_, Some(l))) => Lookup::Found(l),
                    _ => Lookup::Unavailable,
                }
            }
        }
    }
}

fn to_lookup(entry: Option<Arc<ResolvedLink>>) -> Lookup {
    entry.map_or(Lookup::NotFound, Lookup::Found)
}
