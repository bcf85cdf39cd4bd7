//! Wire timestamps ↔ [`Micros`].

use lift_domain::time::{MICROS_PER_SEC, Micros};

use crate::Timestamp;

/// Converts a wire timestamp; `None` when it is out of range.
pub fn from_timestamp(ts: &Timestamp) -> Option<Micros> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return None;
    }
    ts.seconds.checked_mul(MICROS_PER_SEC)?.checked_add(i64::from(ts.nanos / 1000))
}

pub fn to_timestamp(m: Micros) -> Timestamp {
    Timestamp { seconds: m.div_euclid(MICROS_PER_SEC), nanos: (m.rem_euclid(MICROS_PER_SEC) * 1000) as i32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the exact round trip, including times before the epoch.
    #[test]
    fn timestamp_round_trip() {
        for m in [0, 1, -1, 1_700_000_000_123_456, -86_400_000_001] {
            assert_eq!(from_timestamp(&to_timestamp(m)), Some(m));
        }
        assert_eq!(from_timestamp(&Timestamp { seconds: 1, nanos: -1 }), None);
        assert_eq!(from_timestamp(&Timestamp { seconds: i64::MAX, nanos: 0 }), None);
    }
}
