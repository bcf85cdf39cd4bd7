//! Scoring acting on an erasure marker, against the real ingestion service: the
//! erased account's score rows and every checkpoint written before the erasure
//! go, the others' scores equal a from-scratch computation on the redacted
//! ledger, and a restart does not bring the account back.

mod common;

use std::time::Duration;

use lift_domain::AccountId;
use lift_ingest::{Ingest, IngestConfig};
use lift_proto::ingest::v1 as ipb;
use lift_proto::privacy::v1 as ppb;
use lift_proto::scoring::v1 as pb;
use lift_runtime::Shutdown;
use lift_scoring::engine::testutil::random_stream;
use lift_scoring::engine::{ModelParams, State, compute};
use lift_store::{ConnectionTrait, DatabaseConnection, Statement, checkpoints};

use common::{serve_ingest, start, wait_offset};

async fn score_rows(db: &DatabaseConnection, account: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM scoring_scores WHERE account = '{account}'");
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index(0).unwrap()
}

fn acct(id: &str) -> ipb::AccountRef {
    ipb::AccountRef { network: "t".into(), id: id.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_purges_scoring_and_rescores_the_others() {
    let ledger_db = lift_store::connect("sqlite::memory:").await.unwrap();
    let ingest = Ingest::new(ledger_db.clone(), IngestConfig::default());
    let events: Vec<_> = random_stream(3, 10, 600).into_iter().map(|e| e.event).collect();
    ingest.append(&events).await.unwrap();
    let ingest_stop = Shutdown::new();
    let ingest_url = serve_ingest(&ingest, &ingest_stop).await;

    let db = lift_store::connect("sqlite::memory:").await.unwrap();
    let mut run = start(db.clone(), &ingest_url).await;
    wait_offset(&run.scoring, 600).await;
    assert!(score_rows(&db, "t:u3").await > 0);
    // A checkpoint (written in the background) holds the account too.
    tokio::time::timeout(Duration::from_secs(30), async {
        while checkpoints::list(&db).await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a checkpoint is written");

    let mut privacy = ppb::privacy_service_client::PrivacyServiceClient::connect(ingest_url.clone()).await.unwrap();
    let subject = ppb::Subject { kind: Some(ppb::subject::Kind::Account(acct("u3"))) };
    let erased = privacy.erase(ppb::EraseRequest { subject: Some(subject) }).await.unwrap().into_inner();
    assert!(erased.events_erased > 10, "{erased:?}");
    wait_offset(&run.scoring, erased.marker_offset).await;

    assert_eq!(score_rows(&db, "t:u3").await, 0, "the account's score history is gone");
    let cps = checkpoints::list(&db).await.unwrap();
    assert!(
        cps.iter().all(|c| c.as_of_offset >= erased.marker_offset),
        "a checkpoint from before the erasure: {cps:?}"
    );

    // The others' scores: a from-scratch computation on the ledger as it now reads.
    let entries = lift_ingest::ledger::sql::read_after(&ledger_db, 0, &[], 100_000).await.unwrap();
    let mut direct = State::new();
    for e in &entries {
        direct.apply(e);
    }
    assert!(direct.node(&AccountId::new("t", "u3")).is_none());
    let expected = compute(&direct, &ModelParams::default());
    let others: Vec<String> = (0..10).map(|i| format!("u{i}")).filter(|u| u != "u3").collect();
    let req = pb::GetScoresRequest { accounts: others.iter().map(|u| acct(u)).chain([acct("u3")]).collect() };
    let got = run.client.get_scores(req.clone()).await.unwrap().into_inner();
    assert_eq!(got.unknown, vec![acct("u3")]);
    assert_eq!(got.accounts.len(), 9);
    for a in &got.accounts {
        let id = a.account.as_ref().unwrap();
        let n = direct.node(&AccountId::new(id.network.clone(), id.id.clone())).unwrap() as usize;
        assert_eq!(a.as_of_offset, erased.marker_offset);
        for s in a.scores.iter().filter(|s| s.topic.is_empty()) {
            let want = expected.values[(s.dimension - 1) as usize][n];
            assert!((s.value - want).abs() <= 1e-9 * want.abs().max(1.0), "{}: {} vs {want}", id.id, s.value);
        }
    }

    // A restart (from the post-erasure checkpoint or the redacted ledger) does not bring it back.
    run.stop.trigger();
    run.consumer.await.unwrap().unwrap();
    run = start(db.clone(), &ingest_url).await;
    wait_offset(&run.scoring, erased.marker_offset).await;
    let again = run.client.get_scores(req).await.unwrap().into_inner();
    assert_eq!(again.unknown, vec![acct("u3")]);
    assert_eq!(score_rows(&db, "t:u3").await, 0);
    run.stop.trigger();
    ingest_stop.trigger();
}
