//! The collector (lift-collect) over real HTTP against a real ingestion service on SQLite:
//! clicks survive ingestion being down (and a collector restart) and land exactly once;
//! bots and prefetches are recorded but not counted; unknown codes are 404s; order webhooks
//! need a good signature, and a replay is a duplicate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use lift_collect::{CollectConfig, Collector};
use lift_proto::ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient};
use lift_runtime::Shutdown;
use lift_runtime::client::{self, Channel, ClientOptions};
use lift_tests::http::{HttpResponse, request};
use lift_tests::wait_until;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const SECRET: &str = "whsec_test_secret";
const BRAND: &str = "brd_test";

struct Ingestion {
    addr: SocketAddr,
    stop: Shutdown,
    task: JoinHandle<()>,
}

async fn start_ingestion(db_url: &str, addr: Option<SocketAddr>) -> anyhow::Result<Ingestion> {
    let listener = TcpListener::bind(addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))).await?;
    let addr = listener.local_addr()?;
    let db = lift_store::connect(db_url).await?;
    let ingest = lift_ingest::Ingest::new(db, lift_ingest::IngestConfig::default());
    let stop = Shutdown::new();
    let sd = stop.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = lift_runtime::serve(listener, ingest.grpc(), sd).await {
            eprintln!("ingestion stopped with {e}");
        }
    });
    Ok(Ingestion { addr, stop, task })
}

impl Ingestion {
    async fn stop(self) -> anyhow::Result<()> {
        self.stop.trigger();
        Ok(self.task.await?)
    }
    fn client(&self) -> anyhow::Result<IngestServiceClient<Channel>> {
        Ok(IngestServiceClient::new(client::connect_lazy(&format!("http://{}", self.addr), &ClientOptions::default())?))
    }
}

struct Running {
    addr: SocketAddr,
    collector: Collector,
    stop: Shutdown,
    task: JoinHandle<()>,
}

async fn start_collector(db_url: &str, ingest: SocketAddr, spool: &Path) -> anyhow::Result<Running> {
    start_collector_bounded(db_url, ingest, spool, 1_000_000).await
}

async fn start_collector_bounded(
    db_url: &str,
    ingest: SocketAddr,
    spool: &Path,
    capacity: usize,
) -> anyhow::Result<Running> {
    let cfg = CollectConfig {
        spool_path: spool.to_owned(),
        spool_capacity: capacity,
        default_landing_url: Some("https://shop.example/default".into()),
        delivery: lift_collect::deliver::DeliveryConfig {
            backoff: (Duration::from_millis(20), Duration::from_millis(200)),
            drain: Duration::from_millis(200),
            ..Default::default()
        },
        ..Default::default()
    };
    let db = lift_store::connect(db_url).await?;
    let ingest = client::connect_lazy(&format!("http://{ingest}"), &ClientOptions::default())?;
    let stop = Shutdown::new();
    let (collector, delivery) = Collector::start(cfg, ingest, db, &stop)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (c, sd) = (collector.clone(), stop.clone());
    let task = tokio::spawn(async move {
        let _ = lift_collect::serve(listener, c, sd).await;
        let _ = delivery.await;
    });
    Ok(Running { addr, collector, stop, task })
}

impl Running {
    async fn stop(self) -> anyhow::Result<()> {
        self.stop.trigger();
        Ok(self.task.await?)
    }
    async fn drained(&self, within: Duration) -> anyhow::Result<()> {
        wait_until("spool drained", within, || async { self.collector.pending() == 0 }).await
    }
}

/// Every event on the ledger.
async fn ledger(ingest: &mut IngestServiceClient<Channel>) -> anyhow::Result<Vec<ipb::LedgerEvent>> {
    let mut stream =
        ingest.subscribe(ipb::SubscribeRequest { stop_at_head: true, ..Default::default() }).await?.into_inner();
    let mut out = Vec::new();
    while let Some(msg) = stream.message().await? {
        out.extend(msg.events);
    }
    Ok(out)
}

fn clicks(events: &[ipb::LedgerEvent]) -> Vec<(String, ipb::LinkClick)> {
    events
        .iter()
        .filter_map(|e| {
            let ev = e.event.as_ref()?;
            match &ev.kind {
                Some(ipb::event::Kind::LinkClick(c)) => Some((ev.event_id.clone(), c.clone())),
                _ => None,
            }
        })
        .collect()
}

struct Env {
    _dir: tempfile::TempDir,
    db_url: String,
    spool: std::path::PathBuf,
    ingestion: Ingestion,
}

