//! Scoring replicas sharing one PostgreSQL (testcontainers) under the writer
//! lease. Without a container engine this test fails and says why; never skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use lift_cli::stack::{self, ServiceOptions};
use lift_proto::ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient};
use lift_proto::scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient};
use lift_runtime::Shutdown;
use lift_runtime::client::{self, ClientOptions};
use lift_store::ConnectionTrait;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

struct Replica {
    scoring: lift_scoring::Scoring,
    url: String,
    tasks: JoinSet<()>,
}

async fn start(db_url: &str, ingest_url: &str, holder: Option<&str>) -> anyhow::Result<Replica> {
    let cfg = lift_scoring::ScoringConfig {
        debounce: Duration::from_millis(20),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        writer_lease: holder
            .map(|h| lift_scoring::WriterLease { holder: h.to_owned(), ttl: Duration::from_millis(900) }),
        ..Default::default()
    };
    let scoring = lift_scoring::Scoring::new(lift_store::connect(db_url).await?, cfg).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = stack::http_url(listener.local_addr()?);
    let ingest = IngestServiceClient::new(client::connect_lazy(ingest_url, &ClientOptions::default())?);
    let mut tasks = JoinSet::new();
    let stop = Shutdown::new();
    let (s1, s2, st) = (scoring.clone(), scoring.clone(), stop.clone());
    tasks.spawn(async move {
        if let Err(e) = s1.run_consumer(ingest, stop).await {
            eprintln!("consumer ended: {e}");
        }
    });
    tasks.spawn(async move {
        let _ = lift_runtime::serve(listener, s2.grpc(), st).await;
    });
    Ok(Replica { scoring, url, tasks })
}

async fn scored(s: &lift_scoring::Scoring, offset: u64, what: &str) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(90), s.wait_for_offset(offset))
        .await
        .with_context(|| format!("{what} did not reach offset {offset} (at {})", s.as_of_offset()))
}

async fn all_scores(url: &str, ids: &[ipb::AccountRef]) -> anyhow::Result<Vec<spb::AccountScores>> {
    let mut c = ScoringServiceClient::new(stack::channel(url)?);
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        out.extend(c.get_scores(spb::GetScoresRequest { accounts: chunk.to_vec() }).await?.into_inner().accounts);
    }
    Ok(out)
}

