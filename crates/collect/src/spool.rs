//! The local spool: every click, page session and order is appended to a file before
//! the visitor (or shop) gets an answer, and a background task delivers it to ingestion.
//!
//! File format: records of `[u32 little-endian length][prost-encoded lift.ingest.v1.Event]`,
//! appended with one `write` each. Undelivered events are kept in memory as those same
//! encoded bytes, which delivery puts on the wire as they are (see `deliver`): an event is
//! encoded once, when it is spooled, and never decoded or copied again on its way out (so a crash of the process loses nothing written; a
//! power loss can lose what the OS had not flushed: the file is not fsynced per record).
//! A sidecar `<spool>.cursor` holds how many records from the start were delivered; it is
//! replaced atomically (write + rename) after each acknowledged batch. When everything is
//! delivered the file is truncated. On start, undelivered records are loaded again; a torn
//! last record (a crash mid-write) is cut off.
//!
//! Delivery is at least once: a crash between ingestion's acknowledgement and the cursor
//! update re-sends a batch, and ingestion answers those as duplicates (events are idempotent
//! on source and event id), so the ledger holds each event exactly once.
//!
//! The spool is bounded: past `capacity` undelivered records, new ones are refused, counted
//! (`lift_collect_spool_dropped_total`) and logged.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lift_proto::ingest::v1 as pb;
use prost::Message;
use prost::bytes::Bytes;
use tokio::sync::Notify;

/// Why a record was not spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool full: {0} undelivered records")]
    Full(usize),
    #[error("spool I/O: {0}")]
    Io(#[from] io::Error),
}

#[derive(Debug)]
struct State {
    file: File,
    /// Undelivered events, oldest first, encoded (the file's tail without the length
    /// prefixes). Shared, so that delivery takes a batch without copying events while
    /// redirects wait for the lock.
    pending: VecDeque<Bytes>,
    /// Records in the file, delivered or not.
    total: u64,
    /// Records from the start of the file already delivered.
    delivered: u64,
    dropped: u64,
}

/// A bounded, file-backed queue of events awaiting delivery.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    cursor_path: PathBuf,
    capacity: usize,
    state: Mutex<State>,
    /// Woken on every push.
    pub(crate) pushed: Notify,
}

