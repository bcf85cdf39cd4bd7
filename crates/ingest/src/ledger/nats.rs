//! The ledger on a NATS JetStream stream.
//!
//! # Layout
//! One stream (default `LIFT_LEDGER`, subjects `lift.ledger.<kind code>`), file
//! storage, R3 by default (`?replicas=1` for a single server). The stream
//! sequence *is* the ledger offset: dense, from 1, in commit order. Messages are
//! only ever removed by privacy erasure or retention ([`erase`]), which leaves
//! their offsets unused: a gap to every reader, as the SQL ledger's tombstones
//! are. `Subscribe` reads after an offset through a short-lived consumer filtered
//! by kind subjects, so resuming at `after_offset` neither skips nor repeats a
//! stored event. Each message carries a `pb::LedgerEvent` (offset 0; the stream
//! sequence supplies it) and a `Lift-Key` header: the event's idempotency key.
//!
//! # Idempotent on (source, event_id), without a time window
//! JetStream's message-id dedupe forgets after its window, so it is not used.
//! Instead a KV bucket (`<stream>_IDS`, same replicas) maps
//! `sha256(source, event_id)` → offset, and `indexed` → the offset up to which
//! every stored event is in that map. An append:
//! 1. reads the stream's last sequence `head`, and indexes any stored event
//!    after `indexed` up to `head` (reading its `Lift-Key`), then raises `indexed`;
//! 2. looks every key up (read from the index stream's leader, never by direct
//!    get, which a lagging replica may answer): found → `Duplicate(offset)`;
//!    repeated within the batch →
//!    the first one's offset; the rest get `head+1, head+2, …`;
//! 3. publishes the new events as one JetStream atomic batch (≤ [`BATCH_MAX`]
//!    messages) whose first message says `Nats-Expected-Last-Sequence: head`. It
//!    is stored whole or not at all, and only if nothing was appended since step 1
//!    — so at the moment it lands, the index covered the whole stream and none of
//!    its keys was there: no event is ever stored twice;
//! 4. writes the new keys and raises `indexed`, then records the batch's clicks.
//!
//! If another appender won the race, step 3 fails with a wrong last sequence
//! and the append starts again at 1 (bounded by [`MAX_ATTEMPTS`]); the other
//! appender's events are then indexed (or found indexed) and answered as
//! duplicates where they match. Crash windows: a crash before step 3 stored
//! nothing; a crash between 3 and 4 leaves stored events unindexed, and the next
//! append (by anyone) indexes them in step 1 before deciding anything — a retried
//! batch is then answered as duplicates with the offsets first given. A lost
//! acknowledgement of step 3 is the same case: the retry sees the events stored.
//!
//! # Attribution
//! The link registry and the click index stay in the SQL database. Attribution
//! is computed in step 2 from the registry and the clicks recorded so far, and
//! the click index is written in step 4, while this process's appends are queued
//! behind one another (the service's append lock). With several ingestion
//! replicas, a conversion appended by one replica may not see a click another
//! replica published a few milliseconds earlier but has not yet recorded; and a
//! crash between steps 3 and 4 leaves that batch's clicks out of the click
//! index (the click events themselves are in the ledger). Both only make a
//! later conversion `UNATTRIBUTED` instead of `CLICK`; nothing is credited
//! wrongly, and every consumer reads the same stored answer.

mod erase;
mod mark;

use lift_proto::convert::prelude::*;
use std::collections::HashMap;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::{NATS_BATCH_COMMIT, NATS_BATCH_ID, NATS_BATCH_SEQUENCE, NATS_EXPECTED_LAST_SEQUENCE};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, RawMessageErrorKind};
use async_nats::jetstream::{self, kv, stream};
use futures::{StreamExt, TryStreamExt, stream as fstream};
use lift_domain::event::Attribution;
use lift_domain::{Event, EventKind};
use lift_proto::ingest::v1 as pb;
use lift_store::DatabaseConnection;
use lift_store::ledger::Outcome;
use lift_store::links::{self, Click};
use prost::Message;
use sha2::{Digest, Sha256};

use self::mark::Mark;
use crate::{Error, attribution};

