//! Export, erasure and retention on the JetStream ledger, over real gRPC,
//! against a real `nats-server -js` (one node, R1, file storage in a temporary
//! directory; see `common`), with ingestion's own database (links, click index,
//! audit log) in a SQLite file.
//!
//! After an erasure every stream on the server is read raw, message by message
//! (the ledger and its dedupe index), and every file of the server's store
//! directory byte by byte: none may still hold the erased account's id, handle
//! or visitor id. (SQL ledgers: `privacy.rs` and `retention.rs`.)

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream::stream::RawMessageErrorKind;
use futures::{StreamExt, TryStreamExt};
use lift_domain::event::{Follow, LinkClick};
use lift_domain::time::{MICROS_PER_SEC, now};
use lift_domain::{AccountId, Event, EventBody};
use lift_ingest::{Ingest, IngestConfig, Ledger};
use lift_proto::ingest::v1 as pb;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::privacy::v1 as ppb;
use lift_proto::privacy::v1::privacy_service_client::PrivacyServiceClient;
use lift_runtime::client::{ClientOptions, connect_lazy};
use lift_runtime::{ServeOptions, Shutdown};
use pb::event::Kind;

use crate::common::Nats;
use crate::common::world::{acct, anna, export, holds_needle, mention_anna, scan_files, scan_tables, world};

type Channel = lift_runtime::client::Channel;

