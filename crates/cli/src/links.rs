//! The link collector from the command line: brands' webhook secrets, and
//! `lift bench links` (wrk against the redirector and a static 302 from the same HTTP stack).

use std::fmt;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::{StatusCode, header};
use lift_proto::ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient};
use lift_runtime::Shutdown;
use rand::Rng;
use tokio::net::TcpListener;

use crate::stack::{Databases, Stack};

/// Creates (or rotates) a brand's webhook secret and returns it.
pub async fn create_webhook_secret(db: &sea_orm::DatabaseConnection, brand_id: &str) -> anyhow::Result<String> {
    if !lift_store::webhook_secrets::brand_exists(db, brand_id).await? {
        bail!("no brand {brand_id:?} in this database (`lift brands create NAME` makes one)");
    }
    let mut bytes = [0u8; 24];
    rand::rng().fill(&mut bytes[..]);
    let secret = format!("whsec_{}", hex::encode(bytes));
    lift_store::webhook_secrets::set(db, brand_id, &secret, lift_domain::time::now()).await?;
    Ok(secret)
}

/// `lift bench links` settings.
#[derive(Debug, Clone)]
pub struct LinksBenchOptions {
    pub seconds: u64,
    pub connections: u32,
    pub threads: u32,
}

/// One wrk run.
#[derive(Debug, Clone)]
pub struct WrkRun {
    pub name: &'static str,
    pub requests: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub non_3xx: u64,
}

#[derive(Debug, Clone)]
pub struct LinksBenchReport {
    pub runs: Vec<WrkRun>,
    /// Clicks the redirector run answered, and how many of them reached the ledger.
    pub clicks_answered: u64,
    pub clicks_on_ledger: u64,
    pub drain: Duration,
    pub opts: LinksBenchOptions,
}

impl fmt::Display for LinksBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "wrk -t{} -c{} -d{}s on loopback, same process, same axum stack",
            self.opts.threads, self.opts.connections, self.opts.seconds
        )?;
        writeln!(f, "{:<28} {:>12} {:>10} {:>10} {:>10} {:>9}", "endpoint", "requests", "req/s", "p50 ms", "p99 ms", "non-3xx")?;
        for r in &self.runs {
            writeln!(
                f,
                "{:<28} {:>12} {:>10.0} {:>10.2} {:>10.2} {:>9}",
                r.name, r.requests, r.per_second, r.p50_ms, r.p99_ms, r.non_3xx
            )?;
        }
        if let [floor, redirector] = &self.runs[..] {
            writeln!(f, "redirector / floor throughput: {:.0} %", 100.0 * redirector.per_second / floor.per_second.max(1e-9))?;
        }
        write!(
            f,
            "clicks answered by the redirector: {}; on the ledger after {:.1} s of draining: {}",
            self.clicks_answered,
            self.drain.as_secs_f64(),
            self.clicks_on_ledger
        )
    }
}

/// Installs Debian's `wrk` when missing (root only), like the test scripts do for their tools.
fn ensure_wrk() -> anyhow::Result<()> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("wrk not found; installing the Debian package `wrk`");
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    if !ok(Command::new("apt-get").args(["install", "-y", "--no-install-recommends", "wrk"]))
        && !(ok(Command::new("apt-get").arg("update"))
            && ok(Command::new("apt-get").args(["install", "-y", "--no-install-recommends", "wrk"])))
    {
        bail!("wrk is missing and `apt-get install wrk` failed (run as root, or install wrk)");
    }
    Ok(())
}

fn wrk(name: &'static str, url: &str, o: &LinksBenchOptions) -> anyhow::Result<WrkRun> {
    let out = Command::new("wrk")
        .args([
            &format!("-t{}", o.threads),
            &format!("-c{}", o.connections),
            &format!("-d{}s", o.seconds),
            "--latency",
            "-H",
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            url,
        ])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(name, &text).with_context(|| format!("reading wrk's output:\n{text}"))
}

/// Reads wrk's `--latency` report.
fn parse_wrk(name: &'static str, text: &str) -> Option<WrkRun> {
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
    let pct = |p: &str| text.lines().find_map(|l| l.trim().strip_prefix(p).and_then(|rest| ms(rest)));
    let requests = text.lines().find_map(|l| {
        let l = l.trim();
        l.contains(" requests in ").then(|| l.split_whitespace().next()?.parse().ok()).flatten()
    })?;
    let per_second = text.lines().find_map(|l| l.trim().strip_prefix("Requests/sec:")?.trim().parse().ok())?;
    let non_3xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:")?.trim().parse().ok())
        .unwrap_or(0);
    Some(WrkRun { name, requests, per_second, p50_ms: pct("50%")?, p99_ms: pct("99%")?, non_3xx })
}

