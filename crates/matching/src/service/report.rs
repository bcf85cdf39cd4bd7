//! Report: `GetCampaignReport` answers from the campaign's report aggregate,
//! which the report consumer (`crate::reports`) keeps up to date from the
//! ledger. A call first asks ingestion for the ledger head, then waits (at
//! most `MatchingConfig::report_patience`) until the consumer has committed a
//! position at or past that head with the campaign's aggregate — so a report
//! never misses an event accepted before the call — and answers UNAVAILABLE,
//! saying how far behind the consumer is, if it cannot.
//!
//! [`Matching::campaign_report_rescan`] is the report computed the original
//! way, reading the ledger from the start on every call: the reference that
//! tests and `lift bench report` compare the aggregates with.

use lift_proto::convert::prelude::*;
use std::collections::HashMap;
use std::time::Duration;

use lift_domain::AccountId;
use lift_domain::LedgerEntry;
use lift_domain::campaign::{self as rules, Arm, IssuedOffer, Member, Report, ReportBuilder, ReportSummary};
use lift_proto::ingest::v1 as ipb;
use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use lift_proto::matching::v1 as pb;
use lift_runtime::client::Channel;
use lift_store::DatabaseConnection;
use lift_store::campaigns::{self as repo, CampaignState};
use lift_store::reports as aggregates;

use super::Matching;
use super::campaigns::StoredCampaign;
use crate::Error;
use crate::auth::BrandId;
use crate::convert::TotalsProto;

/// How often a waiting call looks at the committed position (besides being
/// woken by this process's consumer).
const RECHECK: Duration = Duration::from_millis(20);

impl Matching {
    pub async fn campaign_report(
        &self,
        brand: &BrandId,
        req: &pb::GetCampaignReportRequest,
    ) -> Result<pb::GetCampaignReportResponse, Error> {
        let c = self.load(brand, &req.campaign_id).await?;
        offers_offset(&c)?;
        // Every offer and control made before this call (a standing program's
        // latest grants too) is in the report answered.
        let members =
            repo::offers(&self.inner.db, &c.row.id).await?.iter().filter(|r| !r.holdout || r.in_portfolio).count()
                as u64;
        let head = self
            .inner
            .ingest
            .clone()
            .get_ledger_info(ipb::GetLedgerInfoRequest {})
            .await
            .map_err(Error::ingest)?
            .into_inner()
            .head_offset;
        let (position, summary) = self.wait_for_report(&c.row.id, head, members).await?;
        let rows = repo::offers(&self.inner.db, &c.row.id).await?;
        Ok(response(&c, &rows, summary.report(self.inner.cfg.lift_confidence), position))
    }

    /// The committed position (≥ `head`) and the campaign's summary, once the
    /// consumer has them; UNAVAILABLE after `report_patience`.
    #[cfg(test)]
    async fn wait_for_aggregate(&self, id: &str, head: u64) -> Result<(u64, ReportSummary), Error> {
        self.wait_for_report(id, head, 0).await
    }

    /// The committed position (≥ `head`) and the campaign's summary covering
    /// at least `members` offers and controls, once the consumer has them;
    /// UNAVAILABLE after `report_patience`.
    async fn wait_for_report(&self, id: &str, head: u64, members: u64) -> Result<(u64, ReportSummary), Error> {
        let deadline = tokio::time::Instant::now() + self.inner.cfg.report_patience;
        let mut committed = self.inner.reports.committed();
        let mut woke = false;
        loop {
            let cur = aggregates::current(&self.inner.db, id).await?;
            let summary = cur
                .summary
                .as_deref()
                .map(serde_json::from_str::<ReportSummary>)
                .transpose()
                .map_err(|e| Error::Corrupt { id: id.to_owned(), reason: format!("report summary: {e}") })?;
            let covered = summary.as_ref().map(|s| s.members);
            if cur.position >= head
                && let Some(s) = summary.filter(|s| s.members >= members)
            {
                return Ok((cur.position, s));
            }
            if !woke && covered.is_none_or(|n| n < members) {
                // A campaign just offered, or a standing program's new grants:
                // have the consumer take them now.
                self.inner.reports.wake();
                woke = true;
            }
            let wait = async {
                tokio::select! {
                    _ = committed.changed() => {}
                    () = tokio::time::sleep(RECHECK) => {}
                }
            };
            if tokio::time::timeout_at(deadline, wait).await.is_err() {
                let built = match covered {
                    None => " and has not built this campaign's report yet",
                    Some(n) if n < members => " and has not added this campaign's latest offers to its report yet",
                    Some(_) => "",
                };
                return Err(Error::Unavailable(format!(
                    "the report consumer has read the ledger up to offset {} of {head}{built}; retry shortly",
                    cur.position
                )));
            }
        }
    }

