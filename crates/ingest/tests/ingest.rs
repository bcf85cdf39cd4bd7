//! The ingestion service over real gRPC on loopback, on SQLite and PostgreSQL.

use lift_store::testing::TempSqlite;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use lift_domain::time::{MICROS_PER_SEC, now};
use lift_ingest::import::{self, ImportOptions};
use lift_ingest::{Ingest, IngestConfig};
use lift_proto::convert::to_timestamp;
use lift_proto::ingest::v1 as pb;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_runtime::Shutdown;
use pb::event::Kind;
use tonic::transport::Channel;
use tonic_types::StatusExt;

type Client = IngestServiceClient<Channel>;

/// A server on 127.0.0.1:0; stops when dropped.
struct Server {
    client: Client,
    shutdown: Shutdown,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn server(url: &str) -> Server {
    let db = lift_store::connect(url).await.expect("connect");
    let ingest = Ingest::new(db, IngestConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    tokio::spawn(lift_runtime::serve(listener, ingest.grpc(), shutdown.clone()));
    // The listener is bound before serve runs, so the connection is queued, not refused.
    let client = IngestServiceClient::connect(format!("http://{addr}")).await.expect("client");
    Server { client: client.max_decoding_message_size(64 << 20), shutdown }
}

fn acct(id: &str) -> Option<pb::AccountRef> {
    Some(pb::AccountRef { network: "x".into(), id: id.into() })
}

fn ev(id: &str, secs_ago: i64, kind: Kind) -> pb::Event {
    pb::Event {
        event_id: id.into(),
        source: "test".into(),
        occurred_at: Some(to_timestamp(now() - secs_ago * MICROS_PER_SEC)),
        kind: Some(kind),
    }
}

fn mention(id: &str, actor: &str, target: &str) -> pb::Event {
    ev(
        id,
        10,
        Kind::Engagement(pb::Engagement {
            kind: pb::EngagementKind::Mention as i32,
            actor: acct(actor),
            post_id: String::new(),
            target: acct(target),
        }),
    )
}

fn click(id: &str, secs_ago: i64, link: &str, visitor: &str) -> pb::Event {
    ev(
        id,
        secs_ago,
        Kind::LinkClick(pb::LinkClick {
            link: link.into(),
            visitor_id: visitor.into(),
            landing: String::new(),
            ..Default::default()
        }),
    )
}

fn conversion(id: &str, secs_ago: i64, visitor: &str, code: &str) -> pb::Event {
    ev(
        id,
        secs_ago,
        Kind::Conversion(pb::Conversion {
            visitor_id: visitor.into(),
            code: code.into(),
            order_id: format!("o-{id}"),
            value_minor: 1999,
            currency: "EUR".into(),
            customer: None,
        }),
    )
}

/// Reads the ledger after `after` up to the head through `Subscribe(stop_at_head)`.
async fn read_all(client: &mut Client, after: u64, kinds: Vec<pb::EventKind>) -> Vec<pb::LedgerEvent> {
    let req = pb::SubscribeRequest {
        after_offset: after,
        kinds: kinds.into_iter().map(|k| k as i32).collect(),
        stop_at_head: true,
    };
    let mut stream = client.subscribe(req).await.expect("subscribe").into_inner();
    let mut out = Vec::new();
    let mut caught_up = false;
    while let Some(msg) = stream.next().await {
        let msg = msg.expect("message");
        out.extend(msg.events);
        caught_up = msg.caught_up;
    }
    assert!(caught_up, "the last message must say caught_up");
    out
}

async fn postgres() -> (impl Sized, String) {
    lift_store::testing::postgres().await.expect("PostgreSQL test container")
}

// --- scenarios, each run on both backends ---------------------------------------------

/// A bad event is rejected by index with field paths; the good ones are stored; a
/// batch with nothing valid is INVALID_ARGUMENT with BadRequest details.
async fn mixed_batch(url: &str) {
    let mut s = server(url).await;
    let mut bad = mention("m2", "a", "a");
    bad.source = String::new();
    let batch = vec![mention("m1", "a", "b"), bad, mention("m3", "b", "c")];
    let r = s.client.ingest_batch(pb::IngestBatchRequest { events: batch }).await.expect("ok").into_inner();
    assert_eq!((r.accepted, r.duplicates, r.rejected), (2, 0, 1));
    let outcomes: Vec<i32> = r.results.iter().map(|r| r.outcome).collect();
    use pb::EventOutcome::*;
    assert_eq!(outcomes, vec![Accepted as i32, Rejected as i32, Accepted as i32]);
    assert_eq!((r.results[0].offset, r.results[2].offset), (1, 2));
    let fields: Vec<&str> = r.results[1].violations.iter().map(|v| v.field.as_str()).collect();
    assert!(fields.contains(&"events[1].source"), "{fields:?}");
    assert!(fields.contains(&"events[1].engagement.target"), "{fields:?}");

    let mut all_bad = mention("m4", "a", "b");
    all_bad.occurred_at = None;
    let err = s.client.ingest_batch(pb::IngestBatchRequest { events: vec![all_bad] }).await.expect_err("invalid");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let br = err.get_details_bad_request().expect("BadRequest details");
    assert_eq!(br.field_violations[0].field, "events[0].occurred_at");

    let info = s.client.get_ledger_info(pb::GetLedgerInfoRequest {}).await.expect("info").into_inner();
    assert_eq!((info.head_offset, info.events), (2, 2));
}

/// A replay is a duplicate with the original offset, across the unary and the
/// streaming path in both directions, and across a restart (a new server).
async fn replay_idempotent(url: &str) {
    let events: Vec<pb::Event> = (0..30).map(|i| mention(&format!("r{i}"), "a", &format!("t{i}"))).collect();
    let first = {
        let mut s = server(url).await;
        let r = s.client.ingest_batch(pb::IngestBatchRequest { events: events[..20].to_vec() }).await.expect("batch");
        r.into_inner()
    };
    assert_eq!(first.accepted, 20);
    let mut s = server(url).await;
    let batches = vec![
        pb::IngestStreamRequest { events: events[..10].to_vec() },
        pb::IngestStreamRequest { events: events[10..].to_vec() },
    ];
    let r = s.client.ingest_stream(futures::stream::iter(batches.clone())).await.expect("stream").into_inner();
    assert_eq!((r.accepted, r.duplicates, r.rejected, r.batches), (10, 20, 0, 2));
    let r = s.client.ingest_stream(futures::stream::iter(batches)).await.expect("stream").into_inner();
    assert_eq!((r.accepted, r.duplicates), (0, 30));
    let r = s.client.ingest_batch(pb::IngestBatchRequest { events: events.clone() }).await.expect("batch").into_inner();
    assert_eq!((r.accepted, r.duplicates), (0, 30));
    for (a, b) in first.results.iter().zip(&r.results) {
        assert_eq!(a.offset, b.offset);
    }
    assert_eq!(read_all(&mut s.client, first.results[0].offset - 1, vec![]).await.len(), 30);
}

/// Writers on several servers (separate processes sharing the database on
/// PostgreSQL) ingest concurrently while a tailing subscriber on the first server
/// must receive every offset once, in order, without a gap.
async fn concurrent_writers_and_subscriber(urls: &[String]) {
    const WRITERS: usize = 4;
    const BATCHES: usize = 15;
    const BATCH: usize = 50;
    let total = (WRITERS * BATCHES * BATCH) as u64;
    let mut servers = Vec::new();
    for u in urls {
        servers.push(server(u).await);
    }
    let mut sub = servers[0].client.clone();
    let mut stream = sub
        .subscribe(pb::SubscribeRequest { after_offset: 0, kinds: vec![], stop_at_head: false })
        .await
        .expect("subscribe")
        .into_inner();
    let reader = tokio::spawn(async move {
        let mut last = 0u64;
        while last < total {
            let msg = stream.next().await.expect("stream ended early").expect("message");
            for e in msg.events {
                assert_eq!(e.offset, last + 1, "subscriber skipped from {last} to {}", e.offset);
                last = e.offset;
            }
        }
        last
    });
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut client = servers[w % servers.len()].client.clone();
        writers.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                let events =
                    (0..BATCH).map(|i| mention(&format!("w{w}-{b}-{i}"), &format!("a{w}"), &format!("t{i}"))).collect();
                let r = client.ingest_batch(pb::IngestBatchRequest { events }).await.expect("batch").into_inner();
                assert_eq!(r.accepted as usize, BATCH);
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let last =
        tokio::time::timeout(Duration::from_secs(60), reader).await.expect("subscriber caught up").expect("reader");
    assert_eq!(last, total);
}

/// Subscribe resumes exactly after an offset, and filters by kind.
async fn resume_and_filter(url: &str) {
    let mut s = server(url).await;
    let events: Vec<pb::Event> =
        (0..25).map(|i| mention(&format!("e{i}"), "a", "b")).chain([click("c1", 5, "nowhere", "v")]).collect();
    s.client.ingest_batch(pb::IngestBatchRequest { events }).await.expect("batch");
    let tail = read_all(&mut s.client, 17, vec![]).await;
    assert_eq!(tail.iter().map(|e| e.offset).collect::<Vec<_>>(), (18..=26).collect::<Vec<_>>());
    let clicks = read_all(&mut s.client, 0, vec![pb::EventKind::LinkClick]).await;
    assert_eq!(clicks.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![26]);
    assert!(read_all(&mut s.client, 26, vec![]).await.is_empty());
    let err = s
        .client
        .subscribe(pb::SubscribeRequest { after_offset: 0, kinds: vec![0], stop_at_head: true })
        .await
        .expect_err("unspecified kind");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

/// Clicks and page sessions are credited to the link's owner; a conversion to the
/// visitor's last click within the window (also within one batch); a registered
/// code without a click is the coupon-leak signal; anything else is unattributed.
async fn attribution(url: &str) {
    let mut s = server(url).await;
    let link = |l: &str, owner: &str, window| pb::Link {
        link: l.into(),
        owner: acct(owner),
        campaign_id: "c1".into(),
        attribution_window_secs: window,
        landing_url: String::new(),
    };
    let r = s
        .client
        .register_links(pb::RegisterLinksRequest {
            links: vec![link("lift.to/anna", "anna", 3600), link("ANNA10", "anna", 0)],
        })
        .await
        .expect("register")
        .into_inner();
    assert_eq!((r.registered, r.unchanged), (2, 0));
    let again = s
        .client
        .register_links(pb::RegisterLinksRequest { links: vec![link("ANNA10", "anna", 0)] })
        .await
        .expect("again");
    assert_eq!(again.into_inner().unchanged, 1);
    let taken = s.client.register_links(pb::RegisterLinksRequest { links: vec![link("ANNA10", "bob", 0)] }).await;
    assert_eq!(taken.expect_err("conflict").code(), tonic::Code::AlreadyExists);

    // Batch 1: clicks (one too old for its one-hour window by the time of its conversion).
    let b1 = vec![
        click("k1", 600, "lift.to/anna", "v1"),
        click("k2", 7300, "lift.to/anna", "v3"),
        click("k3", 500, "unknown", "v4"),
    ];
    let r1 = s.client.ingest_batch(pb::IngestBatchRequest { events: b1 }).await.expect("clicks").into_inner();
    let k1 = r1.results[0].offset;
    // Batch 2: conversions, a session, and a click + conversion pair in the same batch.
    let b2 = vec![
        conversion("c1", 60, "v1", ""),
        conversion("c2", 60, "v2", "ANNA10"),
        conversion("c3", 60, "v3", ""),
        conversion("c4", 60, "v4", "NOPE"),
        ev(
            "s1",
            300,
            Kind::PageSession(pb::PageSession {
                visitor_id: "v1".into(),
                link: "lift.to/anna".into(),
                dwell_ms: 9000,
                bounced: false,
            }),
        ),
        click("k4", 50, "lift.to/anna", "v5"),
        conversion("c5", 40, "v5", "ANNA10"),
    ];
    let r2 = s.client.ingest_batch(pb::IngestBatchRequest { events: b2 }).await.expect("outcomes").into_inner();
    let k4 = r2.results[5].offset;
    let all = read_all(&mut s.client, 0, vec![]).await;
    let attr = |id: &str| {
        let e = all.iter().find(|e| e.event.as_ref().map(|e| e.event_id.as_str()) == Some(id)).expect("event stored");
        e.attribution.clone().unwrap_or_default()
    };
    use pb::AttributionStatus::*;
    let anna = acct("anna");
    assert_eq!((attr("k1").status, attr("k1").owner), (Click as i32, anna.clone()));
    assert_eq!(attr("k1").campaign_id, "c1");
    assert_eq!(attr("k3").status, Unattributed as i32);
    let c1 = attr("c1");
    assert_eq!((c1.status, c1.click_offset, c1.owner), (Click as i32, k1, anna.clone()));
    let c2 = attr("c2");
    assert_eq!((c2.status, c2.link.as_str(), c2.owner), (CodeWithoutClick as i32, "ANNA10", anna.clone()));
    assert_eq!(attr("c3").status, Unattributed as i32, "the click is outside its one-hour window");
    assert_eq!(attr("c4").status, Unattributed as i32);
    assert_eq!((attr("s1").status, attr("s1").owner), (Click as i32, anna.clone()));
    let c5 = attr("c5");
    assert_eq!((c5.status, c5.click_offset), (Click as i32, k4), "a click earlier in the same batch counts");
    // Only matching's kinds, as a matching subscriber would read them.
    let conversions = read_all(&mut s.client, 0, vec![pb::EventKind::Conversion]).await;
    assert_eq!(conversions.len(), 5);
    assert!(conversions.iter().all(|e| e.attribution.is_some()));
    let info = s.client.get_ledger_info(pb::GetLedgerInfoRequest {}).await.expect("info").into_inner();
    assert_eq!(info.links, 2);
}

fn collegemsg() -> PathBuf {
    let path = import::collegemsg_path(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-collegemsg.sh (scripts/test.sh does it before cargo test)",
        path.display()
    );
    path
}

/// CollegeMsg as shipped: 59,835 messages among 1,899 accounts; importing it again adds nothing.
async fn import_collegemsg(url: &str) {
    let path = collegemsg();
    let mut s = server(url).await;
    let opts = ImportOptions { progress: false, ..ImportOptions::default() };
    let r = import::import_file(&mut s.client, &path, &opts).await.expect("import");
    assert_eq!((r.rows, r.accounts), (59_835, 1_899));
    assert_eq!((r.accepted, r.duplicates, r.rejected), (59_835 + 1_899, 0, 0), "{:?}", r.rejections);
    let again = import::import_file(&mut s.client, &path, &opts).await.expect("re-import");
    assert_eq!((again.accepted, again.duplicates), (0, 59_835 + 1_899));
    let info = s.client.get_ledger_info(pb::GetLedgerInfoRequest {}).await.expect("info").into_inner();
    assert_eq!(info.events, 59_835 + 1_899);
}

// --- SQLite ------------------------------------------------------------------------------

#[tokio::test]
async fn sqlite_mixed_batch() {
    mixed_batch("sqlite::memory:").await;
}

#[tokio::test]
async fn sqlite_replay_idempotent() {
    let f = TempSqlite::new("ingest-replay");
    replay_idempotent(&f.url()).await;
}

#[tokio::test]
async fn sqlite_concurrent_writers_and_subscriber() {
    let f = TempSqlite::new("ingest-concurrent");
    concurrent_writers_and_subscriber(&[f.url(), f.url()]).await;
}

#[tokio::test]
async fn sqlite_resume_and_filter() {
    resume_and_filter("sqlite::memory:").await;
}

#[tokio::test]
async fn sqlite_attribution() {
    attribution("sqlite::memory:").await;
}

#[tokio::test]
async fn sqlite_import_collegemsg() {
    let f = TempSqlite::new("ingest-collegemsg");
    import_collegemsg(&f.url()).await;
}

// --- PostgreSQL (testcontainers; fails, never skips, without a Docker engine) -----------

#[tokio::test]
async fn postgres_ingest_scenarios() {
    let (_pg, url) = postgres().await;
    mixed_batch(&url).await;
    replay_idempotent(&url).await;
}

#[tokio::test]
async fn postgres_concurrent_writers_and_subscriber() {
    let (_pg, url) = postgres().await;
    concurrent_writers_and_subscriber(&[url.clone(), url.clone(), url]).await;
}

#[tokio::test]
async fn postgres_resume_and_filter() {
    let (_pg, url) = postgres().await;
    resume_and_filter(&url).await;
}

#[tokio::test]
async fn postgres_attribution() {
    let (_pg, url) = postgres().await;
    attribution(&url).await;
}

#[tokio::test]
async fn postgres_import_collegemsg() {
    let (_pg, url) = postgres().await;
    import_collegemsg(&url).await;
}

/// Pins that the benchmark loads every event through both paths (its numbers are
/// for `lift bench ingest`, not for tests).
#[tokio::test]
async fn bench_runs_on_both_backends() {
    use lift_ingest::bench::{BenchOptions, bench};
    let opts = BenchOptions { events: 3_000, batch_size: 1_000, streams: 2, seed: 1 };
    let db = lift_store::connect("sqlite::memory:").await.expect("sqlite");
    let r = bench(db, &opts).await.expect("sqlite bench");
    assert_eq!(r.events, 3_000);
    let (_pg, url) = postgres().await;
    let db = lift_store::connect(&url).await.expect("postgres");
    let r = bench(db.clone(), &opts).await.expect("postgres bench");
    assert_eq!(r.events, 3_000);
    assert_eq!(lift_store::ledger::head(&db).await.expect("head"), 3_000);
}
