//! `lift bench soak`: a bounded soak on loopback. Writers stream synthetic events
//! over `IngestStream` while raw subscribers tail the ledger, scoring consumes it,
//! and a query loop reads ledger info and scores — all at once, all over real gRPC
//! with authentication on. At the end it checks that counts agree:
//! acknowledged = stored (ledger head and event count) = consumed by each subscriber.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use lift_proto::{
    Timestamp,
    ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient},
    scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient},
};
use tokio::task::JoinSet;

use crate::stack::{Databases, Stack, StackOptions};

/// What a soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Stop writing after this long (or after `events`, whichever comes first).
    pub duration: Duration,
    /// Most events written.
    pub events: u64,
    pub writers: usize,
    pub subscribers: usize,
    pub batch: usize,
    /// Distinct accounts the synthetic events are among.
    pub accounts: u64,
    /// Databases; default: SQLite files in a temp directory.
    pub databases: Option<Databases>,
    /// How long subscribers may take to reach the head after writing stops.
    pub drain: Duration,
}

impl Default for SoakOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(60),
            events: 1_000_000,
            writers: 2,
            subscribers: 2,
            batch: 1_000,
            accounts: 20_000,
            databases: None,
            drain: Duration::from_secs(300),
        }
    }
}

/// What a soak measured.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    pub written: u64,
    pub acknowledged: u64,
    pub stored: u64,
    pub head: u64,
    pub consumed: Vec<u64>,
    pub queries: u64,
    pub query_errors: u64,
    pub write_secs: f64,
    pub drain_secs: f64,
    pub scoring_offset: u64,
}

impl SoakReport {
    pub fn events_per_sec(&self) -> f64 {
        self.acknowledged as f64 / self.write_secs.max(1e-9)
    }
}

const T0: i64 = 1_767_225_600;

/// The `i`-th synthetic event among `accounts` accounts: four likes to one follow.
pub(crate) fn event(i: u64, accounts: u64) -> ipb::Event {
    let a = |n: u64| Some(ipb::AccountRef { network: "soak".into(), id: format!("a{}", n % accounts) });
    let actor = i.wrapping_mul(2_654_435_761) % accounts;
    let mut target = (i / 7) % accounts;
    if target == actor {
        // Nobody follows or engages themselves (validation refuses it).
        target = (target + 1) % accounts;
    }
    let kind = if i.is_multiple_of(5) {
        ipb::event::Kind::Follow(ipb::Follow { follower: a(actor), followee: a(target), unfollow: false })
    } else {
        ipb::event::Kind::Engagement(ipb::Engagement {
            kind: ipb::EngagementKind::Like as i32,
            actor: a(actor),
            post_id: format!("p{}", target % 1000),
            target: a(target),
        })
    };
    ipb::Event {
        event_id: format!("soak-{i}"),
        source: "soak".into(),
        occurred_at: Some(Timestamp { seconds: T0 + (i / 100) as i64, nanos: 0 }),
        kind: Some(kind),
    }
}