/// Ingestion on a fresh SQLite file with `lift.to/anna` registered (landing page set) and
/// `lift.to/bare` (none), and a webhook secret for `brd_test`.
async fn env() -> anyhow::Result<Env> {
    let dir = tempfile::tempdir()?;
    let db_url = format!("sqlite://{}?mode=rwc", dir.path().join("lift.db").display());
    let ingestion = start_ingestion(&db_url, None).await?;
    let link = |l: &str, landing: &str| ipb::Link {
        link: l.into(),
        owner: Some(ipb::AccountRef { network: "x".into(), id: "anna".into() }),
        campaign_id: "cmp_1".into(),
        attribution_window_secs: 3_600,
        landing_url: landing.into(),
    };
    ingestion
        .client()?
        .register_links(ipb::RegisterLinksRequest {
            links: vec![
                link("lift.to/anna", "https://shop.example/spring?utm_source=anna"),
                link("lift.to/bare", ""),
                link("ANNA10", ""),
            ],
        })
        .await?;
    let db = lift_store::connect(&db_url).await?;
    lift_store::webhook_secrets::set(&db, BRAND, SECRET, 0).await?;
    let spool = dir.path().join("spool");
    Ok(Env { _dir: dir, db_url, spool, ingestion })
}

async fn click(addr: SocketAddr, code: &str, visitor: Option<&str>, ua: &str) -> anyhow::Result<HttpResponse> {
    let cookie = visitor.map(|v| format!("lift_vid={v}"));
    let mut headers = vec![("User-Agent", ua)];
    if let Some(c) = &cookie {
        headers.push(("Cookie", c));
    }
    Ok(request(addr, "GET", &format!("/{code}"), &headers, b"").await?)
}

/// Pins "never lose a click": clicks made while ingestion is down, some of them across a
/// collector restart, all reach the ledger once ingestion is back, each exactly once; replaying
/// the whole spool again adds nothing.
#[tokio::test]
async fn clicks_survive_ingestion_down_exactly_once() -> anyhow::Result<()> {
    let env = env().await?;
    let c1 = start_collector(&env.db_url, env.ingestion.addr, &env.spool).await?;
    // Warm: the link is resolved while ingestion is up.
    let first = click(c1.addr, "anna", None, FIREFOX).await?;
    ensure!(first.status == 302, "first click: {first:?}");
    let location = first.header("location").context("no Location")?;
    ensure!(location.starts_with("https://shop.example/spring?utm_source=anna&"), "{location}");
    for p in ["utm_medium=influencer", "utm_campaign=cmp_1", "utm_content=anna", "lift_link=anna", "lift_vid="] {
        ensure!(location.contains(p), "{location} lacks {p}");
    }
    ensure!(!location.contains("utm_source=lift"), "the campaign's own utm_source is kept: {location}");
    let set_cookie = first.header("set-cookie").context("no visitor cookie")?;
    ensure!(set_cookie.starts_with("lift_vid=") && set_cookie.contains("HttpOnly"), "{set_cookie}");
    c1.drained(Duration::from_secs(10)).await?;

    let Env { ingestion, db_url, spool, _dir } = env;
    let addr = ingestion.addr;
    ingestion.stop().await?;
    for i in 0..10 {
        let r = click(c1.addr, "anna", Some(&format!("visitor-{i:012}")), FIREFOX).await?;
        ensure!(r.status == 302, "click {i} with ingestion down: {}", r.status);
    }
    ensure!(c1.collector.pending() == 10, "{} pending", c1.collector.pending());
    // The collector restarts while ingestion is still down: the spool file carries the clicks.
    c1.stop().await?;
    let c2 = start_collector(&db_url, addr, &spool).await?;
    ensure!(c2.collector.pending() == 10, "after restart {} pending", c2.collector.pending());
    // A link never seen by this collector cannot be resolved now: no redirect anywhere.
    let r = click(c2.addr, "bare", None, FIREFOX).await?;
    ensure!(r.status == 503 && r.header("location").is_none(), "unresolvable while down: {r:?}");
    let spool_copy = spool.with_extension("copy");
    std::fs::copy(&spool, &spool_copy)?;

    let ingestion = start_ingestion(&db_url, Some(addr)).await?;
    // c2 has not resolved `anna` itself; it keeps recording from its spool and once
    // ingestion is back resolves again.
    for i in 10..15 {
        let r = click(c2.addr, "anna", Some(&format!("visitor-{i:012}")), FIREFOX).await?;
        ensure!(r.status == 302, "click {i}: {}", r.status);
    }
    c2.drained(Duration::from_secs(20)).await?;
    let mut ingest = ingestion.client()?;
    let on_ledger = clicks(&ledger(&mut ingest).await?);
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (id, _) in &on_ledger {
        *ids.entry(id.as_str()).or_default() += 1;
    }
    ensure!(on_ledger.len() == 16, "{} clicks on the ledger, want 16 (1 + 10 while down + 5)", on_ledger.len());
    ensure!(ids.values().all(|n| *n == 1), "an event twice: {ids:?}");
    ensure!(on_ledger.iter().all(|(_, c)| c.link == "lift.to/anna" && c.not_counted.is_empty()));

    // Replaying the whole spool (as after a crash before the cursor was written) adds nothing.
    let c3 = start_collector(&db_url, addr, &spool_copy).await?;
    c3.drained(Duration::from_secs(20)).await?;
    let again = clicks(&ledger(&mut ingest).await?);
    ensure!(again.len() == 16, "after replaying the spool: {} clicks", again.len());
    c3.stop().await?;
    c2.stop().await?;
    ingestion.stop().await
}

