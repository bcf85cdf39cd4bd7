//! Authentication, scopes, rotation, rate limits and message-size limits over real
//! gRPC: a stack on SQLite with authentication on, as `lift serve all` runs it.

use std::time::{Duration, Instant};

use lift_cli::demo::with_key;
use lift_cli::stack::{Databases, Stack, StackOptions};
use lift_proto::ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient};
use lift_proto::matching::v1::{self as mpb, matching_service_client::MatchingServiceClient};
use lift_proto::scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient};
use lift_runtime::auth::{RateLimit, Scope};
use tonic::Code;

async fn start(opts: StackOptions) -> anyhow::Result<Stack> {
    let cfg = lift_scoring::ScoringConfig { debounce: Duration::from_millis(20), ..Default::default() };
    Stack::start_loopback_with(&Databases::in_memory(), cfg, opts).await
}

fn code<T>(r: Result<T, tonic::Status>) -> Option<Code> {
    r.err().map(|s| s.code())
}

/// Pins the scope table end to end: no key → UNAUTHENTICATED, a key without the
/// method's scope → PERMISSION_DENIED, the right scope → OK, on all three services;
/// health and reflection need no key; the internal keys let scoring consume the
/// ledger; a brand key acts only in matching.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_checks_keys_and_scopes() -> anyhow::Result<()> {
    let stack = start(StackOptions::default()).await?;
    let r = async {
        let anon = |url: &str| stack.channel_as(url, None);
        // Public: health and reflection.
        let mut health = tonic_health::pb::health_client::HealthClient::new(anon(&stack.ingest_url())?);
        let h = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await?.into_inner();
        assert_eq!(h.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);

        // No key.
        let mut ingest = IngestServiceClient::new(anon(&stack.ingest_url())?);
        let e = ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await.expect_err("no key");
        assert_eq!((e.code(), e.message()), (Code::Unauthenticated, "missing x-api-key metadata"));
        let mut scoring = ScoringServiceClient::new(anon(&stack.scoring_url())?);
        assert_eq!(code(scoring.get_model(spb::GetModelRequest {}).await), Some(Code::Unauthenticated));
        let mut matching = MatchingServiceClient::new(anon(&stack.matching_url())?);
        assert_eq!(
            code(matching.list_campaigns(mpb::ListCampaignsRequest::default()).await),
            Some(Code::Unauthenticated)
        );
        // A key that does not exist.
        let mut bogus = IngestServiceClient::new(stack.channel_as(&stack.ingest_url(), Some("lift_0000"))?);
        let e = bogus.get_ledger_info(ipb::GetLedgerInfoRequest {}).await.expect_err("bogus");
        assert_eq!((e.code(), e.message()), (Code::Unauthenticated, "unknown or revoked API key"));

        // A read-only key: reads scores, cannot write events or read the ledger.
        let (_, reader) =
            lift_runtime::auth::create_key(&stack.matching_db, "dash", &[Scope::ScoresRead], None).await?;
        let mut ingest_r = IngestServiceClient::new(stack.channel_as(&stack.ingest_url(), Some(&reader))?);
        let e = ingest_r.ingest_batch(ipb::IngestBatchRequest { events: vec![] }).await.expect_err("scope");
        assert_eq!(e.code(), Code::PermissionDenied);
        assert!(e.message().contains("ingest:write"), "{}", e.message());
        assert_eq!(code(ingest_r.get_ledger_info(ipb::GetLedgerInfoRequest {}).await), Some(Code::PermissionDenied));
        let mut scoring_r = ScoringServiceClient::new(stack.channel_as(&stack.scoring_url(), Some(&reader))?);
        scoring_r.get_model(spb::GetModelRequest {}).await?;

        // The stack's client key writes events; scoring (with its own internal key) consumes them.
        let mut ingest = IngestServiceClient::new(stack.channel(&stack.ingest_url())?);
        let mut scoring = ScoringServiceClient::new(stack.channel(&stack.scoring_url())?);
        let events = lift_tests::scripted_events();
        let n = events.len() as u64;
        let (accepted, _) = lift_cli::demo::stream_events(&mut ingest, events, 200).await?;
        assert_eq!(accepted, n);
        let m = lift_cli::demo::wait_scored(&mut ingest, &mut scoring, Duration::from_secs(60)).await?;
        assert_eq!(m.as_of_offset, n, "scoring consumed the ledger with its own key");

        // A brand key acts in matching only, and only for its brand.
        let (_, brand_key) = lift_matching::create_brand(&stack.matching_db, "Acme").await?;
        let mut brand_ingest = IngestServiceClient::new(stack.channel_as(&stack.ingest_url(), Some(&brand_key))?);
        assert_eq!(
            code(brand_ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await),
            Some(Code::PermissionDenied)
        );
        let mut matching = MatchingServiceClient::new(stack.channel(&stack.matching_url())?);
        let e = matching
            .list_campaigns(with_key(mpb::ListCampaignsRequest::default(), stack.client_key.as_deref().unwrap_or(""))?)
            .await
            .expect_err("client key has no campaigns:write");
        assert_eq!(e.code(), Code::PermissionDenied);
        let list = matching.list_campaigns(with_key(mpb::ListCampaignsRequest::default(), &brand_key)?).await?;
        assert!(list.into_inner().campaigns.is_empty());
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    r
}

