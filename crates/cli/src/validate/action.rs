//! The action model measured: interval coverage against planted rates, and a
//! policy back-test of choosing creators by action against choosing them by
//! followers, activity or network.
//!
//! Coverage: creators with planted conversion and engaged-session rates get
//! 1–1,000 attributed clicks; every click opens a session that is engaged with
//! the planted engaged rate and converts with the planted conversion rate. The
//! engine scores the outcomes at credible masses 50/80/90/95 % and the report
//! counts how often each interval covers the planted rate, by click count —
//! and how often the action value's interval (the two rates blended, as
//! served) covers the value the planted rates give. Independent replicates are
//! pooled, so each cell has enough creators for its sampling error to be
//! small next to the ±3-point goal; the report prints that error beside it.
//! Two populations: rates drawn from Beta distributions (the one-Beta prior's
//! own family) and a two-group mixture (a quarter of creators convert at 6–20 %,
//! the rest at 0–4 %) that one Beta fits only approximately and the mixture
//! prior (`action_prior_components`) is for.
//!
//! Back-test assumptions (stated beside the figure in the report):
//! - creators are the base network's accounts with any received engagement;
//!   their followers, activity and network scores are the engine's on the base;
//! - audience = distinct engagers; expected clicks per period ∝ √(audience /
//!   median audience): bigger audiences bring more clicks;
//! - each creator's true conversion rate per click is drawn from the mixture
//!   above, *independently of audience*;
//! - a creator's price = 100 · (1 + √(audience / median)): bigger creators cost more;
//! - history: 60 expected clicks per period at the median audience, scored by
//!   the engine into *action*; campaign: the same click model, one new period;
//! - every policy spends the same budget (20 median-creator prices) greedily
//!   down its own ranking, skipping creators it can no longer afford.

use lift_domain::Dimension;
use lift_scoring::engine::{ModelParams, Snapshot, compute};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::world::{DAY_SECS, Ledger};

pub const LEVELS: [f64; 4] = [0.5, 0.8, 0.9, 0.95];
/// Click-count bins of the calibration table: [lo, hi).
pub const BINS: [(u64, u64); 5] = [(1, 10), (10, 30), (30, 100), (100, 300), (300, 1001)];

/// How planted rates are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Population {
    /// Conversion ~ Beta(2, 48), engaged ~ Beta(6, 6).
    Beta,
    /// Conversion: ¼ at 6–20 %, ¾ at 0–4 %; engaged: ½ at 20–40 %, ½ at 50–80 %.
    Mixture,
}

impl Population {
    pub fn name(self) -> &'static str {
        match self {
            Population::Beta => "Beta-distributed rates (conversion Beta(2, 48), engaged Beta(6, 6))",
            Population::Mixture => "mixture (conversion ¼ at 6–20 %, ¾ at 0–4 %; engaged ½ at 20–40 %, ½ at 50–80 %)",
        }
    }

    fn draw(self, rng: &mut ChaCha8Rng) -> (f64, f64) {
        match self {
            Population::Beta => (beta_int(rng, 2, 48), beta_int(rng, 6, 6)),
            Population::Mixture => (conversion_mixture(rng), {
                if rng.random_bool(0.5) { rng.random_range(0.2..0.4) } else { rng.random_range(0.5..0.8) }
            }),
        }
    }
}

/// Beta(a, b) for integer a, b, as a ratio of sums of exponentials (gammas).
fn beta_int(rng: &mut ChaCha8Rng, a: u32, b: u32) -> f64 {
    let mut g = |k: u32| (0..k).map(|_| -rng.random::<f64>().max(1e-300).ln()).sum::<f64>();
    let x = g(a);
    let y = g(b);
    x / (x + y)
}

fn conversion_mixture(rng: &mut ChaCha8Rng) -> f64 {
    if rng.random_bool(0.25) { rng.random_range(0.06..0.20) } else { rng.random_range(0.0..0.04) }
}

/// Coverage of one level in one bin: the two rates' intervals and the action
/// value's (the interval `QueryAccounts` serves on the 0–100 scale).
#[derive(Debug, Clone, Copy)]
pub struct CoverageCell {
    pub level: f64,
    pub bin: (u64, u64),
    pub creators: usize,
    pub conversion: f64,
    pub engaged: f64,
    pub action: f64,
}

impl CoverageCell {
    /// Half-width of the 95 % range within which a calibrated model's measured
    /// coverage falls by chance alone, with this many creators: the sampling
    /// error of the cell, 1.96·√(level·(1 − level) / creators).
    pub fn chance(&self) -> f64 {
        if self.creators == 0 {
            return f64::NAN;
        }
        1.96 * (self.level * (1.0 - self.level) / self.creators as f64).sqrt()
    }
}

