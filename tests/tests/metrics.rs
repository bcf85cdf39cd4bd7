//! Prometheus metrics as an operator scrapes them: after a scripted scenario, the
//! `/metrics` endpoint's counts equal what happened.
//!
//! The recorder is process-wide, so this file holds one test (its own process) and
//! asserts on differences between a scrape before and after the scenario.

use std::collections::BTreeMap;
use std::time::Duration;

use lift_cli::stack::{Databases, Stack};
use lift_proto::Timestamp;
use lift_proto::ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient};
use lift_proto::scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::Code;

/// One scrape: `name{labels}` → value, for every sample line.
type Samples = BTreeMap<String, f64>;

async fn scrape(addr: std::net::SocketAddr) -> anyhow::Result<(String, Samples)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: lift\r\nConnection: close\r\n\r\n").await?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).await?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(|| anyhow::anyhow!("no HTTP body in {raw:?}"))?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    anyhow::ensure!(head.to_ascii_lowercase().contains("content-type: text/plain"), "{head}");
    let mut samples = Samples::new();
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        if let Some((key, value)) = line.rsplit_once(' ') {
            samples.insert(key.to_owned(), value.parse().unwrap_or(f64::NAN));
        }
    }
    Ok((body.to_owned(), samples))
}

/// The value of the sample whose name is `name` and whose labels include all of `labels`
/// (summed over the samples that match: label order in the text does not matter).
fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| {
            let (n, rest) = k.split_once('{').unwrap_or((k.as_str(), ""));
            n == name && labels.iter().all(|(l, v)| rest.contains(&format!("{l}=\"{v}\"")))
        })
        .map(|(_, v)| *v)
        .sum()
}

fn event(i: u32, id: &str) -> ipb::Event {
    let a = |n: u32| Some(ipb::AccountRef { network: "m".into(), id: format!("a{n}") });
    ipb::Event {
        event_id: id.to_owned(),
        source: "metrics-test".into(),
        occurred_at: Some(Timestamp { seconds: 1_767_225_600 + i64::from(i), nanos: 0 }),
        kind: Some(ipb::event::Kind::Follow(ipb::Follow { follower: a(i), followee: a(i + 1), unfollow: false })),
    }
}

/// Pins the metrics against a scripted scenario: calls per method and code (including
/// a refused call and an invalid one), events accepted and rejected by reason, auth
/// failures by reason, the ledger head, and scoring's consumer lag back to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_counts_what_happened() -> anyhow::Result<()> {
    let cfg = lift_scoring::ScoringConfig { debounce: Duration::from_millis(20), ..Default::default() };
    let stack = Stack::start_loopback(&Databases::in_memory(), cfg).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let metrics_addr = listener.local_addr()?;
    let server = tokio::spawn(lift_runtime::metrics::serve_metrics(listener, stack.shutdown.clone()));
    let r = async {
        let (_, before) = scrape(metrics_addr).await?;
        let mut ingest = IngestServiceClient::new(stack.channel(&stack.ingest_url())?);

        // 8 valid events and 2 with no event_id; then 2 of the 8 again (duplicates).
        let mut batch: Vec<_> = (0..8).map(|i| event(i, &format!("m-{i}"))).collect();
        batch.push(event(20, ""));
        batch.push(event(21, ""));
        let out = ingest.ingest_batch(ipb::IngestBatchRequest { events: batch }).await?.into_inner();
        assert_eq!((out.accepted, out.rejected), (8, 2));
        let again = vec![event(0, "m-0"), event(1, "m-1")];
        let out = ingest.ingest_batch(ipb::IngestBatchRequest { events: again }).await?.into_inner();
        assert_eq!(out.duplicates, 2);

        // No key: refused before the handler.
        let mut anon = IngestServiceClient::new(stack.channel_as(&stack.ingest_url(), None)?);
        let e = anon.ingest_batch(ipb::IngestBatchRequest { events: vec![] }).await.expect_err("no key");
        assert_eq!(e.code(), Code::Unauthenticated);

        // An over-long account id: INVALID_ARGUMENT.
        let mut scoring = ScoringServiceClient::new(stack.channel(&stack.scoring_url())?);
        let long = spb::GetScoreHistoryRequest {
            account: Some(ipb::AccountRef { network: "m".into(), id: "x".repeat(5_000) }),
            ..Default::default()
        };
        assert_eq!(scoring.get_score_history(long).await.expect_err("long id").code(), Code::InvalidArgument);

        // Scoring's consumer reaches the head: lag back to 0.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let after = loop {
            let (_, s) = scrape(metrics_addr).await?;
            let lag = value(&s, "lift_consumer_lag_events", &[("consumer", "scoring")]);
            let run_offset = value(&s, "lift_scoring_run_offset", &[]);
            if lag == 0.0 && run_offset >= 8.0 {
                break s;
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "scoring did not catch up: lag {lag}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let delta = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);

        let ingest_svc = ("grpc_service", "lift.ingest.v1.IngestService");
        let batch_m = ("grpc_method", "IngestBatch");
        assert_eq!(delta("grpc_server_started_total", &[ingest_svc, batch_m, ("grpc_type", "unary")]), 3.0);
        assert_eq!(delta("grpc_server_handled_total", &[ingest_svc, batch_m, ("grpc_code", "OK")]), 2.0);
        assert_eq!(delta("grpc_server_handled_total", &[ingest_svc, batch_m, ("grpc_code", "Unauthenticated")]), 1.0);
        assert_eq!(delta("grpc_server_handling_seconds_count", &[ingest_svc, batch_m]), 3.0);
        // The refused call's request was never read and its answer carried no message.
        assert_eq!(delta("grpc_server_msg_received_total", &[ingest_svc, batch_m]), 2.0);
        assert_eq!(delta("grpc_server_msg_sent_total", &[ingest_svc, batch_m]), 2.0);
        let history = [("grpc_service", "lift.scoring.v1.ScoringService"), ("grpc_method", "GetScoreHistory")];
        let invalid = [history[0], history[1], ("grpc_code", "InvalidArgument")];
        assert_eq!(delta("grpc_server_handled_total", &invalid), 1.0);
        assert_eq!(delta("grpc_server_handled_total", &history), 1.0, "no other outcome");
        assert_eq!(delta("grpc_server_msg_received_total", &history), 1.0);
        assert_eq!(delta("grpc_server_msg_sent_total", &history), 0.0, "an error answer carries no message");

        assert_eq!(delta("lift_ingest_events_accepted_total", &[]), 8.0);
        let invalid_id = [("reason", "invalid"), ("field", "event_id")];
        assert_eq!(delta("lift_ingest_events_rejected_total", &invalid_id), 2.0);
        assert_eq!(delta("lift_ingest_events_rejected_total", &[("reason", "duplicate")]), 2.0);
        assert_eq!(delta("lift_auth_failures_total", &[("reason", "missing")]), 1.0);
        assert_eq!(value(&after, "lift_ledger_head_offset", &[]), 8.0);
        assert_eq!(value(&after, "lift_consumer_lag_seconds", &[("consumer", "scoring")]), 0.0);
        assert!(delta("lift_scoring_runs_total", &[]) >= 1.0);
        assert!(value(&after, "lift_scoring_run_seconds_count", &[]) >= 1.0);
        assert!(value(&after, "lift_scoring_commit_seconds_bucket", &[("le", "+Inf")]) >= 1.0);
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    server.await??;
    r
}
