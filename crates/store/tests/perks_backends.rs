//! Perks' tables on both backends: rate cards (upsert, replace, brand scope),
//! offer states (the compare-and-set that serialises steps) and offer
//! transitions on the ledger, read back by kind (their encoding round trip is
//! ingestion's: `lift_ingest::ledger::sql`).

use lift_domain::AccountId;
use lift_domain::event::{Event, EventBody, EventKind};
use lift_domain::offer::{OfferState, OfferTransition};
use lift_store::DatabaseConnection;
use lift_store::campaigns::{self, Campaign, CampaignState, Offer};
use lift_store::{ledger, rate_cards};

async fn perks_tables(db: &DatabaseConnection) {
    let (anna, bo) = (AccountId::new("x", "anna"), AccountId::new("x", "bo"));
    let total = rate_cards::set_rates(db, "brd_a", "EUR", &[(anna.clone(), 100), (bo.clone(), 50)], false, 1).await;
    assert_eq!(total.expect("set"), 2);
    let total = rate_cards::set_rates(db, "brd_a", "EUR", &[(anna.clone(), 130), (anna.clone(), 140)], false, 2).await;
    assert_eq!(total.expect("upsert"), 2, "a creator listed twice keeps one rate");
    rate_cards::set_rates(db, "brd_b", "EUR", &[(bo.clone(), 9)], true, 2).await.expect("other brand");
    let card = rate_cards::card(db, "brd_a", "EUR").await.expect("card");
    assert_eq!((card[&anna], card[&bo]), (140, 50));
    assert_eq!(rate_cards::set_rates(db, "brd_a", "EUR", &[], true, 3).await.expect("clear"), 0);
    assert_eq!(rate_cards::card(db, "brd_b", "EUR").await.expect("card").len(), 1);

    let c = Campaign {
        id: "cmp_1".into(),
        brand_id: "brd_a".into(),
        name: "perks".into(),
        state: CampaignState::Draft,
        spec: "{}".into(),
        created_at: 1,
        model_version: String::new(),
        portfolio: None,
        holdout_seed: None,
        offers_offset: None,
        churn: "[]".into(),
    };
    campaigns::insert_campaign(db, &c).await.expect("campaign");
    let offer = |a: &AccountId, holdout: bool| Offer {
        account: a.clone(),
        handle: a.id.clone(),
        link: String::new(),
        code: String::new(),
        holdout,
        in_portfolio: true,
        cost: 10,
        state: OfferState::Offered,
        state_offset: 0,
    };
    campaigns::record_offers(db, "brd_a", "cmp_1", &[offer(&anna, false), offer(&bo, true)], 1, 0)
        .await
        .expect("offers");
    let (first, second) = tokio::join!(
        campaigns::move_offer(db, "cmp_1", &anna, OfferState::Offered, OfferState::Accepted),
        campaigns::move_offer(db, "cmp_1", &anna, OfferState::Offered, OfferState::Declined),
    );
    assert_eq!(u8::from(first.expect("a")) + u8::from(second.expect("b")), 1, "one step from a state wins");
    assert!(!campaigns::move_offer(db, "cmp_1", &bo, OfferState::Offered, OfferState::Accepted).await.expect("held"));
    let won = campaigns::offer(db, "cmp_1", &anna).await.expect("read").expect("offer").state;
    campaigns::set_offer_offset(db, "cmp_1", &anna, won, 9).await.expect("offset");
    let now = campaigns::offer(db, "cmp_1", &anna).await.expect("read").expect("offer");
    assert_eq!((now.state, now.state_offset), (won, 9));

    let t = OfferTransition {
        campaign_id: "cmp_1".into(),
        creator: anna.clone(),
        from: OfferState::Offered,
        to: won,
        note: Some("by the shop".into()),
    };
    let ev = Event {
        event_id: "offer-1".into(),
        source: "lift-matching".into(),
        occurred_at: 1_700_000_000_000_000,
        body: EventBody::OfferTransition(t),
    };
    let row = ledger::NewEvent::new(&ev, b"offer-1 body".to_vec());
    assert_eq!(row.account, Some("x:anna".to_owned()), "an offer's steps index the creator");
    ledger::append(db, &[row.clone(), row.clone()]).await.expect("append");
    let back = ledger::read_after(db, 0, &[EventKind::OfferTransition], 10).await.expect("read");
    assert_eq!(back.len(), 1, "stored once");
    assert_eq!(back[0].body, row.body);
    assert!(ledger::read_after(db, 0, &[EventKind::Conversion], 10).await.expect("read").is_empty());
}

#[tokio::test]
async fn sqlite_perks_tables() {
    let dir = std::env::temp_dir().join(format!("lift-perks-{}.db", std::process::id()));
    let url = format!("sqlite://{}?mode=rwc", dir.display());
    let db = lift_store::connect(&url).await.expect("db");
    perks_tables(&db).await;
    drop(db);
    let _ = std::fs::remove_file(&dir);
}

#[tokio::test]
async fn postgres_perks_tables() {
    let (_pg, url) = lift_store::testing::postgres().await.expect("PostgreSQL test container");
    let db = lift_store::connect(&url).await.expect("db");
    perks_tables(&db).await;
}
