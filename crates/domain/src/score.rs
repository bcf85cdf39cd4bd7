//! Score dimensions: separate measures, never one number.

use serde::{Deserialize, Serialize};

/// One of Lift's separate influence dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Dimension {
    Activity,
    Reach,
    Network,
    Action,
    Authenticity,
}

impl Dimension {
    pub const ALL: [Dimension; 5] =
        [Dimension::Activity, Dimension::Reach, Dimension::Network, Dimension::Action, Dimension::Authenticity];

    pub fn name(self) -> &'static str {
        match self {
            Dimension::Activity => "activity",
            Dimension::Reach => "reach",
            Dimension::Network => "network",
            Dimension::Action => "action",
            Dimension::Authenticity => "authenticity",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Percentile of every value: the share (0–100) of the population whose value
/// is *at or below* it (the empirical CDF). Tied accounts share one percentile,
/// the highest value gets 100, and a population of one gets 100.
///
/// "At or below" rather than "strictly below" because campaigns set eligibility
/// as minimum percentiles: when most accounts tie at the top (authenticity 100
/// for everyone without gaming evidence), strictly-below would put the best
/// accounts at the bottom of the scale and a percentile rule would exclude
/// exactly them. At-or-below keeps every tied account at the share it belongs
/// to, so a rule `≥ p` admits an account whenever at least `p` % of the
/// population is no better than it.
///
/// A value of 0 is at percentile 0: it means nothing was observed in that
/// dimension (no responses, no reach, no evidence), and a crowd of such
/// accounts must not lift each other up the scale by being tied.
pub fn percentiles(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    if n == 0 {
        return Vec::new();
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    values.iter().map(|v| percentile_in(&sorted, *v)).collect()
}

/// Percentile of `v` against an ascending population: the share at or below it.
pub fn percentile_in(sorted: &[f64], v: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    if v <= 0.0 {
        return 0.0;
    }
    100.0 * sorted.partition_point(|x| *x <= v) as f64 / sorted.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins that every dimension survives its name.
    #[test]
    fn dimension_round_trips() {
        for d in Dimension::ALL {
            assert_eq!(Dimension::parse(d.name()), Some(d));
        }
        assert_eq!(Dimension::parse("unknown"), None);
    }
}
