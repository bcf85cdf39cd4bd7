//! Field-level validation results and the policy that bounds accepted events.

use serde::{Deserialize, Serialize};

use crate::time::{MICROS_PER_DAY, Micros};

/// One invalid field: its path in the request and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }

    /// The same violation under a parent path, e.g. `events[3]`.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() { prefix.to_owned() } else { format!("{prefix}.{}", self.field) };
        self
    }
}

impl std::fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Accumulates violations so a request reports all of its problems at once.
pub type Violations = Vec<FieldViolation>;

/// Bounds on what ingestion accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationPolicy {
    /// Earliest accepted occurrence time.
    pub min_time: Micros,
    /// How far past `now` an occurrence time may be (clock skew).
    pub max_future: Micros,
    /// The current time, injected so validation stays pure.
    pub now: Micros,
    pub max_topics: usize,
    pub max_links: usize,
    pub max_text_len: usize,
    /// Largest accepted conversion value in minor units.
    pub max_value_minor: i64,
}

impl ValidationPolicy {
    /// Policy at time `now`: events from 1990 on, up to one day in the future.
    pub fn at(now: Micros) -> Self {
        Self {
            // 1990-01-01T00:00:00Z; CollegeMsg (2004) and other archives must fit.
            min_time: 631_152_000 * crate::time::MICROS_PER_SEC,
            max_future: MICROS_PER_DAY,
            now,
            max_topics: 32,
            max_links: 32,
            max_text_len: 512,
            max_value_minor: 1_000_000_000_000,
        }
    }
}

/// ISO 4217 currency codes accepted for conversions.
pub const CURRENCIES: &[&str] = &[
    "AED", "ARS", "AUD", "BGN", "BRL", "CAD", "CHF", "CLP", "CNY", "COP", "CZK", "DKK", "EGP", "EUR", "GBP", "HKD",
    "HUF", "IDR", "ILS", "INR", "ISK", "JPY", "KES", "KRW", "MAD", "MXN", "MYR", "NGN", "NOK", "NZD", "PEN", "PHP",
    "PKR", "PLN", "RON", "RSD", "SAR", "SEK", "SGD", "THB", "TRY", "TWD", "UAH", "USD", "VND", "ZAR",
];

pub fn is_known_currency(c: &str) -> bool {
    CURRENCIES.contains(&c)
}

/// Checks that an identifier is present, bounded and free of control characters.
pub fn check_token(s: &str, field: &str, max: usize, v: &mut Violations) {
    if s.is_empty() {
        v.push(FieldViolation::new(field, "is required"));
    } else if s.len() > max {
        v.push(FieldViolation::new(field, format!("is {} bytes long; the limit is {max}", s.len())));
    } else if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        v.push(FieldViolation::new(field, "must not contain whitespace or control characters"));
    }
}

/// [`check_token`] for an optional identifier: empty means absent.
pub fn check_opt_token(s: &str, field: &str, max: usize, v: &mut Violations) {
    if !s.is_empty() {
        check_token(s, field, max, v);
    }
}

/// A bounded list of identifiers, each checked under `field[i]`.
pub fn check_list(items: &[String], field: &str, max_items: usize, max_len: usize, v: &mut Violations) {
    if items.len() > max_items {
        v.push(FieldViolation::new(field, format!("has {} items; the limit is {max_items}", items.len())));
        return;
    }
    for (i, s) in items.iter().enumerate() {
        check_token(s, &format!("{field}[{i}]"), max_len, v);
    }
}

/// Free text: bounded and free of control characters (may be empty).
pub fn check_text(s: &str, field: &str, max: usize, v: &mut Violations) {
    if s.len() > max {
        v.push(FieldViolation::new(field, format!("is {} bytes long; the limit is {max}", s.len())));
    } else if s.chars().any(char::is_control) {
        v.push(FieldViolation::new(field, "must not contain control characters"));
    }
}

/// A finite number within `lo..=hi`.
pub fn check_unit_range(x: f64, lo: f64, hi: f64, field: &str, v: &mut Violations) {
    if !x.is_finite() || x < lo || x > hi {
        v.push(FieldViolation::new(field, format!("is {x}; it must be between {lo} and {hi}")));
    }
}