#[derive(Debug, Clone)]
pub struct Coverage {
    pub population: Population,
    /// Creators per replicate.
    pub creators: usize,
    /// Independent replicates (seeds `seed`, `seed + 1`, …), pooled in `cells`.
    pub replicates: usize,
    pub cells: Vec<CoverageCell>,
}

/// Counts behind one cell, summed over replicates.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    n: usize,
    conversion: usize,
    engaged: usize,
    action: usize,
}

/// Plants `creators` creators per replicate, `replicates` times with seeds
/// `seed`, `seed + 1`, …, and measures coverage at every level and bin, pooled.
pub fn coverage(population: Population, creators: usize, replicates: usize, seed: u64, base: &ModelParams) -> Coverage {
    let mut tally = vec![Tally::default(); LEVELS.len() * BINS.len()];
    for r in 0..replicates.max(1) {
        replicate(population, creators, seed.wrapping_add(r as u64), base, &mut tally);
    }
    let mut cells = Vec::with_capacity(tally.len());
    for (li, &level) in LEVELS.iter().enumerate() {
        for (bi, &bin) in BINS.iter().enumerate() {
            let t = tally[li * BINS.len() + bi];
            let share = |k: usize| if t.n == 0 { f64::NAN } else { k as f64 / t.n as f64 };
            cells.push(CoverageCell {
                level,
                bin,
                creators: t.n,
                conversion: share(t.conversion),
                engaged: share(t.engaged),
                action: share(t.action),
            });
        }
    }
    Coverage { population, creators, replicates: replicates.max(1), cells }
}

/// One replicate: plants the creators on a fresh ledger, scores it at every
/// level and adds what each interval covers to `tally`.
fn replicate(population: Population, creators: usize, seed: u64, base: &ModelParams, tally: &mut [Tally]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut l = Ledger { network: "cov".into(), ..Default::default() };
    let t0 = 1_100_000_000i64;
    let mut truth = Vec::with_capacity(creators);
    for c in 0..creators {
        let (tc, te) = population.draw(&mut rng);
        let clicks = (1000f64.powf(rng.random::<f64>())).floor().max(1.0) as u64;
        let owner = format!("c{c}");
        for k in 0..clicks {
            let v = format!("{c}-{k}");
            let at = t0 + (k as i64) * 60;
            l.click(&owner, &v, at);
            l.session(&owner, &v, !rng.random_bool(te), at + 5);
            if rng.random_bool(tc) {
                l.conversion(&owner, &v, at + 30);
            }
        }
        truth.push((owner, clicks, tc, te));
    }
    let state = l.state();
    drop(l);
    let nodes: Vec<Option<usize>> = truth
        .iter()
        .map(|(owner, ..)| state.node(&lift_domain::AccountId::new("cov", owner.as_str())).map(|n| n as usize))
        .collect();
    // The action value the planted rates would have (every creator reports sessions).
    let planted_value = |tc: f64, te: f64| base.action_value(tc, te, true);
    for (li, &level) in LEVELS.iter().enumerate() {
        let p = ModelParams { credible_mass: level, ..base.clone() };
        let snap = compute(&state, &p);
        for ((_, clicks, tc, te), node) in truth.iter().zip(&nodes) {
            let (Some(bi), Some(node)) = (BINS.iter().position(|b| b.0 <= *clicks && *clicks < b.1), node) else {
                continue;
            };
            let a = snap.action[*node];
            let v = planted_value(*tc, *te);
            let t = &mut tally[li * BINS.len() + bi];
            t.n += 1;
            t.conversion += usize::from(a.conversion.lower <= *tc && *tc <= a.conversion.upper);
            t.engaged += usize::from(a.engaged.lower <= *te && *te <= a.engaged.upper);
            t.action += usize::from(a.lower <= v && v <= a.upper);
        }
    }
}

/// One policy's results over the seeds.
#[derive(Debug, Clone)]
pub struct PolicyResult {
    pub name: &'static str,
    /// Conversions per 1,000 units of cost, one per seed.
    pub per_seed: Vec<f64>,
    /// Ratio to the follower-chosen portfolio, one per seed.
    pub ratio_to_followers: Vec<f64>,
    pub mean_creators: f64,
}

#[derive(Debug, Clone)]
pub struct Backtest {
    pub base: String,
    pub creators: usize,
    pub seeds: usize,
    pub budget: f64,
    pub policies: Vec<PolicyResult>,
}

