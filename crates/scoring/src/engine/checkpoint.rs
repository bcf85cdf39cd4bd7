//! Checkpoints: a `State` as compact bytes, so a restart replays only the
//! ledger tail after the checkpoint's offset.
//!
//! Format (all integers little-endian; "varint" is unsigned LEB128, "zigzag"
//! a signed varint):
//!
//! ```text
//! magic "LIFTCKPT" | format u32 | model version (varint len + UTF-8) | offset varint
//! | body | checksum u64 (over every byte before it)
//! ```
//!
//! The body holds the state's columns in order: accounts (id, handle,
//! reported followers, creation time), posts (ledger post id, author, time,
//! offset, topics), topic names, engagements, follows, outcomes, then the
//! counters. Offsets and times of event records are stored as zigzag deltas
//! from the previous record, so a 32-byte engagement takes about 10 bytes.
//!
//! A state is model-independent, but a checkpoint still names the model it was
//! written under and [`decode`] refuses any other model or format: a restart
//! then replays from the start rather than trust bytes it cannot vouch for.
//! Decoding never panics: every count, index and string is checked, and ids
//! are verified to point inside the columns they index.

use lift_domain::event::EngagementKind;
use lift_domain::{AccountId, Micros};

use super::state::{AccountInfo, EngagementRec, FollowRec, NONE, OutcomeKind, OutcomeRec, PostInfo, State};

const MAGIC: &[u8; 8] = b"LIFTCKPT";
/// Bumped whenever the byte layout, or what a state holds, changes; an older
/// checkpoint is then ignored (and the ledger replayed). 2: erasure markers no
/// longer move the state's clock, which a version-1 state may hold moved.
pub const FORMAT_VERSION: u32 = 2;

/// Why a checkpoint cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a checkpoint (bad magic)")]
    Magic,
    #[error("format version {found}, this build reads {FORMAT_VERSION}")]
    Format { found: u32 },
    #[error("written under model {found}, running {expected}")]
    Model { found: String, expected: String },
    #[error("checksum mismatch")]
    Checksum,
    #[error("truncated or malformed at byte {0}")]
    Malformed(usize),
    #[error("inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// What a checkpoint says about itself, readable without decoding the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub format: u32,
    pub model_version: String,
    pub offset: u64,
}

/// Encodes `state` as written under `model_version`.
pub fn encode(state: &State, model_version: &str) -> Vec<u8> {
    let mut w = Writer { buf: Vec::with_capacity(64 + state.event_bytes() / 3) };
    w.buf.extend_from_slice(MAGIC);
    w.buf.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    w.str(model_version);
    w.var(state.offset);
    state.write_columns(&mut w);
    let sum = checksum(&w.buf);
    w.buf.extend_from_slice(&sum.to_le_bytes());
    w.buf
}

/// Reads the header only (no checksum check).
pub fn header(bytes: &[u8]) -> Result<Header, CheckpointError> {
    let mut r = Reader { b: bytes, pos: 0 };
    if r.take(8)? != MAGIC {
        return Err(CheckpointError::Magic);
    }
    let format = u32::from_le_bytes(r.take(4)?.try_into().map_err(|_| CheckpointError::Malformed(8))?);
    if format != FORMAT_VERSION {
        return Err(CheckpointError::Format { found: format });
    }
    let model_version = r.string()?;
    let offset = r.var()?;
    Ok(Header { format, model_version, offset })
}

/// Decodes a checkpoint written under `model_version` by this format version.
pub fn decode(bytes: &[u8], model_version: &str) -> Result<State, CheckpointError> {
    let h = header(bytes)?;
    if h.model_version != model_version {
        return Err(CheckpointError::Model { found: h.model_version, expected: model_version.to_owned() });
    }
    let Some(body_end) = bytes.len().checked_sub(8) else { return Err(CheckpointError::Malformed(bytes.len())) };
    let (body, tail) = bytes.split_at(body_end);
    let stored = u64::from_le_bytes(tail.try_into().map_err(|_| CheckpointError::Malformed(body_end))?);
    if checksum(body) != stored {
        return Err(CheckpointError::Checksum);
    }
    let mut r = Reader { b: body, pos: 0 };
    header_skip(&mut r)?;
    let state = State::read_columns(&mut r)?;
    if r.pos != body.len() {
        return Err(CheckpointError::Malformed(r.pos));
    }
    if state.offset != h.offset {
        return Err(CheckpointError::Inconsistent("header offset differs from the state's"));
    }
    Ok(state)
}

fn header_skip(r: &mut Reader<'_>) -> Result<(), CheckpointError> {
    r.take(12)?;
    r.string()?;
    r.var()?;
    Ok(())
}

