//! The retention horizon against the real ingestion and scoring services: a run
//! removes exactly the events that occurred before the cutoff (by count and by
//! offset), a second run removes nothing, scoring acts on its marker and ends
//! equal to a from-scratch computation on the retained ledger, and the
//! scheduled job started by `lift_ingest::run` does the same and refuses events
//! past the horizon at ingest.

mod common;

use std::time::Duration;

use lift_domain::time::{MICROS_PER_SEC, now};
use lift_domain::{AccountId, Event};
use lift_ingest::{Ingest, IngestConfig, Retention};
use lift_proto::ingest::v1 as ipb;
use lift_proto::privacy::v1 as ppb;
use lift_proto::scoring::v1 as pb;
use lift_runtime::{ServeOptions, Shutdown};
use lift_scoring::engine::stats::quantize;
use lift_scoring::engine::testutil::random_stream;
use lift_scoring::engine::{ModelParams, State, compute};
use lift_store::{ConnectionTrait, DatabaseConnection, Statement};
use tokio::net::TcpListener;

use common::{serve_ingest, start, wait_offset};

const DAY: i64 = 86_400 * MICROS_PER_SEC;
/// Longer than the default model's 365-day window.
const HORIZON_DAYS: u64 = 500;
const EVENTS: usize = 600;

/// A random world whose events are spread evenly over the last 800 days, oldest first.
fn world(at: i64) -> Vec<Event> {
    random_stream(5, 12, EVENTS)
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let mut ev = e.event;
            // Half a day off the step, so no event sits on a whole-day cutoff.
            ev.occurred_at = at - 800 * DAY + (i as i64) * 800 * DAY / EVENTS as i64 + DAY / 2;
            ev
        })
        .collect()
}

fn horizon() -> Duration {
    Duration::from_secs(HORIZON_DAYS * 86_400)
}

/// Offsets of the ledger's tombstones, ascending.
async fn tombstones(db: &DatabaseConnection) -> Vec<u64> {
    let sql = "SELECT ledger_offset FROM ledger_events WHERE erased_at IS NOT NULL ORDER BY ledger_offset";
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|r| r.try_get_by_index::<i64>(0).unwrap() as u64).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_exactly_the_old_events_and_scores_stay_consistent() {
    let at = now();
    let events = world(at);
    let cutoff = at - HORIZON_DAYS as i64 * DAY;
    let expected: Vec<u64> =
        events.iter().enumerate().filter(|(_, e)| e.occurred_at < cutoff).map(|(i, _)| i as u64 + 1).collect();
    assert!(expected.len() > 100 && expected.len() < EVENTS - 100, "{} old events", expected.len());

    let ledger_db = lift_store::connect("sqlite::memory:").await.unwrap();
    let ingest = Ingest::new(ledger_db.clone(), IngestConfig::default());
    ingest.append(&events).await.unwrap();
    let ingest_stop = Shutdown::new();
    let ingest_url = serve_ingest(&ingest, &ingest_stop).await;
    let db = lift_store::connect("sqlite::memory:").await.unwrap();
    let run = start(db.clone(), &ingest_url).await;
    wait_offset(&run.scoring, EVENTS as u64).await;
    let before = lift_store::scoring::latest_run(&db).await.unwrap().unwrap();

    let r = ingest.retain(horizon(), at).await.unwrap();
    assert_eq!(r.cutoff, cutoff);
    assert_eq!(r.events_removed, expected.len() as u64);
    assert_eq!(r.offsets, expected, "exactly the events that occurred before the cutoff");
    assert_eq!(r.marker_offset, Some(EVENTS as u64 + 1));
    assert_eq!(tombstones(&ledger_db).await, expected);
    let live = lift_ingest::ledger::sql::read_after(&ledger_db, 0, &[], 100_000).await.unwrap();
    assert_eq!(live.len(), EVENTS - expected.len() + 1, "the retained events and the marker");
    assert!(live.iter().all(|e| e.event.occurred_at >= cutoff));

    // Again, a moment later: nothing more is past the horizon, nothing is written.
    let again = ingest.retain(horizon(), at + MICROS_PER_SEC).await.unwrap();
    assert_eq!((again.events_removed, again.marker_offset), (0, None));
    assert_eq!(tombstones(&ledger_db).await, expected);

    // Audited, naming no person.
    let mut privacy = ppb::privacy_service_client::PrivacyServiceClient::connect(ingest_url.clone()).await.unwrap();
    let audit = privacy.list_audit(ppb::ListAuditRequest::default()).await.unwrap().into_inner().entries;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].action, ppb::AuditAction::Retention as i32);
    assert_eq!(audit[0].events, expected.len() as u64);
    assert_eq!(audit[0].subject_hash, lift_store::privacy::retention_hash(cutoff));

    // A producer replaying a removed event cannot bring it back.
    let replay = ingest.append(&events[..1]).await.unwrap();
    assert!(!replay[0].is_accepted(), "{replay:?}");
    assert_eq!(tombstones(&ledger_db).await, expected);

    // Scoring acted on the marker: its scores equal a from-scratch computation on the retained ledger.
    let marker = r.marker_offset.unwrap();
    wait_offset(&run.scoring, marker).await;
    let mut direct = State::new();
    for e in &live {
        direct.apply(e);
    }
    let want = compute(&direct, &ModelParams::default());
    let ids: Vec<String> = (0..12).map(|i| format!("u{i}")).collect();
    let req = pb::GetScoresRequest {
        accounts: ids.iter().map(|u| ipb::AccountRef { network: "t".into(), id: u.clone() }).collect(),
    };
    let got = run.client.clone().get_scores(req).await.unwrap().into_inner();
    assert_eq!(got.accounts.len() + got.unknown.len(), 12);
    for u in &got.unknown {
        assert!(direct.node(&AccountId::new(u.network.clone(), u.id.clone())).is_none(), "{u:?} is retained");
    }
    assert!(!got.accounts.is_empty());
    for a in &got.accounts {
        let id = a.account.as_ref().unwrap();
        let n = direct.node(&AccountId::new(id.network.clone(), id.id.clone())).unwrap() as usize;
        assert_eq!(a.as_of_offset, marker);
        for s in a.scores.iter().filter(|s| s.topic.is_empty()) {
            let w = want.values[(s.dimension - 1) as usize][n];
            assert!((s.value - w).abs() <= 1e-9 * w.abs().max(1.0), "{}: {} vs {w}", id.id, s.value);
        }
    }

    // Explanations across the run name it: from what the earlier run recorded,
    // an ERASURE part (the retention run, by its cutoff), summing exactly.
    let mut named = 0;
    for a in &got.accounts {
        let id = a.account.clone().unwrap();
        let req = pb::GetScoreHistoryRequest { account: Some(id.clone()), limit: 1000, ..Default::default() };
        let history = run.client.clone().get_score_history(req).await.unwrap().into_inner().points;
        let recorded = history.iter().find(|p| p.run_id <= before.run_id).unwrap();
        for d in 1..=5 {
            let req = pb::ExplainScoreChangeRequest {
                account: Some(id.clone()),
                dimension: d,
                from_run_id: before.run_id,
                to_run_id: 0,
            };
            let e = run.client.clone().explain_score_change(req).await.unwrap().into_inner();
            let then = recorded.scores.iter().find(|s| s.dimension == d && s.topic.is_empty()).unwrap();
            // The history's percentile, on the explanation's 1/1024 grid.
            assert_eq!((e.from_value, e.from_percentile), (then.value, quantize(then.percentile)), "{}", id.id);
            assert_eq!(e.contributions.iter().map(|c| c.delta).sum::<f64>(), e.to_value - e.from_value);
            assert_eq!(
                e.percentile_contributions.iter().map(|c| c.delta).sum::<f64>(),
                e.to_percentile - e.from_percentile
            );
            if let Some(c) = e.contributions.iter().find(|c| c.kind == pb::ContributionKind::Erasure as i32) {
                named += 1;
                assert!(c.description.contains("were removed by a retention run"), "{}", c.description);
                assert!(!c.description.contains("erased at their request"), "{}", c.description);
                assert_eq!(c.event_offsets, vec![marker]);
            }
        }
    }
    assert!(named > 0, "removing 1–300-day-old events moved someone's score");
    run.stop.trigger();
    ingest_stop.trigger();
}

