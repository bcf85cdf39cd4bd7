//! Perks over real gRPC with real ingestion and scoring in-process, each on its
//! own in-memory SQLite database: offers' lifecycle on the ledger (valid and
//! refused steps, idempotency, reading back, watching) and rate cards pricing
//! the portfolio.
//!
//! The scripted world: 40 creators `c00..c39`, creator `i` followed by `i + 2`
//! fans who also like one of their posts, so reach rises with `i`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use common::{Backend, Client, acct, ev, ingest_all, quick_scoring, serve_matching, social_world, start_backend};
use futures::StreamExt;
use lift_matching::{Matching, MatchingConfig};
use lift_proto::ingest::v1 as ipb;
use lift_proto::ingest::v1::OfferState;
use lift_proto::ingest::v1::event::Kind;
use lift_proto::matching::v1 as pb;
use lift_proto::scoring::v1 as spb;
use tonic::{Code, Status};
use tonic_types::StatusExt;

const CREATORS: usize = 40;

/// Ingestion and scoring (following the ledger), and matching over them.
struct Stack {
    backend: Backend,
    matching: Matching,
    addr: SocketAddr,
}

/// Ingestion, scoring (following the ledger) and matching, with the world scored.
async fn world_stack() -> Stack {
    let backend = start_backend(quick_scoring(30)).await;
    let db = lift_store::connect("sqlite::memory:").await.expect("db");
    let matching = common::matching(db, backend.scoring_addr, backend.ingest_addr, MatchingConfig::default());
    let addr = serve_matching(&matching, &backend.stop).await;
    let s = Stack { backend, matching, addr };
    let head = ingest(&s, social_world(CREATORS, [3_600, 3_500, 3_400, 3_300], true)).await;
    scored(&s, head).await;
    s
}

async fn scored(s: &Stack, offset: u64) {
    common::scored(&s.backend.scoring, offset).await;
}

async fn brand(s: &Stack, name: &str) -> Client {
    common::brand(&s.matching, s.addr, name).await
}

async fn ingest(s: &Stack, events: Vec<ipb::Event>) -> u64 {
    ingest_all(&s.backend.ingest, events).await
}

fn spec(name: &str) -> pb::CampaignSpec {
    pb::CampaignSpec {
        name: name.into(),
        objective: pb::Objective::Reach as i32,
        perk: "a free marker".into(),
        unit_cost: 1_000,
        budget: 20_000,
        currency: "EUR".into(),
        criteria: vec![pb::Criterion {
            dimension: spb::Dimension::Reach as i32,
            topic: String::new(),
            threshold: Some(pb::criterion::Threshold::MinPercentile(50.0)),
        }],
        holdout_share: 0.2,
        ..Default::default()
    }
}

async fn create(c: &mut Client, spec: pb::CampaignSpec) -> String {
    c.create_campaign(pb::CreateCampaignRequest { spec: Some(spec) })
        .await
        .expect("create")
        .into_inner()
        .campaign
        .expect("campaign")
        .id
}

/// The watch's next message (it must come within 20 s).
async fn next(w: &mut tonic::Streaming<pb::WatchOffersResponse>) -> pb::WatchOffersResponse {
    let m = tokio::time::timeout(Duration::from_secs(20), w.next()).await.expect("a message in time");
    m.expect("stream open").expect("message")
}

/// Every offer transition on the ledger, in ledger order.
async fn ledger_transitions(s: &Stack) -> Vec<(u64, ipb::OfferTransition)> {
    let req = ipb::SubscribeRequest {
        after_offset: 0,
        kinds: vec![ipb::EventKind::OfferTransition as i32],
        stop_at_head: true,
    };
    let mut st = s.backend.ingest.clone().subscribe(req).await.expect("subscribe").into_inner();
    let mut out = Vec::new();
    while let Some(m) = st.next().await {
        for e in m.expect("message").events {
            if let Some(Kind::Offer(o)) = e.event.and_then(|e| e.kind) {
                out.push((e.offset, o));
            }
        }
    }
    out
}

