//! Setup shared by matching's integration tests: ingestion, scoring and
//! matching served in-process on loopback gRPC, each on its own in-memory
//! SQLite database unless a test gives one; brand clients carrying a key; and
//! the scripted social world most tests score.
//!
//! Each test file is its own crate and uses a part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use lift_domain::time::{MICROS_PER_SEC, now};
use lift_ingest::{Ingest, IngestConfig};
use lift_matching::{API_KEY_HEADER, Matching, MatchingConfig, create_brand};
use lift_proto::convert::to_timestamp;
use lift_proto::ingest::v1 as ipb;
use lift_proto::ingest::v1::event::Kind;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::matching::v1::matching_service_client::MatchingServiceClient;
use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use lift_runtime::Shutdown;
use lift_scoring::{Scoring, ScoringConfig};
use lift_store::DatabaseConnection;
use tokio::net::TcpListener;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// A channel that carries credentials (none here: these servers run without
/// the auth layer).
pub(crate) type Rt = lift_runtime::client::Channel;

/// A lazily connecting channel to `addr`.
pub(crate) fn lazy(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect_lazy()
}

pub(crate) fn rt(addr: SocketAddr) -> Rt {
    lift_runtime::client::with_credentials(lazy(addr), lift_runtime::client::Credentials::none())
}

/// A listener on a free loopback port, and its address.
pub(crate) async fn bind() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    (l, a)
}

/// An address nothing listens on.
pub(crate) async fn dead_addr() -> SocketAddr {
    let (l, a) = bind().await;
    drop(l);
    a
}

/// Ingestion on its own in-memory database, served until `stop`.
pub(crate) async fn start_ingest(stop: &Shutdown) -> SocketAddr {
    let ingest = Ingest::new(lift_store::connect("sqlite::memory:").await.expect("db"), IngestConfig::default());
    let (l, addr) = bind().await;
    tokio::spawn(lift_runtime::serve(l, ingest.grpc(), stop.clone()));
    addr
}

/// Scoring's defaults with a short debounce and short retry backoffs, so a
/// test's events are scored quickly.
pub(crate) fn quick_scoring(debounce_ms: u64) -> ScoringConfig {
    ScoringConfig {
        debounce: Duration::from_millis(debounce_ms),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..ScoringConfig::default()
    }
}

/// Scoring on `db`, following ingestion's ledger at `ingest_addr` and served
/// until `stop`.
pub(crate) async fn start_scoring(
    db: DatabaseConnection,
    ingest_addr: SocketAddr,
    cfg: ScoringConfig,
    stop: &Shutdown,
) -> (Scoring, SocketAddr) {
    let scoring = Scoring::new(db, cfg).await.expect("scoring");
    {
        let (s, stop) = (scoring.clone(), stop.clone());
        let client = IngestServiceClient::new(rt(ingest_addr));
        tokio::spawn(async move { s.run_consumer(client, stop).await });
    }
    let (l, addr) = bind().await;
    tokio::spawn(lift_runtime::serve(l, scoring.grpc(), stop.clone()));
    (scoring, addr)
}

/// Matching on `db` over the scoring and ingestion servers at the addresses given.
pub(crate) fn matching(
    db: DatabaseConnection,
    scoring_addr: SocketAddr,
    ingest_addr: SocketAddr,
    cfg: MatchingConfig,
) -> Matching {
    Matching::new(db, ScoringServiceClient::new(rt(scoring_addr)), IngestServiceClient::new(rt(ingest_addr)), cfg)
}

/// Serves `m` until `stop`; returns where.
pub(crate) async fn serve_matching(m: &Matching, stop: &Shutdown) -> SocketAddr {
    let (l, addr) = bind().await;
    tokio::spawn(lift_runtime::serve(l, m.grpc(), stop.clone()));
    addr
}

