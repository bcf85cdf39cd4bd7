//! `lift bench latency`: how long an ingested event takes to show in the
//! scores scoring serves, while events arrive at a steady rate.
//!
//! Paced writers send `IngestBatch` calls (unary, so each answer carries the
//! ledger offsets) at the target rate between them; every batch is a probe: its highest
//! offset and the moment it was sent. A watcher polls `GetScores` and reads the
//! as-of offset scoring serves; a probe is visible once that offset reaches
//! it, and its latency is visible-time minus send-time. Each rate runs on a
//! fresh stack (SQLite files, auth on, rate limiter off), so rates do not share
//! a warm ledger.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lift_proto::{
    ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient},
    scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient},
};
use tokio::sync::Mutex;

use crate::stack::{Databases, Stack, StackOptions};

/// One measured rate.
#[derive(Debug, Clone)]
pub struct LatencyOptions {
    /// Target events per second.
    pub rate: u64,
    pub duration: Duration,
    /// Events per `IngestBatch` call (one probe each).
    pub batch: usize,
    /// Concurrent paced writers sharing the rate (one unary call in flight each).
    pub writers: usize,
    /// Distinct accounts among the synthetic events.
    pub accounts: u64,
    /// Scoring's debounce: how long it waits for more events before recomputing.
    pub debounce: Duration,
    /// How often the watcher asks scoring for its as-of offset.
    pub poll: Duration,
    /// Scoring recomputes only what changed (`ScoringConfig::incremental_runs`);
    /// `false` is the from-scratch baseline.
    pub incremental: bool,
}

impl Default for LatencyOptions {
    fn default() -> Self {
        Self {
            rate: 10_000,
            duration: Duration::from_secs(60),
            batch: 500,
            writers: 2,
            accounts: 20_000,
            debounce: lift_scoring::ScoringConfig::default().debounce,
            poll: Duration::from_millis(20),
            incremental: true,
        }
    }
}

/// What one rate measured.
#[derive(Debug, Clone, Default)]
pub struct LatencyReport {
    pub target_rate: u64,
    pub incremental: bool,
    pub achieved_rate: f64,
    pub events: u64,
    pub probes: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Scoring runs published while the writer ran and drained.
    pub runs: u64,
    pub accounts_scored: u64,
    /// Batches the writer sent late (behind schedule by more than one interval).
    pub late_batches: u64,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Measures one rate on a fresh stack.
pub async fn run(opts: &LatencyOptions) -> anyhow::Result<LatencyReport> {
    let dir =
        std::env::temp_dir().join(format!("lift-latency-{}-{}-{}", std::process::id(), opts.rate, opts.incremental));
    std::fs::create_dir_all(&dir)?;
    let dbs = Databases::sqlite_files(&dir);
    let cfg = lift_scoring::ScoringConfig {
        debounce: opts.debounce,
        incremental_runs: opts.incremental,
        ..Default::default()
    };
    let stack =
        Stack::start_loopback_with(&dbs, cfg, StackOptions { rate_limit: None, ..StackOptions::default() }).await?;
    let result = measure(&stack, opts).await;
    stack.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(stack: &Stack, opts: &LatencyOptions) -> anyhow::Result<LatencyReport> {
    let ingest = IngestServiceClient::new(stack.channel(&stack.ingest_url())?);
    let scoring = ScoringServiceClient::new(stack.channel(&stack.scoring_url())?);
    // (highest offset in the batch, when it was sent); writers append concurrently.
    let probes: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let final_offset = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));

    // The watcher: resolves every probe at or below the offset scoring serves,
    // until scoring serves the last write; returns (runs seen, latencies in ms).
    let mut watcher = {
        let (probes, final_offset) = (probes.clone(), final_offset.clone());
        let mut scoring = scoring.clone();
        let poll = opts.poll;
        let probe_account = ipb::AccountRef { network: "soak".into(), id: "a0".into() };
        tokio::spawn(async move {
            let mut last_seen = 0u64;
            let mut runs = 0u64;
            let mut latencies = Vec::new();
            loop {
                let req = spb::GetScoresRequest { accounts: vec![probe_account.clone()] };
                if let Ok(r) = scoring.get_scores(req).await
                    && let Some(a) = r.into_inner().accounts.first()
                {
                    let now = Instant::now();
                    if a.as_of_offset > last_seen {
                        last_seen = a.as_of_offset;
                        runs += 1;
                        probes.lock().await.retain(|&(offset, sent)| {
                            let visible = offset <= last_seen;
                            if visible {
                                latencies.push(now.duration_since(sent).as_secs_f64() * 1000.0);
                            }
                            !visible
                        });
                    }
                }
                if last_seen >= final_offset.load(std::sync::atomic::Ordering::Acquire) {
                    return (runs, latencies);
                }
                tokio::time::sleep(poll).await;
            }
        })
    };

