//! `lift privacy export` merging scoring's and matching's parts into ingestion's
//! NDJSON stream: the account's events and links, then its current scores (with
//! gaming flags), every score-history point and the explanation of each
//! dimension's change between consecutive points, then the rows matching holds
//! about it, then one summary that counts them and no longer lists scoring's
//! history or matching as not covered; and matching refusing a key without
//! privacy:admin. (Every kind of matching row is pinned by
//! `crates/matching/tests/privacy_export.rs`.)

use std::time::Duration;

use lift_cli::privacy::{SCORING_NOT_COVERED, Sources, export};
use lift_ingest::{Ingest, IngestConfig};
use lift_matching::{Matching, MatchingConfig, create_brand};
use lift_proto::ingest::v1 as ipb;
use lift_proto::matching::v1 as mpb;
use lift_proto::matching::v1::matching_privacy_service_client::MatchingPrivacyServiceClient;
use lift_proto::privacy::v1 as ppb;
use lift_proto::privacy::v1::privacy_service_client::PrivacyServiceClient;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::client::{Channel, Credentials, with_credentials};
use lift_runtime::{ServeOptions, Shutdown};
use lift_scoring::engine::testutil::random_stream;
use lift_scoring::{Scoring, ScoringConfig};
use tokio::net::TcpListener;

fn channel(addr: std::net::SocketAddr) -> Channel {
    keyed(addr, None)
}

fn keyed(addr: std::net::SocketAddr, key: Option<&str>) -> Channel {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
    with_credentials(endpoint.connect_lazy(), Credentials::from_option(key).expect("key"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_export_merges_scoring_and_matching_into_the_stream() {
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
    // Matching, served as `lift serve matching` serves it, holding a brand's rate for the account.
    let mdb = lift_store::connect("sqlite::memory:").await.expect("db");
    let m = Matching::new(
        mdb.clone(),
        ScoringServiceClient::new(channel(scoring_addr)),
        ipb::ingest_service_client::IngestServiceClient::new(channel(ingest_addr)),
        MatchingConfig::default(),
    );
    let (brand, brand_key) = create_brand(&mdb, "Acme").await.expect("brand");
    let rates = mpb::SetRateCardRequest {
        currency: "EUR".into(),
        rates: vec![mpb::CreatorRate { account: Some(account.clone()), rate: 700 }],
        replace: false,
    };
    m.set_rate_card(&brand, &rates).await.expect("rate card");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let matching_addr = listener.local_addr().expect("addr");
    tokio::spawn(lift_runtime::serve_pair(listener, m.grpc(), m.privacy(), stop.clone(), ServeOptions::default()));
    let scope = [lift_runtime::auth::Scope::PrivacyAdmin];
    let (_, admin_key) = lift_runtime::auth::create_key(&mdb, "dpo", &scope, None).await.expect("key");

    let subject = ppb::Subject { kind: Some(ppb::subject::Kind::Account(account)) };
    let mut privacy = PrivacyServiceClient::new(channel(ingest_addr));
    let mut scores = ScoringServiceClient::new(channel(scoring_addr));
    let mut matching = MatchingPrivacyServiceClient::new(keyed(matching_addr, Some(&admin_key)));
    let mut out = Vec::new();
    let sources = Sources { scoring: Some(&mut scores), matching: Some(&mut matching) };
    let summary = export(&mut privacy, sources, subject.clone(), &mut out).await.expect("export");

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

    // One explanation per dimension and consecutive pair of history points, each
    // from one run to the next, either explained or saying why not.
    assert!(summary.score_explanations >= summary.score_history_points - 1, "{summary:?}");
    assert_eq!(count("explanation"), summary.score_explanations);
    let runs: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.get("history"))
        .map(|h| h["runId"].as_str().and_then(|r| r.parse().ok()).expect("runId"))
        .collect();
    let mut explained = 0;
    for e in lines.iter().filter_map(|l| l.get("explanation")) {
        let run = |k: &str| e[k].as_str().and_then(|r| r.parse::<u64>().ok()).expect("run id");
        let (from, to) = (run("fromRunId"), run("toRunId"));
        assert!(runs.windows(2).any(|w| w == [to, from]), "{e} pairs consecutive points of {runs:?}");
        assert_eq!(e["account"]["id"], "u3", "{e}");
        match (e.get("explanation"), e.get("notAvailable")) {
            (Some(x), None) => {
                explained += 1;
                assert!(x.get("toModelVersion").is_some(), "{x}");
            }
            (None, Some(why)) => assert!(why.as_str().is_some_and(|w| !w.is_empty()), "{e}"),
            other => panic!("an explanation or a reason, not {other:?}: {e}"),
        }
    }
    assert_eq!(explained, summary.score_explanations - summary.score_explanations_unavailable);
    assert!(explained > 0, "scoring explains the account's changes: {summary:?}");

    // Matching's rows: the brand's rate, typed; matching's summary folded into the export's.
    assert_eq!(count("matching"), summary.matching_records);
    assert_eq!(summary.matching_records, 1, "{summary:?}");
    let rate = lines.iter().find_map(|l| l.get("matching")).and_then(|m| m.get("rateCard")).expect("a rate card row");
    assert_eq!((rate["brandId"].as_str(), rate["entry"]["rate"].as_str()), (Some(brand.0.as_str()), Some("700")));

    assert_eq!(count("summary"), 1);
    assert!(lines.last().and_then(|l| l.get("summary")).is_some(), "the summary comes last");
    assert_eq!(summary.not_covered.first().map(String::as_str), Some(SCORING_NOT_COVERED));
    assert!(!summary.not_covered.iter().any(|s| s.contains("score history")), "{:?}", summary.not_covered);
    assert!(!summary.not_covered.iter().any(|s| s.starts_with("matching:")), "{:?}", summary.not_covered);

    // Without scoring and matching, the export is ingestion's alone and says so.
    let mut out = Vec::new();
    let alone = export(&mut privacy, Sources::default(), subject.clone(), &mut out).await.expect("export");
    assert_eq!((alone.score_history_points, alone.score_explanations, alone.matching_records), (0, 0, 0));
    assert!(alone.not_covered.iter().any(|s| s.contains("score history")), "{:?}", alone.not_covered);
    assert!(alone.not_covered.iter().any(|s| s.starts_with("matching:")), "{:?}", alone.not_covered);

    // A brand's key may not read matching's rows about anyone: the export fails, saying so.
    let mut as_brand = MatchingPrivacyServiceClient::new(keyed(matching_addr, Some(&brand_key)));
    let sources = Sources { scoring: None, matching: Some(&mut as_brand) };
    let err = export(&mut privacy, sources, subject, &mut Vec::new()).await.expect_err("refused");
    let status = err.chain().find_map(|e| e.downcast_ref::<tonic::Status>()).expect("a gRPC status");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{err:#}");
    assert!(format!("{err:#}").contains("privacy:admin"), "{err:#}");
    stop.trigger();
}
