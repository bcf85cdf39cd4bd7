//! `lift bench ingest --ledger nats://…`: Lift's `IngestStream` into a JetStream
//! ledger against a raw `async-nats` publisher of the same message bodies into
//! the same stream, with the database ledger beside them, in one run.
//!
//! Both JetStream loads go to a scratch stream (`LIFT_BENCH_<run>`, created with
//! the URL's replicas, deleted afterwards with its index bucket). The raw
//! publisher sends each batch pipelined and waits for all its acknowledgements
//! before the next, as Lift acknowledges per batch; it does no validation,
//! dedupe or attribution. CPU time is this process's (user + system, from
//! `/proc/self/stat`): the NATS server's own CPU is not counted on either side.

use lift_proto::convert::prelude::*;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use lift_domain::{Event, ValidationPolicy};
use lift_proto::ingest::v1 as pb;
use lift_store::DatabaseConnection;
use prost::Message;

use crate::bench::{BenchError, BenchOptions, BenchReport, generate, stream_through};
use crate::ledger::{Ledger, NatsLedger, NatsSettings};
use crate::{Ingest, IngestConfig};

/// One load's figures.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub wall: Duration,
    /// This process's CPU time, when `/proc/self/stat` could be read.
    pub cpu: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct NatsBenchReport {
    pub events: usize,
    pub replicas: usize,
    pub lift: Load,
    pub raw: Load,
    /// The database ledger on the same events (same generator, other ids).
    pub sql: BenchReport,
    /// What JetStream stores for Lift's load, one replica: (events, ledger stream
    /// bytes, index bucket bytes); `None` when the stream could not be read.
    pub stored: Option<(u64, u64, u64)>,
}

impl NatsBenchReport {
    /// Lift's throughput as a share of the raw publisher's.
    pub fn ratio(&self) -> f64 {
        self.raw.wall.as_secs_f64() / self.lift.wall.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for NatsBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, events: usize, l: Load| {
            let eps = events as f64 / l.wall.as_secs_f64().max(1e-9);
            let per_cpu = l
                .cpu
                .map_or_else(|| "no data".to_owned(), |c| format!("{:.0}", events as f64 / c.as_secs_f64().max(1e-9)));
            writeln!(f, "{name:<52} {events:>9} {:>9.3} {eps:>11.0} {per_cpu:>13}", l.wall.as_secs_f64())
        };
        writeln!(
            f,
            "{:<52} {:>9} {:>9} {:>11} {:>13}",
            format!("ingest into JetStream (R{})", self.replicas),
            "events",
            "seconds",
            "events/s",
            "events/CPU-s"
        )?;
        row(f, "lift IngestStream over gRPC -> JetStream ledger", self.events, self.lift)?;
        row(f, "raw async-nats publish, same bodies, acks per batch", self.events, self.raw)?;
        let sql = Load { wall: self.sql.service, cpu: None };
        row(f, &format!("lift IngestStream over gRPC -> {} ledger", self.sql.backend), self.sql.events, sql)?;
        writeln!(f, "{:<52} {:>45.1} %", "lift on JetStream / raw publisher", self.ratio() * 100.0)?;
        match self.stored {
            Some((n, ledger, index)) if n > 0 => writeln!(
                f,
                "stored per event, one replica (JetStream's stored bytes, record framing included): \
                 ledger {:.0} B + index {:.0} B = {:.0} B ({n} events)",
                ledger as f64 / n as f64,
                index as f64 / n as f64,
                (ledger + index) as f64 / n as f64
            )?,
            _ => writeln!(f, "stored per event: no data (the stream's state could not be read)")?,
        }
        write!(f, "(CPU: this process only; the NATS server's is not counted; the SQL row's CPU is not measured)")
    }
}

