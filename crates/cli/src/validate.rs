//! `lift validate correlations`: how the separate scores relate to follower
//! counts, on the real CollegeMsg network and on a generated network whose
//! true per-creator conversion rates are known.
//!
//! Everything goes through the running services (ingestion → ledger → scoring
//! over gRPC, embedded SQLite), so the numbers describe what Lift serves, not a
//! side computation. The output is the tables `docs/validation.md` records.
//!
//! Cha et al. (2010) found Spearman ρ = 0.549 between Twitter followers and
//! retweets over all users, but only 0.122 within the top 10 % by followers:
//! popularity says little about influence where it matters. The same
//! comparison is made here for followers against activity (responses drawn),
//! network standing and — what neither followers nor activity measure —
//! action.

pub mod action;
pub mod gaming;
pub mod report;
pub mod svg;
pub mod world;

use lift_proto::convert::prelude::*;
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use lift_domain::Dimension;
use lift_proto::{
    ingest::v1::{self as ipb, ingest_service_client::IngestServiceClient},
    scoring::v1::{self as spb, scoring_service_client::ScoringServiceClient},
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{
    dataset::{self, NetworkSpec, SimulatedLink},
    demo::{SIMULATED_WINDOW_SECS, all_scores, import_summary, register_simulated_links, stream_events, wait_scored},
    stack::{Databases, Stack},
};

/// What the study runs on.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// CollegeMsg file; that half of the study is left out (and said so) when absent.
    pub collegemsg: PathBuf,
    /// Accounts in the generated network.
    pub accounts: usize,
    /// Creators given tracking links with simulated outcomes, per data set.
    pub creators: usize,
    pub seed: u64,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        Self { collegemsg: PathBuf::from("data/collegemsg.csv.gz"), accounts: 3000, creators: 400, seed: 2010 }
    }
}

/// Spearman's rank correlation with average ranks for ties (as `scipy.stats.spearmanr`).
/// `None` when fewer than three pairs or either side is constant.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 3 {
        return None;
    }
    pearson(&ranks(x), &ranks(y))
}

/// Average ranks (1-based); ties share the mean of the ranks they span.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// One account's figures for the study.
#[derive(Debug, Clone, Default)]
struct Row {
    id: String,
    followers: f64,
    responses: f64,
    activity: f64,
    reach: f64,
    network: f64,
    action: f64,
    action_lower: f64,
    sufficient: bool,
    clicks: f64,
    conversions: f64,
    /// The simulated creator's true conversion rate per click, where it has a link.
    true_rate: Option<f64>,
}

fn score(a: &spb::AccountScores, d: Dimension) -> Option<&spb::Score> {
    a.scores.iter().find(|s| s.dimension == d.to_proto() as i32 && s.topic.is_empty())
}

fn raw(s: Option<&spb::Score>, key: &str) -> f64 {
    s.and_then(|s| s.raw.get(key)).copied().unwrap_or(0.0)
}

/// `followers_key` names the raw reach metric that stands for the follower count.
fn rows(accounts: &[spb::AccountScores], followers_key: &str, links: &[SimulatedLink]) -> Vec<Row> {
    // Per click, a visitor stays with probability 1 − bounce and then orders with
    // probability conversion / (1 − bounce), capped at 1 (see `dataset::outcome_events`).
    let true_rates: HashMap<(&str, &str), f64> = links
        .iter()
        .map(|l| {
            let stay = 1.0 - l.bounce;
            ((l.owner.network.as_str(), l.owner.id.as_str()), stay * (l.conversion / stay.max(0.05)).min(1.0))
        })
        .collect();
    accounts
        .iter()
        .map(|a| {
            let id = a.account.as_ref().map(|r| format!("{}:{}", r.network, r.id)).unwrap_or_default();
            let (act, rea, net, acn) = (
                score(a, Dimension::Activity),
                score(a, Dimension::Reach),
                score(a, Dimension::Network),
                score(a, Dimension::Action),
            );
            let true_rate =
                a.account.as_ref().and_then(|r| true_rates.get(&(r.network.as_str(), r.id.as_str()))).copied();
            Row {
                followers: raw(rea, followers_key),
                responses: raw(act, "responses"),
                activity: act.map_or(0.0, |s| s.value),
                reach: rea.map_or(0.0, |s| s.value),
                network: net.map_or(0.0, |s| s.value),
                action: acn.map_or(0.0, |s| s.value),
                action_lower: acn.map_or(0.0, |s| s.lower),
                sufficient: acn.is_some_and(|s| s.evidence != spb::Evidence::Insufficient as i32),
                clicks: raw(acn, "clicks"),
                conversions: raw(acn, "conversions"),
                true_rate,
                id,
            }
        })
        .collect()
}