/// Pins what is not a person's click: known bots and preview fetchers, HEAD, prefetch and a
/// burst from one visitor are on the ledger with a reason, the person's click without; unknown
/// codes and links without any destination answer 404 and never redirect.
#[tokio::test]
async fn bots_recorded_not_counted_and_unknown_codes_404() -> anyhow::Result<()> {
    let env = env().await?;
    let c = start_collector(&env.db_url, env.ingestion.addr, &env.spool).await?;
    ensure!(click(c.addr, "anna", Some("person-000000000001"), FIREFOX).await?.status == 302);
    for ua in ["Twitterbot/1.0", "facebookexternalhit/1.1", "Slackbot-LinkExpanding 1.0", "curl/8.5.0"] {
        ensure!(click(c.addr, "anna", None, ua).await?.status == 302, "{ua} is redirected too");
    }
    let head = request(c.addr, "HEAD", "/anna", &[("User-Agent", FIREFOX)], b"").await?;
    ensure!(head.status == 302, "HEAD: {}", head.status);
    let pre = request(c.addr, "GET", "/anna", &[("User-Agent", FIREFOX), ("Sec-Purpose", "prefetch")], b"").await?;
    ensure!(pre.status == 302, "prefetch: {}", pre.status);
    for _ in 0..7 {
        ensure!(click(c.addr, "anna", Some("burster-00000000001"), FIREFOX).await?.status == 302);
    }
    for code in ["nope", "a%2Fb", "x.y"] {
        let r = click(c.addr, code, None, FIREFOX).await?;
        ensure!(r.status == 404 && r.header("location").is_none(), "/{code}: {r:?}");
    }
    let root = request(c.addr, "GET", "/", &[], b"").await?;
    ensure!(root.status == 404 && root.header("location").is_none(), "/: {root:?}");
    c.drained(Duration::from_secs(10)).await?;
    let mut ingest = env.ingestion.client()?;
    let all = clicks(&ledger(&mut ingest).await?);
    let counted: Vec<_> = all.iter().filter(|(_, c)| c.not_counted.is_empty()).collect();
    let reasons: Vec<&str> = all.iter().map(|(_, c)| c.not_counted.as_str()).filter(|r| !r.is_empty()).collect();
    // 1 person + 5 of the burster's 7 clicks are counted; 4 bots + HEAD + prefetch + 2 burst are not.
    ensure!(all.len() == 1 + 4 + 2 + 7, "{} clicks recorded", all.len());
    ensure!(counted.len() == 6, "{} counted: {counted:?}", counted.len());
    for want in ["known bot or link-preview user agent", "HEAD request", "prefetch", "burst from one visitor"] {
        ensure!(reasons.contains(&want), "no click not counted for {want:?}: {reasons:?}");
    }
    ensure!(all.iter().filter(|(_, c)| c.agent_class == "bot").count() == 4);
    ensure!(counted.iter().all(|(_, c)| c.agent_class == "desktop"));
    c.stop().await?;
    env.ingestion.stop().await
}

fn sign_hex(body: &[u8]) -> String {
    format!("sha256={}", hex::encode(lift_collect::webhook::sign(SECRET.as_bytes(), body)))
}