    /// The report computed from scratch: the ledger read from the start (social
    /// activity up to the latest member's start, then outcomes after the
    /// earliest's; each member's own start decides what counts for it) into a
    /// new builder.
    pub async fn campaign_report_rescan(
        &self,
        brand: &BrandId,
        req: &pb::GetCampaignReportRequest,
    ) -> Result<pb::GetCampaignReportResponse, Error> {
        let c = self.load(brand, &req.campaign_id).await?;
        let offers_offset = offers_offset(&c)?;
        let rows = repo::offers(&self.inner.db, &c.row.id).await?;
        let members = members_of(&self.inner.db, &c, &rows, offers_offset).await?;
        let mut builder = ReportBuilder::with_members(&c.row.id, &c.spec.currency, &members, offers_offset);
        let (first_start, last_start) = builder.start_range();
        let social = [ipb::EventKind::Post, ipb::EventKind::Engagement, ipb::EventKind::Follow];
        let outcomes = [ipb::EventKind::LinkClick, ipb::EventKind::PageSession, ipb::EventKind::Conversion];
        self.read_ledger(0, &social, Some(last_start), &mut builder).await?;
        let head = self.read_ledger(first_start, &outcomes, None, &mut builder).await?;
        let report = builder.finish(self.inner.cfg.lift_confidence);
        let as_of = head.max(report.head);
        Ok(response(&c, &rows, report, as_of))
    }

    /// Feeds the ledger after `after` (only `kinds`, up to `until`) to the report;
    /// returns the head ingestion reported.
    async fn read_ledger(
        &self,
        after: u64,
        kinds: &[ipb::EventKind],
        until: Option<u64>,
        builder: &mut ReportBuilder,
    ) -> Result<u64, Error> {
        if until.is_some_and(|u| u <= after) {
            return Ok(after);
        }
        let mut stream = self
            .inner
            .ingest
            .clone()
            .subscribe(ipb::SubscribeRequest {
                after_offset: after,
                kinds: kinds.iter().map(|k| *k as i32).collect(),
                stop_at_head: true,
            })
            .await
            .map_err(Error::ingest)?
            .into_inner();
        let mut head = after;
        let mut skipped = 0u64;
        while let Some(msg) = stream.message().await.map_err(Error::ingest)? {
            head = head.max(msg.head_offset);
            for e in &msg.events {
                if until.is_some_and(|u| e.offset > u) {
                    return Ok(head);
                }
                match LedgerEntry::from_proto(e) {
                    Ok(entry) => builder.observe(&entry),
                    Err(_) => skipped += 1,
                }
            }
            if msg.caught_up {
                break;
            }
        }
        if skipped > 0 {
            tracing::warn!(skipped, "ledger events that no longer validate were left out of the report");
        }
        Ok(head)
    }
}

fn offers_offset(c: &StoredCampaign) -> Result<u64, Error> {
    match (c.row.offers_offset, c.row.state) {
        (Some(o), CampaignState::Offered) => Ok(o),
        _ => {
            Err(Error::FailedPrecondition(format!("campaign {} has no offers yet; call CreateOffers first", c.row.id)))
        }
    }
}

