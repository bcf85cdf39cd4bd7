//! The open-session journal: what the collector knows about landing-page sessions that are
//! not decided yet, kept in a file beside the spool so a restart (a deploy, a crash) does not
//! forget them. Without it a session whose visitor left while the collector restarted would
//! never be recorded, and every such lost session is a bounce: bounce rates would read low.
//!
//! File format: JSON lines. A line is either a session's whole state after a beacon
//! (`{"s":…,"v":…,"l":…,"d":…,"p":…,"g":…,"t":…}`, `t` = Unix milliseconds of the beacon) or
//! `{"s":…,"gone":true}` once the session was swept. Loading keeps the last state of every
//! session not gone; a torn last line (a crash mid-write) is skipped. Each line is appended with
//! one `write`, like the spool's records. The file is rewritten (temporary file + rename) with
//! only the live sessions when it holds many more lines than sessions.
//!
//! A session is journaled on every beacon up to and including the one that decides it engaged,
//! and not after: its last journaled state is what decides it again if the collector restarts
//! before the sweep. The event that may then be sent twice has the same event id and ingestion
//! answers the second as a duplicate, so the ledger still holds each session once.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) s: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) v: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) l: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) d: u64,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub(crate) p: u32,
    #[serde(default, skip_serializing_if = "is_false")]
    pub(crate) g: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) t: u64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub(crate) gone: bool,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}
fn is_zero_u32(x: &u32) -> bool {
    *x == 0
}
fn is_false(x: &bool) -> bool {
    !*x
}

/// The journal file, open for appending.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    /// Lines in the file.
    lines: usize,
}

/// Rewrite when the file has more than this many lines per live session (plus a floor).
const COMPACT_FACTOR: usize = 4;
const COMPACT_FLOOR: usize = 4096;

impl Journal {
    /// The journal that belongs to the spool at `spool`.
    pub(crate) fn path_for(spool: &Path) -> PathBuf {
        let mut p = spool.as_os_str().to_owned();
        p.push(".sessions");
        PathBuf::from(p)
    }

    /// Opens the journal at `path`, returning the live sessions it holds (last state of each
    /// session not swept), and rewrites the file with only those.
    pub(crate) fn open(path: &Path) -> io::Result<(Self, Vec<Record>)> {
        let mut live: HashMap<String, Record> = HashMap::new();
        match File::open(path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let line = line?;
                    // A torn or foreign line loses one session's state at most, never the file.
                    let Ok(r) = serde_json::from_str::<Record>(&line) else { continue };
                    if r.gone {
                        live.remove(&r.s);
                    } else {
                        live.insert(r.s.clone(), r);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let records: Vec<Record> = live.into_values().collect();
        let file = rewrite(path, &records)?;
        Ok((Self { path: path.to_owned(), file, lines: records.len() }, records))
    }

    /// Appends one line.
    pub(crate) fn append(&mut self, r: &Record) -> io::Result<()> {
        let mut line = serde_json::to_vec(r).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.lines += 1;
        Ok(())
    }

    /// Rewrites the file with `live` when it has grown well past it.
    pub(crate) fn maybe_compact(&mut self, live: impl FnOnce() -> Vec<Record>) -> io::Result<()> {
        if self.lines <= COMPACT_FLOOR {
            return Ok(());
        }
        let live = live();
        if self.lines <= COMPACT_FACTOR * live.len() + COMPACT_FLOOR {
            return Ok(());
        }
        self.file = rewrite(&self.path, &live)?;
        self.lines = live.len();
        Ok(())
    }
}

/// Writes `records` to a temporary file, renames it over `path` and opens it for appending.
fn rewrite(path: &Path, records: &[Record]) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let mut out = io::BufWriter::new(File::create(&tmp)?);
        for r in records {
            serde_json::to_writer(&mut out, r).map_err(io::Error::other)?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    OpenOptions::new().append(true).open(path)
}

/// Wall-clock milliseconds of `at` (an `Instant` taken near `now`).
pub(crate) fn unix_ms(at: Instant, now: Instant) -> u64 {
    let wall = SystemTime::now().checked_sub(now.saturating_duration_since(at)).unwrap_or(UNIX_EPOCH);
    wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// The `Instant` matching Unix milliseconds `ms` (clamped to `now` for times in the future).
pub(crate) fn instant_of(ms: u64, now: Instant) -> Instant {
    let then = UNIX_EPOCH + Duration::from_millis(ms);
    let ago = SystemTime::now().duration_since(then).unwrap_or(Duration::ZERO);
    now.checked_sub(ago).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(s: &str, p: u32) -> Record {
        Record { s: s.into(), v: "visitor-1".into(), l: "lift.to/abc".into(), d: 10, p, g: false, t: 5, gone: false }
    }

    /// Pins that loading keeps each session's last state, drops swept ones, skips a torn line
    /// and leaves a file holding only the live sessions.
    #[test]
    fn load_keeps_last_state_of_live_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.sessions");
        {
            let (mut j, live) = Journal::open(&path).unwrap();
            assert!(live.is_empty());
            j.append(&rec("session-a", 1)).unwrap();
            j.append(&rec("session-b", 1)).unwrap();
            j.append(&rec("session-a", 2)).unwrap();
            j.append(&Record { s: "session-b".into(), gone: true, ..rec("x", 0) }).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"s\":\"session-c\",\"v\":\"vis").unwrap();
        drop(f);
        let (_j, live) = Journal::open(&path).unwrap();
        assert_eq!(live, vec![rec("session-a", 2)]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "rewritten with the live session only: {text}");
    }

    /// Pins that the file is rewritten once it holds many more lines than live sessions.
    #[test]
    fn compacts_when_mostly_dead() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.sessions");
        let (mut j, _) = Journal::open(&path).unwrap();
        for i in 0..2 * COMPACT_FLOOR {
            j.append(&rec(&format!("session-{i}"), 1)).unwrap();
        }
        j.maybe_compact(|| vec![rec("session-0", 1)]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        assert_eq!(j.lines, 1);
    }

    /// Pins the wall-clock round trip used to carry `last_seen` across a restart.
    #[test]
    fn instants_round_trip_through_wall_clock() {
        let now = Instant::now();
        let at = now.checked_sub(Duration::from_secs(7)).unwrap_or(now);
        let back = instant_of(unix_ms(at, now), now);
        let diff = if back > at { back - at } else { at - back };
        assert!(diff < Duration::from_millis(50), "{diff:?}");
    }
}