fn step(campaign: &str, who: &ipb::AccountRef, to: OfferState) -> pb::TransitionOfferRequest {
    pb::TransitionOfferRequest {
        campaign_id: campaign.into(),
        account: Some(who.clone()),
        to_state: to as i32,
        ..Default::default()
    }
}

/// Pins the offer lifecycle end to end: each allowed step is one event on the
/// ledger; repeats (also of a step already passed) answer the same offset and
/// record nothing; refused steps are FAILED_PRECONDITION naming the offer;
/// concurrent accept and decline resolve to exactly one; offers read back with
/// their state; and a brand's watch sees its own steps, live, and no other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_move_through_their_life_on_the_ledger() {
    let s = world_stack().await;
    let mut a = brand(&s, "Acme").await;
    let id = create(&mut a, spec("markers")).await;
    let before = a.transition_offer(step(&id, &acct("c39"), OfferState::Accepted)).await.expect_err("not issued");
    assert_eq!(before.code(), Code::FailedPrecondition, "{before:?}");
    let issued = a
        .create_offers(pb::CreateOffersRequest { campaign_id: id.clone(), holdout_seed: 5 })
        .await
        .expect("offers")
        .into_inner();

    // Read back, three to a page: the same links and codes, every treated offer
    // OFFERED, held-out ones without state.
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let req = pb::ListOffersRequest { campaign_id: id.clone(), page_size: 3, page_token: token };
        let page = a.list_offers(req).await.expect("list").into_inner();
        assert!(page.offers.len() <= 3);
        listed.extend(page.offers);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let by_id: BTreeMap<String, pb::Offer> =
        listed.iter().map(|o| (o.account.as_ref().map(|a| a.id.clone()).unwrap_or_default(), o.clone())).collect();
    for o in &issued.offers {
        let l = &by_id[&o.account.as_ref().expect("account").id];
        assert_eq!((&l.link, &l.code, l.holdout), (&o.link, &o.code, o.holdout));
        let want = if o.holdout { OfferState::Unspecified } else { OfferState::Offered };
        assert_eq!(l.state, want as i32);
    }
    assert_eq!(by_id.len(), listed.len(), "no creator twice across pages");
    assert!(issued.holdout.iter().all(|h| by_id.contains_key(&h.id)), "held-out creators are listed too");
    let bad = pb::ListOffersRequest { campaign_id: id.clone(), page_size: 3, page_token: "zz".into() };
    assert_eq!(a.list_offers(bad).await.expect_err("bad token").code(), Code::InvalidArgument);
    let treated: Vec<ipb::AccountRef> =
        issued.offers.iter().filter(|o| !o.holdout).filter_map(|o| o.account.clone()).collect();
    assert!(treated.len() >= 4, "the scripted world yields enough offers: {}", treated.len());
    let control = issued.control_group.first().expect("a control creator").clone();
    let (t1, t2, t3, t4) = (&treated[0], &treated[1], &treated[2], &treated[3]);

    // A watcher of brand A from the start, and brand B's (which must see nothing of A's).
    let mut watch = a
        .watch_offers(pb::WatchOffersRequest { campaign_id: String::new(), after_offset: 0 })
        .await
        .expect("watch")
        .into_inner();
    let mut b = brand(&s, "Other").await;
    let mut b_watch = b.watch_offers(pb::WatchOffersRequest::default()).await.expect("watch").into_inner();

    // t1 through its whole life, each step answered once and repeated idempotently.
    let mut offsets = Vec::new();
    for to in [OfferState::Accepted, OfferState::Delivered, OfferState::Redeemed] {
        let mut req = step(&id, t1, to);
        req.note = format!("{} by the shop", to.as_str_name());
        let r = a.transition_offer(req.clone()).await.expect("step").into_inner();
        assert!(r.changed && r.ledger_offset > 0, "{r:?}");
        assert_eq!(r.offer.as_ref().map(|o| (o.state, o.state_offset)), Some((to as i32, r.ledger_offset)));
        let again = a.transition_offer(req).await.expect("repeat").into_inner();
        assert_eq!((again.changed, again.ledger_offset), (false, r.ledger_offset), "a repeat changes nothing");
        offsets.push(r.ledger_offset);
    }
    let late = a.transition_offer(step(&id, t1, OfferState::Accepted)).await.expect("passed step").into_inner();
    assert_eq!((late.changed, late.ledger_offset), (false, offsets[0]), "a step already passed answers its offset");
    assert_eq!(late.offer.map(|o| o.state), Some(OfferState::Redeemed as i32));

    // Refused steps: FAILED_PRECONDITION with the offer as the violation's subject.
    let refused = |st: Status, what: &str| {
        assert_eq!(st.code(), Code::FailedPrecondition, "{what}: {st:?}");
        let pf = st.get_details_precondition_failure().unwrap_or_else(|| panic!("{what}: details"));
        assert!(pf.violations[0].subject.starts_with(&format!("campaigns/{id}/offers/")), "{what}: {pf:?}");
        st.message().to_owned()
    };
    let msg = refused(a.transition_offer(step(&id, t2, OfferState::Redeemed)).await.expect_err("redeem"), "redeem");
    assert!(msg.contains("offered") && msg.contains("not redeemed"), "{msg}");
    a.transition_offer(step(&id, t2, OfferState::Declined)).await.expect("decline");
    let msg = refused(a.transition_offer(step(&id, t2, OfferState::Accepted)).await.expect_err("accept"), "accept");
    assert!(msg.contains("declined, which is final"), "{msg}");
    let msg = refused(a.transition_offer(step(&id, &control, OfferState::Accepted)).await.expect_err("held"), "held");
    assert!(msg.contains("held out"), "{msg}");

    // Bad requests: every bad field, and an unknown creator or another brand's campaign as NOT_FOUND.
    let mut bad = step(&id, &ipb::AccountRef::default(), OfferState::Offered);
    bad.note = "line\nbreak".into();
    let st = a.transition_offer(bad).await.expect_err("invalid");
    assert_eq!(st.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        st.get_details_bad_request().expect("details").field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(fields, ["account.network", "account.id", "to_state", "note"]);
    let st = a.transition_offer(step(&id, &acct("nobody"), OfferState::Accepted)).await.expect_err("unknown");
    assert_eq!(st.code(), Code::NotFound);
    let st = b.transition_offer(step(&id, t3, OfferState::Accepted)).await.expect_err("other brand");
    assert_eq!(st.code(), Code::NotFound);
    assert_eq!(
        b.list_offers(pb::ListOffersRequest { campaign_id: id.clone(), ..Default::default() })
            .await
            .expect_err("x")
            .code(),
        Code::NotFound
    );

    // Accept and decline at once: exactly one wins, and only it reaches the ledger.
    let (mut a1, mut a2) = (a.clone(), a.clone());
    let (r1, r2) = tokio::join!(
        a1.transition_offer(step(&id, t3, OfferState::Accepted)),
        a2.transition_offer(step(&id, t3, OfferState::Declined))
    );
    assert_eq!(u8::from(r1.is_ok()) + u8::from(r2.is_ok()), 1, "{r1:?} {r2:?}");
    let loser = r1.as_ref().err().or(r2.as_ref().err()).expect("a loser");
    assert_eq!(loser.code(), Code::FailedPrecondition);

    // The ledger holds exactly the steps taken, in order, at the offsets answered.
    let ledger = ledger_transitions(&s).await;
    let of = |who: &ipb::AccountRef| -> Vec<(u64, i32, i32)> {
        ledger
            .iter()
            .filter(|(_, o)| o.creator.as_ref() == Some(who) && o.campaign_id == id)
            .map(|(off, o)| (*off, o.from_state, o.to_state))
            .collect()
    };
    let (off, acc, del, red, dec) = (
        OfferState::Offered as i32,
        OfferState::Accepted as i32,
        OfferState::Delivered as i32,
        OfferState::Redeemed as i32,
        OfferState::Declined as i32,
    );
    assert_eq!(of(t1), vec![(offsets[0], off, acc), (offsets[1], acc, del), (offsets[2], del, red)]);
    assert_eq!(of(t2).iter().map(|x| (x.1, x.2)).collect::<Vec<_>>(), vec![(off, dec)]);
    assert_eq!(of(t3).len(), 1, "only the winner of the race is on the ledger");
    assert_eq!(ledger.len(), 5);
    assert!(ledger.iter().all(|(_, o)| o.note.is_empty() || o.note.ends_with("by the shop")));

    // The watcher sees those five, then a step taken while it watches.
    let mut seen: Vec<pb::OfferEvent> = Vec::new();
    while seen.len() < 5 {
        seen.extend(next(&mut watch).await.events);
    }
    assert_eq!(
        seen.iter().map(|e| e.ledger_offset).collect::<Vec<_>>(),
        ledger.iter().map(|x| x.0).collect::<Vec<_>>()
    );
    let live = a.transition_offer(step(&id, t4, OfferState::Expired)).await.expect("expire").into_inner();
    let m = next(&mut watch).await;
    let e = m.events.first().expect("the live step");
    assert_eq!(
        (e.ledger_offset, e.to_state, e.account.as_ref()),
        (live.ledger_offset, OfferState::Expired as i32, Some(t4))
    );
    assert_eq!(m.head_offset, live.ledger_offset);

    // Brand B's watcher catches up with nothing of A's.
    let m = next(&mut b_watch).await;
    assert!(m.caught_up && m.events.is_empty(), "{m:?}");

    // Read back after the steps.
    let req = pb::ListOffersRequest { campaign_id: id.clone(), page_size: 1_000, ..Default::default() };
    let listed = a.list_offers(req).await.expect("list").into_inner();
    let state_of =
        |who: &ipb::AccountRef| listed.offers.iter().find(|o| o.account.as_ref() == Some(who)).map(|o| o.state);
    assert_eq!(state_of(t1), Some(OfferState::Redeemed as i32));
    assert_eq!(state_of(t2), Some(OfferState::Declined as i32));
    assert_eq!(state_of(t4), Some(OfferState::Expired as i32));
}

