//! Offers after they are issued: `TransitionOffer` moves an offer along its
//! life (`lift_domain::offer`) and records each step on the ledger as an
//! `OfferTransition` event; `ListOffers` reads a campaign's offers back;
//! `WatchOffers` follows the steps of a brand's campaigns on the ledger.
//!
//! The offer's row (`campaign_offers.state`) serialises steps: a step is a
//! compare-and-set from the state it leaves, so of two concurrent steps from
//! one state (accept and decline) exactly one wins. The winner then appends
//! its event, with an id derived from campaign, creator and target state, so
//! a repeat is a duplicate on the ledger rather than a second step.
//! `state_offset` is 0 until the ledger has confirmed the step into `state`;
//! a repeat of the step, or the next step, appends a missing one first, so
//! the ledger ends up with every step in order even if a call failed between
//! the two writes.

use lift_proto::convert::prelude::*;
use std::collections::HashMap;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use lift_domain::AccountId;
use lift_domain::offer::{MAX_NOTE_LEN, OfferState, OfferTransition, Step, step};
use lift_domain::time::{self, MICROS_PER_DAY, Micros};
use lift_proto::ingest::v1 as ipb;
use lift_proto::matching::v1 as pb;
use lift_runtime::client::retry_idempotent;
use lift_store::campaigns::{self as repo, CampaignState};
use tonic::Status;

use super::tokens::{decode_offer_token, encode_offer_token};
use super::{Matching, digest};
use crate::Error;
use crate::auth::BrandId;

/// The ledger source of the events matching records.
pub(crate) const SOURCE: &str = "lift-matching";

/// The stream `WatchOffers` answers with.
pub type WatchOffersStream = Pin<Box<dyn Stream<Item = Result<pb::WatchOffersResponse, Status>> + Send>>;

impl Matching {
    pub async fn transition_offer(
        &self,
        brand: &BrandId,
        req: &pb::TransitionOfferRequest,
    ) -> Result<pb::TransitionOfferResponse, Error> {
        let mut v = Vec::new();
        let account = AccountId::from_proto(req.account.as_ref(), "account", &mut v);
        let to = OfferState::from_code(req.to_state).filter(|s| *s != OfferState::Offered);
        if to.is_none() {
            v.push(lift_domain::FieldViolation::new(
                "to_state",
                "must be one of accepted, declined, expired, delivered, redeemed",
            ));
        }
        if req.note.len() > MAX_NOTE_LEN {
            v.push(lift_domain::FieldViolation::new(
                "note",
                format!("is {} bytes long; the limit is {MAX_NOTE_LEN}", req.note.len()),
            ));
        } else if req.note.chars().any(char::is_control) {
            v.push(lift_domain::FieldViolation::new("note", "must not contain control characters"));
        }
        let now = time::now();
        let at = match &req.occurred_at {
            None => Some(now),
            Some(ts) => match lift_proto::convert::from_timestamp(ts) {
                Some(t) if t <= now.saturating_add(MICROS_PER_DAY) && t > 0 => Some(t),
                _ => {
                    v.push(lift_domain::FieldViolation::new(
                        "occurred_at",
                        "must be a valid time after 1970 and at most a day ahead",
                    ));
                    None
                }
            },
        };
        let (Some(account), Some(to), Some(at), true) = (account, to, at, v.is_empty()) else {
            return Err(Error::Invalid(v));
        };
        let c = self.load(brand, &req.campaign_id).await?;
        if c.row.state != CampaignState::Offered {
            return Err(Error::OfferStep {
                subject: format!("campaigns/{}", c.row.id),
                description: format!("campaign {} has not issued its offers yet (CreateOffers)", c.row.id),
            });
        }
        let note = (!req.note.is_empty()).then(|| req.note.clone());
        // A lost compare-and-set means another call moved the offer: judge again
        // against its new state (at most once per state it can pass through).
        for _ in 0..OfferState::ALL.len() {
            let offer = self.offer_row(&c.row.id, &account).await?;
            let cur = offer.state;
            match step(cur, to) {
                Step::Refused => {
                    let allowed: Vec<&str> = cur.next().into_iter().map(OfferState::name).collect();
                    return Err(Error::OfferStep {
                        subject: offer_subject(&c.row.id, &account),
                        description: if allowed.is_empty() {
                            format!("the offer is {cur}, which is final; it cannot become {to}")
                        } else {
                            format!("the offer is {cur}; it can become {}, not {to}", allowed.join(" or "))
                        },
                    });
                }
                Step::AlreadyThere => {
                    let offset = if to == cur && offer.state_offset != 0 {
                        offer.state_offset
                    } else {
                        // Not yet confirmed by the ledger (or an earlier step asked
                        // again): appending it again is a no-op if it is there.
                        let from = to.predecessor().unwrap_or(OfferState::Offered);
                        let t = transition(&c.row.id, &account, from, to, note.clone());
                        let offset = self.append(&t, at).await?;
                        if to == cur {
                            repo::set_offer_offset(&self.inner.db, &c.row.id, &account, to, offset).await?;
                        }
                        offset
                    };
                    let now = self.offer_row(&c.row.id, &account).await?;
                    return Ok(pb::TransitionOfferResponse {
                        offer: Some(offer_to_proto(&now)),
                        changed: false,
                        ledger_offset: offset,
                    });
                }
                Step::Move { from, to } => {
                    if !repo::move_offer(&self.inner.db, &c.row.id, &account, from, to).await? {
                        continue;
                    }
                    if from != OfferState::Offered && offer.state_offset == 0 {
                        let prev = from.predecessor().unwrap_or(OfferState::Offered);
                        self.append(&transition(&c.row.id, &account, prev, from, None), at).await?;
                    }
                    let offset = self.append(&transition(&c.row.id, &account, from, to, note), at).await?;
                    repo::set_offer_offset(&self.inner.db, &c.row.id, &account, to, offset).await?;
                    tracing::info!(campaign = %c.row.id, creator = %account, %from, %to, offset, "offer moved");
                    let now = self.offer_row(&c.row.id, &account).await?;
                    return Ok(pb::TransitionOfferResponse {
                        offer: Some(offer_to_proto(&now)),
                        changed: true,
                        ledger_offset: offset,
                    });
                }
            }
        }
        Err(Error::Internal(format!(
            "offer {} kept changing under TransitionOffer",
            offer_subject(&c.row.id, &account)
        )))
    }

