//! The scoring wire's `Dimension` ↔ [`Dimension`].

use lift_domain::Dimension;

use crate::scoring::v1 as pb;

/// Wire conversions of [`Dimension`].
pub trait DimensionProto: Sized {
    fn to_proto(self) -> pb::Dimension;
    /// From the wire enum's number; `None` for unspecified or unknown values.
    fn from_proto(v: i32) -> Option<Self>;
}

impl DimensionProto for Dimension {
    fn to_proto(self) -> pb::Dimension {
        match self {
            Dimension::Activity => pb::Dimension::Activity,
            Dimension::Reach => pb::Dimension::Reach,
            Dimension::Network => pb::Dimension::Network,
            Dimension::Action => pb::Dimension::Action,
            Dimension::Authenticity => pb::Dimension::Authenticity,
        }
    }

    fn from_proto(v: i32) -> Option<Self> {
        match pb::Dimension::try_from(v).ok()? {
            pb::Dimension::Activity => Some(Dimension::Activity),
            pb::Dimension::Reach => Some(Dimension::Reach),
            pb::Dimension::Network => Some(Dimension::Network),
            pb::Dimension::Action => Some(Dimension::Action),
            pb::Dimension::Authenticity => Some(Dimension::Authenticity),
            pb::Dimension::Unspecified => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins that every dimension survives the wire.
    #[test]
    fn dimension_round_trips() {
        for d in Dimension::ALL {
            assert_eq!(Dimension::from_proto(d.to_proto() as i32), Some(d));
        }
        assert_eq!(Dimension::from_proto(0), None);
        assert_eq!(Dimension::from_proto(99), None);
    }
}
