//! Scoring commits beside other writers: an import on the embedded SQLite
//! default, and replicas sharing one database under the writer lease (SQLite
//! file and PostgreSQL in a testcontainers container).

use lift_store::testing::TempSqlite;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lift_domain::event::{self, EngagementKind, EventBody};
use lift_domain::{AccountId, Event};
use lift_store::ledger::NewEvent;
use lift_store::scoring::{self, NewRun, ScoreRow};
use lift_store::{DatabaseConnection, Error, lease, ledger};

fn mention(id: &str, n: u64) -> NewEvent {
    let e = Event {
        event_id: id.into(),
        source: "import".into(),
        occurred_at: 1_700_000_000_000_000 + n as i64,
        body: EventBody::Engagement(event::Engagement {
            kind: EngagementKind::Mention,
            actor: AccountId::new("t", format!("a{}", n % 997)),
            post_id: None,
            target: Some(AccountId::new("t", format!("b{}", n % 989))),
        }),
    };
    NewEvent::new(&e, format!("import/{id}").into_bytes())
}

fn run(offset: u64) -> NewRun {
    NewRun {
        model_version: "m-1".into(),
        as_of_offset: offset,
        as_of_time: offset as i64,
        created_at: 1,
        accounts: 2,
        parameters: "{}".into(),
        distributions: "{}".into(),
    }
}

fn rows(n: usize, v: f64) -> Vec<ScoreRow> {
    (0..n)
        .map(|i| ScoreRow {
            account: format!("t:a{i}"),
            values: [v; 5],
            action_lower: 0.0,
            action_upper: v,
            action_sufficient: false,
        })
        .collect()
}

/// Pins the cause of the import stall: a scoring commit that starts while an
/// import's batch holds SQLite's write lock waits for it and succeeds (it used
/// to read first and then fail at once with "database is locked").
#[tokio::test]
async fn sqlite_commit_waits_for_an_import_batch() {
    let file = TempSqlite::new("writer-wait");
    let ingest = lift_store::connect(&file.url()).await.unwrap();
    let scoring_db = lift_store::connect(&file.url()).await.unwrap();
    let mut appender = ledger::Appender::begin(&ingest).await.unwrap();
    let batch: Vec<NewEvent> = (0..2000).map(|i| mention(&format!("e{i}"), i)).collect();
    let plan = appender.plan(&batch).await.unwrap();
    appender.write(&batch, &plan, &vec![None; batch.len()]).await.unwrap();
    let commit = tokio::spawn(async move { scoring::commit_run(&scoring_db, &run(0), &rows(50, 1.0)).await });
    // Hold the write lock a while, as a large import batch does.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!commit.is_finished(), "the commit did not wait for the import's write lock");
    appender.commit().await.unwrap();
    let run_id = commit.await.unwrap().expect("the scoring commit failed while an import wrote");
    assert_eq!(run_id, 1);
}

/// An import on SQLite (batch after batch from its own pool, as ingestion does)
/// while scoring commits runs back to back: no scoring commit fails.
#[tokio::test]
async fn sqlite_import_while_scoring_commits_never_fails_a_commit() {
    let file = TempSqlite::new("writer-import");
    let ingest = lift_store::connect(&file.url()).await.unwrap();
    let scoring_db = lift_store::connect(&file.url()).await.unwrap();
    let importing = Arc::new(AtomicBool::new(true));
    let imported = Arc::new(AtomicU64::new(0));
    let commits_seen = Arc::new(AtomicU64::new(0));
    let import = {
        let (importing, imported, commits_seen) = (importing.clone(), imported.clone(), commits_seen.clone());
        tokio::spawn(async move {
            // At least 30 batches, and on until three scoring commits landed in
            // between, so the overlap does not depend on how fast this machine is;
            // the cap keeps a starved scoring writer a failure, not a hang.
            let mut b = 0u64;
            while b < 30 || (commits_seen.load(Ordering::Acquire) < 3 && b < 1000) {
                let batch: Vec<NewEvent> = (0..2000).map(|i| mention(&format!("{b}-{i}"), b * 2000 + i)).collect();
                let out = ledger::append(&ingest, &batch).await?;
                imported.fetch_add(out.len() as u64, Ordering::AcqRel);
                b += 1;
            }
            importing.store(false, Ordering::Release);
            Ok::<_, Error>(())
        })
    };
    let mut failed = Vec::new();
    let mut committed = 0u64;
    let mut during_import = 0u64;
    while importing.load(Ordering::Acquire) || committed < 5 {
        let offset = imported.load(Ordering::Acquire);
        match scoring::commit_run(&scoring_db, &run(offset), &rows(2000, committed as f64)).await {
            Ok(_) => {
                committed += 1;
                commits_seen.store(committed, Ordering::Release);
                if importing.load(Ordering::Acquire) {
                    during_import += 1;
                }
            }
            Err(e) => failed.push(e.to_string()),
        }
    }
    import.await.unwrap().expect("the import failed");
    assert!(failed.is_empty(), "scoring commits failed during the import: {failed:?}");
    assert!(during_import > 0, "no scoring commit overlapped the import");
    assert_eq!(scoring::latest_run(&scoring_db).await.unwrap().unwrap().run_id, committed);
}

