//! The follow-churn detector: follows undone soon after, many and a large
//! share of an account's follows (see the module documentation of
//! `authenticity`).

use std::collections::HashMap;

use lift_domain::Micros;

use super::{DAY, Flag, FlagKind, MAX_ACCOUNTS, MAX_OFFSETS};
use crate::engine::params::ModelParams;
use crate::engine::state::{Node, State};

/// (count, offsets, accounts, first, last) gathered for one account.
type Evidence = (u32, Vec<u64>, Vec<Node>, Micros, Micros);

pub(super) fn churn(state: &State, p: &ModelParams, in_window: &impl Fn(Micros) -> bool, flags: &mut Vec<Flag>) {
    let window = (p.churn_window_days * DAY as f64) as Micros;
    let mut open: HashMap<(Node, Node), Micros> = HashMap::new();
    let mut follows: HashMap<Node, u32> = HashMap::new();
    let mut churned: HashMap<Node, Evidence> = HashMap::new();
    for f in &state.follows {
        if !in_window(f.at) {
            continue;
        }
        let key = (f.follower, f.followee);
        if !f.unfollow {
            open.insert(key, f.at);
            *follows.entry(f.follower).or_default() += 1;
        } else if let Some(t) = open.remove(&key)
            && f.at - t <= window
        {
            let slot = churned.entry(f.follower).or_insert_with(|| (0, Vec::new(), vec![f.follower], f.at, f.at));
            slot.0 += 1;
            if slot.1.len() < MAX_OFFSETS {
                slot.1.push(f.offset);
            }
            if slot.2.len() < MAX_ACCOUNTS && !slot.2.contains(&f.followee) {
                slot.2.push(f.followee);
            }
            slot.3 = slot.3.min(t);
            slot.4 = slot.4.max(f.at);
        }
    }
    let mut churned: Vec<_> = churned.into_iter().collect();
    churned.sort_unstable_by_key(|c| c.0);
    for (who, (count, offsets, accounts, a, b)) in churned {
        let total = follows.get(&who).copied().unwrap_or(0).max(1);
        let share = f64::from(count) / f64::from(total);
        if count >= p.churn_min && share >= p.churn_min_share {
            flags.push(Flag {
                kind: FlagKind::FollowChurn,
                severity: share.min(1.0),
                description: format!("{count} of {total} follows were undone within {} days", p.churn_window_days),
                subjects: vec![who],
                accounts,
                event_offsets: offsets,
                window_start: a,
                window_end: b,
            });
        }
    }
}
