//! Proto decoding of every request a Lift server accepts (what tonic's codec runs
//! on a request body), followed by the validation each server applies first:
//! campaign specs, event kinds, dimensions. Arbitrary bytes must decode to Ok or
//! Err and validate to Ok or violations — never panic.
#![no_main]

use lift_proto::convert::prelude::*;
use libfuzzer_sys::fuzz_target;
use lift_domain::campaign::{CampaignSpec, ScoreCard};
use lift_domain::{Dimension, Event, EventKind, ValidationPolicy};
use lift_proto::{ingest::v1 as ipb, matching::v1 as mpb, scoring::v1 as spb};
use prost::Message;

const NOW_MICROS: i64 = 1_795_651_200_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match which % 12 {
        0 => {
            if let Ok(r) = ipb::IngestBatchRequest::decode(body) {
                let policy = ValidationPolicy::at(NOW_MICROS);
                for e in &r.events {
                    let _ = Event::from_proto(e, &policy);
                }
            }
        }
        1 => {
            if let Ok(r) = ipb::SubscribeRequest::decode(body) {
                for k in r.kinds {
                    let _ = EventKind::from_proto(k);
                }
            }
        }
        2 => {
            let _ = ipb::RegisterLinksRequest::decode(body);
            if let Ok(r) = ipb::IngestStreamRequest::decode(body) {
                let policy = ValidationPolicy::at(NOW_MICROS);
                for e in &r.events {
                    let _ = Event::from_proto(e, &policy);
                }
            }
        }
        3 => {
            let _ = spb::GetScoresRequest::decode(body);
        }
        4 => {
            if let Ok(r) = spb::QueryAccountsRequest::decode(body) {
                let _ = Dimension::from_proto(r.order_by);
                for f in r.filters {
                    let _ = Dimension::from_proto(f.dimension);
                }
            }
        }
        5 => {
            let _ = spb::SelectSeedsRequest::decode(body);
        }
        6 => {
            if let Ok(r) = spb::ExplainScoreChangeRequest::decode(body) {
                let _ = Dimension::from_proto(r.dimension);
            }
        }
        7 => {
            if let Ok(r) = mpb::CreateCampaignRequest::decode(body)
                && let Some(spec) = &r.spec
            {
                if let Ok(s) = CampaignSpec::from_proto(spec) {
                    let _ = s.rules();
                    let _ = s.percentile_filters(5.0);
                }
            }
        }
        8 => {
            let _ = mpb::MatchCampaignRequest::decode(body);
        }
        9 => {
            let _ = mpb::SelectPortfolioRequest::decode(body);
        }
        10 => {
            if let Ok(r) = spb::GetScoresResponse::decode(body) {
                // Matching reads scoring's answers: a peer's bytes are input too.
                for a in &r.accounts {
                    let _ = ScoreCard::from_proto(a);
                }
            }
        }
        _ => {
            let _ = mpb::CreateOffersRequest::decode(body);
            let _ = mpb::GetCampaignReportRequest::decode(body);
        }
    }
});