fn rho(rows: &[&Row], f: impl Fn(&Row) -> f64, g: impl Fn(&Row) -> f64) -> String {
    let x: Vec<f64> = rows.iter().map(|r| f(r)).collect();
    let y: Vec<f64> = rows.iter().map(|r| g(r)).collect();
    spearman(&x, &y).map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

/// The top `share` of rows by followers (ties broken by id, so the cut is stable).
fn top_by_followers<'a>(rows: &[&'a Row], share: f64) -> Vec<&'a Row> {
    let mut v = rows.to_vec();
    v.sort_by(|a, b| b.followers.total_cmp(&a.followers).then(a.id.cmp(&b.id)));
    let k = ((v.len() as f64 * share).ceil() as usize).max(3).min(v.len());
    v.truncate(k);
    v
}

fn print_tables(name: &str, followers_label: &str, rows: &[Row]) {
    let all: Vec<&Row> = rows.iter().collect();
    let top = top_by_followers(&all, 0.10);
    println!(
        "\n#### {name}: all scored accounts ({} accounts; top 10 % by {followers_label}: {})\n",
        all.len(),
        top.len()
    );
    println!("| Spearman ρ | all accounts | top 10 % by {followers_label} |");
    println!("|---|---|---|");
    type Pick = fn(&Row) -> f64;
    let pairs: [(&str, Pick, Pick); 6] = [
        ("followers vs responses drawn (Cha et al.: followers vs retweets)", |r| r.followers, |r| r.responses),
        ("followers vs activity", |r| r.followers, |r| r.activity),
        ("followers vs reach", |r| r.followers, |r| r.reach),
        ("followers vs network", |r| r.followers, |r| r.network),
        ("activity vs network", |r| r.activity, |r| r.network),
        ("followers vs action", |r| r.followers, |r| r.action),
    ];
    for (label, f, g) in pairs {
        println!("| {label} | {} | {} |", rho(&all, f, g), rho(&top, f, g));
    }

    let linked: Vec<&Row> = rows.iter().filter(|r| r.true_rate.is_some()).collect();
    if linked.is_empty() {
        return;
    }
    let sufficient: Vec<&Row> = linked.iter().copied().filter(|r| r.sufficient).collect();
    let top_linked = top_by_followers(&linked, 0.10);
    println!(
        "\n#### {name}: creators with simulated outcomes ({} creators, {} with sufficient evidence; top 10 % by {followers_label}: {})\n",
        linked.len(),
        sufficient.len(),
        top_linked.len()
    );
    println!("| Spearman ρ | creators with links | sufficient evidence only | top 10 % by {followers_label} |");
    println!("|---|---|---|---|");
    let pairs: [(&str, Pick, Pick); 8] = [
        ("followers vs clicks", |r| r.followers, |r| r.clicks),
        ("followers vs conversions (count)", |r| r.followers, |r| r.conversions),
        ("followers vs action", |r| r.followers, |r| r.action),
        ("activity vs action", |r| r.activity, |r| r.action),
        ("network vs action", |r| r.network, |r| r.action),
        ("followers vs true conversion rate", |r| r.followers, |r| r.true_rate.unwrap_or(0.0)),
        ("action vs true conversion rate", |r| r.action, |r| r.true_rate.unwrap_or(0.0)),
        ("action lower bound vs true conversion rate", |r| r.action_lower, |r| r.true_rate.unwrap_or(0.0)),
    ];
    for (label, f, g) in pairs {
        println!("| {label} | {} | {} | {} |", rho(&linked, f, g), rho(&sufficient, f, g), rho(&top_linked, f, g));
    }
}

/// Tracking links whose expected clicks grow with the creator's audience
/// (a bigger audience clicks more) while the conversion rate per click is
/// drawn independently of it — the planted truth the action score must find.
fn links_for(creators: &[(ipb::AccountRef, f64)], seed: u64) -> Vec<SimulatedLink> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut audiences: Vec<f64> = creators.iter().map(|c| c.1).collect();
    audiences.sort_by(f64::total_cmp);
    let median = audiences.get(audiences.len() / 2).copied().unwrap_or(1.0).max(1.0);
    creators
        .iter()
        .enumerate()
        .map(|(i, (owner, audience))| SimulatedLink {
            owner: owner.clone(),
            link: format!("lift.to/v-{}-{i}", owner.id),
            clicks: (30.0 * (audience.max(1.0) / median).sqrt() * rng.random_range(0.5..1.5)).clamp(3.0, 400.0),
            bounce: rng.random_range(0.2..0.8),
            conversion: if rng.random::<f64>() < 0.25 {
                rng.random_range(0.06..0.2)
            } else {
                rng.random_range(0.0..0.04)
            },
        })
        .collect()
}

