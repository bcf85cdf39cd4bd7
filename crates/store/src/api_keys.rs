//! API keys: who may call which service. Only a SHA-256 hash of each key is
//! stored (keys are 192 random bits, so a fast hash is enough); a key carries
//! space-separated scopes, optionally the brand it acts for or the creator
//! accounts it may read (`network:id`, one per line), and is revoked by
//! stamping `revoked_at` (rows are kept for audit).

use lift_domain::Micros;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::Error;

/// A stored key (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public identifier, safe to log and to name in `lift keys revoke`.
    pub id: String,
    pub name: String,
    /// Scope names, e.g. `ingest:write`; the store keeps them opaque.
    pub scopes: Vec<String>,
    /// The brand the key acts for (matching's tenant), if any.
    pub brand_id: Option<String>,
    /// The accounts a `creator:read` key may read, as `network:id`; empty otherwise.
    pub accounts: Vec<String>,
    pub created_at: Micros,
    pub revoked_at: Option<Micros>,
}

pub mod api_key {
    //! Entity of `api_keys`.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub key_hash: String,
        pub name: String,
        pub scopes: String,
        pub brand_id: Option<String>,
        pub accounts: String,
        pub created_at: i64,
        pub revoked_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn from_model(m: api_key::Model) -> ApiKey {
    ApiKey {
        id: m.id,
        name: m.name,
        scopes: m.scopes.split_whitespace().map(str::to_owned).collect(),
        brand_id: m.brand_id,
        accounts: m.accounts.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect(),
        created_at: m.created_at,
        revoked_at: m.revoked_at,
    }
}

/// Stores a key under the hash of its secret.
pub async fn insert(db: &impl ConnectionTrait, key: &ApiKey, key_hash: &str) -> Result<(), Error> {
    api_key::Entity::insert(api_key::ActiveModel {
        id: Set(key.id.clone()),
        key_hash: Set(key_hash.to_owned()),
        name: Set(key.name.clone()),
        scopes: Set(key.scopes.join(" ")),
        brand_id: Set(key.brand_id.clone()),
        accounts: Set(key.accounts.join("\n")),
        created_at: Set(key.created_at),
        revoked_at: Set(key.revoked_at),
    })
    .exec(db)
    .await?;
    Ok(())
}

/// The key whose secret hashes to `key_hash`, revoked or not.
pub async fn by_hash(db: &impl ConnectionTrait, key_hash: &str) -> Result<Option<ApiKey>, Error> {
    Ok(api_key::Entity::find().filter(api_key::Column::KeyHash.eq(key_hash)).one(db).await?.map(from_model))
}

/// Revokes key `id` at `at`; false when no such key exists or it was already revoked.
pub async fn revoke(db: &impl ConnectionTrait, id: &str, at: Micros) -> Result<bool, Error> {
    let r = api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(at))
        .filter(api_key::Column::Id.eq(id))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Every key, oldest first.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<ApiKey>, Error> {
    Ok(api_key::Entity::find()
        .order_by_asc(api_key::Column::CreatedAt)
        .order_by_asc(api_key::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(from_model)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the round trip (scopes, brand), lookup by hash only, and that revocation
    /// is recorded once and kept.
    #[tokio::test]
    async fn keys_round_trip_and_revoke() {
        let db = crate::connect("sqlite::memory:").await.expect("db");
        let k = ApiKey {
            id: "key_1".into(),
            name: "collector".into(),
            scopes: vec!["ingest:write".into(), "scores:read".into()],
            brand_id: Some("brd_a".into()),
            accounts: vec!["x:1".into(), "x:2".into()],
            created_at: 5,
            revoked_at: None,
        };
        insert(&db, &k, "h1").await.expect("insert");
        assert_eq!(by_hash(&db, "h1").await.expect("q"), Some(k.clone()));
        assert_eq!(by_hash(&db, "key_1").await.expect("q"), None);
        assert!(revoke(&db, "key_1", 9).await.expect("revoke"));
        assert!(!revoke(&db, "key_1", 10).await.expect("again"));
        assert!(!revoke(&db, "key_x", 10).await.expect("missing"));
        assert_eq!(by_hash(&db, "h1").await.expect("q").and_then(|k| k.revoked_at), Some(9));
        assert_eq!(list(&db).await.expect("list").len(), 1);
    }

    /// Pins that brands created before this table keep working: the migration copies
    /// their key hashes as `campaigns:write` keys bound to the brand.
    #[tokio::test]
    async fn brand_keys_migrate() {
        use sea_orm_migration::MigratorTrait;
        let db = crate::connect("sqlite::memory:").await.expect("db");
        // Back to just before the api_keys migration, however many came after it.
        let names: Vec<String> = crate::migration::Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
        let at = names.iter().position(|n| n.contains("api_keys")).expect("the api_keys migration");
        crate::migration::Migrator::down(&db, Some((names.len() - at) as u32)).await.expect("down");
        // The brands table of that time, with its key hash.
        db.execute_unprepared("INSERT INTO brands (id, name, key_hash, created_at) VALUES ('brd_a', 'A', 'hash-a', 3)")
            .await
            .expect("brand");
        crate::migrate(&db).await.expect("up");
        let k = by_hash(&db, "hash-a").await.expect("q").expect("migrated");
        assert_eq!((k.scopes, k.brand_id), (vec!["campaigns:write".to_owned()], Some("brd_a".to_owned())));
        let b = crate::campaigns::brand(&db, "brd_a").await.expect("q").expect("brand kept");
        assert_eq!((b.name.as_str(), b.created_at), ("A", 3));

        // And back down past the brand_key_once migration: the hash returns from api_keys.
        let at = names.iter().position(|n| n.contains("brand_key_once")).expect("the brand_key_once migration");
        crate::migration::Migrator::down(&db, Some((names.len() - at) as u32)).await.expect("down");
        let stmt = sea_orm::Statement::from_string(db.get_database_backend(), "SELECT key_hash FROM brands");
        let row = db.query_one_raw(stmt).await.expect("q").expect("row");
        assert_eq!(row.try_get::<String>("", "key_hash").expect("column"), "hash-a");
    }
}
