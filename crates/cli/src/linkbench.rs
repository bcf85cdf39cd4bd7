//! `lift bench links`: the link redirector on loopback beside a static 302 served by the same
//! HTTP stack (axum on hyper, same process, same run) — the floor no redirector can beat.
//!
//! Two loads, each against both endpoints:
//! - **saturated**: `wrk` (Debian package `wrk`) with keep-alive connections as fast as they
//!   go: requests/s and latency percentiles at full throughput, in rounds (floor, then
//!   redirector, `rounds` times); the ratio reported is the median of the rounds' ratios, since
//!   on a shared machine the background load moves between runs;
//! - **paced**: an open-loop generator in this process sending a fixed rate (5,000 requests/s by
//!   default) over keep-alive connections; each request's latency is measured from when it was
//!   *due*, so a stall shows as latency rather than as fewer requests.
//!
//! Then it waits for the redirector's clicks to reach the ledger and counts them.

use std::fmt;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::{StatusCode, header};
use lift_proto::ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient};
use lift_runtime::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use tokio::task::JoinSet;

use crate::stack::{self, Databases, ServiceOptions, Stack};

/// A desktop browser's user agent (the redirector counts it as a person's click).
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// `lift bench links` settings.
#[derive(Debug, Clone)]
pub struct LinksBenchOptions {
    /// Seconds of each run.
    pub seconds: u64,
    /// wrk's connections and threads.
    pub connections: u32,
    pub threads: u32,
    /// The paced runs' rate (requests/s) and connections.
    pub rate: u32,
    pub paced_connections: u32,
    /// Beside the redirector run ingestion only (its one peer on the click path), as
    /// in a deployment where scoring and matching run elsewhere; otherwise all three
    /// services, which also read every click back from the ledger on the same cores.
    pub ingest_only: bool,
    /// Saturated rounds (floor, then redirector).
    pub rounds: u32,
}

impl Default for LinksBenchOptions {
    fn default() -> Self {
        Self {
            seconds: 10,
            connections: 64,
            threads: 2,
            rate: 5_000,
            paced_connections: 32,
            ingest_only: false,
            rounds: 3,
        }
    }
}

/// One run against one endpoint.
#[derive(Debug, Clone)]
pub struct Run {
    pub name: String,
    pub requests: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers other than the expected 302 (and failed requests, for paced runs).
    pub not_302: u64,
}

#[derive(Debug, Clone)]
pub struct LinksBenchReport {
    /// Saturated runs, floor and redirector in turn, then the two paced runs.
    pub runs: Vec<Run>,
    /// Each saturated round's redirector / floor throughput.
    pub ratios: Vec<f64>,
    /// Redirects the redirector answered, and the clicks on the ledger afterwards.
    pub clicks_answered: u64,
    pub clicks_on_ledger: u64,
    pub drain: Duration,
    pub opts: LinksBenchOptions,
}

impl fmt::Display for LinksBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.opts;
        writeln!(f, "loopback, one process; floor = a static 302 from the same axum/hyper stack")?;
        writeln!(
            f,
            "saturated: wrk -t{} -c{} -d{}s, {} rounds; paced: {} requests/s over {} keep-alive connections for {} s",
            o.threads, o.connections, o.seconds, o.rounds, o.rate, o.paced_connections, o.seconds
        )?;
        writeln!(
            f,
            "beside the redirector: {}",
            if o.ingest_only {
                "ingestion only (SQLite ledger); scoring and matching not running"
            } else {
                "ingestion, scoring and matching (SQLite), all reading the clicks on the same cores"
            }
        )?;
        writeln!(
            f,
            "{:<34} {:>10} {:>10} {:>9} {:>9} {:>8}",
            "run", "requests", "req/s", "p50 ms", "p99 ms", "not 302"
        )?;
        for r in &self.runs {
            writeln!(
                f,
                "{:<34} {:>10} {:>10.0} {:>9.2} {:>9.2} {:>8}",
                r.name, r.requests, r.per_second, r.p50_ms, r.p99_ms, r.not_302
            )?;
        }
        if let Some(median) = median(&self.ratios) {
            let each: Vec<String> = self.ratios.iter().map(|r| format!("{:.0} %", 100.0 * r)).collect();
            writeln!(
                f,
                "saturated throughput, redirector / floor: median {:.0} % (rounds: {})",
                100.0 * median,
                each.join(", ")
            )?;
        }
        write!(
            f,
            "redirects answered: {}; clicks on the ledger after {:.1} s of draining: {}",
            self.clicks_answered,
            self.drain.as_secs_f64(),
            self.clicks_on_ledger
        )
    }
}

