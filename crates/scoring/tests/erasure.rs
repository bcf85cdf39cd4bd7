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

/// The account's history point as of `run_id` (its newest point at or before it).
async fn history_at(run: &mut common::Scorer, id: &str, run_id: u64) -> pb::HistoryPoint {
    let req = pb::GetScoreHistoryRequest { account: Some(acct(id)), limit: 1000, ..Default::default() };
    let h = run.client.get_score_history(req).await.unwrap().into_inner();
    h.points.into_iter().find(|p| p.run_id <= run_id).unwrap_or_else(|| panic!("{id} has no point by run {run_id}"))
}

fn overall(p: &pb::HistoryPoint, d: pb::Dimension) -> &pb::Score {
    p.scores.iter().find(|s| s.dimension == d as i32 && s.topic.is_empty()).unwrap()
}

/// Another account (bob) engaged with u1 and is then erased: u1's explanations
/// across the erasure start from what the earlier run recorded, carry the
/// difference to the redacted ledger as an ERASURE part (value and percentile)
/// whose size is exactly that difference, sum exactly, and name no one. An
/// explanation between two runs that both precede the erasure is rebased on
/// both recorded ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explanations_across_an_erasure_name_it() {
    use lift_scoring::engine::stats::quantize;
    use lift_scoring::engine::testutil::{T0, account, follow, like, post};
    use lift_scoring::engine::{AsOf, ComputeOptions, compute_with};

    let ledger_db = lift_store::connect("sqlite::memory:").await.unwrap();
    let ingest = Ingest::new(ledger_db.clone(), IngestConfig::default());
    let world: Vec<_> = random_stream(3, 10, 600).into_iter().map(|e| e.event).collect();
    let t = T0 / 1_000_000 + 2 * 86_400;
    let bob: Vec<_> = [
        account(0, "bob", 5_000, None, t),
        post(0, "u1", "xa", &["rust"], t + 10),
        post(0, "u1", "xb", &["rust"], t + 20),
        follow(0, "bob", "u1", false, t + 30),
        like(0, "bob", "u1", "xa", t + 40),
        like(0, "bob", "u1", "xb", t + 50),
        like(0, "bob", "u1", "xa", t + 60),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, mut e)| {
        e.event.event_id = format!("bob-world-{i}");
        e.event
    })
    .collect();
    let ingest_stop = Shutdown::new();
    let ingest_url = serve_ingest(&ingest, &ingest_stop).await;
    let db = lift_store::connect("sqlite::memory:").await.unwrap();
    let mut run = start(db.clone(), &ingest_url).await;

    // Run r0 without bob, then r1 with bob's engagement.
    ingest.append(&world[..400]).await.unwrap();
    wait_offset(&run.scoring, 400).await;
    let latest = |db: DatabaseConnection| async move { lift_store::scoring::latest_run(&db).await.unwrap().unwrap() };
    let r0 = latest(db.clone()).await;
    ingest.append(&world[400..]).await.unwrap();
    ingest.append(&bob).await.unwrap();
    let head = (world.len() + bob.len()) as u64;
    wait_offset(&run.scoring, head).await;
    let r1 = latest(db.clone()).await;
    assert!(r1.run_id > r0.run_id);
    let (p0, p1) = (history_at(&mut run, "u1", r0.run_id).await, history_at(&mut run, "u1", r1.run_id).await);

    let mut privacy = ppb::privacy_service_client::PrivacyServiceClient::connect(ingest_url.clone()).await.unwrap();
    let subject = ppb::Subject { kind: Some(ppb::subject::Kind::Account(acct("bob"))) };
    let erased = privacy.erase(ppb::EraseRequest { subject: Some(subject) }).await.unwrap().into_inner();
    assert_eq!(erased.events_erased, 5, "{erased:?}");
    wait_offset(&run.scoring, erased.marker_offset).await;
    let now = run.client.get_scores(pb::GetScoresRequest { accounts: vec![acct("u1")] }).await.unwrap().into_inner();
    let r2 = now.accounts[0].run_id;

    // u1's earlier run as its ledger prefix reads now, from scratch.
    let entries = lift_ingest::ledger::sql::read_after(&ledger_db, 0, &[], 100_000).await.unwrap();
    let mut redacted = State::new();
    for e in entries.iter().filter(|e| e.offset <= r1.as_of_offset) {
        redacted.apply(e);
    }
    let u1 = redacted.node(&AccountId::new("t", "u1")).unwrap() as usize;
    let as_of = AsOf { offset: r1.as_of_offset, time: r1.as_of_time };
    let again = compute_with(&redacted, &ModelParams::default(), as_of, ComputeOptions::default());

    let forbidden = ["bob", &lift_store::privacy::account_hash(&AccountId::new("t", "bob"))];
    let names_no_one = |e: &pb::ExplainScoreChangeResponse| {
        let texts = e.contributions.iter().map(|c| &c.description);
        for text in texts.chain(e.percentile_contributions.iter().map(|c| &c.description)) {
            for f in forbidden {
                assert!(!text.contains(f), "{text:?} names {f}");
            }
        }
    };
    let explain = |from: u64, to: u64, d: pb::Dimension| {
        let mut client = run.client.clone();
        async move {
            let req = pb::ExplainScoreChangeRequest {
                account: Some(acct("u1")),
                dimension: d as i32,
                from_run_id: from,
                to_run_id: to,
            };
            client.explain_score_change(req).await.unwrap().into_inner()
        }
    };
    let (mut named, mut named_before) = (0, 0);
    for d in [
        pb::Dimension::Activity,
        pb::Dimension::Reach,
        pb::Dimension::Network,
        pb::Dimension::Action,
        pb::Dimension::Authenticity,
    ] {
        let i = (d as i32 - 1) as usize;
        // Across the erasure: from what r1 recorded to what r2 serves.
        let e = explain(r1.run_id, r2, d).await;
        let recorded = overall(&p1, d);
        assert_eq!(e.from_value, recorded.value, "{d:?}");
        // The history's percentile, on the explanation's 1/1024 grid.
        assert_eq!(e.from_percentile, quantize(recorded.percentile), "{d:?}");
        let served = now.accounts[0].scores.iter().find(|s| s.dimension == d as i32 && s.topic.is_empty()).unwrap();
        assert!((e.to_value - served.value).abs() <= 1e-9, "{d:?}: {} vs {}", e.to_value, served.value);
        assert_eq!(e.contributions.iter().map(|c| c.delta).sum::<f64>(), e.to_value - e.from_value, "{d:?}");
        assert_eq!(
            e.percentile_contributions.iter().map(|c| c.delta).sum::<f64>(),
            e.to_percentile - e.from_percentile,
            "{d:?}"
        );
        let value_part = again.values[i][u1] - recorded.value;
        let erasure = e.contributions.iter().find(|c| c.kind == pb::ContributionKind::Erasure as i32);
        assert_eq!(erasure.map_or(0.0, |c| c.delta), value_part, "{d:?}: {e:#?}");
        let pct_part = quantize(again.percentiles[i][u1]) - quantize(recorded.percentile);
        let pct = e.percentile_contributions.iter().find(|c| c.cause == pb::PercentileCause::Erasure as i32);
        assert_eq!(pct.map_or(0.0, |c| c.delta), pct_part, "{d:?}: {e:#?}");
        if let Some(c) = erasure {
            named += 1;
            assert!(c.description.contains("another person was erased at their request"), "{}", c.description);
            assert_eq!((c.event_offsets.clone(), c.event_count), (vec![erased.marker_offset], 1));
        }
        names_no_one(&e);

        // Between two runs that both precede the erasure: both recorded ends.
        let e = explain(r0.run_id, r1.run_id, d).await;
        assert_eq!((e.from_value, e.to_value), (overall(&p0, d).value, recorded.value), "{d:?}");
        assert_eq!(
            (e.from_percentile, e.to_percentile),
            (quantize(overall(&p0, d).percentile), quantize(recorded.percentile))
        );
        assert_eq!(e.contributions.iter().map(|c| c.delta).sum::<f64>(), e.to_value - e.from_value, "{d:?}");
        assert_eq!(
            e.percentile_contributions.iter().map(|c| c.delta).sum::<f64>(),
            e.to_percentile - e.from_percentile
        );
        if let Some(c) = e.contributions.iter().find(|c| c.kind == pb::ContributionKind::Erasure as i32) {
            named_before += 1;
            assert!(c.description.contains("the later run, computed before the removal too"), "{}", c.description);
        }
        names_no_one(&e);
    }
    assert!(named > 0, "bob's engagement moved some dimension of u1, and its erasure is named");
    assert!(named_before > 0, "bob's engagement between r0 and r1 is named as erased data");
    run.stop.trigger();
    ingest_stop.trigger();
}