    // Paced writers: each sends every `interval`, offset by a fraction of it.
    let writers = opts.writers.max(1);
    let interval = Duration::from_secs_f64(opts.batch as f64 * writers as f64 / opts.rate.max(1) as f64);
    let started = Instant::now();
    let next_id = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let (mut ingest, probes, next_id) = (ingest.clone(), probes.clone(), next_id.clone());
        let (batch, accounts, duration) = (opts.batch, opts.accounts, opts.duration);
        tasks.spawn(async move {
            let mut next_at = started + interval.mul_f64(w as f64 / writers as f64);
            let (mut sent, mut late, mut head) = (0u64, 0u64, 0u64);
            while started.elapsed() < duration {
                let now = Instant::now();
                if next_at > now {
                    tokio::time::sleep_until(next_at.into()).await;
                } else if now.duration_since(next_at) > interval {
                    late += 1;
                }
                next_at += interval;
                let first = next_id.fetch_add(batch as u64, std::sync::atomic::Ordering::Relaxed);
                let events: Vec<ipb::Event> =
                    (first + 1..=first + batch as u64).map(|i| crate::soak::event(i, accounts)).collect();
                let t = Instant::now();
                let r =
                    ingest.ingest_batch(ipb::IngestBatchRequest { events }).await.context("IngestBatch")?.into_inner();
                if r.rejected > 0 {
                    bail!("{} synthetic events were rejected: {:?}", r.rejected, r.results.first());
                }
                let top = r.results.iter().map(|e| e.offset).max().unwrap_or(0);
                head = head.max(top);
                sent += u64::from(r.accepted);
                probes.lock().await.push((top, t));
            }
            Ok::<_, anyhow::Error>((sent, late, head))
        });
    }
    let (mut sent, mut late, mut head) = (0u64, 0u64, 0u64);
    while let Some(r) = tasks.join_next().await {
        let (s, l, h) = r.context("writer")??;
        sent += s;
        late += l;
        head = head.max(h);
    }
    let write_secs = started.elapsed().as_secs_f64();
    final_offset.store(head, std::sync::atomic::Ordering::Release);
    let wait = opts.debounce * 4 + Duration::from_secs(120);
    let (runs, mut l) = match tokio::time::timeout(wait, &mut watcher).await {
        Ok(r) => r.context("watcher")?,
        Err(_) => {
            watcher.abort();
            bail!("scoring did not reach ledger offset {head} within {wait:?} after writing stopped");
        }
    };
    let mut scoring = scoring;
    let accounts_scored = scoring.get_model(spb::GetModelRequest {}).await?.into_inner().accounts;
    l.sort_by(f64::total_cmp);
    Ok(LatencyReport {
        target_rate: opts.rate,
        incremental: opts.incremental,
        achieved_rate: sent as f64 / write_secs.max(1e-9),
        events: sent,
        probes: l.len(),
        p50_ms: percentile(&l, 0.50),
        p90_ms: percentile(&l, 0.90),
        p99_ms: percentile(&l, 0.99),
        max_ms: l.last().copied().unwrap_or(f64::NAN),
        runs,
        accounts_scored,
        late_batches: late,
    })
}

/// Prints the table header and one row per report.
pub fn print_table(reports: &[LatencyReport], opts: &LatencyOptions) {
    println!(
        "| target events/s | runs | achieved events/s | events | accounts scored | probes | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | runs seen | late batches |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} |",
            r.target_rate,
            if r.incremental { "incremental" } else { "from scratch" },
            r.achieved_rate,
            r.events,
            r.accounts_scored,
            r.probes,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            r.runs,
            r.late_batches
        );
    }
    println!(
        "\n(batch {} events = one probe; {} writers; {} accounts; scoring debounce {:?}; watcher polls every {:?})",
        opts.batch, opts.writers, opts.accounts, opts.debounce, opts.poll
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins nearest-rank percentiles on a known list.
    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
