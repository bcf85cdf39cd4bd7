//! The browser harness itself (tests/src/browser.rs): a real headless Chromium loads a page
//! served here, follows a link by clicking it, runs script, and leaves a screenshot on disk.

use anyhow::Context;
use axum::{Router, response::Html, routing::get};
use lift_tests::browser::Browser;

const HOME: &str = r#"<!doctype html><html lang="en"><head><title>Home</title></head>
<body><h1>Harness home</h1><p><a id="next" href="/next">Next page</a></p></body></html>"#;
const NEXT: &str = r#"<!doctype html><html lang="en"><head><title>Next</title></head>
<body><h1 id="arrived">Arrived</h1><script>window.ready = 40 + 2;</script></body></html>"#;

/// Pins the harness: goto, click-through, bounded waits on URL and script, a PNG screenshot.
#[tokio::test]
async fn chromium_follows_a_link_and_screenshots() -> anyhow::Result<()> {
    let app = Router::new().route("/", get(|| async { Html(HOME) })).route("/next", get(|| async { Html(NEXT) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let browser = Browser::start().await?;
    browser.goto(&format!("http://{addr}/")).await?;
    browser.click("a#next").await?;
    let url = browser.wait_for_url(|u| u.path() == "/next").await?;
    assert_eq!(url.path(), "/next");
    assert_eq!(browser.text("#arrived").await?, "Arrived");
    browser.wait_until_js("window.ready === 42", lift_tests::browser::WAIT).await?;
    let shot = browser.screenshot("harness-next").await?;
    let bytes = std::fs::read(&shot).with_context(|| format!("reading {}", shot.display()))?;
    assert!(bytes.starts_with(b"\x89PNG"), "{} is not a PNG", shot.display());
    browser.close().await
}