/// Pins rate cards: validation with every bad field; the card read back; a
/// portfolio priced from it within budget, with fallbacks to the unit cost
/// stated; beating the equal-cost choice on expected reach per unit of real
/// cost; and offers (hence cost per conversion) at the creators' rates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_cards_price_the_portfolio() {
    let s = world_stack().await;
    let mut a = brand(&s, "Acme").await;
    let mut b = brand(&s, "Equal").await;

    let bad = pb::SetRateCardRequest {
        currency: "XXX".into(),
        rates: vec![
            pb::CreatorRate { account: None, rate: 5 },
            pb::CreatorRate { account: Some(acct("c01")), rate: 0 },
        ],
        replace: false,
    };
    let st = a.set_rate_card(bad).await.expect_err("invalid");
    assert_eq!(st.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        st.get_details_bad_request().expect("details").field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(fields, ["currency", "rates[0].account", "rates[1].rate"]);

    // Audience (and price) grows with i; c05 has no rate and costs the unit cost.
    let rate = |i: usize| 40 * ((i + 2) * (i + 2)) as i64;
    let rates: Vec<pb::CreatorRate> = (0..CREATORS)
        .filter(|i| *i != 5)
        .map(|i| pb::CreatorRate { account: Some(acct(&format!("c{i:02}"))), rate: rate(i) })
        .collect();
    let set = a
        .set_rate_card(pb::SetRateCardRequest { currency: "EUR".into(), rates, replace: true })
        .await
        .expect("set")
        .into_inner();
    assert_eq!((set.stored, set.total), (CREATORS as u32 - 1, CREATORS as u64 - 1));
    let card = a.get_rate_card(pb::GetRateCardRequest { currency: "EUR".into() }).await.expect("get").into_inner();
    let card: HashMap<String, i64> =
        card.rates.iter().map(|r| (r.account.as_ref().map(|a| a.id.clone()).unwrap_or_default(), r.rate)).collect();
    assert_eq!(card.len(), CREATORS - 1);
    assert_eq!(card["c39"], rate(39));
    assert!(b.get_rate_card(pb::GetRateCardRequest::default()).await.expect("get").into_inner().rates.is_empty());

    let real_cost = |id: &str| card.get(id).copied().unwrap_or(1_000);
    let (ida, idb) = (create(&mut a, spec("priced")).await, create(&mut b, spec("equal")).await);
    let pa =
        a.select_portfolio(pb::SelectPortfolioRequest { campaign_id: ida.clone(), epsilon: 0.0 }).await.expect("a");
    let pb_ =
        b.select_portfolio(pb::SelectPortfolioRequest { campaign_id: idb.clone(), epsilon: 0.0 }).await.expect("b");
    let (pa, pb_) = (pa.into_inner(), pb_.into_inner());
    assert!(pa.total_cost <= 20_000 && !pa.members.is_empty(), "{pa:?}");
    for m in &pa.members {
        let id = &m.account.as_ref().expect("account").id;
        assert_eq!(m.cost, real_cost(id), "{id} priced from the card");
        let src = if card.contains_key(id) { pb::CostSource::RateCard } else { pb::CostSource::UnitCost };
        assert_eq!(m.cost_source, src as i32, "{id}");
    }
    assert_eq!(pa.total_cost, pa.members.iter().map(|m| m.cost).sum::<i64>());
    let eligible = a
        .match_campaign(pb::MatchCampaignRequest { campaign_id: ida.clone(), page_size: 1_000, ..Default::default() })
        .await
        .expect("match")
        .into_inner()
        .total_eligible;
    let eligible_c05 = u64::from(
        a.match_campaign(pb::MatchCampaignRequest { campaign_id: ida.clone(), page_size: 1_000, ..Default::default() })
            .await
            .expect("match")
            .into_inner()
            .eligible
            .iter()
            .any(|c| c.account.as_ref().is_some_and(|a| a.id == "c05")),
    );
    assert_eq!((pa.priced_by_rate_card + pa.priced_by_unit_cost, pa.priced_by_unit_cost), (eligible, eligible_c05));
    assert_eq!((pb_.priced_by_rate_card, pb_.priced_by_unit_cost), (0, eligible), "no card: all at unit cost");
    assert!(pb_.members.iter().all(|m| m.cost == 1_000 && m.cost_source == pb::CostSource::UnitCost as i32));

    // The equal-cost pick, paid at the creators' real rates, reaches less per unit spent.
    let b_real: i64 = pb_.members.iter().map(|m| real_cost(&m.account.as_ref().expect("account").id)).sum();
    let (per_a, per_b) = (pa.expected_reach / pa.total_cost as f64, pb_.expected_reach / b_real as f64);
    assert!(per_a > per_b, "priced {per_a} vs equal-cost {per_b} ({} at {b_real})", pb_.expected_reach);

    // Offers carry the rates, so cost per conversion is the creator's rate over its orders.
    let issued = a
        .create_offers(pb::CreateOffersRequest { campaign_id: ida.clone(), holdout_seed: 3 })
        .await
        .expect("offers")
        .into_inner();
    let t = issued.offers.iter().find(|o| !o.holdout).expect("a treated offer");
    let tid = t.account.as_ref().expect("account").id.clone();
    assert_eq!(t.cost, real_cost(&tid));
    let order = ipb::Conversion {
        code: t.code.clone(),
        order_id: "o-1".into(),
        value_minor: 2_500,
        currency: "EUR".into(),
        ..Default::default()
    };
    ingest(&s, vec![ev("order-1", 10, Kind::Conversion(order))]).await;
    let r =
        a.get_campaign_report(pb::GetCampaignReportRequest { campaign_id: ida }).await.expect("report").into_inner();
    let cr = r.creators.iter().find(|c| c.account.as_ref().is_some_and(|a| a.id == tid)).expect("creator row");
    let totals = cr.totals.expect("totals");
    assert_eq!((totals.conversions, totals.cost_per_conversion), (1, real_cost(&tid)));
}