/// Most messages in one atomic batch (the server's limit is 1,000).
pub const BATCH_MAX: usize = 500;
/// Appends retried after losing a race to another appender before giving up.
pub const MAX_ATTEMPTS: usize = 32;
/// How long one ledger read may wait for JetStream before it is answered UNAVAILABLE.
const READ_STALL: Duration = Duration::from_secs(10);
/// Index lookups and writes in flight at once.
const CONCURRENCY: usize = 64;
/// The idempotency key header.
const KEY_HEADER: &str = "Lift-Key";
/// The header marking a KV delete or purge.
const KV_OPERATION: &str = "KV-Operation";
/// The index key holding the offset up to which every event is indexed.
const INDEXED: &str = "indexed";

/// Where the JetStream ledger is and how it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSettings {
    /// The server URL(s) without Lift's query parameters, e.g. `nats://a:4222,nats://b:4222`.
    pub servers: String,
    /// The stream's name; the index bucket is `<stream>_IDS`.
    pub stream: String,
    /// Replicas of the stream and the index when Lift creates them (3 unless given).
    pub replicas: usize,
}

impl NatsSettings {
    /// Parses `nats://host:port[,nats://…][?replicas=N&stream=NAME]`.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let bad = |reason: String| Error::LedgerConfig(format!("ledger URL {url:?}: {reason}"));
        let (servers, query) = url.split_once('?').unwrap_or((url, ""));
        if !servers.split(',').all(|s| s.starts_with("nats://") || s.starts_with("tls://")) {
            return Err(bad("expected nats://host:port".into()));
        }
        for server in servers.split(',') {
            if let Err(e) = server.parse::<async_nats::ServerAddr>() {
                return Err(bad(format!("{server:?}: {e}")));
            }
        }
        let mut out = NatsSettings { servers: servers.to_owned(), stream: "LIFT_LEDGER".into(), replicas: 3 };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("replicas", n)) => {
                    out.replicas = match n.parse() {
                        Ok(r @ 1..=5) => r,
                        _ => return Err(bad(format!("replicas={n}: expected 1 to 5"))),
                    }
                }
                Some(("stream", s))
                    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                {
                    out.stream = s.to_owned();
                }
                _ => return Err(bad(format!("unknown or malformed parameter {pair:?} (replicas, stream)"))),
            }
        }
        Ok(out)
    }
}

/// The ledger on JetStream; see the module documentation for the guarantees.
#[derive(Debug)]
pub struct NatsLedger {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    ids: kv::Store,
    subject_prefix: String,
}

