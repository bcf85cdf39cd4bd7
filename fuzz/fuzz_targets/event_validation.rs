//! Event validation on arbitrary decoded protos: `Event::from_proto` (what ingestion
//! runs on every event) and `LedgerEntry::from_proto` (what consumers run on every
//! ledger message) must answer Ok or field violations, never panic; an accepted
//! event must survive its own round trip through the wire form.
#![no_main]

use lift_proto::convert::prelude::*;
use libfuzzer_sys::fuzz_target;
use lift_domain::{Event, LedgerEntry, ValidationPolicy};
use lift_proto::ingest::v1 as pb;
use prost::Message;

/// A fixed "now" (2026-11-26), so a run is reproducible.
const NOW_MICROS: i64 = 1_795_651_200_000_000;

fuzz_target!(|data: &[u8]| {
    let policy = ValidationPolicy::at(NOW_MICROS);
    if let Ok(e) = pb::Event::decode(data) {
        match Event::from_proto(&e, &policy) {
            Ok(ev) => {
                // Valid events re-validate identically from their own wire form.
                let again = Event::from_proto(&ev.to_proto(), &policy);
                assert!(again.is_ok(), "a valid event's wire form is invalid: {again:?}");
            }
            Err(violations) => assert!(!violations.is_empty(), "rejected without a reason"),
        }
    }
    if let Ok(le) = pb::LedgerEvent::decode(data) {
        let _ = LedgerEntry::from_proto(&le);
    }
});
