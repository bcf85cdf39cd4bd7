//! Matching acting on an erasure marker, against real ingestion (with its
//! privacy service) and scoring on loopback: after a creator with an offer, a
//! recorded eligibility, a portfolio seat, a rate card, a standing program's
//! perk and a report is erased,
//! no table of matching's database names it, the report is rebuilt and still
//! equals a rescan of the redacted ledger, and matching no longer offers it —
//! with matching's database on SQLite and on PostgreSQL.

mod common;

use std::time::Duration;

use common::{acct, bind, boxes_spec, ingest_all, quick_scoring, rt, scored, social_world, start_scoring};
use lift_ingest::{Ingest, IngestConfig};
use lift_matching::{BrandId, Matching, MatchingConfig, create_brand};
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::matching::v1 as pb;
use lift_proto::privacy::v1 as ppb;
use lift_runtime::{ServeOptions, Shutdown};
use lift_store::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

const CREATORS: usize = 24;

async fn report(m: &Matching, brand: &BrandId, id: &str) -> pb::GetCampaignReportResponse {
    let req = pb::GetCampaignReportRequest { campaign_id: id.to_owned() };
    let fast = m.campaign_report(brand, &req).await.expect("report from aggregates");
    let slow = m.campaign_report_rescan(brand, &req).await.expect("report from a rescan");
    assert_eq!(fast, slow, "aggregates and rescan disagree");
    fast
}

/// Every `table.column` of matching's database whose text holds one of `needles`.
async fn scan_tables(db: &DatabaseConnection, needles: &[String]) -> Vec<String> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' ORDER BY table_name, column_name"
        }
        _ => {
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' ORDER BY m.name, p.name"
        }
    };
    let cols = db.query_all_raw(Statement::from_string(backend, sql)).await.expect("columns");
    assert!(cols.len() > 30, "the scan must see the schema ({} columns)", cols.len());
    let mut hits = Vec::new();
    for c in cols {
        let (table, column): (String, String) = (c.try_get_by_index(0).unwrap(), c.try_get_by_index(1).unwrap());
        for needle in needles {
            let text = format!("CAST(\"{column}\" AS TEXT)");
            let sql = format!(
                "SELECT COUNT(*) FROM \"{table}\" WHERE {text} = '{needle}' OR {text} LIKE '%\"{needle}\"%' \
                 OR {text} LIKE '%{needle}\\_h%' ESCAPE '\\'"
            );
            let row = db.query_one_raw(Statement::from_string(backend, sql)).await.expect("scan").expect("row");
            let n: i64 = row.try_get_by_index(0).unwrap();
            if n > 0 {
                hits.push(format!("{table}.{column} ({n} rows name {needle:?})"));
            }
        }
    }
    hits
}

/// Pins matching's purge on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_matching_row_naming_the_account_on_sqlite() {
    scenario(lift_store::connect("sqlite::memory:").await.expect("db")).await;
}

/// Pins matching's purge on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_matching_row_naming_the_account_on_postgres() {
    let (_pg, url) = lift_store::testing::postgres().await.expect("postgres");
    scenario(lift_store::connect(&url).await.expect("db")).await;
}

