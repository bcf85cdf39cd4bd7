//! Erasing messages from the JetStream ledger, for privacy erasure and the
//! retention horizon (`crate::privacy`, which decides *which* events go).
//!
//! A stored message cannot be rewritten, but it can be deleted with erasure:
//! JetStream's message delete (`STREAM.MSG.DELETE` without `no_erase`, what
//! `Stream::delete_message` sends) overwrites the message's bytes in the
//! stream's file store with random data, on every replica, and leaves its
//! sequence unused. The ledger's offsets therefore stay where they were — the
//! stream's last sequence never goes back — and every reader sees an erased
//! offset as a gap, exactly as the SQL ledger's readers skip its tombstones.
//!
//! What must hold around it:
//! - **Replays stay duplicates.** The index (`<stream>_IDS`) maps the hash of
//!   `(source, event_id)` to the offset and holds nothing else; an erased
//!   event's entry stays, so a producer replaying it is answered as a duplicate
//!   of its (now empty) offset. Every event up to the head is indexed
//!   ([`NatsLedger::settle`]) before any is erased — a message erased before
//!   its key reached the index could not be re-indexed from the stream, and a
//!   replay would store it again. Re-indexing skips erased offsets.
//! - **Nothing slips past the scan.** The marker that announces an erasure is
//!   published only if the stream's last sequence is still the one the scan
//!   read through ([`NatsLedger::append_after`]): otherwise another replica
//!   appended meanwhile, and the caller scans the new events, erases those
//!   that involve the subject, and tries again. So when the marker lands,
//!   every event before it that involves the subject is gone.
//! - **It finishes on a busy ledger.** Under a steady stream of appends that
//!   condition would rarely hold, so the erasure's last round — scanning what
//!   was appended since its long scan, erasing it, publishing the marker — runs
//!   behind a fence ([`NatsLedger::fence`]): a time in the index's `indexed`
//!   mark, which every appender reads anyway before it decides anything (no
//!   extra round trip), and until which appenders wait. Appenders that read the
//!   mark just before the fence was set land at most one more batch, which the
//!   next round scans. The fence is a lease ([`FENCE_LEASE`]): a crashed
//!   erasure holds appends up that long at most. Correctness never rests on the
//!   fence (clocks may disagree): only on the expected last sequence.

use std::time::Duration;

use async_nats::jetstream::stream::RawMessageErrorKind;
use futures::{StreamExt, TryStreamExt, stream as fstream};
use lift_domain::{Event, Micros};
use lift_store::ledger::Outcome;

use super::{CONCURRENCY, MAX_ATTEMPTS, Mark, NatsLedger, Published, key, unavailable};
use crate::Error;

/// How long a fence holds appenders at most (a crashed erasure's fence expires).
pub(crate) const FENCE_LEASE: Duration = Duration::from_secs(30);
/// How often a fenced appender looks again.
pub(super) const FENCE_POLL: Duration = Duration::from_millis(20);

impl NatsLedger {
    /// Indexes every stored event up to the head and returns that head: from
    /// here on every event up to it may be erased without losing its dedupe
    /// entry.
    pub(crate) async fn settle(&self) -> Result<u64, Error> {
        let head = self.head().await?;
        self.catch_up(head).await?;
        Ok(head)
    }

    /// Deletes the messages at `offsets` with erasure (see the module docs). An
    /// offset already erased (by an earlier, interrupted attempt or by a
    /// concurrent erasure of someone the same event names) counts as done.
    pub(crate) async fn erase(&self, offsets: &[u64]) -> Result<(), Error> {
        let work: Vec<_> = offsets.iter().map(|&seq| self.erase_one(seq)).collect();
        fstream::iter(work).buffer_unordered(CONCURRENCY).try_collect::<()>().await
    }

    async fn erase_one(&self, seq: u64) -> Result<(), Error> {
        let deleted = self.stream.delete_message(seq).await;
        if matches!(deleted, Ok(true)) {
            return Ok(());
        }
        // Refused or unanswered: done only if the message is not there any more.
        match self.stream.get_raw_message(seq).await {
            Err(e) if matches!(e.kind(), RawMessageErrorKind::NoMessageFound) => Ok(()),
            Ok(_) => Err(match deleted {
                Err(e) => unavailable("erasing a ledger message", e),
                Ok(_) => unavailable("erasing a ledger message", format!("offset {seq} was not deleted")),
            }),
            Err(e) => Err(unavailable("erasing a ledger message", e)),
        }
    }

    /// Appends `event` at `after + 1` if the ledger's last offset is still
    /// `after`, and indexes it: its offset, or `None` (nothing stored) when
    /// something was appended since.
    pub(crate) async fn append_after(&self, event: &Event, after: u64) -> Result<Option<u64>, Error> {
        let keys = [key(&event.source, &event.event_id)];
        let plan = [Outcome::Accepted(after + 1)];
        match self.publish(std::slice::from_ref(event), &keys, &plan, &[None], after).await? {
            Published::All(head) => {
                self.index(&keys, &plan, head).await?;
                Ok(Some(after + 1))
            }
            Published::Prefix(_) => Ok(None),
        }
    }

    /// Fences appenders off (see the module docs) until [`FENCE_LEASE`] from
    /// now or [`NatsLedger::unfence`]; waits (bounded by a lease) while another
    /// erasure holds a fence. Returns the fence, to lift it.
    pub(crate) async fn fence(&self) -> Result<Micros, Error> {
        let lease = i64::try_from(FENCE_LEASE.as_micros()).unwrap_or(i64::MAX);
        let deadline = tokio::time::Instant::now() + FENCE_LEASE + Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline {
            let mark = self.indexed().await?;
            if mark.fenced() {
                tokio::time::sleep(FENCE_POLL).await;
                continue;
            }
            let until = lift_domain::time::now().saturating_add(lease);
            if self.write_mark(&Mark { fence: Some(until), ..mark }, mark.revision).await {
                return Ok(until);
            }
        }
        Err(Error::LedgerUnavailable("another erasure holds the ledger's fence".into()))
    }

    /// Lifts `fence` if it is still the index's (an expired one may have been
    /// replaced by another erasure's, or dropped by an appender).
    pub(crate) async fn unfence(&self, fence: Micros) -> Result<(), Error> {
        for _ in 0..MAX_ATTEMPTS {
            let mark = self.indexed().await?;
            if mark.fence != Some(fence) {
                return Ok(());
            }
            if self.write_mark(&Mark { fence: None, ..mark }, mark.revision).await {
                return Ok(());
            }
        }
        Err(Error::LedgerUnavailable("the ledger's fence could not be lifted; it expires with its lease".into()))
    }
}
