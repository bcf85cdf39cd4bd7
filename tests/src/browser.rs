//! A real browser for tests: Debian's headless Chromium driven over WebDriver.
//!
//! [`Browser::start`] launches `/usr/bin/chromedriver` on a free loopback port (in its own
//! process group), waits until it says it is listening, and opens a session with `fantoccini`:
//! headless Chromium with a fresh profile directory and no background traffic (no sync, updates,
//! QUIC or first-run pages). Everything is torn down when the [`Browser`] is dropped: the session,
//! chromedriver and every Chromium process it started (the whole process group), and the profile.
//! [`Browser::close`] does the same politely and reports errors.
//!
//! Waits are bounded and wait on a condition (an element appearing, a URL, a script returning
//! true), polling every 50 ms for at most [`WAIT`] unless told otherwise; nothing sleeps to "give
//! the browser time". Screenshots go to `target/screenshots/<name>.png` (or under
//! `$CARGO_TARGET_DIR`) so a person can open and look at them.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! let browser = lift_tests::browser::Browser::start().await?;
//! browser.goto("http://127.0.0.1:8080/").await?;
//! browser.click("a#next").await?;
//! browser.wait_for_url(|u| u.path() == "/thanks").await?;
//! let png = browser.screenshot("thanks").await?;
//! # Ok(()) }
//! ```
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (scripts/ensure-chromium.sh installs
//! them; scripts/test.sh runs it). Without them [`Browser::start`] fails, it never skips.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator, elements::Element, wd::Capabilities};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// The chromedriver binary (Debian package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The browser binary (Debian package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Default bound for every wait.
pub const WAIT: Duration = Duration::from_secs(15);
/// How often a wait re-checks its condition.
const POLL: Duration = Duration::from_millis(50);

/// Options for [`Browser::start_with`].
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// `--user-agent` override (Chromium's own says `HeadlessChrome`).
    pub user_agent: Option<String>,
    /// Window size in CSS pixels (screenshots have this size).
    pub window: (u32, u32),
    /// Further Chromium command-line switches.
    pub extra_args: Vec<String>,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self { user_agent: None, window: (1280, 800), extra_args: Vec::new() }
    }
}