async fn scenario(db: DatabaseConnection) {
    let stop = Shutdown::new();
    let ingest = Ingest::new(lift_store::connect("sqlite::memory:").await.expect("db"), IngestConfig::default());
    let (l, ingest_addr) = bind().await;
    tokio::spawn(lift_runtime::serve_pair(l, ingest.grpc(), ingest.privacy(), stop.clone(), ServeOptions::default()));
    let scoring_db = lift_store::connect("sqlite::memory:").await.expect("db");
    let (scoring, scoring_addr) = start_scoring(scoring_db, ingest_addr, quick_scoring(30), &stop).await;
    let client = IngestServiceClient::new(rt(ingest_addr));
    let head = ingest_all(&client, social_world(CREATORS, [90_000, 89_000, 88_000, 87_000], false)).await;
    scored(&scoring, head).await;

    let cfg = MatchingConfig { report_patience: Duration::from_secs(30), ..MatchingConfig::default() };
    let m = common::matching(db.clone(), scoring_addr, ingest_addr, cfg);
    let (brand, _) = create_brand(&db, "Acme").await.expect("brand");
    let c = m.create_campaign(&brand, Some(&boxes_spec())).await.expect("create");
    let mreq = pb::MatchCampaignRequest { campaign_id: c.id.clone(), page_size: 1_000, ..Default::default() };
    m.match_campaign(&brand, &mreq).await.expect("match");
    let sreq = pb::SelectPortfolioRequest { campaign_id: c.id.clone(), epsilon: 0.0 };
    m.select_portfolio(&brand, &sreq).await.expect("portfolio");
    let oreq = pb::CreateOffersRequest { campaign_id: c.id.clone(), holdout_seed: 7 };
    let offers = m.create_offers(&brand, &oreq).await.expect("offers").offers;
    // The creator to erase: one that was offered the perk.
    let erased = offers.iter().find(|o| !o.holdout).and_then(|o| o.account.clone()).expect("a treated offer");
    let other = offers.iter().find_map(|o| o.account.clone().filter(|a| a.id != erased.id)).expect("another offer");
    let rates = pb::SetRateCardRequest {
        currency: "EUR".into(),
        rates: vec![
            pb::CreatorRate { account: Some(erased.clone()), rate: 900 },
            pb::CreatorRate { account: Some(other.clone()), rate: 800 },
        ],
        replace: false,
    };
    m.set_rate_card(&brand, &rates).await.expect("rate card");
    // A standing program with the same criteria, no holdout and room for everyone: it
    // gives the creator a perk too (a grant row naming it).
    let standing_spec =
        pb::CampaignSpec { name: "standing boxes".into(), budget: 1_000_000, holdout_share: 0.0, ..boxes_spec() };
    let s = m.create_campaign(&brand, Some(&standing_spec)).await.expect("create standing");
    let start = pb::StartStandingProgramRequest { campaign_id: s.id.clone(), rules: None };
    m.start_standing_program(&brand, &start).await.expect("start standing");
    // The standing consumer may have evaluated it already; this makes sure it has.
    m.evaluate_standing().await.expect("evaluate standing");
    report(&m, &brand, &c.id).await;
    let needles = vec![erased.id.clone()];
    let before = scan_tables(&db, &needles).await;
    assert!(before.iter().any(|h| h.starts_with("standing_grants.account_id")), "a standing perk names it: {before:?}");

    let mut privacy = ppb::privacy_service_client::PrivacyServiceClient::connect(format!("http://{ingest_addr}"))
        .await
        .expect("privacy client");
    let subject = ppb::Subject { kind: Some(ppb::subject::Kind::Account(erased.clone())) };
    let done = privacy.erase(ppb::EraseRequest { subject: Some(subject) }).await.expect("erase").into_inner();
    tokio::time::timeout(Duration::from_secs(60), async {
        while lift_store::reports::position(&db).await.expect("position") < done.marker_offset {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("matching's consumer passes the marker");
    assert!(scoring.as_of_offset() >= done.marker_offset, "matching acted only once scoring had replayed");

    let hits = scan_tables(&db, &needles).await;
    assert!(hits.is_empty(), "matching still names the erased creator: {hits:?}");
    // The others stay: another offer, its rate.
    assert!(!scan_tables(&db, std::slice::from_ref(&other.id)).await.is_empty(), "the others' rows stay");

    // The report is rebuilt from the redacted ledger (and equals a rescan of it).
    let r = report(&m, &brand, &c.id).await;
    assert!(r.as_of_offset >= done.marker_offset, "{r:?}");
    // Matching again: the erased creator is not a candidate, and nothing records it.
    let again = m.match_campaign(&brand, &mreq).await.expect("match again");
    let named = format!("{again:?}");
    assert!(!named.contains(&format!("id: \"{}\"", erased.id)), "{named}");
    assert!(scan_tables(&db, &needles).await.is_empty());
    assert_eq!(acct(&erased.id), erased);
    stop.trigger();
}
