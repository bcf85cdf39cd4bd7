//! `lift demo`: all three services in one process on loopback, real gRPC,
//! embedded SQLite, a real (CollegeMsg) or generated social graph with
//! simulated outcomes, and a readable result.
//!
//! - [`story`]: the steps up to the brand's campaign and its shortlist (2–6);
//! - [`campaign`]: the campaign's life — portfolio, offers, simulated outcomes, report (7–10);
//! - [`standing`]: a standing perk program giving its perk as scores change (11);
//! - [`outcomes`]: the simulated audience's clicks, sessions and orders;
//! - [`rpc`]: the calls the demo (and the tests) make against the stack.

mod campaign;
mod outcomes;
mod rpc;
mod standing;
mod story;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use lift_domain::Dimension;
use lift_proto::{matching::v1 as mpb, scoring::v1 as spb};

pub use campaign::TRUE_EFFECT;
pub use rpc::{
    SIMULATED_WINDOW_SECS, all_scores, import_summary, register_simulated_links, stream_events, wait_scored, with_key,
};

use crate::stack::{Databases, Stack};

/// What the demo runs on.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// CollegeMsg file; when absent, a generated network is used.
    pub collegemsg: PathBuf,
    /// Directory for the SQLite files (a fresh temp dir by default).
    pub dir: Option<PathBuf>,
    /// Accounts in the generated network.
    pub accounts: usize,
    /// Force the generated network even when CollegeMsg is present.
    pub generated: bool,
    /// Database URLs; default: SQLite files in `dir`.
    pub databases: Option<Databases>,
    /// Where the web console listens (default: a free loopback port).
    pub web_addr: Option<std::net::SocketAddr>,
    /// Keep serving (console included) after the story, until Ctrl-C.
    pub serve: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            collegemsg: PathBuf::from("data/collegemsg.csv.gz"),
            dir: None,
            accounts: 1500,
            generated: false,
            databases: None,
            web_addr: None,
            serve: false,
        }
    }
}

/// What the demo found, for tests to check.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub dataset: String,
    pub events: u64,
    pub scored_accounts: u64,
    pub top: Vec<(Dimension, Vec<spb::AccountScores>)>,
    pub shortlist: Vec<mpb::Candidate>,
    pub near_misses: usize,
    pub report: Option<mpb::GetCampaignReportResponse>,
    /// The brand's key (`campaigns:write`) and its campaign, for the console.
    pub brand_key: String,
    pub campaign_id: String,
    /// Step 11's standing perk program (the same brand's).
    pub standing_campaign_id: String,
    /// A creator the console can show (`network:id`): the first on the shortlist.
    pub creator: Option<String>,
    /// Where the console listens, and a `creator:read` key for `creator`.
    pub console: Option<(std::net::SocketAddr, String)>,
}

fn step(n: u32, what: &str) {
    println!("\n[{n}] {what}");
}

/// Runs the demo and prints its story; with `serve`, keeps serving until Ctrl-C.
pub async fn run(opts: DemoOptions) -> anyhow::Result<DemoSummary> {
    let (stack, result) = start(&opts).await?;
    if opts.serve && result.is_ok() {
        println!("\nServing until Ctrl-C (the services and the console).");
        let sd = stack.shutdown.clone();
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            () = sd.wait() => {}
        }
    }
    stack.stop().await?;
    result
}

/// Runs the demo's story and leaves its stack (console included) running, for
/// the caller to use and stop: the browser tests load the console's pages.
pub async fn start(opts: &DemoOptions) -> anyhow::Result<(Stack, anyhow::Result<DemoSummary>)> {
    let started = Instant::now();
    let tmp;
    let dir: &Path = match &opts.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d
        }
        None => {
            tmp = std::env::temp_dir().join(format!("lift-demo-{}", std::process::id()));
            std::fs::create_dir_all(&tmp)?;
            &tmp
        }
    };
    let dbs = opts.databases.clone().unwrap_or_else(|| Databases::sqlite_files(dir));

    step(1, "Starting ingestion, scoring and matching on loopback (real gRPC, embedded SQLite)");
    let mut stack = Stack::start_loopback(&dbs, lift_scoring::ScoringConfig::default()).await?;
    let web_addr = opts.web_addr.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let web = match tokio::net::TcpListener::bind(web_addr).await {
        Ok(l) => l,
        Err(e) => {
            println!("    cannot listen on {web_addr} ({e}); the console takes a free port instead");
            tokio::net::TcpListener::bind("127.0.0.1:0").await?
        }
    };
    let web = stack.start_web(web)?;
    // The link collector: the campaign's audience arrives through it over HTTP (step 9).
    let links = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let links_addr = links.local_addr()?;
    let collect_cfg = lift_collect::CollectConfig {
        spool_path: dir.join("collect.spool"),
        // Simulated visitors leave at once: decide their bounces after 1 s, not 30 min.
        session_idle: Duration::from_secs(1),
        ..Default::default()
    };
    let collector = stack.start_collect(links, collect_cfg).await?;
    println!(
        "    ingestion {}  scoring {}  matching {}  web console {web}",
        stack.ingest_addr, stack.scoring_addr, stack.matching_addr
    );
    println!("    link collector http://{links_addr} (redirects, beacon, order webhooks)");
    println!("    databases in {}", dir.display());
    let outlet = Outlet { addr: links_addr, collector };
    let mut result = story::story(&stack, opts, started, &outlet).await;
    if let Ok(s) = &mut result
        && let Some(creator) = s.creator.clone()
    {
        match crate::console::creator_key(&stack.matching_db, &creator).await {
            Ok(key) => {
                crate::console::print_console(web, &s.brand_key, &s.campaign_id, &creator, &key);
                s.console = Some((web, key));
            }
            Err(e) => result = Err(e),
        }
    }
    Ok((stack, result))
}

/// The running collector the simulated audience goes through.
struct Outlet {
    addr: std::net::SocketAddr,
    collector: lift_collect::Collector,
}