/// Runs the soak and checks the counts; an error says which count disagreed.
pub async fn run(opts: SoakOptions) -> anyhow::Result<SoakReport> {
    let dir = std::env::temp_dir().join(format!("lift-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let dbs = opts.databases.clone().unwrap_or_else(|| Databases::sqlite_files(&dir));
    // A soak measures the service, not the rate limiter.
    let stack_opts = StackOptions { rate_limit: None, ..StackOptions::default() };
    let cfg = lift_scoring::ScoringConfig { debounce: Duration::from_secs(2), ..Default::default() };
    let stack = Stack::start_loopback_with(&dbs, cfg, stack_opts).await?;
    let result = soak(&stack, &opts).await;
    stack.stop().await?;
    if opts.databases.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn soak(stack: &Stack, opts: &SoakOptions) -> anyhow::Result<SoakReport> {
    let ingest = IngestServiceClient::new(stack.channel(&stack.ingest_url())?);
    let scoring = ScoringServiceClient::new(stack.channel(&stack.scoring_url())?);
    let stop_queries = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let (queries, query_errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let head_goal = Arc::new(AtomicU64::new(u64::MAX));

    // Subscribers: each counts what it receives until it has the final head.
    let mut subs = JoinSet::new();
    for _ in 0..opts.subscribers {
        let mut c = ingest.clone();
        let goal = head_goal.clone();
        subs.spawn(async move {
            let mut stream = c
                .subscribe(ipb::SubscribeRequest { after_offset: 0, kinds: vec![], stop_at_head: false })
                .await?
                .into_inner();
            let (mut n, mut last) = (0u64, 0u64);
            while last < goal.load(Ordering::SeqCst) {
                // Tailing at the head sends nothing: look at the goal again now and then.
                let Ok(msg) = tokio::time::timeout(Duration::from_millis(100), stream.message()).await else {
                    continue;
                };
                let Some(msg) = msg? else { bail!("the ledger stream ended at offset {last}") };
                for e in &msg.events {
                    ensure!(e.offset == last + 1, "offset {} after {last}: a gap or a repeat", e.offset);
                    last = e.offset;
                    n += 1;
                }
            }
            Ok(n)
        });
    }

    // Queries: ledger info and score reads, concurrently with everything else.
    let query_task = {
        let (mut i, mut s) = (ingest.clone(), scoring.clone());
        let (stop, q, qe) = (stop_queries.clone(), queries.clone(), query_errors.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let a = i.get_ledger_info(ipb::GetLedgerInfoRequest {}).await;
                let b = s
                    .query_accounts(spb::QueryAccountsRequest {
                        order_by: spb::Dimension::Network as i32,
                        page_size: 10,
                        ..Default::default()
                    })
                    .await;
                q.fetch_add(2, Ordering::SeqCst);
                // Before the first scoring run, QueryAccounts may say so (FAILED_PRECONDITION / UNAVAILABLE).
                let b_ok = ok_or_not_yet(b.as_ref());
                if a.is_err() || !b_ok {
                    qe.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Writers.
    let started = Instant::now();
    let deadline = started + opts.duration;
    let mut writers = JoinSet::new();
    for _ in 0..opts.writers {
        let mut c = ingest.clone();
        let (next, total, batch, accounts) =
            (next.clone(), opts.events, opts.batch.max(1) as u64, opts.accounts.max(2));
        writers.spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel::<ipb::IngestStreamRequest>(4);
            let call = tokio::spawn(async move {
                c.ingest_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await.map(|r| r.into_inner())
            });
            let mut written = 0u64;
            while Instant::now() < deadline {
                let from = next.fetch_add(batch, Ordering::SeqCst);
                if from >= total {
                    break;
                }
                let to = (from + batch).min(total);
                let events = (from..to).map(|i| event(i, accounts)).collect();
                if tx.send(ipb::IngestStreamRequest { events }).await.is_err() {
                    break;
                }
                written += to - from;
            }
            drop(tx);
            let resp = call.await??;
            anyhow::Ok((written, resp))
        });
    }
    let (mut written, mut acknowledged) = (0, 0);
    while let Some(r) = writers.join_next().await {
        let (w, resp) = r??;
        ensure!(resp.rejected == 0, "{} events rejected, first: {:?}", resp.rejected, resp.rejections.first());
        written += w;
        acknowledged += resp.accepted + resp.duplicates;
    }
    let write_secs = started.elapsed().as_secs_f64();
    let info = ingest.clone().get_ledger_info(ipb::GetLedgerInfoRequest {}).await?.into_inner();
    head_goal.store(info.head_offset, Ordering::SeqCst);

    let drain_started = Instant::now();
    let mut consumed = Vec::new();
    let drained = tokio::time::timeout(opts.drain, async {
        while let Some(r) = subs.join_next().await {
            consumed.push(r??);
        }
        anyhow::Ok(())
    })
    .await;
    stop_queries.store(true, Ordering::SeqCst);
    query_task.await?;
    drained.context("subscribers did not reach the head in time")??;
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let scoring_offset =
        scoring.clone().get_model(spb::GetModelRequest {}).await.map(|m| m.into_inner().as_of_offset).unwrap_or(0);

    let report = SoakReport {
        written,
        acknowledged,
        stored: info.events,
        head: info.head_offset,
        consumed,
        queries: queries.load(Ordering::SeqCst),
        query_errors: query_errors.load(Ordering::SeqCst),
        write_secs,
        drain_secs,
        scoring_offset,
    };
    ensure!(report.acknowledged == report.written, "written {written} but acknowledged {acknowledged}");
    ensure!(report.stored == report.acknowledged, "acknowledged {} but stored {}", acknowledged, report.stored);
    ensure!(report.head == report.stored, "head {} but {} events stored", report.head, report.stored);
    for (i, c) in report.consumed.iter().enumerate() {
        ensure!(*c == report.stored, "subscriber {i} consumed {c} of {} stored", report.stored);
    }
    ensure!(report.query_errors == 0, "{} queries failed", report.query_errors);
    Ok(report)
}

/// A query before scoring's first run may be refused as "not yet"; that is not an error.
fn ok_or_not_yet<T>(r: Result<&T, &tonic::Status>) -> bool {
    match r {
        Ok(_) => true,
        Err(s) => matches!(s.code(), tonic::Code::FailedPrecondition | tonic::Code::Unavailable),
    }
}
