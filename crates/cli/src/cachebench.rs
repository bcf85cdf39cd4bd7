//! `lift bench cache-refresh`: how long matching's score cache takes to catch
//! up with a scoring run that changed a share of the accounts — by a delta
//! (`ExportScores` since the cached run) and, side by side in the same run, by
//! the full reload it replaces — and whether the two copies are identical.
//!
//! Scoring here is a stand-in gRPC server on loopback that serves two
//! generated runs the way scoring does: the first in full, the second in full
//! or as the accounts it changed since the first (values of `changed` of the
//! accounts moved; every percentile recomputed by scoring's rule). Generating
//! the population directly instead of scoring a ledger keeps the benchmark at a
//! million accounts to seconds; what it measures is matching's side (the
//! stream, decoding, and building or patching the columns).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use lift_matching::cache_refresh;
use lift_proto::ingest::v1::AccountRef;
use lift_proto::scoring::v1 as spb;
use lift_proto::scoring::v1::scoring_service_server::{ScoringService, ScoringServiceServer};
use lift_runtime::Shutdown;
use tonic::{Request, Response, Status};

/// What to measure.
#[derive(Debug, Clone)]
pub struct CacheBenchOptions {
    pub accounts: usize,
    /// Share of the accounts the second run changes (0–1).
    pub changed: f64,
    /// Accounts per `ExportScores` message (matching's default page size).
    pub chunk: u32,
}

impl Default for CacheBenchOptions {
    fn default() -> Self {
        Self { accounts: 1_000_000, changed: 0.01, chunk: 1_000 }
    }
}

/// The figures, printed as a table.
#[derive(Debug, Clone)]
pub struct CacheBenchReport {
    pub accounts: usize,
    pub changed: usize,
    pub full: Duration,
    pub delta: Duration,
    pub delta_received: u64,
    pub identical: bool,
}

impl std::fmt::Display for CacheBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "score cache refresh after a run that changed {} of {} accounts ({:.2} %)",
            self.changed,
            self.accounts,
            100.0 * self.changed as f64 / self.accounts.max(1) as f64
        )?;
        writeln!(f, "{:<34} {:>12} {:>12}", "path", "accounts sent", "seconds")?;
        writeln!(f, "{:<34} {:>12} {:>12.3}", "full reload (baseline)", self.accounts, self.full.as_secs_f64())?;
        writeln!(
            f,
            "{:<34} {:>12} {:>12.3}",
            "delta since the cached run",
            self.delta_received,
            self.delta.as_secs_f64()
        )?;
        writeln!(f, "full / delta: {:.1}x", self.full.as_secs_f64() / self.delta.as_secs_f64().max(1e-9))?;
        write!(f, "delta copy identical to the full reload: {}", if self.identical { "yes" } else { "NO" })
    }
}

/// One generated run: per account, the five dimensions' values.
#[derive(Debug)]
struct GenRun {
    run_id: u64,
    as_of: u64,
    values: [Vec<f64>; 5],
    sorted: [Vec<f64>; 5],
}

impl GenRun {
    fn new(run_id: u64, as_of: u64, values: [Vec<f64>; 5]) -> Self {
        let sorted = values.clone().map(|mut v| {
            v.sort_unstable_by(f64::total_cmp);
            v
        });
        Self { run_id, as_of, values, sorted }
    }

    fn percentile(&self, d: usize, v: f64) -> f64 {
        100.0 * self.sorted[d].partition_point(|x| *x < v) as f64 / self.sorted[d].len() as f64
    }

    fn account(&self, i: usize) -> spb::AccountScores {
        let scores = (0..5)
            .map(|d| {
                let value = self.values[d][i];
                let action = d == 3;
                spb::Score {
                    dimension: d as i32 + 1,
                    topic: String::new(),
                    value,
                    percentile: self.percentile(d, value),
                    lower: if action { value * 0.8 } else { value },
                    upper: if action { (value * 1.2).min(100.0) } else { value },
                    evidence: if action { spb::Evidence::Sufficient as i32 } else { spb::Evidence::Unspecified as i32 },
                    raw: Default::default(),
                }
            })
            .collect();
        spb::AccountScores {
            account: Some(AccountRef { network: "bench".into(), id: format!("acct{i:08}") }),
            handle: format!("handle{i}"),
            scores,
            flags: Vec::new(),
            model_version: MODEL.into(),
            as_of_offset: self.as_of,
            as_of_time: None,
            run_id: self.run_id,
        }
    }
}

const MODEL: &str = "bench-model";

/// A value on scoring's 1/1024 grid from a seed.
fn value(seed: u64) -> f64 {
    let x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) % 102_400;
    (x as f64 / 1024.0).min(100.0)
}

#[derive(Debug)]
struct StandIn {
    runs: [GenRun; 2],
    /// Accounts run 2 changed, ascending.
    changed: Vec<usize>,
    /// Which run is served (index into `runs`).
    serving: AtomicU64,
}

/// The stand-in as a tonic service.
#[derive(Debug, Clone)]
struct Svc(Arc<StandIn>);

type ExportStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<spb::ExportScoresResponse, Status>> + Send>>;

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("the benchmark's stand-in scoring serves ExportScores only"))
}

#[tonic::async_trait]
impl ScoringService for Svc {
    async fn get_scores(&self, _: Request<spb::GetScoresRequest>) -> Result<Response<spb::GetScoresResponse>, Status> {
        unimplemented()
    }

    async fn query_accounts(
        &self,
        _: Request<spb::QueryAccountsRequest>,
    ) -> Result<Response<spb::QueryAccountsResponse>, Status> {
        unimplemented()
    }

    type ExportScoresStream = ExportStream;

    async fn export_scores(
        &self,
        req: Request<spb::ExportScoresRequest>,
    ) -> Result<Response<Self::ExportScoresStream>, Status> {
        let req = req.into_inner();
        let me = Arc::clone(&self.0);
        let k = me.serving.load(Ordering::Acquire) as usize;
        let chunk = (req.chunk_size as usize).clamp(1, 5_000);
        let n = me.runs[k].values[0].len();
        let delta = k == 1 && req.since_run == me.runs[0].run_id;
        let rows: Vec<usize> = if delta { me.changed.clone() } else { (0..n).collect() };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let run = &me.runs[k];
            for part in rows.chunks(chunk) {
                let msg = spb::ExportScoresResponse {
                    accounts: part.iter().map(|&i| run.account(i)).collect(),
                    model_version: MODEL.into(),
                    as_of_offset: run.as_of,
                    total: rows.len() as u64,
                    run_id: run.run_id,
                    delta,
                    since_run: if delta { me.runs[0].run_id } else { 0 },
                    run_accounts: n as u64,
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn get_score_history(
        &self,
        _: Request<spb::GetScoreHistoryRequest>,
    ) -> Result<Response<spb::GetScoreHistoryResponse>, Status> {
        unimplemented()
    }

    async fn explain_score_change(
        &self,
        _: Request<spb::ExplainScoreChangeRequest>,
    ) -> Result<Response<spb::ExplainScoreChangeResponse>, Status> {
        unimplemented()
    }

    async fn get_model(&self, _: Request<spb::GetModelRequest>) -> Result<Response<spb::GetModelResponse>, Status> {
        unimplemented()
    }

    async fn select_seeds(
        &self,
        _: Request<spb::SelectSeedsRequest>,
    ) -> Result<Response<spb::SelectSeedsResponse>, Status> {
        unimplemented()
    }
}

/// Generates the two runs, serves them on loopback and measures both refreshes.
pub async fn run(opts: &CacheBenchOptions) -> anyhow::Result<CacheBenchReport> {
    ensure!(opts.accounts > 0, "--accounts must be positive");
    ensure!((0.0..=1.0).contains(&opts.changed), "--changed is a share between 0 and 1");
    let n = opts.accounts;
    let first: [Vec<f64>; 5] = std::array::from_fn(|d| (0..n).map(|i| value((i * 5 + d) as u64)).collect());
    let step = ((1.0 / opts.changed.max(1e-9)).round() as usize).max(1);
    let changed: Vec<usize> = (0..n).step_by(step).take(((n as f64) * opts.changed).round() as usize).collect();
    let mut second = first.clone();
    for &i in &changed {
        for (d, col) in second.iter_mut().enumerate() {
            col[i] = value((i * 5 + d) as u64 + 7_777_777);
        }
    }
    let stand_in = Arc::new(StandIn {
        runs: [GenRun::new(1, 10_000, first), GenRun::new(2, 20_000, second)],
        changed,
        serving: AtomicU64::new(0),
    });
    let stop = Shutdown::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = ScoringServiceServer::new(Svc(Arc::clone(&stand_in)))
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    tokio::spawn(lift_runtime::serve(listener, server, stop.clone()));
    let client = lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient::new(crate::stack::channel(
        &format!("http://{addr}"),
    )?);

    let base = cache_refresh::load_full(&client, opts.chunk).await.context("loading the first run")?;
    ensure!(base.accounts() == n, "the first load holds {} of {n} accounts", base.accounts());
    stand_in.serving.store(1, Ordering::Release);

    let started = Instant::now();
    let full = cache_refresh::load_full(&client, opts.chunk).await.context("reloading the second run in full")?;
    let full_took = started.elapsed();
    let started = Instant::now();
    let delta =
        cache_refresh::load_delta(&client, opts.chunk, &base).await.context("applying the second run's delta")?;
    let delta_took = started.elapsed();
    stop.trigger();
    ensure!(delta.from_delta(), "the stand-in sent a full export for the delta request");
    let diff = delta.differences(&full);
    for d in &diff {
        eprintln!("difference: {d}");
    }
    Ok(CacheBenchReport {
        accounts: n,
        changed: stand_in.changed.len(),
        full: full_took,
        delta: delta_took,
        delta_received: delta.received(),
        identical: diff.is_empty(),
    })
}