/// Ingestion and its privacy service on 127.0.0.1:0, ledger on `nats`, database
/// at `db_url`; stops when dropped.
struct Server {
    ingest: IngestServiceClient<Channel>,
    privacy: PrivacyServiceClient<Channel>,
    db: lift_store::DatabaseConnection,
    shutdown: Shutdown,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn server(nats: &Nats, db_url: &str) -> Server {
    let db = lift_store::connect(db_url).await.expect("db");
    let ledger = Ledger::from_setting(&nats.url()).await.expect("ledger");
    let ingest = Ingest::with_ledger(db.clone(), ledger, IngestConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let serve =
        lift_runtime::serve_pair(listener, ingest.grpc(), ingest.privacy(), shutdown.clone(), ServeOptions::default());
    tokio::spawn(serve);
    let channel = connect_lazy(&format!("http://{addr}"), &ClientOptions::default()).expect("channel");
    Server {
        ingest: IngestServiceClient::new(channel.clone()),
        privacy: PrivacyServiceClient::new(channel),
        db,
        shutdown,
    }
}

/// The whole ledger through `Subscribe` from offset 0 to the head.
async fn subscribe_all(c: &mut IngestServiceClient<Channel>) -> Vec<pb::LedgerEvent> {
    let req = pb::SubscribeRequest { after_offset: 0, kinds: vec![], stop_at_head: true };
    let mut s = c.subscribe(req).await.expect("subscribe").into_inner();
    let mut out = Vec::new();
    while let Some(m) = s.next().await {
        out.extend(m.expect("message").events);
    }
    out
}

/// Every stream on the server, read raw message by message (subject, headers,
/// payload): the messages holding a needle, and the erased sequences (gaps
/// below the stream's last sequence), as `(stream, sequence)`.
async fn scan_streams(nats: &Nats) -> (Vec<String>, Vec<(String, u64)>) {
    let client = async_nats::connect(format!("nats://127.0.0.1:{}", nats.port)).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let names: Vec<String> = js.stream_names().try_collect().await.expect("stream names");
    for expected in ["LIFT_LEDGER", "KV_LIFT_LEDGER_IDS"] {
        assert!(names.iter().any(|n| n == expected), "no stream {expected} among {names:?}");
    }
    let (mut hits, mut gaps) = (Vec::new(), Vec::new());
    for name in names {
        let stream = js.get_stream(&name).await.expect("stream");
        let state = stream.get_info().await.expect("info").state;
        for seq in 1..=state.last_sequence {
            match stream.get_raw_message(seq).await {
                Ok(m) => {
                    let mut raw = m.subject.as_bytes().to_vec();
                    for (k, vs) in m.headers.iter() {
                        raw.extend_from_slice(k.to_string().as_bytes());
                        for v in vs {
                            raw.extend_from_slice(v.as_str().as_bytes());
                        }
                    }
                    raw.extend_from_slice(&m.payload);
                    if let Some(n) = holds_needle(&raw) {
                        hits.push(format!("{name} #{seq} holds {n:?}"));
                    }
                }
                Err(e) if matches!(e.kind(), RawMessageErrorKind::NoMessageFound) => gaps.push((name.clone(), seq)),
                Err(e) => panic!("{name} #{seq}: {e}"),
            }
        }
    }
    (hits, gaps)
}

fn event_ids(events: &[pb::LedgerEvent]) -> BTreeSet<String> {
    events.iter().filter_map(|e| e.event.as_ref()).map(|e| e.event_id.clone()).collect()
}

/// Export equals the ledger's events that involve the account; erasure leaves
/// no trace of it in any stream, any file of the server's store or any table;
/// Subscribe shows the erased offsets as gaps and the marker after them; a
/// replay is answered as duplicates at the original offsets; and neither a
/// restart of ingestion nor of the NATS server brings anything back.
#[tokio::test]
async fn nats_export_and_erasure_leave_no_trace() {
    let mut nats = Nats::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}?mode=rwc", dir.path().join("ingest.db").display());
    let mut s = server(&nats, &db_url).await;
    let link = |l: &str, owner: &str| pb::Link { link: l.into(), owner: acct(owner), ..Default::default() };
    let links = vec![link("lift.to/anna-1", "anna"), link("lift.to/bob-1", "bob")];
    s.ingest.register_links(pb::RegisterLinksRequest { links }).await.expect("links");
    let (events, expected) = world();
    let r =
        s.ingest.ingest_batch(pb::IngestBatchRequest { events: events.clone() }).await.expect("ingest").into_inner();
    assert_eq!(r.accepted as usize, events.len());
    let n = events.len() as u64;

    // Export: exactly the ledger's events that involve the account, at their offsets.
    let ledger = subscribe_all(&mut s.ingest).await;
    assert_eq!(ledger.len() as u64, n);
    let (exported, exported_links, summary) = export(&mut s.privacy).await;
    let ids = event_ids(&exported);
    assert_eq!(ids.iter().map(String::as_str).collect::<BTreeSet<_>>(), expected);
    assert_eq!(exported.len(), expected.len(), "each event once");
    let involved: Vec<&pb::LedgerEvent> =
        ledger.iter().filter(|e| e.event.as_ref().is_some_and(|e| ids.contains(&e.event_id))).collect();
    assert_eq!(exported.iter().collect::<Vec<_>>(), involved, "the ledger's own events, offsets and attribution");
    assert_eq!(exported_links.iter().map(|l| l.link.as_str()).collect::<Vec<_>>(), ["lift.to/anna-1"]);
    assert_eq!((summary.events, summary.links, summary.through_offset), (expected.len() as u64, 1, n));

    // Before the erasure the scans see her everywhere she is.
    let (hits, gaps) = scan_streams(&nats).await;
    assert!(hits.iter().any(|h| h.starts_with("LIFT_LEDGER #")), "the stream scan must see her: {hits:?}");
    assert!(gaps.is_empty(), "{gaps:?}");
    assert!(!scan_files(nats.store_dir(), &[]).is_empty(), "the file scan must see her");
    assert!(scan_tables(&s.db).await.iter().any(|h| h.starts_with("links.link")));

    let e = s.privacy.erase(ppb::EraseRequest { subject: Some(anna()) }).await.expect("erase").into_inner();
    assert_eq!((e.events_erased, e.links_deleted, e.clicks_deleted), (expected.len() as u64, 1, 2));
    assert_eq!((e.marker_offset, e.subject_hash.as_str()), (n + 1, summary.subject_hash.as_str()));
    let erased: Vec<u64> = exported.iter().map(|e| e.offset).collect();

    let check = |when: &'static str| {
        let (erased, hash, events) = (erased.clone(), e.subject_hash.clone(), events.len());
        move |hits: Vec<String>, gaps: Vec<(String, u64)>, seen: Vec<pb::LedgerEvent>| {
            assert!(hits.is_empty(), "{when}: personal data left: {hits:?}");
            let ledger_gaps: Vec<u64> = gaps.iter().filter(|(s, _)| s == "LIFT_LEDGER").map(|(_, q)| *q).collect();
            assert_eq!(ledger_gaps, erased, "{when}: the erased offsets are the stream's only gaps");
            // Subscribe: every other offset once, in order, then the marker.
            let offsets: Vec<u64> = seen.iter().map(|e| e.offset).collect();
            let live: Vec<u64> = (1..=events as u64 + 1).filter(|o| !erased.contains(o)).collect();
            assert_eq!(offsets, live, "{when}: subscribe skips exactly the erased offsets");
            let last = seen.last().and_then(|e| e.event.as_ref()).and_then(|e| e.kind.clone());
            assert!(
                matches!(last, Some(Kind::Erasure(ref m)) if m.subject_hash == hash && m.events_erased == erased.len() as u64),
                "{when}: the marker is last: {last:?}"
            );
        }
    };
    let (hits, gaps) = scan_streams(&nats).await;
    check("after the erasure")(hits, gaps, subscribe_all(&mut s.ingest).await);
    assert!(scan_tables(&s.db).await.is_empty(), "tables after the erasure");