/// Pins replicas on one database: only the lease holder commits; the follower
/// serves the writer's runs; when the writer is killed mid-stream (tasks
/// aborted, lease not released) the follower takes over — run ids stay
/// consecutive (none lost, none doubled), offsets never go back, every read on
/// the follower succeeds throughout, and the final scores equal those of a lone
/// instance that consumed the same ledger on its own database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_postgres_and_the_follower_takes_over() -> anyhow::Result<()> {
    let (_pg, url) = lift_store::testing::postgres().await?;
    let admin = lift_store::connect(&url).await?;
    admin.execute_unprepared("CREATE DATABASE alone").await.context("create database")?;
    let alone_url = format!("{}/alone", url.rsplit_once('/').map_or(url.as_str(), |(a, _)| a));

    let shutdown = Shutdown::new();
    let mut services = JoinSet::new();
    let li = TcpListener::bind("127.0.0.1:0").await?;
    let ingest_url = stack::http_url(li.local_addr()?);
    stack::spawn_ingest(&mut services, li, &url, &ServiceOptions::default(), &shutdown).await?;

    let mut a = start(&url, &ingest_url, Some("replica-a")).await?;
    for _ in 0..100 {
        if lift_store::lease::state(&admin).await?.is_held() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(lift_store::lease::state(&admin).await?.holder.as_deref() == Some("replica-a"), "a took the lease");
    let b = start(&url, &ingest_url, Some("replica-b")).await?;
    let alone = start(&alone_url, &ingest_url, None).await?;

    let g =
        lift_cli::dataset::generate(&lift_cli::dataset::NetworkSpec { accounts: 400, seed: 7, ..Default::default() });
    let ids: Vec<ipb::AccountRef> = g
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(ipb::event::Kind::Account(acc)) => acc.account.clone(),
            _ => None,
        })
        .collect();
    let n = g.events.len() as u64;
    let half = g.events.len() / 2;
    let mut ingest = IngestServiceClient::new(stack::channel(&ingest_url)?);
    lift_cli::demo::stream_events(&mut ingest, g.events[..half].to_vec(), 500).await?;
    scored(&a.scoring, half as u64, "the writer").await?;
    scored(&b.scoring, half as u64, "the follower").await?;
    let runs_before = lift_store::scoring::latest_run(&admin).await?.context("a run")?.run_id;

    // Readers on the follower, from now until the end.
    let stop_reading = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, reads, url, probe) = (stop_reading.clone(), reads.clone(), b.url.clone(), ids[..20].to_vec());
        tokio::spawn(async move {
            let mut c = ScoringServiceClient::new(stack::channel(&url)?);
            while !stop.load(Ordering::SeqCst) {
                let r = c.get_scores(spb::GetScoresRequest { accounts: probe.clone() }).await;
                let r = r.context("a read on the follower failed")?.into_inner();
                ensure!(
                    r.accounts.len() == probe.len(),
                    "the follower answered {} of {}",
                    r.accounts.len(),
                    probe.len()
                );
                reads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(())
        })
    };

    // The rest arrives while the writer works; it is killed partway through.
    let writer = {
        let (mut c, rest) = (ingest.clone(), g.events[half..].to_vec());
        tokio::spawn(async move { lift_cli::demo::stream_events(&mut c, rest, 40).await })
    };
    let watched = a.scoring.clone();
    tokio::time::timeout(Duration::from_secs(60), async {
        while watched.as_of_offset() <= half as u64 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .context("the writer committed past the first half")?;
    a.tasks.abort_all();
    while a.tasks.join_next().await.is_some() {}
    let killed_at = a.scoring.as_of_offset();
    writer.await??;

    scored(&b.scoring, n, "the follower, after taking over").await?;
    scored(&alone.scoring, n, "the lone instance").await?;
    stop_reading.store(true, Ordering::SeqCst);
    reader.await??;
    ensure!(reads.load(Ordering::SeqCst) > 10, "the follower was read throughout");

    let lease = lift_store::lease::state(&admin).await?;
    ensure!(lease.holder.as_deref() == Some("replica-b"), "b holds the lease: {lease:?}");
    let rows = admin
        .query_all_raw(lift_store::Statement::from_string(
            admin.get_database_backend(),
            "SELECT run_id, as_of_offset FROM scoring_runs ORDER BY run_id",
        ))
        .await?;
    let runs: Vec<(i64, i64)> =
        rows.iter().map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?))).collect::<anyhow::Result<_>>()?;
    ensure!(runs.len() as u64 > runs_before, "runs were committed after the takeover");
    for (i, w) in runs.windows(2).enumerate() {
        ensure!(w[1].0 == w[0].0 + 1, "run ids are consecutive: {w:?} at {i}");
        ensure!(w[1].1 >= w[0].1, "run offsets never go back: {w:?} at {i}");
    }
    ensure!(runs.first().map(|r| r.0) == Some(1), "runs start at 1: {:?}", runs.first());

    let x = all_scores(&alone.url, &ids).await?;
    let y = all_scores(&b.url, &ids).await?;
    ensure!(x.len() == ids.len() && y.len() == ids.len(), "scored {} and {} of {}", x.len(), y.len(), ids.len());
    for (p, q) in x.iter().zip(&y) {
        ensure!(p.as_of_offset == n && q.as_of_offset == n, "as-of {} / {} != {n}", p.as_of_offset, q.as_of_offset);
        ensure!(p.scores == q.scores, "scores differ for {:?} (writer killed at offset {killed_at})", p.account);
    }
    eprintln!(
        "writer killed at offset {killed_at} of {n}; {} runs, consecutive; {} reads on the follower, none failed",
        runs.len(),
        reads.load(Ordering::SeqCst)
    );
    shutdown.trigger();
    while services.join_next().await.is_some() {}
    Ok(())
}
