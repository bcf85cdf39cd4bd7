//! Full rescore benchmark: every dimension for `accounts` accounts after
//! `events` generated ledger events (power-law popularity, all event kinds).
//!
//! ```text
//! cargo run --release -p lift-scoring --example rescore_bench -- 1000000 10000000
//! ```

use std::time::Instant;

use lift_domain::event::EngagementKind;
use lift_scoring::engine::testutil::{SEC, T0, click, conversion, engage, follow, post};
use lift_scoring::engine::{ModelParams, State, compute};
use rand::{Rng, SeedableRng};

fn main() {
    let nums: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let accounts = nums.first().copied().unwrap_or(1_000_000).max(2);
    let events = nums.get(1).copied().unwrap_or(10 * accounts);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    // Popular accounts are drawn far more often (rank^-0.75-ish), like real engagement.
    let popular = |rng: &mut rand_chacha::ChaCha8Rng| -> usize {
        let u: f64 = rng.random();
        ((u.powf(4.0) * accounts as f64) as usize).min(accounts - 1)
    };
    let mut state = State::new();
    let mut posts: Vec<(usize, u64)> = Vec::new();
    let t = Instant::now();
    let base = T0 / SEC;
    for i in 0..events {
        let off = i as u64 + 1;
        let at = base + (i as i64 * 180 * 86_400) / events as i64;
        let a = rng.random_range(0..accounts);
        let e = match rng.random_range(0..100) {
            0..20 => {
                let author = popular(&mut rng);
                posts.push((author, off));
                post(off, &format!("a{author}"), &format!("p{off}"), &[], at)
            }
            20..80 if !posts.is_empty() => {
                let (author, pid) = posts[posts.len() - 1 - popular(&mut rng) % posts.len()];
                let b = if author == a { (a + 1) % accounts } else { author };
                let kind =
                    [EngagementKind::Like, EngagementKind::Repost, EngagementKind::Reply][rng.random_range(0..3)];
                engage(off, kind, &format!("a{a}"), &format!("a{b}"), Some(&format!("p{pid}")), at)
            }
            20..95 => {
                let b = popular(&mut rng);
                let b = if b == a { (a + 1) % accounts } else { b };
                follow(off, &format!("a{a}"), &format!("a{b}"), rng.random_bool(0.1), at)
            }
            95..99 => click(off, &format!("a{}", popular(&mut rng)), &format!("v{i}"), at),
            _ => conversion(off, &format!("a{}", popular(&mut rng)), &format!("v{i}"), 1000, at),
        };
        state.apply(&e);
    }
    let apply_s = t.elapsed().as_secs_f64();
    let p = ModelParams::default();
    println!(
        "| accounts | events | apply (s) | rescore (s) | pagerank iterations | graph edges | graph MB | event columns MB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for _ in 0..2 {
        let t = Instant::now();
        let snap = compute(&state, &p);
        let s = t.elapsed().as_secs_f64();
        println!(
            "| {} | {} | {:.1} | {:.2} | {} | {} | {:.0} | {:.0} |",
            snap.n,
            state.events,
            apply_s,
            s,
            snap.stats.pagerank_iterations,
            snap.stats.edges,
            snap.stats.graph_bytes as f64 / 1e6,
            state.event_bytes() as f64 / 1e6
        );
    }
}