/// Pins rotation without restart: a new key works at once, a revoked one is refused
/// within the cache TTL, a brand can hold two keys during a rotation and both resolve
/// to the same tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_without_restart() -> anyhow::Result<()> {
    let stack = start(StackOptions::default()).await?;
    let r = async {
        let db = &stack.matching_db;
        let (old, old_secret) =
            lift_runtime::auth::create_key(db, "collector", &[Scope::IngestWrite, Scope::IngestRead], None).await?;
        let mut c = IngestServiceClient::new(stack.channel_as(&stack.ingest_url(), Some(&old_secret))?);
        c.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?;
        let (_, new_secret) = lift_runtime::auth::create_key(db, "collector v2", &[Scope::IngestRead], None).await?;
        let mut c2 = IngestServiceClient::new(stack.channel_as(&stack.ingest_url(), Some(&new_secret))?);
        c2.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?;
        assert!(lift_runtime::auth::revoke_key(db, &old.id).await?);
        let deadline = Instant::now() + lift_runtime::auth::DEFAULT_KEY_TTL * 4;
        loop {
            match c.get_ledger_info(ipb::GetLedgerInfoRequest {}).await {
                Err(e) if e.code() == Code::Unauthenticated => break,
                Ok(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                other => anyhow::bail!("revoked key still answered {:?} after the TTL", other.map(|_| ())),
            }
        }
        c2.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?;

        // A brand rotates: a second campaigns:write key for the same brand sees the same campaigns.
        let (brand, k1) = lift_matching::create_brand(db, "Rotating").await?;
        let (_, k2) =
            lift_runtime::auth::create_key(db, "rotating v2", &[Scope::CampaignsWrite], Some(&brand.0)).await?;
        let mut m = MatchingServiceClient::new(stack.channel_as(&stack.matching_url(), None)?);
        let spec = mpb::CampaignSpec {
            name: "rot".into(),
            objective: mpb::Objective::Reach as i32,
            perk: "p".into(),
            unit_cost: 100,
            budget: 1000,
            currency: "EUR".into(),
            attribution_window_secs: 86_400,
            ..Default::default()
        };
        let c = m.create_campaign(with_key(mpb::CreateCampaignRequest { spec: Some(spec) }, &k1)?).await?.into_inner();
        let id = c.campaign.map(|c| c.id).unwrap_or_default();
        let got = m.get_campaign(with_key(mpb::GetCampaignRequest { campaign_id: id.clone() }, &k2)?).await?;
        assert_eq!(got.into_inner().campaign.map(|c| c.id), Some(id));
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    r
}

/// Pins the per-key rate limit over gRPC: past the burst a key gets RESOURCE_EXHAUSTED
/// with a retry hint, while another key is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_key() -> anyhow::Result<()> {
    let opts = StackOptions { rate_limit: Some(RateLimit { per_second: 0.01, burst: 5.0 }), ..Default::default() };
    let stack = start(opts).await?;
    let r = async {
        let (_, a) = lift_runtime::auth::create_key(&stack.matching_db, "a", &[Scope::IngestRead], None).await?;
        let (_, b) = lift_runtime::auth::create_key(&stack.matching_db, "b", &[Scope::IngestRead], None).await?;
        let mut ca = IngestServiceClient::new(stack.channel_as(&stack.ingest_url(), Some(&a))?);
        let mut cb = IngestServiceClient::new(stack.channel_as(&stack.ingest_url(), Some(&b))?);
        for _ in 0..5 {
            ca.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?;
        }
        let e = ca.get_ledger_info(ipb::GetLedgerInfoRequest {}).await.expect_err("limited");
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert!(e.message().contains("retry in"), "{}", e.message());
        cb.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?;
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    r
}

/// Pins message-size limits: a request above a service's decoding limit is refused
/// with RESOURCE_EXHAUSTED naming the limit, and the service keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused_clearly() -> anyhow::Result<()> {
    let stack = start(StackOptions::default()).await?;
    let r = async {
        let mut scoring = ScoringServiceClient::new(stack.channel(&stack.scoring_url())?);
        let big = spb::GetScoresRequest {
            accounts: (0..600_000)
                .map(|i| ipb::AccountRef { network: "x".into(), id: format!("account-{i:08}") })
                .collect(),
        };
        let e = scoring.get_scores(big).await.expect_err("too large");
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        assert!(e.message().contains("too large") && e.message().contains("limit"), "{}", e.message());
        scoring.get_model(spb::GetModelRequest {}).await?;

        let mut ingest = IngestServiceClient::new(stack.channel(&stack.ingest_url())?);
        let e = ingest
            .ingest_batch(ipb::IngestBatchRequest { events: vec![ipb::Event::default(); 10_001] })
            .await
            .expect_err("batch limit");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("exceeds the limit of 10000"), "{}", e.message());
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    r
}
