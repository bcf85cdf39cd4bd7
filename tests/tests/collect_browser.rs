//! Outcomes collected for real, as a visitor and a shop produce them: headless Chromium
//! follows a creator's tracking link through the collector's redirector, lands on a landing
//! page (served here) carrying the beacon, stays and clicks through; a second browser
//! session bounces; the shop sends a signed orders/create webhook with the creator's code.
//! The campaign report then shows 2 clicks, a 50 % bounce rate and 1 conversion for that
//! creator — nothing simulated on the way.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use lift_cli::stack::Databases;
use lift_tests::browser::{Browser, BrowserOptions};
use lift_tests::campaign::offered_campaign;
use lift_tests::http::request;
use tokio::net::TcpListener;

/// A person's browser (Chromium's own user agent says HeadlessChrome, which is a bot).
const CHROME_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

fn landing_page(collector: SocketAddr, title: &str, next: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<script async src="http://{collector}/lift.js"></script>
<style>body{{font-family:sans-serif;margin:3em}} a{{font-size:1.4em}}</style></head>
<body><h1 id="title">{title}</h1><p>Fresh roasted beans, delivered.</p>{next}</body></html>"#
    )
}

async fn serve_landing(collector: SocketAddr) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new()
        .route(
            "/spring",
            get(|State(c): State<SocketAddr>| async move {
                Html(landing_page(
                    c,
                    "Spring roast",
                    r#"<p><a id="details" href="/spring/details">See the details</a></p>"#,
                ))
            }),
        )
        .route(
            "/spring/details",
            get(|State(c): State<SocketAddr>| async move { Html(landing_page(c, "Spring roast: details", "")) }),
        )
        .with_state(collector);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// Follows `code`'s link in a fresh browser; returns it on the landing page with the beacon
/// loaded, and the visitor id the redirect handed to the page.
async fn arrive(collector: SocketAddr, code: &str) -> anyhow::Result<(Browser, String)> {
    let browser =
        Browser::start_with(BrowserOptions { user_agent: Some(CHROME_UA.into()), ..Default::default() }).await?;
    browser.goto(&format!("http://{collector}/{code}")).await?;
    let url = browser.wait_for_url(|u| u.path() == "/spring").await?;
    let visitor = url
        .query_pairs()
        .find(|(k, _)| k == "lift_vid")
        .map(|(_, v)| v.into_owned())
        .with_context(|| format!("landing URL {url} has no lift_vid"))?;
    ensure!(url.query_pairs().any(|(k, v)| k == "utm_source" && v == "lift"), "no UTM parameters in {url}");
    browser.wait_until_js("window.lift && typeof window.lift.goal === 'function'", Duration::from_secs(15)).await?;
    Ok((browser, visitor))
}

/// Pins the issue's browser scenario end to end (see the file's doc).
#[tokio::test]
async fn chromium_click_beacon_and_signed_order_reach_the_report() -> anyhow::Result<()> {
    let links = TcpListener::bind("127.0.0.1:0").await?;
    let collector = links.local_addr()?;
    let landing = serve_landing(collector).await?;
    let mut camp = offered_campaign(&Databases::in_memory(), &format!("http://{landing}/spring")).await?;
    let spool = tempfile::tempdir()?;
    let cfg = lift_collect::CollectConfig {
        spool_path: spool.path().join("spool"),
        // A session quiet for 3 s without a second page view is a bounce (30 min in service).
        session_idle: Duration::from_secs(3),
        engaged_dwell: Duration::from_secs(60),
        ..Default::default()
    };
    let col = camp.stack.start_collect(links, cfg).await?;
    let secret = lift_cli::links::create_webhook_secret(&camp.stack.matching_db, &camp.brand_id).await?;
    let offer = camp.offer("c00")?.clone();
    let code = offer.link.strip_prefix("lift.to/").context("link outside lift.to")?.to_owned();

    // 1. A visitor stays and clicks through to a second page: engaged.
    let (b1, visitor) = arrive(collector, &code).await?;
    let shot = b1.screenshot("collect-landing").await?;
    b1.click("a#details").await?;
    b1.wait_for_url(|u| u.path() == "/spring/details").await?;
    b1.wait_until_js("window.lift && typeof window.lift.goal === 'function'", Duration::from_secs(15)).await?;
    b1.screenshot("collect-details").await?;
    b1.close().await?;

    // 2. Another visitor (fresh browser, no cookie) leaves after the first page: a bounce.
    let (b2, visitor2) = arrive(collector, &code).await?;
    ensure!(visitor2 != visitor, "two browsers got the same visitor id");
    b2.goto("about:blank").await?;
    b2.close().await?;

    // 3. The shop's orders/create webhook, signed with the brand's secret, carries the code.
    let order = serde_json::json!({
        "id": 5_550_001_u64,
        "total_price": "18.50",
        "currency": "EUR",
        "discount_codes": [{"code": offer.code, "amount": "2.00", "type": "fixed_amount"}],
        "landing_site": format!("/spring?lift_vid={visitor}"),
    })
    .to_string();
    let sig = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(lift_collect::webhook::sign(secret.as_bytes(), order.as_bytes()))
    };
    let path = format!("/webhooks/{}/shopify/orders-create", camp.brand_id);
    let r = request(collector, "POST", &path, &[("X-Shopify-Hmac-Sha256", &sig)], order.as_bytes()).await?;
    ensure!(r.status == 202, "webhook: {r:?}");

    // The bounce is decided after the idle time; then everything is on the ledger.
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let r = camp.report().await?;
        let t = r.totals.unwrap_or_default();
        if t.clicks >= 2 && t.sessions >= 2 && t.conversions >= 1 && col.pending() == 0 {
            break r;
        }
        if Instant::now() > deadline {
            bail!("report incomplete after 30 s: {t:?}, {} events pending in the spool", col.pending());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let t = report.totals.context("no totals")?;
    ensure!(t.clicks == 2 && t.unique_visitors == 2, "clicks {} visitors {}", t.clicks, t.unique_visitors);
    ensure!(t.sessions == 2 && (t.bounce_rate - 0.5).abs() < 1e-12, "sessions {} bounce {}", t.sessions, t.bounce_rate);
    ensure!(t.conversions == 1 && t.value_minor == 1_850 && t.code_without_click == 0, "{t:?}");
    for cr in &report.creators {
        let id = cr.account.as_ref().map(|a| a.id.as_str()).unwrap_or_default();
        let got = cr.totals.unwrap_or_default();
        let want = if id == "c00" { (2, 1) } else { (0, 0) };
        ensure!((got.clicks, got.conversions) == want, "{id}: clicks {} conversions {}", got.clicks, got.conversions);
    }
    eprintln!("landing page screenshot: {}", shot.display());
    camp.stack.stop().await
}
