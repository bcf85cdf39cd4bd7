//! Report: `GetCampaignReport` reads the ledger from ingestion (social
//! activity up to the offers, outcomes after them) into the domain's
//! `ReportBuilder`, and returns totals per creator and the incremental lift
//! against the holdout.

use std::collections::BTreeSet;

use lift_domain::AccountId;
use lift_domain::LedgerEntry;
use lift_domain::campaign::{self as rules, IssuedOffer, ReportBuilder};
use lift_proto::ingest::v1 as ipb;
use lift_proto::matching::v1 as pb;
use lift_store::campaigns::{self as repo, CampaignState};

use super::Matching;
use crate::Error;
use crate::auth::BrandId;

impl Matching {
    pub async fn campaign_report(
        &self,
        brand: &BrandId,
        req: &pb::GetCampaignReportRequest,
    ) -> Result<pb::GetCampaignReportResponse, Error> {
        let c = self.load(brand, &req.campaign_id).await?;
        let (Some(offers_offset), CampaignState::Offered) = (c.row.offers_offset, c.row.state) else {
            return Err(Error::FailedPrecondition(format!(
                "campaign {} has no offers yet; call CreateOffers first",
                c.row.id
            )));
        };
        let rows = repo::offers(&self.inner.db, &c.row.id).await?;
        let issued: Vec<IssuedOffer> = rows
            .iter()
            .filter(|r| !r.holdout)
            .map(|r| IssuedOffer {
                account: r.account.clone(),
                link: r.link.clone(),
                code: r.code.clone(),
                cost: r.cost,
            })
            .collect();
        let controls: BTreeSet<AccountId> =
            rows.iter().filter(|r| r.holdout && r.in_portfolio).map(|r| r.account.clone()).collect();
        let mut builder = ReportBuilder::new(&c.row.id, &c.spec.currency, &issued, &controls, offers_offset);
        let social = [ipb::EventKind::Post, ipb::EventKind::Engagement, ipb::EventKind::Follow];
        let outcomes = [ipb::EventKind::LinkClick, ipb::EventKind::PageSession, ipb::EventKind::Conversion];
        self.read_ledger(0, &social, Some(offers_offset), &mut builder).await?;
        let head = self.read_ledger(offers_offset, &outcomes, None, &mut builder).await?;
        let report = builder.finish(self.inner.cfg.lift_confidence);
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
        Ok(pb::GetCampaignReportResponse {
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
            as_of_offset: head.max(report.head),
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
        })
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
