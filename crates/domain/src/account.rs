//! Account identity: a network-local id qualified by its network.

use std::fmt;

use serde::{Deserialize, Serialize};

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
