//! The seeded holdout draw: which portfolio members are held out as controls,
//! reproducible from the recorded seed.

use std::collections::BTreeSet;

use crate::account::AccountId;

/// SplitMix64 (Steele, Lea, Flood 2014), written out here rather than taken
/// from a crate: a recorded holdout seed must reproduce the same draw for as
/// long as the campaign's report is read, whatever library versions come later.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` without modulo bias (Lemire 2019). `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// How many of `n` creators a share holds out. A positive share over at least
/// two creators holds out at least one, else lift could never be measured.
pub fn holdout_size(n: usize, share: f64) -> usize {
    if n == 0 || !share.is_finite() || share <= 0.0 {
        return 0;
    }
    let k = (share.min(1.0) * n as f64).round() as usize;
    if n >= 2 { k.clamp(1, n - 1) } else { k.min(n) }
}

/// Draws the holdout: `holdout_size` of the portfolio and, separately, of the
/// other eligible creators, each a uniform sample fixed by `seed`.
///
/// Stratifying on portfolio membership is what makes lift honest: the held-out
/// portfolio members are exactly the creators who *would* have been offered,
/// so comparing them with the treated members compares like with like, where a
/// random slice of all eligible creators would be systematically weaker than
/// the creators the portfolio picked.
pub fn draw_holdout(eligible: &[AccountId], portfolio: &BTreeSet<AccountId>, share: f64, seed: u64) -> Holdout {
    let members: Vec<AccountId> = portfolio.iter().cloned().collect();
    let rest: Vec<AccountId> =
        eligible.iter().filter(|a| !portfolio.contains(*a)).cloned().collect::<BTreeSet<_>>().into_iter().collect();
    let mut rng = SplitMix64::new(seed);
    let from_portfolio = sample(members, holdout_size(portfolio.len(), share), &mut rng);
    let from_rest = sample(rest, holdout_size(eligible.len().saturating_sub(portfolio.len()), share), &mut rng);
    Holdout { from_portfolio, from_rest, seed }
}

fn sample(mut items: Vec<AccountId>, k: usize, rng: &mut SplitMix64) -> BTreeSet<AccountId> {
    let k = k.min(items.len());
    for i in 0..k {
        let j = i + rng.below((items.len() - i) as u64) as usize;
        items.swap(i, j);
    }
    items.truncate(k);
    items.into_iter().collect()
}

/// The result of a holdout draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Holdout {
    /// Portfolio members held out: the control group for lift.
    pub from_portfolio: BTreeSet<AccountId>,
    /// Eligible creators outside the portfolio held out too, so the holdout is
    /// a share of all eligible creators as the campaign specified.
    pub from_rest: BTreeSet<AccountId>,
    pub seed: u64,
}

impl Holdout {
    pub fn contains(&self, a: &AccountId) -> bool {
        self.from_portfolio.contains(a) || self.from_rest.contains(a)
    }

    pub fn all(&self) -> BTreeSet<AccountId> {
        self.from_portfolio.union(&self.from_rest).cloned().collect()
    }
}
