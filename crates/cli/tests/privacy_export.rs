//! `lift privacy export` merging scoring's part into ingestion's NDJSON stream:
//! the account's events and links, then its current scores (with gaming flags)
//! and every score-history point, then one summary that counts them and no
//! longer lists scoring's history as not covered.

use std::time::Duration;

use lift_cli::privacy::{SCORING_NOT_COVERED, export};
use lift_ingest::{Ingest, IngestConfig};
use lift_proto::ingest::v1 as ipb;
use lift_proto::privacy::v1 as ppb;
use lift_proto::privacy::v1::privacy_service_client::PrivacyServiceClient;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::client::{Channel, Credentials, with_credentials};
use lift_runtime::{ServeOptions, Shutdown};
use lift_scoring::engine::testutil::random_stream;
use lift_scoring::{Scoring, ScoringConfig};
use tokio::net::TcpListener;

fn channel(addr: std::net::SocketAddr) -> Channel {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
    with_credentials(endpoint.connect_lazy(), Credentials::none())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_merges_scoring_history_into_the_stream() {
    let stop = Shutdown::new();
    let ingest = Ingest::new(lift_store::connect("sqlite::memory:").await.expect("db"), IngestConfig::default());
    let events: Vec<_> = random_stream(3, 10, 400).into_iter().map(|e| e.event).collect();
    // Two halves, so scoring commits at least two runs (two history points).
    ingest.append(&events[..200]).await.expect("append");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let ingest_addr = listener.local_addr().expect("addr");
    tokio::spawn(lift_runtime::serve_pair(
        listener,
        ingest.grpc(),
        ingest.privacy(),
        stop.clone(),
        ServeOptions::default(),
    ));

    let cfg = ScoringConfig {
        debounce: Duration::from_millis(30),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        history_resolution: 0.0,
        ..ScoringConfig::default()
    };
    let ledger = ipb::ingest_service_client::IngestServiceClient::new(channel(ingest_addr));
    let scoring = Scoring::with_ledger(lift_store::connect("sqlite::memory:").await.expect("db"), cfg, ledger.clone())
        .await
        .expect("scoring");
    {
        let (s, stop) = (scoring.clone(), stop.clone());
        tokio::spawn(async move { s.run_consumer(ledger, stop).await });
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let scoring_addr = listener.local_addr().expect("addr");
    tokio::spawn(lift_runtime::serve(listener, scoring.grpc(), stop.clone()));
    let wait = |offset| {
        let s = scoring.clone();
        async move { tokio::time::timeout(Duration::from_secs(60), s.wait_for_offset(offset)).await.expect("scored") }
    };
    wait(200).await;
    ingest.append(&events[200..]).await.expect("append");
    wait(400).await;

    let account = ipb::AccountRef { network: "t".into(), id: "u3".into() };
    let subject = ppb::Subject { kind: Some(ppb::subject::Kind::Account(account)) };
    let mut privacy = PrivacyServiceClient::new(channel(ingest_addr));
    let mut scores = ScoringServiceClient::new(channel(scoring_addr));
    let mut out = Vec::new();
    let summary = export(&mut privacy, Some(&mut scores), subject.clone(), &mut out).await.expect("export");

    let lines: Vec<serde_json::Value> =
        String::from_utf8(out).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let count = |key: &str| lines.iter().filter(|l| l.get(key).is_some()).count() as u64;
    assert!(summary.events > 10, "{summary:?}");
    assert_eq!(count("event"), summary.events);
    assert_eq!(count("scores"), 1, "the account's current scores");
    let current = lines.iter().find_map(|l| l.get("scores")).expect("scores");
    assert_eq!(current["account"]["id"], "u3", "{current}");
    assert!(summary.score_history_points >= 2, "{summary:?}");
    assert_eq!(count("history"), summary.score_history_points);
    assert_eq!(count("summary"), 1);
    assert!(lines.last().and_then(|l| l.get("summary")).is_some(), "the summary comes last");
    assert_eq!(summary.not_covered.first().map(String::as_str), Some(SCORING_NOT_COVERED));
    assert!(!summary.not_covered.iter().any(|s| s.contains("score history")), "{:?}", summary.not_covered);
    assert!(summary.not_covered.iter().any(|s| s.starts_with("matching:")), "{:?}", summary.not_covered);

    // Without scoring, the export is ingestion's alone and says so.
    let mut out = Vec::new();
    let alone = export(&mut privacy, None, subject, &mut out).await.expect("export");
    assert_eq!(alone.score_history_points, 0);
    assert!(alone.not_covered.iter().any(|s| s.contains("score history")), "{:?}", alone.not_covered);
    stop.trigger();
}