fn wrk(name: &str, url: &str, o: &LinksBenchOptions) -> anyhow::Result<Run> {
    let out = Command::new("wrk")
        .args([
            &format!("-t{}", o.threads),
            &format!("-c{}", o.connections),
            &format!("-d{}s", o.seconds),
            "--latency",
            "-H",
            &format!("User-Agent: {UA}"),
            url,
        ])
        .output()
        .context("running wrk (install the Debian package `wrk`)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(name, &text).with_context(|| format!("reading wrk's output:\n{text}"))
}

/// Reads wrk's `--latency` report.
fn parse_wrk(name: &str, text: &str) -> Option<Run> {
    let ms = |v: &str| -> Option<f64> {
        let v = v.trim();
        if let Some(x) = v.strip_suffix("us") {
            x.parse::<f64>().ok().map(|x| x / 1000.0)
        } else if let Some(x) = v.strip_suffix("ms") {
            x.parse().ok()
        } else if let Some(x) = v.strip_suffix('s') {
            x.parse::<f64>().ok().map(|x| x * 1000.0)
        } else {
            None
        }
    };
    let pct = |p: &str| text.lines().find_map(|l| l.trim().strip_prefix(p).and_then(ms));
    let requests = text.lines().find_map(|l| {
        let l = l.trim();
        l.contains(" requests in ").then(|| l.split_whitespace().next()?.parse().ok()).flatten()
    })?;
    let per_second = text.lines().find_map(|l| l.trim().strip_prefix("Requests/sec:")?.trim().parse().ok())?;
    let not_302 =
        text.lines().find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:")?.trim().parse().ok()).unwrap_or(0);
    Some(Run { name: name.to_owned(), requests, per_second, p50_ms: pct("50%")?, p99_ms: pct("99%")?, not_302 })
}

/// One keep-alive connection of the paced generator.
struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    /// One `GET path`; true when the answer was a 302. Reconnects when the server closed.
    async fn get(&mut self, request: &[u8]) -> std::io::Result<bool> {
        let stream = match &mut self.stream {
            Some(s) => s,
            None => self.stream.insert(TcpStream::connect(self.addr).await?),
        };
        stream.set_nodelay(true)?;
        stream.write_all(request).await?;
        self.buf.clear();
        let mut chunk = [0u8; 2048];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                self.stream = None;
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
            let body_len: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length:")?.trim().parse().ok()).unwrap_or(0);
            if self.buf.len() >= end + 4 + body_len {
                return Ok(head.starts_with("http/1.1 302"));
            }
        }
    }
}

