//! Each brand's order-webhook secret (lift-collect verifies HMAC-SHA256 signatures
//! with it). HMAC needs the secret itself, so it is stored as given, not hashed:
//! whoever can read this table can forge a brand's order webhooks (see docs/collect.md).

use sea_orm::sea_query::Value;
use sea_orm::{ConnectionTrait, Statement};

use crate::Error;

/// Sets (or replaces) a brand's webhook secret.
pub async fn set(db: &impl ConnectionTrait, brand_id: &str, secret: &str, now: i64) -> Result<(), Error> {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "INSERT INTO collect_webhook_secrets (brand_id, secret, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (brand_id) DO UPDATE SET secret = EXCLUDED.secret, created_at = EXCLUDED.created_at"
        }
        _ => {
            "INSERT INTO collect_webhook_secrets (brand_id, secret, created_at) VALUES (?, ?, ?) \
             ON CONFLICT (brand_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at"
        }
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [Value::from(brand_id.to_owned()), Value::from(secret.to_owned()), Value::BigInt(Some(now))],
    ))
    .await?;
    Ok(())
}

/// A brand's webhook secret, if it has one.
pub async fn get(db: &impl ConnectionTrait, brand_id: &str) -> Result<Option<String>, Error> {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => "SELECT secret FROM collect_webhook_secrets WHERE brand_id = $1",
        _ => "SELECT secret FROM collect_webhook_secrets WHERE brand_id = ?",
    };
    let row =
        db.query_one_raw(Statement::from_sql_and_values(backend, sql, [Value::from(brand_id.to_owned())])).await?;
    Ok(match row {
        Some(r) => Some(r.try_get_by_index::<String>(0)?),
        None => None,
    })
}

/// Whether `brand_id` names a brand (matching's `brands` table).
pub async fn brand_exists(db: &impl ConnectionTrait, brand_id: &str) -> Result<bool, Error> {
    use sea_orm::EntityTrait;
    Ok(crate::campaigns::brand::Entity::find_by_id(brand_id.to_owned()).one(db).await?.is_some())
}