    pub async fn list_offers(
        &self,
        brand: &BrandId,
        req: &pb::ListOffersRequest,
    ) -> Result<pb::ListOffersResponse, Error> {
        let after = if req.page_token.is_empty() { None } else { Some(decode_offer_token(&req.page_token)?) };
        let c = self.load(brand, &req.campaign_id).await?;
        let size = self.page_size(req.page_size) as usize;
        let mut offers = repo::offers_page(&self.inner.db, &c.row.id, after.as_ref(), size as u64 + 1).await?;
        let more = offers.len() > size;
        offers.truncate(size);
        let next_page_token = match offers.last() {
            Some(last) if more => encode_offer_token(&last.account),
            _ => String::new(),
        };
        Ok(pb::ListOffersResponse { offers: offers.iter().map(offer_to_proto).collect(), next_page_token })
    }

    /// Follows ingestion's ledger (offer transitions only) and passes on those of
    /// the brand's campaigns (or of one of them).
    pub async fn watch_offers(
        &self,
        brand: &BrandId,
        req: &pb::WatchOffersRequest,
    ) -> Result<WatchOffersStream, Error> {
        let only =
            if req.campaign_id.is_empty() { None } else { Some(self.load(brand, &req.campaign_id).await?.row.id) };
        let sub = ipb::SubscribeRequest {
            after_offset: req.after_offset,
            kinds: vec![ipb::EventKind::OfferTransition as i32],
            stop_at_head: false,
        };
        let mut upstream = self.inner.ingest.clone().subscribe(sub).await.map_err(Error::ingest)?.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::WatchOffersResponse, Status>>(16);
        let (db, brand, after) = (self.inner.db.clone(), brand.clone(), req.after_offset);
        tokio::spawn(async move {
            // Whether each campaign seen on the ledger is this brand's.
            let mut ours: HashMap<String, bool> = HashMap::new();
            if let Some(id) = &only {
                ours.insert(id.clone(), true);
            }
            let mut told_caught_up = false;
            let mut position = after;
            loop {
                let msg = tokio::select! {
                    m = upstream.next() => m,
                    () = tx.closed() => return,
                };
                let msg = match msg {
                    None => return,
                    Some(Err(s)) => {
                        let _ = tx.send(Err(Status::from(Error::ingest(s)))).await;
                        return;
                    }
                    Some(Ok(m)) => m,
                };
                let mut events = Vec::new();
                for le in &msg.events {
                    position = position.max(le.offset);
                    // Only what matching recorded (see docs/security.md on producer keys).
                    let Some(ipb::event::Kind::Offer(o)) =
                        le.event.as_ref().filter(|e| e.source == SOURCE).and_then(|e| e.kind.as_ref())
                    else {
                        continue;
                    };
                    if only.as_ref().is_some_and(|id| *id != o.campaign_id) {
                        continue;
                    }
                    let mine = match ours.get(&o.campaign_id) {
                        Some(m) => *m,
                        None => {
                            let m = match repo::get_campaign(&db, &brand.0, &o.campaign_id).await {
                                Ok(c) => c.is_some(),
                                Err(e) => {
                                    let _ = tx.send(Err(Status::from(Error::Store(e)))).await;
                                    return;
                                }
                            };
                            ours.insert(o.campaign_id.clone(), m);
                            m
                        }
                    };
                    if mine {
                        events.push(offer_event(le.offset, le.event.as_ref().and_then(|e| e.occurred_at), o));
                    }
                }
                if msg.caught_up {
                    position = position.max(msg.head_offset);
                }
                let first_catch_up = msg.caught_up && !told_caught_up;
                if events.is_empty() && !first_catch_up {
                    continue;
                }
                told_caught_up |= msg.caught_up;
                let out = pb::WatchOffersResponse { events, head_offset: position, caught_up: told_caught_up };
                if tx.send(Ok(out)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })))
    }

