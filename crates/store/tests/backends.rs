//! The ledger and link registry on both backends: SQLite (file, several pools as
//! several processes would) and PostgreSQL in a testcontainers container.

use lift_store::testing::TempSqlite;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lift_domain::event::{self, EngagementKind, EventBody};
use lift_domain::{AccountId, Event};
use lift_store::ledger::{self, NewEvent, Outcome};
use lift_store::links::{self, Link};
use lift_store::{DatabaseConnection, Error};

/// A mention with a body naming it (the store keeps bodies as given).
fn mention(source: &str, id: &str, n: u64) -> NewEvent {
    let e = Event {
        event_id: id.into(),
        source: source.into(),
        occurred_at: 1_700_000_000_000_000 + n as i64,
        body: EventBody::Engagement(event::Engagement {
            kind: EngagementKind::Mention,
            actor: AccountId::new("t", format!("a{}", n % 97)),
            post_id: None,
            target: Some(AccountId::new("t", format!("b{}", n % 89))),
        }),
    };
    NewEvent::new(&e, format!("{source}/{id}").into_bytes())
}

/// Several writers, each with its own pool (as separate ingestion processes would
/// have), append concurrently while a subscriber polls `offset > last_seen`. The
/// subscriber must see every offset exactly once, in order, with no gap: a gap
/// that fills later is the outbox bug.
async fn concurrent_writers_never_skip(urls: Vec<String>) -> Result<(), Error> {
    const BATCHES: u64 = 25;
    const BATCH: u64 = 40;
    let writers = urls.len() as u64;
    let total = writers * BATCHES * BATCH;
    let reader = lift_store::connect(&urls[0]).await?;
    let start = ledger::head(&reader).await?;
    let mut dbs = Vec::new();
    for u in &urls {
        dbs.push(lift_store::connect(u).await?);
    }
    let done = Arc::new(AtomicBool::new(false));
    let subscriber = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut last = start;
            let mut seen = Vec::new();
            loop {
                let page = ledger::read_after(&reader, last, &[], 200).await?;
                for e in &page {
                    assert_eq!(e.offset, last + 1, "subscriber skipped from {last} to {}", e.offset);
                    last = e.offset;
                    seen.push(e.offset);
                }
                if page.is_empty() {
                    if done.load(Ordering::Acquire) && last == ledger::head(&reader).await? {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
            Ok::<_, Error>(seen)
        })
    };
    let mut tasks = Vec::new();
    for (w, db) in dbs.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                let batch: Vec<NewEvent> =
                    (0..BATCH).map(|i| mention(&format!("w{w}"), &format!("{b}-{i}"), b * BATCH + i)).collect();
                let out = ledger::append(&db, &batch).await?;
                assert!(out.iter().all(|o| o.is_accepted()));
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        t.await.expect("writer task panicked")?;
    }
    done.store(true, Ordering::Release);
    let seen = subscriber.await.expect("subscriber panicked")?;
    assert_eq!(seen.len() as u64, total);
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>().len() as u64, total);
    Ok(())
}

/// Idempotency across batches and replays, on the backend's own insert path.
async fn replay_is_idempotent(db: &DatabaseConnection) -> Result<(), Error> {
    let batch: Vec<NewEvent> = (0..1200).map(|i| mention("replay", &format!("e{i}"), i)).collect();
    let first = ledger::append(db, &batch).await?;
    assert!(first.iter().all(|o| o.is_accepted()));
    let base = first[0].offset();
    let again = ledger::append(db, &batch[600..]).await?;
    for (i, o) in again.iter().enumerate() {
        assert_eq!(*o, Outcome::Duplicate(base + 600 + i as u64));
    }
    let read = ledger::read_after(db, base - 1, &[], 2000).await?;
    assert_eq!(read.len(), 1200);
    assert_eq!(read[17].body, batch[17].body);
    Ok(())
}

async fn links_register_and_attribute(db: &DatabaseConnection) -> Result<(), Error> {
    let anna = Link {
        link: "lift.to/anna".into(),
        owner: AccountId::new("x", "anna"),
        campaign_id: "c1".into(),
        attribution_window_secs: 3600,
        landing_url: String::new(),
    };
    let r = links::register(db, std::slice::from_ref(&anna), 1).await?;
    assert_eq!((r.registered, r.unchanged), (1, 0));
    let r = links::register(db, std::slice::from_ref(&anna), 2).await?;
    assert_eq!((r.registered, r.unchanged), (0, 1));
    let mut stolen = anna.clone();
    stolen.owner = AccountId::new("x", "bob");
    assert!(matches!(links::register(db, &[stolen], 3).await, Err(Error::Conflict(_))));
    assert_eq!(links::get(db, "lift.to/anna").await?, Some(anna.clone()));
    assert_eq!(links::count(db).await?, 1);
    links::record_clicks(
        db,
        &[links::Click {
            offset: 5,
            visitor_id: "v".into(),
            link: anna.link.clone(),
            occurred_at: 100,
            attributable_until: 100 + 3_600_000_000,
        }],
    )
    .await?;
    let (click, link) = links::last_click(db, "v", 200).await?.expect("click within the window");
    assert_eq!((click.offset, link), (5, anna));
    assert!(links::last_click(db, "v", 99).await?.is_none(), "a click after the conversion");
    assert!(links::last_click(db, "v", 100 + 3_600_000_001).await?.is_none(), "outside the window");
    assert!(links::last_click(db, "w", 200).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn sqlite_concurrent_writers_never_skip() {
    let f = TempSqlite::new("store-concurrent");
    concurrent_writers_never_skip(vec![f.url(), f.url(), f.url()]).await.unwrap();
}

#[tokio::test]
async fn sqlite_replay_and_links() {
    let db = lift_store::connect("sqlite::memory:").await.unwrap();
    replay_is_idempotent(&db).await.unwrap();
    links_register_and_attribute(&db).await.unwrap();
}

#[tokio::test]
async fn postgres_ledger_and_links() {
    let (_pg, url) = lift_store::testing::postgres().await.unwrap();
    let db = lift_store::connect(&url).await.unwrap();
    replay_is_idempotent(&db).await.unwrap();
    links_register_and_attribute(&db).await.unwrap();
    concurrent_writers_never_skip(vec![url.clone(), url.clone(), url]).await.unwrap();
}

/// Pins that several processes may migrate one PostgreSQL at once.
#[tokio::test]
async fn postgres_concurrent_connects_migrate_once() {
    let (_pg, url) = lift_store::testing::postgres().await.unwrap();
    let (a, b, c) = tokio::join!(lift_store::connect(&url), lift_store::connect(&url), lift_store::connect(&url));
    for db in [a, b, c] {
        assert_eq!(ledger::head(&db.unwrap()).await.unwrap(), 0);
    }
}

/// Pins the report aggregates' compare-and-set commit on PostgreSQL.
#[tokio::test]
async fn postgres_report_aggregates() {
    let (_pg, url) = lift_store::testing::postgres().await.unwrap();
    let db = lift_store::connect(&url).await.unwrap();
    lift_store::reports::exercise(&db).await.unwrap();
}