/// Pins the webhooks: a bad or missing signature is 401 and records nothing; a signed order
/// with a code is one conversion; the same order again (generic or Shopify replay) is a
/// duplicate on the ledger; an order with neither code nor visitor is not recorded.
#[tokio::test]
async fn order_webhooks_signed_and_idempotent() -> anyhow::Result<()> {
    let env = env().await?;
    let c = start_collector(&env.db_url, env.ingestion.addr, &env.spool).await?;
    let path = format!("/webhooks/{BRAND}/orders");
    let body = br#"{"order_id":"1001","value_minor":2500,"currency":"EUR","code":"ANNA10"}"#;
    let forged = request(c.addr, "POST", &path, &[("X-Lift-Signature", "sha256=00ff")], body).await?;
    ensure!(forged.status == 401, "forged: {forged:?}");
    let missing = request(c.addr, "POST", &path, &[], body).await?;
    ensure!(missing.status == 401, "unsigned: {missing:?}");
    let other_brand =
        request(c.addr, "POST", "/webhooks/brd_other/orders", &[("X-Lift-Signature", &sign_hex(body))], body).await?;
    ensure!(other_brand.status == 401, "a brand without a secret: {other_brand:?}");
    ensure!(c.collector.pending() == 0, "a refused webhook spooled something");

    let sig = sign_hex(body);
    for _ in 0..2 {
        let r = request(c.addr, "POST", &path, &[("X-Lift-Signature", &sig)], body).await?;
        ensure!(r.status == 202 && r.body.contains("accepted"), "{r:?}");
    }
    let shopify = br#"{"id": 1001, "total_price": "25.00", "currency": "EUR", "discount_codes": [{"code": "ANNA10"}]}"#;
    let b64 = base64_of(&lift_collect::webhook::sign(SECRET.as_bytes(), shopify));
    let spath = format!("/webhooks/{BRAND}/shopify/orders-create");
    let headers = [("X-Shopify-Hmac-Sha256", b64.as_str()), ("X-Shopify-Topic", "orders/create")];
    let r = request(c.addr, "POST", &spath, &headers, shopify).await?;
    ensure!(r.status == 202, "shopify: {r:?}");
    let tampered =
        br#"{"id": 1001, "total_price": "2500.00", "currency": "EUR", "discount_codes": [{"code": "ANNA10"}]}"#;
    let r = request(c.addr, "POST", &spath, &headers, tampered).await?;
    ensure!(r.status == 401, "tampered body with the old signature: {r:?}");
    let anonymous = br#"{"order_id":"1002","value_minor":100,"currency":"EUR"}"#;
    let r = request(c.addr, "POST", &path, &[("X-Lift-Signature", &sign_hex(anonymous))], anonymous).await?;
    ensure!(r.status == 200 && r.body.contains("ignored"), "{r:?}");

    c.drained(Duration::from_secs(10)).await?;
    let mut ingest = env.ingestion.client()?;
    let conversions: Vec<ipb::LedgerEvent> = ledger(&mut ingest)
        .await?
        .into_iter()
        .filter(|e| matches!(e.event.as_ref().and_then(|e| e.kind.as_ref()), Some(ipb::event::Kind::Conversion(_))))
        .collect();
    ensure!(conversions.len() == 1, "{} conversions on the ledger, want 1: {conversions:?}", conversions.len());
    let a = conversions[0].attribution.as_ref().context("no attribution")?;
    ensure!(a.status == ipb::AttributionStatus::CodeWithoutClick as i32 && a.campaign_id == "cmp_1", "{a:?}");
    // The replays were sent to ingestion and answered as duplicates.
    let info = ingest.get_ledger_info(ipb::GetLedgerInfoRequest {}).await?.into_inner();
    ensure!(info.events == 1, "ledger holds {} events", info.events);
    c.stop().await?;
    env.ingestion.stop().await
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Pins the bound: with ingestion down and room for 3 events, further clicks still redirect but
/// are dropped and counted (`Collector::dropped`, `lift_collect_spool_dropped_total`); an order
/// webhook is then answered 503, so the shop retries it rather than losing it.
#[tokio::test]
async fn full_spool_still_redirects_and_says_so() -> anyhow::Result<()> {
    lift_runtime::metrics::install().context("no Prometheus recorder")?;
    let env = env().await?;
    let c = start_collector_bounded(&env.db_url, env.ingestion.addr, &env.spool, 3).await?;
    ensure!(click(c.addr, "anna", None, FIREFOX).await?.status == 302);
    c.drained(Duration::from_secs(10)).await?;
    env.ingestion.stop().await?;
    for i in 0..5 {
        let r = click(c.addr, "anna", Some(&format!("visitor-{i:012}")), FIREFOX).await?;
        ensure!(r.status == 302, "click {i} with a full spool: {}", r.status);
    }
    ensure!(
        (c.collector.pending(), c.collector.dropped()) == (3, 2),
        "{} pending, {} dropped",
        c.collector.pending(),
        c.collector.dropped()
    );
    let body = br#"{"order_id":"2001","value_minor":900,"currency":"EUR","code":"ANNA10"}"#;
    let r =
        request(c.addr, "POST", &format!("/webhooks/{BRAND}/orders"), &[("X-Lift-Signature", &sign_hex(body))], body)
            .await?;
    ensure!(r.status == 503, "order with a full spool: {r:?}");
    // Only this test fills a spool, so the process-wide counter is this test's.
    let text = lift_runtime::metrics::render();
    ensure!(text.lines().any(|l| l == "lift_collect_spool_dropped_total 3"), "metrics:\n{text}");
    c.stop().await
}