impl NatsLedger {
    /// Connects, and creates the stream and its index if they do not exist (an
    /// existing stream keeps its configuration, replicas included).
    pub async fn connect(s: &NatsSettings) -> Result<Self, Error> {
        // A list is several addresses: the client tries them in turn and reconnects to
        // any of them (one string with commas would be parsed as a single address).
        let servers: Vec<&str> = s.servers.split(',').collect();
        let client = async_nats::ConnectOptions::new()
            .name("lift-ingest")
            .connect(servers)
            .await
            .map_err(|e| unavailable("connecting", e))?;
        let js = jetstream::new(client.clone());
        let subject_prefix = format!("lift.ledger.{}", s.stream.to_ascii_lowercase());
        let stream = js
            .get_or_create_stream(stream::Config {
                name: s.stream.clone(),
                subjects: vec![format!("{subject_prefix}.>")],
                storage: stream::StorageType::File,
                num_replicas: s.replicas,
                allow_direct: true,
                allow_atomic_publish: true,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable("creating the ledger stream", e))?;
        if !stream.cached_info().config.allow_atomic_publish {
            return Err(Error::LedgerConfig(format!(
                "stream {} exists without atomic publish; Lift's appends need it (allow_atomic)",
                s.stream
            )));
        }
        if stream.cached_info().config.deny_delete {
            return Err(Error::LedgerConfig(format!(
                "stream {} exists with message deletes denied (deny_delete); privacy erasure and retention erase messages",
                s.stream
            )));
        }
        let bucket = format!("{}_IDS", s.stream);
        let ids = match js.get_key_value(&bucket).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    history: 1,
                    storage: stream::StorageType::File,
                    num_replicas: s.replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| unavailable("creating the ledger index", e))?,
        };
        Ok(Self { client, js, stream, ids, subject_prefix })
    }

    /// The connection, for tools that publish beside the ledger (the benchmark).
    pub fn client(&self) -> async_nats::Client {
        self.client.clone()
    }

    /// The last offset (0 when empty).
    pub async fn head(&self) -> Result<u64, Error> {
        let info = self.stream.get_info().await.map_err(|e| unavailable("reading the ledger head", e))?;
        Ok(info.state.last_sequence)
    }

    /// Up to `limit` events after `after` (only `kinds`, all when empty), in offset order.
    pub async fn read_after_wire(
        &self,
        after: u64,
        kinds: &[EventKind],
        limit: u32,
    ) -> Result<Vec<pb::LedgerEvent>, Error> {
        let limit = limit.max(1) as usize;
        if after >= self.head().await? {
            return Ok(Vec::new());
        }
        let filter_subjects = if kinds.is_empty() || kinds.len() >= EventKind::ALL.len() {
            Vec::new()
        } else {
            kinds.iter().map(|k| self.subject(*k)).collect()
        };
        let consumer = self
            .stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: after + 1 },
                ack_policy: AckPolicy::None,
                filter_subjects,
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable("opening a ledger reader", e))?;
        let mut out = Vec::with_capacity(limit.min(1024));
        // A pull request is a message to the consumer's leader; while a leader is
        // being elected nobody answers it and the client would wait for ever. A read
        // that stalls is answered UNAVAILABLE instead, so a subscriber resumes from
        // its last offset (as after any other failed read) rather than hang.
        let read = async {
            loop {
                let mut batch = consumer
                    .fetch()
                    .max_messages(limit - out.len())
                    .messages()
                    .await
                    .map_err(|e| unavailable("reading the ledger", e))?;
                let (mut got, mut pending) = (0usize, 0u64);
                while let Some(m) = batch.next().await {
                    let m = m.map_err(|e| unavailable("reading the ledger", e))?;
                    let info = m.info().map_err(|e| unavailable("reading the ledger", e))?;
                    pending = info.pending;
                    out.push(decode(info.stream_sequence, &m.payload)?);
                    got += 1;
                }
                if out.len() >= limit || got == 0 || pending == 0 {
                    return Ok::<_, Error>(());
                }
            }
        };
        let result = match tokio::time::timeout(READ_STALL, read).await {
            Ok(r) => r,
            Err(_) => Err(unavailable("reading the ledger", format!("no answer within {READ_STALL:?}"))),
        };
        let name = consumer.cached_info().name.clone();
        if let Err(e) = self.stream.delete_consumer(&name).await {
            // It expires by itself after its inactivity threshold.
            tracing::debug!(error = %e, "deleting a ledger reader");
        }
        result.map(|()| out)
    }

    /// Appends `events` (valid ones) with their attribution; one outcome per event.
    /// Returns the outcomes and the head after the append.
    pub(crate) async fn append(&self, db: &DatabaseConnection, events: &[Event]) -> Result<(Vec<Outcome>, u64), Error> {
        let keys: Vec<String> = events.iter().map(|e| key(&e.source, &e.event_id)).collect();
        // Settled outcomes: stored by this call in an earlier attempt.
        let mut settled: Vec<Option<Outcome>> = vec![None; events.len()];
        let mut attempts = 0;
        let fenced_until = tokio::time::Instant::now() + erase::FENCE_LEASE + Duration::from_secs(1);
        while attempts < MAX_ATTEMPTS {
            let head = self.head().await?;
            if self.catch_up(head).await?.fenced() {
                // An erasure is finishing (see `erase`): wait, bounded by its lease.
                if tokio::time::Instant::now() > fenced_until {
                    return Err(Error::LedgerUnavailable("an erasure holds the ledger longer than its lease".into()));
                }
                tokio::time::sleep(erase::FENCE_POLL).await;
                continue;
            }
            attempts += 1;
            let found = self.lookup(&keys, &settled).await?;
            let plan = plan(&keys, &settled, &found, head);
            if plan.iter().all(|o| !o.is_accepted()) {
                return Ok((plan, head));
            }
            let (attributions, clicks) = attribution::attribute(db, events, &plan).await?;
            match self.publish(events, &keys, &plan, &attributions, head).await? {
                Published::All(new_head) => {
                    self.index(&keys, &plan, new_head).await?;
                    links::record_clicks(db, &clicks).await?;
                    return Ok((plan, new_head));
                }
                Published::Prefix(new_head) => {
                    // Another appender took the next offsets; keep what was stored.
                    self.index(&keys, &plan, new_head).await?;
                    let done: Vec<Click> = clicks.into_iter().filter(|c| c.offset <= new_head).collect();
                    links::record_clicks(db, &done).await?;
                    for (s, o) in settled.iter_mut().zip(&plan) {
                        if o.offset() <= new_head && s.is_none() {
                            *s = Some(*o);
                        }
                    }
                    metrics::counter!("lift_ledger_append_conflicts_total").increment(1);
                }
            }
        }
        Err(Error::LedgerUnavailable(format!(
            "the ledger moved under this append {MAX_ATTEMPTS} times in a row (heavy contention)"
        )))
    }

    fn subject(&self, kind: EventKind) -> String {
        format!("{}.{}", self.subject_prefix, kind.code())
    }

    /// Publishes the accepted events of `plan` as atomic batches after `head`.
    async fn publish(
        &self,
        events: &[Event],
        keys: &[String],
        plan: &[Outcome],
        attributions: &[Option<Attribution>],
        head: u64,
    ) -> Result<Published, Error> {
        let ingested_at = Some(lift_proto::convert::to_timestamp(lift_domain::time::now()));
        let new: Vec<usize> = (0..events.len()).filter(|&i| plan[i].is_accepted()).collect();
        let mut last = head;
        for (n, chunk) in new.chunks(BATCH_MAX).enumerate() {
            let batch_id = format!("{}-{head}-{n}", self.client.new_inbox().rsplit('.').next().unwrap_or("lift"));
            for (j, &i) in chunk.iter().enumerate() {
                let body = pb::LedgerEvent {
                    offset: 0,
                    event: Some(events[i].to_proto()),
                    ingested_at,
                    attribution: attributions.get(i).and_then(Option::as_ref).map(Attribution::to_proto),
                };
                let mut h = HeaderMap::new();
                h.insert(KEY_HEADER, keys[i].as_str());
                h.insert(NATS_BATCH_ID, batch_id.as_str());
                h.insert(NATS_BATCH_SEQUENCE, (j + 1).to_string());
                if j == 0 {
                    h.insert(NATS_EXPECTED_LAST_SEQUENCE, last.to_string());
                }
                let subject = self.subject(events[i].kind());
                let payload = body.encode_to_vec().into();
                if j + 1 < chunk.len() {
                    self.client
                        .publish_with_headers(subject, h, payload)
                        .await
                        .map_err(|e| unavailable("publishing to the ledger", e))?;
                    continue;
                }
                h.insert(NATS_BATCH_COMMIT, "1");
                let ack = self
                    .js
                    .send_publish(subject, PublishMessage::build().headers(h).payload(payload))
                    .await
                    .map_err(|e| unavailable("publishing to the ledger", e))?
                    .await;
                match ack {
                    Ok(ack) if ack.sequence == last + chunk.len() as u64 => last = ack.sequence,
                    Ok(ack) => {
                        return Err(Error::Store(lift_store::Error::Corrupt {
                            offset: ack.sequence,
                            reason: format!("a batch of {} expected at {} landed elsewhere", chunk.len(), last + 1),
                        }));
                    }
                    Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => return Ok(Published::Prefix(last)),
                    Err(e) => return Err(unavailable("publishing to the ledger", e)),
                }
            }
        }
        Ok(Published::All(last))
    }

    /// Indexes every stored event after `indexed` up to `head`; returns the
    /// mark as read first (its fence tells appenders to wait, see [`erase`]).
    async fn catch_up(&self, head: u64) -> Result<Mark, Error> {
        let mark = self.indexed().await?;
        let indexed = mark.offset;
        if indexed >= head {
            return Ok(mark);
        }
        let work: Vec<_> = (indexed + 1..=head).map(|seq| self.reindex(seq)).collect();
        fstream::iter(work).buffer_unordered(CONCURRENCY).try_collect::<()>().await?;
        metrics::counter!("lift_ledger_reindexed_total").increment(head - indexed);
        self.raise_indexed(head).await?;
        Ok(mark)
    }

    /// Indexes the stored event at `seq`. An erased offset has no message; its
    /// key was indexed before it was erased (see [`erase`]), so there is nothing to do.
    async fn reindex(&self, seq: u64) -> Result<(), Error> {
        let m = match self.stream.get_raw_message(seq).await {
            Ok(m) => m,
            Err(e) if matches!(e.kind(), RawMessageErrorKind::NoMessageFound) => return Ok(()),
            Err(e) => return Err(unavailable("re-indexing", e)),
        };
        let k = m.headers.get(KEY_HEADER).map(|v| v.as_str().to_owned()).ok_or_else(|| {
            Error::Store(lift_store::Error::Corrupt { offset: seq, reason: "no Lift-Key header".into() })
        })?;
        self.put(&k, seq).await
    }

    /// Writes the keys of the accepted events of `plan` stored at or before
    /// `upto`, then raises `indexed` to `upto`.
    async fn index(&self, keys: &[String], plan: &[Outcome], upto: u64) -> Result<(), Error> {
        let work: Vec<_> = keys
            .iter()
            .zip(plan)
            .filter(|(_, o)| o.is_accepted() && o.offset() <= upto)
            .map(|(k, o)| self.put(k, o.offset()))
            .collect();
        fstream::iter(work).buffer_unordered(CONCURRENCY).try_collect::<()>().await?;
        self.raise_indexed(upto).await
    }

    async fn put(&self, key: &str, offset: u64) -> Result<(), Error> {
        self.ids.put(key, offset.to_string().into()).await.map_err(|e| unavailable("indexing", e))?;
        Ok(())
    }

    /// Stored offsets of the unsettled keys, by index into `keys`.
    async fn lookup(&self, keys: &[String], settled: &[Option<Outcome>]) -> Result<HashMap<usize, u64>, Error> {
        let work: Vec<_> = (0..keys.len()).filter(|&i| settled[i].is_none()).map(|i| self.get(i, &keys[i])).collect();
        let found: Vec<Option<(usize, u64)>> = fstream::iter(work).buffer_unordered(CONCURRENCY).try_collect().await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn get(&self, i: usize, key: &str) -> Result<Option<(usize, u64)>, Error> {
        let v = self.read_key(key, "looking up").await?;
        v.map(|(v, _)| parse_offset(&v).map(|o| (i, o))).transpose()
    }

    /// The `indexed` mark (offset 0, revision 0 when unset).
    async fn indexed(&self) -> Result<Mark, Error> {
        match self.read_key(INDEXED, "reading the index mark").await? {
            Some((v, revision)) => Mark::parse(&v, revision),
            None => Ok(Mark::default()),
        }
    }

    /// Sets `indexed` to `mark` (offset and fence) if its revision is still `revision`.
    async fn write_mark(&self, mark: &Mark, revision: u64) -> bool {
        let value = mark.encode().into();
        if revision == 0 {
            self.ids.create(INDEXED, value).await.is_ok()
        } else {
            self.ids.update(INDEXED, value, revision).await.is_ok()
        }
    }

    /// The latest value of an index key and its revision, answered by the index
    /// stream's leader. Not the bucket's direct get: any replica answers that,
    /// and one that lags (a node back from a partition) misses keys the leader
    /// holds — an append planned on such a read would store an event twice (the
    /// three-node partition test caught it).
    async fn read_key(&self, key: &str, what: &str) -> Result<Option<(bytes::Bytes, u64)>, Error> {
        let subject = format!("{}{key}", self.ids.prefix);
        match self.ids.stream.get_last_raw_message_by_subject(&subject).await {
            // A delete or purge marker carries a KV-Operation header; puts carry none.
            Ok(m) if m.headers.get(KV_OPERATION).is_some() => Ok(None),
            Ok(m) => Ok(Some((m.payload, m.sequence))),
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(None),
            Err(e) => Err(unavailable(what, e)),
        }
    }

    /// Raises `indexed` to `upto` unless it is already there (compare-and-set, so
    /// it never moves back).
    async fn raise_indexed(&self, upto: u64) -> Result<(), Error> {
        for _ in 0..MAX_ATTEMPTS {
            let mark = self.indexed().await?;
            if mark.offset >= upto {
                return Ok(());
            }
            // The fence is carried over (compare-and-set: one set meanwhile is not lost).
            let raised = Mark { offset: upto, fence: mark.fence.filter(|&f| f > lift_domain::time::now()), ..mark };
            if self.write_mark(&raised, mark.revision).await {
                return Ok(());
            }
        }
        Err(Error::LedgerUnavailable("the ledger index mark could not be raised".into()))
    }
}