/// A fast 64-bit checksum over 8-byte words (multiply–xorshift mixing):
/// it detects truncation and corruption, it is not a cryptographic hash.
fn checksum(b: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = b.len() as u64 ^ K;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(K);
        h ^= h >> 29;
    }
    for &x in chunks.remainder() {
        h = (h ^ u64::from(x)).wrapping_mul(K);
        h ^= h >> 29;
    }
    h
}

pub(super) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(super) fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    pub(super) fn zig(&mut self, v: i64) {
        self.var(((v << 1) ^ (v >> 63)) as u64);
    }
    pub(super) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(super) fn str(&mut self, s: &str) {
        self.var(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }
    /// A node or post id where `NONE` is allowed: stored as id + 1, 0 for none.
    pub(super) fn opt_id(&mut self, v: u32) {
        self.var(if v == NONE { 0 } else { u64::from(v) + 1 });
    }
}

pub(super) struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CheckpointError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.b.len()).ok_or(CheckpointError::Malformed(self.pos))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub(super) fn var(&mut self) -> Result<u64, CheckpointError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.pos).ok_or(CheckpointError::Malformed(self.pos))?;
            self.pos += 1;
            v |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CheckpointError::Malformed(self.pos))
    }
    pub(super) fn zig(&mut self) -> Result<i64, CheckpointError> {
        let v = self.var()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    pub(super) fn u8(&mut self) -> Result<u8, CheckpointError> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn u32(&mut self) -> Result<u32, CheckpointError> {
        let at = self.pos;
        u32::try_from(self.var()?).map_err(|_| CheckpointError::Malformed(at))
    }
    pub(super) fn string(&mut self) -> Result<String, CheckpointError> {
        let at = self.pos;
        let n = usize::try_from(self.var()?).map_err(|_| CheckpointError::Malformed(at))?;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| CheckpointError::Malformed(at))
    }
    /// A count of items that each take at least one byte: bounded by what is left,
    /// so a corrupt count cannot make us allocate more than the input.
    pub(super) fn count(&mut self) -> Result<usize, CheckpointError> {
        let at = self.pos;
        let n = usize::try_from(self.var()?).map_err(|_| CheckpointError::Malformed(at))?;
        if n > self.b.len() - self.pos {
            return Err(CheckpointError::Malformed(at));
        }
        Ok(n)
    }
    pub(super) fn opt_id(&mut self) -> Result<u32, CheckpointError> {
        let at = self.pos;
        match self.var()? {
            0 => Ok(NONE),
            v => u32::try_from(v - 1).ok().filter(|x| *x != NONE).ok_or(CheckpointError::Malformed(at)),
        }
    }
}

fn kind_code(k: EngagementKind) -> u8 {
    match k {
        EngagementKind::Repost => 0,
        EngagementKind::Quote => 1,
        EngagementKind::Reply => 2,
        EngagementKind::Like => 3,
        EngagementKind::Mention => 4,
    }
}

fn kind_of(c: u8, at: usize) -> Result<EngagementKind, CheckpointError> {
    Ok(match c {
        0 => EngagementKind::Repost,
        1 => EngagementKind::Quote,
        2 => EngagementKind::Reply,
        3 => EngagementKind::Like,
        4 => EngagementKind::Mention,
        _ => return Err(CheckpointError::Malformed(at)),
    })
}

fn outcome_code(k: OutcomeKind) -> u8 {
    match k {
        OutcomeKind::Click => 0,
        OutcomeKind::Session { bounced: false } => 1,
        OutcomeKind::Session { bounced: true } => 2,
        OutcomeKind::Conversion => 3,
        OutcomeKind::CodeConversion => 4,
    }
}

fn outcome_of(c: u8, at: usize) -> Result<OutcomeKind, CheckpointError> {
    Ok(match c {
        0 => OutcomeKind::Click,
        1 => OutcomeKind::Session { bounced: false },
        2 => OutcomeKind::Session { bounced: true },
        3 => OutcomeKind::Conversion,
        4 => OutcomeKind::CodeConversion,
        _ => return Err(CheckpointError::Malformed(at)),
    })
}

/// Delta coder for the (offset, time) pair every event record carries.
#[derive(Default)]
struct Clock {
    offset: u64,
    at: Micros,
}

impl Clock {
    fn write(&mut self, w: &mut Writer, offset: u64, at: Micros) {
        w.zig(offset.wrapping_sub(self.offset) as i64);
        w.zig(at.wrapping_sub(self.at));
        self.offset = offset;
        self.at = at;
    }
    fn read(&mut self, r: &mut Reader<'_>) -> Result<(u64, Micros), CheckpointError> {
        self.offset = self.offset.wrapping_add(r.zig()? as u64);
        self.at = self.at.wrapping_add(r.zig()?);
        Ok((self.offset, self.at))
    }
}