/// One headless Chromium session and the chromedriver serving it.
#[derive(Debug)]
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    driver_pid: Option<u32>,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with the default options.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(BrowserOptions::default()).await
    }

    /// Starts chromedriver and a headless Chromium session.
    pub async fn start_with(options: BrowserOptions) -> anyhow::Result<Self> {
        for bin in [CHROMEDRIVER, CHROMIUM] {
            if !Path::new(bin).exists() {
                bail!(
                    "{bin} is missing: run scripts/ensure-chromium.sh (as root) to install chromium and chromium-driver"
                );
            }
        }
        let port = free_port()?;
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            // Its own process group, so dropping the Browser can end Chromium's processes too.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {CHROMEDRIVER}"))?;
        let driver_pid = driver.id();
        let stdout = driver.stdout.take().context("chromedriver stdout")?;
        let profile = fresh_profile_dir()?;
        let mut browser = Self { client: None, driver, driver_pid, profile };

        // chromedriver prints "... started successfully on port N" once it listens.
        let ready = async {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(line) = lines.next_line().await? {
                if line.contains("started successfully") {
                    // Keep draining its output so it never blocks on a full pipe.
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    return Ok(());
                }
            }
            bail!("chromedriver exited before it was ready")
        };
        tokio::time::timeout(WAIT, ready)
            .await
            .with_context(|| format!("chromedriver not ready within {WAIT:?}"))??;

        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.push(format!("--user-data-dir={}", browser.profile.display()));
        args.push(format!("--window-size={},{}", options.window.0, options.window.1));
        if let Some(ua) = &options.user_agent {
            args.push(format!("--user-agent={ua}"));
        }
        args.extend(options.extra_args.iter().cloned());
        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert("goog:chromeOptions".into(), serde_json::json!({ "binary": CHROMIUM, "args": args }));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("opening a Chromium session through chromedriver")?;
        browser.client = Some(client);
        Ok(browser)
    }

    /// The underlying WebDriver client, for anything the helpers do not cover.
    pub fn client(&self) -> &Client {
        // Only `close` (which consumes self) takes the client.
        self.client.as_ref().unwrap_or_else(|| unreachable!("client present until close"))
    }

    /// Navigates to `url` and waits for the page load (WebDriver's own navigation wait).
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client().goto(url).await.with_context(|| format!("goto {url}"))
    }

    /// The current URL.
    pub async fn url(&self) -> anyhow::Result<url::Url> {
        Ok(self.client().current_url().await?)
    }

    /// Waits (at most [`WAIT`]) for an element matching the CSS selector.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        self.client()
            .wait()
            .at_most(WAIT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("no element matches {css:?} within {WAIT:?}"))
    }

    /// Waits for an element matching the CSS selector, then clicks it.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css).await?.click().await.with_context(|| format!("clicking {css:?}"))
    }

    /// Text of the first element matching the CSS selector (waiting for it).
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.find(css).await?.text().await?)
    }

    /// Waits (at most [`WAIT`]) until the current URL satisfies `pred`.
    pub async fn wait_for_url(&self, pred: impl Fn(&url::Url) -> bool) -> anyhow::Result<url::Url> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let url = self.url().await?;
            if pred(&url) {
                return Ok(url);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("URL still {url} after {WAIT:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits (at most `within`) until the JavaScript expression `expr` is truthy in the page.
    pub async fn wait_until_js(&self, expr: &str, within: Duration) -> anyhow::Result<()> {
        let script = format!("return !!({expr});");
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.client().execute(&script, vec![]).await?.as_bool() == Some(true) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{expr:?} still false after {within:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs a script in the page and returns its JSON result.
    pub async fn execute(&self, script: &str, args: Vec<serde_json::Value>) -> anyhow::Result<serde_json::Value> {
        Ok(self.client().execute(script, args).await?)
    }

    /// Runs axe-core (`LIFT_AXE_JS`, installed by scripts/test.sh) on the page against
    /// WCAG 2.x A and AA and returns the serious and critical violations, each as
    /// "rule: help (n elements: selectors)". Fails when axe-core is not there: an
    /// accessibility check that cannot run must not pass.
    pub async fn accessibility_violations(&self) -> anyhow::Result<Vec<String>> {
        let path = std::env::var("LIFT_AXE_JS").context(
            "LIFT_AXE_JS is not set: run the tests through scripts/test.sh, which installs axe-core from npm",
        )?;
        let axe = std::fs::read_to_string(&path).with_context(|| format!("reading axe-core at {path}"))?;
        self.client().execute(&axe, vec![]).await.context("loading axe-core into the page")?;
        let found = self
            .client()
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
                    .then(r => done(r.violations
                        .filter(v => v.impact === 'serious' || v.impact === 'critical')
                        .map(v => v.id + ': ' + v.help + ' (' + v.nodes.length + ' elements: '
                            + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ') + ')')))
                    .catch(e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .context("running axe-core")?;
        let list = found.as_array().context("axe-core returned no list")?;
        Ok(list.iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect())
    }

    /// Saves a PNG of the viewport as `<screenshots dir>/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client().screenshot().await.context("taking a screenshot")?;
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Ends the session (Chromium quits), stops chromedriver and removes the profile.
    pub async fn close(mut self) -> anyhow::Result<()> {
        if let Some(client) = self.client.take() {
            client.close().await.context("closing the WebDriver session")?;
        }
        Ok(())
        // Drop stops chromedriver's process group and removes the profile.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The client's own drop cannot quit the browser (it would need to await), so end the
        // whole process group: chromedriver and every Chromium process it launched.
        if let Some(pid) = self.driver_pid {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Where screenshots go: `$CARGO_TARGET_DIR/screenshots`, else the workspace's `target/screenshots`.
pub fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("screenshots")
}

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn fresh_profile_dir() -> anyhow::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lift-chromium-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