enum Published {
    /// Every accepted event is stored; the new head.
    All(u64),
    /// The events up to this offset are stored; the rest lost a race.
    Prefix(u64),
}

/// Outcomes: settled ones kept, stored keys duplicates, repeats within the batch
/// duplicates of their first, the rest the next offsets after `head`.
fn plan(keys: &[String], settled: &[Option<Outcome>], found: &HashMap<usize, u64>, head: u64) -> Vec<Outcome> {
    let mut next = head + 1;
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for (k, s) in keys.iter().zip(settled) {
        if let Some(o) = s {
            seen.entry(k.as_str()).or_insert(o.offset());
        }
    }
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            if let Some(o) = settled[i] {
                return o;
            }
            if let Some(&o) = found.get(&i).or_else(|| seen.get(k.as_str())) {
                return Outcome::Duplicate(o);
            }
            let o = next;
            next += 1;
            seen.insert(k.as_str(), o);
            Outcome::Accepted(o)
        })
        .collect()
}

/// The idempotency key of (source, event_id): length-prefixed so no two pairs collide.
fn key(source: &str, event_id: &str) -> String {
    let mut h = Sha256::new();
    h.update((source.len() as u64).to_be_bytes());
    h.update(source.as_bytes());
    h.update(event_id.as_bytes());
    format!("e.{}", hex::encode(h.finalize()))
}

