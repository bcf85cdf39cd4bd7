//! The world the privacy tests ingest (three accounts, posts, engagements,
//! follows, clicks and orders; one of them, x:anna, to be erased), the ids of the
//! events that involve x:anna, and scans for what identifies her.

use std::collections::BTreeSet;
use std::path::Path;

use futures::StreamExt;
use lift_domain::time::{MICROS_PER_SEC, now};
use lift_proto::convert::to_timestamp;
use lift_proto::ingest::v1 as pb;
use lift_proto::privacy::v1 as ppb;
use lift_proto::privacy::v1::privacy_service_client::PrivacyServiceClient;
use lift_store::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use pb::event::Kind;

/// Strings that identify the erased person: its id (inside handles, post ids, links
/// and event ids too, case-insensitively) and the visitor id of its own orders.
pub(crate) const NEEDLES: [&str; 2] = ["anna", "v-7731"];

pub(crate) fn acct(id: &str) -> Option<pb::AccountRef> {
    Some(pb::AccountRef { network: "x".into(), id: id.into() })
}

pub(crate) fn ev(id: &str, kind: Kind) -> pb::Event {
    pb::Event {
        event_id: id.into(),
        source: "test".into(),
        occurred_at: Some(to_timestamp(now() - 60 * MICROS_PER_SEC)),
        kind: Some(kind),
    }
}

pub(crate) fn account(id: &str, handle: &str, name: &str) -> pb::Event {
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

pub(crate) fn post(id: &str, author: &str, reply_to: &str) -> pb::Event {
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

pub(crate) fn engage(id: &str, actor: &str, post: &str, target: Option<&str>) -> pb::Event {
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

pub(crate) fn follow(id: &str, a: &str, b: &str) -> pb::Event {
    ev(id, Kind::Follow(pb::Follow { follower: acct(a), followee: acct(b), unfollow: false }))
}

pub(crate) fn click(id: &str, link: &str, visitor: &str) -> pb::Event {
    ev(id, Kind::LinkClick(pb::LinkClick { link: link.into(), visitor_id: visitor.into(), ..Default::default() }))
}

pub(crate) fn order(id: &str, visitor: &str, customer: Option<&str>) -> pb::Event {
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
pub(crate) fn world() -> (Vec<pb::Event>, BTreeSet<&'static str>) {
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

pub(crate) fn anna() -> ppb::Subject {
    ppb::Subject { kind: Some(ppb::subject::Kind::Account(pb::AccountRef { network: "x".into(), id: "anna".into() })) }
}

pub(crate) async fn export(
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
pub(crate) async fn scan_tables(db: &DatabaseConnection) -> Vec<String> {
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

/// x:anna mentioning x:bob, with event id `id`.
pub(crate) fn mention_anna(id: &str) -> pb::Event {
    ev(
        id,
        Kind::Engagement(pb::Engagement {
            kind: pb::EngagementKind::Mention as i32,
            actor: acct("anna"),
            post_id: String::new(),
            target: acct("bob"),
        }),
    )
}

/// The first needle `bytes` hold, case-insensitively.
pub(crate) fn holds_needle(bytes: &[u8]) -> Option<&'static str> {
    let lower = bytes.to_ascii_lowercase();
    NEEDLES.into_iter().find(|n| lower.windows(n.len()).any(|w| w == n.as_bytes()))
}

/// Every file under `dir` holding a needle (raw bytes, case-insensitively),
/// except under directories named in `skip`.
pub(crate) fn scan_files(dir: &Path, skip: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if !skip.iter().any(|s| path.file_name().is_some_and(|n| n == *s)) {
                    todo.push(path);
                }
            } else if let Ok(bytes) = std::fs::read(&path) {
                files += 1;
                if let Some(n) = holds_needle(&bytes) {
                    hits.push(format!("{} holds {n:?}", path.display()));
                }
            }
        }
    }
    assert!(files > 0, "no files under {}", dir.display());
    hits
}
