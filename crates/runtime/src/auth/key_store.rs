//! Looking keys up: the store's answer for a key's hash, cached for a short TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lift_store::DatabaseConnection;
use lift_store::api_keys;

use super::{MAX_CACHED, Principal, hash_key};

const MAX_KEY_LEN: usize = 128;

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