impl State {
    fn write_columns(&self, w: &mut Writer) {
        w.var(self.accounts.len() as u64);
        for a in &self.accounts {
            w.str(&a.id.network);
            w.str(&a.id.id);
            w.str(&a.handle);
            w.var(a.reported_followers);
            match a.created_at {
                Some(t) => {
                    w.u8(1);
                    w.zig(t);
                }
                None => w.u8(0),
            }
        }
        let post_ids = self.post_ids();
        w.var(self.posts.len() as u64);
        for (p, id) in self.posts.iter().zip(&post_ids) {
            w.str(id);
            w.opt_id(p.author);
            w.zig(p.at);
            w.var(p.offset);
            w.var(p.topics.len() as u64);
            for &t in &p.topics {
                w.var(u64::from(t));
            }
        }
        w.var(self.topics.len() as u64);
        for t in &self.topics {
            w.str(t);
        }
        let mut c = Clock::default();
        w.var(self.engagements.len() as u64);
        for e in &self.engagements {
            c.write(w, e.offset, e.at);
            w.var(u64::from(e.actor));
            w.opt_id(e.target);
            w.opt_id(e.post);
            w.u8(kind_code(e.kind));
        }
        let mut c = Clock::default();
        w.var(self.follows.len() as u64);
        for f in &self.follows {
            c.write(w, f.offset, f.at);
            w.var(u64::from(f.follower));
            w.var(u64::from(f.followee));
            w.u8(u8::from(f.unfollow));
        }
        let mut c = Clock::default();
        w.var(self.outcomes.len() as u64);
        for o in &self.outcomes {
            c.write(w, o.offset, o.at);
            w.var(u64::from(o.owner));
            w.u8(outcome_code(o.kind));
            w.zig(o.value_minor);
        }
        w.var(self.unattributed_outcomes);
        w.var(self.offset);
        w.zig(self.max_time);
        w.var(self.events);
    }

    fn read_columns(r: &mut Reader<'_>) -> Result<State, CheckpointError> {
        let mut s = State::new();
        let n = r.count()?;
        let mut accounts = Vec::with_capacity(n);
        for _ in 0..n {
            let network = r.string()?;
            let id = r.string()?;
            let handle = r.string()?;
            let reported_followers = r.var()?;
            let created_at = match r.u8()? {
                0 => None,
                _ => Some(r.zig()?),
            };
            accounts.push(AccountInfo { id: AccountId::new(network, id), handle, reported_followers, created_at });
        }
        let np = r.count()?;
        let mut posts = Vec::with_capacity(np);
        let mut post_ids = Vec::with_capacity(np);
        for _ in 0..np {
            post_ids.push(r.string()?);
            let author = r.opt_id()?;
            let at = r.zig()?;
            let offset = r.var()?;
            let k = r.count()?;
            let mut topics = Vec::with_capacity(k);
            for _ in 0..k {
                let at = r.pos;
                topics.push(u16::try_from(r.var()?).map_err(|_| CheckpointError::Malformed(at))?);
            }
            posts.push(PostInfo { author, at, offset, topics });
        }
        let nt = r.count()?;
        let mut topics = Vec::with_capacity(nt);
        for _ in 0..nt {
            topics.push(r.string()?);
        }
        let ne = r.count()?;
        s.engagements.reserve_exact(ne);
        let mut c = Clock::default();
        for _ in 0..ne {
            let (offset, at) = c.read(r)?;
            let actor = r.u32()?;
            let target = r.opt_id()?;
            let post = r.opt_id()?;
            let pos = r.pos;
            let kind = kind_of(r.u8()?, pos)?;
            s.engagements.push(EngagementRec { offset, at, actor, target, post, kind });
        }
        let nf = r.count()?;
        s.follows.reserve_exact(nf);
        let mut c = Clock::default();
        for _ in 0..nf {
            let (offset, at) = c.read(r)?;
            let follower = r.u32()?;
            let followee = r.u32()?;
            let unfollow = r.u8()? != 0;
            s.follows.push(FollowRec { offset, at, follower, followee, unfollow });
        }
        let no = r.count()?;
        s.outcomes.reserve_exact(no);
        let mut c = Clock::default();
        for _ in 0..no {
            let (offset, at) = c.read(r)?;
            let owner = r.u32()?;
            let pos = r.pos;
            let kind = outcome_of(r.u8()?, pos)?;
            let value_minor = r.zig()?;
            s.outcomes.push(OutcomeRec { offset, at, owner, kind, value_minor });
        }
        s.unattributed_outcomes = r.var()?;
        s.offset = r.var()?;
        s.max_time = r.zig()?;
        s.events = r.var()?;
        s.restore_columns(accounts, posts, post_ids, topics).map_err(CheckpointError::Inconsistent)?;
        s.check_ids()?;
        Ok(s)
    }