/// Ingestion and scoring following its ledger, each on loopback with its own
/// in-memory database; both stop when this is dropped.
pub(crate) struct Backend {
    pub(crate) ingest: IngestServiceClient<Rt>,
    pub(crate) ingest_addr: SocketAddr,
    pub(crate) scoring: Scoring,
    pub(crate) scoring_addr: SocketAddr,
    pub(crate) stop: Shutdown,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

pub(crate) async fn start_backend(scoring: ScoringConfig) -> Backend {
    let stop = Shutdown::new();
    let ingest_addr = start_ingest(&stop).await;
    let db = lift_store::connect("sqlite::memory:").await.expect("db");
    let (scoring, scoring_addr) = start_scoring(db, ingest_addr, scoring, &stop).await;
    Backend { ingest: IngestServiceClient::new(rt(ingest_addr)), ingest_addr, scoring, scoring_addr, stop }
}

/// Ingests `events` in batches of 1,000, asserting none is rejected; returns
/// the highest offset stored.
pub(crate) async fn ingest_all(client: &IngestServiceClient<Rt>, events: Vec<ipb::Event>) -> u64 {
    let mut head = 0;
    for chunk in events.chunks(1_000) {
        let r = client
            .clone()
            .ingest_batch(ipb::IngestBatchRequest { events: chunk.to_vec() })
            .await
            .expect("ingest")
            .into_inner();
        assert_eq!(r.rejected, 0, "{:?}", r.results.iter().find(|x| !x.violations.is_empty()));
        head = head.max(r.results.iter().map(|x| x.offset).max().unwrap_or(0));
    }
    head
}

/// Waits (up to a minute) until `scoring` has scored the ledger through `offset`.
pub(crate) async fn scored(scoring: &Scoring, offset: u64) {
    tokio::time::timeout(Duration::from_secs(60), scoring.wait_for_offset(offset))
        .await
        .unwrap_or_else(|_| panic!("scoring never reached offset {offset}"));
}

/// Puts a brand's key, if any, on every request.
#[derive(Clone)]
pub(crate) struct Key(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Key {
    fn call(&mut self, mut r: Request<()>) -> Result<Request<()>, Status> {
        if let Some(k) = &self.0 {
            r.metadata_mut().insert(API_KEY_HEADER, k.clone());
        }
        Ok(r)
    }
}

/// A matching client, as a brand calls it.
pub(crate) type Client = MatchingServiceClient<InterceptedService<Channel, Key>>;

/// A client of the matching server at `addr` sending `key` (none: anonymous).
pub(crate) fn client(addr: SocketAddr, key: Option<&str>) -> Client {
    MatchingServiceClient::with_interceptor(lazy(addr), Key(key.map(|k| k.parse().expect("ascii key"))))
}

/// Creates brand `name` and returns a client of the matching server at `addr` acting for it.
pub(crate) async fn brand(m: &Matching, addr: SocketAddr, name: &str) -> Client {
    let (_, key) = create_brand(m.db(), name).await.expect("brand");
    client(addr, Some(&key))
}

pub(crate) fn acct(id: &str) -> ipb::AccountRef {
    ipb::AccountRef { network: "t".into(), id: id.into() }
}

/// An event that occurred `secs_ago` seconds before now.
pub(crate) fn ev(id: &str, secs_ago: i64, kind: Kind) -> ipb::Event {
    ipb::Event {
        event_id: id.into(),
        source: "test".into(),
        occurred_at: Some(to_timestamp(now() - secs_ago * MICROS_PER_SEC)),
        kind: Some(kind),
    }
}

/// Creator `i`: `c00`, `c01`, …
pub(crate) fn creator(i: usize) -> String {
    format!("c{i:02}")
}

/// Fan `j` of creator `i`.
pub(crate) fn fan(i: usize, j: usize) -> String {
    format!("f{i:02}_{j:02}")
}

/// The scripted social world: `creators` creators `c00..`, creator `i`
/// followed by `i + 2` fans who also like its post, so reach rises with `i`;
/// fans have no followers. `ages` are how many seconds ago the accounts, the
/// posts, the follows and the likes occurred; `like_names_author` says
/// whether a like names the post's author as its target or leaves it to the
/// post.
pub(crate) fn social_world(creators: usize, ages: [i64; 4], like_names_author: bool) -> Vec<ipb::Event> {
    let [account_age, post_age, follow_age, like_age] = ages;
    let mut out = Vec::new();
    for i in 0..creators {
        let c = creator(i);
        let account = ipb::AccountUpsert { account: Some(acct(&c)), handle: format!("{c}_h"), ..Default::default() };
        out.push(ev(&format!("acct-{c}"), account_age, Kind::Account(account)));
        let post = ipb::Post { author: Some(acct(&c)), post_id: format!("p-{c}"), ..Default::default() };
        out.push(ev(&format!("post-{c}"), post_age, Kind::Post(post)));
        for j in 0..i + 2 {
            let f = fan(i, j);
            let follow = ipb::Follow { follower: Some(acct(&f)), followee: Some(acct(&c)), unfollow: false };
            out.push(ev(&format!("follow-{f}"), follow_age, Kind::Follow(follow)));
            let like = ipb::Engagement {
                kind: ipb::EngagementKind::Like as i32,
                actor: Some(acct(&f)),
                post_id: format!("p-{c}"),
                target: like_names_author.then(|| acct(&c)),
            };
            out.push(ev(&format!("like-{f}"), like_age, Kind::Engagement(like)));
        }
    }
    out
}

/// A reach campaign (p40 and up, 12 boxes' budget, half held out) that erasure
/// and privacy-export tests give their subject an offer, a seat and a report in.
pub(crate) fn boxes_spec() -> lift_proto::matching::v1::CampaignSpec {
    lift_proto::matching::v1::CampaignSpec {
        name: "boxes".into(),
        objective: lift_proto::matching::v1::Objective::Reach as i32,
        perk: "tasting box".into(),
        unit_cost: 1_000,
        budget: 12_000,
        currency: "EUR".into(),
        criteria: vec![lift_proto::matching::v1::Criterion {
            dimension: lift_proto::scoring::v1::Dimension::Reach as i32,
            topic: String::new(),
            threshold: Some(lift_proto::matching::v1::criterion::Threshold::MinPercentile(40.0)),
        }],
        holdout_share: 0.5,
        ..Default::default()
    }
}