/// Runs the three loads; `db` holds the link registry for the JetStream run and
/// the ledger for the SQL run.
pub async fn bench(
    db: DatabaseConnection,
    ledger_url: &str,
    opts: &BenchOptions,
) -> Result<NatsBenchReport, BenchError> {
    let failed = |what: &str, e: &dyn fmt::Display| BenchError::Failed(format!("{what}: {e}"));
    let mut settings = NatsSettings::parse(ledger_url).map_err(|e| failed("ledger URL", &e))?;
    let run = lift_domain::time::now();
    settings.stream = format!("LIFT_BENCH_{run}");
    let events = generate(opts.events, opts.seed, run);
    let ledger = Arc::new(NatsLedger::connect(&settings).await.map_err(|e| failed("JetStream", &e))?);
    let cfg = IngestConfig { max_batch: opts.batch_size.max(1), ..IngestConfig::default() };
    let ingest = Ingest::with_ledger(db.clone(), Ledger::Nats(ledger.clone()), cfg);

    let cpu0 = cpu_time();
    let lift_wall = stream_through(ingest, &events, opts).await?;
    let lift = Load { wall: lift_wall, cpu: cpu_since(cpu0) };
    let stored = stored_bytes(&jetstream::new(ledger.client()), &settings.stream).await;

    let bodies = bodies(&events, run)?;
    // Room for every stream's whole batch of unacknowledged publishes (the default
    // in-flight limit, 5,000, is below two batches of 5,000).
    let per_stream_batch = opts.batch_size.max(1);
    let js = jetstream::context::ContextBuilder::new()
        .max_ack_inflight(per_stream_batch * opts.streams.max(1) + 1)
        .backpressure_on_inflight(true)
        .build(ledger.client());
    let subject = format!("lift.ledger.{}.raw", settings.stream.to_ascii_lowercase());
    let cpu0 = cpu_time();
    let started = Instant::now();
    let per_stream = bodies.len().div_ceil(opts.streams.max(1)).max(1);
    let mut tasks = Vec::new();
    for part in bodies.chunks(per_stream).map(<[bytes::Bytes]>::to_vec) {
        let (js, subject, batch) = (js.clone(), subject.clone(), opts.batch_size.max(1));
        tasks.push(tokio::spawn(async move {
            for chunk in part.chunks(batch) {
                let mut acks = Vec::with_capacity(chunk.len());
                for b in chunk {
                    acks.push(js.publish(subject.clone(), b.clone()).await?);
                }
                for a in acks {
                    a.await?;
                }
            }
            Ok::<_, async_nats::Error>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| failed("raw publisher", &e))?.map_err(|e| failed("raw publisher", &e))?;
    }
    let raw = Load { wall: started.elapsed(), cpu: cpu_since(cpu0) };

    let ctx = jetstream::new(ledger.client());
    let _ = ctx.delete_key_value(format!("{}_IDS", settings.stream)).await;
    let _ = ctx.delete_stream(&settings.stream).await;
    let sql = crate::bench::bench(db, opts).await?;
    Ok(NatsBenchReport { events: events.len(), replicas: settings.replicas, lift, raw, sql, stored })
}

/// (messages, bytes) of the ledger stream and bytes of its index bucket's stream.
async fn stored_bytes(js: &jetstream::Context, stream: &str) -> Option<(u64, u64, u64)> {
    let ledger = js.get_stream(stream).await.ok()?.get_info().await.ok()?.state;
    let index = js.get_stream(format!("KV_{stream}_IDS")).await.ok()?.get_info().await.ok()?.state;
    Some((ledger.messages, ledger.bytes, index.bytes))
}

/// The message bodies Lift stores for `events` (no attribution: the bench has no links).
fn bodies(events: &[pb::Event], now: i64) -> Result<Vec<bytes::Bytes>, BenchError> {
    let policy = ValidationPolicy::at(now);
    let ingested_at = Some(lift_proto::convert::to_timestamp(now));
    events
        .iter()
        .map(|e| {
            let ev = Event::from_proto(e, &policy).map_err(BenchError::Invalid)?;
            let body = pb::LedgerEvent { offset: 0, event: Some(ev.to_proto()), ingested_at, attribution: None };
            Ok(body.encode_to_vec().into())
        })
        .collect()
}

/// User + system CPU time of this process (Linux; clock ticks taken as 1/100 s).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based, whole line).
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn cpu_since(start: Option<Duration>) -> Option<Duration> {
    Some(cpu_time()?.saturating_sub(start?))
}