    /// Every stored id points inside its column, so computing over a decoded
    /// state cannot index out of bounds.
    fn check_ids(&self) -> Result<(), CheckpointError> {
        let n = self.accounts.len() as u32;
        let np = self.posts.len() as u32;
        let nt = self.topics.len();
        let node = |x: u32| x < n;
        let opt = |x: u32, len: u32| x == NONE || x < len;
        // `intern_topic` hands out the last id to every topic beyond the u16 range.
        let topic = |t: u16| usize::from(t) < nt || (t == u16::MAX && nt == usize::from(u16::MAX));
        if !self.posts.iter().all(|p| opt(p.author, n) && p.topics.iter().all(|&t| topic(t))) {
            return Err(CheckpointError::Inconsistent("post author or topic out of range"));
        }
        if !self.engagements.iter().all(|e| node(e.actor) && opt(e.target, n) && opt(e.post, np)) {
            return Err(CheckpointError::Inconsistent("engagement id out of range"));
        }
        if !self.follows.iter().all(|f| node(f.follower) && node(f.followee)) {
            return Err(CheckpointError::Inconsistent("follow id out of range"));
        }
        if !self.outcomes.iter().all(|o| node(o.owner)) {
            return Err(CheckpointError::Inconsistent("outcome owner out of range"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::engine::testutil::random_stream;
    use crate::engine::{ModelParams, compute};

    fn state_of(entries: &[lift_domain::LedgerEntry]) -> State {
        let mut s = State::new();
        for e in entries {
            s.apply(e);
        }
        s
    }

    /// Pins the promise a restart relies on: checkpoint at any offset, decode,
    /// replay the tail — the state, and so every score, equals an uninterrupted run's.
    #[test]
    fn restart_from_checkpoint_equals_uninterrupted_run() {
        let p = ModelParams::default();
        let v = p.version();
        let stream = random_stream(11, 60, 1500);
        let full = state_of(&stream);
        let expected = compute(&full, &p);
        for cut in [0, 1, 37, 700, 1499, 1500] {
            let mut s = decode(&encode(&state_of(&stream[..cut]), &v), &v).unwrap();
            for e in &stream[cut..] {
                s.apply(e);
            }
            assert_eq!(s, full, "cut at {cut}");
            let snap = compute(&s, &p);
            assert_eq!(snap.values, expected.values, "cut at {cut}");
            assert_eq!(snap.percentiles, expected.percentiles, "cut at {cut}");
        }
    }

    /// Pins that a checkpoint is compact: well under the in-memory event columns.
    #[test]
    fn encoding_is_compact() {
        let s = state_of(&random_stream(3, 200, 5000));
        let bytes = encode(&s, "m");
        assert!(bytes.len() < s.event_bytes(), "{} bytes for {} bytes of columns", bytes.len(), s.event_bytes());
    }

    /// Pins that a foreign model, another format or damaged bytes are refused, not trusted.
    #[test]
    fn foreign_or_damaged_checkpoints_are_refused() {
        let s = state_of(&random_stream(5, 30, 400));
        let bytes = encode(&s, "model-a");
        assert_eq!(header(&bytes).unwrap().offset, s.offset);
        assert!(matches!(decode(&bytes, "model-b"), Err(CheckpointError::Model { .. })));
        let mut other = bytes.clone();
        other[8] = 99;
        assert_eq!(decode(&other, "model-a"), Err(CheckpointError::Format { found: 99 }));
        let mut flipped = bytes.clone();
        let mid = bytes.len() / 2;
        flipped[mid] ^= 0x10;
        assert_eq!(decode(&flipped, "model-a"), Err(CheckpointError::Checksum));
        assert!(decode(&bytes[..bytes.len() - 1], "model-a").is_err());
        assert_eq!(decode(b"not a checkpoint", "model-a"), Err(CheckpointError::Magic));
        assert!(decode(&[], "model-a").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Pins that decoding arbitrary damage never panics: bytes re-checksummed
        /// after corruption reach the body parser and its range checks.
        #[test]
        fn damaged_bodies_never_panic(seed in 0u64..1000, at in 0usize..10_000, byte in any::<u8>()) {
            let s = state_of(&random_stream(seed, 10, 120));
            let mut bytes = encode(&s, "m");
            let body = bytes.len() - 8;
            let i = 12 + at % (body - 12);
            bytes[i] = byte;
            let sum = checksum(&bytes[..body]);
            bytes[body..].copy_from_slice(&sum.to_le_bytes());
            if let Ok(d) = decode(&bytes, "m") {
                // Whatever decodes is safe to score.
                let _ = compute(&d, &ModelParams::default());
            }
        }
    }
}
