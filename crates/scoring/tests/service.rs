//! The scoring service over real gRPC on loopback: it consumes a ledger served
//! by an in-test `IngestService` (only `Subscribe` answers; it streams from a
//! vector and tails appends), commits runs to SQLite, and serves reads.

use lift_proto::convert::prelude::*;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lift_proto::ingest::v1 as ipb;
use lift_proto::ingest::v1::ingest_service_server::{IngestService, IngestServiceServer};
use lift_proto::scoring::v1 as pb;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::Shutdown;
use lift_scoring::engine::testutil::{SEC, T0, like, post, random_stream};
use lift_scoring::engine::{ModelParams, State, compute};
use lift_scoring::{Scoring, ScoringConfig};
use lift_store::ConnectionTrait;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};

/// A ledger in memory: `Subscribe` streams what is there after the offset, then tails.
#[derive(Clone)]
struct Ledger {
    events: Arc<Mutex<Vec<ipb::LedgerEvent>>>,
    head: watch::Sender<u64>,
}

impl Ledger {
    fn new() -> Self {
        Self { events: Arc::default(), head: watch::channel(0).0 }
    }

    fn append(&self, entries: &[lift_domain::LedgerEntry]) {
        let mut ev = self.events.lock().unwrap();
        ev.extend(entries.iter().map(lift_domain::LedgerEntry::to_proto));
        self.head.send_replace(ev.last().map_or(0, |e| e.offset));
    }

    fn after(&self, offset: u64, max: usize) -> (Vec<ipb::LedgerEvent>, u64) {
        let ev = self.events.lock().unwrap();
        let out: Vec<_> = ev.iter().filter(|e| e.offset > offset).take(max).cloned().collect();
        (out, ev.last().map_or(0, |e| e.offset))
    }
}

#[tonic::async_trait]
impl IngestService for Ledger {
    async fn ingest_batch(
        &self,
        _: Request<ipb::IngestBatchRequest>,
    ) -> Result<Response<ipb::IngestBatchResponse>, Status> {
        Err(Status::unimplemented("test ledger"))
    }
    async fn ingest_stream(
        &self,
        _: Request<tonic::Streaming<ipb::IngestStreamRequest>>,
    ) -> Result<Response<ipb::IngestStreamResponse>, Status> {
        Err(Status::unimplemented("test ledger"))
    }
    type SubscribeStream = ReceiverStream<Result<ipb::SubscribeResponse, Status>>;
    async fn subscribe(&self, req: Request<ipb::SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        let mut after = req.into_inner().after_offset;
        let (tx, rx) = mpsc::channel(4);
        let me = self.clone();
        tokio::spawn(async move {
            let mut head_rx = me.head.subscribe();
            loop {
                let (events, head) = me.after(after, 300);
                if let Some(last) = events.last() {
                    after = last.offset;
                }
                let caught_up = after >= head;
                if (!events.is_empty() || caught_up)
                    && tx.send(Ok(ipb::SubscribeResponse { events, head_offset: head, caught_up })).await.is_err()
                {
                    return;
                }
                if caught_up && head_rx.wait_for(|h| *h > after).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
    async fn register_links(
        &self,
        _: Request<ipb::RegisterLinksRequest>,
    ) -> Result<Response<ipb::RegisterLinksResponse>, Status> {
        Err(Status::unimplemented("test ledger"))
    }
    async fn resolve_links(
        &self,
        _: Request<ipb::ResolveLinksRequest>,
    ) -> Result<Response<ipb::ResolveLinksResponse>, Status> {
        Err(Status::unimplemented("test ledger"))
    }
    async fn get_ledger_info(
        &self,
        _: Request<ipb::GetLedgerInfoRequest>,
    ) -> Result<Response<ipb::GetLedgerInfoResponse>, Status> {
        Err(Status::unimplemented("test ledger"))
    }
}

async fn serve_ledger(ledger: Ledger, listener: TcpListener, shutdown: Shutdown) {
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(IngestServiceServer::new(ledger))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.wait())
            .await
    });
}

struct Running {
    scoring: Scoring,
    client: ScoringServiceClient<tonic::transport::Channel>,
    stop: Shutdown,
    consumer: tokio::task::JoinHandle<Result<(), lift_scoring::Error>>,
}

fn test_config(model: ModelParams) -> ScoringConfig {
    ScoringConfig {
        model,
        debounce: Duration::from_millis(50),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_rr_sets: 200_000,
        // Every change is a history point, so the history below is exact run by run.
        history_resolution: 0.0,
        // The service's incremental path, so these tests cover its wiring too.
        incremental_runs: true,
        ..ScoringConfig::default()
    }
}

async fn start_scoring(db: lift_store::DatabaseConnection, ingest: SocketAddr, model: ModelParams) -> Running {
    start_scoring_with(db, ingest, test_config(model)).await
}

async fn start_scoring_with(db: lift_store::DatabaseConnection, ingest: SocketAddr, cfg: ScoringConfig) -> Running {
    let client = ledger_client(ingest);
    let scoring = Scoring::with_ledger(db, cfg, client.clone()).await.unwrap();
    let stop = Shutdown::new();
    let consumer = {
        let (s, stop) = (scoring.clone(), stop.clone());
        tokio::spawn(async move { s.run_consumer(client, stop).await })
    };
    let client = serve_scoring(&scoring, &stop).await;
    Running { scoring, client, stop, consumer }
}

fn ledger_client(ingest: SocketAddr) -> ipb::ingest_service_client::IngestServiceClient<lift_runtime::client::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{ingest}")).unwrap().connect_lazy();
    let channel = lift_runtime::client::with_credentials(channel, lift_runtime::client::Credentials::none());
    ipb::ingest_service_client::IngestServiceClient::new(channel)
}

