//! Erasure and retention on the JetStream ledger.
//!
//! Which events go is decided exactly as on SQL ([`scan`]'s rules, read through
//! the stream); only how they go differs. A stream's messages cannot be
//! rewritten as tombstones, so each one is deleted with erasure (its bytes are
//! overwritten on every replica, its offset stays unused: a gap to every reader,
//! as a SQL tombstone is), after every event up to the head was indexed so a
//! replay stays a duplicate (`crate::ledger::nats`'s erase module says why both
//! hold). Then the subject's links and the erased events' click-index rows are
//! deleted from ingestion's database. This runs in rounds ([`run`]): the long
//! scan of the whole stream, one round for what was appended meanwhile, then,
//! behind the ledger's fence (appenders wait), rounds that each try to append
//! the marker right after the last event scanned — refused if anything was
//! appended since, which the next round scans. Last, the audit row is written
//! in ingestion's database, as on SQL.
//!
//! There is no transaction spanning the stream and the database, so an erasure
//! interrupted part-way (a crash, the stream unavailable) has erased some
//! events and appended no marker: the request failed, and asking again finds
//! what is left, erases it and appends the marker. The marker is appended after
//! every erased message is gone and before the audit row, so a consumer acting
//! on it always replays a ledger without the subject; a crash between marker
//! and audit row leaves the marker (which carries the same hash and count) as
//! the only record of that erasure.

use lift_domain::event::Erasure;
use lift_domain::{Event, EventBody, Micros};
use lift_proto::convert::from_timestamp;
use lift_proto::ingest::v1 as pb;
use lift_store::DatabaseConnection;
use lift_store::links::Link;
use lift_store::privacy::{self as store, Actor, Removed, Subject};

use super::retention::{Retained, actor as retention_actor};
use super::scan::{self, Erased, MARKER_SOURCE, Matcher, Source};
use crate::Error;
use crate::ledger::NatsLedger;
use crate::ledger::nats::MAX_ATTEMPTS;

/// Which events go: those involving a subject (the SQL scan's rules), or those
/// that occurred before a retention cutoff.
enum Finder<'a> {
    Subject { subject: &'a Subject, matcher: Option<Matcher> },
    Expired { cutoff: Micros },
}

impl Finder<'_> {
    /// The offsets in `(after, through]` to erase, and the links to delete.
    async fn find(
        &mut self,
        db: &DatabaseConnection,
        n: &NatsLedger,
        after: u64,
        through: u64,
    ) -> Result<(Vec<u64>, Vec<Link>), Error> {
        let source = Source::<DatabaseConnection>::Nats(n);
        match self {
            Finder::Subject { subject, matcher } => {
                // Links registered to the subject meanwhile go too.
                let links = store::owned_links(db, subject).await?;
                let m = matcher.get_or_insert_with(|| Matcher::new(subject, &links));
                let mut found = Vec::new();
                scan::collect(&source, m, after, through, &mut found).await?;
                Ok((found.iter().map(|e| e.offset).collect(), links))
            }
            Finder::Expired { cutoff } => {
                let cutoff = *cutoff;
                let mut out = Vec::new();
                // The SQL ledger's rule (`lift_store::privacy::expired`): occurred before
                // the cutoff, privacy markers excepted (they name no person, and a
                // consumer catching up must still see that an erasure happened).
                scan::scan(&source, after, through, |e: &pb::LedgerEvent| {
                    let Some(ev) = &e.event else { return };
                    let marker = matches!(ev.kind, Some(pb::event::Kind::Erasure(_)));
                    if !marker && ev.occurred_at.as_ref().and_then(from_timestamp).is_some_and(|t| t < cutoff) {
                        out.push(e.offset);
                    }
                })
                .await?;
                Ok((out, Vec::new()))
            }
        }
    }
}

/// What has been erased so far, and the offset the scans read through.
#[derive(Debug, Default)]
struct Progress {
    offsets: Vec<u64>,
    removed: Removed,
    through: u64,
}