/// The report's members: every offer and every held-out portfolio member,
/// each starting at its own grant's ledger head for a standing program, at the
/// campaign's offers offset otherwise.
async fn members_of(
    db: &DatabaseConnection,
    c: &StoredCampaign,
    rows: &[repo::Offer],
    offers_offset: u64,
) -> Result<Vec<Member>, Error> {
    let starts: HashMap<AccountId, u64> = lift_store::standing::starts(db, &c.row.id).await?.into_iter().collect();
    let start = |a: &AccountId| starts.get(a).copied().unwrap_or(offers_offset);
    Ok(rows
        .iter()
        .filter(|r| !r.holdout || r.in_portfolio)
        .map(|r| {
            let arm = if r.holdout {
                Arm::HeldOut(r.account.clone())
            } else {
                Arm::Offered(IssuedOffer {
                    account: r.account.clone(),
                    link: r.link.clone(),
                    code: r.code.clone(),
                    cost: r.cost,
                })
            };
            Member { arm, start: start(&r.account) }
        })
        .collect())
}

/// An offered campaign's report members (`None` if it is not offered or no
/// longer exists), for the report consumer.
pub(crate) async fn report_members(
    db: &DatabaseConnection,
    brand_id: &str,
    campaign_id: &str,
) -> Result<Option<Vec<Member>>, Error> {
    Ok(offered_members(db, brand_id, campaign_id).await?.map(|(_, members, _)| members))
}

/// An offered campaign, its report members and its offers offset.
async fn offered_members(
    db: &DatabaseConnection,
    brand_id: &str,
    campaign_id: &str,
) -> Result<Option<(StoredCampaign, Vec<Member>, u64)>, Error> {
    let Some(row) = repo::get_campaign(db, brand_id, campaign_id).await? else { return Ok(None) };
    let c = StoredCampaign::decode(row)?;
    let Ok(offers_offset) = offers_offset(&c) else { return Ok(None) };
    let rows = repo::offers(db, &c.row.id).await?;
    let members = members_of(db, &c, &rows, offers_offset).await?;
    Ok(Some((c, members, offers_offset)))
}

/// A new, empty report builder for an offered campaign (`None` if it is not
/// offered or no longer exists), for the report consumer.
pub(crate) async fn report_builder(
    db: &DatabaseConnection,
    brand_id: &str,
    campaign_id: &str,
) -> Result<Option<ReportBuilder>, Error> {
    Ok(offered_members(db, brand_id, campaign_id)
        .await?
        .map(|(c, members, offset)| ReportBuilder::with_members(&c.row.id, &c.spec.currency, &members, offset)))
}

/// Feeds `read` every event the reports read ([`ReportBuilder::KINDS`]) from
/// the start of the ledger up to `up_to`, in offset order; returns how many
/// events were read.
pub(crate) async fn read_ledger_to(
    ingest: &IngestServiceClient<Channel>,
    up_to: u64,
    mut read: impl FnMut(&LedgerEntry),
) -> Result<u64, Error> {
    if up_to == 0 {
        return Ok(0);
    }
    let req = ipb::SubscribeRequest {
        after_offset: 0,
        kinds: ReportBuilder::KINDS.iter().map(|k| k.to_proto() as i32).collect(),
        stop_at_head: true,
    };
    let mut stream = ingest.clone().subscribe(req).await.map_err(Error::ingest)?.into_inner();
    let mut n = 0u64;
    while let Some(msg) = stream.message().await.map_err(Error::ingest)? {
        for e in &msg.events {
            if e.offset > up_to {
                return Ok(n);
            }
            n += 1;
            if let Ok(entry) = LedgerEntry::from_proto(e) {
                read(&entry);
            }
        }
        if msg.caught_up {
            break;
        }
    }
    Ok(n)
}

