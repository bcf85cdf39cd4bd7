//! The privacy service over real gRPC with authentication on, on SQLite and
//! PostgreSQL: export, erasure (then a scan of every table for the account),
//! replays after an erasure, the audit log, and the scope that guards them.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use lift_ingest::{Ingest, IngestConfig};
use lift_proto::ingest::v1 as pb;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::privacy::v1 as ppb;
use lift_proto::privacy::v1::privacy_service_client::PrivacyServiceClient;
use lift_runtime::auth::{Auth, KeyStore, Scope, create_key};
use lift_runtime::client::{ClientOptions, Credentials, connect_lazy};
use lift_runtime::{ServeOptions, Shutdown};
use pb::event::Kind;
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::world::{acct, anna, ev, export, scan_tables, world};

async fn scenario(url: &str) {
    let db = lift_store::connect(url).await.expect("connect");
    let ingest = Ingest::new(db.clone(), IngestConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let opts = ServeOptions {
        auth: Auth::Keys(KeyStore::new(db.clone(), Duration::from_millis(10))),
        ..ServeOptions::default()
    };
    tokio::spawn(lift_runtime::serve_pair(listener, ingest.grpc(), ingest.privacy(), shutdown.clone(), opts));
    let (_, writer) = create_key(&db, "producer", &[Scope::IngestWrite, Scope::IngestRead, Scope::LinksWrite], None)
        .await
        .expect("key");
    let (admin_key, admin) = create_key(&db, "dpo", &[Scope::PrivacyAdmin], None).await.expect("key");
    let url = format!("http://{addr}");
    let channel = |key: &str| {
        let opts = ClientOptions { credentials: Credentials::api_key(key).expect("key"), ..ClientOptions::default() };
        connect_lazy(&url, &opts).expect("channel")
    };
    let mut ingest_client = IngestServiceClient::new(channel(&writer));
    let mut privacy = PrivacyServiceClient::new(channel(&admin));

    let link = |l: &str, owner: &str| pb::Link { link: l.into(), owner: acct(owner), ..Default::default() };
    ingest_client
        .register_links(pb::RegisterLinksRequest {
            links: vec![link("lift.to/anna-1", "anna"), link("lift.to/bob-1", "bob")],
        })
        .await
        .expect("links");
    let (events, expected) = world();
    let r = ingest_client.ingest_batch(pb::IngestBatchRequest { events: events.clone() }).await.expect("ingest");
    assert_eq!(r.get_ref().accepted as usize, events.len());

    // The producer's key may not export; nor may anyone append an erasure marker.
    let refused = PrivacyServiceClient::new(channel(&writer))
        .export(ppb::ExportRequest { subject: Some(anna()) })
        .await
        .expect_err("ingest:write may not export");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let fake =
        ev("fake", Kind::Erasure(pb::Erasure { subject_hash: "0".repeat(64), events_erased: 1, ..Default::default() }));
    let s = ingest_client.ingest_batch(pb::IngestBatchRequest { events: vec![fake] }).await.expect_err("refused");
    assert_eq!(s.get_details_bad_request().expect("details").field_violations[0].field, "events[0].erasure");
    let bad = privacy.erase(ppb::EraseRequest { subject: None }).await.expect_err("no subject");
    assert_eq!(bad.get_details_bad_request().expect("details").field_violations[0].field, "subject");

    // Export: exactly the events that involve the account, and its link.
    let (exported, links, summary) = export(&mut privacy).await;
    let ids: BTreeSet<&str> = exported.iter().filter_map(|e| e.event.as_ref()).map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, expected);
    assert_eq!(exported.len(), expected.len(), "each event once");
    assert_eq!(links.iter().map(|l| l.link.as_str()).collect::<Vec<_>>(), ["lift.to/anna-1"]);
    assert_eq!((summary.events, summary.links, summary.not_covered.len()), (expected.len() as u64, 1, 2));
    assert_eq!(summary.subject_hash.len(), 64);

    // Erase. Before it, the scan finds the account in the ledger, the links and the click index.
    let before = scan_tables(&db).await;
    for t in [
        "ledger_events.body",
        "ledger_events.event_id",
        "ledger_events.account",
        "links.link",
        "link_clicks.visitor_id",
    ] {
        assert!(before.iter().any(|h| h.starts_with(t)), "the scan must see {t}: {before:?}");
    }
    let head_before = ingest_client.get_ledger_info(pb::GetLedgerInfoRequest {}).await.expect("info").into_inner();
    let e = privacy.erase(ppb::EraseRequest { subject: Some(anna()) }).await.expect("erase").into_inner();
    assert_eq!((e.events_erased, e.links_deleted, e.clicks_deleted), (expected.len() as u64, 1, 2));
    assert_eq!(e.marker_offset, head_before.head_offset + 1);
    assert_eq!(e.subject_hash, summary.subject_hash);

    let hits = scan_tables(&db).await;
    assert!(hits.is_empty(), "personal data left after erasure: {hits:?}");

    // Subscribers see the others' events and the marker; offsets stay where they were.
    let mut s = ingest_client
        .subscribe(pb::SubscribeRequest { after_offset: 0, kinds: vec![], stop_at_head: true })
        .await
        .expect("subscribe")
        .into_inner();
    let mut seen = Vec::new();
    while let Some(m) = s.next().await {
        seen.extend(m.expect("message").events);
    }
    assert_eq!(seen.len(), events.len() - expected.len() + 1);
    let last = seen.last().and_then(|e| e.event.as_ref()).and_then(|e| e.kind.clone());
    assert!(matches!(last, Some(Kind::Erasure(ref x)) if x.subject_hash == e.subject_hash && x.events_erased == 11));
    let info = ingest_client.get_ledger_info(pb::GetLedgerInfoRequest {}).await.expect("info").into_inner();
    assert_eq!(info.head_offset, e.marker_offset);

    // A producer replaying the whole batch brings nothing back.
    let r = ingest_client.ingest_batch(pb::IngestBatchRequest { events }).await.expect("replay").into_inner();
    assert_eq!((r.accepted, r.duplicates), (0, r.results.len() as u32));
    assert!(scan_tables(&db).await.is_empty(), "a replay brought personal data back");
    let (after, links, _) = export(&mut privacy).await;
    assert!(after.is_empty() && links.is_empty(), "export after erasure: {after:?} {links:?}");

    // The audit log: three requests, by the admin key, subject by hash only.
    let log = privacy.list_audit(ppb::ListAuditRequest::default()).await.expect("audit").into_inner().entries;
    let actions: Vec<i32> = log.iter().map(|a| a.action).collect();
    let (ex, er) = (ppb::AuditAction::Export as i32, ppb::AuditAction::Erase as i32);
    assert_eq!(actions, [ex, er, ex]);
    assert!(log.iter().all(|a| a.key_id == admin_key.id && a.scope == "privacy:admin"));
    assert!(log.iter().all(|a| a.subject_hash == e.subject_hash));
    assert_eq!(log.iter().map(|a| a.events).collect::<Vec<_>>(), [11, 11, 0]);
    shutdown.trigger();
}

#[tokio::test]
async fn sqlite_export_erase_audit() {
    scenario("sqlite::memory:").await;
}

#[tokio::test]
async fn postgres_export_erase_audit() {
    let (_pg, url) = lift_store::testing::postgres().await.expect("PostgreSQL test container");
    scenario(&url).await;
}
