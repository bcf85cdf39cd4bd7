//! The burst detectors: 24-hour windows of new followers or first-time
//! engagers from new accounts far above an account's baseline (see the module
//! documentation of `authenticity`).

use lift_domain::Micros;

use super::{DAY, Flag, FlagKind, MAX_ACCOUNTS, MAX_OFFSETS};
use crate::engine::params::ModelParams;
use crate::engine::state::{NONE, Node, State};

pub(super) fn bursts(
    state: &State,
    p: &ModelParams,
    as_of: Micros,
    in_window: &impl Fn(Micros) -> bool,
    flags: &mut Vec<Flag>,
) {
    // Only *new* accounts count towards a burst: created less than `young_account_days`
    // before, or never active before that. Bought followers and engagement come from
    // such accounts; a genuinely viral post draws established ones, so it does not burst.
    let young = (p.young_account_days * DAY as f64) as Micros;
    let mut first_seen = vec![Micros::MAX; state.len()];
    // Accounts that posted or engaged anything in the window: a bought follower does neither.
    let mut active = vec![false; state.len()];
    for e in &state.engagements {
        first_seen[e.actor as usize] = first_seen[e.actor as usize].min(e.at);
        active[e.actor as usize] |= in_window(e.at);
        // Being engaged is evidence the account existed then, too (a quiet reader who
        // received messages months ago is not a new account when it first answers).
        let t = state.target_of(e);
        if t != NONE {
            first_seen[t as usize] = first_seen[t as usize].min(e.at);
        }
    }
    for post in &state.posts {
        if post.author != NONE {
            first_seen[post.author as usize] = first_seen[post.author as usize].min(post.at);
            active[post.author as usize] |= in_window(post.at);
        }
    }
    for f in &state.follows {
        first_seen[f.follower as usize] = first_seen[f.follower as usize].min(f.at);
        first_seen[f.followee as usize] = first_seen[f.followee as usize].min(f.at);
    }
    // Within `young` of the ledger's first event nobody's age is known from activity: at
    // the start of the record everyone is "first seen".
    let ledger_start = first_seen.iter().copied().min().unwrap_or(Micros::MAX);
    let is_new = |who: Node, at: Micros| {
        let seen = first_seen[who as usize];
        (seen > at.saturating_sub(young) && seen.saturating_sub(ledger_start) >= young)
            || state.accounts[who as usize].created_at.is_some_and(|c| at.saturating_sub(c) < young)
    };
    // (target, time, offset, source, inactive) for follows and engagements received from new accounts.
    let mut follows: Vec<BurstRow> = state
        .follows
        .iter()
        .filter(|f| !f.unfollow && in_window(f.at) && is_new(f.follower, f.at))
        .map(|f| (f.followee, f.at, f.offset, f.follower, !active[f.follower as usize]))
        .collect();
    let mut engagements: Vec<BurstRow> = state
        .engagements
        .iter()
        .filter(|e| in_window(e.at) && is_new(e.actor, e.at))
        .filter_map(|e| {
            let t = state.target_of(e);
            (t != NONE && t != e.actor).then_some((t, e.at, e.offset, e.actor, false))
        })
        .collect();
    // A conversation is many engagements from few accounts; bought engagement is many *new*
    // engagers at once. Count each engager once, when it first engaged.
    engagements.sort_unstable_by_key(|r| (r.0, r.3, r.1, r.2));
    engagements.dedup_by_key(|r| (r.0, r.3));
    for (rows, kind, cap, what, min, min_inactive) in [
        (
            &mut follows,
            FlagKind::FollowerBurst,
            0.5,
            "followers that are new accounts",
            p.follower_burst_min_per_day,
            p.follower_burst_min_inactive,
        ),
        (
            &mut engagements,
            FlagKind::EngagementBurst,
            0.3,
            "first-time engagers that are new accounts",
            p.burst_min_per_day,
            0,
        ),
    ] {
        rows.sort_unstable_by_key(|r| (r.0, r.1, r.2));
        let min = min.max(1) as usize;
        let min_inactive = if min_inactive == 0 { usize::MAX } else { min_inactive as usize };
        let mut i = 0;
        while i < rows.len() {
            let who = rows[i].0;
            let mut j = i;
            while j < rows.len() && rows[j].0 == who {
                j += 1;
            }
            let acct = &rows[i..j];
            i = j;
            // The busiest 24-hour windows, and the account's rate outside them since its first such event.
            let windows = busiest_windows(acct, min.min(min_inactive), MAX_BURSTS);
            if windows.is_empty() {
                continue;
            }
            let in_bursts: usize = windows.iter().map(|w| w.1 - w.0).sum();
            let days = (as_of - acct[0].1) as f64 / DAY as f64 + 1.0;
            let baseline = (acct.len() - in_bursts) as f64 / (days - windows.len() as f64).max(1.0);
            let expected = p.burst_factor * (baseline + p.burst_baseline_smoothing);
            let bursts: Vec<&[BurstRow]> = windows
                .iter()
                .map(|&(a, b)| &acct[a..b])
                .filter(|w| {
                    let inactive = w.iter().filter(|r| r.4).count();
                    (w.len() >= min || inactive >= min_inactive) && w.len() as f64 >= expected
                })
                .collect();
            let Some(best) = bursts.iter().map(|w| w.len()).max() else { continue };
            let best_f = best as f64;
            let evidence: Vec<&BurstRow> = bursts.iter().flat_map(|w| w.iter()).collect();
            let mut accounts = vec![who];
            for r in &evidence {
                if accounts.len() >= MAX_ACCOUNTS {
                    break;
                }
                if !accounts.contains(&r.3) {
                    accounts.push(r.3);
                }
            }
            let more = if bursts.len() > 1 {
                format!(" ({} such days, {} in all)", bursts.len(), evidence.len())
            } else {
                String::new()
            };
            flags.push(Flag {
                kind,
                severity: cap * (1.0 - expected / best_f).clamp(0.0, 1.0).max(0.1),
                description: format!("{best} {what} within 24 hours{more} against a baseline of {baseline:.1} per day"),
                subjects: vec![who],
                accounts,
                event_offsets: evidence.iter().take(MAX_OFFSETS).map(|r| r.2).collect(),
                window_start: evidence.iter().map(|r| r.1).min().unwrap_or(as_of),
                window_end: evidence.iter().map(|r| r.1).max().unwrap_or(as_of),
            });
        }
    }
}

