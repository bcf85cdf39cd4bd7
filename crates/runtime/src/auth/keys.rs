//! Issuing and revoking keys: a key's secret is made here, shown once, and only
//! its hash is stored.

use lift_store::ConnectionTrait;
use lift_store::api_keys::{self, ApiKey};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{Scope, parse_account};
use crate::Error;

const KEY_PREFIX: &str = "lift_";
const MAX_NAME_LEN: usize = 200;

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