/// The lease and fencing rules, on any backend; `a` and `b` are two replicas' pools.
async fn lease_fences_commits(a: &DatabaseConnection, b: &DatabaseConnection) {
    let ttl = Duration::from_secs(30);
    // Nobody holds it: a lone instance commits without a fence.
    let r1 = scoring::commit_run(a, &run(1), &rows(3, 1.0)).await.unwrap();
    let fa = lease::acquire(a, "a", ttl).await.unwrap().expect("a takes the free lease");
    assert!(lease::acquire(b, "b", ttl).await.unwrap().is_none(), "b took a held lease");
    assert!(lease::state(b).await.unwrap().is_held());
    // While a holds it, neither b nor an unfenced writer may commit.
    let fb_forged = lease::Fence { holder: "b".into(), token: fa.token };
    assert!(scoring::commit_run_fenced(b, Some(&fb_forged), &run(2), &[]).await.unwrap_err().is_fenced());
    assert!(scoring::commit_run(b, &run(2), &[]).await.unwrap_err().is_fenced());
    let r2 = scoring::commit_run_fenced(a, Some(&fa), &run(2), &rows(3, 2.0)).await.unwrap();
    assert!(lease::renew(a, &fa, ttl).await.unwrap());
    // a's lease runs out (a paused, or died): b takes over with a higher token.
    assert!(lease::renew(a, &fa, Duration::ZERO).await.unwrap());
    let fb = lease::acquire(b, "b", ttl).await.unwrap().expect("b takes the expired lease");
    assert!(fb.token > fa.token);
    // a comes back: it can neither renew nor commit, however late.
    assert!(!lease::renew(a, &fa, ttl).await.unwrap());
    assert!(scoring::commit_run_fenced(a, Some(&fa), &run(3), &rows(3, 9.0)).await.unwrap_err().is_fenced());
    let r3 = scoring::commit_run_fenced(b, Some(&fb), &run(3), &rows(3, 3.0)).await.unwrap();
    assert_eq!((r1 + 1, r1 + 2), (r2, r3), "run ids are consecutive across replicas");
    let latest = scoring::latest_run(a).await.unwrap().unwrap();
    assert_eq!((latest.run_id, latest.as_of_offset), (r3, 3));
    assert_eq!(scoring::scores_at(a, "t:a0", r3).await.unwrap().unwrap().row.values[0], 3.0);
    // Released on shutdown: free at once.
    lease::release(b, &fb).await.unwrap();
    assert!(!lease::state(a).await.unwrap().is_held());
    let fa2 = lease::acquire(a, "a", ttl).await.unwrap().expect("a takes the released lease");
    assert!(fa2.token > fb.token);
    lease::release(a, &fa2).await.unwrap();
}

/// Commits racing from several pools get distinct, consecutive run ids (a
/// `MAX(run_id) + 1` read raced into duplicate keys on PostgreSQL).
async fn concurrent_commits_get_global_ids(urls: &[String]) {
    let mut tasks = Vec::new();
    for (k, u) in urls.iter().enumerate() {
        let db = lift_store::connect(u).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..10u64 {
                ids.push(scoring::commit_run(&db, &run(100 + i), &rows(20, (k * 10) as f64 + i as f64)).await?);
            }
            Ok::<_, Error>(ids)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap().expect("a concurrent commit failed"));
    }
    let distinct: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "duplicate run ids: {all:?}");
    let (lo, hi) = (*distinct.iter().min().unwrap(), *distinct.iter().max().unwrap());
    assert_eq!(hi - lo + 1, all.len() as u64, "run ids have gaps: {all:?}");
}

/// Pins the lease and fencing on SQLite (two pools on one file).
#[tokio::test]
async fn sqlite_lease_fences_commits() {
    let file = TempSqlite::new("writer-lease");
    let a = lift_store::connect(&file.url()).await.unwrap();
    let b = lift_store::connect(&file.url()).await.unwrap();
    lease_fences_commits(&a, &b).await;
    concurrent_commits_get_global_ids(&[file.url(), file.url()]).await;
}

/// Pins the lease, fencing and global run ids on PostgreSQL.
#[tokio::test]
async fn postgres_lease_fences_commits() {
    let (_pg, url) = lift_store::testing::postgres().await.unwrap();
    let a = lift_store::connect(&url).await.unwrap();
    let b = lift_store::connect(&url).await.unwrap();
    lease_fences_commits(&a, &b).await;
    concurrent_commits_get_global_ids(&[url.clone(), url.clone(), url.clone()]).await;
}