/// (target, time, offset, source, source inactive) of one follow or engagement from a new account.
type BurstRow = (Node, Micros, u64, Node, bool);

/// Most 24-hour bursts reported per account and kind.
const MAX_BURSTS: usize = 8;

/// Up to `max` disjoint 24-hour windows of `rows` (sorted by time) holding at least `min`
/// rows each, busiest first, as index ranges.
fn busiest_windows(rows: &[BurstRow], min: usize, max: usize) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    while out.len() < max {
        let mut best: Option<(usize, usize)> = None;
        // Runs of rows not yet taken, each searched with two pointers.
        let mut taken: Vec<(usize, usize)> = out.clone();
        taken.sort_unstable();
        let mut start = 0;
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for &(a, b) in &taken {
            runs.push((start, a));
            start = b;
        }
        runs.push((start, rows.len()));
        for (a, b) in runs {
            let mut hi = a;
            for lo in a..b {
                hi = hi.max(lo);
                while hi < b && rows[hi].1 - rows[lo].1 < DAY {
                    hi += 1;
                }
                if best.is_none_or(|(x, y)| hi - lo > y - x) {
                    best = Some((lo, hi));
                }
            }
        }
        match best {
            Some((a, b)) if b - a >= min.max(1) => out.push((a, b)),
            _ => break,
        }
    }
    out
}
