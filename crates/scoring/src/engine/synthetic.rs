//! A deterministic synthetic ledger for benchmarks: power-law popularity and
//! every event kind, produced in batches so a 10M-event ledger never has to be
//! held in memory as entries (the same mix as `examples/rescore_bench.rs`).

use lift_domain::LedgerEntry;
use lift_domain::event::EngagementKind;
use rand::{Rng, SeedableRng};

use super::testutil::{SEC, T0, click, conversion, engage, follow, post};

/// Generates ledger entries with offsets `1..=events`, spread over 180 days
/// (or, with [`SyntheticLedger::with_live_tail`], a prefix spread over 180
/// days followed by entries arriving at a steady rate).
#[derive(Debug)]
pub struct SyntheticLedger {
    rng: rand_chacha::ChaCha8Rng,
    accounts: usize,
    events: usize,
    next: usize,
    posts: Vec<(u32, u64)>,
    /// `(prefix, entries per second)`: entries from `prefix` on arrive live.
    tail: Option<(usize, f64)>,
}

impl SyntheticLedger {
    pub fn new(accounts: usize, events: usize, seed: u64) -> Self {
        Self {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            accounts: accounts.max(2),
            events,
            next: 0,
            posts: Vec::new(),
            tail: None,
        }
    }

    /// The first `prefix` entries spread over 180 days, every later one
    /// arriving `1/per_sec` seconds after the one before (at whole seconds),
    /// as a live ledger grows between runs of the service.
    pub fn with_live_tail(mut self, prefix: usize, per_sec: f64) -> Self {
        self.tail = Some((prefix.max(1), if per_sec.is_finite() && per_sec > 0.0 { per_sec } else { 1.0 }));
        self
    }

    /// Applies `n` more generated entries to `state`, in batches of `BATCH`
    /// (generation is not timed); returns the seconds spent applying.
    pub fn apply_to(&mut self, state: &mut super::State, n: usize) -> f64 {
        const BATCH: usize = 200_000;
        let mut secs = 0.0;
        let end = self.next + n;
        while self.next < end {
            let batch = self.batch(BATCH.min(end - self.next));
            if batch.is_empty() {
                break;
            }
            let t = std::time::Instant::now();
            for e in &batch {
                state.apply(e);
            }
            secs += t.elapsed().as_secs_f64();
        }
        secs
    }

    /// Entries generated so far.
    pub fn produced(&self) -> usize {
        self.next
    }

    /// Up to `max` further entries (empty once `events` were produced).
    pub fn batch(&mut self, max: usize) -> Vec<LedgerEntry> {
        let end = (self.next + max).min(self.events);
        let mut out = Vec::with_capacity(end - self.next);
        while self.next < end {
            let e = self.one(self.next);
            out.push(e);
            self.next += 1;
        }
        out
    }

    fn popular(&mut self) -> usize {
        // Popular accounts are drawn far more often, like real engagement.
        let u: f64 = self.rng.random();
        ((u.powf(4.0) * self.accounts as f64) as usize).min(self.accounts - 1)
    }

    fn one(&mut self, i: usize) -> LedgerEntry {
        let accounts = self.accounts;
        let off = i as u64 + 1;
        const SPAN: i64 = 180 * 86_400;
        let at = match self.tail {
            Some((prefix, per_sec)) if i >= prefix => T0 / SEC + SPAN + ((i - prefix) as f64 / per_sec) as i64,
            Some((prefix, _)) => T0 / SEC + (i as i64 * SPAN) / prefix as i64,
            None => T0 / SEC + (i as i64 * SPAN) / self.events.max(1) as i64,
        };
        let a = self.rng.random_range(0..accounts);
        match self.rng.random_range(0..100) {
            0..20 => {
                let author = self.popular();
                self.posts.push((author as u32, off));
                post(off, &format!("a{author}"), &format!("p{off}"), &[], at)
            }
            20..80 if !self.posts.is_empty() => {
                let k = self.popular() % self.posts.len();
                let (author, pid) = self.posts[self.posts.len() - 1 - k];
                let author = author as usize;
                let b = if author == a { (a + 1) % accounts } else { author };
                let kind =
                    [EngagementKind::Like, EngagementKind::Repost, EngagementKind::Reply][self.rng.random_range(0..3)];
                engage(off, kind, &format!("a{a}"), &format!("a{b}"), Some(&format!("p{pid}")), at)
            }
            20..95 => {
                let b = self.popular();
                let b = if b == a { (a + 1) % accounts } else { b };
                let unfollow = self.rng.random_bool(0.1);
                follow(off, &format!("a{a}"), &format!("a{b}"), unfollow, at)
            }
            95..99 => {
                let owner = self.popular();
                click(off, &format!("a{owner}"), &format!("v{i}"), at)
            }
            _ => {
                let owner = self.popular();
                conversion(off, &format!("a{owner}"), &format!("v{i}"), 1000, at)
            }
        }
    }
}
