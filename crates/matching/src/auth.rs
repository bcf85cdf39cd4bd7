//! Brands are tenants, identified by an API key in the `x-api-key` metadata.
//!
//! Keys are 192 random bits, so a plain SHA-256 of the key is a safe thing to
//! store and look up (a slow password hash protects guessable secrets; these
//! are not guessable). The interceptor only checks the key's shape and hashes
//! it; the brand lookup is async and happens in the handler.

use std::fmt;

use lift_domain::FieldViolation;
use lift_store::DatabaseConnection;
use lift_store::campaigns::{self as repo, Brand};
use rand::RngCore;
use sha2::{Digest, Sha256};
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
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Creates a brand and returns its id and API key. The key is shown once: only its hash is stored.
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
    repo::insert_brand(db, &brand, &hash_key(&key)).await?;
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
