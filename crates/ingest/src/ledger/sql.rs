//! The SQL ledger's encoding: `lift_store::ledger` keeps bytes plus indexed
//! columns and does not know the wire format; this module is the one place that
//! encodes events and attributions into those bytes (prost `lift.ingest.v1.Event`
//! and `lift.ingest.v1.Attribution`) and decodes stored rows back, for `Subscribe`,
//! privacy export and erasure, the benchmarks and tests.
//!
//! A row that does not decode is [`lift_store::Error::Corrupt`] at its offset: the
//! database was written by something else.

use lift_proto::convert::prelude::*;

use lift_domain::event::Attribution;
use lift_domain::{Event, EventKind, LedgerEntry};
use lift_proto::ingest::v1 as pb;
use lift_store::ledger::{self, Appender, NewEvent, Outcome, StoredEvent};
use lift_store::{ConnectionTrait, DatabaseConnection, Error};
use prost::Message;

/// `e` as a ledger row: its prost encoding and its indexed columns.
pub fn encode(e: &Event) -> NewEvent {
    NewEvent::new(e, e.to_proto().encode_to_vec())
}

/// The stored form of an event's attribution.
pub fn encode_attribution(a: &Attribution) -> Vec<u8> {
    a.to_proto().encode_to_vec()
}

/// Each event as a ledger row, in order.
pub fn encode_all(events: &[Event]) -> Vec<NewEvent> {
    events.iter().map(encode).collect()
}

/// Each attribution in its stored form, in order.
pub fn encode_attributions(attributions: &[Option<Attribution>]) -> Vec<Option<Vec<u8>>> {
    attributions.iter().map(|a| a.as_ref().map(encode_attribution)).collect()
}

/// A stored row in its wire form, as `Subscribe` sends it.
pub fn decode(row: StoredEvent) -> Result<pb::LedgerEvent, Error> {
    let offset = row.offset;
    let corrupt = |what: &str, e: prost::DecodeError| Error::Corrupt { offset, reason: format!("{what}: {e}") };
    let event = pb::Event::decode(row.body.as_slice()).map_err(|e| corrupt("body", e))?;
    let attribution = row
        .attribution
        .map(|a| pb::Attribution::decode(a.as_slice()))
        .transpose()
        .map_err(|e| corrupt("attribution", e))?;
    Ok(pb::LedgerEvent {
        offset,
        event: Some(event),
        ingested_at: Some(lift_proto::convert::to_timestamp(row.ingested_at)),
        attribution,
    })
}

/// Appends `events` without attribution (see `lift_store::ledger::Appender` for
/// the guarantees).
pub async fn append(db: &DatabaseConnection, events: &[Event]) -> Result<Vec<Outcome>, Error> {
    ledger::append(db, &encode_all(events)).await
}

/// Appends events known to be new, with their attribution (`attributions[i]`
/// belongs to `events[i]`), in one transaction, as bulk loaders do: the number
/// of events written (repeats within `events` are written once) and the head
/// after the commit, or `None`, having written nothing, when some event was
/// stored already.
pub async fn append_new(
    db: &DatabaseConnection,
    events: &[Event],
    attributions: &[Option<Attribution>],
) -> Result<Option<(usize, u64)>, Error> {
    let rows = encode_all(events);
    let mut a = Appender::begin(db).await?;
    let plan = a.plan_new(&rows);
    match a.write_new(&rows, &plan, &encode_attributions(attributions)).await? {
        Some(written) => Ok(Some((written, a.commit().await?))),
        None => Ok(None),
    }
}

/// Up to `limit` live events after `after`, in offset order, only of `kinds` (all
/// when empty), in their wire form — what `Subscribe` sends. Erased events leave
/// gaps (see `lift_store::ledger::read_after`).
pub async fn read_after_wire(
    db: &impl ConnectionTrait,
    after: u64,
    kinds: &[EventKind],
    limit: u32,
) -> Result<Vec<pb::LedgerEvent>, Error> {
    ledger::read_after(db, after, kinds, limit).await?.into_iter().map(decode).collect()
}

/// Like [`read_after_wire`], decoded and validated into domain entries.
pub async fn read_after(
    db: &impl ConnectionTrait,
    after: u64,
    kinds: &[EventKind],
    limit: u32,
) -> Result<Vec<LedgerEntry>, Error> {
    read_after_wire(db, after, kinds, limit)
        .await?
        .iter()
        .map(|e| {
            LedgerEntry::from_proto(e).map_err(|v| Error::Corrupt {
                offset: e.offset,
                reason: v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
