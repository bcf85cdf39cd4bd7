//! Restart benchmark: time to fresh scores after a restart, from the newest
//! checkpoint (read from an SQLite file, decode, replay the tail, compute)
//! beside a full replay of the same ledger (apply every event, compute), in
//! the same run.
//!
//! ```text
//! cargo run --release -p lift-scoring --example restart_bench -- 1000000 10000000 [tail_events]
//! ```
//!
//! The full replay here applies events already decoded in memory, so it is a
//! lower bound of a real full replay (which also reads and decodes the
//! ledger): the speedup printed is conservative.

use std::time::Instant;

use lift_scoring::engine::checkpoint::{self, FORMAT_VERSION};
use lift_scoring::engine::synthetic::SyntheticLedger;
use lift_scoring::engine::{ModelParams, State, compute};
use lift_store::checkpoints::{self as store, NewCheckpoint};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nums: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let accounts = nums.first().copied().unwrap_or(100_000).max(2);
    let events = nums.get(1).copied().unwrap_or(10 * accounts);
    let tail = nums.get(2).copied().unwrap_or(events / 100).min(events);
    let p = ModelParams::default();
    let version = p.version();

    // The uninterrupted scorer: applies the prefix, checkpoints, applies the tail.
    let mut ledger = SyntheticLedger::new(accounts, events, 5);
    let mut live = State::new();
    let prefix_apply = ledger.apply_to(&mut live, events - tail);
    let t = Instant::now();
    let bytes = checkpoint::encode(&live, &version);
    let encode_s = t.elapsed().as_secs_f64();
    let dir = std::env::temp_dir().join(format!("lift-restart-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}?mode=rwc", dir.join("scoring.db").display());
    let db = lift_store::connect(&url).await?;
    let t = Instant::now();
    let cp = NewCheckpoint {
        model_version: &version,
        format_version: FORMAT_VERSION,
        as_of_offset: live.offset,
        created_at: 0,
        bytes: &bytes,
    };
    store::write(&db, &cp, 1).await?;
    let write_s = t.elapsed().as_secs_f64();
    let tail_start = ledger.produced();
    drop(bytes);
    drop(live);

    // Restart from the checkpoint: read, decode, replay the tail, compute.
    let t = Instant::now();
    let (_, stored) = store::latest(&db, u64::MAX).await?.ok_or("checkpoint missing")?;
    let read_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut restored = checkpoint::decode(&stored, &version)?;
    let decode_s = t.elapsed().as_secs_f64();
    drop(stored);
    let mut tail_ledger = SyntheticLedger::new(accounts, events, 5);
    // Regenerate up to the checkpoint without applying (the generator is sequential).
    while tail_ledger.produced() < tail_start {
        tail_ledger.batch(200_000.min(tail_start - tail_ledger.produced()));
    }
    let tail_s = tail_ledger.apply_to(&mut restored, tail);
    let t = Instant::now();
    let restored_snap = compute(&restored, &p);
    let restored_compute = t.elapsed().as_secs_f64();
    let restart_total = read_s + decode_s + tail_s + restored_compute;
    let restored_offset = restored.offset;
    drop(restored);

    // Full replay of the same ledger: apply everything, compute.
    let mut full_ledger = SyntheticLedger::new(accounts, events, 5);
    let mut full = State::new();
    let full_apply = full_ledger.apply_to(&mut full, events);
    let t = Instant::now();
    let full_snap = compute(&full, &p);
    let full_compute = t.elapsed().as_secs_f64();
    let full_total = full_apply + full_compute;
    let identical = full_snap.values == restored_snap.values && full.offset == restored_offset;

    println!(
        "| accounts | events | tail events | checkpoint MB | encode (s) | write (s) | read (s) | decode (s) | tail apply (s) | compute (s) | restart total (s) | full replay apply (s) | full compute (s) | full replay total (s) | speedup | scores identical |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1}× | {} |",
        full_snap.n,
        events,
        tail,
        cp_mb(&db).await?,
        encode_s,
        write_s,
        read_s,
        decode_s,
        tail_s,
        restored_compute,
        restart_total,
        full_apply,
        full_compute,
        full_total,
        full_total / restart_total.max(1e-9),
        if identical { "yes" } else { "NO" },
    );
    eprintln!("(prefix applied in {prefix_apply:.2} s before the checkpoint; database in {})", dir.display());
    drop(db);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

async fn cp_mb(db: &lift_store::DatabaseConnection) -> Result<f64, lift_store::Error> {
    Ok(store::list(db).await?.first().map_or(0.0, |c| c.size_bytes as f64 / 1e6))
}