/// Ingests one data set into a fresh stack, adds outcomes for sampled creators,
/// and returns every account's row.
async fn study(
    dir: &Path,
    label: &str,
    load: impl AsyncFnOnce(&mut IngestServiceClient<lift_runtime::client::Channel>) -> anyhow::Result<(i64, i64)>,
    followers_key: &str,
    opts: &ValidateOptions,
) -> anyhow::Result<Vec<Row>> {
    std::fs::create_dir_all(dir)?;
    let dbs = Databases::sqlite_files(dir);
    let stack = Stack::start_loopback(&dbs, lift_scoring::ScoringConfig::default()).await?;
    let result = async {
        let mut ingest = IngestServiceClient::new(stack.channel(&stack.ingest_url())?);
        let mut scoring = ScoringServiceClient::new(stack.channel(&stack.scoring_url())?);
        let (start, end) = load(&mut ingest).await?;
        wait_scored(&mut ingest, &mut scoring, Duration::from_secs(600)).await?;
        let first = all_scores(&mut scoring).await?;
        let mut pool: Vec<(ipb::AccountRef, f64)> = first
            .iter()
            .filter_map(|a| Some((a.account.clone()?, raw(score(a, Dimension::Reach), followers_key))))
            .collect();
        pool.sort_by(|a, b| (&a.0.network, &a.0.id).cmp(&(&b.0.network, &b.0.id)));
        let creators = dataset::sample(&pool, opts.creators.min(pool.len()), opts.seed);
        let links = links_for(&creators, opts.seed);
        register_simulated_links(&mut ingest, &links).await?;
        let outcomes = dataset::outcome_events(&links, start, end.max(start + SIMULATED_WINDOW_SECS), opts.seed);
        let n = outcomes.len();
        stream_events(&mut ingest, outcomes, 2000).await?;
        let model = wait_scored(&mut ingest, &mut scoring, Duration::from_secs(600)).await?;
        eprintln!(
            "{label}: {} creators with links, {n} outcome events; model {} scored {} accounts at offset {}",
            links.len(),
            model.model_version,
            model.accounts,
            model.as_of_offset
        );
        let scores = all_scores(&mut scoring).await?;
        Ok::<_, anyhow::Error>(rows(&scores, followers_key, &links))
    }
    .await;
    stack.stop().await?;
    result
}

/// Runs the study on both data sets and prints the tables.
pub async fn run(opts: ValidateOptions) -> anyhow::Result<()> {
    let base = std::env::temp_dir().join(format!("lift-validate-{}", std::process::id()));
    println!("### Spearman correlations (seed {})", opts.seed);

    if opts.collegemsg.exists() {
        let path = opts.collegemsg.clone();
        let rows = study(
            &base.join("collegemsg"),
            "CollegeMsg",
            async move |ingest| {
                let report = lift_ingest::import::import_file(
                    ingest,
                    &path,
                    &lift_ingest::import::ImportOptions { network: "collegemsg".into(), ..Default::default() },
                )
                .await?;
                eprintln!("CollegeMsg: {}", import_summary(&report));
                // Outcomes are simulated over the data set's last month (2004-09-26 .. 2004-10-26).
                Ok((1_096_156_800, 1_098_777_600))
            },
            "distinct_engagers",
            &opts,
        )
        .await?;
        print_tables("SNAP CollegeMsg (real messages)", "in-degree", &rows);
        println!(
            "\nCollegeMsg has no follower counts; an account's in-degree (distinct senders) stands in for them, \
             and its responses drawn are the messages it received."
        );
    } else {
        println!(
            "\nCollegeMsg not found at {} (scripts/fetch-collegemsg.sh); its half of the study is left out.",
            opts.collegemsg.display()
        );
    }

    let spec = NetworkSpec { accounts: opts.accounts, seed: opts.seed, ..Default::default() };
    let rows = study(
        &base.join("generated"),
        "generated",
        async |ingest| {
            let g = dataset::generate(&spec);
            let n = g.events.len();
            stream_events(ingest, g.events, 2000).await?;
            eprintln!("generated: {n} events for {} accounts", spec.accounts);
            Ok((spec.start, g.end))
        },
        "reported_followers",
        &opts,
    )
    .await?;
    print_tables(&format!("Generated network ({} accounts)", opts.accounts), "followers", &rows);
    std::fs::remove_dir_all(&base).ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the statistic against scipy.stats.spearmanr's documented example and tie handling.
    #[test]
    fn spearman_matches_scipy() {
        let r = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]).unwrap();
        assert!((r - 0.820_782_681_668_123_3).abs() < 1e-12, "{r}");
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 30.0]), vec![1.5, 3.0, 1.5, 4.0]);
    }

    /// Pins the top-10 % cut: the highest follower counts, at least three rows.
    #[test]
    fn top_cut_takes_the_largest() {
        let rows: Vec<Row> =
            (0..50).map(|i| Row { id: format!("a{i:02}"), followers: f64::from(i), ..Default::default() }).collect();
        let refs: Vec<&Row> = rows.iter().collect();
        let top = top_by_followers(&refs, 0.10);
        assert_eq!(top.iter().map(|r| r.followers).collect::<Vec<_>>(), vec![49.0, 48.0, 47.0, 46.0, 45.0]);
    }
}
