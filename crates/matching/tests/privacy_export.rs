//! `MatchingPrivacyService.ExportAccount` against real ingestion and scoring on
//! loopback, served beside `MatchingService` as `lift serve matching` serves it:
//! a creator with a recorded eligibility, an offer it accepted, a rate card, a
//! portfolio seat, a standing program's perk and a report is exported with each
//! of them (and a held-out control with its holdout place); the summary counts
//! what was sent; a brand's key is refused PERMISSION_DENIED, no key
//! UNAUTHENTICATED, and a missing or malformed account INVALID_ARGUMENT naming
//! the field — with matching's database on SQLite and on PostgreSQL.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{bind, boxes_spec, ev, ingest_all, lazy, quick_scoring, rt, scored, social_world, start_scoring};
use lift_ingest::{Ingest, IngestConfig};
use lift_matching::{API_KEY_HEADER, MatchingConfig, create_brand};
use lift_proto::ingest::v1 as ipb;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::matching::v1 as pb;
use lift_proto::matching::v1::export_account_response::Item;
use lift_proto::matching::v1::matching_privacy_service_client::MatchingPrivacyServiceClient;
use lift_runtime::auth::Scope;
use lift_runtime::{ServeOptions, Shutdown};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

const CREATORS: usize = 24;

/// Exports `account` from the matching server at `addr` with `key` (none: anonymous).
async fn export(addr: SocketAddr, key: Option<&str>, account: Option<ipb::AccountRef>) -> Result<Vec<Item>, Status> {
    export_request(addr, key, pb::ExportAccountRequest { account, visitor_id: String::new() }).await
}

/// Sends `req` to the matching server at `addr` with `key` (none: anonymous).
async fn export_request(
    addr: SocketAddr,
    key: Option<&str>,
    req: pb::ExportAccountRequest,
) -> Result<Vec<Item>, Status> {
    let key = key.map(|k| k.parse::<tonic::metadata::MetadataValue<_>>().expect("ascii key"));
    let mut client = MatchingPrivacyServiceClient::with_interceptor(lazy(addr), move |mut r: Request<()>| {
        if let Some(k) = &key {
            r.metadata_mut().insert(API_KEY_HEADER, k.clone());
        }
        Ok(r)
    });
    let mut stream = client.export_account(req).await?.into_inner();
    let mut items = Vec::new();
    while let Some(m) = stream.message().await? {
        items.push(m.item.expect("every message carries an item"));
    }
    Ok(items)
}

/// Pins the export of every kind of row, the summary's counts, and who may ask,
/// with matching's database on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_export_sends_every_matching_row_naming_the_account_on_sqlite() {
    scenario(lift_store::connect("sqlite::memory:").await.expect("db")).await;
}

/// The same with matching's database on PostgreSQL (the read queries' placeholders).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_export_sends_every_matching_row_naming_the_account_on_postgres() {
    let (_pg, url) = lift_store::testing::postgres().await.expect("postgres");
    scenario(lift_store::connect(&url).await.expect("db")).await;
}

