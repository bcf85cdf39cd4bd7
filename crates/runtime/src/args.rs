//! Parsers for settings given on the command line or in the environment
//! (each service's config derives `clap::Args` and uses these).

use std::time::Duration;

/// A duration: a number with a unit, `ms`, `s`, `m`, `h` or `d` (`250ms`,
/// `1.5s`, `7d`). A bare number is refused, so no one guesses the unit.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().map_err(|_| format!("{s:?} is not a duration such as 250ms, 2s, 5m, 1h or 7d"))?;
    let secs = match unit.trim() {
        "ms" => n / 1_000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3_600.0,
        "d" => n * 86_400.0,
        "" => return Err(format!("{s:?} needs a unit: ms, s, m, h or d")),
        u => return Err(format!("unknown unit {u:?} in {s:?}: use ms, s, m, h or d")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// A duration in whole milliseconds (for settings whose name says `_ms`).
pub fn millis(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("{s:?} is not a whole number of milliseconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the units, and that a bare or malformed number is refused rather than guessed.
    #[test]
    fn parses_durations_with_units() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1_500)));
        assert_eq!(duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "5", "s", "-1s", "1y", "1.2.3s"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
        assert_eq!(millis("500"), Ok(Duration::from_millis(500)));
        assert!(millis("0.5").is_err());
    }
}