/// Runs the back-test over `seeds` seeds on the scored base network.
/// `state_ids[i]` is node `i`'s account id in the base.
pub fn backtest(
    base: &str,
    state_ids: &[String],
    social: &Snapshot,
    seeds: usize,
    seed: u64,
    p: &ModelParams,
) -> Backtest {
    // Creators: accounts with any received engagement; audience = distinct engagers.
    let creators: Vec<usize> = (0..social.n).filter(|&i| social.raw[i].distinct_engagers >= 1.0).collect::<Vec<_>>();
    let audience: Vec<f64> = creators.iter().map(|&i| f64::from(social.raw[i].distinct_engagers)).collect();
    let mut sorted = audience.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2].max(1.0);
    let scale: Vec<f64> = audience.iter().map(|a| (a / median).sqrt()).collect();
    let price: Vec<f64> = scale.iter().map(|s| 100.0 * (1.0 + s)).collect();
    let budget = 20.0 * 200.0;
    let value = |d: Dimension| -> Vec<f64> { creators.iter().map(|&i| social.values[d.index()][i]).collect() };
    let fixed: Vec<(&'static str, Vec<f64>)> = vec![
        ("followers (audience)", audience),
        ("activity", value(Dimension::Activity)),
        ("network", value(Dimension::Network)),
    ];
    let names = ["action (lower bound)", "followers (audience)", "activity", "network"];
    let mut per: Vec<PolicyResult> = names
        .iter()
        .map(|&name| PolicyResult { name, per_seed: Vec::new(), ratio_to_followers: Vec::new(), mean_creators: 0.0 })
        .collect();
    for s in 0..seeds {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(s as u64));
        let theta: Vec<f64> = creators.iter().map(|_| conversion_mixture(&mut rng)).collect();
        // History on the ledger, scored by the engine.
        let mut l = Ledger { network: "bt".into(), ..Default::default() };
        let t0 = 1_100_000_000i64;
        for (k, &i) in creators.iter().enumerate() {
            let clicks = poisson(&mut rng, 60.0 * scale[k]);
            let owner = &state_ids[i];
            for c in 0..clicks {
                let v = format!("{owner}-{c}");
                let at = t0 + (c as i64 % 30) * DAY_SECS / 30;
                l.click(owner, &v, at);
                if rng.random_bool(theta[k]) {
                    l.conversion(owner, &v, at + 60);
                }
            }
        }
        let hist_state = l.state();
        let hist = compute(&hist_state, p);
        let action_key: Vec<f64> = creators
            .iter()
            .map(|&i| {
                hist_state
                    .node(&lift_domain::AccountId::new("bt", state_ids[i].as_str()))
                    .map_or(-3000.0, |n| hist.action[n as usize].rank_key())
            })
            .collect();
        // The campaign period: the same click model, fresh draws.
        let camp_clicks: Vec<u64> = scale.iter().map(|&sc| poisson(&mut rng, 60.0 * sc)).collect();
        let camp_conv: Vec<u64> = camp_clicks
            .iter()
            .zip(&theta)
            .map(|(&c, &t)| (0..c).filter(|_| rng.random_bool(t)).count() as u64)
            .collect();
        let mut results = Vec::new();
        for keys in std::iter::once(&action_key).chain(fixed.iter().map(|(_, k)| k)) {
            let mut order: Vec<usize> = (0..creators.len()).collect();
            order.sort_by(|&a, &b| keys[b].total_cmp(&keys[a]).then(a.cmp(&b)));
            let (mut spent, mut conv, mut chosen) = (0.0, 0u64, 0usize);
            for k in order {
                if spent + price[k] > budget {
                    continue;
                }
                spent += price[k];
                conv += camp_conv[k];
                chosen += 1;
            }
            results.push((1000.0 * conv as f64 / spent.max(1.0), chosen));
        }
        let followers = results[1].0;
        for (r, (v, chosen)) in per.iter_mut().zip(&results) {
            r.per_seed.push(*v);
            r.ratio_to_followers.push(if followers > 0.0 { v / followers } else { f64::NAN });
            r.mean_creators += *chosen as f64 / seeds as f64;
        }
    }
    Backtest { base: base.to_owned(), creators: creators.len(), seeds, budget, policies: per }
}

/// Poisson(λ) by inversion for small λ, normal approximation above 500.
fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 500.0 {
        let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        return (lambda + lambda.sqrt() * z).round().max(0.0) as u64;
    }
    let (mut k, mut p, l) = (0u64, 1.0f64, (-lambda).exp());
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// Mean and the 5th–95th percentile range over seeds.
pub fn summary(v: &[f64]) -> (f64, f64, f64) {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    s.sort_by(f64::total_cmp);
    let q = |p: f64| s[((p * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)];
    (s.iter().sum::<f64>() / s.len() as f64, q(0.05), q(0.95))
}
