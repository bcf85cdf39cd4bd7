//! Offer transitions through the stack as `lift serve all` runs it (SQLite,
//! authentication on): matching appends them to the ledger with its own
//! internal key, and scoring keeps consuming a ledger that holds them.

use std::time::Duration;

use lift_cli::demo::with_key;
use lift_cli::stack::{Databases, Stack, StackOptions};
use lift_proto::ingest::v1::{self as ipb, OfferState, ingest_service_client::IngestServiceClient};
use lift_proto::matching::v1::{self as mpb, matching_service_client::MatchingServiceClient};
use lift_proto::scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient};

/// Pins the production wiring of offer steps: with authentication on, a brand
/// moves an offer, the step is on the ledger under matching's source, the
/// brand's watch sees it, and scoring still reaches the ledger's head past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_steps_reach_the_ledger_with_authentication_on() -> anyhow::Result<()> {
    let cfg = lift_scoring::ScoringConfig { debounce: Duration::from_millis(20), ..Default::default() };
    let stack = Stack::start_loopback_with(&Databases::in_memory(), cfg, StackOptions::default()).await?;
    let r = async {
        let mut ingest = IngestServiceClient::new(stack.channel(&stack.ingest_url())?);
        let mut scoring = ScoringServiceClient::new(stack.channel(&stack.scoring_url())?);
        lift_cli::demo::stream_events(&mut ingest, lift_tests::scripted_events(), 200).await?;
        lift_cli::demo::wait_scored(&mut ingest, &mut scoring, Duration::from_secs(60)).await?;

        let (_, key) = lift_matching::create_brand(&stack.matching_db, "Acme").await?;
        let mut m = MatchingServiceClient::new(stack.channel(&stack.matching_url())?);
        let spec = mpb::CampaignSpec {
            name: "markers".into(),
            objective: mpb::Objective::Reach as i32,
            perk: "a free marker".into(),
            unit_cost: 100,
            budget: 500,
            currency: "EUR".into(),
            criteria: vec![mpb::Criterion {
                dimension: spb::Dimension::Reach as i32,
                topic: String::new(),
                threshold: Some(mpb::criterion::Threshold::MinPercentile(50.0)),
            }],
            ..Default::default()
        };
        let c = m.create_campaign(with_key(mpb::CreateCampaignRequest { spec: Some(spec) }, &key)?).await?;
        let id = c.into_inner().campaign.map(|c| c.id).unwrap_or_default();
        let offers = m
            .create_offers(with_key(mpb::CreateOffersRequest { campaign_id: id.clone(), holdout_seed: 1 }, &key)?)
            .await?
            .into_inner();
        let who = offers.offers.iter().find(|o| !o.holdout).and_then(|o| o.account.clone()).expect("an offer");

        let mut watch = m
            .watch_offers(with_key(mpb::WatchOffersRequest { campaign_id: id.clone(), after_offset: 0 }, &key)?)
            .await?
            .into_inner();
        let step = mpb::TransitionOfferRequest {
            campaign_id: id.clone(),
            account: Some(who.clone()),
            to_state: OfferState::Accepted as i32,
            ..Default::default()
        };
        let moved = m.transition_offer(with_key(step, &key)?).await?.into_inner();
        assert!(moved.changed && moved.ledger_offset > 0, "{moved:?}");

        let mut seen = Vec::new();
        while seen.is_empty() {
            let msg = tokio::time::timeout(Duration::from_secs(20), watch.message()).await??.expect("open");
            seen.extend(msg.events);
        }
        assert_eq!((seen[0].ledger_offset, seen[0].account.as_ref()), (moved.ledger_offset, Some(&who)));

        let req = ipb::SubscribeRequest {
            after_offset: moved.ledger_offset - 1,
            kinds: vec![ipb::EventKind::OfferTransition as i32],
            stop_at_head: true,
        };
        let mut sub = ingest.subscribe(req).await?.into_inner();
        let first = sub.message().await?.expect("a message");
        let e = first.events.first().and_then(|e| e.event.clone()).expect("the step");
        assert_eq!(e.source, "lift-matching");

        let model = lift_cli::demo::wait_scored(&mut ingest, &mut scoring, Duration::from_secs(60)).await?;
        assert!(model.as_of_offset >= moved.ledger_offset, "scoring reads past offer steps");
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    r
}
