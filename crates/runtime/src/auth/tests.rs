use super::*;
use std::time::Duration;

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
    let creator = Access::RequiresAny(&[Scope::ScoresRead, Scope::CreatorRead, Scope::PrivacyAdmin]);
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
    assert_eq!(access("/lift.matching.v1.MatchingPrivacyService/ExportAccount"), Access::Requires(Scope::PrivacyAdmin));
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
    let guard =
        Guard::new(Auth::Keys(KeyStore::new(db, DEFAULT_KEY_TTL)), Some(RateLimit { per_second: 0.001, burst: 2.0 }));
    let get = "/lift.scoring.v1.ScoringService/GetModel";
    assert!(guard.check(get, Some(a.as_bytes())).await.is_ok());
    assert!(guard.check(get, Some(a.as_bytes())).await.is_ok());
    let e = guard.check(get, Some(a.as_bytes())).await.expect_err("limited");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(e.message().contains("rate limit"), "{}", e.message());
    assert!(guard.check(get, Some(b.as_bytes())).await.is_ok());
}