    // A producer replaying the world is answered with duplicates at the first offsets.
    let replay = s.ingest.ingest_batch(pb::IngestBatchRequest { events: events.clone() }).await.expect("replay");
    let replay = replay.into_inner();
    assert_eq!((replay.accepted, replay.duplicates), (0, events.len() as u32));
    assert_eq!(replay.results.iter().map(|r| r.offset).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());

    // Both processes restarted (the NATS server by SIGKILL): still gone, still duplicates.
    drop(s);
    nats.restart();
    let mut s = server(&nats, &db_url).await;
    let (hits, gaps) = scan_streams(&nats).await;
    check("after restarts")(hits, gaps, subscribe_all(&mut s.ingest).await);
    let hits = scan_files(nats.store_dir(), &[]);
    assert!(hits.is_empty(), "the server's store still holds her: {hits:?}");
    let replay = s.ingest.ingest_batch(pb::IngestBatchRequest { events }).await.expect("replay").into_inner();
    assert_eq!(replay.accepted, 0);
    let (after, links_after, _) = export(&mut s.privacy).await;
    assert!(after.is_empty() && links_after.is_empty(), "export after erasure: {after:?} {links_after:?}");
    assert!(scan_tables(&s.db).await.is_empty(), "tables after the restarts");
    let info = s.ingest.get_ledger_info(pb::GetLedgerInfoRequest {}).await.expect("info").into_inner();
    assert_eq!(info.head_offset, n + 1);

    // The audit log (ingestion's database): export, erasure, export; by hash only.
    let log = s.privacy.list_audit(ppb::ListAuditRequest::default()).await.expect("audit").into_inner().entries;
    let (ex, er) = (ppb::AuditAction::Export as i32, ppb::AuditAction::Erase as i32);
    assert_eq!(log.iter().map(|a| a.action).collect::<Vec<_>>(), [ex, er, ex]);
    assert!(log.iter().all(|a| a.subject_hash == e.subject_hash));
    assert_eq!(log.iter().map(|a| a.events).collect::<Vec<_>>(), [11, 11, 0]);
}