impl Progress {
    /// Indexes up to the head, finds what goes in `(through, head]`, erases the
    /// messages, then deletes their click-index rows and the links.
    async fn round(&mut self, db: &DatabaseConnection, n: &NatsLedger, finder: &mut Finder<'_>) -> Result<(), Error> {
        let head = n.settle().await?;
        let (offsets, links) = finder.find(db, n, self.through, head).await?;
        n.erase(&offsets).await?;
        let r = store::forget(db, &offsets, &links).await?;
        self.removed.links_deleted += r.links_deleted;
        self.removed.clicks_deleted += r.clicks_deleted;
        self.offsets.extend(offsets);
        self.through = head;
        Ok(())
    }
}

/// Erases what `finder` finds and appends `marker(events erased)` right after
/// the last event scanned (see the module docs); the marker's offset, or `None`
/// when nothing was found and `skip_if_none` (then nothing was written).
async fn run(
    db: &DatabaseConnection,
    n: &NatsLedger,
    mut finder: Finder<'_>,
    skip_if_none: bool,
    marker: impl Fn(u64) -> Event,
) -> Result<(Progress, Option<u64>), Error> {
    let mut p = Progress::default();
    // The long scan, then one more round for what was appended meanwhile, both unfenced.
    p.round(db, n, &mut finder).await?;
    if skip_if_none && p.offsets.is_empty() {
        return Ok((p, None));
    }
    p.round(db, n, &mut finder).await?;
    let fence = n.fence().await?;
    let landed = async {
        for _ in 0..MAX_ATTEMPTS {
            if let Some(offset) = n.append_after(&marker(p.offsets.len() as u64), p.through).await? {
                return Ok(offset);
            }
            // Appended since the last round (by a replica that read the mark before the fence).
            p.round(db, n, &mut finder).await?;
        }
        Err(Error::LedgerUnavailable(format!(
            "the ledger moved under this erasure {MAX_ATTEMPTS} times in a row; asking again erases what is left"
        )))
    }
    .await;
    if let Err(e) = n.unfence(fence).await {
        tracing::warn!(error = %e, "lifting the erasure fence");
    }
    Ok((p, Some(landed?)))
}

/// Erases `subject` from the stream and ingestion's database (see the module
/// docs) and records it in the audit log.
pub(crate) async fn erase(
    db: &DatabaseConnection,
    n: &NatsLedger,
    subject: &Subject,
    actor: &Actor,
    now: Micros,
) -> Result<Erased, Error> {
    let subject_hash = subject.hash();
    let finder = Finder::Subject { subject, matcher: None };
    let (p, marker) = run(db, n, finder, false, |count| scan::marker(&subject_hash, count, now)).await?;
    let events_erased = p.offsets.len() as u64;
    store::audit(db, actor, "erase", &subject_hash, events_erased, now).await?;
    Ok(Erased {
        subject_hash,
        events_erased,
        links_deleted: p.removed.links_deleted,
        clicks_deleted: p.removed.clicks_deleted,
        marker_offset: marker.unwrap_or_default(),
    })
}

/// Removes every event that occurred before `cutoff` from the stream, with the
/// erasure machinery above: a marker with `retention_before` set, an audit row
/// with action `retention`. A run that finds nothing writes nothing.
pub(crate) async fn retain(
    db: &DatabaseConnection,
    n: &NatsLedger,
    cutoff: Micros,
    now: Micros,
) -> Result<Retained, Error> {
    let hash = store::retention_hash(cutoff);
    let marker = |events_erased| Event {
        event_id: format!("retention-{cutoff}-{now}"),
        source: MARKER_SOURCE.to_owned(),
        occurred_at: now,
        body: EventBody::Erasure(Erasure { subject_hash: hash.clone(), events_erased, retention_before: Some(cutoff) }),
    };
    let (mut p, marker_offset) = run(db, n, Finder::Expired { cutoff }, true, marker).await?;
    let events_removed = p.offsets.len() as u64;
    if marker_offset.is_some() {
        store::audit(db, &retention_actor(), "retention", &hash, events_removed, now).await?;
    }
    p.offsets.sort_unstable();
    Ok(Retained { cutoff, events_removed, clicks_deleted: p.removed.clicks_deleted, offsets: p.offsets, marker_offset })
}
