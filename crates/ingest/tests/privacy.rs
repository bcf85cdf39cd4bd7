//! The privacy service over real gRPC with authentication on, on SQLite and
//! PostgreSQL: export, erasure (then a scan of every table for the account),
//! replays after an erasure, the audit log, and the scope that guards them.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use lift_domain::time::{MICROS_PER_SEC, now};
use lift_ingest::{Ingest, IngestConfig};
use lift_proto::convert::to_timestamp;
use lift_proto::ingest::v1 as pb;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::privacy::v1 as ppb;
use lift_proto::privacy::v1::privacy_service_client::PrivacyServiceClient;
use lift_runtime::auth::{Auth, KeyStore, Scope, create_key};
use lift_runtime::client::{ClientOptions, Credentials, connect_lazy};
use lift_runtime::{ServeOptions, Shutdown};
use lift_store::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use pb::event::Kind;
use tonic::Code;
use tonic_types::StatusExt;

/// Strings that identify the erased person: its id (inside handles, post ids, links
/// and event ids too, case-insensitively) and the visitor id of its own orders.
const NEEDLES: [&str; 2] = ["anna", "v-7731"];

fn acct(id: &str) -> Option<pb::AccountRef> {
    Some(pb::AccountRef { network: "x".into(), id: id.into() })
}

fn ev(id: &str, kind: Kind) -> pb::Event {
    pb::Event {
        event_id: id.into(),
        source: "test".into(),
        occurred_at: Some(to_timestamp(now() - 60 * MICROS_PER_SEC)),
        kind: Some(kind),
    }
}

fn account(id: &str, handle: &str, name: &str) -> pb::Event {
    ev(
        &format!("account-{id}"),
        Kind::Account(pb::AccountUpsert {
            account: acct(id),
            handle: handle.into(),
            display_name: name.into(),
            reported_followers: 120,
            ..Default::default()
        }),
    )
}

fn post(id: &str, author: &str, reply_to: &str) -> pb::Event {
    ev(
        id,
        Kind::Post(pb::Post {
            author: acct(author),
            post_id: id.into(),
            reply_to_post_id: reply_to.into(),
            ..Default::default()
        }),
    )
}

fn engage(id: &str, actor: &str, post: &str, target: Option<&str>) -> pb::Event {
    ev(
        id,
        Kind::Engagement(pb::Engagement {
            kind: pb::EngagementKind::Like as i32,
            actor: acct(actor),
            post_id: post.into(),
            target: target.and_then(acct),
        }),
    )
}

fn follow(id: &str, a: &str, b: &str) -> pb::Event {
    ev(id, Kind::Follow(pb::Follow { follower: acct(a), followee: acct(b), unfollow: false }))
}

fn click(id: &str, link: &str, visitor: &str) -> pb::Event {
    ev(id, Kind::LinkClick(pb::LinkClick { link: link.into(), visitor_id: visitor.into(), ..Default::default() }))
}

fn order(id: &str, visitor: &str, customer: Option<&str>) -> pb::Event {
    ev(
        id,
        Kind::Conversion(pb::Conversion {
            visitor_id: visitor.into(),
            order_id: format!("o-{id}"),
            value_minor: 2500,
            currency: "EUR".into(),
            customer: customer.and_then(acct),
            ..Default::default()
        }),
    )
}

/// The world, and the ids of the events that involve x:anna.
fn world() -> (Vec<pb::Event>, BTreeSet<&'static str>) {
    let events = vec![
        account("anna", "@anna_h", "Anna Secret"),
        account("bob", "@bob", "Bob"),
        account("cara", "@cara", "Cara"),
        post("p-anna-1", "anna", ""),
        post("p-bob-1", "bob", ""),
        post("p-cara-reply", "cara", "p-anna-1"),
        engage("like-1", "bob", "p-anna-1", Some("anna")),
        engage("like-2", "anna", "p-bob-1", Some("bob")),
        engage("like-3", "cara", "p-anna-1", None),
        engage("like-4", "cara", "p-bob-1", Some("bob")),
        follow("f-1", "anna", "bob"),
        follow("f-2", "cara", "anna"),
        follow("f-3", "bob", "cara"),
        click("c-1", "lift.to/anna-1", "v-zed"),
        click("c-2", "lift.to/bob-1", "v-7731"),
        click("c-3", "lift.to/bob-1", "v-other"),
        order("o-1", "v-7731", Some("anna")),
        order("o-2", "v-other", None),
    ];
    let anna =
        ["account-anna", "p-anna-1", "p-cara-reply", "like-1", "like-2", "like-3", "f-1", "f-2", "c-1", "c-2", "o-1"];
    (events, anna.into_iter().collect())
}

fn anna() -> ppb::Subject {
    ppb::Subject { kind: Some(ppb::subject::Kind::Account(pb::AccountRef { network: "x".into(), id: "anna".into() })) }
}

async fn export(
    client: &mut PrivacyServiceClient<lift_runtime::client::Channel>,
) -> (Vec<pb::LedgerEvent>, Vec<pb::Link>, ppb::ExportSummary) {
    let mut s = client.export(ppb::ExportRequest { subject: Some(anna()) }).await.expect("export").into_inner();
    let (mut events, mut links, mut summary) = (Vec::new(), Vec::new(), None);
    while let Some(m) = s.next().await {
        match m.expect("message").item {
            Some(ppb::export_response::Item::Event(e)) => events.push(e),
            Some(ppb::export_response::Item::Link(l)) => links.push(l),
            Some(ppb::export_response::Item::Summary(x)) => summary = Some(x),
            Some(other) => panic!("ingestion's export sends no {other:?}"),
            None => panic!("empty export message"),
        }
    }
    (events, links, summary.expect("summary"))
}

/// Every row of every table whose text or bytes contain a needle: `table.column`.
async fn scan_tables(db: &DatabaseConnection) -> Vec<String> {
    let backend = db.get_database_backend();
    let columns_sql = match backend {
        DbBackend::Postgres => {
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = 'public' ORDER BY table_name, column_name"
        }
        _ => {
            "SELECT m.name, p.name, p.type FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' ORDER BY m.name, p.name"
        }
    };
    let cols = db.query_all_raw(Statement::from_string(backend, columns_sql)).await.expect("columns");
    assert!(cols.len() > 30, "the scan must see the schema ({} columns)", cols.len());
    let mut hits = Vec::new();
    for c in cols {
        let (table, column, ty): (String, String, String) =
            (c.try_get_by_index(0).unwrap(), c.try_get_by_index(1).unwrap(), c.try_get_by_index(2).unwrap());
        for needle in NEEDLES {
            let cond = match backend {
                DbBackend::Postgres if ty == "bytea" => format!("position('{needle}'::bytea in \"{column}\") > 0"),
                DbBackend::Postgres => format!("\"{column}\"::text ILIKE '%{needle}%'"),
                _ => format!("CAST(\"{column}\" AS TEXT) LIKE '%{needle}%'"),
            };
            let sql = format!("SELECT COUNT(*) FROM \"{table}\" WHERE {cond}");
            let row = db.query_one_raw(Statement::from_string(backend, sql)).await.expect("scan").expect("row");
            let n: i64 = row.try_get_by_index(0).unwrap();
            if n > 0 {
                hits.push(format!("{table}.{column} ({n} rows contain {needle:?})"));
            }
        }
    }
    hits
}

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