async fn serve_scoring(scoring: &Scoring, stop: &Shutdown) -> ScoringServiceClient<tonic::transport::Channel> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(lift_runtime::serve(listener, scoring.grpc(), stop.clone()));
    ScoringServiceClient::new(tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_lazy())
}

async fn wait_offset(s: &Scoring, offset: u64) {
    tokio::time::timeout(Duration::from_secs(60), s.wait_for_offset(offset))
        .await
        .unwrap_or_else(|_| panic!("no run as of {offset}; at {}", s.as_of_offset()));
}

fn acct(id: &str) -> ipb::AccountRef {
    ipb::AccountRef { network: "t".into(), id: id.into() }
}

fn value(a: &pb::AccountScores, d: pb::Dimension) -> f64 {
    a.scores.iter().find(|s| s.dimension == d as i32 && s.topic.is_empty()).unwrap().value
}

/// Pins the end-to-end behaviour of the service: scores appear, follow new events without a
/// restart, survive a restart identically (without a new run), and reads answer over gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumes_commits_serves_and_restarts() {
    let db = lift_store::connect("sqlite::memory:").await.unwrap();
    let ledger = Ledger::new();
    let stream = random_stream(1, 80, 1500);
    ledger.append(&stream[..1000]);

    // Ingestion is down when scoring starts: the consumer must retry until it is up.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let ingest_stop = Shutdown::new();
    let mut run = start_scoring(db.clone(), addr, ModelParams::default()).await;
    tokio::time::sleep(Duration::from_millis(100)).await; // let a few connection attempts fail
    serve_ledger(ledger.clone(), TcpListener::bind(addr).await.unwrap(), ingest_stop.clone()).await;
    wait_offset(&run.scoring, 1000).await;

    // The served values equal a direct computation on the same prefix.
    let mut direct = State::new();
    for e in &stream[..1000] {
        direct.apply(e);
    }
    let expected = compute(&direct, &ModelParams::default());
    let u1 = direct.node(&lift_domain::AccountId::new("t", "u1")).unwrap() as usize;
    let got = run.client.get_scores(pb::GetScoresRequest { accounts: vec![acct("u1"), acct("nobody")] }).await.unwrap();
    let got = got.into_inner();
    assert_eq!(got.unknown, vec![acct("nobody")]);
    let a = &got.accounts[0];
    assert_eq!(a.as_of_offset, 1000);
    assert_eq!(value(a, pb::Dimension::Network), expected.values[2][u1]);
    assert_eq!(value(a, pb::Dimension::Activity), expected.values[0][u1]);
    assert_eq!(a.scores.iter().filter(|s| s.topic.is_empty()).count(), 5);

    // New events move the scores without a restart.
    let star_before = value(&a.clone(), pb::Dimension::Activity);
    let mut more = stream[1000..].to_vec();
    let t = T0 / SEC + 1500 * 600;
    let mut off = 1500;
    for i in 0..20 {
        off += 1;
        more.push(post(off, "u1", &format!("hot{i}"), &[], t + i));
        for k in 0..5 {
            off += 1;
            more.push(like(off, &format!("u{}", 10 + k + i % 7), "u1", &format!("hot{i}"), t + i + 60));
        }
    }
    ledger.append(&more);
    wait_offset(&run.scoring, off).await;
    let after = run.client.get_scores(pb::GetScoresRequest { accounts: vec![acct("u1")] }).await.unwrap().into_inner();
    let star_after = value(&after.accounts[0], pb::Dimension::Activity);
    assert!(star_after > star_before, "{star_after} > {star_before}");
    let run_id = after.accounts[0].run_id;
    assert!(run_id >= 2);

    // Queries: ordered, filtered, paged.
    let q = pb::QueryAccountsRequest {
        order_by: pb::Dimension::Network as i32,
        filters: vec![pb::PercentileFilter {
            dimension: pb::Dimension::Reach as i32,
            topic: String::new(),
            min_percentile: 20.0,
        }],
        page_size: 10,
        ..Default::default()
    };
    let page = run.client.query_accounts(q.clone()).await.unwrap().into_inner();
    assert_eq!(page.accounts.len(), 10);
    assert!(page.total_matching > 10);
    assert!(!page.next_page_token.is_empty());
    let nets: Vec<f64> = page.accounts.iter().map(|a| value(a, pb::Dimension::Network)).collect();
    assert!(nets.windows(2).all(|w| w[0] >= w[1]));
    let page2 = run
        .client
        .query_accounts(pb::QueryAccountsRequest { page_token: page.next_page_token.clone(), ..q })
        .await
        .unwrap()
        .into_inner();
    assert!(value(&page2.accounts[0], pb::Dimension::Network) <= nets[9]);
    assert_ne!(page2.accounts[0].account, page.accounts[9].account);

    // Validation: InvalidArgument with field violations.
    let err = run.client.query_accounts(pb::QueryAccountsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let details = <tonic::Status as tonic_types::StatusExt>::get_error_details(&err);
    assert_eq!(details.bad_request().unwrap().field_violations[0].field, "order_by");

    // History and model.
    let h = run
        .client
        .get_score_history(pb::GetScoreHistoryRequest { account: Some(acct("u1")), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(h.points.len() >= 2);
    assert!(h.next_page_token.is_empty());
    // Paged one point at a time, the same points in the same order.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let req =
            pb::GetScoreHistoryRequest { account: Some(acct("u1")), limit: 1, page_token: token, ..Default::default() };
        let page = run.client.get_score_history(req).await.unwrap().into_inner();
        paged.extend(page.points.iter().map(|p| p.run_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, h.points.iter().map(|p| p.run_id).collect::<Vec<_>>());
    // A time range keeps the points as of inside it; a token from another range is refused.
    let newest = h.points[0].as_of_time;
    let req = pb::GetScoreHistoryRequest { account: Some(acct("u1")), since: newest, ..Default::default() };
    let recent = run.client.get_score_history(req).await.unwrap().into_inner();
    let secs = |t: &Option<lift_proto::Timestamp>| t.as_ref().map(|t| (t.seconds, t.nanos));
    assert!(!recent.points.is_empty() && recent.points.iter().all(|p| secs(&p.as_of_time) >= secs(&newest)));
    let first_page = run
        .client
        .get_score_history(pb::GetScoreHistoryRequest { account: Some(acct("u1")), limit: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let req = pb::GetScoreHistoryRequest {
        account: Some(acct("u2")),
        limit: 1,
        page_token: first_page.next_page_token,
        ..Default::default()
    };
    let err = run.client.get_score_history(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(h.points[0].run_id, run_id);
    assert_eq!(h.points[0].scores.len(), 5);
    assert_eq!(h.points[0].scores[0].value, star_after);
    let m = run.client.get_model(pb::GetModelRequest {}).await.unwrap().into_inner();
    assert_eq!(m.model_version, ModelParams::default().version());
    assert_eq!(m.distributions.len(), 5);
    assert_eq!(m.latest_run_id, run_id);
    assert!(m.recalibrations.is_empty());
    assert!(m.parameters.contains_key("half_life_days"));

    // The change since the first run splits exactly into its causes.
    let first = *h.points.iter().map(|p| &p.run_id).min().unwrap();
    for d in [pb::Dimension::Activity, pb::Dimension::Network, pb::Dimension::Authenticity] {
        let e = run
            .client
            .explain_score_change(pb::ExplainScoreChangeRequest {
                account: Some(acct("u1")),
                dimension: d as i32,
                from_run_id: first,
                to_run_id: 0,
            })
            .await
            .unwrap()
            .into_inner();
        let sum: f64 = e.contributions.iter().map(|c| c.delta).sum();
        assert_eq!(sum, e.to_value - e.from_value);
        // No entry of exactly 0, and no debug text (raw seconds or offset ranges).
        assert!(e.contributions.len() <= 4);
        for c in &e.contributions {
            assert_ne!(c.delta, 0.0, "{c:?}");
            assert!(!c.description.contains(" s to ") && !c.description.contains("..="), "{}", c.description);
        }
        assert_eq!(e.to_value, value(&after.accounts[0], d));
        if d == pb::Dimension::Activity {
            assert_eq!(e.from_value, star_before);
            let new = e
                .contributions
                .iter()
                .find(|c| c.kind == pb::ContributionKind::NewEvents as i32)
                .expect("new events moved activity");
            assert!(new.event_count >= 120, "{}", new.event_count);
        }
    }
    let e = run
        .client
        .explain_score_change(pb::ExplainScoreChangeRequest {
            account: Some(acct("u1")),
            dimension: 1,
            from_run_id: 999,
            to_run_id: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);

    // Seed selection: budgeted, costs respected, guarantee stated.
    let s = run
        .client
        .select_seeds(pb::SelectSeedsRequest {
            candidates: (0..30)
                .map(|i| pb::SeedCandidate { account: Some(acct(&format!("u{i}"))), cost: 1 + i % 3 })
                .collect(),
            budget: 6,
            k: 0,
            epsilon: 0.2,
            random_seed: 9,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!s.seeds.is_empty() && s.total_cost <= 6);
    assert!(s.estimated_spread >= s.seeds.len() as f64);
    assert!(s.guarantee.contains("budget 6"));
    let e = run.client.select_seeds(pb::SelectSeedsRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    // Restart: same scores, reproduced from the ledger, and no new run committed.
    run.stop.trigger();
    run.consumer.await.unwrap().unwrap();
    let before = after.accounts[0].clone();
    let mut run = start_scoring(db.clone(), addr, ModelParams::default()).await;
    wait_offset(&run.scoring, off).await;
    let again = run.client.get_scores(pb::GetScoresRequest { accounts: vec![acct("u1")] }).await.unwrap().into_inner();
    assert_eq!(again.accounts[0].scores, before.scores);
    assert_eq!(again.accounts[0].run_id, run_id);
    run.stop.trigger();
    run.consumer.await.unwrap().unwrap();

    // A new model version recalibrates at the same offset and publishes the mapping.
    let model = ModelParams { half_life_days: 7.0, ..ModelParams::default() };
    let mut run = start_scoring(db.clone(), addr, model.clone()).await;
    wait_offset(&run.scoring, off).await;
    let m = run.client.get_model(pb::GetModelRequest {}).await.unwrap().into_inner();
    assert_eq!(m.model_version, model.version());
    assert_eq!(m.latest_run_id, run_id + 1);
    assert_eq!(m.recalibrations.len(), 5);
    assert_eq!(m.recalibrations[0].from_version, ModelParams::default().version());
    run.stop.trigger();
    run.consumer.await.unwrap().unwrap();
    ingest_stop.trigger();
}

fn accounts_of(stream: &[lift_domain::LedgerEntry]) -> Vec<ipb::AccountRef> {
    let mut s = State::new();
    for e in stream {
        s.apply(e);
    }
    s.accounts.iter().map(|a| a.id.to_proto()).collect()
}

async fn all_scores(run: &mut Running, accounts: &[ipb::AccountRef]) -> Vec<pb::AccountScores> {
    run.client.get_scores(pb::GetScoresRequest { accounts: accounts.to_vec() }).await.unwrap().into_inner().accounts
}

/// Waits until a checkpoint at `offset` is stored.
async fn wait_checkpoint(db: &lift_store::DatabaseConnection, offset: u64) {
    for _ in 0..600 {
        let list = lift_store::checkpoints::list(db).await.unwrap();
        if list.iter().any(|c| c.as_of_offset == offset) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no checkpoint at {offset}");
}

/// Pins checkpoint restarts: scoring writes a checkpoint with a run, a restart
/// loads it and replays only the tail — proven by serving a ledger *without*
/// the checkpointed prefix — and serves scores identical to the uninterrupted
/// run's; a damaged checkpoint falls back to a full replay with the same scores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_checkpoint_replays_only_the_tail() {
    let db = lift_store::connect("sqlite::memory:").await.unwrap();
    let stream = random_stream(4, 60, 1600);
    let accounts = accounts_of(&stream);
    let ledger = Ledger::new();
    ledger.append(&stream[..1000]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ingest_stop = Shutdown::new();
    serve_ledger(ledger.clone(), listener, ingest_stop.clone()).await;
    // PageRank in full every run (drift tolerance 0): a local update's vector depends on which
    // runs came before (their boundaries follow the debounce timing here), so only full runs
    // make a restart, and the full replay below, identical bit for bit; with local updates
    // they agree within the stated bound, which `engine::incremental_tests` checks.
    let cfg = ScoringConfig {
        checkpoint_every_events: 900,
        pagerank_drift_tolerance: 0.0,
        ..test_config(ModelParams::default())
    };

    let mut run = start_scoring_with(db.clone(), addr, cfg.clone()).await;
    wait_offset(&run.scoring, 1000).await;
    wait_checkpoint(&db, 1000).await;
    ledger.append(&stream[1000..]);
    wait_offset(&run.scoring, 1600).await;
    let uninterrupted = all_scores(&mut run, &accounts).await;
    assert_eq!(uninterrupted.len(), accounts.len());
    run.stop.trigger();
    run.consumer.await.unwrap().unwrap();
    ingest_stop.trigger();

    // Only the tail after the checkpoint is served: a full replay could not reproduce the scores.
    let tail = Ledger::new();
    tail.append(&stream[1000..]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tail_addr = listener.local_addr().unwrap();
    let tail_stop = Shutdown::new();
    serve_ledger(tail, listener, tail_stop.clone()).await;
    let mut run = start_scoring_with(db.clone(), tail_addr, cfg.clone()).await;
    wait_offset(&run.scoring, 1600).await;
    let restarted = all_scores(&mut run, &accounts).await;
    assert_eq!(restarted, uninterrupted);
    // Explanations start from the checkpoint too: this ledger has no prefix to replay.
    let from_run: i64 = db
        .query_one_raw(lift_store::Statement::from_string(
            db.get_database_backend(),
            "SELECT MIN(run_id) FROM scoring_runs WHERE as_of_offset >= 1000",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    let explain_req = pb::ExplainScoreChangeRequest {
        account: Some(accounts[0].clone()),
        dimension: pb::Dimension::Activity as i32,
        from_run_id: u64::try_from(from_run).unwrap(),
        to_run_id: 0,
    };
    let from_checkpoint = run.client.explain_score_change(explain_req.clone()).await.unwrap().into_inner();
    let sum: f64 = from_checkpoint.contributions.iter().map(|c| c.delta).sum();
    assert!((from_checkpoint.from_value + sum - from_checkpoint.to_value).abs() < 1e-9);
    run.stop.trigger();
    run.consumer.await.unwrap().unwrap();
    tail_stop.trigger();

    // A damaged checkpoint is refused: the full ledger is replayed, same scores.
    db.execute_unprepared("UPDATE scoring_checkpoint_chunks SET data = X'00010203'").await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let full_addr = listener.local_addr().unwrap();
    let full_stop = Shutdown::new();
    serve_ledger(ledger, listener, full_stop.clone()).await;
    let mut run = start_scoring_with(db.clone(), full_addr, cfg).await;
    wait_offset(&run.scoring, 1600).await;
    assert_eq!(all_scores(&mut run, &accounts).await, uninterrupted);
    // Replayed from the start of the ledger, the explanation is the same.
    let from_start = run.client.explain_score_change(explain_req).await.unwrap().into_inner();
    assert_eq!(from_start, from_checkpoint);
    run.stop.trigger();
    run.consumer.await.unwrap().unwrap();
    full_stop.trigger();
}

/// Pins that explanations do not wait for the consumer: a server built with its
/// ledger client explains a change between stored runs before any consumer has
/// started, and one built without a client answers UNAVAILABLE instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explains_before_the_consumer_starts() {
    let db = lift_store::connect("sqlite::memory:").await.unwrap();
    let ledger = Ledger::new();
    let stream = random_stream(1, 80, 1500);
    ledger.append(&stream[..1000]);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let ingest_stop = Shutdown::new();
    serve_ledger(ledger.clone(), l, ingest_stop.clone()).await;
    // Two stored runs, then the server that made them stops.
    let run = start_scoring(db.clone(), addr, ModelParams::default()).await;
    wait_offset(&run.scoring, 1000).await;
    ledger.append(&stream[1000..]);
    wait_offset(&run.scoring, 1500).await;
    run.stop.trigger();
    run.consumer.await.unwrap().unwrap();
    let first = lift_store::scoring::get_run(&db, 1).await.unwrap().expect("first run");
    assert_eq!(first.as_of_offset, 1000);

    let cfg = ScoringConfig { debounce: Duration::from_millis(50), ..ScoringConfig::default() };
    let stop = Shutdown::new();
    let fresh = Scoring::with_ledger(db.clone(), cfg.clone(), ledger_client(addr)).await.unwrap();
    let mut client = serve_scoring(&fresh, &stop).await;
    let req = pb::ExplainScoreChangeRequest {
        account: Some(acct("u1")),
        dimension: pb::Dimension::Activity as i32,
        from_run_id: first.run_id,
        to_run_id: 0,
    };
    let e = client.explain_score_change(req.clone()).await.expect("explained without a consumer").into_inner();
    assert_eq!(fresh.as_of_offset(), 0, "no consumer has published a run");
    let sum: f64 = e.contributions.iter().map(|c| c.delta).sum();
    assert_eq!(sum, e.to_value - e.from_value);
    // Zero contributions are left out (as in `consumes_commits_serves_and_restarts`).
    assert!((1..=4).contains(&e.contributions.len()), "{:?}", e.contributions);

    let bare = Scoring::new(db, cfg).await.unwrap();
    let mut client = serve_scoring(&bare, &stop).await;
    let err = client.explain_score_change(req).await.expect_err("no ledger client");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    stop.trigger();
    ingest_stop.trigger();
}
