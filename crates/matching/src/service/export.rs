//! `MatchingPrivacyService.ExportAccount`: every row of matching's database
//! that names one account, across every brand — the tables
//! `lift_store::matching_erasure` deletes from on an erasure, read instead.
//!
//! In order: recorded eligibility, offers and holdout places, the offer
//! transitions matching recorded on the ledger (read back from ingestion, only
//! when the account was made an offer), rate-card entries, portfolio seats,
//! standing programs' perks, standing recalibrations listing the account, and
//! report states naming it; then a summary counting each. JSON columns
//! (portfolios, recalibration lists, report states) are read whole and
//! searched here, where their format is known; one that does not parse is an
//! error rather than a silent gap in the export.

use lift_proto::convert::prelude::*;
use std::collections::{BTreeMap, HashSet};

use lift_domain::AccountId;
use lift_domain::campaign::ReportSummary;
use lift_proto::ingest::v1 as ipb;
use lift_proto::matching::v1 as pb;
use lift_store::campaigns::Campaign;
use lift_store::matching_export as store;
use serde_json::Value;

use super::Matching;
use super::lifecycle::{SOURCE, offer_event, offer_to_proto};
use super::portfolio::{StoredPortfolio, member_to_proto};
use crate::Error;
use crate::convert::TotalsProto;

type Item = pb::export_account_response::Item;

impl Matching {
    /// Everything matching holds about `a`, ending with the summary.
    pub async fn export_account(&self, a: &AccountId) -> Result<Vec<pb::ExportAccountResponse>, Error> {
        let db = &self.inner.db;
        let campaigns: BTreeMap<String, Campaign> =
            store::campaigns(db).await?.into_iter().map(|c| (c.id.clone(), c)).collect();
        let campaign = |id: &str| match campaigns.get(id) {
            Some(c) => {
                pb::ExportedCampaign { campaign_id: c.id.clone(), brand_id: c.brand_id.clone(), name: c.name.clone() }
            }
            None => pb::ExportedCampaign { campaign_id: id.to_owned(), ..Default::default() },
        };
        let corrupt = |id: &str, what: &str, e: serde_json::Error| Error::Corrupt {
            id: id.to_owned(),
            reason: format!("{what}: {e}"),
        };
        let mut items = Vec::new();
        let mut sum =
            pb::ExportAccountSummary { subject_hash: lift_store::privacy::account_hash(a), ..Default::default() };

        for id in store::eligibility(db, a).await? {
            let model_version = campaigns.get(&id).map(|c| c.model_version.clone()).unwrap_or_default();
            items.push(Item::Eligibility(pb::ExportedEligibility { campaign: Some(campaign(&id)), model_version }));
            sum.eligibility += 1;
        }

        let offers = store::offers(db, a).await?;
        for (id, o) in &offers {
            items.push(Item::Offer(pb::ExportedOffer { campaign: Some(campaign(id)), offer: Some(offer_to_proto(o)) }));
            sum.offers += 1;
        }
        // Only an offer actually made (not a holdout place) can have transitions.
        let made: HashSet<&str> = offers.iter().filter(|(_, o)| !o.holdout).map(|(id, _)| id.as_str()).collect();
        if !made.is_empty() {
            for t in self.offer_transitions(a, &made).await? {
                items.push(Item::OfferTransition(pb::ExportedOfferTransition {
                    campaign: Some(campaign(&t.campaign_id)),
                    transition: Some(t),
                }));
                sum.offer_transitions += 1;
            }
        }

        for (brand_id, r) in store::rates(db, a).await? {
            let entry = pb::RateCardEntry {
                account: Some(r.account.to_proto()),
                rate: r.rate,
                currency: r.currency,
                updated_at: Some(lift_proto::convert::to_timestamp(r.updated_at)),
            };
            items.push(Item::RateCard(pb::ExportedRate { brand_id, entry: Some(entry) }));
            sum.rate_cards += 1;
        }

        for c in campaigns.values() {
            let Some(json) = &c.portfolio else { continue };
            let p: StoredPortfolio = serde_json::from_str(json).map_err(|e| corrupt(&c.id, "portfolio", e))?;
            for m in p.members.iter().filter(|m| &m.account == a) {
                items.push(Item::PortfolioSeat(pb::ExportedPortfolioSeat {
                    campaign: Some(campaign(&c.id)),
                    member: Some(member_to_proto(m)),
                    portfolio_total_cost: p.total_cost,
                    portfolio_members: p.members.len() as u64,
                }));
                sum.portfolio_seats += 1;
            }
        }

        for (id, g) in store::grants(db, a).await? {
            let perk = self.perk_to_proto(&id, &g)?;
            items
                .push(Item::StandingPerk(pb::ExportedStandingPerk { campaign: Some(campaign(&id)), perk: Some(perk) }));
            sum.standing_perks += 1;
        }

        for r in store::recalibrations(db).await? {
            let left: Vec<AccountId> =
                serde_json::from_str(&r.left_accounts).map_err(|e| corrupt(&r.campaign_id, "recalibration list", e))?;
            if left.contains(a) {
                items.push(Item::Recalibration(pb::ExportedRecalibration {
                    campaign: Some(campaign(&r.campaign_id)),
                    from_version: r.from_version,
                    to_version: r.to_version,
                    recorded_at: Some(lift_proto::convert::to_timestamp(r.recorded_at)),
                }));
                sum.recalibrations += 1;
            }
        }

        for agg in lift_store::reports::load_all(db).await? {
            let summary: ReportSummary =
                serde_json::from_str(&agg.summary).map_err(|e| corrupt(&agg.campaign_id, "report summary", e))?;
            let state: Value =
                serde_json::from_str(&agg.state).map_err(|e| corrupt(&agg.campaign_id, "report state", e))?;
            let mut row = report_row(&state, a);
            row.creator_totals = summary.per_creator.get(a).map(TotalsProto::to_proto);
            if row.creator_totals.is_some()
                || !row.creator_role.is_empty()
                || !row.audience_of.is_empty()
                || row.posts + row.visitors + row.audience_orders > 0
            {
                row.campaign = Some(campaign(&agg.campaign_id));
                items.push(Item::ReportRow(row));
                sum.report_rows += 1;
            }
        }

        items.push(Item::Summary(sum));
        Ok(items.into_iter().map(|item| pb::ExportAccountResponse { item: Some(item) }).collect())
    }

