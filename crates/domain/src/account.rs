//! Account identity: a network-local id qualified by its network.

use std::fmt;

use lift_proto::ingest::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::validation::{FieldViolation, Violations};

/// Longest accepted network name.
pub const MAX_NETWORK_LEN: usize = 32;
/// Longest accepted network-local id.
pub const MAX_ACCOUNT_ID_LEN: usize = 128;

/// An account on one network, e.g. `collegemsg:42`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountId {
    pub network: String,
    pub id: String,
}

impl AccountId {
    pub fn new(network: impl Into<String>, id: impl Into<String>) -> Self {
        Self { network: network.into(), id: id.into() }
    }

    /// Validates a wire reference, recording violations under `field`.
    pub fn from_proto(r: Option<&pb::AccountRef>, field: &str, v: &mut Violations) -> Option<Self> {
        let Some(r) = r else {
            v.push(FieldViolation::new(field, "is required"));
            return None;
        };
        let before = v.len();
        check_token(&r.network, &format!("{field}.network"), MAX_NETWORK_LEN, v);
        check_token(&r.id, &format!("{field}.id"), MAX_ACCOUNT_ID_LEN, v);
        (v.len() == before).then(|| Self::new(r.network.clone(), r.id.clone()))
    }

    pub fn to_proto(&self) -> pb::AccountRef {
        pb::AccountRef { network: self.network.clone(), id: self.id.clone() }
    }

    /// Parses the `network:id` form used by the CLI and in storage.
    pub fn parse(s: &str) -> Option<Self> {
        let (n, i) = s.split_once(':')?;
        (!n.is_empty() && !i.is_empty()).then(|| Self::new(n, i))
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.network, self.id)
    }
}

/// Checks that an identifier is present, bounded and free of control characters.
pub(crate) fn check_token(s: &str, field: &str, max: usize, v: &mut Violations) {
    if s.is_empty() {
        v.push(FieldViolation::new(field, "is required"));
    } else if s.len() > max {
        v.push(FieldViolation::new(field, format!("is {} bytes long; the limit is {max}", s.len())));
    } else if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        v.push(FieldViolation::new(field, "must not contain whitespace or control characters"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the `network:id` round trip used by the CLI.
    #[test]
    fn parse_round_trips_display() {
        let a = AccountId::new("x", "anna");
        assert_eq!(AccountId::parse(&a.to_string()), Some(a));
        assert_eq!(AccountId::parse("nocolon"), None);
        assert_eq!(AccountId::parse(":x"), None);
    }
}
