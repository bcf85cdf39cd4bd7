//! Injects an engagement pod into the real SNAP CollegeMsg network and reports
//! whether scoring flags it (with evidence) and how far its members' network
//! scores fall against a run that trusts them.
//!
//! ```text
//! scripts/fetch-collegemsg.sh
//! cargo run --release -p lift-scoring --example collegemsg_pod -- data/collegemsg.csv.gz
//! ```

use std::io::{BufRead, BufReader};

use lift_domain::Dimension;
use lift_domain::event::EngagementKind;
use lift_scoring::engine::testutil::{engage, like, post};
use lift_scoring::engine::{AsOf, ComputeOptions, FlagKind, ModelParams, State, compute, compute_with};

/// `4/15/04 2:56 PM` → seconds since the epoch (UTC; the file has no zone).
fn parse_time(s: &str) -> Option<i64> {
    let (date, rest) = s.trim().split_once(' ')?;
    let mut d = date.split('/');
    let (m, day, y): (i64, i64, i64) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    let (hm, ampm) = rest.split_once(' ')?;
    let (h, min): (i64, i64) = {
        let (h, mi) = hm.split_once(':')?;
        (h.parse().ok()?, mi.parse().ok()?)
    };
    let h = match (h, ampm) {
        (12, "AM") => 0,
        (12, "PM") => 12,
        (h, "PM") => h + 12,
        (h, _) => h,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = 2000 + y - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "data/collegemsg.csv.gz".into());
    let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e} (run scripts/fetch-collegemsg.sh)"))?;
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    let mut state = State::new();
    let mut off = 0u64;
    let mut last = 0i64;
    for line in reader.lines().skip(1) {
        let line = line?;
        let mut f = line.trim_end().splitn(3, ',');
        let (Some(a), Some(b), Some(t)) = (f.next(), f.next(), f.next()) else { continue };
        let Some(at) = parse_time(t) else { continue };
        off += 1;
        last = last.max(at);
        state.apply(&engage(off, EngagementKind::Mention, &format!("cm{a}"), &format!("cm{b}"), None, at));
    }
    let real = off;
    // The pod: 6 students who, over the last week, post and like each other's posts within a minute.
    let pod: Vec<String> =
        ["cm12", "cm77", "cm203", "cm488", "cm951", "cm1400"].iter().map(|s| (*s).to_owned()).collect();
    for round in 0..7 {
        for (i, author) in pod.iter().enumerate() {
            let at = last - 7 * 86_400 + round * 86_400 + i as i64 * 300;
            off += 1;
            let pid = format!("pod-{round}-{i}");
            state.apply(&post(off, author, &pid, &[], at));
            for other in pod.iter().filter(|o| *o != author) {
                off += 1;
                state.apply(&like(off, other, author, &pid, at + 40));
            }
        }
    }
    let p = ModelParams::default();
    let snap = compute(&state, &p);
    let trusting = compute_with(
        &state,
        &p,
        AsOf::of(&state),
        ComputeOptions { warm_start: None, authenticity: Some(&vec![100.0; state.len()]) },
    );
    println!("CollegeMsg: {real} real messages, {} accounts; {} injected pod events", state.len(), off - real);
    for f in &snap.flags {
        let names: Vec<String> = f.subjects.iter().map(|&n| state.accounts[n as usize].id.id.clone()).collect();
        println!(
            "flag {:<17} severity {:.2}  subjects {:?}  evidence {} events (first offset {:?})  {}",
            f.kind.name(),
            f.severity,
            names,
            f.event_offsets.len(),
            f.event_offsets.first(),
            f.description
        );
    }
    let pod_flagged = snap.flags.iter().any(|f| f.kind == FlagKind::EngagementPod);
    println!("\n| member | authenticity | network (flagged run) | network (trusting run) | network percentile |");
    println!("|---|---|---|---|---|");
    for m in &pod {
        let Some(n) = state.node(&lift_domain::AccountId::new("t", m)) else { continue };
        let (net, trusted) =
            (snap.value(Dimension::Network, n).unwrap_or(0.0), trusting.value(Dimension::Network, n).unwrap_or(0.0));
        println!(
            "| {m} | {:.1} | {net:.2} | {trusted:.2} | {:.1} |",
            snap.value(Dimension::Authenticity, n).unwrap_or(0.0),
            snap.percentiles[Dimension::Network.index()][n as usize]
        );
    }
    println!("\npod flagged: {pod_flagged}");
    Ok(())
}