    /// Everything matching holds about a visitor: the report states that keep
    /// its id (credited to a creator's link, counted among a creator's unique
    /// visitors), ending with the summary; `subject` is the visitor's hash.
    pub async fn export_visitor(&self, visitor: &str, subject: &str) -> Result<Vec<pb::ExportAccountResponse>, Error> {
        let db = &self.inner.db;
        let campaigns: BTreeMap<String, Campaign> =
            store::campaigns(db).await?.into_iter().map(|c| (c.id.clone(), c)).collect();
        let mut items = Vec::new();
        let mut sum = pb::ExportAccountSummary { subject_hash: subject.to_owned(), ..Default::default() };
        for agg in lift_store::reports::load_all(db).await? {
            let state: Value = serde_json::from_str(&agg.state)
                .map_err(|e| Error::Corrupt { id: agg.campaign_id.clone(), reason: format!("report state: {e}") })?;
            let Some(row) = visitor_row(&state, visitor) else { continue };
            let campaign = match campaigns.get(&agg.campaign_id) {
                Some(c) => pb::ExportedCampaign {
                    campaign_id: c.id.clone(),
                    brand_id: c.brand_id.clone(),
                    name: c.name.clone(),
                },
                None => pb::ExportedCampaign { campaign_id: agg.campaign_id.clone(), ..Default::default() },
            };
            items.push(Item::VisitorRow(pb::ExportedVisitorRow { campaign: Some(campaign), ..row }));
            sum.visitor_rows += 1;
        }
        items.push(Item::Summary(sum));
        Ok(items.into_iter().map(|item| pb::ExportAccountResponse { item: Some(item) }).collect())
    }

    /// The transitions matching recorded on the ledger for `a`'s offers in
    /// `campaigns`: one read of the ledger's offer-transition events.
    async fn offer_transitions(&self, a: &AccountId, campaigns: &HashSet<&str>) -> Result<Vec<pb::OfferEvent>, Error> {
        let req = ipb::SubscribeRequest {
            after_offset: 0,
            kinds: vec![ipb::EventKind::OfferTransition as i32],
            stop_at_head: true,
        };
        let mut stream = self.inner.ingest.clone().subscribe(req).await.map_err(Error::ingest)?.into_inner();
        let mut out = Vec::new();
        while let Some(msg) = stream.message().await.map_err(Error::ingest)? {
            for le in &msg.events {
                let Some(e) = le.event.as_ref().filter(|e| e.source == SOURCE) else { continue };
                let Some(ipb::event::Kind::Offer(o)) = e.kind.as_ref() else { continue };
                let creator = o.creator.as_ref();
                let names = creator.is_some_and(|c| c.network == a.network && c.id == a.id);
                if names && campaigns.contains(o.campaign_id.as_str()) {
                    out.push(offer_event(le.offset, e.occurred_at, o));
                }
            }
            if msg.caught_up {
                break;
            }
        }
        Ok(out)
    }
}

fn account_of(v: &Value) -> Option<AccountId> {
    serde_json::from_value(v.clone()).ok()
}