/// The job `lift_ingest::run` schedules: its first run removes what is past the
/// horizon at once, and an event past the horizon is refused at ingest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_job_removes_old_events_and_ingest_refuses_them() {
    let at = now();
    let events = world(at);
    let db = lift_store::connect("sqlite::memory:").await.unwrap();
    // Written before retention was switched on.
    Ingest::new(db.clone(), IngestConfig::default()).append(&events).await.unwrap();
    let old = events.iter().filter(|e| e.occurred_at < at - HORIZON_DAYS as i64 * DAY).count();

    let cfg = IngestConfig {
        retention: Some(Retention { horizon: horizon(), every: Duration::from_secs(3_600) }),
        ..IngestConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = Shutdown::new();
    let deps = lift_ingest::IngestDeps { db: db.clone(), serve: ServeOptions::default() };
    let server = tokio::spawn(lift_ingest::run(listener, cfg, deps, stop.clone()));
    tokio::time::timeout(Duration::from_secs(30), async {
        while tombstones(&db).await.len() < old {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first scheduled run removes the old events");
    assert_eq!(tombstones(&db).await.len(), old);

    let mut client = ipb::ingest_service_client::IngestServiceClient::connect(url).await.unwrap();
    let ev = |id: &str, days_ago: i64| ipb::Event {
        event_id: id.into(),
        source: "late".into(),
        occurred_at: Some(lift_proto::convert::to_timestamp(at - days_ago * DAY)),
        kind: Some(ipb::event::Kind::Follow(ipb::Follow {
            follower: Some(ipb::AccountRef { network: "t".into(), id: "u1".into() }),
            followee: Some(ipb::AccountRef { network: "t".into(), id: "u2".into() }),
            unfollow: false,
        })),
    };
    let resp = client
        .ingest_batch(ipb::IngestBatchRequest { events: vec![ev("recent", 10), ev("ancient", 600)] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((resp.accepted, resp.rejected), (1, 1), "{resp:?}");
    assert!(format!("{:?}", resp.results[1]).contains("occurred_at"), "{resp:?}");
    stop.trigger();
    server.await.unwrap().unwrap();
}
