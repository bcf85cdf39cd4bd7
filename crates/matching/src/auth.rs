//! Brands are tenants, identified by an API key in the `x-api-key` metadata.
//!
//! A brand's key is an ordinary Lift API key (`lift_runtime::auth`) with the
//! `campaigns:write` scope bound to the brand, stored once, as a SHA-256 hash
//! in `api_keys`; rotated with `lift keys create --scope campaigns:write
//! --brand <id>` and `lift keys revoke <key id>`. The runtime's authentication
//! layer resolves it: the server's own layer when it authenticates, and
//! otherwise the one [`Matching::grpc`](crate::Matching::grpc) puts around the
//! service, since every matching call acts for a brand. Handlers read the
//! brand from the caller's `Principal`.

use std::fmt;

use lift_domain::FieldViolation;
pub use lift_runtime::auth::API_KEY_HEADER;
use lift_runtime::auth::Scope;
use lift_store::TransactionTrait;
use lift_store::campaigns::{self as repo, Brand};
use lift_store::{DatabaseConnection, DatabaseTransaction};
use rand::RngCore;

use crate::Error;

const MAX_BRAND_NAME_LEN: usize = 200;

/// A brand's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrandId(pub String);

impl fmt::Display for BrandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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
    let brand = Brand { id: id.0.clone(), name: name.to_owned(), created_at: lift_domain::time::now() };
    let txn: DatabaseTransaction = db.begin().await.map_err(lift_store::Error::from)?;
    repo::insert_brand(&txn, &brand).await?;
    let (_, key) =
        lift_runtime::auth::create_key(&txn, &format!("brand {name}"), &[Scope::CampaignsWrite], Some(&id.0))
            .await
            .map_err(|e| match e {
                lift_runtime::Error::Store(e) => Error::Store(e),
                other => Error::invalid("name", other.to_string()),
            })?;
    txn.commit().await.map_err(lift_store::Error::from)?;
    tracing::info!(brand = %id, "brand created");
    Ok((id, key))
}