/// What a report builder's saved state (`lift_domain::campaign::ReportBuilder`,
/// serde) records about `a`: whether it is one of the report's creators, whose
/// audience it is in, its posts and visitors the report keeps, and its
/// audience's orders. Read as JSON so a state of an older format still answers.
fn report_row(state: &Value, a: &AccountId) -> pb::ExportedReportRow {
    let in_set = |key: &str| {
        state.get(key).and_then(Value::as_array).is_some_and(|l| l.iter().any(|x| account_of(x).as_ref() == Some(a)))
    };
    let creator_role = if in_set("treated") {
        "treated"
    } else if in_set("controls") {
        "control"
    } else {
        ""
    };
    // Maps keyed by accounts are saved as lists of [key, value] pairs.
    let pair_value = |key: &str| -> Option<&Value> {
        state.get(key)?.as_array()?.iter().find_map(|p| {
            let p = p.as_array()?;
            (account_of(p.first()?).as_ref() == Some(a)).then(|| p.get(1)).flatten()
        })
    };
    let audience_of = pair_value("audience_of")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(account_of).map(|c| c.to_proto()).collect())
        .unwrap_or_default();
    let audience_orders = pair_value("audience_orders").and_then(Value::as_array).map_or(0, |l| l.len() as u64);
    // Maps keyed by strings (post ids, visitor ids) whose values are accounts.
    let owned = |key: &str| {
        state
            .get(key)
            .and_then(Value::as_object)
            .map_or(0, |m| m.values().filter(|v| account_of(v).as_ref() == Some(a)).count() as u64)
    };
    pb::ExportedReportRow {
        campaign: None,
        creator_totals: None,
        creator_role: creator_role.to_owned(),
        audience_of,
        posts: owned("post_author"),
        visitors: owned("visitor_owner"),
        audience_orders,
    }
}

/// Where a report builder's saved state keeps `visitor`: the creator its click
/// is credited to (`visitor_owner`) and the creators whose unique visitors
/// include it (`per_creator`, saved as [account, tally] pairs); `None` when
/// the state does not keep it.
fn visitor_row(state: &Value, visitor: &str) -> Option<pb::ExportedVisitorRow> {
    let credited_to = state.get("visitor_owner").and_then(|m| m.get(visitor)).and_then(account_of);
    let counted_by: Vec<ipb::AccountRef> = state
        .get("per_creator")
        .and_then(Value::as_array)
        .map(|pairs| {
            pairs
                .iter()
                .filter_map(|p| {
                    let p = p.as_array()?;
                    let visitors = p.get(1)?.get("visitors")?.as_array()?;
                    visitors.iter().any(|x| x.as_str() == Some(visitor)).then(|| account_of(p.first()?)).flatten()
                })
                .map(|a| a.to_proto())
                .collect()
        })
        .unwrap_or_default();
    (credited_to.is_some() || !counted_by.is_empty()).then(|| pb::ExportedVisitorRow {
        campaign: None,
        credited_to: credited_to.map(|a| a.to_proto()),
        counted_by,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use lift_domain::campaign::{IssuedOffer, ReportBuilder};

    use super::*;

    /// Pins the reading of a saved report state: a treated creator is named as
    /// one, a control as a control, and an account named nowhere gets an empty row.
    #[test]
    fn finds_the_account_in_a_saved_report_state() {
        let (anna, bob, cleo) = (AccountId::new("x", "anna"), AccountId::new("x", "bob"), AccountId::new("x", "cleo"));
        let offers = [IssuedOffer { account: anna.clone(), link: "l1".into(), code: "C1".into(), cost: 5 }];
        let b = ReportBuilder::new("c1", "EUR", &offers, &BTreeSet::from([bob.clone()]), 10);
        let state: Value = serde_json::to_value(&b).expect("state");
        assert_eq!(report_row(&state, &anna).creator_role, "treated");
        assert_eq!(report_row(&state, &bob).creator_role, "control");
        let none = report_row(&state, &cleo);
        assert!(none.creator_role.is_empty() && none.audience_of.is_empty(), "{none:?}");
        assert_eq!(none.posts + none.visitors + none.audience_orders, 0);
    }

    /// Pins the reading of where a saved report state keeps a visitor id: the
    /// creator the click was credited to, and the creators counting the visitor.
    #[test]
    fn finds_a_visitor_in_a_saved_report_state() {
        use lift_domain::event::{Attribution, AttributionStatus, Event, EventBody, LedgerEntry, LinkClick};
        let anna = AccountId::new("x", "anna");
        let offers = [IssuedOffer { account: anna.clone(), link: "l1".into(), code: "C1".into(), cost: 5 }];
        let mut b = ReportBuilder::new("c1", "EUR", &offers, &BTreeSet::new(), 10);
        let c = LinkClick {
            link: "l1".into(),
            visitor_id: "v-7".into(),
            landing: String::new(),
            agent_class: String::new(),
            not_counted: None,
        };
        b.observe(&LedgerEntry {
            offset: 11,
            ingested_at: 0,
            event: Event { event_id: "e11".into(), source: "t".into(), occurred_at: 0, body: EventBody::LinkClick(c) },
            attribution: Some(Attribution {
                status: AttributionStatus::Click,
                link: "l1".into(),
                owner: Some(anna.clone()),
                campaign_id: "c1".into(),
                click_offset: 0,
            }),
        });
        let state: Value = serde_json::to_value(&b).expect("state");
        let row = visitor_row(&state, "v-7").expect("the state keeps v-7");
        assert_eq!(row.credited_to, Some(anna.to_proto()));
        assert_eq!(row.counted_by, vec![anna.to_proto()]);
        assert_eq!(visitor_row(&state, "v-8"), None);
    }
}