/// Runs the benchmark: a stack on temporary SQLite files, one registered link, the collector,
/// and beside it a static 302 on the same axum stack; wrk against each, then waits for the
/// redirector's clicks to reach the ledger.
pub async fn bench(o: LinksBenchOptions) -> anyhow::Result<LinksBenchReport> {
    ensure_wrk()?;
    let dir = std::env::temp_dir().join(format!("lift-bench-links-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut stack = Stack::start_loopback(&Databases::sqlite_files(&dir), Default::default()).await?;
    let mut ingest = IngestServiceClient::new(stack.channel(&stack.ingest_url())?);
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
    let collector = stack.start_collect(listener, cfg).await?;

    let floor_stop = Shutdown::new();
    let floor_addr = static_302(&floor_stop).await?;

    let head_before = ledger_head(&mut ingest).await?;
    let floor = tokio::task::spawn_blocking({
        let o = o.clone();
        move || wrk("static 302 (floor)", &format!("http://{floor_addr}/bench"), &o)
    })
    .await??;
    let redirector = tokio::task::spawn_blocking({
        let o = o.clone();
        move || wrk("redirector GET /{code}", &format!("http://{links_addr}/bench"), &o)
    })
    .await??;
    let t = tokio::time::Instant::now();
    while collector.pending() > 0 && t.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = t.elapsed();
    let clicks_on_ledger = ledger_head(&mut ingest).await? - head_before;
    floor_stop.trigger();
    stack.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    let clicks_answered = redirector.requests.saturating_sub(redirector.non_3xx);
    Ok(LinksBenchReport { runs: vec![floor, redirector], clicks_answered, clicks_on_ledger, drain, opts: o })
}

async fn ledger_head(ingest: &mut IngestServiceClient<lift_runtime::client::Channel>) -> anyhow::Result<u64> {
    Ok(ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?.into_inner().head_offset)
}

/// The floor: axum answering every request with a fixed 302.
async fn static_302(stop: &Shutdown) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new().route(
        "/{code}",
        axum::routing::get(|| async {
            (StatusCode::FOUND, [(header::LOCATION, "https://shop.example/landing"), (header::CACHE_CONTROL, "no-store")])
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = stop.clone();
    tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(async move { stop.wait().await }).await });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins reading wrk's report (units us/ms/s, totals, non-3xx line).
    #[test]
    fn parses_wrk() {
        let text = "Running 10s test @ http://127.0.0.1:1/x\n  2 threads and 64 connections\n\
          Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   1.20ms  300.00us  12.00ms   90.00%\n\
          Latency Distribution\n     50%  850.00us\n     75%    1.10ms\n     90%    1.50ms\n     99%    3.25ms\n\
          412345 requests in 10.00s, 80.00MB read\n  Non-2xx or 3xx responses: 7\nRequests/sec:  41234.50\nTransfer/sec:      8.00MB\n";
        let r = parse_wrk("x", text).unwrap_or_else(|| panic!("parse"));
        assert_eq!((r.requests, r.non_3xx), (412_345, 7));
        assert!((r.per_second - 41_234.5).abs() < 1e-9);
        assert!((r.p50_ms - 0.85).abs() < 1e-9 && (r.p99_ms - 3.25).abs() < 1e-9);
    }
}

/// What [`replay_over_http`] sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    pub clicks: u64,
    pub sessions: u64,
    pub orders: u64,
}

impl Replayed {
    /// Ledger events these requests make (one each).
    pub fn events(&self) -> u64 {
        self.clicks + self.sessions + self.orders
    }
}

/// A desktop browser's user agent, for simulated visitors.
const VISITOR_UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// Sends simulated outcome events to the collector at `addr` the way browsers and a shop do:
/// a click is `GET /{code}` carrying the visitor's cookie, a page session is the beacon's
/// `POST /b` (two page views when it stayed), a conversion is an order webhook signed with the
/// brand's `secret`. Other events are skipped. Fails on the first request the collector refuses.
pub async fn replay_over_http(
    addr: SocketAddr,
    link_base: &str,
    brand_id: &str,
    secret: &str,
    events: &[ipb::Event],
) -> anyhow::Result<Replayed> {
    use lift_collect::client::request;
    let prefix = format!("{}/", link_base.trim_end_matches('/'));
    let code_of = |link: &str| link.strip_prefix(&prefix).map(str::to_owned);
    let mut n = Replayed::default();
    for e in events {
        match &e.kind {
            Some(ipb::event::Kind::LinkClick(c)) => {
                let code = code_of(&c.link).with_context(|| format!("link {} is not under {prefix}", c.link))?;
                let cookie = format!("lift_vid={}", c.visitor_id);
                let r = request(addr, "GET", &format!("/{code}"), &[("User-Agent", VISITOR_UA), ("Cookie", &cookie)], b"")
                    .await?;
                if r.status != 302 {
                    bail!("GET /{code} answered {}: {}", r.status, r.body);
                }
                n.clicks += 1;
            }
            Some(ipb::event::Kind::PageSession(s)) => {
                let code = code_of(&s.link).with_context(|| format!("link {} is not under {prefix}", s.link))?;
                let beacon = serde_json::json!({
                    "s": format!("s-{}", e.event_id), "v": s.visitor_id, "l": code,
                    "d": s.dwell_ms, "p": if s.bounced { 1 } else { 2 },
                });
                let r = request(addr, "POST", "/b", &[("Content-Type", "text/plain")], beacon.to_string().as_bytes())
                    .await?;
                if r.status != 204 {
                    bail!("beacon answered {}: {}", r.status, r.body);
                }
                n.sessions += 1;
            }
            Some(ipb::event::Kind::Conversion(c)) => {
                let order = serde_json::json!({
                    "order_id": c.order_id, "value_minor": c.value_minor, "currency": c.currency,
                    "code": (!c.code.is_empty()).then_some(&c.code),
                    "visitor_id": (!c.visitor_id.is_empty()).then_some(&c.visitor_id),
                    "customer": c.customer.as_ref().map(|a| serde_json::json!({"network": a.network, "id": a.id})),
                })
                .to_string();
                let sig = format!("sha256={}", hex::encode(lift_collect::webhook::sign(secret.as_bytes(), order.as_bytes())));
                let path = format!("/webhooks/{brand_id}/orders");
                let r = request(addr, "POST", &path, &[("X-Lift-Signature", &sig), ("Content-Type", "application/json")], order.as_bytes())
                    .await?;
                if r.status != 202 {
                    bail!("order webhook answered {}: {}", r.status, r.body);
                }
                n.orders += 1;
            }
            _ => {}
        }
    }
    Ok(n)
}
