//! A retention run on both SQL backends: exactly the events that occurred before
//! the cutoff become tombstones, one marker and one audit row are written, a
//! second run writes nothing (the marker itself is never removed), and a
//! replay of a removed event is a duplicate of its tombstone.
//! (Scoring's consistency after a run: `crates/scoring/tests/retention.rs`.)

use std::time::Duration;

use lift_domain::event::{Follow, LinkClick};
use lift_domain::time::{MICROS_PER_SEC, now};
use lift_domain::{AccountId, Event, EventBody};
use lift_ingest::{Ingest, IngestConfig};
use lift_store::{ConnectionTrait, DatabaseConnection, Statement};

const DAY: i64 = 86_400 * MICROS_PER_SEC;

fn follow(i: usize, at: i64) -> Event {
    Event {
        event_id: format!("f{i}"),
        source: "test".into(),
        occurred_at: at,
        body: EventBody::Follow(Follow {
            follower: AccountId::new("t", format!("a{i}")),
            followee: AccountId::new("t", "star"),
            unfollow: false,
        }),
    }
}

fn click(i: usize, at: i64) -> Event {
    Event {
        event_id: format!("c{i}"),
        source: "test".into(),
        occurred_at: at,
        body: EventBody::LinkClick(LinkClick {
            link: "lnk".into(),
            visitor_id: format!("v{i}"),
            landing: String::new(),
            agent_class: String::new(),
            not_counted: None,
        }),
    }
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index(0).unwrap()
}

async fn scenario(url: &str) {
    let db = lift_store::connect(url).await.expect("connect");
    let ingest = Ingest::new(db.clone(), IngestConfig::default());
    let at = now();
    // Event i occurred 20·i days and a half ago: 0.5, 20.5, …, 580.5 days (none on a cutoff).
    let ago = |i: usize| at - 20 * i as i64 * DAY - DAY / 2;
    let events: Vec<Event> = (0..30).map(|i| if i % 3 == 0 { click(i, ago(i)) } else { follow(i, ago(i)) }).collect();
    ingest.append(&events).await.expect("append");
    let horizon = Duration::from_secs(400 * 86_400);
    // Older than 400 days: i = 20..29 (offsets 21..30).
    let expected: Vec<u64> = (20..30).map(|i| i as u64 + 1).collect();

    let r = ingest.retain(horizon, at).await.expect("retain");
    assert_eq!(r.offsets, expected);
    assert_eq!(r.events_removed, 10);
    assert_eq!(r.marker_offset, Some(31));
    let erased = count(&db, "SELECT COUNT(*) FROM ledger_events WHERE erased_at IS NOT NULL").await;
    assert_eq!(erased, 10);
    let live = lift_ingest::ledger::sql::read_after(&db, 0, &[], 1_000).await.expect("read");
    assert_eq!(live.len(), 30 - 10 + 1);
    assert!(matches!(&live.last().expect("marker").event.body,
        EventBody::Erasure(m) if m.events_erased == 10 && m.retention_before == Some(r.cutoff)));
    let audit = lift_store::privacy::list_audit(&db, 0, 10).await.expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!((audit[0].action.as_str(), audit[0].events), ("retention", 10));

    let again = ingest.retain(horizon, at + MICROS_PER_SEC).await.expect("retain again");
    assert_eq!((again.events_removed, again.marker_offset), (0, None));
    assert_eq!(lift_store::privacy::list_audit(&db, 0, 10).await.expect("audit").len(), 1);

    // A replayed old event is a duplicate of its tombstone, not stored again.
    let replay = ingest.append(&events[25..26]).await.expect("replay");
    assert!(!replay[0].is_accepted(), "{replay:?}");
    assert_eq!(replay[0].offset(), 26);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM ledger_events").await, 31);
}

#[tokio::test]
async fn sqlite_retention() {
    scenario("sqlite::memory:").await;
}

#[tokio::test]
async fn postgres_retention() {
    let (_pg, url) = lift_store::testing::postgres().await.expect("postgres");
    scenario(&url).await;
}
