//! `lift validate --report DIR`: the gaming benchmark, the action model's
//! calibration and the policy back-test for the current model version,
//! written as `DIR/<model version>/README.md` with SVG plots beside it.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use lift_scoring::engine::{ModelParams, compute};

use super::action::{self, BINS, Backtest, Coverage, CoverageCell, LEVELS, Population};
use super::gaming::{self, GamingOptions, GamingResult};
use super::svg::{self, Series};
use super::world;

/// What the report runs.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub dir: PathBuf,
    pub collegemsg: PathBuf,
    pub seed: u64,
    /// Back-test seeds.
    pub seeds: usize,
    /// Creators per coverage population and replicate.
    pub creators: usize,
    /// Independent replicates of the coverage study, pooled.
    pub replicates: usize,
}

/// Runs everything and writes the report; returns the directory written.
pub fn run(o: &ReportOptions) -> anyhow::Result<PathBuf> {
    let started = Instant::now();
    let p = ModelParams::default();
    let version = p.version();
    let base = if o.collegemsg.exists() {
        world::collegemsg(&o.collegemsg)?
    } else {
        println!("{} not found (scripts/fetch-collegemsg.sh); using a generated network", o.collegemsg.display());
        world::generated(1_900, 60_000, 190, o.seed)
    };
    let base_name = base.name.clone();
    let (base_events, base_accounts) = (base.entries.len(), base.accounts.len());
    println!("[1/3] gaming benchmark on {base_name} ({base_events} events, {base_accounts} accounts)");
    let social_state = base.state();
    let ids: Vec<String> = social_state.accounts.iter().map(|a| a.id.id.clone()).collect();
    let social = compute(&social_state, &p);
    drop(social_state);
    let g = gaming::run(base, &GamingOptions::full(o.seed), &p);
    print!("{}", gaming_table(&g));
    println!("[2/3] action intervals: coverage against planted rates");
    let cov: Vec<Coverage> = [Population::Beta, Population::Mixture]
        .iter()
        .map(|&pop| action::coverage(pop, o.creators, o.replicates, o.seed, &p))
        .collect();
    for c in &cov {
        print!("{}", coverage_table(c));
    }
    println!("[3/3] policy back-test over {} seeds", o.seeds);
    let bt = action::backtest(&base_name, &ids, &social, o.seeds, o.seed, &p);
    print!("{}", backtest_table(&bt));

    let out = o.dir.join(&version);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    write(&out, "roc.svg", &roc_svg(&g))?;
    for (c, name) in cov.iter().zip(["calibration-beta.svg", "calibration-mixture.svg"]) {
        write(&out, name, &calibration_svg(c))?;
    }
    write(&out, "backtest.svg", &backtest_svg(&bt))?;
    let mut md = String::new();
    let _ = writeln!(md, "# Validation report — model `{version}`\n");
    let _ = writeln!(
        md,
        "Made by `lift validate --report {} --seed {} --seeds {} --coverage-creators {} \
         --coverage-replicates {}` on {base_name} \
         ({base_events} events, {base_accounts} accounts) in {:.0} s. Everything is seeded: the same command \
         gives the same figures.\n",
        o.dir.display(),
        o.seed,
        o.seeds,
        o.creators,
        o.replicates,
        started.elapsed().as_secs_f64()
    );
    md.push_str("## Gaming detection\n\n");
    md.push_str(&gaming_table(&g));
    md.push_str("\n![ROC curves](roc.svg)\n\n");
    md.push_str("## Action intervals: coverage against planted rates\n\n");
    for (c, name) in cov.iter().zip(["calibration-beta.svg", "calibration-mixture.svg"]) {
        md.push_str(&coverage_table(c));
        let _ = writeln!(md, "\n![coverage]({name})\n");
    }
    md.push_str("## Policy back-test: choosing creators by action vs by followers, activity, network\n\n");
    md.push_str(&backtest_table(&bt));
    md.push_str("\n![back-test](backtest.svg)\n\n");
    md.push_str(ASSUMPTIONS);
    write(&out, "README.md", &md)?;
    println!("report written to {}", out.display());
    Ok(out)
}

const ASSUMPTIONS: &str = "Back-test assumptions: creators are the base network's accounts with any received \
engagement, audience = distinct engagers; expected clicks per period grow with √(audience / median); each \
creator's true conversion rate per click is drawn independently of audience (¼ at 6–20 %, ¾ at 0–4 %); a \
creator's price is 100·(1 + √(audience / median)); history is one period of clicks scored by the engine, the \
campaign a fresh period under the same model; every policy spends the same budget greedily down its own ranking. \
The action policy ranks by the action interval's lower bound with insufficient evidence last. These are \
assumptions of the simulation, not measurements of real audiences.\n";

fn write(dir: &Path, name: &str, body: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))
}

fn pct(x: f64) -> String {
    if x.is_finite() { format!("{:.1} %", 100.0 * x) } else { "—".into() }
}