impl Spool {
    /// Opens (or creates) the spool at `path`, loading what was not delivered yet.
    pub fn open(path: &Path, capacity: usize) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let cursor_path = cursor_path(path);
        let delivered: u64 = match std::fs::read_to_string(&cursor_path) {
            Ok(s) => s.trim().parse().unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        let bytes = Bytes::from(bytes);
        let (records, good_len) = decode_all(&bytes);
        if good_len < bytes.len() {
            tracing::warn!(path = %path.display(), torn = bytes.len() - good_len, "spool: cutting off a torn last record");
            let f = OpenOptions::new().write(true).open(path)?;
            f.set_len(good_len as u64)?;
        }
        let total = records.len() as u64;
        let delivered = delivered.min(total);
        let pending: VecDeque<Bytes> = records.into_iter().skip(delivered as usize).collect();
        if !pending.is_empty() {
            tracing::info!(path = %path.display(), pending = pending.len(), "spool: undelivered records loaded");
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_owned(),
            cursor_path,
            capacity,
            state: Mutex::new(State { file, pending, total, delivered, dropped: 0 }),
            pushed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one event; it is on disk (in the OS's hands) when this returns `Ok`.
    pub fn push(&self, event: &pb::Event) -> Result<(), SpoolError> {
        // Encoded before the lock is taken: concurrent redirects wait only for the write.
        let body_len = event.encoded_len();
        let len = u32::try_from(body_len).map_err(|_| io::Error::other("event too large for the spool"))?;
        let mut rec = Vec::with_capacity(4 + body_len);
        rec.extend_from_slice(&len.to_le_bytes());
        event.encode_raw(&mut rec);
        let rec = Bytes::from(rec);
        let mut st = self.lock();
        if st.pending.len() >= self.capacity {
            st.dropped += 1;
            let dropped = st.dropped;
            drop(st);
            metrics::counter!("lift_collect_spool_dropped_total").increment(1);
            if dropped == 1 || dropped.is_power_of_two() {
                tracing::error!(capacity = self.capacity, dropped, path = %self.path.display(),
                    "spool full: ingestion has not taken events for a while; new events are being dropped");
            }
            return Err(SpoolError::Full(self.capacity));
        }
        st.file.write_all(&rec)?;
        st.total += 1;
        st.pending.push_back(rec.slice(4..));
        let pending = st.pending.len();
        drop(st);
        metrics::gauge!("lift_collect_spool_pending").set(pending as f64);
        self.pushed.notify_one();
        Ok(())
    }

    /// Up to `n` oldest undelivered events, encoded (shared with the spool: no event is
    /// copied while the lock is held).
    pub fn peek(&self, n: usize) -> Vec<Bytes> {
        self.lock().pending.iter().take(n).cloned().collect()
    }

    /// Marks the `n` oldest events delivered (after ingestion acknowledged them).
    pub fn ack(&self, n: usize) -> io::Result<()> {
        let mut st = self.lock();
        let n = n.min(st.pending.len());
        st.pending.drain(..n);
        st.delivered += n as u64;
        if st.pending.is_empty() {
            // Everything delivered: start the file afresh (cursor first, so a crash between
            // the two never points past a shorter file's records).
            write_cursor(&self.cursor_path, 0)?;
            st.file.set_len(0)?;
            st.total = 0;
            st.delivered = 0;
        } else {
            write_cursor(&self.cursor_path, st.delivered)?;
        }
        metrics::gauge!("lift_collect_spool_pending").set(st.pending.len() as f64);
        Ok(())
    }

    /// Undelivered events.
    pub fn len(&self) -> usize {
        self.lock().pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events refused because the spool was full, since start.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

fn cursor_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".cursor");
    PathBuf::from(p)
}

fn write_cursor(path: &Path, delivered: u64) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, delivered.to_string())?;
    std::fs::rename(&tmp, path)
}

/// The whole records of `bytes` (each one a decodable event), and the byte length they span.
fn decode_all(bytes: &Bytes) -> (Vec<Bytes>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(len_bytes) = bytes.get(at..at + 4) {
        let len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        let Some(body) = bytes.get(at + 4..at + 4 + len) else { break };
        if pb::Event::decode(body).is_err() {
            break;
        }
        out.push(bytes.slice(at + 4..at + 4 + len));
        at += 4 + len;
    }
    (out, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str) -> pb::Event {
        pb::Event { event_id: id.into(), source: "t".into(), ..Default::default() }
    }

    /// Pins durability: undelivered records survive a reopen, delivered ones do not come back,
    /// and a torn last record is cut off.
    #[test]
    fn survives_reopen_and_torn_tail() -> Result<(), SpoolError> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("spool");
        {
            let s = Spool::open(&path, 10)?;
            for i in 0..4 {
                s.push(&ev(&format!("e{i}")))?;
            }
            s.ack(1)?;
        }
        // A crash mid-write leaves half a record.
        OpenOptions::new().append(true).open(&path)?.write_all(&[9, 0, 0, 0, 1, 2])?;
        let s = Spool::open(&path, 10)?;
        let ids: Vec<String> = s
            .peek(10)
            .into_iter()
            .map(|e| pb::Event::decode(e).map(|e| e.event_id))
            .collect::<Result<_, _>>()
            .map_err(io::Error::other)?;
        assert_eq!(ids, ["e1", "e2", "e3"]);
        s.push(&ev("e4"))?;
        s.ack(4)?;
        assert!(s.is_empty());
        assert_eq!(std::fs::metadata(&path)?.len(), 0, "fully delivered spool is truncated");
        drop(s);
        assert!(Spool::open(&path, 10)?.is_empty());
        Ok(())
    }

    /// Pins the bound: past capacity, pushes fail and are counted.
    #[test]
    fn bounded() -> Result<(), SpoolError> {
        let dir = tempfile::tempdir()?;
        let s = Spool::open(&dir.path().join("spool"), 2)?;
        s.push(&ev("a"))?;
        s.push(&ev("b"))?;
        assert!(matches!(s.push(&ev("c")), Err(SpoolError::Full(2))));
        assert_eq!((s.len(), s.dropped()), (2, 1));
        Ok(())
    }
}
