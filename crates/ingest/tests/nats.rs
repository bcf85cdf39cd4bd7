//! The ingestion service on a JetStream ledger, over real gRPC, against a real
//! `nats-server -js` (one node, R1, file storage in a temporary directory).
//!
//! The server binary is `nats-server` on PATH or `$LIFT_NATS_SERVER` (see
//! `common`); without it these tests fail with a message saying so.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::StreamExt;
use lift_domain::time::{MICROS_PER_SEC, now};
use lift_ingest::{Ingest, IngestConfig, Ledger};
use lift_proto::convert::to_timestamp;
use lift_proto::ingest::v1 as pb;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_runtime::Shutdown;
use pb::event::Kind;
use tonic::transport::Channel;

use crate::common::Nats;

type Client = IngestServiceClient<Channel>;

/// An ingestion server on 127.0.0.1:0 with the ledger on `nats`; stops when dropped.
struct Server {
    client: Client,
    shutdown: Shutdown,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn server(nats: &Nats, cfg: IngestConfig) -> Server {
    let db = lift_store::connect("sqlite::memory:").await.expect("db");
    let ledger = Ledger::from_setting(&nats.url()).await.expect("ledger");
    let ingest = Ingest::with_ledger(db, ledger, cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    tokio::spawn(lift_runtime::serve(listener, ingest.grpc(), shutdown.clone()));
    let client = IngestServiceClient::connect(format!("http://{addr}")).await.expect("client");
    Server { client, shutdown }
}

fn acct(id: &str) -> Option<pb::AccountRef> {
    Some(pb::AccountRef { network: "x".into(), id: id.into() })
}

fn mention(id: &str, actor: &str, target: &str) -> pb::Event {
    pb::Event {
        event_id: id.into(),
        source: "test".into(),
        occurred_at: Some(to_timestamp(now() - 10 * MICROS_PER_SEC)),
        kind: Some(Kind::Engagement(pb::Engagement {
            kind: pb::EngagementKind::Mention as i32,
            actor: acct(actor),
            post_id: String::new(),
            target: acct(target),
        })),
    }
}

async fn batch(c: &mut Client, events: Vec<pb::Event>) -> pb::IngestBatchResponse {
    c.ingest_batch(pb::IngestBatchRequest { events }).await.expect("ingest").into_inner()
}

fn offsets(r: &pb::IngestBatchResponse) -> Vec<(i32, u64)> {
    r.results.iter().map(|r| (r.outcome, r.offset)).collect()
}

async fn read_all(c: &mut Client, after: u64, kinds: Vec<pb::EventKind>) -> Vec<pb::LedgerEvent> {
    let req = pb::SubscribeRequest {
        after_offset: after,
        kinds: kinds.into_iter().map(|k| k as i32).collect(),
        stop_at_head: true,
    };
    let mut stream = c.subscribe(req).await.expect("subscribe").into_inner();
    let (mut out, mut caught_up) = (Vec::new(), false);
    while let Some(msg) = stream.next().await {
        let msg = msg.expect("message");
        out.extend(msg.events);
        caught_up = msg.caught_up;
    }
    assert!(caught_up, "the last message must say caught_up");
    out
}

const ACCEPTED: i32 = pb::EventOutcome::Accepted as i32;
const DUPLICATE: i32 = pb::EventOutcome::Duplicate as i32;
const REJECTED: i32 = pb::EventOutcome::Rejected as i32;

/// Per-event outcomes as on SQL (accepted, in-batch duplicate, rejected with its
/// field path), and a batch replayed after both the ingestion process and the NATS
/// server were killed and restarted is answered as duplicates at the same offsets.
#[tokio::test]
async fn outcomes_and_duplicates_across_restarts() {
    let mut nats = Nats::start();
    let mut bad = mention("bad", "a", "b");
    bad.source = String::new();
    let first =
        vec![mention("1", "a", "b"), mention("2", "b", "c"), mention("1", "a", "b"), bad, mention("3", "c", "a")];
    let r = {
        let mut s = server(&nats, IngestConfig::default()).await;
        batch(&mut s.client, first.clone()).await
    };
    assert_eq!(offsets(&r), vec![(ACCEPTED, 1), (ACCEPTED, 2), (DUPLICATE, 1), (REJECTED, 0), (ACCEPTED, 3)]);
    assert_eq!(r.results[3].violations[0].field, "events[3].source");
    assert_eq!((r.accepted, r.duplicates, r.rejected), (3, 1, 1));

    nats.restart();
    let mut s = server(&nats, IngestConfig::default()).await;
    let again = batch(&mut s.client, first).await;
    assert_eq!(offsets(&again), vec![(DUPLICATE, 1), (DUPLICATE, 2), (DUPLICATE, 1), (REJECTED, 0), (DUPLICATE, 3)]);
    let more = batch(&mut s.client, vec![mention("4", "a", "c"), mention("2", "b", "c")]).await;
    assert_eq!(offsets(&more), vec![(ACCEPTED, 4), (DUPLICATE, 2)]);
    let info = s.client.get_ledger_info(pb::GetLedgerInfoRequest {}).await.expect("info").into_inner();
    assert_eq!((info.head_offset, info.events), (4, 4));
    let ids: Vec<(u64, String)> = read_all(&mut s.client, 0, vec![])
        .await
        .into_iter()
        .map(|e| (e.offset, e.event.map(|e| e.event_id).unwrap_or_default()))
        .collect();
    assert_eq!(ids, vec![(1, "1".into()), (2, "2".into()), (3, "3".into()), (4, "4".into())]);
}

/// The crash window between publishing and indexing: with the whole index lost
/// (bucket deleted), the next append re-indexes the stream before deciding, so a
/// replayed batch is still answered as duplicates with the offsets first given.
#[tokio::test]
async fn lost_index_is_rebuilt_from_the_stream() {
    let nats = Nats::start();
    let events: Vec<pb::Event> = (0..30).map(|i| mention(&format!("e{i}"), "a", "b")).collect();
    {
        let mut s = server(&nats, IngestConfig::default()).await;
        assert_eq!(batch(&mut s.client, events.clone()).await.accepted, 30);
    }
    let client = async_nats::connect(format!("nats://127.0.0.1:{}", nats.port)).await.expect("connect");
    async_nats::jetstream::new(client).delete_key_value("LIFT_LEDGER_IDS").await.expect("delete the index");
    let mut s = server(&nats, IngestConfig::default()).await;
    let again = batch(&mut s.client, events).await;
    assert_eq!(again.duplicates, 30);
    assert_eq!(offsets(&again), (1..=30).map(|o| (DUPLICATE, o)).collect::<Vec<_>>());
    assert_eq!(batch(&mut s.client, vec![mention("new", "a", "b")]).await.results[0].offset, 31);
}

/// Subscribe in pages resumes at any offset without gaps or repeats, filters by
/// kind, and a live subscriber on one ingestion process sees events appended
/// through another.
#[tokio::test]
async fn subscribe_resumes_without_gaps_or_repeats() {
    let nats = Nats::start();
    let cfg = IngestConfig { subscribe_page: 7, poll_interval: Duration::from_millis(50), ..IngestConfig::default() };
    let mut a = server(&nats, cfg.clone()).await;
    let mut b = server(&nats, cfg).await;
    let events: Vec<pb::Event> = (0..25).map(|i| mention(&format!("s{i}"), "a", "b")).collect();
    batch(&mut a.client, events).await;
    let all: Vec<u64> = read_all(&mut a.client, 0, vec![]).await.iter().map(|e| e.offset).collect();
    assert_eq!(all, (1..=25).collect::<Vec<_>>());
    let rest: Vec<u64> = read_all(&mut b.client, 13, vec![]).await.iter().map(|e| e.offset).collect();
    assert_eq!(rest, (14..=25).collect::<Vec<_>>());
    assert!(read_all(&mut b.client, 0, vec![pb::EventKind::Conversion]).await.is_empty());
    assert_eq!(read_all(&mut b.client, 0, vec![pb::EventKind::Engagement]).await.len(), 25);

    // Live: subscribed on `a` at 25, appended through `b`.
    let req = pb::SubscribeRequest { after_offset: 25, kinds: vec![], stop_at_head: false };
    let mut live = a.client.subscribe(req).await.expect("subscribe").into_inner();
    let more: Vec<pb::Event> = (0..40).map(|i| mention(&format!("l{i}"), "b", "c")).collect();
    for chunk in more.chunks(10) {
        batch(&mut b.client, chunk.to_vec()).await;
    }
    let mut seen = Vec::new();
    while seen.len() < 40 {
        let msg = tokio::time::timeout(Duration::from_secs(20), live.next())
            .await
            .expect("live events within 20 s")
            .expect("stream open")
            .expect("message");
        seen.extend(msg.events.iter().map(|e| e.offset));
    }
    assert_eq!(seen, (26..=65).collect::<Vec<_>>());
}

/// Four ingestion processes append overlapping batches at once: every distinct
/// event is stored exactly once, offsets are dense, and all processes agree on
/// each event's offset.
#[tokio::test]
async fn concurrent_appenders_store_each_event_once() {
    let nats = Nats::start();
    let mut tasks = Vec::new();
    for p in 0..4u32 {
        let mut s = server(&nats, IngestConfig::default()).await;
        tasks.push(tokio::spawn(async move {
            let mut seen: HashMap<String, u64> = HashMap::new();
            for b in 0..8u32 {
                // Half of each batch is this process's own, half is shared by all four.
                let mut events: Vec<pb::Event> = (0..20).map(|i| mention(&format!("p{p}-{b}-{i}"), "a", "b")).collect();
                events.extend((0..20).map(|i| mention(&format!("shared-{b}-{i}"), "b", "c")));
                let r = batch(&mut s.client, events.clone()).await;
                for (e, r) in events.iter().zip(&r.results) {
                    assert_ne!(r.outcome, REJECTED);
                    seen.insert(e.event_id.clone(), r.offset);
                }
            }
            drop(s);
            seen
        }));
    }
    let mut agreed: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        for (id, o) in t.await.expect("appender") {
            let prev = agreed.insert(id.clone(), o);
            assert!(prev.is_none() || prev == Some(o), "{id}: offsets {prev:?} and {o}");
        }
    }
    let distinct = 4 * 8 * 20 + 8 * 20;
    assert_eq!(agreed.len(), distinct);
    let mut s = server(&nats, IngestConfig::default()).await;
    let stored = read_all(&mut s.client, 0, vec![]).await;
    assert_eq!(stored.iter().map(|e| e.offset).collect::<Vec<_>>(), (1..=distinct as u64).collect::<Vec<_>>());
    let by_offset: BTreeMap<u64, String> = agreed.into_iter().map(|(id, o)| (o, id)).collect();
    for e in &stored {
        assert_eq!(by_offset.get(&e.offset), e.event.as_ref().map(|e| &e.event_id), "offset {}", e.offset);
    }
}