async fn scenario(db: lift_store::DatabaseConnection) {
    let stop = Shutdown::new();
    let ingest = Ingest::new(lift_store::connect("sqlite::memory:").await.expect("db"), IngestConfig::default());
    let (l, ingest_addr) = bind().await;
    tokio::spawn(lift_runtime::serve(l, ingest.grpc(), stop.clone()));
    let scoring_db = lift_store::connect("sqlite::memory:").await.expect("db");
    let (scoring, scoring_addr) = start_scoring(scoring_db, ingest_addr, quick_scoring(30), &stop).await;
    let client = IngestServiceClient::new(rt(ingest_addr));
    let head = ingest_all(&client, social_world(CREATORS, [90_000, 89_000, 88_000, 87_000], false)).await;
    scored(&scoring, head).await;

    let cfg = MatchingConfig { report_patience: Duration::from_secs(30), ..MatchingConfig::default() };
    let m = common::matching(db.clone(), scoring_addr, ingest_addr, cfg);
    let (l, addr) = bind().await;
    tokio::spawn(lift_runtime::serve_pair(l, m.grpc(), m.privacy(), stop.clone(), ServeOptions::default()));

    let (brand, brand_key) = create_brand(&db, "Acme").await.expect("brand");
    let c = m.create_campaign(&brand, Some(&boxes_spec())).await.expect("create");
    let mreq = pb::MatchCampaignRequest { campaign_id: c.id.clone(), page_size: 1_000, ..Default::default() };
    m.match_campaign(&brand, &mreq).await.expect("match");
    let sreq = pb::SelectPortfolioRequest { campaign_id: c.id.clone(), epsilon: 0.0 };
    m.select_portfolio(&brand, &sreq).await.expect("portfolio");
    let oreq = pb::CreateOffersRequest { campaign_id: c.id.clone(), holdout_seed: 7 };
    let offers = m.create_offers(&brand, &oreq).await.expect("offers").offers;
    // The subject: a portfolio member that was offered the perk; and a control.
    let offered = offers.iter().find(|o| !o.holdout && o.in_portfolio).and_then(|o| o.account.clone()).expect("offer");
    let control = offers.iter().find(|o| o.holdout && o.in_portfolio).and_then(|o| o.account.clone()).expect("control");
    let step = pb::TransitionOfferRequest {
        campaign_id: c.id.clone(),
        account: Some(offered.clone()),
        to_state: ipb::OfferState::Accepted as i32,
        note: "yes please".into(),
        ..Default::default()
    };
    let accepted = m.transition_offer(&brand, &step).await.expect("accept").ledger_offset;
    // A visitor follows the offered creator's link: the report keeps its id.
    let link = offers.iter().find(|o| o.account.as_ref() == Some(&offered)).map(|o| o.link.clone()).expect("link");
    let click = ipb::LinkClick { link, visitor_id: "v-privacy".into(), ..Default::default() };
    ingest_all(&client, vec![ev("privacy-click", 60, ipb::event::Kind::LinkClick(click))]).await;
    let rates = pb::SetRateCardRequest {
        currency: "EUR".into(),
        rates: vec![pb::CreatorRate { account: Some(offered.clone()), rate: 900 }],
        replace: false,
    };
    m.set_rate_card(&brand, &rates).await.expect("rate card");
    let standing_spec =
        pb::CampaignSpec { name: "standing boxes".into(), budget: 1_000_000, holdout_share: 0.0, ..boxes_spec() };
    let s = m.create_campaign(&brand, Some(&standing_spec)).await.expect("create standing");
    let start = pb::StartStandingProgramRequest { campaign_id: s.id.clone(), rules: None };
    m.start_standing_program(&brand, &start).await.expect("start standing");
    m.evaluate_standing().await.expect("evaluate standing");
    // The report's aggregate exists once a report is answered from it.
    m.campaign_report(&brand, &pb::GetCampaignReportRequest { campaign_id: c.id.clone() }).await.expect("report");

    let (_, admin_key) = lift_runtime::auth::create_key(&db, "dpo", &[Scope::PrivacyAdmin], None).await.expect("key");
    let items = export(addr, Some(&admin_key), Some(offered.clone())).await.expect("export");
    let Some(Item::Summary(sum)) = items.last() else { panic!("the summary comes last: {items:?}") };
    assert_eq!(sum.subject_hash.len(), 64, "{sum:?}");
    let count = |f: fn(&Item) -> bool| items.iter().filter(|i| f(i)).count() as u64;

    let elig: Vec<_> = items.iter().filter_map(|i| if let Item::Eligibility(e) = i { Some(e) } else { None }).collect();
    assert!(elig.iter().any(|e| e.campaign.as_ref().map(|c| &c.campaign_id) == Some(&c.id)), "{elig:?}");
    assert!(elig.iter().all(|e| e.campaign.as_ref().is_some_and(|c| c.brand_id == brand.0 && !c.name.is_empty())));
    assert_eq!(count(|i| matches!(i, Item::Eligibility(_))), sum.eligibility);

    let offer_in = |id: &str| {
        items.iter().find_map(|i| match i {
            Item::Offer(o) if o.campaign.as_ref().is_some_and(|c| c.campaign_id == id) => o.offer.as_ref(),
            _ => None,
        })
    };
    let o = offer_in(&c.id).expect("the campaign's offer");
    assert_eq!((o.account.as_ref(), o.holdout, o.state), (Some(&offered), false, ipb::OfferState::Accepted as i32));
    assert!(!o.link.is_empty() && !o.code.is_empty(), "{o:?}");
    // A standing program's perk is an offer too.
    assert!(offer_in(&s.id).is_some_and(|o| !o.holdout), "{items:?}");
    assert_eq!(count(|i| matches!(i, Item::Offer(_))), sum.offers);
    assert_eq!(sum.offers, 2, "two campaigns made it an offer: {items:?}");

    let t = items.iter().find_map(|i| if let Item::OfferTransition(t) = i { t.transition.as_ref() } else { None });
    let t = t.expect("the acceptance is exported");
    assert_eq!(
        (t.ledger_offset, t.to_state, t.note.as_str()),
        (accepted, ipb::OfferState::Accepted as i32, "yes please")
    );
    assert_eq!(count(|i| matches!(i, Item::OfferTransition(_))), sum.offer_transitions);

    let rate = items.iter().find_map(|i| if let Item::RateCard(r) = i { Some(r) } else { None }).expect("rate");
    let entry = rate.entry.as_ref().expect("entry");
    assert_eq!((rate.brand_id.as_str(), entry.rate, entry.currency.as_str()), (brand.0.as_str(), 900, "EUR"));
    assert_eq!(sum.rate_cards, 1);

    let seat = items.iter().find_map(|i| if let Item::PortfolioSeat(p) = i { Some(p) } else { None }).expect("seat");
    assert_eq!(seat.campaign.as_ref().map(|c| c.campaign_id.as_str()), Some(c.id.as_str()));
    assert_eq!(seat.member.as_ref().and_then(|m| m.account.as_ref()), Some(&offered));
    assert!(seat.portfolio_members >= 2 && seat.portfolio_total_cost > 0, "{seat:?}");
    assert_eq!(sum.portfolio_seats, 1);

    let perk = items.iter().find_map(|i| if let Item::StandingPerk(p) = i { Some(p) } else { None }).expect("perk");
    assert_eq!(perk.campaign.as_ref().map(|c| c.campaign_id.as_str()), Some(s.id.as_str()));
    let p = perk.perk.as_ref().expect("perk row");
    assert!(!p.holdout && !p.criteria.is_empty() && !p.link.is_empty(), "{p:?}");
    assert_eq!(sum.standing_perks, 1);

    // The campaign's report (a standing program's offers get a report too).
    let report = items.iter().find_map(|i| match i {
        Item::ReportRow(r) if r.campaign.as_ref().is_some_and(|x| x.campaign_id == c.id) => Some(r),
        _ => None,
    });
    let report = report.expect("the campaign's report names it");
    assert_eq!(report.creator_role, "treated");
    assert!(report.creator_totals.is_some(), "{report:?}");
    assert_eq!(count(|i| matches!(i, Item::ReportRow(_))), sum.report_rows);
    assert_eq!(sum.recalibrations, 0);
    assert_eq!(items.len() as u64 - 1, count(|i| !matches!(i, Item::Summary(_))));

    // A control: its holdout place, no transitions, the report naming it a control.
    let items = export(addr, Some(&admin_key), Some(control.clone())).await.expect("export control");
    let o = items.iter().find_map(|i| match i {
        Item::Offer(o) if o.campaign.as_ref().is_some_and(|x| x.campaign_id == c.id) => o.offer.as_ref(),
        _ => None,
    });
    let o = o.expect("its holdout place");
    assert!(o.holdout && o.link.is_empty(), "{o:?}");
    assert!(!items.iter().any(|i| matches!(i, Item::OfferTransition(_))));
    let r = items.iter().find_map(|i| match i {
        Item::ReportRow(r) if r.campaign.as_ref().is_some_and(|x| x.campaign_id == c.id) => Some(r),
        _ => None,
    });
    assert_eq!(r.expect("the campaign's report names it").creator_role, "control");

    // An account matching never saw: only the summary.
    let nobody = ipb::AccountRef { network: "x".into(), id: "nobody".into() };
    let items = export(addr, Some(&admin_key), Some(nobody)).await.expect("export nobody");
    assert!(matches!(items.as_slice(), [Item::Summary(s)] if s.offers == 0 && s.eligibility == 0), "{items:?}");

    // A visitor: the report that keeps its id, credited to the offered creator.
    let by_visitor = |v: &str| pb::ExportAccountRequest { account: None, visitor_id: v.into() };
    let items = export_request(addr, Some(&admin_key), by_visitor("v-privacy")).await.expect("export visitor");
    let rows: Vec<_> = items.iter().filter_map(|i| if let Item::VisitorRow(r) = i { Some(r) } else { None }).collect();
    assert_eq!(rows.len(), 1, "{items:?}");
    assert_eq!(rows[0].campaign.as_ref().map(|c| c.campaign_id.as_str()), Some(c.id.as_str()));
    assert_eq!(
        (rows[0].credited_to.as_ref(), rows[0].counted_by.as_slice()),
        (Some(&offered), std::slice::from_ref(&offered))
    );
    assert!(matches!(items.last(), Some(Item::Summary(s)) if s.visitor_rows == 1 && s.subject_hash.len() == 64));
    let items = export_request(addr, Some(&admin_key), by_visitor("v-never")).await.expect("export unknown visitor");
    assert!(matches!(items.as_slice(), [Item::Summary(s)] if s.visitor_rows == 0), "{items:?}");
    let both = pb::ExportAccountRequest { account: Some(offered.clone()), visitor_id: "v-privacy".into() };
    let bad = export_request(addr, Some(&admin_key), both).await.expect_err("account and visitor");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");

    // Who may ask: a brand's key is refused, so is an anonymous caller.
    let refused = export(addr, Some(&brand_key), Some(offered.clone())).await.expect_err("a brand's key");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("privacy:admin"), "{}", refused.message());
    let anonymous = export(addr, None, Some(offered.clone())).await.expect_err("no key");
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");

    // Bad input names the field.
    for (account, field) in
        [(None, "account"), (Some(ipb::AccountRef { network: String::new(), id: "anna".into() }), "account.network")]
    {
        let bad = export(addr, Some(&admin_key), account).await.expect_err("bad input");
        assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
        let fields: Vec<String> =
            bad.get_details_bad_request().expect("details").field_violations.into_iter().map(|v| v.field).collect();
        assert!(fields.iter().any(|f| f == field), "{fields:?} should name {field}");
    }
    stop.trigger();
}