/// Another ingestion process keeps appending events that name the account while
/// it is erased: when the marker lands, no event before it names the account
/// (those appended during the scan were found and erased too).
#[tokio::test]
async fn nats_erasure_races_concurrent_appends() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}?mode=rwc", dir.path().join("ingest.db").display());
    let mut a = server(&nats, &db_url).await;
    let mut b = server(&nats, &db_url).await;
    let link = |l: &str, owner: &str| pb::Link { link: l.into(), owner: acct(owner), ..Default::default() };
    let links = vec![link("lift.to/anna-1", "anna"), link("lift.to/bob-1", "bob")];
    a.ingest.register_links(pb::RegisterLinksRequest { links }).await.expect("links");
    let (events, _) = world();
    a.ingest.ingest_batch(pb::IngestBatchRequest { events }).await.expect("ingest");
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let mut writer = b.ingest.clone();
    let appender = tokio::spawn(async move {
        let mut sent = 0usize;
        // Bounded: at most 400 batches, until told to stop.
        for i in 0..400 {
            if *stop.borrow_and_update() {
                break;
            }
            let batch: Vec<pb::Event> = (0..5).map(|j| mention_anna(&format!("m{i}-{j}"))).collect();
            writer.ingest_batch(pb::IngestBatchRequest { events: batch }).await.expect("append");
            sent += 5;
        }
        sent
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let e = a.privacy.erase(ppb::EraseRequest { subject: Some(anna()) }).await.expect("erase").into_inner();
    stop_tx.send_replace(true);
    let sent = appender.await.expect("appender");
    let seen = subscribe_all(&mut b.ingest).await;
    let named: Vec<u64> = seen
        .iter()
        .filter(|ev| ev.offset < e.marker_offset)
        .filter(|ev| format!("{:?}", ev.event).to_ascii_lowercase().contains("anna"))
        .map(|ev| ev.offset)
        .collect();
    assert!(named.is_empty(), "events before the marker still name her: {named:?}");
    assert!(e.events_erased >= 11, "{e:?}");
    eprintln!("nats_erasure_races_concurrent_appends: {sent} appended meanwhile, {} erased", e.events_erased);
}

const DAY: i64 = 86_400 * MICROS_PER_SEC;

fn old_event(i: usize, at: i64) -> Event {
    let body = if i.is_multiple_of(3) {
        EventBody::LinkClick(LinkClick {
            link: "lnk".into(),
            visitor_id: format!("v{i}"),
            landing: String::new(),
            agent_class: String::new(),
            not_counted: None,
        })
    } else {
        EventBody::Follow(Follow {
            follower: AccountId::new("t", format!("a{i}")),
            followee: AccountId::new("t", "star"),
            unfollow: false,
        })
    };
    Event { event_id: format!("r{i}"), source: "test".into(), occurred_at: at, body }
}

/// A retention run on JetStream removes exactly the events that occurred before
/// the cutoff (erased messages, gaps at their offsets), appends one marker and
/// one audit row; a second run writes nothing; a replay of a removed event is a
/// duplicate at its offset.
#[tokio::test]
async fn nats_retention_removes_exactly_the_expired_events() {
    let nats = Nats::start();
    let db = lift_store::connect("sqlite::memory:").await.expect("db");
    let ledger = Ledger::from_setting(&nats.url()).await.expect("ledger");
    let Ledger::Nats(stream) = ledger.clone() else { panic!("a JetStream ledger") };
    let ingest = Ingest::with_ledger(db.clone(), ledger, IngestConfig::default());
    let at = now();
    // Event i occurred 20·i days and a half ago: 0.5, 20.5, …, 580.5 days (none on a cutoff).
    let ago = |i: usize| at - 20 * i as i64 * DAY - DAY / 2;
    let events: Vec<Event> = (0..30).map(|i| old_event(i, ago(i))).collect();
    ingest.append(&events).await.expect("append");
    let horizon = Duration::from_secs(400 * 86_400);
    // Older than 400 days: i = 20..29 (offsets 21..30).
    let expected: Vec<u64> = (21..=30).collect();

    let r = ingest.retain(horizon, at).await.expect("retain");
    assert_eq!((r.offsets.clone(), r.events_removed, r.marker_offset), (expected.clone(), 10, Some(31)));
    let live = stream.read_after_wire(0, &[], 1_000).await.expect("read");
    let offsets: Vec<u64> = live.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, (1..=20).chain([31]).collect::<Vec<_>>());
    assert!(matches!(&live.last().and_then(|e| e.event.as_ref()).and_then(|e| e.kind.clone()),
        Some(Kind::Erasure(m)) if m.events_erased == 10 && m.retention_before.is_some()));
    let (_, gaps) = scan_streams(&nats).await;
    let gaps: Vec<u64> = gaps.into_iter().filter(|(s, _)| s == "LIFT_LEDGER").map(|(_, q)| q).collect();
    assert_eq!(gaps, expected, "the removed events' messages are gone from the stream");
    let audit = lift_store::privacy::list_audit(&db, 0, 10).await.expect("audit");
    assert_eq!(audit.iter().map(|a| (a.action.as_str(), a.events)).collect::<Vec<_>>(), [("retention", 10)]);

    let again = ingest.retain(horizon, at + MICROS_PER_SEC).await.expect("retain again");
    assert_eq!((again.events_removed, again.marker_offset), (0, None));
    assert_eq!(lift_store::privacy::list_audit(&db, 0, 10).await.expect("audit").len(), 1);

    let replay = ingest.append(&events[25..26]).await.expect("replay");
    assert_eq!((replay[0].is_accepted(), replay[0].offset()), (false, 26));
    assert_eq!(stream.head().await.expect("head"), 31);
}

/// The erasure's fence (a time in the index's `indexed` mark) holds appends
/// until it is lifted; then they go on at the next offset.
#[tokio::test]
async fn nats_fence_holds_appends_until_lifted() {
    let nats = Nats::start();
    let mut s = server(&nats, "sqlite::memory:").await;
    let first = s.ingest.ingest_batch(pb::IngestBatchRequest { events: vec![mention_anna("f1")] }).await;
    assert_eq!(first.expect("append").into_inner().results[0].offset, 1);
    let client = async_nats::connect(format!("nats://127.0.0.1:{}", nats.port)).await.expect("connect");
    let kv = async_nats::jetstream::new(client).get_key_value("LIFT_LEDGER_IDS").await.expect("index");
    let until = now() + 60 * MICROS_PER_SEC;
    kv.put("indexed", format!("1 {until}").into()).await.expect("fence");
    let mut c = s.ingest.clone();
    let pending =
        tokio::spawn(async move { c.ingest_batch(pb::IngestBatchRequest { events: vec![mention_anna("f2")] }).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!pending.is_finished(), "an append went past the fence");
    kv.put("indexed", "1".into()).await.expect("lift the fence");
    let done = tokio::time::timeout(Duration::from_secs(10), pending).await.expect("appended once lifted");
    assert_eq!(done.expect("task").expect("append").into_inner().results[0].offset, 2);
}
