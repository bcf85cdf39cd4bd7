//! Score dimensions: separate measures, never one number.

use lift_proto::scoring::v1 as pb;
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

    pub fn to_proto(self) -> pb::Dimension {
        match self {
            Dimension::Activity => pb::Dimension::Activity,
            Dimension::Reach => pb::Dimension::Reach,
            Dimension::Network => pb::Dimension::Network,
            Dimension::Action => pb::Dimension::Action,
            Dimension::Authenticity => pb::Dimension::Authenticity,
        }
    }

    /// From the wire enum's number; `None` for unspecified or unknown values.
    pub fn from_proto(v: i32) -> Option<Self> {
        match pb::Dimension::try_from(v).ok()? {
            pb::Dimension::Activity => Some(Dimension::Activity),
            pb::Dimension::Reach => Some(Dimension::Reach),
            pb::Dimension::Network => Some(Dimension::Network),
            pb::Dimension::Action => Some(Dimension::Action),
            pb::Dimension::Authenticity => Some(Dimension::Authenticity),
            pb::Dimension::Unspecified => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins that every dimension survives the wire and its name.
    #[test]
    fn dimension_round_trips() {
        for d in Dimension::ALL {
            assert_eq!(Dimension::from_proto(d.to_proto() as i32), Some(d));
            assert_eq!(Dimension::parse(d.name()), Some(d));
        }
        assert_eq!(Dimension::from_proto(0), None);
        assert_eq!(Dimension::from_proto(99), None);
    }
}