/// Pins tenant confidentiality: brand A's campaign drives clicks and orders
/// to a creator; brand B, matching the same creator for conversions, sees the
/// action score and its interval (the very numbers of the criterion's
/// `observed`), never a click or order count, while A's report has them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brand_b_learns_no_count_from_brand_a() {
    let s = world_stack().await;
    let mut a = brand(&s, "Acme").await;
    let ida = create(&mut a, spec("a's sales")).await;
    let issued = a
        .create_offers(pb::CreateOffersRequest { campaign_id: ida.clone(), holdout_seed: 11 })
        .await
        .expect("offers")
        .into_inner();
    let x = issued.offers.iter().find(|o| !o.holdout).expect("a treated creator").clone();
    let xid = x.account.clone().expect("account");
    const ORDERS: usize = 7;
    let mut events = Vec::new();
    for v in 0..30 {
        let click = ipb::LinkClick { link: x.link.clone(), visitor_id: format!("v{v}"), ..Default::default() };
        events.push(ev(&format!("click-{v}"), 120, Kind::LinkClick(click)));
    }
    for o in 0..ORDERS {
        let order = ipb::Conversion {
            visitor_id: format!("v{o}"),
            order_id: format!("o{o}"),
            value_minor: 1_000,
            currency: "EUR".into(),
            ..Default::default()
        };
        events.push(ev(&format!("order-{o}"), 60, Kind::Conversion(order)));
    }
    let head = ingest(&s, events).await;
    scored(&s, head).await;

    // A sees its own outcomes in full.
    let r =
        a.get_campaign_report(pb::GetCampaignReportRequest { campaign_id: ida }).await.expect("report").into_inner();
    let t = r.totals.expect("totals");
    assert_eq!((t.clicks, t.conversions), (30, ORDERS as u64));

    // B, matching for conversions, sees X's action score and interval only.
    let mut b = brand(&s, "Rival").await;
    let mut sb = spec("b's search");
    sb.objective = pb::Objective::Conversions as i32;
    sb.allow_insufficient_evidence = true;
    sb.criteria = vec![pb::Criterion {
        dimension: spb::Dimension::Action as i32,
        topic: String::new(),
        threshold: Some(pb::criterion::Threshold::MinValue(0.0)),
    }];
    let idb = create(&mut b, sb).await;
    let m = b
        .match_campaign(pb::MatchCampaignRequest {
            campaign_id: idb,
            page_size: 1_000,
            near_miss_margin: 100.0,
            ..Default::default()
        })
        .await
        .expect("match")
        .into_inner();
    let everyone: Vec<&pb::Candidate> = m.eligible.iter().chain(&m.near_misses).collect();
    let seen = everyone.iter().find(|c| c.account.as_ref() == Some(&xid)).expect("B sees the creator");
    let observed = seen.criteria[0].observed;
    let e = seen.expected.clone().expect("expected outcome");
    assert!(e.unit.starts_with("action score"), "{e:?}");
    assert_eq!(e.expected, observed, "the expected outcome is the action score itself");
    assert!(e.lower <= e.expected && e.expected <= e.upper && e.upper <= 100.0, "{e:?}");
    for c in &everyone {
        let e = c.expected.clone().unwrap_or_default();
        assert!(e.unit.contains("score"), "{} sees a count: {e:?}", c.handle);
        for r in &c.criteria {
            assert!(!r.reason.chars().any(|ch| ch.is_ascii_digit()), "a count in a reason: {:?}", r.reason);
        }
    }
}
