//! Brands are tenants, identified by an API key in the `x-api-key` metadata.
//!
//! A brand's key is an ordinary Lift API key (`lift_runtime::auth`) with the
//! `campaigns:write` scope bound to the brand: stored as a SHA-256 hash, rotated
//! with `lift keys create --scope campaigns:write --brand <id>` and
//! `lift keys revoke <key id>`. With authentication on, the runtime's layer
//! resolves the key and the handler reads the brand from its principal; with it
//! off, this interceptor checks the key's shape and hashes it, and the handler
//! looks the hash up (TTL-cached) itself.

use std::fmt;

use lift_domain::FieldViolation;
use lift_runtime::auth::Scope;
use lift_store::TransactionTrait;
use lift_store::campaigns::{self as repo, Brand};
use lift_store::{DatabaseConnection, DatabaseTransaction};
use rand::RngCore;
use tonic::{Request, Status};

use crate::Error;

pub const API_KEY_HEADER: &str = "x-api-key";
const KEY_PREFIX: &str = "lift_";
const MAX_KEY_LEN: usize = 128;
const MAX_BRAND_NAME_LEN: usize = 200;

/// A brand's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrandId(pub String);

impl fmt::Display for BrandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The hash of the caller's key, put into request extensions by [`api_key_interceptor`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct KeyHash(pub(crate) String);

pub(crate) fn hash_key(key: &str) -> String {
    lift_runtime::auth::hash_key(key)
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Creates a brand and returns its id and API key (scope `campaigns:write`, bound to
/// the brand). The key is shown once: only its hash is stored.
pub async fn create_brand(db: &DatabaseConnection, name: &str) -> Result<(BrandId, String), Error> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::invalid("name", "is required"));
    }
    if name.len() > MAX_BRAND_NAME_LEN || name.chars().any(char::is_control) {
        return Err(Error::Invalid(vec![FieldViolation::new(
            "name",
            format!("must be at most {MAX_BRAND_NAME_LEN} bytes without control characters"),
        )]));
    }
    let id = BrandId(format!("brd_{}", random_hex(8)));
    let key = format!("{KEY_PREFIX}{}", random_hex(24));
    let brand = Brand { id: id.0.clone(), name: name.to_owned(), created_at: lift_domain::time::now() };
    let txn: DatabaseTransaction = db.begin().await.map_err(lift_store::Error::from)?;
    repo::insert_brand(&txn, &brand, &hash_key(&key)).await?;
    lift_runtime::auth::insert_key(&txn, &format!("brand {name}"), &[Scope::CampaignsWrite], Some(&id.0), &key)
        .await
        .map_err(|e| match e {
        lift_runtime::Error::Store(e) => Error::Store(e),
        other => Error::invalid("name", other.to_string()),
    })?;
    txn.commit().await.map_err(lift_store::Error::from)?;
    tracing::info!(brand = %id, "brand created");
    Ok((id, key))
}

/// Rejects calls without a well-formed key before they reach a handler, and
/// passes the key's hash on.
pub fn api_key_interceptor(mut req: Request<()>) -> Result<Request<()>, Status> {
    let key = req
        .metadata()
        .get(API_KEY_HEADER)
        .ok_or_else(|| Status::unauthenticated("missing x-api-key metadata"))?
        .to_str()
        .map_err(|_| Status::unauthenticated("malformed x-api-key"))?
        .trim();
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Status::unauthenticated("malformed x-api-key"));
    }
    let hash = KeyHash(hash_key(key));
    req.extensions_mut().insert(hash);
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins that the interceptor refuses missing keys and never stores the plaintext.
    #[test]
    fn interceptor_checks_shape_and_hashes() {
        assert_eq!(api_key_interceptor(Request::new(())).err().map(|s| s.code()), Some(tonic::Code::Unauthenticated));
        let mut r = Request::new(());
        r.metadata_mut().insert(API_KEY_HEADER, "lift_abc".parse().expect("ascii"));
        let r = api_key_interceptor(r).expect("well-formed");
        assert_eq!(r.extensions().get::<KeyHash>(), Some(&KeyHash(hash_key("lift_abc"))));
        assert_ne!(hash_key("lift_abc"), "lift_abc");
    }
}