fn parse_offset(v: &[u8]) -> Result<u64, Error> {
    std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).ok_or_else(|| {
        Error::Store(lift_store::Error::Corrupt { offset: 0, reason: "an index entry is not an offset".into() })
    })
}

fn decode(offset: u64, payload: &[u8]) -> Result<pb::LedgerEvent, Error> {
    let mut e = pb::LedgerEvent::decode(payload)
        .map_err(|e| Error::Store(lift_store::Error::Corrupt { offset, reason: format!("message: {e}") }))?;
    e.offset = offset;
    Ok(e)
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::LedgerUnavailable(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the URL grammar: defaults (R3, LIFT_LEDGER), parameters, and clear refusals.
    #[test]
    fn parses_settings() {
        let s = NatsSettings::parse("nats://127.0.0.1:4222").expect("plain");
        assert_eq!((s.servers.as_str(), s.stream.as_str(), s.replicas), ("nats://127.0.0.1:4222", "LIFT_LEDGER", 3));
        let s = NatsSettings::parse("nats://a:1,nats://b:2?replicas=1&stream=L2").expect("params");
        assert_eq!((s.servers.as_str(), s.stream.as_str(), s.replicas), ("nats://a:1,nats://b:2", "L2", 1));
        for bad in [
            "http://x",
            "nats://x?replicas=0",
            "nats://x?replicas=9",
            "nats://x?foo=1",
            "nats://x?stream=a.b",
            "nats://a:1,nats://b:x",
        ] {
            assert!(NatsSettings::parse(bad).is_err(), "{bad}");
        }
    }

    /// Pins planning: stored keys and in-batch repeats are duplicates, settled
    /// outcomes stay, new keys take dense offsets after the head.
    #[test]
    fn plans_dense_offsets() {
        let keys: Vec<String> = ["a", "b", "a", "c", "d"].iter().map(|s| (*s).to_owned()).collect();
        let settled = vec![None, None, None, None, Some(Outcome::Accepted(11))];
        let found = HashMap::from([(1usize, 4u64)]);
        let p = plan(&keys, &settled, &found, 11);
        assert_eq!(
            p,
            vec![
                Outcome::Accepted(12),
                Outcome::Duplicate(4),
                Outcome::Duplicate(12),
                Outcome::Accepted(13),
                Outcome::Accepted(11)
            ]
        );
    }

    /// Pins the key: stable, and (source, id) boundaries matter.
    #[test]
    fn keys_are_unambiguous() {
        assert_eq!(key("s", "1"), key("s", "1"));
        assert_ne!(key("ab", "c"), key("a", "bc"));
        assert!(key("s", "1").starts_with("e.") && key("s", "1").len() == 66);
    }
}