pub fn gaming_table(g: &GamingResult) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} with planted gaming and decoys: {} events in all.\n", g.base, g.events);
    s.push_str(
        "| detector | positives | negatives | ROC AUC | precision | recall | false-positive rate, untouched real accounts |\n|---|---|---|---|---|---|---|\n",
    );
    for d in &g.detectors {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.3} | {} | {} | {} |",
            d.detector.name(),
            d.positives,
            d.negatives,
            d.auc,
            pct(d.precision),
            pct(d.recall),
            pct(d.fpr_untouched)
        );
    }
    s.push_str("\nFlags by kind of account (any flag naming the account):\n\n| accounts | count | flagged | flag kinds |\n|---|---|---|---|\n");
    for r in &g.roles {
        let kinds: Vec<String> = r.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} ({}) | {} |",
            r.role.name(),
            r.accounts,
            r.flagged,
            pct(r.flagged as f64 / r.accounts.max(1) as f64),
            if kinds.is_empty() { "—".into() } else { kinds.join(", ") }
        );
    }
    s.push_str(
        "\nCaught by the flag, by how the gaming was planted (pod memberships: an account in two pods counts in each):\n\n| planted | | accounts | caught |\n|---|---|---|---|\n",
    );
    let mut last = "";
    for r in &g.breakdown {
        let by = if r.by == last { "" } else { r.by };
        last = r.by;
        let _ = writeln!(
            s,
            "| {by} | {} | {} | {} ({}) |",
            r.label,
            r.planted,
            r.caught,
            pct(r.caught as f64 / r.planted.max(1) as f64)
        );
    }
    s
}

/// The goal: coverage within this many points of nominal at every level with ≥ 30 clicks.
pub const COVERAGE_GOAL_POINTS: f64 = 3.0;

/// Which interval's coverage a table shows.
type CellShare = fn(&CoverageCell) -> f64;

pub fn coverage_table(c: &Coverage) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} creators × {} independent replicates, pooled; planted {}. Each cell: share of creators whose \
         interval covers the planted value, and (±) the 95 % range within which a calibrated model's figure \
         would fall by chance with that many creators.\n",
        c.creators,
        c.replicates,
        c.population.name()
    );
    let kinds: [(&str, CellShare); 3] = [
        ("conversion rate per click", |x| x.conversion),
        ("engaged-session rate per click", |x| x.engaged),
        ("action value as served (the two rates blended 3:1, 0–100)", |x| x.action),
    ];
    for (name, get) in kinds {
        let _ = write!(s, "| {name}: clicks | creators |");
        for l in LEVELS {
            let _ = write!(s, " {:.0} % |", 100.0 * l);
        }
        s.push_str("\n|---|---|");
        for _ in LEVELS {
            s.push_str("---|");
        }
        s.push('\n');
        for bin in BINS {
            let cells: Vec<&CoverageCell> = c.cells.iter().filter(|x| x.bin == bin).collect();
            let n = cells.first().map_or(0, |x| x.creators);
            let _ = write!(s, "| {}–{} | {n} |", bin.0, bin.1 - 1);
            for x in cells {
                let _ = write!(s, " {} ±{:.1} |", pct(get(x)), 100.0 * x.chance());
            }
            s.push('\n');
        }
        let worst = worst_gap(c, get);
        let _ = writeln!(
            s,
            "\nWith ≥ 30 clicks the largest gap from nominal is {:+.1} points ({}).\n",
            100.0 * worst,
            if worst.abs() <= COVERAGE_GOAL_POINTS / 100.0 { "within ±3" } else { "outside ±3" }
        );
    }
    s
}

/// The coverage minus nominal of largest magnitude over every level and every
/// bin from 30 clicks up (NaN when no such bin has creators).
pub fn worst_gap(c: &Coverage, get: CellShare) -> f64 {
    c.cells
        .iter()
        .filter(|x| x.bin.0 >= 30 && x.creators > 0)
        .map(|x| get(x) - x.level)
        .fold(f64::NAN, |w, g| if w.is_nan() || g.abs() > w.abs() { g } else { w })
}

pub fn backtest_table(b: &Backtest) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} creators on {}, budget {:.0} per campaign, {} seeds; mean and 5th–95th percentile over seeds.\n",
        b.creators, b.base, b.budget, b.seeds
    );
    s.push_str(
        "| portfolio chosen by | creators | conversions per 1,000 cost | × follower-chosen |\n|---|---|---|---|\n",
    );
    for p in &b.policies {
        let (m, lo, hi) = action::summary(&p.per_seed);
        let (rm, rlo, rhi) = action::summary(&p.ratio_to_followers);
        let _ = writeln!(
            s,
            "| {} | {:.1} | {m:.2} [{lo:.2}, {hi:.2}] | {rm:.2} [{rlo:.2}, {rhi:.2}] |",
            p.name, p.mean_creators
        );
    }
    s
}

fn roc_svg(g: &GamingResult) -> String {
    let series: Vec<Series> = g
        .detectors
        .iter()
        .map(|d| Series {
            label: format!("{} (AUC {:.3})", d.detector.name(), d.auc),
            points: d.roc.clone(),
            markers: false,
        })
        .collect();
    svg::unit_chart(
        &format!("ROC at account level — {}", g.model_version),
        "false-positive rate",
        "true-positive rate",
        &series,
    )
}

fn calibration_svg(c: &Coverage) -> String {
    // One series per click bin: nominal level against observed coverage of the conversion interval.
    let series: Vec<Series> = BINS
        .iter()
        .map(|&bin| Series {
            label: format!("{}–{} clicks", bin.0, bin.1 - 1),
            points: c.cells.iter().filter(|x| x.bin == bin).map(|x| (x.level, x.conversion)).collect(),
            markers: true,
        })
        .collect();
    let short = match c.population {
        Population::Beta => "Beta rates",
        Population::Mixture => "mixture",
    };
    svg::unit_chart(
        &format!("Conversion interval coverage ({short})"),
        "nominal credible mass",
        "share covering the planted rate",
        &series,
    )
}

fn backtest_svg(b: &Backtest) -> String {
    let rows: Vec<(String, f64, f64, f64)> = b
        .policies
        .iter()
        .map(|p| {
            let (m, lo, hi) = action::summary(&p.per_seed);
            (p.name.to_owned(), m, lo, hi)
        })
        .collect();
    svg::bars("Conversions per 1,000 units of cost, same budget", "mean over seeds; line: 5th–95th percentile", &rows)
}