/// Sends `rate` requests/s for `seconds` over `connections` keep-alive connections; latency
/// counts from each request's due time.
async fn paced(name: &str, addr: SocketAddr, path: &str, o: &LinksBenchOptions) -> anyhow::Result<Run> {
    let conns = o.paced_connections.max(1);
    let total = u64::from(o.rate.max(1)) * o.seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(o.rate.max(1)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: {UA}\r\n\r\n").into_bytes();
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..u64::from(conns) {
        let request = request.clone();
        tasks.spawn(async move {
            let mut conn = Conn { addr, stream: None, buf: Vec::with_capacity(1024) };
            let (mut lat, mut bad) = (Vec::new(), 0u64);
            let mut k = c;
            while k < total {
                let due = start + interval.mul_f64(k as f64);
                tokio::time::sleep_until(due).await;
                match conn.get(&request).await {
                    Ok(true) => lat.push(due.elapsed()),
                    Ok(false) | Err(_) => bad += 1,
                }
                k += u64::from(conns);
            }
            (lat, bad)
        });
    }
    let (mut lat, mut bad) = (Vec::with_capacity(total as usize), 0);
    while let Some(r) = tasks.join_next().await {
        let (l, b) = r?;
        lat.extend(l);
        bad += b;
    }
    let took = start.elapsed();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    Ok(Run {
        name: name.to_owned(),
        requests: lat.len() as u64 + bad,
        per_second: lat.len() as f64 / took.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        not_302: bad,
    })
}

/// Runs the benchmark: a stack on temporary SQLite files, one registered link, the collector,
/// and beside it a static 302 on the same stack; saturated and paced loads against each; then
/// waits (at most 2 minutes) for the redirector's clicks to reach the ledger.
pub async fn bench(o: LinksBenchOptions) -> anyhow::Result<LinksBenchReport> {
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed (Debian package `wrk`)");
    }
    let dir = std::env::temp_dir().join(format!("lift-bench-links-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let services = if o.ingest_only {
        Services::ingest_only(&dir).await?
    } else {
        Services::Stack(Box::new(Stack::start_loopback(&Databases::sqlite_files(&dir), Default::default()).await?))
    };
    let mut ingest = IngestServiceClient::new(services.ingest_channel()?);
    ingest
        .register_links(ipb::RegisterLinksRequest {
            links: vec![ipb::Link {
                link: "lift.to/bench".into(),
                owner: Some(ipb::AccountRef { network: "bench".into(), id: "creator".into() }),
                campaign_id: "cmp_bench".into(),
                attribution_window_secs: 0,
                landing_url: "https://shop.example/landing".into(),
            }],
        })
        .await?;
    let cfg = lift_collect::CollectConfig { spool_path: dir.join("spool"), ..Default::default() };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let links_addr = listener.local_addr()?;
    let (services, collector) = services.start_collect(listener, cfg).await?;
    let floor_stop = Shutdown::new();
    let floor_addr = static_302(&floor_stop).await?;
    let head_before = ledger_head(&mut ingest).await?;

    let mut runs = Vec::new();
    let mut ratios = Vec::new();
    for round in 1..=o.rounds {
        let mut pair = Vec::new();
        for (name, addr) in [("static 302 (floor)", floor_addr), ("redirector", links_addr)] {
            let (o2, url) = (o.clone(), format!("http://{addr}/bench"));
            let name = format!("saturated {round}: {name}");
            let run = tokio::task::spawn_blocking(move || wrk(&name, &url, &o2)).await??;
            pair.push(run.per_second);
            runs.push(run);
            settle(&collector).await;
        }
        ratios.push(pair[1] / pair[0].max(1e-9));
    }
    for (name, addr) in [("paced: static 302 (floor)", floor_addr), ("paced: redirector", links_addr)] {
        runs.push(paced(name, addr, "/bench", &o).await?);
        settle(&collector).await;
    }
    let t = Instant::now();
    while collector.pending() > 0 && t.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = t.elapsed();
    let clicks_on_ledger = ledger_head(&mut ingest).await? - head_before;
    floor_stop.trigger();
    services.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    let clicks_answered =
        runs.iter().filter(|r| r.name.ends_with("redirector")).map(|r| r.requests.saturating_sub(r.not_302)).sum();
    Ok(LinksBenchReport { runs, ratios, clicks_answered, clicks_on_ledger, drain, opts: o })
}

/// The median of `xs` (the mean of the middle two for an even count); `None` when empty.
fn median(xs: &[f64]) -> Option<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if !n.is_multiple_of(2) => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// What runs beside the redirector.
enum Services {
    Stack(Box<Stack>),
    /// Ingestion alone, without authentication (the collector is its only client).
    Ingest {
        url: String,
        db: sea_orm::DatabaseConnection,
        shutdown: Shutdown,
        tasks: JoinSet<anyhow::Result<()>>,
    },
}

impl Services {
    async fn ingest_only(dir: &std::path::Path) -> anyhow::Result<Self> {
        let (shutdown, mut tasks) = (Shutdown::new(), JoinSet::new());
        let opts = ServiceOptions::default();
        let db = stack::connect_db(&stack::sqlite_file(dir, "ingest.db"), &opts).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = stack::http_url(listener.local_addr()?);
        stack::spawn_ingest_on(&mut tasks, listener, db.clone(), Default::default(), &opts, &shutdown);
        Ok(Self::Ingest { url, db, shutdown, tasks })
    }

    fn ingest_channel(&self) -> anyhow::Result<lift_runtime::client::Channel> {
        match self {
            Self::Stack(s) => s.channel(&s.ingest_url()),
            Self::Ingest { url, .. } => stack::channel(url),
        }
    }

    async fn start_collect(
        self,
        listener: TcpListener,
        cfg: lift_collect::CollectConfig,
    ) -> anyhow::Result<(Self, lift_collect::Collector)> {
        match self {
            Self::Stack(mut s) => {
                let c = s.start_collect(listener, cfg).await?;
                Ok((Self::Stack(s), c))
            }
            Self::Ingest { url, db, shutdown, mut tasks } => {
                let opts = ServiceOptions::default();
                let c = stack::spawn_collect(&mut tasks, listener, db.clone(), &url, cfg, &opts, &shutdown).await?;
                Ok((Self::Ingest { url, db, shutdown, tasks }, c))
            }
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self {
            Self::Stack(s) => s.stop().await,
            Self::Ingest { shutdown, mut tasks, .. } => {
                shutdown.trigger();
                while let Some(r) = tasks.join_next().await {
                    r??;
                }
                Ok(())
            }
        }
    }
}

/// Lets delivery catch up between runs, so one run's backlog does not load the next (bounded).
async fn settle(collector: &lift_collect::Collector) {
    let t = Instant::now();
    while collector.pending() > 0 && t.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ledger_head(ingest: &mut IngestServiceClient<lift_runtime::client::Channel>) -> anyhow::Result<u64> {
    Ok(ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?.into_inner().head_offset)
}

/// The floor: axum answering every `GET /{code}` with a fixed 302.
async fn static_302(stop: &Shutdown) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new().route(
        "/{code}",
        axum::routing::get(|| async {
            (
                StatusCode::FOUND,
                [(header::LOCATION, "https://shop.example/landing"), (header::CACHE_CONTROL, "no-store")],
            )
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = stop.clone();
    tokio::spawn(
        async move { axum::serve(listener, app).with_graceful_shutdown(async move { stop.wait().await }).await },
    );
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins reading wrk's report (units us/ms/s, totals, the non-2xx/3xx line).
    #[test]
    fn parses_wrk() {
        let text = "Running 10s test @ http://127.0.0.1:1/x\n  2 threads and 64 connections\n\
          Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   1.20ms  300.00us  12.00ms   90.00%\n\
          Latency Distribution\n     50%  850.00us\n     75%    1.10ms\n     90%    1.50ms\n     99%    3.25ms\n\
          412345 requests in 10.00s, 80.00MB read\n  Non-2xx or 3xx responses: 7\nRequests/sec:  41234.50\nTransfer/sec:      8.00MB\n";
        let r = parse_wrk("x", text).unwrap_or_else(|| panic!("parse"));
        assert_eq!((r.requests, r.not_302), (412_345, 7));
        assert!((r.per_second - 41_234.5).abs() < 1e-9);
        assert!((r.p50_ms - 0.85).abs() < 1e-9 && (r.p99_ms - 3.25).abs() < 1e-9);
    }

    #[test]
    fn median_of_rounds() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[0.4]), Some(0.4));
        assert_eq!(median(&[0.5, 0.3, 0.4]), Some(0.4));
        assert!(median(&[0.5, 0.3, 0.4, 0.2]).is_some_and(|m| (m - 0.35).abs() < 1e-12));
    }
}