    async fn offer_row(&self, campaign: &str, account: &AccountId) -> Result<repo::Offer, Error> {
        let offer = repo::offer(&self.inner.db, campaign, account)
            .await?
            .ok_or_else(|| Error::OfferNotFound { campaign: campaign.to_owned(), account: account.to_string() })?;
        if offer.holdout {
            return Err(Error::OfferStep {
                subject: offer_subject(campaign, account),
                description: format!("{account} is held out of campaign {campaign}: no offer was made"),
            });
        }
        Ok(offer)
    }

    /// Appends one transition to the ledger and returns its offset (the first
    /// one's, if the ledger already holds it).
    async fn append(&self, t: &OfferTransition, at: Micros) -> Result<u64, Error> {
        let d = digest(&[&t.campaign_id, &t.creator.network, &t.creator.id]);
        let event = ipb::Event {
            event_id: format!("offer-{}-{}", hex::encode(&d[..16]), t.to.name()),
            source: SOURCE.to_owned(),
            occurred_at: Some(lift_proto::convert::to_timestamp(at)),
            kind: Some(ipb::event::Kind::Offer(t.to_proto())),
        };
        let req = ipb::IngestBatchRequest { events: vec![event] };
        let ingest = self.inner.ingest.clone();
        let resp = retry_idempotent(&self.inner.retry, "IngestBatch", || {
            let (mut c, r) = (ingest.clone(), req.clone());
            async move { c.ingest_batch(r).await }
        })
        .await
        .map_err(Error::ingest)?
        .into_inner();
        match resp.results.first() {
            Some(r)
                if r.outcome == ipb::EventOutcome::Accepted as i32
                    || r.outcome == ipb::EventOutcome::Duplicate as i32 =>
            {
                Ok(r.offset)
            }
            other => Err(Error::Internal(format!("ingestion did not store an offer transition: {other:?}"))),
        }
    }
}

fn transition(
    campaign: &str,
    account: &AccountId,
    from: OfferState,
    to: OfferState,
    note: Option<String>,
) -> OfferTransition {
    OfferTransition { campaign_id: campaign.to_owned(), creator: account.clone(), from, to, note }
}

fn offer_subject(campaign: &str, account: &AccountId) -> String {
    format!("campaigns/{campaign}/offers/{account}")
}

pub(super) fn offer_to_proto(r: &repo::Offer) -> pb::Offer {
    pb::Offer {
        account: Some(r.account.to_proto()),
        link: r.link.clone(),
        code: r.code.clone(),
        holdout: r.holdout,
        state: if r.holdout { ipb::OfferState::Unspecified } else { r.state.to_proto() } as i32,
        state_offset: r.state_offset,
        handle: r.handle.clone(),
        cost: r.cost,
        in_portfolio: r.in_portfolio,
    }
}

/// An offer transition recorded on the ledger at `offset`, as `WatchOffers`
/// and matching's privacy export show it.
pub(super) fn offer_event(
    offset: u64,
    occurred_at: Option<lift_proto::Timestamp>,
    o: &ipb::OfferTransition,
) -> pb::OfferEvent {
    pb::OfferEvent {
        ledger_offset: offset,
        campaign_id: o.campaign_id.clone(),
        account: o.creator.clone(),
        from_state: o.from_state,
        to_state: o.to_state,
        note: o.note.clone(),
        occurred_at,
    }
}
