//! An offer's life: the states a campaign's offer to a creator moves through
//! and which steps are allowed, so matching (which records them) and anyone
//! replaying the ledger apply the same rules.
//!
//! ```text
//! offered ──► accepted ──► delivered ──► redeemed
//!    │
//!    ├──► declined
//!    └──► expired
//! ```
//!
//! Every state is entered at most once, so "the offer has been in state S" is
//! the same as "S lies on the path to the current state".

use serde::{Deserialize, Serialize};

use crate::account::AccountId;

/// Longest campaign id an offer transition may name.
pub const MAX_CAMPAIGN_ID_LEN: usize = 64;
/// Longest note a transition may carry.
pub const MAX_NOTE_LEN: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OfferState {
    Offered = 1,
    Accepted = 2,
    Declined = 3,
    Expired = 4,
    Delivered = 5,
    Redeemed = 6,
}

impl OfferState {
    pub const ALL: [OfferState; 6] = [
        OfferState::Offered,
        OfferState::Accepted,
        OfferState::Declined,
        OfferState::Expired,
        OfferState::Delivered,
        OfferState::Redeemed,
    ];

    /// The stored and wire number.
    pub fn code(self) -> i16 {
        self as i16
    }

    pub fn from_code(c: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as i32 == c)
    }

    pub fn name(self) -> &'static str {
        match self {
            OfferState::Offered => "offered",
            OfferState::Accepted => "accepted",
            OfferState::Declined => "declined",
            OfferState::Expired => "expired",
            OfferState::Delivered => "delivered",
            OfferState::Redeemed => "redeemed",
        }
    }

    /// Parses a state's name (as the CLI takes it).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.name().eq_ignore_ascii_case(s))
    }

    /// The state this one is entered from (`None` for `Offered`, where every offer starts).
    pub fn predecessor(self) -> Option<OfferState> {
        match self {
            OfferState::Offered => None,
            OfferState::Accepted | OfferState::Declined | OfferState::Expired => Some(OfferState::Offered),
            OfferState::Delivered => Some(OfferState::Accepted),
            OfferState::Redeemed => Some(OfferState::Delivered),
        }
    }

    /// The states an offer in this state may move to next.
    pub fn next(self) -> Vec<OfferState> {
        Self::ALL.into_iter().filter(|s| s.predecessor() == Some(self)).collect()
    }

    /// Whether an offer now in `self` has been in `other` (it is `other`, or
    /// `other` lies on the way here).
    pub fn has_passed(self, other: OfferState) -> bool {
        let mut s = Some(self);
        while let Some(cur) = s {
            if cur == other {
                return true;
            }
            s = cur.predecessor();
        }
        false
    }

    pub fn is_final(self) -> bool {
        self.next().is_empty()
    }
}

impl std::fmt::Display for OfferState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What asking an offer in one state to move to another means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A step the lifecycle allows: record it.
    Move { from: OfferState, to: OfferState },
    /// The offer is in `to` or has passed through it: nothing to do.
    AlreadyThere,
    /// Not allowed from the current state.
    Refused,
}

/// The rule for moving an offer now in `current` to `to`.
pub fn step(current: OfferState, to: OfferState) -> Step {
    if current.has_passed(to) {
        Step::AlreadyThere
    } else if to.predecessor() == Some(current) {
        Step::Move { from: current, to }
    } else {
        Step::Refused
    }
}

/// An `OfferTransition` ledger event's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferTransition {
    pub campaign_id: String,
    pub creator: AccountId,
    pub from: OfferState,
    pub to: OfferState,
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the lifecycle: the allowed steps, idempotent repeats (also of a
    /// state passed through) and the refusals the issue names.
    #[test]
    fn lifecycle_steps() {
        use OfferState::*;
        assert_eq!(step(Offered, Accepted), Step::Move { from: Offered, to: Accepted });
        assert_eq!(step(Accepted, Delivered), Step::Move { from: Accepted, to: Delivered });
        assert_eq!(step(Delivered, Redeemed), Step::Move { from: Delivered, to: Redeemed });
        assert_eq!(step(Offered, Expired), Step::Move { from: Offered, to: Expired });
        assert_eq!(step(Accepted, Accepted), Step::AlreadyThere);
        assert_eq!(step(Redeemed, Accepted), Step::AlreadyThere);
        assert_eq!(step(Accepted, Redeemed), Step::Refused, "redeem before delivery");
        assert_eq!(step(Declined, Accepted), Step::Refused, "accept after decline");
        assert_eq!(step(Accepted, Declined), Step::Refused);
        assert_eq!(step(Expired, Delivered), Step::Refused);
        assert!(Declined.is_final() && Expired.is_final() && Redeemed.is_final() && !Delivered.is_final());
        for s in OfferState::ALL {
            assert_eq!(OfferState::parse(s.name()), Some(s));
            assert_eq!(OfferState::from_code(i32::from(s.code())), Some(s));
        }
    }
}