/// Feeds `builder` the ledger from the start up to `up_to` (the kinds reports
/// read); returns how many events were read.
pub(crate) async fn feed_ledger(
    ingest: &IngestServiceClient<Channel>,
    up_to: u64,
    builder: &mut ReportBuilder,
) -> Result<u64, Error> {
    read_ledger_to(ingest, up_to, |e| builder.feed(e)).await
}

fn response(
    c: &StoredCampaign,
    rows: &[repo::Offer],
    report: Report,
    as_of_offset: u64,
) -> pb::GetCampaignReportResponse {
    let creators = rows
        .iter()
        .filter(|r| !r.holdout)
        .map(|r| pb::CreatorReport {
            account: Some(r.account.to_proto()),
            handle: r.handle.clone(),
            link: r.link.clone(),
            totals: Some(report.per_creator.get(&r.account).cloned().unwrap_or_default().to_proto()),
        })
        .collect();
    let l = &report.lift;
    pb::GetCampaignReportResponse {
        campaign: Some(c.to_proto()),
        totals: Some(report.totals.to_proto()),
        creators,
        lift: Some(pb::Lift {
            incremental_per_creator: l.difference,
            lower: l.lower,
            upper: l.upper,
            confidence: l.confidence,
            treated: l.treated,
            holdout: l.holdout,
            metric: rules::LIFT_METRIC.to_owned(),
            unavailable_reason: l.unavailable.clone().unwrap_or_default(),
        }),
        as_of_offset,
        daily: report
            .daily
            .iter()
            .map(|(day, d)| pb::OutcomeDay {
                date: rules::date_of_day(*day),
                clicks: d.clicks,
                sessions: d.sessions,
                bounced: d.bounced,
                conversions: d.conversions,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use lift_domain::campaign::ReportBuilder;
    use lift_proto::ingest::v1::ingest_service_client::IngestServiceClient;
    use lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
    use lift_store::reports::{self as aggregates, Aggregate};

    use crate::{Error, Matching, MatchingConfig};

    /// Pins the bounded wait: an aggregate behind the head is answered
    /// UNAVAILABLE (saying how far it got) after `report_patience`, and served
    /// once its committed position reaches the head.
    #[tokio::test]
    async fn waits_for_the_head_then_gives_up() {
        let db = lift_store::connect("sqlite::memory:").await.expect("db");
        let b = ReportBuilder::new("c1", "EUR", &[], &BTreeSet::new(), 0);
        let agg = Aggregate {
            campaign_id: "c1".into(),
            format_version: crate::reports::FORMAT_VERSION,
            state: serde_json::to_string(&b).expect("state"),
            summary: serde_json::to_string(&b.summary()).expect("summary"),
        };
        assert!(aggregates::commit(&db, 0, 5, &[agg], 1).await.expect("commit"));
        // Nothing listens here: the service's own consumer cannot move the position.
        let dead = lift_runtime::client::with_credentials(
            tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy(),
            lift_runtime::client::Credentials::none(),
        );
        let cfg = MatchingConfig { report_patience: Duration::from_millis(100), ..MatchingConfig::default() };
        let m = Matching::new(db, ScoringServiceClient::new(dead.clone()), IngestServiceClient::new(dead), cfg);
        let (at, _) = m.wait_for_aggregate("c1", 5).await.expect("at the head");
        assert_eq!(at, 5);
        match m.wait_for_aggregate("c1", 10).await {
            Err(Error::Unavailable(msg)) => assert!(msg.contains("offset 5 of 10"), "{msg}"),
            other => panic!("expected UNAVAILABLE, got {other:?}"),
        }
        match m.wait_for_aggregate("c2", 5).await {
            Err(Error::Unavailable(msg)) => assert!(msg.contains("has not built"), "{msg}"),
            other => panic!("expected UNAVAILABLE, got {other:?}"),
        }
    }
}
